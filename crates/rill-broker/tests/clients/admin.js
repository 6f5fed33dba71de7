// kafkajs's admin client against rill-broker: the checks of admin_confluent.py (a topic with
// configs, described, altered, a bad key refused, grown; a group listed and described with its
// lag; the group and the topic deleted).
//
// Usage: node admin.js <bootstrap>. Prints a JSON summary with "ok": true.

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')
const assert = require('assert')

const addr = process.argv[2]
const TOPIC = 'admin-kafkajs'
const GROUP = 'admin-kafkajs-group'
const kafka = new Kafka({ clientId: 'rill-admin-test', brokers: [addr], logLevel: logLevel.NOTHING })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function topicConfig(admin) {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC }],
  })
  assert.strictEqual(resources[0].errorCode, 0, JSON.stringify(resources[0]))
  return Object.fromEntries(resources[0].configEntries.map((e) => [e.configName, e.configValue]))
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  const summary = {}

  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [{
      topic: TOPIC,
      numPartitions: 2,
      configEntries: [{ name: 'retention.ms', value: '3600000' }, { name: 'cleanup.policy', value: 'delete' }],
    }],
  })
  assert.strictEqual(created, true)
  assert.strictEqual((await topicConfig(admin))['retention.ms'], '3600000')

  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  })
  assert.strictEqual((await topicConfig(admin))['retention.ms'], '7200000')
  try {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'no.such.key', value: '1' }] }],
    })
    throw new Error('an unknown key was accepted')
  } catch (e) {
    assert.ok(/INVALID_CONFIG|config/i.test(`${e.type} ${e.message}`), `${e.type} ${e.message}`)
    summary.refused = e.type || e.message
  }

  await admin.createPartitions({ topicPartitions: [{ topic: TOPIC, count: 4 }] })
  const metadata = await admin.fetchTopicMetadata({ topics: [TOPIC] })
  assert.strictEqual(metadata.topics[0].partitions.length, 4)

  // A group with a member and a known lag: 100 records, ten of each partition committed.
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 100; i++) messages.push({ value: String(i), partition: i % 4 })
  await producer.send({ topic: TOPIC, messages, acks: -1 })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: GROUP })
  await consumer.connect()
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
  let joined = false
  consumer.on(consumer.events.GROUP_JOIN, () => { joined = true })
  await consumer.run({ autoCommit: false, eachMessage: async () => {} })
  const deadline = Date.now() + 30000
  while (!joined) {
    assert.ok(Date.now() < deadline, 'the consumer never joined')
    await sleep(100)
  }
  await consumer.commitOffsets([0, 1, 2, 3].map((partition) => ({ topic: TOPIC, partition, offset: '10' })))

  const { groups } = await admin.listGroups()
  assert.ok(groups.some((g) => g.groupId === GROUP), JSON.stringify(groups))
  const described = await admin.describeGroups([GROUP])
  const group = described.groups[0]
  assert.strictEqual(group.members.length, 1, JSON.stringify(group))
  summary.state = group.state
  const committed = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  const ends = await admin.fetchTopicOffsets(TOPIC)
  let lag = 0
  for (const { partition, offset } of committed[0].partitions) {
    lag += Number(ends.find((e) => e.partition === partition).high) - Number(offset)
  }
  assert.strictEqual(lag, 60, JSON.stringify({ committed, ends }))
  summary.lag = lag

  await consumer.disconnect()
  await admin.deleteGroups([GROUP])
  const after = await admin.listGroups()
  assert.ok(!after.groups.some((g) => g.groupId === GROUP), JSON.stringify(after.groups))
  await admin.deleteTopics({ topics: [TOPIC] })
  assert.ok(!(await admin.listTopics()).includes(TOPIC))
  await admin.disconnect()
  summary.ok = true
  console.log(JSON.stringify(summary).replace('"ok":true', '"ok": true'))
}

main().then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
