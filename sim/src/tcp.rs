//! `idempo-sim run --bootstrap`: the simulator's workload and checker over real sockets.
//!
//! Everything the simulator does in virtual time, done again with real TCP: P idempo
//! producers (the same sans-IO state machines, driven by tokio in [`idempo_net::client`])
//! write their records, each carrying its identity, through a Kafka-aware fault proxy
//! ([`idempo_net::proxy`]) that loses acknowledgements and requests and duplicates requests,
//! to any Kafka-compatible broker: idempo's own (`--bootstrap embedded`, started on loopback),
//! or one you name. Then the topic is read back with Fetch, straight from the broker, and the
//! same [`checker`](mod@crate::checker) counts duplicates, lost acknowledged records, reordering
//! and records written though reported failed.
//!
//! The proxy closes the connection after each fault (as a broken TCP connection would), so
//! the clients notice and retry, and it rewrites Metadata so that clients stay behind it.
//!
//! Differences from the simulator: time is real, so runs are not reproducible byte for byte
//! (the proxy's choices are seeded per connection, but timing decides which frame meets which
//! choice); broker crashes, spikes and corruption are not injected here.

use crate::checker::{self, BatchLedger, CheckReport, Delivery, Workload};
use crate::config::SimConfig;
use crate::engine::producer_config;
use idempo_net::client::{ClientConfig, KafkaProducer, KafkaReader};
use idempo_net::proxy::{Fault, Proxy, ProxyConfig};
use idempo_net::server::{Server, ServerConfig};
use idempo_protocol::BatchHeader;
use rustc_hash::FxHashSet;
use std::fmt::Write as _;
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

/// Runs `config`'s workload against `bootstrap` (`None`: an idempo broker started here on
/// loopback) through a fault proxy, and checks what the broker kept.
pub fn run(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, String> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(run_async(config, bootstrap))
}

async fn run_async(config: &SimConfig, bootstrap: Option<&str>) -> Result<TcpReport, String> {
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
    .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
    let proxy_address = proxy.local_addr().map_err(|e| e.to_string())?;
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

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("--bootstrap {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("--bootstrap {address}: no address"))
}

/// Starts idempo's Kafka-protocol broker on a free loopback port.
async fn start_broker(
    config: &SimConfig,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<SocketAddr, String> {
    let mut server_config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        default_partitions: config.partitions as i32,
        ..ServerConfig::default()
    };
    server_config.broker.idempotence = config.idempotence;
    server_config.broker.dedup_window = config.dedup_window;
    let server = Server::bind(server_config)
        .await
        .map_err(|e| format!("cannot start idempo-broker: {e}"))?;
    let address = server.local_addr().map_err(|e| e.to_string())?;
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
) -> Result<(CheckReport, i32), String> {
    let mut tasks = Vec::new();
    let mut partitions = 0;
    for p in 0..config.producers {
        let mut client = ClientConfig::new(proxy, topic);
        client.producer = producer_config(config);
        client.client_id = format!("idempo-sim-{p}");
        let producer = KafkaProducer::connect(client)
            .await
            .map_err(|e| format!("producer {p}: {e}"))?;
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
                .map_err(|e| format!("a producer task failed: {e}"))??,
        );
    }
    let mut reader = KafkaReader::connect(&ClientConfig::new(broker, topic))
        .await
        .map_err(|e| format!("reader: {e}"))?;
    let mut log = Vec::new();
    for partition in 0..reader.partitions() {
        let batches = reader
            .read_partition(partition)
            .await
            .map_err(|e| format!("reading p{partition}: {e}"))?;
        for batch in batches {
            let bytes = batch.to_bytes();
            let header = BatchHeader::parse(&bytes).map_err(|e| e.to_string())?;
            log.push((partition, header, bytes));
        }
    }
    let check = checker::check_log(
        log,
        Workload {
            producers: config.producers,
            records: config.records,
            batch_records: config.batch_records,
        },
        &ledgers,
        |p, b| partition_of(config, p, b, partitions),
        |_| Some(0),
        &FxHashSet::default(),
        &FxHashSet::default(),
    );
    Ok((check, partitions))
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
) -> Result<Vec<BatchLedger>, String> {
    let total = config.batches_per_producer();
    let mut deliveries = Vec::with_capacity(total as usize);
    for b in 0..total {
        let records = config.batch_of(p, b);
        let partition = partition_of(config, p, b, partitions);
        deliveries.push(
            producer
                .send(partition, records)
                .await
                .map_err(|e| format!("producer {p}: {e}"))?,
        );
    }
    let mut ledger = vec![BatchLedger::default(); total as usize];
    for (b, delivery) in deliveries.into_iter().enumerate() {
        let report = delivery.await.map_err(|e| format!("producer {p}: {e}"))?;
        ledger[b].delivery = match &report.result {
            Ok(d) => {
                ledger[b].sends = u16::try_from(d.attempts).unwrap_or(u16::MAX);
                Delivery::Acked
            }
            Err(e) if e.is_possibly_persisted() => Delivery::FailedPossiblyPersisted,
            Err(_) => Delivery::FailedDefinite,
        };
    }
    producer
        .close()
        .await
        .map_err(|e| format!("producer {p}: {e}"))?;
    Ok(ledger)
}

/// The report as text.
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
    let _ = writeln!(s, "invariants");
    for (name, n) in k.invariants() {
        let status = if n == 0 {
            "ok".to_string()
        } else {
            format!("VIOLATED ({n})")
        };
        let _ = writeln!(s, "  {name:.<56} {status}");
    }
    let _ = writeln!(s, "verdict: {}", if k.passed() { "PASS" } else { "FAIL" });
    s
}
