#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! The partition log on the real file system (ext4 here): Kafka file names, preallocation,
//! clean and unclean reopen, damage planted with ordinary file writes.

use rill_segment::disk::{Disk, StdDisk};
use rill_segment::partition::ReadLimit;
use rill_segment::recovery::{OpenOptions, RecoveryReport};
use rill_segment::{Durability, LogConfig, LogError, PartitionLog, Preallocate};
use rill_tests::{as_stored, log_path, make_batch, read_all};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn config(preallocate: Preallocate) -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        max_batch_bytes: 16 * 1024,
        segment_ms: None,
        retention_ms: None,
        preallocate,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: &LogConfig) -> Result<(PartitionLog, RecoveryReport), LogError> {
    let disk: Arc<dyn Disk> = Arc::new(StdDisk::new());
    PartitionLog::open(disk, dir, config.clone(), OpenOptions::default())
}

fn fill(log: &mut PartitionLog, n: usize) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let batch = make_batch(10, 500, i as i64, i as u64);
            let info = log.append(batch.clone(), Durability::Durable, 0).unwrap();
            (info.base_offset, as_stored(&batch, info.base_offset))
        })
        .collect()
}

#[test]
fn files_have_kafka_names_and_survive_a_clean_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-3");
    let config = config(Preallocate::None);
    let (mut log, report) = open(&dir, &config).unwrap();
    assert_eq!(report.log_end_offset, 0);
    let all = fill(&mut log, 40);
    log.close().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"00000000000000000000.log".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"00000000000000000000.index".to_string()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
    assert!(names.contains(&"partition.checkpoint".to_string()));
    let (log, report) = open(&dir, &config).unwrap();
    assert!(report.clean_load);
    assert_eq!(read_all(&log).unwrap(), all);
    log.verify().unwrap();
}

#[test]
fn preallocated_segments_recover_with_their_zero_tail() {
    for mode in [Preallocate::Fallocate, Preallocate::Zeroed] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = config(mode);
        let (mut log, _) = open(&dir, &config).unwrap();
        let all = fill(&mut log, 30);
        let active = *log.segment_base_offsets().last().unwrap();
        let active_path = log_path(&dir, active);
        assert_eq!(
            std::fs::metadata(&active_path).unwrap().len(),
            64 * 1024,
            "{mode:?}"
        );
        // Sealed segments were trimmed to their batches.
        let first = log_path(&dir, 0);
        assert!(std::fs::metadata(first).unwrap().len() < 64 * 1024);
        log.verify().unwrap();
        // Unclean stop: the preallocated zeros are recognised, not mistaken for data or damage.
        drop(log);
        let (log, report) = open(&dir, &config).unwrap();
        assert!(!report.clean_load);
        assert_eq!(report.bytes_truncated, 0, "{mode:?}");
        assert!(report.zero_tail_bytes > 0, "{mode:?}");
        assert_eq!(read_all(&log).unwrap(), all);
        log.verify().unwrap();
        // Clean close trims the tail; the next open preallocates again.
        let mut log = log;
        log.close().unwrap();
        let len = std::fs::metadata(&active_path).unwrap().len();
        assert!(len < 64 * 1024);
        let (log, report) = open(&dir, &config).unwrap();
        assert!(report.clean_load);
        assert_eq!(std::fs::metadata(&active_path).unwrap().len(), 64 * 1024);
        assert_eq!(read_all(&log).unwrap(), all);
    }
}

#[test]
fn garbage_written_after_an_unclean_stop_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = config(Preallocate::None);
    let (mut log, _) = open(&dir, &config).unwrap();
    let all = fill(&mut log, 5);
    let active = log_path(&dir, *log.segment_base_offsets().last().unwrap());
    drop(log);
    // Half a batch header, as a crash in the middle of an append leaves it.
    let torn = make_batch(3, 50, 0, 99);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(&torn[..40])
        .unwrap();
    let (log, report) = open(&dir, &config).unwrap();
    assert_eq!(report.bytes_truncated, 40);
    assert_eq!(read_all(&log).unwrap(), all);
    assert_eq!(
        std::fs::metadata(&active).unwrap().len(),
        all.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
}

#[test]
fn corruption_of_acknowledged_data_names_the_file_and_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = config(Preallocate::None);
    let (mut log, _) = open(&dir, &config).unwrap();
    let all = fill(&mut log, 6);
    drop(log);
    let path = log_path(&dir, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = all[0].1.len();
    bytes[second + 100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    match open(&dir, &config) {
        Err(LogError::Corrupt(c)) => {
            assert_eq!(c.path, path);
            assert_eq!(c.byte_range.start, second as u64);
            assert_eq!(c.offset, all[1].0);
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn read_limit_durable_hides_unsynced_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(&tmp.path().join("t-0"), &config(Preallocate::None)).unwrap();
    fill(&mut log, 2);
    let durable_end = log.offsets().durable;
    log.append(make_batch(2, 10, 0, 1), Durability::Written, 0)
        .unwrap();
    assert!(
        log.read(durable_end, 1 << 20, ReadLimit::Durable)
            .unwrap()
            .bytes
            .is_empty()
    );
    assert!(
        !log.read(durable_end, 1 << 20, ReadLimit::Written)
            .unwrap()
            .bytes
            .is_empty()
    );
}
