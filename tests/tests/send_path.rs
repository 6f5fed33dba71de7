#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! `Partition::send` over loopback TCP and Unix sockets, on both drivers and with every
//! strategy: consumers receive the bytes and check them against `read()` (every batch's CRC,
//! contiguous offsets, the framing header), plus the edges (empty partition, offset past the
//! end, a first batch larger than `max_bytes`, an offset inside a batch, segment boundaries),
//! peers that close or stall mid-transfer, more consumers than pipes, sends racing retention
//! and truncation, per-socket ordering across shards, and closing the log with transfers in
//! flight.

use bytes::Bytes;
use rill::{
    Config, DriverChoice, Durability, Error, Log, LogConfig, Partition, ReadLimit, SendConfig,
    SendError, SendHeader, SendOptions, SendStrategy,
};
use rill_segment::batch;
use rill_tests::{AsFdSend, make_batch, receive_all};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];
/// Test frame header: batch bytes (u32), next offset (i64), sequence (u32), big-endian.
const FRAME_HEADER: usize = 16;

fn config(dir: &std::path::Path, driver: DriverChoice, send: SendConfig) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 2;
    config.maintenance_interval_ms = 50;
    config.send = send;
    config.log = LogConfig {
        segment_bytes: 2 << 20,
        max_batch_bytes: 2 << 20,
        ..LogConfig::default()
    };
    config
}

/// A log with one topic `t` of one partition, filled (see [`fill`]).
fn filled(driver: DriverChoice, send: SendConfig) -> (tempfile::TempDir, Log, Partition) {
    filled_with(driver, send, |_| {})
}

/// [`filled`], with the config adjusted by `adjust` first.
fn filled_with(
    driver: DriverChoice,
    send: SendConfig,
    adjust: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, Log, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), driver, send);
    adjust(&mut config);
    let (log, _) = Log::open(config).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    fill(&p);
    (dir, log, p)
}

/// Batches of mixed sizes, one larger than a 1 MiB pipe; about 5 MiB over three segments.
fn fill(p: &Partition) {
    // Current timestamps: time-based retention (7 days by default) keeps them.
    let now_ms = rill_tests::now_ms();
    for i in 0..40u64 {
        let (records, value_bytes) = match i % 8 {
            0 => (1, 1_500_000),
            1 | 5 => (50, 2_000),
            _ => (5, 100),
        };
        p.append_with(
            make_batch(records, value_bytes, now_ms, i),
            Durability::Written,
        )
        .wait()
        .unwrap();
    }
    p.flush().wait().unwrap();
}

fn header(seq: u32) -> SendHeader {
    SendHeader::build(move |range| {
        let mut h = Vec::with_capacity(FRAME_HEADER);
        h.extend_from_slice(&(range.batch_bytes as u32).to_be_bytes());
        h.extend_from_slice(&range.next_offset.to_be_bytes());
        h.extend_from_slice(&seq.to_be_bytes());
        Bytes::from(h)
    })
}

struct Frame {
    next_offset: i64,
    seq: u32,
    batches: Vec<u8>,
}

fn parse_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= FRAME_HEADER, "truncated frame header");
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let next_offset = i64::from_be_bytes(bytes[4..12].try_into().unwrap());
        let seq = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
        assert!(bytes.len() >= FRAME_HEADER + len, "truncated frame body");
        frames.push(Frame {
            next_offset,
            seq,
            batches: bytes[FRAME_HEADER..FRAME_HEADER + len].to_vec(),
        });
        bytes = &bytes[FRAME_HEADER + len..];
    }
    frames
}

/// Every batch is whole with a valid CRC, and offsets run on from `first`; returns the next.
fn check_batches(mut bytes: &[u8], first: i64) -> i64 {
    let mut expected = first;
    let mut started = false;
    while !bytes.is_empty() {
        let header = batch::BatchHeader::parse(bytes).unwrap();
        let len = header.total_bytes() as usize;
        if started {
            assert_eq!(header.base_offset, expected, "contiguous offsets");
        } else {
            assert!(
                header.base_offset <= first,
                "the first batch contains the offset"
            );
            started = true;
        }
        batch::check_stored(&bytes[..len], header.base_offset).expect("CRC valid");
        expected = header.next_offset();
        bytes = &bytes[len..];
    }
    expected
}

#[derive(Debug, Clone, Copy)]
enum SocketKind {
    TcpBlocking,
    TcpNonblocking,
    UnixNonblocking,
    UnixBlocking,
}

const SOCKETS: [SocketKind; 4] = [
    SocketKind::TcpBlocking,
    SocketKind::TcpNonblocking,
    SocketKind::UnixNonblocking,
    SocketKind::UnixBlocking,
];

/// A connected pair: (sender side, receiver side).
enum Pair {
    Tcp(TcpStream, TcpStream),
    Unix(UnixStream, UnixStream),
}

fn pair(kind: SocketKind) -> Pair {
    match kind {
        SocketKind::TcpBlocking | SocketKind::TcpNonblocking => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (rx, _) = listener.accept().unwrap();
            tx.set_nonblocking(matches!(kind, SocketKind::TcpNonblocking))
                .unwrap();
            Pair::Tcp(tx, rx)
        }
        SocketKind::UnixNonblocking | SocketKind::UnixBlocking => {
            let (tx, rx) = UnixStream::pair().unwrap();
            tx.set_nonblocking(matches!(kind, SocketKind::UnixNonblocking))
                .unwrap();
            Pair::Unix(tx, rx)
        }
    }
}

/// Splits a pair into the sender and a thread collecting what the receiver gets.
fn split(pair: Pair) -> (Box<dyn AsFdSend>, JoinHandle<Vec<u8>>) {
    match pair {
        Pair::Tcp(tx, rx) => (Box::new(tx), receive_all(rx)),
        Pair::Unix(tx, rx) => (Box::new(rx_guard(tx)), receive_all(rx)),
    }
}

fn rx_guard(tx: UnixStream) -> UnixStream {
    tx
}

/// Fetches the whole partition to `socket` in `max_bytes` steps with `strategy`; returns what
/// `read()` returned for each step (the expected frames).
fn fetch_all(
    p: &Partition,
    socket: &dyn AsFdSend,
    max_bytes: u64,
    strategy: SendStrategy,
) -> Vec<(Vec<u8>, i64)> {
    let end = p.offsets().log_end;
    let mut offset = 0;
    let mut expected = Vec::new();
    let options = SendOptions {
        strategy: Some(strategy),
        ..SendOptions::default()
    };
    // Bounded: every step advances the offset by at least one batch.
    let mut seq = 0;
    while offset < end {
        let read = p.read(offset, max_bytes).wait().unwrap();
        let sent = p
            .send_with(offset, max_bytes, &socket.as_fd(), header(seq), options)
            .wait()
            .unwrap();
        assert_eq!(sent.next_offset, read.next_offset);
        assert_eq!(sent.batch_bytes, read.bytes().len() as u64);
        assert_eq!(sent.bytes_sent, sent.batch_bytes + FRAME_HEADER as u64);
        assert!(sent.next_offset > offset);
        expected.push((read.bytes().to_vec(), read.next_offset));
        offset = sent.next_offset;
        seq += 1;
    }
    expected
}

fn check_received(received: &[u8], expected: &[(Vec<u8>, i64)]) {
    let frames = parse_frames(received);
    assert_eq!(frames.len(), expected.len(), "one frame per send");
    let mut offset = 0;
    for (i, (frame, (bytes, next))) in frames.iter().zip(expected).enumerate() {
        assert_eq!(frame.seq, i as u32);
        assert_eq!(frame.next_offset, *next);
        assert!(
            frame.batches == *bytes,
            "frame {i}: bytes differ from read()"
        );
        offset = check_batches(&frame.batches, offset);
        assert_eq!(offset, *next);
    }
}

#[test]
fn every_strategy_and_socket_kind_delivers_what_read_returns() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled(driver, SendConfig::default());
        for strategy in SendStrategy::ALL {
            for kind in SOCKETS {
                let (tx, received) = split(pair(kind));
                let expected = fetch_all(&p, tx.as_ref(), 1 << 20, strategy);
                drop(tx);
                let received = received.join().unwrap();
                check_received(&received, &expected);
                let total: u64 = expected.iter().map(|(b, _)| b.len() as u64).sum();
                assert!(total > 4 << 20, "{driver:?} {strategy} {kind:?}");
            }
        }
        let stats = log.driver_stats();
        assert!(stats.sends > 0 && stats.send_bytes > 0);
        if driver == DriverChoice::Uring {
            assert!(stats.pipes_created >= 1, "splice used pipes");
        }
        assert_eq!(stats.pipes_closed_dirty, 0, "no failed transfer");
        log.close().unwrap();
    }
}

#[test]
fn edges_empty_past_end_large_first_batch_mid_batch_and_segment_ends() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, SendConfig::default())).unwrap();
        log.create_topic("t", 2).unwrap();
        let empty = log.partition("t", 1).unwrap();
        let p = log.partition("t", 0).unwrap();
        fill(&p);
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);

        // 0: an empty partition sends the header alone.
        let sent = empty.send(0, 1 << 20, &tx, header(0)).wait().unwrap();
        assert_eq!(
            (sent.bytes_sent, sent.batch_bytes),
            (FRAME_HEADER as u64, 0)
        );
        assert_eq!(sent.next_offset, 0);

        // An offset past the end fails and sends nothing (frame numbering stays contiguous).
        let end = p.offsets().log_end;
        match p.send(end + 1, 1 << 20, &tx, header(99)).wait() {
            Err(Error::OffsetOutOfRange { offset, .. }) => assert_eq!(offset, end + 1),
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
        // At the end exactly: the header alone.
        let at_end = p.send(end, 1 << 20, &tx, header(1)).wait().unwrap();
        assert_eq!(at_end.batch_bytes, 0);

        // 2: max_bytes smaller than the first batch (the 1.5 MB one at offset 0): one whole batch.
        let big = p.send(0, 10, &tx, header(2)).wait().unwrap();
        let first = p.read(0, 10).wait().unwrap();
        assert_eq!(first.batches().count(), 1);
        assert_eq!(big.batch_bytes, first.bytes().len() as u64);
        assert!(big.batch_bytes > 1_000_000);

        // 3: an offset inside a batch (records 1..50 of the batch at offset 2) starts with it.
        let inside = p.read(3, 100).wait().unwrap();
        let mid = p.send(3, 100, &tx, header(3)).wait().unwrap();
        assert_eq!(mid.next_offset, inside.next_offset);

        // 4..: a walk in small steps crosses every segment boundary with the right next offsets.
        let mut offset = 0;
        let mut seq = 4;
        let mut steps = Vec::new();
        while offset < end {
            let sent = p.send(offset, 300_000, &tx, header(seq)).wait().unwrap();
            steps.push(sent.next_offset);
            offset = sent.next_offset;
            seq += 1;
        }
        drop(tx);
        let frames = parse_frames(&received.join().unwrap());
        assert_eq!(frames.len(), seq as usize);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(
                frame.seq, i as u32,
                "frames in order, none for the failed send"
            );
        }
        assert!(frames[0].batches.is_empty() && frames[1].batches.is_empty());
        assert_eq!(frames[2].batches, first.bytes());
        assert_eq!(frames[3].batches, inside.bytes());
        let header3 = batch::BatchHeader::parse(&frames[3].batches).unwrap();
        assert!(header3.base_offset < 3 && header3.next_offset() > 3);
        let mut offset = 0;
        for (frame, next) in frames[4..].iter().zip(&steps) {
            offset = check_batches(&frame.batches, offset);
            assert_eq!(offset, *next);
        }
        assert_eq!(offset, end);
        // Segments were crossed: a step ended at a segment's end, not at max_bytes.
        assert!(log_segments(dir.path()) >= 3);
        log.close().unwrap();
    }
}

fn log_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[test]
fn durable_limit_hides_unsynced_batches() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, SendConfig::default())).unwrap();
        log.create_topic("t", 1).unwrap();
        let p = log.partition("t", 0).unwrap();
        p.append_with(make_batch(3, 10, 1, 1), Durability::Durable)
            .wait()
            .unwrap();
        p.append_with(make_batch(3, 10, 1, 2), Durability::Written)
            .wait()
            .unwrap();
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);
        let durable = SendOptions {
            limit: Some(ReadLimit::Durable),
            ..SendOptions::default()
        };
        let sent = p
            .send_with(0, 1 << 20, &tx, header(0), durable)
            .wait()
            .unwrap();
        assert_eq!(sent.next_offset, 3, "only the durable batch");
        assert_eq!(sent.high_watermark, 3);
        let written = p.send(0, 1 << 20, &tx, header(1)).wait().unwrap();
        assert_eq!(written.next_offset, 6);
        drop(tx);
        let frames = parse_frames(&received.join().unwrap());
        assert_eq!(check_batches(&frames[0].batches, 0), 3);
        assert_eq!(check_batches(&frames[1].batches, 0), 6);
        log.close().unwrap();
    }
}

/// A sender socket with tiny buffers, so a transfer of megabytes is still in progress while
/// the test acts.
#[test]
fn locate_then_exact_send_carries_the_located_range_or_nothing() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, SendConfig::default())).unwrap();
        log.create_topic("t", 1).unwrap();
        let p = log.partition("t", 0).unwrap();
        for seq in 0..3 {
            p.append(make_batch(3, 10, 1, seq)).wait().unwrap();
        }
        let range = p.locate(0, 1 << 20).wait().unwrap();
        assert_eq!(range.next_offset, 9);
        let one = p.locate(4, 1).wait().unwrap();
        assert_eq!(
            (one.next_offset, one.batch_bytes * 3),
            (6, range.batch_bytes)
        );
        // Appends after the locate do not change what the exact send carries.
        p.append(make_batch(3, 10, 1, 9)).wait().unwrap();
        let (tx, mut rx) = UnixStream::pair().unwrap();
        let exact = SendOptions {
            exact_bytes: Some(range.batch_bytes),
            ..SendOptions::default()
        };
        let sent = p.send_with(0, 1, &tx, header(0), exact).wait().unwrap();
        assert_eq!((sent.batch_bytes, sent.next_offset), (range.batch_bytes, 9));
        // The frame is read before the truncation: spliced bytes reference the page cache
        // until the receiver reads them, and a truncation zeroes the cut part of a page in
        // place (docs/ARCHITECTURE.md, the send path).
        let mut first = vec![0u8; FRAME_HEADER + range.batch_bytes as usize];
        rx.read_exact(&mut first).unwrap();
        let received = receive_all(rx);
        // After a truncation the range no longer exists: an error, and nothing on the wire.
        p.truncate_to(3).wait().unwrap();
        let failed = p.send_with(0, 1, &tx, header(1), exact).wait();
        assert!(
            matches!(failed, Err(rill::Error::RangeChanged { expected, found })
                if expected == range.batch_bytes && found == one.batch_bytes),
            "{failed:?}"
        );
        drop(tx);
        assert!(
            received.join().unwrap().is_empty(),
            "the failed send wrote nothing"
        );
        let frames = parse_frames(&first);
        assert_eq!(check_batches(&frames[0].batches, 0), 9);
        log.close().unwrap();
    }
}

fn tight_pair() -> (UnixStream, UnixStream) {
    let (tx, rx) = UnixStream::pair().unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&tx, 4096).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 4096).unwrap();
    (tx, rx)
}

fn tight_tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&listener, 4096).unwrap();
    let tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&tx, 4096).unwrap();
    let (rx, _) = listener.accept().unwrap();
    (tx, rx)
}

#[test]
fn a_peer_closing_mid_transfer_fails_the_send_and_leaves_the_shard_healthy() {
    for driver in DRIVERS {
        let send = SendConfig {
            max_pipes: 2,
            ..SendConfig::default()
        };
        let (_dir, log, p) = filled(driver, send);
        for strategy in SendStrategy::ALL {
            for nonblocking in [true, false] {
                let (tx, mut rx) = tight_tcp_pair();
                tx.set_nonblocking(nonblocking).unwrap();
                let options = SendOptions {
                    strategy: Some(strategy),
                    ..SendOptions::default()
                };
                let pending = p.send_with(0, 8 << 20, &tx, header(0), options);
                let mut some = [0u8; 1000];
                rx.read_exact(&mut some).unwrap();
                drop(rx); // unread data: the kernel resets the connection
                match pending.wait() {
                    Err(Error::Send(SendError::PeerClosed { sent })) => {
                        assert!(sent >= 1000, "{driver:?} {strategy} sent {sent}");
                    }
                    other => panic!("{driver:?} {strategy} nonblocking={nonblocking}: {other:?}"),
                }
            }
        }
        // The shard still serves, and pipes were not leaked: more sends than the pool holds.
        for _ in 0..6 {
            let (tx, rx) = UnixStream::pair().unwrap();
            let received = receive_all(rx);
            let expected = fetch_all(&p, &tx, 4 << 20, SendStrategy::Splice);
            drop(tx);
            check_received(&received.join().unwrap(), &expected);
        }
        let stats = log.driver_stats();
        if driver == DriverChoice::Uring {
            assert!(
                stats.pipes_created <= 2 + stats.pipes_closed_dirty,
                "a dirty pipe is replaced, never reused: {stats:?}"
            );
        }
        log.close().unwrap();
    }
}

#[test]
fn more_consumers_than_pipes_and_transfer_slots_all_get_their_bytes() {
    for driver in DRIVERS {
        let send = SendConfig {
            max_pipes: 2,
            max_transfers: 3,
            ..SendConfig::default()
        };
        let (_dir, log, p) = filled_with(driver, send, |c| c.shards = 1);
        let expected = {
            let (tx, rx) = UnixStream::pair().unwrap();
            let received = receive_all(rx);
            let expected = fetch_all(&p, &tx, 1 << 20, SendStrategy::Copy);
            drop(tx);
            received.join().unwrap();
            expected
        };
        let consumers: Vec<_> = (0..12)
            .map(|i| {
                let p = p.clone();
                let strategy = SendStrategy::ALL[i % 3];
                std::thread::spawn(move || {
                    let (tx, received) = split(pair(SOCKETS[i % 4]));
                    let got = fetch_all(&p, tx.as_ref(), 1 << 20, strategy);
                    drop(tx);
                    (got, received.join().unwrap())
                })
            })
            .collect();
        for consumer in consumers {
            let (got, received) = consumer.join().unwrap();
            assert_eq!(got, expected);
            check_received(&received, &expected);
        }
        let stats = log.driver_stats();
        assert!(
            stats.pipes_created <= 2,
            "the pipe pool is bounded: {stats:?}"
        );
        log.close().unwrap();
    }
}

/// Copy transfers of many chunks, more of them than registered buffers: each keeps one staging
/// buffer for all its chunks (pooled, or a heap one recycled from a finished transfer), and
/// every consumer gets exactly what `read()` returns.
#[test]
fn copy_transfers_beyond_the_buffer_pool_reuse_their_staging_buffers() {
    for driver in DRIVERS {
        let send = SendConfig {
            chunk_bytes: 16 << 10,
            max_transfers: 4,
            ..SendConfig::default()
        };
        let (_dir, log, p) = filled_with(driver, send, |c| {
            c.shards = 1;
            c.uring.buffers = rill_uring::BufferPoolConfig {
                buffers: 1,
                buffer_bytes: 64 << 10,
            };
        });
        let expected = {
            let (tx, rx) = UnixStream::pair().unwrap();
            let received = receive_all(rx);
            let expected = fetch_all(&p, &tx, 1 << 20, SendStrategy::Splice);
            drop(tx);
            received.join().unwrap();
            expected
        };
        for round in 0..2 {
            let consumers: Vec<_> = (0..6)
                .map(|i| {
                    let p = p.clone();
                    std::thread::spawn(move || {
                        let (tx, received) = split(pair(SOCKETS[i % 4]));
                        let got = fetch_all(&p, tx.as_ref(), 1 << 20, SendStrategy::Copy);
                        drop(tx);
                        (got, received.join().unwrap())
                    })
                })
                .collect();
            for consumer in consumers {
                let (got, received) = consumer.join().unwrap();
                assert_eq!(got, expected, "{driver:?} round {round}");
                check_received(&received, &expected);
            }
        }
        log.close().unwrap();
    }
}

/// Sends that do not choose a strategy copy ranges below `copy_below_bytes` instead of
/// splicing them (no pipe is ever taken), and deliver what `read()` returns; a send that asks
/// for a splice still gets one.
#[test]
fn small_sends_without_a_strategy_are_copied_and_a_chosen_splice_is_kept() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, SendConfig::default())).unwrap();
        log.create_topic("small", 1).unwrap();
        let p = log.partition("small", 0).unwrap();
        for i in 0..20u64 {
            p.append_with(make_batch(5, 100, 0, i), Durability::Written)
                .wait()
                .unwrap();
        }
        let (tx, received) = split(pair(SocketKind::TcpNonblocking));
        let mut expected = Vec::new();
        let mut offset = 0;
        // Bounded: every send moves at least one batch.
        for seq in 0..20 {
            let read = p.read(offset, 1).wait().unwrap();
            let sent = p
                .send_with(offset, 1, &tx.as_fd(), header(seq), SendOptions::default())
                .wait()
                .unwrap();
            assert_eq!(sent.batch_bytes, read.bytes().len() as u64);
            expected.push((read.bytes().to_vec(), read.next_offset));
            offset = sent.next_offset;
        }
        assert_eq!(offset, p.offsets().log_end);
        if driver == DriverChoice::Uring {
            assert_eq!(log.driver_stats().pipes_created, 0, "copied, not spliced");
            let splice = SendOptions {
                strategy: Some(SendStrategy::Splice),
                ..SendOptions::default()
            };
            let read = p.read(0, 1).wait().unwrap();
            p.send_with(0, 1, &tx.as_fd(), header(20), splice)
                .wait()
                .unwrap();
            expected.push((read.bytes().to_vec(), read.next_offset));
            assert!(log.driver_stats().pipes_created >= 1, "the chosen splice");
        }
        drop(tx);
        let received = received.join().unwrap();
        let frames = parse_frames(&received);
        assert_eq!(frames.len(), expected.len());
        for (frame, (bytes, next)) in frames.iter().zip(&expected) {
            assert_eq!((&frame.batches, frame.next_offset), (bytes, *next));
        }
        log.close().unwrap();
    }
}

#[test]
fn a_send_racing_retention_delivers_the_deleted_segment_intact() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled(driver, SendConfig::default());
        let before = p.read(0, 8 << 20).wait().unwrap().bytes().to_vec();
        let (tx, mut rx) = tight_pair();
        let pending = p.send(0, 8 << 20, &tx, header(0));
        // The transfer is under way (bytes arrive), then its segment is deleted.
        let mut head = vec![0u8; FRAME_HEADER + 1000];
        rx.read_exact(&mut head).unwrap();
        let end = p.offsets().log_end;
        let new_start = p.delete_before(end - 1).wait().unwrap();
        assert!(new_start > 0, "the first segment was deleted");
        let reader = std::thread::spawn(move || {
            let mut rest = Vec::new();
            rx.read_to_end(&mut rest).unwrap();
            rest
        });
        let sent = pending.wait().unwrap();
        drop(tx);
        let mut received = head;
        received.extend(reader.join().unwrap());
        let frames = parse_frames(&received);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].batches, before, "{driver:?}");
        assert_eq!(sent.batch_bytes, before.len() as u64);
        check_batches(&frames[0].batches, 0);
        log.close().unwrap();
    }
}

#[test]
fn a_truncation_waits_for_transfers_of_its_partition() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled(driver, SendConfig::default());
        let before = p.read(0, 8 << 20).wait().unwrap().bytes().to_vec();
        let (tx, mut rx) = tight_pair();
        let send = p.send(0, 8 << 20, &tx, header(0));
        let mut head = vec![0u8; FRAME_HEADER + 1000];
        rx.read_exact(&mut head).unwrap();
        let truncate = p.truncate_to(0);
        // When the truncation is answered, the send must already be: looked at without
        // waiting (a no-op waker), by the thread the truncation's answer woke.
        let waiter = std::thread::spawn(move || {
            let truncated = truncate.wait();
            let mut send = send;
            let polled = std::future::Future::poll(
                std::pin::Pin::new(&mut send),
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
            );
            (truncated, polled)
        });
        // Other requests of the partition are not held up meanwhile.
        assert_eq!(p.offsets().log_start, 0);
        let mut rest = Vec::new();
        let reader = std::thread::spawn(move || {
            rx.read_to_end(&mut rest).unwrap();
            rest
        });
        // The transfer holds its own descriptor: the reader sees the end once it finished.
        drop(tx);
        let (truncated, polled) = waiter.join().unwrap();
        let std::task::Poll::Ready(sent) = polled else {
            panic!("{driver:?}: truncated under a transfer");
        };
        sent.unwrap();
        assert_eq!(truncated.unwrap(), 0);
        let mut received = head;
        received.extend(reader.join().unwrap());
        assert_eq!(parse_frames(&received)[0].batches, before);
        assert_eq!(p.offsets().log_end, 0);
        log.close().unwrap();
    }
}

/// Runs `f` on a thread and fails (instead of hanging the suite) if it takes over a minute.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_mins(1))
        .expect("finished within a minute (a wedged shard would never finish)")
}

#[test]
fn a_send_then_a_truncation_in_one_pass_sends_the_bytes_before_it() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled(driver, SendConfig::default());
        let before = p.read(0, 8 << 20).wait().unwrap().bytes().to_vec();
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);
        // Queued back to back: the shard plans both in one pass.
        let send = p.send(0, 8 << 20, &tx, header(0));
        let truncate = p.truncate_to(0);
        send.wait().unwrap();
        assert_eq!(truncate.wait().unwrap(), 0);
        drop(tx);
        let frames = parse_frames(&received.join().unwrap());
        assert!(frames[0].batches == before, "{driver:?}");
        log.close().unwrap();
    }
}

#[test]
fn transfers_progress_while_the_shard_queue_is_full_behind_a_waiting_truncation() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled_with(driver, SendConfig::default(), |c| {
            c.queue_depth = 4;
            c.shards = 1;
        });
        let (tx, mut rx) = tight_pair();
        let send = p.send(0, 8 << 20, &tx, header(0));
        let mut head = vec![0u8; FRAME_HEADER + 100];
        rx.read_exact(&mut head).unwrap();
        // The truncation waits for the transfer; appends pile up behind it until the shard
        // can take no more requests.
        let truncate = p.truncate_to(0);
        let appends: Vec<_> = (0..16)
            .map(|i| p.append_with(make_batch(1, 10, 1, i), Durability::Written))
            .collect();
        let reader = std::thread::spawn(move || {
            let mut rest = Vec::new();
            rx.read_to_end(&mut rest).unwrap();
            rest
        });
        let (sent, truncated, appended) = within_a_minute(move || {
            let sent = send.wait().map(|s| s.bytes_sent);
            let truncated = truncate.wait();
            let appended: Vec<_> = appends.into_iter().map(|a| a.wait().is_ok()).collect();
            (sent, truncated, appended)
        });
        let sent = sent.unwrap();
        assert!(sent > 1 << 20, "{driver:?} sent {sent}");
        assert_eq!(truncated.unwrap(), 0);
        assert!(appended.iter().all(|ok| *ok));
        drop(tx);
        reader.join().unwrap();
        assert_eq!(p.offsets().log_end, 16);
        log.close().unwrap();
    }
}

#[test]
fn a_stalled_peer_times_out() {
    for driver in DRIVERS {
        let send = SendConfig {
            stall_timeout_ms: 300,
            ..SendConfig::default()
        };
        let (_dir, log, p) = filled(driver, send);
        for strategy in SendStrategy::ALL {
            for nonblocking in [true, false] {
                let (tx, rx) = tight_pair();
                tx.set_nonblocking(nonblocking).unwrap();
                let options = SendOptions {
                    strategy: Some(strategy),
                    ..SendOptions::default()
                };
                match p.send_with(0, 8 << 20, &tx, header(0), options).wait() {
                    Err(Error::Send(SendError::Stalled { timeout_ms, .. })) => {
                        assert_eq!(timeout_ms, 300);
                    }
                    other => panic!("{driver:?} {strategy} nonblocking={nonblocking}: {other:?}"),
                }
                drop(rx);
            }
        }
        // The shard still serves.
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);
        let expected = fetch_all(&p, &tx, 1 << 20, SendStrategy::Splice);
        drop(tx);
        check_received(&received.join().unwrap(), &expected);
        log.close().unwrap();
    }
}

#[test]
fn sends_to_one_socket_never_interleave_and_keep_their_order_across_shards() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, SendConfig::default())).unwrap();
        log.create_topic("t", 4).unwrap();
        let parts = log.partitions("t").unwrap();
        assert!(parts.iter().any(|p| p.shard() != parts[0].shard()));
        for p in &parts {
            fill(p);
        }
        let (tx, rx) = tight_pair();
        tx.set_nonblocking(true).unwrap();
        let received = receive_all(rx);
        // 24 sends issued at once, none awaited, alternating partitions (shards) and
        // strategies; one dropped before it could start.
        let mut pending = Vec::new();
        let mut expected = Vec::new();
        for i in 0..24u32 {
            let p = &parts[i as usize % 4];
            let offset = i64::from(i / 4) * 5;
            let options = SendOptions {
                strategy: Some(SendStrategy::ALL[i as usize % 3]),
                ..SendOptions::default()
            };
            let send = p.send_with(offset, 2 << 20, &tx, header(i), options);
            if i == 13 {
                drop(send);
                continue;
            }
            expected.push((i, p.read(offset, 2 << 20).wait().unwrap().bytes().to_vec()));
            pending.push(send);
        }
        for send in pending {
            send.wait().unwrap();
        }
        drop(tx);
        let frames = parse_frames(&received.join().unwrap());
        assert_eq!(
            frames.len(),
            expected.len(),
            "{driver:?}: the dropped send never ran"
        );
        for (frame, (seq, bytes)) in frames.iter().zip(&expected) {
            assert_eq!(frame.seq, *seq, "in the order asked");
            assert!(frame.batches == *bytes, "frame {seq} intact");
        }
        log.close().unwrap();
    }
}

#[test]
fn closing_the_log_cancels_transfers_in_flight() {
    for driver in DRIVERS {
        let (_dir, log, p) = filled(driver, SendConfig::default());
        let (tx, rx) = tight_pair();
        tx.set_nonblocking(true).unwrap();
        let pending = p.send(0, 8 << 20, &tx, header(0));
        // The send is in progress: the peer's buffer is full and it does not read.
        let mut rx = rx;
        let mut head = [0u8; 100];
        rx.read_exact(&mut head).unwrap();
        log.close().unwrap();
        match pending.wait() {
            Err(Error::Send(SendError::Cancelled { .. }) | Error::ShuttingDown) => {}
            other => panic!("{driver:?}: {other:?}"),
        }
        let _ = rx.write(b"x");
    }
}

#[test]
fn a_failed_partition_sends_its_durable_data_and_reports_the_failure_beyond() {
    for driver in DRIVERS {
        let Some((_tmp, mnt)) = rill_tests::small_tmpfs(512 * 1024) else {
            rill_tests::skip_or_fail("cannot mount a tmpfs here (not root?)");
            return;
        };
        let result = std::panic::catch_unwind(|| {
            let (log, _) = Log::open(config(&mnt, driver, SendConfig::default())).unwrap();
            log.create_topic("t", 1).unwrap();
            let p = log.partition("t", 0).unwrap();
            p.append(make_batch(10, 1000, 1, 1)).wait().unwrap();
            let durable = p.offsets().durable;
            // Fill the file system: the partition fail-stops on ENOSPC.
            let mut failed = false;
            for i in 0..200 {
                if p.append(make_batch(10, 10_000, 1, i)).wait().is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "the tmpfs filled up");
            let durable_now = p.offsets().durable;
            assert!(durable_now >= durable);
            let (tx, rx) = UnixStream::pair().unwrap();
            let received = receive_all(rx);
            let sent = p.send(0, 1 << 20, &tx, header(0)).wait().unwrap();
            assert!(sent.next_offset <= durable_now, "only durable data");
            match p.send(durable_now + 1, 1 << 20, &tx, header(1)).wait() {
                Err(Error::PartitionFailed(_)) => {}
                other => panic!("{driver:?}: expected PartitionFailed, got {other:?}"),
            }
            drop(tx);
            let frames = parse_frames(&received.join().unwrap());
            assert_eq!(frames.len(), 1);
            check_batches(&frames[0].batches, 0);
            let _ = log.close();
        });
        rill_tests::unmount(&mnt);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn unusable_sockets_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(
        dir.path(),
        DriverChoice::Uring,
        SendConfig::default(),
    ))
    .unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    p.append(make_batch(1, 10, 1, 1)).wait().unwrap();
    let file = std::fs::File::open(dir.path()).unwrap();
    assert!(matches!(
        p.send(0, 100, &file, SendHeader::None).wait(),
        Err(Error::Socket(_))
    ));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(matches!(
        p.send(0, 100, &udp, SendHeader::None).wait(),
        Err(Error::Socket(_))
    ));
    log.close().unwrap();
}
