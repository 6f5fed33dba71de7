//! Opening a partition: load after a clean shutdown, recover after anything else (DESIGN §6).
//!
//! Order of work, each step idempotent so that a crash inside recovery is recovered by running it
//! again: sync the directory and every segment file before trusting what is read; read the
//! checkpoint; delete leftovers (temp checkpoint, orphan indexes, segments below the log
//! start; a prepared next segment stays for the next preparation to replace); then either
//! load (clean shutdown, valid checkpoint, tail consistent) or scan every segment from the one
//! holding the offset just below the recovery point (see `partition::roll` for why), dropping
//! cached pages first so that only durable bytes are validated. Damage at or above the recovery point is a torn tail: truncate it and
//! remove later segments. Damage below it is corruption of acknowledged data: refuse to open,
//! naming the file and byte range, unless repair was asked for. Finally write indexes of
//! rescanned sealed segments and a checkpoint whose recovery point is the recovered end.

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::config::LogConfig;
use crate::disk::{self, Disk, FileId};
use crate::error::{Corruption, LogError};
use crate::index::SegmentBounds;
use crate::index_files::write_index_files;
use crate::partition::{PartitionLog, create_segment, load_index_files, preallocate};
use crate::scan::{self, Scanner, Step};
use crate::segment::{self, FileKind, Indexes, Segment};
use crate::watermark::Watermark;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Truncate at damage below the recovery point (losing acknowledged data from there on)
    /// instead of refusing to open. An explicit operator decision, never a default.
    pub repair: bool,
    /// The current time, for segment ages.
    pub now_ms: i64,
}

/// What the checkpoint looked like at open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CheckpointState {
    /// Valid; the clean-shutdown flag as read.
    Valid {
        /// Whether the previous run shut down cleanly.
        clean_shutdown: bool,
    },
    /// No checkpoint file: everything was scanned.
    #[default]
    Missing,
    /// Damaged: everything was scanned.
    Invalid(CheckpointError),
}

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// The checkpoint as found.
    pub checkpoint: CheckpointState,
    /// Loaded without a scan (clean shutdown, consistent tail).
    pub clean_load: bool,
    /// Segments opened.
    pub segments: usize,
    /// Segments whose batches were all validated.
    pub segments_scanned: usize,
    /// Bytes of batches validated.
    pub bytes_scanned: u64,
    /// Non-zero bytes cut from torn tails (including removed later segments).
    pub bytes_truncated: u64,
    /// Zero bytes cut after the last batch (preallocation or zero-filled crash tails).
    pub zero_tail_bytes: u64,
    /// Segments removed because they followed a torn tail.
    pub segments_removed: usize,
    /// Segments deleted because they lay below the log start offset.
    pub segments_deleted_below_start: usize,
    /// Index files rebuilt from the log (missing, damaged, or of a rescanned segment).
    pub indexes_rebuilt: usize,
    /// Leftover files removed (temp checkpoint, orphan indexes).
    pub leftovers_removed: usize,
    /// Where the torn tail was cut, if anywhere: file, position, and why.
    pub torn_tail: Option<(PathBuf, u64, String)>,
    /// The durable watermark found, if any (it raises the recovery point).
    pub watermark: Option<i64>,
    /// Corruption of acknowledged data that `repair` truncated away.
    pub repaired: Option<Corruption>,
    /// Log start offset after recovery.
    pub log_start_offset: i64,
    /// Log end offset after recovery.
    pub log_end_offset: i64,
    /// Batch headers read to rebuild the idempotent producers' state from its snapshot
    /// (segments known to hold no such batch are skipped unread).
    pub producer_headers_read: u64,
}

fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.into();
    move |e| LogError::io(op, path, e)
}

struct Opened {
    base: i64,
    file: FileId,
    file_len: u64,
}

impl PartitionLog {
    /// Opens (creating if needed) the partition in `dir`, recovering it as described in the
    /// module documentation, and returns it with a report of what recovery did.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        options: OpenOptions,
    ) -> Result<(Self, RecoveryReport), LogError> {
        config.validate()?;
        let mut recovery = Recovery {
            disk: disk.as_ref(),
            dir,
            config: &config,
            options,
            report: RecoveryReport::default(),
            snapshots: BTreeSet::new(),
            has_clean_point: false,
        };
        let (segments, checkpoint, watermark) = recovery.run()?;
        let (snapshots, has_clean_point) = (
            std::mem::take(&mut recovery.snapshots),
            recovery.has_clean_point,
        );
        let mut report = recovery.report;
        let mut log = PartitionLog::assemble(
            disk,
            dir.to_path_buf(),
            config,
            segments,
            checkpoint,
            watermark,
            options.now_ms,
        );
        // What recovery's listing found: no second listing, no open of a file not there.
        log.snapshots = snapshots;
        report.producer_headers_read = log.load_producers(options.now_ms)?;
        if has_clean_point {
            log.load_clean_point();
        }
        Ok((log, report))
    }
}

struct Recovery<'a> {
    disk: &'a dyn Disk,
    dir: &'a Path,
    config: &'a LogConfig,
    options: OpenOptions,
    report: RecoveryReport,
    /// Producer snapshot files found by the listing (by offset).
    snapshots: BTreeSet<i64>,
    /// Whether the listing found the cleaner's clean point file.
    has_clean_point: bool,
}

type Segments = BTreeMap<i64, Segment>;

impl Recovery<'_> {
    fn path(&self, base: i64, kind: FileKind) -> PathBuf {
        self.dir.join(segment::file_name(base, kind))
    }

    fn run(&mut self) -> Result<(Segments, Checkpoint, Watermark), LogError> {
        let disk = self.disk;
        // Durably: a partition whose directory entry a crash could lose would lose all of it.
        disk::create_dir_durably(disk, self.dir).map_err(io_err("create dir", self.dir))?;
        let mut bases = self.list_and_clean()?;
        let found = checkpoint::read(disk, self.dir)?;
        let checkpoint = match found {
            Some(Ok(c)) => {
                self.report.checkpoint = CheckpointState::Valid {
                    clean_shutdown: c.clean_shutdown,
                };
                Some(c)
            }
            Some(Err(e)) => {
                self.report.checkpoint = CheckpointState::Invalid(e);
                None
            }
            None => None,
        };
        // After a clean shutdown everything was synced before the clean checkpoint was
        // written, and the checkpoint's recovery point is the end: the watermark is read only
        // for its sequence, so it needs no sync of its own.
        let clean_checkpoint = checkpoint.is_some_and(|c| c.clean_shutdown);
        let watermark = Watermark::read(disk, self.dir, !clean_checkpoint)?;
        self.report.watermark = watermark.map(|w| w.durable_offset);
        let first_base = bases.first().copied().unwrap_or(0);
        let mut log_start = checkpoint.map_or(first_base, |c| c.log_start_offset);
        // Both never lead the durable data; the watermark is usually the more recent. Without
        // a checkpoint everything is scanned. Without either (only external damage removes
        // both: every open writes them), sealed segments are presumed durable, so damage in
        // them is reported rather than truncated.
        let (scan_from, recovery_point) = match (checkpoint, watermark) {
            (Some(c), _) if c.clean_shutdown => (c.recovery_point, c.recovery_point),
            (Some(c), w) => {
                let rp = c.recovery_point.max(w.map_or(0, |w| w.durable_offset));
                (rp, rp)
            }
            (None, Some(w)) => (log_start, w.durable_offset),
            (None, None) => (log_start, bases.last().copied().unwrap_or(log_start)),
        };
        self.delete_below_start(&mut bases, log_start)?;
        if let Some(&first) = bases.first()
            && first > log_start
        {
            if log_start < recovery_point && !self.options.repair {
                return Err(LogError::corrupt(
                    self.dir.to_path_buf(),
                    0..0,
                    log_start,
                    format!("segments below offset {first} are missing"),
                ));
            }
            log_start = first;
        }
        let opened = self.open_segments(&bases)?;
        let clean = match checkpoint.filter(|c| c.clean_shutdown) {
            Some(c) => self.load_clean(&opened, c.recovery_point),
            None => None,
        };
        let mut segments = match clean {
            Some(segments) => {
                self.report.clean_load = true;
                segments
            }
            None => self.recover(&opened, scan_from, recovery_point)?,
        };
        self.prepare_active(&mut segments)?;
        let end = segments
            .values()
            .next_back()
            .map_or(log_start, |s| s.next_offset);
        if end < log_start || segments.is_empty() {
            // The log start is past every batch (deleted up to an end a crash then lost): start
            // empty at the log start.
            let doomed: Vec<i64> = segments.keys().copied().collect();
            self.remove_segments(&mut segments, &doomed)?;
            let segment =
                create_segment(disk, self.dir, log_start, self.config, self.options.now_ms)
                    .map_err(|(path, e)| LogError::io("create segment", path, e))?;
            segments.insert(log_start, segment);
        }
        let end = segments
            .values()
            .next_back()
            .map_or(log_start, |s| s.next_offset);
        let checkpoint = Checkpoint {
            log_start_offset: log_start,
            recovery_point: end,
            clean_shutdown: false,
        };
        // Everything present is durable now (synced at open, truncations synced), so the
        // recovery point may be the end. Writing this also clears the clean-shutdown flag
        // before anything can be appended.
        checkpoint::write(disk, self.dir, &checkpoint)?;
        let watermark = match watermark {
            Some(slot) if slot.durable_offset == end => Watermark::resume(disk, self.dir, slot)?,
            _ => Watermark::reset(disk, self.dir, end, watermark.map_or(0, |w| w.sequence))?,
        };
        self.report.segments = segments.len();
        self.report.log_start_offset = log_start;
        self.report.log_end_offset = end;
        Ok((segments, checkpoint, watermark))
    }

    /// Lists the directory, removes leftovers, and returns the segment base offsets.
    fn list_and_clean(&mut self) -> Result<Vec<i64>, LogError> {
        let mut names = self
            .disk
            .list_dir(self.dir)
            .map_err(io_err("list dir", self.dir))?;
        // A compaction a crash interrupted: finished if decided, else undone.
        if crate::partition::finish_swaps(self.disk, self.dir, &names, self.config)? {
            names = self
                .disk
                .list_dir(self.dir)
                .map_err(io_err("list dir", self.dir))?;
        }
        let mut logs = BTreeSet::new();
        let mut indexes = Vec::new();
        for name in &names {
            if let Some(offset) = rill_format::producer_snapshot::parse_file_name(name) {
                self.snapshots.insert(offset);
                continue;
            }
            if name == rill_format::clean_point::CLEAN_POINT_FILE {
                self.has_clean_point = true;
                continue;
            }
            if name == checkpoint::CHECKPOINT_TEMP_FILE {
                self.remove(&self.dir.join(name))?;
                continue;
            }
            // A prepared next segment left by a crash is not removed here: it holds only
            // zeros or unwritten space (nothing writes into it before the roll renames it), no
            // open or read looks at it, and the next preparation (a roll job, off this thread)
            // replaces it. Removing it here freed a whole preallocated segment on the open
            // path: 160 ms of a 0.74 s recovery of a 1 GiB segment.
            if name == crate::partition::PREPARED_FILE {
                continue;
            }
            match segment::parse_file_name(name) {
                Some((base, FileKind::Log)) => {
                    logs.insert(base);
                }
                Some((base, _)) => indexes.push((base, name)),
                None => {}
            }
        }
        for (base, name) in indexes {
            if !logs.contains(&base) {
                self.remove(&self.dir.join(name))?;
            }
        }
        if self.report.leftovers_removed > 0 {
            self.disk
                .sync_dir(self.dir)
                .map_err(io_err("sync dir", self.dir))?;
        }
        Ok(logs.into_iter().collect())
    }

    fn remove(&mut self, path: &Path) -> Result<(), LogError> {
        match self.disk.remove_file(path) {
            Ok(()) => {
                self.report.leftovers_removed += 1;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("remove", path, e)),
        }
    }

    /// Deletes segments that lie entirely below the log start (a deletion a crash interrupted).
    fn delete_below_start(&mut self, bases: &mut Vec<i64>, log_start: i64) -> Result<(), LogError> {
        let dead: Vec<i64> = bases
            .windows(2)
            .filter(|w| w[1] <= log_start)
            .map(|w| w[0])
            .collect();
        for base in &dead {
            segment::remove_files(self.disk, self.dir, *base)
                .map_err(|(path, e)| LogError::io("remove", path, e))?;
        }
        if !dead.is_empty() {
            self.report.segments_deleted_below_start += dead.len();
            bases.retain(|b| !dead.contains(b));
            self.disk
                .sync_dir(self.dir)
                .map_err(io_err("sync dir", self.dir))?;
        }
        Ok(())
    }

    /// Opens every segment's log file, without syncing it or (where the disk can) taking a
    /// descriptor. Nothing below the recovery point needs a sync: it was durable when the
    /// recovery point was recorded (and after a clean shutdown everything was). What recovery
    /// rescans is synced before it is read (`rescan`).
    fn open_segments(&self, bases: &[i64]) -> Result<Vec<Opened>, LogError> {
        let mut opened = Vec::with_capacity(bases.len());
        for &base in bases {
            let path = self.path(base, FileKind::Log);
            match self.disk.open_existing_lazily(&path) {
                Ok((file, file_len)) => opened.push(Opened {
                    base,
                    file,
                    file_len,
                }),
                Err(e) => {
                    for o in &opened {
                        self.disk.close(o.file);
                    }
                    return Err(LogError::io("open", path, e));
                }
            }
        }
        Ok(opened)
    }

    /// Loads segments after a clean shutdown: sealed ones as they are, with their indexes left
    /// on disk until used (checked then); the active one with its indexes and its tail checked.
    /// Returns `None` if the active segment's tail does not end exactly at the checkpointed
    /// end, in which case the caller recovers instead.
    fn load_clean(&mut self, opened: &[Opened], end: i64) -> Option<Segments> {
        let mut segments = Segments::new();
        let Some((active, sealed)) = opened.split_last() else {
            return Some(segments);
        };
        for (i, o) in sealed.iter().enumerate() {
            segments.insert(o.base, self.sealed_on_disk(o, opened[i + 1].base));
        }
        // Anything inconsistent sends the whole partition through recovery, which classifies
        // the damage; the clean path never reports errors of its own.
        let mut segment = self.load_segment(active, end).ok()?;
        if !self.tail_is_consistent(&mut segment, end) {
            return None;
        }
        segments.insert(active.base, segment);
        Some(segments)
    }

    /// A sealed segment below the recovery point, taken as it is: durable, trimmed, indexes in
    /// its index files (read and checked on first use, rebuilt if they fail).
    fn sealed_on_disk(&self, o: &Opened, next_offset: i64) -> Segment {
        Segment::sealed_on_disk(o.base, o.file, o.file_len, next_offset, self.options.now_ms)
    }

    /// Checks the active segment from its last index entry to the end of the file, and sets
    /// the state that depends on the tail.
    fn tail_is_consistent(&self, segment: &mut Segment, end: i64) -> bool {
        let Some(indexes) = segment.resident() else {
            return false;
        };
        let (offset, position) = indexes.offset.lookup(i64::MAX);
        let mut scanner = Scanner::new(
            self.disk,
            segment.log,
            u64::from(position),
            segment.size_bytes,
        );
        let mut next = offset;
        let mut max = segment.max_timestamp;
        let mut max_offset = segment.offset_of_max_timestamp;
        // Bounded by the file length.
        loop {
            match scanner.next(next, self.config.segment_bytes) {
                Step::Batch { header, .. } => {
                    if header.max_timestamp > max {
                        max = header.max_timestamp;
                        max_offset = header.last_offset();
                    }
                    next = header.next_offset();
                }
                Step::End => break,
                Step::Stop(_) => return false,
            }
        }
        if next != end {
            return false;
        }
        segment.max_timestamp = max;
        segment.offset_of_max_timestamp = max_offset;
        segment.bytes_since_index_entry = segment.size_bytes - u64::from(position);
        true
    }

    /// Loads the active segment without a scan: its indexes, checked against the file and
    /// offsets (rebuilt from the log when a check fails).
    fn load_segment(&mut self, o: &Opened, next_offset: i64) -> Result<Segment, LogError> {
        let bounds = SegmentBounds {
            base_offset: o.base,
            next_offset,
            size_bytes: o.file_len,
        };
        let max = self.config.max_index_entries;
        let Some(indexes) = load_index_files(self.disk, self.dir, bounds, max)? else {
            return self.rebuild_segment(o, next_offset);
        };
        let mut segment = Segment::new(o.base, o.file, max, self.options.now_ms);
        // Its batches come from the index files, not from a scan.
        segment.sequenced = segment::Sequenced::Unknown;
        segment.size_bytes = o.file_len;
        segment.file_len = o.file_len;
        segment.next_offset = next_offset;
        if let Some(last) = indexes.time.last_entry() {
            segment.max_timestamp = last.timestamp;
            segment.offset_of_max_timestamp = o.base + i64::from(last.relative_offset);
        }
        let last_position = indexes
            .offset
            .last_entry()
            .map_or(0, |e| u64::from(e.position));
        segment.bytes_since_index_entry = o.file_len - last_position;
        segment.indexes = Indexes::Resident(indexes);
        Ok(segment)
    }

    /// Missing or damaged indexes: rebuilds them from the log. Every batch here is below the
    /// recovery point, so damage is corruption.
    fn rebuild_segment(&mut self, o: &Opened, next_offset: i64) -> Result<Segment, LogError> {
        let rebuilt = self.rescan(o)?;
        if let Some(stop) = rebuilt.stop {
            return self.corrupt_or(o, &stop, rebuilt.segment.next_offset);
        }
        if rebuilt.segment.next_offset != next_offset {
            let path = self.path(o.base, FileKind::Log);
            return Err(LogError::corrupt(
                path,
                o.file_len..o.file_len,
                rebuilt.segment.next_offset,
                format!(
                    "segment ends at offset {}, the next starts at {next_offset}",
                    rebuilt.segment.next_offset
                ),
            ));
        }
        let mut segment = rebuilt.segment;
        segment.finish_time_index();
        self.write_indexes(&segment)?;
        Ok(segment)
    }

    fn corrupt_or<T>(&self, o: &Opened, stop: &scan::Stop, offset: i64) -> Result<T, LogError> {
        let path = self.path(o.base, FileKind::Log);
        Err(LogError::corrupt(
            path,
            stop.position..stop.damage_end,
            offset,
            stop.detail.clone(),
        ))
    }

    fn write_indexes(&mut self, segment: &Segment) -> Result<(), LogError> {
        write_index_files(self.disk, self.dir, segment)
            .map_err(|(path, e)| LogError::io("write index", path, e))?;
        self.report.indexes_rebuilt += 1;
        Ok(())
    }

    fn rescan(&mut self, o: &Opened) -> Result<scan::Rebuilt, LogError> {
        let path = self.path(o.base, FileKind::Log);
        // Nothing read is trusted before it is durable: a process crash leaves data only in the
        // page cache (KAFKA-10101). Then validate what the medium holds, not what only the page
        // cache still shows (after a failed fsync, cached pages may be clean without being
        // durable). The length is read again: dropping the cache may change what the file holds.
        self.disk
            .fdatasync(o.file)
            .map_err(io_err("sync at open", &path))?;
        self.disk
            .drop_cache(o.file)
            .map_err(io_err("drop cache", &path))?;
        let file_len = self.disk.file_len(o.file).map_err(io_err("stat", &path))?;
        let mut rebuilt = scan::rebuild_segment(
            self.disk,
            o.file,
            o.base,
            file_len,
            self.config,
            self.options.now_ms,
        );
        rebuilt.segment.file_len = file_len;
        self.report.segments_scanned += 1;
        self.report.bytes_scanned += rebuilt.segment.size_bytes;
        Ok(rebuilt)
    }

    /// Recovery after an unclean stop: load the segments below the one holding `scan_from`,
    /// scan it and every later one; damage below `recovery_point` is corruption.
    fn recover(
        &mut self,
        opened: &[Opened],
        scan_from: i64,
        recovery_point: i64,
    ) -> Result<Segments, LogError> {
        // The segment holding the last offset before `scan_from`: a recovery point recorded
        // exactly at a roll's boundary (before the roll, when everything was durable) says
        // nothing about the sealed segment's own trim and indexes, which may still have been
        // pending (see `partition::roll`), so that segment is rescanned and sealed again.
        let first_scanned = opened.iter().rposition(|o| o.base < scan_from).unwrap_or(0);
        let mut segments = Segments::new();
        let mut scanned = Vec::new();
        for (i, o) in opened.iter().enumerate().take(first_scanned) {
            segments.insert(o.base, self.sealed_on_disk(o, opened[i + 1].base));
        }
        for (i, o) in opened.iter().enumerate().skip(first_scanned) {
            let expected = segments
                .values()
                .next_back()
                .map_or(o.base, |s| s.next_offset);
            if o.base != expected {
                // A gap or overlap between segments: the later ones cannot belong to the log.
                let detail = format!("segment starts at offset {}, expected {expected}", o.base);
                self.cut_tail(
                    &mut segments,
                    opened,
                    i,
                    expected,
                    recovery_point,
                    None,
                    &detail,
                )?;
                break;
            }
            let rebuilt = self.rescan(o)?;
            scanned.push(o.base);
            let segment = rebuilt.segment;
            let next = segment.next_offset;
            segments.insert(o.base, segment);
            let stop = rebuilt.stop.filter(|stop| {
                // Zeros after every batch of a sealed segment, up to exactly where the next
                // segment starts: a preallocation whose trim was still pending (a roll's seal
                // job, see `partition::roll`), not a torn tail. `seal_rescanned` trims it.
                let untrimmed = stop.zero_tail
                    && !stop.read_error
                    && opened.get(i + 1).is_some_and(|n| n.base == next);
                if untrimmed {
                    self.report.zero_tail_bytes += o.file_len.saturating_sub(stop.position);
                }
                !untrimmed
            });
            if let Some(stop) = stop {
                self.cut_tail(
                    &mut segments,
                    opened,
                    i + 1,
                    next,
                    recovery_point,
                    Some((o, &stop)),
                    "",
                )?;
                break;
            }
        }
        let end = segments
            .values()
            .next_back()
            .map_or(recovery_point, |s| s.next_offset);
        if end < recovery_point && !self.options.repair {
            let last = segments.values().next_back();
            let path = last.map_or_else(
                || self.dir.to_path_buf(),
                |s| self.path(s.base_offset, FileKind::Log),
            );
            let at = last.map_or(0, |s| s.size_bytes);
            return Err(LogError::corrupt(
                path,
                at..at,
                end,
                format!("the log ends at offset {end}, below the recovery point {recovery_point}"),
            ));
        }
        self.seal_rescanned(&mut segments, &scanned)?;
        Ok(segments)
    }

    /// Handles damage found at offset `at_offset`: refuses if it is below the recovery point
    /// (unless repairing), else truncates the damaged segment at the stop and removes
    /// `opened[later..]`.
    #[allow(clippy::too_many_arguments)]
    fn cut_tail(
        &mut self,
        segments: &mut Segments,
        opened: &[Opened],
        later: usize,
        at_offset: i64,
        recovery_point: i64,
        stop: Option<(&Opened, &scan::Stop)>,
        gap_detail: &str,
    ) -> Result<(), LogError> {
        let (path, range, detail, zero_tail, read_error) = match &stop {
            Some((o, s)) => (
                self.path(o.base, FileKind::Log),
                s.position..s.damage_end,
                s.detail.clone(),
                s.zero_tail,
                s.read_error,
            ),
            None => (
                self.path(opened[later].base, FileKind::Log),
                0..0,
                gap_detail.to_owned(),
                false,
                false,
            ),
        };
        let interior = match &stop {
            Some((o, s)) if !read_error => {
                self.valid_data_beyond_window(segments, opened, o, s, later, at_offset)?
            }
            _ => false,
        };
        let detail = if interior {
            format!(
                "{detail}; valid batches follow beyond the torn-tail window, so this damaged acknowledged data"
            )
        } else if zero_tail && at_offset < recovery_point {
            // Only zeros (a preallocated tail) after the last batch: the log just ends early.
            format!(
                "the log ends at offset {at_offset} (zeros follow), below the recovery point {recovery_point}"
            )
        } else {
            detail
        };
        if at_offset < recovery_point || read_error || interior {
            let corruption = Corruption {
                path: path.clone(),
                byte_range: range.clone(),
                offset: at_offset,
                detail: detail.clone(),
            };
            if !self.options.repair {
                return Err(LogError::Corrupt(Box::new(corruption)));
            }
            self.report.repaired = Some(corruption);
        }
        if let Some((o, s)) = &stop {
            let file_len = segments.get(&o.base).map_or(o.file_len, |seg| seg.file_len);
            let cut = file_len.saturating_sub(s.position);
            if s.zero_tail {
                self.report.zero_tail_bytes += cut;
            } else {
                self.report.bytes_truncated += cut;
            }
            self.disk
                .set_len(o.file, s.position)
                .and_then(|()| self.disk.fdatasync(o.file))
                .map_err(io_err("truncate", &path))?;
            if let Some(segment) = segments.get_mut(&o.base) {
                segment.file_len = s.position;
            }
        }
        if !zero_tail || later < opened.len() {
            self.report.torn_tail = Some((path, range.start, detail));
        }
        let doomed = &opened[later.min(opened.len())..];
        for o in doomed {
            self.report.bytes_truncated += o.file_len;
            self.disk.close(o.file);
        }
        let bases: Vec<i64> = doomed.iter().map(|o| o.base).collect();
        self.report.segments_removed += bases.len();
        self.remove_segments(segments, &bases)
    }

    /// Whether valid batches lie after damage at `stop` further than a crash could have torn
    /// (`LogConfig::torn_window_bytes`), in the damaged file or the segments after it. If so the
    /// damaged bytes had been synced: acknowledged data, not a torn tail.
    fn valid_data_beyond_window(
        &self,
        segments: &Segments,
        opened: &[Opened],
        o: &Opened,
        stop: &scan::Stop,
        later: usize,
        at_offset: i64,
    ) -> Result<bool, LogError> {
        let window = self.config.torn_window_bytes();
        let later_opened = &opened[later.min(opened.len())..];
        let file_len = segments.get(&o.base).map_or(o.file_len, |s| s.file_len);
        // Distances count written bytes only: a sealed segment may still carry its untrimmed
        // preallocation (its seal was pending, see `partition::roll`), and zeros were never
        // unsynced data. Measured only when later segments exist (else nothing follows).
        let data_len = |file: FileId, len: u64, path: PathBuf| {
            if later_opened.is_empty() {
                return Ok(len);
            }
            scan::data_end(self.disk, file, len).map_err(io_err("scan for data end", path))
        };
        let file_len =
            data_len(o.file, file_len, self.path(o.base, FileKind::Log))?.max(stop.position);
        let mut later_lens = Vec::with_capacity(later_opened.len());
        for l in later_opened {
            later_lens.push(data_len(
                l.file,
                l.file_len,
                self.path(l.base, FileKind::Log),
            )?);
        }
        let later_bytes: u64 = later_lens.iter().sum();
        let after = file_len.saturating_sub(stop.position) + later_bytes;
        if after <= window || (stop.zero_tail && later_bytes == 0) {
            return Ok(false);
        }
        let path = self.path(o.base, FileKind::Log);
        let found = scan::valid_batch_ending_after(
            self.disk,
            o.file,
            stop.position + 1,
            file_len,
            at_offset - 1,
            stop.position + window,
        )
        .map_err(io_err("scan for later batches", &path))?;
        if found {
            return Ok(true);
        }
        let mut distance = file_len - stop.position;
        for (l, &len) in later_opened.iter().zip(&later_lens) {
            let must_end_after = (stop.position + window)
                .saturating_sub(distance)
                .saturating_sub(stop.position);
            let path = self.path(l.base, FileKind::Log);
            if scan::valid_batch_ending_after(
                self.disk,
                l.file,
                0,
                len,
                at_offset - 1,
                must_end_after,
            )
            .map_err(io_err("scan for later batches", &path))?
            {
                return Ok(true);
            }
            distance += len;
        }
        Ok(false)
    }

    fn remove_segments(&mut self, segments: &mut Segments, bases: &[i64]) -> Result<(), LogError> {
        if bases.is_empty() {
            return Ok(());
        }
        for base in bases {
            if let Some(s) = segments.remove(base) {
                self.disk.close(s.log);
            }
            segment::remove_files(self.disk, self.dir, *base)
                .map_err(|(path, e)| LogError::io("remove", path, e))?;
        }
        self.disk
            .sync_dir(self.dir)
            .map_err(io_err("sync dir", self.dir))
    }

    /// Trims and writes the rebuilt indexes of rescanned segments that are sealed (all but the
    /// last).
    fn seal_rescanned(&mut self, segments: &mut Segments, scanned: &[i64]) -> Result<(), LogError> {
        let last = segments.keys().next_back().copied();
        for base in scanned.iter().filter(|b| Some(**b) != last) {
            let Some(segment) = segments.get_mut(base) else {
                continue;
            };
            if segment.file_len != segment.size_bytes {
                let path = self.dir.join(segment::file_name(*base, FileKind::Log));
                self.disk
                    .set_len(segment.log, segment.size_bytes)
                    .and_then(|()| self.disk.fdatasync(segment.log))
                    .map_err(|e| LogError::io("trim", path, e))?;
                segment.file_len = segment.size_bytes;
            }
            segment.finish_time_index();
            write_index_files(self.disk, self.dir, segment)
                .map_err(|(path, e)| LogError::io("write index", path, e))?;
            self.report.indexes_rebuilt += 1;
            // Written and synced: they leave memory like any sealed segment's.
            segment.indexes = Indexes::OnDisk;
        }
        Ok(())
    }

    /// Cuts anything after the active segment's last batch and preallocates it as configured.
    fn prepare_active(&mut self, segments: &mut Segments) -> Result<(), LogError> {
        let Some(active) = segments.values_mut().next_back() else {
            return Ok(());
        };
        let path = self
            .dir
            .join(segment::file_name(active.base_offset, FileKind::Log));
        if active.file_len != active.size_bytes {
            self.disk
                .set_len(active.log, active.size_bytes)
                .and_then(|()| self.disk.fdatasync(active.log))
                .map_err(|e| LogError::io("truncate", path.clone(), e))?;
        }
        active.file_len = preallocate(self.disk, active.log, self.config, active.size_bytes, 0)
            .map_err(|e| LogError::io("preallocate", path, e))?;
        Ok(())
    }
}
