//! What of a group is stored, and a group rebuilt from it after a restart: a stable
//! generation (members, their chosen protocol's metadata and assignments), replaced by each
//! later stable generation and deleted when the group empties. A group between generations is
//! not stored; after a restart in the middle of a rebalance the last stable generation comes
//! back and members of the newer one join again.

use super::{Group, Member, State};
use crate::coordinator::snapshot::{GroupSnapshot, MemberSnapshot};
use crate::protocol::membership::ProtocolMetadata;
use std::time::{Duration, Instant};

/// A change the stored copy of a group needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new stable generation.
    Stable(GroupSnapshot),
    /// No members left: the stored generation is deleted.
    Emptied,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Group {
    pub(super) fn note_stable(&mut self) {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let snapshot = GroupSnapshot {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            members: self
                .members
                .iter()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: millis(m.session_timeout),
                    rebalance_timeout_ms: millis(m.rebalance_timeout),
                    metadata: m.metadata(&protocol).to_vec(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        self.change = Some(Change::Stable(snapshot));
    }

    pub(super) fn note_emptied(&mut self) {
        if self.persisted || matches!(self.change, Some(Change::Stable(_))) {
            self.change = Some(Change::Emptied);
        }
    }

    /// The change the stored copy needs since the last call, if any.
    pub fn take_change(&mut self) -> Option<Change> {
        let change = self.change.take()?;
        self.persisted = matches!(change, Change::Stable(_));
        Some(change)
    }

    /// The group as stored: stable, each member's session starting `now`.
    pub fn restore(snapshot: GroupSnapshot, now: Instant) -> Self {
        let mut group = Self::new();
        group.state = State::Stable;
        group.generation = snapshot.generation;
        group.protocol_type = Some(snapshot.protocol_type);
        group.leader = Some(snapshot.leader);
        group.persisted = true;
        for m in snapshot.members {
            let session_timeout = Duration::from_millis(u64::from(m.session_timeout_ms));
            group.members.push(Member {
                id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout,
                rebalance_timeout: Duration::from_millis(u64::from(m.rebalance_timeout_ms)),
                protocols: vec![ProtocolMetadata {
                    name: snapshot.protocol_name.clone(),
                    metadata: m.metadata,
                }],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                session_deadline: now + session_timeout,
            });
        }
        group.protocol_name = Some(snapshot.protocol_name);
        if group.members.is_empty() {
            group.state = State::Empty;
        }
        group
    }
}
