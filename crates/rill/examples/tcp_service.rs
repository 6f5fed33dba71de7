//! A small message service on tokio that embeds rill: producers and consumers talk to it over
//! TCP with a simple framed protocol. Run it, then drive it with the test in
//! `crates/rill/tests/tcp_service.rs` (or your own client).
//!
//! ```sh
//! cargo run --release -p rill --example tcp_service -- 127.0.0.1:9797 /tmp/rill-data
//! ```
//!
//! Frames are a big-endian `u32` length and a body. Requests:
//! - produce: `1u8`, topic (`u16` length + bytes), partition `u32`, durable `u8`, then one Kafka
//!   v2 record batch (the rest of the frame). Answer: `0u8`, base offset `i64`, last offset `i64`.
//! - fetch: `2u8`, topic, partition `u32`, offset `i64`, max bytes `u32`. Answer: `0u8`, next
//!   offset `i64`, high watermark `i64`, then whole batches (the rest of the frame).
//! - create topic: `3u8`, topic, partitions `u32`. Answer: `0u8`.
//!
//! Errors answer `1u8` and a UTF-8 message. Frames are limited to `MAX_FRAME_BYTES`; a larger
//! or malformed frame closes that connection only.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rill::{Config, Durability, Log};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest frame accepted.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// Accepts connections and serves each on its own task until the listener fails.
pub async fn serve(listener: TcpListener, log: Log) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let log = log.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, log).await {
                eprintln!("connection closed: {e}");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, log: Log) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let len = match stream.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len > MAX_FRAME_BYTES {
            return Err(std::io::Error::other(format!("frame of {len} bytes")));
        }
        let mut body = BytesMut::zeroed(len);
        stream.read_exact(&mut body).await?;
        let (status, payload) = match handle(&log, body).await {
            Ok(payload) => (0u8, payload),
            Err(message) => (1u8, vec![Bytes::from(message.into_bytes())]),
        };
        let total: usize = 1 + payload.iter().map(Bytes::len).sum::<usize>();
        let mut head = BytesMut::with_capacity(5);
        head.put_u32(total as u32);
        head.put_u8(status);
        stream.write_all(&head).await?;
        for part in payload {
            stream.write_all(&part).await?;
        }
    }
}

fn take_topic(body: &mut BytesMut) -> Result<String, String> {
    if body.len() < 2 {
        return Err("truncated topic".into());
    }
    let len = body.get_u16() as usize;
    if body.len() < len {
        return Err("truncated topic".into());
    }
    String::from_utf8(body.split_to(len).to_vec()).map_err(|_| "topic is not UTF-8".into())
}

async fn handle(log: &Log, mut body: BytesMut) -> Result<Vec<Bytes>, String> {
    if body.is_empty() {
        return Err("empty request".into());
    }
    match body.get_u8() {
        1 => {
            let topic = take_topic(&mut body)?;
            if body.len() < 5 {
                return Err("truncated produce".into());
            }
            let partition = body.get_u32();
            let durability = if body.get_u8() == 1 {
                Durability::Durable
            } else {
                Durability::Written
            };
            let p = log
                .partition(&topic, partition)
                .map_err(|e| e.to_string())?;
            let info = p
                .append_with(body, durability)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = BytesMut::with_capacity(16);
            out.put_i64(info.base_offset);
            out.put_i64(info.last_offset);
            Ok(vec![out.freeze()])
        }
        2 => {
            let topic = take_topic(&mut body)?;
            if body.len() < 16 {
                return Err("truncated fetch".into());
            }
            let partition = body.get_u32();
            let offset = body.get_i64();
            let max_bytes = u64::from(body.get_u32());
            let p = log
                .partition(&topic, partition)
                .map_err(|e| e.to_string())?;
            let read = p.read(offset, max_bytes).await.map_err(|e| e.to_string())?;
            let mut head = BytesMut::with_capacity(16);
            head.put_i64(read.next_offset);
            head.put_i64(read.high_watermark);
            // The batches go out straight from the read buffer (no copy).
            Ok(vec![head.freeze(), read.into_bytes()])
        }
        3 => {
            let topic = take_topic(&mut body)?;
            if body.len() < 4 {
                return Err("truncated create".into());
            }
            let partitions = body.get_u32();
            log.create_topic(&topic, partitions)
                .map_err(|e| e.to_string())?;
            Ok(Vec::new())
        }
        other => Err(format!("unknown request type {other}")),
    }
}

#[tokio::main]
#[allow(
    dead_code,
    reason = "the test includes this file for `serve`, not `main`"
)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9797".into());
    let dir = args.next().unwrap_or_else(|| "rill-data".into());
    let (log, report) = Log::open(Config::new(&dir))?;
    println!(
        "rill service on {addr}, data in {dir}, {} partitions recovered",
        report.partitions.len()
    );
    let listener = TcpListener::bind(&addr).await?;
    tokio::select! {
        result = serve(listener, log.clone()) => result?,
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
    }
    log.close()?;
    Ok(())
}
