"""kafka-python committing offsets for a group through rill-broker (assigned partitions, no
group membership): `commit` reads 40 of 100 messages and commits offset 40; `resume`, in a new
process (after a broker restart), reads the committed offset and where consumption starts.
Prints a JSON line."""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

BOOTSTRAP, PHASE = sys.argv[1], sys.argv[2]
TP = TopicPartition("events", 0)


def consumer():
    return KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id="g1",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )


if PHASE == "commit":
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    for i in range(100):
        producer.send("events", b"v%d" % i, partition=0)
    producer.flush()
    c = consumer()
    c.assign([TP])
    c.seek_to_beginning(TP)
    read = 0
    for message in c:
        read += 1
        if read == 40:
            break
    c.commit({TP: OffsetAndMetadata(40, "meta")})
    print(json.dumps({"committed": c.committed(TP)}))
else:
    c = consumer()
    c.assign([TP])
    committed = c.committed(TP)
    first = next(iter(c)).offset
    print(json.dumps({"committed": committed, "first": first}))
