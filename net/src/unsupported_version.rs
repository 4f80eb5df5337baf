//! The answer to a served API asked for at a version we do not serve: UNSUPPORTED_VERSION
//! (35), in the request's own header format, instead of a closed connection.
//!
//! What Kafka does, from its source (`SocketServer`, `RequestContext`, `KafkaApis`):
//!
//! | request                                   | Kafka                                                       |
//! |-------------------------------------------|-------------------------------------------------------------|
//! | ApiVersions, any unknown version          | KIP-511: error 35 in a v0 body with header v0, listing its ApiVersions range (`RequestContext.parseRequest`) |
//! | a version in Kafka's code but refused      | `request.getErrorResponse(UNSUPPORTED_VERSION)` at the *requested* version: every topic and partition of the request answered with 35, or the top-level error code (e.g. `KafkaApis.handleOffsetCommitRequest`) |
//! | a version outside Kafka's code            | `SocketServer.parseRequestHeader` throws `InvalidRequestException`: the connection is closed |
//!
//! idempo serves fewer versions than Kafka has code for (Produce 3–11 of 3–13, Fetch 4–12 of
//! 4–18, ...). For a version `kafka-protocol` knows (the schemas of Kafka 4) we answer as
//! Kafka's `getErrorResponse` does: the request is decoded at its own version and answered
//! at that version, every partition (or the top-level error code, where the schema has one)
//! saying 35. For a version no schema describes (Produce v99, Fetch v3, removed in Kafka 4 by
//! KIP-896) Kafka closes the connection; we answer instead, as the issue asks, because a
//! closed connection tells a client nothing and makes it reconnect and retry:
//!
//! - the response header follows the request's header: request header v2 (a flexible
//!   version) gets response header v1 (with tagged fields), request header v1 gets v0, so a
//!   client finds its correlation id where it looks for it;
//! - the body uses the nearest version we serve (v11 for Produce v99, v4 for Fetch v3), the
//!   schema closest to the one the client reads, and the request's body is read at that
//!   version too when it can be (its topics and partitions are then answered one by one);
//!   when it cannot, the answer lists nothing and carries 35 only where the schema has a
//!   top-level error code.
//!
//! The consumer-group and admin APIs are answered with their top-level error code where the
//! schema has one (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, FindCoordinator
//! v0–3, OffsetFetch v2–7) and otherwise with an empty answer: their per-item errors would
//! need the request's items, and no preflight walk reads those requests yet, so they are not
//! decoded. An API not listed in [`error_response`] is still closed, with a log line.

use crate::kafka_codec::{self, EncodeError, supported_versions};
use crate::preflight;
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsResponse, CreateTopicsResponse, DeleteRecordsResponse,
    DeleteTopicsResponse, DescribeConfigsResponse, DescribeGroupsResponse, FetchRequest,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, IncrementalAlterConfigsResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitResponse, OffsetFetchResponse, ProduceRequest, ProduceResponse, SyncGroupResponse,
    fetch_response::{FetchableTopicResponse, PartitionData},
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    metadata_response::MetadataResponseTopic,
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
};
use kafka_protocol::protocol::{Decodable, Encodable};

/// UNSUPPORTED_VERSION's wire code.
const UNSUPPORTED_VERSION: i16 = 35;

/// A request of a served API at a version not served, with what is needed to answer it.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedVersion {
    /// The api.
    pub api_key: ApiKey,
    /// The version asked for.
    pub api_version: i16,
    /// To echo.
    pub correlation_id: i32,
    /// For the log.
    pub client_id: Option<String>,
    /// The request header version the request was read with (2 for a flexible version).
    pub request_header_version: i16,
    /// The request body, after its header.
    pub body: Bytes,
}

impl UnsupportedVersion {
    /// The version whose schema the answer's body uses: the one asked for when
    /// `kafka-protocol` has its schema, else the nearest version served.
    pub fn answer_version(&self) -> i16 {
        let known = self.api_key.valid_versions();
        if (known.min..=known.max).contains(&self.api_version) {
            return self.api_version;
        }
        let (min, max) = supported_versions(self.api_key).unwrap_or((known.min, known.max));
        self.api_version.clamp(min, max)
    }

    /// The response header version: v1 (tagged fields) for a request header v2, else v0.
    pub fn response_header_version(&self) -> i16 {
        i16::from(self.request_header_version >= 2)
    }
}

/// The whole answer frame (length prefix, response header, body), or `None` for an API
/// whose answer this module cannot build (the connection is then closed, as before).
pub fn answer(request: &UnsupportedVersion) -> Option<Result<Bytes, EncodeError>> {
    let version = request.answer_version();
    let body = error_response(request.api_key, version, &request.body)?;
    let frame = kafka_codec::encode_frame(
        request.response_header_version(),
        request.correlation_id,
        |buf| body(buf),
    );
    Some(frame.map_err(|e| EncodeError {
        api_key: request.api_key,
        api_version: version,
        why: e.to_string(),
    }))
}

/// An encoder of a response body at one version.
type BodyEncoder = Box<dyn FnOnce(&mut BytesMut) -> anyhow::Result<()>>;

/// Kafka's `getErrorResponse(UNSUPPORTED_VERSION)` for `api` at `version`, from the request
/// `body` read at that version (when it reads; its preflight first, so that no count in it
/// makes the decoder allocate). `None` for an API without one here.
pub fn error_response(api: ApiKey, version: i16, body: &Bytes) -> Option<BodyEncoder> {
    let read = |body: &Bytes| -> Option<Bytes> {
        preflight::check(api, version, body).ok()?;
        Some(body.clone())
    };
    let encoder: BodyEncoder = match api {
        ApiKey::Produce => {
            let request = read(body).and_then(|mut b| ProduceRequest::decode(&mut b, version).ok());
            encode(produce(request.unwrap_or_default(), version), version)
        }
        ApiKey::Fetch => {
            let request = read(body).and_then(|mut b| FetchRequest::decode(&mut b, version).ok());
            encode(fetch(request.unwrap_or_default(), version), version)
        }
        ApiKey::ListOffsets => {
            let request =
                read(body).and_then(|mut b| ListOffsetsRequest::decode(&mut b, version).ok());
            encode(list_offsets(request.unwrap_or_default()), version)
        }
        ApiKey::Metadata => {
            let request =
                read(body).and_then(|mut b| MetadataRequest::decode(&mut b, version).ok());
            encode(metadata(request.unwrap_or_default(), version), version)
        }
        ApiKey::InitProducerId => encode(
            InitProducerIdResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
            version,
        ),
        ApiKey::JoinGroup => encode(
            JoinGroupResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        ApiKey::SyncGroup => encode(
            SyncGroupResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        ApiKey::Heartbeat => encode(
            HeartbeatResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        ApiKey::LeaveGroup => encode(
            LeaveGroupResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        ApiKey::ListGroups => encode(
            ListGroupsResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        // v4+ answers per coordinator key only.
        ApiKey::FindCoordinator if version <= 3 => encode(
            FindCoordinatorResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_node_id((-1).into())
                .with_port(-1),
            version,
        ),
        ApiKey::FindCoordinator => encode(FindCoordinatorResponse::default(), version),
        // The top-level error code is v2–7; v0–1 and v8+ answer per partition or group.
        ApiKey::OffsetFetch if (2..=7).contains(&version) => encode(
            OffsetFetchResponse::default().with_error_code(UNSUPPORTED_VERSION),
            version,
        ),
        ApiKey::OffsetFetch => encode(OffsetFetchResponse::default(), version),
        // Answers whose errors are per item only, in requests no preflight walk reads yet:
        // answered with no items (the client fails the request by its correlation id
        // instead of reconnecting).
        ApiKey::OffsetCommit => encode(OffsetCommitResponse::default(), version),
        ApiKey::DescribeGroups => encode(DescribeGroupsResponse::default(), version),
        ApiKey::CreateTopics => encode(CreateTopicsResponse::default(), version),
        ApiKey::DeleteTopics => encode(DeleteTopicsResponse::default(), version),
        ApiKey::CreatePartitions => encode(CreatePartitionsResponse::default(), version),
        ApiKey::DescribeConfigs => encode(DescribeConfigsResponse::default(), version),
        ApiKey::IncrementalAlterConfigs => {
            encode(IncrementalAlterConfigsResponse::default(), version)
        }
        ApiKey::DeleteRecords => encode(DeleteRecordsResponse::default(), version),
        _ => return None,
    };
    debug_assert_eq!(
        ResponseError::UnsupportedVersion.code(),
        UNSUPPORTED_VERSION
    );
    Some(encoder)
}

fn encode<R: Encodable + 'static>(response: R, version: i16) -> BodyEncoder {
    Box::new(move |buf: &mut BytesMut| response.encode(buf, version))
}

/// Every partition of the request answered 35 (Kafka's `ProduceRequest.getErrorResponse`).
fn produce(request: ProduceRequest, version: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(UNSUPPORTED_VERSION)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            let answer = TopicProduceResponse::default().with_partition_responses(partitions);
            if version <= 12 {
                answer.with_name(topic.name)
            } else {
                answer.with_topic_id(topic.topic_id)
            }
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// The top-level error (v7+) and every partition answered 35, high watermark -1 (Kafka's
/// `FetchRequest.getErrorResponse`).
fn fetch(request: FetchRequest, version: i16) -> FetchResponse {
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(UNSUPPORTED_VERSION)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            let answer = FetchableTopicResponse::default().with_partitions(partitions);
            if version <= 12 {
                answer.with_topic(topic.topic)
            } else {
                answer.with_topic_id(topic.topic_id)
            }
        })
        .collect();
    FetchResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_responses(responses)
}

/// Every partition answered 35 with offset and timestamp -1.
fn list_offsets(request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(UNSUPPORTED_VERSION)
                        .with_timestamp(-1)
                        .with_offset(-1)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Every topic asked for answered 35, and the top-level error (v13+).
fn metadata(request: MetadataRequest, version: i16) -> MetadataResponse {
    let topics = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|topic| {
            let answer = MetadataResponseTopic::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_name(topic.name);
            if version >= 10 {
                answer.with_topic_id(topic.topic_id)
            } else {
                answer
            }
        })
        .collect();
    MetadataResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsupported(api_key: ApiKey, api_version: i16) -> UnsupportedVersion {
        UnsupportedVersion {
            api_key,
            api_version,
            correlation_id: 7,
            client_id: None,
            request_header_version: api_key.request_header_version(api_version),
            body: Bytes::new(),
        }
    }

    #[test]
    fn a_version_with_a_schema_is_answered_at_that_version() {
        assert_eq!(unsupported(ApiKey::Produce, 12).answer_version(), 12);
        assert_eq!(unsupported(ApiKey::Fetch, 13).answer_version(), 13);
    }

    #[test]
    fn a_version_without_a_schema_is_answered_at_the_nearest_served_one() {
        assert_eq!(unsupported(ApiKey::Produce, 99).answer_version(), 11);
        assert_eq!(unsupported(ApiKey::Fetch, 3).answer_version(), 4);
        assert_eq!(unsupported(ApiKey::Fetch, -1).answer_version(), 4);
    }

    #[test]
    fn the_response_header_follows_the_request_header() {
        assert_eq!(
            unsupported(ApiKey::Produce, 99).response_header_version(),
            1
        );
        assert_eq!(unsupported(ApiKey::Fetch, 3).response_header_version(), 0);
    }

    #[test]
    fn an_unreadable_body_is_still_answered() {
        let mut request = unsupported(ApiKey::Fetch, 13);
        request.body = Bytes::from_static(b"\xff\xff\xff\xff garbage");
        let frame = answer(&request)
            .expect("fetch has an answer")
            .expect("encodes");
        let mut rest = frame.slice(4..);
        let header = kafka_protocol::messages::ResponseHeader::decode(&mut rest, 1).expect("v1");
        assert_eq!(header.correlation_id, 7);
        let body = FetchResponse::decode(&mut rest, 13).expect("a v13 body");
        assert_eq!(body.error_code, UNSUPPORTED_VERSION);
        assert!(body.responses.is_empty());
    }

    /// Property: every API with an answer here encodes it at every version
    /// `kafka-protocol` has a schema for (a field set that a version cannot carry would
    /// make the encoder refuse it), from an empty body.
    #[test]
    fn every_answer_encodes_at_every_version_with_a_schema() {
        for api in ApiKey::iter() {
            let known = api.valid_versions();
            for version in known.min..=known.max {
                let Some(encoder) = error_response(api, version, &Bytes::new()) else {
                    continue;
                };
                let mut buf = BytesMut::new();
                encoder(&mut buf).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
            }
        }
    }

    #[test]
    fn an_api_without_a_known_error_answer_has_none() {
        assert!(error_response(ApiKey::DescribeAcls, 0, &Bytes::new()).is_none());
    }
}
