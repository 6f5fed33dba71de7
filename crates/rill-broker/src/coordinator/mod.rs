//! The group coordinator: every consumer group's membership (`group.rs`), held in memory
//! behind one lock, and the timer that expires sessions and ends rebalances.
//!
//! Each stable generation of a group (members, assignments) is stored in `__consumer_offsets`
//! beside the committed offsets, as Kafka stores its group metadata (`snapshot.rs`,
//! `group_persist.rs`): after a broker restart the group is back in that generation and its
//! members carry on (heartbeats and commits accepted) without a rebalance. The changes are
//! queued here, one per group (the latest wins), for the broker's writer task
//! (`Broker::store_groups`), so no request waits for the write.

pub mod group;
pub mod snapshot;

use crate::protocol::error_code as code;
use crate::protocol::membership::{DescribedGroup, JoinGroupResponse, SyncGroupResponse};
use group::{Change, Group, Join, Reply, Rules, State};
use parking_lot::Mutex;
use snapshot::GroupSnapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often sessions and rebalance deadlines are checked: the precision of every group
/// timeout (sessions are seconds long).
pub const TICK: Duration = Duration::from_millis(100);

/// The coordinator's bounds and Kafka's `group.*` settings.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorConfig {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
    /// Members of one group at most (Kafka's `group.max.size`).
    pub max_group_size: usize,
    /// Groups with members at most: what clients can make the broker hold.
    pub max_groups: usize,
    /// Bytes of member metadata and assignments held over all groups at most.
    pub max_held_bytes: usize,
}

/// Every group with members (or member ids handed out).
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    groups: Mutex<HashMap<String, Group>>,
    /// Bytes held for members over all groups (`Group::held_bytes`, summed).
    held_bytes: std::sync::atomic::AtomicUsize,
    /// Stored-copy changes not written yet, by group (bounded by the groups held).
    unstored: Mutex<HashMap<String, Change>>,
    /// Wakes the writer when `unstored` gains a change.
    stored_wanted: tokio::sync::Notify,
    /// Member ids: `<client id>-<boot>-<n>`, unique across restarts of the broker.
    boot: u64,
    next_member: AtomicU64,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            config,
            groups: Mutex::new(HashMap::new()),
            held_bytes: std::sync::atomic::AtomicUsize::new(0),
            unstored: Mutex::new(HashMap::new()),
            stored_wanted: tokio::sync::Notify::new(),
            boot,
            next_member: AtomicU64::new(1),
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            initial_rebalance_delay: self.config.initial_rebalance_delay,
            max_group_size: self.config.max_group_size,
        }
    }

    /// After a call changed `group`: counts its held bytes, and queues what its stored copy
    /// needs. Called with the groups' lock held, so the count is exact.
    fn collect(&self, group_id: &str, group: &mut Group) {
        let (before, after) = group.account();
        if after >= before {
            self.held_bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held_bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
        if let Some(change) = group.take_change() {
            self.unstored.lock().insert(group_id.to_owned(), change);
            self.stored_wanted.notify_one();
        }
    }

    /// The changes to store, taken (the writer stores them).
    pub fn take_unstored(&self) -> Vec<(String, Change)> {
        self.unstored.lock().drain().collect()
    }

    /// Resolves when there may be changes to store.
    pub async fn unstored_changes(&self) {
        self.stored_wanted.notified().await;
    }

    /// A group as it was stored, at start (before any request).
    pub fn restore(&self, group_id: &str, snapshot: GroupSnapshot) {
        let mut group = Group::restore(snapshot, Instant::now());
        if group.state() == State::Stable {
            let mut groups = self.groups.lock();
            self.collect(group_id, &mut group);
            groups.insert(group_id.to_owned(), group);
        }
    }

    /// Whether `incoming` more bytes fit the bound on what all groups hold.
    fn fits(&self, incoming: usize) -> bool {
        let held = self.held_bytes.load(Ordering::Relaxed);
        let fits = held.saturating_add(incoming) <= self.config.max_held_bytes;
        if !fits {
            tracing::warn!(
                held,
                incoming,
                max = self.config.max_held_bytes,
                "refusing group metadata: the coordinator holds its limit of bytes"
            );
        }
        fits
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        // Client ids are the client's to choose; a member id stays short.
        let prefix: String = client_id.chars().take(64).collect();
        format!("{prefix}-{:x}-{n}", self.boot)
    }

    /// JoinGroup.
    pub fn join(&self, group_id: &str, join: Join) -> Reply<JoinGroupResponse> {
        let refuse = |error| Reply::Now(JoinGroupResponse::error(error, &join.member_id));
        if group_id.is_empty() {
            return refuse(code::INVALID_GROUP_ID);
        }
        let session = join.session_timeout;
        if session < self.config.min_session_timeout || session > self.config.max_session_timeout {
            return refuse(code::INVALID_SESSION_TIMEOUT);
        }
        let incoming: usize = join
            .protocols
            .iter()
            .map(|p| p.name.len() + p.metadata.len())
            .sum();
        let mut groups = self.groups.lock();
        if !self.fits(incoming) {
            return refuse(code::COORDINATOR_NOT_AVAILABLE);
        }
        if !groups.contains_key(group_id) {
            if !join.member_id.is_empty() {
                return refuse(code::UNKNOWN_MEMBER_ID);
            }
            if groups.len() >= self.config.max_groups {
                tracing::warn!(
                    group = group_id,
                    max = self.config.max_groups,
                    "refusing a new group: the coordinator holds its limit of groups"
                );
                return refuse(code::COORDINATOR_NOT_AVAILABLE);
            }
        }
        let client_id = join.client_id.clone();
        let rules = self.rules();
        let group = groups.entry(group_id.to_owned()).or_default();
        let reply = group.join(
            join,
            || self.new_member_id(&client_id),
            &rules,
            Instant::now(),
        );
        self.collect(group_id, group);
        reply
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member: (&str, Option<&str>),
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Vec<u8>)>,
    ) -> Reply<SyncGroupResponse> {
        let incoming: usize = assignments.iter().map(|(id, a)| id.len() + a.len()).sum();
        let mut groups = self.groups.lock();
        if !self.fits(incoming) {
            return Reply::Now(SyncGroupResponse::error(code::COORDINATOR_NOT_AVAILABLE));
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncGroupResponse::error(code::UNKNOWN_MEMBER_ID));
        };
        let (member_id, instance) = member;
        let reply = group.sync(
            member_id,
            instance,
            generation,
            protocol,
            assignments,
            Instant::now(),
        );
        self.collect(group_id, group);
        reply
    }

    /// Heartbeat: an error code.
    pub fn heartbeat(&self, group_id: &str, member: (&str, Option<&str>), generation: i32) -> i16 {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member.0, member.1, generation, Instant::now()),
            None => code::UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup of one member: an error code.
    pub fn leave(&self, group_id: &str, member: (&str, Option<&str>)) -> i16 {
        let rules = self.rules();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        let error = group.leave(member.0, member.1, &rules, Instant::now());
        self.collect(group_id, group);
        error
    }

    /// Whether an OffsetCommit of this member and generation may be stored.
    pub fn check_commit(
        &self,
        group_id: &str,
        member: (&str, Option<&str>),
        generation: i32,
    ) -> Result<(), i16> {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            Some(group) => group.check_commit(member.0, member.1, generation, Instant::now()),
            None if generation < 0 => Ok(()),
            None => Err(code::UNKNOWN_MEMBER_ID),
        }
    }

    /// The groups held: (group id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.list_with_members()
            .into_iter()
            .map(|(id, protocol_type, state, _)| (id, protocol_type, state))
            .collect()
    }

    /// The groups held, with their member counts.
    pub fn list_with_members(&self) -> Vec<(String, String, &'static str, usize)> {
        let mut listed: Vec<_> = self
            .groups
            .lock()
            .iter()
            .map(|(id, g)| {
                let protocol_type = g.protocol_type().unwrap_or_default().to_owned();
                (
                    id.clone(),
                    protocol_type,
                    g.state().name(),
                    g.member_count(),
                )
            })
            .collect();
        listed.sort();
        listed
    }

    /// A group with members, described.
    pub fn describe(&self, group_id: &str) -> Option<DescribedGroup> {
        self.groups
            .lock()
            .get(group_id)
            .map(|g| g.describe(group_id))
    }

    /// DeleteGroups' part here: a group without members is forgotten (whether it was held);
    /// one with members is refused with NON_EMPTY_GROUP.
    pub fn delete(&self, group_id: &str) -> Result<bool, i16> {
        let mut groups = self.groups.lock();
        match groups.get(group_id) {
            Some(group) if !group.is_idle() => Err(code::NON_EMPTY_GROUP),
            Some(_) => {
                groups.remove(group_id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Time passing for every group; idle groups are dropped (their offsets stay stored).
    /// Bounded by the groups held (`max_groups`), each by its members.
    pub fn tick(&self, now: Instant) {
        let rules = self.rules();
        let mut groups = self.groups.lock();
        for (group_id, group) in groups.iter_mut() {
            // Time changes a group only by ending a rebalance or removing members or lapsed
            // ids; most ticks change nothing, and then there is nothing to count or store.
            let before = group.outline();
            for member in group.tick(&rules, now) {
                tracing::info!(group = %group_id, member = %member, "member removed: session or sync timeout");
            }
            if group.outline() != before {
                self.collect(group_id, group);
            }
        }
        groups.retain(|_, g| !(g.is_idle() && g.state() == State::Empty));
    }

    /// Runs [`Self::tick`] every [`TICK`] until the task is dropped.
    pub async fn run_timer(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.tick(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
    use super::*;
    use crate::protocol::membership::ProtocolMetadata;

    fn join(member_id: &str, metadata_bytes: usize) -> Join {
        Join {
            member_id: member_id.to_owned(),
            instance_id: None,
            client_id: "c".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".to_owned(),
            protocols: vec![ProtocolMetadata {
                name: "range".to_owned(),
                metadata: vec![0; metadata_bytes],
            }],
            require_known_member_id: false,
        }
    }

    #[test]
    fn what_groups_hold_is_bounded_and_released_when_members_leave() {
        let coordinator = Coordinator::new(CoordinatorConfig {
            min_session_timeout: Duration::from_secs(1),
            max_session_timeout: Duration::from_mins(1),
            initial_rebalance_delay: Duration::ZERO,
            max_group_size: 10,
            max_groups: 10,
            max_held_bytes: 10_000,
        });
        let Reply::Wait(mut rx) = coordinator.join("g", join("", 6_000)) else {
            panic!("a first member joins")
        };
        let member = rx.try_recv().unwrap().member_id;
        assert!(coordinator.held_bytes.load(Ordering::Relaxed) >= 6_000);
        // Another 6,000 bytes would pass the bound: refused, retriably, and nothing held.
        let Reply::Now(refused) = coordinator.join("h", join("", 6_000)) else {
            panic!("refused at once")
        };
        assert_eq!(refused.error, code::COORDINATOR_NOT_AVAILABLE);
        assert!(coordinator.list().iter().all(|(id, _, _)| id != "h"));
        assert_eq!(coordinator.leave("g", (&member, None)), code::NONE);
        assert_eq!(coordinator.held_bytes.load(Ordering::Relaxed), 0);
        assert!(matches!(
            coordinator.join("h", join("", 6_000)),
            Reply::Wait(_)
        ));
    }
}
