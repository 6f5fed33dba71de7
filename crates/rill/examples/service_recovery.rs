//! Property-testing a service's recovery through rill's public API, as a service that embeds
//! rill would: run the service on a simulated disk (`rill_sim::SimDisk`, through
//! `Log::open_on`), cut the power at a random moment, open it again, and check that everything
//! the service acknowledged to its own clients is still there.
//!
//! The service here is a small order book: `place` stores an order and acknowledges it once
//! durable, returning the order's number (its offset); `cancel_from` removes the orders from a
//! number on. The property: after any power cut, every acknowledged order is readable at its
//! number, byte for byte, unless a cancellation (completed, or interrupted by the cut) covered it.
//!
//! `cargo test -p rill --example service_recovery` runs a few seeds; `cargo run -p rill
//! --example service_recovery -- 2000` runs 2,000. A failing seed replays exactly.

use anyhow::{Context, Result, ensure};
use rill::{Config, Disk, Durability, Log, Partition, Record};
use rill_sim::{CrashKind, SimDisk, SimRng};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The service under test.
struct OrderBook {
    orders: Partition,
}

impl OrderBook {
    fn open(log: &Log) -> Result<Self> {
        if log.topics().is_empty() {
            log.create_topic("orders", 1)?;
        }
        Ok(Self {
            orders: log.partition("orders", 0)?,
        })
    }

    /// Stores an order; returns its number once it is durable.
    fn place(&self, order: &[u8]) -> Result<i64> {
        let record = Record::value(1_700_000_000_000, order);
        let info = self
            .orders
            .append_records_with(&[record], Durability::Durable)
            .wait()?;
        Ok(info.base_offset)
    }

    /// Removes every order from `number` on; returns the next number.
    fn cancel_from(&self, number: i64) -> Result<i64> {
        Ok(self.orders.truncate_to(number).wait()?)
    }

    /// The order stored under `number`, if any.
    fn get(&self, number: i64) -> Result<Option<Vec<u8>>> {
        if number >= self.orders.offsets().log_end {
            return Ok(None);
        }
        let read = self.orders.read(number, 4096).wait()?;
        let Some(batch) = read.batches().next() else {
            return Ok(None);
        };
        let mut records = rill::batch::records(batch).context("stored batch does not decode")?;
        match records.next() {
            Some(record) => Ok(record?.value.map(<[u8]>::to_vec)),
            None => Ok(None),
        }
    }
}

/// One run: operate the service until a power cut, reopen, check what it acknowledged.
fn run(seed: u64) -> Result<()> {
    let disk = Arc::new(SimDisk::new(seed));
    let as_disk: Arc<dyn Disk> = disk.clone();
    let config = || {
        let mut config = Config::new("/service");
        config.log.segment_bytes = 4096;
        config.log.max_batch_bytes = 1024;
        config
    };
    let mut rng = SimRng::new(seed);
    let mut acknowledged: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    {
        let (log, _) = Log::open_on(config(), Arc::clone(&as_disk))?;
        let book = OrderBook::open(&log)?;
        disk.power_cut_after(rng.below(400));
        for i in 0..rng.below(60) {
            let result = if rng.below(10) == 0 {
                let from = rng.below(i + 1) as i64;
                let result = book.cancel_from(from);
                // A cancel interrupted by the power cut may or may not have happened.
                let end = result.as_ref().map_or(from, |&end| end);
                acknowledged.retain(|&number, _| number < end);
                result.map(drop)
            } else {
                let order = format!("order {seed}/{i}").into_bytes();
                book.place(&order).map(|number| {
                    acknowledged.insert(number, order);
                })
            };
            // Once the power is cut every call fails; the service stops acknowledging.
            if result.is_err() {
                ensure!(disk.power_is_cut(), "failed with the power on: {result:?}");
                break;
            }
        }
        let _ = log.close();
    }
    disk.crash(CrashKind::Power);
    let (log, _) = Log::open_on(config(), as_disk)?;
    if acknowledged.is_empty() && log.topics().is_empty() {
        return Ok(());
    }
    let book = OrderBook::open(&log)?;
    for (number, order) in &acknowledged {
        let found = book.get(*number)?;
        ensure!(
            found.as_deref() == Some(&order[..]),
            "seed {seed}: acknowledged order {number} lost after a power cut"
        );
    }
    log.close()?;
    Ok(())
}

fn main() -> Result<()> {
    let runs: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200);
    for seed in 0..runs {
        run(seed).with_context(|| format!("seed {seed}"))?;
    }
    println!("{runs} power cuts: every acknowledged order survived");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn acknowledged_orders_survive_power_cuts() -> anyhow::Result<()> {
        for seed in 0..32 {
            super::run(seed)?;
        }
        Ok(())
    }
}
