//! A shard after a panic (a bug): fail safe. Its partitions fail-stop (callers' appends get
//! `PartitionFailed`; reopening the log recovers them from disk), everything the shard held is
//! answered with an error, and the thread then answers every later request the same way until
//! the log closes, so no caller waits forever and `Log::close` returns.
//!
//! The driver is leaked, not dropped: operations may still be in flight in the kernel with
//! buffers it owns, and a transfer may be blocked on a socket; leaking them is safe, freeing or
//! joining them might not be.

use super::{InFlight, Shard};
use crate::error::Error;
use crate::request::Request;
use crate::shared::PartitionShared;
use std::sync::Arc;
use std::time::Duration;

/// The text of a panic's payload.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

impl Shard {
    pub(super) fn fail_safe(self, message: &str) {
        let shard = self.handle.id;
        tracing::error!(shard, message, "shard panicked; its partitions fail-stop");
        let error = std::io::Error::other(format!("shard {shard} panicked: {message}"));
        let Self {
            handle,
            driver,
            roller,
            partitions,
            in_flight,
            mut inbox,
            shutdown,
            sends,
            ..
        } = self;
        // Leaked on purpose (see the module documentation).
        std::mem::forget(driver);
        // Joined before the partitions close: a roll job still running names their files. Its
        // result is dropped (the partitions fail-stop; reopening recovers from disk).
        drop(roller);
        let mut parts: Vec<Arc<PartitionShared>> = Vec::with_capacity(partitions.len());
        for (_, mut state) in partitions {
            state
                .shared
                .update(|log| log.fail_stop("shard panicked", &error));
            for request in state.pending.drain(..) {
                fail(request, shard, message);
            }
            for waiter in state.waiters.drain(..) {
                waiter.fail(partition_error(&state.shared, shard, message));
            }
            parts.push(state.shared);
        }
        for (_, op) in in_flight {
            if let InFlight::Read(read) = op {
                read.fail(Error::ShardFailed {
                    shard,
                    message: message.to_owned(),
                });
            }
        }
        sends.fail_all(|| Error::ShardFailed {
            shard,
            message: message.to_owned(),
        });
        for request in inbox.drain(..) {
            fail(request, shard, message);
        }
        let mut closing = shutdown;
        // Bounded by the log's life: ends when a shutdown request arrives.
        loop {
            handle.drain_all(&mut inbox);
            for request in inbox.drain(..) {
                match request {
                    Request::Shutdown { reply } => closing.push(reply),
                    other => fail(other, shard, message),
                }
            }
            if !closing.is_empty() {
                handle.close();
                // Whatever raced with the close is answered too.
                handle.drain_all(&mut inbox);
                for request in inbox.drain(..) {
                    fail(request, shard, message);
                }
                for part in &parts {
                    let mut log = part.log.lock();
                    let _ = log.close();
                    part.publish(&log);
                }
                for reply in closing {
                    reply.send(Err(Error::ShardFailed {
                        shard,
                        message: message.to_owned(),
                    }));
                }
                return;
            }
            handle.doorbell.prepare_sleep();
            if handle.is_empty() {
                let _ = handle.doorbell.wait(Duration::from_secs(1));
            }
            handle.doorbell.end_sleep();
        }
    }
}

/// The error for a request to a partition of the failed shard.
fn partition_error(part: &PartitionShared, shard: usize, message: &str) -> Error {
    match part.log.lock().failure() {
        Some(reason) => Error::PartitionFailed(reason.clone()),
        None => Error::ShardFailed {
            shard,
            message: message.to_owned(),
        },
    }
}

fn fail(request: Request, shard: usize, message: &str) {
    let error = match request.partition() {
        Some(part) => partition_error(part, shard, message),
        None => Error::ShardFailed {
            shard,
            message: message.to_owned(),
        },
    };
    request.fail(error);
}
