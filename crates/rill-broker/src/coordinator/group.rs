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
    /// What the coordinator last counted of this group's bytes ([`Group::account`]).
    accounted_bytes: usize,
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
            accounted_bytes: 0,
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

    /// The bytes the group holds for its members (ids, protocols' metadata, assignments):
    /// what clients chose to send, bounded across groups by the coordinator.
    pub fn held_bytes(&self) -> usize {
        self.members
            .iter()
            .map(|m| {
                let protocols: usize = m
                    .protocols
                    .iter()
                    .map(|p| p.name.len() + p.metadata.len())
                    .sum();
                m.id.len()
                    + m.client_id.len()
                    + m.client_host.len()
                    + protocols
                    + m.assignment.len()
            })
            .sum::<usize>()
            + self.pending.iter().map(|(id, _)| id.len()).sum::<usize>()
    }

    /// The held bytes the coordinator counted last time and now: (before, after).
    pub fn account(&mut self) -> (usize, usize) {
        let after = self.held_bytes();
        (std::mem::replace(&mut self.accounted_bytes, after), after)
    }

    /// What time passing can change of a group: its state, generation, members and ids
    /// handed out. Equal outlines before and after a tick mean the tick changed nothing.
    pub fn outline(&self) -> (State, i32, usize, usize) {
        (
            self.state,
            self.generation,
            self.members.len(),
            self.pending.len(),
        )
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

#[path = "group_join.rs"]
mod join;
#[path = "group_persist.rs"]
mod persist;
pub use persist::Change;

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
