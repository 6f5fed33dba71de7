#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! `rill::send_in_order`: a list of partitions' sends to one socket, one request per run of a
//! shard's partitions. On both drivers: the receiver gets every entry's header and batches,
//! whole and in the list's order, across shards and with more runs than are asked for at
//! once; a stale exact range stops the list at its entry with nothing of it or after it on
//! the wire; dropping the list stops it before its next entry; misuse is a typed error.

use rill::{
    Config, DriverChoice, Error, Log, LogConfig, Partition, PartitionSend, SendConfig, SendOptions,
    SendStrategy, send_in_order,
};
use rill_tests::{AsFdSend, make_batch, now_ms, receive_all};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];

fn open(dir: &std::path::Path, driver: DriverChoice) -> Log {
    open_with(dir, driver, |_| {})
}

fn open_with(dir: &std::path::Path, driver: DriverChoice, adjust: impl FnOnce(&mut Config)) -> Log {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 2;
    config.send = SendConfig::default();
    config.log = LogConfig {
        segment_bytes: 1 << 20,
        max_batch_bytes: 1 << 20,
        ..LogConfig::default()
    };
    adjust(&mut config);
    Log::open(config).unwrap().0
}

/// A topic `t` of `partitions` partitions, each with batches of mixed sizes (some larger than
/// the copy threshold, some spanning a segment roll).
fn filled(log: &Log, partitions: u32) -> Vec<Partition> {
    log.create_topic("t", partitions).unwrap();
    let parts = log.partitions("t").unwrap();
    for (i, p) in parts.iter().enumerate() {
        for b in 0..12u64 {
            let (records, value_bytes) = match (b + i as u64) % 4 {
                0 => (4, 60_000),
                1 => (20, 1_000),
                _ => (3, 100),
            };
            p.append(make_batch(
                records,
                value_bytes,
                now_ms(),
                b * 131 + i as u64,
            ))
            .wait()
            .unwrap();
        }
    }
    assert!(parts.iter().any(|p| p.shard() != parts[0].shard()));
    parts
}

/// An 8-byte header naming the entry.
fn header(entry: usize) -> Vec<u8> {
    format!("[{entry:06}]").into_bytes()
}

/// What `read` returns for an entry, which its send must deliver after its header.
fn expected_bytes(p: &Partition, offset: i64, max_bytes: u64, entry: usize) -> Vec<u8> {
    let mut bytes = header(entry);
    match p.read(offset, max_bytes).wait() {
        Ok(read) => bytes.extend_from_slice(read.bytes()),
        // At the end of the log a send carries only its header.
        Err(Error::OffsetOutOfRange { .. }) => {}
        Err(e) => panic!("read: {e}"),
    }
    bytes
}

#[test]
fn a_list_across_shards_arrives_whole_and_in_order() {
    for driver in DRIVERS {
        for (tcp, nonblocking) in [(false, false), (false, true), (true, false), (true, true)] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), driver);
            let parts = filled(&log, 6);
            // 120 entries: runs of one to three entries on a shard, then the other shard, so
            // there are far more runs than are asked for at once; every strategy; offsets
            // inside the log, mid-batch, and at its end.
            let mut entries = Vec::new();
            let mut expected = Vec::new();
            for entry in 0..120usize {
                let p = &parts[(entry / (entry % 3 + 1)) % parts.len()];
                let end = p.offsets().log_end;
                let offset = (entry as i64 * 7) % (end + 1);
                let max_bytes = [1 << 10, 100_000, 1 << 20][entry % 3];
                expected.extend(expected_bytes(p, offset, max_bytes, entry));
                entries.push(PartitionSend {
                    partition: p,
                    offset,
                    max_bytes,
                    header: header(entry).into(),
                    options: SendOptions {
                        strategy: (entry % 4 < 3).then(|| SendStrategy::ALL[entry % 3]),
                        ..SendOptions::default()
                    },
                });
            }
            // The receiver reads exactly the expected bytes while the sender stays open: over
            // TCP every entry but the last goes with MSG_MORE, and the last must not wait for
            // more that never comes (a close would flush it and hide that).
            let (tx, mut rx) = connected(tcp, nonblocking);
            let (done, received) = std::sync::mpsc::channel();
            let want = expected.len();
            std::thread::spawn(move || {
                let mut bytes = vec![0; want];
                let read = rx.read_exact(&mut bytes).map(|()| bytes);
                let _ = done.send(read);
            });
            let sent = send_in_order(&tx.as_fd(), entries).wait().unwrap();
            let received = received
                .recv_timeout(std::time::Duration::from_mins(1))
                .expect("every byte arrives while the socket stays open")
                .unwrap();
            assert_eq!(sent.len(), 120, "{driver:?}: an answer per entry");
            let total: u64 = sent.iter().map(|s| s.bytes_sent).sum();
            assert_eq!(total, received.len() as u64);
            assert!(
                received == expected,
                "{driver:?}, tcp {tcp}, nonblocking {nonblocking}: every entry's bytes, in order"
            );
            log.close().unwrap();
        }
    }
}

/// A connected pair of stream sockets, TCP on loopback or Unix: the sender (in the mode
/// asked for) and the receiver.
fn connected(tcp: bool, nonblocking: bool) -> (Box<dyn AsFdSend>, Box<dyn Read + Send>) {
    if tcp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        tx.set_nonblocking(nonblocking).unwrap();
        (Box::new(tx), Box::new(rx))
    } else {
        let (tx, rx) = UnixStream::pair().unwrap();
        tx.set_nonblocking(nonblocking).unwrap();
        (Box::new(tx), Box::new(rx))
    }
}

#[test]
fn a_stale_exact_range_stops_the_list_at_its_entry() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), driver);
        let parts = filled(&log, 4);
        // Entries 0..4 over the partitions in order, all located first, as a fetch does.
        let ranges: Vec<_> = parts
            .iter()
            .map(|p| p.locate(0, 1 << 20).wait().unwrap())
            .collect();
        let expected: Vec<u8> = (0..2)
            .flat_map(|entry| {
                let bytes = ranges[entry].batch_bytes;
                expected_bytes(&parts[entry], 0, bytes, entry)
            })
            .collect();
        // Entry 2's partition loses all but its first batch after it was located.
        let first_batch_end = parts[2].locate(0, 1).wait().unwrap().next_offset;
        parts[2].truncate_to(first_batch_end).wait().unwrap();
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);
        let entries = parts
            .iter()
            .zip(&ranges)
            .enumerate()
            .map(|(entry, (p, r))| PartitionSend {
                partition: p,
                offset: 0,
                max_bytes: r.batch_bytes,
                header: header(entry).into(),
                options: SendOptions {
                    exact_bytes: Some(r.batch_bytes),
                    ..SendOptions::default()
                },
            });
        match send_in_order(&tx, entries).wait() {
            Err(Error::SendPart { index: 2, source }) => {
                assert!(
                    matches!(*source, Error::RangeChanged { .. }),
                    "{driver:?}: {source}"
                );
            }
            other => panic!("{driver:?}: expected entry 2 to fail, got {other:?}"),
        }
        drop(tx);
        let received = received.join().unwrap();
        assert!(
            received == expected,
            "{driver:?}: entries 0 and 1 whole, nothing of 2 or 3 (received {} bytes, expected {})",
            received.len(),
            expected.len(),
        );
        log.close().unwrap();
    }
}

#[test]
fn dropping_the_list_stops_it_before_its_next_entry() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), driver);
        let parts = filled(&log, 4);
        let (tx, mut rx) = UnixStream::pair().unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&tx, 4096).unwrap();
        rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 4096).unwrap();
        tx.set_nonblocking(true).unwrap();
        let first = expected_bytes(&parts[0], 0, 1 << 20, 0);
        // Two entries on each partition's shard in a row, then the next partition.
        let entries = (0..8).map(|entry| PartitionSend {
            partition: &parts[entry / 2],
            offset: if entry % 2 == 0 { 0 } else { 5 },
            max_bytes: 1 << 20,
            header: header(entry).into(),
            options: SendOptions::default(),
        });
        let sending = send_in_order(&tx, entries);
        // The first entry is on the wire (its header arrived) and waits for the reader.
        let mut head = [0u8; 8];
        rx.read_exact(&mut head).unwrap();
        assert_eq!(head.as_slice(), header(0).as_slice());
        drop(sending);
        drop(tx);
        // EOF comes once the shard let go of every duplicate of the socket: after the entry
        // in progress, with nothing after it.
        let mut rest = Vec::new();
        rx.read_to_end(&mut rest).unwrap();
        assert!(
            rest == first[8..],
            "{driver:?}: only the entry in progress finished ({} bytes after its header, {} expected)",
            rest.len(),
            first.len() - 8
        );
        log.close().unwrap();
    }
}

#[test]
fn a_list_of_many_runs_fits_the_smallest_queue() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        // One send may wait behind a socket's current one: the list asks for one run at a time.
        let log = open_with(dir.path(), driver, |config| config.queue_depth = 1);
        let parts = filled(&log, 2);
        assert_ne!(parts[0].shard(), parts[1].shard());
        let (tx, rx) = UnixStream::pair().unwrap();
        let received = receive_all(rx);
        let mut expected = Vec::new();
        // 40 runs: the shard changes at every entry.
        let entries: Vec<_> = (0..40)
            .map(|entry| {
                let p = &parts[entry % 2];
                expected.extend(expected_bytes(p, entry as i64, 1 << 16, entry));
                PartitionSend {
                    partition: p,
                    offset: entry as i64,
                    max_bytes: 1 << 16,
                    header: header(entry).into(),
                    options: SendOptions::default(),
                }
            })
            .collect();
        let sent = send_in_order(&tx, entries).wait().unwrap();
        assert_eq!(sent.len(), 40);
        drop(tx);
        assert!(received.join().unwrap() == expected, "{driver:?}");
        log.close().unwrap();
    }
}

#[test]
fn an_empty_list_sends_nothing_and_two_logs_cannot_share_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let (log_one, log_two) = (
        open(&one, DriverChoice::Uring),
        open(&two, DriverChoice::Uring),
    );
    let (p1, p2) = (filled(&log_one, 2), filled(&log_two, 2));
    let (tx, rx) = UnixStream::pair().unwrap();
    let received = receive_all(rx);
    assert!(send_in_order(&tx, []).wait().unwrap().is_empty());
    let entry = |partition| PartitionSend {
        partition,
        offset: 0,
        max_bytes: 1 << 20,
        header: header(0).into(),
        options: SendOptions::default(),
    };
    assert!(matches!(
        send_in_order(&tx, [entry(&p1[0]), entry(&p2[0])]).wait(),
        Err(Error::Config(_))
    ));
    let file = std::fs::File::open(dir.path()).unwrap();
    match send_in_order(&file, [entry(&p1[0])]).wait() {
        Err(Error::SendPart { index: 0, source }) => {
            assert!(matches!(*source, Error::Socket(_)), "{source}");
        }
        other => panic!("a directory is no socket: {other:?}"),
    }
    drop(tx);
    assert!(received.join().unwrap().is_empty(), "nothing was sent");
    log_one.close().unwrap();
    log_two.close().unwrap();
}
