//! Connections: accepting clients, framing requests, answering them in order.
//!
//! Each connection handles one request at a time, as Kafka does (responses must come back in
//! request order); many connections run concurrently. Everything a client can make the
//! broker hold is bounded: connections (`max_connections`), a request's size
//! (`max_request_bytes`, larger closes the connection), request bytes in memory across all
//! connections (`max_inflight_request_bytes`, a semaphore taken before a body is read), idle
//! time (`idle_timeout_ms`) and how long a fetch waits (`max_fetch_wait_ms`).

use crate::broker::Broker;
use crate::membership::Client;
use crate::protocol::{self, Request, decode_request};
use crate::{fetch, produce};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("request size {0} is outside 8..={1}")]
    FrameSize(i64, usize),
    #[error("malformed request (api key {api_key}, version {api_version}): {source}")]
    Malformed {
        api_key: i16,
        api_version: i16,
        source: protocol::DecodeError,
    },
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("an acks=0 produce failed")]
    ProduceFailedWithoutAck,

    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    TooLarge(#[from] protocol::FrameTooLarge),
}

/// A bound listener and the broker it serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    broker: Arc<Broker>,
}

impl Server {
    /// Binds `listener` for `broker`.
    pub fn new(listener: TcpListener, broker: Arc<Broker>) -> Self {
        Self { listener, broker }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets each connection finish
    /// the request it is on (bounded by `shutdown_timeout_ms`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let config = &self.broker.config;
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let budget = Arc::new(Semaphore::new(config.max_inflight_request_bytes));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(flush_loop(Arc::clone(&self.broker), stop_rx.clone()));
        let broker = Arc::clone(&self.broker);
        let stop = stop_rx.clone();
        tasks.spawn(async move { broker.store_groups(stop).await });
        let coordinator_timer = tokio::spawn(Arc::clone(&self.broker.coordinator).run_timer());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            // Reap finished connections so the set stays as large as the open ones.
            while tasks.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                tracing::warn!(%peer, max = config.max_connections, "too many connections; closing the new one");
                continue;
            };
            let broker = Arc::clone(&self.broker);
            let budget = Arc::clone(&budget);
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                tracing::debug!(%peer, "connection opened");
                match serve_connection(&broker, stream, &budget, stop).await {
                    Ok(()) => tracing::debug!(%peer, "connection closed"),
                    Err(e) => tracing::info!(%peer, error = %e, "connection closed by the broker"),
                }
                drop(permit);
            });
        }
        tracing::info!("shutting down: no new connections; finishing requests in progress");
        coordinator_timer.abort();
        let _ = stop_tx.send(true);
        let limit = Duration::from_millis(config.shutdown_timeout_ms);
        if tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                ?limit,
                "connections still busy at the shutdown timeout; aborting them"
            );
            tasks.shutdown().await;
        }
    }
}

/// Syncs partitions with unsynced data every `flush_interval_ms`, so that written produces
/// become durable (and, with `visibility = durable`, visible) without waiting for more
/// traffic; wakes their fetchers.
async fn flush_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    if broker.config.flush_interval_ms == 0 {
        return;
    }
    let period = Duration::from_millis(broker.config.flush_interval_ms);
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        for handle in broker.topics.cached() {
            let offsets = handle.partition.offsets();
            if offsets.durable >= offsets.log_end {
                continue;
            }
            match handle.partition.flush().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    topic = handle.partition.topic(),
                    partition = handle.partition.index(),
                    error = %e,
                    "periodic flush failed"
                ),
            }
        }
    }
}

/// Reads, handles and answers requests until the client leaves, misbehaves or the broker
/// stops.
async fn serve_connection(
    broker: &Broker,
    mut stream: TcpStream,
    budget: &Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?.ip();
    let idle = Duration::from_millis(broker.config.idle_timeout_ms);
    let max = broker.config.max_request_bytes;
    // Bounded by the client: one pass per request.
    loop {
        let mut size = [0u8; 4];
        tokio::select! {
            read = tokio::time::timeout(idle, stream.read_exact(&mut size)) => match read {
                Err(_) => return Err(ConnectionError::Idle(idle)),
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(result) => { result?; }
            },
            _ = stop.changed() => return Ok(()),
        }
        let size = i32::from_be_bytes(size);
        let len = usize::try_from(size)
            .ok()
            .filter(|len| (8..=max).contains(len))
            .ok_or(ConnectionError::FrameSize(i64::from(size), max))?;
        let permit = Arc::clone(budget)
            .acquire_many_owned(len as u32)
            .await
            .map_err(|_| io::Error::other("request budget closed"))?;
        let frame = read_frame(&mut stream, len, idle).await?;
        // A span per request (the frame always holds the header's first 8 bytes).
        let span = tracing::debug_span!(
            "request",
            api_key = i16::from_be_bytes([frame[0], frame[1]]),
            version = i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        );
        let request = handle_request(broker, &mut stream, frame, peer, &stop);
        tracing::Instrument::instrument(request, span).await?;
        drop(permit);
    }
}

/// Reads `len` bytes, growing the buffer as they arrive rather than trusting the size prefix
/// with one allocation.
async fn read_frame(
    stream: &mut TcpStream,
    len: usize,
    idle: Duration,
) -> Result<BytesMut, ConnectionError> {
    const STEP: usize = 256 << 10;
    let mut frame = BytesMut::with_capacity(len.min(STEP));
    // Bounded: every pass reads at least one byte or returns.
    while frame.len() < len {
        let want = len - frame.len();
        frame.reserve(want.min(STEP));
        let mut limited = (&mut *stream).take(want as u64);
        let n = tokio::time::timeout(idle, limited.read_buf(&mut frame))
            .await
            .map_err(|_| ConnectionError::Idle(idle))??;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(frame)
}

/// Decodes one request, handles it and writes its response.
async fn handle_request(
    broker: &Broker,
    stream: &mut TcpStream,
    frame: BytesMut,
    peer: IpAddr,
    stop: &watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let (header, request) = decode_request(&frame).map_err(|source| {
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let api_version = i16::from_be_bytes([frame[2], frame[3]]);
        ConnectionError::Malformed {
            api_key,
            api_version,
            source,
        }
    })?;
    let version = header.api_version;
    metrics::counter!(
        "rill_broker_requests_total",
        "api" => api_name(header.api_key),
        "version" => version_label(&request, version)
    )
    .increment(1);
    let mut buf = protocol::begin_frame(header.correlation_id);
    match request {
        Request::Unsupported => {
            tracing::debug!(api_key = header.api_key, version, "unsupported request");
            protocol::unsupported(&mut buf, header.api_key, version);
        }
        Request::ApiVersions => {
            protocol::api_versions(&mut buf, version, protocol::error_code::NONE);
        }
        Request::Metadata(r) => broker.metadata(version, &r, &mut buf).await,
        Request::CreateTopics(r) => broker.create_topics(version, &r, &mut buf).await,
        Request::ListOffsets(r) => broker.list_offsets(version, &r, &mut buf).await,
        Request::InitProducerId(r) => broker.init_producer_id(version, &r, &mut buf).await,
        Request::DeleteTopics(r) => broker.delete_topics(version, &r, &mut buf).await,
        Request::DeleteRecords(r) => broker.delete_records(version, &r, &mut buf).await,
        Request::DescribeConfigs(r) => broker.describe_configs(version, &r, &mut buf),
        Request::FindCoordinator(r) => broker.find_coordinator(version, &r, &mut buf),
        Request::OffsetCommit(r) => broker.offset_commit(version, &r, &mut buf).await,
        Request::OffsetFetch(r) => broker.offset_fetch(version, &r, &mut buf),
        Request::JoinGroup(r) => {
            let client = Client {
                id: header.client_id.as_deref().unwrap_or(""),
                host: peer,
            };
            broker.join_group(version, r, client, stop, &mut buf).await;
        }
        Request::SyncGroup(r) => broker.sync_group(version, r, stop, &mut buf).await,
        Request::Heartbeat(r) => broker.heartbeat(version, &r, &mut buf),
        Request::LeaveGroup(r) => broker.leave_group(version, &r, &mut buf),
        Request::ListGroups(r) => broker.list_groups(version, &r, &mut buf),
        Request::DescribeGroups(r) => broker.describe_groups(version, &r, &mut buf),
        Request::DeleteGroups(r) => broker.delete_groups(version, &r, &mut buf).await,
        Request::CreatePartitions(r) => broker.create_partitions(version, &r, &mut buf).await,
        Request::AlterConfigs {
            request,
            incremental,
        } => {
            broker
                .alter_configs(version, &request, incremental, &mut buf)
                .await;
        }
        Request::Produce(r) => {
            let produced = produce::handle(broker, version, &r, frame, &mut buf).await;
            if r.acks == 0 {
                // No response; a failure closes the connection so the producer notices.
                return if produced.failed {
                    Err(ConnectionError::ProduceFailedWithoutAck)
                } else {
                    Ok(())
                };
            }
        }
        Request::Fetch(r) => {
            return Ok(
                fetch::handle(broker, version, header.correlation_id, &r, stream, stop).await?,
            );
        }
    }
    protocol::finish_frame(&mut buf, 0)?;
    stream.write_all(&buf).await?;
    Ok(())
}

/// A request's version, as a metric label (so an operator sees which versions clients
/// speak): a static string, no allocation per request; bounded, since only implemented
/// versions get their own.
fn version_label(request: &Request, version: i16) -> &'static str {
    const VERSIONS: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    if matches!(request, Request::Unsupported) {
        return "unsupported";
    }
    usize::try_from(version)
        .ok()
        .and_then(|v| VERSIONS.get(v).copied())
        .unwrap_or("unsupported")
}

/// A request's API, as a metric label.
fn api_name(api_key: i16) -> &'static str {
    match protocol::ApiKey::from_code(api_key) {
        Some(api) => api.name(),
        None => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_version_has_its_own_label() {
        for api in protocol::ApiKey::ALL {
            let (min, max) = api.versions();
            for version in min..=max {
                assert_eq!(
                    version_label(&Request::ApiVersions, version),
                    version.to_string(),
                    "{}",
                    api.name()
                );
            }
        }
        assert_eq!(version_label(&Request::Unsupported, 3), "unsupported");
    }
}
