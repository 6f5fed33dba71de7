//! Small files replaced whole: written to a temporary name, fdatasynced, renamed over the old
//! one, and the directory fsynced, so a crash leaves the old file or the new one, never a mix.
//! Blocking: callers run these under `spawn_blocking`.

use crate::error::Error;
use std::io::Write;
use std::path::Path;

/// Replaces `dir/name` with `bytes`, durably.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let temp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = std::fs::File::create(&temp).map_err(|e| Error::io("create", &temp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("write", &temp, e))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(|e| Error::io("rename", &path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync dir", dir, e))
}

/// Reads `dir/name` whole if it exists and is at most `max_bytes` long.
pub(crate) fn read_if_present(
    dir: &Path,
    name: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, Error> {
    let path = dir.join(name);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    if len > max_bytes {
        return Err(Error::CorruptState {
            path,
            detail: format!("{len} bytes, at most {max_bytes} expected"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max_bytes), &mut bytes)
        .map_err(|e| Error::io("read", &path, e))?;
    Ok(Some(bytes))
}

/// Creates `dir` (and missing parents) and makes its entry durable: the directory and its
/// parent are fsynced, so a power cut cannot lose the vote written into it.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    let sync = |d: &Path| {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync dir", d, e))
    };
    sync(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync(parent),
        _ => Ok(()),
    }
}
