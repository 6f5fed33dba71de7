#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]
//! Drives the `tcp_service` example over loopback: producers and consumers on several
//! connections, produce durable and written batches, fetch them back, bad frames.

#[path = "../examples/tcp_service.rs"]
mod service;

use bytes::{Buf, BufMut, BytesMut};
use rill::{BatchBuilder, Config, Log};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn call(stream: &mut TcpStream, body: &[u8]) -> (u8, BytesMut) {
    stream.write_u32(body.len() as u32).await.unwrap();
    stream.write_all(body).await.unwrap();
    let len = stream.read_u32().await.unwrap() as usize;
    let mut reply = BytesMut::zeroed(len);
    stream.read_exact(&mut reply).await.unwrap();
    let status = reply.get_u8();
    (status, reply)
}

fn topic(out: &mut BytesMut, name: &str) {
    out.put_u16(name.len() as u16);
    out.put_slice(name.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(Config::new(dir.path())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(service::serve(listener, log.clone()));

    let mut admin = TcpStream::connect(addr).await.unwrap();
    let mut create = BytesMut::new();
    create.put_u8(3);
    topic(&mut create, "orders");
    create.put_u32(3);
    assert_eq!(call(&mut admin, &create).await.0, 0);

    // Three producers, one per partition, concurrently.
    let mut producers = Vec::new();
    for p in 0..3u32 {
        producers.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut sent = Vec::new();
            for i in 0..50 {
                let mut builder = BatchBuilder::new();
                let value = format!("p{p}-m{i}");
                builder
                    .append(
                        1_700_000_000_000 + i,
                        Some(b"k"),
                        Some(value.as_bytes()),
                        &[],
                    )
                    .unwrap();
                let batch = builder.build().unwrap();
                let mut req = BytesMut::new();
                req.put_u8(1);
                topic(&mut req, "orders");
                req.put_u32(p);
                req.put_u8(u8::from(i % 2 == 0));
                req.put_slice(&batch);
                let (status, mut reply) = call(&mut stream, &req).await;
                assert_eq!(status, 0, "{:?}", String::from_utf8_lossy(&reply));
                let (base, last) = (reply.get_i64(), reply.get_i64());
                assert_eq!((base, last), (i, i));
                sent.push(value);
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for p in producers {
        sent.push(p.await.unwrap());
    }

    // A consumer fetches every partition from the start and decodes the records.
    let mut consumer = TcpStream::connect(addr).await.unwrap();
    for (p, sent) in sent.iter().enumerate() {
        let mut offset = 0;
        let mut got = Vec::new();
        while offset < 50 {
            let mut req = BytesMut::new();
            req.put_u8(2);
            topic(&mut req, "orders");
            req.put_u32(p as u32);
            req.put_i64(offset);
            req.put_u32(1000);
            let (status, mut reply) = call(&mut consumer, &req).await;
            assert_eq!(status, 0);
            let next = reply.get_i64();
            let _high_watermark = reply.get_i64();
            for batch in rill_segment_batches(&reply) {
                for record in rill::batch::records(batch).unwrap() {
                    got.push(String::from_utf8(record.unwrap().value.unwrap().to_vec()).unwrap());
                }
            }
            assert!(next > offset);
            offset = next;
        }
        assert_eq!(&got, sent);
    }

    // Errors: unknown topic, out of range, garbage, and an oversized frame closes only that
    // connection.
    let mut req = BytesMut::new();
    req.put_u8(2);
    topic(&mut req, "nope");
    req.put_u32(0);
    req.put_i64(0);
    req.put_u32(10);
    assert_eq!(call(&mut consumer, &req).await.0, 1);
    assert_eq!(call(&mut consumer, &[9, 9, 9]).await.0, 1);
    let mut bad = TcpStream::connect(addr).await.unwrap();
    bad.write_u32(u32::MAX).await.unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        bad.read(&mut buf).await.unwrap_or(0),
        0,
        "connection closed"
    );
    assert_eq!(
        call(&mut consumer, &create).await.0,
        1,
        "topic exists; other clients unaffected"
    );
    log.close().unwrap();
}

fn rill_segment_batches(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let len = 12 + u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}
