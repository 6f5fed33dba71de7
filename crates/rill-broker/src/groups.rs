//! Consumer groups on the broker, apart from membership (`crate::membership`): this broker
//! coordinates every group (FindCoordinator); committed offsets are stored durably in
//! `__consumer_offsets` (`crate::offsets`) once the coordinator accepts the committing
//! member's generation; ListGroups, DescribeGroups and DeleteGroups.

use crate::broker::Broker;
use crate::coordinator::group::Change;
use crate::errors::kafka_code;
use crate::offsets::CommitError;
use crate::protocol::error_code as code;
use crate::protocol::groups::{
    self, FetchTopics, FetchedGroup, FetchedOffset, FindCoordinatorRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use crate::protocol::membership::{
    self, DescribedGroup, GroupsRequest, ListGroupsRequest, ListedGroup,
};
use bytes::BytesMut;
use tokio::sync::watch;

impl Broker {
    /// Writes the coordinator's queued group changes (stable generations, emptied groups) to
    /// `__consumer_offsets` as they come, until `stop`; then once more, so that a clean
    /// shutdown stores the last generations.
    pub async fn store_groups(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                () = self.coordinator.unstored_changes() => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
            let changes: Vec<(String, Option<Vec<u8>>)> = self
                .coordinator
                .take_unstored()
                .into_iter()
                .map(|(group, change)| match change {
                    Change::Stable(snapshot) => (group, Some(snapshot.encode())),
                    Change::Emptied => (group, None),
                })
                .collect();
            let count = changes.len();
            if count > 0
                && let Err(e) = self.offsets.store_groups(changes).await
            {
                // The groups carry on; after a restart they would rejoin instead.
                tracing::warn!(error = %e, groups = count, "storing group generations failed");
            }
            if stopping {
                return;
            }
        }
    }

    /// FindCoordinator: this broker, for every group; transactional ids are not supported.
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
        let answers: Vec<groups::Coordinator<'_>> = request
            .keys
            .iter()
            .map(|key| {
                if request.key_type != 0 {
                    (
                        key.as_str(),
                        code::COORDINATOR_NOT_AVAILABLE,
                        Some("transactions are not supported"),
                        (-1, "", -1),
                    )
                } else if key.is_empty() {
                    (key.as_str(), code::INVALID_GROUP_ID, None, (-1, "", -1))
                } else {
                    (key.as_str(), code::NONE, None, node)
                }
            })
            .collect();
        groups::find_coordinator_response(buf, version, &answers);
    }

    /// OffsetCommit: checked against the group's generation, stored durably, then answered.
    pub async fn offset_commit(
        &self,
        version: i16,
        request: &OffsetCommitRequest,
        buf: &mut BytesMut,
    ) {
        let error = if request.group_id.is_empty() {
            code::INVALID_GROUP_ID
        } else if let Err(error) = self.coordinator.check_commit(
            &request.group_id,
            (&request.member_id, request.group_instance_id.as_deref()),
            request.generation_id,
        ) {
            error
        } else {
            self.store_commits(request).await
        };
        let answer: Vec<(String, Vec<(i32, i16)>)> = request
            .topics
            .iter()
            .map(|(name, partitions)| {
                (
                    name.clone(),
                    partitions.iter().map(|p| (p.0, error)).collect(),
                )
            })
            .collect();
        groups::offset_commit_response(buf, version, &answer);
    }

    async fn store_commits(&self, request: &OffsetCommitRequest) -> i16 {
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
    }

    /// OffsetFetch: per group, the committed offsets asked for (-1 where none), or every one
    /// the group committed.
    pub fn offset_fetch(&self, version: i16, request: &OffsetFetchRequest, buf: &mut BytesMut) {
        let answers: Vec<FetchedGroup> = request
            .groups
            .iter()
            .map(|(group_id, topics)| {
                (group_id.clone(), self.fetched(group_id, topics), code::NONE)
            })
            .collect();
        groups::offset_fetch_response(buf, version, &answers);
    }

    fn fetched(&self, group_id: &str, topics: &FetchTopics) -> Vec<(String, Vec<FetchedOffset>)> {
        if let Some(topics) = topics {
            return topics
                .iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions
                        .iter()
                        .map(|&index| {
                            let (offset, metadata) = self
                                .offsets
                                .fetch(group_id, topic, index)
                                .unwrap_or((-1, Some(String::new())));
                            (index, offset, metadata, code::NONE)
                        })
                        .collect();
                    (topic.clone(), fetched)
                })
                .collect();
        }
        let mut by_topic: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
        for (topic, index, offset, metadata) in self.offsets.of_group(group_id) {
            match by_topic.last_mut() {
                Some((name, partitions)) if *name == topic => {
                    partitions.push((index, offset, metadata, code::NONE));
                }
                _ => by_topic.push((topic, vec![(index, offset, metadata, code::NONE)])),
            }
        }
        by_topic
    }

    /// ListGroups: the groups with members, and those known only by their committed offsets
    /// (Empty), filtered by state (v4+).
    pub fn list_groups(&self, version: i16, request: &ListGroupsRequest, buf: &mut BytesMut) {
        let mut listed: Vec<ListedGroup> = self.coordinator.list();
        for group_id in self.offsets.groups() {
            if !listed.iter().any(|(id, _, _)| *id == group_id) {
                listed.push((group_id, String::new(), "Empty"));
            }
        }
        let filter = &request.states_filter;
        listed.retain(|(_, _, state)| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(state))
        });
        listed.sort();
        membership::list_groups_response(buf, version, code::NONE, &listed);
    }

    /// DescribeGroups: members and assignments of groups with members; a group known only by
    /// its offsets is Empty; an unknown one is Dead (Kafka's answer before v6).
    pub fn describe_groups(&self, version: i16, request: &GroupsRequest, buf: &mut BytesMut) {
        let described: Vec<DescribedGroup> = request
            .groups
            .iter()
            .map(|group_id| {
                self.coordinator.describe(group_id).unwrap_or_else(|| {
                    let state = if self.offsets.has_group(group_id) {
                        "Empty"
                    } else {
                        "Dead"
                    };
                    DescribedGroup {
                        error: if group_id.is_empty() {
                            code::INVALID_GROUP_ID
                        } else {
                            code::NONE
                        },
                        group_id: group_id.clone(),
                        state,
                        protocol_type: String::new(),
                        protocol_data: String::new(),
                        members: Vec::new(),
                    }
                })
            })
            .collect();
        membership::describe_groups_response(buf, version, &described);
    }

    /// DeleteGroups: a group without members loses its committed offsets (tombstones in
    /// `__consumer_offsets`, stored durably before the answer).
    pub async fn delete_groups(&self, version: i16, request: &GroupsRequest, buf: &mut BytesMut) {
        let mut results = Vec::with_capacity(request.groups.len());
        for group_id in &request.groups {
            let error = if group_id.is_empty() {
                code::INVALID_GROUP_ID
            } else {
                match self.coordinator.delete(group_id) {
                    Err(error) => error,
                    Ok(held) => match self.offsets.delete_group(group_id).await {
                        Ok(had_offsets) if held || had_offsets => {
                            tracing::info!(group = %group_id, "group deleted");
                            code::NONE
                        }
                        Ok(_) => code::GROUP_ID_NOT_FOUND,
                        Err(e) => kafka_code(&e, true),
                    },
                }
            };
            results.push((group_id.clone(), error));
        }
        membership::delete_groups_response(buf, version, &results);
    }
}
