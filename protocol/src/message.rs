//! The requests and responses the broker core serves, as plain values (sans-IO messages).
//!
//! The producer core emits a [`RequestFrame`], the broker core answers it with a
//! [`ResponseFrame`], and whoever sits between them moves the values: the simulator hands
//! them over in memory (losing, delaying and duplicating them as its faults say), and the TCP
//! edge in `idempo-net` translates them to and from Kafka's own wire protocol, decoded with
//! the `kafka-protocol` crate. Field names and api keys are Kafka's; there is one topic per
//! broker and partitions are numbered.
//!
//! # Why there is no byte encoding here
//!
//! These messages once had a length-prefixed encoding of their own. Nothing spoke it but its
//! own tests: the real wire is Kafka's, and a second, private wire format that no peer
//! speaks would only be dead weight to keep in step, and would slow the simulator down (every
//! simulated request encoded and decoded again for no peer). So the values stay values. The
//! record batch inside a produce request *is* bytes, exactly as Kafka lays it out
//! ([`crate::record_batch`]): that is what a peer sends and what the broker validates, so
//! the simulator exercises the same batch decoding a real client's bytes meet.

use crate::error_code::ErrorCode;
use crate::types::{ProducerEpoch, ProducerId};
use bytes::Bytes;

/// Asks for a producer id. Idempotent producers send no transactional id; the broker answers
/// with a fresh id at epoch 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// Ignored without a transactional id; Kafka's Java client sends `i32::MAX`.
    pub transaction_timeout_ms: i32,
}

/// The answer to [`InitProducerIdRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// `NONE` on success.
    pub error_code: ErrorCode,
    /// The allocated producer id.
    pub producer_id: ProducerId,
    /// Its epoch, 0 for a fresh id.
    pub producer_epoch: ProducerEpoch,
}

/// One partition's batch in a produce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProduceData {
    /// Target partition.
    pub partition: i32,
    /// One encoded RecordBatch v2, as sent by the client (left undecoded so the broker can
    /// answer CORRUPT_MESSAGE for a damaged batch rather than failing the whole request).
    pub records: Bytes,
}

/// Writes batches to partitions, one batch per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceRequest {
    /// Required acks (-1 = all, as idempotence requires).
    pub acks: i16,
    /// How long the broker may wait for replication.
    pub timeout_ms: i32,
    /// The batches.
    pub partitions: Vec<PartitionProduceData>,
}

/// One partition's result in a produce response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionProduceResponse {
    /// The partition.
    pub partition: i32,
    /// `NONE` for an append *and* for a recognised duplicate.
    pub error_code: ErrorCode,
    /// Offset of the batch's first record (for a duplicate, the original's); -1 on error.
    pub base_offset: i64,
    /// Log append time, or -1 (CreateTime topics); for a duplicate, the original batch's
    /// max timestamp, as Kafka answers.
    pub log_append_time_ms: i64,
    /// The partition's log start offset.
    pub log_start_offset: i64,
}

/// The answer to [`ProduceRequest`], one entry per partition in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceResponse {
    /// Per-partition results.
    pub partitions: Vec<PartitionProduceResponse>,
}

/// Reads one partition from an offset: a consumer (`replica_id` = [`CONSUMER_REPLICA_ID`]) or
/// a follower replica fetching from its leader (Kafka's Fetch, with the fields of v12+ that
/// replication needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The partition.
    pub partition: i32,
    /// First offset wanted (a follower sends its log end offset).
    pub fetch_offset: i64,
    /// Upper bound on the records bytes returned (at least one batch is always returned).
    pub max_bytes: i32,
    /// The fetching broker's id, or [`CONSUMER_REPLICA_ID`] for a consumer. A follower's
    /// fetch tells the leader how far it has replicated (`Partition.updateFollowerFetchState`).
    pub replica_id: i32,
    /// The leader epoch the fetcher believes current, or [`NO_LEADER_EPOCH`] to skip the check.
    /// A lower epoch is answered `FENCED_LEADER_EPOCH`, a higher one `UNKNOWN_LEADER_EPOCH`
    /// (KIP-320).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch the fetcher holds, or [`NO_LEADER_EPOCH`] (Fetch v12+,
    /// KIP-595 / KIP-320): the leader checks it against its leader-epoch cache and answers a
    /// diverging epoch when the fetcher's log does not match its own.
    pub last_fetched_epoch: i32,
}

impl FetchRequest {
    /// A consumer's fetch: no replica id, no epoch checks.
    pub fn consumer(partition: i32, fetch_offset: i64, max_bytes: i32) -> FetchRequest {
        FetchRequest {
            partition,
            fetch_offset,
            max_bytes,
            replica_id: CONSUMER_REPLICA_ID,
            current_leader_epoch: NO_LEADER_EPOCH,
            last_fetched_epoch: NO_LEADER_EPOCH,
        }
    }
}

/// The `replica_id` of a fetch sent by a consumer, not by a broker (Kafka's
/// `FetchRequest.CONSUMER_REPLICA_ID`).
pub const CONSUMER_REPLICA_ID: i32 = -1;

/// "No epoch": Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`, used in requests to skip the
/// epoch check and in answers for "unknown".
pub const NO_LEADER_EPOCH: i32 = -1;

/// An epoch and the offset where it ends: the answer to "where does my log stop matching
/// yours?" (Kafka's `EpochEndOffset`, `FetchResponseData.EpochEndOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The largest epoch the leader knows that is at most the one asked about.
    pub epoch: i32,
    /// The leader's end offset of that epoch: the start offset of the next epoch, or its log
    /// end offset if `epoch` is the current one. The follower truncates to this (or to its
    /// own end of that epoch, whichever is lower).
    pub end_offset: i64,
}

/// The answer to [`FetchRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    /// The partition.
    pub partition: i32,
    /// `NONE`, `OFFSET_OUT_OF_RANGE`, `UNKNOWN_TOPIC_OR_PARTITION`, `NOT_LEADER_OR_FOLLOWER`,
    /// `FENCED_LEADER_EPOCH` or `UNKNOWN_LEADER_EPOCH`.
    pub error_code: ErrorCode,
    /// The leader's high watermark: consumers are answered only records below it.
    pub high_watermark: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// Set when the fetcher's `last_fetched_epoch` does not end where its `fetch_offset`
    /// says (Fetch v12+): no records are returned and the fetcher truncates.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Concatenated record batches (see [`crate::decode_batches`]).
    pub records: Bytes,
}

/// Asks which broker leads each partition (Kafka's Metadata, for the one topic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataRequest {}

/// One partition in a [`MetadataResponse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// `NONE`, or `LEADER_NOT_AVAILABLE` while the partition has no leader (offline).
    pub error_code: ErrorCode,
    /// The partition.
    pub partition: i32,
    /// The leader's broker id, or -1 when there is none.
    pub leader_id: i32,
    /// The current leader epoch.
    pub leader_epoch: i32,
    /// The assigned replicas, preferred leader first.
    pub replica_nodes: Vec<i32>,
    /// The in-sync replicas.
    pub isr_nodes: Vec<i32>,
}

impl PartitionMetadata {
    /// A partition's entry, its error code derived from the leader: `LEADER_NOT_AVAILABLE`
    /// when there is none (`leader_id` -1, an offline partition), else `NONE`. The one place
    /// that rule lives for every Metadata answer.
    pub fn new(
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        replica_nodes: Vec<i32>,
        isr_nodes: Vec<i32>,
    ) -> PartitionMetadata {
        PartitionMetadata {
            error_code: if leader_id < 0 {
                ErrorCode::LeaderNotAvailable
            } else {
                ErrorCode::None
            },
            partition,
            leader_id,
            leader_epoch,
            replica_nodes,
            isr_nodes,
        }
    }
}

/// The answer to [`MetadataRequest`]: the live brokers and every partition's leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataResponse {
    /// Ids of the brokers the answering broker knows to be alive.
    pub brokers: Vec<i32>,
    /// The controller's id (-1 when unknown).
    pub controller_id: i32,
    /// Per partition, in partition order.
    pub partitions: Vec<PartitionMetadata>,
}

/// Any request the broker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// Produce.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// Metadata.
    Metadata(MetadataRequest),
}

/// Any response the broker sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// Produce.
    Produce(ProduceResponse),
    /// Fetch.
    Fetch(FetchResponse),
    /// Metadata.
    Metadata(MetadataResponse),
}

/// A request with its correlation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFrame {
    /// Echoed in the response so the client can match them.
    pub correlation_id: i32,
    /// The request.
    pub request: Request,
}

/// A response with the correlation id of its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseFrame {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// The response.
    pub response: Response,
}
