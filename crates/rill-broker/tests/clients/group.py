"""Consumer groups through one client library against rill-broker.

Usage: group.py <confluent|kafka-python|aiokafka> <bootstrap> <topic> [--restart] [--idempotent]

Three consumers join one group on a topic of six partitions (the broker auto-creates it with
--default-partitions 6) and consume a stream produced in three parts, committing after every
poll. After the first part one consumer leaves and a fourth joins; the second part goes on
until the fourth has received records. With --restart the script
prints RESTART after the second part and waits for a line on stdin (the test restarts the
broker on the same port meanwhile); the consumers keep running through it. With --idempotent
the producer is idempotent (the test runs the broker with its produce-timeout fault, so the
producer retries batches that were stored). Finally every
consumer commits and leaves, and a new consumer of the group reads whatever is left.

Checks (the script exits non-zero and prints why on failure):
- every produced value is received;
- a value received twice was first received in a poll whose commit did not succeed (nothing
  is redelivered beyond the last uncommitted poll);
- the new consumer at the end receives only such values (the group resumed from its
  committed offsets, across the restart too);
- every partition's offsets are dense and no value is stored twice (each value is at exactly
  one offset).
Prints a JSON summary on stdout.
"""

import asyncio
import json
import sys
import threading
import time

PART = 1000
GROUP = "rill-group-test"
LIMIT_S = 120


class Confluent:
    def __init__(self, addr, topic, name):
        from confluent_kafka import Consumer

        self.c = Consumer(
            {
                "bootstrap.servers": addr,
                "group.id": GROUP,
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.c.subscribe([topic])

    def poll(self):
        out = []
        for m in self.c.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value().decode()))
        return out

    def commit(self):
        try:
            self.c.commit(asynchronous=False)
            return True
        except Exception:
            return False

    def close(self):
        self.c.close()


class KafkaPython:
    def __init__(self, addr, topic, name):
        from kafka import KafkaConsumer

        self.c = KafkaConsumer(
            topic,
            bootstrap_servers=addr,
            group_id=GROUP,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    def poll(self):
        batches = self.c.poll(timeout_ms=200, max_records=500)
        return [
            (tp.partition, m.offset, m.value.decode())
            for tp, records in batches.items()
            for m in records
        ]

    def commit(self):
        try:
            self.c.commit()
            return True
        except Exception:
            return False

    def close(self):
        self.c.close(autocommit=False)


class AioKafka:
    """aiokafka on a loop of its own thread's, called synchronously."""

    def __init__(self, addr, topic, name):
        from aiokafka import AIOKafkaConsumer

        self.loop = asyncio.new_event_loop()

        async def start():
            c = AIOKafkaConsumer(
                topic,
                bootstrap_servers=addr,
                group_id=GROUP,
                client_id=name,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await c.start()
            return c

        self.c = self.loop.run_until_complete(start())

    def poll(self):
        batches = self.loop.run_until_complete(
            self.c.getmany(timeout_ms=200, max_records=500)
        )
        return [
            (tp.partition, m.offset, m.value.decode())
            for tp, records in batches.items()
            for m in records
        ]

    def commit(self):
        try:
            self.loop.run_until_complete(self.c.commit())
            return True
        except Exception:
            return False

    def close(self):
        self.loop.run_until_complete(self.c.stop())
        self.loop.close()


def producer(lib, addr, idempotent):
    """send(topic, value) and flush() in the library under test."""
    if lib == "confluent":
        from confluent_kafka import Producer

        p = Producer(
            {
                "bootstrap.servers": addr,
                "message.send.max.retries": 100,
                "enable.idempotence": idempotent,
            }
        )
        return (lambda t, v: p.produce(t, value=v.encode())), (lambda: p.flush(60))
    if lib == "kafka-python":
        from kafka import KafkaProducer

        assert not idempotent, "kafka-python has no idempotent producer"
        p = KafkaProducer(bootstrap_servers=addr, retries=100, acks="all")
        return (lambda t, v: p.send(t, value=v.encode())), (lambda: p.flush(60))
    from aiokafka import AIOKafkaProducer

    loop = asyncio.new_event_loop()

    async def start():
        p = AIOKafkaProducer(bootstrap_servers=addr, enable_idempotence=idempotent)
        await p.start()
        return p

    p = loop.run_until_complete(start())
    pending = []

    def send(t, v):
        pending.append(loop.run_until_complete(p.send(t, value=v.encode())))

    def flush():
        loop.run_until_complete(asyncio.gather(*pending))
        pending.clear()

    return send, flush


CONSUMERS = {"confluent": Confluent, "kafka-python": KafkaPython, "aiokafka": AioKafka}


class Member(threading.Thread):
    """A consumer that polls, records and commits until told to stop."""

    def __init__(self, lib, addr, topic, name, log):
        super().__init__(daemon=True)
        self.args = (lib, addr, topic, name)
        self.name_ = name
        self.log = log
        self.stop = threading.Event()
        self.error = None

    def run(self):
        lib, addr, topic, name = self.args
        try:
            c = CONSUMERS[lib](addr, topic, name)
            while not self.stop.is_set():
                self.record(c)
            self.record(c)
            c.close()
        except Exception as e:  # reported by the main thread
            self.error = repr(e)

    def record(self, c):
        records = c.poll()
        if records:
            ok = c.commit()
            self.log.append((self.name_, records, ok))


def received(log):
    return {v for _, records, _ in log for _, _, v in records}


def wait_for(log, count, members):
    deadline = time.time() + LIMIT_S
    while len(received(log)) < count:
        for m in members:
            if m.error:
                raise SystemExit(f"{m.name_} failed: {m.error}")
        if time.time() > deadline:
            raise SystemExit(f"received {len(received(log))} of {count} in {LIMIT_S} s")
        time.sleep(0.1)


def main():
    lib, addr, topic = sys.argv[1:4]
    restart = "--restart" in sys.argv[4:]
    idempotent = "--idempotent" in sys.argv[4:]
    log = []  # (consumer, [(partition, offset, value)], commit succeeded)
    started = time.time()
    members = [Member(lib, addr, topic, f"c{i}", log) for i in range(1, 4)]
    for m in members:
        m.start()
    send, flush = producer(lib, addr, idempotent)
    produced = 0

    def produce(count):
        nonlocal produced
        for _ in range(count):
            send(topic, str(produced))
            produced += 1
        flush()

    produce(PART)
    wait_for(log, produced, members)
    # One member leaves, another joins, mid-stream: produce until the new one has received
    # records of its own (the rebalance that admits it has completed).
    members[0].stop.set()
    members[0].join(LIMIT_S)
    members.append(Member(lib, addr, topic, "c4", log))
    members[-1].start()
    deadline = time.time() + LIMIT_S
    produce(PART)
    while not any(name == "c4" for name, _, _ in log):
        if time.time() > deadline:
            raise SystemExit("the joining member never received a record")
        produce(50)
        time.sleep(0.2)
    wait_for(log, produced, members)
    if restart:
        print("RESTART", flush=True)
        sys.stdin.readline()
        send, flush = producer(lib, addr, idempotent)
    produce(PART)
    wait_for(log, produced, members)
    for m in members:
        m.stop.set()
    for m in members:
        m.join(LIMIT_S)
        if m.error:
            raise SystemExit(f"{m.name_} failed: {m.error}")
    elapsed = time.time() - started
    # Whatever a new member of the group is given now was never committed.
    late = Member(lib, addr, topic, "late", log)
    late.start()
    time.sleep(8)
    late.stop.set()
    late.join(LIMIT_S)
    check(log, produced)
    counts = {}
    for name, records, _ in log:
        counts[name] = counts.get(name, 0) + len(records)
    print(
        json.dumps(
            {
                "lib": lib,
                "produced": produced,
                "received": len(received(log)),
                "deliveries": sum(len(r) for _, r, _ in log),
                "by_consumer": counts,
                "failed_commits": sum(1 for _, _, ok in log if not ok),
                "seconds": round(elapsed, 1),
                "ok": True,
            }
        )
    )


def check(log, produced):
    missing = set(map(str, range(produced))) - received(log)
    if missing:
        raise SystemExit(f"never received: {sorted(missing, key=int)[:20]}")
    stored = {}  # (partition, offset) -> value
    for _, records, _ in log:
        for p, off, v in records:
            if stored.setdefault((p, off), v) != v:
                raise SystemExit(f"partition {p} offset {off} delivered with two values")
    at = {}
    for (p, off), v in stored.items():
        if at.setdefault(v, (p, off)) != (p, off):
            raise SystemExit(f"value {v} stored twice: at {at[v]} and {(p, off)}")
    for p in {p for p, _ in stored}:
        offsets = sorted(off for q, off in stored if q == p)
        if offsets != list(range(len(offsets))):
            raise SystemExit(f"partition {p}: offsets not dense from 0")
    first = {}  # value -> whether the poll that first delivered it was committed
    for name, records, ok in log:
        for p, off, v in records:
            if v in first:
                if first[v]:
                    raise SystemExit(
                        f"value {v} (partition {p}, offset {off}) redelivered to {name} "
                        "after a successful commit of the poll that first delivered it"
                    )
            else:
                first[v] = ok


if __name__ == "__main__":
    main()
