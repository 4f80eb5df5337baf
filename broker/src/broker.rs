//! The broker: partitions, producer ids, and the produce path in Kafka's order.
//!
//! [`Broker`] is a synchronous state machine with no I/O and no clock of its own. It is told
//! the time ([`Broker::advance_time`]) and handed requests ([`Broker::handle`]); the
//! simulator, the `explain` tool and (later) a TCP server all drive this same code.
//!
//! The produce path for one partition's batch, in Kafka's order (docs/KAFKA-RULES.md §1.2, §1.4):
//!
//! 0. (for a whole request) `acks` is -1, 0 or 1, else `INVALID_REQUIRED_ACKS`;
//! 1. partition exists (or is auto-created), else `UNKNOWN_TOPIC_OR_PARTITION` (a broker in
//!    a cluster creates partitions only when told, and answers `NOT_LEADER_OR_FOLLOWER`);
//!    a replicated partition must be led by this broker, else `NOT_LEADER_OR_FOLLOWER`, and
//!    with `acks=all` its ISR must hold `min.insync.replicas`, else `NOT_ENOUGH_REPLICAS`
//!    (Kafka's `Partition.appendRecordsToLeader`, before any validation; see `replication`);
//! 2. exactly one RecordBatch v2 with base offset 0, else `INVALID_RECORD`;
//! 3. size within `max_message_bytes`, else `MESSAGE_TOO_LARGE`;
//! 4. CRC-32C matches, else `CORRUPT_MESSAGE`;
//! 5. Kafka's `LogValidator`: at least one record in the offset range, a positive count equal
//!    to lastOffsetDelta + 1 (so an empty batch is refused), no control batch, sequence >= 0
//!    with a producer id, records well formed (a compressed batch's records decompressed
//!    within `max_message_bytes`, else `MESSAGE_TOO_LARGE`, with inner offsets 0, 1, 2, ...),
//!    else `INVALID_RECORD`; no record stamped more than
//!    `log.message.timestamp.before.max.ms` behind or `log.message.timestamp.after.max.ms`
//!    ahead of the broker clock (per partition: `message.timestamp.*`), else
//!    `INVALID_TIMESTAMP`;
//! 6. the sequence rule (`producer_state`): duplicate, stale epoch, in sequence;
//! 7. append through [`Storage`] stamped with the leader epoch (0 while standalone), sync if
//!    the [`SyncPolicy`] says so, then (only then) update the producer state and answer
//!    (`producer_state_before_append` switches on Kafka 0.11's order instead, KAFKA-6683); on a
//!    replicated partition with `acks=all` the answer waits for the high watermark
//!    ([`Broker::handle_from`], [`Broker::take_completed`]).
//!
//! The header is parsed once per batch; nothing before step 7 changes any state.
//!
//! # Durability
//!
//! Every byte the broker keeps goes through a [`Storage`] (by default the simulated disk
//! [`SimDisk`]): segment files, producer-state snapshots, log start checkpoints and the
//! producer-id block. Memory holds only indexes and producer state, which is why a power
//! loss ([`Broker::crash`]) can be modelled exactly: the disk drops what was never synced,
//! memory is discarded, and recovery (`recovery`) rebuilds both from the files. The broker
//! clock survives: the simulator tells the time.
//!
//! * [`SyncPolicy`] says when appends become durable: before each acknowledgement
//!   (`EveryAppend`, the default), every `n` ms of broker time (`IntervalMs`, Kafka's
//!   `log.flush.interval.ms`), or only at clean shutdown (`Never`, Kafka's default, which
//!   relies on replication instead).
//! * Snapshots of producer state are taken every `snapshot_interval_ms` (`snapshot`).
//! * Producer ids are reserved in blocks of [`PRODUCER_ID_BLOCK_SIZE`], each block's end
//!   written durably before its first id is handed out; after any restart allocation
//!   resumes at the end of the last block, so an id is never handed out twice.
//!
//! Three restarts, three meanings:
//!
//! ```text
//! call              | disk                          | producer state rebuilt from
//! restart()         | untouched                     | the retained log, no snapshot (Kafka without one)
//! restart_clean()   | synced, snapshots taken       | newest snapshot + replay of the rest
//! crash(keep)       | unsynced bytes dropped (torn) | newest valid snapshot + replay of what survived
//! ```

use crate::broker_topic_stats::BrokerTopicStats;
use crate::cluster::{AlterPartition, BrokerId};
use crate::partition_config::PartitionConfig;
use crate::partition_log::{
    DEFAULT_SEGMENT_BYTES, DeleteRecordsError, LogView, PartitionLog, StoredBatch, partition_dir,
};
use crate::producer_state::{ProducerSlot, ProducerStateManager, SequenceCheck, StateSeen};
use crate::recovery::{
    PartitionRecovery, RecoverySettings, partitions_on_disk, recover_partition, replay,
};
use crate::replication::{
    CompletedProduce, DelayedProduce, PartitionReplication, ReplicaRole, ReplicationEvent,
};
use crate::snapshot::{SnapshotMode, delete_snapshots_before, write_snapshot};
use crate::storage::{CrashedFile, SimDisk, Storage, StorageError};
use crate::verdict::{AppendReason, InvalidBatch, ProduceOutcome, Verdict};
use bytes::Bytes;
use idempo_protocol::{
    BatchHeader, DecodeError, ErrorCode, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataResponse, PartitionMetadata, PartitionProduceResponse,
    ProduceRequest, ProduceResponse, ProducerEpoch, ProducerId, RecordsSummary, Request,
    RequestFrame, Response, ResponseFrame, Sequence, record_batch,
};
use std::fmt;

/// Broker settings. The defaults are Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Deduplicate by producer id and sequence (`true`), or append every valid batch
    /// (`false`, to show what breaks without it).
    pub idempotence: bool,
    /// Batches retained per producer per partition (Kafka: 5, `NUM_BATCHES_TO_RETAIN`).
    pub dedup_window: usize,
    /// `producer.id.expiration.ms`: a producer whose last batch timestamp is this old loses
    /// its state (default one day).
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`: how often expiry runs (default 10 min).
    pub producer_id_expiration_check_interval_ms: i64,
    /// `message.max.bytes` (the topic-level `max.message.bytes`): the largest batch accepted
    /// (default 1 048 588), and the bound on a compressed batch's decompressed records.
    pub max_message_bytes: usize,
    /// Create a partition on first produce, as `auto.create.topics.enable` does for topics.
    pub auto_create_partitions: bool,
    /// Highest partition number that may exist (bounds memory against hostile requests).
    pub max_partitions: i32,
    /// First producer id handed out by InitProducerId.
    pub first_producer_id: i64,
    /// When appended batches are made durable (default: before each acknowledgement).
    pub sync_policy: SyncPolicy,
    /// Producer-state snapshots are taken whenever the broker is told that a multiple of this
    /// much time has passed (default one minute).
    pub snapshot_interval_ms: i64,
    /// What a snapshot keeps per producer (default: the whole window; see `snapshot`).
    pub snapshot_mode: SnapshotMode,
    /// Snapshots kept per partition (default 2).
    pub snapshots_retained: usize,
    /// `segment.bytes`: a segment file is rolled when the next batch would exceed this
    /// (default 1 MiB).
    pub segment_bytes: u32,
    /// `log.message.timestamp.after.max.ms`: how far ahead of the broker clock a record's
    /// timestamp may be (default one hour, as in Kafka 4.0, KIP-937). A batch with a record
    /// stamped further ahead is refused with `INVALID_TIMESTAMP`. `i64::MAX` switches the
    /// check off (as Kafka's `before` side is off by default with `Long.MAX_VALUE`).
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.message.timestamp.before.max.ms`: how far behind the broker clock a record's
    /// timestamp may be (KIP-937, Kafka 3.6+). A batch with a record stamped further in the
    /// past is refused with `INVALID_TIMESTAMP`. Default `i64::MAX`, Kafka's `Long.MAX_VALUE`:
    /// no check.
    pub log_message_timestamp_before_max_ms: i64,
    /// This broker's id in a cluster (Kafka's `node.id`, default 0). A standalone broker is
    /// broker 0.
    pub broker_id: BrokerId,
    /// `min.insync.replicas` (default 1): with `acks=all`, a leader whose ISR is smaller
    /// refuses to append (`NOT_ENOUGH_REPLICAS`). Used only for replicated partitions.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms` (default 30 000): a follower not caught up for this long is
    /// removed from the ISR.
    pub replica_lag_time_max_ms: i64,
    /// Where a follower cuts its log when it follows a new leader: by leader epoch (KIP-101,
    /// the default) or, as before Kafka 0.11, at its own high watermark.
    pub truncation: crate::replication::TruncationMode,
    /// idempo's bound on producer state, beyond Kafka (`None`, the default, is Kafka: no
    /// bound). With `Some(n)`, a partition keeps the state of at most `n` producer ids: when
    /// an append gives it one more, the producer whose last batch is the oldest loses its
    /// state (an expired one first; see [`ProducerStateManager::evict_least_recent`]).
    /// Kafka bounds producer state by time only (`producer.id.expiration.ms`, KIP-854), so
    /// clients that create a producer per message grow it until memory runs out; a bound
    /// above the producer ids created within a retry's reach keeps memory bounded and leaves
    /// the deduplication of live producers alone.
    pub max_producer_ids_per_partition: Option<usize>,
    /// What a batch from a producer with no state here gets when it does not start at
    /// sequence 0 (default: accepted, Kafka 2.5+; see
    /// [`UnknownProducerRule`](crate::producer_state::UnknownProducerRule)).
    pub unknown_producer: crate::producer_state::UnknownProducerRule,
    /// DeleteRecords and retention remove the producers whose batches all fall below the new
    /// log start (Kafka 0.11 to 2.3; `false`, the default, keeps them until they expire, as
    /// Kafka does since KAFKA-7190 in 2.4.0).
    pub evict_producers_below_log_start: bool,
    /// Enter an accepted batch into the producer state *before* its log append, as Kafka
    /// 0.11.0 to 1.0.x did (KAFKA-6683, fixed in 1.1.0: `ProducerAppendInfo` shared the
    /// cached entry's queue of batches, so validating a batch added it to the live state).
    /// When that append then fails (a disk write error, `KAFKA_STORAGE_ERROR`), the state
    /// holds a batch the log does not: its retry is answered as a duplicate of nothing and
    /// acknowledged. `false`, the default, is the fix: the state changes only after the append
    /// (and its sync) succeeded.
    pub producer_state_before_append: bool,
    /// The epoch InitProducerId hands out with a new producer id (Kafka: 0). idempo's
    /// simulation setting, beyond Kafka: a producer that starts near `Short.MAX_VALUE`
    /// (32 767) reaches epoch exhaustion after a bump or two instead of 32 767, which is how
    /// the zoo shows KAFKA-5283. At least 0.
    pub initial_producer_epoch: i16,
}

/// When the broker makes appended batches durable (Kafka's `log.flush.interval.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Sync the segment before acknowledging each produce: a crash never loses an
    /// acknowledged batch.
    #[default]
    EveryAppend,
    /// Sync every partition when the broker is told that this many ms have passed since the
    /// last sync (`log.flush.interval.ms`): a crash loses at most that much.
    IntervalMs(i64),
    /// Sync only at clean shutdown (Kafka's default): a crash loses everything since.
    Never,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            idempotence: true,
            dedup_window: 5,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            max_message_bytes: 1_048_588,
            auto_create_partitions: true,
            max_partitions: 10_000,
            first_producer_id: 1,
            sync_policy: SyncPolicy::EveryAppend,
            snapshot_interval_ms: 60_000,
            snapshot_mode: SnapshotMode::FullWindow,
            snapshots_retained: 2,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            log_message_timestamp_after_max_ms: DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            log_message_timestamp_before_max_ms: i64::MAX,
            broker_id: 0,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            truncation: crate::replication::TruncationMode::LeaderEpoch,
            max_producer_ids_per_partition: None,
            unknown_producer: crate::producer_state::UnknownProducerRule::AnySequence,
            evict_producers_below_log_start: false,
            producer_state_before_append: false,
            initial_producer_epoch: 0,
        }
    }
}

/// Kafka 4.0's default `log.message.timestamp.after.max.ms`: one hour.
pub const DEFAULT_TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;

/// Parses a command-line value for `log.message.timestamp.after.max.ms` (and
/// `log.message.timestamp.before.max.ms`): milliseconds (at least 0), or `off` for no check
/// (`i64::MAX`, as Kafka's `Long.MAX_VALUE`). The one parser the binaries' flags share.
///
/// # Examples
///
/// ```
/// use idempo_broker::parse_timestamp_after_max_ms;
/// assert_eq!(parse_timestamp_after_max_ms("3600000"), Ok(3_600_000));
/// assert_eq!(parse_timestamp_after_max_ms("off"), Ok(i64::MAX));
/// assert!(parse_timestamp_after_max_ms("-1").is_err());
/// ```
pub fn parse_timestamp_after_max_ms(text: &str) -> Result<i64, TimestampAfterMaxError> {
    if text == "off" {
        return Ok(i64::MAX);
    }
    match text.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(ms),
        _ => Err(TimestampAfterMaxError(text.to_string())),
    }
}

/// A value for `log.message.timestamp.after.max.ms` that is neither milliseconds >= 0 nor
/// `off`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampAfterMaxError(pub String);

impl fmt::Display for TimestampAfterMaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a number of milliseconds >= 0 or `off`",
            self.0
        )
    }
}

impl std::error::Error for TimestampAfterMaxError {}

/// Largest dedup window accepted (experiments beyond this say nothing new).
pub const MAX_DEDUP_WINDOW: usize = 1024;

/// Producer ids reserved by one durable write (Kafka's `ProducerIdManager` block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The broker-wide file holding the end of the reserved producer-id block.
const PRODUCER_ID_FILE: &str = "producer-id-block";

/// A setting the broker cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `dedup_window` outside `1..=MAX_DEDUP_WINDOW`.
    DedupWindow(usize),
    /// `producer_id_expiration_ms` or the check interval below 1.
    Expiration(i64),
    /// `max_partitions` below 1.
    MaxPartitions(i32),
    /// `segment_bytes` below the size of an empty batch (61 bytes) or above `i32::MAX`.
    SegmentBytes(u32),
    /// `snapshot_interval_ms` or a sync interval below 1.
    Interval(i64),
    /// `snapshots_retained` of 0.
    SnapshotsRetained,
    /// `log_message_timestamp_after_max_ms` below 0.
    TimestampAfterMax(i64),
    /// `log_message_timestamp_before_max_ms` below 0.
    TimestampBeforeMax(i64),
    /// `min_insync_replicas` of 0.
    MinInsyncReplicas,
    /// `replica_lag_time_max_ms` below 1.
    ReplicaLagTimeMax(i64),
    /// `broker_id` below 0.
    BrokerId(BrokerId),
    /// `max_producer_ids_per_partition` of `Some(0)`.
    MaxProducerIds,
    /// `initial_producer_epoch` below 0.
    InitialProducerEpoch(i16),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::DedupWindow(n) => {
                write!(
                    f,
                    "dedup window {n} must be between 1 and {MAX_DEDUP_WINDOW} batches"
                )
            }
            ConfigError::Expiration(ms) => {
                write!(
                    f,
                    "producer id expiration settings must be at least 1 ms, not {ms}"
                )
            }
            ConfigError::MaxPartitions(n) => write!(f, "max partitions {n} must be at least 1"),
            ConfigError::SegmentBytes(n) => write!(
                f,
                "segment size {n} must be between 61 bytes and {} bytes",
                i32::MAX
            ),
            ConfigError::Interval(ms) => {
                write!(
                    f,
                    "snapshot and sync intervals must be at least 1 ms, not {ms}"
                )
            }
            ConfigError::SnapshotsRetained => write!(f, "at least one snapshot must be retained"),
            ConfigError::TimestampAfterMax(ms) => write!(
                f,
                "log.message.timestamp.after.max.ms must be at least 0, not {ms}"
            ),
            ConfigError::TimestampBeforeMax(ms) => write!(
                f,
                "log.message.timestamp.before.max.ms must be at least 0, not {ms}"
            ),
            ConfigError::MinInsyncReplicas => write!(f, "min.insync.replicas must be at least 1"),
            ConfigError::ReplicaLagTimeMax(ms) => {
                write!(f, "replica.lag.time.max.ms must be at least 1, not {ms}")
            }
            ConfigError::BrokerId(id) => write!(f, "broker id {id} must be at least 0"),
            ConfigError::InitialProducerEpoch(e) => {
                write!(f, "the initial producer epoch {e} must be at least 0")
            }
            ConfigError::MaxProducerIds => {
                write!(
                    f,
                    "the bound on producer ids per partition must be at least 1"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The window a record's `CreateTime` must fall in around the broker clock: the partition's
/// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`, or the broker's.
#[derive(Clone, Copy, Debug)]
struct TimestampBounds {
    before_max_ms: i64,
    after_max_ms: i64,
}

/// A producer whose state was dropped because it was idle too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredProducer {
    /// The partition it was dropped from.
    pub partition: i32,
    /// The producer.
    pub producer_id: ProducerId,
}

/// What one request did: the response and, for produce, one outcome per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The response frame to send back, or `None` when there is none yet (an `acks=all`
    /// produce to a replicated partition waits for the high watermark: its answer comes out of
    /// [`Broker::take_completed`]) or none at all (`acks=0` to a replicated partition). A
    /// standalone broker always answers at once.
    pub response: Option<ResponseFrame>,
    /// Per-partition produce outcomes, in request order (empty for other requests).
    pub outcomes: Vec<ProduceOutcome>,
}

#[derive(Clone, Debug)]
pub(crate) struct Partition {
    pub(crate) log: PartitionLog,
    pub(crate) producers: ProducerStateManager,
    /// Offset of the newest snapshot taken (or the log start offset): a snapshot is skipped
    /// while the log end has not moved past it (Kafka's `lastSnapOffset`).
    pub(crate) last_snapshot_offset: i64,
    /// Leader, followers, ISR and high watermark, once the controller has told this broker
    /// about the partition (`replication`); `None` while standalone.
    pub(crate) replication: Option<Box<PartitionReplication>>,
}

impl Partition {
    /// The high watermark: the log end offset while standalone.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.replication
            .as_deref()
            .map_or(self.log.log_end_offset(), |r| r.high_watermark)
    }
}

/// What a crash, a clean restart or opening a disk did, per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartReport {
    /// One entry per partition found on disk, ascending.
    pub partitions: Vec<PartitionRestart>,
    /// Files the disk changed in the crash (empty for a clean restart).
    pub files: Vec<CrashedFile>,
    /// The next producer id InitProducerId will hand out.
    pub next_producer_id: ProducerId,
}

/// The name the simulator uses for the report of [`Broker::crash`].
pub type CrashReport = RestartReport;

/// One partition across a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRestart {
    /// The partition.
    pub partition: i32,
    /// Log end offset in memory before (what producers were acknowledged up to).
    pub log_end_offset_before: i64,
    /// Log end offset at the last sync before.
    pub durable_end_offset_before: i64,
    /// The batches that were in the log before and are not after, oldest first, as they were
    /// stored: acknowledged records that vanished because they were never synced.
    pub lost_batches: Vec<StoredBatch>,
    /// What recovery did: bytes truncated, snapshot loaded or fallen back from, producers.
    pub recovery: PartitionRecovery,
}

impl PartitionRestart {
    /// Log end offset after recovery.
    pub fn log_end_offset_after(&self) -> i64 {
        self.recovery.log_end_offset
    }

    /// Bytes recovery cut from the log (torn or corrupt tails, segments after them).
    pub fn truncated_bytes(&self) -> u64 {
        self.recovery.log.truncated_bytes
    }
}

/// The broker core.
///
/// # Examples
///
/// ```
/// use idempo_broker::{Broker, BrokerConfig};
/// use idempo_protocol::{ErrorCode, Record, RecordBatch, Sequence};
///
/// let mut broker = Broker::new(BrokerConfig::default()).unwrap();
/// broker.set_record_windows(true); // explanations show the window the rule saw
/// let id = broker.init_producer_id();
/// let batch = RecordBatch::idempotent(
///     id.producer_id, id.producer_epoch, Sequence(0), 1_000,
///     vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
/// ).to_bytes();
///
/// let first = broker.produce(0, &batch);
/// assert!(first.is_appended());
/// // The ack is lost; the producer retries the very same batch.
/// let retry = broker.produce(0, &batch);
/// assert!(retry.is_duplicate());
/// assert_eq!(retry.response.error_code, ErrorCode::None);
/// assert_eq!(retry.response.base_offset, first.response.base_offset);
/// assert_eq!(broker.log_end_offset(0), Some(2));
/// println!("{retry}"); // duplicate of the batch at offsets 0..1 (window: 0..1): nothing appended
/// ```
#[derive(Clone, Debug)]
pub struct Broker<S = SimDisk> {
    pub(crate) config: BrokerConfig,
    pub(crate) partitions: Vec<Option<Partition>>,
    next_producer_id: i64,
    /// Ids below this are reserved durably; reaching it writes the next block first.
    producer_id_block_end: i64,
    /// Producer ids come from blocks the controller grants (KIP-730), not from the broker's
    /// own durable block.
    producer_ids_granted: bool,
    pub(crate) now_ms: i64,
    next_expiration_check_ms: i64,
    last_sync_ms: i64,
    next_snapshot_ms: i64,
    pub(crate) storage: S,
    pub(crate) storage_failures: u64,
    /// Producer ids whose state the bound `max_producer_ids_per_partition` removed.
    pub(crate) producer_ids_evicted: u64,
    /// Copy each producer's window into the outcomes (for explanations); off by default.
    record_windows: bool,
    /// Told about a cluster by a LeaderAndIsr: unknown partitions are no longer auto-created.
    pub(crate) in_cluster: bool,
    /// acks=all produce requests waiting for the high watermark.
    pub(crate) delayed: Vec<DelayedProduce>,
    /// Their answers, until [`Broker::take_completed`].
    pub(crate) completed: Vec<CompletedProduce>,
    /// Replication events, until [`Broker::take_replication_events`].
    pub(crate) replication_events: Vec<ReplicationEvent>,
    /// ISR expansions proposed by follower fetches, until [`Broker::take_alter_partitions`].
    pub(crate) alter_partitions: Vec<AlterPartition>,
    /// Topic-level overrides by partition ([`Broker::set_partition_config`]); empty by default.
    partition_configs: std::collections::BTreeMap<i32, PartitionConfig>,
    /// Produce counters, for metrics.
    stats: BrokerTopicStats,
}

impl Broker<SimDisk> {
    /// A broker on an empty simulated disk, with no partitions, its clock at 0.
    pub fn new(config: BrokerConfig) -> Result<Broker, ConfigError> {
        Broker::<SimDisk>::check(&config)?;
        let (broker, _) = Broker::open(config, SimDisk::new())
            .unwrap_or_else(|e| panic!("opening an empty SimDisk cannot fail: {e}"));
        Ok(broker)
    }

    /// A power loss: the disk drops every unsynced byte except what `keep(file,
    /// unsynced_len)` keeps of each file's unsynced tail (a torn write; see
    /// [`SimDisk::crash`], which calls it in ascending file-name order), memory is discarded,
    /// and recovery rebuilds logs and producer state from the disk. The clock and the
    /// configuration survive. The report says, per partition, the log end before and after,
    /// the batches lost, the bytes truncated and which snapshot was loaded.
    ///
    /// # Examples
    ///
    /// ```
    /// use idempo_broker::{Broker, BrokerConfig, SyncPolicy};
    /// use idempo_protocol::{Record, RecordBatch, Sequence};
    ///
    /// let mut broker = Broker::new(BrokerConfig {
    ///     sync_policy: SyncPolicy::Never,
    ///     ..BrokerConfig::default()
    /// })
    /// .unwrap();
    /// let id = broker.init_producer_id();
    /// let batch = RecordBatch::idempotent(
    ///     id.producer_id, id.producer_epoch, Sequence(0), 1_000,
    ///     vec![Record::with_value(0, "a")],
    /// ).to_bytes();
    /// assert!(broker.produce(0, &batch).is_appended());
    /// let report = broker.crash(|_file, _unsynced| 0);
    /// assert_eq!(report.partitions[0].lost_batches.len(), 1, "acknowledged, never synced");
    /// assert_eq!(broker.log_end_offset(0), Some(0));
    /// assert!(broker.init_producer_id().producer_id > id.producer_id, "ids never repeat");
    /// ```
    pub fn crash(&mut self, keep: impl FnMut(&str, u64) -> u64) -> CrashReport {
        let before = self.before_restart();
        let files = self.storage.crash(keep);
        let mut report = self
            .recover_with(before)
            .unwrap_or_else(|e| panic!("recovery on a SimDisk cannot fail: {e}"));
        report.files = files;
        report
    }
}

/// What memory knew of a partition just before a restart.
struct Before {
    log_end_offset: i64,
    durable_end_offset: i64,
    /// The batches a crash may take: those from the durable end on.
    at_risk: Vec<StoredBatch>,
}

impl<S: Storage> Broker<S> {
    fn check(config: &BrokerConfig) -> Result<(), ConfigError> {
        if config.dedup_window == 0 || config.dedup_window > MAX_DEDUP_WINDOW {
            return Err(ConfigError::DedupWindow(config.dedup_window));
        }
        for ms in [
            config.producer_id_expiration_ms,
            config.producer_id_expiration_check_interval_ms,
        ] {
            if ms < 1 {
                return Err(ConfigError::Expiration(ms));
            }
        }
        if config.max_producer_ids_per_partition == Some(0) {
            return Err(ConfigError::MaxProducerIds);
        }
        if config.initial_producer_epoch < 0 {
            return Err(ConfigError::InitialProducerEpoch(
                config.initial_producer_epoch,
            ));
        }
        if config.max_partitions < 1 {
            return Err(ConfigError::MaxPartitions(config.max_partitions));
        }
        let segment = config.segment_bytes;
        if segment < idempo_protocol::record_batch::RECORD_BATCH_OVERHEAD as u32
            || segment > i32::MAX as u32
        {
            return Err(ConfigError::SegmentBytes(segment));
        }
        for ms in [
            config.snapshot_interval_ms,
            match config.sync_policy {
                SyncPolicy::IntervalMs(ms) => ms,
                _ => 1,
            },
        ] {
            if ms < 1 {
                return Err(ConfigError::Interval(ms));
            }
        }
        if config.snapshots_retained == 0 {
            return Err(ConfigError::SnapshotsRetained);
        }
        if config.log_message_timestamp_after_max_ms < 0 {
            return Err(ConfigError::TimestampAfterMax(
                config.log_message_timestamp_after_max_ms,
            ));
        }
        if config.log_message_timestamp_before_max_ms < 0 {
            return Err(ConfigError::TimestampBeforeMax(
                config.log_message_timestamp_before_max_ms,
            ));
        }
        if config.min_insync_replicas == 0 {
            return Err(ConfigError::MinInsyncReplicas);
        }
        if config.replica_lag_time_max_ms < 1 {
            return Err(ConfigError::ReplicaLagTimeMax(
                config.replica_lag_time_max_ms,
            ));
        }
        if config.broker_id < 0 {
            return Err(ConfigError::BrokerId(config.broker_id));
        }
        Ok(())
    }

    /// A broker on `storage`, recovering whatever it holds (an empty storage gives an empty
    /// broker). The clock starts at 0.
    pub fn open(config: BrokerConfig, storage: S) -> Result<(Broker<S>, RestartReport), OpenError> {
        Broker::<S>::check(&config).map_err(OpenError::Config)?;
        let mut broker = Broker {
            next_producer_id: config.first_producer_id,
            producer_id_block_end: config.first_producer_id,
            next_expiration_check_ms: config.producer_id_expiration_check_interval_ms,
            last_sync_ms: 0,
            next_snapshot_ms: config.snapshot_interval_ms,
            config,
            partitions: Vec::new(),
            now_ms: 0,
            storage,
            storage_failures: 0,
            producer_ids_evicted: 0,
            record_windows: false,
            producer_ids_granted: false,
            in_cluster: false,
            delayed: Vec::new(),
            completed: Vec::new(),
            replication_events: Vec::new(),
            alter_partitions: Vec::new(),
            partition_configs: std::collections::BTreeMap::new(),
            stats: BrokerTopicStats::default(),
        };
        let report = broker
            .recover_with(Vec::new())
            .map_err(OpenError::Storage)?;
        Ok((broker, report))
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, mutable: for fault injection (corrupting a file). The broker notices only
    /// at its next recovery.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Periodic syncs or snapshots that failed (they are retried at the next period).
    pub fn storage_failures(&self) -> u64 {
        self.storage_failures
    }

    /// Whether outcomes carry a copy of the producer's window as the rule saw it
    /// ([`StateSeen::window`](crate::StateSeen::window)), which their explanation then shows.
    /// Off by default, so the produce path pays nothing for explanations nobody reads; the
    /// `explain` tool and a traced simulation turn it on. Decisions are the same either way.
    pub fn set_record_windows(&mut self, record: bool) {
        self.record_windows = record;
    }

    /// The settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The broker's idea of the time.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Tells the broker the time. Time never moves backwards (an earlier `now_ms` is ignored).
    /// Whenever a multiple of the expiration check interval has passed, producers idle for
    /// `producer_id_expiration_ms` lose their state, judged against their last batch's max
    /// timestamp as Kafka does. Returns the producers expired, by partition and id.
    ///
    /// The same call runs the periodic storage work: with [`SyncPolicy::IntervalMs`] every
    /// log is synced once that much time has passed since the last sync, and whenever a
    /// multiple of `snapshot_interval_ms` has passed a snapshot is taken of every partition
    /// whose log end moved since its last one. A failure there is counted
    /// ([`storage_failures`](Self::storage_failures)) and retried next period.
    pub fn advance_time(&mut self, now_ms: i64) -> Vec<ExpiredProducer> {
        if now_ms <= self.now_ms {
            return Vec::new();
        }
        self.now_ms = now_ms;
        let expired = if now_ms < self.next_expiration_check_ms {
            Vec::new()
        } else {
            let interval = self.config.producer_id_expiration_check_interval_ms;
            self.next_expiration_check_ms = (now_ms / interval + 1).saturating_mul(interval);
            self.remove_expired_producers()
        };
        if let SyncPolicy::IntervalMs(ms) = self.config.sync_policy
            && now_ms.saturating_sub(self.last_sync_ms) >= ms
        {
            self.last_sync_ms = now_ms;
            if self.flush().is_err() {
                self.storage_failures += 1;
            }
        }
        if now_ms >= self.next_snapshot_ms {
            let interval = self.config.snapshot_interval_ms;
            self.next_snapshot_ms = (now_ms / interval + 1).saturating_mul(interval);
            if self.take_snapshots().is_err() {
                self.storage_failures += 1;
            }
            self.enforce_retention();
        }
        self.complete_delayed();
        expired
    }

    /// Syncs every partition's log (Kafka's `flush`): everything appended so far survives a
    /// crash.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        for p in self.partitions.iter_mut().flatten() {
            p.log.sync(&mut self.storage)?;
        }
        Ok(())
    }

    /// Takes a producer-state snapshot at the log end of every partition whose log end moved
    /// past its last snapshot (Kafka skips unchanged ones too), keeping the newest
    /// `snapshots_retained`. Returns `(partition, offset)` of each snapshot written. Nothing
    /// is written with idempotence off.
    pub fn take_snapshots(&mut self) -> Result<Vec<(i32, i64)>, StorageError> {
        let mut taken = Vec::new();
        if !self.config.idempotence {
            return Ok(taken);
        }
        for (index, p) in self.partitions.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            let offset = p.log.log_end_offset();
            if offset <= p.last_snapshot_offset {
                continue;
            }
            write_snapshot(
                &mut self.storage,
                &partition_dir(index as i32),
                &p.producers,
                offset,
                self.config.snapshot_mode,
                self.config.snapshots_retained,
            )?;
            p.last_snapshot_offset = offset;
            taken.push((index as i32, offset));
        }
        Ok(taken)
    }

    fn remove_expired_producers(&mut self) -> Vec<ExpiredProducer> {
        let (now, expiration) = (self.now_ms, self.config.producer_id_expiration_ms);
        let mut expired = Vec::new();
        for (index, partition) in self.partitions.iter_mut().enumerate() {
            if let Some(p) = partition {
                for producer_id in p.producers.remove_expired(now, expiration) {
                    expired.push(ExpiredProducer {
                        partition: index as i32,
                        producer_id,
                    });
                }
            }
        }
        expired
    }

    /// Creates `partition` if it does not exist. Fails for numbers outside
    /// `0..max_partitions`.
    pub fn create_partition(&mut self, partition: i32) -> Result<(), ErrorCode> {
        let index = usize::try_from(partition).map_err(|_| ErrorCode::UnknownTopicOrPartition)?;
        if partition >= self.config.max_partitions {
            return Err(ErrorCode::UnknownTopicOrPartition);
        }
        if self.partitions.len() <= index {
            self.partitions.resize_with(index + 1, || None);
        }
        if self.partitions[index].is_none() {
            let log = PartitionLog::create(&mut self.storage, partition, self.config.segment_bytes)
                .map_err(|_| ErrorCode::KafkaStorageError)?;
            self.partitions[index] = Some(Partition {
                log,
                producers: ProducerStateManager::new(self.config.dedup_window),
                last_snapshot_offset: 0,
                replication: None,
            });
        }
        Ok(())
    }

    /// Sets the topic-level overrides of `partition` (`partition_config`); the default
    /// removes them.
    pub fn set_partition_config(&mut self, partition: i32, config: PartitionConfig) {
        if config.is_default() {
            self.partition_configs.remove(&partition);
        } else {
            self.partition_configs.insert(partition, config);
        }
    }

    /// The topic-level overrides of `partition` (the default when none were set).
    pub fn partition_config(&self, partition: i32) -> PartitionConfig {
        if self.partition_configs.is_empty() {
            return PartitionConfig::default(); // the hot path of a broker without overrides
        }
        self.partition_configs
            .get(&partition)
            .copied()
            .unwrap_or_default()
    }

    /// Time-based retention (`retention.ms` of [`PartitionConfig`]): in every partition
    /// with a retention, the batches from the log start whose max timestamp is older than
    /// `now - retention.ms` are deleted ([`delete_records`](Self::delete_records)). Runs
    /// with the snapshots in [`advance_time`](Self::advance_time). Returns the partitions
    /// whose log start moved, with the new log start offset.
    pub fn enforce_retention(&mut self) -> Vec<(i32, i64)> {
        let mut moves = Vec::new();
        for (&partition, config) in &self.partition_configs {
            let Some(retention_ms) = config.retention_ms.filter(|ms| *ms >= 0) else {
                continue;
            };
            let Some(p) = self.partition(partition) else {
                continue;
            };
            let cutoff = self.now_ms.saturating_sub(retention_ms);
            let start = p.log.log_start_offset();
            let keep_from = p
                .log
                .batches_from(&self.storage, start)
                .find(|b| b.header.max_timestamp >= cutoff)
                .map_or(p.log.log_end_offset(), |b| b.base_offset().max(start));
            if keep_from > start {
                moves.push((partition, keep_from));
            }
        }
        moves.retain(
            |&(partition, offset)| match self.delete_records(partition, offset) {
                Ok(_) => true,
                Err(_) => {
                    self.storage_failures += 1;
                    false
                }
            },
        );
        moves
    }

    /// Sets `producer.id.expiration.ms` (a dynamic broker config in Kafka). Fails below 1, as
    /// the same value in a [`BrokerConfig`] does (one check for both).
    pub fn set_producer_id_expiration_ms(&mut self, ms: i64) -> Result<(), ConfigError> {
        let config = BrokerConfig {
            producer_id_expiration_ms: ms,
            ..self.config.clone()
        };
        Self::check(&config)?;
        self.config = config;
        Ok(())
    }

    /// Deletes `partition`: its memory, its overrides and every file under its directory
    /// (Kafka deletes a deleted topic's partition directories). A partition that does not
    /// exist in memory still has any leftover files removed.
    pub fn delete_partition(&mut self, partition: i32) -> Result<(), StorageError> {
        if let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get_mut(i))
        {
            *slot = None;
        }
        self.partition_configs.remove(&partition);
        for file in self.storage.list(&partition_dir(partition)) {
            self.storage.remove(&file)?;
        }
        Ok(())
    }

    pub(crate) fn partition(&self, partition: i32) -> Option<&Partition> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    /// Partition numbers that exist, ascending.
    pub fn partition_ids(&self) -> Vec<i32> {
        (0..self.partitions.len() as i32)
            .filter(|p| self.partition(*p).is_some())
            .collect()
    }

    /// A partition's log, readable through the storage: offsets, and
    /// [`batches`](LogView::batches) with each batch's parsed header and bytes.
    pub fn log(&self, partition: i32) -> Option<LogView<'_, S>> {
        self.partition(partition)
            .map(|p| LogView::new(&p.log, &self.storage))
    }

    /// A partition's log end offset.
    pub fn log_end_offset(&self, partition: i32) -> Option<i64> {
        self.partition(partition).map(|p| p.log.log_end_offset())
    }

    /// A partition's producer state.
    pub fn producer_state(&self, partition: i32) -> Option<&ProducerStateManager> {
        self.partition(partition).map(|p| &p.producers)
    }

    /// Serves one request frame from client 0: [`handle_from`](Self::handle_from).
    pub fn handle(&mut self, frame: &RequestFrame) -> Handled {
        self.handle_from(0, frame)
    }

    /// Serves one request frame from `client` (any number the caller uses to route a delayed
    /// answer back: [`take_completed`](Self::take_completed) names it). A fetch with a
    /// `replica_id` of 0 or more is a follower's ([`replica_fetch`](Self::replica_fetch)) once
    /// the broker is in a cluster.
    /// A produce to a replicated partition with `acks=all` may be answered later, with
    /// `acks=0` never (`Handled::response` is `None`); a standalone broker answers at once.
    pub fn handle_from(&mut self, client: u64, frame: &RequestFrame) -> Handled {
        let (response, outcomes) = match &frame.request {
            Request::InitProducerId(r) => (
                Some(Response::InitProducerId(self.init_producer_id_with(r))),
                Vec::new(),
            ),
            Request::Produce(r) => {
                let outcomes = self.produce_request(r);
                let partitions = outcomes.iter().map(|o| o.response).collect();
                let response = if self.in_cluster {
                    self.replicated_produce_response(client, frame.correlation_id, r, partitions)
                } else {
                    Some(Response::Produce(ProduceResponse { partitions }))
                };
                (response, outcomes)
            }
            Request::Fetch(r) if r.replica_id >= 0 && self.in_cluster => {
                (Some(Response::Fetch(self.replica_fetch(r))), Vec::new())
            }
            Request::Fetch(r) => (Some(Response::Fetch(self.fetch(r))), Vec::new()),
            Request::Metadata(_) => (Some(Response::Metadata(self.metadata())), Vec::new()),
        };
        Handled {
            response: response.map(|response| ResponseFrame {
                correlation_id: frame.correlation_id,
                response,
            }),
            outcomes,
        }
    }

    /// The answer to a produce request on a broker in a cluster: none for `acks=0` when a
    /// replicated partition is involved; with `acks=all`, each replicated partition appended
    /// (or found duplicate) must see the high watermark pass it first (Kafka's
    /// `DelayedProduce`), so the answer is delayed unless every one already has.
    fn replicated_produce_response(
        &mut self,
        client: u64,
        correlation_id: i32,
        request: &ProduceRequest,
        partitions: Vec<PartitionProduceResponse>,
    ) -> Option<Response> {
        let replicated = |b: &Self, p: i32| b.partition(p).is_some_and(|p| p.replication.is_some());
        let any_replicated = partitions.iter().any(|p| replicated(self, p.partition));
        if request.acks == 0 && any_replicated {
            return None;
        }
        if request.acks != -1 || !any_replicated {
            return Some(Response::Produce(ProduceResponse { partitions }));
        }
        let required = request
            .partitions
            .iter()
            .zip(&partitions)
            .map(|(data, answer)| {
                let p = self.partition(answer.partition)?;
                p.replication.as_ref()?;
                if answer.error_code != ErrorCode::None {
                    return None;
                }
                // The last offset of what was appended, or of the original of a duplicate.
                let header = BatchHeader::parse(&data.records).ok()?;
                Some(answer.base_offset + i64::from(header.last_offset_delta) + 1)
            })
            .collect();
        let timeout_ms = i64::from(request.timeout_ms.max(0));
        let mut delayed = DelayedProduce {
            client,
            correlation_id,
            deadline_ms: self.now_ms.saturating_add(timeout_ms),
            partitions,
            required,
        };
        if self.try_complete_now(&mut delayed) {
            return self.completed.pop().map(|c| c.response.response);
        }
        self.delayed.push(delayed);
        None
    }

    /// Allocates a fresh producer id at epoch 0, or `initial_producer_epoch` (an idempotent
    /// producer's InitProducerId).
    pub fn init_producer_id(&mut self) -> InitProducerIdResponse {
        self.init_producer_id_with(&InitProducerIdRequest {
            transaction_timeout_ms: i32::MAX,
        })
    }

    /// Hands this broker a block of producer ids, `first..first + len`, from the controller
    /// (KIP-730: in a cluster ids must be unique across brokers, so the controller allocates
    /// them in blocks). From then on InitProducerId uses only granted blocks and answers
    /// `COORDINATOR_LOAD_IN_PROGRESS` (retriable) while none is left; a restart forgets the
    /// block, as a Kafka broker asks for a new one. A broker never granted one keeps its own
    /// durable allocation.
    pub fn grant_producer_id_block(&mut self, first: i64, len: i64) {
        assert!(
            first >= 0 && len > 0,
            "a producer id block is non-empty and non-negative"
        );
        self.producer_ids_granted = true;
        self.next_producer_id = first;
        self.producer_id_block_end = first.saturating_add(len);
    }

    /// Producer ids left in the current block (granted or the broker's own).
    pub fn producer_ids_remaining(&self) -> i64 {
        self.producer_id_block_end - self.next_producer_id
    }

    fn init_producer_id_with(
        &mut self,
        _request: &InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        if self.producer_ids_granted && self.next_producer_id >= self.producer_id_block_end {
            return InitProducerIdResponse {
                error_code: ErrorCode::CoordinatorLoadInProgress,
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
            };
        }
        if self.next_producer_id >= self.producer_id_block_end {
            // Reserve the next block durably before handing out any id from it.
            let end = self.next_producer_id.saturating_add(PRODUCER_ID_BLOCK_SIZE);
            if write_producer_id_block(&mut self.storage, end).is_err() {
                return InitProducerIdResponse {
                    error_code: ErrorCode::KafkaStorageError,
                    producer_id: ProducerId::NONE,
                    producer_epoch: ProducerEpoch::NONE,
                };
            }
            self.producer_id_block_end = end;
        }
        assert!(
            self.next_producer_id < self.producer_id_block_end,
            "a producer id is handed out only from a durably reserved block"
        );
        let producer_id = ProducerId(self.next_producer_id);
        self.next_producer_id += 1;
        InitProducerIdResponse {
            error_code: ErrorCode::None,
            producer_id,
            producer_epoch: ProducerEpoch(self.config.initial_producer_epoch),
        }
    }

    /// Serves a produce request: one outcome per partition, in request order. This is the
    /// one entry point for a produce request, whoever decoded it (the simulator, the Kafka
    /// wire front end): `acks` is checked first, as Kafka's `ReplicaManager.appendRecords`
    /// does, and an invalid value answers every partition `INVALID_REQUIRED_ACKS` without
    /// looking at its batch.
    pub fn produce_request(&mut self, request: &ProduceRequest) -> Vec<ProduceOutcome> {
        if let Err(why) = check_required_acks(request.acks) {
            return request
                .partitions
                .iter()
                .map(|p| self.invalid(p.partition, None, why.clone()))
                .collect();
        }
        request
            .partitions
            .iter()
            .map(|p| self.produce_with_acks(p.partition, &p.records, request.acks))
            .collect()
    }

    /// Produces one client batch to one partition with `acks=all`: validation, the sequence
    /// rule, the append (the order is in the module docs). The header is parsed once, here.
    /// On a replicated leader this appends and returns at once; the wait for the high
    /// watermark belongs to [`handle_from`](Self::handle_from).
    pub fn produce(&mut self, partition: i32, records: &Bytes) -> ProduceOutcome {
        self.produce_with_acks(partition, records, -1)
    }

    fn produce_with_acks(&mut self, partition: i32, records: &Bytes, acks: i16) -> ProduceOutcome {
        let outcome = self.judge_and_append(partition, records, acks);
        self.stats.record(&outcome, records.len());
        outcome
    }

    /// The produce counters since this broker was built ([`BrokerTopicStats`]).
    pub fn stats(&self) -> &BrokerTopicStats {
        &self.stats
    }

    /// Producer ids with state on this broker, summed over its partitions (Kafka's
    /// `ProducerIdCount`, KIP-847).
    pub fn producer_id_count(&self) -> usize {
        self.partitions
            .iter()
            .flatten()
            .map(|p| p.producers.len())
            .sum()
    }

    /// Bytes of producer state on this broker, summed over its partitions (an estimate from
    /// sizes and capacities: [`ProducerStateManager::memory_bytes`]).
    pub fn producer_state_bytes(&self) -> usize {
        self.partitions
            .iter()
            .flatten()
            .map(|p| p.producers.memory_bytes())
            .sum()
    }

    /// Producer ids whose state the bound `max_producer_ids_per_partition` removed since
    /// this broker was built.
    pub fn producer_ids_evicted(&self) -> u64 {
        self.producer_ids_evicted
    }

    fn judge_and_append(&mut self, partition: i32, records: &Bytes, acks: i16) -> ProduceOutcome {
        let header = BatchHeader::parse(records);
        if self.partition(partition).is_none()
            && !(self.config.auto_create_partitions
                && !self.in_cluster
                && self.create_partition(partition).is_ok())
        {
            let why = if self.in_cluster {
                InvalidBatch::NotLeaderOrFollower {
                    leader: crate::cluster::NO_LEADER,
                    leader_epoch: idempo_protocol::NO_LEADER_EPOCH,
                }
            } else {
                InvalidBatch::UnknownPartition
            };
            return self.invalid(partition, header.ok(), why);
        }
        if let Some(why) = self.replication_refusal(partition, acks) {
            return self.invalid(partition, header.ok(), why);
        }
        let header = match header {
            Ok(header) => header,
            Err(e) => return self.invalid(partition, None, InvalidBatch::Malformed(e)),
        };
        if let Err(why) = self.validate(partition, &header, records) {
            return self.invalid(partition, Some(header), why);
        }
        let outcome = self.sequence_and_append(partition, &header, records);
        if outcome.is_appended() {
            self.after_leader_append(partition); // nothing to do on a standalone partition
        }
        outcome
    }

    /// Kafka's `Partition.appendRecordsToLeader` checks before the append, for a replicated
    /// partition: this broker must lead it (`NOT_LEADER_OR_FOLLOWER`), and with `acks=all`
    /// the ISR must hold `min.insync.replicas` (`NOT_ENOUGH_REPLICAS`).
    #[inline]
    fn replication_refusal(&self, partition: i32, acks: i16) -> Option<InvalidBatch> {
        if !self.in_cluster {
            // Standalone: the ISR is this broker alone.
            let min_isr = self.partition_config(partition).min_insync_replicas?;
            return (acks == -1 && min_isr > 1).then(|| InvalidBatch::NotEnoughReplicas {
                isr: vec![self.config.broker_id],
                min_insync_replicas: min_isr,
            });
        }
        let r = self.partition(partition)?.replication.as_deref()?;
        if r.role() != ReplicaRole::Leader {
            return Some(InvalidBatch::NotLeaderOrFollower {
                leader: r.leader(),
                leader_epoch: r.leader_epoch(),
            });
        }
        let min_isr = r.effective_min_isr(self.config.min_insync_replicas);
        (acks == -1 && r.isr().len() < min_isr).then(|| InvalidBatch::NotEnoughReplicas {
            isr: r.isr().to_vec(),
            min_insync_replicas: min_isr,
        })
    }

    /// The sequence rule (`producer_state`: duplicate, stale epoch, in sequence), then the
    /// append of an accepted batch. The producer's entry is looked up once for both
    /// ([`ProducerStateManager::slot`]) and updated only after the append (and its sync)
    /// succeeded.
    fn sequence_and_append(
        &mut self,
        partition: i32,
        header: &BatchHeader,
        records: &Bytes,
    ) -> ProduceOutcome {
        let record_windows = self.record_windows;
        let unknown_producer = self.config.unknown_producer;
        let every_append = self.config.sync_policy == SyncPolicy::EveryAppend;
        let off_reason = if !self.config.idempotence {
            Some(AppendReason::IdempotenceOff)
        } else if !header.producer_id.is_some() {
            Some(AppendReason::NoProducerId)
        } else {
            None
        };
        let storage = &mut self.storage;
        let Partition {
            log,
            producers,
            replication,
            ..
        } = partition_slot(&mut self.partitions, partition)
            .expect("produce created the partition before the sequence rule");
        let leader_epoch = replication
            .as_deref()
            .map_or(crate::partition_log::LEADER_EPOCH, |r| r.leader_epoch());
        let (reason, seen, slot) = match off_reason {
            Some(reason) => (reason, None, None),
            None => match sequence_rule(producers, header, record_windows, unknown_producer) {
                Ok((reason, seen, slot)) => (reason, seen, Some(slot)),
                Err((verdict, seen)) => {
                    return self.answer_unappended(partition, header, verdict, seen);
                }
            },
        };
        let log_end_before = log.log_end_offset();
        let mut slot = slot;
        let had_slot = slot.is_some();
        if self.config.producer_state_before_append
            && let Some(early) = slot.take()
        {
            // KAFKA-6683's rule (Kafka 0.11.0 to 1.0.x): the state learns the batch at the
            // offset it is about to take, whether or not the append then succeeds.
            early.update(log_end_before);
        }
        let appended = append_and_sync(log, storage, header, records, leader_epoch, every_append);
        let base_offset = match appended {
            Ok(base_offset) => base_offset,
            Err(e) => {
                return self.invalid(partition, Some(*header), InvalidBatch::StorageFailed(e));
            }
        };
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        assert!(
            base_offset == log_end_before && log.log_end_offset() == last_offset + 1,
            "a batch is appended at the log end and moves it past its last record"
        );
        let last_sequence = match slot {
            Some(slot) => {
                let last_sequence = slot.last_sequence();
                slot.update(base_offset);
                last_sequence
            }
            None => header.last_sequence(),
        };
        if had_slot && let Some(max) = self.config.max_producer_ids_per_partition {
            let evicted = producers.evict_least_recent(max, header.producer_id);
            self.producer_ids_evicted += evicted.len() as u64;
        }
        let response = PartitionProduceResponse {
            partition,
            error_code: ErrorCode::None,
            base_offset,
            log_append_time_ms: -1,
            log_start_offset: log.log_start_offset(),
        };
        let verdict = Verdict::Appended {
            base_offset,
            last_offset,
            reason,
        };
        outcome(response, verdict, header, last_sequence, seen)
    }

    /// The answer to a batch the sequence rule refused to append: a duplicate is `NONE` with
    /// the original batch's offsets and timestamp; a rejection carries its error code.
    fn answer_unappended(
        &self,
        partition: i32,
        header: &BatchHeader,
        verdict: Verdict,
        seen: Option<StateSeen>,
    ) -> ProduceOutcome {
        let log_start_offset = self
            .partition(partition)
            .map_or(-1, |p| p.log.log_start_offset());
        let response = match &verdict {
            Verdict::Duplicate { original } => PartitionProduceResponse {
                partition,
                error_code: ErrorCode::None,
                base_offset: original.first_offset(),
                log_append_time_ms: original.timestamp,
                log_start_offset,
            },
            Verdict::Rejected(rejection) => {
                failed(partition, rejection.error_code(), log_start_offset)
            }
            Verdict::Appended { .. } | Verdict::Invalid(_) => {
                unreachable!("the sequence rule only refuses with a duplicate or a rejection")
            }
        };
        outcome(response, verdict, header, header.last_sequence(), seen)
    }

    /// Shape and integrity checks in Kafka's order (`UnifiedLog.analyzeAndValidateRecords`,
    /// then `LogValidator.validateBatch` and its per-record checks), on the header parsed once
    /// by [`produce`](Self::produce).
    fn validate(
        &self,
        partition: i32,
        header: &BatchHeader,
        records: &Bytes,
    ) -> Result<(), InvalidBatch> {
        let overrides = self.partition_config(partition);
        record_batch::check_framing(records, header).map_err(InvalidBatch::Malformed)?;
        if header.base_offset != 0 {
            return Err(InvalidBatch::NonZeroBaseOffset(header.base_offset));
        }
        let max_message_bytes = overrides
            .max_message_bytes
            .unwrap_or(self.config.max_message_bytes);
        if records.len() > max_message_bytes {
            return Err(InvalidBatch::TooLarge {
                size: records.len(),
                max: max_message_bytes,
            });
        }
        match record_batch::check_integrity(records, header) {
            Ok(()) => {}
            Err(DecodeError::CorruptMessage { expected, actual }) => {
                return Err(InvalidBatch::Corrupt { expected, actual });
            }
            Err(DecodeError::UnsupportedCompression(c)) => return Err(InvalidBatch::Compressed(c)),
            Err(e) => return Err(InvalidBatch::Malformed(e)),
        }
        check_offsets_and_count(header)?;
        if header.is_control() {
            return Err(InvalidBatch::ControlBatch);
        }
        if header.is_transactional() {
            return Err(InvalidBatch::Transactional);
        }
        if header.producer_id.is_some() && header.base_sequence.0 < 0 {
            return Err(InvalidBatch::NegativeSequence(header.base_sequence));
        }
        let summary = record_batch::validate_records_within(records, header, max_message_bytes)
            .map_err(|e| match e {
                DecodeError::DecompressedTooLarge { codec, max_bytes } => {
                    InvalidBatch::DecompressedTooLarge {
                        codec,
                        max: max_bytes,
                    }
                }
                e => InvalidBatch::Malformed(e),
            })?;
        let bounds = TimestampBounds {
            before_max_ms: overrides
                .message_timestamp_before_max_ms
                .unwrap_or(self.config.log_message_timestamp_before_max_ms),
            after_max_ms: overrides
                .message_timestamp_after_max_ms
                .unwrap_or(self.config.log_message_timestamp_after_max_ms),
        };
        self.check_timestamps(&summary, bounds)
    }

    /// Kafka's `LogValidator.validateTimestamp` for `CreateTime` topics: a record stamped
    /// more than `before_max_ms` behind or `after_max_ms` ahead of the broker clock fails the
    /// batch with `INVALID_TIMESTAMP` (records without a timestamp are exempt). Kafka checks
    /// record by record; the oldest and the newest record decide the same thing, and Kafka
    /// names the first offending record where we name the extreme one.
    fn check_timestamps(
        &self,
        summary: &RecordsSummary,
        bounds: TimestampBounds,
    ) -> Result<(), InvalidBatch> {
        // i128: `now - timestamp` of two i64s cannot overflow there.
        let behind = |t: i64| i128::from(self.now_ms) - i128::from(t);
        let too_old = summary
            .min_record_timestamp
            .filter(|&t| behind(t) > i128::from(bounds.before_max_ms));
        let too_new = summary
            .max_record_timestamp
            .filter(|&t| -behind(t) > i128::from(bounds.after_max_ms));
        match too_old.or(too_new) {
            Some(timestamp) => Err(InvalidBatch::InvalidTimestamp {
                timestamp,
                now_ms: self.now_ms,
                before_max_ms: bounds.before_max_ms,
                after_max_ms: bounds.after_max_ms,
            }),
            None => Ok(()),
        }
    }

    fn invalid(
        &self,
        partition: i32,
        header: Option<BatchHeader>,
        why: InvalidBatch,
    ) -> ProduceOutcome {
        let log_start = self
            .partition(partition)
            .map_or(-1, |p| p.log.log_start_offset());
        let response = failed(partition, why.error_code(), log_start);
        match header {
            Some(h) => outcome(response, Verdict::Invalid(why), &h, h.last_sequence(), None),
            None => ProduceOutcome {
                response,
                verdict: Verdict::Invalid(why),
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
                first_sequence: Sequence::NONE,
                last_sequence: Sequence::NONE,
                record_count: 0,
                seen: None,
            },
        }
    }

    /// Reads a partition from an offset, as a consumer: only batches below the high
    /// watermark (the log end while standalone). A replicated partition is read from its
    /// leader only (`NOT_LEADER_OR_FOLLOWER` elsewhere), with the `current_leader_epoch`
    /// check (`FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`).
    pub fn fetch(&self, request: &FetchRequest) -> FetchResponse {
        let Some(p) = self.partition(request.partition) else {
            return FetchResponse {
                partition: request.partition,
                error_code: ErrorCode::UnknownTopicOrPartition,
                high_watermark: -1,
                log_start_offset: -1,
                diverging_epoch: None,
                records: Bytes::new(),
            };
        };
        let high_watermark = p.high_watermark();
        if let Some(error_code) = consumer_fetch_refusal(p, request) {
            return FetchResponse {
                partition: request.partition,
                error_code,
                high_watermark,
                log_start_offset: p.log.log_start_offset(),
                diverging_epoch: None,
                records: Bytes::new(),
            };
        }
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        let read = p.log.read_below(
            &self.storage,
            request.fetch_offset,
            max_bytes,
            high_watermark,
        );
        let (error_code, records) = match read {
            Ok(Some(records)) => (ErrorCode::None, records),
            Ok(None) => (ErrorCode::OffsetOutOfRange, Bytes::new()),
            Err(_) => (ErrorCode::KafkaStorageError, Bytes::new()),
        };
        FetchResponse {
            partition: request.partition,
            error_code,
            high_watermark,
            log_start_offset: p.log.log_start_offset(),
            diverging_epoch: None,
            records,
        }
    }

    /// Answers Metadata as the one broker of a one-broker cluster: broker 0 leads every
    /// standalone partition at epoch 0, with itself as the only replica; a replicated
    /// partition is described as this broker last heard from the controller (the cluster's
    /// own answer is the controller's).
    pub fn metadata(&self) -> MetadataResponse {
        let partitions = self
            .partition_ids()
            .into_iter()
            .map(|partition| match self.replication(partition) {
                None => PartitionMetadata::new(partition, 0, 0, vec![0], vec![0]),
                Some(r) => PartitionMetadata::new(
                    partition,
                    r.leader(),
                    r.leader_epoch(),
                    r.replicas().to_vec(),
                    r.isr().to_vec(),
                ),
            })
            .collect();
        MetadataResponse {
            brokers: vec![0],
            controller_id: 0,
            partitions,
        }
    }

    /// Moves a partition's log start offset to `offset` (DeleteRecords): the log is synced,
    /// the new start checkpointed durably, segments left empty and snapshots below the new
    /// start deleted (Kafka's `onLogStartOffsetIncremented`). Producer state in memory is
    /// kept, as in Kafka 2.4+ (KAFKA-7190), unless `evict_producers_below_log_start` asks
    /// for the older rule.
    pub fn delete_records(
        &mut self,
        partition: i32,
        offset: i64,
    ) -> Result<i64, DeleteRecordsFailure> {
        let p = partition_slot(&mut self.partitions, partition)
            .ok_or(DeleteRecordsFailure::UnknownPartition(partition))?;
        let start = p
            .log
            .delete_records_before(&mut self.storage, offset)
            .map_err(|e| match e {
                DeleteRecordsError::Storage(e) => DeleteRecordsFailure::Storage(e),
                e => DeleteRecordsFailure::OutOfRange(e),
            })?;
        delete_snapshots_before(&mut self.storage, &partition_dir(partition), start)
            .map_err(DeleteRecordsFailure::Storage)?;
        p.last_snapshot_offset = p.last_snapshot_offset.max(start);
        if self.config.evict_producers_below_log_start {
            p.producers.remove_below(start);
        }
        Ok(start)
    }

    /// Rebuilds producer state from the retained log alone: the in-memory producer state is
    /// dropped and every retained batch replayed from the log start offset, without
    /// validation (Kafka's recovery with no snapshot). Producers whose batches were all
    /// deleted are forgotten. The disk is not touched and snapshots are not used; see
    /// [`restart_clean`](Self::restart_clean) and [`Broker::crash`] for restarts through the
    /// disk. Returns, per partition, how many producers were rebuilt.
    pub fn restart(&mut self) -> Vec<(i32, usize)> {
        let mut rebuilt = Vec::new();
        for (index, partition) in self.partitions.iter_mut().enumerate() {
            let Some(p) = partition else { continue };
            p.producers.clear();
            if self.config.idempotence {
                let start = p.log.log_start_offset();
                replay(&mut p.producers, &p.log, &self.storage, start);
            }
            rebuilt.push((index as i32, p.producers.len()));
        }
        rebuilt
    }

    /// A clean shutdown: every log synced and a snapshot taken of every partition whose log
    /// end moved since its last one (Kafka's `close`).
    pub fn shutdown(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.take_snapshots()?;
        Ok(())
    }

    /// A clean restart: [`shutdown`](Self::shutdown), memory discarded, then recovery from
    /// the disk (newest snapshot plus replay). Nothing is lost; in `LastBatchOnly` snapshot
    /// mode each producer's window shrinks to its last batch. The clock survives.
    pub fn restart_clean(&mut self) -> Result<RestartReport, StorageError> {
        self.shutdown()?;
        let before = self.before_restart();
        self.recover_with(before)
    }

    /// Captures, per partition, the log end offsets and the batches a crash may take.
    fn before_restart(&self) -> Vec<(i32, Before)> {
        let mut before = Vec::new();
        for (index, p) in self.partitions.iter().enumerate() {
            let Some(p) = p else { continue };
            let durable = p.log.durable_end_offset();
            let at_risk = p
                .log
                .batches_from(&self.storage, durable)
                .filter(|b| b.base_offset() >= durable)
                .collect();
            before.push((
                index as i32,
                Before {
                    log_end_offset: p.log.log_end_offset(),
                    durable_end_offset: durable,
                    at_risk,
                },
            ));
        }
        before
    }

    /// What recovery (and a follower's truncation) needs from the config and the clock.
    pub(crate) fn recovery_settings(&self) -> RecoverySettings {
        RecoverySettings {
            segment_bytes: self.config.segment_bytes,
            dedup_window: self.config.dedup_window,
            idempotence: self.config.idempotence,
            now_ms: self.now_ms,
            producer_id_expiration_ms: self.config.producer_id_expiration_ms,
            snapshot_mode: self.config.snapshot_mode,
            snapshots_retained: self.config.snapshots_retained,
        }
    }

    /// Discards memory and rebuilds every partition and the producer-id allocation from the
    /// storage. A replicated partition keeps its replication state demoted to a follower of
    /// no known leader (see `replication`); delayed produces are dropped with the memory.
    fn recover_with(&mut self, before: Vec<(i32, Before)>) -> Result<RestartReport, StorageError> {
        let mut replicated: std::collections::BTreeMap<i32, Box<PartitionReplication>> = self
            .partitions
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| Some((i as i32, p.as_mut()?.replication.take()?)))
            .collect();
        self.partitions.clear();
        self.delayed.clear();
        self.alter_partitions.clear();
        let settings = self.recovery_settings();
        let mut before: std::collections::BTreeMap<i32, Before> = before.into_iter().collect();
        let mut partitions = Vec::new();
        for partition in partitions_on_disk(&self.storage) {
            let recovered = recover_partition(&mut self.storage, partition, &settings)?;
            let report = recovered.report;
            let index = partition as usize;
            if self.partitions.len() <= index {
                self.partitions.resize_with(index + 1, || None);
            }
            self.partitions[index] = Some(Partition {
                log: recovered.log,
                producers: recovered.producers,
                last_snapshot_offset: report
                    .snapshot_written
                    .or(report.snapshot_loaded)
                    .unwrap_or(report.log_start_offset),
                replication: replicated.remove(&partition).map(|mut r| {
                    r.demote_after_restart(report.log_end_offset);
                    r
                }),
            });
            let end = report.log_end_offset;
            let b = before.remove(&partition).unwrap_or(Before {
                log_end_offset: end,
                durable_end_offset: end,
                at_risk: Vec::new(),
            });
            partitions.push(PartitionRestart {
                partition,
                log_end_offset_before: b.log_end_offset,
                durable_end_offset_before: b.durable_end_offset,
                lost_batches: b
                    .at_risk
                    .into_iter()
                    .filter(|batch| batch.base_offset() >= end)
                    .collect(),
                recovery: report,
            });
        }
        let block_end =
            read_producer_id_block(&self.storage).unwrap_or(self.config.first_producer_id);
        self.next_producer_id = block_end.max(self.config.first_producer_id);
        self.producer_id_block_end = self.next_producer_id;
        if self.producer_ids_granted {
            // The granted block was memory; the controller grants a new one.
            self.next_producer_id = 0;
            self.producer_id_block_end = 0;
        }
        Ok(RestartReport {
            partitions,
            files: Vec::new(),
            next_producer_id: ProducerId(self.next_producer_id),
        })
    }
}

/// Why [`Broker::open`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The configuration is unusable.
    Config(ConfigError),
    /// The storage failed during recovery.
    Storage(StorageError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Config(e) => write!(f, "{e}"),
            OpenError::Storage(e) => write!(f, "recovery failed: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Writes the end of the reserved producer-id block durably: `version i16 | crc u32 |
/// block_end i64`, the CRC-32C covering `block_end`.
fn write_producer_id_block<S: Storage>(
    storage: &mut S,
    block_end: i64,
) -> Result<(), StorageError> {
    let body = block_end.to_be_bytes();
    let mut data = Vec::with_capacity(14);
    data.extend_from_slice(&1i16.to_be_bytes());
    data.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    data.extend_from_slice(&body);
    storage.write_atomic(PRODUCER_ID_FILE, &data)?;
    storage.sync(PRODUCER_ID_FILE)
}

/// The durable end of the reserved producer-id block, if the file exists and is valid. (A
/// missing file means no id was ever handed out; a damaged one could only come from outside
/// the broker, and then ids restart at `first_producer_id`.)
fn read_producer_id_block<S: Storage>(storage: &S) -> Option<i64> {
    let data = storage.read_all(PRODUCER_ID_FILE).ok()?;
    let data: &[u8; 14] = data[..].try_into().ok()?;
    let body: [u8; 8] = data[6..].try_into().ok()?;
    let crc = u32::from_be_bytes([data[2], data[3], data[4], data[5]]);
    (data[..2] == 1i16.to_be_bytes() && crc == crc32c::crc32c(&body))
        .then(|| i64::from_be_bytes(body))
}

/// Why DeleteRecords failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteRecordsFailure {
    /// No such partition.
    UnknownPartition(i32),
    /// The offset is outside the log.
    OutOfRange(DeleteRecordsError),
    /// The storage failed (`KAFKA_STORAGE_ERROR`).
    Storage(StorageError),
}

impl fmt::Display for DeleteRecordsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteRecordsFailure::UnknownPartition(p) => {
                write!(
                    f,
                    "UNKNOWN_TOPIC_OR_PARTITION: partition {p} does not exist"
                )
            }
            DeleteRecordsFailure::OutOfRange(e) => write!(f, "{e}"),
            DeleteRecordsFailure::Storage(e) => write!(f, "KAFKA_STORAGE_ERROR: {e}"),
        }
    }
}

impl std::error::Error for DeleteRecordsFailure {}

/// Why a consumer fetch of a replicated partition is refused (Kafka's `getLocalLog` with
/// `fetchOnlyLeader`): a stale or future `current_leader_epoch`, or this broker not leading.
fn consumer_fetch_refusal(p: &Partition, request: &FetchRequest) -> Option<ErrorCode> {
    let r = p.replication.as_deref()?;
    let epoch_error = r.check_current_leader_epoch(request.current_leader_epoch);
    if epoch_error != ErrorCode::None {
        Some(epoch_error)
    } else if r.role() != ReplicaRole::Leader {
        Some(ErrorCode::NotLeaderOrFollower)
    } else {
        None
    }
}

/// The partition at `partition` in the broker's table, if it exists (a free function so the
/// storage can be borrowed beside it).
pub(crate) fn partition_slot(
    partitions: &mut [Option<Partition>],
    partition: i32,
) -> Option<&mut Partition> {
    let index = usize::try_from(partition).ok()?;
    partitions.get_mut(index).and_then(Option::as_mut)
}

/// Appends an accepted batch to `log` and syncs it if `every_append` (the [`SyncPolicy`]
/// says so): its base offset, or the storage failure (then nothing counts as appended).
fn append_and_sync<S: Storage>(
    log: &mut PartitionLog,
    storage: &mut S,
    header: &BatchHeader,
    records: &Bytes,
    leader_epoch: i32,
    every_append: bool,
) -> Result<i64, StorageError> {
    let base_offset = log.append_as_leader(storage, header, records, leader_epoch)?;
    if every_append {
        log.sync(storage)?;
    }
    Ok(base_offset)
}

/// Kafka's `isValidRequiredAcks`: -1 (all), 0 or 1.
fn check_required_acks(acks: i16) -> Result<(), InvalidBatch> {
    if matches!(acks, -1..=1) {
        Ok(())
    } else {
        Err(InvalidBatch::InvalidRequiredAcks(acks))
    }
}

/// Kafka's `LogValidator.validateBatch` for a client's v2 batch, in its order: the offset
/// range must hold at least one record, the count must be positive, and the two must agree.
/// An empty batch (`recordsCount` 0, `lastOffsetDelta` -1) fails the first check.
fn check_offsets_and_count(header: &BatchHeader) -> Result<(), InvalidBatch> {
    let count_from_offsets = i64::from(header.last_offset_delta) + 1;
    if count_from_offsets <= 0 {
        return Err(InvalidBatch::InvalidOffsetRange {
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.records_count <= 0 {
        return Err(InvalidBatch::InvalidRecordCount(header.records_count));
    }
    if count_from_offsets != i64::from(header.records_count) {
        return Err(InvalidBatch::CountMismatch {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

fn failed(
    partition: i32,
    error_code: ErrorCode,
    log_start_offset: i64,
) -> PartitionProduceResponse {
    PartitionProduceResponse {
        partition,
        error_code,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset,
    }
}

/// A batch the sequence rule lets in: why, the state seen, and the slot to update after the
/// append.
type Accepted<'a> = (AppendReason, Option<StateSeen>, ProducerSlot<'a>);

/// A batch the sequence rule refuses: the verdict (duplicate or rejection) and the state seen.
type Refused = (Verdict, Option<StateSeen>);

/// The sequence rule for a batch with a producer id on a broker with idempotence on: the
/// reason to append with the state seen and the producer's slot (for the update after the
/// append), or the verdict of a duplicate or a rejection with the state seen.
#[inline]
fn sequence_rule<'a>(
    producers: &'a mut ProducerStateManager,
    header: &BatchHeader,
    record_windows: bool,
    unknown_producer: crate::producer_state::UnknownProducerRule,
) -> Result<Accepted<'a>, Refused> {
    let slot = producers.slot(header);
    let (check, seen) = slot.check_and_see_under(record_windows, unknown_producer);
    match check {
        SequenceCheck::Accept(rule) => Ok((AppendReason::Sequence(rule), seen, slot)),
        SequenceCheck::Duplicate(original) => Err((Verdict::Duplicate { original }, seen)),
        SequenceCheck::Reject(rejection) => Err((Verdict::Rejected(rejection), seen)),
    }
}

/// The outcome for `header`'s batch; `last_sequence` is `header.last_sequence()`, passed in
/// when the caller has it already.
fn outcome(
    response: PartitionProduceResponse,
    verdict: Verdict,
    header: &BatchHeader,
    last_sequence: Sequence,
    seen: Option<StateSeen>,
) -> ProduceOutcome {
    ProduceOutcome {
        response,
        verdict,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        first_sequence: header.base_sequence,
        last_sequence,
        record_count: header.records_count,
        seen,
    }
}
