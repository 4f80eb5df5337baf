//! The fault proxy between a raw Kafka client and idempo's server, both in-process on
//! 127.0.0.1:0. Each fault is shown twice: with the broker's idempotence on (the retry or
//! copy is recognised, the log holds the batch once) and off (the same fault writes the
//! batch twice, which proves the fault really happened).

use bytes::Bytes;
use idempo_net::proxy::{Delay, Fault, FaultCounts, Proxy, ProxyConfig};
use idempo_net::{Server, ServerConfig};
use kafka_protocol::messages::{
    FetchRequest, InitProducerIdRequest, MetadataRequest, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

mod common;
use common::{Client, batch, topic_name};

const TOPIC: &str = "orders";
const NONE: i16 = 0;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// A broker and a proxy in front of it; dropping this stops both.
struct Rig {
    broker: SocketAddr,
    proxy: SocketAddr,
    counts: Arc<FaultCounts>,
    _stop_broker: oneshot::Sender<()>,
    _stop_proxy: oneshot::Sender<()>,
}

async fn rig(idempotence: bool, proxy: ProxyConfig) -> Rig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..ServerConfig::default()
    };
    config.broker.idempotence = idempotence;
    let server = Server::bind(config).await.expect("server starts");
    let broker = server.local_addr().expect("bound");
    let (stop_broker, broker_stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = broker_stopped.await;
    }));
    let proxy = Proxy::bind(ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        upstream: broker,
        ..proxy
    })
    .await
    .expect("proxy starts");
    let proxy_addr = proxy.local_addr().expect("bound");
    let counts = proxy.counts();
    let (stop_proxy, proxy_stopped) = oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = proxy_stopped.await;
    }));
    Rig {
        broker,
        proxy: proxy_addr,
        counts,
        _stop_broker: stop_broker,
        _stop_proxy: stop_proxy,
    }
}

/// The first Produce answer (or request) suffers `fault`; nothing else does.
fn first_produce(fault: Fault, kind: &str) -> ProxyConfig {
    let mut config = ProxyConfig {
        seed: 1,
        max_faults: Some(1),
        ..ProxyConfig::default()
    };
    match kind {
        "drop response" => config.drop_produce_response = fault,
        "drop request" => config.drop_produce_request = fault,
        "duplicate" => config.duplicate_produce = fault,
        other => panic!("no fault kind {other}"),
    }
    config
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ]))
        .with_allow_auto_topic_creation(true)
}

fn produce(records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(TOPIC))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

/// (error code, base offset) of a Produce answer.
fn outcome(response: &kafka_protocol::messages::ProduceResponse) -> (i16, i64) {
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_producer_id(client: &mut Client) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX);
    let response = client.send(&request, 4).await;
    assert_eq!(response.error_code, NONE);
    response.producer_id.0
}

/// A client through the proxy with a producer id and the topic created.
async fn producer(rig: &Rig) -> (Client, i64) {
    let mut client = Client::connect(rig.proxy).await;
    client.send(&metadata(), 12).await;
    let producer_id = init_producer_id(&mut client).await;
    (client, producer_id)
}

/// The values in partition 0, read straight from the broker (past the proxy).
async fn log_values(rig: &Rig) -> Vec<String> {
    let mut client = Client::connect(rig.broker).await;
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = client.send(&request, 11).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    let batches = idempo_protocol::decode_batches(p.records.clone().unwrap_or_default())
        .expect("stored batches decode");
    batches
        .iter()
        .flat_map(|b| b.records.iter())
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// Sends batch `a` through the proxy, whose first Produce answer is lost with a close, then
/// retries it on a new connection as a client does. Returns the retry's answer.
async fn lose_the_first_ack_then_retry(rig: &Rig) -> (i16, i64) {
    let (mut client, producer_id) = producer(rig).await;
    let first = batch(producer_id, 0, &["a", "b"]);
    client.send_only(&produce(first.clone()), 9).await;
    assert!(
        client.read_frame().await.is_none(),
        "the proxy swallowed the ack and closed the connection"
    );
    let mut retry = Client::connect(rig.proxy).await;
    outcome(&retry.send(&produce(first), 9).await)
}

#[tokio::test]
async fn lost_ack_then_retry_is_answered_with_the_original_offset_and_appended_once() {
    let rig = rig(true, first_produce(Fault::new(1.0, true), "drop response")).await;
    assert_eq!(lose_the_first_ack_then_retry(&rig).await, (NONE, 0));
    assert_eq!(log_values(&rig).await, ["a", "b"]);
    let tally = rig.counts.tally();
    assert_eq!(tally.dropped_produce_responses, 1);
    assert_eq!(tally.closes_after_fault, 1);
}

#[tokio::test]
async fn without_idempotence_a_lost_ack_retry_is_appended_twice() {
    let rig = rig(false, first_produce(Fault::new(1.0, true), "drop response")).await;
    assert_eq!(
        lose_the_first_ack_then_retry(&rig).await,
        (NONE, 2),
        "appended again"
    );
    assert_eq!(log_values(&rig).await, ["a", "b", "a", "b"]);
}

#[tokio::test]
async fn a_lost_ack_without_close_leaves_the_next_answer_to_the_next_request() {
    let rig = rig(true, first_produce(Fault::new(1.0, false), "drop response")).await;
    let (mut client, producer_id) = producer(&rig).await;
    client
        .send_only(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    let next = client
        .send(&produce(batch(producer_id, 1, &["b"])), 9)
        .await;
    assert_eq!(
        outcome(&next),
        (NONE, 1),
        "the first was appended, its ack lost"
    );
    assert_eq!(log_values(&rig).await, ["a", "b"]);
}

#[tokio::test]
async fn a_duplicated_produce_request_is_deduplicated_by_the_broker() {
    let rig = rig(true, first_produce(Fault::new(1.0, false), "duplicate")).await;
    let (mut client, producer_id) = producer(&rig).await;
    let first = client
        .send(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    assert_eq!(outcome(&first), (NONE, 0));
    // The copy's answer was swallowed: the next answer belongs to the next request.
    let second = client
        .send(&produce(batch(producer_id, 1, &["b"])), 9)
        .await;
    assert_eq!(outcome(&second), (NONE, 1));
    assert_eq!(log_values(&rig).await, ["a", "b"]);
    assert_eq!(rig.counts.tally().duplicated_produce_requests, 1);
}

#[tokio::test]
async fn without_idempotence_a_duplicated_produce_request_is_appended_twice() {
    let rig = rig(false, first_produce(Fault::new(1.0, false), "duplicate")).await;
    let (mut client, producer_id) = producer(&rig).await;
    let first = client
        .send(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    assert_eq!(outcome(&first), (NONE, 0));
    assert_eq!(log_values(&rig).await, ["a", "a"]);
}

#[tokio::test]
async fn a_dropped_request_leaves_a_gap_that_the_broker_refuses() {
    let rig = rig(true, first_produce(Fault::new(1.0, false), "drop request")).await;
    let (mut client, producer_id) = producer(&rig).await;
    // The broker must know the producer: it accepts any first sequence (KIP-360).
    let mut direct = Client::connect(rig.broker).await;
    let known = direct
        .send(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    assert_eq!(outcome(&known), (NONE, 0));
    client
        .send_only(&produce(batch(producer_id, 1, &["b"])), 9)
        .await;
    let next = client
        .send(&produce(batch(producer_id, 2, &["c"])), 9)
        .await;
    assert_eq!(outcome(&next).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(log_values(&rig).await, ["a"], "b never reached the broker");
    // The client retries both, in order.
    let mut retry = Client::connect(rig.proxy).await;
    let b = retry.send(&produce(batch(producer_id, 1, &["b"])), 9).await;
    let c = retry.send(&produce(batch(producer_id, 2, &["c"])), 9).await;
    assert_eq!((outcome(&b), outcome(&c)), ((NONE, 1), (NONE, 2)));
    assert_eq!(log_values(&rig).await, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_dropped_request_with_close_closes_the_connection() {
    let rig = rig(true, first_produce(Fault::new(1.0, true), "drop request")).await;
    let (mut client, producer_id) = producer(&rig).await;
    client
        .send_only(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    assert!(client.read_frame().await.is_none());
    assert!(log_values(&rig).await.is_empty());
    assert_eq!(rig.counts.tally().dropped_produce_requests, 1);
}

#[tokio::test]
async fn a_cut_closes_the_connection_before_the_request_reaches_the_broker() {
    let rig = rig(
        true,
        ProxyConfig {
            cut_probability: 1.0,
            max_faults: Some(1),
            ..ProxyConfig::default()
        },
    )
    .await;
    let mut client = Client::connect(rig.proxy).await;
    client.send_only(&metadata(), 12).await;
    assert!(client.read_frame().await.is_none());
    // The budget is spent: the next connection goes through.
    let (mut client, producer_id) = producer(&rig).await;
    let answer = client
        .send(&produce(batch(producer_id, 0, &["a"])), 9)
        .await;
    assert_eq!(outcome(&answer), (NONE, 0));
    assert_eq!(rig.counts.tally().cuts, 1);
}

#[tokio::test]
async fn delays_keep_the_order_of_frames() {
    let rig = rig(
        true,
        ProxyConfig {
            delay: Some(Delay {
                probability_ppm: 1_000_000,
                min_ms: 1,
                max_ms: 30,
            }),
            ..ProxyConfig::default()
        },
    )
    .await;
    let (mut client, producer_id) = producer(&rig).await;
    let mut sent = Vec::new();
    for sequence in 0..5 {
        let value = sequence.to_string();
        let request = produce(batch(producer_id, sequence, &[value.as_str()]));
        sent.push(client.send_only(&request, 9).await);
    }
    for (offset, correlation_id) in (0..).zip(sent) {
        let (answered, response) = client
            .receive::<ProduceRequest>(9)
            .await
            .expect("an answer");
        assert_eq!(answered, correlation_id);
        assert_eq!(outcome(&response), (NONE, offset));
    }
    assert_eq!(log_values(&rig).await, ["0", "1", "2", "3", "4"]);
    assert!(rig.counts.tally().delayed_frames >= 10);
}

#[tokio::test]
async fn rewritten_metadata_points_clients_at_the_proxy() {
    let rig = rig(
        true,
        ProxyConfig {
            rewrite_metadata: true,
            ..ProxyConfig::default()
        },
    )
    .await;
    let mut direct = Client::connect(rig.broker).await;
    let mut proxied = Client::connect(rig.proxy).await;
    for version in [0, 4, 9, 12] {
        let broker_says = direct.send(&metadata(), version).await;
        assert_eq!(broker_says.brokers[0].port, i32::from(rig.broker.port()));
        let proxy_says = proxied.send(&metadata(), version).await;
        assert_eq!(proxy_says.brokers.len(), 1);
        assert_eq!(proxy_says.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(proxy_says.brokers[0].port, i32::from(rig.proxy.port()));
        assert_eq!(proxy_says.topics, broker_says.topics, "v{version}");
    }
    assert_eq!(rig.counts.tally().rewritten_metadata, 4);
}

#[tokio::test]
async fn the_same_seed_loses_the_same_acks() {
    async fn lost_acks(seed: u64) -> Vec<i32> {
        let rig = rig(
            true,
            ProxyConfig {
                seed,
                drop_produce_response: Fault::new(0.5, false),
                ..ProxyConfig::default()
            },
        )
        .await;
        let (mut client, producer_id) = producer(&rig).await;
        let mut sent = Vec::new();
        for sequence in 0..20 {
            let request = produce(batch(producer_id, sequence, &["x"]));
            sent.push(client.send_only(&request, 9).await);
        }
        // A final Metadata answer marks the end of the stream.
        let last = client.send_only(&metadata(), 12).await;
        let mut answered = Vec::new();
        loop {
            let frame = client.read_frame().await.expect("an answer");
            let id = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
            if id == last {
                break;
            }
            answered.push(id);
        }
        sent.retain(|id| !answered.contains(id));
        assert_eq!(log_values(&rig).await.len(), 20, "every batch was appended");
        sent
    }
    let lost = lost_acks(11).await;
    assert!(!lost.is_empty() && lost.len() < 20, "{lost:?}");
    assert_eq!(lost_acks(11).await, lost, "replays from the seed");
    assert_ne!(lost_acks(12).await, lost, "another seed, other faults");
}
