//! Answers about what does not exist or cannot be used: an unknown partition, a damaged
//! producer-id file, refused DeleteRecords and a failed open, each with Kafka's error name
//! and the `-1` Kafka puts in offset fields it cannot fill.

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig, ConfigError, OpenError, SimDisk, Storage, StorageError};
use idempo_protocol::{
    ErrorCode, FetchRequest, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
};

fn batch() -> Bytes {
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        1,
        vec![Record::with_value(0, "x")],
    )
    .to_bytes()
}

fn no_auto_create() -> Broker {
    Broker::new(BrokerConfig {
        auto_create_partitions: false,
        ..BrokerConfig::default()
    })
    .expect("a valid config")
}

#[test]
fn a_produce_to_a_missing_partition_has_no_log_start_offset() {
    let mut b = no_auto_create();
    let valid = b.produce(4, &batch());
    assert_eq!(
        valid.response.error_code,
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(valid.response.log_start_offset, -1);
    assert_eq!(valid.response.base_offset, -1);
    let garbage = b.produce(4, &Bytes::from_static(b"not a batch"));
    assert_ne!(garbage.response.error_code, ErrorCode::None);
    assert_eq!(garbage.response.log_start_offset, -1);
}

#[test]
fn a_fetch_from_a_missing_partition_has_no_watermark_or_start() {
    let b = no_auto_create();
    let r = b.fetch(&FetchRequest::consumer(2, 0, 1 << 20));
    assert_eq!(r.error_code, ErrorCode::UnknownTopicOrPartition);
    assert_eq!((r.high_watermark, r.log_start_offset), (-1, -1));
    assert!(r.records.is_empty());
}

/// The producer-id block file: `version i16 | crc u32 | block_end i64`.
fn id_block_file(version: i16, block_end: i64, crc_ok: bool) -> Vec<u8> {
    let body = block_end.to_be_bytes();
    let crc = crc32c::crc32c(&body) ^ u32::from(!crc_ok);
    let mut data = version.to_be_bytes().to_vec();
    data.extend_from_slice(&crc.to_be_bytes());
    data.extend_from_slice(&body);
    data
}

#[test]
fn a_producer_id_block_file_is_trusted_only_with_its_version_and_checksum() {
    for (version, crc_ok, trusted) in [(1, true, true), (2, true, false), (1, false, false)] {
        let mut disk = SimDisk::new();
        disk.write_atomic("producer-id-block", &id_block_file(version, 5_000, crc_ok))
            .unwrap();
        disk.sync("producer-id-block").unwrap();
        let (mut b, _) = Broker::open(BrokerConfig::default(), disk).unwrap();
        let first = b.init_producer_id().producer_id;
        if trusted {
            assert_eq!(
                first,
                ProducerId(5_000),
                "ids continue after the reserved block"
            );
        } else {
            assert_eq!(
                first,
                ProducerId(1),
                "version {version}, crc ok {crc_ok}: ignored, ids restart at first_producer_id"
            );
        }
    }
}

#[test]
fn refused_delete_records_and_failed_opens_name_their_cause() {
    let mut b = no_auto_create();
    let unknown = b.delete_records(3, 0).expect_err("no partition 3");
    assert_eq!(
        unknown.to_string(),
        "UNKNOWN_TOPIC_OR_PARTITION: partition 3 does not exist"
    );
    let mut b = Broker::new(BrokerConfig::default()).unwrap();
    assert!(b.produce(0, &batch()).is_appended());
    let beyond = b.delete_records(0, 9).expect_err("beyond the log end");
    assert!(
        beyond.to_string().contains('9'),
        "{beyond:?} names the offset: {beyond}"
    );
    let storage =
        idempo_broker::DeleteRecordsFailure::Storage(StorageError::NotFound { file: "f".into() });
    assert_eq!(
        storage.to_string(),
        "KAFKA_STORAGE_ERROR: file f does not exist"
    );

    let config = OpenError::Config(ConfigError::MaxPartitions(0));
    assert_eq!(
        config.to_string(),
        ConfigError::MaxPartitions(0).to_string()
    );
    let recovery = OpenError::Storage(StorageError::NotFound { file: "g".into() });
    assert_eq!(
        recovery.to_string(),
        "recovery failed: file g does not exist"
    );
}

#[test]
fn a_standalone_broker_describes_itself_as_the_one_replica_and_leader_of_each_partition() {
    let mut b = Broker::new(BrokerConfig::default()).expect("a valid config");
    for partition in [0, 2] {
        assert!(b.produce(partition, &batch()).is_appended());
    }
    let metadata = b.metadata();
    assert_eq!((metadata.brokers, metadata.controller_id), (vec![0], 0));
    let described: Vec<_> = metadata
        .partitions
        .iter()
        .map(|p| {
            let nodes = (p.replica_nodes.clone(), p.isr_nodes.clone());
            (
                p.partition,
                p.error_code,
                p.leader_id,
                p.leader_epoch,
                nodes,
            )
        })
        .collect();
    let led_by_0 = |partition| (partition, ErrorCode::None, 0, 0, (vec![0], vec![0]));
    assert_eq!(described, vec![led_by_0(0), led_by_0(2)]);
}
