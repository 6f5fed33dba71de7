//! `rill dump`: a segment's batches, or an index's entries, as text (like Kafka's
//! `kafka-dump-log`). Damaged batches are shown, not skipped: a bad CRC is printed as such, and
//! the dump stops at bytes that are not a batch header, saying where.

use anyhow::{Context, Result, bail};
use rill_segment::batch::{self, BatchHeader, HEADER_BYTES};
use rill_segment::index::{OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use rill_segment::segment::{FileKind, parse_file_name};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// Largest batch the dump reads into memory.
const MAX_BATCH_BYTES: u64 = 1 << 30;

/// What the dump found in a log file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogDump {
    /// Batches printed.
    pub batches: u64,
    /// Of which with a bad CRC.
    pub bad_crc: u64,
    /// Where the dump stopped early, at bytes that are not a batch (zeros excepted).
    pub stopped_at: Option<u64>,
}

/// Dumps `path` (a `.log`, `.index` or `.timeindex` file, by its name) to `out`.
pub fn dump(path: &Path, records: bool, out: &mut impl Write) -> Result<Option<LogDump>> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("not a file name")?;
    let Some((base, kind)) = parse_file_name(name) else {
        bail!("{name}: not a segment file name (<20-digit base offset>.log|.index|.timeindex)");
    };
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    writeln!(out, "Dumping {}", path.display())?;
    match kind {
        FileKind::Log => dump_log(BufReader::new(file), records, out).map(Some),
        FileKind::OffsetIndex => dump_index(file, base, false, out).map(|()| None),
        FileKind::TimeIndex => dump_index(file, base, true, out).map(|()| None),
    }
}

fn dump_log(mut file: impl Read, records: bool, out: &mut impl Write) -> Result<LogDump> {
    let mut dump = LogDump::default();
    let mut position = 0u64;
    let mut header_bytes = [0u8; HEADER_BYTES];
    // Bounded by the file: each pass consumes a whole batch or ends.
    loop {
        let got = read_full(&mut file, &mut header_bytes)?;
        if got == 0 {
            break;
        }
        if header_bytes[..got].iter().all(|&b| b == 0) && is_zero_rest(&mut file)? {
            writeln!(out, "position: {position} zeros to the end of the file")?;
            break;
        }
        let header = match BatchHeader::parse(&header_bytes[..got]) {
            Ok(h) if got == HEADER_BYTES && h.total_bytes() <= MAX_BATCH_BYTES => h,
            Ok(_) | Err(_) => {
                writeln!(out, "position: {position} not a batch header: stopping")?;
                dump.stopped_at = Some(position);
                break;
            }
        };
        let total = header.total_bytes() as usize;
        let mut batch = header_bytes.to_vec();
        batch.resize(total, 0);
        if read_full(&mut file, &mut batch[HEADER_BYTES..])? != total - HEADER_BYTES {
            writeln!(
                out,
                "position: {position} batch cut short by the end of the file"
            )?;
            dump.stopped_at = Some(position);
            break;
        }
        let crc_ok = batch::compute_crc(&batch) == header.crc;
        dump.batches += 1;
        dump.bad_crc += u64::from(!crc_ok);
        writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} baseTimestamp: {} maxTimestamp: {} \
             size: {} position: {} compression: {:?} producerId: {} crc: {:#010x} isValid: {}",
            header.base_offset,
            header.last_offset(),
            header.records_count,
            header.base_timestamp,
            header.max_timestamp,
            total,
            position,
            header.attributes.compression(),
            header.producer_id,
            header.crc,
            crc_ok,
        )?;
        if records && crc_ok {
            print_records(&batch, out)?;
        }
        position += total as u64;
    }
    Ok(dump)
}

fn print_records(batch: &[u8], out: &mut impl Write) -> Result<()> {
    let records = match batch::records(batch) {
        Ok(records) => records,
        Err(e) => {
            writeln!(out, "  | records not readable: {e}")?;
            return Ok(());
        }
    };
    for record in records {
        match record {
            Ok(r) => writeln!(
                out,
                "  | offset: {} timestamp: {} key: {} value: {}",
                r.offset,
                r.timestamp,
                show(r.key),
                show(r.value)
            )?,
            Err(e) => {
                writeln!(out, "  | record not readable: {e}")?;
                break;
            }
        }
    }
    Ok(())
}

/// Bytes as text when printable UTF-8, else their length.
fn show(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 200 && !s.chars().any(char::is_control) => format!("{s:?}"),
            _ => format!("<{} bytes>", b.len()),
        },
    }
}

fn dump_index(mut file: File, base: i64, time: bool, out: &mut impl Write) -> Result<()> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let entry_bytes = if time {
        TIME_ENTRY_BYTES
    } else {
        OFFSET_ENTRY_BYTES
    };
    for (i, entry) in bytes.chunks(entry_bytes).enumerate() {
        if entry.len() < entry_bytes {
            writeln!(out, "entry {i}: partial ({} bytes)", entry.len())?;
            break;
        }
        if time {
            let timestamp = i64::from_be_bytes(entry[..8].try_into()?);
            let relative = u32::from_be_bytes(entry[8..12].try_into()?);
            writeln!(
                out,
                "timestamp: {timestamp} offset: {}",
                base + i64::from(relative)
            )?;
        } else {
            let relative = u32::from_be_bytes(entry[..4].try_into()?);
            let position = u32::from_be_bytes(entry[4..8].try_into()?);
            writeln!(
                out,
                "offset: {} position: {position}",
                base + i64::from(relative)
            )?;
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    // Each pass reads at least one byte or ends.
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Whether the rest of the file is zeros (consumes it).
fn is_zero_rest(file: &mut impl Read) -> Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    // Bounded by the file.
    loop {
        let got = read_full(file, &mut buf)?;
        if buf[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if got < buf.len() {
            return Ok(true);
        }
    }
}
