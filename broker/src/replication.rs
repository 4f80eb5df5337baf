//! Replication: leaders, followers, the ISR, the high watermark and `acks=all`.
//!
//! A replicated partition has a leader and followers (Kafka's `Partition`,
//! core/src/main/scala/kafka/cluster/Partition.scala). The controller decides who leads at
//! which *leader epoch* and tells each replica with a [`LeaderAndIsr`]
//! ([`Broker::apply_leader_and_isr`], Kafka's `makeLeader`/`makeFollower`). Only the leader
//! accepts produce requests; it stamps its leader epoch into every batch. Followers *fetch*
//! from the leader as consumers do, with their log end offset and the epoch of their last
//! batch ([`Broker::follower_fetch_request`]); the leader answers records, or a *diverging
//! epoch* when the follower's log does not match its own ([`Broker::replica_fetch`], Kafka's
//! `Partition.fetchRecords`), and the follower appends the records as they are or truncates
//! ([`Broker::on_follower_fetch_response`], Kafka's `AbstractFetcherThread` and
//! `UnifiedLog.appendAsFollower`).
//!
//! # The high watermark
//!
//! Each fetch tells the leader how far that follower's log reaches (`updateFollowerFetchState`).
//! The *high watermark* (HW) is the smallest log end offset among the in-sync replicas
//! (`maybeIncrementLeaderHW`): every record below it is on every ISR member, so it survives
//! the loss of any of them but one. Consumers read only below it; a follower learns it from
//! each fetch answer and keeps `min(leader's HW, own log end)`. The HW never moves backwards
//! on a leader. While an ISR expansion is in flight the "maximal" ISR (the committed one plus
//! the replica being added, KIP-497) is used, which is stricter and so safe; a caught-up
//! follower outside the ISR is also waited for, so it can catch up and join.
//!
//! # The ISR
//!
//! A follower stays in sync while it has been *caught up* (fetched up to the leader's log
//! end) within the last `replica.lag.time.max.ms` (`Replica.isCaughtUp`,
//! `lastCaughtUpTimeMs`). [`Broker::take_alter_partitions`] proposes to *shrink* the ISR by
//! the followers that are not (`maybeShrinkIsr`, `getOutOfSyncReplicas`) and to *expand* it by
//! a follower whose log end reached the HW within the current leader epoch (`maybeExpandIsr`,
//! `isFollowerInSync`: its log end is at least the HW and at least the offset where this
//! leader's epoch started, the KIP-320 rule). A proposal is an [`AlterPartition`] to the
//! controller (KIP-497); one is in flight at a time, and the committed ISR changes only when
//! the controller's new [`LeaderAndIsr`] comes back.
//!
//! # acks and min.insync.replicas
//!
//! ```text
//! acks | ISR < min.insync.replicas | answered
//! 0    | (any)                     | never (no response at all)
//! 1    | (any)                     | after the leader's own append
//! all  | yes, before appending     | NOT_ENOUGH_REPLICAS (19), nothing appended
//! all  | no                        | when the HW passes the batch (Kafka's DelayedProduce):
//!      |                           |   NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND (20) if the
//!      |                           |   ISR shrank below min.insync.replicas meanwhile;
//!      |                           |   REQUEST_TIMED_OUT (7) if timeout_ms passes first;
//!      |                           |   NOT_LEADER_OR_FOLLOWER (6) if leadership moves first
//! ```
//!
//! The wait is `Partition.checkEnoughReplicasReachOffset`, run whenever the HW may have moved
//! (a follower fetch, an ISR change, a role change) and when the broker is told the time.
//! The answers come out of [`Broker::take_completed`]. A duplicate is answered like the
//! original batch: it too waits until the HW passes the original offsets.
//!
//! # Leader epochs and truncation (KIP-101, KIP-279, KIP-320)
//!
//! A follower's fetch carries `last_fetched_epoch`, the epoch of its last batch. The leader
//! looks up the end of that epoch in its leader-epoch cache (`leader_epoch`,
//! `endOffsetFor`); if its own log has a smaller epoch there, or the epoch ends before the
//! follower's fetch offset, the logs diverge and the leader answers that `(epoch, end
//! offset)` instead of records (`validateLastFetchedEpoch` in `Partition.readRecords`). The
//! follower truncates to the smaller of that end offset and its own end of that epoch
//! (`AbstractFetcherThread.getOffsetTruncationState`) and fetches again; after one or two
//! rounds the logs match. A fetch with a stale `current_leader_epoch` is refused with
//! `FENCED_LEADER_EPOCH` (74), one from the future with `UNKNOWN_LEADER_EPOCH` (75).
//!
//! ```text
//! old leader A (epoch 1)       follower B             new leader B (epoch 2)
//! 0..=4 e1, 5..=7 e1 (unacked) 0..=4 e1               0..=4 e1, 5..=6 e2
//! A follows B: fetch(offset 8, last epoch 1) -> diverging (epoch 1, end 5)
//! A truncates to 5, reloads producer state, fetches 5.. : appends B's e2 batches
//! ```
//!
//! On truncation the producer state is rebuilt as Kafka's
//! `ProducerStateManager.truncateAndReload` does: snapshots above the new log end are
//! deleted, the newest remaining one is loaded and the batches after it are replayed. So a
//! replica that becomes leader later deduplicates exactly the batches it holds.
//!
//! # appendAsFollower
//!
//! A follower appends the leader's batches as they are: offsets and epochs kept, no duplicate
//! or sequence check (the leader did them), only the CRC verified. It updates its producer
//! state from each batch as recovery's replay does (origin `REPLICATION`), so the 5-batch
//! window moves with the data and a new leader answers a retry of a replicated batch as a
//! duplicate.
//!
//! # Standalone
//!
//! A partition never given a [`LeaderAndIsr`] is *standalone*: it behaves exactly as a
//! one-broker broker did before replication: the HW is the log end, `acks=all` is answered
//! at once, nothing here runs.
//!
//! # Differences from Kafka
//!
//! * The HW keeps advancing while the ISR is below `min.insync.replicas`, as before Kafka 3.7;
//!   since KIP-966 (KAFKA-15583) Kafka freezes it then, which turns the
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND answer into a timeout.
//! * "Never caught up" is its own value, not the time 0: the simulator's clock starts at 0,
//!   Kafka's at the epoch.
//! * The HW is not checkpointed: after a restart a replica keeps `min(HW before, log end)` as
//!   if its `replication-offset-checkpoint` had just been written, and becomes a follower
//!   with no known leader until told otherwise.
//! * No broker epochs, no KRaft eligibility (`isReplicaIsrEligible`): every assigned replica
//!   may join the ISR. No reassignment (adding/removing replicas), no DeleteRecords low
//!   watermark across replicas.
//! * An out-of-range follower fetch (possible only without epochs) truncates the follower to
//!   the leader's HW, Kafka's pre-KIP-101 fallback.
//!
//! # Truncation to the high watermark (before KIP-101, [`TruncationMode::HighWatermark`])
//!
//! Before Kafka 0.11 a replica that became a follower of a new leader cut its log at its own
//! HW (`ReplicaManager.makeFollowers` called `logManager.truncateTo` with each partition's
//! `highWatermark`, 0.10.2) and then fetched from there, with no epoch in the fetch: whatever
//! it held below its HW was taken to match the leader. Both halves are wrong. A follower
//! learns the HW one fetch late, so its HW can be below records the leader already
//! acknowledged with `acks=all`; cutting them and then being elected before fetching them
//! again loses them (KIP-101's first scenario: two quick leader changes). And a HW can be
//! *above* what the new leader holds (the new leader lost unsynced records in a crash and
//! wrote others at those offsets), so the kept records differ from the leader's: the
//! replicas diverge below the HW (the second scenario). `--truncation high-watermark` in
//! the simulator switches this rule on (the zoo's `KIP-101` entry); the default,
//! [`TruncationMode::LeaderEpoch`], is KIP-101's.

use crate::broker::{Broker, Partition, partition_slot};
use crate::cluster::{AlterPartition, BrokerId, LeaderAndIsr, NO_LEADER};
use crate::leader_epoch::UNDEFINED_EPOCH_OFFSET;
use crate::partition_log::FollowerAppendError;
use crate::storage::Storage;
use bytes::Bytes;
use idempo_protocol::{
    BatchHeader, EpochEndOffset, ErrorCode, FetchRequest, FetchResponse, NO_LEADER_EPOCH,
    PartitionProduceResponse, ResponseFrame,
};

/// Kafka's `replica.fetch.max.bytes` default: 1 MiB per partition per fetch.
pub const REPLICA_FETCH_MAX_BYTES: i32 = 1_048_576;

/// Where a follower cuts its log when it follows a new leader (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TruncationMode {
    /// By leader epoch (KIP-101, Kafka 0.11+): the follower's fetch carries the epoch of its
    /// last batch and it truncates where the leader says the epochs diverge (the default).
    #[default]
    LeaderEpoch,
    /// To its own high watermark whenever its leader changes, and fetches without an epoch
    /// (Kafka before 0.11, `ReplicaManager.makeFollowers` in 0.10.2): the historical rule
    /// KIP-101 replaced.
    HighWatermark,
}

impl TruncationMode {
    /// Both modes, the default first.
    pub const ALL: [TruncationMode; 2] =
        [TruncationMode::LeaderEpoch, TruncationMode::HighWatermark];

    /// The name used on command lines (`--truncation`).
    pub fn name(self) -> &'static str {
        match self {
            TruncationMode::LeaderEpoch => "leader-epoch",
            TruncationMode::HighWatermark => "high-watermark",
        }
    }
}

impl std::fmt::Display for TruncationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--truncation` value that is neither `leader-epoch` nor `high-watermark`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTruncationMode(pub String);

impl std::fmt::Display for UnknownTruncationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown truncation mode {:?}: expected leader-epoch or high-watermark",
            self.0
        )
    }
}

impl std::error::Error for UnknownTruncationMode {}

impl std::str::FromStr for TruncationMode {
    type Err = UnknownTruncationMode;

    fn from_str(s: &str) -> Result<TruncationMode, UnknownTruncationMode> {
        TruncationMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownTruncationMode(s.to_string()))
    }
}

/// What this broker is for a replicated partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRole {
    /// It leads: it takes produce requests and answers follower fetches.
    Leader,
    /// It follows `leader` (or no one yet, [`NO_LEADER`]): it fetches and refuses produce.
    Follower,
}

/// The leader's view of one follower (Kafka's `Replica` and its `ReplicaState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower.
    pub broker: BrokerId,
    /// Its log end offset as of its last fetch (-1: unknown since this broker became leader).
    pub log_end_offset: i64,
    /// The leader's log end offset at that fetch (`lastFetchLeaderLogEndOffset`).
    pub last_fetch_leader_log_end_offset: i64,
    /// When it last fetched.
    pub last_fetch_time_ms: Option<i64>,
    /// The last time it was caught up: its fetch offset reached the leader's log end at (or
    /// after) that time (`lastCaughtUpTimeMs`). `None`: never, in this leader epoch.
    pub last_caught_up_time_ms: Option<i64>,
}

impl FollowerState {
    fn unknown(broker: BrokerId, in_isr: bool, now_ms: i64) -> FollowerState {
        FollowerState {
            broker,
            log_end_offset: -1,
            last_fetch_leader_log_end_offset: -1,
            last_fetch_time_ms: None,
            last_caught_up_time_ms: in_isr.then_some(now_ms),
        }
    }

    /// Kafka's `ReplicaState.isCaughtUp`: at the leader's log end, or caught up within the
    /// last `max_lag_ms`.
    pub fn is_caught_up(&self, leader_end_offset: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        leader_end_offset == self.log_end_offset
            || self
                .last_caught_up_time_ms
                .is_some_and(|t| now_ms.saturating_sub(t) <= max_lag_ms)
    }

    /// Kafka's `Replica.updateFetchStateOrThrow`.
    fn update_fetch_state(&mut self, fetch_offset: i64, now_ms: i64, leader_end_offset: i64) {
        if fetch_offset >= leader_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(Some(now_ms));
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(self.last_fetch_time_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_log_end_offset =
            leader_end_offset.max(self.last_fetch_leader_log_end_offset);
        self.last_fetch_time_ms = Some(now_ms);
    }
}

/// One replicated partition's replication state on this broker (the replication half of
/// Kafka's `Partition`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReplication {
    pub(crate) role: ReplicaRole,
    pub(crate) leader: BrokerId,
    pub(crate) leader_epoch: i32,
    pub(crate) partition_epoch: i32,
    pub(crate) isr: Vec<BrokerId>,
    pub(crate) replicas: Vec<BrokerId>,
    pub(crate) high_watermark: i64,
    /// Where this broker's leader epoch started (`leaderEpochStartOffsetOpt`), on a leader.
    pub(crate) leader_epoch_start_offset: Option<i64>,
    /// On a leader: one entry per other assigned replica.
    pub(crate) followers: Vec<FollowerState>,
    /// The ISR proposed in an AlterPartition not answered yet (`PendingPartitionChange`).
    pub(crate) pending_isr: Option<(IsrChange, Vec<BrokerId>)>,
}

impl PartitionReplication {
    /// Leader or follower.
    pub fn role(&self) -> ReplicaRole {
        self.role
    }

    /// The leader as last told ([`NO_LEADER`] when unknown or offline).
    pub fn leader(&self) -> BrokerId {
        self.leader
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition epoch of the last state applied.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The committed ISR, as last told.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The assigned replicas.
    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// The high watermark: consumers read below it.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// On a leader, its view of each follower.
    pub fn followers(&self) -> &[FollowerState] {
        &self.followers
    }

    /// The ISR change proposed and not yet answered, if any.
    pub fn pending_isr(&self) -> Option<(IsrChange, &[BrokerId])> {
        self.pending_isr
            .as_ref()
            .map(|(c, isr)| (*c, isr.as_slice()))
    }

    /// The "maximal" ISR (KIP-497): the committed one plus a replica being added.
    pub fn maximal_isr_len(&self) -> usize {
        match &self.pending_isr {
            Some((IsrChange::Expand, proposed)) => proposed.len(),
            _ => self.isr.len(),
        }
    }

    fn in_maximal_isr(&self, broker: BrokerId) -> bool {
        match &self.pending_isr {
            Some((IsrChange::Expand, proposed)) => proposed.contains(&broker),
            _ => self.isr.contains(&broker),
        }
    }

    /// `min.insync.replicas` capped at the replication factor (Kafka's `effectiveMinIsr`).
    pub fn effective_min_isr(&self, min_insync_replicas: usize) -> usize {
        min_insync_replicas.min(self.replicas.len().max(1))
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest log end among the maximal ISR and the
    /// caught-up followers, if above the current HW. Returns the move.
    fn maybe_increment_hw(
        &mut self,
        leader_leo: i64,
        now_ms: i64,
        lag_ms: i64,
    ) -> Option<(i64, i64)> {
        let mut new_hw = leader_leo;
        for f in &self.followers {
            if f.log_end_offset < new_hw
                && (self.in_maximal_isr(f.broker) || f.is_caught_up(leader_leo, now_ms, lag_ms))
            {
                new_hw = f.log_end_offset;
            }
        }
        (new_hw > self.high_watermark).then(|| {
            let old = self.high_watermark;
            self.high_watermark = new_hw;
            (old, new_hw)
        })
    }

    /// Kafka's `checkCurrentLeaderEpoch` (KIP-320), for a follower's fetch and a consumer's
    /// alike.
    pub(crate) fn check_current_leader_epoch(&self, current_leader_epoch: i32) -> ErrorCode {
        if current_leader_epoch == NO_LEADER_EPOCH {
            ErrorCode::None
        } else if self.leader_epoch > current_leader_epoch {
            ErrorCode::FencedLeaderEpoch
        } else if self.leader_epoch < current_leader_epoch {
            ErrorCode::UnknownLeaderEpoch
        } else {
            ErrorCode::None
        }
    }

    /// A new ISR from `isr` in assignment order.
    fn in_assignment_order(&self, mut keep: impl FnMut(BrokerId) -> bool) -> Vec<BrokerId> {
        self.replicas.iter().copied().filter(|b| keep(*b)).collect()
    }
}

/// Which way an ISR change goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrChange {
    /// A follower lagged more than `replica.lag.time.max.ms`: remove it.
    Shrink,
    /// A follower caught up within the current leader epoch: add it.
    Expand,
}

/// What [`Broker::apply_leader_and_isr`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderAndIsrOutcome {
    /// Older than the state already applied (leader epoch, then partition epoch): nothing.
    Ignored,
    /// This broker is not an assigned replica: nothing.
    NotAReplica,
    /// The partition could not be created here.
    Failed(ErrorCode),
    /// This broker leads.
    Leader {
        /// It did not lead before.
        new_leader: bool,
        /// The leader epoch is newer than the one it knew.
        new_leader_epoch: bool,
    },
    /// This broker follows.
    Follower {
        /// The leader epoch is newer than the one it knew.
        new_leader_epoch: bool,
    },
}

/// A produce request answered later (acks=all), for the client it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedProduce {
    /// The client id given to [`Broker::handle_from`].
    pub client: u64,
    /// The response.
    pub response: ResponseFrame,
}

/// A typed replication event, for traces and counters (drained with
/// [`Broker::take_replication_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationEvent {
    /// The partition's role or leader changed, or its ISR was updated.
    LeaderAndIsrApplied {
        /// The partition.
        partition: i32,
        /// This broker's role now.
        role: ReplicaRole,
        /// The leader.
        leader: BrokerId,
        /// The leader epoch.
        leader_epoch: i32,
        /// The committed ISR.
        isr: Vec<BrokerId>,
    },
    /// The high watermark moved.
    HighWatermarkMoved {
        /// The partition.
        partition: i32,
        /// Before.
        from: i64,
        /// After.
        to: i64,
    },
    /// The leader proposed an ISR change to the controller.
    IsrChangeProposed {
        /// The partition.
        partition: i32,
        /// Shrink or expand.
        change: IsrChange,
        /// The ISR before.
        isr: Vec<BrokerId>,
        /// The ISR proposed.
        new_isr: Vec<BrokerId>,
    },
    /// The follower truncated its log.
    Truncated(Truncation),
    /// A delayed produce was answered for one partition.
    DelayedProduceCompleted {
        /// The client.
        client: u64,
        /// The request's correlation id.
        correlation_id: i32,
        /// The partition.
        partition: i32,
        /// Its answer: NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT or
        /// NOT_LEADER_OR_FOLLOWER.
        error_code: ErrorCode,
    },
}

/// A follower's log truncation and the producer-state reload that came with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The partition.
    pub partition: i32,
    /// Log end offset before.
    pub from: i64,
    /// Log end offset after.
    pub to: i64,
    /// The leader's diverging epoch that caused it (`None`: an out-of-range fallback).
    pub diverging_epoch: Option<EpochEndOffset>,
    /// The snapshot the producer state was reloaded from (`None`: replayed from the start).
    pub snapshot_loaded: Option<i64>,
    /// Batches replayed after the snapshot.
    pub batches_replayed: usize,
}

/// What one fetch response did to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerFetched {
    /// The partition.
    pub partition: i32,
    /// The leader's error code, or the local failure (`CORRUPT_MESSAGE`,
    /// `KAFKA_STORAGE_ERROR`), or `NONE`.
    pub error_code: ErrorCode,
    /// Dropped: this broker no longer follows at that epoch and offset (a stale answer).
    pub stale: bool,
    /// Batches appended.
    pub batches_appended: usize,
    /// Log end offset after.
    pub log_end_offset: i64,
    /// The truncation, if the leader answered a diverging epoch.
    pub truncation: Option<Truncation>,
    /// The follower's HW move, if it moved.
    pub high_watermark_moved: Option<(i64, i64)>,
}

/// An acks=all produce waiting for the HW (Kafka's `DelayedProduce`).
#[derive(Clone, Debug)]
pub(crate) struct DelayedProduce {
    pub(crate) client: u64,
    pub(crate) correlation_id: i32,
    pub(crate) deadline_ms: i64,
    pub(crate) partitions: Vec<PartitionProduceResponse>,
    /// Per partition, the offset the HW must reach (`requiredOffset`), while pending.
    pub(crate) required: Vec<Option<i64>>,
}

impl<S: Storage> Broker<S> {
    /// This broker's replication state of `partition`, if it is replicated.
    pub fn replication(&self, partition: i32) -> Option<&PartitionReplication> {
        self.partition(partition)
            .and_then(|p| p.replication.as_deref())
    }

    /// The high watermark of `partition`: the log end when standalone.
    pub fn high_watermark(&self, partition: i32) -> Option<i64> {
        self.partition(partition).map(Partition::high_watermark)
    }

    /// Drains the replication events recorded since the last call.
    pub fn take_replication_events(&mut self) -> Vec<ReplicationEvent> {
        std::mem::take(&mut self.replication_events)
    }

    /// Drains the delayed produce answers completed since the last call.
    pub fn take_completed(&mut self) -> Vec<CompletedProduce> {
        std::mem::take(&mut self.completed)
    }

    /// Produce requests still waiting for the HW.
    pub fn delayed_produce_count(&self) -> usize {
        self.delayed.len()
    }

    /// Applies the controller's decision for one partition (Kafka's `makeLeader` /
    /// `makeFollower`). A state older than the one applied (by leader epoch, then partition
    /// epoch) is ignored. Becoming leader at a new epoch records the epoch's start at the log
    /// end and resets every follower's state; the HW is kept. Becoming follower stops produce
    /// and answers the partition's delayed produces `NOT_LEADER_OR_FOLLOWER`.
    ///
    /// # Examples
    ///
    /// A leader and a follower; an `acks=all` produce is answered once the follower has it.
    ///
    /// ```
    /// use idempo_broker::{Broker, BrokerConfig, LeaderAndIsr};
    /// use idempo_protocol::{
    ///     PartitionProduceData, ProduceRequest, ProducerEpoch, ProducerId, Record, RecordBatch,
    ///     Request, RequestFrame, Sequence,
    /// };
    ///
    /// let mut brokers: Vec<Broker> = (0..2)
    ///     .map(|id| Broker::new(BrokerConfig { broker_id: id, ..BrokerConfig::default() }).unwrap())
    ///     .collect();
    /// let state = LeaderAndIsr {
    ///     partition: 0, leader: 0, leader_epoch: 0, isr: vec![0, 1], replicas: vec![0, 1],
    ///     partition_epoch: 0,
    /// };
    /// for b in &mut brokers {
    ///     b.apply_leader_and_isr(&state);
    /// }
    /// let records = RecordBatch::idempotent(
    ///     ProducerId(1), ProducerEpoch(0), Sequence(0), 1_000, vec![Record::with_value(0, "a")],
    /// ).to_bytes();
    /// let request = Request::Produce(ProduceRequest {
    ///     acks: -1, timeout_ms: 30_000,
    ///     partitions: vec![PartitionProduceData { partition: 0, records }],
    /// });
    /// let (leader, follower) = brokers.split_at_mut(1);
    /// let handled = leader[0].handle_from(7, &RequestFrame { correlation_id: 1, request });
    /// assert!(handled.response.is_none(), "waits for the follower");
    /// for _ in 0..2 {
    ///     // The first fetch brings the batch; the second tells the leader it arrived.
    ///     let fetch = follower[0].follower_fetch_request(0).unwrap();
    ///     let answer = leader[0].replica_fetch(&fetch);
    ///     follower[0].on_follower_fetch_response(&fetch, &answer);
    /// }
    /// assert_eq!(leader[0].high_watermark(0), Some(1));
    /// let completed = leader[0].take_completed();
    /// assert_eq!((completed[0].client, completed[0].response.correlation_id), (7, 1));
    /// ```
    pub fn apply_leader_and_isr(&mut self, state: &LeaderAndIsr) -> LeaderAndIsrOutcome {
        self.in_cluster = true;
        let me = self.config.broker_id;
        if !state.replicas.contains(&me) {
            return LeaderAndIsrOutcome::NotAReplica;
        }
        if let Err(code) = self.create_partition(state.partition) {
            return LeaderAndIsrOutcome::Failed(code);
        }
        let now_ms = self.now_ms;
        let lag_ms = self.config.replica_lag_time_max_ms;
        let p = partition_slot(&mut self.partitions, state.partition)
            .expect("the partition was created above");
        let leo = p.log.log_end_offset();
        let previous = p.replication.as_deref();
        if let Some(r) = previous
            && (state.leader_epoch < r.leader_epoch
                || (state.leader_epoch == r.leader_epoch
                    && state.partition_epoch < r.partition_epoch))
        {
            return LeaderAndIsrOutcome::Ignored;
        }
        let was_leader = previous.is_some_and(|r| r.role == ReplicaRole::Leader);
        // Kafka 0.10's makeFollowers truncated the partitions whose leader changed.
        let leader_changed = previous.is_none_or(|r| was_leader || r.leader != state.leader);
        let new_leader_epoch = previous.is_none_or(|r| state.leader_epoch > r.leader_epoch);
        let mut r = p.replication.take().map_or_else(
            || Box::new(PartitionReplication::new(state, leo)),
            |mut r| {
                r.high_watermark = r.high_watermark.min(leo);
                r
            },
        );
        r.leader = state.leader;
        r.leader_epoch = state.leader_epoch;
        r.partition_epoch = state.partition_epoch;
        r.isr.clone_from(&state.isr);
        r.replicas.clone_from(&state.replicas);
        r.pending_isr = None;
        let outcome = if state.leader == me {
            p.log.assign_epoch_at_log_end(state.leader_epoch);
            r.reset_followers(me, leo, now_ms, was_leader, new_leader_epoch);
            if new_leader_epoch || r.leader_epoch_start_offset.is_none() {
                r.leader_epoch_start_offset = Some(leo);
            }
            r.role = ReplicaRole::Leader;
            LeaderAndIsrOutcome::Leader {
                new_leader: !was_leader,
                new_leader_epoch,
            }
        } else {
            r.role = ReplicaRole::Follower;
            r.followers.clear();
            r.leader_epoch_start_offset = None;
            LeaderAndIsrOutcome::Follower { new_leader_epoch }
        };
        let moved = match r.role {
            ReplicaRole::Leader => r.maybe_increment_hw(leo, now_ms, lag_ms),
            ReplicaRole::Follower => None,
        };
        self.replication_events
            .push(ReplicationEvent::LeaderAndIsrApplied {
                partition: state.partition,
                role: r.role,
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                isr: r.isr.clone(),
            });
        let truncate_to = (self.config.truncation == TruncationMode::HighWatermark
            && r.role == ReplicaRole::Follower
            && leader_changed)
            .then_some(r.high_watermark);
        p.replication = Some(r);
        self.record_hw_move(state.partition, moved);
        if let Some(hw) = truncate_to
            && let Some(t) = self.truncate_and_reload(state.partition, hw, None)
        {
            self.replication_events.push(ReplicationEvent::Truncated(t));
        }
        self.complete_delayed();
        outcome
    }

    /// Tells the broker that the controller refused its last AlterPartition for `partition`
    /// (stale epochs, `INVALID_UPDATE_VERSION`): the proposal is dropped, so the next
    /// [`take_alter_partitions`](Self::take_alter_partitions) may propose again.
    pub fn alter_partition_rejected(&mut self, partition: i32) {
        if let Some(r) = partition_slot(&mut self.partitions, partition)
            .and_then(|p| p.replication.as_deref_mut())
        {
            r.pending_isr = None;
        }
    }

    /// Serves a follower's fetch on the leader (`replica_id` >= 0; Kafka's
    /// `Partition.fetchRecords` for a follower): the epoch checks, the diverging-epoch check,
    /// the read from `fetch_offset` up to the log end, then the follower's fetch state, an ISR
    /// expansion proposal, the HW and the delayed produces it completes.
    pub fn replica_fetch(&mut self, request: &FetchRequest) -> FetchResponse {
        let (now_ms, lag_ms) = (self.now_ms, self.config.replica_lag_time_max_ms);
        let partition = request.partition;
        let Some(p) = partition_slot(&mut self.partitions, partition) else {
            return fetch_error(partition, ErrorCode::UnknownTopicOrPartition, -1, -1);
        };
        let (leo, start) = (p.log.log_end_offset(), p.log.log_start_offset());
        let hw = p.high_watermark();
        let Some(r) = p.replication.as_deref_mut() else {
            return fetch_error(partition, ErrorCode::NotLeaderOrFollower, hw, start);
        };
        let error = match r.check_current_leader_epoch(request.current_leader_epoch) {
            ErrorCode::None if r.role != ReplicaRole::Leader => ErrorCode::NotLeaderOrFollower,
            ErrorCode::None if !r.followers.iter().any(|f| f.broker == request.replica_id) => {
                if request.current_leader_epoch == NO_LEADER_EPOCH {
                    ErrorCode::NotLeaderOrFollower
                } else {
                    ErrorCode::UnknownLeaderEpoch
                }
            }
            e => e,
        };
        if error != ErrorCode::None {
            return fetch_error(partition, error, hw, start);
        }
        if let Err(diverged) = check_last_fetched_epoch(&p.log, request) {
            return FetchResponse {
                high_watermark: hw,
                ..diverged
            };
        }
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        let records = match p.log.read(&self.storage, request.fetch_offset, max_bytes) {
            Ok(Some(records)) => records,
            Ok(None) => return fetch_error(partition, ErrorCode::OffsetOutOfRange, hw, start),
            Err(_) => return fetch_error(partition, ErrorCode::KafkaStorageError, hw, start),
        };
        let follower = r
            .followers
            .iter_mut()
            .find(|f| f.broker == request.replica_id)
            .expect("the follower was found above");
        let previous_leo = follower.log_end_offset;
        follower.update_fetch_state(request.fetch_offset, now_ms, leo);
        let follower = *follower;
        let proposal = r.propose_expand(&follower, self.config.broker_id, partition);
        let moved = if previous_leo != follower.log_end_offset || proposal.is_some() {
            r.maybe_increment_hw(leo, now_ms, lag_ms)
        } else {
            None
        };
        let response = FetchResponse {
            partition,
            error_code: ErrorCode::None,
            high_watermark: r.high_watermark,
            log_start_offset: start,
            diverging_epoch: None,
            records,
        };
        if let Some((event, alter)) = proposal {
            self.replication_events.push(event);
            self.alter_partitions.push(alter);
        }
        // Only a HW move can complete a delayed produce here (Kafka's
        // `tryCompleteDelayedRequests` after `maybeIncrementLeaderHW`): the deadlines were
        // checked when the broker was last told the time, roles do not change.
        let hw_moved = moved.is_some();
        self.record_hw_move(partition, moved);
        if hw_moved {
            self.complete_delayed();
        }
        response
    }

    /// The ISR changes this broker proposes as leader, as AlterPartition requests for the
    /// controller: the expansions found by follower fetches since the last call, and a shrink
    /// of every partition with followers not caught up for `replica.lag.time.max.ms` (Kafka's
    /// `maybeShrinkIsr`, run periodically). `now_ms` is the broker's time (it is also told
    /// through [`advance_time`](Self::advance_time)). One proposal per partition is in flight
    /// at a time.
    pub fn take_alter_partitions(&mut self, now_ms: i64) -> Vec<AlterPartition> {
        let mut alters = self.take_isr_expansions(now_ms);
        let (me, lag_ms) = (self.config.broker_id, self.config.replica_lag_time_max_ms);
        for (index, p) in self.partitions.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            let leo = p.log.log_end_offset();
            let Some(r) = p.replication.as_deref_mut() else {
                continue;
            };
            if r.role != ReplicaRole::Leader || r.pending_isr.is_some() {
                continue;
            }
            let out_of_sync = |b: BrokerId| {
                b != me
                    && r.followers
                        .iter()
                        .find(|f| f.broker == b)
                        .is_none_or(|f| !f.is_caught_up(leo, self.now_ms, lag_ms))
            };
            if !r.isr.iter().any(|b| out_of_sync(*b)) {
                continue;
            }
            let new_isr = r.in_assignment_order(|b| r.isr.contains(&b) && !out_of_sync(b));
            let partition = index as i32;
            self.replication_events
                .push(ReplicationEvent::IsrChangeProposed {
                    partition,
                    change: IsrChange::Shrink,
                    isr: r.isr.clone(),
                    new_isr: new_isr.clone(),
                });
            alters.push(r.alter_partition(partition, me, new_isr.clone()));
            r.pending_isr = Some((IsrChange::Shrink, new_isr));
        }
        alters
    }

    /// Only the ISR expansions found by follower fetches since the last call, as
    /// AlterPartition requests, without looking for shrinks: what
    /// [`take_alter_partitions`](Self::take_alter_partitions) returns first. For a caller that
    /// runs Kafka's periodic `isr-expiration` check only at its period and would withdraw any
    /// shrink proposed in between; this skips the scan of every partition. `now_ms` is the
    /// broker's time, as there.
    pub fn take_isr_expansions(&mut self, now_ms: i64) -> Vec<AlterPartition> {
        self.advance_time(now_ms);
        std::mem::take(&mut self.alter_partitions)
    }

    /// The fetch this broker sends as follower of `partition`: from its log end, with the
    /// epoch of its last batch and the leader epoch it knows. `None` unless it follows a known
    /// leader.
    pub fn follower_fetch_request(&self, partition: i32) -> Option<FetchRequest> {
        let p = self.partition(partition)?;
        let r = p.replication.as_deref()?;
        if r.role != ReplicaRole::Follower || r.leader == NO_LEADER {
            return None;
        }
        Some(FetchRequest {
            partition,
            fetch_offset: p.log.log_end_offset(),
            max_bytes: REPLICA_FETCH_MAX_BYTES,
            replica_id: self.config.broker_id,
            current_leader_epoch: r.leader_epoch,
            last_fetched_epoch: match self.config.truncation {
                TruncationMode::LeaderEpoch => p
                    .log
                    .leader_epoch_cache()
                    .latest_epoch()
                    .unwrap_or(NO_LEADER_EPOCH),
                // Before KIP-101 a fetch said nothing of the follower's epochs.
                TruncationMode::HighWatermark => NO_LEADER_EPOCH,
            },
        })
    }

    /// Handles the leader's answer to `request` (made by
    /// [`follower_fetch_request`](Self::follower_fetch_request)): a diverging epoch truncates
    /// the log and reloads producer state (`truncateAndReload`); records are appended as the
    /// leader wrote them (`appendAsFollower`), updating producer state; the HW becomes
    /// `min(leader's HW, own log end)`. An answer to a fetch this broker would no longer send
    /// (other leader epoch, other offset, no longer follower) is dropped, as Kafka's fetcher
    /// does.
    pub fn on_follower_fetch_response(
        &mut self,
        request: &FetchRequest,
        response: &FetchResponse,
    ) -> FollowerFetched {
        let partition = request.partition;
        let current = self.follower_fetch_request(partition);
        let leo = self.log_end_offset(partition).unwrap_or(-1);
        let mut fetched = FollowerFetched {
            partition,
            error_code: response.error_code,
            stale: false,
            batches_appended: 0,
            log_end_offset: leo,
            truncation: None,
            high_watermark_moved: None,
        };
        let live = current.is_some_and(|c| {
            c.current_leader_epoch == request.current_leader_epoch
                && c.fetch_offset == request.fetch_offset
        });
        if !live || response.partition != partition {
            fetched.stale = true;
            return fetched;
        }
        match (response.error_code, response.diverging_epoch) {
            (ErrorCode::None, Some(diverging)) => {
                fetched.truncation = self.truncate_on_diverging(partition, diverging);
            }
            (ErrorCode::None, None) => {
                let (appended, result) = self.append_as_follower(partition, &response.records);
                fetched.batches_appended = appended;
                if let Err(e) = result {
                    fetched.error_code = e;
                }
            }
            (ErrorCode::OffsetOutOfRange, _) if response.high_watermark < leo => {
                fetched.truncation =
                    self.truncate_and_reload(partition, response.high_watermark.max(0), None);
            }
            _ => {}
        }
        let p = partition_slot(&mut self.partitions, partition).expect("checked live above");
        let leo = p.log.log_end_offset();
        fetched.log_end_offset = leo;
        if response.error_code == ErrorCode::None
            && let Some(r) = p.replication.as_deref_mut()
        {
            let new_hw = response.high_watermark.min(leo);
            if new_hw != r.high_watermark {
                fetched.high_watermark_moved = Some((r.high_watermark, new_hw));
                r.high_watermark = new_hw;
            }
        }
        self.record_hw_move(partition, fetched.high_watermark_moved);
        if let Some(t) = &fetched.truncation {
            self.replication_events
                .push(ReplicationEvent::Truncated(t.clone()));
        }
        fetched
    }

    /// Kafka's `getOffsetTruncationState` for a diverging epoch, then the truncation.
    fn truncate_on_diverging(
        &mut self,
        partition: i32,
        leader: EpochEndOffset,
    ) -> Option<Truncation> {
        let log = &self.partition(partition)?.log;
        let leo = log.log_end_offset();
        let target = if leader.end_offset == UNDEFINED_EPOCH_OFFSET {
            self.high_watermark(partition).unwrap_or(0).min(leo)
        } else {
            let own = log.leader_epoch_cache().end_offset_for(leader.epoch, leo);
            if own.end_offset == UNDEFINED_EPOCH_OFFSET {
                leader.end_offset.min(leo)
            } else if own.epoch != leader.epoch {
                own.end_offset.min(leo)
            } else {
                own.end_offset.min(leader.end_offset).min(leo)
            }
        };
        self.truncate_and_reload(partition, target, Some(leader))
    }

    /// Cuts the log at `offset` and rebuilds producer state as Kafka's
    /// `ProducerStateManager.truncateAndReload` does. `None` if nothing was cut.
    fn truncate_and_reload(
        &mut self,
        partition: i32,
        offset: i64,
        diverging_epoch: Option<EpochEndOffset>,
    ) -> Option<Truncation> {
        let settings = self.recovery_settings();
        let storage = &mut self.storage;
        let p = partition_slot(&mut self.partitions, partition)?;
        let from = p.log.log_end_offset();
        if offset >= from {
            // No batch to cut, but an epoch this replica assigned as leader and never wrote
            // goes (Kafka's `truncateTo` at or past the log end).
            p.log.truncate_to(storage, offset).ok();
            return None;
        }
        let to = match p.log.truncate_to(storage, offset) {
            Ok(to) => to,
            Err(_) => {
                self.storage_failures += 1;
                return None;
            }
        };
        let reload = crate::recovery::reload_producer_state(storage, partition, &p.log, &settings);
        let (producers, snapshot_loaded, batches_replayed) = match reload {
            Ok(reloaded) => reloaded,
            Err(_) => {
                self.storage_failures += 1;
                return None;
            }
        };
        p.producers = producers;
        p.last_snapshot_offset = snapshot_loaded.unwrap_or(p.log.log_start_offset());
        if let Some(r) = p.replication.as_deref_mut() {
            r.high_watermark = r.high_watermark.min(to);
        }
        Some(Truncation {
            partition,
            from,
            to,
            diverging_epoch,
            snapshot_loaded,
            batches_replayed,
        })
    }

    /// `UnifiedLog.appendAsFollower` for every batch of `records`: offsets and epochs kept, no
    /// dedup or sequence check, producer state updated, synced per the sync policy. Returns
    /// the batches appended, and the error that stopped the append, if one did (the batches
    /// before it stay, and are counted).
    fn append_as_follower(
        &mut self,
        partition: i32,
        records: &Bytes,
    ) -> (usize, Result<(), ErrorCode>) {
        let idempotence = self.config.idempotence;
        let max_producer_ids = self.config.max_producer_ids_per_partition;
        let every_append = self.config.sync_policy == crate::broker::SyncPolicy::EveryAppend;
        let storage = &mut self.storage;
        let Some(p) = partition_slot(&mut self.partitions, partition) else {
            return (0, Err(ErrorCode::NotLeaderOrFollower));
        };
        let mut appended = 0;
        let mut rest = records.clone();
        let mut result = Ok(());
        while !rest.is_empty() {
            let header = match BatchHeader::parse(&rest) {
                Ok(h) if h.total_size() as usize <= rest.len() && h.total_size() > 0 => h,
                _ => {
                    result = Err(ErrorCode::CorruptMessage);
                    break;
                }
            };
            let batch = rest.split_to(header.total_size() as usize);
            if header.last_offset() < p.log.log_end_offset() {
                continue; // already held (a fetch from inside a batch)
            }
            match p.log.append_as_follower(storage, &header, &batch) {
                Ok(base_offset) => {
                    if idempotence {
                        p.producers.update(&header, base_offset);
                        // The leader's bound, kept the same way, so a new leader holds what
                        // the old one held.
                        if let Some(max) = max_producer_ids {
                            let evicted = p.producers.evict_least_recent(max, header.producer_id);
                            self.producer_ids_evicted += evicted.len() as u64;
                        }
                    }
                    appended += 1;
                }
                Err(FollowerAppendError::Storage(_)) => {
                    result = Err(ErrorCode::KafkaStorageError);
                    break;
                }
                Err(_) => {
                    result = Err(ErrorCode::CorruptMessage);
                    break;
                }
            }
        }
        if every_append && appended > 0 && p.log.sync(storage).is_err() {
            result = Err(ErrorCode::KafkaStorageError);
        }
        (appended, result)
    }

    /// After a leader's own append: the HW may move (an ISR of one), and then delayed
    /// produces waiting for it complete (Kafka's `appendRecordsToLeader`: when the leader's
    /// HW was incremented, `tryCompleteDelayedRequests`).
    pub(crate) fn after_leader_append(&mut self, partition: i32) {
        let (now_ms, lag_ms) = (self.now_ms, self.config.replica_lag_time_max_ms);
        let Some(p) = partition_slot(&mut self.partitions, partition) else {
            return;
        };
        let leo = p.log.log_end_offset();
        let moved = p
            .replication
            .as_deref_mut()
            .filter(|r| r.role == ReplicaRole::Leader)
            .and_then(|r| r.maybe_increment_hw(leo, now_ms, lag_ms));
        let hw_moved = moved.is_some();
        self.record_hw_move(partition, moved);
        if hw_moved {
            self.complete_delayed();
        }
    }

    fn record_hw_move(&mut self, partition: i32, moved: Option<(i64, i64)>) {
        if let Some((from, to)) = moved {
            self.replication_events
                .push(ReplicationEvent::HighWatermarkMoved {
                    partition,
                    from,
                    to,
                });
        }
    }

    /// Kafka's `Partition.checkEnoughReplicasReachOffset` for one pending partition: `None`
    /// while it must wait, else its answer.
    fn check_enough_replicas(&self, partition: i32, required_offset: i64) -> Option<ErrorCode> {
        let r = self.replication(partition);
        match r {
            Some(r) if r.role == ReplicaRole::Leader => {
                (r.high_watermark >= required_offset).then(|| {
                    if r.effective_min_isr(self.config.min_insync_replicas) <= r.maximal_isr_len() {
                        ErrorCode::None
                    } else {
                        ErrorCode::NotEnoughReplicasAfterAppend
                    }
                })
            }
            _ => Some(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// Completes every delayed produce whose partitions are all answered, or whose deadline
    /// passed (pending partitions then answer `REQUEST_TIMED_OUT`).
    pub(crate) fn complete_delayed(&mut self) {
        if self.delayed.is_empty() {
            return;
        }
        let mut delayed = std::mem::take(&mut self.delayed);
        delayed.retain_mut(|d| !self.try_complete(d));
        self.delayed = delayed;
    }

    /// Tries a produce request just appended; true when answered at once (its answer is then
    /// the last of `completed`).
    pub(crate) fn try_complete_now(&mut self, d: &mut DelayedProduce) -> bool {
        self.try_complete(d)
    }

    /// Tries one delayed produce (Kafka's `DelayedProduce.tryComplete` / `onExpiration`);
    /// true when it was answered.
    fn try_complete(&mut self, d: &mut DelayedProduce) -> bool {
        let expired = self.now_ms >= d.deadline_ms;
        let mut pending = false;
        for (response, required) in d.partitions.iter_mut().zip(d.required.iter_mut()) {
            let Some(offset) = *required else { continue };
            let answer = match self.check_enough_replicas(response.partition, offset) {
                Some(code) => code,
                None if expired => ErrorCode::RequestTimedOut,
                None => {
                    pending = true;
                    continue;
                }
            };
            response.error_code = answer;
            *required = None;
            self.replication_events
                .push(ReplicationEvent::DelayedProduceCompleted {
                    client: d.client,
                    correlation_id: d.correlation_id,
                    partition: response.partition,
                    error_code: answer,
                });
        }
        if pending {
            return false;
        }
        self.completed.push(CompletedProduce {
            client: d.client,
            response: ResponseFrame {
                correlation_id: d.correlation_id,
                response: idempo_protocol::Response::Produce(idempo_protocol::ProduceResponse {
                    partitions: std::mem::take(&mut d.partitions),
                }),
            },
        });
        true
    }
}

impl PartitionReplication {
    fn new(state: &LeaderAndIsr, log_end_offset: i64) -> PartitionReplication {
        PartitionReplication {
            role: ReplicaRole::Follower,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: state.isr.clone(),
            replicas: state.replicas.clone(),
            high_watermark: log_end_offset,
            leader_epoch_start_offset: None,
            followers: Vec::new(),
            pending_isr: None,
        }
    }

    /// The leader's follower states after a LeaderAndIsr (Kafka's `resetReplicaState`, run
    /// only at a new leader epoch): a new leader knows nothing of its followers; a re-elected
    /// one keeps their log ends. An ISR member counts as caught up now, others never.
    fn reset_followers(
        &mut self,
        me: BrokerId,
        leo: i64,
        now_ms: i64,
        was_leader: bool,
        new_leader_epoch: bool,
    ) {
        let old: Vec<FollowerState> = std::mem::take(&mut self.followers);
        self.followers = self
            .replicas
            .iter()
            .filter(|b| **b != me)
            .map(|b| {
                let in_isr = self.isr.contains(b);
                match old.iter().find(|f| f.broker == *b).copied() {
                    Some(f) if !new_leader_epoch => f,
                    Some(f) if was_leader => FollowerState {
                        last_fetch_leader_log_end_offset: leo,
                        last_fetch_time_ms: in_isr.then_some(now_ms),
                        last_caught_up_time_ms: in_isr.then_some(now_ms),
                        ..f
                    },
                    _ => FollowerState::unknown(*b, in_isr, now_ms),
                }
            })
            .collect();
    }

    /// After a restart: a follower of no known leader, keeping its epochs, replicas and ISR
    /// as last told, its HW at most the recovered log end.
    pub(crate) fn demote_after_restart(&mut self, log_end_offset: i64) {
        self.role = ReplicaRole::Follower;
        self.leader = NO_LEADER;
        self.followers.clear();
        self.pending_isr = None;
        self.leader_epoch_start_offset = None;
        self.high_watermark = self.high_watermark.min(log_end_offset);
    }

    /// Kafka's `maybeExpandIsr` after a fetch: the proposal and its event, if `follower` is
    /// in sync and not in the ISR and no change is in flight.
    fn propose_expand(
        &mut self,
        follower: &FollowerState,
        me: BrokerId,
        partition: i32,
    ) -> Option<(ReplicationEvent, AlterPartition)> {
        let in_sync = follower.log_end_offset >= self.high_watermark
            && self
                .leader_epoch_start_offset
                .is_some_and(|start| follower.log_end_offset >= start);
        if self.pending_isr.is_some() || self.isr.contains(&follower.broker) || !in_sync {
            return None;
        }
        let new_isr = self.in_assignment_order(|b| self.isr.contains(&b) || b == follower.broker);
        let event = ReplicationEvent::IsrChangeProposed {
            partition,
            change: IsrChange::Expand,
            isr: self.isr.clone(),
            new_isr: new_isr.clone(),
        };
        let alter = self.alter_partition(partition, me, new_isr.clone());
        self.pending_isr = Some((IsrChange::Expand, new_isr));
        Some((event, alter))
    }

    fn alter_partition(
        &self,
        partition: i32,
        me: BrokerId,
        new_isr: Vec<BrokerId>,
    ) -> AlterPartition {
        AlterPartition {
            partition,
            leader: me,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        }
    }
}

/// Kafka's `validateLastFetchedEpoch` (in `Partition.readRecords`): the end of the
/// follower's last fetched epoch in the leader's epoch cache must be at or after its fetch
/// offset, and of the same epoch; otherwise the answer is that diverging epoch (or
/// `OFFSET_OUT_OF_RANGE` when the cache cannot tell). The HW of the answer is filled in by
/// the caller.
fn check_last_fetched_epoch(
    log: &crate::partition_log::PartitionLog,
    request: &FetchRequest,
) -> Result<(), FetchResponse> {
    if request.last_fetched_epoch == NO_LEADER_EPOCH {
        return Ok(());
    }
    let (partition, start) = (request.partition, log.log_start_offset());
    let end = log
        .leader_epoch_cache()
        .end_offset_for(request.last_fetched_epoch, log.log_end_offset());
    if end.end_offset == UNDEFINED_EPOCH_OFFSET
        || end.epoch == NO_LEADER_EPOCH
        || request.fetch_offset < start
    {
        return Err(fetch_error(
            partition,
            ErrorCode::OffsetOutOfRange,
            -1,
            start,
        ));
    }
    if end.epoch < request.last_fetched_epoch || end.end_offset < request.fetch_offset {
        return Err(FetchResponse {
            diverging_epoch: Some(end),
            ..fetch_error(partition, ErrorCode::None, -1, start)
        });
    }
    Ok(())
}

fn fetch_error(
    partition: i32,
    error_code: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
) -> FetchResponse {
    FetchResponse {
        partition,
        error_code,
        high_watermark,
        log_start_offset,
        diverging_epoch: None,
        records: Bytes::new(),
    }
}
