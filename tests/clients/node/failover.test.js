// kafkajs through leader failovers on a 3-broker cluster (RF 3, min.insync.replicas=2).
//
// An idempotent acks=all kafkajs producer writes while the test crashes the partition's
// leader through the admin endpoint (POST /brokers/{id}/crash) with a send in flight, waits
// for the controller to elect another leader from the ISR, starts the crashed broker again
// (POST /brokers/{id}/start), waits for it in the ISR and gives it the leadership back with a
// preferred election (POST /partitions/{topic}/0/elect), a send in flight: twice per test.
// Then every record is read back from the leader.
//
// Properties, restated by name in each test:
// - exactly once and in order: every record sent is in the log once, in the order sent;
// - the fault really happened: GET /cluster shows a new leader at a higher leader epoch after
//   each crash and each election; through the proxy, the proxy reports lost acks, and with idempotence off
//   (producer and broker) the same run leaves duplicates in the log.
//
// IDEMPO_TEST_VERBOSE=1 prints the leaders seen and the proxy's fault counts of each test.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')
const { startThreeBrokers, waitUntil, readAll } = require('./cluster')

const TOPIC = 'failover'
const CRASHES = 2
const PER_SEND = 5
const SENDS_PER_PHASE = 4
// broker.session.timeout.ms: how soon the controller replaces a crashed leader.
const SESSION_TIMEOUT_MS = 500
// The multi-broker proxy: acks lost on every broker (the leader moves), the connection closed
// after each loss, at most three losses per run.
const LOSSY_PROXY = ['--seed', '3', '--ack-loss', '0.6', '--close-after-fault', 'on', '--max-faults', '3']

function client (bootstrap) {
  return new Kafka({
    clientId: 'idempo-node-failover',
    brokers: bootstrap,
    logLevel: process.env.KAFKAJS_LOG ? logLevel.INFO : logLevel.NOTHING,
    retry: { initialRetryTime: 50, retries: 10 }
  })
}

// Produces a phase, then CRASHES times: a send in flight, crash the leader, produce while it
// is down, wait for a new leader, start the old one, wait for it in the ISR, produce.
// Returns the values sent and the (leader, epoch) pairs seen.
async function runThroughLeaderCrashes (cluster, kafka, idempotent) {
  const producer = kafka.producer({ idempotent, maxInFlightRequests: 1 })
  await producer.connect()
  const sent = []
  const values = name => {
    const phase = Array.from({ length: PER_SEND }, (_, i) => `${name}-${i}`)
    sent.push(...phase)
    return phase.map(value => ({ value, partition: 0 }))
  }
  const send = name => producer.send({ topic: TOPIC, acks: -1, messages: values(name) })
  const phase = async name => {
    for (let i = 0; i < SENDS_PER_PHASE; i++) await send(`${name}${i}`)
  }
  try {
    await phase('start')
    await waitUntil('every replica in the ISR', async () => (await cluster.partition(TOPIC)).isr.length === 3)
    const first = await cluster.partition(TOPIC)
    const seen = [[first.leader, first.leader_epoch]]
    for (let crash = 0; crash < CRASHES; crash++) {
      const old = seen[seen.length - 1][0]
      const inFlight = send(`inflight${crash}`)
      await cluster.admin('POST', `/brokers/${old}/crash`)
      await inFlight
      await phase(`down${crash}`)
      await waitUntil('a new leader from the ISR', async () => ![-1, old].includes((await cluster.partition(TOPIC)).leader))
      const now = await cluster.partition(TOPIC)
      seen.push([now.leader, now.leader_epoch])
      await cluster.admin('POST', `/brokers/${old}/start`)
      await waitUntil(`broker ${old} back in the ISR`, async () => (await cluster.partition(TOPIC)).isr.includes(old))
      // A preferred election gives the partition back to its first replica with a send in
      // flight to the current leader, which answers NOT_LEADER_OR_FOLLOWER.
      const toOldLeader = send(`elect${crash}`)
      const elected = await cluster.admin('POST', `/partitions/${TOPIC}/0/elect`)
      seen.push([elected.leader, elected.leader_epoch])
      await toOldLeader
      await phase(`up${crash}`)
    }
    return { sent, seen }
  } finally {
    await producer.disconnect()
  }
}

function assertTheLeaderMovedAtEachCrash (seen) {
  for (let i = 1; i < seen.length; i++) {
    assert.notEqual(seen[i][0], seen[i - 1][0], `a new leader each time: ${JSON.stringify(seen)}`)
    assert.ok(seen[i][1] > seen[i - 1][1], `each at a higher leader epoch: ${JSON.stringify(seen)}`)
  }
}

test('kafkajs idempotent producer writes exactly once and in order through leader crashes and restarts', async () => {
  const cluster = await startThreeBrokers({ sessionTimeoutMs: SESSION_TIMEOUT_MS })
  let run, values
  try {
    const kafka = client(cluster.bootstrap)
    run = await runThroughLeaderCrashes(cluster, kafka, true)
    values = await readAll(kafka, TOPIC)
  } finally {
    await cluster.stop()
  }
  if (process.env.IDEMPO_TEST_VERBOSE) console.log(run.seen, values.length)
  assertTheLeaderMovedAtEachCrash(run.seen)
  assert.deepEqual(values, run.sent, `exactly once and in order\n${cluster.logTail()}`)
})

test('kafkajs idempotent producer writes exactly once and in order through lost acks and leader crashes', async () => {
  const cluster = await startThreeBrokers({ proxyArgs: LOSSY_PROXY, sessionTimeoutMs: SESSION_TIMEOUT_MS })
  let run, values, counts
  try {
    const kafka = client(cluster.bootstrap)
    run = await runThroughLeaderCrashes(cluster, kafka, true)
    values = await readAll(kafka, TOPIC)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  if (process.env.IDEMPO_TEST_VERBOSE) console.log(run.seen, counts, values.length)
  const context = `${JSON.stringify(counts)}\n${cluster.logTail()}`
  assert.ok(counts['dropped produce responses'] >= 1, `the fault really happened\n${context}`)
  assertTheLeaderMovedAtEachCrash(run.seen)
  assert.deepEqual(values, run.sent, `exactly once and in order\n${context}`)
})

test('kafkajs without idempotence: the same lost acks and leader crashes write duplicates', async () => {
  const cluster = await startThreeBrokers({ brokerArgs: ['--idempotence', 'off'], proxyArgs: LOSSY_PROXY, sessionTimeoutMs: SESSION_TIMEOUT_MS })
  let run, values, counts
  try {
    const kafka = client(cluster.bootstrap)
    run = await runThroughLeaderCrashes(cluster, kafka, false)
    values = await readAll(kafka, TOPIC)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  const context = `${JSON.stringify(counts)}\n${cluster.logTail()}`
  assert.ok(counts['dropped produce responses'] >= 1, context)
  assertTheLeaderMovedAtEachCrash(run.seen)
  assert.deepEqual(new Set(values), new Set(run.sent), `nothing was lost\n${context}`)
  assert.ok(values.length > run.sent.length, `the retries of lost acks were appended again\n${context}`)
})
