//! `--metrics`: the numbers a scrape shows after an idempotent producer's retries, duplicate
//! and out-of-order batches, and a consumer's fetch.

use bytes::Bytes;
use idempo_net::{Server, ServerConfig};
use kafka_protocol::messages::{
    FetchRequest, InitProducerIdRequest, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

mod common;
use common::{Client, batch, topic_name};

const TOPIC: &str = "orders";

/// A running server with its metrics endpoint; dropping `_stop` shuts it down.
async fn start_with_metrics() -> (SocketAddr, SocketAddr, oneshot::Sender<()>) {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        metrics: Some("127.0.0.1:0".parse().expect("an address")),
        ..ServerConfig::default()
    };
    let server = Server::bind(config).await.expect("server starts");
    let addr = server.local_addr().expect("bound");
    let metrics = server.metrics_addr().expect("metrics bound");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, metrics, stop)
}

/// GET `path` over HTTP/1.1; the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// Each sample line of the text format, by name with its labels.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
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

#[tokio::test]
async fn a_scrape_counts_appends_duplicates_sequence_errors_and_bytes_out() {
    let (addr, metrics, _stop) = start_with_metrics().await;
    let mut client = Client::connect(addr).await;
    let producer_id = client
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
            4,
        )
        .await
        .producer_id
        .0;
    let first = batch(producer_id, 0, &["a", "b"]);
    for _ in 0..3 {
        // The first is appended, the two retries are duplicates.
        client.send(&produce(first.clone()), 9).await;
    }
    let gap = client
        .send(&produce(batch(producer_id, 7, &["c"])), 9)
        .await;
    assert_eq!(gap.responses[0].partition_responses[0].error_code, 45);
    let fetch = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    FetchPartition::default().with_partition_max_bytes(1 << 20),
                ]),
        ]);
    client.send(&fetch, 4).await;

    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&text);
    let value = |name: &str| *s.get(name).unwrap_or_else(|| panic!("{name} in:\n{text}"));
    assert_eq!(
        value("kafka_server_brokertopicmetrics_messagesin_total"),
        2.0
    );
    assert_eq!(
        value("kafka_server_brokertopicmetrics_bytesin_total"),
        first.len() as f64
    );
    assert_eq!(value("idempo_duplicates_total"), 2.0);
    assert_eq!(
        value(
            "kafka_network_requestmetrics_errors_total{error=\"OUT_OF_ORDER_SEQUENCE_NUMBER\",request=\"Produce\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            "kafka_network_requestmetrics_errors_total{error=\"INVALID_PRODUCER_EPOCH\",request=\"Produce\"}"
        ),
        0.0
    );
    assert_eq!(value("kafka_server_replicamanager_produceridcount"), 1.0);
    assert_eq!(
        value("kafka_log_log_logendoffset{partition=\"0\",topic=\"orders\"}"),
        2.0
    );
    assert_eq!(
        value("kafka_server_brokertopicmetrics_bytesout_total"),
        first.len() as f64
    );
    assert_eq!(value("idempo_records_out_total"), 2.0);
    assert_eq!(
        value("kafka_server_socketservermetrics_connection_count"),
        1.0
    );
    assert_eq!(value("idempo_connections_accepted_total"), 1.0);

    let (status, _) = get(metrics, "/nothing").await;
    assert_eq!(status, 404);
}
