#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Differential test of the drivers: the same operations on several partitions (appends
//! written by the log, their fdatasyncs and reads started together on a driver and completed as
//! they come back), run through the simulated disk's driver, the syscall baseline and the
//! io_uring driver, give identical results and byte-identical files.

use proptest::prelude::*;
use rill_segment::disk::{Disk, FileId, StdDisk};
use rill_segment::partition::{ReadLimit, SyncTicket, ValidBatch, WatermarkTicket};
use rill_segment::recovery::OpenOptions;
use rill_segment::{LogConfig, PartitionLog};
use rill_sim::SimDisk;
use rill_tests::{drive, make_batch, small_config};
use rill_uring::{ClosedFiles, Completion, DiskDriver, Doorbell, Driver, NotifyingDisk, ReadOp};
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
                let mut durable = [false; PARTITIONS];
                for (j, &(p, records, value_bytes, is_durable)) in appends.iter().enumerate() {
                    let log = &mut logs[p];
                    let batch = make_batch(records, value_bytes, now, (i * 100 + j) as u64);
                    if log.must_sync_before(batch.len()) {
                        out.push(format!("{p}: sync required"));
                        durable[p] = true;
                        continue;
                    }
                    let batch = ValidBatch::validate(batch, config().max_batch_bytes);
                    let result = batch
                        .map_err(Into::into)
                        .and_then(|b| log.append_valid(b, now));
                    out.push(format!("{p}: {result:?}"));
                    durable[p] |= is_durable;
                }
                let mut syncs = Syncs::default();
                for p in 0..PARTITIONS {
                    if durable[p] {
                        syncs.start(p, &mut logs[p], env.driver.as_mut());
                    }
                }
                let mut ranges = Vec::new();
                for &(p, frac, max_bytes) in reads {
                    match logs[p].locate(
                        pick(&logs[p], frac),
                        u64::from(max_bytes),
                        ReadLimit::Written,
                    ) {
                        Ok(Some(range)) => {
                            let token = 1000 + ranges.len() as u64;
                            let op = ReadOp::new(range.file, range.position, range.len as usize);
                            env.driver.start_read(token, op);
                            ranges.push((p, range));
                        }
                        other => out.push(format!("{p}: locate {other:?}")),
                    }
                }
                let mut read_bytes = BTreeMap::new();
                for completion in drive(env.driver.as_mut(), syncs.files + ranges.len()) {
                    match completion {
                        Completion::Sync { token, result, .. } => syncs.done(token, result),
                        Completion::Read { token, result } => {
                            read_bytes.insert(token, result.expect("read ok"));
                        }
                    }
                }
                syncs.complete(&mut logs, &mut out);
                for (r, (p, range)) in ranges.into_iter().enumerate() {
                    let bytes = &read_bytes[&(1000 + r as u64)];
                    logs[p].check_read(&range, bytes).expect("valid batches");
                    out.push(format!(
                        "{p}: read {} bytes {:x}",
                        bytes.len(),
                        crc32fast::hash(bytes)
                    ));
                }
            }
            Step::Flush(p) => {
                let mut syncs = Syncs::default();
                syncs.start(*p, &mut logs[*p], env.driver.as_mut());
                for completion in drive(env.driver.as_mut(), syncs.files) {
                    if let Completion::Sync { token, result, .. } = completion {
                        syncs.done(token, result);
                    }
                }
                syncs.complete(&mut logs, &mut out);
                out.push(format!("{p}: flush {:?}", logs[*p].offsets()));
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

/// The syncs of one step: one per partition, each over several files, and its watermark slot.
#[derive(Default)]
struct Syncs {
    /// Per partition: its ticket, and the first failed fdatasync.
    begun: BTreeMap<usize, (SyncTicket, Option<(FileId, std::io::Error)>)>,
    /// Per partition: its watermark slot, and its fdatasync's result once done.
    watermarks: BTreeMap<usize, (WatermarkTicket, Option<std::io::Result<()>>)>,
    /// fdatasyncs started in all.
    files: usize,
}

/// Tokens of watermark fdatasyncs (partition tokens are below).
const WATERMARK_TOKEN: u64 = 1 << 32;

impl Syncs {
    fn start(&mut self, p: usize, log: &mut PartitionLog, driver: &mut dyn Driver) {
        let mut files = Vec::new();
        match log.begin_sync(&mut files) {
            Ok(Some(ticket)) => {
                for &file in &files {
                    driver.start_sync(p as u64, file);
                }
                self.files += files.len();
                self.begun.insert(p, (ticket, None));
            }
            Ok(None) => return,
            Err(e) => panic!("begin sync: {e}"),
        }
        if let Some((file, ticket)) = log.begin_watermark(0).expect("begin watermark") {
            driver.start_background_sync(WATERMARK_TOKEN + p as u64, file);
            self.files += 1;
            self.watermarks.insert(p, (ticket, None));
        }
    }

    fn done(&mut self, token: u64, result: std::io::Result<()>) {
        if token >= WATERMARK_TOKEN {
            let p = (token - WATERMARK_TOKEN) as usize;
            self.watermarks.get_mut(&p).expect("known watermark").1 = Some(result);
            return;
        }
        let entry = self.begun.get_mut(&(token as usize)).expect("known sync");
        if let Err(e) = result {
            entry.1.get_or_insert((FileId(u64::MAX), e));
        }
    }

    fn complete(self, logs: &mut [PartitionLog], out: &mut Vec<String>) {
        for (p, (ticket, failure)) in self.begun {
            let result = logs[p].complete_sync(ticket, failure.map_or(Ok(()), Err));
            out.push(format!("{p}: sync {result:?}"));
        }
        for (p, (ticket, result)) in self.watermarks {
            let result = logs[p].complete_watermark(ticket, result.expect("watermark synced"));
            out.push(format!("{p}: watermark {result:?}"));
        }
    }
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
        cases: rill_tests::proptest_cases(24),
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
