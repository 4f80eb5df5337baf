// kafkajs consumer groups against idempo-broker, through idempo-proxy losing Produce acks.
//
// Properties, restated by name in each test:
// - resumes from the commit: a group consumer takes the first half of a topic written by an
//   idempotent producer and commits it; a new consumer of the same group reads the rest, so
//   that no record is read twice after the commit and none is skipped;
// - the group splits and heals: two members of one group share the partitions (each
//   partition to exactly one member); when one leaves, the other takes all of them.
//
// The broker runs with a 100 ms group.initial.rebalance.delay.ms and 2 partitions; consumers
// use the smallest session timeout (6 s) and a 300 ms heartbeat, so a rebalance is seen fast.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')
const { startLossyCluster } = require('./cluster')

const TOPIC = 'events'
const PARTITIONS = 2
const RECORDS = 40
const TIMEOUT_MS = 20_000
const BROKER_ARGS = ['--group-initial-rebalance-delay-ms', '100']
const SENT = Array.from({ length: RECORDS }, (_, i) => String(i))

function client (bootstrap) {
  return new Kafka({
    clientId: 'idempo-node-groups',
    brokers: [bootstrap],
    logLevel: process.env.KAFKAJS_LOG ? logLevel.INFO : logLevel.NOTHING,
    retry: { initialRetryTime: 50, retries: 8 }
  })
}

async function produce (kafka) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    for (let i = 0; i < RECORDS; i += 4) {
      const messages = SENT.slice(i, i + 4).map((value, j) => ({ value, partition: (i + j) % PARTITIONS }))
      await producer.send({ topic: TOPIC, acks: -1, messages })
    }
  } finally {
    await producer.disconnect()
  }
}

function consumer (kafka, groupId) {
  // A short fetch wait: kafkajs heartbeats (and so sees a rebalance) between fetches.
  return kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 300, rebalanceTimeout: 10_000, maxWaitTimeInMs: 100 })
}

async function until (condition, what) {
  const deadline = Date.now() + TIMEOUT_MS
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

// A group consumer that accepts the first `take` records it receives (a prefix of each
// partition, since a partition arrives in order), commits exactly those, and leaves.
async function takeAndCommit (kafka, take) {
  const c = consumer(kafka, 'resume')
  await c.connect()
  const taken = []
  try {
    await c.subscribe({ topic: TOPIC, fromBeginning: true })
    await c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (taken.length >= take) return
        taken.push(message.value.toString())
        await c.commitOffsets([{ topic: TOPIC, partition, offset: String(Number(message.offset) + 1) }])
      }
    })
    await until(() => taken.length >= take, `${take} records`)
  } finally {
    await c.disconnect()
  }
  return taken
}

function context (counts, cluster) {
  return `${JSON.stringify(counts)}\n${cluster.logTail()}`
}

test('kafkajs: a restarted group consumer resumes from the committed offsets', async () => {
  const cluster = await startLossyCluster({ idempotence: true, partitions: PARTITIONS, brokerArgs: BROKER_ARGS })
  let first, rest, counts
  try {
    const kafka = client(cluster.bootstrap)
    await produce(kafka)
    first = await takeAndCommit(kafka, RECORDS / 2)
    rest = await takeAndCommit(kafka, RECORDS - first.length)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  const both = [...first, ...rest].sort((a, b) => Number(a) - Number(b))
  assert.equal(first.length, RECORDS / 2)
  assert.deepEqual(both, SENT, `resumes from the commit: none twice, none skipped\n${context(counts, cluster)}`)
  assert.ok(counts['dropped produce responses'] >= 1, `the fault really happened\n${context(counts, cluster)}`)
})

test('kafkajs: two members split the partitions and one takes all when the other leaves', async () => {
  const cluster = await startLossyCluster({ idempotence: true, partitions: PARTITIONS, brokerArgs: BROKER_ARGS })
  const held = { a: [], b: [] }
  const members = {}
  try {
    const kafka = client(cluster.bootstrap)
    await produce(kafka)
    for (const name of ['a', 'b']) {
      const c = consumer(kafka, 'split')
      c.on(c.events.GROUP_JOIN, e => { held[name] = (e.payload.memberAssignment[TOPIC] || []).slice().sort() })
      await c.connect()
      await c.subscribe({ topic: TOPIC, fromBeginning: true })
      await c.run({ eachMessage: async () => {} })
      members[name] = c
    }
    await until(() => held.a.length > 0 && held.b.length > 0 && held.a.length + held.b.length === PARTITIONS,
      'both members to hold partitions')
    assert.deepEqual([...held.a, ...held.b].sort(), [0, 1], 'each partition to exactly one member')
    await members.b.disconnect()
    delete members.b
    await until(() => held.a.length === PARTITIONS, 'the remaining member to take every partition')
    assert.deepEqual(held.a, [0, 1])
  } finally {
    for (const c of Object.values(members)) await c.disconnect()
    await cluster.stop()
  }
})
