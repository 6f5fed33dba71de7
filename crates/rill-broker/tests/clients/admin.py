"""kafka-python's KafkaAdminClient against rill-broker: create a topic with configs, describe
them, alter them, refuse a bad one by name, add partitions, delete topics. Prints a JSON summary; exits
non-zero on any mismatch."""

import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import InvalidPartitionsError, UnknownTopicOrPartitionError

BOOTSTRAP = sys.argv[1]


def check(cond, what):
    if not cond:
        print("MISMATCH:", what, file=sys.stderr)
        sys.exit(1)


def described(admin, topic):
    response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])[0]
    resources = response.resources
    check(len(resources) == 1, "one resource described")
    error_code, _message, _type, name, entries = resources[0]
    check(error_code == 0 and name == topic, "describe %s: error %s" % (topic, error_code))
    return {entry[0]: entry[1] for entry in entries}


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
admin.create_topics([
    NewTopic("configured", 2, 1, topic_configs={"retention.ms": "3600000", "cleanup.policy": "compact"}),
    NewTopic("plain", 1, 1),
])
configs = described(admin, "configured")
check(configs["retention.ms"] == "3600000", "retention.ms set: %s" % configs["retention.ms"])
check(configs["cleanup.policy"] == "compact", "cleanup.policy set")
check(described(admin, "plain")["cleanup.policy"] == "delete", "defaults described")

# AlterConfigs replaces the topic's settings: retention.ms back to the default.
responses = admin.alter_configs([
    ConfigResource(ConfigResourceType.TOPIC, "configured", configs={"segment.ms": "60000"})
])
check(all(r[0] == 0 for resp in [responses] for r in resp.resources), "alter accepted")
configs = described(admin, "configured")
check(configs["segment.ms"] == "60000", "segment.ms altered")
check(configs["retention.ms"] != "3600000", "alter replaced the settings")
check(configs["cleanup.policy"] == "delete", "unset settings back to the default")

bad = admin.alter_configs([
    ConfigResource(ConfigResourceType.TOPIC, "configured", configs={"no.such.key": "1"})
])
error_code, message = bad.resources[0][0], bad.resources[0][1]
check(error_code == 40, "INVALID_CONFIG for an unknown key, got %s" % error_code)
check("no.such.key" in (message or ""), "the refusal names the key: %r" % message)

# CreatePartitions: 2 -> 4; shrinking is refused.
admin.create_partitions({"configured": NewPartitions(4)})
consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
check(consumer.partitions_for_topic("configured") == {0, 1, 2, 3}, "grown to 4 partitions")
consumer.close()
try:
    admin.create_partitions({"configured": NewPartitions(3)})
    check(False, "shrinking a topic fails")
except InvalidPartitionsError:
    pass

admin.delete_topics(["plain"])
remaining = admin.list_topics()
check("plain" not in remaining and "configured" in remaining, "plain deleted: %s" % remaining)
try:
    admin.delete_topics(["plain"])
    check(False, "deleting a deleted topic fails")
except UnknownTopicOrPartitionError:
    pass
print(json.dumps({"ok": True, "topics": sorted(remaining)}))
