//! A stable group as stored in `__consumer_offsets` (as Kafka stores its group metadata), so
//! that a restarted broker knows the group's generation, members and assignments and its
//! members carry on without a rebalance. I/O-free: bytes in, bytes out.
//!
//! Value layout (big-endian): `version: u8 = 1`, `generation: i32`, `protocol_type`,
//! `protocol_name`, `leader` (strings: `u16` length + UTF-8), `members: u16`, then per member
//! `member_id`, `instance_id` (string, length `0xFFFF` for none), `client_id`, `client_host`,
//! `session_timeout_ms: u32`, `rebalance_timeout_ms: u32`, `metadata` and `assignment`
//! (`u32` length + bytes). Only the chosen protocol's metadata is kept (as Kafka does).

use crate::stored::{Cursor, put_bytes, put_nullable_str, put_str};
use bytes::{BufMut, BytesMut};

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub members: Vec<MemberSnapshot>,
}

impl GroupSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(64 + 128 * self.members.len());
        out.put_u8(VERSION);
        out.put_i32(self.generation);
        put_str(&mut out, &self.protocol_type);
        put_str(&mut out, &self.protocol_name);
        put_str(&mut out, &self.leader);
        out.put_u16(u16::try_from(self.members.len()).unwrap_or(u16::MAX));
        for m in self.members.iter().take(usize::from(u16::MAX)) {
            put_str(&mut out, &m.member_id);
            put_nullable_str(&mut out, m.instance_id.as_deref());
            put_str(&mut out, &m.client_id);
            put_str(&mut out, &m.client_host);
            out.put_u32(m.session_timeout_ms);
            out.put_u32(m.rebalance_timeout_ms);
            put_bytes(&mut out, &m.metadata);
            put_bytes(&mut out, &m.assignment);
        }
        out.to_vec()
    }

    /// `None` for bytes that are not a snapshot of a known version (the group is then simply
    /// not restored: its members join again).
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let mut r = Cursor::new(buf);
        if r.u8()? != VERSION {
            return None;
        }
        let generation = r.i32()?;
        let protocol_type = r.string()?;
        let protocol_name = r.string()?;
        let leader = r.string()?;
        let count = r.u16()?;
        let mut members = Vec::new();
        for _ in 0..count {
            members.push(MemberSnapshot {
                member_id: r.string()?,
                instance_id: r.nullable_string()?,
                client_id: r.string()?,
                client_host: r.string()?,
                session_timeout_ms: r.u32()?,
                rebalance_timeout_ms: r.u32()?,
                metadata: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        r.is_empty().then_some(Self {
            generation,
            protocol_type,
            protocol_name,
            leader,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let snapshot = GroupSnapshot {
            generation: 7,
            protocol_type: "consumer".into(),
            protocol_name: "range".into(),
            leader: "m1".into(),
            members: vec![
                MemberSnapshot {
                    member_id: "m1".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 30_000,
                    metadata: vec![1, 2, 3],
                    assignment: vec![4],
                },
                MemberSnapshot {
                    member_id: "m2".into(),
                    instance_id: Some("host-2".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 30_000,
                    metadata: vec![],
                    assignment: vec![5, 6],
                },
            ],
        };
        let bytes = snapshot.encode();
        assert_eq!(GroupSnapshot::decode(&bytes), Some(snapshot));
        for len in 0..bytes.len() {
            assert_eq!(GroupSnapshot::decode(&bytes[..len]), None, "{len}");
        }
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(GroupSnapshot::decode(&other_version), None);
    }
}
