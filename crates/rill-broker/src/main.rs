//! `rill-broker`: see the crate documentation and the README.

use anyhow::Context;
use clap::Parser;
use rill_broker::protocol::BrokerAddress;
use rill_broker::{Broker, BrokerConfig, Flags, Server};
use std::io::Write;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = BrokerConfig::from_flags(&flags)?;
    // Before the log opens, so its recovery counters are recorded.
    let metrics = match config.metrics_listen {
        Some(_) => Some(rill_broker::metrics::install()?),
        None => None,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rill-broker")
        .build()
        .context("starting the async runtime")?
        .block_on(run(config, metrics))
}

async fn run(
    config: BrokerConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    let temporary = match &config.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("rill-broker-")
                .tempdir()
                .context("creating a temporary data directory")?,
        ),
    };
    let data_dir = config
        .data_dir
        .clone()
        .or_else(|| temporary.as_ref().map(|t| t.path().to_path_buf()))
        .context("no data directory")?;
    let log_config = config.log_config(&data_dir);
    let (log, report) = tokio::task::spawn_blocking(move || rill::Log::open(log_config))
        .await?
        .with_context(|| format!("opening the log in {}", data_dir.display()))?;
    let log = Arc::new(log);
    tracing::info!(
        data_dir = %data_dir.display(),
        temporary = temporary.is_some(),
        driver = %report.driver,
        partitions = report.partitions.len(),
        "log open"
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let (host, port) = config.advertised(bound);
    let address = BrokerAddress {
        node_id: config.node_id,
        host: host.clone(),
        port: i32::from(port),
    };
    let offsets_log = Arc::clone(&log);
    let max_keys = config.max_committed_offsets;
    let offsets = tokio::task::spawn_blocking(move || {
        rill_broker::offsets::Offsets::open(&offsets_log, max_keys)
    })
    .await?
    .context("opening the committed offsets")?;
    let metrics_listen = config.metrics_listen;
    let broker = Arc::new(Broker::new(config, Arc::clone(&log), address, offsets));
    let metrics_bound = match (metrics_listen, metrics) {
        (Some(addr), Some(handle)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            let bound = listener.local_addr()?;
            tokio::spawn(rill_broker::metrics::upkeep(handle.clone()));
            let lag_of = Arc::clone(&broker);
            let group_lag = move || rill_broker::metrics::group_lag(&lag_of);
            tokio::spawn(rill_broker::metrics::serve(listener, handle, group_lag));
            Some(bound)
        }
        _ => None,
    };
    // One line on stdout for people and scripts: where to connect, where the data is.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rill-broker listening on {bound} (advertised as {host}:{port}); data in {}{}",
        data_dir.display(),
        if temporary.is_some() {
            " (temporary: removed at shutdown; pass --data-dir to keep it)"
        } else {
            ""
        }
    )?;
    if let Some(bound) = metrics_bound {
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    out.flush()?;
    drop(out);
    Server::new(listener, broker).run(shutdown_signal()).await;
    tokio::task::spawn_blocking(move || log.close())
        .await?
        .context("closing the log")?;
    tracing::info!("log closed cleanly");
    drop(temporary);
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the broker with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT"),
        _ = terminate.recv() => tracing::info!("SIGTERM"),
    }
}
