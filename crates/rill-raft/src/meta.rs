//! The Raft state beside the log: the vote, the last committed log id and the last purged log
//! id, in one 64-byte file written atomically (a temporary file, fdatasync, rename, directory
//! fsync: module `files`). The layout (big-endian), also in docs/FORMAT.md:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `RILLRAFT` |
//! | 8 | 2 | version, 2 (the layout of the state and of the entries, FORMAT.md §13) |
//! | 10 | 2 | flags: 1 vote, 2 voted_for, 4 vote committed, 8 committed, 16 purged |
//! | 12 | 8 | vote term |
//! | 20 | 8 | voted_for (node id) |
//! | 28 | 8 | committed term |
//! | 36 | 8 | committed index |
//! | 44 | 8 | purged term |
//! | 52 | 8 | purged index |
//! | 60 | 4 | CRC-32C of bytes 0..60 |
//!
//! Fields whose flag is clear are zero. A file that fails its checks is an error, never
//! "no vote": a node that forgot its vote could vote twice in one term. The version names the
//! layout of the whole Raft state, entries included: version 1 stored one record per entry,
//! at offset = index, and is refused (`Error::UnsupportedVersion`) rather than misread.

use crate::codec::log_id;
use crate::error::Error;
use crate::files::Undecodable;
use crate::types::{LogId, Vote};
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const META_FILE: &str = "raft-meta";
const MAGIC: &[u8; 8] = b"RILLRAFT";
/// 2: entries are batches of any number of records, their index in a header; 1 (refused):
/// one record per entry, its offset the index.
const VERSION: u16 = 2;
const META_BYTES: usize = 64;
const CRC_AT: usize = 60;

const HAS_VOTE: u16 = 1;
const HAS_VOTED_FOR: u16 = 2;
const VOTE_COMMITTED: u16 = 4;
const HAS_COMMITTED: u16 = 8;
const HAS_PURGED: u16 = 16;
const KNOWN_FLAGS: u16 = HAS_VOTE | HAS_VOTED_FOR | VOTE_COMMITTED | HAS_COMMITTED | HAS_PURGED;

/// What the file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// The last vote saved.
    pub vote: Option<Vote>,
    /// The last committed log id saved (it may lag the real one: see `log_store`).
    pub committed: Option<LogId>,
    /// The last log id purged (every entry up to it is gone).
    pub purged: Option<LogId>,
}

impl Meta {
    /// The file's bytes.
    pub fn encode(&self) -> [u8; META_BYTES] {
        let mut out = [0u8; META_BYTES];
        out[..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_be_bytes());
        let mut flags = 0u16;
        if let Some(vote) = &self.vote {
            flags |= HAS_VOTE;
            out[12..20].copy_from_slice(&vote.leader_id.term.to_be_bytes());
            if let Some(node) = vote.leader_id.voted_for {
                flags |= HAS_VOTED_FOR;
                out[20..28].copy_from_slice(&node.to_be_bytes());
            }
            if vote.committed {
                flags |= VOTE_COMMITTED;
            }
        }
        if let Some(c) = &self.committed {
            flags |= HAS_COMMITTED;
            out[28..36].copy_from_slice(&c.leader_id.term.to_be_bytes());
            out[36..44].copy_from_slice(&c.index.to_be_bytes());
        }
        if let Some(p) = &self.purged {
            flags |= HAS_PURGED;
            out[44..52].copy_from_slice(&p.leader_id.term.to_be_bytes());
            out[52..60].copy_from_slice(&p.index.to_be_bytes());
        }
        out[10..12].copy_from_slice(&flags.to_be_bytes());
        let crc = crc32c::crc32c(&out[..CRC_AT]);
        out[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads the file's bytes; `Err` with what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Undecodable> {
        if bytes.len() != META_BYTES {
            return Err(format!("{} bytes, expected {META_BYTES}", bytes.len()).into());
        }
        let crc = u32::from_be_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        if crc32c::crc32c(&bytes[..CRC_AT]) != crc {
            return Err("checksum mismatch".into());
        }
        if &bytes[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(Undecodable::Version {
                version,
                supported: VERSION,
            });
        }
        let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("unknown flags {flags:#x}").into());
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let vote = (flags & HAS_VOTE != 0).then(|| {
            let term = u64_at(12);
            let mut vote = match (flags & HAS_VOTED_FOR != 0).then(|| u64_at(20)) {
                Some(node) => Vote::new(term, node),
                None => Vote::default(),
            };
            vote.leader_id.term = term;
            vote.committed = flags & VOTE_COMMITTED != 0;
            vote
        });
        Ok(Self {
            vote,
            committed: (flags & HAS_COMMITTED != 0).then(|| log_id(u64_at(28), u64_at(36))),
            purged: (flags & HAS_PURGED != 0).then(|| log_id(u64_at(44), u64_at(52))),
        })
    }
}

/// The file in its directory.
#[derive(Debug)]
pub struct MetaFile {
    dir: PathBuf,
}

impl MetaFile {
    /// The file of `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self, Error> {
        crate::files::create_dir_durably(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Reads the file; the default (nothing saved) when there is none.
    pub fn read(&self) -> Result<Meta, Error> {
        match crate::files::read_if_present(&self.dir, META_FILE, META_BYTES as u64)? {
            Some(bytes) => Meta::decode(&bytes).map_err(|e| e.at(&self.dir, META_FILE)),
            None => Ok(Meta::default()),
        }
    }

    /// Replaces the file with `meta`, durably, before returning. Blocking: call it where a
    /// blocking call is allowed (`spawn_blocking`).
    pub fn write(&self, meta: &Meta) -> Result<(), Error> {
        crate::files::write_atomically(&self.dir, META_FILE, &meta.encode())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn every_field_round_trips_and_damage_is_an_error() {
        let mut vote = Vote::new(7, 3);
        vote.committed = true;
        let metas = [
            Meta::default(),
            Meta {
                vote: Some(vote),
                committed: Some(log_id(6, 1000)),
                purged: Some(log_id(2, 10)),
            },
            Meta {
                vote: Some(Vote::default()),
                committed: None,
                purged: Some(log_id(0, 0)),
            },
        ];
        for meta in metas {
            let bytes = meta.encode();
            assert_eq!(Meta::decode(&bytes).unwrap(), meta);
            for byte in 0..META_BYTES {
                let mut damaged = bytes;
                damaged[byte] ^= 0x10;
                assert!(Meta::decode(&damaged).is_err(), "byte {byte}");
            }
            assert!(Meta::decode(&bytes[..63]).is_err());
        }
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = MetaFile::new(dir.path()).unwrap();
        assert_eq!(file.read().unwrap(), Meta::default());
        let meta = Meta {
            vote: Some(Vote::new(1, 2)),
            committed: None,
            purged: None,
        };
        file.write(&meta).unwrap();
        assert_eq!(file.read().unwrap(), meta);
        std::fs::write(dir.path().join(META_FILE), b"short").unwrap();
        assert!(matches!(file.read(), Err(Error::CorruptState { .. })));
        // A whole file of the earlier layout (version 1) is refused as such.
        let mut old = meta.encode();
        old[8..10].copy_from_slice(&1u16.to_be_bytes());
        let crc = crc32c::crc32c(&old[..CRC_AT]);
        old[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(dir.path().join(META_FILE), old).unwrap();
        let read = file.read();
        assert!(
            matches!(
                read,
                Err(Error::UnsupportedVersion {
                    version: 1,
                    supported: 2,
                    ..
                })
            ),
            "{read:?}"
        );
    }
}
