//! The smallest useful embedding: open a log, create a topic, append records durably, read
//! them back, close.
//!
//! ```sh
//! cargo run -p rill --example minimal
//! ```

use rill::{Config, Log, Record, batch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (log, report) = Log::open(Config::new(dir.path()))?;
    println!(
        "opened {} with the {} driver",
        dir.path().display(),
        report.driver
    );
    log.create_topic("greetings", 2)?;
    let partition = log.partition("greetings", 0)?;

    let now = 1_700_000_000_000;
    let info = partition
        .append_records(&[
            Record {
                timestamp_ms: now,
                key: Some(b"en"),
                value: Some(b"hello"),
                headers: &[],
            },
            Record::value(now + 1, b"bonjour"),
        ])
        .wait()?; // durable: fdatasynced before this returns
    println!(
        "appended offsets {}..={}",
        info.base_offset, info.last_offset
    );

    let read = partition.read(0, 1 << 20).wait()?;
    for stored in read.batches() {
        for record in batch::records(stored)? {
            let record = record?;
            println!(
                "offset {} key {:?} value {:?}",
                record.offset,
                record.key.map(String::from_utf8_lossy),
                record.value.map(String::from_utf8_lossy)
            );
        }
    }
    println!("offsets now {:?}", partition.offsets());
    log.close()?;
    Ok(())
}
