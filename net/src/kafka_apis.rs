//! Each Kafka API served, as a synchronous function over the broker core.
//!
//! Named after Kafka's own `KafkaApis`, the class that turns each decoded request into calls
//! on the log and the coordinators. Nothing here does I/O or reads a clock: the server
//! ([`crate::server`]) decodes a request, locks [`KafkaApis`], tells the core the time, calls
//! one of these functions, and encodes what comes back.
//!
//! | API            | versions | what it does here |
//! |----------------|----------|-------------------|
//! | ApiVersions    | 0–3      | lists [`SUPPORTED_APIS`]; other versions get the KIP-511 v0 answer |
//! | Metadata       | 0–12     | one broker (node 1, also the controller); creates topics on first use |
//! | InitProducerId | 0–4      | a fresh producer id at epoch 0; a transactional id is refused |
//! | Produce        | 3–11     | one core `produce` per partition; duplicates answer NONE with the original offsets |
//! | Fetch          | 4–12     | the stored batches, byte for byte; high watermark = log end offset |
//! | ListOffsets    | 1–6      | earliest, latest, and the first batch at or after a timestamp |
//! | FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups | see [`SUPPORTED_APIS`] | the consumer groups, in [`crate::groups`] |

use crate::groups::Groups;
use crate::kafka_codec::SUPPORTED_APIS;
use crate::topics::{Topic, TopicTable};
use bytes::Bytes;
use idempo_broker::{Broker, ExpiredProducer, GroupConfig, NodeStorage, ProduceOutcome};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName,
    api_versions_response::ApiVersion,
    fetch_response::{FetchableTopicResponse, PartitionData},
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    metadata_request::MetadataRequestTopic,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info};

/// The node id of the one broker, in Metadata and as every partition's leader. Not 0: kafkajs
/// looks the controller up among the brokers, and librdkafka's mock shows how a controller id
/// that names no broker breaks it.
pub const NODE_ID: i32 = 1;

/// The leader epoch of every partition (one broker: the leader never changes). The core
/// writes the same epoch into every stored batch.
pub const LEADER_EPOCH: i32 = 0;

/// ListOffsets' special timestamps.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

/// Bytes read from the core per step when ListOffsets searches by timestamp.
const TIMESTAMP_SEARCH_STEP_BYTES: i32 = 1024 * 1024;

/// What the Kafka front end adds to the core: who we say we are, and how topics appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontEndSettings {
    /// Host Metadata tells clients to connect to.
    pub advertised_host: String,
    /// Port Metadata tells clients to connect to.
    pub advertised_port: u16,
    /// The cluster id in Metadata v2+.
    pub cluster_id: String,
    /// Partitions of a topic created on first use (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Create unknown topics on first use (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// The group coordinator's settings.
    pub group: GroupConfig,
    /// Mixed into every group member id; differs from one start to the next.
    pub member_id_seed: u64,
}

/// The broker as Kafka clients see it: the core, the topic table, and the settings.
#[derive(Debug)]
pub struct KafkaApis {
    /// The synchronous core, the same code the simulator drives, on memory or on files
    /// (`--data-dir`).
    pub broker: Broker<NodeStorage>,
    /// Topics and their blocks of core partitions.
    pub topics: TopicTable,
    /// Front-end settings.
    pub settings: FrontEndSettings,
    /// The consumer-group coordinator and its parked requests ([`crate::groups`]).
    pub groups: Groups,
    /// Bytes and records answered to Fetch requests, for metrics.
    pub fetched: crate::metrics::FetchCounters,
}

/// The result of a Produce request.
#[derive(Clone, Debug, PartialEq)]
pub struct ProduceResult {
    /// The answer (not sent for `acks=0`).
    pub response: ProduceResponse,
    /// Partitions whose batch was appended.
    pub appended: usize,
    /// Partitions answered with an error.
    pub failed: usize,
}

/// The result of one pass over a Fetch request.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchResult {
    /// The answer.
    pub response: FetchResponse,
    /// Record bytes in the answer (compared with the request's `min_bytes`).
    pub record_bytes: usize,
    /// True when a partition was answered with an error (answer at once, do not wait).
    pub any_error: bool,
}

/// The ApiVersions answer for a served version: every served API with its range.
pub fn api_versions_response() -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The KIP-511 answer to ApiVersions at a version we do not serve: UNSUPPORTED_VERSION and
/// the ApiVersions range alone, as Kafka sends it (to be encoded as v0 with header v0).
pub fn unsupported_api_versions_response() -> ApiVersionsResponse {
    let (min, max) = crate::kafka_codec::supported_versions(ApiKey::ApiVersions)
        .expect("ApiVersions is always served");
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(min)
                .with_max_version(max),
        ])
}

/// [`unsupported_api_versions_response`] as a whole frame: body v0 and response header v0,
/// whatever version was asked for (KIP-511), so that any client can read it.
pub fn unsupported_api_versions_frame(
    correlation_id: i32,
) -> Result<Bytes, crate::kafka_codec::EncodeError> {
    use kafka_protocol::protocol::Encodable;
    let body = unsupported_api_versions_response();
    crate::kafka_codec::encode_frame(0, correlation_id, |buf| body.encode(buf, 0)).map_err(|e| {
        crate::kafka_codec::EncodeError {
            api_key: ApiKey::ApiVersions,
            api_version: 0,
            why: e.to_string(),
        }
    })
}

impl KafkaApis {
    /// A front end over `broker`, with no topics yet (see [`load_topics`](Self::load_topics)),
    /// and the group coordinator with the offsets committed in the broker's storage.
    pub fn new(mut broker: Broker<NodeStorage>, settings: FrontEndSettings) -> KafkaApis {
        let groups = Groups::open(
            settings.group.clone(),
            broker.storage_mut(),
            settings.member_id_seed,
        );
        KafkaApis {
            broker,
            topics: TopicTable::new(),
            settings,
            groups,
            fetched: crate::metrics::FetchCounters::default(),
        }
    }

    /// Loads the topic table from the core's storage (after the core's recovery), so that
    /// topics, their partitions and configs survive a restart ([`TopicTable::load`]).
    pub fn load_topics(&mut self) -> Result<(), crate::topics::TopicTableError> {
        self.topics = TopicTable::load(&mut self.broker)?;
        Ok(())
    }

    /// Tells the core the time; logs and returns the producers whose state expired.
    pub fn advance_time(&mut self, now_ms: i64) -> Vec<ExpiredProducer> {
        let expired = self.broker.advance_time(now_ms);
        self.groups.tick(now_ms);
        for e in &expired {
            info!(
                core_partition = e.partition,
                producer_id = e.producer_id.0,
                "expired producer state"
            );
        }
        expired
    }

    /// Metadata: the broker, and the topics asked for (all topics for a null list, or an
    /// empty one in v0), creating unknown ones when allowed.
    pub fn metadata(&mut self, request: &MetadataRequest, version: i16) -> MetadataResponse {
        let auto_create =
            self.settings.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let topics = match &request.topics {
            Some(wanted) if !(wanted.is_empty() && version == 0) => wanted
                .iter()
                .map(|t| self.describe_requested(t, auto_create))
                .collect(),
            _ => self.topics.iter().map(describe).collect(),
        };
        let broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(self.settings.advertised_host.clone()))
            .with_port(i32::from(self.settings.advertised_port));
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(StrBytes::from_string(
                self.settings.cluster_id.clone(),
            )))
            .with_controller_id(BrokerId(NODE_ID))
            .with_topics(topics)
    }

    fn describe_requested(
        &mut self,
        wanted: &MetadataRequestTopic,
        auto_create: bool,
    ) -> MetadataResponseTopic {
        let Some(name) = &wanted.name else {
            // v10+: asked by id only.
            return match self.topics.by_id(wanted.topic_id) {
                Some(topic) => describe(topic),
                None => MetadataResponseTopic::default()
                    .with_topic_id(wanted.topic_id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            };
        };
        match self.topic_for(name.0.as_str(), auto_create) {
            Ok(topic) => describe(&topic),
            Err((error_code, why)) => {
                debug!(topic = name.0.as_str(), why, "refused metadata for topic");
                MetadataResponseTopic::default()
                    .with_name(Some(name.clone()))
                    .with_error_code(error_code)
            }
        }
    }

    /// The topic called `name`, created with the default partition count if it is unknown
    /// and `create` allows; else the error code and why.
    fn topic_for(&mut self, name: &str, create: bool) -> Result<Topic, (i16, String)> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(topic.clone());
        }
        if !create {
            return Err((
                ResponseError::UnknownTopicOrPartition.code(),
                "unknown topic and auto-creation is off".to_string(),
            ));
        }
        let partitions = self.settings.default_partitions;
        match self
            .topics
            .get_or_create(&mut self.broker, name, partitions)
        {
            Ok(topic) => {
                info!(
                    topic = name,
                    partitions,
                    core_partitions = ?topic.core_partitions,
                    "created topic"
                );
                Ok(topic.clone())
            }
            Err(e) => Err((e.error_code(), e.to_string())),
        }
    }

    /// InitProducerId: a fresh producer id at epoch 0 for an idempotent producer. A
    /// transactional id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), a fatal
    /// error for the client, because transactions are not modelled; an empty one with
    /// INVALID_REQUEST, as Kafka does. A producer id and epoch sent from v3 on (KIP-360) are
    /// ignored, as Kafka's coordinator ignores them without a transactional id.
    pub fn init_producer_id(&mut self, request: &InitProducerIdRequest) -> InitProducerIdResponse {
        if let Some(transactional_id) = &request.transactional_id {
            let code = if transactional_id.is_empty() {
                ResponseError::InvalidRequest.code()
            } else {
                ResponseError::TransactionalIdAuthorizationFailed.code()
            };
            info!(
                transactional_id = transactional_id.as_str(),
                "refused InitProducerId: transactions are not modelled"
            );
            return InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
        let granted = self.broker.init_producer_id();
        info!(
            producer_id = granted.producer_id.0,
            producer_epoch = granted.producer_epoch.0,
            "granted producer id"
        );
        InitProducerIdResponse::default()
            .with_error_code(granted.error_code.code())
            .with_producer_id(ProducerId(granted.producer_id.0))
            .with_producer_epoch(granted.producer_epoch.0)
    }

    /// Produce: the partitions of known topics go to the core in one
    /// [`Broker::produce_request`], the same entry point the simulator drives, so the core
    /// checks `acks` and then each batch (validation, the sequence rule, the append). A
    /// partition of an unknown topic is answered `UNKNOWN_TOPIC_OR_PARTITION` here, before
    /// `acks` is looked at, as Kafka's `KafkaApis` answers unknown topics before
    /// `ReplicaManager` checks `acks`. The core's error codes are Kafka's wire codes.
    pub fn produce(&mut self, request: &ProduceRequest, version: i16) -> ProduceResult {
        let mut core_request = idempo_protocol::ProduceRequest {
            acks: request.acks,
            timeout_ms: request.timeout_ms,
            partitions: Vec::new(),
        };
        // Per partition of the request: the core partition, or why there is none.
        let mut routed = Vec::with_capacity(request.topic_data.len());
        for topic in &request.topic_data {
            let found = self.topic_for(topic.name.0.as_str(), self.settings.auto_create_topics);
            let mut partitions = Vec::with_capacity(topic.partition_data.len());
            for data in &topic.partition_data {
                let core = found
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|t| t.core_partition(data.index).ok_or_else(no_partition))
                    .and_then(|core| zstd_allowed(version, data.records.as_ref()).map(|()| core));
                if let Ok(core) = core {
                    core_request
                        .partitions
                        .push(idempo_protocol::PartitionProduceData {
                            partition: core,
                            records: data.records.clone().unwrap_or_default(),
                        });
                }
                partitions.push(core.map(|_| ()));
            }
            routed.push(partitions);
        }
        let mut outcomes = self.broker.produce_request(&core_request).into_iter();
        let mut result = ProduceResult {
            response: ProduceResponse::default(),
            appended: 0,
            failed: 0,
        };
        for (topic, partitions) in request.topic_data.iter().zip(routed) {
            let name = topic.name.0.as_str();
            let mut partition_responses = Vec::with_capacity(partitions.len());
            for (data, core) in topic.partition_data.iter().zip(partitions) {
                let answer = match core {
                    Ok(()) => {
                        let outcome = outcomes
                            .next()
                            .expect("the core answers every partition it was given");
                        log_outcome(name, data.index, &outcome);
                        result.appended += usize::from(outcome.is_appended());
                        wire_produce_response(data.index, &outcome, version)
                    }
                    Err((code, why)) => {
                        debug!(topic = name, partition = data.index, why, "rejected batch");
                        failed_produce_response(data.index, code, why, version)
                    }
                };
                result.failed += usize::from(answer.error_code != 0);
                partition_responses.push(answer);
            }
            result.response.responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partition_responses),
            );
        }
        result
    }

    /// Fetch: per partition, the stored batches from the fetch offset, byte for byte as the
    /// core returns them, within the partition's and the request's byte limits (the first
    /// non-empty partition always gets at least one batch, as in Kafka). One pass: waiting
    /// for `min_bytes` is the server's job. Fetch sessions are not kept: the answer's
    /// session id is 0, which tells the client to send full requests.
    pub fn fetch(&self, request: &FetchRequest) -> FetchResult {
        let mut left = usize::try_from(request.max_bytes).unwrap_or(0);
        let mut record_bytes = 0;
        let mut any_error = false;
        let mut responses = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let found = self.topics.get(topic.topic.0.as_str());
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for wanted in &topic.partitions {
                let Some(core) = found.and_then(|t| t.core_partition(wanted.partition)) else {
                    any_error = true;
                    partitions.push(
                        PartitionData::default()
                            .with_partition_index(wanted.partition)
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_high_watermark(-1),
                    );
                    continue;
                };
                let max_bytes = usize::try_from(wanted.partition_max_bytes)
                    .unwrap_or(0)
                    .min(left);
                let read = self.broker.fetch(&idempo_protocol::FetchRequest::consumer(
                    core,
                    wanted.fetch_offset,
                    i32::try_from(max_bytes).unwrap_or(i32::MAX),
                ));
                let records = if record_bytes == 0 || read.records.len() <= left {
                    read.records
                } else {
                    Bytes::new()
                };
                record_bytes += records.len();
                left = left.saturating_sub(records.len());
                any_error |= read.error_code.code() != 0;
                partitions.push(
                    PartitionData::default()
                        .with_partition_index(wanted.partition)
                        .with_error_code(read.error_code.code())
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.high_watermark)
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(records)),
                );
            }
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        FetchResult {
            response: FetchResponse::default().with_responses(responses),
            record_bytes,
            any_error,
        }
    }

    /// ListOffsets: latest (-1) is the log end offset, earliest (-2) the log start offset; a
    /// timestamp finds the first batch whose max timestamp is at or after it (answered with
    /// that batch's base offset: batch, not record, granularity). Other special values get
    /// offset -1 with no error, Kafka's "no such offset".
    pub fn list_offsets(&self, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let found = self.topics.get(topic.name.0.as_str());
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let Some(core) = found.and_then(|t| t.core_partition(p.partition_index))
                        else {
                            return answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let (offset, timestamp) = self.offset_for(core, p.timestamp);
                        let answer = answer.with_offset(offset).with_timestamp(timestamp);
                        if version >= 4 {
                            answer.with_leader_epoch(LEADER_EPOCH)
                        } else {
                            answer
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// (offset, timestamp) for one ListOffsets partition query on core partition `core`.
    fn offset_for(&self, core: i32, timestamp: i64) -> (i64, i64) {
        let log_end = self.broker.log_end_offset(core).unwrap_or(-1);
        // A fetch at the log end returns no records but the log start offset.
        let log_start = self
            .broker
            .fetch(&idempo_protocol::FetchRequest::consumer(core, log_end, 0))
            .log_start_offset;
        match timestamp {
            LATEST_TIMESTAMP => (log_end, -1),
            EARLIEST_TIMESTAMP => (log_start, -1),
            t if t >= 0 => self.first_batch_at_or_after(core, log_start, log_end, t),
            _ => (-1, -1),
        }
    }

    fn first_batch_at_or_after(&self, core: i32, start: i64, end: i64, ts: i64) -> (i64, i64) {
        let mut offset = start;
        // Each step advances past at least one batch, so at most `end - start` steps.
        while offset < end {
            let read = self.broker.fetch(&idempo_protocol::FetchRequest::consumer(
                core,
                offset,
                TIMESTAMP_SEARCH_STEP_BYTES,
            ));
            let mut rest = &read.records[..];
            let before = offset;
            while let Ok(header) = idempo_protocol::BatchHeader::parse(rest) {
                if header.max_timestamp >= ts && header.last_offset() >= offset {
                    return (header.base_offset.max(offset), header.max_timestamp);
                }
                offset = header.last_offset() + 1;
                let size = usize::try_from(header.total_size()).unwrap_or(usize::MAX);
                let Some(next) = rest.get(size..) else { break };
                rest = next;
            }
            if offset == before {
                break; // nothing readable: give up rather than loop
            }
        }
        (-1, -1)
    }
}

/// Kafka's `ProduceRequest.validateRecords`: zstd batches need Produce v7 or later (KIP-110),
/// else `UNSUPPORTED_COMPRESSION_TYPE` for that partition.
pub(crate) fn zstd_allowed(version: i16, records: Option<&Bytes>) -> Result<(), (i16, String)> {
    let codec = records
        .and_then(|r| idempo_protocol::BatchHeader::parse(r).ok())
        .map(|h| h.compression());
    if version < 7 && codec == Some(idempo_protocol::Compression::Zstd.id()) {
        return Err((
            ResponseError::UnsupportedCompressionType.code(),
            format!("zstd batches need Produce v7 or later, not v{version}"),
        ));
    }
    Ok(())
}

fn no_partition() -> (i16, String) {
    (
        ResponseError::UnknownTopicOrPartition.code(),
        "the topic has no such partition".to_string(),
    )
}

fn describe(topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_partitions(partitions)
}

/// The core's answer on the wire. The core's error codes are Kafka's numbers; from v8 on the
/// explanation of a refusal travels as the partition's error message.
fn wire_produce_response(
    partition: i32,
    outcome: &ProduceOutcome,
    version: i16,
) -> PartitionProduceResponse {
    let core = outcome.response;
    let answer = PartitionProduceResponse::default()
        .with_index(partition)
        .with_error_code(core.error_code.code())
        .with_base_offset(core.base_offset)
        .with_log_append_time_ms(core.log_append_time_ms)
        .with_log_start_offset(core.log_start_offset);
    if version >= 8 && core.error_code.code() != 0 {
        answer.with_error_message(Some(StrBytes::from_string(outcome.to_string())))
    } else {
        answer
    }
}

fn failed_produce_response(
    partition: i32,
    error_code: i16,
    why: String,
    version: i16,
) -> PartitionProduceResponse {
    let answer = PartitionProduceResponse::default()
        .with_index(partition)
        .with_error_code(error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    if version >= 8 {
        answer.with_error_message(Some(StrBytes::from_string(why)))
    } else {
        answer
    }
}

fn log_outcome(topic: &str, partition: i32, outcome: &ProduceOutcome) {
    let message = match outcome.outcome_name() {
        "appended" => "appended batch",
        "duplicate" => "answered duplicate with the original offsets",
        _ => "rejected batch",
    };
    debug!(
        topic,
        partition,
        producer_id = outcome.producer_id.0,
        producer_epoch = outcome.producer_epoch.0,
        base_sequence = outcome.first_sequence.0,
        records = outcome.record_count,
        verdict = %outcome,
        "{message}"
    );
}
