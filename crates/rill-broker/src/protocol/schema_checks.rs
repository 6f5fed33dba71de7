//! The hand-written group and produce codecs checked against Kafka's own message schemas (the
//! `kafka-protocol` crate, generated from Kafka's JSON): every request the crate encodes, at
//! every version both implement, decodes here to the same fields, and every response encoded
//! here decodes with the crate to what was meant, consuming every byte. This is what makes the
//! flexible (compact, tagged) encodings trustworthy beyond the clients the tests run.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use super::groups::{self as codec, OffsetCommitRequest};
use super::membership::{self, DescribedGroup, DescribedMember, JoinGroupResponse};
use super::{Request, decode_request};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self as kp, GroupId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// Encodes `message` with its request header as the crate does, and decodes it here.
fn decode<M: Encodable + HeaderVersion>(api_key: i16, version: i16, message: &M) -> Request {
    let mut header = kp::RequestHeader::default();
    header.request_api_key = api_key;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(s("client"));
    let mut frame = BytesMut::new();
    header
        .encode(&mut frame, M::header_version(version))
        .unwrap();
    message.encode(&mut frame, version).unwrap();
    let (decoded, request) = decode_request(&frame).unwrap();
    assert_eq!((decoded.api_key, decoded.correlation_id), (api_key, 7));
    assert_eq!(decoded.client_id.as_deref(), Some("client"));
    request
}

/// Decodes a response body encoded here (after the correlation id) with the crate.
fn read<M: Decodable + HeaderVersion>(version: i16, encode: impl FnOnce(&mut BytesMut)) -> M {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    let mut bytes: Bytes = buf.freeze();
    if M::header_version(version) >= 1 {
        assert_eq!(bytes[0], 0, "response header: no tagged fields");
        bytes = bytes.slice(1..);
    }
    let message = M::decode(&mut bytes, version).unwrap();
    assert!(bytes.is_empty(), "v{version}: {} bytes left", bytes.len());
    message
}

#[test]
fn join_group() {
    for v in 0..=9 {
        let mut m = kp::JoinGroupRequest::default();
        m.group_id = GroupId(s("g"));
        m.session_timeout_ms = 10_000;
        m.rebalance_timeout_ms = 30_000;
        m.member_id = s("m");
        m.group_instance_id = (v >= 5).then(|| s("i"));
        m.protocol_type = s("consumer");
        let mut p = kp::join_group_request::JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(&[1, 2]);
        m.protocols = vec![p];
        m.reason = (v >= 8).then(|| s("why"));
        let Request::JoinGroup(r) = decode(11, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!((r.group_id.as_str(), r.member_id.as_str()), ("g", "m"));
        let rebalance = if v >= 1 { 30_000 } else { 10_000 };
        assert_eq!(
            (r.session_timeout_ms, r.rebalance_timeout_ms),
            (10_000, rebalance)
        );
        assert_eq!(r.group_instance_id.is_some(), v >= 5);
        assert_eq!(r.protocols[0].name, "range");
        assert_eq!(r.protocols[0].metadata, [1, 2]);

        let ours = JoinGroupResponse {
            error: 0,
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "m1".into(),
            member_id: "m1".into(),
            members: vec![("m1".into(), Some("i".into()), vec![9])],
        };
        let theirs: kp::JoinGroupResponse =
            read(v, |b| membership::join_group_response(b, v, &ours));
        assert_eq!((theirs.generation_id, theirs.leader.as_str()), (3, "m1"));
        assert_eq!(theirs.protocol_name.as_deref(), Some("range"));
        assert_eq!(theirs.members[0].metadata.as_ref(), [9]);
    }
}

#[test]
fn sync_group_heartbeat_and_leave_group() {
    for v in 0..=5 {
        let mut m = kp::SyncGroupRequest::default();
        m.group_id = GroupId(s("g"));
        m.generation_id = 3;
        m.member_id = s("m1");
        m.protocol_type = (v >= 5).then(|| s("consumer"));
        m.protocol_name = (v >= 5).then(|| s("range"));
        let mut a = kp::sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = s("m2");
        a.assignment = Bytes::from_static(&[5]);
        m.assignments = vec![a];
        let Request::SyncGroup(r) = decode(14, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!((r.generation_id, r.member_id.as_str()), (3, "m1"));
        assert_eq!(r.assignments, [("m2".to_owned(), vec![5])]);
        assert_eq!(r.protocol_name.is_some(), v >= 5);
        let ours = membership::SyncGroupResponse {
            error: 0,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: vec![4, 2],
        };
        let theirs: kp::SyncGroupResponse =
            read(v, |b| membership::sync_group_response(b, v, &ours));
        assert_eq!(theirs.assignment.as_ref(), [4, 2]);

        let mut m = kp::LeaveGroupRequest::default();
        m.group_id = GroupId(s("g"));
        if v >= 3 {
            let mut member = kp::leave_group_request::MemberIdentity::default();
            member.member_id = s("m1");
            member.group_instance_id = Some(s("i"));
            m.members = vec![member];
        } else {
            m.member_id = s("m1");
        }
        let Request::LeaveGroup(r) = decode(13, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.members[0].0, "m1");
        let results = [("m1".to_owned(), Some("i".to_owned()), 25)];
        let theirs: kp::LeaveGroupResponse =
            read(v, |b| membership::leave_group_response(b, v, 0, &results));
        if v >= 3 {
            assert_eq!(theirs.members[0].error_code, 25);
        }
    }
    for v in 0..=4 {
        let mut m = kp::HeartbeatRequest::default();
        m.group_id = GroupId(s("g"));
        m.generation_id = 3;
        m.member_id = s("m1");
        let Request::Heartbeat(r) = decode(12, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!((r.generation_id, r.member_id.as_str()), (3, "m1"));
        let theirs: kp::HeartbeatResponse = read(v, |b| membership::heartbeat_response(b, v, 27));
        assert_eq!(theirs.error_code, 27);
    }
}

#[test]
fn list_describe_and_delete_groups() {
    for v in 0..=4 {
        let mut m = kp::ListGroupsRequest::default();
        if v >= 4 {
            m.states_filter = vec![s("Stable")];
        }
        let Request::ListGroups(r) = decode(16, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.states_filter.len(), usize::from(v >= 4));
        let groups = [("g".to_owned(), "consumer".to_owned(), "Stable")];
        let theirs: kp::ListGroupsResponse =
            read(v, |b| membership::list_groups_response(b, v, 0, &groups));
        assert_eq!(theirs.groups[0].group_id.0.as_str(), "g");
        if v >= 4 {
            assert_eq!(theirs.groups[0].group_state.as_str(), "Stable");
        }
    }
    for v in 0..=5 {
        let mut m = kp::DescribeGroupsRequest::default();
        m.groups = vec![GroupId(s("g")), GroupId(s("h"))];
        let Request::DescribeGroups(r) = decode(15, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.groups, ["g", "h"]);
        let described = [DescribedGroup {
            error: 0,
            group_id: "g".into(),
            state: "Stable",
            protocol_type: "consumer".into(),
            protocol_data: "range".into(),
            members: vec![DescribedMember {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: vec![1],
                assignment: vec![2, 3],
            }],
        }];
        let theirs: kp::DescribeGroupsResponse = read(v, |b| {
            membership::describe_groups_response(b, v, &described);
        });
        let member = &theirs.groups[0].members[0];
        assert_eq!(member.member_assignment.as_ref(), [2, 3]);
        assert_eq!(member.client_host.as_str(), "/127.0.0.1");
    }
    for v in 0..=2 {
        let mut m = kp::DeleteGroupsRequest::default();
        m.groups_names = vec![GroupId(s("g"))];
        let Request::DeleteGroups(r) = decode(42, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.groups, ["g"]);
        let theirs: kp::DeleteGroupsResponse = read(v, |b| {
            membership::delete_groups_response(b, v, &[("g".into(), 68)]);
        });
        assert_eq!(theirs.results[0].error_code, 68);
    }
}

#[test]
fn find_coordinator_and_offsets() {
    for v in 0..=4 {
        let mut m = kp::FindCoordinatorRequest::default();
        if v >= 4 {
            m.coordinator_keys = vec![s("g"), s("h")];
        } else {
            m.key = s("g");
        }
        let Request::FindCoordinator(r) = decode(10, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.keys[0], "g");
        let answers = [("g", 0, None, (0, "localhost", 9092))];
        let theirs: kp::FindCoordinatorResponse =
            read(v, |b| codec::find_coordinator_response(b, v, &answers));
        let port = if v >= 4 {
            theirs.coordinators[0].port
        } else {
            theirs.port
        };
        assert_eq!(port, 9092);
    }
    for v in 2..=8 {
        let mut m = kp::OffsetCommitRequest::default();
        m.group_id = GroupId(s("g"));
        m.generation_id_or_member_epoch = 3;
        m.member_id = s("m1");
        let mut p = kp::offset_commit_request::OffsetCommitRequestPartition::default();
        p.partition_index = 1;
        p.committed_offset = 42;
        p.committed_metadata = Some(s("meta"));
        let mut t = kp::offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(s("t"));
        t.partitions = vec![p];
        m.topics = vec![t];
        let Request::OffsetCommit(r) = decode(8, v, &m) else {
            panic!("v{v}")
        };
        let expected = OffsetCommitRequest {
            group_id: "g".into(),
            generation_id: 3,
            member_id: "m1".into(),
            group_instance_id: None,
            topics: vec![("t".into(), vec![(1, 42, Some("meta".into()))])],
        };
        assert_eq!(r, expected, "v{v}");
        let answer = [("t".to_owned(), vec![(1, 22)])];
        let theirs: kp::OffsetCommitResponse =
            read(v, |b| codec::offset_commit_response(b, v, &answer));
        assert_eq!(theirs.topics[0].partitions[0].error_code, 22);
    }
    for v in 1..=8 {
        let mut m = kp::OffsetFetchRequest::default();
        if v >= 8 {
            let mut g = kp::offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = GroupId(s("g"));
            m.groups = vec![g];
        } else {
            m.group_id = GroupId(s("g"));
            let mut t = kp::offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = TopicName(s("t"));
            t.partition_indexes = vec![0, 1];
            m.topics = Some(vec![t]);
        }
        let Request::OffsetFetch(r) = decode(9, v, &m) else {
            panic!("v{v}")
        };
        assert_eq!(r.groups[0].0, "g");
        let fetched = [(
            "g".to_owned(),
            vec![("t".to_owned(), vec![(0, 42, Some("meta".to_owned()), 0)])],
            0,
        )];
        let theirs: kp::OffsetFetchResponse =
            read(v, |b| codec::offset_fetch_response(b, v, &fetched));
        let offset = if v >= 8 {
            theirs.groups[0].topics[0].partitions[0].committed_offset
        } else {
            theirs.topics[0].partitions[0].committed_offset
        };
        assert_eq!(offset, 42);
    }
}

#[test]
fn produce() {
    for v in 3..=10 {
        let records = Bytes::from_static(b"not decoded here");
        let mut p = kp::produce_request::PartitionProduceData::default();
        p.index = 2;
        p.records = Some(records.clone());
        let mut t = kp::produce_request::TopicProduceData::default();
        t.name = TopicName(s("t"));
        t.partition_data = vec![p];
        let mut m = kp::ProduceRequest::default();
        m.acks = -1;
        m.timeout_ms = 1000;
        m.topic_data = vec![t];
        let mut header = kp::RequestHeader::default();
        header.request_api_key = 0;
        header.request_api_version = v;
        header.client_id = Some(s("client"));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, kp::ProduceRequest::header_version(v))
            .unwrap();
        m.encode(&mut frame, v).unwrap();
        let (_, Request::Produce(r)) = decode_request(&frame).unwrap() else {
            panic!("v{v}")
        };
        let range = r.topics[0].partitions[0].records.clone().unwrap();
        assert_eq!(
            &frame[range],
            &records[..],
            "records are a range of the frame"
        );
        let result = super::ProducePartitionResult {
            index: 2,
            error: 0,
            base_offset: 40,
            log_append_time_ms: -1,
            log_start_offset: 0,
            message: None,
        };
        let theirs: kp::ProduceResponse = read(v, |b| {
            super::produce(b, v, &[("t".to_owned(), vec![result])]);
        });
        assert_eq!(theirs.responses[0].partition_responses[0].base_offset, 40);
    }
}
