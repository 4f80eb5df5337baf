//! `ProducerBatch`: one `send()`, from the accumulator to its delivery report (Kafka's
//! `ProducerBatch`, docs/KAFKA-RULES.md §2.4).
//!
//! A batch is born without producer state: its producer id, epoch and base sequence are
//! stamped when it is *first drained* into a request, not at `send()`, so that a batch waiting
//! behind an epoch bump starts in the new epoch. From then on a retry re-sends the very same
//! encoded bytes; the encoding is kept as a cheap [`Bytes`] clone. Only an epoch bump (or the
//! closing of a sequence hole, see the `producer` module) rewrites the producer state. Each
//! rewrite increments the batch's `generation`, which is how a response to an attempt sent
//! under the old state is recognised as stale.

use crate::delivery::{DeliveryError, FailureReason};
use bytes::Bytes;
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// Names one `send()`. Handles increase by one per `send()`, starting at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryHandle(pub u64);

/// One batch and everything the producer tracks about it.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    /// The caller's handle, also the batch's key in the producer's batch table.
    pub handle: DeliveryHandle,
    /// Target partition.
    pub partition: i32,
    /// The batch as it goes on the wire. Records are kept so the batch can be re-encoded when
    /// its producer state is rewritten.
    pub batch: RecordBatch,
    /// Number of records, as sequences count them.
    pub record_count: i32,
    /// `send()` time plus `delivery_timeout_ms`.
    pub deadline_ms: u64,
    /// The encoding of `batch` under its current producer state; `None` after a rewrite
    /// until the next drain.
    encoded: Option<Bytes>,
    /// Times put on the wire.
    pub attempts: u32,
    /// Incremented on every change of producer state (first stamp and every rewrite).
    pub generation: u32,
    /// Position in its partition's sequence order, assigned at first drain and kept across
    /// rewrites. Comparing these instead of sequences stays correct across the wrap at
    /// `i32::MAX`.
    pub drain_order: u64,
    /// Kafka's `sequenceHasBeenReset()` (`reopened`): set when the batch is rewritten (an
    /// epoch bump, a sequence restart), cleared when it is drained again, as Java's drain
    /// closes the batch: an answer to an attempt sent before the rewrite sees it set.
    pub sequence_has_been_reset: bool,
    /// Earliest time a retry may be drained (`retry_backoff_ms` after the last failure).
    pub retry_not_before_ms: u64,
    /// Kafka's `inRetry()`: the batch went back to its queue at least once.
    pub in_retry: bool,
    /// Some attempt ended without a definite "not appended" answer.
    pub possibly_persisted: bool,
    /// Correlation id of the request that carries the batch now, if any. A batch is in at
    /// most one request at a time.
    pub on_wire: Option<i32>,
    /// The delivery report was already issued (delivery timeout while on the wire); the batch
    /// is kept only so that the answer to its last request can still update the partition's
    /// sequence bookkeeping.
    pub reported: bool,
    /// Kafka's `currentLeaderEpoch`: the newest leader epoch the batch was drained under
    /// (cluster routing only).
    pub current_leader_epoch: Option<i32>,
    /// Kafka's `attemptsWhenLeaderLastChanged`.
    pub attempts_when_leader_last_changed: u32,
}

impl ProducerBatch {
    /// The delivery error this batch fails with: possibly persisted once any attempt's
    /// outcome is unknown (or one is still on the wire), definite otherwise.
    pub fn failure(&self, reason: FailureReason) -> DeliveryError {
        let attempts = self.attempts;
        if self.possibly_persisted || self.on_wire.is_some() {
            DeliveryError::PossiblyPersisted { reason, attempts }
        } else {
            DeliveryError::Definite { reason, attempts }
        }
    }

    /// A fresh batch. Offset deltas are set from the record positions; both timestamps are
    /// the `send()` time.
    pub fn new(
        handle: DeliveryHandle,
        partition: i32,
        mut records: Vec<Record>,
        now_ms: u64,
        deadline_ms: u64,
    ) -> ProducerBatch {
        for (i, record) in records.iter_mut().enumerate() {
            record.offset_delta = i32::try_from(i).unwrap_or(i32::MAX);
        }
        let record_count = i32::try_from(records.len()).unwrap_or(i32::MAX);
        let timestamp_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        ProducerBatch {
            handle,
            partition,
            batch: RecordBatch::idempotent(
                ProducerId::NONE,
                ProducerEpoch::NONE,
                Sequence::NONE,
                timestamp_ms,
                records,
            ),
            record_count,
            deadline_ms,
            encoded: None,
            attempts: 0,
            generation: 0,
            drain_order: 0,
            sequence_has_been_reset: false,
            retry_not_before_ms: 0,
            in_retry: false,
            possibly_persisted: false,
            on_wire: None,
            reported: false,
            current_leader_epoch: None,
            attempts_when_leader_last_changed: 0,
        }
    }

    /// Kafka's `maybeUpdateLeaderEpoch`: remembers a newer leader epoch and the attempt at
    /// which it was first seen.
    pub fn maybe_update_leader_epoch(&mut self, leader_epoch: i32) {
        if self.current_leader_epoch.is_none_or(|e| e < leader_epoch) {
            self.attempts_when_leader_last_changed = self.attempts;
            self.current_leader_epoch = Some(leader_epoch);
        }
    }

    /// Kafka's `hasLeaderChangedForTheOngoingRetry` (KIP-951): the batch is a retry and the
    /// leader changed since its last attempt, so the retry goes to the new leader without
    /// waiting for `retry.backoff.ms`.
    pub fn has_leader_changed_for_the_ongoing_retry(&self) -> bool {
        self.attempts >= 1 && self.attempts == self.attempts_when_leader_last_changed
    }

    /// Kafka's `hasSequence()`.
    pub fn has_sequence(&self) -> bool {
        self.batch.base_sequence != Sequence::NONE
    }

    /// The producer id the batch carries.
    pub fn producer_id(&self) -> ProducerId {
        self.batch.producer_id
    }

    /// The epoch the batch carries.
    pub fn producer_epoch(&self) -> ProducerEpoch {
        self.batch.producer_epoch
    }

    /// The base sequence the batch carries.
    pub fn base_sequence(&self) -> Sequence {
        self.batch.base_sequence
    }

    /// Wrap-aware last sequence (the broker's formula, not the Java client's unwrapped one).
    pub fn last_sequence(&self) -> Sequence {
        self.batch.last_sequence()
    }

    /// Kafka's `setProducerState`: stamps the producer state and drops the old encoding.
    pub fn set_producer_state(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        base_sequence: Sequence,
    ) {
        self.batch.producer_id = producer_id;
        self.batch.producer_epoch = producer_epoch;
        self.batch.base_sequence = base_sequence;
        let generation = self.generation.wrapping_add(1);
        assert!(
            generation > self.generation,
            "generations only grow: a batch is rewritten fewer than 2^32 times"
        );
        self.generation = generation;
        self.encoded = None;
    }

    /// Kafka's `resetProducerState`: a rewrite by an epoch bump.
    pub fn reset_producer_state(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        base_sequence: Sequence,
    ) {
        self.set_producer_state(producer_id, producer_epoch, base_sequence);
        self.sequence_has_been_reset = true;
    }

    /// The wire bytes under the current producer state, encoded at most once per state.
    pub fn encoded(&mut self) -> Bytes {
        match &self.encoded {
            Some(bytes) => bytes.clone(),
            None => {
                let bytes = self.batch.to_bytes();
                self.encoded = Some(bytes.clone());
                bytes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::BatchHeader;

    #[test]
    fn retry_reuses_the_encoding_until_a_rewrite() {
        let records = vec![Record::with_value(7, "a"), Record::with_value(7, "b")];
        let mut b = ProducerBatch::new(DeliveryHandle(0), 3, records, 1_000, 121_000);
        assert_eq!(
            b.batch.records[1].offset_delta, 1,
            "offset deltas follow positions"
        );
        b.set_producer_state(ProducerId(9), ProducerEpoch(0), Sequence(4));
        let first = b.encoded();
        let again = b.encoded();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "same buffer, not re-encoded"
        );
        b.reset_producer_state(ProducerId(9), ProducerEpoch(1), Sequence(0));
        let header = BatchHeader::parse(&b.encoded()).unwrap();
        assert_eq!(header.producer_epoch, ProducerEpoch(1));
        assert_eq!(header.base_sequence, Sequence(0));
        assert_eq!(header.base_timestamp, 1_000);
        assert!(b.sequence_has_been_reset);
    }
}
