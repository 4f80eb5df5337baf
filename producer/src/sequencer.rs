//! Per-partition sequence state: Kafka's `TxnPartitionEntry` (docs/KAFKA-RULES.md §2.3).
//!
//! For every partition the producer remembers which producer id and epoch its sequences
//! belong to, the sequence the next *new* batch will get, the highest sequence the broker
//! acknowledged, and the batches that hold a sequence but have no outcome yet, in sequence
//! order. Kafka calls that last set `inflightBatchesBySequence`; note that it includes batches
//! waiting in the accumulator for a retry, not only those on the wire.
//!
//! ```text
//! field                    meaning
//! producer_id/epoch        whose sequences these are; lags the producer's after a bump
//! next_sequence            base sequence of the next new batch; wraps at i32::MAX
//! last_acked_sequence      highest acknowledged last sequence; -1 when none
//! last_acked_offset        offset of the last record acknowledged; -1 when none (kept
//!                          across epoch bumps, forgotten with the producer id)
//! in_flight                sequenced batches without an outcome, in sequence order
//! unresolved_next_sequence set when a sent batch expired: the sequence that must be
//!                          acknowledged before the partition is known to be consistent
//! ```
//!
//! Kafka's entry also keeps `lastAckedOffset`. Today only the transactional branch of
//! `canRetry` reads it (for an idempotent producer both branches of `UNKNOWN_PRODUCER_ID` bump
//! the epoch); Kafka 2.4's client compared it with the log start offset before it restarted
//! the sequences (`JavaRules::unknown_producer_resets_sequences`), so it is kept
//! (`last_acked_offset`).
//!
//! The wrap at `i32::MAX` makes "higher" ambiguous. Sequence order is kept by position in
//! `in_flight` (the order batches were first drained), and the two places that compare
//! sequences ([`PartitionEntry::maybe_update_last_acked_sequence`] and
//! [`PartitionEntry::mark_unresolved`]) measure distances forward from the last acknowledged
//! sequence ([`Sequence::distance_to`]), which is correct as long as fewer than 2^30 records are outstanding.

use crate::batch::ProducerBatch;
use crate::batch_table::BatchTable;
use idempo_protocol::{ProducerEpoch, ProducerId, Sequence};
use std::collections::VecDeque;

/// One partition's sequence state.
#[derive(Debug)]
pub(crate) struct PartitionEntry {
    /// Producer id the sequences belong to.
    pub producer_id: ProducerId,
    /// Epoch the sequences belong to.
    pub producer_epoch: ProducerEpoch,
    /// Base sequence of the next new batch.
    pub next_sequence: Sequence,
    /// Highest acknowledged last sequence, `NONE` when none.
    pub last_acked_sequence: Sequence,
    /// Kafka's `lastAckedOffset`: the offset of the last record acknowledged with an offset,
    /// -1 when none under this producer id.
    pub last_acked_offset: i64,
    /// Handles of sequenced batches without an outcome, in sequence order.
    pub in_flight: VecDeque<u64>,
    /// Kafka's `partitionsWithUnresolvedSequences` entry.
    pub unresolved_next_sequence: Option<Sequence>,
    /// The producer id under which the broker last acknowledged a batch of this partition:
    /// from then on the broker knows the producer here (see `first_batch_alone`).
    pub acknowledged_producer_id: ProducerId,
}

impl PartitionEntry {
    /// A partition nothing was sent to yet.
    pub fn new() -> PartitionEntry {
        PartitionEntry {
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            next_sequence: Sequence(0),
            last_acked_sequence: Sequence::NONE,
            last_acked_offset: -1,
            in_flight: VecDeque::new(),
            unresolved_next_sequence: None,
            acknowledged_producer_id: ProducerId::NONE,
        }
    }

    /// True when the partition's sequences belong to another producer id or epoch.
    pub fn is_stale(&self, producer_id: ProducerId, producer_epoch: ProducerEpoch) -> bool {
        self.producer_id != producer_id || self.producer_epoch != producer_epoch
    }

    /// Kafka's `startSequencesAtBeginning` for the partition itself (the batches are rewritten
    /// by the caller): sequences restart at `next_sequence` under the new producer state.
    pub fn restart(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        next_sequence: Sequence,
    ) {
        if self.producer_id != producer_id {
            // A new producer id is a new TxnPartitionEntry in Kafka: nothing acknowledged yet.
            self.last_acked_offset = -1;
        }
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.next_sequence = next_sequence;
        self.last_acked_sequence = Sequence::NONE;
        self.unresolved_next_sequence = None;
    }

    /// Kafka's `maybeUpdateProducerIdAndEpoch`, run before a *new* batch is stamped: a
    /// partition still on an old producer id or epoch, with nothing in flight, restarts at
    /// sequence 0 under the current one. Returns true when it restarted.
    pub fn maybe_update_producer_id_and_epoch(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> bool {
        if self.is_stale(producer_id, producer_epoch) && self.in_flight.is_empty() {
            self.restart(producer_id, producer_epoch, Sequence(0));
            true
        } else {
            false
        }
    }

    /// Kafka 2.5 to 2.7's drain (KAFKA-12152, `JavaRules::bump_skips_idle_partitions`): a
    /// partition still on an old epoch of the current producer id, with nothing in flight,
    /// takes the new epoch and *keeps* its next sequence (only a new producer id restarts it
    /// at 0). Returns true when it restarted, as
    /// [`maybe_update_producer_id_and_epoch`](Self::maybe_update_producer_id_and_epoch) does.
    pub fn adopt_epoch_keeping_sequence(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> bool {
        if self.producer_id == producer_id && self.in_flight.is_empty() {
            self.producer_epoch = producer_epoch;
            return false;
        }
        self.maybe_update_producer_id_and_epoch(producer_id, producer_epoch)
    }

    /// Kafka's `updateLastAckedOffset`: an acknowledgement with an offset (a duplicate's is
    /// -1) moves `last_acked_offset` forward to its last record.
    pub fn update_last_acked_offset(&mut self, base_offset: i64, record_count: i32) {
        if base_offset < 0 {
            return;
        }
        let last = base_offset.saturating_add(i64::from(record_count) - 1);
        self.last_acked_offset = self.last_acked_offset.max(last);
    }

    /// Stamps a new batch with this partition's producer state and next sequence, advances
    /// `next_sequence` past it and tracks it in flight (Kafka's `setProducerState`,
    /// `incrementSequenceNumber` and `addInFlightBatch` in `drainBatchesForOneNode`).
    pub fn stamp_new_batch(&mut self, batch: &mut ProducerBatch, drain_order: u64) {
        assert!(
            !batch.has_sequence(),
            "only a new batch is stamped at drain; a retry keeps its sequence"
        );
        batch.set_producer_state(self.producer_id, self.producer_epoch, self.next_sequence);
        batch.drain_order = drain_order;
        self.next_sequence = self.next_sequence.wrapping_add(batch.record_count);
        self.in_flight.push_back(batch.handle.0);
    }

    /// Kafka's `isNextSequence`: `sequence` is the one right after the last acknowledged.
    pub fn is_next_sequence(&self, sequence: Sequence) -> bool {
        self.last_acked_sequence.next() == sequence
    }

    /// Kafka's `maybeUpdateLastAckedSequence`: only ever moves forward.
    pub fn maybe_update_last_acked_sequence(&mut self, last_sequence: Sequence) {
        if last_sequence == Sequence::NONE {
            return;
        }
        if self.last_acked_sequence == Sequence::NONE {
            self.last_acked_sequence = last_sequence;
            return;
        }
        let forward = self.last_acked_sequence.ahead_by(last_sequence);
        if forward.is_some_and(|d| d > 0) {
            self.last_acked_sequence = last_sequence;
        }
    }

    /// Kafka's `markSequenceUnresolved`: `unresolved = max(existing, next_sequence)`.
    pub fn mark_unresolved(&mut self, next_sequence: Sequence) {
        let base = self.last_acked_sequence.next();
        self.unresolved_next_sequence = Some(match self.unresolved_next_sequence {
            Some(existing) if base.distance_to(existing) >= base.distance_to(next_sequence) => {
                existing
            }
            _ => next_sequence,
        });
    }

    /// Asserts that the in-flight batches are in sequence order: each one of the same epoch
    /// starts at or after the end of the one before it, and they were first drained in that
    /// order.
    pub fn assert_in_sequence_order(&self, batches: &BatchTable) {
        let mut previous: Option<&ProducerBatch> = None;
        for batch in self.in_flight.iter().filter_map(|h| batches.get(h)) {
            if let Some(before) = previous {
                assert!(
                    before.drain_order < batch.drain_order,
                    "in-flight batches are kept in the order they were first drained"
                );
                assert!(
                    before.producer_epoch() != batch.producer_epoch()
                        || before
                            .last_sequence()
                            .next()
                            .ahead_by(batch.base_sequence())
                            .is_some(),
                    "in-flight batches of a partition are in sequence order"
                );
            }
            previous = Some(batch);
        }
    }

    /// Removes a batch from the in-flight set; returns its position if it was there.
    pub fn remove_in_flight(&mut self, handle: u64) -> Option<usize> {
        let position = self.in_flight.iter().position(|&h| h == handle)?;
        self.in_flight.remove(position);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_acked_sequence_only_moves_forward_across_the_wrap() {
        let mut e = PartitionEntry::new();
        e.maybe_update_last_acked_sequence(Sequence(i32::MAX - 1));
        e.maybe_update_last_acked_sequence(Sequence(3));
        assert_eq!(
            e.last_acked_sequence,
            Sequence(3),
            "3 comes after MAX-1 by wrapping"
        );
        e.maybe_update_last_acked_sequence(Sequence(i32::MAX));
        assert_eq!(
            e.last_acked_sequence,
            Sequence(3),
            "an older ack does not regress it"
        );
        assert!(e.is_next_sequence(Sequence(4)));
    }

    #[test]
    fn a_sequence_half_the_space_ahead_or_more_is_an_old_ack() {
        let mut e = PartitionEntry::new();
        e.maybe_update_last_acked_sequence(Sequence(0));
        e.maybe_update_last_acked_sequence(Sequence(1 << 30));
        assert_eq!(
            e.last_acked_sequence,
            Sequence(0),
            "2^30 ahead is read as behind"
        );
        e.maybe_update_last_acked_sequence(Sequence((1 << 30) - 1));
        assert_eq!(e.last_acked_sequence, Sequence((1 << 30) - 1));
    }

    #[test]
    fn unresolved_keeps_the_furthest_sequence() {
        let mut e = PartitionEntry::new();
        e.mark_unresolved(Sequence(10));
        e.mark_unresolved(Sequence(5));
        assert_eq!(e.unresolved_next_sequence, Some(Sequence(10)));
        e.mark_unresolved(Sequence(15));
        assert_eq!(e.unresolved_next_sequence, Some(Sequence(15)));
    }
}
