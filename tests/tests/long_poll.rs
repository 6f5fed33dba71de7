#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Long polling in the library: `Partition::wait_for_data` resolves when (and only when) the
//! log holds data past the offset, wakes its task by itself, survives being dropped, and ends
//! with an error when the log closes; `Partition::stream_from` follows the tail, every batch
//! once, in order. Both drivers.

use rill::{Config, DriverChoice, Durability, Error, Log, ReadLimit};
use rill_tests::{make_batch, split_batches};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];
/// Batches the stream test appends.
const BATCHES: u64 = 200;

/// Counts its wake-ups and unparks the thread that made it.
struct CountingWaker {
    wakes: AtomicUsize,
    thread: std::thread::Thread,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        thread: std::thread::current(),
    });
    (Arc::clone(&counter), Waker::from(counter))
}

/// Runs a future to completion on this thread, parking between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

fn open(dir: &std::path::Path, driver: DriverChoice) -> Log {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 2;
    let (log, _) = Log::open(config).unwrap();
    log.create_topic("t", 1).unwrap();
    log
}

#[test]
fn a_wait_resolves_when_the_log_passes_the_offset_and_not_before() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), driver);
        let p = log.partition("t", 0).unwrap();
        p.append_with(make_batch(3, 10, 1, 1), Durability::Written)
            .wait()
            .unwrap();
        // Data past offset 2 is there already.
        assert_eq!(
            block_on(p.wait_for_data(2, ReadLimit::Written))
                .unwrap()
                .log_end,
            3
        );
        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut written = pin!(p.wait_for_data(3, ReadLimit::Written));
        let mut durable = pin!(p.wait_for_data(3, ReadLimit::Durable));
        assert!(written.as_mut().poll(&mut cx).is_pending());
        assert!(durable.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counter.wakes.load(Ordering::SeqCst), 0);
        // A written append wakes the waits: the written one resolves, the durable one waits.
        p.append_with(make_batch(2, 10, 1, 2), Durability::Written)
            .wait()
            .unwrap();
        assert!(
            counter.wakes.load(Ordering::SeqCst) > 0,
            "{driver:?}: no wake-up"
        );
        match written.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(offsets)) => assert_eq!(offsets.log_end, 5),
            other => panic!("{driver:?}: {other:?}"),
        }
        // Bounded: the flush makes offset 3 durable; each wake-up is a publication.
        p.flush().wait().unwrap();
        match durable.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(offsets)) => assert!(offsets.durable >= 5),
            other => panic!("{driver:?}: {other:?}"),
        }
        log.close().unwrap();
    }
}

#[test]
fn a_dropped_wait_is_forgotten_and_a_closed_log_ends_the_waits() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), driver);
        let p = log.partition("t", 0).unwrap();
        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        {
            let mut dropped = pin!(p.wait_for_data(0, ReadLimit::Written));
            assert!(dropped.as_mut().poll(&mut cx).is_pending());
        }
        p.append_with(make_batch(1, 10, 1, 1), Durability::Written)
            .wait()
            .unwrap();
        assert_eq!(
            counter.wakes.load(Ordering::SeqCst),
            0,
            "{driver:?}: a dropped wait was woken"
        );
        // Nothing arrives: the blocking form gives up at its deadline.
        let timed_out = p
            .wait_for_data(1, ReadLimit::Written)
            .wait_timeout(Duration::from_millis(20))
            .unwrap();
        assert_eq!(timed_out, None);
        let mut pending = pin!(p.wait_for_data(1, ReadLimit::Written));
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        log.close().unwrap();
        assert!(
            counter.wakes.load(Ordering::SeqCst) > 0,
            "{driver:?}: close woke nothing"
        );
        match pending.as_mut().poll(&mut cx) {
            Poll::Ready(Err(Error::ShuttingDown)) => {}
            other => panic!("{driver:?}: {other:?}"),
        }
    }
}

#[test]
fn a_stream_follows_the_tail_every_batch_once_in_order() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), driver);
        let p = log.partition("t", 0).unwrap();
        let reader = {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut stream = p.stream_from(0, 4096);
                let mut seen = Vec::new();
                // Bounded: the writer appends BATCHES batches.
                while seen.len() < BATCHES as usize {
                    let read = block_on(stream.next()).unwrap();
                    assert!(!read.is_empty());
                    seen.extend(split_batches(read.bytes()));
                }
                (seen, stream.next_offset())
            })
        };
        let mut sent = Vec::new();
        for i in 0..BATCHES {
            let durability = if i % 10 == 0 {
                Durability::Durable
            } else {
                Durability::Written
            };
            let batch = make_batch(1 + (i % 3) as usize, 20, 1, i);
            let info = p.append_with(batch.clone(), durability).wait().unwrap();
            sent.push((
                info.base_offset,
                rill_tests::as_stored(&batch, info.base_offset),
            ));
        }
        let (seen, next) = reader.join().unwrap();
        assert_eq!(seen, sent, "{driver:?}");
        assert_eq!(next, p.offsets().log_end);
        log.close().unwrap();
    }
}
