//! Produce: the record batches of each partition go to the log as they arrived, without a
//! copy (each is a slice of the request buffer), after rill validates them. Appends to every
//! partition of the request are made before any is awaited (each written on this thread), so
//! their durable waits share fdatasyncs.

use crate::broker::Broker;
use crate::config::DurabilityPolicy;
use crate::errors::{batch_code, kafka_code};
use crate::protocol::{self, ProducePartitionResult, ProduceRequest, error_code as code};
use crate::topics::PartitionHandle;
use bytes::{Buf, BytesMut};
use futures_util::future::join_all;
use rill::Durability;
use std::sync::Arc;
use std::time::Duration;

/// A produce's answer: the response body, or nothing for `acks=0`. `failed` says whether
/// any partition failed (an `acks=0` producer learns of it by the connection closing).
#[derive(Debug)]
pub struct Produced {
    pub failed: bool,
}

/// One partition's work: its handle and batches, or the error found before appending.
struct PartitionWork {
    topic: usize,
    index: i32,
    outcome: Result<(Arc<PartitionHandle>, Vec<BytesMut>), (i16, String)>,
}

/// Handles a produce whose records sit in `frame`. Writes the response body into `buf`
/// (the caller does not send it for `acks=0`).
pub async fn handle(
    broker: &Broker,
    version: i16,
    request: &ProduceRequest,
    frame: BytesMut,
    buf: &mut BytesMut,
) -> Produced {
    let invalid_record = version >= 8;
    let durability = match (broker.config.durability, request.acks) {
        (DurabilityPolicy::Always, _) | (_, -1) => Durability::Durable,
        _ => Durability::Written,
    };
    let mut work = split_partitions(broker, request, frame, invalid_record);
    if !(-1..=1).contains(&request.acks) {
        for w in &mut work {
            w.outcome = Err((
                code::INVALID_REQUIRED_ACKS,
                "acks must be -1, 0 or 1".into(),
            ));
        }
    }
    if request.transactional_id.is_some() {
        for w in &mut work {
            w.outcome = Err((
                code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "transactions are not supported".into(),
            ));
        }
    }
    // Make every append first (each is written now); durable waits then share the shards'
    // fdatasyncs.
    let appends: Vec<_> = work
        .iter_mut()
        .map(|w| match &mut w.outcome {
            Ok((handle, batches)) => std::mem::take(batches)
                .into_iter()
                .map(|batch| handle.partition.append_with(batch, durability))
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let timeout = (request.acks == -1 && request.timeout_ms > 0)
        .then(|| Duration::from_millis(request.timeout_ms as u64));
    let results = join_all(
        work.iter()
            .zip(appends)
            .map(|(w, pending)| finish_partition(w, pending, timeout, invalid_record)),
    )
    .await;

    // The test-only fault: the batches are stored, but the producer is told the request timed
    // out, so it cannot know, and retries.
    let mut results = results;
    if broker.time_out_this_produce() {
        for result in &mut results {
            result.error = code::REQUEST_TIMED_OUT;
            result.message = Some("dropped by the test-only fault".into());
        }
    }
    let mut failed = false;
    let mut topics: Vec<(String, Vec<ProducePartitionResult>)> = request
        .topics
        .iter()
        .map(|t| (t.name.clone(), Vec::with_capacity(t.partitions.len())))
        .collect();
    for (w, result) in work.iter().zip(results) {
        failed |= result.error != code::NONE;
        if result.error != code::NONE {
            tracing::debug!(topic = %topics[w.topic].0, partition = w.index, error = result.error, message = ?result.message, "produce failed");
        }
        topics[w.topic].1.push(result);
    }
    protocol::produce(buf, version, &topics);
    Produced { failed }
}

/// Awaits a partition's appends (bounded by the request's timeout for `acks=-1`), wakes its
/// fetchers, and gives its result.
async fn finish_partition(
    work: &PartitionWork,
    pending: Vec<rill::Pending<rill::AppendInfo>>,
    timeout: Option<Duration>,
    invalid_record: bool,
) -> ProducePartitionResult {
    let mut result = ProducePartitionResult {
        index: work.index,
        error: code::NONE,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        message: None,
    };
    let handle = match &work.outcome {
        Ok((handle, _)) => handle,
        Err((error, message)) => {
            result.error = *error;
            result.message = Some(message.clone());
            return result;
        }
    };
    let all = join_all(pending);
    let outcomes = if let Some(limit) = timeout {
        let Ok(outcomes) = tokio::time::timeout(limit, all).await else {
            result.error = code::REQUEST_TIMED_OUT;
            result.message = Some("the append did not complete within timeout_ms".into());
            return result;
        };
        outcomes
    } else {
        all.await
    };
    for outcome in outcomes {
        match outcome {
            Ok(info) => {
                if result.base_offset < 0 {
                    result.base_offset = info.base_offset;
                    if handle.partition.timestamp_type() == rill::TimestampType::LogAppendTime {
                        result.log_append_time_ms = info.max_timestamp;
                    }
                }
            }
            Err(e) if result.error == code::NONE => {
                result.error = kafka_code(&e, invalid_record);
                result.message = Some(e.to_string());
            }
            Err(_) => {}
        }
    }
    result.log_start_offset = handle.partition.offsets().log_start;
    result
}

/// Resolves every partition of the request and cuts its records into batches (slices of
/// `frame`, in order, no copy).
fn split_partitions(
    broker: &Broker,
    request: &ProduceRequest,
    mut frame: BytesMut,
    invalid_record: bool,
) -> Vec<PartitionWork> {
    let mut consumed = 0;
    let mut work = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        for p in &topic.partitions {
            // Records appear in frame order: advance to them and split them off.
            let records = p.records.clone().map(|range| {
                frame.advance(range.start - consumed);
                consumed = range.end;
                frame.split_to(range.len())
            });
            let outcome = match broker.topics.partition(&topic.name, p.index) {
                None => Err((
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("{}-{} does not exist", topic.name, p.index),
                )),
                Some(handle) => {
                    let max_batch_bytes = handle.partition.max_batch_bytes();
                    split_batches(records, max_batch_bytes, invalid_record)
                        .map(|batches| (handle, batches))
                }
            };
            work.push(PartitionWork {
                topic: topic_index,
                index: p.index,
                outcome,
            });
        }
    }
    work
}

/// The batches of one partition's records. One batch is checked by rill as it appends; with
/// several, all are validated first so the partition takes all or none. Control and
/// transactional batches are refused (no transactions here).
fn split_batches(
    records: Option<BytesMut>,
    max_batch_bytes: usize,
    invalid_record: bool,
) -> Result<Vec<BytesMut>, (i16, String)> {
    let corrupt = |message: String| (code::CORRUPT_MESSAGE, message);
    let Some(mut records) = records.filter(|r| !r.is_empty()) else {
        return Err(corrupt("no record batch".into()));
    };
    let mut batches = Vec::new();
    // Bounded: each step removes at least a batch header's worth of bytes.
    while !records.is_empty() {
        let header = rill::batch::BatchHeader::parse(&records)
            .map_err(|e| (batch_code(&e, invalid_record), e.to_string()))?;
        if header.attributes.is_control() || header.attributes.is_transactional() {
            return Err((
                if invalid_record {
                    code::INVALID_RECORD
                } else {
                    code::CORRUPT_MESSAGE
                },
                "control and transactional batches are not accepted".into(),
            ));
        }
        let len = usize::try_from(header.total_bytes()).unwrap_or(usize::MAX);
        if len > records.len() || header.batch_length < 0 {
            return Err(corrupt(format!(
                "batch of {len} bytes but {} left in the records",
                records.len()
            )));
        }
        batches.push(records.split_to(len));
    }
    if batches.len() > 1 {
        for batch in &batches {
            rill::batch::validate_for_append(batch, max_batch_bytes)
                .map_err(|e| (batch_code(&e, invalid_record), e.to_string()))?;
        }
    }
    Ok(batches)
}
