//! `idempo-sim run --bootstrap`: the simulator's workload and checker over real sockets.
//!
//! Everything the simulator does in virtual time, done again with real TCP: P idempo
//! producers (the same sans-IO state machines, driven by tokio in [`crate::client`]) write the
//! simulator's workload ([`SimConfig::batch_of`]), each record carrying its identity, to any
//! Kafka-compatible broker or cluster: idempo's own (`--bootstrap embedded`, started on
//! loopback), or one you name. Then the topic is read back with Fetch, each partition from its
//! leader, and the simulator's own checker ([`idempo_sim::checker::check_log`]) counts
//! duplicates, lost acknowledged records, reordering, records written though reported failed
//! and acknowledgements that point at the wrong offset.
//!
//! | `--bootstrap`                     | what runs                                   | faults injected |
//! |-----------------------------------|---------------------------------------------|-----------------|
//! | `embedded` (one broker)           | idempo-broker on loopback, behind the fault proxy | `--ack-loss`, `--request-loss`, `--duplicate` (the proxy) |
//! | `embedded --brokers N` (N ≥ 2)    | an N-broker cluster in this process ([`ClusterServer`]) with its admin endpoint, replication factor `--replication-factor` (default: N, at most 3) and `--min-insync-replicas` (default 2), the proxy in front of every broker | the proxy's, and `--leader-kills`, `--isolations`, drawn from the seed and injected through the admin endpoint ([`crate::cluster_faults`]) |
//! | `HOST:PORT`                       | that broker or cluster (every broker its Metadata lists), behind the proxy | the proxy's |
//!
//! The proxy listens once per broker and rewrites Metadata so that every broker address is
//! that broker's proxy port: the producers route each partition to its leader through it.
//! It closes the connection after each fault (as a broken TCP connection would), so the
//! clients notice and retry.
//!
//! A cluster run ends its faults before reading: every crashed broker is started again and
//! every isolation has healed ([`crate::cluster_faults::inject`]), then the harness waits
//! until every partition has a full ISR and its high watermark at the leader's log end
//! ([`Admin::settle`]), so that the log read back is the one every replica will hold.
//!
//! The arrows: this module lives in `idempo-net` because it needs tokio and sockets; it takes
//! the workload and the checker from `idempo-sim`, which knows no sockets.
//!
//! Differences from the simulator: time is real, so runs are not reproducible byte for byte
//! (the proxy's choices are seeded per connection and the cluster fault schedule is the
//! seed's, but timing decides which frame meets which choice and which broker leads when a
//! leader kill comes); broker crashes of a single broker, spikes and corruption are not
//! injected here.

use crate::client::{self, ClientConfig, ClientError, KafkaProducer, KafkaReader, RoutingStats};
use crate::cluster_faults::{self, Admin, Injected};
use crate::cluster_node::ClusterSettings;
use crate::cluster_server::ClusterServer;
use crate::proxy::{Fault, FaultCounts, Proxy, ProxyConfig};
use crate::server::{Server, ServerConfig, StartError};
use idempo_protocol::BatchHeader;
use idempo_sim::SimConfig;
use idempo_sim::checker::{self, BatchLedger, CheckReport, Delivery, KnownFaults, Workload};
use idempo_sim::config::ConfigError;
use idempo_sim::engine::producer_config;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The replication factor of an embedded cluster when `--replication-factor` is not given:
/// the brokers, at most this (as `idempo-broker --brokers N`).
pub const EMBEDDED_REPLICATION_FACTOR_MAX: u32 = 3;

/// `min.insync.replicas` of an embedded cluster when `--min-insync-replicas` is not given
/// (at most the replication factor): with 3 replicas an `acks=all` write survives one
/// broker down, the usual production setting.
pub const EMBEDDED_MIN_INSYNC_REPLICAS: u32 = 2;

/// Longest wait, after the faults have ended, for the cluster to settle before reading.
const SETTLE_MS_MAX: u64 = 30_000;

/// The settings `--bootstrap embedded --brokers N` runs with: `--replication-factor` and
/// `--min-insync-replicas` take [`EMBEDDED_REPLICATION_FACTOR_MAX`] and
/// [`EMBEDDED_MIN_INSYNC_REPLICAS`] when not given (`*_given` false), so that a leader kill
/// is survived; with one broker nothing changes.
///
/// # Examples
///
/// ```
/// use idempo_net::harness::embedded_cluster_config;
/// use idempo_sim::SimConfig;
///
/// let config = SimConfig { brokers: 3, ..SimConfig::default() };
/// let c = embedded_cluster_config(&config, false, false);
/// assert_eq!((c.replication_factor, c.min_insync_replicas), (3, 2));
/// let c = embedded_cluster_config(&SimConfig { replication_factor: 2, ..config }, true, false);
/// assert_eq!((c.replication_factor, c.min_insync_replicas), (2, 2));
/// ```
pub fn embedded_cluster_config(
    config: &SimConfig,
    replication_factor_given: bool,
    min_insync_replicas_given: bool,
) -> SimConfig {
    let mut c = config.clone();
    if !c.is_cluster() {
        return c;
    }
    if !replication_factor_given {
        c.replication_factor = c.brokers.min(EMBEDDED_REPLICATION_FACTOR_MAX);
    }
    if !min_insync_replicas_given {
        c.min_insync_replicas = EMBEDDED_MIN_INSYNC_REPLICAS.min(c.replication_factor);
    }
    c
}

/// What a run over TCP found.
#[derive(Debug)]
pub struct TcpReport {
    /// The checker's findings.
    pub check: CheckReport,
    /// What was run against (`embedded idempo-broker at ...`, `a cluster of 3 brokers at ...`).
    pub broker: String,
    /// The topic written.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// What the proxy injected, one `name: count` per line; `None` when no proxy was used.
    pub proxy: Option<String>,
    /// The cluster faults: the seed's schedule, each with what became of it.
    pub cluster_faults: Vec<Injected>,
    /// Whether the cluster settled before the read (`None`: no admin endpoint to ask).
    pub settled: Option<bool>,
    /// The producers' counters, summed.
    pub producers: ClientCounts,
    /// Wall-clock seconds from the first send to the last delivery report.
    pub produce_seconds: f64,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

impl TcpReport {
    /// Batches with an outcome per second of the produce phase.
    pub fn batches_per_second(&self) -> f64 {
        let batches = self.producers.batches_delivered + self.producers.batches_failed;
        batches as f64 / self.produce_seconds.max(1e-9)
    }
}

/// The producers' counters that tell how a run over TCP went, summed over producers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Batches that failed for good, by reason (`NOT_ENOUGH_REPLICAS`, `delivery timeout`).
    pub failure_reasons: BTreeMap<String, u64>,
    /// Batches acknowledged.
    pub batches_delivered: u64,
    /// Batches that failed for good.
    pub batches_failed: u64,
    /// Retries (attempts after the first).
    pub retries: u64,
    /// Requests whose connection failed (refused, broken, timed out).
    pub connection_failures: u64,
    /// Requests that passed `request.timeout.ms`.
    pub request_timeouts: u64,
    /// Epoch bumps.
    pub epoch_bumps: u64,
    /// Metadata requests sent.
    pub metadata_requests: u64,
    /// Metadata refreshes asked for (a stale-metadata error, a failed connection).
    pub metadata_refreshes_requested: u64,
    /// Partition leader changes learnt from Metadata.
    pub leader_changes: u64,
    /// `NOT_LEADER_OR_FOLLOWER` answers.
    pub not_leader_responses: u64,
    /// `NOT_ENOUGH_REPLICAS` and `NOT_ENOUGH_REPLICAS_AFTER_APPEND` answers.
    pub not_enough_replicas_responses: u64,
}

impl ClientCounts {
    fn merge(&mut self, other: ClientCounts) {
        for (reason, n) in other.failure_reasons {
            *self.failure_reasons.entry(reason).or_insert(0) += n;
        }
        self.batches_delivered += other.batches_delivered;
        self.batches_failed += other.batches_failed;
        self.retries += other.retries;
        self.connection_failures += other.connection_failures;
        self.request_timeouts += other.request_timeouts;
        self.epoch_bumps += other.epoch_bumps;
        self.metadata_requests += other.metadata_requests;
        self.metadata_refreshes_requested += other.metadata_refreshes_requested;
        self.leader_changes += other.leader_changes;
        self.not_leader_responses += other.not_leader_responses;
        self.not_enough_replicas_responses += other.not_enough_replicas_responses;
    }

    fn add(&mut self, stats: &client::ProducerStats, routing: &RoutingStats) {
        self.batches_delivered += stats.batches_delivered;
        self.batches_failed += stats.batches_failed;
        self.retries += stats.retries;
        self.connection_failures += stats.connection_failures;
        self.request_timeouts += stats.request_timeouts;
        self.epoch_bumps += stats.epoch_bumps;
        self.metadata_requests += routing.metadata_requests_sent;
        self.metadata_refreshes_requested += routing.metadata_updates_requested;
        self.leader_changes += routing.leader_changes;
        self.not_leader_responses += routing.not_leader_responses;
        self.not_enough_replicas_responses += routing.not_enough_replicas_responses;
    }
}

/// Why a run over TCP could not be done (the checker's findings are not errors).
#[derive(Debug)]
pub enum HarnessError {
    /// The run's settings are refused.
    Config(ConfigError),
    /// The tokio runtime did not start.
    Runtime(io::Error),
    /// `--bootstrap` does not resolve.
    Bootstrap {
        /// The address given.
        address: String,
        /// Why it does not resolve (`None`: it resolved to no address).
        error: Option<io::Error>,
    },
    /// The embedded idempo-broker (or cluster) did not start.
    Broker(StartError),
    /// The fault proxy did not start.
    Proxy(io::Error),
    /// The cluster behind `--bootstrap` did not answer Metadata.
    Cluster(ClientError),
    /// A producer failed (connecting, sending or closing).
    Producer {
        /// The producer's index.
        producer: u32,
        /// What went wrong.
        error: ClientError,
    },
    /// A producer task panicked or was cancelled.
    Task(String),
    /// Reading the topic back failed.
    Reader(ClientError),
    /// A batch read back does not parse.
    Batch(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Config(e) => write!(f, "{e}"),
            HarnessError::Runtime(e) => write!(f, "cannot start the tokio runtime: {e}"),
            HarnessError::Bootstrap {
                address,
                error: Some(e),
            } => write!(f, "--bootstrap {address}: {e}"),
            HarnessError::Bootstrap {
                address,
                error: None,
            } => write!(f, "--bootstrap {address}: no address"),
            HarnessError::Broker(e) => write!(f, "cannot start idempo-broker: {e}"),
            HarnessError::Proxy(e) => write!(f, "cannot start the fault proxy: {e}"),
            HarnessError::Cluster(e) => write!(f, "--bootstrap: {e}"),
            HarnessError::Producer { producer, error } => write!(f, "producer {producer}: {error}"),
            HarnessError::Task(why) => write!(f, "a producer task failed: {why}"),
            HarnessError::Reader(e) => write!(f, "reader: {e}"),
            HarnessError::Batch(why) => write!(f, "a batch read back does not parse: {why}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// Runs `config`'s workload against `bootstrap` (`None`: idempo's broker, or with
/// `--brokers N` an N-broker cluster, started here on loopback), with the faults of the table
/// in the [module documentation](self), and checks what the brokers kept. For an embedded
/// cluster, pass the config through [`embedded_cluster_config`] first.
pub fn run(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, HarnessError> {
    config.validate().map_err(HarnessError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(HarnessError::Runtime)?;
    runtime.block_on(run_async(config, bootstrap))
}

/// Where the producers and the reader go, and what stands in between.
struct Target {
    /// The producers' bootstrap (the proxy's address when there is one).
    clients: String,
    /// The reader's bootstrap, straight to the brokers.
    reader: String,
    /// What the report calls it.
    description: String,
    /// The proxy's counters, when there is a proxy.
    proxy: Option<Arc<FaultCounts>>,
    /// The cluster's admin endpoint, when the harness started the cluster.
    admin: Option<Admin>,
}

async fn run_async(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, HarnessError> {
    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let target = match bootstrap {
        None if config.is_cluster() => start_cluster(config, stopped.clone()).await?,
        None => {
            let broker = start_broker(config, stopped.clone()).await?;
            let description = format!("embedded idempo-broker at {broker}");
            behind_proxy(
                config,
                &[broker],
                broker.to_string(),
                description,
                stopped.clone(),
            )
            .await?
        }
        Some(address) => external(config, address, stopped.clone()).await?,
    };
    let topic = format!("idempo-sim-{}-{}", config.seed, std::process::id());
    let result = produce_and_check(config, &topic, &target, started).await;
    let _ = stop.send(true);
    let run = result?;
    Ok(TcpReport {
        check: run.check,
        broker: target.description,
        topic,
        partitions: run.partitions,
        proxy: target.proxy.map(|c| c.tally().to_string()),
        cluster_faults: run.cluster_faults,
        settled: run.settled,
        producers: run.producers,
        produce_seconds: run.produce_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn resolve(address: &str) -> Result<SocketAddr, HarnessError> {
    let bootstrap = |error| HarnessError::Bootstrap {
        address: address.to_string(),
        error,
    };
    address
        .to_socket_addrs()
        .map_err(|e| bootstrap(Some(e)))?
        .next()
        .ok_or_else(|| bootstrap(None))
}

/// `--bootstrap HOST:PORT`: every broker the cluster's Metadata lists goes behind the fault
/// proxy (one broker is a cluster of one).
async fn external(
    config: &SimConfig,
    address: &str,
    stopped: watch::Receiver<bool>,
) -> Result<Target, HarnessError> {
    let upstream = resolve(address)?;
    let brokers = crate::proxy::discover_brokers(upstream)
        .await
        .map_err(|e| {
            HarnessError::Cluster(ClientError::Io {
                addr: address.to_string(),
                error: e,
            })
        })?;
    let description = match brokers.len() {
        0 | 1 => address.to_string(),
        n => {
            let addrs: Vec<String> = brokers.iter().map(ToString::to_string).collect();
            format!(
                "a cluster of {n} brokers at {address} ({})",
                addrs.join(", ")
            )
        }
    };
    let upstreams = if brokers.is_empty() {
        vec![upstream]
    } else {
        brokers
    };
    behind_proxy(
        config,
        &upstreams,
        address.to_string(),
        description,
        stopped,
    )
    .await
}

/// Puts the fault proxy in front of every broker of `upstreams` (by node id order; a
/// listening port per broker, Metadata rewritten so that every broker address is its proxy
/// port), with `config`'s message faults on every broker. The reader goes straight to
/// `reader`.
async fn behind_proxy(
    config: &SimConfig,
    upstreams: &[SocketAddr],
    reader: String,
    description: String,
    stopped: watch::Receiver<bool>,
) -> Result<Target, HarnessError> {
    let mut proxy_config = ProxyConfig::for_brokers(upstreams, [127, 0, 0, 1].into());
    proxy_config.seed = config.seed;
    proxy_config.drop_produce_response = Fault::new(config.ack_loss, true);
    proxy_config.drop_produce_request = Fault::new(config.request_loss, true);
    proxy_config.duplicate_produce = Fault::new(config.duplicate, false);
    let proxy = Proxy::bind(proxy_config)
        .await
        .map_err(HarnessError::Proxy)?;
    let proxy_address = proxy.local_addr().map_err(HarnessError::Proxy)?;
    let counts = proxy.counts();
    let mut stop_proxy = stopped;
    tokio::spawn(proxy.run(async move {
        let _ = stop_proxy.wait_for(|s| *s).await;
    }));
    Ok(Target {
        clients: proxy_address.to_string(),
        reader,
        description,
        proxy: Some(counts),
        admin: None,
    })
}

/// Starts idempo's Kafka-protocol broker on a free loopback port.
async fn start_broker(
    config: &SimConfig,
    mut stopped: watch::Receiver<bool>,
) -> Result<SocketAddr, HarnessError> {
    let mut server_config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        default_partitions: config.partitions as i32,
        ..ServerConfig::default()
    };
    server_config.broker.idempotence = config.idempotence;
    server_config.broker.dedup_window = config.dedup_window;
    let server = Server::bind(server_config)
        .await
        .map_err(HarnessError::Broker)?;
    let address = server
        .local_addr()
        .map_err(|e| HarnessError::Broker(StartError::Bind(e)))?;
    tokio::spawn(server.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Ok(address)
}

/// Starts an in-process cluster of `config.brokers` brokers on free loopback ports, with its
/// admin endpoint, as `idempo-broker --brokers N --admin 127.0.0.1:0` would.
async fn start_cluster(
    config: &SimConfig,
    stopped: watch::Receiver<bool>,
) -> Result<Target, HarnessError> {
    let mut server_config = ServerConfig {
        default_partitions: config.partitions as i32,
        ..ServerConfig::default()
    };
    let broker = &mut server_config.broker;
    broker.idempotence = config.idempotence;
    broker.dedup_window = config.dedup_window;
    broker.min_insync_replicas = config.min_insync_replicas as usize;
    broker.replica_lag_time_max_ms =
        i64::try_from(config.replica_lag_time_max_ms).unwrap_or(i64::MAX);
    broker.sync_policy = config.sync;
    let settings = ClusterSettings {
        brokers: config.brokers as i32,
        replication_factor: config.replication_factor as usize,
        unclean_leader_election: config.unclean_leader_election,
        broker_session_timeout_ms: i64::try_from(config.broker_session_timeout_ms)
            .unwrap_or(i64::MAX),
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let listen = vec![any; config.brokers as usize];
    let server = ClusterServer::bind(server_config, settings, listen, Some(any))
        .await
        .map_err(HarnessError::Broker)?;
    let addrs: Vec<String> = server.addrs().iter().map(ToString::to_string).collect();
    let admin = server
        .admin_addr()
        .ok_or_else(|| HarnessError::Broker(StartError::Setting("no admin address".into())))?;
    let upstreams = server.addrs();
    let mut stop_cluster = stopped.clone();
    tokio::spawn(server.run(async move {
        let _ = stop_cluster.wait_for(|s| *s).await;
    }));
    let description = format!(
        "embedded cluster of {} brokers at {} (admin http://{admin}/cluster)",
        config.brokers,
        addrs.join(", ")
    );
    let target = behind_proxy(config, &upstreams, addrs.join(","), description, stopped).await?;
    Ok(Target {
        admin: Some(Admin::new(admin)),
        ..target
    })
}

/// What [`produce_and_check`] found.
struct Run {
    check: CheckReport,
    partitions: i32,
    cluster_faults: Vec<Injected>,
    settled: Option<bool>,
    producers: ClientCounts,
    produce_seconds: f64,
}

async fn produce_and_check(
    config: &SimConfig,
    topic: &str,
    target: &Target,
    started: Instant,
) -> Result<Run, HarnessError> {
    let (progress, progress_rx) = watch::channel(0u64);
    let progress = Arc::new(progress);
    let (producers_done, producers_done_rx) = watch::channel(false);
    let injector = target.admin.map(|admin| {
        tokio::spawn(cluster_faults::inject(
            admin,
            topic.to_string(),
            cluster_faults::schedule(config),
            progress_rx,
            producers_done_rx,
            tokio::time::Instant::from_std(started),
        ))
    });
    let produced = produce(config, topic, &target.clients, &progress).await;
    let _ = producers_done.send(true);
    let cluster_faults = match injector {
        Some(task) => task
            .await
            .map_err(|e| HarnessError::Task(format!("the fault injector: {e}")))?,
        None => Vec::new(),
    };
    let (ledgers, partitions, producers, produce_seconds) = produced?;
    let settled = match target.admin {
        Some(admin) => Some(
            admin
                .settle(topic, Duration::from_millis(SETTLE_MS_MAX))
                .await,
        ),
        None => None,
    };
    let acks_zero = config.acks == idempo_sim::config::Acks::None;
    let log = read_settled(&target.reader, topic, acks_zero).await?;
    let check = checker::check_log(
        log,
        Workload::new(config.producers, config.records, config.batch_records),
        &ledgers,
        |p, b| partition_of(config, p, b, partitions),
        |_| Some(0),
        // With acks=0 a missing record is the known limit, as in the simulator's own runs.
        &KnownFaults {
            acks_zero,
            ..KnownFaults::default()
        },
    );
    Ok(Run {
        check,
        partitions,
        cluster_faults,
        settled,
        producers,
        produce_seconds,
    })
}

/// The producers' ledgers, the partition count, their counters and the produce phase's
/// seconds.
type Produced = (Vec<Vec<BatchLedger>>, i32, ClientCounts, f64);

/// Connects every producer and sends every batch; `progress` counts batches with an outcome.
async fn produce(
    config: &SimConfig,
    topic: &str,
    bootstrap: &str,
    progress: &Arc<watch::Sender<u64>>,
) -> Result<Produced, HarnessError> {
    let mut connected = Vec::new();
    let mut partitions = 0;
    for p in 0..config.producers {
        let mut client = ClientConfig::new(bootstrap, topic);
        client.producer = producer_config(config);
        client.client_id = format!("idempo-sim-{p}");
        let producer = KafkaProducer::connect(client)
            .await
            .map_err(|error| HarnessError::Producer { producer: p, error })?;
        partitions = producer.partitions();
        connected.push(producer);
    }
    let producing = Instant::now();
    let mut tasks = Vec::new();
    for (p, producer) in (0..).zip(connected) {
        let config = config.clone();
        let progress = Arc::clone(progress);
        tasks.push(tokio::spawn(async move {
            send_all(&config, p, producer, partitions, progress).await
        }));
    }
    let mut ledgers = Vec::new();
    let mut counts = ClientCounts::default();
    for task in tasks {
        let (ledger, each) = task
            .await
            .map_err(|e| HarnessError::Task(e.to_string()))??;
        counts.merge(each);
        ledgers.push(ledger);
    }
    Ok((
        ledgers,
        partitions,
        counts,
        producing.elapsed().as_secs_f64(),
    ))
}

/// Reads of the log [`read_settled`] makes at most after the first, [`SETTLE_READ_GAP_MS`]
/// apart.
const SETTLE_READS: u32 = 20;

/// Milliseconds between two reads of [`read_settled`].
const SETTLE_READ_GAP_MS: u64 = 100;

/// The log, read back once; with `acks=0` read again until two reads agree (at most
/// [`SETTLE_READS`] more): nothing tells an `acks=0` producer when its batches reach the
/// broker, so the last requests may still be on their way through the proxy when the
/// producers are done.
async fn read_settled(broker: &str, topic: &str, acks_zero: bool) -> Result<Log, HarnessError> {
    let (_, mut log) = read_back(broker, topic).await?;
    if !acks_zero {
        return Ok(log);
    }
    for _ in 0..SETTLE_READS {
        tokio::time::sleep(std::time::Duration::from_millis(SETTLE_READ_GAP_MS)).await;
        let (_, again) = read_back(broker, topic).await?;
        if again.len() == log.len() {
            return Ok(again);
        }
        log = again;
    }
    Ok(log)
}

/// A topic read back: `(partition, header, bytes)` for every batch, partition by partition in
/// offset order, as [`checker::check_log`] takes it.
pub type Log = Vec<(i32, BatchHeader, bytes::Bytes)>;

/// Every batch of `topic`, straight from the broker, and the topic's partition count.
pub async fn read_back(broker: &str, topic: &str) -> Result<(i32, Log), HarnessError> {
    let mut config = ClientConfig::new(broker, topic);
    config.allow_auto_topic_creation = false;
    read_log(&config).await
}

/// Every batch of the topic `config` names, as [`read_back`] (for clients that already hold
/// their settings, such as `idempo-producer --verify`).
pub async fn read_log(config: &ClientConfig) -> Result<(i32, Log), HarnessError> {
    let mut reader = KafkaReader::connect(config)
        .await
        .map_err(HarnessError::Reader)?;
    let mut log = Vec::new();
    for partition in 0..reader.partitions() {
        let batches = reader
            .read_partition(partition)
            .await
            .map_err(HarnessError::Reader)?;
        for batch in batches {
            let bytes = batch.to_bytes();
            let header =
                BatchHeader::parse(&bytes).map_err(|e| HarnessError::Batch(e.to_string()))?;
            log.push((partition, header, bytes));
        }
    }
    Ok((reader.partitions(), log))
}

fn partition_of(config: &SimConfig, p: u32, b: u64, partitions: i32) -> i32 {
    (config.partition_of(p, b) as i64 % i64::from(partitions.max(1))) as i32
}

/// Sends every batch of producer `p` and collects the delivery reports, in order, as they
/// come (each one moves `progress`); then closes the producer and returns its counters.
async fn send_all(
    config: &SimConfig,
    p: u32,
    producer: KafkaProducer,
    partitions: i32,
    progress: Arc<watch::Sender<u64>>,
) -> Result<(Vec<BatchLedger>, ClientCounts), HarnessError> {
    let failed = |error| HarnessError::Producer { producer: p, error };
    let total = config.batches_per_producer();
    let (deliveries, mut arriving) = mpsc::unbounded_channel::<client::Delivery>();
    let collector = tokio::spawn(async move {
        let mut ledger = Vec::with_capacity(total as usize);
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(delivery) = arriving.recv().await {
            let report = delivery.await?;
            if let Err(e) = &report.result {
                *reasons.entry(e.reason().to_string()).or_insert(0) += 1;
            }
            ledger.push(ledger_entry(&report.result));
            progress.send_modify(|n| *n += 1);
        }
        Ok::<_, ClientError>((ledger, reasons))
    });
    for b in 0..total {
        let records = config.batch_of(p, b);
        let partition = partition_of(config, p, b, partitions);
        let delivery = producer.send(partition, records).await.map_err(failed)?;
        if deliveries.send(delivery).is_err() {
            break; // the collector stopped: its error is returned below
        }
    }
    drop(deliveries);
    let (ledger, reasons) = collector
        .await
        .map_err(|e| HarnessError::Task(e.to_string()))?
        .map_err(failed)?;
    let (stats, routing) = producer.close_with_routing_stats().await.map_err(failed)?;
    let mut counts = ClientCounts {
        failure_reasons: reasons,
        ..ClientCounts::default()
    };
    counts.add(&stats, &routing);
    Ok((ledger, counts))
}

/// What the checker needs of one delivery report read over TCP: the broker's verdicts are
/// not seen, so only the attempts, the acknowledged offset and the failure kind.
pub fn ledger_entry(
    result: &Result<idempo_producer::Delivered, idempo_producer::DeliveryError>,
) -> BatchLedger {
    match result {
        Ok(d) => BatchLedger {
            sends: u16::try_from(d.attempts).unwrap_or(u16::MAX),
            delivery: Delivery::Acked,
            acked_offset: d.base_offset,
            ..BatchLedger::default()
        },
        Err(e) if e.is_possibly_persisted() => BatchLedger {
            delivery: Delivery::FailedPossiblyPersisted,
            ..BatchLedger::default()
        },
        Err(_) => BatchLedger {
            delivery: Delivery::FailedDefinite,
            ..BatchLedger::default()
        },
    }
}

/// The report as text: where the run went, what was injected (the proxy's faults, the
/// cluster's fault schedule and what became of each), the producers' counters, then the
/// checker's sections exactly as `idempo-sim run` prints them.
pub fn summary(config: &SimConfig, r: &TcpReport) -> String {
    let k = &r.check;
    let mut s = String::new();
    let through = if r.proxy.is_some() {
        "fault proxy -> "
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "over TCP: {} producer(s) -> {through}{} (topic {}, {} partitions), {:.2} s",
        config.producers, r.broker, r.topic, r.partitions, r.seconds
    );
    if let Some(tally) = &r.proxy {
        let _ = writeln!(s, "proxy faults");
        for line in tally.lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if config.is_cluster() && (config.leader_kills > 0 || config.isolations > 0) {
        let _ = writeln!(
            s,
            "cluster faults (the seed's schedule, through the admin endpoint; moments in batches with an outcome)"
        );
        if r.cluster_faults.is_empty() {
            let _ = writeln!(
                s,
                "  none: no admin endpoint (only --bootstrap embedded has one)"
            );
        }
        for fault in &r.cluster_faults {
            let _ = writeln!(s, "  {fault}");
        }
    }
    if let Some(settled) = r.settled {
        let _ = writeln!(
            s,
            "cluster  {}",
            if settled {
                "settled before the read: every partition has a leader, a full ISR and its high watermark at the log end"
            } else {
                "did not settle within 30 s; read anyway"
            }
        );
    }
    let c = &r.producers;
    let _ = writeln!(
        s,
        "produce  {:.2} s, {:.0} batches/s  retries {}  connection failures {}  request timeouts {}  epoch bumps {}",
        r.produce_seconds,
        r.batches_per_second(),
        c.retries,
        c.connection_failures,
        c.request_timeouts,
        c.epoch_bumps
    );
    let _ = writeln!(
        s,
        "routing  metadata requests {}  refreshes asked {}  leader changes {}  NOT_LEADER_OR_FOLLOWER {}  NOT_ENOUGH_REPLICAS {}",
        c.metadata_requests,
        c.metadata_refreshes_requested,
        c.leader_changes,
        c.not_leader_responses,
        c.not_enough_replicas_responses
    );
    for (reason, n) in &c.failure_reasons {
        let _ = writeln!(s, "failed   {n} batches: {reason}");
    }
    let _ = writeln!(
        s,
        "records  sent {}  acked {}  failed {}  in the log {}",
        config.records * u64::from(config.producers),
        k.records_acked,
        k.records_failed,
        k.log_records
    );
    s.push_str(&idempo_sim::report::check_sections(k));
    s
}
