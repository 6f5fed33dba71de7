"""Idempotent producers of one client library against rill-broker with its test-only fault
(every third produce request stored, then answered REQUEST_TIMED_OUT, so the client retries
what was stored).

Usage: idempotent.py <confluent|aiokafka> <bootstrap> <topic> <count> <idempotent|plain>

Produces values 0..count-1 in order to partition 0 in small batches, then reads the
partition back from the start. Prints JSON: how many records are stored, whether offsets are
dense, and whether the values are exactly 0..count-1 in order.
"""

import asyncio
import json
import sys


def produce_confluent(addr, topic, count, idempotent):
    from confluent_kafka import Producer

    config = {
        "bootstrap.servers": addr,
        "linger.ms": 1,
        "batch.num.messages": 20,
        "acks": "all",
        "message.send.max.retries": 1000,
    }
    if idempotent:
        config["enable.idempotence"] = True
    p = Producer(config)
    errors = []
    for i in range(count):
        p.produce(topic, value=str(i).encode(), partition=0,
                  on_delivery=lambda err, _m: err and errors.append(str(err)))
        p.poll(0)
    p.flush(120)
    return errors


def produce_aiokafka(addr, topic, count, idempotent):
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(
            bootstrap_servers=addr,
            enable_idempotence=idempotent,
            acks="all",
            linger_ms=1,
            max_batch_size=512,
            request_timeout_ms=5000,
        )
        await p.start()
        futures = [await p.send(topic, value=str(i).encode(), partition=0) for i in range(count)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await p.stop()
        return [repr(r) for r in results if isinstance(r, Exception)]

    return asyncio.run(run())


def read_back(addr, topic):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=addr, enable_auto_commit=False, consumer_timeout_ms=3000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    records = [(m.offset, m.value.decode()) for m in c]
    c.close()
    return records


def main():
    lib, addr, topic, count, mode = sys.argv[1:6]
    count = int(count)
    idempotent = mode == "idempotent"
    produce = produce_confluent if lib == "confluent" else produce_aiokafka
    errors = produce(addr, topic, count, idempotent)
    records = read_back(addr, topic)
    print(
        json.dumps(
            {
                "lib": lib,
                "mode": mode,
                "errors": errors[:5],
                "stored": len(records),
                "dense": [o for o, _ in records] == list(range(len(records))),
                "exactly_once_in_order": [v for _, v in records] == [str(i) for i in range(count)],
            }
        )
    )


if __name__ == "__main__":
    main()
