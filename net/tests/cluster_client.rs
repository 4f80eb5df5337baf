//! idempo's client against a cluster of three brokers over real sockets: each partition is
//! produced to its leader, a leader crashed through the admin endpoint sends the producer to
//! the new leader with the same sequences, and the harness (`run --bootstrap`) runs its
//! workload and exactly-once checker through the fault proxy against an `idempo-broker
//! --brokers 3` process.

mod common;

use idempo_broker::BrokerConfig;
use idempo_net::ServerConfig;
use idempo_net::client::{ClientConfig, KafkaProducer, KafkaReader};
use idempo_net::cluster_faults::Admin;
use idempo_net::cluster_node::ClusterSettings;
use idempo_net::cluster_server::ClusterServer;
use idempo_protocol::{BatchHeader, Record};
use idempo_sim::SimConfig;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::sync::oneshot;

const TOPIC: &str = "orders";
/// Short, so that the controller moves a crashed broker's leaderships within the test.
const SESSION_TIMEOUT_MS: i64 = 300;

struct Cluster {
    addrs: Vec<SocketAddr>,
    admin: Admin,
    _stop: oneshot::Sender<()>,
}

impl Cluster {
    /// Every broker, as a bootstrap list.
    fn bootstrap(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        addrs.join(",")
    }
}

/// Three brokers, RF 3, `min.insync.replicas` 2, three partitions per topic (partition p led
/// by broker p: Kafka's rack-unaware assignment).
async fn start_cluster() -> Cluster {
    let config = ServerConfig {
        default_partitions: 3,
        broker: BrokerConfig {
            min_insync_replicas: 2,
            ..ServerConfig::default().broker
        },
        ..ServerConfig::default()
    };
    let settings = ClusterSettings {
        brokers: 3,
        replication_factor: 3,
        unclean_leader_election: false,
        broker_session_timeout_ms: SESSION_TIMEOUT_MS,
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let server = ClusterServer::bind(config, settings, vec![any; 3], Some(any))
        .await
        .expect("the cluster starts");
    let addrs = server.addrs();
    let admin = Admin::new(server.admin_addr().expect("admin bound"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Cluster {
        addrs,
        admin,
        _stop: stop,
    }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new(bootstrap, TOPIC);
    config.client_id = "cluster-client-test".to_string();
    config.producer.request_timeout_ms = 2_000;
    config.producer.delivery_timeout_ms = 30_000;
    config.producer.retry_backoff_ms = 10;
    config.metadata_timeout_ms = 10_000;
    config
}

/// Records `first..first + count`, each value its index (big-endian `u32`).
fn records(first: u32, count: u32) -> Vec<Record> {
    (first..first + count)
        .map(|i| Record::with_value(0, i.to_be_bytes().to_vec()))
        .collect()
}

/// Per batch read back from `partition`: its producer id, epoch, base sequence and record
/// indexes, in log order.
async fn read_back(config: &ClientConfig, partition: i32) -> Vec<(i64, i16, i32, Vec<u32>)> {
    let mut reader = KafkaReader::connect(config)
        .await
        .expect("the reader connects");
    let batches = reader.read_partition(partition).await.expect("reads");
    batches
        .iter()
        .map(|b| {
            let bytes = b.to_bytes();
            let header = BatchHeader::parse(&bytes).expect("a batch header");
            let indexes = b
                .records
                .iter()
                .map(|r| {
                    let value = r.value.as_deref().expect("a value");
                    u32::from_be_bytes(value.try_into().expect("4 bytes"))
                })
                .collect();
            (
                header.producer_id.0,
                header.producer_epoch.0,
                header.base_sequence.0,
                indexes,
            )
        })
        .collect()
}

async fn within<T>(what: &str, seconds: u64, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("{what} within {seconds} s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_routes_each_partition_to_its_leader_on_three_brokers() {
    let cluster = start_cluster().await;
    // Bootstrap from broker 0 only: the client must find brokers 1 and 2 from Metadata.
    let config = client_config(&cluster.addrs[0].to_string());
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let leaders: BTreeSet<String> = (0..3)
        .map(|p| producer.leader_of(p).expect("a leader").to_string())
        .collect();
    let brokers: BTreeSet<String> = cluster.addrs.iter().map(ToString::to_string).collect();
    assert_eq!(leaders, brokers, "the three partitions have three leaders");
    let mut deliveries = Vec::new();
    for b in 0..30u32 {
        let partition = (b % 3) as i32;
        deliveries.push(
            producer
                .send(partition, records(b * 10, 10))
                .await
                .expect("queued"),
        );
    }
    for delivery in deliveries {
        let report = within("a delivery report", 10, delivery)
            .await
            .expect("a report");
        report.result.expect("delivered");
    }
    let (stats, routing) = within("close", 10, producer.close_with_routing_stats())
        .await
        .expect("closed");
    assert_eq!(
        routing.not_leader_responses, 0,
        "no batch went to a broker that does not lead its partition"
    );
    assert_eq!(stats.retries, 0, "every batch written at the first attempt");
    for partition in 0..3 {
        let read = read_back(&config, partition).await;
        let indexes: Vec<u32> = read.iter().flat_map(|(_, _, _, i)| i.clone()).collect();
        let expected: Vec<u32> = (0..30u32)
            .filter(|b| (b % 3) as i32 == partition)
            .flat_map(|b| b * 10..b * 10 + 10)
            .collect();
        assert_eq!(
            indexes, expected,
            "partition {partition}: exactly once, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_crashed_through_the_admin_endpoint_moves_the_retries_to_the_new_leader_with_the_same_sequences()
 {
    let cluster = start_cluster().await;
    let config = client_config(&cluster.bootstrap());
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let leader = producer.leader_of(0).expect("a leader").to_string();
    let killed = cluster
        .addrs
        .iter()
        .position(|a| a.to_string() == leader)
        .expect("the leader is a broker");
    // Partition 0 only: every batch goes to the broker about to crash.
    let batches = 200u32;
    let mut deliveries = Vec::new();
    for b in 0..batches / 2 {
        deliveries.push(producer.send(0, records(b * 5, 5)).await.expect("queued"));
    }
    let (status, _) = cluster
        .admin
        .request(hyper::Method::POST, &format!("/brokers/{killed}/crash"))
        .await
        .expect("the admin endpoint answers");
    assert_eq!(status, 200, "the leader crashed");
    for b in batches / 2..batches {
        deliveries.push(producer.send(0, records(b * 5, 5)).await.expect("queued"));
    }
    let mut retried = 0;
    for delivery in deliveries {
        let report = within("a delivery report", 30, delivery)
            .await
            .expect("a report");
        let delivered = report.result.expect("delivered despite the crash");
        retried += u32::from(delivered.attempts > 1);
    }
    let (stats, routing) = within("close", 10, producer.close_with_routing_stats())
        .await
        .expect("closed");
    let (status, _) = cluster
        .admin
        .request(hyper::Method::POST, &format!("/brokers/{killed}/start"))
        .await
        .expect("the admin endpoint answers");
    assert_eq!(status, 200, "the crashed broker started again");
    assert!(
        routing.metadata_updates_requested > 0,
        "the failed connection asked for fresh metadata: {routing:?}"
    );
    assert!(
        routing.leader_changes > 3,
        "Metadata moved partition 0 to a new leader: {routing:?}"
    );
    assert!(
        retried > 0 && stats.retries > 0,
        "batches in flight to the crashed leader were retried: {stats:?}"
    );
    assert_eq!(
        (stats.epoch_bumps, stats.batches_rewritten),
        (0, 0),
        "the retries kept their producer epoch and sequences"
    );
    assert!(
        cluster.admin.settle(TOPIC, Duration::from_secs(10)).await,
        "the cluster settles"
    );
    let read = read_back(&config, 0).await;
    let indexes: Vec<u32> = read.iter().flat_map(|(_, _, _, i)| i.clone()).collect();
    let expected: Vec<u32> = (0..batches * 5).collect();
    assert_eq!(indexes, expected, "every record exactly once, in order");
    let sequences: Vec<i32> = read.iter().map(|(_, _, s, _)| *s).collect();
    let in_order: Vec<i32> = (0..batches as i32).map(|b| b * 5).collect();
    assert_eq!(
        sequences, in_order,
        "each batch in the log carries the sequence it was first sent with"
    );
    assert!(
        read.iter().all(|(_, epoch, _, _)| *epoch == 0),
        "one producer epoch throughout"
    );
}

// ----- the harness against an `idempo-broker --brokers 3` process ---------------------------

/// `idempo-broker --brokers 3` on three free ports, RF 3, `min.insync.replicas` 2; returns
/// once every broker accepts connections.
fn spawn_cluster(partitions: u32) -> common::BrokerProcess {
    common::spawn_broker_process(
        3,
        &[
            "--brokers",
            "3",
            "--min-insync-replicas",
            "2",
            "--partitions",
            &partitions.to_string(),
        ],
    )
}

#[test]
fn run_bootstrap_through_the_proxy_against_a_three_broker_idempo_broker_process_checks_exactly_once()
 {
    let cluster = spawn_cluster(3);
    let config = SimConfig {
        seed: 12,
        producers: 2,
        partitions: 3,
        records: 300,
        ..SimConfig::default()
    };
    let bootstrap = cluster.addrs[1].to_string();
    let report = idempo_net::harness::run(&config, Some(&bootstrap)).expect("the run completes");
    assert!(
        report.broker.starts_with("a cluster of 3 brokers"),
        "{}",
        report.broker
    );
    let proxy = report
        .proxy
        .as_deref()
        .expect("the proxy fronts every broker");
    let rewritten: u64 = proxy
        .lines()
        .find_map(|l| l.trim().strip_prefix("rewritten metadata: "))
        .and_then(|n| n.parse().ok())
        .expect("the proxy counts its Metadata rewrites");
    assert!(rewritten > 0, "Metadata went through the proxy: {proxy}");
    assert_eq!(report.partitions, 3);
    assert_eq!(
        report.producers.not_leader_responses, 0,
        "{:?}",
        report.producers
    );
    let check = &report.check;
    assert!(
        check.passed(),
        "{}",
        idempo_net::harness::summary(&config, &report)
    );
    assert_eq!(check.records_acked, 600);
    assert_eq!(
        check.log_records, 600,
        "every record read back from its leader"
    );
}

#[test]
fn idempo_producer_verify_reads_every_partition_from_its_leader_on_a_cluster() {
    let cluster = spawn_cluster(3);
    let output = Command::new(env!("CARGO_BIN_EXE_idempo-producer"))
        .args(["--bootstrap", &cluster.addrs[2].to_string()])
        .args([
            "--topic",
            "verified",
            "--records",
            "3000",
            "--batch-records",
            "50",
        ])
        .args(["--producer-index", "4", "--verify"])
        .output()
        .expect("idempo-producer runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("leaders "),
        "three partitions on three leaders: {stdout}"
    );
    assert!(
        stdout.contains("verify: read 3 partitions: 3000 records of producer index 4"),
        "{stdout}"
    );
    assert!(stdout.contains("verify: verdict: PASS"), "{stdout}");
}
