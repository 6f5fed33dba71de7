#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failure is a test failure"
)]

//! Helpers shared by rill's cross-crate tests (`tests/tests/*.rs`): batch generation, a
//! small-segment configuration that makes rolls frequent, and whole-log reads.

use bytes::BytesMut;
use rill_segment::batch::{self, BatchBuilder, BatchHeader, Header};
use rill_segment::disk::Disk;
use rill_segment::partition::ReadLimit;
use rill_segment::recovery::{OpenOptions, RecoveryReport};
use rill_segment::{LogConfig, LogError, PartitionLog};
use rill_sim::SimDisk;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The partition directory the tests use on a simulated disk.
pub fn sim_dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

/// Small segments and index intervals, so that a few dozen batches roll several segments and
/// fill indexes; checkpoints whenever a round makes data durable.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: None,
        index_interval_bytes: 200,
        max_index_entries: 64,
        max_batch_bytes: 2048,
        retention_bytes: None,
        retention_ms: None,
        checkpoint_interval_ms: 0,
        // A watermark with every sync: the tests hold its recovery guarantee at its strongest.
        watermark_interval_ms: 0,
        ..LogConfig::default()
    }
}

/// A batch of `records` records whose values are `value_bytes` long and derived from `seed`,
/// with timestamps from `timestamp_ms`.
pub fn make_batch(records: usize, value_bytes: usize, timestamp_ms: i64, seed: u64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    let mut value = vec![0u8; value_bytes];
    for i in 0..records.max(1) {
        let mut x = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(i as u64);
        for b in &mut value {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let key = format!("k{seed}-{i}");
        let headers = [Header {
            key: b"h",
            value: Some(&value[..value.len().min(3)]),
        }];
        builder
            .append(
                timestamp_ms + i as i64,
                Some(key.as_bytes()),
                Some(&value),
                &headers,
            )
            .expect("test batch fits");
    }
    BytesMut::from(&builder.build().expect("non-empty")[..])
}

/// `batch` as the log stores it at `base_offset`.
pub fn as_stored(batch: &[u8], base_offset: i64) -> Vec<u8> {
    let mut stored = batch.to_vec();
    batch::set_base_offset(&mut stored, base_offset);
    stored
}

/// Opens the partition at [`sim_dir`] on `disk`.
pub fn open(
    disk: &Arc<SimDisk>,
    config: &LogConfig,
    repair: bool,
) -> Result<(PartitionLog, RecoveryReport), LogError> {
    let disk: Arc<dyn Disk> = disk.clone();
    PartitionLog::open(
        disk,
        &sim_dir(),
        config.clone(),
        OpenOptions { repair, now_ms: 0 },
    )
}

/// Every batch from the log start to the end, as (base offset, bytes), read through `read`.
pub fn read_all(log: &PartitionLog) -> Result<Vec<(i64, Vec<u8>)>, LogError> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start;
    let end = log.offsets().log_end;
    // Bounded: every read returns at least one batch until the end.
    while offset < end {
        let result = log.read(offset, 1 << 20, ReadLimit::Written)?;
        assert!(
            !result.bytes.is_empty(),
            "read at {offset} < end {end} returned nothing"
        );
        out.extend(split_batches(&result.bytes));
        offset = result.next_offset;
    }
    Ok(out)
}

/// Splits back-to-back batches into (base offset, bytes).
pub fn split_batches(mut bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = BatchHeader::parse(bytes).expect("whole batches");
        let len = header.total_bytes() as usize;
        out.push((header.base_offset, bytes[..len].to_vec()));
        bytes = &bytes[len..];
    }
    out
}

/// Byte positions of the batches in a segment file's contents, as (position, header).
pub fn batch_positions(contents: &[u8]) -> Vec<(usize, BatchHeader)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + batch::HEADER_BYTES <= contents.len() {
        let Ok(header) = BatchHeader::parse(&contents[at..]) else {
            break;
        };
        if header.check_shape().is_err() {
            break;
        }
        out.push((at, header));
        at += header.total_bytes() as usize;
    }
    out
}

/// Path of a file in the simulated partition directory.
pub fn sim_path(name: &str) -> PathBuf {
    sim_dir().join(name)
}

/// The segment log file path for `base` in `dir`.
pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(rill_segment::segment::file_name(
        base,
        rill_segment::segment::FileKind::Log,
    ))
}

/// The log settings of the SIGKILL crash test: small segments (frequent rolls), and
/// preallocation, so crashes land in every phase of a segment's life.
pub fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        max_batch_bytes: 64 * 1024,
        index_interval_bytes: 4096,
        preallocate: rill_segment::Preallocate::Fallocate,
        checkpoint_interval_ms: 50,
        // The batches carry small timestamps; time retention would delete them.
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// Records and value size of the crash test's batch number `seed`.
pub fn crash_batch_shape(seed: u64) -> (usize, usize) {
    (1 + (seed % 7) as usize, ((seed * 97) % 2000) as usize)
}

/// The real-file-system drivers the cross-driver tests compare: the syscall baseline and
/// io_uring.
pub const REAL_DRIVERS: [&str; 2] = ["syscall", "uring"];

/// A driver of `kind` (one of [`REAL_DRIVERS`]) over `disk`; `None`, with a `SKIP` line, when
/// io_uring is unavailable here.
pub fn real_driver(
    kind: &str,
    disk: &Arc<dyn Disk>,
    closed: Arc<rill_uring::ClosedFiles>,
) -> Option<Box<dyn rill_uring::Driver>> {
    use rill_uring::{
        Doorbell, DriverError, SyscallDriver, SyscallOptions, UringDriver, UringOptions,
    };
    let doorbell = Arc::new(Doorbell::new().expect("eventfd"));
    if kind == "syscall" {
        let driver = SyscallDriver::new(Arc::clone(disk), doorbell, SyscallOptions::default())
            .expect("syscall driver");
        return Some(Box::new(driver));
    }
    match UringDriver::new(Arc::clone(disk), closed, doorbell, UringOptions::default()) {
        Ok(driver) => Some(Box::new(driver)),
        Err(DriverError::Unsupported { what }) => {
            skip_or_fail(&format!("io_uring unavailable: {what}"));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Reports a test that cannot run here: a `SKIP` line, or a failure under CI (`CI` set), where
/// every test must run (CI machines are root and have io_uring).
pub fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run under CI: {why}"
    );
    eprintln!("SKIP: {why}");
}

/// Mounts a tmpfs of `bytes` in a new temporary directory (root only); `None` where mounting is
/// not allowed. Unmount with [`unmount`].
pub fn small_tmpfs(bytes: u64) -> Option<(tempfile::TempDir, PathBuf)> {
    let tmp = tempfile::tempdir().ok()?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).ok()?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some((tmp, mnt))
}

/// Lazily unmounts a file system mounted by [`small_tmpfs`].
pub fn unmount(mnt: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(mnt)
        .status();
}

/// Polls (and parks briefly on) `driver` until `count` operations completed; panics after a
/// minute, which no healthy driver needs.
pub fn drive(driver: &mut dyn rill_uring::Driver, count: usize) -> Vec<rill_uring::Completion> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let mut out = Vec::with_capacity(count);
    // Bounded by the deadline.
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} operations completed",
            out.len()
        );
        driver.poll(&mut out);
        if out.len() < count {
            let _ = driver.park(std::time::Duration::from_millis(10), &mut out);
        }
    }
    out
}

/// Drops the page cache of every file under `dir` (clean pages only: flush first), so the next
/// reads of them come from the disk. Panics on I/O errors (a test helper).
pub fn evict_page_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("listing a test directory") {
        let path = entry.expect("reading a test directory").path();
        if path.is_dir() {
            evict_page_cache(&path);
        } else if let Ok(file) = std::fs::File::open(&path) {
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
                .expect("dropping a file's cached pages");
        }
    }
}

/// Cases for a property test: `PROPTEST_CASES` when set (a deep run), else `ci_default`.
pub fn proptest_cases(ci_default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci_default)
}

/// `plain`, a batch built uncompressed, with its records compressed by `codec` (attributes,
/// length and CRC set to match), as a producer using that codec sends it.
pub fn compress_batch(plain: &[u8], codec: batch::Compression) -> BytesMut {
    let bits: i16 = match codec {
        batch::Compression::Gzip => 1,
        batch::Compression::Snappy => 2,
        batch::Compression::Lz4 => 3,
        batch::Compression::Zstd => 4,
        _ => return BytesMut::from(plain),
    };
    let mut out = plain[..batch::HEADER_BYTES].to_vec();
    out.extend_from_slice(
        &batch::compress(codec, &plain[batch::HEADER_BYTES..]).expect("compressing records"),
    );
    let length = (out.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) | bits;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    BytesMut::from(&out[..])
}

/// A record as read back: (offset, key, value).
pub type ReadRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of a partition from its log start to its end, compressed batches included,
/// checking that the batches follow each other without an offset gap (as they must, compacted
/// or not).
pub fn partition_records(p: &rill::Partition) -> Vec<ReadRecord> {
    let offsets = p.offsets();
    let mut at = offsets.log_start;
    let mut out = Vec::new();
    let mut next = None;
    // Bounded: each read returns at least one batch and advances.
    while at < offsets.log_end {
        let read = p.read(at, 1 << 16).wait().expect("reading the partition");
        for b in read.batches() {
            let header = BatchHeader::parse(b).expect("a stored batch's header");
            if let Some(next) = next {
                assert_eq!(header.base_offset, next, "an offset gap between batches");
            }
            next = Some(header.next_offset());
            let section = batch::decompress(&header, b, 1 << 24).expect("decompressing");
            for r in batch::RecordIter::new_uncompressed(&header, &section) {
                let r = r.expect("a stored record");
                out.push((
                    r.offset,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                ));
            }
        }
        assert!(read.next_offset > at, "a read did not advance");
        at = read.next_offset;
    }
    out
}

/// The wall clock in milliseconds: timestamps that time-based retention (7 days by default)
/// keeps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads everything until EOF on a thread (the receiving side of a send test). Panics on a
/// read error (a test helper).
pub fn receive_all(
    mut rx: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        rx.read_to_end(&mut out).expect("reading a test socket");
        out
    })
}

/// A socket a send test can hand across threads.
pub trait AsFdSend: std::os::fd::AsFd + Send {}
impl<T: std::os::fd::AsFd + Send> AsFdSend for T {}
