//! Events: a past-tense account of every decision the producer made, for `--trace` lines and
//! for tests that check *why* something happened, not only what.
//!
//! Events are buffered until [`Producer::poll_event`](crate::Producer::poll_event) takes them.
//! The buffer is bounded ([`EVENTS_MAX`]); when a caller never polls, the oldest events are
//! dropped and counted in [`ProducerStats::events_dropped`]. A caller that does not want
//! them at all can switch them off with
//! [`Producer::set_record_events`](crate::Producer::set_record_events).

use crate::batch::DeliveryHandle;
use crate::delivery::{DeliveryError, FailureReason};
use crate::metadata::LeaderChange;
use crate::stats::ProducerStats;
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Sequence};
use std::collections::VecDeque;

/// Most events buffered before the oldest are dropped.
pub const EVENTS_MAX: usize = 1 << 16;

/// Why a partition asked for an epoch bump (docs/KAFKA-RULES.md §2.6-2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BumpReason {
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` for the batch the broker should have expected next:
    /// there is a real gap.
    OutOfOrderSequence,
    /// `UNKNOWN_PRODUCER_ID` (brokers before 2.5): the broker lost our state.
    UnknownProducerId,
    /// A batch failed for good; its sequence may be a hole later batches cannot fill.
    FailedBatch(ErrorCode),
    /// A batch expired after it was sent, and later acknowledgements did not prove the
    /// sequences consistent.
    UnresolvedSequence,
    /// librdkafka: a batch expired in a queue (`message.timeout.ms`); the gap it leaves must
    /// not be sent (`rd_kafka_toppar_producer_serve`, librdkafka 1.0.0).
    MessageTimedOut,
}

/// Why the producer asked for fresh metadata (cluster routing only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataRefreshReason {
    /// A Produce answer for the partition carried an error that means the metadata is stale
    /// (`NOT_LEADER_OR_FOLLOWER`, `FENCED_LEADER_EPOCH`, ...: Kafka's
    /// `InvalidMetadataException`s).
    ProduceError {
        /// The partition.
        partition: i32,
        /// The error.
        error: ErrorCode,
    },
    /// The partition has batches to send and no known leader.
    UnknownLeader {
        /// The partition.
        partition: i32,
    },
    /// A Metadata answer named no leader for the partition (`LEADER_NOT_AVAILABLE`).
    LeaderNotAvailable {
        /// The partition.
        partition: i32,
    },
    /// A request to the node failed: its connection broke or a request timed out
    /// (`DefaultMetadataUpdater.handleServerDisconnect`).
    NodeFailed {
        /// The node.
        node: i32,
    },
}

/// Something the producer did, in the past tense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProducerEvent {
    /// An InitProducerId request was sent.
    ProducerIdRequested {
        /// Its correlation id.
        correlation_id: i32,
    },
    /// The broker assigned a producer id.
    ProducerIdAssigned {
        /// The new producer id.
        producer_id: ProducerId,
        /// Its epoch (0 for a fresh id).
        producer_epoch: ProducerEpoch,
    },
    /// InitProducerId failed; it will be retried after the backoff unless `fatal`.
    ProducerIdRequestFailed {
        /// What went wrong.
        reason: FailureReason,
        /// True when the error was fatal for the producer.
        fatal: bool,
    },
    /// A batch was put on the wire.
    BatchSent {
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Producer id stamped.
        producer_id: ProducerId,
        /// Epoch stamped.
        epoch: ProducerEpoch,
        /// Base sequence stamped.
        base_sequence: Sequence,
        /// Last sequence (wrap-aware).
        last_sequence: Sequence,
        /// 1 for the first send, 2 for the first retry, ...
        attempt: u32,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The broker acknowledged a batch.
    BatchAcked {
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Producer id of the acknowledged attempt.
        producer_id: ProducerId,
        /// Epoch of the acknowledged attempt.
        epoch: ProducerEpoch,
        /// Base sequence of the acknowledged attempt.
        base_sequence: Sequence,
        /// Offset of the first record, -1 when unknown.
        base_offset: i64,
        /// True for `DUPLICATE_SEQUENCE_NUMBER` (success without an offset).
        duplicate_sequence: bool,
    },
    /// A batch went back to its partition's queue, in sequence order, to be re-sent.
    RetryScheduled {
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Its base sequence (the one the retry will carry, unless a bump rewrites it).
        base_sequence: Sequence,
        /// What failed.
        reason: FailureReason,
        /// Attempts made so far.
        attempts: u32,
        /// Earliest time of the retry.
        retry_at_ms: u64,
    },
    /// A partition asked for an epoch bump; it happens at the next `poll_request`.
    EpochBumpRequested {
        /// The partition.
        partition: i32,
        /// Why.
        reason: BumpReason,
    },
    /// The producer bumped its epoch locally (KIP-360), with no request.
    EpochBumped {
        /// The producer id.
        producer_id: ProducerId,
        /// Epoch before.
        old_epoch: ProducerEpoch,
        /// Epoch after.
        new_epoch: ProducerEpoch,
        /// The first partition that asked for it.
        partition: i32,
        /// Why that partition asked.
        reason: BumpReason,
    },
    /// A partition's unfinished batches were re-stamped from sequence 0 under a new producer
    /// id or epoch (Kafka's `startSequencesAtBeginning`).
    SequencesRewritten {
        /// The partition.
        partition: i32,
        /// The new producer id.
        producer_id: ProducerId,
        /// The new epoch.
        epoch: ProducerEpoch,
        /// Batches rewritten.
        batches: usize,
        /// Base sequence the next new batch will get.
        next_sequence: Sequence,
    },
    /// A batch failed for good with retries left and the partition's later batches moved
    /// down into its sequences under the same producer id and epoch (Kafka 2.4's
    /// `adjustSequencesDueToFailedBatch`, `JavaRules::failed_batch_adjusts_sequences`).
    SequencesAdjusted {
        /// The partition.
        partition: i32,
        /// The producer id the batches keep.
        producer_id: ProducerId,
        /// The epoch they keep.
        epoch: ProducerEpoch,
        /// The failed batch's base sequence, where the first moved batch now starts.
        failed_base_sequence: Sequence,
        /// How far every later batch moved: the failed batch's record count.
        record_count: i32,
        /// Batches moved.
        batches: usize,
        /// Base sequence the next new batch will get.
        next_sequence: Sequence,
    },
    /// A partition started again at sequence 0 under the current producer id and epoch when
    /// its first new batch was drained after a bump (Kafka's `maybeUpdateProducerIdAndEpoch`).
    PartitionSequenceReset {
        /// The partition.
        partition: i32,
        /// The producer id.
        producer_id: ProducerId,
        /// The epoch.
        epoch: ProducerEpoch,
    },
    /// A sent batch expired, so the broker's view of the partition's sequence is unknown; no
    /// new batch is drained there until it is resolved.
    PartitionUnresolved {
        /// The partition.
        partition: i32,
        /// The sequence whose acknowledgement would prove the partition consistent.
        unresolved_next_sequence: Sequence,
    },
    /// An unresolved partition was proven consistent by a later acknowledgement, with no bump.
    PartitionResolved {
        /// The partition.
        partition: i32,
        /// The last acknowledged sequence.
        last_acked_sequence: Sequence,
    },
    /// A batch failed for good and was reported.
    BatchFailed {
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Its base sequence (`NONE` when never sent).
        base_sequence: Sequence,
        /// The error reported.
        error: DeliveryError,
    },
    /// The epoch was exhausted (`i16::MAX`): the producer dropped its id and asks for a new one.
    ProducerIdReset {
        /// The dropped producer id.
        old_producer_id: ProducerId,
        /// Its last epoch.
        old_epoch: ProducerEpoch,
    },
    /// A response answered an attempt made under producer state the batch no longer has
    /// (an epoch bump rewrote it). The error was not acted on; the batch is retried under its
    /// new state.
    StaleResponseIgnored {
        /// The request.
        correlation_id: i32,
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Epoch the attempt carried.
        sent_epoch: ProducerEpoch,
        /// Epoch the batch has now.
        current_epoch: ProducerEpoch,
        /// The error in the stale answer.
        error: ErrorCode,
    },
    /// A response acknowledged an attempt made under producer state the batch no longer has.
    /// The records are in the log, so the batch was delivered as acknowledged and the later
    /// batches of its partition moved down to close the sequence hole it left.
    StaleAckAccepted {
        /// The request.
        correlation_id: i32,
        /// The batch.
        handle: DeliveryHandle,
        /// Its partition.
        partition: i32,
        /// Epoch the attempt carried.
        sent_epoch: ProducerEpoch,
        /// Batches whose sequences moved down.
        batches_shifted: usize,
    },
    /// A request got no answer within `request_timeout_ms`.
    RequestTimedOut {
        /// The request.
        correlation_id: i32,
    },
    /// The caller reported a request's connection failed.
    RequestFailed {
        /// The request.
        correlation_id: i32,
    },
    /// A response arrived for a request no longer awaited (timed out or failed earlier, or
    /// never sent); it was ignored.
    LateResponseIgnored {
        /// The correlation id.
        correlation_id: i32,
    },
    /// A connection failure was reported for a request no longer awaited; it was ignored.
    LateFailureIgnored {
        /// The correlation id.
        correlation_id: i32,
    },
    /// A response did not match its request (wrong kind, or a partition missing); the
    /// affected batches were treated as if their connection failed.
    MalformedResponse {
        /// The request.
        correlation_id: i32,
        /// Partition missing from the answer, if that was the problem.
        partition: Option<i32>,
    },
    /// The producer hit a fatal error and failed every batch.
    FatalError {
        /// The error.
        error: ErrorCode,
    },
    /// The producer asked for fresh metadata; a Metadata request goes out once
    /// `retry.backoff.ms` has passed since the last one (cluster routing only).
    MetadataUpdateRequested {
        /// Why.
        reason: MetadataRefreshReason,
    },
    /// A Metadata request was sent (cluster routing only).
    MetadataRequested {
        /// Its correlation id.
        correlation_id: i32,
        /// The node it went to (the least loaded one).
        node: i32,
    },
    /// A Metadata answer was applied (cluster routing only).
    MetadataUpdated {
        /// The request.
        correlation_id: i32,
        /// Partitions whose leader or leader epoch changed, in partition order.
        leader_changes: Vec<LeaderChange>,
        /// Partitions left without a leader: their batches wait.
        partitions_without_leader: usize,
    },
    /// A Metadata answer named an older leader epoch than one already seen for the
    /// partition; the partition kept its leader (KIP-320, `Metadata.updateLatestMetadata`).
    OlderLeaderEpochIgnored {
        /// The partition.
        partition: i32,
        /// The epoch in the answer.
        leader_epoch: i32,
        /// The epoch already known.
        known_leader_epoch: i32,
    },
}

/// The bounded event buffer.
#[derive(Debug)]
pub(crate) struct EventLog {
    events: VecDeque<ProducerEvent>,
    /// False when the caller switched events off.
    pub enabled: bool,
}

impl EventLog {
    /// An empty, enabled buffer.
    pub fn new() -> EventLog {
        EventLog {
            events: VecDeque::new(),
            enabled: true,
        }
    }

    /// Records an event, dropping the oldest when full. Inlined so that, with events off, the
    /// caller does not build the event at all.
    #[inline]
    pub fn push(&mut self, stats: &mut ProducerStats, event: ProducerEvent) {
        if !self.enabled {
            return;
        }
        if self.events.len() >= EVENTS_MAX {
            self.events.pop_front();
            stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Takes the oldest event.
    pub fn pop(&mut self) -> Option<ProducerEvent> {
        self.events.pop_front()
    }

    /// Drops every buffered event.
    pub fn clear(&mut self) {
        self.events.clear();
    }
}
