//! Producer-state snapshots: the dedup state written to a file so a restart need not replay
//! the whole log.
//!
//! # What Kafka does
//!
//! Producer state lives in memory. To rebuild it after a restart without reading every
//! segment, Kafka writes the whole producer map to `<20-digit offset>.snapshot` in the
//! partition directory: on every segment roll, on clean shutdown and after recovery, skipping
//! a snapshot when nothing changed since the last (docs/KAFKA-RULES.md §1.12). A snapshot at offset
//! `o` holds the state after every batch below `o`. On load, the newest valid snapshot at or
//! below the log end is read, producers already expired are dropped (`loadFromSnapshot`), and
//! the log from `o` on is replayed without validation. Kafka's `ProducerSnapshot` v1 is
//! `version i16 | crc u32 | entries[]`, the CRC-32C covering everything after the CRC field;
//! a bad version, a parse failure or a CRC mismatch makes the file corrupt, it is deleted and
//! the next older one is tried.
//!
//! **Kafka's entry holds only the producer's *last* batch** (`lastSequence`, `lastOffset`,
//! `offsetDelta`, `timestamp`). So after a restart each producer's dedup window holds one
//! batch (plus any replayed after the snapshot), and a client retry of the second-newest batch
//! is answered `OUT_OF_ORDER_SEQUENCE_NUMBER` instead of as a duplicate: a Java producer then
//! bumps its epoch and may write that batch a second time.
//!
//! # What we do
//!
//! [`SnapshotMode`] chooses:
//!
//! * [`SnapshotMode::FullWindow`] (the default, idempo's improvement): every retained batch
//!   of every producer is written, so the state after loading a snapshot and replaying the
//!   rest of the log equals the state before the restart, and a restart never shrinks the
//!   window.
//! * [`SnapshotMode::LastBatchOnly`]: Kafka's content, one batch per producer, to show the
//!   shrinking window and the `OUT_OF_ORDER_SEQUENCE_NUMBER` it causes.
//!
//! ```text
//! window before restart | FullWindow after restart | LastBatchOnly after restart
//! 0..2, 3..5, 6..8      | 0..2, 3..5, 6..8         | 6..8
//! retry of 3..5         | duplicate, offset 3      | OUT_OF_ORDER_SEQUENCE_NUMBER (expected 9)
//! ```
//!
//! The broker takes snapshots every `snapshot_interval_ms` of broker time (when told the time)
//! for each partition whose log end moved since its last snapshot, at clean shutdown, and
//! after a recovery that replayed batches; it keeps the newest `snapshots_retained` files.
//! Snapshot files are written atomically and synced at once, but the log is synced only as
//! the `SyncPolicy` says, so after a crash a snapshot may lie beyond the recovered log end:
//! recovery deletes it and falls back to an older one (`recovery`).
//!
//! # Byte layout (idempo snapshot version 1)
//!
//! All integers big-endian, as in Kafka.
//!
//! ```text
//! offset | size | field
//! 0      | 2    | version          i16, = 1
//! 2      | 4    | crc              u32, CRC-32C (Castagnoli) of bytes 6..end
//! 6      | 8    | snapshot offset  i64, the log end offset the state covers
//! 14     | 1    | mode             i8, 0 = FullWindow, 1 = LastBatchOnly
//! 15     | 4    | entry count      i32
//! 19     | ...  | entries, ascending producer id:
//!        | 8    |   producer id      i64
//!        | 2    |   producer epoch   i16
//!        | 8    |   last timestamp   i64 (max timestamp of the last batch; expiry)
//!        | 4    |   batch count      i32 (1 in LastBatchOnly mode)
//!        | 24 n |   batches, oldest first:
//!        |      |     last sequence  i32
//!        |      |     offset delta   i32 (last offset - first offset)
//!        |      |     last offset    i64
//!        |      |     timestamp      i64 (the batch's max timestamp)
//! ```
//!
//! Decoding is total: any byte string yields a snapshot or a [`SnapshotError`], never a
//! panic, and counts are checked against the bytes left before anything is allocated.
//!
//! # Differences from Kafka
//!
//! * **The default keeps the whole window** (`FullWindow`); Kafka's snapshots keep one batch
//!   per producer, which `LastBatchOnly` reproduces. This is the one deliberate behavioural
//!   improvement in the broker.
//! * The layout is ours, not `ProducerSnapshot` v1: it adds the snapshot offset and the mode
//!   to the body, a batch list per entry, and drops the transaction fields (`coordinatorEpoch`,
//!   `currentTxnFirstOffset`), which idempo does not model. Version, CRC placement and CRC
//!   coverage are Kafka's.
//! * Snapshots are taken on a timer, at clean shutdown and after recovery, not on segment
//!   roll, and are synced when written (Kafka flushes them asynchronously).

use crate::producer_state::{BatchMetadata, ProducerStateManager};
use crate::storage::{Storage, StorageError};
use idempo_protocol::{ProducerEpoch, ProducerId, Sequence};
use std::fmt;

/// Which batches of each producer a snapshot keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Every retained batch: a restart keeps the whole dedup window (idempo's default).
    #[default]
    FullWindow,
    /// Only the last batch, as Kafka's `ProducerSnapshot`: after a restart the window holds
    /// one batch plus those replayed from the log.
    LastBatchOnly,
}

impl SnapshotMode {
    fn code(self) -> i8 {
        match self {
            SnapshotMode::FullWindow => 0,
            SnapshotMode::LastBatchOnly => 1,
        }
    }
}

/// The snapshot layout version written and accepted.
pub const SNAPSHOT_VERSION: i16 = 1;

/// Suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// Bytes before the entries: version, CRC, offset, mode, entry count.
const HEADER_BYTES: usize = 19;
/// Bytes of an entry before its batches.
const ENTRY_BYTES: usize = 22;
/// Bytes of one batch.
const BATCH_BYTES: usize = 24;
/// Where the CRC-covered body starts.
const BODY_OFFSET: usize = 6;

/// The snapshot's file name in the partition directory `dir`.
pub fn snapshot_file(dir: &str, offset: i64) -> String {
    format!("{dir}{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset in a snapshot file's name, if `file` is one under `dir`.
pub fn snapshot_offset_of(dir: &str, file: &str) -> Option<i64> {
    file.strip_prefix(dir)?
        .strip_suffix(SNAPSHOT_SUFFIX)?
        .parse()
        .ok()
        .filter(|o: &i64| *o >= 0)
}

/// One producer as a snapshot holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The producer.
    pub producer_id: ProducerId,
    /// Its epoch.
    pub producer_epoch: ProducerEpoch,
    /// Max timestamp of its last batch (what expiry is judged against).
    pub last_timestamp: i64,
    /// Its retained batches, oldest first.
    pub batches: Vec<BatchMetadata>,
}

/// A decoded snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerSnapshot {
    /// The log end offset the state covers: replay resumes here.
    pub offset: i64,
    /// How it was written.
    pub mode: SnapshotMode,
    /// The producers, ascending id.
    pub entries: Vec<SnapshotEntry>,
}

/// Why a snapshot file was refused (Kafka's `CorruptSnapshotException`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The file ends inside a field.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A version this code does not read.
    UnsupportedVersion(i16),
    /// The CRC-32C does not match the body.
    CrcMismatch {
        /// CRC in the file.
        stored: u32,
        /// CRC computed over the body.
        computed: u32,
    },
    /// A count or mode outside its range.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// Bytes after the last entry.
    TrailingBytes(usize),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Truncated {
                field,
                needed,
                remaining,
            } => write!(
                f,
                "corrupt snapshot: {field} needs {needed} bytes, {remaining} left"
            ),
            SnapshotError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "corrupt snapshot: version {v}, expected {SNAPSHOT_VERSION}"
                )
            }
            SnapshotError::CrcMismatch { stored, computed } => write!(
                f,
                "corrupt snapshot: CRC {stored:#010x} stored, {computed:#010x} computed"
            ),
            SnapshotError::InvalidValue { field, value } => {
                write!(f, "corrupt snapshot: {field} = {value}")
            }
            SnapshotError::TrailingBytes(n) => {
                write!(f, "corrupt snapshot: {n} bytes after the last entry")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

impl ProducerSnapshot {
    /// Encodes `state` as a snapshot at `offset` (layout in the module docs).
    pub fn encode_state(state: &ProducerStateManager, offset: i64, mode: SnapshotMode) -> Vec<u8> {
        let entries = state.entries();
        let mut out = Vec::with_capacity(
            HEADER_BYTES + entries.len() * (ENTRY_BYTES + state.window() * BATCH_BYTES),
        );
        write_header(&mut out, offset, mode, entries.len());
        for (producer_id, entry) in entries {
            let skip = match mode {
                SnapshotMode::FullWindow => 0,
                SnapshotMode::LastBatchOnly => entry.batches().len().saturating_sub(1),
            };
            write_entry(
                &mut out,
                producer_id,
                entry.producer_epoch,
                entry.last_timestamp,
                entry.batches().skip(skip),
            );
        }
        finish(out)
    }

    /// Encodes this snapshot as it is (its batches, its mode).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, self.offset, self.mode, self.entries.len());
        for e in &self.entries {
            write_entry(
                &mut out,
                e.producer_id,
                e.producer_epoch,
                e.last_timestamp,
                e.batches.iter(),
            );
        }
        finish(out)
    }

    /// Decodes a snapshot file, checking version, CRC, counts and length.
    pub fn decode(bytes: &[u8]) -> Result<ProducerSnapshot, SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        let version = i16::from_be_bytes(r.take("version")?);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let stored = u32::from_be_bytes(r.take("crc")?);
        let computed = crc32c::crc32c(&bytes[BODY_OFFSET..]);
        if stored != computed {
            return Err(SnapshotError::CrcMismatch { stored, computed });
        }
        let offset = i64::from_be_bytes(r.take("snapshot offset")?);
        if offset < 0 {
            return Err(SnapshotError::InvalidValue {
                field: "snapshot offset",
                value: offset,
            });
        }
        let mode = match i8::from_be_bytes(r.take("mode")?) {
            0 => SnapshotMode::FullWindow,
            1 => SnapshotMode::LastBatchOnly,
            m => {
                return Err(SnapshotError::InvalidValue {
                    field: "mode",
                    value: i64::from(m),
                });
            }
        };
        let count = r.count("entry count", ENTRY_BYTES)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let producer_id = ProducerId(i64::from_be_bytes(r.take("producer id")?));
            let producer_epoch = ProducerEpoch(i16::from_be_bytes(r.take("producer epoch")?));
            let last_timestamp = i64::from_be_bytes(r.take("last timestamp")?);
            let n = r.count("batch count", BATCH_BYTES)?;
            let mut batches = Vec::with_capacity(n);
            for _ in 0..n {
                batches.push(BatchMetadata {
                    last_sequence: Sequence(i32::from_be_bytes(r.take("last sequence")?)),
                    offset_delta: i32::from_be_bytes(r.take("offset delta")?),
                    last_offset: i64::from_be_bytes(r.take("last offset")?),
                    timestamp: i64::from_be_bytes(r.take("timestamp")?),
                });
            }
            entries.push(SnapshotEntry {
                producer_id,
                producer_epoch,
                last_timestamp,
                batches,
            });
        }
        if r.at != bytes.len() {
            return Err(SnapshotError::TrailingBytes(bytes.len() - r.at));
        }
        Ok(ProducerSnapshot {
            offset,
            mode,
            entries,
        })
    }

    /// Installs the entries into `state`, skipping producers already expired at `now_ms`
    /// (Kafka's `loadFromSnapshot`). Returns how many were skipped.
    pub fn load_into(
        &self,
        state: &mut ProducerStateManager,
        now_ms: i64,
        expiration_ms: i64,
    ) -> usize {
        let mut expired = 0;
        for e in &self.entries {
            if now_ms.saturating_sub(e.last_timestamp) >= expiration_ms {
                expired += 1;
                continue;
            }
            state.restore(
                e.producer_id,
                e.producer_epoch,
                e.last_timestamp,
                &e.batches,
            );
        }
        expired
    }
}

fn write_header(out: &mut Vec<u8>, offset: i64, mode: SnapshotMode, entries: usize) {
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, filled in by `finish`
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&mode.code().to_be_bytes());
    out.extend_from_slice(&count_i32(entries).to_be_bytes());
}

fn write_entry<'a>(
    out: &mut Vec<u8>,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    last_timestamp: i64,
    batches: impl ExactSizeIterator<Item = &'a BatchMetadata>,
) {
    out.extend_from_slice(&producer_id.0.to_be_bytes());
    out.extend_from_slice(&producer_epoch.0.to_be_bytes());
    out.extend_from_slice(&last_timestamp.to_be_bytes());
    out.extend_from_slice(&count_i32(batches.len()).to_be_bytes());
    for b in batches {
        out.extend_from_slice(&b.last_sequence.0.to_be_bytes());
        out.extend_from_slice(&b.offset_delta.to_be_bytes());
        out.extend_from_slice(&b.last_offset.to_be_bytes());
        out.extend_from_slice(&b.timestamp.to_be_bytes());
    }
}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).expect("producers and windows are bounded far below i32::MAX")
}

/// Fills in the CRC-32C of the body.
fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&out[BODY_OFFSET..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The offsets of the snapshot files in partition directory `dir`, ascending.
pub fn list_snapshots<S: Storage>(storage: &S, dir: &str) -> Vec<i64> {
    snapshot_files(storage, dir)
        .into_iter()
        .map(|(o, _)| o)
        .collect()
}

/// The snapshot files in `dir` with their offsets, ascending offset.
fn snapshot_files<S: Storage>(storage: &S, dir: &str) -> Vec<(i64, String)> {
    let mut files: Vec<(i64, String)> = storage
        .list(dir)
        .into_iter()
        .filter_map(|f| Some((snapshot_offset_of(dir, &f)?, f)))
        .collect();
    files.sort_unstable();
    files
}

/// Writes `state` as the snapshot at `offset` in `dir` (atomically, then synced) and deletes
/// the oldest snapshots beyond `retained`.
pub fn write_snapshot<S: Storage>(
    storage: &mut S,
    dir: &str,
    state: &ProducerStateManager,
    offset: i64,
    mode: SnapshotMode,
    retained: usize,
) -> Result<(), StorageError> {
    let file = snapshot_file(dir, offset);
    storage.write_atomic(&file, &ProducerSnapshot::encode_state(state, offset, mode))?;
    storage.sync(&file)?;
    let files = snapshot_files(storage, dir);
    for (_, old) in &files[..files.len().saturating_sub(retained.max(1))] {
        storage.remove(old)?;
    }
    Ok(())
}

/// Deletes the snapshots in `dir` below `offset` (Kafka's `deleteSnapshotsBefore`, run when
/// the log start offset moves).
pub fn delete_snapshots_before<S: Storage>(
    storage: &mut S,
    dir: &str,
    offset: i64,
) -> Result<(), StorageError> {
    for (old, file) in snapshot_files(storage, dir) {
        if old < offset {
            storage.remove(&file)?;
        }
    }
    Ok(())
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SnapshotError> {
        let remaining = self.bytes.len() - self.at;
        if remaining < N {
            return Err(SnapshotError::Truncated {
                field,
                needed: N,
                remaining,
            });
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        Ok(out)
    }

    /// An `i32` count of items of at least `item_bytes` each, checked against the bytes left.
    fn count(&mut self, field: &'static str, item_bytes: usize) -> Result<usize, SnapshotError> {
        let n = i32::from_be_bytes(self.take(field)?);
        let remaining = self.bytes.len() - self.at;
        usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(item_bytes) <= remaining)
            .ok_or(SnapshotError::InvalidValue {
                field,
                value: i64::from(n),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::BatchHeader;

    fn header(pid: i64, seq: i32, count: i32, ts: i64) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: ts,
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(0),
            base_sequence: Sequence(seq),
            records_count: count,
        }
    }

    fn state() -> ProducerStateManager {
        let mut s = ProducerStateManager::new(5);
        for (i, seq) in [0, 3, 6].into_iter().enumerate() {
            s.update(&header(7, seq, 3, 100 + i as i64), i as i64 * 3);
        }
        s.update(&header(2, 0, 1, 50), 9);
        s
    }

    #[test]
    fn full_window_round_trips_the_state() {
        let s = state();
        let bytes = ProducerSnapshot::encode_state(&s, 10, SnapshotMode::FullWindow);
        let snap = ProducerSnapshot::decode(&bytes).unwrap();
        assert_eq!(snap.offset, 10);
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(snap.encode(), bytes);
        let mut loaded = ProducerStateManager::new(5);
        assert_eq!(snap.load_into(&mut loaded, 0, i64::MAX), 0);
        assert_eq!(loaded, s);
    }

    #[test]
    fn last_batch_only_keeps_one_batch_per_producer() {
        let bytes = ProducerSnapshot::encode_state(&state(), 10, SnapshotMode::LastBatchOnly);
        let snap = ProducerSnapshot::decode(&bytes).unwrap();
        assert_eq!(snap.mode, SnapshotMode::LastBatchOnly);
        let seven = &snap.entries[1];
        assert_eq!(seven.batches.len(), 1);
        assert_eq!(seven.batches[0].last_sequence, Sequence(8));
        assert_eq!(snap.encode(), bytes);
    }

    #[test]
    fn every_flipped_byte_or_cut_is_refused() {
        let bytes = ProducerSnapshot::encode_state(&state(), 10, SnapshotMode::FullWindow);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(ProducerSnapshot::decode(&bad).is_err(), "byte {i} flipped");
            assert!(ProducerSnapshot::decode(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn expired_producers_are_skipped_on_load() {
        let bytes = ProducerSnapshot::encode_state(&state(), 10, SnapshotMode::FullWindow);
        let snap = ProducerSnapshot::decode(&bytes).unwrap();
        let mut loaded = ProducerStateManager::new(5);
        // Producer 2's last timestamp is 50, producer 7's is 102.
        assert_eq!(snap.load_into(&mut loaded, 150, 100), 1);
        assert_eq!(loaded.producer_ids(), vec![ProducerId(7)]);
    }

    #[test]
    fn file_names_carry_the_offset() {
        let f = snapshot_file("partition-3/", 42);
        assert_eq!(f, "partition-3/00000000000000000042.snapshot");
        assert_eq!(snapshot_offset_of("partition-3/", &f), Some(42));
        assert_eq!(
            snapshot_offset_of("partition-3/", "partition-3/x.log"),
            None
        );
    }
}
