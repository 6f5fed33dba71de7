#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Differential test of the drivers: the same operations on several partitions, run through
//! the simulated disk's driver, the syscall baseline and the io_uring driver (both sync modes),
//! give identical results and byte-identical files.

use proptest::prelude::*;
use rill_segment::disk::{Disk, FileId, SimDisk, StdDisk};
use rill_segment::partition::ReadLimit;
use rill_segment::plan::Round;
use rill_segment::recovery::OpenOptions;
use rill_segment::{LogConfig, PartitionLog};
use rill_tests::{make_batch, small_config};
use rill_uring::{ClosedFiles, DiskDriver, Doorbell, Driver, NotifyingDisk, ReadOp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PARTITIONS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// One driver batch: appends to some partitions (records, value bytes, durable), reads.
    Batch {
        appends: Vec<(usize, usize, usize, bool)>,
        reads: Vec<(usize, u8, u16)>,
    },
    Flush(usize),
    Truncate(usize, u8),
    DeleteBefore(usize, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            prop::collection::vec((0..PARTITIONS, 1usize..5, 0usize..500, any::<bool>()), 1..8),
            prop::collection::vec((0..PARTITIONS, any::<u8>(), 1u16..3000), 0..3),
        )
            .prop_map(|(appends, reads)| Step::Batch { appends, reads }),
        1 => (0..PARTITIONS).prop_map(Step::Flush),
        1 => (0..PARTITIONS, any::<u8>()).prop_map(|(p, f)| Step::Truncate(p, f)),
        1 => (0..PARTITIONS, any::<u8>()).prop_map(|(p, f)| Step::DeleteBefore(p, f)),
    ]
}

/// An offset at fraction `frac`/255 of the partition's range.
fn pick(log: &PartitionLog, frac: u8) -> i64 {
    let o = log.offsets();
    o.log_start + (o.log_end - o.log_start) * i64::from(frac) / 255
}

struct Env {
    disk: Arc<dyn Disk>,
    driver: Box<dyn Driver>,
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn config() -> LogConfig {
    LogConfig {
        checkpoint_interval_ms: 1_000_000,
        ..small_config()
    }
}

/// Runs `steps`; returns every result as text and every file's bytes by relative path.
fn run(steps: &[Step], mut env: Env) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    let now = 1_700_000_000_000;
    let mut logs: Vec<PartitionLog> = (0..PARTITIONS)
        .map(|p| {
            let dir = env.root.join(format!("t-{p}"));
            PartitionLog::open(
                Arc::clone(&env.disk),
                &dir,
                config(),
                OpenOptions {
                    repair: false,
                    now_ms: now,
                },
            )
            .expect("open")
            .0
        })
        .collect();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let now = now + i as i64;
        match step {
            Step::Batch { appends, reads } => {
                let mut rounds: Vec<Option<Round>> = (0..PARTITIONS).map(|_| None).collect();
                let mut durable = [false; PARTITIONS];
                for (j, &(p, records, value_bytes, is_durable)) in appends.iter().enumerate() {
                    let log = &mut logs[p];
                    if rounds[p].is_none() {
                        rounds[p] = Some(log.begin_round().expect("begin"));
                    }
                    let batch = make_batch(records, value_bytes, now, (i * 100 + j) as u64);
                    let Some(round) = rounds[p].as_mut() else {
                        continue;
                    };
                    if log.must_sync_before(batch.len()) {
                        out.push(format!("{p}: sync required"));
                        durable[p] = true;
                        continue;
                    }
                    out.push(format!("{p}: {:?}", log.plan_append(round, batch, now)));
                    durable[p] |= is_durable;
                }
                for p in 0..PARTITIONS {
                    if durable[p]
                        && let Some(round) = rounds[p].as_mut()
                    {
                        logs[p].plan_sync(round).expect("plan sync");
                    }
                }
                let mut ops = Vec::new();
                let mut ranges = Vec::new();
                for &(p, frac, max_bytes) in reads {
                    match logs[p].locate(
                        pick(&logs[p], frac),
                        u64::from(max_bytes),
                        ReadLimit::Written,
                    ) {
                        Ok(Some(range)) => {
                            ops.push(ReadOp::new(range.file, range.position, range.len as usize));
                            ranges.push((p, range));
                        }
                        other => out.push(format!("{p}: locate {other:?}")),
                    }
                }
                let mut refs: Vec<&mut Round> = rounds.iter_mut().flatten().collect();
                env.driver.run(&mut refs, &mut ops);
                for (p, round) in rounds.into_iter().enumerate() {
                    if let Some(round) = round {
                        out.push(format!("{p}: {:?}", logs[p].complete_round(round, now)));
                    }
                }
                for ((p, range), op) in ranges.into_iter().zip(ops) {
                    let bytes = op.result.expect("read ran").expect("read ok");
                    logs[p].check_read(&range, &bytes).expect("valid batches");
                    out.push(format!(
                        "{p}: read {} bytes {:x}",
                        bytes.len(),
                        crc32fast::hash(&bytes)
                    ));
                }
            }
            Step::Flush(p) => {
                let mut round = logs[*p].begin_round().expect("begin");
                logs[*p].plan_sync(&mut round).expect("plan sync");
                env.driver.run(&mut [&mut round], &mut []);
                out.push(format!(
                    "{p}: flush {:?}",
                    logs[*p].complete_round(round, now)
                ));
            }
            Step::Truncate(p, frac) => {
                let offset = pick(&logs[*p], *frac);
                out.push(format!(
                    "{p}: truncate {:?}",
                    logs[*p].truncate_to(offset, now)
                ));
            }
            Step::DeleteBefore(p, frac) => {
                let offset = pick(&logs[*p], *frac);
                let r = logs[*p]
                    .delete_before(offset, now)
                    .map(|o| o.log_start_offset);
                out.push(format!("{p}: delete_before {r:?}"));
            }
        }
        for (p, log) in logs.iter().enumerate() {
            out.push(format!("{p}: {:?}", log.offsets()));
        }
    }
    for log in &mut logs {
        out.push(format!("close {:?}", log.close()));
    }
    let files = files(env.disk.as_ref(), &env.root);
    (out, files)
}

fn files(disk: &dyn Disk, root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for p in 0..PARTITIONS {
        let dir = root.join(format!("t-{p}"));
        let mut names = disk.list_dir(&dir).expect("list");
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let file: FileId = disk
                .open(&path, rill_segment::disk::OpenMode::Existing)
                .expect("open file");
            let len = disk.file_len(file).expect("len") as usize;
            let mut bytes = vec![0u8; len];
            rill_segment::disk::read_exact_at(disk, file, 0, &mut bytes).expect("read file");
            disk.close(file);
            files.insert(format!("t-{p}/{name}"), bytes);
        }
    }
    files
}

fn sim_env() -> Env {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(7));
    let doorbell = Arc::new(Doorbell::new().expect("eventfd"));
    Env {
        driver: Box::new(DiskDriver::new(Arc::clone(&disk), doorbell)),
        disk,
        root: PathBuf::from("/data"),
        _tmp: None,
    }
}

fn real_env(kind: &str) -> Option<Env> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let closed = Arc::new(ClosedFiles::default());
    let disk: Arc<dyn Disk> = Arc::new(NotifyingDisk::new(
        Arc::new(StdDisk::new()),
        Arc::clone(&closed),
    ));
    let driver = rill_tests::real_driver(kind, &disk, closed)?;
    Some(Env {
        disk,
        driver,
        root: tmp.path().to_path_buf(),
        _tmp: Some(tmp),
    })
}

fn check(steps: &[Step]) {
    let (expected, expected_files) = run(steps, sim_env());
    assert!(!expected_files.is_empty());
    for kind in rill_tests::REAL_DRIVERS {
        let Some(env) = real_env(kind) else { continue };
        let (got, got_files) = run(steps, env);
        assert_eq!(
            got, expected,
            "{kind}: results differ from the simulated disk"
        );
        assert_eq!(
            got_files.keys().collect::<Vec<_>>(),
            expected_files.keys().collect::<Vec<_>>(),
            "{kind}: file sets differ"
        );
        for (name, bytes) in &expected_files {
            assert!(got_files[name] == *bytes, "{kind}: {name} differs");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn drivers_agree(steps in prop::collection::vec(step(), 1..40)) {
        check(&steps);
    }
}

#[test]
fn drivers_agree_on_a_long_run_with_rolls() {
    let steps: Vec<Step> = (0..120)
        .map(|i| Step::Batch {
            appends: (0..6)
                .map(|j| {
                    (
                        j % PARTITIONS,
                        1 + (i + j) % 4,
                        (i * 37 + j * 11) % 480,
                        (i + j) % 3 == 0,
                    )
                })
                .collect(),
            reads: vec![(i % PARTITIONS, (i * 7 % 256) as u8, 2000)],
        })
        .collect();
    check(&steps);
}
