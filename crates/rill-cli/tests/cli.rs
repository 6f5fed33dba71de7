#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! The `rill` binary on a real log written by the library: `stat` and `verify` agree with
//! what was appended, `verify` names the file and bytes of a flipped byte or a bad index entry
//! and exits 1, `dump` lists every batch (with records) and flags a bad CRC.

use rill::{Config, Log, LogConfig, Record};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A closed log: topic `a` (2 partitions) and `b` (1); partition a-0 spans several segments.
/// Returns the data dir and the (partition dir, log end, batches) of each partition.
fn write_log() -> (tempfile::TempDir, Vec<(PathBuf, i64, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.log = LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        max_batch_bytes: 8 * 1024,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(config).unwrap();
    log.create_topic("a", 2).unwrap();
    log.create_topic("b", 1).unwrap();
    let value = vec![b'v'; 300];
    let mut expected = Vec::new();
    for (topic, index, batches) in [("a", 0u32, 60u64), ("a", 1, 3), ("b", 0, 1)] {
        let p = log.partition(topic, index).unwrap();
        for i in 0..batches {
            let records: Vec<Record<'_>> = (0..3)
                .map(|j| Record::value(1_700_000_000_000 + (i * 3 + j) as i64, &value))
                .collect();
            p.append_records(&records).wait().unwrap();
        }
        let end = p.offsets().log_end;
        expected.push((dir.path().join(format!("{topic}-{index}")), end, batches));
    }
    log.close().unwrap();
    (dir, expected)
}

fn segments(partition: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

#[test]
fn stat_and_verify_agree_with_what_was_appended() {
    let (dir, expected) = write_log();
    let data = dir.path().to_str().unwrap();
    let out = rill(&["stat", data]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for (path, end, _) in &expected {
        let name = path.file_name().unwrap().to_str().unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[2], "0", "log start of {name}");
        assert_eq!(fields[3], end.to_string(), "log end of {name}");
    }
    assert!(
        segments(&expected[0].0).len() >= 3,
        "a-0 has several segments"
    );

    let out = rill(&["verify", data]);
    assert!(out.status.success(), "{}", stdout(&out));
    let total: u64 = expected.iter().map(|(_, _, b)| b).sum();
    let text = stdout(&out);
    assert!(text.contains("3 partitions"), "{text}");
    assert!(text.contains(&format!("{total} batches")), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
    // One partition directory works too.
    let out = rill(&["verify", expected[1].0.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("1 partitions"));
}

#[test]
fn verify_names_the_file_and_bytes_of_damage() {
    let (dir, expected) = write_log();
    let second = segments(&expected[0].0)[1].clone();
    // Inside the records of the segment's third batch (bytes the CRC covers).
    let clean = stdout(&rill(&["dump", second.to_str().unwrap()]));
    let third: u64 = clean
        .lines()
        .filter_map(|l| l.split("position: ").nth(1))
        .nth(2)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let flipped = third + 70;
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[flipped as usize] ^= 0x40;
    std::fs::write(&second, &bytes).unwrap();

    let out = rill(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let problem = text
        .lines()
        .find(|l| l.starts_with("PROBLEM"))
        .expect("a problem line");
    assert!(problem.contains(second.to_str().unwrap()), "{problem}");
    let range = problem
        .split("bytes ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    let (start, end) = range.split_once("..").unwrap();
    let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
    assert!(start <= flipped && flipped < end, "{flipped} in {range}");

    // The dump shows the bad batch instead of hiding it, and exits 1.
    let out = rill(&["dump", second.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.matches("isValid: false").count(), 1, "{text}");
    assert!(text.contains("isValid: true"));
}

#[test]
fn verify_checks_index_entries_against_the_batches() {
    let (dir, expected) = write_log();
    let first = segments(&expected[0].0)[0].clone();
    let index = first.with_extension("index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16, "the segment has index entries");
    // Point the second entry one byte past its batch start (still increasing).
    let position = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
    bytes[12..16].copy_from_slice(&(position + 1).to_be_bytes());
    std::fs::write(&index, &bytes).unwrap();
    let out = rill(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(index.to_str().unwrap()) && text.contains("offset index entry"),
        "{text}"
    );
}

#[test]
fn dump_lists_batches_records_and_index_entries() {
    let (_dir, expected) = write_log();
    let b0 = segments(&expected[2].0)[0].clone();
    let out = rill(&["dump", "--records", b0.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert_eq!(text.matches("baseOffset:").count(), 1);
    assert!(
        text.contains("baseOffset: 0 lastOffset: 2 count: 3"),
        "{text}"
    );
    assert_eq!(text.matches("  | offset:").count(), 3);
    assert!(text.contains("timestamp: 1700000000000"));

    let a0 = segments(&expected[0].0)[0].clone();
    let out = rill(&["dump", a0.with_extension("index").to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("position:"));
    let out = rill(&["dump", a0.with_extension("timeindex").to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("timestamp:"));
}

#[test]
fn bad_paths_exit_2_with_a_message() {
    let out = rill(&["verify", "/nonexistent/rill"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rill:"));
    let out = rill(&["dump", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A compacted log (batches holding fewer records than their offsets, empty batches over
/// emptied runs, a clean point): `verify` passes it, `stat` shows its clean point and dirty
/// share, and `dump` lists the batches.
#[test]
fn verify_and_stat_understand_a_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.log = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        max_batch_bytes: 2048,
        retention_ms: None,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(config).unwrap();
    let topic = rill::TopicConfig {
        cleanup_policy: Some(rill::CleanupPolicy::Compact),
        ..rill::TopicConfig::default()
    };
    log.create_topic_with("c", 1, &topic).unwrap();
    let p = log.partition("c", 0).unwrap();
    for i in 0..200u32 {
        let key = format!("k{}", i % 7);
        let value = format!("v{i}");
        let record = Record {
            key: Some(key.as_bytes()),
            ..Record::value(1_700_000_000_000, value.as_bytes())
        };
        p.append_records(&[record]).wait().unwrap();
    }
    let report = p.compact_now().unwrap().unwrap();
    assert!(report.records_removed > 0);
    // More appends, so the partition has a dirty part again.
    for i in 0..100u32 {
        let value = format!("w{i}");
        let record = Record {
            key: Some(b"k0"),
            ..Record::value(1_700_000_000_000, value.as_bytes())
        };
        p.append_records(&[record]).wait().unwrap();
    }
    log.close().unwrap();
    let part = dir.path().join("c-0");
    let out = rill(&["verify", part.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "verify refused a compacted log: {out:?}"
    );
    let out = rill(&["stat", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with("c-0")).unwrap();
    assert!(
        line.contains(&format!("compacted: clean to {}", report.clean_point)),
        "{line}"
    );
    assert!(line.contains("% dirty"), "{line}");
    let first = &segments(&part)[0];
    let out = rill(&["dump", first.to_str().unwrap(), "--records"]);
    assert!(out.status.success(), "{out:?}");
}
