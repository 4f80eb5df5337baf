//! Recovery: rebuilding a partition's log and producer state from what the disk kept.
//!
//! # What Kafka does
//!
//! When a broker starts, `LogLoader` rebuilds every partition (docs/KAFKA-RULES.md §1.12).
//! After an unclean shutdown it re-reads each segment written since the last
//! recovery point, checks every batch (framing, CRC), truncates the segment at the first
//! invalid batch and deletes every segment after it. Then `rebuildProducerState` runs:
//!
//! 1. delete snapshots beyond the log end, and those at or below the log start offset;
//! 2. load the newest remaining snapshot, skipping producers already expired; a corrupt one
//!    is deleted and the next older one tried; with none, start empty at the log start;
//! 3. replay every batch from the snapshot offset to the log end with origin `REPLICATION`:
//!    no duplicate check, no sequence check, the state is simply updated;
//! 4. take a snapshot at the log end.
//!
//! # What we do
//!
//! [`recover_partition`] does the same steps, in the same order, for one partition:
//! [`PartitionLog::recover`] scans and truncates the segments; snapshots out of range or
//! corrupt are deleted and the fallback is recorded; the batches after the snapshot are
//! replayed through [`ProducerStateManager::update`], which records a batch through the same
//! `ProducerSlot::update` the produce path calls after an append, so replay cannot disagree
//! with live appends; a snapshot is written
//! when anything was replayed. Every step is reported in a [`PartitionRecovery`], which the
//! broker extends into a `RestartReport` (what a crash lost, what recovery found).
//!
//! The invariant the tests check: in `FullWindow` mode, with no producer expired and no
//! record deleted, the producer state after recovery equals the state obtained by replaying
//! the whole recovered log from offset 0, whichever snapshot was used. A snapshot is only a
//! shortcut; it never changes the answer.
//!
//! ```text
//! disk after crash                       recovery
//! segment 0: b0 b1 b2 b3 [torn b4]       truncate at b4 (log end 4), report the bytes
//! snapshot at 5                          beyond the log end: delete, fall back
//! snapshot at 2                          load (b0, b1), skipping expired producers
//!                                        replay b2, b3 without validation; snapshot at 4
//! ```
//!
//! The same loading step serves a follower whose log was truncated after a diverging epoch
//! ([`reload_producer_state`], Kafka's `truncateAndReload`): snapshots above the new log end
//! are deleted, the newest one left is loaded, the rest is replayed. The segment scan also
//! rebuilds the leader-epoch cache from each batch's `partitionLeaderEpoch`.
//!
//! # Differences from Kafka
//!
//! * Every recovery (crash or clean restart) scans every segment; Kafka skips the scan after
//!   a clean shutdown (`.kafka_cleanshutdown`) and, after a crash, starts at the recovery
//!   point.
//! * Offsets must be dense; a batch whose base offset is not the expected one is treated as
//!   corruption.
//! * Producer ids: there is no controller, so the broker persists its own block of ids
//!   (`broker` module), skipping the rest of the block after any restart as Kafka's
//!   `ProducerIdManager` does.

use crate::partition_log::{LogRecovery, PartitionLog, partition_dir};
use crate::producer_state::ProducerStateManager;
use crate::snapshot::{
    ProducerSnapshot, SnapshotError, SnapshotMode, list_snapshots, snapshot_file, write_snapshot,
};
use crate::storage::{Storage, StorageError};
use std::fmt;

/// What recovery needs to know from the broker's config and clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverySettings {
    /// Segment size for the active segment after recovery.
    pub segment_bytes: u32,
    /// Batches retained per producer.
    pub dedup_window: usize,
    /// With idempotence off there is no producer state to rebuild.
    pub idempotence: bool,
    /// The broker clock, for dropping expired producers from the snapshot.
    pub now_ms: i64,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// How the post-recovery snapshot is written.
    pub snapshot_mode: SnapshotMode,
    /// Snapshots kept per partition.
    pub snapshots_retained: usize,
}

/// Why a snapshot was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRejection {
    /// Its offset is beyond the recovered log end (the log lost the tail it covered).
    BeyondLogEnd {
        /// The recovered log end offset.
        log_end_offset: i64,
    },
    /// Its offset is at or below the log start offset (Kafka deletes these on reload).
    AtOrBelowLogStart {
        /// The log start offset.
        log_start_offset: i64,
    },
    /// It failed to decode (Kafka's `CorruptSnapshotException`).
    Corrupt(SnapshotError),
}

impl fmt::Display for SnapshotRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotRejection::BeyondLogEnd { log_end_offset } => {
                write!(f, "beyond the log end offset {log_end_offset}")
            }
            SnapshotRejection::AtOrBelowLogStart { log_start_offset } => {
                write!(f, "at or below the log start offset {log_start_offset}")
            }
            SnapshotRejection::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

/// A snapshot file recovery deleted instead of loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSnapshot {
    /// Its offset.
    pub offset: i64,
    /// Why.
    pub reason: SnapshotRejection,
}

/// What recovering one partition did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecovery {
    /// The partition.
    pub partition: i32,
    /// The segment scan: bytes truncated, segments removed, the first invalid batch.
    pub log: LogRecovery,
    /// Log start offset after recovery.
    pub log_start_offset: i64,
    /// Log end offset after recovery.
    pub log_end_offset: i64,
    /// Offset of the snapshot loaded, or `None` when the state was rebuilt from the log
    /// start offset alone.
    pub snapshot_loaded: Option<i64>,
    /// Snapshots deleted before one could be loaded, newest first (a fallback happened when
    /// this is not empty).
    pub snapshots_rejected: Vec<RejectedSnapshot>,
    /// Producers in the loaded snapshot skipped because they had expired.
    pub producers_expired_on_load: usize,
    /// Batches replayed from the log after the snapshot (or from the log start).
    pub replayed_batches: usize,
    /// Producers with state after recovery.
    pub producers_recovered: usize,
    /// Offset of the snapshot written after replay, if any.
    pub snapshot_written: Option<i64>,
}

impl PartitionRecovery {
    /// True when a snapshot was rejected, so an older one or a full replay was used.
    pub fn fell_back(&self) -> bool {
        !self.snapshots_rejected.is_empty()
    }
}

/// A recovered partition: its log, its producer state and the report.
#[derive(Clone, Debug)]
pub struct RecoveredPartition {
    /// The log's index.
    pub log: PartitionLog,
    /// The rebuilt producer state.
    pub producers: ProducerStateManager,
    /// What happened.
    pub report: PartitionRecovery,
}

/// Replays the retained batches of `log` holding offsets from `from` on into `producers`,
/// without validation (Kafka's `REPLICATION` origin), through
/// [`ProducerStateManager::update`]: the one replay loop, used by recovery and by
/// [`crate::Broker::restart`]. A batch straddling `from` (possible only at the log start
/// offset; snapshots sit at batch boundaries) is replayed, as Kafka's read from the log start
/// returns it. Returns the number of batches replayed.
pub fn replay<S: Storage>(
    producers: &mut ProducerStateManager,
    log: &PartitionLog,
    storage: &S,
    from: i64,
) -> usize {
    let mut replayed = 0;
    for batch in log.batches_from(storage, from) {
        producers.update(&batch.header, batch.base_offset());
        replayed += 1;
    }
    replayed
}

/// The partitions that have files in `storage`, ascending.
pub fn partitions_on_disk<S: Storage>(storage: &S) -> Vec<i32> {
    let mut ids: Vec<i32> = storage
        .list("partition-")
        .iter()
        .filter_map(|f| crate::partition_log::partition_of_file(f))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Step 2 of recovery: deletes the snapshots out of range or corrupt (recording why), loads
/// the newest valid one into `producers`, and returns the offset replay starts from (the
/// snapshot's, or the log start offset without one).
fn load_newest_snapshot<S: Storage>(
    storage: &mut S,
    dir: &str,
    settings: &RecoverySettings,
    producers: &mut ProducerStateManager,
    report: &mut PartitionRecovery,
) -> Result<i64, StorageError> {
    let (start, end) = (report.log_start_offset, report.log_end_offset);
    let mut replay_from = start;
    for offset in list_snapshots(storage, dir).into_iter().rev() {
        let reason = if offset > end {
            SnapshotRejection::BeyondLogEnd {
                log_end_offset: end,
            }
        } else if offset <= start {
            SnapshotRejection::AtOrBelowLogStart {
                log_start_offset: start,
            }
        } else if report.snapshot_loaded.is_some() {
            continue; // older valid snapshots stay, as in Kafka
        } else {
            let bytes = storage.read_all(&snapshot_file(dir, offset))?;
            match ProducerSnapshot::decode(&bytes) {
                Ok(snapshot) if snapshot.offset == offset => {
                    if settings.idempotence {
                        report.producers_expired_on_load = snapshot.load_into(
                            producers,
                            settings.now_ms,
                            settings.producer_id_expiration_ms,
                        );
                    }
                    report.snapshot_loaded = Some(offset);
                    replay_from = offset;
                    continue;
                }
                Ok(snapshot) => SnapshotRejection::Corrupt(SnapshotError::InvalidValue {
                    field: "snapshot offset (differs from the file name)",
                    value: snapshot.offset,
                }),
                Err(e) => SnapshotRejection::Corrupt(e),
            }
        };
        storage.remove(&snapshot_file(dir, offset))?;
        report
            .snapshots_rejected
            .push(RejectedSnapshot { offset, reason });
    }
    Ok(replay_from)
}

/// Rebuilds a partition's producer state after its log was truncated (Kafka's
/// `ProducerStateManager.truncateAndReload` followed by the replay of
/// `UnifiedLog.rebuildProducerState`): snapshots beyond the new log end (or at or below the
/// log start) are deleted, the newest remaining valid one is loaded and the batches after it
/// are replayed. Returns the state, the snapshot loaded and the batches replayed.
pub fn reload_producer_state<S: Storage>(
    storage: &mut S,
    partition: i32,
    log: &PartitionLog,
    settings: &RecoverySettings,
) -> Result<(ProducerStateManager, Option<i64>, usize), StorageError> {
    let dir = partition_dir(partition);
    let mut producers = ProducerStateManager::new(settings.dedup_window);
    let mut report = PartitionRecovery {
        partition,
        log: LogRecovery::default(),
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        snapshot_loaded: None,
        snapshots_rejected: Vec::new(),
        producers_expired_on_load: 0,
        replayed_batches: 0,
        producers_recovered: 0,
        snapshot_written: None,
    };
    let replay_from = load_newest_snapshot(storage, &dir, settings, &mut producers, &mut report)?;
    let replayed = if settings.idempotence {
        replay(&mut producers, log, storage, replay_from)
    } else {
        0
    };
    Ok((producers, report.snapshot_loaded, replayed))
}

/// Recovers one partition: scan and truncate the log, choose a snapshot, replay the rest
/// (module docs).
pub fn recover_partition<S: Storage>(
    storage: &mut S,
    partition: i32,
    settings: &RecoverySettings,
) -> Result<RecoveredPartition, StorageError> {
    let dir = partition_dir(partition);
    let (log, log_report) = PartitionLog::recover(storage, partition, settings.segment_bytes)?;
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mut producers = ProducerStateManager::new(settings.dedup_window);
    let mut report = PartitionRecovery {
        partition,
        log: log_report,
        log_start_offset: start,
        log_end_offset: end,
        snapshot_loaded: None,
        snapshots_rejected: Vec::new(),
        producers_expired_on_load: 0,
        replayed_batches: 0,
        producers_recovered: 0,
        snapshot_written: None,
    };
    let replay_from = load_newest_snapshot(storage, &dir, settings, &mut producers, &mut report)?;
    if settings.idempotence {
        report.replayed_batches = replay(&mut producers, &log, storage, replay_from);
        if report.replayed_batches > 0 {
            write_snapshot(
                storage,
                &dir,
                &producers,
                end,
                settings.snapshot_mode,
                settings.snapshots_retained,
            )?;
            report.snapshot_written = Some(end);
        }
    }
    report.producers_recovered = producers.len();
    Ok(RecoveredPartition {
        log,
        producers,
        report,
    })
}
