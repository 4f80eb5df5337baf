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

/// Reads one partition from an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The partition.
    pub partition: i32,
    /// First offset wanted.
    pub fetch_offset: i64,
    /// Upper bound on the records bytes returned (at least one batch is always returned).
    pub max_bytes: i32,
}

/// The answer to [`FetchRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    /// The partition.
    pub partition: i32,
    /// `NONE`, `OFFSET_OUT_OF_RANGE` or `UNKNOWN_TOPIC_OR_PARTITION`.
    pub error_code: ErrorCode,
    /// The log end offset (one broker, so the high watermark is the log end).
    pub high_watermark: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// Concatenated record batches (see [`crate::decode_batches`]).
    pub records: Bytes,
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
