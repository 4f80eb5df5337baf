//! # idempo-broker: a partitioned log that deduplicates exactly as Kafka does
//!
//! A broker receives batches from producers over a network that loses, delays and repeats
//! messages. This crate is the broker's core as a plain synchronous state machine: it is
//! handed requests and told the time, and answers with responses and an explanation of every
//! decision. It does no I/O and reads no clock, so a simulator can drive it deterministically
//! and a TCP server can drive the very same code.
//!
//! Its bytes go through a [`Storage`]: segment files, producer-state snapshots and
//! checkpoints. The default, [`SimDisk`], keeps files in memory as a synced prefix and an
//! unsynced tail, so [`Broker::crash`] can model a power loss exactly (torn writes included)
//! and recovery can be tested from every crash point.
//!
//! Per partition it keeps an append-only [`PartitionLog`] and a [`ProducerStateManager`]: per
//! producer id, the epoch and the metadata of the last five batches. That state is what lets
//! it answer a retried batch with the original offsets instead of writing it twice, and refuse
//! a batch that would leave a gap. The rule, with a worked table and its differences from
//! Kafka, is the essay of [`producer_state`]; the order of all checks on the produce path is
//! in [`broker`](mod@broker).
//!
//! The behaviour is that of a modern Kafka broker (2.5 and later) for idempotent,
//! non-transactional producers: an unknown producer may start at any sequence,
//! `UNKNOWN_PRODUCER_ID` and `DUPLICATE_SEQUENCE_NUMBER` are never sent, DeleteRecords keeps
//! producer state, and producer ids expire after `producer_id_expiration_ms` judged against
//! the batch's own max timestamp.
//!
//! ## Layout
//! - [`producer_state`]: `BatchMetadata`, `ProducerStateEntry`, `ProducerStateManager` (and
//!   its `ProducerSlot`, one lookup for the check and the update), the
//!   dedup rule and its essay.
//! - [`partition_config`]: `PartitionConfig`, per-partition overrides of broker settings
//!   (Kafka's topic-level configs).
//! - [`partition_log`]: the append-only log in segment files, with its in-memory index and
//!   the segment scan of recovery.
//! - [`storage`]: the `Storage` trait and `SimDisk`, a simulated disk with crash semantics.
//! - [`file_storage`]: `FileStorage`, the same trait on a real directory (`fsync`, atomic
//!   renames, a lock against a second process), and `NodeStorage`, either of the two.
//! - [`snapshot`]: producer-state snapshot files, their byte layout, `FullWindow` versus
//!   Kafka's `LastBatchOnly`.
//! - [`recovery`]: rebuilding a partition after a crash or restart: truncate, pick a
//!   snapshot, replay.
//! - [`profile`]: `BrokerProfile`, historical brokers' dedup rules as switches over
//!   `BrokerConfig` (`kafka`, `kafka-2.4`, `kafka-1.0`, `kafka-0.11`, `redpanda-21.10`).
//! - [`verdict`]: `ProduceOutcome` and `Verdict`, the explanation of each decision.
//! - [`broker_topic_stats`]: `BrokerTopicStats`, the produce counters behind the metrics.
//! - [`broker`](mod@broker): `Broker` and `BrokerConfig`: partitions, InitProducerId, Produce,
//!   Fetch, DeleteRecords, expiry, sync policy, snapshots, crash and restarts.
//! - [`cluster`]: `LeaderAndIsr` and `AlterPartition`, the values the controller and the
//!   brokers exchange.
//! - [`controller`]: `Controller`, the cluster's controller (KRaft's rules, one always
//!   available state machine): replica placement, fencing, clean and unclean election,
//!   AlterPartition, producer id blocks.
//! - [`group_coordinator`]: `GroupCoordinator`, Kafka's classic consumer-group coordinator
//!   (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, offsets) told the time, with its
//!   offsets log under `groups/`; its essay.
//! - [`leader_epoch`]: `LeaderEpochCache`, Kafka's `LeaderEpochFileCache` (epoch -> start
//!   offset, `endOffsetFor`).
//! - [`replication`]: leader and follower roles, replica fetch with the diverging-epoch check,
//!   `appendAsFollower`, truncation with producer-state reload, the high watermark, ISR
//!   shrink and expand, `acks` with `min.insync.replicas` and delayed produce; its essay.
//!
//! ## Replication
//!
//! A broker is one of several once the controller tells it about a partition
//! ([`Broker::apply_leader_and_isr`]). The leader stamps its leader epoch into every batch,
//! followers fetch and append the leader's batches as they are (updating producer state, so
//! the dedup window follows the data), the high watermark is the smallest log end in the ISR,
//! and `acks=all` is answered once it passes the batch. A follower whose log diverged from the
//! leader's (after a failover) truncates to the end of the last common epoch and rebuilds its
//! producer state from the newest snapshot at or below that point, so that, as leader, it
//! deduplicates exactly the batches it holds. All of it is in [`replication`]. A partition
//! never told about a cluster is *standalone* and behaves as one broker always did: its high
//! watermark is its log end and every request is answered at once.
//!
//! ## Differences from Kafka
//! - One topic; partitions are numbered. A standalone partition has no replication, so its
//!   high watermark is the log end offset and `acks` only has to be valid; the replication
//!   model's own differences are listed in [`replication`].
//! - Transactions and control batches are not modelled: such batches are refused with
//!   `INVALID_TXN_STATE` and `INVALID_RECORD`. Compressed batches (gzip, snappy, lz4, zstd)
//!   are validated and stored as sent, as Kafka with `compression.type=producer`; their
//!   decompressed records are bounded by `message.max.bytes` too (see
//!   `idempo_protocol::compression`).
//! - The dedup window is a setting (Kafka hard-codes 5), and idempotence can be switched off on
//!   the broker to show what it prevents.
//! - Snapshots keep each producer's whole dedup window by default, so a restart never
//!   shrinks it; Kafka's keep only the *last* batch (`SnapshotMode::LastBatchOnly`
//!   reproduces that). [`Broker::restart`] rebuilds from the retained log alone, as Kafka does
//!   without a snapshot.
//! - Storage is simulated ([`SimDisk`]) or real files ([`FileStorage`]); the recovery code is
//!   the same for both.

pub mod broker;
pub mod broker_topic_stats;
pub mod cluster;
pub mod controller;
pub mod file_storage;
pub mod group_coordinator;
pub mod leader_epoch;
pub mod partition_config;
pub mod partition_log;
pub mod producer_state;
pub mod profile;
pub mod recovery;
pub mod replication;
pub mod snapshot;
pub mod storage;
pub mod verdict;

pub use broker::{
    Broker, BrokerConfig, ConfigError, CrashReport, DEFAULT_TIMESTAMP_AFTER_MAX_MS,
    DeleteRecordsFailure, ExpiredProducer, Handled, MAX_DEDUP_WINDOW, OpenError,
    PRODUCER_ID_BLOCK_SIZE, PartitionRestart, RestartReport, SyncPolicy, TimestampAfterMaxError,
    parse_timestamp_after_max_ms,
};
pub use broker_topic_stats::BrokerTopicStats;
pub use cluster::{AlterPartition, BrokerId, LeaderAndIsr, NO_LEADER};
pub use controller::{
    AlterPartitionError, Controller, ControllerConfig, ControllerConfigError, ControllerCounters,
    ControllerDecision, DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS, DEFAULT_BROKER_SESSION_TIMEOUT_MS,
    ElectLeaderError, ElectionType, assign_replicas,
};
pub use file_storage::{FileStorage, FileStorageError, NodeStorage};
pub use group_coordinator::{GroupConfig, GroupCoordinator, GroupError, GroupState};
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use partition_config::PartitionConfig;
pub use partition_log::{
    Batches, DEFAULT_SEGMENT_BYTES, DeleteRecordsError, FollowerAppendError, LogCorruption,
    LogRecovery, LogView, PartitionLog, StoredBatch,
};
pub use producer_state::{
    AcceptRule, BatchMetadata, ProducerSlot, ProducerStateEntry, ProducerStateManager,
    SequenceCheck, SequenceRejection, StateSeen, UnknownProducerRule, WindowView,
};
pub use profile::{BrokerProfile, UnknownBrokerProfile};
pub use recovery::{PartitionRecovery, RejectedSnapshot, SnapshotRejection};
pub use replication::{
    CompletedProduce, FollowerFetched, FollowerState, IsrChange, LeaderAndIsrOutcome,
    PartitionReplication, ReplicaRole, ReplicationEvent, Truncation, TruncationMode,
    UnknownTruncationMode,
};
pub use snapshot::{ProducerSnapshot, SnapshotEntry, SnapshotError, SnapshotMode};
pub use storage::{CrashedFile, SimDisk, Storage, StorageError, Tear};
pub use verdict::{AppendReason, InvalidBatch, ProduceOutcome, Verdict};
