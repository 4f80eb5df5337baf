//! A partition's append-only log, written through [`Storage`] in segment files.
//!
//! The log stores each batch's bytes exactly as they will be fetched: the client's batch with
//! the base offset and partition leader epoch filled in (neither is covered by the CRC, so the
//! batch stays valid). Offsets are dense: a batch of `n` records takes the next `n` offsets.
//!
//! As in Kafka, the bytes go to *segment* files named by the offset of their first batch,
//! twenty digits wide (`partition-0/00000000000000000000.log`). A new segment is rolled when
//! the next batch would push the active one past `segment_bytes` (Kafka's `segment.bytes`).
//! In memory the log keeps only an index: per batch its offset relative to the segment, its
//! position and size in the file and its `lastOffsetDelta` (16 bytes a batch), which is
//! enough to find a batch for a fetch and to read it back; headers are parsed again from the
//! bytes when asked for. So the data exists once, in the storage.
//!
//! ```text
//! partition-0/00000000000000000000.log   batches at offsets 0..=4095   (rolled)
//! partition-0/00000000000000004096.log   batches at offsets 4096..     (active)
//! partition-0/log-start-offset.checkpoint  the log start offset, written atomically
//! ```
//!
//! `log_start_offset` is the first offset still readable; DeleteRecords moves it forward,
//! writes it durably to the checkpoint file, forgets batches that end before it and deletes
//! segments left with none. `log_end_offset` (LEO) is the offset the next record will get.
//! Standalone, the high watermark is the LEO (a replicated partition's is kept by
//! `replication`). The log also keeps its leader-epoch cache (`leader_epoch`), assigned at
//! every append and rebuilt from the batches' `partitionLeaderEpoch` at recovery; a
//! follower's divergence is repaired with [`PartitionLog::truncate_to`]. `durable_end_offset` is how far the
//! log was last synced: a crash keeps at least that much.
//!
//! Appends are not durable until [`PartitionLog::sync`]; when that happens is the broker's
//! `SyncPolicy`. Recovery after a crash ([`PartitionLog::recover`]) scans the segments,
//! checks every batch's framing and CRC, and cuts the log at the first one that fails.
//!
//! # Differences from Kafka
//!
//! * No `.index`/`.timeindex` files: the index lives in memory and is rebuilt by scanning.
//! * The log start offset is checkpointed durably at every DeleteRecords, after syncing the
//!   log (Kafka writes `log-start-offset-checkpoint` periodically), so it never points past
//!   the recovered log.
//! * Offsets must be dense across segments; recovery treats a gap as corruption.

use crate::leader_epoch::LeaderEpochCache;
use crate::storage::{Storage, StorageError};
use bytes::{Bytes, BytesMut};
use idempo_protocol::record_batch::{self, MAGIC_V2, RECORD_BATCH_OVERHEAD};
use idempo_protocol::{BatchHeader, DecodeError};
use std::collections::VecDeque;
use std::fmt;

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

/// Partition leader epoch written into batches a standalone broker appends: one broker never
/// changes leader, so every batch is of epoch 0. A replicated leader stamps its own epoch
/// ([`PartitionLog::append_as_leader`]).
pub const LEADER_EPOCH: i32 = 0;

/// Default segment size (Kafka's `segment.bytes` defaults to 1 GiB; a smaller default keeps
/// simulated recoveries and segment deletion visible).
pub const DEFAULT_SEGMENT_BYTES: u32 = 1024 * 1024;

/// The directory (file name prefix) of a partition's files.
pub fn partition_dir(partition: i32) -> String {
    format!("partition-{partition}/")
}

/// The partition number of a file under [`partition_dir`], if it is one.
pub fn partition_of_file(file: &str) -> Option<i32> {
    let rest = file.strip_prefix("partition-")?;
    let (number, _) = rest.split_once('/')?;
    number.parse().ok().filter(|p: &i32| *p >= 0)
}

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".log";
/// Name of the log start offset checkpoint within a partition directory.
const CHECKPOINT_NAME: &str = "log-start-offset.checkpoint";
/// Version of the checkpoint file layout.
const CHECKPOINT_VERSION: i16 = 1;

/// One batch in the in-memory index. Offsets are relative to the segment's base offset and
/// positions to its file, as in Kafka's offset index, to keep this at 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexEntry {
    relative_offset: u32,
    position: u32,
    size: u32,
    last_offset_delta: i32,
}

#[derive(Clone, Debug)]
struct Segment {
    base_offset: i64,
    file: String,
    size_bytes: u64,
    /// Batches still readable (those ending before the log start offset are dropped).
    entries: VecDeque<IndexEntry>,
    /// Written since its last sync.
    dirty: bool,
}

impl Segment {
    fn new(dir: &str, base_offset: i64) -> Segment {
        Segment {
            base_offset,
            file: format!("{dir}{base_offset:020}{SEGMENT_SUFFIX}"),
            size_bytes: 0,
            entries: VecDeque::new(),
            dirty: false,
        }
    }

    fn base(&self, e: &IndexEntry) -> i64 {
        self.base_offset + i64::from(e.relative_offset)
    }

    fn last(&self, e: &IndexEntry) -> i64 {
        self.base(e) + i64::from(e.last_offset_delta)
    }
}

/// What scanning the segments found during recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Bytes cut from the log: a torn or corrupt tail and every segment after it.
    pub truncated_bytes: u64,
    /// Segment files deleted (after a corrupt one, empty, or wholly below the log start).
    pub segments_removed: usize,
    /// The first invalid batch, if any: file, position and why.
    pub corruption: Option<LogCorruption>,
    /// Batches found valid (including any below the log start offset).
    pub valid_batches: usize,
}

/// Where and why recovery cut a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCorruption {
    /// The segment file.
    pub file: String,
    /// Position of the first invalid byte.
    pub position: u64,
    /// What was wrong, in words.
    pub reason: String,
}

/// `entries.partition_point(pred)`, searched from the back: a gallop of 1, 2, 4, ... entries
/// from the end, then a binary search within the last step. Followers and consumers read at
/// or near the log end, so this touches a few entries where a binary search over a large
/// segment would touch about twenty scattered ones.
fn partition_point_from_back<T>(entries: &VecDeque<T>, pred: impl Fn(&T) -> bool) -> usize {
    // Invariant: every entry at `hi` or after fails `pred`.
    let mut hi = entries.len();
    let mut step = 1;
    let mut lo = loop {
        let Some(probe) = hi.checked_sub(step) else {
            break 0;
        };
        if pred(&entries[probe]) {
            break probe + 1;
        }
        hi = probe;
        step *= 2;
    };
    // Every entry before `lo` satisfies `pred`: binary search in [lo, hi).
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(&entries[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A partition's log: segment files in a [`Storage`] and an in-memory index of their batches.
#[derive(Clone, Debug)]
pub struct PartitionLog {
    dir: String,
    segment_bytes: u32,
    segments: VecDeque<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    durable_end_offset: i64,
    batch_count: usize,
    retained_bytes: u64,
    /// Which leader epoch wrote which offsets, kept in step with the batches.
    epochs: LeaderEpochCache,
}

impl PartitionLog {
    /// A new, empty log for `partition` starting at offset 0; its checkpoint is written
    /// durably so the partition survives a crash before its first batch.
    pub fn create<S: Storage>(
        storage: &mut S,
        partition: i32,
        segment_bytes: u32,
    ) -> Result<PartitionLog, StorageError> {
        let log = PartitionLog::empty(partition, segment_bytes, 0);
        log.write_checkpoint(storage)?;
        Ok(log)
    }

    fn empty(partition: i32, segment_bytes: u32, log_start_offset: i64) -> PartitionLog {
        assert!(segment_bytes > 0, "segment_bytes is checked by the config");
        PartitionLog {
            dir: partition_dir(partition),
            segment_bytes,
            segments: VecDeque::new(),
            log_start_offset,
            log_end_offset: log_start_offset,
            durable_end_offset: log_start_offset,
            batch_count: 0,
            retained_bytes: 0,
            epochs: LeaderEpochCache::new(),
        }
    }

    /// The leader-epoch cache of the batches in this log (`leader_epoch`).
    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Records that `epoch` starts at the log end (a new leader's `assign(epoch, LEO)`, done
    /// before its first append so that followers can truncate against it).
    pub fn assign_epoch_at_log_end(&mut self, epoch: i32) {
        self.epochs.assign(epoch, self.log_end_offset);
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// The log end offset at the last sync: a crash keeps at least this much.
    pub fn durable_end_offset(&self) -> i64 {
        self.durable_end_offset
    }

    /// Number of retained batches.
    pub fn batch_count(&self) -> usize {
        self.batch_count
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of batch data retained.
    pub fn size_bytes(&self) -> usize {
        self.retained_bytes as usize
    }

    /// Bytes the in-memory index occupies (an estimate from capacities).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .segments
                .iter()
                .map(|s| {
                    std::mem::size_of::<Segment>()
                        + s.file.capacity()
                        + s.entries.capacity() * std::mem::size_of::<IndexEntry>()
                })
                .sum::<usize>()
            + std::mem::size_of_val(self.epochs.entries())
    }

    /// Retained batches, oldest first, read from `storage`.
    pub fn batches<'a, S: Storage>(&'a self, storage: &'a S) -> Batches<'a, S> {
        Batches {
            log: self,
            storage,
            segment: 0,
            entry: 0,
            remaining: self.batch_count,
            block: Bytes::new(),
            block_position: 0,
        }
    }

    /// Retained batches holding offsets from `offset` on, oldest first.
    pub fn batches_from<'a, S: Storage>(&'a self, storage: &'a S, offset: i64) -> Batches<'a, S> {
        let (segment, entry, skipped) = self.locate(offset);
        Batches {
            log: self,
            storage,
            segment,
            entry,
            remaining: self.batch_count - skipped,
            block: Bytes::new(),
            block_position: 0,
        }
    }

    /// Segment and entry index of the first batch whose last offset is at least `offset`, and
    /// how many retained batches come before it.
    fn locate(&self, offset: i64) -> (usize, usize, usize) {
        let seg = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        let skipped: usize = self.segments.range(..seg).map(|s| s.entries.len()).sum();
        let Some(s) = self.segments.get(seg) else {
            return (seg, 0, skipped);
        };
        let entry = partition_point_from_back(&s.entries, |e| s.last(e) < offset);
        (seg, entry, skipped + entry)
    }

    fn active_for(&mut self, size: usize) -> &mut Segment {
        let roll = match self.segments.back() {
            None => true,
            Some(s) => {
                !s.entries.is_empty()
                    && (s.size_bytes + size as u64 > u64::from(self.segment_bytes)
                        || self.log_end_offset - s.base_offset > i64::from(i32::MAX))
            }
        };
        if roll {
            // (An empty active segment, left by a failed append, is reused: its base is the LEO.)
            self.segments
                .push_back(Segment::new(&self.dir, self.log_end_offset));
        }
        self.segments
            .back_mut()
            .expect("a segment was pushed above if there was none")
    }

    /// Appends a validated client batch at the log end, stamped with the standalone epoch
    /// [`LEADER_EPOCH`], and returns its base offset. Not durable until [`sync`](Self::sync).
    pub fn append<S: Storage>(
        &mut self,
        storage: &mut S,
        header: &BatchHeader,
        client_bytes: &[u8],
    ) -> Result<i64, StorageError> {
        self.append_as_leader(storage, header, client_bytes, LEADER_EPOCH)
    }

    /// Appends a validated client batch at the log end stamped with `leader_epoch` (Kafka's
    /// `appendAsLeader`: the leader assigns the offsets and its epoch), and returns its base
    /// offset. Not durable until [`sync`](Self::sync).
    #[inline]
    pub fn append_as_leader<S: Storage>(
        &mut self,
        storage: &mut S,
        header: &BatchHeader,
        client_bytes: &[u8],
        leader_epoch: i32,
    ) -> Result<i64, StorageError> {
        assert!(
            client_bytes.len() >= RECORD_BATCH_OVERHEAD
                && client_bytes.len() as i64 == header.total_size(),
            "append takes a validated batch"
        );
        let base_offset = self.log_end_offset;
        // baseOffset and partitionLeaderEpoch are outside the CRC: patch them in a copy of the
        // first 16 bytes, written ahead of the client's untouched rest.
        let mut head = [0u8; 16];
        head.copy_from_slice(&client_bytes[..16]);
        record_batch::set_base_offset(&mut head, base_offset);
        record_batch::set_partition_leader_epoch(&mut head, leader_epoch);
        self.write_batch(storage, &[&head, &client_bytes[16..]], header, base_offset)?;
        self.epochs.assign(leader_epoch, base_offset);
        Ok(base_offset)
    }

    /// Appends a batch fetched from the leader as it is, offsets and epoch included (Kafka's
    /// `appendAsFollower`: no offset assignment, no validation beyond the CRC), and returns its
    /// base offset. The batch must start at the log end.
    pub fn append_as_follower<S: Storage>(
        &mut self,
        storage: &mut S,
        header: &BatchHeader,
        bytes: &[u8],
    ) -> Result<i64, FollowerAppendError> {
        if header.base_offset != self.log_end_offset {
            return Err(FollowerAppendError::UnexpectedOffset {
                base_offset: header.base_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if bytes.len() as i64 != header.total_size() {
            return Err(FollowerAppendError::LengthMismatch {
                announced: header.total_size(),
                bytes: bytes.len(),
            });
        }
        // verify_crc also refuses bytes shorter than a batch header.
        record_batch::verify_crc(bytes).map_err(FollowerAppendError::Corrupt)?;
        let base_offset = self.log_end_offset;
        self.write_batch(storage, &[bytes], header, base_offset)?;
        self.epochs
            .assign(header.partition_leader_epoch, base_offset);
        Ok(base_offset)
    }

    /// Writes one batch's bytes (`parts`, concatenated) at the log end and indexes it.
    #[inline]
    fn write_batch<S: Storage>(
        &mut self,
        storage: &mut S,
        parts: &[&[u8]],
        header: &BatchHeader,
        base_offset: i64,
    ) -> Result<(), StorageError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let segment = self.active_for(size);
        let position = storage.append_vectored(&segment.file, parts)?;
        assert_eq!(
            position, segment.size_bytes,
            "nothing else writes to {}",
            segment.file
        );
        segment.entries.push_back(IndexEntry {
            relative_offset: (base_offset - segment.base_offset) as u32,
            position: position as u32,
            size: size as u32,
            last_offset_delta: header.last_offset_delta,
        });
        segment.size_bytes += size as u64;
        segment.dirty = true;
        self.log_end_offset = base_offset + i64::from(header.last_offset_delta) + 1;
        self.batch_count += 1;
        self.retained_bytes += size as u64;
        Ok(())
    }

    /// Cuts the log so that it ends at `offset`, or at the start of the batch holding it
    /// (Kafka's `truncateTo`: a batch is never split), and truncates the epoch cache to match.
    /// Segments left empty are deleted; the durable end moves down with the log end. Returns
    /// the new log end offset. Offsets at or beyond the log end leave the batches alone but
    /// still drop epoch-cache entries starting at the log end; an offset below the log start
    /// truncates to the log start.
    pub fn truncate_to<S: Storage>(
        &mut self,
        storage: &mut S,
        offset: i64,
    ) -> Result<i64, StorageError> {
        if offset >= self.log_end_offset {
            // Kafka's `truncateTo` truncates the epoch cache even then: a leader that assigned
            // its epoch and appended nothing before losing leadership keeps an entry at the
            // log end that the new leader's log does not have.
            self.epochs.truncate_from_end(self.log_end_offset);
            return Ok(self.log_end_offset);
        }
        let offset = offset.max(self.log_start_offset);
        while let Some(segment) = self.segments.back_mut() {
            let base = segment.base_offset;
            let keep = segment.entries.partition_point(|e| {
                base + i64::from(e.relative_offset) + i64::from(e.last_offset_delta) < offset
            });
            for e in segment.entries.drain(keep..) {
                self.batch_count -= 1;
                self.retained_bytes -= u64::from(e.size);
            }
            let Some(last) = segment.entries.back().copied() else {
                storage.remove(&segment.file)?;
                self.segments.pop_back();
                continue;
            };
            let len = u64::from(last.position) + u64::from(last.size);
            if len < segment.size_bytes {
                storage.truncate(&segment.file, len)?;
                segment.size_bytes = len;
            }
            break;
        }
        self.log_end_offset = match self.segments.back() {
            Some(s) => s.entries.back().map_or(s.base_offset, |e| s.last(e) + 1),
            None => self.log_start_offset,
        };
        self.durable_end_offset = self.durable_end_offset.min(self.log_end_offset);
        self.epochs.truncate_from_end(self.log_end_offset);
        Ok(self.log_end_offset)
    }

    /// Makes every appended batch durable (`fsync` of each segment written since the last
    /// sync).
    pub fn sync<S: Storage>(&mut self, storage: &mut S) -> Result<(), StorageError> {
        for segment in self.segments.iter_mut().rev() {
            if !segment.dirty {
                break;
            }
            storage.sync(&segment.file)?;
            segment.dirty = false;
        }
        self.durable_end_offset = self.log_end_offset;
        Ok(())
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords): syncs the log, writes
    /// the new start durably, forgets batches that end before it and deletes segments left
    /// empty. Producer state is *not* touched (Kafka 2.5+, KAFKA-7190).
    pub fn delete_records_before<S: Storage>(
        &mut self,
        storage: &mut S,
        offset: i64,
    ) -> Result<i64, DeleteRecordsError> {
        if offset > self.log_end_offset || offset < 0 {
            return Err(DeleteRecordsError::OffsetOutOfRange {
                offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.sync(storage)?;
        let previous = self.log_start_offset;
        self.log_start_offset = offset;
        if let Err(e) = self.write_checkpoint(storage) {
            self.log_start_offset = previous;
            return Err(e.into());
        }
        self.drop_below_log_start(storage)?;
        Ok(self.log_start_offset)
    }

    /// Drops index entries ending before the log start offset and deletes segments left with
    /// none. Returns the number of segment files deleted.
    fn drop_below_log_start<S: Storage>(&mut self, storage: &mut S) -> Result<usize, StorageError> {
        let start = self.log_start_offset;
        self.epochs.truncate_from_start(start);
        let mut removed = 0;
        while let Some(segment) = self.segments.front_mut() {
            while let Some(e) = segment.entries.front() {
                if segment.last(e) >= start {
                    break;
                }
                self.retained_bytes -= u64::from(e.size);
                self.batch_count -= 1;
                segment.entries.pop_front();
            }
            if !segment.entries.is_empty() {
                break;
            }
            storage.remove(&segment.file)?;
            self.segments.pop_front();
            removed += 1;
        }
        Ok(removed)
    }

    fn checkpoint_file(&self) -> String {
        format!("{}{CHECKPOINT_NAME}", self.dir)
    }

    /// Writes the log start offset durably: `version i16 | crc u32 | log_start_offset i64`,
    /// the CRC-32C covering the offset.
    fn write_checkpoint<S: Storage>(&self, storage: &mut S) -> Result<(), StorageError> {
        let mut data = Vec::with_capacity(14);
        data.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
        let body = self.log_start_offset.to_be_bytes();
        data.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        data.extend_from_slice(&body);
        let file = self.checkpoint_file();
        storage.write_atomic(&file, &data)?;
        storage.sync(&file)
    }

    /// The checkpointed log start offset, or `None` when the file is missing or invalid.
    fn read_checkpoint<S: Storage>(storage: &S, dir: &str) -> Option<i64> {
        let data = storage.read_all(&format!("{dir}{CHECKPOINT_NAME}")).ok()?;
        let data: &[u8; 14] = data[..].try_into().ok()?;
        let version = i16::from_be_bytes([data[0], data[1]]);
        let crc = u32::from_be_bytes([data[2], data[3], data[4], data[5]]);
        let body: [u8; 8] = data[6..14].try_into().ok()?;
        (version == CHECKPOINT_VERSION && crc == crc32c::crc32c(&body))
            .then(|| i64::from_be_bytes(body))
    }

    /// Batches holding offsets from `fetch_offset` on, concatenated, up to `max_bytes` (but
    /// always at least one batch, as Kafka returns). `Ok(None)` when `fetch_offset` is outside
    /// `log_start_offset..=log_end_offset`.
    pub fn read<S: Storage>(
        &self,
        storage: &S,
        fetch_offset: i64,
        max_bytes: usize,
    ) -> Result<Option<Bytes>, StorageError> {
        self.read_below(storage, fetch_offset, max_bytes, self.log_end_offset)
    }

    /// [`read`](Self::read), returning only batches that start below `end_offset` (a
    /// consumer's read stops at the high watermark, which sits on a batch boundary). The fetch
    /// offset may still be anywhere up to the log end.
    pub fn read_below<S: Storage>(
        &self,
        storage: &S,
        fetch_offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<Option<Bytes>, StorageError> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return Ok(None);
        }
        if fetch_offset == self.log_end_offset {
            // A caught-up follower's fetch, the common case: nothing to look up.
            return Ok(Some(Bytes::new()));
        }
        let (mut seg, mut entry, _) = self.locate(fetch_offset);
        let mut parts: Vec<Bytes> = Vec::new();
        let mut total = 0;
        // The batches taken from one segment sit back to back in its file: one read each run.
        let mut run: Option<(usize, u64, usize)> = None; // (segment, position, bytes)
        while let Some(s) = self.segments.get(seg) {
            let Some(e) = s.entries.get(entry) else {
                seg += 1;
                entry = 0;
                continue;
            };
            let size = e.size as usize;
            if s.base(e) >= end_offset || (total > 0 && total + size > max_bytes) {
                break;
            }
            let position = u64::from(e.position);
            run = match run {
                // A segment's batches are back to back in its file (`write_batch` asserts
                // each lands at the end): the run of a segment grows by this batch.
                Some((rs, start, len)) if rs == seg => Some((rs, start, len + size)),
                other => {
                    if let Some((rs, start, len)) = other {
                        parts.push(storage.read(&self.segments[rs].file, start, len)?);
                    }
                    Some((seg, position, size))
                }
            };
            total += size;
            entry += 1;
        }
        if let Some((rs, start, len)) = run {
            parts.push(storage.read(&self.segments[rs].file, start, len)?);
        }
        Ok(Some(match parts.len() {
            0 => Bytes::new(),
            1 => parts.pop().expect("one part"),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for p in &parts {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }))
    }

    /// Adds a scanned, non-empty segment at the end of a log being recovered.
    fn push_recovered(&mut self, segment: Segment) {
        let base = segment.base_offset;
        self.log_end_offset = segment.entries.back().map_or(base, |e| segment.last(e) + 1);
        self.batch_count += segment.entries.len();
        self.retained_bytes += segment
            .entries
            .iter()
            .map(|e| u64::from(e.size))
            .sum::<u64>();
        self.segments.push_back(segment);
    }

    /// Rebuilds a partition's log from its files after a crash or restart: reads the log start
    /// checkpoint, scans every segment in offset order checking each batch's framing, CRC and
    /// offset, truncates the first segment with an invalid batch there and deletes every
    /// segment after it (as Kafka's `LogLoader` does), and deletes empty segments.
    pub fn recover<S: Storage>(
        storage: &mut S,
        partition: i32,
        segment_bytes: u32,
    ) -> Result<(PartitionLog, LogRecovery), StorageError> {
        let dir = partition_dir(partition);
        let checkpoint = PartitionLog::read_checkpoint(storage, &dir);
        let files = segment_files(storage, &dir);
        let first_base = files.first().map_or(0, |(b, _)| *b);
        let mut log = PartitionLog::empty(partition, segment_bytes, checkpoint.unwrap_or(0));
        log.log_end_offset = first_base.max(log.log_start_offset);
        let mut report = LogRecovery::default();
        let mut cut = false;
        // Where the next segment must start: the end of the one before it, once there is one.
        // An older segment that lost all its batches still ends where it began, so a later
        // segment after it would leave a hole and is cut too.
        let mut expected_base: Option<i64> = None;
        for (base, file) in files {
            let len = storage.file_len(&file)?;
            if cut || expected_base.is_some_and(|expected| base != expected) {
                if !cut {
                    report.corruption = Some(LogCorruption {
                        file: file.clone(),
                        position: 0,
                        reason: format!(
                            "segment starts at offset {base}, not at {}",
                            expected_base.unwrap_or(log.log_end_offset)
                        ),
                    });
                }
                cut = true;
                storage.remove(&file)?;
                report.truncated_bytes += len;
                report.segments_removed += 1;
                continue;
            }
            let mut segment = Segment::new(&log.dir, base);
            segment.file = file;
            let (valid_len, corruption) =
                scan_segment(storage, &mut segment, len, &mut log.epochs)?;
            if let Some(reason) = corruption {
                storage.truncate(&segment.file, valid_len)?;
                report.truncated_bytes += len - valid_len;
                report.corruption = Some(LogCorruption {
                    file: segment.file.clone(),
                    position: valid_len,
                    reason,
                });
                cut = true;
            }
            if segment.entries.is_empty() {
                storage.remove(&segment.file)?;
                report.segments_removed += 1;
                expected_base = Some(base);
                continue;
            }
            report.valid_batches += segment.entries.len();
            log.push_recovered(segment);
            expected_base = Some(log.log_end_offset);
        }
        log.log_start_offset = log.log_start_offset.max(first_base);
        if log.log_start_offset > log.log_end_offset {
            // Only possible if a checkpoint outlived its log (external damage): keep the start.
            log.log_end_offset = log.log_start_offset;
        }
        report.segments_removed += log.drop_below_log_start(storage)?;
        log.durable_end_offset = log.log_end_offset;
        if checkpoint != Some(log.log_start_offset) {
            log.write_checkpoint(storage)?;
        }
        Ok((log, report))
    }
}

/// The segment files in partition directory `dir` with their base offsets, ascending.
fn segment_files<S: Storage>(storage: &S, dir: &str) -> Vec<(i64, String)> {
    let mut files: Vec<(i64, String)> = storage
        .list(dir)
        .into_iter()
        .filter_map(|f| {
            let name = f.strip_prefix(dir)?.strip_suffix(SEGMENT_SUFFIX)?;
            let base = name.parse::<i64>().ok().filter(|b| *b >= 0)?;
            Some((base, f))
        })
        .collect();
    files.sort();
    files
}

/// Scans one segment file, filling `segment.entries` with its valid batches. Returns the
/// length of the valid prefix and, if the file holds more, why the next batch is invalid.
fn scan_segment<S: Storage>(
    storage: &S,
    segment: &mut Segment,
    len: u64,
    epochs: &mut LeaderEpochCache,
) -> Result<(u64, Option<String>), StorageError> {
    let mut position = 0u64;
    let mut next_offset = segment.base_offset;
    while position < len {
        let remaining = len - position;
        if remaining < RECORD_BATCH_OVERHEAD as u64 {
            return Ok((
                position,
                Some(format!("torn header: {remaining} bytes left")),
            ));
        }
        let head = storage.read(&segment.file, position, RECORD_BATCH_OVERHEAD)?;
        let header = BatchHeader::parse(&head).expect("61 bytes were read");
        let size = header.total_size();
        if header.magic != MAGIC_V2 || size < RECORD_BATCH_OVERHEAD as i64 {
            return Ok((position, Some("not a RecordBatch v2 header".to_string())));
        }
        if size as u64 > remaining {
            return Ok((
                position,
                Some(format!(
                    "torn batch: {size} bytes announced, {remaining} left"
                )),
            ));
        }
        if header.base_offset != next_offset || header.last_offset_delta < 0 {
            return Ok((
                position,
                Some(format!(
                    "batch at offset {} where {next_offset} was expected",
                    header.base_offset
                )),
            ));
        }
        let bytes = storage.read(&segment.file, position, size as usize)?;
        if let Err(e) = record_batch::verify_crc(&bytes) {
            return Ok((position, Some(e.to_string())));
        }
        segment.entries.push_back(IndexEntry {
            relative_offset: (header.base_offset - segment.base_offset) as u32,
            position: position as u32,
            size: size as u32,
            last_offset_delta: header.last_offset_delta,
        });
        // The cache is rebuilt from the batches, as Kafka's LogLoader does without a checkpoint.
        epochs.assign(header.partition_leader_epoch, header.base_offset);
        position += size as u64;
        segment.size_bytes = position;
        next_offset = header.last_offset() + 1;
    }
    Ok((position, None))
}

/// The retained batches of a [`PartitionLog`], read back from storage, oldest first.
///
/// # Panics
///
/// If the storage cannot return bytes the index points at: the log only indexes bytes it
/// wrote and never lets anything else remove them, so that is a bug (or a storage mutated
/// behind the broker's back).
pub struct Batches<'a, S> {
    log: &'a PartitionLog,
    storage: &'a S,
    segment: usize,
    entry: usize,
    remaining: usize,
    /// Bytes of the current segment read ahead: up to [`READ_AHEAD_BATCHES`] batches at once,
    /// each handed out as a slice (one storage read, and at most one copy, per block).
    block: Bytes,
    /// Where `block` starts in the current segment's file.
    block_position: u64,
}

/// Batches [`Batches`] reads from storage at once.
const READ_AHEAD_BATCHES: usize = 64;

impl<S: Storage> Batches<'_, S> {
    /// The stored bytes of `entry` of `segment`, from the read-ahead block (read anew when
    /// the entry is not in it).
    fn bytes_of(&mut self, segment: &Segment, entry: usize) -> Bytes {
        let e = segment.entries[entry];
        let (position, size) = (u64::from(e.position), e.size as usize);
        let in_block = position >= self.block_position
            && position + size as u64 <= self.block_position + self.block.len() as u64;
        if !in_block {
            // The entries that follow are back to back in the file: read them with this one.
            let mut len = size;
            let mut next = position + size as u64;
            for f in segment
                .entries
                .range(entry + 1..)
                .take(READ_AHEAD_BATCHES - 1)
            {
                if u64::from(f.position) != next {
                    break;
                }
                len += f.size as usize;
                next += u64::from(f.size);
            }
            self.block = self
                .storage
                .read(&segment.file, position, len)
                .unwrap_or_else(|err| panic!("indexed batch unreadable: {err}"));
            self.block_position = position;
        }
        let from = (position - self.block_position) as usize;
        self.block.slice(from..from + size)
    }
}

impl<S: Storage> Iterator for Batches<'_, S> {
    type Item = StoredBatch;

    fn next(&mut self) -> Option<StoredBatch> {
        loop {
            let s = self.log.segments.get(self.segment)?;
            if self.entry >= s.entries.len() {
                self.segment += 1;
                self.entry = 0;
                self.block = Bytes::new();
                self.block_position = 0;
                continue;
            }
            let entry = self.entry;
            self.entry += 1;
            self.remaining -= 1;
            let bytes = self.bytes_of(s, entry);
            let header = BatchHeader::parse(&bytes)
                .unwrap_or_else(|err| panic!("indexed batch has no header: {err}"));
            return Some(StoredBatch { header, bytes });
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<S: Storage> ExactSizeIterator for Batches<'_, S> {}

/// A partition's log together with the storage it lives in: what [`crate::Broker::log`]
/// hands out, so readers need not know about storage.
pub struct LogView<'a, S> {
    log: &'a PartitionLog,
    storage: &'a S,
}

impl<'a, S: Storage> LogView<'a, S> {
    /// A view of `log` in `storage`.
    pub fn new(log: &'a PartitionLog, storage: &'a S) -> LogView<'a, S> {
        LogView { log, storage }
    }

    /// The index.
    pub fn index(&self) -> &'a PartitionLog {
        self.log
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The log end offset at the last sync.
    pub fn durable_end_offset(&self) -> i64 {
        self.log.durable_end_offset()
    }

    /// Retained batches, oldest first, each with its parsed header and its bytes.
    pub fn batches(&self) -> Batches<'a, S> {
        self.log.batches(self.storage)
    }

    /// Retained batches holding offsets from `offset` on.
    pub fn batches_from(&self, offset: i64) -> Batches<'a, S> {
        self.log.batches_from(self.storage, offset)
    }

    /// See [`PartitionLog::read`].
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<Option<Bytes>, StorageError> {
        self.log.read(self.storage, fetch_offset, max_bytes)
    }

    /// Bytes of batch data retained.
    pub fn size_bytes(&self) -> usize {
        self.log.size_bytes()
    }

    /// The leader-epoch cache.
    pub fn leader_epoch_cache(&self) -> &'a LeaderEpochCache {
        self.log.leader_epoch_cache()
    }
}

/// Why a follower could not append a batch fetched from the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowerAppendError {
    /// The batch does not start at the log end (Kafka's `UnexpectedAppendOffsetException`).
    UnexpectedOffset {
        /// The batch's base offset.
        base_offset: i64,
        /// The follower's log end offset.
        log_end_offset: i64,
    },
    /// The fetched bytes are not as long as the batch's header says (`CORRUPT_MESSAGE`).
    LengthMismatch {
        /// The batch's length by its header (batchLength + 12).
        announced: i64,
        /// The bytes fetched for it.
        bytes: usize,
    },
    /// The batch is shorter than a batch header or fails its CRC-32C (`CORRUPT_MESSAGE`).
    Corrupt(DecodeError),
    /// The storage failed (`KAFKA_STORAGE_ERROR`).
    Storage(StorageError),
}

impl From<StorageError> for FollowerAppendError {
    fn from(e: StorageError) -> FollowerAppendError {
        FollowerAppendError::Storage(e)
    }
}

impl fmt::Display for FollowerAppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowerAppendError::UnexpectedOffset {
                base_offset,
                log_end_offset,
            } => write!(
                f,
                "fetched batch starts at offset {base_offset}, not at the log end {log_end_offset}"
            ),
            FollowerAppendError::LengthMismatch { announced, bytes } => write!(
                f,
                "CORRUPT_MESSAGE: {bytes} bytes fetched for a batch of {announced} by its header"
            ),
            FollowerAppendError::Corrupt(e) => write!(f, "CORRUPT_MESSAGE: {e}"),
            FollowerAppendError::Storage(e) => write!(f, "KAFKA_STORAGE_ERROR: {e}"),
        }
    }
}

impl std::error::Error for FollowerAppendError {}

/// Why DeleteRecords was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteRecordsError {
    /// The offset is negative or beyond the log end (Kafka's OFFSET_OUT_OF_RANGE).
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The log end offset.
        log_end_offset: i64,
    },
    /// The storage failed (Kafka's KAFKA_STORAGE_ERROR).
    Storage(StorageError),
}

impl From<StorageError> for DeleteRecordsError {
    fn from(e: StorageError) -> DeleteRecordsError {
        DeleteRecordsError::Storage(e)
    }
}

impl fmt::Display for DeleteRecordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteRecordsError::OffsetOutOfRange {
                offset,
                log_end_offset,
            } => write!(
                f,
                "OFFSET_OUT_OF_RANGE: offset {offset} is outside 0..={log_end_offset} (the log end)"
            ),
            DeleteRecordsError::Storage(e) => write!(f, "KAFKA_STORAGE_ERROR: {e}"),
        }
    }
}

impl std::error::Error for DeleteRecordsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;
    use idempo_protocol::{
        ProducerEpoch, ProducerId, Record, RecordBatch, Sequence, decode_batches,
    };

    /// Property: searching from the back finds the same position as a binary search, for
    /// every sorted sequence and every threshold (below, inside and above it).
    #[test]
    fn a_search_from_the_back_finds_what_a_binary_search_finds() {
        proptest::proptest!(|(mut values: Vec<u16>, threshold: u16)| {
            values.sort_unstable();
            let entries: VecDeque<u16> = values.into_iter().collect();
            proptest::prop_assert_eq!(
                partition_point_from_back(&entries, |v| *v < threshold),
                entries.partition_point(|v| *v < threshold)
            );
        });
    }

    /// The search touches about 2·log2(distance from the end) entries, wherever the answer
    /// lies: a few near the end (where followers and consumers read), at most 35 at the start
    /// of 65 536.
    #[test]
    fn a_search_from_the_back_probes_a_logarithmic_number_of_entries() {
        let entries: VecDeque<u32> = (0..1 << 16).collect();
        for target in [65_535, 65_530, 64_536, 60_000, 32_768, 0] {
            // 2·ceil(log2(distance + 1)) + 1: the gallop's steps, then a binary search.
            let distance = (1u32 << 16) - target;
            let most = 2 * (u32::BITS - distance.leading_zeros()) + 1;
            let probes = std::cell::Cell::new(0);
            let found = partition_point_from_back(&entries, |v| {
                probes.set(probes.get() + 1);
                *v < target
            });
            assert_eq!(found, target as usize);
            assert!(
                probes.get() <= most,
                "{} probes to find {target} (at most {most})",
                probes.get()
            );
        }
    }

    fn batch(n: i32) -> Bytes {
        let records = (0..n)
            .map(|i| Record::with_value(i, format!("v{i}")))
            .collect();
        RecordBatch::idempotent(ProducerId(1), ProducerEpoch(0), Sequence(0), 5, records).to_bytes()
    }

    fn append(log: &mut PartitionLog, disk: &mut SimDisk, n: i32) -> i64 {
        let bytes = batch(n);
        let header = BatchHeader::parse(&bytes).unwrap();
        log.append(disk, &header, &bytes).unwrap()
    }

    #[test]
    fn offsets_are_dense_and_stored_bytes_stay_valid() {
        let mut disk = SimDisk::new();
        let mut log = PartitionLog::create(&mut disk, 0, DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(append(&mut log, &mut disk, 3), 0);
        assert_eq!(append(&mut log, &mut disk, 2), 3);
        assert_eq!(log.log_end_offset(), 5);
        let all = decode_batches(log.read(&disk, 0, usize::MAX).unwrap().unwrap()).unwrap();
        assert_eq!(
            all.iter().map(|b| b.base_offset).collect::<Vec<_>>(),
            vec![0, 3]
        );
    }

    #[test]
    fn read_starts_at_the_batch_holding_the_offset_and_returns_at_least_one() {
        let mut disk = SimDisk::new();
        let mut log = PartitionLog::create(&mut disk, 0, DEFAULT_SEGMENT_BYTES).unwrap();
        append(&mut log, &mut disk, 3);
        append(&mut log, &mut disk, 3);
        let got = decode_batches(log.read(&disk, 4, 1).unwrap().unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].base_offset, 3);
        assert_eq!(log.read(&disk, 6, 100).unwrap().unwrap().len(), 0);
        assert!(log.read(&disk, 7, 100).unwrap().is_none());
    }

    #[test]
    fn delete_records_drops_whole_batches_before_the_new_start() {
        let mut disk = SimDisk::new();
        let mut log = PartitionLog::create(&mut disk, 0, DEFAULT_SEGMENT_BYTES).unwrap();
        append(&mut log, &mut disk, 3);
        append(&mut log, &mut disk, 3);
        assert_eq!(log.delete_records_before(&mut disk, 4), Ok(4));
        assert_eq!(
            log.batches(&disk).len(),
            1,
            "the batch 3..5 still holds offset 4"
        );
        assert!(log.read(&disk, 2, 100).unwrap().is_none());
        assert!(log.delete_records_before(&mut disk, 7).is_err());
        assert_eq!(
            log.delete_records_before(&mut disk, 1),
            Ok(4),
            "never moves backwards"
        );
    }

    #[test]
    fn segments_roll_at_the_size_limit_and_reads_cross_them() {
        let mut disk = SimDisk::new();
        let one = batch(2).len() as u32;
        let mut log = PartitionLog::create(&mut disk, 0, 2 * one).unwrap();
        for _ in 0..5 {
            append(&mut log, &mut disk, 2);
        }
        assert_eq!(log.segment_count(), 3);
        assert_eq!(
            disk.list("partition-0/"),
            vec![
                "partition-0/00000000000000000000.log",
                "partition-0/00000000000000000004.log",
                "partition-0/00000000000000000008.log",
                "partition-0/log-start-offset.checkpoint",
            ]
        );
        let offsets: Vec<i64> = log.batches(&disk).map(|b| b.base_offset()).collect();
        assert_eq!(offsets, vec![0, 2, 4, 6, 8]);
        let from: Vec<i64> = log
            .batches_from(&disk, 5)
            .map(|b| b.base_offset())
            .collect();
        assert_eq!(from, vec![4, 6, 8]);
        let all = decode_batches(log.read(&disk, 3, usize::MAX).unwrap().unwrap()).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(log.delete_records_before(&mut disk, 5), Ok(5));
        assert_eq!(log.segment_count(), 2, "the first segment was deleted");
        let (recovered, report) = PartitionLog::recover(&mut disk, 0, 2 * one).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(recovered.log_start_offset(), 5);
        assert_eq!(recovered.log_end_offset(), 10);
        assert_eq!(recovered.batches(&disk).len(), 3);
    }
}
