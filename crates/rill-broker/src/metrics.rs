//! The Prometheus endpoint: the engine's and the broker's metrics (the `metrics` facade,
//! recorded by `metrics-exporter-prometheus`'s recorder) served as Prometheus text on
//! `metrics_listen`, `GET /metrics` (any path answers the same). One scrape at a time, each
//! bounded in time and request size: a scraper cannot make the broker hold more.
//!
//! Consumer-group lag is computed at scrape time ([`group_lag`]), not recorded: it is a
//! difference of two values that change independently, and a deleted group must vanish.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bytes of a scrape's request read at most (its headers; the body is never read).
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// A scrape that has not sent its request by then is dropped.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's `metrics` recorder; its handle renders
/// what was recorded. Fails if a recorder was installed already.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    Ok(handle)
}

/// How often recorded histogram samples are folded into their summaries. The recorder keeps
/// samples until then, so this bounds its memory between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds recorded samples every [`UPKEEP_INTERVAL`], until the task is dropped.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Lag series rendered at most (each a committed offset of a group's partition).
pub const MAX_LAG_SERIES: usize = 10_000;

/// Escapes a label value (Prometheus text format: backslash, double quote, line feed).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `rill_broker_group_lag{group, topic, partition}`: records between each partition's high
/// watermark and the offset its group committed (0 when the commit is at or past it), for at
/// most [`MAX_LAG_SERIES`] committed offsets (`rill_broker_group_lag_truncated` says when more
/// were left out); and `rill_broker_group_members{group}` for groups with members.
pub fn group_lag(broker: &crate::Broker) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (committed, total) = broker.offsets.first(MAX_LAG_SERIES);
    let _ = writeln!(
        out,
        "# HELP rill_broker_group_lag Records between the high watermark and the group's committed offset.\n# TYPE rill_broker_group_lag gauge"
    );
    for (group, topic, partition, offset) in &committed {
        let Some(handle) = broker.topics.partition(topic, *partition) else {
            continue;
        };
        let offsets = handle.partition.offsets();
        let end = broker.visible_end(offsets.log_end, offsets.durable);
        let _ = writeln!(
            out,
            "rill_broker_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {}",
            label(group),
            label(topic),
            (end - offset).max(0)
        );
    }
    let _ = writeln!(
        out,
        "# TYPE rill_broker_group_lag_truncated gauge\nrill_broker_group_lag_truncated {}",
        u8::from(total > committed.len())
    );
    let _ = writeln!(out, "# TYPE rill_broker_group_members gauge");
    for (group, _, _, members) in broker.coordinator.list_with_members() {
        let _ = writeln!(
            out,
            "rill_broker_group_members{{group=\"{}\"}} {members}",
            label(&group)
        );
    }
    out
}

/// Serves `handle`'s rendering, then `extra`'s text, on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    extra: impl Fn() -> String + Send + 'static,
) {
    // One scrape at a time: a scraper waits for the previous one, never adds memory.
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut request = vec![0u8; MAX_REQUEST_BYTES];
        let mut read = 0;
        // Until the end of the request's headers, the size bound or the timeout.
        let complete = tokio::time::timeout(SCRAPE_TIMEOUT, async {
            while read < request.len() {
                match stream.read(&mut request[read..]).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => read += n,
                }
                if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !complete {
            continue;
        }
        let mut body = handle.render();
        body.push_str(&extra());
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(SCRAPE_TIMEOUT, stream.write_all(response.as_bytes())).await;
    }
}
