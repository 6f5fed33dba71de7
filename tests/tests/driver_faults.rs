#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Drivers under faults: an fdatasync error fail-stops only its partition (never retried and
//! trusted), a full submission queue is drained rather than an error, and a nearly full file
//! system (short writes, then ENOSPC) fail-stops the partition with everything acknowledged
//! still readable.

use rill_segment::disk::{Disk, FileId, OpenMode, StdDisk};
use rill_segment::partition::{SyncTicket, ValidBatch, WatermarkTicket};
use rill_segment::recovery::OpenOptions;
use rill_segment::{LogConfig, LogError, PartitionLog};
use rill_tests::make_batch;
use rill_uring::{
    ClosedFiles, Completion, Doorbell, Driver, DriverError, NotifyingDisk, RingConfig, UringDriver,
    UringOptions,
};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A disk whose files under `doomed` are backed, for drivers, by `/dev/null`: writes succeed
/// and every fdatasync fails (EINVAL), as a failing device would.
#[derive(Debug)]
struct FailingSync {
    inner: StdDisk,
    doomed: PathBuf,
    null: Arc<std::fs::File>,
    files: Mutex<std::collections::HashMap<FileId, PathBuf>>,
}

impl Disk for FailingSync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileId> {
        let id = self.inner.open(path, mode)?;
        self.files.lock().unwrap().insert(id, path.to_path_buf());
        Ok(id)
    }
    fn close(&self, file: FileId) {
        self.inner.close(file);
    }
    fn file_len(&self, file: FileId) -> io::Result<u64> {
        self.inner.file_len(file)
    }
    fn read_at(&self, file: FileId, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(file, pos, buf)
    }
    fn write_at(&self, file: FileId, pos: u64, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_at(file, pos, bufs)
    }
    fn set_len(&self, file: FileId, len: u64) -> io::Result<()> {
        self.inner.set_len(file, len)
    }
    fn allocate(&self, file: FileId, len: u64) -> io::Result<()> {
        self.inner.allocate(file, len)
    }
    fn fdatasync(&self, file: FileId) -> io::Result<()> {
        if self.is_doomed(file) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.fdatasync(file)
    }
    fn drop_cache(&self, file: FileId) -> io::Result<()> {
        self.inner.drop_cache(file)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn shared_file(&self, file: FileId) -> io::Result<Arc<std::fs::File>> {
        if self.is_doomed(file) {
            return Ok(Arc::clone(&self.null));
        }
        self.inner.shared_file(file)
    }
}

impl FailingSync {
    fn is_doomed(&self, file: FileId) -> bool {
        self.files.lock().unwrap().get(&file).is_some_and(|p| {
            p.starts_with(&self.doomed) && p.extension().is_some_and(|e| e == "log")
        })
    }
}

fn open_log(disk: &Arc<dyn Disk>, dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(Arc::clone(disk), dir, config, OpenOptions::default())
        .unwrap()
        .0
}

fn uring(
    disk: &Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
    options: UringOptions,
) -> Option<UringDriver> {
    match UringDriver::new(
        Arc::clone(disk),
        closed,
        Arc::new(Doorbell::new().unwrap()),
        options,
    ) {
        Ok(d) => Some(d),
        Err(DriverError::Unsupported { what }) => {
            rill_tests::skip_or_fail(&format!("io_uring unavailable: {what}"));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Appends one batch to each log, then syncs them all together on the driver; returns each
/// sync's completion.
fn durable_round(
    driver: &mut dyn Driver,
    logs: &mut [PartitionLog],
    now: i64,
) -> Vec<Result<i64, LogError>> {
    for (i, log) in logs.iter_mut().enumerate() {
        let batch = ValidBatch::validate(make_batch(3, 100, now, i as u64), 1 << 20).unwrap();
        log.append_valid(batch, now).unwrap();
    }
    sync_all(driver, logs)
}

/// Begins a sync of every log, runs their fdatasyncs together, and completes them.
fn sync_all(driver: &mut dyn Driver, logs: &mut [PartitionLog]) -> Vec<Result<i64, LogError>> {
    const WATERMARK: u64 = 1 << 32;
    let mut tickets: Vec<(SyncTicket, Option<(FileId, io::Error)>)> = Vec::new();
    let mut watermarks: Vec<Option<(WatermarkTicket, io::Result<()>)>> = Vec::new();
    let mut started = 0;
    for (i, log) in logs.iter_mut().enumerate() {
        let mut files = Vec::new();
        let ticket = log.begin_sync(&mut files).unwrap().unwrap();
        for &file in &files {
            driver.start_sync(i as u64, file);
        }
        started += files.len();
        tickets.push((ticket, None));
        let watermark = log.begin_watermark(0).unwrap();
        if let Some((file, _)) = watermark {
            driver.start_background_sync(WATERMARK + i as u64, file);
            started += 1;
        }
        watermarks.push(watermark.map(|(_, ticket)| (ticket, Ok(()))));
    }
    for completion in rill_tests::drive(driver, started) {
        if let Completion::Sync {
            token,
            file,
            result: Err(e),
        } = completion
        {
            if token >= WATERMARK {
                if let Some(w) = watermarks[(token - WATERMARK) as usize].as_mut() {
                    w.1 = Err(e);
                }
            } else {
                tickets[token as usize].1.get_or_insert((file, e));
            }
        }
    }
    logs.iter_mut()
        .zip(tickets.into_iter().zip(watermarks))
        .map(|(log, ((ticket, failure), watermark))| {
            let durable = log.complete_sync(ticket, failure.map_or(Ok(()), Err));
            let written = match watermark {
                Some((ticket, result)) => log.complete_watermark(ticket, result),
                None => Ok(()),
            };
            durable.and_then(|d| written.map(|()| d))
        })
        .collect()
}

#[test]
fn an_fdatasync_error_fail_stops_only_its_partition() {
    for kind in rill_tests::REAL_DRIVERS {
        let tmp = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Disk> = Arc::new(FailingSync {
            inner: StdDisk::new(),
            doomed: tmp.path().join("bad-0"),
            null: Arc::new(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .unwrap(),
            ),
            files: Mutex::default(),
        });
        let closed = Arc::new(ClosedFiles::default());
        let disk: Arc<dyn Disk> = Arc::new(NotifyingDisk::new(inner, Arc::clone(&closed)));
        // A driver that cannot run here is reported (a failure under CI); the others still run.
        let Some(mut driver) = rill_tests::real_driver(kind, &disk, closed) else {
            continue;
        };
        let config = LogConfig::default();
        let mut logs = vec![
            open_log(&disk, &tmp.path().join("good-0"), config.clone()),
            open_log(&disk, &tmp.path().join("bad-0"), config.clone()),
            open_log(&disk, &tmp.path().join("good-1"), config),
        ];
        let results = durable_round(driver.as_mut(), &mut logs, 1);
        assert!(
            results[0].is_ok() && results[2].is_ok(),
            "{kind}: {results:?}"
        );
        assert!(
            matches!(results[1], Err(LogError::Failed(_))),
            "{kind}: {results:?}"
        );
        assert_eq!(
            logs[1].offsets().durable,
            0,
            "{kind}: nothing acknowledged durable"
        );
        // Fail-stop: later appends are refused, the others go on.
        let batch = ValidBatch::validate(make_batch(1, 1, 2, 0), 1 << 20).unwrap();
        assert!(matches!(
            logs[1].append_valid(batch, 2),
            Err(LogError::Failed(_))
        ));
        let mut good = vec![logs.remove(0), logs.remove(1)];
        let again = durable_round(driver.as_mut(), &mut good, 2);
        assert!(again.iter().all(Result::is_ok), "{kind}: {again:?}");
    }
}

#[test]
fn a_full_submission_queue_is_drained_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = Arc::new(ClosedFiles::default());
    let disk: Arc<dyn Disk> = Arc::new(NotifyingDisk::new(
        Arc::new(StdDisk::new()),
        Arc::clone(&closed),
    ));
    {
        let options = UringOptions {
            ring: RingConfig {
                sq_entries: 4,
                cq_entries: 8,
                registered_files: 8,
                ..RingConfig::default()
            },
            ..UringOptions::default()
        };
        let Some(mut driver) = uring(&disk, Arc::clone(&closed), options) else {
            return;
        };
        let mut logs: Vec<PartitionLog> = (0..40)
            .map(|i| {
                open_log(
                    &disk,
                    &tmp.path().join(format!("p-{i}")),
                    LogConfig {
                        watermark_interval_ms: 0,
                        ..LogConfig::default()
                    },
                )
            })
            .collect();
        for now in 0..3 {
            let results = durable_round(&mut driver, &mut logs, now);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        let stats = driver.stats();
        assert!(
            stats.sq_full > 0,
            "the queue overflowed into the backlog: {stats:?}"
        );
        // The first round syncs each log file; later ones also each watermark file.
        assert_eq!(stats.syncs, 40 + 2 * 40 * 2, "{stats:?}");
        for log in &mut logs {
            assert_eq!(log.offsets().durable, log.offsets().log_end);
            log.close().unwrap();
        }
    }
}

#[test]
fn a_full_file_system_fail_stops_and_keeps_what_was_acknowledged() {
    for kind in rill_tests::REAL_DRIVERS {
        let Some((_tmp, mnt)) = rill_tests::small_tmpfs(256 * 1024) else {
            rill_tests::skip_or_fail("cannot mount a tmpfs here (not root?)");
            return;
        };
        let result = std::panic::catch_unwind(|| fill_until_enospc(&mnt, kind));
        rill_tests::unmount(&mnt);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

fn fill_until_enospc(mnt: &Path, kind: &str) {
    let closed = Arc::new(ClosedFiles::default());
    let disk: Arc<dyn Disk> = Arc::new(NotifyingDisk::new(
        Arc::new(StdDisk::new()),
        Arc::clone(&closed),
    ));
    let Some(mut driver) = rill_tests::real_driver(kind, &disk, closed) else {
        return;
    };
    let config = LogConfig {
        max_batch_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let mut log = open_log(&disk, &mnt.join("p-0"), config);
    let mut acked = 0;
    let mut failed = None;
    // Bounded: the file system fills within 256 KiB / 40 KiB rounds.
    for now in 0..100 {
        let batch = ValidBatch::validate(make_batch(4, 10_000, now, now as u64), 1 << 20).unwrap();
        let synced = match log.append_valid(batch, now) {
            Ok(_) => sync_all(driver.as_mut(), std::slice::from_mut(&mut log)).remove(0),
            Err(e) => Err(e),
        };
        match synced {
            Ok(durable) => acked = durable,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(failed, Some(LogError::Failed(ref r)) if r.os_error == Some(28)),
        "{kind}: {failed:?}"
    );
    assert_eq!(log.offsets().durable, acked);
    assert!(acked > 0);
    // Everything acknowledged reads back.
    let all = log
        .read(0, u64::MAX, rill_segment::partition::ReadLimit::Durable)
        .unwrap();
    assert!(all.next_offset > 0);
    let _ = log.close();
}
