//! `idempo-sim run --bootstrap`: the simulator's workload and checker over real sockets.
//!
//! Everything the simulator does in virtual time, done again with real TCP: P idempo
//! producers (the same sans-IO state machines, driven by tokio in [`crate::client`]) write the
//! simulator's workload ([`SimConfig::batch_of`]), each record carrying its identity, through a
//! Kafka-aware fault proxy ([`crate::proxy`]) that loses acknowledgements and requests and
//! duplicates requests, to any Kafka-compatible broker: idempo's own (`--bootstrap embedded`,
//! started on loopback), or one you name. Then the topic is read back with Fetch, straight from
//! the broker, and the simulator's own checker ([`idempo_sim::checker::check_log`]) counts
//! duplicates, lost acknowledged records, reordering, records written though reported failed
//! and acknowledgements that point at the wrong offset.
//!
//! The proxy closes the connection after each fault (as a broken TCP connection would), so
//! the clients notice and retry, and it rewrites Metadata so that clients stay behind it.
//!
//! The arrows: this module lives in `idempo-net` because it needs tokio and sockets; it takes
//! the workload and the checker from `idempo-sim`, which knows no sockets.
//!
//! Differences from the simulator: time is real, so runs are not reproducible byte for byte
//! (the proxy's choices are seeded per connection, but timing decides which frame meets which
//! choice); broker crashes, spikes and corruption are not injected here.

use crate::client::{ClientConfig, ClientError, KafkaProducer, KafkaReader};
use crate::proxy::{Fault, Proxy, ProxyConfig};
use crate::server::{Server, ServerConfig, StartError};
use idempo_protocol::BatchHeader;
use idempo_sim::SimConfig;
use idempo_sim::checker::{self, BatchLedger, CheckReport, Delivery, KnownFaults, Workload};
use idempo_sim::config::ConfigError;
use idempo_sim::engine::producer_config;
use std::fmt::{self, Write as _};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

/// What a run over TCP found.
#[derive(Debug)]
pub struct TcpReport {
    /// The checker's findings.
    pub check: CheckReport,
    /// The broker's address.
    pub broker: String,
    /// The topic written.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// What the proxy injected, one `name: count` per line.
    pub proxy: String,
    /// Wall-clock seconds.
    pub seconds: f64,
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
    /// The embedded idempo-broker did not start.
    Broker(StartError),
    /// The fault proxy did not start.
    Proxy(io::Error),
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
            HarnessError::Producer { producer, error } => write!(f, "producer {producer}: {error}"),
            HarnessError::Task(why) => write!(f, "a producer task failed: {why}"),
            HarnessError::Reader(e) => write!(f, "reader: {e}"),
            HarnessError::Batch(why) => write!(f, "a batch read back does not parse: {why}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// Runs `config`'s workload against `bootstrap` (`None`: an idempo broker started here on
/// loopback) through a fault proxy, and checks what the broker kept.
pub fn run(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, HarnessError> {
    config.validate().map_err(HarnessError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(HarnessError::Runtime)?;
    runtime.block_on(run_async(config, bootstrap))
}

async fn run_async(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, HarnessError> {
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let upstream = match bootstrap {
        Some(address) => resolve(address)?,
        None => start_broker(config, stopped.clone()).await?,
    };
    let proxy = Proxy::bind(ProxyConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream,
        seed: config.seed,
        drop_produce_response: Fault::new(config.ack_loss, true),
        drop_produce_request: Fault::new(config.request_loss, true),
        duplicate_produce: Fault::new(config.duplicate, false),
        rewrite_metadata: true,
        ..ProxyConfig::default()
    })
    .await
    .map_err(HarnessError::Proxy)?;
    let proxy_address = proxy.local_addr().map_err(HarnessError::Proxy)?;
    let counts = proxy.counts();
    let mut stop_proxy = stopped.clone();
    tokio::spawn(proxy.run(async move {
        let _ = stop_proxy.wait_for(|s| *s).await;
    }));
    let topic = format!("idempo-sim-{}-{}", config.seed, std::process::id());
    let result = produce_and_check(
        config,
        &topic,
        &proxy_address.to_string(),
        &upstream.to_string(),
    )
    .await;
    let _ = stop.send(true);
    let (check, partitions) = result?;
    Ok(TcpReport {
        check,
        broker: bootstrap.map_or_else(
            || format!("embedded idempo-broker at {upstream}"),
            str::to_string,
        ),
        topic,
        partitions,
        proxy: counts.tally().to_string(),
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

/// Starts idempo's Kafka-protocol broker on a free loopback port.
async fn start_broker(
    config: &SimConfig,
    mut stopped: tokio::sync::watch::Receiver<bool>,
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

async fn produce_and_check(
    config: &SimConfig,
    topic: &str,
    proxy: &str,
    broker: &str,
) -> Result<(CheckReport, i32), HarnessError> {
    let mut tasks = Vec::new();
    let mut partitions = 0;
    for p in 0..config.producers {
        let mut client = ClientConfig::new(proxy, topic);
        client.producer = producer_config(config);
        client.client_id = format!("idempo-sim-{p}");
        let producer = KafkaProducer::connect(client)
            .await
            .map_err(|error| HarnessError::Producer { producer: p, error })?;
        partitions = producer.partitions();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            send_all(&config, p, producer, partitions).await
        }));
    }
    let mut ledgers = Vec::new();
    for task in tasks {
        ledgers.push(
            task.await
                .map_err(|e| HarnessError::Task(e.to_string()))??,
        );
    }
    let acks_zero = config.acks == idempo_sim::config::Acks::None;
    let log = read_settled(broker, topic, acks_zero).await?;
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
    Ok((check, partitions))
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

/// Sends every batch of producer `p` and collects the delivery reports.
async fn send_all(
    config: &SimConfig,
    p: u32,
    producer: KafkaProducer,
    partitions: i32,
) -> Result<Vec<BatchLedger>, HarnessError> {
    let failed = |error| HarnessError::Producer { producer: p, error };
    let total = config.batches_per_producer();
    let mut deliveries = Vec::with_capacity(total as usize);
    for b in 0..total {
        let records = config.batch_of(p, b);
        let partition = partition_of(config, p, b, partitions);
        deliveries.push(producer.send(partition, records).await.map_err(failed)?);
    }
    let mut ledger = vec![BatchLedger::default(); total as usize];
    for (b, delivery) in deliveries.into_iter().enumerate() {
        let report = delivery.await.map_err(failed)?;
        ledger[b] = ledger_entry(&report.result);
    }
    producer.close().await.map_err(failed)?;
    Ok(ledger)
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

/// The report as text: where the run went and what the proxy did, then the checker's
/// sections exactly as `idempo-sim run` prints them.
pub fn summary(config: &SimConfig, r: &TcpReport) -> String {
    let k = &r.check;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "over TCP: {} producer(s) -> fault proxy -> {} (topic {}, {} partitions), {:.2} s",
        config.producers, r.broker, r.topic, r.partitions, r.seconds
    );
    let _ = writeln!(s, "proxy faults");
    for line in r.proxy.lines() {
        let _ = writeln!(s, "  {line}");
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
