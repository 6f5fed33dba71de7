"""Produces with acks=all until the broker goes away, printing every acknowledged message as
`ACK <partition> <offset> <key>` (flushed at once), so that a test can SIGKILL the broker at
any moment and later look for every acknowledged message."""

import sys
import time

from kafka import KafkaProducer

BOOTSTRAP, TOPIC, PARTITIONS = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", retries=0, linger_ms=2,
                         request_timeout_ms=5000, max_block_ms=5000)
failures = 0


def acked(key):
    def on_ack(meta):
        print("ACK %d %d %s" % (meta.partition, meta.offset, key), flush=True)
    return on_ack


def failed(_error):
    global failures
    failures += 1


i = 0
deadline = time.time() + 120
while failures == 0 and time.time() < deadline:
    key = "m-%d" % i
    try:
        producer.send(TOPIC, key=key.encode(), value=b"payload-" + key.encode() * 8,
                      partition=i % PARTITIONS).add_callback(acked(key)).add_errback(failed)
    except Exception:  # the broker is gone: buffer full or metadata unavailable
        break
    i += 1
    if i % 200 == 0:
        time.sleep(0.001)
try:
    producer.close(timeout=5)
except Exception:
    pass
