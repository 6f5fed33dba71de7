#!/usr/bin/env bash
# Multi-partition fetch latency of rill-broker on loopback: creates a topic of P partitions,
# produces 4 records of V bytes to each with kafka-python, then sends the same Fetch v11 for
# every partition from offset 0 over one connection N times and prints fetches/s and the time
# per fetch. It shows the per-partition cost of a response (the send path's fixed costs).
#
#   scripts/broker-fetch-latency.sh [partitions (default 64)] [value bytes (default 100)]
#                                   [fetches (default 2000)] [broker binary]
# BROKER_ARGS adds flags to the broker's command line (for example "--shards 1").
set -euo pipefail
cd "$(dirname "$0")/.."
PARTITIONS=${1:-64}
VALUE_BYTES=${2:-100}
FETCHES=${3:-2000}
BROKER_BIN=${4:-./target/release/rill-broker}
if [ "$#" -lt 4 ]; then cargo build --release -q -p rill-broker; fi
WORK=$(mktemp -d)
trap 'kill -9 $BROKER 2>/dev/null || true; wait $BROKER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BROKER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" ${BROKER_ARGS:-} >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER=$!
for _ in $(seq 100); do grep -q listening "$WORK/broker.out" 2>/dev/null && break; sleep 0.05; done
ADDR=$(awk '{print $4}' "$WORK/broker.out")
python3 - "$ADDR" "$PARTITIONS" "$FETCHES" "$VALUE_BYTES" <<'PY'
import socket, struct, sys, time
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

addr, parts, iters, value_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(':', 1)
KafkaAdminClient(bootstrap_servers=addr, api_version=(2, 5, 0)).create_topics(
    [NewTopic('fetch-latency', parts, 1)])
producer = KafkaProducer(bootstrap_servers=addr, api_version=(2, 5, 0), linger_ms=5)
for p in range(parts):
    for _ in range(4):
        producer.send('fetch-latency', value=bytes([p % 256]) * value_bytes, partition=p)
producer.flush()

def string(s):
    b = s.encode()
    return struct.pack('>h', len(b)) + b

# Fetch v11: replica, max_wait_ms, min_bytes, max_bytes, isolation, session id and epoch.
body = struct.pack('>iiiib', -1, 0, 1, 1 << 26, 0) + struct.pack('>ii', 0, -1)
body += struct.pack('>i', 1) + string('fetch-latency') + struct.pack('>i', parts)
for p in range(parts):
    body += struct.pack('>iiqqi', p, -1, 0, -1, 1 << 20)
body += struct.pack('>i', 0) + string('')
sock = socket.create_connection((host, int(port)))

def receive(n):
    b = bytearray()
    while len(b) < n:
        chunk = sock.recv(n - len(b))
        if not chunk:
            raise EOFError('the broker closed the connection')
        b += chunk
    return bytes(b)

def fetch(correlation_id):
    message = struct.pack('>hhi', 1, 11, correlation_id) + string('fetch-latency') + body
    sock.sendall(struct.pack('>i', len(message)) + message)
    return receive(struct.unpack('>i', receive(4))[0])

size = len(fetch(0))
start = time.perf_counter()
for i in range(iters):
    assert len(fetch(i + 1)) == size, 'a response changed size'
seconds = time.perf_counter() - start
print(f"{parts} partitions, {size} B per response: {iters / seconds:.0f} fetches/s, "
      f"{seconds / iters * 1e6:.0f} us per fetch")
PY
