//! # idempo-protocol: the bytes that cross the wire
//!
//! An idempotent producer stamps every batch with three numbers, its **producer id**, its
//! **epoch** and the **base sequence** of the batch's first record, so that a broker which
//! sees the same batch twice (because an acknowledgement was lost and the producer retried)
//! can tell. This crate defines those batches exactly as Kafka lays them out (RecordBatch v2,
//! magic 2, CRC-32C) and the small framed request/response protocol idempo's broker serves.
//!
//! Decoding is total: any input gives a value or a typed [`DecodeError`] naming the field,
//! never a panic, and an incomplete frame is reported as [`FrameCheck::Incomplete`], not as
//! an error.
//!
//! ## Layout
//! - [`types`]: `ProducerId`, `ProducerEpoch`, `Sequence` (wrap-aware arithmetic).
//! - [`error_code`]: Kafka's error codes with their names and numbers.
//! - [`record_batch`]: RecordBatch v2, byte for byte, with the layout table.
//! - [`message`]: InitProducerId, Produce and Fetch requests and responses.
//! - [`frame`]: length-prefixed framing, check-then-parse.
//! - `decode`: the typed error and the bounds-checked reader.

mod decode;
pub mod error_code;
pub mod frame;
pub mod message;
pub mod record_batch;
pub mod types;

pub use decode::DecodeError;
pub use error_code::ErrorCode;
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameCheck, RequestFrame, ResponseFrame, check};
pub use message::{
    ApiKey, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse,
    PartitionProduceData, PartitionProduceResponse, ProduceRequest, ProduceResponse, Request,
    Response,
};
pub use record_batch::{
    BatchHeader, Header, RECORD_BATCH_OVERHEAD, Record, RecordBatch, RecordRef, decode_batches,
    set_base_offset, validate, verify_crc, visit_records,
};
pub use types::{ProducerEpoch, ProducerId, Sequence};
