//! The Raft state's small files, through `rill-disk`'s helpers on the real disk: replaced whole
//! (temporary file, fdatasync, rename, directory fsync: a crash leaves the old file or the new
//! one), read whole with a bound, and their directory created durably. Blocking: callers run
//! the writes under `spawn_blocking`.

use crate::error::Error;
use rill_disk::StdDisk;
use std::path::Path;

/// Why a state file's bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// Damaged: what is wrong.
    Damaged(String),
    /// Whole, in the layout of another version (this one's is `supported`).
    Version { version: u16, supported: u16 },
}

impl Undecodable {
    /// As the crate's error about `dir/name`.
    pub(crate) fn at(self, dir: &Path, name: &str) -> Error {
        let path = dir.join(name);
        match self {
            Self::Damaged(detail) => Error::CorruptState { path, detail },
            Self::Version { version, supported } => Error::UnsupportedVersion {
                path,
                version,
                supported,
            },
        }
    }
}

impl From<&str> for Undecodable {
    fn from(detail: &str) -> Self {
        Self::Damaged(detail.into())
    }
}

impl From<String> for Undecodable {
    fn from(detail: String) -> Self {
        Self::Damaged(detail)
    }
}

/// Replaces `dir/name` with `bytes`, durably.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let temp = format!("{name}.tmp");
    rill_disk::write_file_atomically(&StdDisk::new(), dir, name, &temp, bytes)
        .map_err(|(op, path, e)| Error::io(op, path, e))
}

/// Reads `dir/name` whole if it exists (at most `max_bytes` + 1 bytes: a longer file comes
/// back longer than `max_bytes`, and the caller's decoder refuses it).
pub(crate) fn read_if_present(
    dir: &Path,
    name: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, Error> {
    let path = dir.join(name);
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    rill_disk::read_small_file(&StdDisk::new(), &path, max).map_err(|e| Error::io("read", path, e))
}

/// Creates `dir` (and missing parents) with every new entry durable, so a power cut cannot
/// lose the vote written into it.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<(), Error> {
    rill_disk::create_dir_durably(&StdDisk::new(), dir).map_err(|e| Error::io("create dir", dir, e))
}
