//! The requests and responses idempo's broker serves, and their body layouts.
//!
//! These are idempo's own compact messages, modelled on Kafka's and using Kafka's api keys and
//! field names, with one topic per broker (partitions are numbered). Issue-level Kafka wire
//! compatibility lives at the TCP edge, not here. Every body is written explicitly with
//! `bytes`, big-endian:
//!
//! ```text
//! InitProducerId request   transactionTimeoutMs i32
//! InitProducerId response  errorCode i16 | producerId i64 | producerEpoch i16
//! Produce request          acks i16 | timeoutMs i32 | count i32 |
//!                          count x (partition i32 | recordsLength i32 | records bytes)
//! Produce response         count i32 |
//!                          count x (partition i32 | errorCode i16 | baseOffset i64 |
//!                                   logAppendTimeMs i64 | logStartOffset i64)
//! Fetch request            partition i32 | fetchOffset i64 | maxBytes i32
//! Fetch response           partition i32 | errorCode i16 | highWatermark i64 |
//!                          logStartOffset i64 | recordsLength i32 | records bytes
//! ```

use crate::decode::{DecodeError, Reader};
use crate::error_code::ErrorCode;
use crate::types::{ProducerEpoch, ProducerId};
use bytes::{BufMut, Bytes, BytesMut};

/// Kafka's api keys for the messages idempo serves.
#[repr(i16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiKey {
    /// Produce (0).
    Produce = 0,
    /// Fetch (1).
    Fetch = 1,
    /// InitProducerId (22).
    InitProducerId = 22,
}

impl ApiKey {
    /// The api key for a wire number.
    pub fn from_i16(key: i16) -> Result<ApiKey, DecodeError> {
        match key {
            0 => Ok(ApiKey::Produce),
            1 => Ok(ApiKey::Fetch),
            22 => Ok(ApiKey::InitProducerId),
            other => Err(DecodeError::UnknownApiKey(other)),
        }
    }
}

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

impl Request {
    /// The api key of this request.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::InitProducerId(_) => ApiKey::InitProducerId,
            Request::Produce(_) => ApiKey::Produce,
            Request::Fetch(_) => ApiKey::Fetch,
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        match self {
            Request::InitProducerId(r) => buf.put_i32(r.transaction_timeout_ms),
            Request::Produce(r) => {
                buf.put_i16(r.acks);
                buf.put_i32(r.timeout_ms);
                buf.put_i32(r.partitions.len() as i32);
                for p in &r.partitions {
                    buf.put_i32(p.partition);
                    buf.put_i32(p.records.len() as i32);
                    buf.put_slice(&p.records);
                }
            }
            Request::Fetch(r) => {
                buf.put_i32(r.partition);
                buf.put_i64(r.fetch_offset);
                buf.put_i32(r.max_bytes);
            }
        }
    }

    pub(crate) fn decode_body(key: ApiKey, body: Bytes) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        let request = match key {
            ApiKey::InitProducerId => Request::InitProducerId(InitProducerIdRequest {
                transaction_timeout_ms: r.i32("init_producer_id.transactionTimeoutMs")?,
            }),
            ApiKey::Produce => {
                let acks = r.i16("produce.acks")?;
                let timeout_ms = r.i32("produce.timeoutMs")?;
                let n = r.count("produce.partitions", 8)?;
                let mut partitions = Vec::with_capacity(n);
                for _ in 0..n {
                    let partition = r.i32("produce.partitions.partition")?;
                    let len = r.count("produce.partitions.records", 1)?;
                    let records = r.bytes(len, "produce.partitions.records")?;
                    partitions.push(PartitionProduceData { partition, records });
                }
                Request::Produce(ProduceRequest {
                    acks,
                    timeout_ms,
                    partitions,
                })
            }
            ApiKey::Fetch => Request::Fetch(FetchRequest {
                partition: r.i32("fetch.partition")?,
                fetch_offset: r.i64("fetch.fetchOffset")?,
                max_bytes: r.i32("fetch.maxBytes")?,
            }),
        };
        r.finish("request body")?;
        Ok(request)
    }
}

fn error_code(r: &mut Reader, field: &'static str) -> Result<ErrorCode, DecodeError> {
    let code = r.i16(field)?;
    ErrorCode::from_code(code).ok_or(DecodeError::InvalidValue {
        field,
        value: i64::from(code),
        expected: "a known Kafka error code",
    })
}

impl Response {
    /// The api key of this response.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Response::InitProducerId(_) => ApiKey::InitProducerId,
            Response::Produce(_) => ApiKey::Produce,
            Response::Fetch(_) => ApiKey::Fetch,
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        match self {
            Response::InitProducerId(r) => {
                buf.put_i16(r.error_code.code());
                buf.put_i64(r.producer_id.0);
                buf.put_i16(r.producer_epoch.0);
            }
            Response::Produce(r) => {
                buf.put_i32(r.partitions.len() as i32);
                for p in &r.partitions {
                    buf.put_i32(p.partition);
                    buf.put_i16(p.error_code.code());
                    buf.put_i64(p.base_offset);
                    buf.put_i64(p.log_append_time_ms);
                    buf.put_i64(p.log_start_offset);
                }
            }
            Response::Fetch(r) => {
                buf.put_i32(r.partition);
                buf.put_i16(r.error_code.code());
                buf.put_i64(r.high_watermark);
                buf.put_i64(r.log_start_offset);
                buf.put_i32(r.records.len() as i32);
                buf.put_slice(&r.records);
            }
        }
    }

    pub(crate) fn decode_body(key: ApiKey, body: Bytes) -> Result<Response, DecodeError> {
        let mut r = Reader::new(body);
        let response = match key {
            ApiKey::InitProducerId => Response::InitProducerId(InitProducerIdResponse {
                error_code: error_code(&mut r, "init_producer_id.errorCode")?,
                producer_id: ProducerId(r.i64("init_producer_id.producerId")?),
                producer_epoch: ProducerEpoch(r.i16("init_producer_id.producerEpoch")?),
            }),
            ApiKey::Produce => {
                let n = r.count("produce_response.partitions", 30)?;
                let mut partitions = Vec::with_capacity(n);
                for _ in 0..n {
                    partitions.push(PartitionProduceResponse {
                        partition: r.i32("produce_response.partition")?,
                        error_code: error_code(&mut r, "produce_response.errorCode")?,
                        base_offset: r.i64("produce_response.baseOffset")?,
                        log_append_time_ms: r.i64("produce_response.logAppendTimeMs")?,
                        log_start_offset: r.i64("produce_response.logStartOffset")?,
                    });
                }
                Response::Produce(ProduceResponse { partitions })
            }
            ApiKey::Fetch => {
                let partition = r.i32("fetch_response.partition")?;
                let error_code = error_code(&mut r, "fetch_response.errorCode")?;
                let high_watermark = r.i64("fetch_response.highWatermark")?;
                let log_start_offset = r.i64("fetch_response.logStartOffset")?;
                let len = r.count("fetch_response.records", 1)?;
                let records = r.bytes(len, "fetch_response.records")?;
                Response::Fetch(FetchResponse {
                    partition,
                    error_code,
                    high_watermark,
                    log_start_offset,
                    records,
                })
            }
        };
        r.finish("response body")?;
        Ok(response)
    }
}
