//! A replicated partition's state machine. The partition is the data: applying a committed
//! entry only moves the applied state (the last applied log id, the membership, the offset
//! after the last applied entry, the count of records applied), which is what a reader of
//! committed data needs, and what a snapshot holds.
//!
//! Snapshots are persisted, the state is not (openraft's "persistent snapshot" way): a
//! restarted node starts from its last snapshot and openraft applies the log after it again
//! (up to the committed log id the log store saved). The snapshot file (`raft-snapshot`):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `RILLSNAP` |
//! | 8 | 2 | version, 2 (u16, big-endian; a file from before versions reads as 0, refused) |
//! | 10 | 4 | length *m* of the metadata (u32, big-endian) |
//! | 14 | 4 | length *d* of the data |
//! | 18 | *m* | openraft's `SnapshotMeta`, JSON |
//! | 18 + *m* | *d* | the data: an [`AppliedState`], JSON |
//! | 18 + *m* + *d* | 4 | CRC-32C of everything before it |

use crate::error::{Error, storage};
use crate::files::{self, Undecodable};
use crate::types::{Applied, Entry, LogId, StorageError, StoredMembership, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// The snapshot file's name in the state directory.
pub const SNAPSHOT_FILE: &str = "raft-snapshot";
const MAGIC: &[u8; 8] = b"RILLSNAP";
/// 2: [`AppliedState::next_offset`] is the offset after the last applied entry's batch
/// (entries are batches of records); files without a version held one offset per entry.
const VERSION: u16 = 2;
/// Magic, version and the two lengths.
const HEADER_BYTES: usize = 18;
/// The largest snapshot accepted (from a leader or on disk). Ours take a few hundred bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 20;

/// What applying committed entries has produced: the state a snapshot carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The last entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
    /// The offset after the last applied entry's batch: every entry takes as many offsets as
    /// it has records (Raft's own entries, one control record each, take one).
    pub next_offset: u64,
    /// Data records applied since the log began.
    pub records: u64,
}

impl AppliedState {
    /// The offset after the last applied entry: reads of committed data stop there.
    pub fn committed_offset(&self) -> u64 {
        self.next_offset
    }
}

/// A durable snapshot's end: its last log id, and the offset the entry after it starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPoint {
    /// The last entry the snapshot holds.
    pub last_log_id: Option<LogId>,
    /// [`AppliedState::next_offset`] of the snapshot.
    pub next_offset: u64,
}

type Meta = SnapshotMeta<u64, openraft::BasicNode>;

fn encode_snapshot(meta: &Meta, data: &[u8]) -> Result<Vec<u8>, Error> {
    let meta_json = serde_json::to_vec(meta)?;
    let mut out = Vec::with_capacity(HEADER_BYTES + meta_json.len() + data.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(meta_json.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta_json);
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_snapshot(bytes: &[u8]) -> Result<(Meta, Vec<u8>), Undecodable> {
    let (body, crc) = bytes
        .split_at_checked(bytes.len().saturating_sub(4))
        .ok_or("too short")?;
    if body.len() < HEADER_BYTES || crc32c::crc32c(body).to_be_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    if &body[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_be_bytes([body[8], body[9]]);
    if version != VERSION {
        return Err(Undecodable::Version {
            version,
            supported: VERSION,
        });
    }
    let u32_at =
        |at: usize| u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let (meta_len, data_len) = (u32_at(10) as usize, u32_at(14) as usize);
    if HEADER_BYTES + meta_len + data_len != body.len() {
        return Err("lengths do not match the file".into());
    }
    let meta_end = HEADER_BYTES + meta_len;
    let meta = serde_json::from_slice(&body[HEADER_BYTES..meta_end]).map_err(|e| e.to_string())?;
    Ok((meta, body[meta_end..].to_vec()))
}

/// The snapshot file of a state directory. Writes are serialized (a snapshot built on the
/// state machine's worker may race one being installed), and a snapshot never replaces a
/// newer one.
#[derive(Debug)]
struct SnapshotFile {
    dir: PathBuf,
    /// The end of the snapshot on disk; changes after each durable write.
    durable: watch::Sender<Option<SnapshotPoint>>,
    writing: tokio::sync::Mutex<()>,
}

impl SnapshotFile {
    fn read(&self) -> Result<Option<(Meta, Vec<u8>)>, Error> {
        let max = MAX_SNAPSHOT_BYTES as u64 * 2;
        match files::read_if_present(&self.dir, SNAPSHOT_FILE, max)? {
            Some(bytes) => decode_snapshot(&bytes)
                .map(Some)
                .map_err(|e| e.at(&self.dir, SNAPSHOT_FILE)),
            None => Ok(None),
        }
    }

    /// Writes the snapshot durably, unless the one on disk is newer.
    async fn write(self: &Arc<Self>, meta: &Meta, state: &AppliedState) -> Result<(), Error> {
        let _writing = self.writing.lock().await;
        if self.durable.borrow().and_then(|p| p.last_log_id) > meta.last_log_id {
            return Ok(());
        }
        let data = serde_json::to_vec(state)?;
        let bytes = encode_snapshot(meta, &data)?;
        let file = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            files::write_atomically(&file.dir, SNAPSHOT_FILE, &bytes)
        })
        .await
        .map_err(|e| Error::io("write", SNAPSHOT_FILE, std::io::Error::other(e)))??;
        self.durable.send_replace(Some(SnapshotPoint {
            last_log_id: meta.last_log_id,
            next_offset: state.next_offset,
        }));
        Ok(())
    }

    async fn read_async(self: &Arc<Self>) -> Result<Option<(Meta, Vec<u8>)>, Error> {
        let _writing = self.writing.lock().await;
        let file = Arc::clone(self);
        tokio::task::spawn_blocking(move || file.read())
            .await
            .map_err(|e| Error::io("read", SNAPSHOT_FILE, std::io::Error::other(e)))?
    }
}

fn decode_state(data: &[u8]) -> Result<AppliedState, Error> {
    if data.len() > MAX_SNAPSHOT_BYTES {
        return Err(Error::SnapshotTooLarge {
            bytes: data.len(),
            max: MAX_SNAPSHOT_BYTES,
        });
    }
    Ok(serde_json::from_slice(data)?)
}

/// A replicated partition's state machine. See the module documentation.
#[derive(Debug)]
pub struct StateMachine {
    state: AppliedState,
    file: Arc<SnapshotFile>,
    /// Numbers the snapshots this node builds.
    snapshots_built: Arc<AtomicU64>,
    applied: watch::Sender<AppliedState>,
}

impl StateMachine {
    /// Opens the state machine whose snapshot lives in `state_dir`, starting from that
    /// snapshot (or empty).
    pub fn open(state_dir: &Path) -> Result<Self, Error> {
        files::create_dir_durably(state_dir)?;
        let file = SnapshotFile {
            dir: state_dir.to_path_buf(),
            durable: watch::Sender::new(None),
            writing: tokio::sync::Mutex::new(()),
        };
        let state = match file.read()? {
            Some((meta, data)) => {
                let state = decode_state(&data)?;
                file.durable.send_replace(Some(SnapshotPoint {
                    last_log_id: meta.last_log_id,
                    next_offset: state.next_offset,
                }));
                state
            }
            None => AppliedState::default(),
        };
        let file = Arc::new(file);
        Ok(Self {
            applied: watch::Sender::new(state.clone()),
            state,
            file,
            snapshots_built: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Follows the end of the durable snapshot. Give it to
    /// [`crate::LogStore::purge_only_below`], so that the log is never purged past what a
    /// durable snapshot holds (openraft purges the log when a snapshot is installed, before
    /// the state machine has written it), and an empty log goes on where the snapshot ends.
    pub fn durable_snapshot(&self) -> watch::Receiver<Option<SnapshotPoint>> {
        self.file.durable.subscribe()
    }

    /// Follows the applied state: a reader of committed data reads below its
    /// [`AppliedState::committed_offset`].
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.applied.subscribe()
    }

    fn set_state(&mut self, state: AppliedState) {
        self.state = state;
        self.applied.send_replace(self.state.clone());
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    state: AppliedState,
    file: Arc<SnapshotFile>,
    snapshots_built: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let result = async {
            let data = serde_json::to_vec(&self.state)?;
            let number = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
            let last = self.state.last_applied;
            let meta = Meta {
                last_log_id: last,
                last_membership: self.state.membership.clone(),
                snapshot_id: match last {
                    Some(id) => format!("{}-{}-{number}", id.leader_id.term, id.index),
                    None => format!("none-{number}"),
                },
            };
            self.file.write(&meta, &self.state).await?;
            Ok::<_, Error>(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        }
        .await;
        result.map_err(|e| storage(|e| StorageIOError::write_snapshot(None, e), &e))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.clone();
        let mut answers = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let records = match entry.payload {
                EntryPayload::Blank => 1,
                EntryPayload::Normal(r) => {
                    state.records += r.0.len() as u64;
                    r.0.len() as u64
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    1
                }
            };
            answers.push(Applied {
                base_offset: state.next_offset,
                records,
            });
            state.next_offset += records;
        }
        self.set_state(state);
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            file: Arc::clone(&self.file),
            snapshots_built: Arc::clone(&self.snapshots_built),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let result = async {
            let data = snapshot.into_inner();
            let state = decode_state(&data)?;
            if state.last_applied != meta.last_log_id || state.membership != meta.last_membership {
                return Err(Error::CorruptState {
                    path: PathBuf::from(SNAPSHOT_FILE),
                    detail: format!(
                        "received snapshot {} does not match its metadata",
                        meta.snapshot_id
                    ),
                });
            }
            self.file.write(meta, &state).await?;
            self.set_state(state);
            Ok(())
        }
        .await;
        result.map_err(|e| {
            storage(
                |e| StorageIOError::write_snapshot(Some(meta.signature()), e),
                &e,
            )
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match self.file.read_async().await {
            Ok(found) => Ok(found.map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })),
            Err(e) => Err(storage(|e| StorageIOError::read_snapshot(None, e), &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_snapshot_file_round_trips_and_damage_is_an_error() {
        let meta = Meta {
            last_log_id: Some(crate::codec::log_id(3, 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-9-1".into(),
        };
        let bytes = encode_snapshot(&meta, b"{}").unwrap();
        assert_eq!(decode_snapshot(&bytes).unwrap(), (meta, b"{}".to_vec()));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1;
            assert!(decode_snapshot(&damaged).is_err(), "byte {i}");
        }
        assert!(decode_snapshot(&bytes[..10]).is_err());
    }

    #[test]
    fn a_snapshot_file_from_before_versions_is_refused_as_such() {
        let meta = Meta::default();
        let meta_json = serde_json::to_vec(&meta).unwrap();
        // The earlier layout: magic, the two lengths, the JSON, the CRC.
        let mut old = b"RILLSNAP".to_vec();
        old.extend_from_slice(&(meta_json.len() as u32).to_be_bytes());
        old.extend_from_slice(&2u32.to_be_bytes());
        old.extend_from_slice(&meta_json);
        old.extend_from_slice(b"{}");
        let crc = crc32c::crc32c(&old);
        old.extend_from_slice(&crc.to_be_bytes());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), old).unwrap();
        let opened = StateMachine::open(dir.path());
        assert!(
            matches!(
                opened,
                Err(Error::UnsupportedVersion {
                    version: 0,
                    supported: VERSION,
                    ..
                })
            ),
            "{opened:?}"
        );
    }
}
