// Starts idempo-broker behind idempo-proxy on free loopback ports, for real-client tests.
//
// The binaries come from IDEMPO_BROKER and IDEMPO_PROXY (paths, relative to the repo root or
// absolute), by default target/debug/idempo-broker and target/debug/idempo-proxy. The broker
// advertises the proxy's address, so clients stay on the proxy after bootstrap; the proxy
// loses Produce acks after the append and then closes the connection, as a broken TCP
// connection would (see net/src/proxy.rs).
'use strict'

const assert = require('node:assert/strict')

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const REPO = path.resolve(__dirname, '..', '..', '..')
const START_TIMEOUT_MS = 10_000

function binary (envVar, fallback) {
  const given = process.env[envVar] || fallback
  const resolved = path.isAbsolute(given) ? given : path.join(REPO, given)
  if (!fs.existsSync(resolved)) {
    throw new Error(`${resolved} does not exist: build it with \`cargo build -p idempo-net --bins\` or point ${envVar} at it`)
  }
  return resolved
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port, child, name) {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with status ${child.exitCode}`)
    const open = await new Promise(resolve => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`${name} did not listen on port ${port} within ${START_TIMEOUT_MS} ms`)
}

function exited (child) {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise(resolve => child.once('exit', resolve))
}

// idempo-broker (idempotence on or off, `partitions` per topic, extra `brokerArgs`) behind
// idempo-proxy losing acks with `drop` probability, at most `maxFaults` times, from `seed`.
async function startLossyCluster ({ idempotence, seed = 1, drop = 0.5, maxFaults = 3, partitions = 1, brokerArgs = [] }) {
  const [brokerPort, proxyPort] = [await freePort(), await freePort()]
  const logs = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-node-'))
  const brokerLog = fs.openSync(path.join(logs, 'broker.log'), 'w')
  const proxyLog = fs.openSync(path.join(logs, 'proxy.log'), 'w')
  const broker = spawn(binary('IDEMPO_BROKER', 'target/debug/idempo-broker'), [
    '--listen', `127.0.0.1:${brokerPort}`,
    '--advertise', `127.0.0.1:${proxyPort}`,
    '--partitions', String(partitions),
    '--idempotence', idempotence ? 'on' : 'off',
    ...brokerArgs
  ], { stdio: ['ignore', 'ignore', brokerLog] })
  const proxy = spawn(binary('IDEMPO_PROXY', 'target/debug/idempo-proxy'), [
    '--listen', `127.0.0.1:${proxyPort}`,
    '--upstream', `127.0.0.1:${brokerPort}`,
    '--seed', String(seed),
    '--drop-produce-response', String(drop),
    '--close-after-fault', 'on',
    '--max-faults', String(maxFaults)
  ], { stdio: ['ignore', 'pipe', proxyLog] })
  let proxyOut = ''
  proxy.stdout.on('data', chunk => { proxyOut += chunk })
  const cluster = {
    bootstrap: `127.0.0.1:${proxyPort}`,
    logs,
    // Stops the proxy (SIGINT) and returns its counts: { 'dropped produce responses': n, ... }.
    async faultCounts () {
      return stopProxyAndCount(proxy, () => proxyOut)
    },
    logTail (lines = 30) {
      return logTails(logs, ['broker.log', 'proxy.log'], lines)
    },
    async stop () {
      await cluster.faultCounts()
      if (broker.exitCode === null && broker.signalCode === null) broker.kill('SIGTERM')
      await exited(broker)
      fs.closeSync(brokerLog)
      fs.closeSync(proxyLog)
    }
  }
  try {
    await waitForPort(brokerPort, broker, 'idempo-broker')
    await waitForPort(proxyPort, proxy, 'idempo-proxy')
  } catch (e) {
    broker.kill('SIGKILL')
    proxy.kill('SIGKILL')
    throw e
  }
  return cluster
}

// idempo-broker --brokers 3 (RF 3, min.insync.replicas=2, extra `brokerArgs`) with its admin
// endpoint and, with `proxyArgs` (idempo-proxy fault flags), one idempo-proxy in front of all
// three brokers, one port each. `bootstrap` is the list of broker (or proxy) addresses.
async function startThreeBrokers ({ brokerArgs = [], proxyArgs = null, sessionTimeoutMs = 1000 } = {}) {
  const ports = [await freePort(), await freePort(), await freePort()]
  const adminPort = await freePort()
  const logs = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-node-cluster-'))
  const clusterLog = fs.openSync(path.join(logs, 'cluster.log'), 'w')
  const proxyLog = fs.openSync(path.join(logs, 'proxy.log'), 'w')
  const broker = spawn(binary('IDEMPO_BROKER', 'target/debug/idempo-broker'), [
    '--brokers', '3',
    ...ports.flatMap(p => ['--listen', `127.0.0.1:${p}`]),
    '--admin', `127.0.0.1:${adminPort}`,
    '--replication-factor', '3',
    '--min-insync-replicas', '2',
    '--broker-session-timeout-ms', String(sessionTimeoutMs),
    ...brokerArgs
  ], { stdio: ['ignore', 'ignore', clusterLog] })
  let proxy = null
  let proxyOut = ''
  let bootstrap = ports.map(p => `127.0.0.1:${p}`)
  const children = [broker]
  try {
    for (const port of [...ports, adminPort]) await waitForPort(port, broker, 'idempo-broker --brokers 3')
    if (proxyArgs) {
      const proxyPorts = [await freePort(), await freePort(), await freePort()]
      proxy = spawn(binary('IDEMPO_PROXY', 'target/debug/idempo-proxy'), [
        ...ports.flatMap(p => ['--upstream', `127.0.0.1:${p}`]),
        ...proxyPorts.flatMap(p => ['--listen', `127.0.0.1:${p}`]),
        ...proxyArgs
      ], { stdio: ['ignore', 'pipe', proxyLog] })
      children.push(proxy)
      proxy.stdout.on('data', chunk => { proxyOut += chunk })
      for (const port of proxyPorts) await waitForPort(port, proxy, 'idempo-proxy')
      bootstrap = proxyPorts.map(p => `127.0.0.1:${p}`)
    }
  } catch (e) {
    for (const child of children) child.kill('SIGKILL')
    throw e
  }
  const cluster = {
    bootstrap,
    logs,
    async admin (method, route) {
      const answer = await fetch(`http://127.0.0.1:${adminPort}${route}`, { method })
      const body = await answer.json()
      if (!answer.ok) throw new Error(`${method} ${route}: ${answer.status} ${JSON.stringify(body)}`)
      return body
    },
    // The partition as GET /cluster shows it: leader, leader_epoch, isr, logs...
    async partition (topic, index = 0) {
      const state = await cluster.admin('GET', '/cluster')
      return state.partitions.find(p => p.topic === topic && p.partition === index)
    },
    // Stops the proxy (SIGINT) and returns its counts; {} without a proxy.
    async faultCounts () {
      if (!proxy) return {}
      return stopProxyAndCount(proxy, () => proxyOut)
    },
    logTail (lines = 30) {
      return logTails(logs, ['cluster.log', 'proxy.log'], lines)
    },
    async stop () {
      await cluster.faultCounts()
      if (broker.exitCode === null && broker.signalCode === null) broker.kill('SIGTERM')
      await exited(broker)
      fs.closeSync(clusterLog)
      fs.closeSync(proxyLog)
    }
  }
  return cluster
}

// Polls `done` (async) every 50 ms until it holds, for at most `timeoutMs`.
async function waitUntil (what, done, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await done()) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`not within ${timeoutMs} ms: ${what}`)
}

// Every value in partition 0 of `topic`, from offset 0 to the high watermark, read from the
// partition's leader with kafkajs's own cluster and broker classes (a plain Fetch), so that
// what is checked is the log itself.
async function readAll (kafka, topic) {
  const admin = kafka.admin()
  await admin.connect()
  const [{ high }] = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const createCluster = kafka[Object.getOwnPropertySymbols(kafka)
    .find(s => s.description === 'private:Kafka:createCluster')]
  const cluster = createCluster({ allowAutoTopicCreation: false })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const leaders = cluster.findLeaderForPartitions(topic, [0])
    const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] })
    const values = []
    while (values.length < Number(high)) {
      const { responses } = await broker.fetch({
        replicaId: -1,
        isolationLevel: 0,
        maxWaitTime: 100,
        topics: [{ topic: topic, partitions: [{ partition: 0, fetchOffset: String(values.length), maxBytes: 1 << 20 }] }]
      })
      const [partition] = responses[0].partitions
      assert.equal(partition.errorCode, 0)
      assert.ok(partition.messages.length > 0, `no records at offset ${values.length} of ${high}`)
      values.push(...partition.messages.map(m => m.value.toString()))
    }
    return values
  } finally {
    await cluster.disconnect()
  }
}

// Stops a proxy (SIGINT) and parses the counts it prints on exit ("name: n" lines).
async function stopProxyAndCount (proxy, output) {
  if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGINT')
  await exited(proxy)
  const counts = {}
  for (const line of output().split('\n')) {
    const at = line.lastIndexOf(': ')
    if (at > 0) counts[line.slice(0, at)] = Number(line.slice(at + 2))
  }
  return counts
}

// The last `lines` lines of each log file, headed by its name.
function logTails (dir, names, lines) {
  return names.map(name => {
    const text = fs.readFileSync(path.join(dir, name), 'utf8').split('\n').slice(-lines)
    return `--- ${name} (last ${lines} lines)\n${text.join('\n')}`
  }).join('\n')
}

module.exports = { startLossyCluster, startThreeBrokers, waitUntil, readAll }
