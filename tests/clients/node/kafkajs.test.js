// kafkajs against idempo-broker through idempo-proxy, which loses Produce acks.
//
// Properties, restated by name in each test:
// - exactly once and in order: with idempotence on (producer and broker), every record is in
//   the log once, in the order it was sent, though acks were lost and batches retried; each
//   batch's reported base offset is its position (the retry got the original offset);
// - the fault really happened: the proxy reports lost acks, and with idempotence off
//   (producer and broker) the same faults leave duplicates in the log.
//
// kafkajs quirks: it asks the *controller* for a producer id (idempo's node 1 is its own
// controller), and its idempotent producer is "experimental". The log is read back with
// kafkajs's own cluster and broker classes (a plain Fetch from offset 0), so that what is
// checked is the log itself; group consumers are tested in groups.test.js.
//
// IDEMPO_TEST_VERBOSE=1 prints the proxy's fault counts of each test.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')
const { startLossyCluster, readAll } = require('./cluster')

const RECORDS = 30
const PER_BATCH = 3 // ten round trips, so several acks can be lost
const TOPIC = 'orders'
const SENT = Array.from({ length: RECORDS }, (_, i) => String(i))

function client (bootstrap) {
  return new Kafka({
    clientId: 'idempo-node-test',
    brokers: [bootstrap],
    logLevel: process.env.KAFKAJS_LOG ? logLevel.INFO : logLevel.NOTHING,
    retry: { initialRetryTime: 50, retries: 8 }
  })
}

// Sends SENT to partition 0, PER_BATCH records per request; returns the base offsets.
async function produce (kafka, idempotent) {
  const producer = kafka.producer({ idempotent, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const baseOffsets = []
    for (let i = 0; i < RECORDS; i += PER_BATCH) {
      const messages = SENT.slice(i, i + PER_BATCH).map(value => ({ value, partition: 0 }))
      const [result] = await producer.send({ topic: TOPIC, acks: -1, messages })
      assert.equal(result.errorCode, 0)
      baseOffsets.push(Number(result.baseOffset))
    }
    return baseOffsets
  } finally {
    await producer.disconnect()
  }
}

test('kafkajs idempotent producer writes every record exactly once and in order despite lost acks', async () => {
  const cluster = await startLossyCluster({ idempotence: true })
  let baseOffsets, values, counts
  try {
    const kafka = client(cluster.bootstrap)
    baseOffsets = await produce(kafka, true)
    values = await readAll(kafka, TOPIC)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  if (process.env.IDEMPO_TEST_VERBOSE) console.log(counts, values.length)
  const context = `${JSON.stringify(counts)}\n${cluster.logTail()}`
  assert.ok(counts['dropped produce responses'] >= 1, `the fault really happened\n${context}`)
  assert.deepEqual(values, SENT, `exactly once and in order\n${context}`)
  const expected = Array.from({ length: RECORDS / PER_BATCH }, (_, i) => i * PER_BATCH)
  assert.deepEqual(baseOffsets, expected, `each retry was answered with the original offset\n${context}`)
})

test('kafkajs without idempotence: the same lost acks write duplicates', async () => {
  const cluster = await startLossyCluster({ idempotence: false })
  let values, counts
  try {
    const kafka = client(cluster.bootstrap)
    await produce(kafka, false)
    values = await readAll(kafka, TOPIC)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  if (process.env.IDEMPO_TEST_VERBOSE) console.log(counts, values.length)
  const context = `${JSON.stringify(counts)}\n${cluster.logTail()}`
  assert.ok(counts['dropped produce responses'] >= 1, context)
  assert.deepEqual(new Set(values), new Set(SENT), `nothing was lost\n${context}`)
  assert.ok(values.length > RECORDS, `the retries of lost acks were appended again\n${context}`)
})
