//! Per-partition producer state and the sequence-deduplication rule.
//!
//! # How a broker turns "at least once" into "exactly once"
//!
//! The network may lose the broker's acknowledgement of a batch that *was* appended. The
//! producer cannot tell that apart from a lost request, so it sends the batch again. Without
//! help the broker would append it twice. Kafka's answer is for every idempotent batch to
//! carry `(producer_id, producer_epoch, base_sequence)`, and for each partition to remember,
//! per producer id, its epoch and the metadata of its **last five batches** (the *window*,
//! `NUM_BATCHES_TO_RETAIN` in `ProducerStateEntry.java`). For every batch from a client the
//! leader then decides, in this order (`UnifiedLog.analyzeAndValidateProducerState` and
//! `ProducerAppendInfo.checkSequence`; docs/KAFKA-RULES.md §1.4-1.7):
//!
//! 1. **Duplicate?** Same epoch as stored, and some retained batch has exactly this first *and*
//!    last sequence. Answer `NONE` with the *original* offsets; append nothing.
//! 2. **Stale epoch?** The batch's epoch is below the stored one: `INVALID_PRODUCER_EPOCH` (47).
//! 3. **In sequence?**
//!    * producer unknown to this partition (never seen, or expired): any sequence is accepted
//!      (Kafka 2.5+, KIP-360);
//!    * a higher epoch: the batch must start at sequence 0;
//!    * the same epoch: the batch must start at `last_sequence + 1` (or at 0 right after
//!      `i32::MAX`);
//!    * anything else, including a partial overlap with a retained batch or an exact repeat of
//!      a batch older than the window, is `OUT_OF_ORDER_SEQUENCE_NUMBER` (45).
//!
//! Nothing is changed while deciding ([`ProducerStateManager::check`] takes `&self`): the
//! state is updated only after the log append succeeded ([`ProducerStateManager::update`]), as
//! Kafka has done since KAFKA-6683. The produce path looks the producer up once for both
//! steps ([`ProducerStateManager::slot`]: the check reads the slot, the update after the
//! append writes it).
//!
//! A worked example for one producer on one partition (window of 5):
//!
//! ```text
//! batch | epoch | sequences | broker answer
//! A     | 0     | 0..=4     | appended at offsets 0..=4 (producer unknown: any sequence)
//! A'    | 0     | 0..=4     | retry of A: NONE with offset 0 again, nothing appended
//! B     | 0     | 8..=9     | OUT_OF_ORDER_SEQUENCE_NUMBER (expected 5)
//! C     | 0     | 5..=7     | appended at offsets 5..=7
//! D     | 0     | 3..=5     | OUT_OF_ORDER_SEQUENCE_NUMBER: partial overlap is not a duplicate
//! E     | 1     | 0..=1     | appended at 8..=9; the epoch changed, so the window is cleared
//! A''   | 0     | 0..=4     | INVALID_PRODUCER_EPOCH: epoch 0 is older than 1
//! ```
//!
//! Why five? A producer keeps at most five requests in flight, each with at most one batch
//! for this partition, so any batch it may still retry is among the last five appended.
//! Let it keep more in flight than the broker retains and a retry of an appended batch can
//! fall out of the window and be answered `OUT_OF_ORDER_SEQUENCE_NUMBER` (the simulator
//! shows this with `--max-in-flight 6`).
//!
//! # Differences from Kafka
//!
//! * The window size is a setting (default 5) so experiments can shrink or grow it.
//! * Transactions are not modelled: no `currentTxnFirstOffset`, no coordinator epoch, no
//!   verification entries (KIP-890), no control batches.
//! * The entry keeps no `coordinatorEpoch`; [`BatchMetadata`] is the same four numbers Kafka
//!   keeps (`lastSeq`, `offsetDelta`, `lastOffset`, `timestamp`).

use hashbrown::hash_map::{Entry, HashMap, VacantEntry};
use idempo_protocol::{BatchHeader, ErrorCode, ProducerEpoch, ProducerId, Sequence};
use rustc_hash::FxBuildHasher;
use std::fmt;

/// What the broker remembers of one appended batch (Kafka's `BatchMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BatchMetadata {
    /// Sequence of the batch's last record.
    pub last_sequence: Sequence,
    /// `last_offset - first_offset` (record count - 1 for a fresh batch).
    pub offset_delta: i32,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

impl BatchMetadata {
    /// Sequence of the batch's first record (wrap-aware).
    pub fn first_sequence(&self) -> Sequence {
        self.last_sequence.wrapping_sub(self.offset_delta)
    }

    /// Offset of the batch's first record.
    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

impl fmt::Display for BatchMetadata {
    /// The batch's sequences: `4` for one record, `6..8` for several.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset_delta == 0 {
            write!(f, "{}", self.last_sequence)
        } else {
            write!(f, "{}..{}", self.first_sequence(), self.last_sequence)
        }
    }
}

/// One producer's state on one partition (Kafka's `ProducerStateEntry`).
#[derive(Clone)]
pub struct ProducerStateEntry {
    /// The epoch of the retained batches.
    pub producer_epoch: ProducerEpoch,
    /// Where the oldest retained batch is in `batches`: 0 until the window is full, then the
    /// ring's start (evicting the oldest overwrites it in place and moves the start on, so
    /// nothing is shifted).
    start: u16,
    /// The newest retained batch's last sequence (`NONE` with no batch), kept beside the
    /// ring so the rule reads it without finding the newest slot.
    last_sequence: Sequence,
    /// A lower bound on how many of the newest retained batches have strictly increasing
    /// last sequences (as plain integers, no wrap). When it covers the whole window, every
    /// retained last sequence is at most `last_sequence`, so a batch ending above it cannot
    /// be a duplicate and the scan is skipped: what a producer sending in order always hits.
    increasing: u16,
    /// The retained batches, at most the window size, as a ring from `start` (oldest first
    /// from there, wrapping to the front): two plain slices, so the duplicate scan is a
    /// tight loop.
    batches: Vec<BatchMetadata>,
    /// Max timestamp of the last batch: what producer-id expiration is judged against.
    pub last_timestamp: i64,
}

impl PartialEq for ProducerStateEntry {
    /// Equal when the epoch, the last timestamp and the retained batches in order are: where
    /// the ring happens to start does not matter.
    fn eq(&self, other: &ProducerStateEntry) -> bool {
        self.producer_epoch == other.producer_epoch
            && self.last_timestamp == other.last_timestamp
            && self.batches().eq(other.batches())
    }
}

impl Eq for ProducerStateEntry {}

impl fmt::Debug for ProducerStateEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerStateEntry")
            .field("producer_epoch", &self.producer_epoch)
            .field("batches", &RetainedBatches(self))
            .field("last_timestamp", &self.last_timestamp)
            .finish()
    }
}

/// A producer's retained batches, oldest first, for `Debug`.
struct RetainedBatches<'a>(&'a ProducerStateEntry);

impl fmt::Debug for RetainedBatches<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.batches()).finish()
    }
}

impl ProducerStateEntry {
    /// An entry with no batches. Its window buffer grows on demand: room for one batch at the
    /// first append, the whole window at the second, so a producer that sends one batch costs
    /// one slot, not a window's worth (memory follows the data).
    fn new(producer_epoch: ProducerEpoch) -> ProducerStateEntry {
        ProducerStateEntry {
            producer_epoch,
            start: 0,
            last_sequence: Sequence::NONE,
            increasing: 0,
            batches: Vec::new(),
            last_timestamp: -1,
        }
    }

    /// The retained batches as two slices, oldest first: the ring from its start, then the
    /// part that wrapped to the front.
    #[inline]
    fn ring(&self) -> (&[BatchMetadata], &[BatchMetadata]) {
        let (front, back) = self.batches.split_at(usize::from(self.start));
        (back, front)
    }

    /// The retained batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> + DoubleEndedIterator {
        let (older, newer) = self.ring();
        RingIter {
            older: older.iter(),
            newer: newer.iter(),
        }
    }

    /// Sequence of the newest retained batch's last record, or `NONE` if none is retained.
    #[inline]
    pub fn last_sequence(&self) -> Sequence {
        self.last_sequence
    }

    /// The retained batch with exactly this epoch, first and last sequence (Kafka's
    /// `findDuplicateBatch`).
    #[inline]
    pub fn find_duplicate(
        &self,
        epoch: ProducerEpoch,
        first: Sequence,
        last: Sequence,
    ) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        if usize::from(self.increasing) >= self.batches.len() && last > self.last_sequence {
            // Every retained batch ends at or below `last_sequence`: none ends at `last`.
            return None;
        }
        let matches = |b: &&BatchMetadata| b.last_sequence == last && b.first_sequence() == first;
        // One pass over the buffer in any order says whether there is a match at all (the
        // common answer is no); only then is the ring searched oldest first.
        if !self.batches.iter().any(|b| matches(&b)) {
            return None;
        }
        let (older, newer) = self.ring();
        older
            .iter()
            .find(matches)
            .or_else(|| newer.iter().find(matches))
            .copied()
    }

    /// Records an appended batch: a new epoch clears the window first
    /// (`maybeUpdateProducerEpoch`), and the oldest batch is evicted beyond `window`.
    #[inline]
    fn add_batch(&mut self, epoch: ProducerEpoch, batch: BatchMetadata, window: usize) {
        assert!(
            batch.offset_delta >= 0 && batch.last_offset >= i64::from(batch.offset_delta),
            "a stored batch holds at least one record at a non-negative offset"
        );
        if epoch != self.producer_epoch {
            self.batches.clear();
            self.start = 0;
            self.producer_epoch = epoch;
        }
        self.increasing = if self.batches.is_empty() {
            1
        } else if batch.last_sequence > self.last_sequence {
            self.increasing.saturating_add(1)
        } else {
            1
        };
        self.last_sequence = batch.last_sequence;
        if self.batches.len() == window {
            // Evict the oldest: the new batch takes its slot and the ring's start moves on.
            let oldest = usize::from(self.start);
            self.batches[oldest] = batch;
            self.start = if oldest + 1 == window {
                0
            } else {
                (oldest + 1) as u16
            };
        } else {
            assert!(
                self.start == 0,
                "the ring starts at 0 until the window is full"
            );
            if self.batches.len() == self.batches.capacity() {
                let wanted = if self.batches.is_empty() { 1 } else { window };
                self.batches.reserve_exact(wanted - self.batches.len());
            }
            self.batches.push(batch);
        }
        assert!(
            self.batches.len() <= window,
            "a producer retains at most the dedup window ({window} batches)"
        );
        self.last_timestamp = batch.timestamp;
    }

    /// Heap and inline bytes this entry occupies, for the memory figure.
    fn heap_bytes(&self) -> usize {
        self.batches.capacity() * std::mem::size_of::<BatchMetadata>()
    }
}

/// The iterator of [`ProducerStateEntry::batches`]: the ring's two slices, oldest first.
struct RingIter<'a> {
    older: std::slice::Iter<'a, BatchMetadata>,
    newer: std::slice::Iter<'a, BatchMetadata>,
}

impl<'a> Iterator for RingIter<'a> {
    type Item = &'a BatchMetadata;

    fn next(&mut self) -> Option<&'a BatchMetadata> {
        self.older.next().or_else(|| self.newer.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.older.len() + self.newer.len();
        (n, Some(n))
    }
}

impl DoubleEndedIterator for RingIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.newer.next_back().or_else(|| self.older.next_back())
    }
}

impl ExactSizeIterator for RingIter<'_> {}

/// The most batches a [`WindowView`] copies out. Windows configured larger than this are shown
/// with their newest batches and a count of the rest.
pub const WINDOW_VIEW_MAX: usize = 8;

/// A copy of a producer's retained window as the broker saw it when deciding, so tools can
/// show *why*. Fixed-size and `Copy` (no allocation), and taken only when the broker is asked
/// to record windows ([`crate::Broker::set_record_windows`]): the produce path of a broker
/// nobody is explaining copies nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WindowView {
    batches: [BatchMetadata; WINDOW_VIEW_MAX],
    len: u8,
    omitted: u32,
}

impl WindowView {
    fn of(entry: &ProducerStateEntry) -> WindowView {
        let mut view = WindowView::default();
        let skip = entry.batches.len().saturating_sub(WINDOW_VIEW_MAX);
        for (slot, batch) in view.batches.iter_mut().zip(entry.batches().skip(skip)) {
            *slot = *batch;
        }
        view.len = (entry.batches.len() - skip) as u8;
        view.omitted = skip as u32;
        view
    }

    /// The batches shown, oldest first.
    pub fn batches(&self) -> &[BatchMetadata] {
        &self.batches[..usize::from(self.len)]
    }

    /// Older retained batches not shown (only for windows above [`WINDOW_VIEW_MAX`]).
    pub fn omitted(&self) -> u32 {
        self.omitted
    }
}

impl fmt::Display for WindowView {
    /// `2, 3, 4, 5, 6..8`: the retained batches' sequences, oldest first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.omitted > 0 {
            write!(f, "{} older, ", self.omitted)?;
        }
        if self.len == 0 {
            return write!(f, "empty");
        }
        for (i, b) in self.batches().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

/// The producer state the broker consulted for a batch: always the two numbers the rule
/// compared (16 bytes, cheap to keep in every outcome), and the retained window, boxed, when
/// the broker records windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSeen {
    /// The stored epoch.
    pub producer_epoch: ProducerEpoch,
    /// The sequence a same-epoch batch had to start at.
    pub expected_sequence: Sequence,
    /// The retained window, if it was recorded.
    window: Option<Box<WindowView>>,
}

impl StateSeen {
    #[inline]
    fn of(entry: &ProducerStateEntry, record_window: bool) -> StateSeen {
        StateSeen {
            producer_epoch: entry.producer_epoch,
            expected_sequence: entry.last_sequence().next(),
            window: record_window.then(|| Box::new(WindowView::of(entry))),
        }
    }

    /// The retained window as the rule saw it, oldest first: `None` unless the broker was
    /// recording windows ([`crate::Broker::set_record_windows`]).
    pub fn window(&self) -> Option<&WindowView> {
        self.window.as_deref()
    }
}

/// Why a batch was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptRule {
    /// The producer has no state on this partition (never seen, or expired): Kafka 2.5+
    /// accepts any sequence.
    UnknownProducer,
    /// Same epoch, and the batch starts right after the last retained sequence.
    NextInSequence,
    /// A higher epoch starting at sequence 0: the producer bumped its epoch; the old window is
    /// dropped.
    NewEpochFromZero {
        /// The epoch the broker had stored.
        previous_epoch: ProducerEpoch,
    },
}

/// What a broker answers a batch from a producer it has no state for (never seen, expired,
/// or evicted), when the batch does not start at sequence 0. The rule changed twice:
///
/// ```text
/// rule               answer                          Kafka          profile
/// AnySequence        accepted                        2.5+ (KIP-360)  kafka (default)
/// UnknownProducerId  UNKNOWN_PRODUCER_ID (59)        1.0-2.4         kafka-1.0, kafka-2.4
///                    (KAFKA-5793: the client may reset its sequence)
/// OutOfOrder         OUT_OF_ORDER_SEQUENCE_NUMBER    0.11.0          kafka-0.11
///                    (fatal for the 0.11 client)
/// ```
///
/// In 0.11.0 `ProducerAppendInfo.validateAppend` compared the batch's epoch with the empty
/// entry's `NO_PRODUCER_EPOCH` and refused any first sequence but 0 as out of order; a
/// producer whose last batches retention or DeleteRecords had removed then failed with a
/// spurious fatal error. KAFKA-5793 (1.0.0) split that case out as `UNKNOWN_PRODUCER_ID`;
/// KIP-360 (2.5.0) accepts it. A batch at sequence 0 is accepted under every rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnknownProducerRule {
    /// Any sequence is accepted (Kafka 2.5+, KIP-360; the default).
    #[default]
    AnySequence,
    /// `UNKNOWN_PRODUCER_ID` (Kafka 1.0 to 2.4, KAFKA-5793).
    UnknownProducerId,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` (Kafka 0.11.0).
    OutOfOrder,
}

/// Why a batch was refused by the sequence rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceRejection {
    /// `UNKNOWN_PRODUCER_ID` or `OUT_OF_ORDER_SEQUENCE_NUMBER`: no state for the producer and
    /// the batch does not start at sequence 0, under a pre-2.5 rule.
    UnknownProducer {
        /// The rule that refused it.
        rule: UnknownProducerRule,
    },
    /// `INVALID_PRODUCER_EPOCH`: the batch's epoch is older than the stored one.
    StaleEpoch {
        /// The stored epoch.
        current: ProducerEpoch,
    },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`: a higher epoch must start at sequence 0.
    NewEpochNotFromZero {
        /// The stored epoch.
        current: ProducerEpoch,
    },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`: the base sequence is not the next one expected.
    OutOfOrder {
        /// The sequence the batch had to start at.
        expected: Sequence,
    },
}

impl SequenceRejection {
    /// The Kafka error this rejection answers with: the one mapping from the sequence rule's
    /// refusals to wire codes.
    pub fn error_code(self) -> ErrorCode {
        match self {
            SequenceRejection::StaleEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            SequenceRejection::NewEpochNotFromZero { .. }
            | SequenceRejection::OutOfOrder { .. } => ErrorCode::OutOfOrderSequenceNumber,
            SequenceRejection::UnknownProducer {
                rule: UnknownProducerRule::UnknownProducerId,
            } => ErrorCode::UnknownProducerId,
            SequenceRejection::UnknownProducer { .. } => ErrorCode::OutOfOrderSequenceNumber,
        }
    }
}

/// The sequence rule's decision for one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// An exact retry of a retained batch: answer with its offsets, append nothing.
    Duplicate(BatchMetadata),
    /// Append it.
    Accept(AcceptRule),
    /// Refuse it.
    Reject(SequenceRejection),
}

/// Where a producer's entry is, or would go.
#[derive(Debug)]
enum Place<'a> {
    /// The producer has state on this partition.
    Known(&'a mut ProducerStateEntry),
    /// It has none yet; [`ProducerSlot::update`] creates it.
    Unknown(VacantEntry<'a, ProducerId, ProducerStateEntry, FxBuildHasher>),
}

/// One producer's place in a [`ProducerStateManager`] for one batch, from
/// [`ProducerStateManager::slot`]: the sequence rule reads it and the update after the append
/// writes it, with one hash lookup (and one computation of the batch's last sequence) for
/// both.
#[derive(Debug)]
pub struct ProducerSlot<'a> {
    place: Place<'a>,
    window: usize,
    batch: Incoming,
}

/// What the rule and the update read of a batch's header, copied out once (the last
/// sequence computed once).
#[derive(Clone, Copy, Debug)]
struct Incoming {
    producer_epoch: ProducerEpoch,
    base_sequence: Sequence,
    /// `header.last_sequence()`.
    last_sequence: Sequence,
    last_offset_delta: i32,
    max_timestamp: i64,
}

impl Incoming {
    #[inline]
    fn of(header: &BatchHeader) -> Incoming {
        Incoming {
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            last_offset_delta: header.last_offset_delta,
            max_timestamp: header.max_timestamp,
        }
    }
}

impl ProducerSlot<'_> {
    /// [`ProducerStateManager::check_and_see`] for this slot's batch: the rule's decision and
    /// the state it consulted, changing nothing.
    #[inline]
    pub fn check_and_see(&self, record_window: bool) -> (SequenceCheck, Option<StateSeen>) {
        self.check_and_see_under(record_window, UnknownProducerRule::AnySequence)
    }

    /// [`check_and_see`](Self::check_and_see) with `rule` for a producer this partition has
    /// no state for (the broker's `unknown_producer` setting).
    #[inline]
    pub fn check_and_see_under(
        &self,
        record_window: bool,
        rule: UnknownProducerRule,
    ) -> (SequenceCheck, Option<StateSeen>) {
        let entry = match &self.place {
            Place::Known(entry) => Some(&**entry),
            Place::Unknown(_) => None,
        };
        ProducerStateManager::check_entry(entry, &self.batch, record_window, rule)
    }

    /// The batch's last sequence (`header.last_sequence()`, computed once for the slot).
    pub fn last_sequence(&self) -> Sequence {
        self.batch.last_sequence
    }

    /// [`ProducerStateManager::update`] for this slot's batch, after its log append at
    /// `base_offset` succeeded: the one place a batch enters the state.
    #[inline]
    pub fn update(self, base_offset: i64) {
        let batch = self.batch;
        let entry = match self.place {
            Place::Known(entry) => entry,
            Place::Unknown(vacant) => vacant.insert(ProducerStateEntry::new(batch.producer_epoch)),
        };
        entry.add_batch(
            batch.producer_epoch,
            BatchMetadata {
                last_sequence: batch.last_sequence,
                offset_delta: batch.last_offset_delta,
                last_offset: base_offset + i64::from(batch.last_offset_delta),
                timestamp: batch.max_timestamp,
            },
            self.window,
        );
    }
}

/// All producers' state on one partition (Kafka's `ProducerStateManager`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<ProducerId, ProducerStateEntry, FxBuildHasher>,
    window: usize,
}

impl ProducerStateManager {
    /// An empty manager that retains `window` batches per producer.
    pub fn new(window: usize) -> ProducerStateManager {
        assert!(
            (1..=usize::from(u16::MAX)).contains(&window),
            "the dedup window holds at least one batch and at most {} batches",
            u16::MAX
        );
        ProducerStateManager {
            producers: HashMap::default(),
            window,
        }
    }

    /// The state kept for `producer_id`, if any.
    pub fn entry(&self, producer_id: ProducerId) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Batches retained per producer.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Every producer with state and its entry, in ascending producer id order (what a
    /// snapshot writes).
    pub fn entries(&self) -> Vec<(ProducerId, &ProducerStateEntry)> {
        let mut entries: Vec<_> = self.producers.iter().map(|(id, e)| (*id, e)).collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        entries
    }

    /// Installs a producer's state as loaded from a snapshot: its epoch, last timestamp and
    /// retained batches (oldest first; only the newest `window` are kept). Replaces any state
    /// the producer had.
    pub fn restore(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        last_timestamp: i64,
        batches: &[BatchMetadata],
    ) {
        let mut entry = ProducerStateEntry::new(producer_epoch);
        let skip = batches.len().saturating_sub(self.window);
        entry.batches.reserve_exact(batches.len() - skip);
        entry.batches.extend(batches[skip..].iter().copied());
        entry.last_sequence = batches.last().map_or(Sequence::NONE, |b| b.last_sequence);
        entry.last_timestamp = last_timestamp;
        self.producers.insert(producer_id, entry);
    }

    /// True when `entry` is expired at `now_ms` (Kafka's `isProducerExpired` for a producer
    /// with no ongoing transaction): its last timestamp is `expiration_ms` or more ago.
    pub fn is_expired(entry: &ProducerStateEntry, now_ms: i64, expiration_ms: i64) -> bool {
        now_ms.saturating_sub(entry.last_timestamp) >= expiration_ms
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Producer ids with state, in ascending order (deterministic for printing).
    pub fn producer_ids(&self) -> Vec<ProducerId> {
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// What the rule would see for this producer now, window included, for explanations.
    pub fn seen(&self, producer_id: ProducerId) -> Option<StateSeen> {
        self.producers
            .get(&producer_id)
            .map(|e| StateSeen::of(e, true))
    }

    /// Decides a client batch by Kafka's rule (module docs), without changing anything.
    /// `header` must carry a producer id.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        self.check_and_see(header, false).0
    }

    /// [`check`](Self::check), also returning the state the rule consulted (one lookup),
    /// with a copy of the window when `record_window` is set.
    #[inline]
    pub fn check_and_see(
        &self,
        header: &BatchHeader,
        record_window: bool,
    ) -> (SequenceCheck, Option<StateSeen>) {
        let entry = self.producers.get(&header.producer_id);
        Self::check_entry(
            entry,
            &Incoming::of(header),
            record_window,
            UnknownProducerRule::AnySequence,
        )
    }

    /// The rule on the entry found for the batch's producer (`None`: unknown producer, whose
    /// batch `unknown` decides unless it starts at sequence 0).
    #[inline]
    fn check_entry(
        entry: Option<&ProducerStateEntry>,
        batch: &Incoming,
        record_window: bool,
        unknown: UnknownProducerRule,
    ) -> (SequenceCheck, Option<StateSeen>) {
        match entry {
            None if unknown == UnknownProducerRule::AnySequence
                || batch.base_sequence == Sequence(0) =>
            {
                (SequenceCheck::Accept(AcceptRule::UnknownProducer), None)
            }
            None => (
                SequenceCheck::Reject(SequenceRejection::UnknownProducer { rule: unknown }),
                None,
            ),
            Some(entry) => {
                let seen = StateSeen::of(entry, record_window);
                let check = Self::decide(entry, batch, seen.expected_sequence);
                (check, Some(seen))
            }
        }
    }

    /// The place of `header`'s producer in this manager, looked up once: the produce path
    /// checks the batch against it ([`ProducerSlot::check_and_see`]) and, after the log
    /// append succeeded, updates it ([`ProducerSlot::update`]) without a second hash lookup.
    /// Nothing changes until `update` is called (an unknown producer gets its entry then).
    /// `header` must carry a producer id.
    #[inline]
    pub fn slot(&mut self, header: &BatchHeader) -> ProducerSlot<'_> {
        let window = self.window;
        let place = match self.producers.entry(header.producer_id) {
            Entry::Occupied(occupied) => Place::Known(occupied.into_mut()),
            Entry::Vacant(vacant) => Place::Unknown(vacant),
        };
        ProducerSlot {
            place,
            window,
            batch: Incoming::of(header),
        }
    }

    /// Kafka's rule in its order (module docs) for `batch`; `expected` is the sequence a
    /// same-epoch batch must start at (`entry.last_sequence().next()`).
    #[inline]
    fn decide(entry: &ProducerStateEntry, batch: &Incoming, expected: Sequence) -> SequenceCheck {
        let epoch = batch.producer_epoch;
        let base = batch.base_sequence;
        let last = batch.last_sequence;
        if let Some(original) = entry.find_duplicate(epoch, base, last) {
            return SequenceCheck::Duplicate(original);
        }
        if epoch < entry.producer_epoch {
            return SequenceCheck::Reject(SequenceRejection::StaleEpoch {
                current: entry.producer_epoch,
            });
        }
        if entry.producer_epoch == ProducerEpoch::NONE {
            // Kafka's checkSequence treats an entry that never had an epoch as unknown: any
            // sequence is accepted, in the same epoch or a new one.
            return SequenceCheck::Accept(AcceptRule::UnknownProducer);
        }
        if epoch != entry.producer_epoch {
            return if base == Sequence(0) {
                SequenceCheck::Accept(AcceptRule::NewEpochFromZero {
                    previous_epoch: entry.producer_epoch,
                })
            } else {
                SequenceCheck::Reject(SequenceRejection::NewEpochNotFromZero {
                    current: entry.producer_epoch,
                })
            };
        }
        // Kafka's inSequence, `base.follows(last)`, is exactly `base == last.next()` for
        // every `last` (a test checks it), and `expected` is already that.
        if base == expected {
            SequenceCheck::Accept(AcceptRule::NextInSequence)
        } else {
            SequenceCheck::Reject(SequenceRejection::OutOfOrder { expected })
        }
    }

    /// Records a batch appended at `base_offset` (after the log append succeeded), or one
    /// replayed from the log during recovery, which is never validated (Kafka's
    /// `REPLICATION` origin). Both paths end in [`ProducerSlot::update`] (the produce path
    /// through the slot it checked the batch against), so replay cannot disagree with live
    /// appends. A batch without a producer id leaves no state and is skipped.
    #[inline]
    pub fn update(&mut self, header: &BatchHeader, base_offset: i64) {
        if !header.producer_id.is_some() {
            return;
        }
        self.slot(header).update(base_offset);
    }

    /// Removes producers whose last timestamp is `expiration_ms` or more before `now_ms`
    /// (Kafka's `removeExpiredProducers`). Returns the removed ids in ascending order.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> Vec<ProducerId> {
        let mut expired: Vec<ProducerId> = self
            .producers
            .iter()
            .filter(|(_, e)| Self::is_expired(e, now_ms, expiration_ms))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for id in &expired {
            self.producers.remove(id);
        }
        expired
    }

    /// idempo's bound on producer state, beyond Kafka (`BrokerConfig::max_producer_ids_per_partition`,
    /// KIP-854's problem): while more than `max` producers have state here, removes the one
    /// whose last batch is the oldest, never `keep` (the producer just appended). An expired
    /// producer goes first because it is older than every live one: its last batch is at
    /// least `producer.id.expiration.ms` old. Ties go by ascending producer id, so the choice
    /// is deterministic. Returns the removed ids, oldest first.
    pub fn evict_least_recent(&mut self, max: usize, keep: ProducerId) -> Vec<ProducerId> {
        let excess = self.producers.len().saturating_sub(max);
        if excess == 0 {
            return Vec::new(); // the common case: nothing to sort
        }
        let mut by_age: Vec<(i64, ProducerId)> = self
            .producers
            .iter()
            .filter(|(id, _)| **id != keep)
            .map(|(id, e)| (e.last_timestamp, *id))
            .collect();
        by_age.sort_unstable();
        let evicted: Vec<ProducerId> = by_age.into_iter().take(excess).map(|(_, id)| id).collect();
        for id in &evicted {
            self.producers.remove(id);
        }
        evicted
    }

    /// Removes the producers whose newest retained batch ends below `log_start_offset`
    /// (Kafka 0.11 to 2.3's `ProducerStateManager.truncateHead`, removed by KAFKA-7190 in
    /// 2.4.0). Returns the removed ids in ascending order. Unlike Kafka, a producer kept
    /// keeps all its retained batches (Kafka also dropped those below the new start).
    pub fn remove_below(&mut self, log_start_offset: i64) -> Vec<ProducerId> {
        let mut removed: Vec<ProducerId> = self
            .producers
            .iter()
            .filter(|(_, e)| {
                e.batches()
                    .next_back()
                    .is_none_or(|b| b.last_offset < log_start_offset)
            })
            .map(|(id, _)| *id)
            .collect();
        removed.sort_unstable();
        for id in &removed {
            self.producers.remove(id);
        }
        removed
    }

    /// Forgets every producer (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Bytes this manager occupies: the hash table's slots (key, entry and control byte per
    /// bucket) plus each entry's window buffer. An estimate from sizes and capacities, not an
    /// allocator measurement.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(ProducerId, ProducerStateEntry)>() + 1;
        std::mem::size_of::<Self>()
            + self.producers.capacity() * slot
            + self
                .producers
                .values()
                .map(ProducerStateEntry::heap_bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 10,
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: Sequence(seq),
            records_count: count,
        }
    }

    #[test]
    fn the_producer_id_bound_evicts_the_least_recent_producer_and_never_the_one_kept() {
        let mut m = ProducerStateManager::new(5);
        for (pid, ts) in [(1, 30), (2, 10), (3, 20), (4, 40)] {
            let mut h = header(pid, 0, 0, 1);
            h.max_timestamp = ts;
            m.update(&h, 0);
        }
        assert!(
            m.evict_least_recent(4, ProducerId(4)).is_empty(),
            "within the bound"
        );
        // Producer 2 is the oldest, but it is the one kept: 3 and then 1 go.
        assert_eq!(
            m.evict_least_recent(2, ProducerId(2)),
            vec![ProducerId(3), ProducerId(1)]
        );
        assert_eq!(m.producer_ids(), vec![ProducerId(2), ProducerId(4)]);
    }

    #[test]
    fn an_unknown_producer_at_a_nonzero_sequence_is_answered_by_the_rule_of_its_version() {
        let mut m = ProducerStateManager::new(5);
        let late = header(7, 0, 5, 1);
        let first = header(7, 0, 0, 1);
        let expected = [
            (UnknownProducerRule::AnySequence, None),
            (
                UnknownProducerRule::UnknownProducerId,
                Some(ErrorCode::UnknownProducerId),
            ),
            (
                UnknownProducerRule::OutOfOrder,
                Some(ErrorCode::OutOfOrderSequenceNumber),
            ),
        ];
        for (rule, code) in expected {
            let (check, _) = m.slot(&late).check_and_see_under(false, rule);
            match (check, code) {
                (SequenceCheck::Accept(AcceptRule::UnknownProducer), None) => {}
                (SequenceCheck::Reject(r), Some(code)) => assert_eq!(r.error_code(), code),
                other => panic!("{rule:?}: {other:?}"),
            }
            let (check, _) = m.slot(&first).check_and_see_under(false, rule);
            assert_eq!(
                check,
                SequenceCheck::Accept(AcceptRule::UnknownProducer),
                "{rule:?}: sequence 0 is always accepted"
            );
        }
        m.update(&first, 0);
        let (check, _) = m
            .slot(&header(7, 0, 1, 1))
            .check_and_see_under(false, UnknownProducerRule::OutOfOrder);
        assert_eq!(
            check,
            SequenceCheck::Accept(AcceptRule::NextInSequence),
            "known now"
        );
    }

    #[test]
    fn remove_below_drops_producers_whose_batches_are_all_below_the_log_start() {
        let mut m = ProducerStateManager::new(5);
        m.update(&header(1, 0, 0, 2), 0); // offsets 0..=1
        m.update(&header(2, 0, 0, 2), 2); // offsets 2..=3
        assert!(m.remove_below(2).contains(&ProducerId(1)));
        assert_eq!(m.producer_ids(), vec![ProducerId(2)]);
        assert!(m.remove_below(3).is_empty(), "offset 3 is still retained");
    }

    #[test]
    fn window_evicts_oldest_beyond_its_size() {
        let mut m = ProducerStateManager::new(2);
        for (i, seq) in [0, 1, 2].into_iter().enumerate() {
            m.update(&header(1, 0, seq, 1), i as i64);
        }
        let e = m.entry(ProducerId(1)).unwrap();
        let seqs: Vec<_> = e.batches().map(|b| b.last_sequence.0).collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    /// The window is a ring: after evictions its batches still read oldest first, the newest
    /// gives the last sequence, duplicates are found on both sides of the wrap, and an entry
    /// equals one restored from the same batches (where the ring starts does not matter).
    #[test]
    fn a_wrapped_window_reads_oldest_first_and_equals_its_restored_copy() {
        let mut m = ProducerStateManager::new(5);
        for seq in 0..7 {
            m.update(&header(1, 0, seq, 1), i64::from(seq));
        }
        let e = m.entry(ProducerId(1)).unwrap();
        let seqs: Vec<i32> = e.batches().map(|b| b.last_sequence.0).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
        let newest_first: Vec<i32> = e.batches().rev().map(|b| b.last_sequence.0).collect();
        assert_eq!(newest_first, vec![6, 5, 4, 3, 2]);
        assert_eq!(e.batches().len(), 5);
        assert_eq!(e.last_sequence(), Sequence(6));
        for seq in [2, 4, 6] {
            let found = e.find_duplicate(ProducerEpoch(0), Sequence(seq), Sequence(seq));
            assert_eq!(found.map(|b| b.last_offset), Some(i64::from(seq)));
        }
        assert!(
            e.find_duplicate(ProducerEpoch(0), Sequence(1), Sequence(1))
                .is_none()
        );
        let kept: Vec<BatchMetadata> = e.batches().copied().collect();
        let mut restored = ProducerStateManager::new(5);
        restored.restore(ProducerId(1), ProducerEpoch(0), e.last_timestamp, &kept);
        assert_eq!(restored.entry(ProducerId(1)), Some(e));
        let restored_entry = restored.entry(ProducerId(1)).unwrap();
        assert_eq!(restored_entry.last_sequence(), Sequence(6));
        assert_eq!(
            format!("{:?}", restored.entry(ProducerId(1))),
            format!("{:?}", Some(e))
        );
    }

    /// The scan for a duplicate is skipped only when the window's last sequences increase
    /// and the batch ends above the newest: a window that went backwards (replay is not
    /// validated, and an entry without an epoch accepts any sequence), one that wrapped past
    /// `i32::MAX`, and a restored one are still searched.
    #[test]
    fn duplicates_are_found_in_windows_that_do_not_increase() {
        let mut m = ProducerStateManager::new(3);
        for seq in [0, 5, 1] {
            m.update(&header(1, 0, seq, 1), i64::from(seq));
        }
        let e = m.entry(ProducerId(1)).unwrap();
        let dup = e.find_duplicate(ProducerEpoch(0), Sequence(5), Sequence(5));
        assert_eq!(
            dup.map(|b| b.last_offset),
            Some(5),
            "5 is retained behind 1"
        );
        assert!(matches!(
            m.check(&header(1, 0, 5, 1)),
            SequenceCheck::Duplicate(_)
        ));
        // Across the wrap: MAX-1..MAX then 0..1; a retry of MAX-1..MAX ends above 1.
        let mut m = ProducerStateManager::new(5);
        m.update(&header(2, 0, i32::MAX - 1, 2), 0);
        m.update(&header(2, 0, 0, 2), 2);
        let e = m.entry(ProducerId(2)).unwrap();
        let dup = e.find_duplicate(ProducerEpoch(0), Sequence(i32::MAX - 1), Sequence(i32::MAX));
        assert_eq!(dup.map(|b| b.last_offset), Some(1));
        // Restored from a snapshot: 7..9 retained behind 0..2, a retry of 7..9 is found.
        let restored = [(9, 2, 5), (2, 2, 8)].map(|(last, delta, offset)| BatchMetadata {
            last_sequence: Sequence(last),
            offset_delta: delta,
            last_offset: offset,
            timestamp: 0,
        });
        let mut m = ProducerStateManager::new(5);
        m.restore(ProducerId(3), ProducerEpoch(0), 0, &restored);
        let e = m.entry(ProducerId(3)).unwrap();
        let dup = e.find_duplicate(ProducerEpoch(0), Sequence(7), Sequence(9));
        assert_eq!(dup.map(|b| b.last_offset), Some(5));
        // An in-order window skips nothing it should find: each retained batch is a duplicate.
        let mut m = ProducerStateManager::new(5);
        for seq in (0..40).step_by(4) {
            m.update(&header(4, 0, seq, 4), i64::from(seq));
        }
        let e = m.entry(ProducerId(4)).unwrap();
        for seq in (20..40).step_by(4) {
            let dup = e.find_duplicate(ProducerEpoch(0), Sequence(seq), Sequence(seq + 3));
            assert_eq!(dup.map(|b| b.last_offset), Some(i64::from(seq + 3)));
        }
        assert!(
            e.find_duplicate(ProducerEpoch(0), Sequence(40), Sequence(43))
                .is_none()
        );
    }

    /// The rule's in-sequence test `base == expected` (with `expected = last.next()`) is
    /// Kafka's `inSequence(last, base)` (`Sequence::follows`) for every pair of sequences,
    /// across the wrap and for `NONE`.
    #[test]
    fn next_in_sequence_is_kafkas_in_sequence() {
        let edges = [i32::MIN, -2, -1, 0, 1, 2, i32::MAX - 1, i32::MAX];
        for last in edges {
            for base in edges {
                assert_eq!(
                    Sequence(base) == Sequence(last).next(),
                    Sequence(base).follows(Sequence(last)),
                    "last {last}, base {base}"
                );
            }
        }
        proptest::proptest!(|(last: i32, base: i32)| {
            proptest::prop_assert_eq!(
                Sequence(base) == Sequence(last).next(),
                Sequence(base).follows(Sequence(last))
            );
            proptest::prop_assert!(Sequence(last).next().follows(Sequence(last)));
        });
    }

    #[test]
    fn window_view_shows_newest_and_counts_omitted() {
        let mut m = ProducerStateManager::new(10);
        for seq in 0..10 {
            m.update(&header(1, 0, seq, 1), i64::from(seq));
        }
        let seen = m.seen(ProducerId(1)).unwrap();
        let view = *seen.window().unwrap();
        assert_eq!(view.batches().len(), WINDOW_VIEW_MAX);
        assert_eq!(view.omitted(), 2);
        assert_eq!(view.to_string(), "2 older, 2, 3, 4, 5, 6, 7, 8, 9");
    }

    #[test]
    fn first_sequence_of_a_wrapped_batch_is_before_max() {
        let b = BatchMetadata {
            last_sequence: Sequence(1),
            offset_delta: 3,
            last_offset: 10,
            timestamp: 0,
        };
        assert_eq!(b.first_sequence(), Sequence(i32::MAX - 1));
        assert_eq!(b.first_offset(), 7);
        assert_eq!(b.to_string(), format!("{}..1", i32::MAX - 1));
    }

    #[test]
    fn expiry_is_judged_against_the_batch_timestamp() {
        let mut m = ProducerStateManager::new(5);
        m.update(&header(1, 0, 0, 1), 0); // max timestamp 10
        assert!(m.remove_expired(109, 100).is_empty());
        assert_eq!(m.remove_expired(110, 100), vec![ProducerId(1)]);
        assert!(m.is_empty());
    }

    #[test]
    fn memory_follows_the_retained_batches() {
        let mut m = ProducerStateManager::new(5);
        let empty = m.memory_bytes();
        assert!(m.is_empty());
        m.update(&header(1, 0, 0, 1), 0);
        assert!(!m.is_empty());
        assert_eq!(m.len(), 1);
        let one_batch = m.memory_bytes();
        assert!(one_batch > empty, "a producer's entry takes room");
        for seq in 1..5 {
            m.update(&header(1, 0, seq, 1), i64::from(seq));
        }
        let full = m.memory_bytes();
        assert!(
            full >= one_batch + 4 * std::mem::size_of::<BatchMetadata>(),
            "a full window holds five batches: {one_batch} -> {full}"
        );
        m.update(&header(1, 0, 5, 1), 5);
        assert_eq!(m.memory_bytes(), full, "eviction keeps the window's size");
    }

    #[test]
    fn manager_reports_its_window_and_producers_in_id_order() {
        let mut m = ProducerStateManager::new(3);
        assert_eq!(m.window(), 3);
        for pid in [9, 2, 5] {
            m.update(&header(pid, 0, 0, 1), 0);
        }
        assert_eq!(
            m.producer_ids(),
            vec![ProducerId(2), ProducerId(5), ProducerId(9)]
        );
        let ids: Vec<ProducerId> = m.entries().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, m.producer_ids());
    }

    #[test]
    fn a_batch_without_producer_id_leaves_no_state() {
        let mut m = ProducerStateManager::new(5);
        m.update(&header(-1, -1, -1, 1), 0);
        assert!(m.is_empty());
    }

    #[test]
    fn the_window_is_copied_only_when_asked() {
        let mut m = ProducerStateManager::new(5);
        m.update(&header(1, 0, 0, 2), 0);
        let (_, quiet) = m.check_and_see(&header(1, 0, 2, 1), false);
        let quiet = quiet.unwrap();
        assert_eq!(quiet.expected_sequence, Sequence(2));
        assert_eq!(quiet.producer_epoch, ProducerEpoch(0));
        assert!(quiet.window().is_none());
        let (_, recorded) = m.check_and_see(&header(1, 0, 2, 1), true);
        let recorded = recorded.unwrap();
        let window = recorded.window().expect("asked for");
        assert_eq!(window.batches().len(), 1);
        assert_eq!(window.omitted(), 0);
        assert_eq!(window.to_string(), "0..1");
    }

    #[test]
    fn rejections_map_to_kafkas_codes() {
        let stale = SequenceRejection::StaleEpoch {
            current: ProducerEpoch(1),
        };
        assert_eq!(stale.error_code(), ErrorCode::InvalidProducerEpoch);
        let gap = SequenceRejection::OutOfOrder {
            expected: Sequence(3),
        };
        assert_eq!(gap.error_code(), ErrorCode::OutOfOrderSequenceNumber);
        let new_epoch = SequenceRejection::NewEpochNotFromZero {
            current: ProducerEpoch(0),
        };
        assert_eq!(new_epoch.error_code(), ErrorCode::OutOfOrderSequenceNumber);
    }

    #[test]
    fn expiry_is_exact_at_the_boundary() {
        let e = ProducerStateEntry {
            producer_epoch: ProducerEpoch(0),
            start: 0,
            last_sequence: Sequence::NONE,
            increasing: 0,
            batches: Vec::new(),
            last_timestamp: 100,
        };
        assert!(!ProducerStateManager::is_expired(&e, 199, 100));
        assert!(ProducerStateManager::is_expired(&e, 200, 100));
    }

    /// Memory follows the data: one slot for a producer's first batch, exactly the window
    /// from its second, never more.
    #[test]
    fn window_buffer_grows_to_one_batch_then_to_exactly_the_window() {
        let slot = std::mem::size_of::<BatchMetadata>();
        let mut m = ProducerStateManager::new(5);
        m.update(&header(1, 0, 0, 1), 0);
        let heap = |m: &ProducerStateManager| m.entry(ProducerId(1)).unwrap().heap_bytes();
        assert_eq!(heap(&m), slot, "one batch, one slot");
        m.update(&header(1, 0, 1, 1), 1);
        assert_eq!(
            heap(&m),
            5 * slot,
            "the second batch reserves the whole window"
        );
        for seq in 2..12 {
            m.update(&header(1, 0, seq, 1), i64::from(seq));
            assert_eq!(heap(&m), 5 * slot, "never beyond the window");
        }
    }

    #[test]
    fn restoring_more_batches_than_the_window_keeps_the_newest_in_exactly_the_window() {
        let batches: Vec<BatchMetadata> = (0..7)
            .map(|i| BatchMetadata {
                last_sequence: Sequence(i),
                offset_delta: 0,
                last_offset: i64::from(i),
                timestamp: 50,
            })
            .collect();
        let mut m = ProducerStateManager::new(5);
        m.restore(ProducerId(3), ProducerEpoch(2), 50, &batches);
        let e = m.entry(ProducerId(3)).unwrap();
        let kept: Vec<i32> = e.batches().map(|b| b.last_sequence.0).collect();
        assert_eq!(kept, vec![2, 3, 4, 5, 6]);
        assert_eq!(e.producer_epoch, ProducerEpoch(2));
        assert_eq!(e.last_timestamp, 50);
        assert_eq!(e.heap_bytes(), 5 * std::mem::size_of::<BatchMetadata>());
    }

    /// The estimate counts, per hash bucket, the key, the entry and hashbrown's control byte,
    /// plus each producer's window buffer.
    #[test]
    fn memory_estimate_counts_every_bucket_and_every_window_slot() {
        let mut m = ProducerStateManager::new(5);
        for pid in 0..100 {
            m.update(&header(pid, 0, 0, 1), 0);
        }
        let bucket = std::mem::size_of::<(ProducerId, ProducerStateEntry)>() + 1;
        let expected = std::mem::size_of::<ProducerStateManager>()
            + m.producers.capacity() * bucket
            + 100 * std::mem::size_of::<BatchMetadata>();
        assert_eq!(m.memory_bytes(), expected);
    }
}
