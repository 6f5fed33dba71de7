//! Compaction on the partition log: planning a cleaning, installing a built one by the swap
//! protocol, the clean point, and finishing a swap a crash interrupted (at open).
//!
//! The swap of a cleaned group based at `b` (replacing the sealed segments `b..end`):
//! 1. every group's `<b>.index.cleaned` and `<b>.timeindex.cleaned` are renamed to `.swap`,
//!    and the directory synced;
//! 2. every group's `<b>.log.cleaned` is renamed to `<b>.log.swap`, and the directory synced:
//!    from here on the swap of that group is decided;
//! 3. the replaced segments' files are removed and the directory synced, then the three
//!    `.swap` files renamed to their segment names (`.log` last), and the directory synced;
//! 4. the clean point is written (atomically).
//!
//! At open (`finish_swaps`, before anything else reads the directory): `.cleaned` files are
//! removed (a cleaning not decided); a `<b>.log.swap` is a decided swap: its end is read from
//! the file (synced before its rename), the segments in `b..end` are removed and the swap files
//! renamed into place; `.swap` index files without a log swap are removed. A crash at any step
//! leaves the old segments or the new ones, never a mix, and every key's last record in
//! either.

use super::PartitionLog;
use crate::compaction::{
    CLEANED_SUFFIX, Cleaned, CompactionPlan, CompactionReport, SWAP_SUFFIX, SegmentRef, suffixed,
};
use crate::disk::{self, Disk, OpenMode};
use crate::error::LogError;
use crate::segment::{self, FileKind, Segment};
use rill_format::clean_point::{self, CLEAN_POINT_FILE, CLEAN_POINT_TEMP_FILE};
use std::path::Path;

const KINDS: [FileKind; 3] = [FileKind::Log, FileKind::OffsetIndex, FileKind::TimeIndex];

impl PartitionLog {
    /// The clean point: everything below it is compacted.
    pub fn clean_point(&self) -> i64 {
        self.clean_point.max(self.log_start_offset)
    }

    /// Bytes of sealed segments below the clean point and from it to the active segment (the
    /// dirty part): what the dirty ratio compares.
    pub fn compaction_bytes(&self) -> (u64, u64) {
        let clean_point = self.clean_point();
        let sealed = self.segments.len().saturating_sub(1);
        let (mut clean, mut dirty) = (0, 0);
        for segment in self.segments.values().take(sealed) {
            if segment.next_offset <= clean_point {
                clean += segment.size_bytes;
            } else {
                dirty += segment.size_bytes;
            }
        }
        (clean, dirty)
    }

    /// Whether the log is compacted and its dirty part reached `min_cleanable_dirty_permille`
    /// of its sealed bytes.
    pub fn needs_compaction(&self) -> bool {
        let (clean, dirty) = self.compaction_bytes();
        self.config.cleanup_policy.compacts()
            && dirty > 0
            && dirty * 1000 >= (clean + dirty) * u64::from(self.config.min_cleanable_dirty_permille)
    }

    /// Plans a cleaning of the sealed segments (see `crate::compaction`), or `None` if there is
    /// nothing dirty. A segment whose seal job is still pending may be cleaned: its cleaned
    /// replacement is trimmed, indexed and synced, which is all the seal would do. Any log may be cleaned this way (`compact_now`);
    /// only compacted ones are cleaned in the background.
    pub fn plan_compaction(&self) -> Result<Option<CompactionPlan>, LogError> {
        self.check_usable()?;
        let sealed = self.segments.len().saturating_sub(1);
        let segments: Vec<SegmentRef> = self
            .segments
            .values()
            .take(sealed)
            .map(|s| SegmentRef {
                base: s.base_offset,
                file: s.log,
                size_bytes: s.size_bytes,
                next_offset: s.next_offset,
            })
            .collect();
        let clean_point = self.clean_point();
        if segments.last().is_none_or(|s| s.next_offset <= clean_point) {
            return Ok(None);
        }
        Ok(Some(CompactionPlan {
            owner: self.id,
            disk: std::sync::Arc::clone(&self.disk),
            dir: self.dir.clone(),
            config: self.config.clone(),
            segments,
            clean_point,
        }))
    }

    /// Installs a built cleaning (the swap protocol of the module documentation). Must run
    /// while no operation uses the partition's files; gives up, removing the cleaned files,
    /// if the segments it replaces changed since it was planned
    /// ([`LogError::CompactionStale`]). A failure mid-swap fail-stops the partition; reopening
    /// finishes the swap.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the cleaned files are handed over: installed or removed, never used again"
    )]
    pub fn install_compaction(&mut self, cleaned: Cleaned) -> Result<CompactionReport, LogError> {
        if cleaned.owner != self.id {
            return Err(LogError::ForeignSync);
        }
        let disk = std::sync::Arc::clone(&self.disk);
        let stale = self.check_idle().is_err()
            || cleaned.groups.iter().flat_map(|g| &g.replaces).any(|r| {
                self.segments.get(&r.base).is_none_or(|s| {
                    s.log != r.file
                        || s.size_bytes != r.size_bytes
                        || s.next_offset != r.next_offset
                })
            });
        if stale {
            discard(disk.as_ref(), &cleaned);
            return Err(LogError::CompactionStale);
        }
        if let Err((op, path, e)) = decide(disk.as_ref(), &cleaned) {
            discard(disk.as_ref(), &cleaned);
            return Err(self.fail(op, path, &e));
        }
        for group in &cleaned.groups {
            for replaced in &group.replaces {
                if let Some(old) = self.segments.remove(&replaced.base) {
                    disk.close(old.log);
                }
                self.index_cache.remove(self.id, replaced.base);
                // Its replacement is synced, trimmed and indexed, under a name the directory
                // sync below makes durable: the seal and name sync it waited for are moot.
                self.unsynced.retain(|b| *b != replaced.base);
                self.pending_seals.retain(|b| *b != replaced.base);
                self.pending_names.retain(|b| *b != replaced.base);
            }
            let bases: Vec<i64> = group.replaces.iter().map(|r| r.base).collect();
            let placed = place(disk.as_ref(), &self.dir, group.base, &bases).and_then(|()| {
                let path = self.dir.join(segment::file_name(group.base, FileKind::Log));
                disk.open_existing_lazily(&path)
                    .map_err(|e| ("open cleaned segment", path, e))
            });
            let (file, _) = match placed {
                Ok(opened) => opened,
                Err((op, path, e)) => return Err(self.fail(op, path, &e)),
            };
            let mut segment =
                Segment::sealed_on_disk(group.base, file, group.size_bytes, group.next_offset, 0);
            segment.indexes = crate::segment::Indexes::Resident(group.indexes.clone());
            self.segments.insert(group.base, segment);
            self.indexes_to_disk(group.base);
        }
        if let Err(e) = disk.sync_dir(&self.dir) {
            let dir = self.dir.clone();
            return Err(self.fail("sync dir", dir, &e));
        }
        self.clean_point = cleaned.clean_point;
        if let Err(e) = write_clean_point(disk.as_ref(), &self.dir, cleaned.clean_point) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing the clean point (the next cleaning starts over)");
        }
        let mut report = cleaned.report;
        report.clean_point = self.clean_point();
        Ok(report)
    }

    /// Lowers the clean point to `offset` when a truncation cut the log below it (as Kafka
    /// truncates the cleaner's checkpoint): batches appended there later are dirty, not taken
    /// for cleaned ones.
    pub(crate) fn lower_clean_point(&mut self, offset: i64) {
        if self.clean_point <= offset {
            return;
        }
        self.clean_point = offset;
        let disk = std::sync::Arc::clone(&self.disk);
        if let Err(e) = write_clean_point(disk.as_ref(), &self.dir, offset) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing the lowered clean point (the next cleaning may skip the batches below the old one)");
        }
    }

    /// Reads the clean point at open (missing or damaged: the log start).
    pub(crate) fn load_clean_point(&mut self) {
        let path = self.dir.join(CLEAN_POINT_FILE);
        let read = disk::read_small_file(self.disk.as_ref(), &path, clean_point::CLEAN_POINT_BYTES);
        self.clean_point = read
            .ok()
            .flatten()
            .and_then(|bytes| clean_point::parse(&bytes).ok())
            .unwrap_or(self.log_start_offset);
    }
}

/// Steps 1 and 2 of the swap: every group's files renamed to `.swap`, indexes first.
fn decide(
    disk: &dyn Disk,
    cleaned: &Cleaned,
) -> Result<(), (&'static str, std::path::PathBuf, std::io::Error)> {
    let dir = cleaned.dir.as_path();
    let rename = |base: i64, kind: FileKind| {
        let from = dir.join(suffixed(base, kind, CLEANED_SUFFIX));
        let to = dir.join(suffixed(base, kind, SWAP_SUFFIX));
        disk.rename(&from, &to).map_err(|e| ("rename", from, e))
    };
    for group in &cleaned.groups {
        rename(group.base, FileKind::OffsetIndex)?;
        rename(group.base, FileKind::TimeIndex)?;
    }
    disk.sync_dir(dir)
        .map_err(|e| ("sync dir", dir.to_path_buf(), e))?;
    for group in &cleaned.groups {
        rename(group.base, FileKind::Log)?;
    }
    disk.sync_dir(dir)
        .map_err(|e| ("sync dir", dir.to_path_buf(), e))
}

/// Step 3 for one group: the replaced segments' files removed, the swap files renamed into
/// place (the log last).
fn place(
    disk: &dyn Disk,
    dir: &Path,
    base: i64,
    replaces: &[i64],
) -> Result<(), (&'static str, std::path::PathBuf, std::io::Error)> {
    for replaced in replaces {
        segment::remove_files(disk, dir, *replaced).map_err(|(p, e)| ("remove", p, e))?;
    }
    // The removals are durable before any swap file takes a segment's name: a crash can
    // never leave the new segment beside old ones it replaces (the swap file, still there,
    // makes the next open finish the job).
    disk.sync_dir(dir)
        .map_err(|e| ("sync dir", dir.to_path_buf(), e))?;
    for kind in [FileKind::OffsetIndex, FileKind::TimeIndex, FileKind::Log] {
        let from = dir.join(suffixed(base, kind, SWAP_SUFFIX));
        let to = dir.join(segment::file_name(base, kind));
        match disk.rename(&from, &to) {
            Ok(()) => {}
            // An index swap may be missing after a crash (open then rebuilds the index).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && kind != FileKind::Log => {}
            Err(e) => return Err(("rename", from, e)),
        }
    }
    Ok(())
}

/// Removes a cleaning's files that were not swapped in.
fn discard(disk: &dyn Disk, cleaned: &Cleaned) {
    for group in &cleaned.groups {
        for kind in KINDS {
            let _ = disk.remove_file(&cleaned.dir.join(suffixed(group.base, kind, CLEANED_SUFFIX)));
        }
    }
}

fn write_clean_point(disk: &dyn Disk, dir: &Path, clean_point: i64) -> std::io::Result<()> {
    let bytes = clean_point::encode(clean_point);
    disk::write_file_atomically(disk, dir, CLEAN_POINT_FILE, CLEAN_POINT_TEMP_FILE, &bytes)
        .map_err(|(_, _, e)| e)
}

/// At open, before the directory is read for segments: removes undecided cleanings and
/// finishes decided swaps. Returns whether anything changed.
pub(crate) fn finish_swaps(
    disk: &dyn Disk,
    dir: &Path,
    names: &[String],
    config: &crate::config::LogConfig,
) -> Result<bool, LogError> {
    let mut changed = false;
    let mut log_swaps = Vec::new();
    for name in names {
        if name.ends_with(CLEANED_SUFFIX) || name == CLEAN_POINT_TEMP_FILE {
            remove(disk, &dir.join(name))?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX)
            && let Some((base, kind)) = segment::parse_file_name(stem)
        {
            let decided = kind == FileKind::Log
                || names.contains(&format!(
                    "{}{SWAP_SUFFIX}",
                    segment::file_name(base, FileKind::Log)
                ));
            if kind == FileKind::Log {
                log_swaps.push(base);
            } else if !decided {
                remove(disk, &dir.join(name))?;
                changed = true;
            }
        }
    }
    for base in log_swaps {
        let path = dir.join(suffixed(base, FileKind::Log, SWAP_SUFFIX));
        let end = swap_end(disk, &path, base, config)?;
        let replaced: Vec<i64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n))
            .filter(|(b, kind)| *kind == FileKind::Log && *b >= base && *b < end)
            .map(|(b, _)| b)
            .collect();
        place(disk, dir, base, &replaced).map_err(|(op, p, e)| LogError::io(op, p, e))?;
        changed = true;
    }
    if changed {
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("sync dir", dir, e))?;
    }
    Ok(changed)
}

/// The offset after the last batch of a swap file, which was synced before its rename: a
/// file that does not scan whole to its end is damage.
fn swap_end(
    disk: &dyn Disk,
    path: &Path,
    base: i64,
    config: &crate::config::LogConfig,
) -> Result<i64, LogError> {
    let file = disk
        .open(path, OpenMode::Existing)
        .map_err(|e| LogError::io("open", path, e))?;
    let len = disk.file_len(file);
    let result = len.map(|len| {
        (
            len,
            crate::scan::rebuild_segment(disk, file, base, len, config, 0),
        )
    });
    disk.close(file);
    let (len, rebuilt) = result.map_err(|e| LogError::io("stat", path, e))?;
    if let Some(stop) = rebuilt.stop {
        return Err(LogError::corrupt(
            path.to_path_buf(),
            stop.position..stop.damage_end,
            rebuilt.segment.next_offset,
            format!(
                "a decided compaction's swap file is damaged: {}",
                stop.detail
            ),
        ));
    }
    debug_assert_eq!(rebuilt.segment.size_bytes, len);
    Ok(rebuilt.segment.next_offset)
}

fn remove(disk: &dyn Disk, path: &Path) -> Result<(), LogError> {
    match disk.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove", path, e)),
    }
}
