//! JoinGroup and the rebalance it starts: a new member (KIP-394's id first), a known one
//! rejoining, a static one coming back; the join window (every member rejoined, the initial
//! delay, the rebalance timeout) and its end, the next generation with its protocol and leader.

use super::{Group, Join, Member, Reply, Rules, State};
use crate::protocol::error_code as code;
use crate::protocol::membership::{JoinGroupResponse, SyncGroupResponse};
use std::time::Instant;
use tokio::sync::oneshot;

impl Group {
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
    pub(super) fn rebalance(&mut self, rules: &Rules, now: Instant) {
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

    pub(super) fn try_complete_join(&mut self, now: Instant) {
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
}
