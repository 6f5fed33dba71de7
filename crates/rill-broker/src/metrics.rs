//! The Prometheus endpoint: the engine's and the broker's metrics (the `metrics` facade,
//! recorded by `metrics-exporter-prometheus`'s recorder) served as Prometheus text on
//! `metrics_listen`, `GET /metrics` (any path answers the same). One scrape at a time, each
//! bounded in time and request size: a scraper cannot make the broker hold more.

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

/// Serves `handle`'s rendering on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
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
        let body = handle.render();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(SCRAPE_TIMEOUT, stream.write_all(response.as_bytes())).await;
    }
}
