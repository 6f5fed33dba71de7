//! Key-based compaction (Kafka's log cleaner): the work of one cleaning, done off the
//! partition's lock.
//!
//! A cleaning has three steps. **Plan** (`PartitionLog::plan_compaction`, under the lock, no
//! I/O): the sealed segments from the log start to the active segment, and the clean point
//! (the first offset not cleaned yet). **Build** ([`CompactionPlan::build`], any thread, no
//! lock): map each key of the dirty part (clean point to the active segment) to its last offset,
//! in a map of bounded size (a dirty part with more keys is cleaned in passes: the map stops at
//! a segment boundary, and the next pass goes on from there); then rewrite the sealed segments
//! from the log start to where the map stops, grouped into files of at most `segment_bytes`,
//! keeping a record unless a later record of its key exists or it is a tombstone older than
//! `delete_retention_ms`; written as `<base>.log.cleaned` with its two index files, all synced.
//! **Install** (`PartitionLog::install_compaction`, under the lock, when no operation uses the
//! files): the swap protocol of `partition/compact.rs`, which a crash at any step leaves as the
//! old segments or the new, never a mix (recovery finishes a decided swap).
//!
//! Appends and reads go on during the build: it reads sealed segments only, through its own
//! handles, and the install checks that the segments it replaces are still the ones it read (a
//! truncation or retention meanwhile makes it give up: [`crate::LogError::CompactionStale`]).

use crate::batch::{self, BatchHeader, Filtered, LOG_OVERHEAD_BYTES, Record};
use crate::config::LogConfig;
use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::LogError;
use crate::index::SegmentIndexes;
use crate::segment::{self, FileKind, Segment};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Suffix of a file written by a cleaning and not yet swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned file whose swap is decided (its log file's rename is durable).
pub const SWAP_SUFFIX: &str = ".swap";
/// Memory one key of the map costs, for the bound: a 128-bit hash, an offset, the table's
/// overhead.
pub const KEY_MAP_ENTRY_BYTES: usize = 40;
/// Bytes read from a segment at a time.
const READ_BLOCK_BYTES: usize = 1 << 20;
/// Bytes of cleaned output written at a time.
const WRITE_BLOCK_BYTES: usize = 1 << 20;

/// How a cleaning is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerLimits {
    /// Memory of the key map; a dirty part with more keys is cleaned in passes.
    pub key_map_bytes: usize,
    /// Bytes read and written per second, at most (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`), if set.
    pub io_bytes_per_sec: Option<u64>,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        Self {
            key_map_bytes: 64 << 20,
            io_bytes_per_sec: None,
        }
    }
}

/// A sealed segment as a cleaning read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentRef {
    pub(crate) base: i64,
    pub(crate) file: FileId,
    pub(crate) size_bytes: u64,
    pub(crate) next_offset: i64,
}

/// What a cleaning will read: made under the partition's lock, built without it.
#[derive(Debug)]
pub struct CompactionPlan {
    pub(crate) owner: u64,
    pub(crate) disk: Arc<dyn Disk>,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sealed segments from the log start, in order.
    pub(crate) segments: Vec<SegmentRef>,
    /// The first offset not cleaned yet.
    pub(crate) clean_point: i64,
}

/// One cleaned file, written and synced, waiting for its swap.
#[derive(Debug)]
pub(crate) struct CleanedGroup {
    /// Its base offset (the first replaced segment's).
    pub(crate) base: i64,
    /// The segments it replaces, in order (the first has the same base).
    pub(crate) replaces: Vec<SegmentRef>,
    pub(crate) size_bytes: u64,
    pub(crate) next_offset: i64,
    pub(crate) indexes: SegmentIndexes,
}

/// A built cleaning, for `PartitionLog::install_compaction`.
#[derive(Debug)]
pub struct Cleaned {
    pub(crate) owner: u64,
    pub(crate) dir: PathBuf,
    pub(crate) groups: Vec<CleanedGroup>,
    /// The clean point once installed.
    pub(crate) clean_point: i64,
    pub(crate) report: CompactionReport,
}

/// What a cleaning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionReport {
    /// Bytes of the segments rewritten, before.
    pub bytes_before: u64,
    /// Their bytes after.
    pub bytes_after: u64,
    /// Records removed (superseded by a later record of their key, or expired tombstones).
    pub records_removed: u64,
    /// Segments replaced.
    pub segments_before: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// Keys in the map of the dirty part.
    pub keys_mapped: usize,
    /// The clean point afterwards: everything below it is clean.
    pub clean_point: i64,
}

/// The name of a segment file with a cleaning suffix.
pub(crate) fn suffixed(base: i64, kind: FileKind, suffix: &str) -> String {
    format!("{}{suffix}", segment::file_name(base, kind))
}

/// Sleeps as needed to keep a rate of bytes per second.
struct Throttle {
    bytes_per_sec: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.filter(|r| *r > 0),
            start: Instant::now(),
            bytes: 0,
        }
    }

    fn account(&mut self, bytes: usize) {
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        self.bytes += bytes as u64;
        if let Some(wait) = wait_for(self.bytes, rate, self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// How long to wait so that `bytes` since the start, `elapsed` ago, keep to `rate` bytes per
/// second.
fn wait_for(bytes: u64, rate: u64, elapsed: Duration) -> Option<Duration> {
    let due = Duration::from_millis(bytes.saturating_mul(1000) / rate.max(1));
    due.checked_sub(elapsed).filter(|wait| !wait.is_zero())
}

/// Reads a segment's batches in order, checking each (shape, offset, CRC).
struct BatchReader<'a> {
    disk: &'a dyn Disk,
    dir: &'a Path,
    segment: SegmentRef,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    position: u64,
    expected: i64,
}

impl<'a> BatchReader<'a> {
    fn new(disk: &'a dyn Disk, dir: &'a Path, segment: SegmentRef) -> Self {
        Self {
            disk,
            dir,
            segment,
            buf: Vec::new(),
            buf_start: 0,
            position: 0,
            expected: segment.base,
        }
    }

    fn corrupt(&self, detail: String) -> LogError {
        let path = self
            .dir
            .join(segment::file_name(self.segment.base, FileKind::Log));
        LogError::corrupt(path, self.position..self.position, self.expected, detail)
    }

    /// Makes `buf` hold `position..position + len`.
    fn fill(&mut self, len: u64, throttle: &mut Throttle) -> Result<(), LogError> {
        let have_from = self.position.saturating_sub(self.buf_start);
        if self.position >= self.buf_start && have_from + len <= self.buf.len() as u64 {
            return Ok(());
        }
        let want = len
            .max(READ_BLOCK_BYTES as u64)
            .min(self.segment.size_bytes - self.position);
        if want < len {
            return Err(self.corrupt("a batch runs past the segment's end".into()));
        }
        self.buf.resize(want as usize, 0);
        disk::read_exact_at(self.disk, self.segment.file, self.position, &mut self.buf)
            .map_err(|e| self.corrupt(format!("read error: {e}")))?;
        self.buf_start = self.position;
        throttle.account(self.buf.len());
        Ok(())
    }

    /// The next batch, checked, or `None` at the segment's end.
    fn next(&mut self, throttle: &mut Throttle) -> Result<Option<(BatchHeader, &[u8])>, LogError> {
        if self.position >= self.segment.size_bytes {
            return Ok(None);
        }
        self.fill(LOG_OVERHEAD_BYTES as u64, throttle)?;
        let at = (self.position - self.buf_start) as usize;
        let mut length = [0u8; 4];
        length.copy_from_slice(&self.buf[at + 8..at + 12]);
        let total = LOG_OVERHEAD_BYTES as u64 + u64::from(i32::from_be_bytes(length).max(0) as u32);
        self.fill(total, throttle)?;
        let at = (self.position - self.buf_start) as usize;
        let bytes = &self.buf[at..at + total as usize];
        let header = batch::check_stored(bytes, self.expected).map_err(|e| {
            let path = self
                .dir
                .join(segment::file_name(self.segment.base, FileKind::Log));
            LogError::corrupt(
                path,
                self.position..self.position + total,
                self.expected,
                e.to_string(),
            )
        })?;
        self.position += total;
        self.expected = header.next_offset();
        Ok(Some((header, bytes)))
    }
}

/// The key map: each key's last offset in the dirty part, by a 128-bit hash of the key (as
/// Kafka's `SkinnyOffsetMap` keeps a 128-bit digest: a collision would drop a record, and at
/// 2^-128 per pair it is not a practical concern).
struct KeyMap {
    offsets: HashMap<u128, i64>,
    max_keys: usize,
}

impl KeyMap {
    fn hash(key: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128(key)
    }

    /// Records `offset` for `key`; false if the map is full and the key new.
    fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = Self::hash(key);
        if let Some(last) = self.offsets.get_mut(&hash) {
            *last = (*last).max(offset);
            return true;
        }
        if self.offsets.len() >= self.max_keys {
            return false;
        }
        self.offsets.insert(hash, offset);
        true
    }

    fn last_offset(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(&Self::hash(key)).copied()
    }
}

impl CompactionPlan {
    /// Maps the dirty part's keys and writes the cleaned files (see the module documentation).
    /// Blocking I/O through the log's disk; `now_ms` dates tombstones.
    pub fn build(self, limits: CleanerLimits, now_ms: i64) -> Result<Cleaned, LogError> {
        let mut throttle = Throttle::new(limits.io_bytes_per_sec);
        let max_keys = (limits.key_map_bytes / KEY_MAP_ENTRY_BYTES).max(1);
        let (map, upto) = self.map_keys(max_keys, &mut throttle)?;
        let horizon = now_ms.saturating_sub(self.config.delete_retention_ms);
        let mut report = CompactionReport {
            keys_mapped: map.offsets.len(),
            clean_point: upto,
            ..CompactionReport::default()
        };
        let mut groups = Vec::new();
        for group in self.groups(upto) {
            if let Some(cleaned) =
                self.clean_group(&group, &map, horizon, &mut throttle, &mut report)?
            {
                groups.push(cleaned);
            }
        }
        Ok(Cleaned {
            owner: self.owner,
            dir: self.dir,
            groups,
            clean_point: upto,
            report,
        })
    }

    /// The map of the dirty part's keys, and the offset it stops at (a segment's base: the
    /// first it could not map whole, or the end of the sealed segments).
    fn map_keys(
        &self,
        max_keys: usize,
        throttle: &mut Throttle,
    ) -> Result<(KeyMap, i64), LogError> {
        let mut map = KeyMap {
            offsets: HashMap::new(),
            max_keys,
        };
        let end = self
            .segments
            .last()
            .map_or(self.clean_point, |s| s.next_offset);
        let mut mapped_any = false;
        for segment in self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.clean_point)
        {
            let mut reader = BatchReader::new(self.disk.as_ref(), &self.dir, *segment);
            // Bounded by the segment's size: each step moves past one batch.
            while let Some((header, bytes)) = reader.next(throttle)? {
                if header.next_offset() <= self.clean_point || header.attributes.is_control() {
                    continue;
                }
                let mut full = false;
                for_each_record(&header, bytes, &self.config, &mut |record| {
                    if let Some(key) = record.key
                        && record.offset >= self.clean_point
                    {
                        full |= !map.put(key, record.offset);
                    }
                })?;
                if full {
                    if !mapped_any {
                        return Err(LogError::KeyMapTooSmall { max_keys });
                    }
                    return Ok((map, segment.base));
                }
            }
            mapped_any = true;
        }
        Ok((map, end))
    }

    /// The segments below `upto` in groups that fit one segment each.
    fn groups(&self, upto: i64) -> Vec<Vec<SegmentRef>> {
        let mut groups: Vec<Vec<SegmentRef>> = Vec::new();
        let mut bytes = 0u64;
        for segment in self.segments.iter().filter(|s| s.next_offset <= upto) {
            let fits = groups.last().is_some_and(|g| {
                bytes + segment.size_bytes <= self.config.segment_bytes
                    && segment.next_offset - g[0].base <= i64::from(i32::MAX)
            });
            if fits {
                bytes += segment.size_bytes;
                if let Some(group) = groups.last_mut() {
                    group.push(*segment);
                }
            } else {
                bytes = segment.size_bytes;
                groups.push(vec![*segment]);
            }
        }
        groups
    }

    /// Rewrites one group into `<base>.log.cleaned` and its index files; `None` if it is one
    /// segment and nothing in it changes.
    fn clean_group(
        &self,
        group: &[SegmentRef],
        map: &KeyMap,
        horizon: i64,
        throttle: &mut Throttle,
        report: &mut CompactionReport,
    ) -> Result<Option<CleanedGroup>, LogError> {
        let base = group[0].base;
        let disk = self.disk.as_ref();
        let path = self.dir.join(suffixed(base, FileKind::Log, CLEANED_SUFFIX));
        let file = disk
            .open(&path, OpenMode::Create)
            .map_err(|e| LogError::io("create cleaned segment", &path, e))?;
        let result = self.write_group(group, map, horizon, throttle, file, &path);
        let outcome = match result {
            Ok((segment, changed, removed)) if changed || group.len() > 1 => disk
                .fdatasync(file)
                .map_err(|e| LogError::io("fdatasync", &path, e))
                .map(|()| Some((segment, removed))),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        disk.close(file);
        let Some((mut segment, removed)) = outcome? else {
            let _ = disk.remove_file(&path);
            return Ok(None);
        };
        segment.finish_time_index();
        let Some(indexes) = segment.resident().cloned() else {
            return Ok(None);
        };
        crate::index_files::write_indexes_named(
            disk,
            &self.dir,
            base,
            &indexes.offset,
            &indexes.time,
            CLEANED_SUFFIX,
        )
        .map_err(|(path, e)| LogError::io("write cleaned index", path, e))?;
        report.bytes_before += group.iter().map(|s| s.size_bytes).sum::<u64>();
        report.bytes_after += segment.size_bytes;
        report.records_removed += removed;
        report.segments_before += group.len();
        report.segments_after += 1;
        Ok(Some(CleanedGroup {
            base,
            replaces: group.to_vec(),
            size_bytes: segment.size_bytes,
            next_offset: segment.next_offset,
            indexes,
        }))
    }

    /// Writes the kept batches of `group` to `file`; returns the segment's in-memory state,
    /// whether anything changed, and the records removed.
    fn write_group(
        &self,
        group: &[SegmentRef],
        map: &KeyMap,
        horizon: i64,
        throttle: &mut Throttle,
        file: FileId,
        path: &Path,
    ) -> Result<(Segment, bool, u64), LogError> {
        let disk = self.disk.as_ref();
        disk.set_len(file, 0)
            .map_err(|e| LogError::io("truncate cleaned segment", path, e))?;
        let mut writer = Writer {
            disk,
            file,
            path,
            buf: Vec::with_capacity(WRITE_BLOCK_BYTES),
            written: 0,
            segment: Segment::new(group[0].base, file, self.config.max_index_entries, 0),
            interval: self.config.index_interval_bytes,
            max_entries: self.config.max_index_entries,
            empty_run: None,
        };
        let max_decompressed = self
            .config
            .max_batch_bytes
            .saturating_mul(batch::MAX_DECOMPRESSION_RATIO);
        let (mut changed, mut removed) = (false, 0u64);
        let mut out = Vec::new();
        for segment in group {
            let mut reader = BatchReader::new(disk, &self.dir, *segment);
            // Bounded by the segment's size: each step moves past one batch.
            while let Some((header, bytes)) = reader.next(throttle)? {
                // An empty batch an earlier cleaning left joins the run it borders, so runs
                // of them do not pile up across cleanings.
                if header.records_count == 0 && header.producer_id < 0 {
                    writer.emptied(&header);
                    continue;
                }
                let record_time = |record: &Record<'_>| {
                    if header.attributes.is_log_append_time() {
                        header.max_timestamp
                    } else {
                        record.timestamp
                    }
                };
                let mut dropped = 0u64;
                let mut keep = |record: &Record<'_>| {
                    let superseded = record
                        .key
                        .and_then(|key| map.last_offset(key))
                        .is_some_and(|last| last > record.offset);
                    let expired_tombstone = record.key.is_some()
                        && record.value.is_none()
                        && record_time(record) < horizon;
                    let kept = !(superseded || expired_tombstone);
                    dropped += u64::from(!kept);
                    kept
                };
                out.clear();
                let filtered = batch::filter_batch(bytes, max_decompressed, &mut keep, &mut out)
                    .map_err(|e| reader_error(&self.dir, segment.base, &header, &e))?;
                removed += dropped;
                match filtered {
                    Filtered::Unchanged => writer.batch(&header, bytes)?,
                    Filtered::Rewritten => {
                        changed = true;
                        let rewritten = BatchHeader::parse(&out)?;
                        writer.batch(&rewritten, &out)?;
                    }
                    Filtered::Removed => {
                        changed = true;
                        writer.emptied(&header);
                    }
                }
            }
        }
        writer.finish()?;
        throttle.account(writer.written as usize);
        Ok((writer.segment, changed, removed))
    }
}

fn reader_error(dir: &Path, base: i64, header: &BatchHeader, e: &batch::BatchError) -> LogError {
    let path = dir.join(segment::file_name(base, FileKind::Log));
    LogError::corrupt(
        path,
        0..0,
        header.base_offset,
        format!("rewriting a batch: {e}"),
    )
}

/// Calls `f` on every record of a stored batch, compressed or not.
fn for_each_record(
    header: &BatchHeader,
    bytes: &[u8],
    config: &LogConfig,
    f: &mut dyn FnMut(&Record<'_>),
) -> Result<(), LogError> {
    let max = config
        .max_batch_bytes
        .saturating_mul(batch::MAX_DECOMPRESSION_RATIO);
    let decompressed;
    let section = if header.attributes.compression() == Some(batch::Compression::None) {
        &bytes[batch::HEADER_BYTES..]
    } else {
        decompressed = batch::decompress(header, bytes, max)?;
        &decompressed[..]
    };
    for record in batch::RecordIter::new_uncompressed(header, section) {
        f(&record.map_err(|source| batch::BatchError::Record { index: -1, source })?);
    }
    Ok(())
}

/// Writes a cleaned segment's batches in blocks, tracking its indexes, and covers each run of
/// emptied batches with one empty batch.
struct Writer<'a> {
    disk: &'a dyn Disk,
    file: FileId,
    path: &'a Path,
    buf: Vec<u8>,
    written: u64,
    segment: Segment,
    interval: u64,
    max_entries: usize,
    /// A run of emptied batches not yet covered: (first offset, last offset, greatest
    /// timestamp, leader epoch).
    empty_run: Option<(i64, i64, i64, i32)>,
}

impl Writer<'_> {
    fn batch(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<(), LogError> {
        self.cover_empty_run()?;
        self.push(header, bytes)
    }

    fn emptied(&mut self, header: &BatchHeader) {
        let run = self.empty_run.get_or_insert((
            header.base_offset,
            header.last_offset(),
            header.max_timestamp,
            header.partition_leader_epoch,
        ));
        run.1 = header.last_offset();
        run.2 = run.2.max(header.max_timestamp);
        run.3 = header.partition_leader_epoch;
    }

    fn cover_empty_run(&mut self) -> Result<(), LogError> {
        let Some((first, last, max_timestamp, epoch)) = self.empty_run.take() else {
            return Ok(());
        };
        let bytes = batch::empty_batch(first, last, max_timestamp, epoch)?;
        let header = BatchHeader::parse(&bytes)?;
        self.push(&header, &bytes)
    }

    fn push(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<(), LogError> {
        self.segment
            .push_batch(header, self.interval, self.max_entries);
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_BLOCK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        disk::write_all_at(self.disk, self.file, self.written, &[&self.buf])
            .map_err(|e| LogError::io("write cleaned segment", self.path, e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), LogError> {
        self.cover_empty_run()?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_waits_for_what_the_rate_allows() {
        let mib = 1 << 20;
        assert_eq!(
            wait_for(mib, mib, Duration::ZERO),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_for(mib, mib, Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(wait_for(mib, mib, Duration::from_secs(2)), None);
        assert_eq!(
            wait_for(mib, 2 * mib, Duration::ZERO),
            Some(Duration::from_millis(500))
        );
    }
}
