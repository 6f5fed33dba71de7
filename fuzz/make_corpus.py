#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from the kafka-python fixtures (plain,
and one compressed batch per codec).

Deterministic: run it again and the files are the same. CI runs every target over these files
(tests/tests/fuzz_corpus.rs); cargo-fuzz starts from them.
"""
import pathlib, struct, zlib

root = pathlib.Path(__file__).resolve().parent
fixtures = root.parent / "tests" / "fixtures" / "kafka-python"
corpus = root / "corpus"
batches = {p.stem: p.read_bytes() for p in sorted(fixtures.glob("*.bin"))}

def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

def records_count(b):
    return struct.unpack(">i", b[57:61])[0]

for p in sorted((root.parent / "tests" / "fixtures" / "compressed").glob("*.bin")):
    put("batch_validate", "compressed_" + p.stem, p.read_bytes())

for name, b in batches.items():
    put("batch_validate", name, b)
    if (struct.unpack(">h", b[21:23])[0] & 7) == 0 and len(b) > 61:
        put("record_decode", name, bytes([min(records_count(b), 255)]) + b[61:61 + 4000])

# A segment: contiguous uncompressed batches with patched base offsets (the CRC does not cover
# them), then the same with a torn tail and with a zero tail.
segment, offset = b"", 0
for name in ["single_key_value", "null_key", "headers", "null_value", "empty_key_value", "transactional"]:
    b = batches[name]
    segment += struct.pack(">q", offset) + b[8:]
    offset += records_count(b)
put("recovery", "six_batches", segment)
put("recovery", "torn_tail", segment[:-17])
put("recovery", "zero_tail", segment + bytes(300))
put("recovery", "garbage_tail", segment + bytes(range(256)))

# Indexes: 6-byte bounds (base u16, span u16, size/16 u16) then entries.
bounds = struct.pack(">HHH", 100, 50, 4096)
put("index_load", "offset_entries", bounds + struct.pack(">IIII", 3, 512, 9, 2048))
put("index_load", "time_entries", bounds + struct.pack(">qIqI", 1000, 3, 2000, 9))
put("index_load", "zero_padded", bounds + struct.pack(">II", 3, 512) + bytes(16))

# Checkpoint: magic, version 1, flags, log start, recovery point, CRC-32 (IEEE, as crc32fast).
body = b"RILLCKPT" + struct.pack(">HHqq", 1, 1, 5, 1234)
put("checkpoint_parse", "clean", body + struct.pack(">I", zlib.crc32(body)))
slot = b"RILLWMRK" + struct.pack(">Qq", 7, 99)
slot += struct.pack(">I", zlib.crc32(slot))
put("checkpoint_parse", "watermark", slot.ljust(512, b"\0") + bytes(512))
put("checkpoint_parse", "watermark_blocks", slot.ljust(4096, b"\0") + bytes(4096))
