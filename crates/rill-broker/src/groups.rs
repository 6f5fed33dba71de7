//! Consumer-group coordination on the broker, as far as it goes: this broker coordinates
//! every group (FindCoordinator), and stores and serves committed offsets (OffsetCommit,
//! OffsetFetch) durably in `__consumer_offsets` (`crate::offsets`). Group membership
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) is not implemented yet: commits of consumers
//! that assign their partitions themselves (generation -1) are accepted, others are refused
//! with ILLEGAL_GENERATION.

use crate::broker::Broker;
use crate::errors::kafka_code;
use crate::offsets::CommitError;
use crate::protocol::error_code as code;
use crate::protocol::groups::{
    self, FetchedOffset, FindCoordinatorRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use bytes::BytesMut;

impl Broker {
    /// FindCoordinator: this broker, for a group; transactional ids are not supported.
    pub fn find_coordinator(
        &self,
        version: i16,
        request: &FindCoordinatorRequest,
        buf: &mut BytesMut,
    ) {
        let node = (
            self.address.node_id,
            self.address.host.as_str(),
            self.address.port,
        );
        if request.key_type != 0 {
            groups::find_coordinator_response(
                buf,
                version,
                code::COORDINATOR_NOT_AVAILABLE,
                Some("transactions are not supported"),
                (-1, "", -1),
            );
            return;
        }
        groups::find_coordinator_response(buf, version, code::NONE, None, node);
    }

    /// OffsetCommit: the offsets stored durably, then answered.
    pub async fn offset_commit(
        &self,
        version: i16,
        request: &OffsetCommitRequest,
        buf: &mut BytesMut,
    ) {
        let answer_all = |error: i16| -> Vec<(String, Vec<(i32, i16)>)> {
            request
                .topics
                .iter()
                .map(|(name, partitions)| {
                    (
                        name.clone(),
                        partitions.iter().map(|p| (p.0, error)).collect(),
                    )
                })
                .collect()
        };
        let error = if request.group_id.is_empty() {
            code::INVALID_GROUP_ID
        } else if request.generation_id >= 0 || !request.member_id.is_empty() {
            // Membership is not implemented: no generation can be current.
            code::ILLEGAL_GENERATION
        } else {
            let commits: Vec<(String, i32, i64, Option<String>)> = request
                .topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |(index, offset, metadata)| {
                        (topic.clone(), *index, *offset, metadata.clone())
                    })
                })
                .collect();
            match self.offsets.commit(&request.group_id, &commits).await {
                Ok(()) => code::NONE,
                Err(CommitError::MetadataTooLarge) => code::OFFSET_METADATA_TOO_LARGE,
                Err(e @ CommitError::TooManyKeys(_)) => {
                    tracing::warn!(error = %e, group = %request.group_id, "offset commit refused");
                    code::POLICY_VIOLATION
                }
                Err(CommitError::Engine(e)) => kafka_code(&e, true),
            }
        };
        groups::offset_commit_response(buf, version, &answer_all(error));
    }

    /// OffsetFetch: the committed offsets asked for (-1 where none), or every one the group
    /// committed.
    pub fn offset_fetch(&self, version: i16, request: &OffsetFetchRequest, buf: &mut BytesMut) {
        let topics: Vec<(String, Vec<FetchedOffset>)> = if let Some(topics) = &request.topics {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions
                        .iter()
                        .map(|&index| {
                            let (offset, metadata) = self
                                .offsets
                                .fetch(&request.group_id, topic, index)
                                .unwrap_or((-1, Some(String::new())));
                            (index, offset, metadata, code::NONE)
                        })
                        .collect();
                    (topic.clone(), fetched)
                })
                .collect()
        } else {
            let mut by_topic: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
            for (topic, index, offset, metadata) in self.offsets.of_group(&request.group_id) {
                match by_topic.last_mut() {
                    Some((name, partitions)) if *name == topic => {
                        partitions.push((index, offset, metadata, code::NONE));
                    }
                    _ => by_topic.push((topic, vec![(index, offset, metadata, code::NONE)])),
                }
            }
            by_topic
        };
        groups::offset_fetch_response(buf, version, &topics, code::NONE);
    }
}
