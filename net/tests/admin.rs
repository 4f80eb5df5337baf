//! Topic admin through `KafkaApis` (no sockets), and the topic table surviving a reopen of
//! the same files, as `idempo-broker --data-dir` does after a restart.

use idempo_broker::{Broker, FileStorage, NodeStorage, SimDisk};
use idempo_net::admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use idempo_net::{FrontEndSettings, KafkaApis, ServerConfig};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, TopicName,
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
    describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
};
use kafka_protocol::protocol::StrBytes;
use std::path::{Path, PathBuf};

fn settings() -> FrontEndSettings {
    FrontEndSettings {
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        cluster_id: "idempo".into(),
        default_partitions: 1,
        auto_create_topics: true,
        group: idempo_broker::GroupConfig::default(),
        member_id_seed: 1,
    }
}

fn apis(storage: NodeStorage) -> KafkaApis {
    let (broker, _) = Broker::open(ServerConfig::default().broker, storage).expect("opens");
    let mut apis = KafkaApis::new(broker, settings());
    apis.load_topics().expect("the table loads");
    apis
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn create(apis: &mut KafkaApis, topics: Vec<CreatableTopic>, validate_only: bool) -> Vec<i16> {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_validate_only(validate_only);
    let response = apis.create_topics(&request, 7);
    response.topics.iter().map(|t| t.error_code).collect()
}

fn config_value(apis: &KafkaApis, resource_type: i8, name: &str, key: &str) -> (String, i8) {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(vec![s(key)])),
    ]);
    let response = apis.describe_configs(&request, 4);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let config = &result.configs[0];
    (
        config.value.as_ref().expect("a value").to_string(),
        config.config_source,
    )
}

fn alter(apis: &mut KafkaApis, resource_type: i8, name: &str, key: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s(key))
                    .with_config_operation(0)
                    .with_value(Some(s(value))),
            ]),
    ]);
    apis.incremental_alter_configs(&request).responses[0].error_code
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("idempo-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn create_topics_answers_kafkas_error_codes() {
    let mut apis = apis(NodeStorage::Memory(SimDisk::new()));
    let with_config = |key: &str, value: &str| {
        topic("c", 1, 1).with_configs(vec![
            CreatableTopicConfig::default()
                .with_name(s(key))
                .with_value(Some(s(value))),
        ])
    };
    let foreign = topic("d", -1, -1).with_assignments(vec![
        CreatableReplicaAssignment::default().with_broker_ids(vec![BrokerId(2)]),
    ]);
    assert_eq!(
        create(
            &mut apis,
            vec![
                topic("a", 3, 1),
                topic("a", 3, 1),
                topic("b", 0, 1),
                topic("b", 1, 3),
                with_config("cleanup.policy", "compact"),
                with_config("min.insync.replicas", "zero"),
                foreign,
                topic("..", 1, 1),
            ],
            false
        ),
        vec![0, 36, 37, 38, 40, 40, 39, 17]
    );
    assert_eq!(create(&mut apis, vec![topic("v", -1, -1)], true), vec![0]);
    assert!(
        apis.topics.get("v").is_none(),
        "validate_only creates nothing"
    );
    assert_eq!(apis.topics.get("a").map(|t| t.partition_count), Some(3));
}

#[test]
fn configs_are_described_with_their_source_and_altered() {
    let mut apis = apis(NodeStorage::Memory(SimDisk::new()));
    create(&mut apis, vec![topic("t", 2, -1)], false);
    assert_eq!(
        config_value(&apis, RESOURCE_TOPIC, "t", "max.message.bytes"),
        ("1048588".to_string(), 5),
        "the broker default"
    );
    assert_eq!(
        alter(&mut apis, RESOURCE_TOPIC, "t", "max.message.bytes", "100"),
        0
    );
    assert_eq!(
        config_value(&apis, RESOURCE_TOPIC, "t", "max.message.bytes"),
        ("100".to_string(), 1),
        "set on the topic"
    );
    let core = apis
        .topics
        .get("t")
        .and_then(|t| t.core_partition(1))
        .expect("exists");
    assert_eq!(
        apis.broker.partition_config(core).max_message_bytes,
        Some(100)
    );
    assert_eq!(
        alter(&mut apis, RESOURCE_TOPIC, "t", "segment.bytes", "100"),
        40
    );
    assert_eq!(
        alter(&mut apis, RESOURCE_TOPIC, "nope", "retention.ms", "1"),
        3
    );
    assert_eq!(
        alter(
            &mut apis,
            RESOURCE_BROKER,
            "1",
            "producer.id.expiration.ms",
            "5000"
        ),
        0
    );
    assert_eq!(apis.broker.config().producer_id_expiration_ms, 5000);
    assert_eq!(
        config_value(&apis, RESOURCE_BROKER, "1", "producer.id.expiration.ms"),
        ("5000".to_string(), 2)
    );
}

/// (error code) of a one-record idempotent batch stamped `timestamp_ms`, produced to
/// partition 0 of `topic` with acks=all.
fn produce_at(apis: &mut KafkaApis, topic: &str, producer_id: i64, timestamp_ms: i64) -> i16 {
    use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
    use kafka_protocol::messages::{
        ProduceRequest,
        produce_request::{PartitionProduceData, TopicProduceData},
    };
    let records = RecordBatch::idempotent(
        ProducerId(producer_id),
        ProducerEpoch(0),
        Sequence(0),
        timestamp_ms,
        vec![Record::with_value(0, "v".to_string())],
    )
    .to_bytes();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    apis.produce(&request, 9).response.responses[0].partition_responses[0].error_code
}

#[test]
fn message_timestamp_before_max_ms_is_set_described_altered_and_refuses_older_records() {
    let mut apis = apis(NodeStorage::Memory(SimDisk::new()));
    let now_ms = 1_700_000_000_000;
    apis.advance_time(now_ms);
    let created = create(
        &mut apis,
        vec![
            topic("recent", 1, -1).with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(s("message.timestamp.before.max.ms"))
                    .with_value(Some(s("60000"))),
            ]),
            topic("any", 1, -1),
        ],
        false,
    );
    assert_eq!(created, vec![0, 0]);
    assert_eq!(
        config_value(
            &apis,
            RESOURCE_TOPIC,
            "recent",
            "message.timestamp.before.max.ms"
        ),
        ("60000".to_string(), 1),
        "set on the topic"
    );
    assert_eq!(
        config_value(
            &apis,
            RESOURCE_TOPIC,
            "any",
            "message.timestamp.before.max.ms"
        ),
        (i64::MAX.to_string(), 5),
        "Kafka's default, Long.MAX_VALUE: no check"
    );
    assert_eq!(
        config_value(
            &apis,
            RESOURCE_BROKER,
            "1",
            "log.message.timestamp.before.max.ms"
        ),
        (i64::MAX.to_string(), 4)
    );
    let two_minutes_ago = now_ms - 120_000;
    assert_eq!(produce_at(&mut apis, "recent", 10, two_minutes_ago), 32);
    assert_eq!(produce_at(&mut apis, "recent", 11, now_ms - 60_000), 0);
    assert_eq!(produce_at(&mut apis, "any", 12, two_minutes_ago), 0);
    assert_eq!(
        alter(
            &mut apis,
            RESOURCE_TOPIC,
            "recent",
            "message.timestamp.before.max.ms",
            "600000"
        ),
        0
    );
    assert_eq!(
        produce_at(&mut apis, "recent", 10, two_minutes_ago),
        0,
        "within the altered bound"
    );
}

#[test]
fn removed_and_unhonoured_timestamp_configs_are_invalid_config() {
    let mut apis = apis(NodeStorage::Memory(SimDisk::new()));
    create(&mut apis, vec![topic("t", 1, -1)], false);
    for (key, value) in [
        ("message.timestamp.difference.max.ms", "1000"),
        ("message.timestamp.type", "LogAppendTime"),
        ("message.timestamp.before.max.ms", "-1"),
    ] {
        assert_eq!(
            alter(&mut apis, RESOURCE_TOPIC, "t", key, value),
            40,
            "{key}={value}"
        );
    }
    assert_eq!(
        alter(
            &mut apis,
            RESOURCE_TOPIC,
            "t",
            "message.timestamp.type",
            "CreateTime"
        ),
        0
    );
}

#[test]
fn topics_partitions_configs_and_deletions_survive_reopening_the_files() {
    let dir = TempDir::new("reopen");
    let (kept_id, core) = {
        let files = FileStorage::open(dir.path()).expect("opens");
        let mut apis = apis(NodeStorage::Files(files));
        create(
            &mut apis,
            vec![topic("kept", 2, 1), topic("gone", 1, 1)],
            false,
        );
        assert_eq!(
            alter(&mut apis, RESOURCE_TOPIC, "kept", "retention.ms", "60000"),
            0
        );
        let grow = CreatePartitionsRequest::default().with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(TopicName(s("kept")))
                .with_count(3),
        ]);
        assert_eq!(apis.create_partitions(&grow).results[0].error_code, 0);
        let delete = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("gone"))]);
        assert_eq!(apis.delete_topics(&delete, 5).responses[0].error_code, 0);
        let delete_records = DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(s("kept")))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(5),
                ]),
        ]);
        let answer = apis.delete_records(&delete_records);
        assert_eq!(
            answer.topics[0].partitions[0].error_code, 1,
            "beyond the log end"
        );
        let kept = apis.topics.get("kept").expect("exists");
        (kept.topic_id, kept.core_partition(2).expect("grown"))
        // Dropped without a clean shutdown.
    };
    let files = FileStorage::open(dir.path()).expect("reopens");
    let apis = apis(NodeStorage::Files(files));
    let kept = apis.topics.get("kept").expect("survived");
    assert_eq!((kept.topic_id, kept.partition_count), (kept_id, 3));
    assert!(apis.topics.get("gone").is_none(), "stays deleted");
    assert_eq!(apis.broker.log_end_offset(core), Some(0));
    assert_eq!(
        apis.broker.partition_config(core).retention_ms,
        Some(60_000)
    );
    assert_eq!(
        apis.broker.partition_ids().len(),
        3,
        "no partition of the deleted topic"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused_naming_the_flag() {
    let dir = TempDir::new("lock");
    let config = idempo_net::ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: Some(dir.path().to_path_buf()),
        ..ServerConfig::default()
    };
    let first = idempo_net::Server::bind(config.clone())
        .await
        .expect("binds");
    let second = idempo_net::Server::bind(config.clone())
        .await
        .expect_err("the directory is held by the first");
    let text = second.to_string();
    assert!(
        matches!(second, idempo_net::StartError::DataDir(_)) && text.starts_with("--data-dir: "),
        "{text}"
    );
    drop(first);
    idempo_net::Server::bind(config)
        .await
        .expect("free again once the first is gone");
}
