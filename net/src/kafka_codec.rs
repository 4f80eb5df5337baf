//! Kafka's framing and request/response headers, with `kafka-protocol` doing the field work.
//!
//! Every Kafka request and response travels as a *size-delimited frame*: a 4-byte big-endian
//! length, then that many bytes. A request frame holds a request header (api key, api
//! version, correlation id, client id; tagged fields from header v2 on) and the request body;
//! a response frame holds a response header (the correlation id; tagged fields from header v1
//! on) and the body. Which header version goes with which request is fixed per api version
//! (the "flexible" versions use the newer headers), except that an ApiVersions *response*
//! always uses header v0, so that a client can read it before it knows what the broker speaks.
//!
//! Reading is check-then-parse, as in mini-redis: [`check_frame`] looks at the bytes received
//! so far and says whether a whole frame is there; an incomplete frame is a normal outcome,
//! not an error. Decoding ([`decode_request`]) then happens in three steps, each of which
//! can refuse the frame without touching the broker:
//!
//! 1. the first 8 bytes name the api key, version and correlation id; an unknown api key or
//!    an api we do not serve is refused here; a version we do not serve of an api we serve
//!    is answered UNSUPPORTED_VERSION ([`Decoded::UnsupportedVersion`]; ApiVersions gets
//!    Kafka's KIP-511 answer, see [`Decoded::UnsupportedApiVersions`]);
//! 2. [`preflight`] walks the body and refuses impossible array counts
//!    before `kafka-protocol` allocates for them;
//! 3. `kafka-protocol` decodes the header and the body.

use crate::preflight;
use crate::unsupported_version::UnsupportedVersion;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, ElectLeadersRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::fmt;

/// Default limit on one request frame: Kafka's `socket.request.max.bytes` (100 MiB), so that
/// any request a real Kafka broker accepts is accepted here too. Memory is only committed as
/// bytes actually arrive, so announcing a large frame costs a client nothing it does not send.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The APIs served, with the versions advertised in ApiVersions: exactly those implemented.
///
/// - Produce stops at v11 and Fetch at v12: later versions name topics by id only.
/// - Fetch starts at v4 because librdkafka writes RecordBatch v2 only to brokers that
///   advertise Produce >= 3 *and* Fetch >= 4.
/// - ListOffsets starts at v1, the oldest version `kafka-protocol` knows.
/// - The admin APIs (`admin`) start at the oldest version `kafka-protocol` knows.
/// - The consumer-group APIs ([`crate::groups`]) are served at every version `kafka-protocol`
///   knows, so that each client finds its own; FindCoordinator v4+ is the batched form,
///   OffsetFetch v8+ the multi-group form, OffsetCommit starts at v2 (the oldest
///   `kafka-protocol` knows; Kafka 4 starts there too).
pub const SUPPORTED_APIS: [(ApiKey, i16, i16); 23] = [
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // Consumer groups (groups.rs).
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    // Preferred (and unclean) elections: a cluster's controller, or ELECTION_NOT_NEEDED.
    (ApiKey::ElectLeaders, 0, 2),
];

/// The advertised version range of `api`, if it is served.
pub fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// What the bytes received so far hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// Not a whole frame yet: read more.
    Incomplete {
        /// Total bytes (prefix included) needed, when the prefix has arrived.
        needed: Option<usize>,
    },
    /// A whole frame: `frame_bytes` bytes of request after the 4-byte prefix.
    Complete {
        /// Length of the request, without the prefix.
        frame_bytes: usize,
    },
    /// The prefix announces more than the limit (or a negative size): Kafka closes the
    /// connection without an answer, and so do we.
    TooLarge {
        /// The announced size.
        announced: i32,
    },
}

/// Looks at the start of `buf` and says whether a whole frame of at most `max_frame_bytes`
/// has arrived.
pub fn check_frame(buf: &[u8], max_frame_bytes: usize) -> FrameCheck {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return FrameCheck::Incomplete { needed: None };
    };
    let announced = i32::from_be_bytes(*prefix);
    let Ok(frame_bytes) = usize::try_from(announced) else {
        return FrameCheck::TooLarge { announced };
    };
    if frame_bytes > max_frame_bytes {
        return FrameCheck::TooLarge { announced };
    }
    let needed = LENGTH_PREFIX_BYTES + frame_bytes;
    if buf.len() < needed {
        FrameCheck::Incomplete {
            needed: Some(needed),
        }
    } else {
        FrameCheck::Complete { frame_bytes }
    }
}

/// A request body, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestBody {
    /// ApiVersions.
    ApiVersions(ApiVersionsRequest),
    /// Metadata.
    Metadata(MetadataRequest),
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// Produce.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// ListOffsets.
    ListOffsets(ListOffsetsRequest),
    /// CreateTopics (`admin`).
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics (`admin`).
    DeleteTopics(DeleteTopicsRequest),
    /// DeleteRecords (`admin`).
    DeleteRecords(DeleteRecordsRequest),
    /// DescribeConfigs (`admin`).
    DescribeConfigs(DescribeConfigsRequest),
    /// CreatePartitions (`admin`).
    CreatePartitions(CreatePartitionsRequest),
    /// IncrementalAlterConfigs (`admin`).
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    /// ElectLeaders (KIP-460): a cluster's controller elects; one broker answers
    /// ELECTION_NOT_NEEDED.
    ElectLeaders(ElectLeadersRequest),
    /// One of the consumer-group APIs.
    Group(crate::groups::GroupRequest),
}

/// A decoded request frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A request of a served API at a served version.
    Request {
        /// The api key.
        api_key: ApiKey,
        /// The header (api version, correlation id, client id).
        header: RequestHeader,
        /// The body (boxed: bodies are large, the other variant is small).
        body: Box<RequestBody>,
    },
    /// ApiVersions at a version we do not serve (kafka-python opens with v4). Kafka answers
    /// UNSUPPORTED_VERSION in the v0 body format with header v0, listing its ApiVersions
    /// range, and the client retries at a version both know (KIP-511).
    UnsupportedApiVersions {
        /// The version asked for.
        api_version: i16,
        /// To echo.
        correlation_id: i32,
        /// For the log, when the header could be read.
        client_id: Option<String>,
    },
    /// Another served API at a version we do not serve: answered UNSUPPORTED_VERSION in
    /// the request's own header format, see [`crate::unsupported_version`].
    UnsupportedVersion(UnsupportedVersion),
}

/// Why a frame could not be served. Kafka closes the connection for each of these, since it
/// cannot know how to answer; so do we, after a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Shorter than api key, api version and correlation id.
    TooShort {
        /// Frame length.
        frame_bytes: usize,
    },
    /// An api key Kafka does not define.
    UnknownApiKey {
        /// The key.
        api_key: i16,
        /// Its correlation id.
        correlation_id: i32,
    },
    /// An api key Kafka defines but this broker does not serve.
    UnsupportedApi {
        /// The key.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
        /// Its correlation id.
        correlation_id: i32,
    },
    /// The header or body does not decode.
    Malformed {
        /// The key.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// Its correlation id.
        correlation_id: i32,
        /// What went wrong, in the decoder's words.
        why: String,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TooShort { frame_bytes } => write!(
                f,
                "a {frame_bytes}-byte frame cannot hold a request header (8 bytes at least)"
            ),
            CodecError::UnknownApiKey {
                api_key,
                correlation_id,
            } => write!(
                f,
                "unknown api key {api_key} (correlation id {correlation_id})"
            ),
            CodecError::UnsupportedApi {
                api_key,
                api_version,
                correlation_id,
            } => write!(
                f,
                "{api_key:?} v{api_version} is not served (correlation id {correlation_id})"
            ),
            CodecError::Malformed {
                api_key,
                api_version,
                correlation_id,
                why,
            } => write!(
                f,
                "malformed {api_key:?} v{api_version} request (correlation id {correlation_id}): {why}"
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// Decodes one request frame (without its length prefix).
pub fn decode_request(frame: Bytes) -> Result<Decoded, CodecError> {
    let Some(fixed) = frame.first_chunk::<8>() else {
        return Err(CodecError::TooShort {
            frame_bytes: frame.len(),
        });
    };
    let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Err(CodecError::UnknownApiKey {
            api_key: raw_key,
            correlation_id,
        });
    };
    let served = supported_versions(api_key);
    let in_range = served.is_some_and(|(min, max)| (min..=max).contains(&api_version));
    if !in_range {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions {
                api_version,
                correlation_id,
                client_id: client_id_of_unsupported(&frame, api_version),
            });
        }
        if served.is_some() {
            return unsupported_version(api_key, api_version, correlation_id, frame);
        }
        return Err(CodecError::UnsupportedApi {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |why: String| CodecError::Malformed {
        api_key,
        api_version,
        correlation_id,
        why,
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(api_version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    preflight::check(api_key, api_version, &buf).map_err(|e| malformed(e.to_string()))?;
    let body = decode_body(api_key, api_version, &mut buf).map_err(|e| malformed(e.to_string()))?;
    Ok(Decoded::Request {
        api_key,
        header,
        body: Box::new(body),
    })
}

/// A served API at a version not served: its header read, to be answered UNSUPPORTED_VERSION
/// ([`crate::unsupported_version`]).
fn unsupported_version(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<Decoded, CodecError> {
    let request_header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, request_header_version).map_err(|e| {
        CodecError::Malformed {
            api_key,
            api_version,
            correlation_id,
            why: format!("header: {e}"),
        }
    })?;
    Ok(Decoded::UnsupportedVersion(UnsupportedVersion {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        request_header_version,
        body: frame,
    }))
}

fn decode_body(api_key: ApiKey, version: i16, buf: &mut Bytes) -> anyhow::Result<RequestBody> {
    Ok(match api_key {
        ApiKey::ApiVersions => RequestBody::ApiVersions(ApiVersionsRequest::decode(buf, version)?),
        ApiKey::Metadata => RequestBody::Metadata(MetadataRequest::decode(buf, version)?),
        ApiKey::InitProducerId => {
            RequestBody::InitProducerId(InitProducerIdRequest::decode(buf, version)?)
        }
        ApiKey::Produce => RequestBody::Produce(ProduceRequest::decode(buf, version)?),
        ApiKey::Fetch => RequestBody::Fetch(FetchRequest::decode(buf, version)?),
        ApiKey::ListOffsets => RequestBody::ListOffsets(ListOffsetsRequest::decode(buf, version)?),
        ApiKey::CreateTopics => {
            RequestBody::CreateTopics(CreateTopicsRequest::decode(buf, version)?)
        }
        ApiKey::DeleteTopics => {
            RequestBody::DeleteTopics(DeleteTopicsRequest::decode(buf, version)?)
        }
        ApiKey::DeleteRecords => {
            RequestBody::DeleteRecords(DeleteRecordsRequest::decode(buf, version)?)
        }
        ApiKey::DescribeConfigs => {
            RequestBody::DescribeConfigs(DescribeConfigsRequest::decode(buf, version)?)
        }
        ApiKey::CreatePartitions => {
            RequestBody::CreatePartitions(CreatePartitionsRequest::decode(buf, version)?)
        }
        ApiKey::IncrementalAlterConfigs => RequestBody::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::decode(buf, version)?,
        ),
        ApiKey::ElectLeaders => {
            RequestBody::ElectLeaders(ElectLeadersRequest::decode(buf, version)?)
        }
        ApiKey::FindCoordinator
        | ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::OffsetCommit
        | ApiKey::OffsetFetch
        | ApiKey::ListGroups
        | ApiKey::DescribeGroups
        | ApiKey::DeleteGroups => {
            RequestBody::Group(crate::groups::GroupRequest::decode(api_key, version, buf)?)
        }
        other => unreachable!("{other:?} passed the SUPPORTED_APIS check but has no decoder"),
    })
}

/// The client id of an ApiVersions request at a version we do not serve, for the log. Its
/// header is v2 from ApiVersions v3 on (a newer version keeps the newest header, as Kafka
/// assumes); the client id is a plain nullable string in every header version.
fn client_id_of_unsupported(frame: &Bytes, api_version: i16) -> Option<String> {
    let header_version = if api_version >= 3 { 2 } else { 1 };
    let mut buf = frame.clone();
    RequestHeader::decode(&mut buf, header_version)
        .ok()
        .and_then(|h| h.client_id.map(|s| s.to_string()))
}

/// Encodes a response frame: length prefix, response header, body.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let header_version = api_key.response_header_version(api_version);
    encode_frame(header_version, correlation_id, |buf| {
        body.encode(buf, api_version)
    })
    .map_err(|e| EncodeError {
        api_key,
        api_version,
        why: e.to_string(),
    })
}

/// Encodes a body with an explicit response header version (the KIP-511 answer uses header
/// v0 and body v0 whatever version was asked for).
pub fn encode_frame(
    header_version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // patched below, once the length is known
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    body(&mut buf)?;
    let frame_bytes = i32::try_from(buf.len() - LENGTH_PREFIX_BYTES)
        .map_err(|_| anyhow::anyhow!("response larger than 2 GiB"))?;
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&frame_bytes.to_be_bytes());
    Ok(buf.freeze())
}

/// A response this broker built but `kafka-protocol` refused to encode: our bug (a field set
/// that the version cannot carry), logged and answered by closing the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// The api.
    pub api_key: ApiKey,
    /// The version.
    pub api_version: i16,
    /// The encoder's words.
    pub why: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot encode the {:?} v{} response: {}",
            self.api_key, self.api_version, self.why
        )
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_incomplete_until_all_its_bytes_arrive() {
        assert_eq!(
            check_frame(&[0, 0], 100),
            FrameCheck::Incomplete { needed: None }
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 3, 1], 100),
            FrameCheck::Incomplete { needed: Some(7) }
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 3, 1, 2, 3, 9], 100),
            FrameCheck::Complete { frame_bytes: 3 }
        );
    }

    #[test]
    fn an_oversized_or_negative_frame_is_refused_before_it_arrives() {
        assert_eq!(
            check_frame(&[0, 0, 1, 0], 255),
            FrameCheck::TooLarge { announced: 256 }
        );
        assert_eq!(
            check_frame(&[0xff, 0xff, 0xff, 0xff], 255),
            FrameCheck::TooLarge { announced: -1 }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for frame in [
            &b""[..],
            &b"\x00\x00"[..],
            &b"\x7f\x7f\x00\x00\x00\x00\x00\x01"[..],
            &b"\x00\x03\x00\x01\x00\x00\x00\x01\xff"[..],
            &b"\x00\x00\x00\x07\x00\x00\x00\x01\x00\x03abc\xff\xff\xff\xff"[..],
        ] {
            assert!(decode_request(Bytes::copy_from_slice(frame)).is_err());
        }
    }
}
