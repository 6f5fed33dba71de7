//! The engine's metrics, through the `metrics` facade (the de facto standard crate: a service
//! installs the recorder it wants, Prometheus, StatsD, OpenTelemetry, and without one every
//! call is a no-op). Each partition registers its handles once, so recording costs an atomic
//! operation, never a lookup or an allocation.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `rill_partition_log_start_offset`, `_log_end_offset`, `_durable_offset` | gauge | topic, partition |
//! | `rill_partition_failed` | gauge (0/1) | topic, partition |
//! | `rill_partition_bytes`, `rill_partition_segments` | gauge (maintenance) | topic, partition |
//! | `rill_partition_clean_point`, `rill_partition_dirty_bytes` | gauge (maintenance) | topic, partition |
//! | `rill_partition_producers` | gauge (maintenance) | topic, partition |
//! | `rill_append_seconds` | histogram (written appends, on the caller) | topic, partition |
//! | `rill_sync_seconds` | histogram (a partition's sync, start to completion) | topic, partition |
//! | `rill_appends_total`, `rill_append_bytes_total` | counter | topic, partition |
//! | `rill_shard_queue_requests_max`, `rill_shard_queue_bytes_max` (most queued since open), `rill_shard_waiting_callers` | gauge (maintenance) | shard |
//! | `rill_recovery_bytes_scanned_total`, `rill_recovery_bytes_truncated_total` | counter (at open) | topic, partition |

#![allow(
    clippy::cast_precision_loss,
    reason = "metric values are f64: an offset or byte count past 2^53 is rounded there anyway"
)]

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use rill_segment::{Offsets, PartitionLog};

/// One partition's metric handles.
#[derive(Debug, Clone)]
pub(crate) struct PartitionMetrics {
    log_start: Gauge,
    log_end: Gauge,
    durable: Gauge,
    failed: Gauge,
    bytes: Gauge,
    segments: Gauge,
    clean_point: Gauge,
    dirty_bytes: Gauge,
    producers: Gauge,
    pub(crate) append_seconds: Histogram,
    pub(crate) sync_seconds: Histogram,
    pub(crate) appends: Counter,
    pub(crate) append_bytes: Counter,
}

impl PartitionMetrics {
    /// Registers the handles of `topic`'s partition `index`.
    pub(crate) fn new(topic: &str, index: u32) -> Self {
        let labels = [
            ("topic", topic.to_string()),
            ("partition", index.to_string()),
        ];
        Self {
            log_start: gauge!("rill_partition_log_start_offset", &labels),
            log_end: gauge!("rill_partition_log_end_offset", &labels),
            durable: gauge!("rill_partition_durable_offset", &labels),
            failed: gauge!("rill_partition_failed", &labels),
            bytes: gauge!("rill_partition_bytes", &labels),
            segments: gauge!("rill_partition_segments", &labels),
            clean_point: gauge!("rill_partition_clean_point", &labels),
            dirty_bytes: gauge!("rill_partition_dirty_bytes", &labels),
            producers: gauge!("rill_partition_producers", &labels),
            append_seconds: histogram!("rill_append_seconds", &labels),
            sync_seconds: histogram!("rill_sync_seconds", &labels),
            appends: counter!("rill_appends_total", &labels),
            append_bytes: counter!("rill_append_bytes_total", &labels),
        }
    }

    /// The offsets as published.
    pub(crate) fn offsets(&self, offsets: &Offsets, failed: bool) {
        self.log_start.set(offsets.log_start as f64);
        self.log_end.set(offsets.log_end as f64);
        self.durable.set(offsets.durable as f64);
        self.failed.set(if failed { 1.0 } else { 0.0 });
    }

    /// What maintenance measures (the caller holds the log's lock).
    pub(crate) fn maintenance(&self, log: &PartitionLog) {
        self.bytes.set(log.size_bytes() as f64);
        self.segments.set(log.segment_count() as f64);
        let (_, dirty) = log.compaction_bytes();
        self.clean_point.set(log.clean_point() as f64);
        self.dirty_bytes.set(dirty as f64);
        self.producers.set(log.producer_count() as f64);
    }
}

/// A recovered partition's report, counted once at open.
pub(crate) fn recovery(topic: &str, index: u32, report: &rill_segment::RecoveryReport) {
    let labels = [
        ("topic", topic.to_string()),
        ("partition", index.to_string()),
    ];
    counter!("rill_recovery_bytes_scanned_total", &labels).increment(report.bytes_scanned);
    counter!("rill_recovery_bytes_truncated_total", &labels).increment(report.bytes_truncated);
}

/// A shard's queue, as of a maintenance tick.
pub(crate) fn shard_queue(shard: usize, stats: &crate::QueueStats) {
    let labels = [("shard", shard.to_string())];
    gauge!("rill_shard_queue_requests_max", &labels).set(stats.max_queued_requests as f64);
    gauge!("rill_shard_queue_bytes_max", &labels).set(stats.max_queued_bytes as f64);
    gauge!("rill_shard_waiting_callers", &labels).set(stats.waiting_callers as f64);
}
