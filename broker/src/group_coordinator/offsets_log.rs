//! Committed offsets on disk: an append-only log of commits, like `__consumer_offsets`,
//! replayed when the coordinator opens.
//!
//! One file, [`OFFSETS_FILE`], under the `groups/` prefix of the broker's [`Storage`]. Each
//! record is framed and checksummed, so a crash in the middle of an append (a torn tail) is
//! found at replay and cut off:
//!
//! ```text
//! record := length: u32 BE (of body) | crc32c(body): u32 BE | body
//! body   := 0u8 (commit) | group | topic | partition: i32 | offset: i64 | leader_epoch: i32
//!                         | metadata | commit_timestamp_ms: i64
//!         | 1u8 (group deleted) | group
//! string := length: u16 BE | UTF-8 bytes
//! ```
//!
//! Later records win, as in a compacted topic. When the file has grown to more than twice
//! the bytes of the live commits (and past [`COMPACT_MIN_BYTES`]), the coordinator rewrites
//! it with only the live commits, atomically ([`Storage::write_atomic`]), as Kafka's log
//! cleaner compacts `__consumer_offsets`.

use super::{CommittedOffset, TopicPartition};
use crate::storage::{Storage, StorageError};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// The file of committed offsets.
pub const OFFSETS_FILE: &str = "groups/offsets.log";

/// The log is not compacted below this size.
pub const COMPACT_MIN_BYTES: u64 = 1024 * 1024;

const KIND_COMMIT: u8 = 0;
const KIND_GROUP_DELETED: u8 = 1;
const FRAME_HEADER_BYTES: usize = 8;

/// One record of the offsets log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetRecord {
    /// An offset committed.
    Commit {
        /// The group.
        group_id: String,
        /// The partition.
        partition: TopicPartition,
        /// What was committed.
        offset: CommittedOffset,
    },
    /// The group and all its offsets were deleted.
    GroupDeleted {
        /// The group.
        group_id: String,
    },
}

/// What replaying the log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetsReplay {
    /// Records read back.
    pub records: usize,
    /// Bytes cut off the end: a torn or corrupt tail.
    pub truncated_bytes: u64,
}

fn put_str(buf: &mut BytesMut, s: &str) {
    // Lengths are bounded by the callers (group ids, topic names and metadata are checked
    // against u16 before a commit is accepted).
    let len = u16::try_from(s.len()).expect("strings of the offsets log fit a u16 length");
    buf.put_u16(len);
    buf.put_slice(s.as_bytes());
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    let len = usize::from(buf.try_get_u16().ok()?);
    let bytes = buf.get(..len)?;
    let s = std::str::from_utf8(bytes).ok()?.to_string();
    buf.advance(len);
    Some(s)
}

impl OffsetRecord {
    /// The record with its frame (length and CRC), ready to append.
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        match self {
            OffsetRecord::Commit {
                group_id,
                partition,
                offset,
            } => {
                body.put_u8(KIND_COMMIT);
                put_str(&mut body, group_id);
                put_str(&mut body, &partition.topic);
                body.put_i32(partition.partition);
                body.put_i64(offset.offset);
                body.put_i32(offset.leader_epoch);
                put_str(&mut body, &offset.metadata);
                body.put_i64(offset.commit_timestamp_ms);
            }
            OffsetRecord::GroupDeleted { group_id } => {
                body.put_u8(KIND_GROUP_DELETED);
                put_str(&mut body, group_id);
            }
        }
        let mut framed = BytesMut::with_capacity(FRAME_HEADER_BYTES + body.len());
        let len = u32::try_from(body.len()).expect("an offsets record is far below 4 GiB");
        framed.put_u32(len);
        framed.put_u32(crc32c::crc32c(&body));
        framed.put_slice(&body);
        framed.freeze()
    }

    fn decode_body(body: &[u8]) -> Option<OffsetRecord> {
        let (&kind, mut rest) = body.split_first()?;
        let buf = &mut rest;
        let record = match kind {
            KIND_COMMIT => {
                let group_id = get_str(buf)?;
                let topic = get_str(buf)?;
                let partition = buf.try_get_i32().ok()?;
                let offset = buf.try_get_i64().ok()?;
                let leader_epoch = buf.try_get_i32().ok()?;
                let metadata = get_str(buf)?;
                let commit_timestamp_ms = buf.try_get_i64().ok()?;
                OffsetRecord::Commit {
                    group_id,
                    partition: TopicPartition { topic, partition },
                    offset: CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms,
                    },
                }
            }
            KIND_GROUP_DELETED => OffsetRecord::GroupDeleted {
                group_id: get_str(buf)?,
            },
            _ => return None,
        };
        buf.is_empty().then_some(record)
    }
}

/// Reads every whole, valid record of the log in order, and cuts off whatever follows the
/// last one (a torn tail from a crash inside an append).
pub fn replay(
    storage: &mut impl Storage,
) -> Result<(Vec<OffsetRecord>, OffsetsReplay), StorageError> {
    let Ok(content) = storage.read_all(OFFSETS_FILE) else {
        return Ok((Vec::new(), OffsetsReplay::default()));
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some((record, len)) = next_record(&content[at..]) {
        records.push(record);
        at += len;
    }
    let valid = at as u64;
    let truncated_bytes = content.len() as u64 - valid;
    if truncated_bytes > 0 {
        storage.truncate(OFFSETS_FILE, valid)?;
        storage.sync(OFFSETS_FILE)?;
    }
    let report = OffsetsReplay {
        records: records.len(),
        truncated_bytes,
    };
    Ok((records, report))
}

/// The record at the start of `bytes` and its framed length, if whole and valid.
fn next_record(bytes: &[u8]) -> Option<(OffsetRecord, usize)> {
    let header = bytes.first_chunk::<FRAME_HEADER_BYTES>()?;
    let len = usize::try_from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]))
    .ok()?;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let body = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES.checked_add(len)?)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let record = OffsetRecord::decode_body(body)?;
    Some((record, FRAME_HEADER_BYTES + len))
}

/// Appends `records` and syncs the file: a commit is answered only once it is durable.
pub fn append(storage: &mut impl Storage, records: &[OffsetRecord]) -> Result<u64, StorageError> {
    let encoded: Vec<Bytes> = records.iter().map(OffsetRecord::encode).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(|b| &b[..]).collect();
    storage.append_vectored(OFFSETS_FILE, &parts)?;
    storage.sync(OFFSETS_FILE)?;
    Ok(encoded.iter().map(|b| b.len() as u64).sum())
}

/// Replaces the log with one commit record per live offset, atomically, and syncs it.
/// Returns the new file length.
pub fn rewrite(
    storage: &mut impl Storage,
    live: &BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
) -> Result<u64, StorageError> {
    let mut content = BytesMut::new();
    for (group_id, offsets) in live {
        for (partition, offset) in offsets {
            content.put_slice(
                &OffsetRecord::Commit {
                    group_id: group_id.clone(),
                    partition: partition.clone(),
                    offset: offset.clone(),
                }
                .encode(),
            );
        }
    }
    storage.write_atomic(OFFSETS_FILE, &content)?;
    storage.sync(OFFSETS_FILE)?;
    Ok(content.len() as u64)
}

/// The framed size of a commit record, to keep the count of live bytes.
pub fn commit_record_bytes(group_id: &str, partition: &TopicPartition, metadata: &str) -> u64 {
    // kind + 3 string lengths + partition + offset + epoch + timestamp
    let fixed = 1 + 2 * 3 + 4 + 8 + 4 + 8;
    (FRAME_HEADER_BYTES + fixed + group_id.len() + partition.topic.len() + metadata.len()) as u64
}
