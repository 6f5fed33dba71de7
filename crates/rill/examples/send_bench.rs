//! A quick measurement of the send path: consumers over loopback TCP fetch a whole partition
//! with `Partition::send`, for each strategy (splice, sendfile, copy) on the io_uring driver
//! and sendfile on the syscall driver (the baseline), with 1 and with 16 consumers. Runs are
//! interleaved (every configuration once per repetition) and medians reported with min..max.
//!
//! Reported per configuration: MB/s received by all consumers together, and CPU seconds per
//! GiB: process CPU (shard threads, io-wq workers, consumers) minus the receiving threads'
//! own CPU, i.e. what sending cost. The full harness is the next issue's `rill bench`.
//!
//! ```sh
//! cargo run --release -p rill --example send_bench -- --mib 128 --reps 5
//! ```

#![allow(
    clippy::cast_precision_loss,
    reason = "byte counts and rates far below 2^52"
)]

use anyhow::{Context, Result};
use rill::{
    BatchBuilder, Config, DriverChoice, Durability, Log, Partition, SendHeader, SendOptions,
    SendStrategy,
};
use rustix::time::{ClockId, clock_gettime};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

struct Args {
    mib: usize,
    reps: usize,
    consumers: Vec<usize>,
    max_bytes: u64,
}

fn parse() -> Result<Args> {
    let mut args = Args {
        mib: 128,
        reps: 5,
        consumers: vec![1, 16],
        max_bytes: 1 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("flag needs a value");
        match flag.as_str() {
            "--mib" => args.mib = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--max-bytes" => args.max_bytes = value()?.parse()?,
            "--consumers" => {
                args.consumers = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn cpu_seconds(clock: ClockId) -> f64 {
    let t = clock_gettime(clock);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Writes about `mib` MiB of 1 MiB batches (1 KiB records) to a new log; returns the log and
/// its partition.
fn fill(dir: &std::path::Path, driver: DriverChoice, mib: usize) -> Result<(Log, Partition)> {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 1;
    config.log.segment_bytes = 1 << 30;
    let (log, _) = Log::open(config)?;
    log.create_topic("t", 1)?;
    let p = log.partition("t", 0)?;
    let value = vec![0x5a_u8; 1024];
    for _ in 0..mib {
        let mut builder = BatchBuilder::new();
        for i in 0..1000 {
            builder.append(1_700_000_000_000 + i, None, Some(&value), &[])?;
        }
        let batch = bytes::BytesMut::from(&builder.build()?[..]);
        p.append_with(batch, Durability::Written).wait()?;
    }
    p.flush().wait()?;
    Ok((log, p))
}

struct Sample {
    mb_per_s: f64,
    cpu_s_per_gib: f64,
}

/// `consumers` connections each fetch the whole partition; returns throughput and send CPU.
fn run(p: &Partition, strategy: SendStrategy, consumers: usize, max_bytes: u64) -> Result<Sample> {
    let end = p.offsets().log_end;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..consumers {
        let tx = TcpStream::connect(addr)?;
        let (mut rx, _) = listener.accept()?;
        tx.set_nonblocking(true)?;
        receivers.push(std::thread::spawn(move || -> (u64, f64) {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            while let Ok(n) = rx.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            (total, cpu_seconds(ClockId::ThreadCPUTime))
        }));
        senders.push(tx);
    }
    let cpu_before = cpu_seconds(ClockId::ProcessCPUTime);
    let start = Instant::now();
    let options = SendOptions {
        strategy: Some(strategy),
        ..SendOptions::default()
    };
    // Each consumer keeps one fetch in flight (like a Kafka consumer); all share the shard.
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = senders
            .iter()
            .map(|tx| {
                scope.spawn(move || -> Result<()> {
                    let mut offset = 0;
                    while offset < end {
                        let header = SendHeader::Bytes(bytes::Bytes::from_static(b"fetch"));
                        let sent = p.send_with(offset, max_bytes, tx, header, options).wait()?;
                        offset = sent.next_offset;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("consumer panicked"))??;
        }
        Ok(())
    })?;
    drop(senders);
    let mut bytes = 0u64;
    let mut receiver_cpu = 0.0;
    for receiver in receivers {
        let (n, cpu) = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        bytes += n;
        receiver_cpu += cpu;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(ClockId::ProcessCPUTime) - cpu_before - receiver_cpu;
    let gib = bytes as f64 / f64::from(1u32 << 30);
    Ok(Sample {
        mb_per_s: bytes as f64 / elapsed / 1e6,
        cpu_s_per_gib: cpu / gib,
    })
}

fn median_range(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() -> Result<()> {
    let args = parse()?;
    let uring_dir = tempfile::tempdir()?;
    let syscall_dir = tempfile::tempdir()?;
    let (uring_log, uring) = fill(uring_dir.path(), DriverChoice::Uring, args.mib)?;
    let (syscall_log, syscall) = fill(syscall_dir.path(), DriverChoice::Syscall, args.mib)?;
    let configs: Vec<(&str, &Partition, SendStrategy)> = vec![
        ("io_uring splice", &uring, SendStrategy::Splice),
        ("io_uring sendfile", &uring, SendStrategy::Sendfile),
        ("io_uring copy", &uring, SendStrategy::Copy),
        ("syscall sendfile", &syscall, SendStrategy::Sendfile),
        ("syscall splice", &syscall, SendStrategy::Splice),
        ("syscall copy", &syscall, SendStrategy::Copy),
    ];
    println!(
        "{} MiB partition, max_bytes {}, {} interleaved repetitions",
        args.mib, args.max_bytes, args.reps
    );
    for &consumers in &args.consumers {
        let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.reps {
            for (i, (_, p, strategy)) in configs.iter().enumerate() {
                samples[i].push(run(p, *strategy, consumers, args.max_bytes)?);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        println!("\n{consumers} consumer(s):");
        println!(
            "{:<20} {:>22} {:>26}",
            "configuration", "MB/s median [min..max]", "send CPU s/GiB [min..max]"
        );
        let baseline = {
            let mut mbs: Vec<f64> = samples[3].iter().map(|s| s.mb_per_s).collect();
            median_range(&mut mbs).0
        };
        for ((name, _, _), runs) in configs.iter().zip(&samples) {
            let mut mbs: Vec<f64> = runs.iter().map(|s| s.mb_per_s).collect();
            let mut cpu: Vec<f64> = runs.iter().map(|s| s.cpu_s_per_gib).collect();
            let (m, lo, hi) = median_range(&mut mbs);
            let (c, clo, chi) = median_range(&mut cpu);
            println!(
                "{name:<20} {m:>7.0} [{lo:>5.0}..{hi:>5.0}] {c:>9.3} [{clo:.3}..{chi:.3}]  x{:.2} of syscall sendfile",
                m / baseline
            );
        }
    }
    uring_log.close()?;
    syscall_log.close()?;
    Ok(())
}
