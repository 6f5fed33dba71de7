//! A quick measurement of durable appends to many partitions on both drivers, interleaved in
//! one run (io_uring, syscall, io_uring, ...), reporting medians and the ratio. The full
//! harness is `rill bench`; this is the smoke-sized version.
//!
//! ```sh
//! cargo run --release -p rill --example quick_bench -- --partitions 16 --seconds 3 --reps 3
//! ```

#![allow(
    clippy::cast_precision_loss,
    reason = "rates of counters far below 2^52"
)]

use anyhow::{Context, Result};
use rill::{BatchBuilder, Config, DriverChoice, Durability, Log};
use std::time::{Duration, Instant};

struct Args {
    partitions: u32,
    seconds: f64,
    reps: usize,
    window: usize,
    records: usize,
    record_bytes: usize,
    durability: Durability,
}

fn parse() -> Result<Args> {
    let mut args = Args {
        partitions: 16,
        seconds: 3.0,
        reps: 3,
        window: 8,
        records: 100,
        record_bytes: 100,
        durability: Durability::Durable,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("flag needs a value");
        match flag.as_str() {
            "--partitions" => args.partitions = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--window" => args.window = value()?.parse()?,
            "--records" => args.records = value()?.parse()?,
            "--record-bytes" => args.record_bytes = value()?.parse()?,
            "--written" => args.durability = Durability::Written,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

struct Run {
    batches_per_s: f64,
    records_per_s: f64,
    syncs_per_s: f64,
    enters_per_batch: f64,
}

fn run_once(args: &Args, driver: DriverChoice) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::new(dir.path());
    config.driver = driver;
    let (log, _) = Log::open(config)?;
    log.create_topic("bench", args.partitions)?;
    let mut builder = BatchBuilder::new();
    let value = vec![b'x'; args.record_bytes];
    for i in 0..args.records {
        builder.append(1_700_000_000_000 + i as i64, None, Some(&value), &[])?;
    }
    let batch = bytes::Bytes::from(builder.build()?);
    let before = log.driver_stats();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let batches: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = log
            .partitions("bench")
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let batch = batch.clone();
                scope.spawn(move || -> Result<u64> {
                    let mut window = std::collections::VecDeque::new();
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        window.push_back(p.append_with(&batch[..], args.durability));
                        if window.len() >= args.window
                            && let Some(oldest) = window.pop_front()
                        {
                            oldest.wait()?;
                            done += 1;
                        }
                    }
                    for pending in window {
                        pending.wait()?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("panic"))?)
            .sum::<Result<u64>>()
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let after = log.driver_stats();
    log.close()?;
    let rounds = (after.batches - before.batches).max(1) as f64;
    Ok(Run {
        batches_per_s: batches as f64 / elapsed,
        records_per_s: (batches * args.records as u64) as f64 / elapsed,
        syncs_per_s: (after.syncs - before.syncs) as f64 / elapsed,
        enters_per_batch: (after.submit_calls - before.submit_calls) as f64 / rounds,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<()> {
    let args = parse()?;
    let drivers = [
        ("io_uring", DriverChoice::Uring),
        ("syscall", DriverChoice::Syscall),
    ];
    let mut results: Vec<Vec<Run>> = vec![Vec::new(), Vec::new()];
    for rep in 0..args.reps {
        for (i, (name, driver)) in drivers.iter().enumerate() {
            let run = run_once(&args, *driver)?;
            println!(
                "rep {rep} {name:>8}: {:>9.0} appends/s {:>11.0} records/s {:>7.0} fdatasyncs/s {:>5.2} syscalls/round",
                run.batches_per_s, run.records_per_s, run.syncs_per_s, run.enters_per_batch
            );
            results[i].push(run);
        }
    }
    let med = |i: usize, f: fn(&Run) -> f64| median(results[i].iter().map(f).collect());
    println!(
        "\n{} partitions, {:?}, window {}, {} records x {} B per batch, {} reps",
        args.partitions, args.durability, args.window, args.records, args.record_bytes, args.reps
    );
    for (i, (name, _)) in drivers.iter().enumerate() {
        println!(
            "median {name:>8}: {:>9.0} appends/s {:>11.0} records/s {:>7.0} fdatasyncs/s",
            med(i, |r| r.batches_per_s),
            med(i, |r| r.records_per_s),
            med(i, |r| r.syncs_per_s)
        );
    }
    println!(
        "ratio io_uring/syscall (appends/s): {:.2}",
        med(0, |r| r.batches_per_s) / med(1, |r| r.batches_per_s)
    );
    Ok(())
}
