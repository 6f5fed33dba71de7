//! The group membership APIs of Kafka's classic group protocol, every version through the
//! flexible ones (the [`Reader`] and [`Writer`] switch encodings per message): JoinGroup 0–9,
//! SyncGroup 0–5, Heartbeat 0–4, LeaveGroup 0–5, ListGroups 0–4, DescribeGroups 0–5,
//! DeleteGroups 0–2. What the fields mean is `crate::coordinator`'s business; here they are
//! only read and written.
//!
//! Array lengths are checked against the bytes left with each element's least encoded size
//! in either encoding (a compact string or array is one byte), so a frame cannot make the
//! broker reserve more than it holds.

use super::DecodeError;
use super::wire::{Reader, Writer};
use bytes::BytesMut;

/// A protocol a member can run (an assignor, for consumers) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolMetadata {
    pub name: String,
    pub metadata: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// v0: the session timeout.
    pub rebalance_timeout_ms: i32,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Static membership (KIP-345, v5+).
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<ProtocolMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment of each member.
    pub assignments: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A member leaving: (member id, group instance id).
pub type LeavingMember = (String, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    pub group_id: String,
    /// One before v3; a batch from v3.
    pub members: Vec<LeavingMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsRequest {
    /// v4+: only groups in these states (empty: all).
    pub states_filter: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsRequest {
    /// DescribeGroups' or DeleteGroups' group ids.
    pub groups: Vec<String>,
}

fn member_id_and_instance(
    r: &mut Reader<'_>,
    v: i16,
    instance_from: i16,
) -> Result<(String, Option<String>), DecodeError> {
    let member_id = r.string("member_id")?;
    let instance = if v >= instance_from {
        r.nullable_string("group_instance_id")?
    } else {
        None
    };
    Ok((member_id, instance))
}

pub(super) fn join_group(r: &mut Reader<'_>, v: i16) -> Result<JoinGroupRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let session_timeout_ms = r.i32("session_timeout_ms")?;
    let rebalance_timeout_ms = if v >= 1 {
        r.i32("rebalance_timeout_ms")?
    } else {
        session_timeout_ms
    };
    let (member_id, group_instance_id) = member_id_and_instance(r, v, 5)?;
    let protocol_type = r.string("protocol_type")?;
    let protocols = r.vec("protocols", 2, |r| {
        let name = r.string("protocol name")?;
        let metadata = r.bytes("protocol metadata")?.to_vec();
        r.tags()?;
        Ok(ProtocolMetadata { name, metadata })
    })?;
    if v >= 8 {
        r.nullable_string("reason")?;
    }
    r.tags()?;
    Ok(JoinGroupRequest {
        group_id,
        session_timeout_ms,
        rebalance_timeout_ms,
        member_id,
        group_instance_id,
        protocol_type,
        protocols,
    })
}

pub(super) fn sync_group(r: &mut Reader<'_>, v: i16) -> Result<SyncGroupRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let generation_id = r.i32("generation_id")?;
    let (member_id, group_instance_id) = member_id_and_instance(r, v, 3)?;
    let (protocol_type, protocol_name) = if v >= 5 {
        (
            r.nullable_string("protocol_type")?,
            r.nullable_string("protocol_name")?,
        )
    } else {
        (None, None)
    };
    let assignments = r.vec("assignments", 2, |r| {
        let member = r.string("assignment member_id")?;
        let assignment = r.bytes("assignment")?.to_vec();
        r.tags()?;
        Ok((member, assignment))
    })?;
    r.tags()?;
    Ok(SyncGroupRequest {
        group_id,
        generation_id,
        member_id,
        group_instance_id,
        protocol_type,
        protocol_name,
        assignments,
    })
}

pub(super) fn heartbeat(r: &mut Reader<'_>, v: i16) -> Result<HeartbeatRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let generation_id = r.i32("generation_id")?;
    let (member_id, group_instance_id) = member_id_and_instance(r, v, 3)?;
    r.tags()?;
    Ok(HeartbeatRequest {
        group_id,
        generation_id,
        member_id,
        group_instance_id,
    })
}

pub(super) fn leave_group(r: &mut Reader<'_>, v: i16) -> Result<LeaveGroupRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let members = if v >= 3 {
        r.vec("members", 2, |r| {
            let member = member_id_and_instance(r, v, 3)?;
            if v >= 5 {
                r.nullable_string("reason")?;
            }
            r.tags()?;
            Ok(member)
        })?
    } else {
        vec![(r.string("member_id")?, None)]
    };
    r.tags()?;
    Ok(LeaveGroupRequest { group_id, members })
}

pub(super) fn list_groups(r: &mut Reader<'_>, v: i16) -> Result<ListGroupsRequest, DecodeError> {
    let states_filter = if v >= 4 {
        r.vec("states_filter", 1, |r| r.string("state"))?
    } else {
        Vec::new()
    };
    r.tags()?;
    Ok(ListGroupsRequest { states_filter })
}

pub(super) fn describe_groups(r: &mut Reader<'_>, v: i16) -> Result<GroupsRequest, DecodeError> {
    let groups = r.vec("groups", 1, |r| r.string("group id"))?;
    if v >= 3 {
        r.bool("include_authorized_operations")?;
    }
    r.tags()?;
    Ok(GroupsRequest { groups })
}

pub(super) fn delete_groups(r: &mut Reader<'_>) -> Result<GroupsRequest, DecodeError> {
    let groups = r.vec("groups_names", 1, |r| r.string("group id"))?;
    r.tags()?;
    Ok(GroupsRequest { groups })
}

/// What a JoinGroup answers: the generation the member is in, and, for the leader, every
/// member's metadata for the chosen protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroupResponse {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata): the leader's only.
    pub members: Vec<(String, Option<String>, Vec<u8>)>,
}

impl JoinGroupResponse {
    /// An error answer, with the member id the member should use (KIP-394) or empty.
    pub fn error(error: i16, member_id: &str) -> Self {
        Self {
            error,
            generation_id: -1,
            member_id: member_id.to_owned(),
            ..Self::default()
        }
    }
}

fn throttle(w: &mut Writer<'_>, v: i16, from: i16) {
    if v >= from {
        w.i32(0);
    }
}

pub fn join_group_response(buf: &mut BytesMut, v: i16, r: &JoinGroupResponse) {
    let mut w = Writer::response(buf, v >= 6);
    throttle(&mut w, v, 2);
    w.i16(r.error);
    w.i32(r.generation_id);
    if v >= 7 {
        w.nullable_string(r.protocol_type.as_deref());
        w.nullable_string(r.protocol_name.as_deref());
    } else {
        w.string(r.protocol_name.as_deref().unwrap_or(""));
    }
    w.string(&r.leader);
    if v >= 9 {
        w.bool(false); // skip_assignment
    }
    w.string(&r.member_id);
    w.array_len(r.members.len());
    for (member_id, instance, metadata) in &r.members {
        w.string(member_id);
        if v >= 5 {
            w.nullable_string(instance.as_deref());
        }
        w.bytes(metadata);
        w.tags();
    }
    w.tags();
}

/// What a SyncGroup answers: the member's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroupResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

impl SyncGroupResponse {
    pub fn error(error: i16) -> Self {
        Self {
            error,
            ..Self::default()
        }
    }
}

pub fn sync_group_response(buf: &mut BytesMut, v: i16, r: &SyncGroupResponse) {
    let mut w = Writer::response(buf, v >= 4);
    throttle(&mut w, v, 1);
    w.i16(r.error);
    if v >= 5 {
        w.nullable_string(r.protocol_type.as_deref());
        w.nullable_string(r.protocol_name.as_deref());
    }
    w.bytes(&r.assignment);
    w.tags();
}

pub fn heartbeat_response(buf: &mut BytesMut, v: i16, error: i16) {
    let mut w = Writer::response(buf, v >= 4);
    throttle(&mut w, v, 1);
    w.i16(error);
    w.tags();
}

/// LeaveGroup: the request's error and, from v3, each member's (id, instance, error).
pub fn leave_group_response(
    buf: &mut BytesMut,
    v: i16,
    error: i16,
    members: &[(String, Option<String>, i16)],
) {
    let mut w = Writer::response(buf, v >= 4);
    throttle(&mut w, v, 1);
    w.i16(error);
    if v >= 3 {
        w.array_len(members.len());
        for (member_id, instance, member_error) in members {
            w.string(member_id);
            w.nullable_string(instance.as_deref());
            w.i16(*member_error);
            w.tags();
        }
    }
    w.tags();
}

/// A group as ListGroups lists it: (group id, protocol type, state).
pub type ListedGroup = (String, String, &'static str);

pub fn list_groups_response(buf: &mut BytesMut, v: i16, error: i16, groups: &[ListedGroup]) {
    let mut w = Writer::response(buf, v >= 3);
    throttle(&mut w, v, 1);
    w.i16(error);
    w.array_len(groups.len());
    for (group_id, protocol_type, state) in groups {
        w.string(group_id);
        w.string(protocol_type);
        if v >= 4 {
            w.string(state);
        }
        w.tags();
    }
    w.tags();
}

/// A member as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error: i16,
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    /// The chosen protocol's name.
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

/// Kafka's "no operations reported" (`authorized_operations` when not asked for).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn describe_groups_response(buf: &mut BytesMut, v: i16, groups: &[DescribedGroup]) {
    let mut w = Writer::response(buf, v >= 5);
    throttle(&mut w, v, 1);
    w.array_len(groups.len());
    for g in groups {
        w.i16(g.error);
        w.string(&g.group_id);
        w.string(g.state);
        w.string(&g.protocol_type);
        w.string(&g.protocol_data);
        w.array_len(g.members.len());
        for m in &g.members {
            w.string(&m.member_id);
            if v >= 4 {
                w.nullable_string(m.group_instance_id.as_deref());
            }
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.bytes(&m.metadata);
            w.bytes(&m.assignment);
            w.tags();
        }
        if v >= 3 {
            w.i32(AUTHORIZED_OPERATIONS_OMITTED);
        }
        w.tags();
    }
    w.tags();
}

pub fn delete_groups_response(buf: &mut BytesMut, v: i16, results: &[(String, i16)]) {
    let mut w = Writer::response(buf, v >= 2);
    w.i32(0); // throttle_time_ms
    w.array_len(results.len());
    for (group_id, error) in results {
        w.string(group_id);
        w.i16(*error);
        w.tags();
    }
    w.tags();
}
