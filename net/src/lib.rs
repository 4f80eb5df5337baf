//! # idempo-net: the broker core behind Kafka's wire protocol
//!
//! The broker core (`idempo-broker`) is a synchronous state machine: it is handed batches and
//! told the time, and it answers exactly as a Kafka broker's produce path would, duplicates
//! included. This crate puts that same core on a TCP port that speaks **Kafka's own wire
//! protocol**, so that real clients (librdkafka through confluent-kafka, kafka-python, the
//! Java client, kafkajs) can produce to it idempotently and read back what they wrote. Tokio
//! lives here and only here: the core crates and the simulator (`idempo-sim`) stay free of
//! it. The arrows point one way: this crate depends on `idempo-sim` for its workload and its
//! exactly-once checker (the TCP harness of `idempo-sim run --bootstrap` lives here, in
//! [`harness`]), and the `idempo-sim` binary (crate `idempo-cli`) depends on both.
//!
//! ```text
//! idempo-protocol ◀── idempo-broker, idempo-producer    sans-IO cores
//!                       ◀── idempo-sim                   the simulator: no tokio, no sockets
//!                             ◀── idempo-net             tokio: server, client, proxy, harness
//!                                   ◀── idempo-cli       the idempo-sim binary
//! ```
//!
//! A request travels like this:
//!
//! ```text
//! TCP bytes ─▶ server (limits)      check_frame: a whole frame yet? too large? (close)
//!                                   pool grant for the announced size, then read it;
//!                                   idle and read timeouts (close)
//!           ─▶ kafka_codec          api key + version served?  preflight (array counts)
//!                                   kafka-protocol decodes header and body
//!           ─▶ kafka_apis           lock; core.advance_time(now); Metadata / Produce / ...
//!                                   topics: (topic, partition) → core partition
//!           ─▶ idempo_broker::Broker::produce / fetch / init_producer_id
//!           ◀─ kafka_codec          response header (version per api) + body, length prefix
//! ```
//!
//! ## What is served
//!
//! | API            | versions | notes |
//! |----------------|----------|-------|
//! | ApiVersions    | 0–3      | other versions: UNSUPPORTED_VERSION in the v0 format (KIP-511) |
//! | Metadata       | 0–12     | one broker, node id 1, also the controller; topics created on first use |
//! | InitProducerId | 0–4      | null transactional id → fresh id, epoch 0; otherwise refused |
//! | Produce        | 3–11     | RecordBatch v2 through the core; duplicates → NONE + original offsets |
//! | Fetch          | 4–12     | stored batches byte for byte; high watermark = log end offset |
//! | ListOffsets    | 1–6      | earliest, latest, by timestamp (batch granularity) |
//! | CreateTopics, DeleteTopics, CreatePartitions | 2–7, 1–6, 0–3 | topic admin ([`admin`]) |
//! | DescribeConfigs, IncrementalAlterConfigs | 1–4, 0–1 | the configs the core honours ([`admin`]) |
//! | DeleteRecords  | 0–2      | moves the log start offset ([`admin`]) |
//! | FindCoordinator | 0–6     | this broker coordinates every group (v4+: batched keys) |
//! | JoinGroup      | 0–9      | classic protocol, KIP-394 member ids from v4; answers parked until the rebalance completes |
//! | SyncGroup      | 0–5      | the leader's assignment to each member; followers parked until the leader syncs |
//! | Heartbeat      | 0–4      | REBALANCE_IN_PROGRESS tells a member to rejoin |
//! | LeaveGroup     | 0–5      | v3+: a batch of members |
//! | OffsetCommit   | 2–9      | generation and member checked; generation -1 for consumers outside a group |
//! | OffsetFetch    | 1–9      | v8+: several groups at once |
//! | ListGroups, DescribeGroups, DeleteGroups | 0–5, 0–6, 0–2 | state filters (v4+), Kafka's state names |
//! | ElectLeaders   | 0–2      | a cluster's controller elects ([`cluster_server`]); one broker: ELECTION_NOT_NEEDED |
//!
//! Exactly these are advertised ([`kafka_codec::SUPPORTED_APIS`]). Another version of one of
//! these APIs is answered UNSUPPORTED_VERSION in the request's own header format
//! ([`unsupported_version`]); a request for an API not served closes the connection with a
//! log line, as Kafka does for requests it cannot parse.
//!
//! ## Topics
//!
//! The core numbers partitions and knows no topics. [`topics`] maps each topic to a block of
//! consecutive core partitions, taken when the topic is created (global numbering); one core
//! serves all topics, so producer ids, the clock and expiry are broker-wide as in Kafka.
//! Topics are created on first use (Metadata or Produce) with `--partitions` partitions,
//! as Kafka's `auto.create.topics.enable=true` does, unless `--no-auto-create-topics`.
//!
//! ## Layout
//! - [`kafka_codec`]: framing (check-then-parse), request decoding, response encoding with
//!   the header version of each api version, the advertised version table.
//! - [`dispatch`]: [`KafkaApis::handle`], the one match from a decoded request to its
//!   handler, shared by the server and the request-path fuzz target.
//! - [`frames`]: the frame reader (check-then-parse, an oversized prefix refused before
//!   allocation) of the proxy and the client.
//! - [`groups`]: the consumer-group APIs over the core's group coordinator, and the parked
//!   JoinGroup/SyncGroup answers.
//! - [`preflight`]: refuses impossible array counts before `kafka-protocol` allocates.
//! - [`topics`]: topic names, ids, configs and their core partitions; the table persisted
//!   under `topics/` through the core's storage.
//! - [`admin`]: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//!   IncrementalAlterConfigs, DeleteRecords, and the catalogue of honoured configs.
//! - [`kafka_apis`]: one synchronous function per API over the core.
//! - [`unsupported_version`]: UNSUPPORTED_VERSION answers for versions not served.
//! - [`limits`]: the connection limits' decisions (slots, per-address quota, idle and read
//!   timeouts, the request memory pool), sans-IO.
//! - [`server`]: the tokio listener and connections, applying the limits, shutdown.
//! - [`cluster_node`]: `--brokers N`: the controller and every broker's core in one process,
//!   driven by the simulator's cluster rules (replication, ISR, elections), sans-IO.
//! - [`cluster_server`]: the cluster's listeners (one per broker), connections and ticker.
//! - [`admin_http`]: `--admin`: crash, start, isolate, elect, and `GET /cluster`, in JSON.
//! - [`metrics`]: `--metrics`: Prometheus text over HTTP, from the core's and the server's
//!   counters.
//! - [`proxy`]: a Kafka-aware fault proxy (lost acks, lost requests, duplicates, delays,
//!   cuts) to put between real clients and a broker.
//! - [`proxy_cli`]: the fault proxy's one flag set and main, for `idempo-proxy` and
//!   `idempo-sim proxy`.
//! - [`client`]: the async Kafka client driving the sans-IO producer (each partition to its
//!   leader, one connection per broker), and a Fetch reader that reads each partition from
//!   its leader.
//! - [`cluster_faults`]: `--leader-kills` and `--isolations` drawn from the seed as the
//!   simulator draws them, injected into a cluster through its admin endpoint.
//! - [`harness`]: the simulator's workload and checker over real sockets, through the fault
//!   proxy (`idempo-sim run --bootstrap`), and reading a topic back for the checker.
//! - [`process`]: logging, the accept loop and graceful shutdown shared by server, proxy and binaries.
//! - `bin/idempo-broker.rs`: the command line.
//! - `bin/idempo-proxy.rs`: the fault proxy's command line.
//! - `bin/idempo-producer.rs`: kafka-producer-perf-test for idempo's producer, with `--verify`
//!   (the simulator's checker).
//!
//! ## Differences from Kafka
//! - One broker, no replication (by default): `acks` 1 and -1 mean the same, the high
//!   watermark and the last stable offset are the log end offset, every leader epoch is 0.
//!   `--brokers N` runs a replicating cluster in one process ([`cluster_node`]).
//! - No transactions, SASL or TLS. Consumer groups follow Kafka's classic protocol (see
//!   [`groups`] and the core's `group_coordinator`): no static membership, no KIP-848
//!   `consumer` protocol.
//! - Compressed batches (gzip, snappy, lz4, zstd) are stored as sent, as Kafka with
//!   `compression.type=producer`; their decompressed records are bounded by
//!   `--message-max-bytes` too (Kafka bounds only the compressed batch).
//! - Topic creation is synchronous: a new topic's first Metadata answer already has leaders
//!   (Kafka answers LEADER_NOT_AVAILABLE until the controller has caught up).
//! - Fetch sessions (KIP-227) are not kept; every answer says session 0, so clients send
//!   full fetches. A Fetch waits at most 10 s for `min_bytes`.
//! - ListOffsets by timestamp answers at batch, not record, granularity; max-timestamp (-3)
//!   and the tiered-storage specials are not served (v7+ not advertised).
//! - The log lives in memory only unless `idempo-broker --data-dir` is given
//!   ([`idempo_broker::FileStorage`], recovered at start by the core's own recovery).
//! - Connections: a request read timeout Kafka does not have, and a strict request memory
//!   pool on by default (Kafka's `queued.max.request.bytes` is off by default and not
//!   strict); see [`limits`]. A version no schema describes is answered UNSUPPORTED_VERSION
//!   where Kafka closes the connection; see [`unsupported_version`].

pub mod admin;
pub mod admin_http;
pub mod client;
pub mod cluster_faults;
pub mod cluster_node;
pub mod cluster_server;
pub mod dispatch;
pub mod frames;
pub mod groups;
pub mod harness;
pub mod kafka_apis;
pub mod kafka_codec;
pub mod limits;
pub mod metrics;
pub mod preflight;
pub mod process;
pub mod proxy;
pub mod proxy_cli;
pub mod server;
pub mod topics;
pub mod unsupported_version;

pub use kafka_apis::{FrontEndSettings, KafkaApis, NODE_ID};
pub use kafka_codec::{DEFAULT_MAX_FRAME_BYTES, SUPPORTED_APIS};
pub use server::{Advertised, Server, ServerConfig, StartError};
pub use topics::{Topic, TopicError, TopicTable, TopicTableError};
