#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Topic deletion on disk: a deletion that failed in a running process must not doom a topic
//! created again under the same name (issue #15, item 1), a second deletion of the name works,
//! and a deletion a crash interrupted is still finished at the next open.

use rill::{Config, Durability, Log};
use rill_tests::make_batch;
use std::path::Path;

fn open(dir: &Path) -> (Log, rill::OpenReport) {
    Log::open(Config::new(dir)).unwrap()
}

/// What a deletion that failed after its renames leaves: `.delete` directories that hold the
/// old partitions' files (here made by hand: the failure itself needs a disk that fails).
fn leave_failed_deletion(dir: &Path, topic: &str, partitions: u32) {
    for index in 0..partitions {
        let doomed = dir.join(format!("{topic}-{index}.delete"));
        std::fs::create_dir(&doomed).unwrap();
        std::fs::write(doomed.join("00000000000000000000.log"), b"old data").unwrap();
    }
}

fn append_durable(log: &Log, topic: &str, partitions: u32) {
    for index in 0..partitions {
        let p = log.partition(topic, index).unwrap();
        p.append_with(make_batch(3, 50, 0, u64::from(index)), Durability::Durable)
            .wait()
            .unwrap();
    }
}

#[test]
fn a_topic_created_again_after_a_failed_deletion_survives_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.create_topic("t", 2).unwrap();
    log.delete_topic("t").unwrap();
    leave_failed_deletion(dir.path(), "t", 2);
    log.create_topic("t", 2).unwrap();
    append_durable(&log, "t", 2);
    log.close().unwrap();

    let (log, report) = open(dir.path());
    assert!(report.deletions_finished.is_empty(), "{report:?}");
    for index in 0..2 {
        let p = log.partition("t", index).unwrap();
        assert_eq!(p.offsets().log_end, 3, "partition {index} kept its data");
    }
    log.close().unwrap();
}

#[test]
fn a_name_deleted_again_after_a_failed_deletion_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.create_topic("t", 1).unwrap();
    log.delete_topic("t").unwrap();
    leave_failed_deletion(dir.path(), "t", 1);
    log.create_topic("t", 1).unwrap();
    append_durable(&log, "t", 1);
    log.delete_topic("t").unwrap();
    assert!(!dir.path().join("t-0").exists());
    assert!(!dir.path().join("t-0.delete").exists());
    log.close().unwrap();
    let (log, _) = open(dir.path());
    assert!(log.topics().is_empty());
    log.close().unwrap();
}

#[test]
fn a_deletion_a_crash_interrupted_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.create_topic("gone", 3).unwrap();
    log.create_topic("kept", 1).unwrap();
    append_durable(&log, "gone", 3);
    append_durable(&log, "kept", 1);
    log.close().unwrap();
    // A crash after the first rename: one partition set aside, two under their live names.
    std::fs::rename(dir.path().join("gone-1"), dir.path().join("gone-1.delete")).unwrap();

    let (log, report) = open(dir.path());
    assert_eq!(report.deletions_finished, vec!["gone".to_string()]);
    assert_eq!(log.topics().len(), 1);
    assert_eq!(log.partition("kept", 0).unwrap().offsets().log_end, 3);
    for index in 0..3 {
        assert!(!dir.path().join(format!("gone-{index}")).exists());
    }
    log.close().unwrap();
}
