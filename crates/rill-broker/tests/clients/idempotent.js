// kafkajs producers against rill-broker with its test-only produce fault (see idempotent.py).
//
// Usage: node idempotent.js <bootstrap> <topic> <count> <idempotent|plain>
// Sends values 0..count-1 in order to partition 0 in small batches, one request in flight,
// reads the partition back and prints JSON as idempotent.py does.

const { Kafka, logLevel } = require('kafkajs')

const [addr, topic, countArg, mode] = process.argv.slice(2, 6)
const count = Number(countArg)
const idempotent = mode === 'idempotent'
const kafka = new Kafka({
  clientId: 'rill-idempotent-test',
  brokers: [addr],
  logLevel: logLevel.NOTHING,
  retry: { retries: 50, initialRetryTime: 50, maxRetryTime: 500 },
})

async function main() {
  const producer = kafka.producer({ idempotent, maxInFlightRequests: 1, allowAutoTopicCreation: true })
  await producer.connect()
  for (let start = 0; start < count; start += 20) {
    const messages = []
    for (let i = start; i < Math.min(start + 20, count); i++) messages.push({ value: String(i), partition: 0 })
    await producer.send({ topic, messages, acks: -1, timeout: 5000 })
  }
  await producer.disconnect()
  const records = []
  const consumer = kafka.consumer({ groupId: `read-${topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const admin = kafka.admin()
  await admin.connect()
  const end = Number((await admin.fetchTopicOffsets(topic)).find((p) => p.partition === 0).high)
  await admin.disconnect()
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        records.push([Number(message.offset), message.value.toString()])
        if (records.length >= end) resolve()
      },
    }).catch(reject)
  })
  await consumer.disconnect()
  const values = records.map(([, v]) => v)
  const expected = Array.from({ length: count }, (_, i) => String(i))
  console.log(JSON.stringify({
    lib: 'kafkajs',
    mode,
    stored: records.length,
    dense: records.every(([o], i) => o === i),
    exactly_once_in_order: JSON.stringify(values) === JSON.stringify(expected),
  }))
}

main().then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
