"""confluent-kafka's AdminClient (librdkafka) against rill-broker: a topic created with
configs, described, altered (a bad key refused), grown, a consumer group listed and described
with its lag (committed offsets against the high watermarks), the group and the topic deleted.

Usage: admin_confluent.py <bootstrap>. Prints a JSON summary ending in "ok": true.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

TOPIC = "admin-confluent"
GROUP = "admin-confluent-group"
TIMEOUT = 30


def done(futures):
    return {k: f.result(timeout=TIMEOUT) for k, f in futures.items()}


def topic_config(admin, name):
    resource = ConfigResource(ResourceType.TOPIC, name)
    (entries,) = done(admin.describe_configs([resource])).values()
    return {k: v.value for k, v in entries.items()}


def partitions(admin, name):
    return len(admin.list_topics(name, timeout=TIMEOUT).topics[name].partitions)


def main():
    addr = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": addr})
    summary = {}

    config = {"retention.ms": "3600000", "max.message.bytes": "100000"}
    done(admin.create_topics([NewTopic(TOPIC, 2, 1, config=config)]))
    described = topic_config(admin, TOPIC)
    assert described["retention.ms"] == "3600000", described
    assert described["max.message.bytes"] == "100000", described

    alter = ConfigResource(
        ResourceType.TOPIC,
        TOPIC,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    done(admin.incremental_alter_configs([alter]))
    assert topic_config(admin, TOPIC)["retention.ms"] == "7200000"
    bad = ConfigResource(
        ResourceType.TOPIC,
        TOPIC,
        incremental_configs=[
            ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    try:
        done(admin.incremental_alter_configs([bad]))
        raise AssertionError("an unknown key was accepted")
    except KafkaException as e:
        summary["refused"] = str(e.args[0].str())

    done(admin.create_partitions([NewPartitions(TOPIC, 4)]))
    assert partitions(admin, TOPIC) == 4

    # A group with a member and a known lag: 100 records, half of each partition committed.
    producer = Producer({"bootstrap.servers": addr})
    for i in range(100):
        producer.produce(TOPIC, key=str(i), value=str(i), partition=i % 4)
    producer.flush(TIMEOUT)
    consumer = Consumer(
        {
            "bootstrap.servers": addr,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    deadline = time.time() + TIMEOUT
    while len(consumer.assignment()) < 4:
        consumer.poll(0.2)
        assert time.time() < deadline, "the consumer was never assigned"
    consumer.commit(offsets=[TopicPartition(TOPIC, p, 10) for p in range(4)], asynchronous=False)

    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    groups = {g.group_id: str(g.state) for g in listed.valid}
    assert GROUP in groups, groups
    summary["listed_state"] = groups[GROUP]
    (description,) = done(admin.describe_consumer_groups([GROUP])).values()
    assert len(description.members) == 1, description.members
    assigned = description.members[0].assignment.topic_partitions
    assert sorted(tp.partition for tp in assigned) == [0, 1, 2, 3], assigned
    summary["described_state"] = str(description.state)
    from confluent_kafka import ConsumerGroupTopicPartitions

    (committed,) = done(
        admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])
    ).values()
    committed = {tp.partition: tp.offset for tp in committed.topic_partitions}
    ends = done(
        admin.list_offsets({TopicPartition(TOPIC, p): OffsetSpec.latest() for p in range(4)})
    )
    lag = sum(ends[TopicPartition(TOPIC, p)].offset - committed[p] for p in range(4))
    assert lag == 60, (committed, ends)
    summary["lag"] = lag

    consumer.close()
    done(admin.delete_consumer_groups([GROUP]))
    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    assert GROUP not in {g.group_id for g in listed.valid}

    done(admin.delete_topics([TOPIC]))
    deadline = time.time() + TIMEOUT
    while TOPIC in admin.list_topics(timeout=TIMEOUT).topics:
        assert time.time() < deadline, "the topic is still listed"
        time.sleep(0.1)
    summary["ok"] = True
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
