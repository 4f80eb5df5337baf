//! A Kafka client at the edge: idempo's sans-IO [`Producer`] driven over TCP against any
//! Kafka-compatible broker or cluster, and a small Fetch-based [`KafkaReader`] to read back
//! what it wrote.
//!
//! # How the sans-IO producer is driven
//!
//! [`Producer`] owns every idempotence rule, every routing rule and no I/O: it is handed
//! batches, answers and the time, and it hands back requests, each for a broker (node id),
//! and delivery reports. [`KafkaProducer`] is the edge that gives it sockets and a clock. One
//! tokio task, the *driver*, owns the producer and runs one loop:
//!
//! ```text
//! wait for: a command (send / flush / close) ─┐
//!           a frame, a close or the end of a  │   select!
//!           handshake, from any connection    │
//!           producer.next_wakeup_ms()         ┘
//! then:     producer.on_timeout(now)          a request past request_timeout_ms? close that
//!                                             broker's connection (Kafka's NetworkClient does)
//!           while producer.poll_outgoing(now) (node, idempo RequestFrame) ─▶ Kafka request
//!                                             ─▶ that node's connection (made if needed)
//!           while producer.poll_delivery()    complete the caller's Delivery future
//! ```
//!
//! The producer's requests are idempo's own frames ([`idempo_protocol::Request`]); the driver
//! translates them, and the answers, at the edge:
//!
//! | idempo frame            | Kafka request                         | Kafka answer → idempo frame |
//! |-------------------------|---------------------------------------|-----------------------------|
//! | `Metadata`              | Metadata v1–12 for the topic, never creating it | live broker ids, and per partition: error code, leader, leader epoch (v7+), replicas, ISR; the brokers' addresses stay with the driver |
//! | `InitProducerId`        | InitProducerId v0–4, null transactional id | error code, producer id, epoch |
//! | `Produce` (one RecordBatch v2 per partition) | Produce v3–11: the topic, each partition's batch bytes unchanged | per partition: error code, base offset, log append time, log start offset |
//!
//! The producer's correlation ids are its own; the wire carries the driver's, and a FIFO of
//! requests awaiting an answer on each connection maps one to the other. Error codes are
//! Kafka's numbers, handed to the producer unchanged ([`error_code_from_kafka`]).
//!
//! Time is real: the producer is told `now_ms` from a monotonic clock anchored at the wall
//! clock when the client started (so batch timestamps are Unix milliseconds and never go
//! backwards), and the driver sleeps with `tokio::time` until `next_wakeup_ms()`.
//!
//! # Routing: each partition to its leader, one connection per broker
//!
//! The producer runs with [`ProducerConfig::cluster_routing`] on, as Kafka's `Sender` over
//! its `NetworkClient`: it asks for Metadata first, then sends each partition's batches to
//! the partition's leader, one Produce request per broker holding at most one batch of each
//! partition that broker leads. The client makes no routing decision of its own: it keeps a
//! connection per node id (made when the producer first hands out a request for it, at the
//! address the last Metadata answer gave), moves the bytes, and tells the producer what
//! happened. Which answers ask for fresh Metadata and how batches are retried is the
//! producer's rule (its module essay, "Routing in a cluster"):
//!
//! | what happens                                       | the client tells the producer | the producer |
//! |----------------------------------------------------|-------------------------------|--------------|
//! | `NOT_LEADER_OR_FOLLOWER`, `FENCED_LEADER_EPOCH` (and `LEADER_NOT_AVAILABLE`, `KAFKA_STORAGE_ERROR`, `NETWORK_EXCEPTION`) on a partition | the Produce answer | retries the batch with the same producer id, epoch and sequence; asks for Metadata |
//! | `UNKNOWN_LEADER_EPOCH`                             | the Produce answer            | retries the batch; no refresh (Kafka's `UnknownLeaderEpochException` is not an `InvalidMetadataException`: the broker is behind the client) |
//! | a connection refused, a failed handshake, a connection that breaks, a frame that does not decode | `on_node_disconnected(node)` | fails every request to that broker, oldest first (outcome unknown), retries their batches with the same sequences, leaves the broker alone for `reconnect_backoff_ms`, asks for Metadata |
//! | a request passes `request_timeout_ms`              | (the producer's own `on_timeout`) | the same for that broker; the client closes the socket so no late answer arrives |
//! | a Metadata answer                                  | the answer                    | moves partitions to their new leaders (an older leader epoch is ignored, KIP-320); a retry goes to a new leader at once (KIP-951) |
//!
//! Because a retry carries the same producer id, epoch and sequence whichever broker it goes
//! to, a batch the old leader appended and replicated before it died is answered by the new
//! leader as a duplicate, with its original offset, and one it did not is appended now.
//!
//! # One connection, answered in order
//!
//! Kafka answers the requests of one connection in the order they were sent, and clients
//! rely on it. Each frame that arrives on a connection answers the oldest request awaiting
//! one there, and its correlation id must match, or the connection is judged broken. A
//! request the producer hands out for a broker whose connection is still being made waits
//! for it (it needs the negotiated versions) and is written once the handshake is done. A new
//! connection starts with ApiVersions, as every Kafka client does, and uses the highest
//! version of each API both sides speak.
//!
//! # Bootstrap
//!
//! [`KafkaProducer::connect`] asks the first bootstrap address that answers for ApiVersions
//! and Metadata of the topic (creating it when the broker auto-creates topics;
//! `LEADER_NOT_AVAILABLE` and `UNKNOWN_TOPIC_OR_PARTITION` are retried until
//! `metadata_timeout_ms`), learns the partition count, every broker's address and each
//! partition's leader, and starts the driver with those brokers as the producer's bootstrap
//! nodes. A bootstrap connection that breaks or times out after its handshake is opened
//! again, until `metadata_timeout_ms` (as Kafka's client retries metadata until
//! `max.block.ms`); a bootstrap that no address accepts fails at once.
//!
//! # Differences from Kafka's Java client
//!
//! - **One topic per producer**, and the caller chooses the partition and the batch: one
//!   [`KafkaProducer::send`] is one RecordBatch (no `linger.ms`, `batch.size`, partitioner or
//!   compression), as in the sans-IO producer.
//! - **Memory is bounded in batches** (`max_queued_batches`, where `send` waits), not in
//!   bytes (`buffer.memory`).
//! - **Fixed reconnect backoff**: a broker whose connection failed is left alone for the
//!   producer's `reconnect_backoff_ms` (Kafka's `reconnect.backoff.ms`, 50), with no doubling
//!   up to `reconnect.backoff.max.ms` and no jitter; no SASL, TLS, or `client.dns.lookup`.
//! - The connection is closed on a request timeout, as in Kafka; but there is no separate
//!   `connections.max.idle.ms`: an idle connection stays open.
//! - No re-bootstrap: once Metadata has named the brokers, the bootstrap list is not asked
//!   again (the producer's Metadata goes to the least loaded known broker).

use crate::frames::{self, ReadEnd};
use crate::kafka_codec::LENGTH_PREFIX_BYTES;
use bytes::{BufMut, Bytes, BytesMut};
pub use idempo_producer::{
    ConfigError, Delivered, DeliveryError, DeliveryReport, FailureReason, ProducerConfig,
    ProducerStats, RoutingStats,
};
use idempo_producer::{Outgoing, Producer};
use idempo_protocol::{
    ErrorCode, InitProducerIdResponse, MetadataResponse as IdempoMetadataResponse,
    PartitionMetadata, PartitionProduceResponse, ProduceResponse, ProducerEpoch, ProducerId,
    Record, Request as IdempoRequest, RequestFrame, Response as IdempoResponse, ResponseFrame,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, InitProducerIdRequest, MetadataRequest, MetadataResponse,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
    api_versions_response::ApiVersion,
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub mod reader;
pub use reader::KafkaReader;

/// The APIs this client speaks, with the versions it can use; each connection uses the
/// highest version in common with the broker.
///
/// - Produce and Fetch stop where Kafka starts naming topics by id only (Produce v13,
///   Fetch v13); Produce starts at v3, the first that carries RecordBatch v2.
/// - Fetch starts at v4, the first with the high watermark *and* the last stable offset
///   librdkafka requires for RecordBatch v2.
/// - Metadata starts at v1 (a null topic list means "all" from v1 on; we always name ours).
pub const CLIENT_APIS: [(ApiKey, i16, i16); 6] = [
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
];

/// ListOffsets' timestamp asking for the log end offset (Kafka's `LATEST_TIMESTAMP`).
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets' timestamp asking for the log start offset (Kafka's `EARLIEST_TIMESTAMP`).
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Commands the producer task takes at most before it drains requests again.
const COMMANDS_PER_TURN_MAX: usize = 1024;

/// Largest response frame accepted; a larger announced size closes the connection.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Kafka's `UNSUPPORTED_VERSION`, the ApiVersions answer that names the versions to retry at.
const UNSUPPORTED_VERSION: i16 = 35;
/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's `LEADER_NOT_AVAILABLE`.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// Pause between Metadata attempts while a topic is being created.
const METADATA_RETRY_MS: u64 = 100;
/// Largest Fetch `max_bytes` the reader grows to when one batch does not fit.
const FETCH_MAX_BYTES_MAX: i32 = 64 * 1024 * 1024;
/// Fetch `max_bytes` the reader starts with.
const FETCH_MAX_BYTES: i32 = 4 * 1024 * 1024;

// ----- configuration and errors ---------------------------------------------------------

/// Settings of a [`KafkaProducer`] or [`KafkaReader`]. Names follow Kafka's configuration
/// keys where Kafka has one; units come last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `HOST:PORT`, or several separated by commas, tried in turn until
    /// one answers ApiVersions and Metadata.
    pub bootstrap: String,
    /// The topic produced to (or read).
    pub topic: String,
    /// `client.id`, sent in every request header.
    pub client_id: String,
    /// The sans-IO producer's settings (idempotence, `max_in_flight`, timeouts, acks).
    /// `request_timeout_ms` also bounds the reader's and the bootstrap's requests.
    pub producer: ProducerConfig,
    /// `socket.connection.setup.timeout.ms`: longest a TCP connect and its ApiVersions
    /// handshake may take.
    pub connect_timeout_ms: u64,
    /// `max.block.ms` for bootstrap: how long Metadata is retried while the topic has no
    /// leader yet; the reader's bound, too, on finding a partition's new leader.
    pub metadata_timeout_ms: u64,
    /// Batches sent and not yet reported, at most; [`KafkaProducer::send`] waits beyond.
    pub max_queued_batches: usize,
    /// Ask the broker to create the topic on first use (Metadata's
    /// `allow_auto_topic_creation`; the producer's default, like Kafka's).
    pub allow_auto_topic_creation: bool,
}

impl ClientConfig {
    /// Kafka's defaults for `topic` at `bootstrap` (`HOST:PORT`).
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            client_id: "idempo".to_string(),
            producer: ProducerConfig::default(),
            connect_timeout_ms: 10_000,
            metadata_timeout_ms: 60_000,
            max_queued_batches: 1_024,
            allow_auto_topic_creation: true,
        }
    }
}

/// Why a client operation failed. Broker answers carry Kafka's code; network problems are
/// values, never panics.
#[derive(Debug)]
pub enum ClientError {
    /// A connection to `addr` could not be made, or broke.
    Io {
        /// `HOST:PORT`.
        addr: String,
        /// What the operating system said.
        error: io::Error,
    },
    /// No answer in time.
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after_ms: u64,
    },
    /// The broker sent something that does not decode, or answered out of order.
    Protocol(String),
    /// The broker does not speak a version of `api` this client can use.
    UnsupportedApi {
        /// The API.
        api: ApiKey,
        /// The broker's range, if it serves the API at all.
        broker: Option<(i16, i16)>,
    },
    /// The broker answered with a Kafka error.
    Broker {
        /// What was asked.
        what: String,
        /// Kafka's error code.
        error_code: i16,
    },
    /// A partition outside the topic.
    UnknownPartition {
        /// The partition asked for.
        partition: i32,
        /// The topic's partition count.
        partitions: i32,
    },
    /// The producer settings are refused.
    Config(ConfigError),
    /// The producer task is gone (closed, or it panicked).
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io { addr, error } => write!(f, "{addr}: {error}"),
            ClientError::Timeout { what, after_ms } => {
                write!(f, "{what}: no answer within {after_ms} ms")
            }
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
            ClientError::UnsupportedApi { api, broker: None } => {
                write!(f, "the broker does not serve {api:?}")
            }
            ClientError::UnsupportedApi {
                api,
                broker: Some((min, max)),
            } => {
                let (ours_min, ours_max) = client_versions(*api).unwrap_or((0, -1));
                write!(
                    f,
                    "the broker serves {api:?} v{min}–{max}, this client needs v{ours_min}–{ours_max}"
                )
            }
            ClientError::Broker { what, error_code } => {
                write!(f, "{what}: {} ({error_code})", error_name(*error_code))
            }
            ClientError::UnknownPartition {
                partition,
                partitions,
            } => write!(
                f,
                "partition {partition} is outside the topic's {partitions} partitions"
            ),
            ClientError::Config(e) => write!(f, "producer settings refused: {e}"),
            ClientError::Closed => write!(f, "the producer is closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<ConfigError> for ClientError {
    fn from(e: ConfigError) -> ClientError {
        ClientError::Config(e)
    }
}

/// Kafka's name for an error code (`OUT_OF_ORDER_SEQUENCE_NUMBER`), also for codes idempo's
/// [`ErrorCode`] does not list; `UNKNOWN(n)` for a code Kafka does not define either.
pub fn error_name(code: i16) -> String {
    let known = ErrorCode::from_code(code);
    if !matches!(known, ErrorCode::Unknown(_)) {
        return known.name().to_string();
    }
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(n)) => format!("UNKNOWN({n})"),
        Some(e) => screaming_snake(&format!("{e:?}")),
        None => "NONE".to_string(),
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Maps a Kafka error code to the producer's [`ErrorCode`]: the named code when idempo lists
/// it, else [`ErrorCode::Unknown`] with the broker's number. No code is folded into another:
/// the producer sees exactly what the broker said (an unknown code is not retriable, as
/// Kafka's Java client treats a code it cannot map as `UnknownServerException`).
///
/// # Examples
///
/// ```
/// use idempo_net::client::error_code_from_kafka;
/// use idempo_protocol::ErrorCode;
///
/// assert_eq!(error_code_from_kafka(45), ErrorCode::OutOfOrderSequenceNumber);
/// assert_eq!(error_code_from_kafka(89), ErrorCode::ThrottlingQuotaExceeded);
/// assert_eq!(error_code_from_kafka(63), ErrorCode::Unknown(63)); // TRANSACTION_COORDINATOR_FENCED
/// ```
pub fn error_code_from_kafka(code: i16) -> ErrorCode {
    ErrorCode::from_code(code)
}

// ----- the wire: frames, versions, one request at a time ---------------------------------

/// The range of `api` this client speaks.
fn client_versions(api: ApiKey) -> Option<(i16, i16)> {
    CLIENT_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// The versions one connection uses: the highest each side speaks, per API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Versions {
    produce: Option<i16>,
    init_producer_id: Option<i16>,
    metadata: Option<i16>,
    fetch: Option<i16>,
    list_offsets: Option<i16>,
}

impl Versions {
    fn from_broker(broker: &[ApiVersion]) -> Versions {
        let pick = |api: ApiKey| -> Option<i16> {
            let (ours_min, ours_max) = client_versions(api)?;
            let theirs = broker.iter().find(|v| v.api_key == api as i16)?;
            let max = ours_max.min(theirs.max_version);
            (max >= ours_min.max(theirs.min_version)).then_some(max)
        };
        Versions {
            produce: pick(ApiKey::Produce),
            init_producer_id: pick(ApiKey::InitProducerId),
            metadata: pick(ApiKey::Metadata),
            fetch: pick(ApiKey::Fetch),
            list_offsets: pick(ApiKey::ListOffsets),
        }
    }

    /// The version of `api`, or why there is none.
    fn need(&self, api: ApiKey, broker: &[ApiVersion]) -> Result<i16, ClientError> {
        let chosen = match api {
            ApiKey::Produce => self.produce,
            ApiKey::InitProducerId => self.init_producer_id,
            ApiKey::Metadata => self.metadata,
            ApiKey::Fetch => self.fetch,
            ApiKey::ListOffsets => self.list_offsets,
            _ => None,
        };
        chosen.ok_or_else(|| ClientError::UnsupportedApi {
            api,
            broker: broker
                .iter()
                .find(|v| v.api_key == api as i16)
                .map(|v| (v.min_version, v.max_version)),
        })
    }
}

/// Encodes one request frame: length prefix, request header, body.
fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<Bytes, ClientError> {
    let body_bytes = request.compute_size(version).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(LENGTH_PREFIX_BYTES + 64 + body_bytes);
    buf.put_i32(0); // patched below
    let fail = |e: anyhow::Error| {
        ClientError::Protocol(format!("cannot encode api {} v{version}: {e}", R::KEY))
    };
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()))
        .encode(&mut buf, R::header_version(version))
        .map_err(fail)?;
    request.encode(&mut buf, version).map_err(fail)?;
    let frame_bytes = i32::try_from(buf.len() - LENGTH_PREFIX_BYTES)
        .map_err(|_| ClientError::Protocol("request larger than 2 GiB".to_string()))?;
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&frame_bytes.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes the answer to request `R` sent at `version` with `correlation_id`.
fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, ClientError> {
    let fail = |e: anyhow::Error| {
        ClientError::Protocol(format!(
            "cannot decode the api {} v{version} answer: {e}",
            R::KEY
        ))
    };
    let header =
        ResponseHeader::decode(&mut frame, R::Response::header_version(version)).map_err(fail)?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Protocol(format!(
            "answer with correlation id {} where {correlation_id} was due (answers come in order)",
            header.correlation_id
        )));
    }
    R::Response::decode(&mut frame, version).map_err(fail)
}

/// Reads one size-delimited response frame (without its prefix) with the crate's one frame
/// reader: a prefix above [`MAX_RESPONSE_BYTES`] is refused before anything is allocated.
async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Bytes, ReadEnd> {
    let frame = frames::read_frame(stream, buf, MAX_RESPONSE_BYTES).await?;
    Ok(frames::body(&frame))
}

/// One connection used one request at a time (bootstrap, the reader, the handshake of the
/// producer's connection).
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet taken as a frame.
    buf: BytesMut,
    addr: String,
    client_id: StrBytes,
    next_correlation_id: i32,
    timeout_ms: u64,
    broker_apis: Vec<ApiVersion>,
    versions: Versions,
}

impl Conn {
    /// Connects to `addr` and negotiates versions with ApiVersions, within `connect_timeout_ms`.
    async fn open(addr: &str, config: &ClientConfig) -> Result<Conn, ClientError> {
        let within = Duration::from_millis(config.connect_timeout_ms);
        let attempt = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|error| ClientError::Io {
                    addr: addr.to_string(),
                    error,
                })?;
            // Requests are small and latency matters more than packet count.
            stream.set_nodelay(true).map_err(|error| ClientError::Io {
                addr: addr.to_string(),
                error,
            })?;
            let mut conn = Conn {
                stream,
                buf: BytesMut::new(),
                addr: addr.to_string(),
                client_id: StrBytes::from_string(config.client_id.clone()),
                next_correlation_id: 0,
                timeout_ms: config.producer.request_timeout_ms,
                broker_apis: Vec::new(),
                versions: Versions::default(),
            };
            conn.negotiate().await?;
            Ok(conn)
        };
        tokio::time::timeout(within, attempt)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {addr}"),
                after_ms: config.connect_timeout_ms,
            })?
    }

    /// ApiVersions at our highest version; on `UNSUPPORTED_VERSION` (KIP-511: the answer
    /// is in the v0 format and names the broker's range) once more at the broker's highest.
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let (_, ours_max) = client_versions(ApiKey::ApiVersions).unwrap_or((0, 0));
        let mut version = ours_max;
        for _ in 0..2 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("idempo"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let frame = self.round_trip(&request, version).await?;
            let correlation_id = self.next_correlation_id.wrapping_sub(1);
            let response =
                match decode_response::<ApiVersionsRequest>(frame.clone(), version, correlation_id)
                {
                    Ok(r) if r.error_code != UNSUPPORTED_VERSION => r,
                    _ => decode_response::<ApiVersionsRequest>(frame, 0, correlation_id)?,
                };
            if response.error_code == UNSUPPORTED_VERSION {
                let theirs = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version);
                if theirs >= version {
                    break;
                }
                version = theirs.max(0);
                continue;
            }
            if response.error_code != 0 {
                return Err(ClientError::Broker {
                    what: format!("ApiVersions v{version} from {}", self.addr),
                    error_code: response.error_code,
                });
            }
            self.versions = Versions::from_broker(&response.api_keys);
            self.broker_apis = response.api_keys;
            debug!(addr = %self.addr, versions = ?self.versions, "negotiated api versions");
            return Ok(());
        }
        Err(ClientError::UnsupportedApi {
            api: ApiKey::ApiVersions,
            broker: None,
        })
    }

    /// Writes one request and reads its answer frame, within the request timeout.
    async fn round_trip<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<Bytes, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id, &self.client_id)?;
        let addr = self.addr.clone();
        let io_error = |error| ClientError::Io {
            addr: addr.clone(),
            error,
        };
        let exchange = async {
            self.stream.write_all(&frame).await.map_err(io_error)?;
            read_response(&mut self.stream, &mut self.buf)
                .await
                .map_err(|end| io_error(end.into()))
        };
        tokio::time::timeout(Duration::from_millis(self.timeout_ms), exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("api {} v{version} to {}", R::KEY, self.addr),
                after_ms: self.timeout_ms,
            })?
    }

    /// Sends `request` at the negotiated version of `api` and decodes the answer.
    async fn call<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let version = self.versions.need(api, &self.broker_apis)?;
        let frame = self.round_trip(request, version).await?;
        decode_response::<R>(frame, version, self.next_correlation_id.wrapping_sub(1))
    }
}

// ----- bootstrap: where the topic lives --------------------------------------------------

/// What Metadata says about the topic: its partitions, each one's leader, and where every
/// broker listens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    partitions: i32,
    /// `HOST:PORT` of every broker the answer lists, by node id.
    brokers: BTreeMap<i32, String>,
    /// Each partition's leader (node id).
    leaders: BTreeMap<i32, i32>,
}

impl Layout {
    /// `HOST:PORT` of `partition`'s leader.
    fn leader_addr(&self, partition: i32) -> Option<&str> {
        let node = self.leaders.get(&partition)?;
        self.brokers.get(node).map(String::as_str)
    }
}

/// The bootstrap addresses of `config.bootstrap` (comma-separated), in order.
fn bootstrap_addrs(config: &ClientConfig) -> impl Iterator<Item = &str> {
    config
        .bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
}

/// Connects to the first bootstrap address that completes the handshake.
async fn open_bootstrap(config: &ClientConfig) -> Result<Conn, ClientError> {
    let mut last = None;
    for addr in bootstrap_addrs(config) {
        match Conn::open(addr, config).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                debug!(addr, error = %e, "bootstrap address did not answer");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ClientError::Protocol(format!("no bootstrap address in {:?}", config.bootstrap))
    }))
}

/// Bootstraps: a connection to the first bootstrap address that completes the handshake
/// ([`open_bootstrap`]), asked for the topic ([`find_topic`]). A connection that breaks or
/// times out after its handshake (a cut, a lost answer) is replaced by a new one, until
/// `metadata_timeout_ms`, as Kafka's client retries its metadata on another connection until
/// `max.block.ms`; when no address completes a handshake the bootstrap fails at once.
async fn bootstrap_topic(config: &ClientConfig) -> Result<(Conn, Layout), ClientError> {
    let deadline = Instant::now() + Duration::from_millis(config.metadata_timeout_ms);
    loop {
        let mut conn = open_bootstrap(config).await?;
        match find_topic(&mut conn, config).await {
            Ok(layout) => return Ok((conn, layout)),
            Err(e @ (ClientError::Io { .. } | ClientError::Timeout { .. }))
                if Instant::now() < deadline =>
            {
                debug!(addr = %conn.addr, error = %e, "bootstrap connection broke; opening another");
                tokio::time::sleep(Duration::from_millis(METADATA_RETRY_MS)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `HOST:PORT` of every broker of the cluster behind `config.bootstrap`, by node id: a
/// Metadata request that names no topic, to the first bootstrap address that answers.
pub async fn cluster_brokers(config: &ClientConfig) -> Result<BTreeMap<i32, String>, ClientError> {
    let mut conn = open_bootstrap(config).await?;
    let request = MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    let response = conn.call(ApiKey::Metadata, &request).await?;
    Ok(broker_addrs(&response))
}

/// The Metadata request for `topic`.
fn metadata_request(topic: &TopicName, allow_auto_topic_creation: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic.clone())),
        ]))
        .with_allow_auto_topic_creation(allow_auto_topic_creation)
}

/// Asks `conn` for the topic's Metadata until every partition has a leader.
async fn find_topic(conn: &mut Conn, config: &ClientConfig) -> Result<Layout, ClientError> {
    let topic = TopicName(StrBytes::from_string(config.topic.clone()));
    let request = metadata_request(&topic, config.allow_auto_topic_creation);
    let deadline = Instant::now() + Duration::from_millis(config.metadata_timeout_ms);
    loop {
        let response = conn.call(ApiKey::Metadata, &request).await?;
        match layout_of(&response, &topic) {
            Ok(layout) => return Ok(layout),
            Err(MetadataWait::Retry(why)) if Instant::now() < deadline => {
                debug!(topic = %config.topic, why, "metadata not ready; asking again");
                tokio::time::sleep(Duration::from_millis(METADATA_RETRY_MS)).await;
            }
            Err(MetadataWait::Retry(_)) => {
                return Err(ClientError::Timeout {
                    what: format!("a leader for every partition of {:?}", config.topic),
                    after_ms: config.metadata_timeout_ms,
                });
            }
            Err(MetadataWait::Fail(e)) => return Err(e),
        }
    }
}

enum MetadataWait {
    /// Not yet (a topic being created, a leader being elected).
    Retry(&'static str),
    Fail(ClientError),
}

/// `HOST:PORT` of every broker a Metadata answer lists, by node id (IPv6 hosts bracketed).
fn broker_addrs(response: &MetadataResponse) -> BTreeMap<i32, String> {
    response
        .brokers
        .iter()
        .map(|b| {
            let host = b.host.as_str();
            let addr = if host.contains(':') {
                format!("[{host}]:{}", b.port)
            } else {
                format!("{host}:{}", b.port)
            };
            (b.node_id.0, addr)
        })
        .collect()
}

fn layout_of(response: &MetadataResponse, topic: &TopicName) -> Result<Layout, MetadataWait> {
    let Some(entry) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref() == Some(topic))
    else {
        return Err(MetadataWait::Retry("topic missing from the answer"));
    };
    match entry.error_code {
        0 => {}
        LEADER_NOT_AVAILABLE | UNKNOWN_TOPIC_OR_PARTITION => {
            return Err(MetadataWait::Retry("topic not ready"));
        }
        error_code => {
            return Err(MetadataWait::Fail(ClientError::Broker {
                what: format!("Metadata for topic {:?}", topic.0.as_str()),
                error_code,
            }));
        }
    }
    if entry.partitions.is_empty() {
        return Err(MetadataWait::Retry("no partitions yet"));
    }
    let brokers = broker_addrs(response);
    let mut leaders = BTreeMap::new();
    for p in &entry.partitions {
        if p.error_code == LEADER_NOT_AVAILABLE || p.leader_id.0 < 0 {
            return Err(MetadataWait::Retry("a partition without a leader"));
        }
        if !brokers.contains_key(&p.leader_id.0) {
            return Err(MetadataWait::Retry(
                "a leader is not among the brokers listed",
            ));
        }
        leaders.insert(p.partition_index, p.leader_id.0);
    }
    let partitions = entry
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .max()
        .map_or(0, |max| max.saturating_add(1));
    Ok(Layout {
        partitions,
        brokers,
        leaders,
    })
}

/// A Kafka Metadata answer as the sans-IO producer takes it ([`IdempoMetadataResponse`]):
/// the live brokers' ids, and per partition of the topic its error, leader, leader epoch
/// (`NO_LEADER_EPOCH` before Metadata v7), replicas and ISR. A topic-level error leaves
/// the partition list empty, so that the producer asks again for the partitions it needs.
fn cluster_view(response: &MetadataResponse, topic: &TopicName) -> IdempoMetadataResponse {
    let partitions = response
        .topics
        .iter()
        .filter(|t| t.name.as_ref() == Some(topic) && t.error_code == 0)
        .flat_map(|t| t.partitions.iter())
        .map(|p| PartitionMetadata {
            error_code: error_code_from_kafka(p.error_code),
            partition: p.partition_index,
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replica_nodes: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr_nodes: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    IdempoMetadataResponse {
        brokers: response.brokers.iter().map(|b| b.node_id.0).collect(),
        controller_id: response.controller_id.0,
        partitions,
    }
}

// ----- the producer ----------------------------------------------------------------------

/// A monotonic clock in Unix milliseconds: the wall clock read once, then `Instant`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    origin: Instant,
    origin_ms: u64,
}

impl Clock {
    fn start() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2));
        Clock {
            origin: Instant::now(),
            origin_ms: wall,
        }
    }

    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX / 2);
        self.origin_ms.saturating_add(elapsed)
    }

    fn instant_at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms.saturating_sub(self.origin_ms))
    }
}

/// An idempotent Kafka producer over TCP: idempo's sans-IO [`Producer`] driven by a tokio
/// task, each partition's batches sent to its leader (see the [module documentation](self)).
///
/// # Examples
///
/// ```no_run
/// use idempo_net::client::{ClientConfig, KafkaProducer};
/// use idempo_protocol::Record;
///
/// # async fn demo() -> Result<(), idempo_net::client::ClientError> {
/// let producer = KafkaProducer::connect(ClientConfig::new("127.0.0.1:9092", "orders")).await?;
/// let delivery = producer.send(0, vec![Record::with_value(0, "hello")]).await?;
/// let report = delivery.await?;
/// println!("written at offset {}", report.result.expect("delivered").base_offset);
/// let stats = producer.close().await?;
/// println!("{} retries", stats.retries);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KafkaProducer {
    commands: mpsc::Sender<Command>,
    /// One permit per batch sent and not yet reported.
    queue: Arc<Semaphore>,
    /// The topic as Metadata described it at bootstrap.
    layout: Layout,
    driver: JoinHandle<()>,
}

/// The delivery report of one [`KafkaProducer::send`], once it comes. Resolves to
/// [`ClientError::Closed`] only if the producer task died.
#[derive(Debug)]
#[must_use = "a Delivery does nothing unless awaited; dropping it does not cancel the send"]
pub struct Delivery {
    report: oneshot::Receiver<DeliveryReport>,
}

impl Future for Delivery {
    type Output = Result<DeliveryReport, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.report)
            .poll(cx)
            .map(|r| r.map_err(|_| ClientError::Closed))
    }
}

#[derive(Debug)]
enum Command {
    Send {
        partition: i32,
        records: Vec<Record>,
        reply: oneshot::Sender<DeliveryReport>,
        permit: OwnedSemaphorePermit,
    },
    Flush {
        done: oneshot::Sender<()>,
    },
    Close {
        done: oneshot::Sender<(ProducerStats, RoutingStats)>,
    },
}

impl KafkaProducer {
    /// Bootstraps (ApiVersions and Metadata at the first of `config.bootstrap` that answers),
    /// then starts the producer task, which asks the cluster for Metadata and a producer id
    /// at once and sends each partition's batches to its leader.
    ///
    /// `config.producer.cluster_routing` is turned on and `config.producer.bootstrap` set to
    /// the brokers the bootstrap answer lists: routing is the producer core's.
    pub async fn connect(config: ClientConfig) -> Result<KafkaProducer, ClientError> {
        let (bootstrap, layout) = bootstrap_topic(&config).await?;
        bootstrap
            .versions
            .need(ApiKey::Produce, &bootstrap.broker_apis)?;
        if config.producer.idempotence {
            bootstrap
                .versions
                .need(ApiKey::InitProducerId, &bootstrap.broker_apis)?;
        }
        drop(bootstrap);
        let mut producer_config = config.producer.clone();
        producer_config.cluster_routing = true;
        producer_config.bootstrap = layout.brokers.keys().copied().collect();
        let mut producer = Producer::new(producer_config)?;
        producer.set_record_events(tracing::enabled!(tracing::Level::DEBUG));
        info!(
            topic = %config.topic,
            partitions = layout.partitions,
            brokers = ?layout.brokers,
            leaders = ?layout.leaders,
            "found the topic's leaders"
        );
        let queue = Arc::new(Semaphore::new(config.max_queued_batches.max(1)));
        let (commands, commands_rx) = mpsc::channel(config.max_queued_batches.clamp(1, 4096));
        let (events, events_rx) = mpsc::channel(64);
        let driver = Driver {
            producer,
            clock: Clock::start(),
            topic: TopicName(StrBytes::from_string(config.topic.clone())),
            brokers: layout.brokers.clone(),
            nodes: BTreeMap::new(),
            next_generation: 0,
            config,
            commands: commands_rx,
            commands_open: true,
            closing: Vec::new(),
            pending: BTreeMap::new(),
            last_handle: None,
            flushes: Vec::new(),
            events,
            events_rx,
        };
        Ok(KafkaProducer {
            commands,
            queue,
            layout,
            driver: tokio::spawn(driver.run()),
        })
    }

    /// The topic's partition count, from Metadata at bootstrap.
    pub fn partitions(&self) -> i32 {
        self.layout.partitions
    }

    /// `HOST:PORT` of `partition`'s leader as Metadata advertised it at bootstrap (the
    /// producer follows later leader changes on its own).
    pub fn leader_of(&self, partition: i32) -> Option<&str> {
        self.layout.leader_addr(partition)
    }

    /// `HOST:PORT` of every broker the bootstrap answer listed, by node id.
    pub fn brokers(&self) -> &BTreeMap<i32, String> {
        &self.layout.brokers
    }

    /// Queues one batch for `partition` and returns the future of its delivery report. Waits
    /// while `max_queued_batches` batches are unreported. One send is one RecordBatch; the
    /// records' offset deltas are set by the producer.
    pub async fn send(
        &self,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<Delivery, ClientError> {
        if !(0..self.layout.partitions).contains(&partition) {
            return Err(ClientError::UnknownPartition {
                partition,
                partitions: self.layout.partitions,
            });
        }
        let permit = Arc::clone(&self.queue)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Closed)?;
        let (reply, report) = oneshot::channel();
        self.commands
            .send(Command::Send {
                partition,
                records,
                reply,
                permit,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(Delivery { report })
    }

    /// Waits until every batch sent before this call has its delivery report.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (done, flushed) = oneshot::channel();
        self.commands
            .send(Command::Flush { done })
            .await
            .map_err(|_| ClientError::Closed)?;
        flushed.await.map_err(|_| ClientError::Closed)
    }

    /// Flushes, stops the producer task and closes its connections; returns the producer's
    /// counters. Dropping a `KafkaProducer` instead lets its task finish the batches already
    /// sent (their `Delivery` futures still resolve) and then stop.
    pub async fn close(self) -> Result<ProducerStats, ClientError> {
        self.close_with_routing_stats()
            .await
            .map(|(stats, _)| stats)
    }

    /// [`KafkaProducer::close`], also returning the routing counters: Metadata requests and
    /// refreshes, leader changes, `NOT_LEADER_OR_FOLLOWER` answers.
    pub async fn close_with_routing_stats(
        self,
    ) -> Result<(ProducerStats, RoutingStats), ClientError> {
        let (done, closed) = oneshot::channel();
        self.commands
            .send(Command::Close { done })
            .await
            .map_err(|_| ClientError::Closed)?;
        let stats = closed.await.map_err(|_| ClientError::Closed)?;
        let _ = self.driver.await;
        Ok(stats)
    }
}

/// A request on the wire awaiting its answer, in send order.
#[derive(Clone, Copy, Debug)]
struct Awaiting {
    wire_correlation_id: i32,
    producer_correlation_id: i32,
    api: ApiKey,
    version: i16,
}

/// The state of the connection to one broker.
#[derive(Debug)]
enum Link {
    /// No connection: one is made when the producer hands out a request for the broker.
    Disconnected,
    /// TCP connect and ApiVersions running in their own task, which reports
    /// [`ConnEvent::Handshake`].
    Connecting(JoinHandle<()>),
    /// Up.
    Connected(Connection),
}

/// One broker as the driver knows it: its address, its connection and the requests on it.
#[derive(Debug)]
struct NodeLink {
    addr: String,
    link: Link,
    /// The generation of the current connection (attempt); events of older ones are ignored.
    generation: u64,
    /// Requests awaiting an answer on the current connection, oldest first.
    awaiting: VecDeque<Awaiting>,
    /// Requests the producer handed out for this broker while its connection was being
    /// made: written, in order, once it is up (they need its negotiated versions).
    queued: Vec<RequestFrame>,
}

impl NodeLink {
    fn new(addr: String) -> NodeLink {
        NodeLink {
            addr,
            link: Link::Disconnected,
            generation: 0,
            awaiting: VecDeque::new(),
            queued: Vec::new(),
        }
    }

    /// Requests handed to this connection that have not been answered or failed.
    fn holds_requests(&self) -> bool {
        !self.awaiting.is_empty() || !self.queued.is_empty()
    }

    /// Drops the connection or the attempt, and every request on it.
    fn drop_connection(&mut self) {
        if let Link::Connecting(task) = &self.link {
            task.abort();
        }
        self.link = Link::Disconnected;
        // No connection has generation 0: events of the dropped one are ignored from now on.
        self.generation = 0;
        self.awaiting.clear();
        self.queued.clear();
    }
}

#[derive(Debug)]
struct Connection {
    client_id: StrBytes,
    versions: Versions,
    broker_apis: Vec<ApiVersion>,
    next_correlation_id: i32,
    writer: mpsc::UnboundedSender<Bytes>,
    writer_task: JoinHandle<()>,
    reader_task: JoinHandle<()>,
}

impl Connection {
    /// Closes after the writer has written every frame already queued (within `within`): an
    /// `acks=0` batch is reported delivered once queued, so a close must not drop it.
    async fn close_gracefully(mut self, within: Duration) {
        let (closed, _) = mpsc::unbounded_channel();
        // The writer ends once its queue is empty and this, the last sender, is gone.
        drop(std::mem::replace(&mut self.writer, closed));
        let _ = tokio::time::timeout(within, &mut self.writer_task).await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Once both tasks have dropped their halves, the socket is closed.
        self.writer_task.abort();
        self.reader_task.abort();
    }
}

/// What a connection's tasks report, tagged with the broker and the connection's generation
/// so that reports of an old connection are ignored.
#[derive(Debug)]
enum ConnEvent {
    Handshake {
        node: i32,
        generation: u64,
        result: Result<Conn, ClientError>,
    },
    Frame {
        node: i32,
        generation: u64,
        frame: Bytes,
    },
    Closed {
        node: i32,
        generation: u64,
        why: String,
    },
}

/// The task that owns the [`Producer`].
struct Driver {
    producer: Producer,
    clock: Clock,
    config: ClientConfig,
    topic: TopicName,
    /// `HOST:PORT` of every broker, by node id: the bootstrap answer's, then each Metadata
    /// answer's.
    brokers: BTreeMap<i32, String>,
    /// The brokers the producer has sent requests to.
    nodes: BTreeMap<i32, NodeLink>,
    /// The generation the next connection attempt gets.
    next_generation: u64,
    commands: mpsc::Receiver<Command>,
    /// False once every `KafkaProducer` handle is gone.
    commands_open: bool,
    /// `close()` callers, answered once everything is reported.
    closing: Vec<oneshot::Sender<(ProducerStats, RoutingStats)>>,
    /// Reply channel (and queue permit) of every batch not yet reported, by handle.
    pending: BTreeMap<u64, (oneshot::Sender<DeliveryReport>, OwnedSemaphorePermit)>,
    last_handle: Option<u64>,
    /// `(last handle at the time of the flush, flusher)`.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    events: mpsc::Sender<ConnEvent>,
    events_rx: mpsc::Receiver<ConnEvent>,
}

/// Why the driver woke up.
enum Wake {
    Command(Option<Command>),
    Event(ConnEvent),
    Timer,
}

impl Driver {
    async fn run(mut self) {
        loop {
            self.step();
            if self.finished() {
                break;
            }
            let wake = self.next_wakeup();
            let woke = tokio::select! {
                command = self.commands.recv(), if self.commands_open => Wake::Command(command),
                Some(event) = self.events_rx.recv() => Wake::Event(event),
                _ = tokio::time::sleep_until(wake) => Wake::Timer,
            };
            match woke {
                Wake::Command(Some(command)) => {
                    self.on_command(command);
                    // Take what else is queued before draining, so that one Produce request
                    // can carry a batch for every partition of a leader, as Kafka's sender
                    // does.
                    for _ in 0..COMMANDS_PER_TURN_MAX {
                        let Ok(command) = self.commands.try_recv() else {
                            break;
                        };
                        self.on_command(command);
                    }
                }
                Wake::Command(None) => self.commands_open = false,
                Wake::Event(event) => self.on_event(event),
                Wake::Timer => {}
            }
        }
        let within = Duration::from_millis(self.config.producer.request_timeout_ms);
        for (_, mut node) in std::mem::take(&mut self.nodes) {
            if let Link::Connected(conn) = std::mem::replace(&mut node.link, Link::Disconnected) {
                conn.close_gracefully(within).await;
            }
            node.drop_connection();
        }
        let stats = (self.producer.stats(), self.producer.routing_stats());
        for done in self.closing.drain(..) {
            let _ = done.send(stats);
        }
        debug!("producer task stopped");
    }

    /// Done: asked to close (or abandoned) and every batch reported.
    fn finished(&self) -> bool {
        (!self.closing.is_empty() || !self.commands_open) && self.pending.is_empty()
    }

    /// The producer's next wakeup (a timeout, a retry backoff, a metadata refresh).
    fn next_wakeup(&self) -> Instant {
        match self.producer.next_wakeup_ms() {
            Some(ms) => self.clock.instant_at(ms),
            None => Instant::now() + Duration::from_secs(3600),
        }
    }

    /// Everything that can be done without waiting.
    fn step(&mut self) {
        let now_ms = self.clock.now_ms();
        let timeouts_before = self.producer.stats().request_timeouts;
        self.producer.on_timeout(now_ms);
        if self.producer.stats().request_timeouts > timeouts_before {
            self.close_timed_out_connections();
        }
        self.pump_requests(now_ms);
        while let Some(event) = self.producer.poll_event() {
            debug!(?event, "producer event");
        }
        while let Some(report) = self.producer.poll_delivery() {
            if let Some((reply, _permit)) = self.pending.remove(&report.handle.0) {
                let _ = reply.send(report);
            }
        }
        let oldest_pending = self.pending.keys().next().copied();
        for (mark, done) in std::mem::take(&mut self.flushes) {
            if oldest_pending.is_some_and(|h| h <= mark) {
                self.flushes.push((mark, done));
            } else {
                let _ = done.send(());
            }
        }
    }

    /// A request timed out: the producer failed it and every other request to its broker
    /// (Kafka's `NetworkClient` closes the connection of a timed-out request), so a broker
    /// whose connection still holds requests and of which the producer awaits none is that
    /// broker. Its socket is closed so that no late answer can arrive.
    fn close_timed_out_connections(&mut self) {
        for (&node, link) in &mut self.nodes {
            if link.holds_requests() && self.producer.in_flight_requests_to(node) == 0 {
                warn!(node, addr = %link.addr, "request timed out; closing the connection");
                link.drop_connection();
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                partition,
                records,
                reply,
                permit,
            } => {
                let handle = self.producer.send(partition, records, self.clock.now_ms());
                self.last_handle = Some(handle.0);
                self.pending.insert(handle.0, (reply, permit));
            }
            Command::Flush { done } => match self.last_handle {
                Some(mark) if self.pending.keys().next().is_some_and(|h| *h <= mark) => {
                    self.flushes.push((mark, done));
                }
                _ => {
                    let _ = done.send(());
                }
            },
            Command::Close { done } => self.closing.push(done),
        }
    }

    /// Hands every request the producer wants to send to its broker's connection, making
    /// the connection first if there is none.
    fn pump_requests(&mut self, now_ms: u64) {
        while let Some(Outgoing { node, frame }) = self.producer.poll_outgoing(now_ms) {
            let Some(addr) = self.brokers.get(&node).cloned() else {
                // Node ids come from Metadata answers, which also give the addresses.
                warn!(
                    node,
                    "the producer chose a broker no Metadata answer listed"
                );
                self.producer.on_node_disconnected(node, now_ms);
                continue;
            };
            let link = self
                .nodes
                .entry(node)
                .or_insert_with(|| NodeLink::new(addr));
            match &mut link.link {
                Link::Connected(conn) => {
                    if let Err(why) = write_request(&frame, conn, &mut link.awaiting, &self.topic) {
                        self.fail_node(node, &why);
                    }
                }
                Link::Connecting(_) => link.queued.push(frame),
                Link::Disconnected => {
                    link.queued.push(frame);
                    self.start_connecting(node);
                }
            }
        }
    }

    /// The connection to `node` broke or could not be made: the producer fails every request
    /// to it, oldest first (their outcome is unknown), leaves the broker alone for
    /// `reconnect_backoff_ms` and asks for fresh Metadata.
    fn fail_node(&mut self, node: i32, why: &str) {
        let now_ms = self.clock.now_ms();
        if let Some(link) = self.nodes.get_mut(&node) {
            warn!(node, addr = %link.addr, why, in_flight = self.producer.in_flight_requests_to(node), "connection lost");
            link.drop_connection();
        }
        self.producer.on_node_disconnected(node, now_ms);
    }

    fn start_connecting(&mut self, node: i32) {
        let Some(link) = self.nodes.get_mut(&node) else {
            return;
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        link.generation = generation;
        let addr = link.addr.clone();
        let config = self.config.clone();
        let events = self.events.clone();
        debug!(node, %addr, "connecting");
        link.link = Link::Connecting(tokio::spawn(async move {
            let result = Conn::open(&addr, &config).await;
            let _ = events
                .send(ConnEvent::Handshake {
                    node,
                    generation,
                    result,
                })
                .await;
        }));
    }

    fn on_event(&mut self, event: ConnEvent) {
        let (node, generation) = match &event {
            ConnEvent::Handshake {
                node, generation, ..
            }
            | ConnEvent::Frame {
                node, generation, ..
            }
            | ConnEvent::Closed {
                node, generation, ..
            } => (*node, *generation),
        };
        if self.nodes.get(&node).map(|l| l.generation) != Some(generation) {
            return; // from a connection already given up
        }
        match event {
            ConnEvent::Handshake { result, .. } => self.on_handshake(node, result),
            ConnEvent::Frame { frame, .. } => self.on_frame(node, frame),
            ConnEvent::Closed { why, .. } => self.fail_node(node, &why),
        }
    }

    fn on_handshake(&mut self, node: i32, result: Result<Conn, ClientError>) {
        let idempotence = self.config.producer.idempotence;
        let conn = match result.and_then(|conn| {
            conn.versions.need(ApiKey::Produce, &conn.broker_apis)?;
            conn.versions.need(ApiKey::Metadata, &conn.broker_apis)?;
            if idempotence {
                conn.versions
                    .need(ApiKey::InitProducerId, &conn.broker_apis)?;
            }
            Ok(conn)
        }) {
            Ok(conn) => conn,
            Err(e) => {
                self.fail_node(node, &format!("cannot connect: {e}"));
                return;
            }
        };
        let Some(link) = self.nodes.get_mut(&node) else {
            return;
        };
        let generation = link.generation;
        let (read_half, write_half) = conn.stream.into_split();
        let (writer, frames) = mpsc::unbounded_channel();
        let writer_task = tokio::spawn(write_frames(
            write_half,
            frames,
            self.events.clone(),
            node,
            generation,
        ));
        let reader_task = tokio::spawn(read_frames(
            read_half,
            self.events.clone(),
            node,
            generation,
        ));
        info!(node, addr = %conn.addr, produce_version = ?conn.versions.produce, "connected");
        let mut connection = Connection {
            client_id: conn.client_id,
            versions: conn.versions,
            broker_apis: conn.broker_apis,
            next_correlation_id: conn.next_correlation_id,
            writer,
            writer_task,
            reader_task,
        };
        let mut failed = None;
        for frame in std::mem::take(&mut link.queued) {
            if let Err(why) =
                write_request(&frame, &mut connection, &mut link.awaiting, &self.topic)
            {
                failed = Some(why);
                break;
            }
        }
        link.link = Link::Connected(connection);
        if let Some(why) = failed {
            self.fail_node(node, &why);
        }
    }

    /// One answer from `node`: it belongs to the oldest request awaiting one there.
    fn on_frame(&mut self, node: i32, frame: Bytes) {
        let now_ms = self.clock.now_ms();
        let Some(awaiting) = self
            .nodes
            .get_mut(&node)
            .and_then(|l| l.awaiting.pop_front())
        else {
            self.fail_node(node, "an answer arrived with no request awaiting one");
            return;
        };
        let translated = {
            let _answer = tracing::debug_span!("answer", node).entered();
            from_kafka(frame, awaiting, &self.topic)
        };
        match translated {
            Ok((response, brokers)) => {
                if let Some(brokers) = brokers {
                    self.learn_brokers(brokers);
                }
                let frame = ResponseFrame {
                    correlation_id: awaiting.producer_correlation_id,
                    response,
                };
                self.producer.on_response(frame, now_ms);
            }
            Err(e) => {
                self.producer
                    .on_request_failed(awaiting.producer_correlation_id, now_ms);
                self.fail_node(node, &e.to_string());
            }
        }
    }

    /// The broker addresses of a Metadata answer. A broker that moved to another address
    /// loses its connection (the next request reconnects at the new one); a broker the answer
    /// does not list keeps its address, for the requests still awaiting an answer from it.
    fn learn_brokers(&mut self, brokers: BTreeMap<i32, String>) {
        let moved: Vec<i32> = self
            .nodes
            .iter()
            .filter(|(node, link)| brokers.get(node).is_some_and(|a| *a != link.addr))
            .map(|(&node, _)| node)
            .collect();
        for node in moved {
            self.fail_node(node, "the broker moved to another address");
            if let (Some(link), Some(addr)) = (self.nodes.get_mut(&node), brokers.get(&node)) {
                link.addr = addr.clone();
            }
        }
        self.brokers.extend(brokers);
    }
}

/// Translates one request and puts it on the connection's writer, with its FIFO entry.
fn write_request(
    frame: &RequestFrame,
    conn: &mut Connection,
    awaiting: &mut VecDeque<Awaiting>,
    topic: &TopicName,
) -> Result<(), String> {
    let (entry, bytes) = to_kafka(frame, conn, topic).map_err(|e| {
        warn!(error = %e, "cannot put a request on the wire");
        e.to_string()
    })?;
    if let Some(entry) = entry {
        awaiting.push_back(entry);
    }
    conn.writer
        .send(bytes)
        .map_err(|_| "the writer stopped".to_string())
}

/// Translates one idempo request into a Kafka request frame, with its FIFO entry (none for
/// an `acks=0` Produce, which Kafka does not answer).
fn to_kafka(
    frame: &RequestFrame,
    conn: &mut Connection,
    topic: &TopicName,
) -> Result<(Option<Awaiting>, Bytes), ClientError> {
    let wire_correlation_id = conn.next_correlation_id;
    conn.next_correlation_id = wire_correlation_id.wrapping_add(1);
    let (api, version, bytes, answered) = match &frame.request {
        IdempoRequest::InitProducerId(r) => {
            let version = conn
                .versions
                .need(ApiKey::InitProducerId, &conn.broker_apis)?;
            // A null transactional id: an idempotent, non-transactional producer.
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(r.transaction_timeout_ms);
            let bytes = encode_request(&request, version, wire_correlation_id, &conn.client_id)?;
            (ApiKey::InitProducerId, version, bytes, true)
        }
        IdempoRequest::Produce(r) => {
            let version = conn.versions.need(ApiKey::Produce, &conn.broker_apis)?;
            let partitions = r
                .partitions
                .iter()
                .map(|p| {
                    PartitionProduceData::default()
                        .with_index(p.partition)
                        .with_records(Some(p.records.clone()))
                })
                .collect();
            let request = ProduceRequest::default()
                .with_transactional_id(None)
                .with_acks(r.acks)
                .with_timeout_ms(r.timeout_ms)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(topic.clone())
                        .with_partition_data(partitions),
                ]);
            let bytes = encode_request(&request, version, wire_correlation_id, &conn.client_id)?;
            (ApiKey::Produce, version, bytes, r.acks != 0)
        }
        IdempoRequest::Metadata(_) => {
            let version = conn.versions.need(ApiKey::Metadata, &conn.broker_apis)?;
            // Never create the topic from a refresh: it exists since bootstrap.
            let request = metadata_request(topic, false);
            let bytes = encode_request(&request, version, wire_correlation_id, &conn.client_id)?;
            (ApiKey::Metadata, version, bytes, true)
        }
        IdempoRequest::Fetch(_) => unreachable!("the producer never sends Fetch"),
    };
    let awaiting = answered.then_some(Awaiting {
        wire_correlation_id,
        producer_correlation_id: frame.correlation_id,
        api,
        version,
    });
    Ok((awaiting, bytes))
}

/// Translates a Kafka answer back into the idempo response the producer expects; a
/// Metadata answer also gives the brokers' addresses.
fn from_kafka(
    frame: Bytes,
    awaiting: Awaiting,
    topic: &TopicName,
) -> Result<(IdempoResponse, Option<BTreeMap<i32, String>>), ClientError> {
    let (version, correlation_id) = (awaiting.version, awaiting.wire_correlation_id);
    match awaiting.api {
        ApiKey::InitProducerId => {
            let r = decode_response::<InitProducerIdRequest>(frame, version, correlation_id)?;
            let response = IdempoResponse::InitProducerId(InitProducerIdResponse {
                error_code: error_code_from_kafka(r.error_code),
                producer_id: ProducerId(r.producer_id.0),
                producer_epoch: ProducerEpoch(r.producer_epoch),
            });
            Ok((response, None))
        }
        ApiKey::Produce => {
            let r = decode_response::<ProduceRequest>(frame, version, correlation_id)?;
            let partitions = r
                .responses
                .iter()
                .filter(|t| &t.name == topic)
                .flat_map(|t| t.partition_responses.iter())
                .map(|p| {
                    if p.error_code != 0 {
                        debug!(
                            partition = p.index,
                            error = %error_name(p.error_code),
                            message = ?p.error_message.as_ref().map(|m| m.as_str()),
                            "produce refused"
                        );
                    }
                    PartitionProduceResponse {
                        partition: p.index,
                        error_code: error_code_from_kafka(p.error_code),
                        base_offset: p.base_offset,
                        log_append_time_ms: p.log_append_time_ms,
                        log_start_offset: p.log_start_offset,
                    }
                })
                .collect();
            Ok((
                IdempoResponse::Produce(ProduceResponse { partitions }),
                None,
            ))
        }
        ApiKey::Metadata => {
            let r = decode_response::<MetadataRequest>(frame, version, correlation_id)?;
            let view = cluster_view(&r, topic);
            debug!(brokers = ?view.brokers, partitions = view.partitions.len(), "metadata");
            Ok((IdempoResponse::Metadata(view), Some(broker_addrs(&r))))
        }
        other => {
            unreachable!("only InitProducerId, Produce and Metadata await answers, not {other:?}")
        }
    }
}

/// The connection's writer: frames from the driver to the socket, several per write when
/// they queue up.
async fn write_frames(
    mut socket: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::Sender<ConnEvent>,
    node: i32,
    generation: u64,
) {
    while let Some(first) = frames.recv().await {
        let mut buf = BytesMut::from(&first[..]);
        while let Ok(more) = frames.try_recv() {
            buf.extend_from_slice(&more);
        }
        if let Err(e) = socket.write_all(&buf).await {
            let why = format!("write failed: {e}");
            let closed = ConnEvent::Closed {
                node,
                generation,
                why,
            };
            let _ = events.send(closed).await;
            return;
        }
    }
}

/// The connection's reader: whole frames from the socket to the driver.
async fn read_frames(
    mut socket: OwnedReadHalf,
    events: mpsc::Sender<ConnEvent>,
    node: i32,
    generation: u64,
) {
    let mut buf = BytesMut::new();
    loop {
        match read_response(&mut socket, &mut buf).await {
            Ok(frame) => {
                let event = ConnEvent::Frame {
                    node,
                    generation,
                    frame,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Err(end) => {
                let why = match end {
                    ReadEnd::Closed | ReadEnd::ClosedMidFrame { .. } => {
                        "the broker closed the connection".to_string()
                    }
                    other => other.to_string(),
                };
                let closed = ConnEvent::Closed {
                    node,
                    generation,
                    why,
                };
                let _ = events.send(closed).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_idempo_does_not_list_are_kept_with_their_number() {
        for &code in ErrorCode::ALL {
            assert_eq!(error_code_from_kafka(code.code()), code, "{code}");
        }
        // TRANSACTION_COORDINATOR_FENCED (63), and a code Kafka does not define.
        for code in [63, 9_999] {
            let mapped = error_code_from_kafka(code);
            assert_eq!(mapped, ErrorCode::Unknown(code));
            assert_eq!(mapped.code(), code, "the broker's number survives");
            assert!(!mapped.is_retriable());
        }
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(45), "OUT_OF_ORDER_SEQUENCE_NUMBER");
        assert_eq!(error_name(89), "THROTTLING_QUOTA_EXCEEDED");
        assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_name(9_999), "UNKNOWN(9999)");
    }

    #[test]
    fn versions_are_the_highest_both_sides_speak() {
        let broker = [
            ApiVersion::default()
                .with_api_key(ApiKey::Produce as i16)
                .with_min_version(0)
                .with_max_version(13),
            ApiVersion::default()
                .with_api_key(ApiKey::Fetch as i16)
                .with_min_version(0)
                .with_max_version(3),
            ApiVersion::default()
                .with_api_key(ApiKey::InitProducerId as i16)
                .with_min_version(0)
                .with_max_version(2),
        ];
        let v = Versions::from_broker(&broker);
        assert_eq!(v.produce, Some(11), "capped at ours");
        assert_eq!(v.init_producer_id, Some(2), "capped at theirs");
        assert_eq!(v.fetch, None, "theirs ends below our minimum");
        assert!(matches!(
            v.need(ApiKey::Fetch, &broker),
            Err(ClientError::UnsupportedApi {
                api: ApiKey::Fetch,
                broker: Some((0, 3))
            })
        ));
        assert_eq!(v.metadata, None, "not served at all");
    }
}
