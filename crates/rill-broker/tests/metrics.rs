//! The Prometheus endpoint scraped as Prometheus does and read with a Prometheus text parser
//! (`prometheus-parse`): after kcat produced to a topic, the engine's and the broker's metrics
//! agree with what was produced; after a group consumed part of it (`kcat -G`, which commits
//! what it consumed), the group's lag is the rest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_cmp,
    reason = "tests fail loudly; the values compared are small whole numbers, exact in f64"
)]

mod common;

use common::{Broker, kcat_available, run};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: unexpected {other:?}"),
        })
}

#[test]
fn the_metrics_endpoint_agrees_with_what_was_produced() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A free loopback port for the endpoint.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let broker = Broker::start(
        dir.path(),
        &[
            "--metrics-listen",
            &metrics_addr,
            "--default-partitions",
            "1",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = (0..500).map(|i| format!("v{i}")).collect();
    std::fs::write(file.path(), lines.join("\n") + "\n").unwrap();
    run(
        Command::new("kcat")
            .args([
                "-b",
                &broker.addr,
                "-q",
                "-P",
                "-t",
                "m",
                "-X",
                "acks=all",
                "-l",
            ])
            .arg(file.path()),
        Duration::from_mins(2),
    );
    let scraped = scrape(&metrics_addr);
    let scrape = &scraped;
    let partition = [("topic", "m"), ("partition", "0")];
    assert_eq!(
        value(scrape, "rill_partition_log_end_offset", &partition),
        Some(500.0)
    );
    assert_eq!(
        value(scrape, "rill_partition_durable_offset", &partition),
        Some(500.0),
        "acks=all: durable"
    );
    assert_eq!(
        value(scrape, "rill_partition_failed", &partition),
        Some(0.0)
    );
    let appends = value(scrape, "rill_appends_total", &partition).unwrap();
    assert!(appends >= 1.0, "{appends}");
    let append_count = value(scrape, "rill_append_seconds_count", &partition).unwrap();
    assert_eq!(append_count, appends, "one latency sample per append");
    assert!(value(scrape, "rill_sync_seconds_count", &partition).unwrap() >= 1.0);
    let produces = value(scrape, "rill_broker_requests_total", &[("api", "Produce")]).unwrap();
    assert!(produces >= 1.0);

    // A group consumes 200 of the 500 records and commits them at exit: its lag is 300.
    run(
        Command::new("kcat")
            .args(["-b", &broker.addr, "-q", "-G", "lagging", "m", "-c", "200"])
            .args([
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "enable.auto.commit=false",
            ])
            .args(["-X", "enable.auto.offset.store=true", "-f", ""]),
        Duration::from_mins(2),
    );
    let after = self::scrape(&metrics_addr);
    let lag = [("group", "lagging"), ("topic", "m"), ("partition", "0")];
    assert_eq!(value(&after, "rill_broker_group_lag", &lag), Some(300.0));
    assert_eq!(
        value(&after, "rill_broker_group_lag_truncated", &[]),
        Some(0.0)
    );
}
