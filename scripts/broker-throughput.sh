#!/usr/bin/env bash
# A quick produce and consume throughput of rill-broker with real clients on loopback: kcat
# (librdkafka), confluent-kafka (librdkafka under Python), kafka-python, aiokafka and kafkajs
# (all installed by scripts/setup.sh); the Python and JavaScript clients consume through a
# consumer group. Prints messages/s, MB/s and the CPU seconds of the broker and
# of the client for each phase, so it is visible which side limits.
#
#   scripts/broker-throughput.sh [messages (default 1000000)] [value bytes (default 100)]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
VALUE_BYTES=${2:-100}
PY_N=$(( N / 10 ))
cargo build --release -q -p rill-broker
WORK=$(mktemp -d)
trap 'kill -9 $BROKER 2>/dev/null || true; rm -rf "$WORK"' EXIT
./target/release/rill-broker --listen 127.0.0.1:0 --data-dir "$WORK/data" \
  --default-partitions 4 --group-initial-rebalance-delay-ms 0 >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER=$!
for _ in $(seq 100); do grep -q listening "$WORK/broker.out" 2>/dev/null && break; sleep 0.05; done
ADDR=$(awk '{print $4}' "$WORK/broker.out")
python3 - "$N" "$VALUE_BYTES" >"$WORK/messages" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * size
out = sys.stdout
for i in range(n):
    out.write("k%d:%s\n" % (i, pad[: size]))
PY
BYTES=$(( N * VALUE_BYTES ))
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
phase() { # name, count, bytes, command...
  local name=$1 count=$2 bytes=$3; shift 3
  local before after start end
  before=$(ticks $BROKER)
  start=$(date +%s.%N)
  local client_cpu
  client_cpu=$( { /usr/bin/env time -f "%U %S" "$@" >/dev/null; } 2>&1 | tail -n1 | awk '{print $1 + $2}')
  end=$(date +%s.%N)
  after=$(ticks $BROKER)
  awk -v name="$name" -v n="$count" -v b="$bytes" -v s="$start" -v e="$end" \
      -v bc="$(( after - before ))" -v hz="$HZ" -v cc="$client_cpu" 'BEGIN {
    t = e - s;
    printf "%-34s %9d msgs in %6.2f s: %10.0f msgs/s %7.1f MB/s  broker CPU %5.2f s, client CPU %5.2f s\n",
      name, n, t, n / t, b / t / 1e6, bc / hz, cc }'
}
if ! command -v time >/dev/null && [ ! -x /usr/bin/time ]; then
  echo "needs /usr/bin/time (Debian package: time)" >&2; exit 1
fi
echo "rill-broker at $ADDR; $N messages of $VALUE_BYTES B, 4 partitions"
phase "kcat produce acks=1" "$N" "$BYTES" \
  kcat -b "$ADDR" -q -P -t perf-acks1 -K: -X acks=1 -l "$WORK/messages"
phase "kcat produce acks=all (fdatasync)" "$N" "$BYTES" \
  kcat -b "$ADDR" -q -P -t perf-durable -K: -X acks=all -l "$WORK/messages"
phase "kcat consume (zero-copy fetch)" "$N" "$BYTES" \
  kcat -b "$ADDR" -q -C -t perf-durable -o beginning -e -f '%o\n'
phase "kafka-python produce acks=all" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  python3 -c "
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers='$ADDR', acks='all', linger_ms=5, batch_size=262144)
v = b'x' * $VALUE_BYTES
for i in range($PY_N): p.send('perf-py', key=b'k%d' % i, value=v)
p.flush()"
phase "kafka-python consume" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  python3 -c "
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers='$ADDR', enable_auto_commit=False, fetch_max_bytes=52428800, max_partition_fetch_bytes=8388608)
tps = [TopicPartition('perf-py', i) for i in range(4)]
c.assign(tps); c.seek_to_beginning()
n = 0
while n < $PY_N:
    for rs in c.poll(timeout_ms=1000, max_records=100000).values(): n += len(rs)"
phase "confluent-kafka produce acks=all" "$N" "$BYTES" \
  python3 -c "
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': '$ADDR', 'acks': 'all', 'linger.ms': 5,
              'queue.buffering.max.messages': 1000000})
v = b'x' * $VALUE_BYTES
for i in range($N):
    while True:
        try:
            p.produce('perf-confluent', key=b'k%d' % i, value=v)
            break
        except BufferError:
            p.poll(0.01)
p.flush()"
phase "confluent-kafka consume (group)" "$N" "$BYTES" \
  python3 -c "
from confluent_kafka import Consumer
c = Consumer({'bootstrap.servers': '$ADDR', 'group.id': 'perf', 'auto.offset.reset': 'earliest',
              'enable.auto.commit': False})
c.subscribe(['perf-confluent'])
n = 0
while n < $N:
    n += sum(1 for m in c.consume(10000, 1.0) if m.error() is None)
c.close()"
phase "aiokafka produce acks=all" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  python3 -c "
import asyncio
from aiokafka import AIOKafkaProducer
async def main():
    p = AIOKafkaProducer(bootstrap_servers='$ADDR', acks='all', linger_ms=5, max_batch_size=262144)
    await p.start()
    v, pending = b'x' * $VALUE_BYTES, []
    for i in range($PY_N):
        pending.append(await p.send('perf-aio', key=b'k%d' % i, value=v))
        if len(pending) >= 10000:
            await asyncio.gather(*pending); pending.clear()
    await asyncio.gather(*pending)
    await p.stop()
asyncio.run(main())"
phase "aiokafka consume (group)" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  python3 -c "
import asyncio
from aiokafka import AIOKafkaConsumer
async def main():
    c = AIOKafkaConsumer('perf-aio', bootstrap_servers='$ADDR', group_id='perf',
                         auto_offset_reset='earliest', enable_auto_commit=False)
    await c.start()
    n = 0
    while n < $PY_N:
        n += sum(len(r) for r in (await c.getmany(timeout_ms=1000, max_records=100000)).values())
    await c.stop()
asyncio.run(main())"
export NODE_PATH="$PWD/.clients/node_modules"
phase "kafkajs produce acks=all" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  node -e "
const { Kafka, logLevel } = require('kafkajs')
const kafka = new Kafka({ brokers: ['$ADDR'], logLevel: logLevel.NOTHING })
const value = Buffer.alloc($VALUE_BYTES, 'x')
;(async () => {
  const p = kafka.producer(); await p.connect()
  const inFlight = []
  for (let i = 0; i < $PY_N; i += 1000) {
    const messages = []
    for (let j = i; j < Math.min(i + 1000, $PY_N); j++) messages.push({ key: 'k' + j, value })
    inFlight.push(p.send({ topic: 'perf-js', messages, acks: -1 }))
    if (inFlight.length >= 8) await inFlight.shift()
  }
  await Promise.all(inFlight); await p.disconnect()
})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })"
phase "kafkajs consume (group)" "$PY_N" "$(( PY_N * VALUE_BYTES ))" \
  node -e "
const { Kafka, logLevel } = require('kafkajs')
const kafka = new Kafka({ brokers: ['$ADDR'], logLevel: logLevel.NOTHING })
;(async () => {
  const c = kafka.consumer({ groupId: 'perf', maxBytes: 50 << 20 }); await c.connect()
  await c.subscribe({ topic: 'perf-js', fromBeginning: true })
  let n = 0
  await new Promise((resolve, reject) => c.run({ autoCommit: false, eachBatch: async ({ batch }) => {
    n += batch.messages.length; if (n >= $PY_N) resolve() } }).catch(reject))
  await c.disconnect()
})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })"
kill -TERM $BROKER; wait $BROKER || true
