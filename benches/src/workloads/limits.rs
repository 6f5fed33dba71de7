//! The machine's physical limits, measured by the harness itself so every other result can be
//! read as a fraction of them: buffered sequential write + fdatasync bandwidth, 4 KiB append +
//! fdatasync latency, loopback sendfile throughput, and (as root) sequential read bandwidth
//! of a newly written file from a dropped page cache, with the kernel's read-ahead and with
//! advised read-ahead (the limit is the faster).

use super::{can_drop_caches, drop_caches, mb_per_s};
use crate::harness::{Bench, Engine, Sample};
use crate::measure::{Latency, PERCENTILES};
use crate::report::WorkloadResult;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::time::Instant;

/// The limit metrics other workloads compare against.
pub const WRITE_MB_S: &str = "seq_write_fdatasync_mb_per_s";
/// 4 KiB append + fdatasync median latency.
pub const SYNC_P50_US: &str = "append_4k_fdatasync_p50_us";
/// Loopback sendfile throughput.
pub const SENDFILE_MB_S: &str = "loopback_sendfile_mb_per_s";
/// Sequential read bandwidth with a cold page cache.
pub const READ_MB_S: &str = "seq_read_cold_mb_per_s";

const MACHINE: &str = "this machine";

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let scale = bench.scale;
    let root = bench.scratch_root().to_path_buf();
    let mut cases = Vec::new();

    let write = Engine::new(
        MACHINE,
        "pwrite 1 MiB chunks to a new file, then one fdatasync",
        || sequential_write(&root, scale.limit_write_bytes),
    );
    cases.push(bench.run_case(
        "sequential write + fdatasync",
        BTreeMap::from([("bytes", scale.limit_write_bytes.into())]),
        vec![write],
        &[],
        "mb_per_s",
    ));

    let sync = Engine::new(
        MACHINE,
        "pwrite 4 KiB at the end of a new file, fdatasync, repeat",
        || append_sync_latency(&root, scale.limit_sync_iterations),
    );
    cases.push(bench.run_case(
        "4 KiB append + fdatasync",
        BTreeMap::from([("iterations", scale.limit_sync_iterations.into())]),
        vec![sync],
        &[],
        "p50_us",
    ));

    let source = root.join("sendfile-source");
    fill_file(&source, 64 << 20)?;
    let send = Engine::new(
        MACHINE,
        "sendfile of a page-cache resident 64 MiB file, repeated, to one loopback TCP reader",
        || loopback_sendfile(&source, scale.limit_send_bytes),
    );
    cases.push(bench.run_case(
        "loopback sendfile",
        BTreeMap::from([("bytes", scale.limit_send_bytes.into())]),
        vec![send],
        &[],
        "mb_per_s",
    ));
    std::fs::remove_file(&source)?;

    let mut notes =
        vec!["files live in the data directory, so the limits are those of its filesystem".into()];
    if can_drop_caches() {
        let source = root.join("read-source");
        let bytes = scale.limit_write_bytes;
        let read = |read_ahead: ReadAhead| {
            let source = source.clone();
            move || {
                // A new file each time: the state a replayed segment is in, not a file the
                // virtual disk's host has already served (re-reads of one file measured up
                // to 1.6x its first read here).
                fill_file(&source, bytes)?;
                sequential_read(&source, read_ahead)
            }
        };
        let engines = vec![
            Engine::new(
                READ_KERNEL_AHEAD,
                "write and fdatasync a new file, drop the page cache, pread 1 MiB chunks from start to end (the kernel's read-ahead)",
                read(ReadAhead::Kernel),
            ),
            Engine::new(
                READ_ADVISED_AHEAD,
                "the same, with posix_fadvise(WILLNEED) keeping the next 8 MiB on its way, as recovery's scan does",
                read(ReadAhead::Advised),
            ),
        ];
        cases.push(bench.run_case(
            "sequential read, cold",
            BTreeMap::from([("bytes", bytes.into())]),
            engines,
            &[(READ_ADVISED_AHEAD, READ_KERNEL_AHEAD)],
            "mb_per_s",
        ));
        std::fs::remove_file(&source)?;
        notes.push("the sequential-read limit is the faster of the two reads' medians".into());
    } else {
        notes.push("sequential read skipped: dropping the page cache needs root".into());
    }

    // The best engine's median: the machine does at least what its best method did.
    let median = |case: usize, metric: &str| {
        cases
            .get(case)?
            .engines
            .iter()
            .filter_map(|engine| engine.metrics.get(metric).map(|s| s.median))
            .reduce(f64::max)
    };
    for (name, value) in [
        (WRITE_MB_S, median(0, "mb_per_s")),
        (SYNC_P50_US, median(1, "p50_us")),
        (SENDFILE_MB_S, median(2, "mb_per_s")),
        (READ_MB_S, median(3, "mb_per_s")),
    ] {
        if let Some(value) = value {
            bench.limits.insert(name.to_string(), value);
        }
    }
    Ok(WorkloadResult {
        name: "limits".into(),
        description: "this machine's physical limits, the reference for every other workload"
            .into(),
        primary_metric: "mb_per_s".into(),
        columns: ["mb_per_s", "p50_us", "p99_us", "p999_us"]
            .map(String::from)
            .to_vec(),
        cases,
        notes,
    })
}

fn fill_file(path: &std::path::Path, bytes: u64) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let chunk = vec![0xa5_u8; 1 << 20];
    let mut at = 0;
    while at < bytes {
        file.write_all_at(&chunk, at)?;
        at += chunk.len() as u64;
    }
    file.sync_data()?;
    Ok(())
}

fn sequential_write(root: &std::path::Path, bytes: u64) -> Result<Sample> {
    let path = root.join("limit-write");
    let file = File::create(&path)?;
    let chunk = vec![0xa5_u8; 1 << 20];
    let start = Instant::now();
    let mut at = 0;
    while at < bytes {
        file.write_all_at(&chunk, at)?;
        at += chunk.len() as u64;
    }
    file.sync_data()?;
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Sample::from([("mb_per_s", mb_per_s(at, seconds))]))
}

/// The sequential-read limit's engine that leaves read-ahead to the kernel.
pub const READ_KERNEL_AHEAD: &str = "1 MiB preads";
/// The one that advises read-ahead itself, as recovery's scan does.
pub const READ_ADVISED_AHEAD: &str = "1 MiB preads, 8 MiB advised ahead";

/// Read-ahead beyond the kernel's own, the same window as recovery's scan
/// (`rill_segment`'s `scan`, renewed at half).
const ADVISED_AHEAD_BYTES: u64 = 8 << 20;

/// How a sequential read keeps the disk busy ahead of it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadAhead {
    /// The kernel's read-ahead alone.
    Kernel,
    /// `posix_fadvise(WILLNEED)` over the next [`ADVISED_AHEAD_BYTES`], renewed at half.
    Advised,
}

/// Drops the page cache, then reads `path` from start to end with 1 MiB `pread`s: the
/// sequential-read limit (also measured by `recovery` on the file it replays).
pub(crate) fn sequential_read(path: &std::path::Path, read_ahead: ReadAhead) -> Result<Sample> {
    drop_caches()?;
    let file = File::open(path)?;
    let mut chunk = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut at = 0u64;
    let mut advised_to = 0u64;
    // Bounded by the file's length: every pass reads at least one byte or stops.
    loop {
        if matches!(read_ahead, ReadAhead::Advised) && advised_to < at + ADVISED_AHEAD_BYTES / 2 {
            let from = advised_to.max(at);
            // Advice only: a refusal leaves the kernel's own read-ahead.
            let _ = rustix::fs::fadvise(
                &file,
                from,
                std::num::NonZeroU64::new(ADVISED_AHEAD_BYTES),
                rustix::fs::Advice::WillNeed,
            );
            advised_to = from + ADVISED_AHEAD_BYTES;
        }
        let n = file.read_at(&mut chunk, at)?;
        if n == 0 {
            break;
        }
        at += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Sample::from([("mb_per_s", mb_per_s(at, seconds))]))
}

fn append_sync_latency(root: &std::path::Path, iterations: usize) -> Result<Sample> {
    let path = root.join("limit-sync");
    let file = File::create(&path)?;
    let block = [0x5a_u8; 4096];
    let mut latency = Latency::new();
    for i in 0..iterations as u64 {
        let start = Instant::now();
        file.write_all_at(&block, i * 4096)?;
        file.sync_data()?;
        latency.record(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(PERCENTILES
        .iter()
        .map(|(name, p)| (*name, latency.percentile_us(*p)))
        .collect())
}

fn loopback_sendfile(source: &std::path::Path, bytes: u64) -> Result<Sample> {
    let file = File::open(source)?;
    let file_bytes = file.metadata()?.len();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let tx = TcpStream::connect(listener.local_addr()?)?;
    let (mut rx, _) = listener.accept()?;
    let receiver = std::thread::spawn(move || -> u64 {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        while let Ok(n) = rx.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let mut offset = 0u64;
        while offset < file_bytes {
            let count = (file_bytes - offset) as usize;
            let n = rustix::fs::sendfile(&tx, &file, Some(&mut offset), count)?;
            anyhow::ensure!(n > 0, "sendfile sent nothing");
            sent += n as u64;
        }
    }
    drop(tx);
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(received == sent, "sent {sent} bytes, received {received}");
    Ok(Sample::from([("mb_per_s", mb_per_s(sent, seconds))]))
}
