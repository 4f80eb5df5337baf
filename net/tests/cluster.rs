//! A cluster of three brokers in one process (`idempo-broker --brokers 3`), spoken to over
//! real sockets as a raw Kafka client, with faults through the admin HTTP endpoint.

use idempo_broker::{BrokerConfig, SyncPolicy};
use idempo_net::ServerConfig;
use idempo_net::cluster_node::ClusterSettings;
use idempo_net::cluster_server::{ClusterHandle, ClusterServer};
use idempo_net::limits::LimitsConfig;
use idempo_net::proxy::{Fault, FaultCounts, FaultSet, Proxy, ProxyConfig};
use idempo_protocol::RecordBatch;
use kafka_protocol::messages::{
    CreateTopicsRequest, ElectLeadersRequest, FetchRequest, InitProducerIdRequest, MetadataRequest,
    MetadataResponse, ProduceRequest,
    create_topics_request::CreatableTopic,
    elect_leaders_request::TopicPartitions,
    fetch_request::{FetchPartition, FetchTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

mod common;
use common::{Client, batch, topic_name};

const TOPIC: &str = "orders";
const NONE: i16 = 0;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const SESSION_TIMEOUT_MS: i64 = 300;

struct Cluster {
    addrs: Vec<SocketAddr>,
    admin: SocketAddr,
    handle: Arc<ClusterHandle>,
    _stop: oneshot::Sender<()>,
}

async fn start_cluster(sync_policy: SyncPolicy) -> Cluster {
    start_cluster_with(ServerConfig {
        default_partitions: 3,
        broker: BrokerConfig {
            min_insync_replicas: 2,
            sync_policy,
            ..BrokerConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
}

async fn start_cluster_with(config: ServerConfig) -> Cluster {
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
    let (addrs, admin, handle) = (
        server.addrs(),
        server.admin_addr().expect("admin bound"),
        server.handle(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Cluster {
        addrs,
        admin,
        handle,
        _stop: stop,
    }
}

/// One HTTP/1.1 request to the admin endpoint: the status and the JSON body.
async fn admin(cluster: &Cluster, method: &str, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(cluster.admin)
        .await
        .expect("admin connects");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: idempo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    let status = answer[9..12].parse().expect("a status code");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    (status, serde_json::from_str(body.trim()).expect("JSON"))
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ]))
        .with_allow_auto_topic_creation(true)
}

async fn metadata_from(addr: SocketAddr) -> MetadataResponse {
    Client::connect(addr).await.send(&metadata(), 12).await
}

fn produce(partition: i32, records: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(TOPIC))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// (error code, base offset) of a one-partition produce.
async fn produce_to(client: &mut Client, partition: i32, records: bytes::Bytes) -> (i16, i64) {
    let response = client.send(&produce(partition, records), 9).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn producer_id(addr: SocketAddr) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let response = Client::connect(addr).await.send(&request, 4).await;
    assert_eq!(response.error_code, NONE);
    response.producer_id.0
}

/// (error code, high watermark, batches) of a consumer fetch of one partition from offset 0.
async fn fetch_from(addr: SocketAddr, partition: i32) -> (i16, i64, Vec<RecordBatch>) {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_session_epoch(-1)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = Client::connect(addr).await.send(&request, 12).await;
    let p = &response.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    let batches = idempo_protocol::decode_batches(records).expect("stored batches decode");
    (p.error_code, p.high_watermark, batches)
}

fn leader_of(response: &MetadataResponse, partition: usize) -> i32 {
    response.topics[0].partitions[partition].leader_id.0
}

/// Polls (up to 10 s) until `done` holds for the cluster's `GET /cluster` answer.
async fn until_cluster(cluster: &Cluster, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    for _ in 0..500 {
        if done(&cluster.handle.describe()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "not within 10 s: {what}; cluster: {}",
        cluster.handle.describe()
    );
}

fn partition_json(cluster: &serde_json::Value, partition: u64) -> &serde_json::Value {
    cluster["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["partition"] == partition)
        .expect("the partition")
}

#[tokio::test]
async fn an_admin_address_in_use_is_named_as_the_admin_endpoint() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let settings = ClusterSettings {
        brokers: 3,
        replication_factor: 3,
        unclean_leader_election: false,
        broker_session_timeout_ms: SESSION_TIMEOUT_MS,
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let admin = taken.local_addr().expect("bound");
    let Err(refused) =
        ClusterServer::bind(ServerConfig::default(), settings, vec![any; 3], Some(admin)).await
    else {
        panic!("the admin port is taken: the cluster must not start");
    };
    assert!(
        refused
            .to_string()
            .starts_with("cannot serve the admin endpoint: "),
        "{refused}"
    );
}

#[tokio::test]
async fn metadata_lists_every_broker_and_each_partitions_leader_replicas_and_isr() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let response = metadata_from(cluster.addrs[1]).await;
    let brokers: Vec<(i32, i32)> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.port))
        .collect();
    let expected: Vec<(i32, i32)> = (0..3)
        .map(|b| (b, i32::from(cluster.addrs[b as usize].port())))
        .collect();
    assert_eq!(brokers, expected, "every broker with its own port");
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions.len(), 3);
    for (p, meta) in partitions.iter().enumerate() {
        assert_eq!(meta.error_code, NONE);
        assert_eq!(
            meta.leader_id.0,
            p as i32 % 3,
            "the preferred replica leads"
        );
        assert_eq!(meta.replica_nodes.len(), 3);
        assert_eq!(meta.replica_nodes[0], meta.leader_id);
        assert_eq!(meta.isr_nodes.len(), 3, "every replica in sync at creation");
    }
}

#[tokio::test]
async fn a_produce_to_a_follower_is_refused_not_leader_or_follower() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let response = metadata_from(cluster.addrs[0]).await;
    let leader = leader_of(&response, 0);
    let follower = (leader + 1) % 3;
    let pid = producer_id(cluster.addrs[0]).await;
    let mut client = Client::connect(cluster.addrs[follower as usize]).await;
    let (code, _) = produce_to(&mut client, 0, batch(pid, 0, &["a"])).await;
    assert_eq!(code, NOT_LEADER_OR_FOLLOWER);
    let (_, hw, batches) = fetch_from(cluster.addrs[leader as usize], 0).await;
    assert_eq!((hw, batches.len()), (0, 0), "nothing was appended anywhere");
}

#[tokio::test]
async fn an_acks_all_produce_is_answered_once_every_replica_has_it() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let response = metadata_from(cluster.addrs[0]).await;
    let leader = leader_of(&response, 0) as usize;
    let pid = producer_id(cluster.addrs[leader]).await;
    let mut client = Client::connect(cluster.addrs[leader]).await;
    assert_eq!(
        produce_to(&mut client, 0, batch(pid, 0, &["a", "b"])).await,
        (NONE, 0)
    );
    assert_eq!(
        produce_to(&mut client, 0, batch(pid, 2, &["c"])).await,
        (NONE, 2)
    );
    // The answer came after the HW passed the batch: every ISR member holds it.
    let described = cluster.handle.describe();
    let p = partition_json(&described, 0);
    assert_eq!(p["high_watermark"], 3);
    for replica in p["logs"].as_array().expect("logs") {
        assert_eq!(replica["log_end_offset"], 3, "replica {replica}");
        assert_eq!(replica["high_watermark"], 3, "replica {replica}");
    }
    let (code, hw, batches) = fetch_from(cluster.addrs[leader], 0).await;
    assert_eq!((code, hw, batches.len()), (NONE, 3, 2));
    let follower = (leader + 1) % 3;
    let (code, _, _) = fetch_from(cluster.addrs[follower], 0).await;
    assert_eq!(
        code, NOT_LEADER_OR_FOLLOWER,
        "consumers read from the leader"
    );
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_from_the_isr_after_the_session_timeout() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let before = metadata_from(cluster.addrs[1]).await;
    assert_eq!(leader_of(&before, 0), 0);
    let pid = producer_id(cluster.addrs[0]).await;
    let mut client = Client::connect(cluster.addrs[0]).await;
    assert_eq!(
        produce_to(&mut client, 0, batch(pid, 0, &["a"])).await,
        (NONE, 0)
    );

    let (status, body) = admin(&cluster, "POST", "/brokers/0/crash").await;
    assert_eq!((status, &body["state"]), (200, &serde_json::json!("down")));
    assert!(
        client.is_closed_by_server().await,
        "the crash closed its connections"
    );

    until_cluster(&cluster, "partition 0 led by 1 or 2", |c| {
        let leader = &partition_json(c, 0)["leader"];
        *leader == 1 || *leader == 2
    })
    .await;
    let after = metadata_from(cluster.addrs[1]).await;
    let new_leader = leader_of(&after, 0);
    assert!(new_leader == 1 || new_leader == 2, "elected from the ISR");
    assert!(
        after.topics[0].partitions[0].leader_epoch > before.topics[0].partitions[0].leader_epoch,
        "at a new leader epoch"
    );
    assert!(
        after.brokers.iter().all(|b| b.node_id.0 != 0),
        "the fenced broker is not listed"
    );
    let (code, hw, batches) = fetch_from(cluster.addrs[new_leader as usize], 0).await;
    assert_eq!(
        (code, hw, batches.len()),
        (NONE, 1, 1),
        "the acked batch survived"
    );
}

#[tokio::test]
async fn a_restarted_broker_catches_up_and_rejoins_the_isr() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    metadata_from(cluster.addrs[0]).await;
    admin(&cluster, "POST", "/brokers/0/crash").await;
    until_cluster(&cluster, "partition 0 has a new leader", |c| {
        partition_json(c, 0)["leader"] != 0
    })
    .await;
    let leader = leader_of(&metadata_from(cluster.addrs[1]).await, 0) as usize;
    let pid = producer_id(cluster.addrs[leader]).await;
    let mut client = Client::connect(cluster.addrs[leader]).await;
    for seq in 0..3 {
        let (code, offset) = produce_to(&mut client, 0, batch(pid, seq, &["x"])).await;
        assert_eq!(
            (code, offset),
            (NONE, i64::from(seq)),
            "two in sync: min.insync.replicas=2"
        );
    }
    let (status, _) = admin(&cluster, "POST", "/brokers/0/start").await;
    assert_eq!(status, 200);
    until_cluster(&cluster, "broker 0 caught up and back in the ISR", |c| {
        let p = partition_json(c, 0);
        let zero = p["logs"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["broker"] == 0))
            .cloned()
            .unwrap_or_default();
        zero["log_end_offset"] == 3
            && p["isr"]
                .as_array()
                .is_some_and(|isr| isr.contains(&0.into()))
    })
    .await;
    // A preferred election (Kafka's ElectLeaders) gives partition 0 back to broker 0.
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![0]),
        ]));
    let answer = Client::connect(cluster.addrs[1])
        .await
        .send(&request, 1)
        .await;
    assert_eq!(
        answer.replica_election_results[0].partition_result[0].error_code,
        NONE
    );
    assert_eq!(leader_of(&metadata_from(cluster.addrs[2]).await, 0), 0);
    let (code, hw, batches) = fetch_from(cluster.addrs[0], 0).await;
    assert_eq!(
        (code, hw, batches.len()),
        (NONE, 3, 3),
        "the restarted replica has it all"
    );
}

#[tokio::test]
async fn a_crash_without_sync_loses_the_unsynced_tail_of_that_broker() {
    let cluster = start_cluster(SyncPolicy::Never).await;
    let pid = producer_id(cluster.addrs[0]).await;
    let mut client = Client::connect(cluster.addrs[0]).await;
    assert_eq!(
        produce_to(&mut client, 0, batch(pid, 0, &["a"])).await,
        (NONE, 0)
    );
    let (status, body) = admin(&cluster, "POST", "/brokers/0/crash").await;
    assert_eq!(status, 200);
    assert!(body["lost_batches"].as_u64() > Some(0), "{body}");
    let described = cluster.handle.describe();
    let logs = &partition_json(&described, 0)["logs"];
    assert_eq!(logs[0]["log_end_offset"], 0, "broker 0 lost it");
    assert_eq!(logs[1]["log_end_offset"], 1, "its followers still hold it");
}

#[tokio::test]
async fn the_admin_endpoint_answers_bad_requests_with_json_errors() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let (status, body) = admin(&cluster, "POST", "/brokers/7/crash").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no broker 7")),
        "{body}"
    );
    let (status, _) = admin(&cluster, "POST", "/brokers/1/isolate?ms=abc").await;
    assert_eq!(status, 400);
    let (status, _) = admin(&cluster, "POST", "/brokers/1/start").await;
    assert_eq!(status, 409, "broker 1 is up");
    let (status, _) = admin(&cluster, "POST", "/partitions/nope/0/elect").await;
    assert_eq!(status, 404);
    let (status, _) = admin(&cluster, "GET", "/nowhere").await;
    assert_eq!(status, 404);
    let (status, body) = admin(&cluster, "GET", "/cluster").await;
    assert_eq!(status, 200);
    assert_eq!(body["brokers"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn an_isolated_broker_is_fenced_and_rejoins_when_it_heals() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    metadata_from(cluster.addrs[0]).await;
    let (status, _) = admin(&cluster, "POST", "/brokers/0/isolate?ms=1000").await;
    assert_eq!(status, 200);
    until_cluster(
        &cluster,
        "broker 0 fenced, partition 0 led elsewhere",
        |c| c["brokers"][0]["fenced"] == true && partition_json(c, 0)["leader"] != 0,
    )
    .await;
    until_cluster(&cluster, "broker 0 healed and back in every ISR", |c| {
        c["brokers"][0]["state"] == "up"
            && c["brokers"][0]["fenced"] == false
            && (0..3).all(|p| partition_json(c, p)["isr"].as_array().map(Vec::len) == Some(3))
    })
    .await;
}

/// A proxy in front of every broker of `cluster`; `faults` gives each broker's faults
/// (broker number, faults), the others are relayed faithfully. Dropping the sender stops it.
async fn proxy_for(
    cluster: &Cluster,
    faults: &[(usize, FaultSet)],
    max_faults: Option<u64>,
) -> (Vec<SocketAddr>, Arc<FaultCounts>, oneshot::Sender<()>) {
    let mut config = ProxyConfig::for_brokers(&cluster.addrs, [127, 0, 0, 1].into());
    config.seed = 1;
    config.max_faults = max_faults;
    for b in 0..cluster.addrs.len() {
        config.broker_faults.insert(b, FaultSet::NONE);
    }
    config.broker_faults.extend(faults.iter().copied());
    let proxy = Proxy::bind(config).await.expect("the proxy starts");
    let addrs = proxy.local_addrs().expect("bound");
    let counts = proxy.counts();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = stopped.await;
    }));
    (addrs, counts, stop)
}

#[tokio::test]
async fn the_proxy_fronts_every_broker_and_metadata_points_each_broker_at_its_own_proxy_port() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let (proxied, counts, _stop) = proxy_for(&cluster, &[], None).await;
    let response = metadata_from(proxied[1]).await;
    let brokers: Vec<(i32, i32)> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.port))
        .collect();
    let expected: Vec<(i32, i32)> = (0..3)
        .map(|b| (b, i32::from(proxied[b as usize].port())))
        .collect();
    assert_eq!(brokers, expected, "every broker at its own proxy port");
    assert_eq!(counts.tally().rewritten_metadata, 1);
    // Each proxy port relays to its own broker: a produce through a follower's port is
    // refused by that follower.
    let leader = leader_of(&response, 0);
    let follower = ((leader + 1) % 3) as usize;
    let pid = producer_id(proxied[0]).await;
    let mut client = Client::connect(proxied[follower]).await;
    let (code, _) = produce_to(&mut client, 0, batch(pid, 0, &["a"])).await;
    assert_eq!(code, NOT_LEADER_OR_FOLLOWER);
    let mut client = Client::connect(proxied[leader as usize]).await;
    assert_eq!(
        produce_to(&mut client, 0, batch(pid, 0, &["a"])).await,
        (NONE, 0)
    );
}

#[tokio::test]
async fn discover_brokers_lists_every_broker_of_the_cluster_by_node_id() {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let found = idempo_net::proxy::discover_brokers(cluster.addrs[2])
        .await
        .expect("a Metadata answer");
    assert_eq!(found, cluster.addrs);
}

/// Lost ack on the leader only, then the client retries the same batch on a new
/// connection: (error, offset) of the retry and the batches the leader holds.
async fn lost_ack_on_the_leader_then_retry(idempotence: bool) -> ((i16, i64), usize, u64) {
    let cluster = start_cluster_with(ServerConfig {
        default_partitions: 3,
        broker: BrokerConfig {
            min_insync_replicas: 2,
            idempotence,
            ..BrokerConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let leader = leader_of(&metadata_from(cluster.addrs[0]).await, 0) as usize;
    let lose_acks = FaultSet {
        drop_produce_response: Fault::new(1.0, true),
        ..FaultSet::NONE
    };
    let (proxied, counts, _stop) = proxy_for(&cluster, &[(leader, lose_acks)], Some(1)).await;
    let pid = producer_id(proxied[(leader + 1) % 3]).await;
    let records = batch(pid, 0, &["a", "b"]);
    let mut client = Client::connect(proxied[leader]).await;
    client.send_only(&produce(0, records.clone()), 9).await;
    assert!(
        client.is_closed_by_server().await,
        "the ack was lost and the connection closed"
    );
    let mut again = Client::connect(proxied[leader]).await;
    let retry = produce_to(&mut again, 0, records).await;
    let (_, _, batches) = fetch_from(cluster.addrs[leader], 0).await;
    (
        retry,
        batches.len(),
        counts.tally().dropped_produce_responses,
    )
}

#[tokio::test]
async fn a_lost_ack_on_the_leader_behind_the_proxy_is_retried_and_appended_once() {
    let (retry, batches, lost) = lost_ack_on_the_leader_then_retry(true).await;
    assert_eq!(lost, 1, "the fault happened");
    assert_eq!(
        retry,
        (NONE, 0),
        "the retry is answered with the original offset"
    );
    assert_eq!(batches, 1, "exactly once");
}

#[tokio::test]
async fn without_idempotence_the_same_lost_ack_on_the_leader_writes_the_batch_twice() {
    let (retry, batches, lost) = lost_ack_on_the_leader_then_retry(false).await;
    assert_eq!(lost, 1);
    assert_eq!(retry, (NONE, 2), "appended again after the first copy");
    assert_eq!(batches, 2, "the duplicate idempotence prevents");
}

fn create_topic(name: &str, replication_factor: i16) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(2)
                .with_replication_factor(replication_factor),
        ])
}

#[tokio::test]
async fn create_topics_on_a_cluster_creates_the_topic_on_every_broker_with_the_clusters_replication_factor()
 {
    let cluster = start_cluster(SyncPolicy::EveryAppend).await;
    let mut client = Client::connect(cluster.addrs[1]).await;
    let created = client.send(&create_topic("made", 3), 5).await;
    assert_eq!(created.topics[0].error_code, NONE, "{created:?}");
    assert_eq!(
        (
            created.topics[0].num_partitions,
            created.topics[0].replication_factor
        ),
        (2, 3)
    );
    for b in 0..3 {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("made"))),
            ]))
            .with_allow_auto_topic_creation(false);
        let answer = Client::connect(cluster.addrs[b])
            .await
            .send(&request, 12)
            .await;
        let partitions = &answer.topics[0].partitions;
        assert_eq!(partitions.len(), 2, "broker {b} knows the topic");
        assert!(partitions.iter().all(|p| p.isr_nodes.len() == 3));
    }
    for (rf, why) in [(4, "more than the brokers"), (2, "not the cluster's")] {
        let refused = client.send(&create_topic("other", rf), 5).await;
        assert_eq!(
            refused.topics[0].error_code, INVALID_REPLICATION_FACTOR,
            "replication factor {rf}: {why}"
        );
    }
}

#[tokio::test]
async fn each_broker_of_a_cluster_applies_the_connection_limits() {
    let cluster = start_cluster_with(ServerConfig {
        limits: LimitsConfig {
            max_connections_per_ip: 1,
            ..LimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut first = Client::connect(cluster.addrs[0]).await;
    metadata_from_client(&mut first).await;
    let mut second = Client::connect(cluster.addrs[0]).await;
    assert!(
        second.is_closed_by_server().await,
        "over max.connections.per.ip on broker 0"
    );
    let mut other_broker = Client::connect(cluster.addrs[1]).await;
    assert_eq!(
        metadata_from_client(&mut other_broker).await.brokers.len(),
        3
    );
}

async fn metadata_from_client(client: &mut Client) -> MetadataResponse {
    client.send(&metadata(), 12).await
}
