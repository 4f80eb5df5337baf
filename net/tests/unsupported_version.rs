//! A served API at a version not served is answered UNSUPPORTED_VERSION (35) in the
//! request's own header format, and the connection goes on.

use bytes::{BufMut, Bytes, BytesMut};
use idempo_net::ServerConfig;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;

mod common;
use common::{Client, Running, start};

const UNSUPPORTED_VERSION: i16 = 35;

async fn start_default() -> Running {
    start(ServerConfig::default()).await
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A request frame that says `api_version` in its header (written as header
/// `header_version`) with a body encoded at `body_version`: how a client that knows a
/// version we do not would send it.
fn frame(
    api_key: ApiKey,
    api_version: i16,
    header_version: i16,
    correlation_id: i32,
    body: &impl Encodable,
    body_version: i16,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("future-client")))
        .encode(&mut buf, header_version)
        .expect("header encodes");
    body.encode(&mut buf, body_version).expect("body encodes");
    let len = i32::try_from(buf.len() - 4).expect("small");
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// Sends `bytes` and reads the answer's header (at `response_header_version`), returning
/// the body after it.
async fn exchange(client: &mut Client, bytes: &[u8], response_header_version: i16) -> (i32, Bytes) {
    client.stream.write_all(bytes).await.expect("writes");
    let mut answer = client.read_frame().await.expect("answered, not closed");
    let header = ResponseHeader::decode(&mut answer, response_header_version).expect("header");
    (header.correlation_id, answer)
}

fn produce_request() -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(2)
                        .with_records(Some(Bytes::from_static(b"not read"))),
                ]),
        ])
}

async fn still_served(client: &mut Client) {
    let response = client.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(response.error_code, 0, "the connection goes on");
}

#[tokio::test]
async fn produce_v99_is_answered_unsupported_version_with_a_flexible_header() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    // v99 is flexible (request header v2); the body is what the client sends, v11-shaped.
    let request = frame(ApiKey::Produce, 99, 2, 41, &produce_request(), 11);
    let (correlation_id, mut body) = exchange(&mut client, &request, 1).await;
    assert_eq!(correlation_id, 41);
    let response = ProduceResponse::decode(&mut body, 11).expect("a v11 body");
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(response.responses[0].name, name("orders"));
    assert_eq!(
        (partition.index, partition.error_code),
        (2, UNSUPPORTED_VERSION)
    );
    still_served(&mut client).await;
}

#[tokio::test]
async fn produce_v12_is_answered_at_v12_for_every_partition() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    let request = frame(ApiKey::Produce, 12, 2, 5, &produce_request(), 12);
    let (correlation_id, mut body) = exchange(&mut client, &request, 1).await;
    assert_eq!(correlation_id, 5);
    let response = ProduceResponse::decode(&mut body, 12).expect("a v12 body");
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        UNSUPPORTED_VERSION
    );
    still_served(&mut client).await;
}

#[tokio::test]
async fn a_too_old_fetch_is_answered_with_a_v0_header() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("orders"))
                .with_partitions(vec![FetchPartition::default().with_partition(1)]),
        ]);
    // Fetch v3 (removed in Kafka 4, KIP-896) is not flexible: request header v1, response
    // header v0, and the body at v4, the nearest version served.
    let request = frame(ApiKey::Fetch, 3, 1, 9, &fetch, 4);
    let (correlation_id, mut body) = exchange(&mut client, &request, 0).await;
    assert_eq!(correlation_id, 9);
    let response = FetchResponse::decode(&mut body, 4).expect("a v4 body");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(
        (partition.partition_index, partition.error_code),
        (1, UNSUPPORTED_VERSION)
    );
    assert_eq!(partition.high_watermark, -1);
    still_served(&mut client).await;
}

#[tokio::test]
async fn fetch_v13_is_answered_with_the_top_level_error() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    let topic_id = uuid::Uuid::from_u128(7);
    let fetch = FetchRequest::default().with_topics(vec![
        FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()]),
    ]);
    let request = frame(ApiKey::Fetch, 13, 2, 3, &fetch, 13);
    let (correlation_id, mut body) = exchange(&mut client, &request, 1).await;
    assert_eq!(correlation_id, 3);
    let response = FetchResponse::decode(&mut body, 13).expect("a v13 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert_eq!(response.responses[0].topic_id, topic_id);
    still_served(&mut client).await;
}

#[tokio::test]
async fn metadata_v13_names_each_topic_and_the_top_level_error() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name("orders"))),
    ]));
    let request = frame(ApiKey::Metadata, 13, 2, 8, &metadata, 13);
    let (_, mut body) = exchange(&mut client, &request, 1).await;
    let response = MetadataResponse::decode(&mut body, 13).expect("a v13 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert_eq!(response.topics[0].error_code, UNSUPPORTED_VERSION);
    assert_eq!(response.topics[0].name, Some(name("orders")));
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_still_answered_by_correlation_id() {
    let server = start_default().await;
    let mut client = Client::connect(server.addr).await;
    // Fetch v2 with a v2 body (no isolation level): it does not read as v4.
    let mut request = frame(ApiKey::Fetch, 2, 1, 77, &ApiVersionsRequest::default(), 0);
    request.extend_from_slice(&[0xff; 3]);
    let len = i32::try_from(request.len() - 4).expect("small");
    request[..4].copy_from_slice(&len.to_be_bytes());
    let (correlation_id, mut body) = exchange(&mut client, &request, 0).await;
    assert_eq!(correlation_id, 77);
    let response = FetchResponse::decode(&mut body, 4).expect("a v4 body");
    assert!(response.responses.is_empty());
    still_served(&mut client).await;
}
