//! Topic admin: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! IncrementalAlterConfigs and DeleteRecords, over the [`TopicTable`](crate::topics::TopicTable) and the core.
//!
//! Kafka's admin client (`AdminClient` in confluent-kafka, `kafka-topics.sh`, kafkajs'
//! `admin()`) sends these to the controller or to any broker; on one broker both are this
//! one. Every answer carries Kafka's error codes:
//!
//! | request                         | refused with |
//! |---------------------------------|--------------|
//! | CreateTopics of an existing name | TOPIC_ALREADY_EXISTS (36) |
//! | a partition count below 1 (not -1, the default) | INVALID_PARTITIONS (37) |
//! | a replication factor other than 1 or -1 | INVALID_REPLICATION_FACTOR (38): one broker |
//! | a manual assignment naming another broker | INVALID_REPLICA_ASSIGNMENT (39) |
//! | a config not in [`TOPIC_CONFIGS`], or a bad value | INVALID_CONFIG (40) |
//! | an unknown topic | UNKNOWN_TOPIC_OR_PARTITION (3), UNKNOWN_TOPIC_ID (100) by id |
//! | CreatePartitions not above the current count | INVALID_PARTITIONS (37) |
//! | DeleteRecords past the high watermark | OFFSET_OUT_OF_RANGE (1) |
//!
//! # The configs honoured
//!
//! Only configs the core really applies are accepted, so that what DescribeConfigs says is
//! what the broker does ([`TOPIC_CONFIGS`], [`BROKER_CONFIGS`]). Topic configs become the
//! core's per-partition overrides ([`PartitionConfig`]); `producer.id.expiration.ms` is the
//! one dynamic broker config. Both are persisted in the topic table (`topics/`), so they
//! survive a restart with `--data-dir`.
//!
//! # Differences from Kafka
//! - Kafka accepts every topic config it knows (`retention.ms`, `cleanup.policy`,
//!   `segment.bytes`, ...); idempo refuses those it does not honour with INVALID_CONFIG and
//!   names the ones it does, rather than store a setting it would silently ignore.
//!   `message.timestamp.type` accepts `CreateTime` only (no `LogAppendTime`: the broker
//!   stores batches as sent and would have to rewrite their timestamps and CRC).
//!   `message.timestamp.difference.max.ms` is refused as Kafka 4.0 refuses it (removed by
//!   KIP-937; Kafka 3.6–3.9 still read it where `before`/`after` are unset).
//! - `retention.ms` defaults to -1 (keep for ever; Kafka: 7 days) and deletes whole batches
//!   from the log start, checked every minute (Kafka deletes segments, every 5 minutes).
//! - Deletion is immediate: the partitions and their files are gone when DeleteTopics is
//!   answered (Kafka marks them and deletes asynchronously).
//! - No `CreateTopicPolicy`, no quotas (`throttle_time_ms` is always 0), no legacy
//!   AlterConfigs (API 33): clients use IncrementalAlterConfigs (API 44).

use crate::kafka_apis::{KafkaApis, NODE_ID};
use crate::topics::{Topic, TopicError};
use idempo_broker::{Broker, PartitionConfig, Storage};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, TopicName,
    create_partitions_response::CreatePartitionsTopicResult,
    create_topics_request::CreatableTopic,
    create_topics_response::{CreatableTopicConfigs, CreatableTopicResult},
    delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
    delete_topics_response::DeletableTopicResult,
    describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
    incremental_alter_configs_response::AlterConfigsResourceResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use tracing::info;
use uuid::Uuid;

/// DescribeConfigs' resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs' resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource`: set on the topic.
const SOURCE_TOPIC_CONFIG: i8 = 1;
/// Kafka's `ConfigSource`: set dynamically on this broker.
const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
/// Kafka's `ConfigSource`: from the broker's start-up flags.
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
/// Kafka's `ConfigSource`: the default.
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Kafka's `ConfigType` of the configs listed here.
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_STRING: i8 = 2;

/// Topic-level configs the broker honours, with their Kafka type.
pub const TOPIC_CONFIGS: [(&str, i8); 6] = [
    ("max.message.bytes", TYPE_INT),
    ("message.timestamp.after.max.ms", TYPE_LONG),
    ("message.timestamp.before.max.ms", TYPE_LONG),
    ("message.timestamp.type", TYPE_STRING),
    ("min.insync.replicas", TYPE_INT),
    ("retention.ms", TYPE_LONG),
];

/// Broker-level configs that can be changed at run time (IncrementalAlterConfigs).
pub const BROKER_CONFIGS: [&str; 1] = ["producer.id.expiration.ms"];

/// A value of one config, with where it comes from.
struct ConfigValue {
    name: &'static str,
    value: String,
    source: i8,
    read_only: bool,
    config_type: i8,
}

fn invalid_config(why: String) -> TopicError {
    TopicError::InvalidConfig(why)
}

fn parse_number(name: &str, value: &str, min: i64, max: i64) -> Result<i64, TopicError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            invalid_config(format!(
                "invalid value {value:?} for {name}: a number from {min} to {max} is needed"
            ))
        })
}

/// Checks topic configs and turns them into the core's per-partition overrides. A name not
/// in [`TOPIC_CONFIGS`] or a value out of range is INVALID_CONFIG.
pub fn partition_config(configs: &BTreeMap<String, String>) -> Result<PartitionConfig, TopicError> {
    let mut config = PartitionConfig::default();
    for (name, value) in configs {
        match name.as_str() {
            "max.message.bytes" => {
                let v = parse_number(name, value, 0, i64::from(i32::MAX))?;
                config.max_message_bytes = usize::try_from(v).ok();
            }
            "message.timestamp.after.max.ms" => {
                config.message_timestamp_after_max_ms =
                    Some(parse_number(name, value, 0, i64::MAX)?);
            }
            "message.timestamp.before.max.ms" => {
                config.message_timestamp_before_max_ms =
                    Some(parse_number(name, value, 0, i64::MAX)?);
            }
            "message.timestamp.difference.max.ms" => {
                return Err(invalid_config(
                    "message.timestamp.difference.max.ms was removed in Kafka 4.0 (KIP-937): \
                     use message.timestamp.before.max.ms and message.timestamp.after.max.ms"
                        .to_string(),
                ));
            }
            "min.insync.replicas" => {
                let v = parse_number(name, value, 1, i64::from(i32::MAX))?;
                config.min_insync_replicas = usize::try_from(v).ok();
            }
            "retention.ms" => {
                let v = parse_number(name, value, -1, i64::MAX)?;
                config.retention_ms = (v >= 0).then_some(v);
            }
            "message.timestamp.type" if value == "CreateTime" => {}
            "message.timestamp.type" => {
                return Err(invalid_config(format!(
                    "message.timestamp.type {value:?} is not honoured: idempo-broker keeps the producer's CreateTime"
                )));
            }
            other => {
                let honoured: Vec<&str> = TOPIC_CONFIGS.iter().map(|(n, _)| *n).collect();
                return Err(invalid_config(format!(
                    "topic config {other} is not honoured by idempo-broker; the honoured ones are {}",
                    honoured.join(", ")
                )));
            }
        }
    }
    Ok(config)
}

/// Checks dynamic broker configs (only [`BROKER_CONFIGS`]).
pub fn check_broker_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    for (name, value) in configs {
        if name != "producer.id.expiration.ms" {
            return Err(invalid_config(format!(
                "broker config {name} cannot be changed at run time; the dynamic ones are {}",
                BROKER_CONFIGS.join(", ")
            )));
        }
        parse_number(name, value, 1, i64::from(i32::MAX))?;
    }
    Ok(())
}

/// Applies dynamic broker configs to the core (after [`check_broker_configs`]).
pub fn apply_broker_configs<S: Storage>(
    broker: &mut Broker<S>,
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicError> {
    check_broker_configs(configs)?;
    if let Some(value) = configs.get("producer.id.expiration.ms") {
        let ms = parse_number("producer.id.expiration.ms", value, 1, i64::from(i32::MAX))?;
        broker
            .set_producer_id_expiration_ms(ms)
            .map_err(|e| invalid_config(e.to_string()))?;
    }
    Ok(())
}

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(text(name))
}

/// (code, message) of a failed topic operation, with the message only when there is one.
fn failure(e: &TopicError) -> (i16, Option<StrBytes>) {
    (e.error_code(), Some(text(e.to_string())))
}

impl KafkaApis {
    /// Every honoured topic config of `topic`: its own value, or the broker's default.
    fn topic_config_values(&self, topic: &Topic) -> Vec<ConfigValue> {
        let broker = self.broker.config();
        let defaults = [
            broker.max_message_bytes.to_string(),
            broker.log_message_timestamp_after_max_ms.to_string(),
            broker.log_message_timestamp_before_max_ms.to_string(),
            "CreateTime".to_string(),
            broker.min_insync_replicas.to_string(),
            "-1".to_string(),
        ];
        TOPIC_CONFIGS
            .iter()
            .zip(defaults)
            .map(|(&(name, config_type), default)| {
                let (value, source) = match topic.configs.get(name) {
                    Some(v) => (v.clone(), SOURCE_TOPIC_CONFIG),
                    None => (default, SOURCE_DEFAULT_CONFIG),
                };
                ConfigValue {
                    name,
                    value,
                    source,
                    read_only: false,
                    config_type,
                }
            })
            .collect()
    }

    /// The broker's configs: the dynamic one, and the start-up settings as read-only.
    fn broker_config_values(&self) -> Vec<ConfigValue> {
        let c = self.broker.config();
        let dynamic = self.topics.broker_configs();
        let fixed = |name, value: String, config_type| ConfigValue {
            name,
            value,
            source: SOURCE_STATIC_BROKER_CONFIG,
            read_only: true,
            config_type,
        };
        vec![
            ConfigValue {
                name: "producer.id.expiration.ms",
                value: c.producer_id_expiration_ms.to_string(),
                source: if dynamic.contains_key("producer.id.expiration.ms") {
                    SOURCE_DYNAMIC_BROKER_CONFIG
                } else {
                    SOURCE_DEFAULT_CONFIG
                },
                read_only: false,
                config_type: TYPE_INT,
            },
            fixed(
                "message.max.bytes",
                c.max_message_bytes.to_string(),
                TYPE_INT,
            ),
            fixed(
                "log.message.timestamp.after.max.ms",
                c.log_message_timestamp_after_max_ms.to_string(),
                TYPE_LONG,
            ),
            fixed(
                "log.message.timestamp.before.max.ms",
                c.log_message_timestamp_before_max_ms.to_string(),
                TYPE_LONG,
            ),
            fixed(
                "min.insync.replicas",
                c.min_insync_replicas.to_string(),
                TYPE_INT,
            ),
            fixed(
                "num.partitions",
                self.settings.default_partitions.to_string(),
                TYPE_INT,
            ),
            fixed(
                "auto.create.topics.enable",
                self.settings.auto_create_topics.to_string(),
                1,
            ),
            fixed("node.id", NODE_ID.to_string(), TYPE_INT),
        ]
    }

    /// CreateTopics (module docs for the refusals). Replication factor 1 (or -1, the
    /// default) is all one broker has; partitions -1 means `--partitions`.
    pub fn create_topics(
        &mut self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| self.create_topic(t, request.validate_only, version))
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    fn create_topic(
        &mut self,
        t: &CreatableTopic,
        validate_only: bool,
        version: i16,
    ) -> CreatableTopicResult {
        let name = t.name.0.as_str();
        let answer = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let result = self.checked_create(t, validate_only);
        match result {
            Ok(topic) => {
                if !validate_only {
                    info!(topic = name, partitions = topic.partition_count, core_partitions = ?topic.core_partitions, "created topic (CreateTopics)");
                }
                let configs = (version >= 5).then(|| {
                    self.topic_config_values(&topic)
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(text(c.name))
                                .with_value(Some(text(c.value)))
                                .with_read_only(c.read_only)
                                .with_config_source(c.source)
                        })
                        .collect()
                });
                answer
                    .with_topic_id(topic.topic_id)
                    .with_num_partitions(topic.partition_count)
                    .with_replication_factor(1)
                    .with_configs(configs)
            }
            Err(e) => {
                let (code, message) = failure(&e);
                info!(topic = name, error = %e, "refused CreateTopics");
                answer.with_error_code(code).with_error_message(message)
            }
        }
    }

    fn checked_create(
        &mut self,
        t: &CreatableTopic,
        validate_only: bool,
    ) -> Result<Topic, TopicError> {
        let name = t.name.0.as_str();
        if !matches!(t.replication_factor, -1 | 1) {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {} is larger than the number of available brokers: 1",
                t.replication_factor
            )));
        }
        let count = if t.assignments.is_empty() {
            if t.num_partitions == -1 {
                self.settings.default_partitions
            } else {
                t.num_partitions
            }
        } else {
            let only_us = t
                .assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == NODE_ID);
            if !only_us {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "every partition must be assigned to broker {NODE_ID} alone"
                )));
            }
            i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)
        };
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(value) = &c.value {
                configs.insert(c.name.to_string(), value.to_string());
            }
        }
        self.topics
            .create(&mut self.broker, name, count, configs, validate_only)
    }

    /// DeleteTopics, by name (v1–5) or by name or id (v6). The partitions and their files
    /// are removed before the answer.
    pub fn delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
            request
                .topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let responses = wanted
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| self.topics.by_id(id).map(|t| t.name.clone()));
                let answer = DeletableTopicResult::default()
                    .with_name(name.as_deref().map(topic_name))
                    .with_topic_id(id);
                let Some(name) = name else {
                    return answer
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_error_message(Some(text(format!("no topic has id {id}"))));
                };
                match self.topics.delete(&mut self.broker, &name) {
                    Ok(topic) => {
                        info!(topic = name, core_partitions = ?topic.core_partitions, "deleted topic");
                        answer.with_topic_id(topic.topic_id)
                    }
                    Err(e) => {
                        let (code, message) = failure(&e);
                        answer.with_error_code(code).with_error_message(message)
                    }
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    /// CreatePartitions: grows topics; a manual assignment must name this broker only.
    pub fn create_partitions(
        &mut self,
        request: &CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let results = request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let answer = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let foreign = t
                    .assignments
                    .iter()
                    .flatten()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != NODE_ID);
                let result = if foreign {
                    Err(TopicError::InvalidReplicaAssignment(format!(
                        "every partition must be assigned to broker {NODE_ID} alone"
                    )))
                } else {
                    self.topics.add_partitions(
                        &mut self.broker,
                        name,
                        t.count,
                        request.validate_only,
                    )
                };
                match result {
                    Ok(topic) => {
                        info!(
                            topic = name,
                            partitions = topic.partition_count,
                            validate_only = request.validate_only,
                            "grew topic (CreatePartitions)"
                        );
                        answer
                    }
                    Err(e) => {
                        let (code, message) = failure(&e);
                        answer.with_error_code(code).with_error_message(message)
                    }
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    /// DescribeConfigs of topics and of this broker (name `"1"`, or `""` for the cluster
    /// default), with each value's source; `configuration_keys` filters.
    pub fn describe_configs(
        &self,
        request: &DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let results = request
            .resources
            .iter()
            .map(|r| {
                let name = r.resource_name.as_str();
                let answer = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let values = match r.resource_type {
                    RESOURCE_TOPIC => match self.topics.get(name) {
                        Some(topic) => Ok(self.topic_config_values(topic)),
                        None => Err(TopicError::Unknown(name.to_string())),
                    },
                    RESOURCE_BROKER if is_this_broker(name) => Ok(self.broker_config_values()),
                    RESOURCE_BROKER => Err(TopicError::InvalidConfig(format!(
                        "broker {name} is not this broker ({NODE_ID})"
                    ))),
                    other => Err(TopicError::InvalidRequest(format!(
                        "resource type {other} is not described (topics 2 and brokers 4 are)"
                    ))),
                };
                match values {
                    Ok(values) => answer.with_configs(
                        values
                            .into_iter()
                            .filter(|c| {
                                r.configuration_keys
                                    .as_ref()
                                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                            })
                            .map(|c| describe_value(c, version))
                            .collect(),
                    ),
                    Err(e) => {
                        let (code, message) = failure(&e);
                        answer.with_error_code(code).with_error_message(message)
                    }
                }
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    /// IncrementalAlterConfigs: SET and DELETE of the honoured topic configs and of
    /// `producer.id.expiration.ms` on the broker; persisted in the topic table.
    pub fn incremental_alter_configs(
        &mut self,
        request: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let responses = request
            .resources
            .iter()
            .map(|r| {
                let name = r.resource_name.as_str();
                let answer = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let result = self.alter_resource(r, request.validate_only);
                match result {
                    Ok(()) => {
                        if !request.validate_only {
                            info!(
                                resource_type = r.resource_type,
                                resource = name,
                                "altered configs"
                            );
                        }
                        answer
                    }
                    Err(e) => {
                        let (code, message) = failure(&e);
                        answer.with_error_code(code).with_error_message(message)
                    }
                }
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    fn alter_resource(
        &mut self,
        r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let name = r.resource_name.as_str();
        let mut configs = match r.resource_type {
            RESOURCE_TOPIC => self
                .topics
                .get(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string()))?
                .configs
                .clone(),
            RESOURCE_BROKER if is_this_broker(name) => self.topics.broker_configs().clone(),
            RESOURCE_BROKER => {
                return Err(TopicError::InvalidConfig(format!(
                    "broker {name} is not this broker ({NODE_ID})"
                )));
            }
            other => {
                return Err(TopicError::InvalidRequest(format!(
                    "resource type {other} cannot be altered (topics 2 and brokers 4 can)"
                )));
            }
        };
        for c in &r.configs {
            let key = c.name.to_string();
            match (c.config_operation, &c.value) {
                (OP_SET, Some(value)) => {
                    configs.insert(key, value.to_string());
                }
                (OP_SET, None) => {
                    return Err(invalid_config(format!("SET of {key} without a value")));
                }
                (OP_DELETE, _) => {
                    configs.remove(&key);
                }
                (op, _) => {
                    return Err(invalid_config(format!(
                        "operation {op} on {key}: only SET (0) and DELETE (1) apply, no config here is a list"
                    )));
                }
            }
        }
        if r.resource_type == RESOURCE_TOPIC {
            partition_config(&configs)?;
        } else {
            check_broker_configs(&configs)?;
        }
        if validate_only {
            return Ok(());
        }
        if r.resource_type == RESOURCE_TOPIC {
            self.topics.set_configs(&mut self.broker, name, configs)
        } else {
            self.topics.set_broker_configs(&mut self.broker, configs)
        }
    }

    /// DeleteRecords: moves each partition's log start offset (the core's
    /// `delete_records`); offset -1 means the high watermark.
    pub fn delete_records(&mut self, request: &DeleteRecordsRequest) -> DeleteRecordsResponse {
        let topics = request
            .topics
            .iter()
            .map(|t| {
                let found = self.topics.get(t.name.0.as_str()).cloned();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        let Some(core) = found
                            .as_ref()
                            .and_then(|t| t.core_partition(p.partition_index))
                        else {
                            return answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let offset = if p.offset == -1 {
                            self.broker.log_end_offset(core).unwrap_or(0)
                        } else {
                            p.offset
                        };
                        match self.broker.delete_records(core, offset) {
                            Ok(low_watermark) => {
                                info!(
                                    topic = t.name.0.as_str(),
                                    partition = p.partition_index,
                                    low_watermark,
                                    "deleted records"
                                );
                                answer.with_low_watermark(low_watermark)
                            }
                            Err(idempo_broker::DeleteRecordsFailure::UnknownPartition(_)) => answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Err(idempo_broker::DeleteRecordsFailure::OutOfRange(_)) => {
                                answer.with_error_code(ResponseError::OffsetOutOfRange.code())
                            }
                            Err(_) => {
                                answer.with_error_code(ResponseError::KafkaStorageError.code())
                            }
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    }
}

/// This broker's name as a config resource: its node id, or `""` (the cluster default).
fn is_this_broker(name: &str) -> bool {
    name.is_empty() || name == NODE_ID.to_string()
}

fn describe_value(c: ConfigValue, version: i16) -> DescribeConfigsResourceResult {
    let answer = DescribeConfigsResourceResult::default()
        .with_name(text(c.name))
        .with_value(Some(text(c.value)))
        .with_read_only(c.read_only)
        .with_config_source(c.source)
        .with_is_sensitive(false);
    if version >= 3 {
        answer.with_config_type(c.config_type)
    } else {
        answer
    }
}
