//! One consumer group's membership: Kafka's classic group state machine, free of I/O and of
//! the clock (every call takes `now`), so that tests drive it step by step.
//!
//! ```text
//!            first join                 every member rejoined (or the rebalance timeout)
//!   Empty ───────────────▶ Preparing ─────────────────────────────▶ Completing
//!     ▲                    Rebalance ◀──── join / leave / expiry ──  Rebalance
//!     │ last member gone      ▲                                          │ leader's SyncGroup
//!     └───────────────────────┴──────── join / leave / expiry ──── Stable ◀┘
//! ```
//!
//! A JoinGroup or SyncGroup that must wait for the others gets a [`oneshot`] receiver; the
//! group answers it when the rebalance step completes (or with an error when the member is
//! removed meanwhile). A member waiting in either is kept alive (its connection is busy with
//! the wait and cannot heartbeat); every other member must heartbeat within its session
//! timeout.

use crate::protocol::error_code as code;
use crate::protocol::membership::{
    DescribedGroup, DescribedMember, JoinGroupResponse, ProtocolMetadata, SyncGroupResponse,
};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Where a group is in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members (committed offsets may remain).
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// Kafka's name of the state (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// The group-wide settings a join is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A first rebalance waits this long for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`), extended by each join up to the rebalance timeout.
    pub initial_rebalance_delay: Duration,
    /// Members (joined and awaiting their id) at most.
    pub max_group_size: usize,
}

/// A member's JoinGroup, as the group needs it.
#[derive(Debug, Clone)]
pub struct Join {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<ProtocolMetadata>,
    /// KIP-394 (JoinGroup v4+): a new member first gets its id and joins again with it.
    pub require_known_member_id: bool,
}

/// An answer now, or one to wait for.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<ProtocolMetadata>,
    assignment: Vec<u8>,
    join_waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
    /// Removed at this time unless it heartbeats (or waits in a join or sync).
    session_deadline: Instant,
}

impl Member {
    fn metadata(&self, protocol: &str) -> &[u8] {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map_or(&[], |p| &p.metadata)
    }

    fn same_protocols(&self, protocols: &[ProtocolMetadata]) -> bool {
        self.protocols == protocols
    }

    fn refresh(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }
}

/// One group.
#[derive(Debug)]
pub struct Group {
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order (the first is the leader when a leader must be chosen).
    members: Vec<Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, and when they lapse unless used.
    pending: Vec<(String, Instant)>,
    /// PreparingRebalance: the join completes by then, whoever has rejoined.
    join_deadline: Option<Instant>,
    /// PreparingRebalance of an empty group: not before then (the initial delay).
    join_not_before: Option<Instant>,
    /// CompletingRebalance: members that have not sent SyncGroup by then are removed.
    sync_deadline: Option<Instant>,
    /// What the stored copy of the group needs (`persist.rs`), until the coordinator takes it.
    change: Option<persist::Change>,
    /// Whether a stable generation of the group is stored (so that emptying it is stored too).
    persisted: bool,
}

impl Default for Group {
    fn default() -> Self {
        Self::new()
    }
}

impl Group {
    pub fn new() -> Self {
        Self {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            join_deadline: None,
            join_not_before: None,
            sync_deadline: None,
            change: None,
            persisted: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type ("consumer" for consumers), once a member joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether the group holds no member and no member id awaiting its join: nothing to keep.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    fn index_of(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    /// The member `member_id` names, or the error to answer: a static member's id that was
    /// replaced is fenced, an unknown id is unknown.
    fn find(&self, member_id: &str, instance_id: Option<&str>) -> Result<usize, i16> {
        if let Some(instance) = instance_id
            && let Some(other) = self
                .members
                .iter()
                .find(|m| m.instance_id.as_deref() == Some(instance))
            && other.id != member_id
        {
            return Err(code::FENCED_INSTANCE_ID);
        }
        self.index_of(member_id).ok_or(code::UNKNOWN_MEMBER_ID)
    }

    /// Whether a member with these protocols may join: same protocol type, and at least one
    /// protocol every current member supports.
    fn accepts(&self, protocol_type: &str, protocols: &[ProtocolMetadata]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            })
    }

    /// JoinGroup. `new_member_id` names a member joining for the first time.
    pub fn join(
        &mut self,
        join: Join,
        new_member_id: impl FnOnce() -> String,
        rules: &Rules,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let refuse = |error, id: &str| Reply::Now(JoinGroupResponse::error(error, id));
        if !self.accepts(&join.protocol_type, &join.protocols) {
            return refuse(code::INCONSISTENT_GROUP_PROTOCOL, &join.member_id);
        }
        if join.member_id.is_empty() {
            if let Some(instance) = &join.instance_id
                && let Some(index) = self
                    .members
                    .iter()
                    .position(|m| m.instance_id.as_ref() == Some(instance))
            {
                return self.rejoin_static(index, join, new_member_id(), rules, now);
            }
            if self.members.len() + self.pending.len() >= rules.max_group_size {
                return refuse(code::GROUP_MAX_SIZE_REACHED, "");
            }
            let id = new_member_id();
            if join.require_known_member_id && join.instance_id.is_none() {
                self.pending.push((id.clone(), now + join.session_timeout));
                return refuse(code::MEMBER_ID_REQUIRED, &id);
            }
            return self.add_member(id, join, rules, now);
        }
        if let Some(at) = self
            .pending
            .iter()
            .position(|(id, _)| *id == join.member_id)
        {
            self.pending.swap_remove(at);
            let id = join.member_id.clone();
            return self.add_member(id, join, rules, now);
        }
        let index = match self.find(&join.member_id, join.instance_id.as_deref()) {
            Ok(index) => index,
            Err(error) => return refuse(error, &join.member_id),
        };
        let member = &self.members[index];
        let unchanged = member.same_protocols(&join.protocols);
        let is_leader = self.leader.as_deref() == Some(member.id.as_str());
        match self.state {
            State::CompletingRebalance if unchanged => {
                self.members[index].refresh(now);
                Reply::Now(self.join_response(&self.members[index].id))
            }
            State::Stable if unchanged && !is_leader => {
                self.members[index].refresh(now);
                Reply::Now(self.join_response(&self.members[index].id))
            }
            State::Empty => refuse(code::UNKNOWN_MEMBER_ID, &join.member_id),
            _ => self.update_and_rebalance(index, join, rules, now),
        }
    }

    /// A static member (known by its instance id) joining with a new member id: the old id
    /// is fenced. A stable group whose member kept its protocols keeps its assignment and
    /// generation (no rebalance: KIP-345's point); otherwise it rebalances.
    fn rejoin_static(
        &mut self,
        index: usize,
        join: Join,
        id: String,
        rules: &Rules,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let member = &mut self.members[index];
        let fenced = || JoinGroupResponse::error(code::FENCED_INSTANCE_ID, "");
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(fenced());
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncGroupResponse::error(code::FENCED_INSTANCE_ID));
        }
        if self.leader.as_deref() == Some(member.id.as_str()) {
            self.leader = Some(id.clone());
        }
        member.id.clone_from(&id);
        let unchanged = member.same_protocols(&join.protocols);
        if self.state == State::Stable && unchanged {
            member.client_id = join.client_id;
            member.client_host = join.client_host;
            member.refresh(now);
            self.note_stable();
            return Reply::Now(self.join_response(&id));
        }
        let mut join = join;
        join.member_id = id;
        self.update_and_rebalance(index, join, rules, now)
    }

    fn add_member(
        &mut self,
        id: String,
        join: Join,
        rules: &Rules,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(join.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.push(Member {
            id,
            instance_id: join.instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            session_timeout: join.session_timeout,
            rebalance_timeout: join.rebalance_timeout,
            protocols: join.protocols,
            assignment: Vec::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            session_deadline: now + join.session_timeout,
        });
        self.rebalance(rules, now);
        Reply::Wait(rx)
    }

    fn update_and_rebalance(
        &mut self,
        index: usize,
        join: Join,
        rules: &Rules,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let member = &mut self.members[index];
        member.protocols = join.protocols;
        member.session_timeout = join.session_timeout;
        member.rebalance_timeout = join.rebalance_timeout;
        member.client_id = join.client_id;
        member.client_host = join.client_host;
        member.refresh(now);
        // A join this member was already waiting in (from a connection it gave up) is
        // superseded: the older request is answered so its connection is not left hanging.
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinGroupResponse::error(
                code::REBALANCE_IN_PROGRESS,
                &member.id,
            ));
        }
        self.rebalance(rules, now);
        Reply::Wait(rx)
    }

    /// Starts a rebalance (or extends the initial delay of one starting), then completes the
    /// join if everyone is in.
    fn rebalance(&mut self, rules: &Rules, now: Instant) {
        let timeout = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        match self.state {
            State::PreparingRebalance => {
                if self.join_not_before.is_some() {
                    let cap = self.join_deadline.unwrap_or(now);
                    self.join_not_before = Some((now + rules.initial_rebalance_delay).min(cap));
                }
            }
            State::Empty | State::Stable | State::CompletingRebalance => {
                for member in &mut self.members {
                    if let Some(waiter) = member.sync_waiter.take() {
                        let _ = waiter.send(SyncGroupResponse::error(code::REBALANCE_IN_PROGRESS));
                        // Answered now: alive now, whatever its wait lasted.
                        member.refresh(now);
                    }
                }
                self.join_not_before = (self.state == State::Empty)
                    .then(|| now + rules.initial_rebalance_delay.min(timeout));
                self.state = State::PreparingRebalance;
                self.join_deadline = Some(now + timeout);
                self.sync_deadline = None;
            }
        }
        self.try_complete_join(now);
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let everyone_in =
            self.pending.is_empty() && self.members.iter().all(|m| m.join_waiter.is_some());
        let delayed = self.join_not_before.is_some_and(|t| now < t);
        let timed_out = self.join_deadline.is_some_and(|t| now >= t);
        if timed_out || (everyone_in && !delayed) {
            self.complete_join(now);
        }
    }

    /// The next generation, of the members that rejoined: each gets its JoinGroup answer.
    fn complete_join(&mut self, now: Instant) {
        self.members.retain(|m| m.join_waiter.is_some());
        self.join_deadline = None;
        self.join_not_before = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.note_emptied();
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.index_of(l).is_none())
        {
            self.leader = Some(self.members[0].id.clone());
        }
        self.protocol_name = self.select_protocol();
        self.state = State::CompletingRebalance;
        let timeout = self.members.iter().map(|m| m.rebalance_timeout).max();
        self.sync_deadline = timeout.map(|t| now + t);
        for index in 0..self.members.len() {
            let response = self.join_response(&self.members[index].id);
            let member = &mut self.members[index];
            member.assignment.clear();
            member.refresh(now);
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(response);
            }
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote: each
    /// member votes for the first of its protocols that all support).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|p| p.name == *name))
            })
            .collect();
        let votes = |name: &str| {
            self.members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|p| candidates.contains(&p.name.as_str()))
                        .is_some_and(|p| p.name == name)
                })
                .count()
        };
        // Ties go to the earliest in the first member's order.
        let mut best: Option<(&str, usize)> = None;
        for name in &candidates {
            let count = votes(name);
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    /// The JoinGroup answer of the current generation for `member_id` (the leader's lists
    /// every member's metadata).
    fn join_response(&self, member_id: &str) -> JoinGroupResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata(&protocol).to_vec(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            error: code::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: Some(protocol),
            leader,
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// SyncGroup: the leader's assignments end the rebalance; the others wait for them.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Vec<u8>)>,
        now: Instant,
    ) -> Reply<SyncGroupResponse> {
        let refuse = |error| Reply::Now(SyncGroupResponse::error(error));
        let index = match self.find(member_id, instance_id) {
            Ok(index) => index,
            Err(error) => return refuse(error),
        };
        if generation != self.generation {
            return refuse(code::ILLEGAL_GENERATION);
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return refuse(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            State::Empty => refuse(code::UNKNOWN_MEMBER_ID),
            State::PreparingRebalance => refuse(code::REBALANCE_IN_PROGRESS),
            State::Stable => {
                self.members[index].refresh(now);
                Reply::Now(self.sync_response(&self.members[index].assignment))
            }
            State::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = &mut self.members[index];
                member.refresh(now);
                if let Some(old) = member.sync_waiter.replace(tx) {
                    let _ = old.send(SyncGroupResponse::error(code::REBALANCE_IN_PROGRESS));
                }
                if self.leader.as_deref() == Some(member_id) {
                    self.assign(assignments);
                }
                Reply::Wait(rx)
            }
        }
    }

    /// The leader's assignments: stored (members it left out get an empty one), every
    /// waiting member answered, the group stable.
    fn assign(&mut self, assignments: Vec<(String, Vec<u8>)>) {
        for (member_id, assignment) in assignments {
            if let Some(index) = self.index_of(&member_id) {
                self.members[index].assignment = assignment;
            }
        }
        self.state = State::Stable;
        self.sync_deadline = None;
        self.note_stable();
        for index in 0..self.members.len() {
            let response = self.sync_response(&self.members[index].assignment);
            if let Some(waiter) = self.members[index].sync_waiter.take() {
                let _ = waiter.send(response);
            }
        }
    }

    fn sync_response(&self, assignment: &[u8]) -> SyncGroupResponse {
        SyncGroupResponse {
            error: code::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: assignment.to_vec(),
        }
    }

    /// Heartbeat: keeps the member's session; tells it when a rebalance needs it.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == State::Empty {
            return code::UNKNOWN_MEMBER_ID;
        }
        let index = match self.find(member_id, instance_id) {
            Ok(index) => index,
            Err(error) => return error,
        };
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        self.members[index].refresh(now);
        if self.state == State::PreparingRebalance {
            code::REBALANCE_IN_PROGRESS
        } else {
            code::NONE
        }
    }

    /// Whether an OffsetCommit from this member and generation may be stored. A commit
    /// without a generation (-1) is accepted from outside the group while it has no members
    /// (consumers that assign their partitions themselves).
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), i16> {
        if generation < 0 && self.state == State::Empty {
            return Ok(());
        }
        let index = self.find(member_id, instance_id)?;
        if generation != self.generation {
            return Err(code::ILLEGAL_GENERATION);
        }
        if self.state == State::CompletingRebalance {
            return Err(code::REBALANCE_IN_PROGRESS);
        }
        self.members[index].refresh(now);
        Ok(())
    }

    /// LeaveGroup of one member (by member id, or by instance id for a static member).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        rules: &Rules,
        now: Instant,
    ) -> i16 {
        let index = if let Some(instance) = instance_id {
            let found = self
                .members
                .iter()
                .position(|m| m.instance_id.as_deref() == Some(instance));
            match found {
                Some(i) if member_id.is_empty() || self.members[i].id == member_id => i,
                Some(_) => return code::FENCED_INSTANCE_ID,
                None => return code::UNKNOWN_MEMBER_ID,
            }
        } else {
            if let Some(at) = self.pending.iter().position(|(id, _)| id == member_id) {
                self.pending.swap_remove(at);
                self.try_complete_join(now);
                return code::NONE;
            }
            match self.index_of(member_id) {
                Some(i) => i,
                None => return code::UNKNOWN_MEMBER_ID,
            }
        };
        self.remove(index, rules, now);
        code::NONE
    }

    /// Removes a member (left, expired, or never synced); the others rebalance.
    fn remove(&mut self, index: usize, rules: &Rules, now: Instant) {
        let member = self.members.remove(index);
        if let Some(waiter) = member.join_waiter {
            let _ = waiter.send(JoinGroupResponse::error(code::UNKNOWN_MEMBER_ID, ""));
        }
        if let Some(waiter) = member.sync_waiter {
            let _ = waiter.send(SyncGroupResponse::error(code::UNKNOWN_MEMBER_ID));
        }
        if self.leader.as_deref() == Some(member.id.as_str()) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        match self.state {
            State::Stable | State::CompletingRebalance => self.rebalance(rules, now),
            State::PreparingRebalance => self.try_complete_join(now),
            State::Empty => {}
        }
    }

    /// Time passing: lapsed member ids, expired sessions, a rebalance's deadlines. Returns
    /// the ids of the members removed (for the log).
    pub fn tick(&mut self, rules: &Rules, now: Instant) -> Vec<String> {
        self.pending.retain(|(_, deadline)| *deadline > now);
        let mut removed = Vec::new();
        // Bounded: each pass removes a member or stops. The sync deadline is read again after
        // each removal: a removal from CompletingRebalance starts a new rebalance.
        loop {
            let sync_lapsed = self.state == State::CompletingRebalance
                && self.sync_deadline.is_some_and(|t| now >= t);
            let Some(index) = self.members.iter().position(|m| {
                let waiting = m.join_waiter.is_some() || m.sync_waiter.is_some();
                (!waiting && m.session_deadline <= now) || (sync_lapsed && m.sync_waiter.is_none())
            }) else {
                break;
            };
            removed.push(self.members[index].id.clone());
            self.remove(index, rules, now);
        }
        self.try_complete_join(now);
        removed
    }

    /// DescribeGroups' view: members with their metadata and assignment while stable
    /// (Kafka's summary), without them otherwise.
    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let stable = self.state == State::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            error: code::NONE,
            group_id: group_id.to_owned(),
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: self
                .members
                .iter()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).to_vec()
                    } else {
                        Vec::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }
}

#[path = "group_persist.rs"]
mod persist;
pub use persist::Change;

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
