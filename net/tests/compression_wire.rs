//! Compressed batches over the wire: the Produce version rules Kafka applies before the
//! core sees a batch, and a Fetch that returns a compressed batch byte for byte.

use bytes::Bytes;
use idempo_net::ServerConfig;
use idempo_protocol::compression::{Compression, compress_batch};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
use kafka_protocol::messages::{
    FetchRequest, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};

mod common;
use common::{Client, start, topic_name};

const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;

fn compressed(codec: Compression, base_sequence: i32) -> Bytes {
    let records = (0..3)
        .map(|i| Record::with_value(i, format!("value {i} ").repeat(20)))
        .collect();
    let batch = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(base_sequence),
        // Now-ish, so the timestamp check passes whatever the clock says.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        records,
    );
    compress_batch(&batch, codec)
}

fn produce(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

async fn produce_at(client: &mut Client, topic: &str, records: Bytes, version: i16) -> i16 {
    let response = client.send(&produce(topic, records), version).await;
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test]
async fn zstd_needs_produce_v7_as_kip_110_says() {
    let running = start(ServerConfig::default()).await;
    let mut client = Client::connect(running.addr).await;
    let zstd = compressed(Compression::Zstd, 0);
    assert_eq!(
        produce_at(&mut client, "z", zstd.clone(), 6).await,
        UNSUPPORTED_COMPRESSION_TYPE
    );
    assert_eq!(produce_at(&mut client, "z", zstd, 7).await, 0);
    // The other codecs predate the rule.
    let gzip = compressed(Compression::Gzip, 3);
    assert_eq!(produce_at(&mut client, "z", gzip, 3).await, 0);
}

#[tokio::test]
async fn a_compressed_batch_is_fetched_byte_for_byte() {
    let running = start(ServerConfig::default()).await;
    let mut client = Client::connect(running.addr).await;
    let sent = compressed(Compression::Lz4, 0);
    assert_eq!(produce_at(&mut client, "l", sent.clone(), 9).await, 0);
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("l"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = client.send(&request, 11).await;
    let stored = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("the batch is returned");
    // Only the partition leader epoch (bytes 12..16, not covered by the CRC) was stamped.
    assert_eq!(stored.len(), sent.len());
    assert_eq!(&stored[..12], &sent[..12]);
    assert_eq!(
        &stored[16..],
        &sent[16..],
        "the compressed bytes are as sent"
    );
}
