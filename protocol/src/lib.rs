//! # idempo-protocol: the bytes that cross the wire
//!
//! An idempotent producer stamps every batch with three numbers, its **producer id**, its
//! **epoch** and the **base sequence** of the batch's first record, so that a broker which
//! sees the same batch twice (because an acknowledgement was lost and the producer retried)
//! can tell. This crate defines those batches exactly as Kafka lays them out (RecordBatch v2,
//! magic 2, CRC-32C), Kafka's error codes, and the requests and responses the producer and
//! broker cores exchange as plain values (the bytes on a real wire are Kafka's own protocol,
//! translated at the TCP edge in `idempo-net`).
//!
//! Decoding is total: any input gives a value or a typed [`DecodeError`] naming the field,
//! never a panic.
//!
//! ## Layout
//! - [`types`]: `ProducerId`, `ProducerEpoch`, `Sequence` (wrap-aware arithmetic).
//! - [`error_code`]: Kafka's error codes with their names and numbers.
//! - [`record_batch`]: RecordBatch v2, byte for byte, with the layout table.
//! - [`compression`]: gzip, snappy, lz4 and zstd record sections, decompressed within a
//!   bound (`message.max.bytes`), never sized from what the input announces.
//! - [`message`]: InitProducerId, Produce and Fetch requests and responses, with their
//!   correlation ids, as values (and why they have no byte encoding of their own).
//! - `decode`: the typed error and the bounds-checked reader.

pub mod compression;
mod decode;
pub mod error_code;
pub mod message;
pub mod record_batch;
pub mod types;

pub use compression::Compression;
pub use decode::DecodeError;
pub use error_code::ErrorCode;
pub use message::{
    CONSUMER_REPLICA_ID, EpochEndOffset, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, NO_LEADER_EPOCH, PartitionMetadata,
    PartitionProduceData, PartitionProduceResponse, ProduceRequest, ProduceResponse, Request,
    RequestFrame, Response, ResponseFrame,
};
pub use record_batch::{
    BatchHeader, Header, RECORD_BATCH_OVERHEAD, Record, RecordBatch, RecordRef, RecordsSummary,
    decode_batches, set_base_offset, set_partition_leader_epoch, validate, validate_records,
    validate_records_within, verify_crc, visit_records,
};
pub use types::{ProducerEpoch, ProducerId, Sequence};
