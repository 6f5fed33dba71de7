"""kafka-python against rill-broker: create a topic, produce with keys, headers and explicit
timestamps to 3 partitions (acks=all, 1 and 0), consume everything back and compare, then
seek by offset and look up offsets by time. Exits non-zero on any mismatch."""

import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

BOOTSTRAP = sys.argv[1]
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
PARTITIONS = 3
BASE_TS = 1_700_000_000_000


def check(cond, what):
    if not cond:
        print("MISMATCH:", what, file=sys.stderr)
        sys.exit(1)


def message(i):
    key = b"key-%d" % i
    value = b"value-%d-" % i + bytes([i % 256, 0, 255]) + b"v" * (i % 97)
    headers = [("i", str(i).encode()), ("bin", bytes([0, i % 256]))]
    return key, value, headers


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="rill-test-admin")
admin.create_topics([NewTopic("py-events", num_partitions=PARTITIONS, replication_factor=1)])
try:
    admin.create_topics([NewTopic("py-events", num_partitions=PARTITIONS, replication_factor=1)])
    check(False, "creating an existing topic must fail")
except TopicAlreadyExistsError:
    pass
admin.close()

# acks=all for the main topic; each message's partition and timestamp chosen by the test.
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
futures = []
for i in range(COUNT):
    key, value, headers = message(i)
    futures.append(producer.send("py-events", key=key, value=value, headers=headers,
                                 partition=i % PARTITIONS, timestamp_ms=BASE_TS + i))
producer.flush()
acked = [f.get(timeout=30) for f in futures]
for i, meta in enumerate(acked):
    check(meta.partition == i % PARTITIONS and meta.offset == i // PARTITIONS,
          "ack %d: partition %d offset %d" % (i, meta.partition, meta.offset))
producer.close()

# acks=1 and acks=0 to a second topic (auto-created by metadata).
for acks in (1, 0):
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks=acks)
    for i in range(100):
        p.send("py-acks", key=b"a%d-%d" % (acks, i), value=b"x", partition=0)
    p.flush()
    p.close()

tps = [TopicPartition("py-events", p) for p in range(PARTITIONS)]
consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                         group_id=None, fetch_max_wait_ms=100)
consumer.assign(tps)
consumer.seek_to_beginning()
got = []
deadline = time.time() + 60
while len(got) < COUNT and time.time() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        got.extend(records)
check(len(got) == COUNT, "consumed %d of %d" % (len(got), COUNT))
per_partition = {}
for r in got:
    i = int(r.key.split(b"-")[1])
    key, value, headers = message(i)
    check(r.partition == i % PARTITIONS, "partition of %d" % i)
    check(r.offset == i // PARTITIONS, "offset of %d" % i)
    check(r.value == value, "value of %d" % i)
    check(list(r.headers) == headers, "headers of %d: %r" % (i, r.headers))
    check(r.timestamp == BASE_TS + i, "timestamp of %d" % i)
    per_partition.setdefault(r.partition, []).append(r.offset)
for p, offsets in per_partition.items():
    check(offsets == list(range(len(offsets))), "partition %d in order" % p)

# From the middle, by offset.
consumer.seek(tps[0], 250)
middle = []
deadline = time.time() + 30
while not middle and time.time() < deadline:
    middle = consumer.poll(timeout_ms=500).get(tps[0], [])
check(middle and middle[0].offset == 250 and middle[0].key == b"key-750", "seek to 250")

# By time: partition 0 holds i = 0, 3, 6, ... with timestamps BASE_TS + i.
found = consumer.offsets_for_times({tps[0]: BASE_TS + 1500, tps[1]: BASE_TS + 1500,
                                    tps[2]: BASE_TS + COUNT + 10})
check(found[tps[0]].offset == 500 and found[tps[0]].timestamp == BASE_TS + 1500, found[tps[0]])
check(found[tps[1]].offset == 500 and found[tps[1]].timestamp == BASE_TS + 1501, found[tps[1]])
check(found[tps[2]] is None, "no record after the last timestamp")
check(consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}, "beginning offsets")
check(consumer.end_offsets(tps) == {tp: COUNT // PARTITIONS for tp in tps}, "end offsets")

acks_tp = TopicPartition("py-acks", 0)
consumer.assign([acks_tp])
consumer.seek_to_beginning()
keys = []
deadline = time.time() + 30
while len(keys) < 200 and time.time() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        keys.extend(r.key for r in records)
check(sorted(keys) == sorted([b"a%d-%d" % (a, i) for a in (1, 0) for i in range(100)]),
      "acks=1 and acks=0 messages")
consumer.close()
print(json.dumps({"consumed": len(got), "partitions": len(per_partition)}))
