//! Fetch: long-polling, byte limits, and record batches sent from the page cache to the
//! socket without passing through user space.
//!
//! A response holds several partitions, and its size prefix comes first, so the batches are
//! located before anything is written: every partition is located at once
//! ([`rill::Partition::locate`]), the response limit is applied in request order, and if
//! fewer than `min_bytes` are there the fetch waits (bounded by `max_wait_ms`) for a produce
//! to one of its partitions. Then the frame goes out in pieces: the bytes the broker encodes
//! (sizes, offsets, errors) are the header of each partition's [`rill::Partition::send`],
//! which splices the located batches ([`rill::SendOptions::exact_bytes`]) straight after them.
//! The sends are one [`rill::send_in_order`] list: one request to each shard for its
//! partitions, run in order without a trip through this task.

use crate::broker::Broker;
use crate::errors::kafka_code;
use crate::protocol::{self, FetchPartitionHeader, FetchRequest, error_code as code};
use crate::topics::PartitionHandle;
use futures_util::future::{join_all, select_all};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Why a fetch response could not be completed; the connection is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("writing the response: {0}")]
    Write(#[from] std::io::Error),
    #[error("sending {topic}-{partition}: {source}")]
    Send {
        topic: String,
        partition: i32,
        source: rill::Error,
    },
    #[error("{topic}-{partition}: sent {sent} bytes, expected {expected}")]
    ShortSend {
        topic: String,
        partition: i32,
        sent: u64,
        expected: u64,
    },
    #[error(transparent)]
    TooLarge(#[from] protocol::FrameTooLarge),
}

/// One partition of the response as planned.
#[derive(Debug, Clone)]
struct Planned {
    topic: usize,
    index: i32,
    handle: Option<Arc<PartitionHandle>>,
    offset: i64,
    error: i16,
    high_watermark: i64,
    log_start_offset: i64,
    /// Located batch bytes to send (0: none).
    batch_bytes: u64,
    /// Where the next fetch would start: a wait for more data waits past it.
    next_offset: i64,
}

/// Answers a fetch on `stream`: plans it (waiting for data as the request allows), then
/// writes the response.
pub async fn handle(
    broker: &Broker,
    version: i16,
    correlation_id: i32,
    request: &FetchRequest,
    stream: &mut TcpStream,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), FetchError> {
    let session_error = if request.session_id != 0 {
        // Sessions are never created (the response's session_id is 0), so one cannot exist.
        code::FETCH_SESSION_ID_NOT_FOUND
    } else {
        code::NONE
    };
    let handles: Vec<Option<Arc<PartitionHandle>>> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| broker.topics.partition(&t.name, p.index))
        })
        .collect();
    let plan = if session_error == code::NONE {
        plan_with_wait(broker, request, &handles, shutdown).await
    } else {
        Vec::new()
    };
    write_response(
        version,
        correlation_id,
        request,
        session_error,
        &plan,
        stream,
    )
    .await
}

/// Plans until at least `min_bytes` are there, an error is, or `max_wait_ms` passed.
async fn plan_with_wait(
    broker: &Broker,
    request: &FetchRequest,
    handles: &[Option<Arc<PartitionHandle>>],
    shutdown: &watch::Receiver<bool>,
) -> Vec<Planned> {
    let max_wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(broker.config.max_fetch_wait_ms),
    );
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = u64::try_from(request.min_bytes).unwrap_or(0);
    let mut shutdown = shutdown.clone();
    // Bounded by the deadline: each pass either answers or waits for a produce.
    loop {
        let plan = plan_once(broker, request, handles).await;
        let bytes: u64 = plan.iter().map(|p| p.batch_bytes).sum();
        let errors = plan.iter().any(|p| p.error != code::NONE);
        // The engine's waits compare offsets, so data that arrived since the plan resolves
        // them at once: nothing is missed between planning and waiting.
        let grew: Vec<_> = plan
            .iter()
            .filter_map(|p| {
                let partition = &p.handle.as_ref()?.partition;
                Some(partition.wait_for_data(p.next_offset, partition.read_limit()))
            })
            .collect();
        if bytes >= min_bytes
            || errors
            || grew.is_empty()
            || tokio::time::Instant::now() >= deadline
            || *shutdown.borrow()
        {
            return plan;
        }
        tokio::select! {
            _ = select_all(grew) => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Locates every partition at once, then applies the response's `max_bytes` in request
/// order: the first partition with data gets at least one batch whatever its size (so a
/// consumer always progresses, as in Kafka), the others only what fits.
async fn plan_once(
    broker: &Broker,
    request: &FetchRequest,
    handles: &[Option<Arc<PartitionHandle>>],
) -> Vec<Planned> {
    let wanted = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(t, topic)| topic.partitions.iter().map(move |p| (t, *p)));
    let located = join_all(wanted.zip(handles).map(|((topic, p), handle)| async move {
        let mut planned = Planned {
            topic,
            index: p.index,
            handle: handle.clone(),
            offset: p.fetch_offset,
            error: code::NONE,
            high_watermark: -1,
            log_start_offset: -1,
            batch_bytes: 0,
            next_offset: p.fetch_offset,
        };
        let Some(handle) = handle else {
            planned.error = code::UNKNOWN_TOPIC_OR_PARTITION;
            return planned;
        };
        let max_bytes = u64::try_from(p.partition_max_bytes).unwrap_or(0);
        locate(broker, handle, &mut planned, max_bytes).await;
        planned
    }))
    .await;

    let mut remaining = u64::try_from(request.max_bytes).unwrap_or(0);
    let mut first = true;
    let mut plan = Vec::with_capacity(located.len());
    for mut p in located {
        if p.batch_bytes > remaining {
            // Locate again within what is left of the response; rill returns at least one
            // batch, which only the first partition with data may keep beyond the limit.
            if let Some(handle) = p.handle.clone() {
                locate(broker, &handle, &mut p, remaining).await;
            }
            if !first && p.batch_bytes > remaining {
                p.batch_bytes = 0;
            }
        }
        if p.batch_bytes > 0 {
            first = false;
            remaining = remaining.saturating_sub(p.batch_bytes);
        }
        plan.push(p);
    }
    plan
}

/// Locates `p`'s batches from its offset, filling its error, watermarks and length.
async fn locate(broker: &Broker, handle: &PartitionHandle, p: &mut Planned, max_bytes: u64) {
    let offsets = handle.partition.offsets();
    p.high_watermark = broker.visible_end(offsets.log_end, offsets.durable);
    p.log_start_offset = offsets.log_start;
    p.batch_bytes = 0;
    p.next_offset = p.offset;
    match handle.partition.locate(p.offset, max_bytes).await {
        Ok(range) => {
            p.error = code::NONE;
            p.batch_bytes = range.batch_bytes;
            p.next_offset = range.next_offset;
            p.high_watermark = broker.visible_end(range.log_end_offset, range.high_watermark);
            p.log_start_offset = range.log_start_offset;
        }
        // Beyond what consumers see but written: nothing yet, not out of range.
        Err(rill::Error::OffsetOutOfRange { .. })
            if p.offset >= offsets.log_start && p.offset <= offsets.log_end =>
        {
            p.error = code::NONE;
        }
        Err(e) => p.error = kafka_code(&e, true),
    }
}

/// Writes the response: encoded fields from the broker, batches spliced by rill between them.
async fn write_response(
    version: i16,
    correlation_id: i32,
    request: &FetchRequest,
    error: i16,
    plan: &[Planned],
    stream: &mut TcpStream,
) -> Result<(), FetchError> {
    let mut buf = protocol::begin_frame(correlation_id);
    let topics_in_plan = if plan.is_empty() {
        0
    } else {
        request.topics.len()
    };
    protocol::fetch_prefix(&mut buf, version, error, topics_in_plan);
    // Within a topic the partitions go out grouped by shard: each send's end hands the next
    // one to its shard, and a next one on the same shard is queued there without waking
    // another thread. Clients match partitions by index, not by position; the response limit
    // was applied in request order when planning.
    let mut order: Vec<&Planned> = plan.iter().collect();
    order.sort_by_key(|p| {
        (
            p.topic,
            p.handle.as_ref().map_or(0, |h| h.partition.shard()),
        )
    });
    // (end of the encoded bytes that precede the batches, partition)
    let mut sends: Vec<(usize, &Planned)> = Vec::new();
    let mut next = 0;
    for (t, topic) in request.topics.iter().enumerate().take(topics_in_plan) {
        protocol::fetch_topic(&mut buf, &topic.name, topic.partitions.len());
        // Bounded: each pass consumes one planned partition of this topic.
        while let Some(&p) = order.get(next).filter(|p| p.topic == t) {
            next += 1;
            let header = FetchPartitionHeader {
                index: p.index,
                error: p.error,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                records_bytes: p.batch_bytes as u32,
            };
            protocol::fetch_partition(&mut buf, version, &header);
            if p.batch_bytes > 0 {
                sends.push((buf.len(), p));
            }
        }
    }
    let batch_bytes: u64 = plan.iter().map(|p| p.batch_bytes).sum();
    protocol::finish_frame(&mut buf, batch_bytes)?;

    // One list of sends: each shard gets one request per run of consecutive partitions it
    // holds (the order above makes a topic's partitions one run per shard), and sends them
    // one after another; the socket's gate starts the next shard's run as one ends.
    let mut entries = Vec::with_capacity(sends.len());
    let mut sent_parts = Vec::with_capacity(sends.len());
    let mut written = 0;
    for (end, p) in sends {
        let header = buf.split_to(end - written).freeze();
        written = end;
        let Some(handle) = &p.handle else { continue };
        sent_parts.push((p, header.len() as u64 + p.batch_bytes));
        entries.push(rill::PartitionSend {
            partition: &handle.partition,
            offset: p.offset,
            max_bytes: p.batch_bytes,
            header: header.into(),
            options: rill::SendOptions {
                exact_bytes: Some(p.batch_bytes),
                ..rill::SendOptions::default()
            },
        });
    }
    let infos = rill::send_in_order(&*stream, entries)
        .await
        .map_err(|e| send_error(request, &sent_parts, e))?;
    for (info, (p, expected)) in infos.iter().zip(&sent_parts) {
        if info.bytes_sent != *expected {
            return Err(FetchError::ShortSend {
                topic: request.topics[p.topic].name.clone(),
                partition: p.index,
                sent: info.bytes_sent,
                expected: *expected,
            });
        }
    }
    stream.write_all(&buf).await?;
    Ok(())
}

/// A failed list of sends as the partition whose send failed. A failed send leaves the frame
/// short: the caller closes the connection.
fn send_error(request: &FetchRequest, parts: &[(&Planned, u64)], e: rill::Error) -> FetchError {
    let (index, source) = match e {
        rill::Error::SendPart { index, source } => (index, *source),
        e => (0, e),
    };
    let (topic, partition) = parts.get(index).map_or((String::new(), -1), |(p, _)| {
        (request.topics[p.topic].name.clone(), p.index)
    });
    FetchError::Send {
        topic,
        partition,
        source,
    }
}
