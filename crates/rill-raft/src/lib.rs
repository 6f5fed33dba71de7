//! # rill-raft
//!
//! Replicated rill partitions on [openraft](https://docs.rs/openraft/0.9.25): a Raft log kept
//! in a rill partition ([`LogStore`], openraft's `RaftLogStorage`), and the state machine of a
//! partition replicated that way ([`StateMachine`]).
//!
//! Each entry of the Raft log is one batch of the partition, the entry's term in the batch's
//! `partitionLeaderEpoch` (as Kafka's KRaft stores its log) and its index in a header of the
//! first record, so a replicated partition is still a rill partition that every reader of
//! Kafka's format understands. A normal entry is a batch of data records (one client append,
//! or several proposed together: one entry, one fdatasync per replica); Raft's own entries
//! (blank, membership) are control records, which Kafka's consumers skip. See
//! `docs/ARCHITECTURE.md`, "Replicated partitions", and `docs/FORMAT.md` §13.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use rill::{Config, Log};
//! let (log, _) = Log::open(Config::new("/var/lib/node-1/data"))?;
//! log.create_topic_with("replicated", 1, &rill_raft::topic_config())?;
//! let state_dir = std::path::Path::new("/var/lib/node-1/raft");
//! let state_machine = rill_raft::StateMachine::open(state_dir)?;
//! let store = rill_raft::LogStore::open(log.partition("replicated", 0)?, state_dir)
//!     .await?
//!     .purge_only_below(state_machine.durable_snapshot());
//! // openraft::Raft::new(node_id, config, network, store, state_machine).await?
//! # Ok(()) }
//! ```

mod codec;
mod error;
mod files;
mod log_index;
mod log_store;
mod meta;
mod reading;
mod state_machine;
mod types;

pub use codec::{
    BLANK_CONTROL_TYPE, INDEX_HEADER_KEY, MAX_TERM, MEMBERSHIP_CONTROL_TYPE, batch_bound,
    check_records, records_bound,
};
pub use error::Error;
pub use log_index::MAX_RECENT_ENTRIES;
pub use log_store::{LogStore, topic_config};
pub use meta::META_FILE;
pub use openraft;
pub use reading::{LogReader, MAX_APPEND_ENTRIES_BYTES};
pub use state_machine::{
    AppliedState, MAX_SNAPSHOT_BYTES, SNAPSHOT_FILE, SnapshotBuilder, SnapshotPoint, StateMachine,
};
pub use types::{
    Applied, Entry, LogId, Membership, Record, RecordHeader, Records, StorageError,
    StoredMembership, TypeConfig, Vote,
};
