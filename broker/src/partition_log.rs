//! A partition's append-only log, in memory.
//!
//! The log stores each batch's bytes exactly as they will be fetched: the client's batch with
//! the base offset and partition leader epoch filled in (neither is covered by the CRC, so the
//! batch stays valid). Offsets are dense: a batch of `n` records takes the next `n` offsets.
//!
//! `log_start_offset` is the first offset still readable; DeleteRecords moves it forward and
//! drops whole batches that end before it. `log_end_offset` (LEO) is the offset the next
//! record will get. With a single broker the high watermark is the LEO.

use bytes::{Bytes, BytesMut};
use idempo_protocol::{BatchHeader, record_batch::set_base_offset};
use std::collections::VecDeque;

/// One batch as stored, with its header parsed for replay and fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// The header with the assigned base offset.
    pub header: BatchHeader,
    /// The encoded batch as stored (base offset assigned).
    pub bytes: Bytes,
}

impl StoredBatch {
    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }
}

/// Partition leader epoch written into appended batches. One broker never changes leader.
pub const LEADER_EPOCH: i32 = 0;

/// An in-memory append-only log of record batches.
#[derive(Clone, Debug, Default)]
pub struct PartitionLog {
    batches: VecDeque<StoredBatch>,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl PartitionLog {
    /// An empty log starting at offset 0.
    pub fn new() -> PartitionLog {
        PartitionLog::default()
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Retained batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &StoredBatch> {
        self.batches.iter()
    }

    /// Appends a validated batch at the log end and returns its base offset.
    pub fn append(&mut self, header: &BatchHeader, client_bytes: &[u8]) -> i64 {
        let base_offset = self.log_end_offset;
        let mut bytes = BytesMut::from(client_bytes);
        set_base_offset(&mut bytes, base_offset);
        bytes[12..16].copy_from_slice(&LEADER_EPOCH.to_be_bytes());
        let mut header = *header;
        header.base_offset = base_offset;
        header.partition_leader_epoch = LEADER_EPOCH;
        self.log_end_offset = header.last_offset() + 1;
        self.batches.push_back(StoredBatch {
            header,
            bytes: bytes.freeze(),
        });
        base_offset
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords) and drops batches that
    /// end before it. Producer state is *not* touched (Kafka 2.5+, KAFKA-7190).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if offset > self.log_end_offset || offset < 0 {
            return Err(DeleteRecordsError::OffsetOutOfRange {
                offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            while self
                .batches
                .front()
                .is_some_and(|b| b.last_offset() < offset)
            {
                self.batches.pop_front();
            }
        }
        Ok(self.log_start_offset)
    }

    /// Batches holding offsets from `fetch_offset` on, concatenated, up to `max_bytes` (but
    /// always at least one batch, as Kafka returns). `None` when `fetch_offset` is outside
    /// `log_start_offset..=log_end_offset`.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Option<Bytes> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return None;
        }
        let first = self
            .batches
            .partition_point(|b| b.last_offset() < fetch_offset);
        let mut out = BytesMut::new();
        for batch in self.batches.range(first..) {
            if !out.is_empty() && out.len() + batch.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&batch.bytes);
        }
        Some(out.freeze())
    }

    /// Bytes of batch data retained.
    pub fn size_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.bytes.len()).sum()
    }
}

/// Why DeleteRecords was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteRecordsError {
    /// The offset is negative or beyond the log end (Kafka's OFFSET_OUT_OF_RANGE).
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The log end offset.
        log_end_offset: i64,
    },
}

impl std::fmt::Display for DeleteRecordsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteRecordsError::OffsetOutOfRange {
                offset,
                log_end_offset,
            } => write!(
                f,
                "OFFSET_OUT_OF_RANGE: offset {offset} is outside 0..={log_end_offset} (the log end)"
            ),
        }
    }
}

impl std::error::Error for DeleteRecordsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::{
        ProducerEpoch, ProducerId, Record, RecordBatch, Sequence, decode_batches,
    };

    fn batch(n: i32) -> Bytes {
        let records = (0..n)
            .map(|i| Record::with_value(i, format!("v{i}")))
            .collect();
        RecordBatch::idempotent(ProducerId(1), ProducerEpoch(0), Sequence(0), 5, records).to_bytes()
    }

    fn append(log: &mut PartitionLog, n: i32) -> i64 {
        let bytes = batch(n);
        let header = BatchHeader::parse(&bytes).unwrap();
        log.append(&header, &bytes)
    }

    #[test]
    fn offsets_are_dense_and_stored_bytes_stay_valid() {
        let mut log = PartitionLog::new();
        assert_eq!(append(&mut log, 3), 0);
        assert_eq!(append(&mut log, 2), 3);
        assert_eq!(log.log_end_offset(), 5);
        let all = decode_batches(log.read(0, usize::MAX).unwrap()).unwrap();
        assert_eq!(
            all.iter().map(|b| b.base_offset).collect::<Vec<_>>(),
            vec![0, 3]
        );
    }

    #[test]
    fn read_starts_at_the_batch_holding_the_offset_and_returns_at_least_one() {
        let mut log = PartitionLog::new();
        append(&mut log, 3);
        append(&mut log, 3);
        let got = decode_batches(log.read(4, 1).unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].base_offset, 3);
        assert_eq!(log.read(6, 100).unwrap().len(), 0);
        assert!(log.read(7, 100).is_none());
    }

    #[test]
    fn delete_records_drops_whole_batches_before_the_new_start() {
        let mut log = PartitionLog::new();
        append(&mut log, 3);
        append(&mut log, 3);
        assert_eq!(log.delete_records_before(4), Ok(4));
        assert_eq!(
            log.batches().len(),
            1,
            "the batch 3..5 still holds offset 4"
        );
        assert!(log.read(2, 100).is_none());
        assert!(log.delete_records_before(7).is_err());
        assert_eq!(log.delete_records_before(1), Ok(4), "never moves backwards");
    }
}
