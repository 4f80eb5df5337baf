// kafkajs with gzip (the one codec it ships), through idempo-proxy losing Produce acks.
//
// Properties, restated by name in the test:
// - stored as sent: every batch in the log is gzip (attributes bits 0-2 = 1, read with a raw
//   Fetch v4), so the broker neither refused nor rewrote it;
// - exactly once and in order: though acks were lost and gzip batches retried, the log
//   holds every record once, in the order sent;
// - the fault really happened: the proxy reports lost acks.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { CompressionTypes, Kafka, logLevel } = require('kafkajs')
const { startLossyCluster, readAll } = require('./cluster')

const RECORDS = 30
const PER_BATCH = 3
const TOPIC = 'compressed-gzip'
const SENT = Array.from({ length: RECORDS }, (_, i) => `record ${i} ` + 'compressible text '.repeat(8))

// One request (header v1) to host:port; resolves with the response body after the
// correlation id.
function request (bootstrap, apiKey, version, body) {
  const [host, port] = bootstrap.split(':')
  const clientId = Buffer.from('idempo-node-test')
  const header = Buffer.alloc(10)
  header.writeInt16BE(apiKey, 0)
  header.writeInt16BE(version, 2)
  header.writeInt32BE(7, 4)
  header.writeInt16BE(clientId.length, 8)
  const frame = Buffer.concat([header, clientId, body])
  const prefix = Buffer.alloc(4)
  prefix.writeInt32BE(frame.length)
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host, () => socket.write(Buffer.concat([prefix, frame])))
    let got = Buffer.alloc(0)
    socket.on('data', chunk => {
      got = Buffer.concat([got, chunk])
      if (got.length >= 4 && got.length >= 4 + got.readInt32BE(0)) {
        socket.destroy()
        resolve(got.subarray(8, 4 + got.readInt32BE(0)))
      }
    })
    socket.on('error', reject)
  })
}

// The codec id of every batch in partition 0 of TOPIC, by a Fetch v4 from offset 0.
async function fetchedCodecs (bootstrap) {
  const name = Buffer.from(TOPIC)
  const body = Buffer.alloc(17 + 6 + name.length + 20)
  let at = 0
  at = body.writeInt32BE(-1, at) // replica_id
  at = body.writeInt32BE(0, at) // max_wait_ms
  at = body.writeInt32BE(0, at) // min_bytes
  at = body.writeInt32BE(64 << 20, at) // max_bytes
  at = body.writeInt8(0, at) // isolation_level
  at = body.writeInt32BE(1, at) // topics
  at = body.writeInt16BE(name.length, at)
  at += name.copy(body, at)
  at = body.writeInt32BE(1, at) // partitions
  at = body.writeInt32BE(0, at) // partition
  at = body.writeBigInt64BE(0n, at) // fetch_offset
  body.writeInt32BE(64 << 20, at) // partition_max_bytes
  const r = await request(bootstrap, 1, 4, body)
  at = 4 + 4 + 2 + r.readInt16BE(8) // throttle_time_ms, topics, name
  at += 4 // partitions
  assert.equal(r.readInt16BE(at + 4), 0, 'fetch error code')
  const aborted = r.readInt32BE(at + 22)
  at += 26 + 16 * Math.max(aborted, 0)
  let records = r.subarray(at + 4, at + 4 + r.readInt32BE(at))
  const codecs = []
  while (records.length >= 61) {
    codecs.push(records.readInt16BE(21) & 7)
    records = records.subarray(12 + records.readInt32BE(8))
  }
  return codecs
}

test('kafkajs gzip batches are stored as sent, exactly once and in order, despite lost acks', async () => {
  const cluster = await startLossyCluster({ idempotence: true, seed: 13 })
  let codecs, values, counts
  try {
    const kafka = new Kafka({
      clientId: 'idempo-node-test',
      brokers: [cluster.bootstrap],
      logLevel: process.env.KAFKAJS_LOG ? logLevel.INFO : logLevel.NOTHING,
      retry: { initialRetryTime: 50, retries: 8 }
    })
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      for (let i = 0; i < RECORDS; i += PER_BATCH) {
        const messages = SENT.slice(i, i + PER_BATCH).map(value => ({ value, partition: 0 }))
        const [result] = await producer.send({ topic: TOPIC, acks: -1, compression: CompressionTypes.GZIP, messages })
        assert.equal(result.errorCode, 0)
      }
    } finally {
      await producer.disconnect()
    }
    codecs = await fetchedCodecs(cluster.bootstrap)
    values = await readAll(kafka, TOPIC)
  } finally {
    counts = await cluster.faultCounts()
    await cluster.stop()
  }
  const context = `${JSON.stringify(counts)}\n${cluster.logTail()}`
  assert.ok(codecs.length > 0 && codecs.every(c => c === 1), `every stored batch is gzip: ${codecs}\n${context}`)
  assert.deepEqual(values, SENT, `exactly once and in order\n${context}`)
  assert.ok(counts['dropped produce responses'] >= 1, `the fault really happened\n${context}`)
})
