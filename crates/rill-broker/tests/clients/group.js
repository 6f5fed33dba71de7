// Consumer groups through kafkajs against rill-broker: the scenario and checks of group.py
// (three consumers, one leaves and a fourth joins mid-stream, an optional broker restart on
// the same port, a late consumer that must see only what was never committed).
//
// Usage: node group.js <bootstrap> <topic> [--restart] [--idempotent]
// kafkajs has no consumer without a group: this is the only way it consumes at all.

const { Kafka, logLevel } = require('kafkajs')
const readline = require('readline')

const [addr, topic] = process.argv.slice(2, 4)
const restart = process.argv.slice(4).includes('--restart')
const idempotent = process.argv.slice(4).includes('--idempotent')
const PART = 1000
const GROUP = 'rill-group-test'
const LIMIT_MS = 120000

const kafka = new Kafka({
  clientId: 'rill-group-test',
  brokers: [addr],
  logLevel: logLevel.NOTHING,
  retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 },
})
const log = [] // [consumer, [[partition, offset, value]], commit succeeded]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function member(name) {
  const consumer = kafka.consumer({ groupId: GROUP, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      const records = batch.messages.map((m) => [batch.partition, Number(m.offset), m.value.toString()])
      const next = (BigInt(batch.lastOffset()) + 1n).toString()
      let ok = true
      try {
        await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }])
      } catch (e) {
        ok = false
      }
      log.push([name, records, ok])
    },
  })
  return consumer
}

function received() {
  const values = new Set()
  for (const [, records] of log) for (const [, , v] of records) values.add(v)
  return values
}

async function waitFor(count) {
  const deadline = Date.now() + LIMIT_MS
  while (received().size < count) {
    if (Date.now() > deadline) throw new Error(`received ${received().size} of ${count}`)
    await sleep(100)
  }
}

async function newProducer() {
  const producer = kafka.producer({ allowAutoTopicCreation: true, idempotent, maxInFlightRequests: idempotent ? 1 : undefined })
  await producer.connect()
  return producer
}

function check(produced) {
  const got = received()
  for (let i = 0; i < produced; i++) {
    if (!got.has(String(i))) throw new Error(`never received ${i}`)
  }
  const stored = new Map() // "partition:offset" -> value
  const at = new Map() // value -> "partition:offset"
  const offsets = new Map() // partition -> offsets
  for (const [, records] of log) {
    for (const [p, off, v] of records) {
      const place = `${p}:${off}`
      if (stored.has(place)) {
        if (stored.get(place) !== v) throw new Error(`${place} delivered with two values`)
        continue
      }
      stored.set(place, v)
      if (at.has(v)) throw new Error(`value ${v} stored twice: at ${at.get(v)} and ${place}`)
      at.set(v, place)
      offsets.set(p, [...(offsets.get(p) || []), off])
    }
  }
  for (const [p, list] of offsets) {
    list.sort((a, b) => a - b)
    if (list.some((off, i) => off !== i)) throw new Error(`partition ${p}: offsets not dense from 0`)
  }
  const first = new Map()
  for (const [name, records, ok] of log) {
    for (const [p, off, v] of records) {
      if (!first.has(v)) first.set(v, ok)
      else if (first.get(v)) {
        throw new Error(`value ${v} (partition ${p}, offset ${off}) redelivered to ${name} after a successful commit`)
      }
    }
  }
}

async function main() {
  const started = Date.now()
  const consumers = []
  for (const name of ['c1', 'c2', 'c3']) consumers.push(await member(name))
  let producer = await newProducer()
  let produced = 0
  const produce = async (count) => {
    const messages = []
    // Keyed: kafkajs partitions keyless messages afresh when it retries a send, so an
    // idempotent retry would carry other messages under the stored batch's sequence numbers
    // (refused by Kafka as by rill: OUT_OF_ORDER_SEQUENCE_NUMBER; tulios/kafkajs#598).
    for (let i = 0; i < count; i++) {
      const value = String(produced++)
      messages.push({ key: value, value })
    }
    await producer.send({ topic, messages, acks: -1 })
  }
  await produce(PART)
  await waitFor(produced)
  await consumers.shift().disconnect()
  consumers.push(await member('c4'))
  await produce(PART)
  const deadline = Date.now() + LIMIT_MS
  while (!log.some(([name]) => name === 'c4')) {
    if (Date.now() > deadline) throw new Error('the joining member never received a record')
    await produce(50)
    await sleep(200)
  }
  await waitFor(produced)
  if (restart) {
    console.log('RESTART')
    const lines = readline.createInterface({ input: process.stdin })
    await new Promise((resolve) => lines.once('line', resolve))
    lines.close()
    await producer.disconnect().catch(() => {})
    producer = await newProducer()
  }
  await produce(PART)
  await waitFor(produced)
  const elapsed = (Date.now() - started) / 1000
  for (const c of consumers) await c.disconnect()
  await producer.disconnect()
  const late = await member('late')
  await sleep(8000)
  await late.disconnect()
  check(produced)
  const byConsumer = {}
  for (const [name, records] of log) byConsumer[name] = (byConsumer[name] || 0) + records.length
  console.log(JSON.stringify({
    lib: 'kafkajs',
    produced,
    received: received().size,
    deliveries: log.reduce((n, [, r]) => n + r.length, 0),
    by_consumer: byConsumer,
    failed_commits: log.filter(([, , ok]) => !ok).length,
    seconds: elapsed,
    ok: true,
  }).replace('"ok":true', '"ok": true'))
}

main().then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
