//! Newtypes for the identifiers that are easy to mix up: producer id, producer epoch and
//! sequence number.
//!
//! All three travel as plain integers on the wire (`i64`, `i16`, `i32`). Keeping them apart in
//! the type system means a sequence can never be passed where an epoch was expected, and the
//! wrap-around arithmetic of sequences lives in exactly one place.

use std::fmt;

/// A producer id, allocated by `InitProducerId`. `-1` (`NO_PRODUCER_ID`) marks a batch that is
/// not idempotent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// Kafka's `RecordBatch.NO_PRODUCER_ID`.
    pub const NONE: ProducerId = ProducerId(-1);

    /// True when this batch carries a producer id (`producerId > -1`, as Kafka's
    /// `hasProducerId` tests).
    pub fn is_some(self) -> bool {
        self.0 > -1
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A producer epoch. The client bumps it locally (KIP-360) to restart its sequences at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProducerEpoch(pub i16);

impl ProducerEpoch {
    /// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
    /// The highest epoch. Kafka's Java client asks for a new producer id instead of bumping past it.
    pub const MAX: ProducerEpoch = ProducerEpoch(i16::MAX);

    /// The next epoch, or `None` when the epoch is exhausted (`Short.MAX_VALUE`).
    pub fn bumped(self) -> Option<ProducerEpoch> {
        self.0.checked_add(1).map(ProducerEpoch)
    }
}

impl fmt::Display for ProducerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A per-partition sequence number. Sequences count records, not batches, and wrap from
/// `i32::MAX` back to 0 exactly as Kafka's `DefaultRecordBatch.incrementSequence` does.
///
/// # Examples
///
/// ```
/// use idempo_protocol::Sequence;
/// // A batch of 21 records starting 10 below the maximum ends at 9 after wrapping.
/// let base = Sequence(i32::MAX - 10);
/// assert_eq!(base.wrapping_add(20), Sequence(9));
/// assert_eq!(Sequence(9).wrapping_sub(20), base);
/// assert!(Sequence(0).follows(Sequence(i32::MAX)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sequence(pub i32);

impl Sequence {
    /// Kafka's `RecordBatch.NO_SEQUENCE`.
    pub const NONE: Sequence = Sequence(-1);

    /// `self + delta`, wrapping past `i32::MAX` to 0 (Kafka's `incrementSequence`).
    /// `delta` must not be negative; sequences are never negative once assigned.
    pub fn wrapping_add(self, delta: i32) -> Sequence {
        debug_assert!(
            delta >= 0,
            "sequence deltas are record counts, never negative"
        );
        if self.0 > i32::MAX - delta {
            Sequence(delta - (i32::MAX - self.0) - 1)
        } else {
            Sequence(self.0 + delta)
        }
    }

    /// `self - delta`, wrapping below 0 back to `i32::MAX` (Kafka's `decrementSequence`).
    pub fn wrapping_sub(self, delta: i32) -> Sequence {
        debug_assert!(
            delta >= 0,
            "sequence deltas are record counts, never negative"
        );
        if self.0 < delta {
            Sequence(i32::MAX - (delta - self.0) + 1)
        } else {
            Sequence(self.0 - delta)
        }
    }

    /// Kafka's `inSequence(last, next)`: true when `self` is the sequence that must come right
    /// after `last`. `last == -1` means nothing has been seen yet, so 0 is expected.
    pub fn follows(self, last: Sequence) -> bool {
        i64::from(self.0) == i64::from(last.0) + 1 || (self.0 == 0 && last.0 == i32::MAX)
    }

    /// Records from `self` forward to `to`, modulo the 2^31 sequence space: how far ahead
    /// `to` is. A distance of 2^30 or more means `to` is really *behind* `self` (the two
    /// places that compare sequences assume fewer than 2^30 records are outstanding).
    /// `NONE` counts as the sequence before 0, so `NONE.distance_to(Sequence(0))` is 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use idempo_protocol::Sequence;
    /// assert_eq!(Sequence(3).distance_to(Sequence(5)), 2);
    /// assert_eq!(Sequence(i32::MAX).distance_to(Sequence(1)), 2, "across the wrap");
    /// assert_eq!(Sequence(5).distance_to(Sequence(3)), (1 << 31) - 2, "behind");
    /// ```
    pub fn distance_to(self, to: Sequence) -> i64 {
        (i64::from(to.0) - i64::from(self.0)).rem_euclid(1 << 31)
    }

    /// How many steps `to` is ahead of `self`, read wrap-aware: `Some(d)` when it is less than
    /// half the sequence space (2^30) ahead (`Some(0)`: the same sequence), `None` when it is
    /// half the space ahead or more, which reads as behind. The one home of the "ahead or
    /// behind" reading that the broker's explanations and the producer's acknowledgement,
    /// ordering and librdkafka rules share. In a correct run the distances met are at most
    /// the records in flight, far from either end; a peer's arbitrary sequence is read by the
    /// same rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use idempo_protocol::Sequence;
    /// assert_eq!(Sequence(3).ahead_by(Sequence(5)), Some(2));
    /// assert_eq!(Sequence(i32::MAX).ahead_by(Sequence(1)), Some(2), "across the wrap");
    /// assert_eq!(Sequence(5).ahead_by(Sequence(3)), None, "behind");
    /// ```
    pub fn ahead_by(self, to: Sequence) -> Option<i64> {
        let d = self.distance_to(to);
        (d < 1 << 30).then_some(d)
    }

    /// The sequence expected after `self` (`self + 1`, wrapping). `NONE.next()` is 0.
    pub fn next(self) -> Sequence {
        if self == Sequence::NONE {
            Sequence(0)
        } else {
            self.wrapping_add(1)
        }
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_overflow_matches_kafka_test_sequence_number_overflow() {
        // TransactionManagerTest.testSequenceNumberOverflow: 0 + MAX = MAX; MAX + 100 = 99; 99 + MAX = 98.
        assert_eq!(Sequence(0).wrapping_add(i32::MAX), Sequence(i32::MAX));
        assert_eq!(Sequence(i32::MAX).wrapping_add(100), Sequence(99));
        assert_eq!(Sequence(99).wrapping_add(i32::MAX), Sequence(98));
    }

    #[test]
    fn decrement_undoes_increment_across_the_wrap() {
        for base in [0, 1, 5, i32::MAX - 3, i32::MAX] {
            for delta in [0, 1, 4, 20] {
                let s = Sequence(base);
                assert_eq!(
                    s.wrapping_add(delta).wrapping_sub(delta),
                    s,
                    "{base} {delta}"
                );
            }
        }
    }

    #[test]
    fn zero_follows_max_and_nothing_seen_expects_zero() {
        assert!(Sequence(0).follows(Sequence(i32::MAX)));
        assert!(Sequence(0).follows(Sequence::NONE));
        assert!(Sequence(6).follows(Sequence(5)));
        assert!(!Sequence(7).follows(Sequence(5)));
        assert_eq!(Sequence::NONE.next(), Sequence(0));
        assert_eq!(Sequence(i32::MAX).next(), Sequence(0));
    }

    #[test]
    fn distance_is_measured_forward_across_the_wrap() {
        assert_eq!(Sequence(7).distance_to(Sequence(7)), 0);
        assert_eq!(Sequence(i32::MAX - 1).distance_to(Sequence(2)), 4);
        assert_eq!(Sequence::NONE.distance_to(Sequence(0)), 1);
        assert_eq!(
            Sequence(11).distance_to(Sequence(10)),
            (1 << 31) - 1,
            "one behind"
        );
    }

    #[test]
    fn epoch_bump_stops_at_max() {
        assert_eq!(ProducerEpoch(0).bumped(), Some(ProducerEpoch(1)));
        assert_eq!(ProducerEpoch::MAX.bumped(), None);
    }
}
