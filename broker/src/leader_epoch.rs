//! The leader-epoch cache: which leader epoch wrote which range of a partition's log.
//!
//! Every batch a leader appends carries its `partitionLeaderEpoch` (KIP-101). A replica keeps,
//! per epoch, the offset of the first batch written in it: the *leader-epoch cache*, Kafka's
//! `LeaderEpochFileCache` (storage/src/main/java/org/apache/kafka/storage/internals/epoch/).
//! With it a leader can answer a follower's "my last batch is of epoch `e` and my log ends at
//! `o`: do we agree?" (KIP-279, KIP-320): the end of epoch `e` on the leader is the start of
//! the next epoch it knows, or its log end if `e` is its latest.
//!
//! ```text
//! cache            | end_offset_for(e, log end 12)
//! epoch 0 from 0   | e = 0 -> (0, 5)   the start of epoch 2, the next known
//! epoch 2 from 5   | e = 1 -> (0, 5)   the largest epoch <= 1 is 0; it ends at 5
//! epoch 3 from 9   | e = 3 -> (3, 12)  the latest epoch ends at the log end
//!                  | e = 4 -> (-1, -1) larger than any known epoch: undefined
//! ```
//!
//! Entries are monotonic in both epoch and start offset; assigning an entry removes the
//! entries that would break that (`maybeTruncateNonMonotonicEntries`). Truncating the log
//! truncates the cache from the end (`truncateFromEnd`), moving the log start truncates it
//! from the start (`truncateFromStart`).
//!
//! # Differences from Kafka
//!
//! * There is no `leader-epoch-checkpoint` file: the cache lives in memory and is rebuilt from
//!   the batches' `partitionLeaderEpoch` when the log is recovered (as Kafka's `LogLoader`
//!   does when the checkpoint is missing). An epoch in which no batch was written is
//!   forgotten by a restart; its start offset equals the next epoch's, so no answer of
//!   `end_offset_for` about an epoch that holds data changes, and a leader re-assigns its
//!   current epoch when it becomes leader again.

use idempo_protocol::{EpochEndOffset, NO_LEADER_EPOCH};

/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The answer of [`LeaderEpochCache::end_offset_for`] when nothing is known (Kafka's
/// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`).
pub const UNDEFINED_EPOCH_END: EpochEndOffset = EpochEndOffset {
    epoch: NO_LEADER_EPOCH,
    end_offset: UNDEFINED_EPOCH_OFFSET,
};

/// One cache entry: `epoch` started writing at `start_offset` (Kafka's `EpochEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The offset of its first batch.
    pub start_offset: i64,
}

/// Leader epoch -> start offset, ascending in both (Kafka's `LeaderEpochFileCache`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache.
    pub fn new() -> LeaderEpochCache {
        LeaderEpochCache::default()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch (Kafka's `latestEpoch`).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`). Nothing changes when
    /// the newest entry already has this epoch at an offset no higher; otherwise entries with
    /// an epoch or start offset at or above the new one are removed first, keeping both
    /// monotonic. Negative epochs (batches written without a leader epoch) are ignored.
    /// Returns whether the cache changed.
    #[inline]
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(latest) = self.entries.last()
            && latest.epoch == epoch
            && latest.start_offset <= start_offset
        {
            return false;
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The largest epoch at most `requested_epoch` and where it ends: the start offset of the
    /// first larger epoch, or `log_end_offset` when `requested_epoch` is the latest (Kafka's
    /// `endOffsetFor`, exactly). A requested epoch below every entry answers itself with the
    /// first entry's start offset; [`NO_LEADER_EPOCH`] or an epoch above every entry answers
    /// [`UNDEFINED_EPOCH_END`].
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> EpochEndOffset {
        if requested_epoch == NO_LEADER_EPOCH {
            return UNDEFINED_EPOCH_END;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return EpochEndOffset {
                epoch: requested_epoch,
                end_offset: log_end_offset,
            };
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested_epoch);
        let Some(higher_entry) = self.entries.get(higher) else {
            return UNDEFINED_EPOCH_END;
        };
        let epoch = match higher.checked_sub(1) {
            Some(floor) => self.entries[floor].epoch,
            None => requested_epoch,
        };
        EpochEndOffset {
            epoch,
            end_offset: higher_entry.start_offset,
        }
    }

    /// Removes every entry starting at or after `end_offset` (Kafka's `truncateFromEnd`), for
    /// a log truncated to end there.
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        if end_offset < 0 {
            return;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
    }

    /// Removes the entries starting at or before `start_offset` and keeps the last of them
    /// with its start moved to `start_offset` (Kafka's `truncateFromStart`), for a log whose
    /// start moved there.
    pub fn truncate_from_start(&mut self, start_offset: i64) {
        let removed = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if removed == 0 {
            return;
        }
        let kept = EpochEntry {
            epoch: self.entries[removed - 1].epoch,
            start_offset,
        };
        self.entries.drain(..removed);
        self.entries.insert(0, kept);
    }

    /// The epoch that wrote `offset`, if the cache covers it (Kafka's `epochForOffset`).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|e| e.start_offset <= offset);
        after.checked_sub(1).map(|i| self.entries[i].epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::new();
        for (epoch, start) in entries {
            assert!(c.assign(*epoch, *start));
        }
        c
    }

    fn end(epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset { epoch, end_offset }
    }

    #[test]
    fn end_offset_of_an_epoch_is_the_start_of_the_next_known_one() {
        let c = cache(&[(0, 0), (2, 5), (3, 9)]);
        assert_eq!(c.end_offset_for(0, 12), end(0, 5));
        assert_eq!(
            c.end_offset_for(1, 12),
            end(0, 5),
            "the floor epoch answers"
        );
        assert_eq!(c.end_offset_for(2, 12), end(2, 9));
        assert_eq!(
            c.end_offset_for(3, 12),
            end(3, 12),
            "the latest ends at the log end"
        );
        assert_eq!(c.end_offset_for(4, 12), UNDEFINED_EPOCH_END);
        assert_eq!(c.end_offset_for(NO_LEADER_EPOCH, 12), UNDEFINED_EPOCH_END);
    }

    #[test]
    fn an_epoch_below_every_entry_answers_itself_with_the_first_start() {
        let c = cache(&[(3, 7), (5, 9)]);
        assert_eq!(c.end_offset_for(1, 12), end(1, 7));
    }

    #[test]
    fn assigning_the_same_epoch_again_changes_nothing() {
        let mut c = cache(&[(1, 0)]);
        assert!(!c.assign(1, 4));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 1,
                start_offset: 0
            }]
        );
    }

    #[test]
    fn assigning_removes_entries_that_break_monotonicity() {
        let mut c = cache(&[(1, 0), (2, 5), (3, 8)]);
        assert!(c.assign(4, 6), "a start below epoch 3's removes epoch 3");
        assert_eq!(
            c.entries().iter().map(|e| e.epoch).collect::<Vec<_>>(),
            [1, 2, 4]
        );
        assert!(
            c.assign(2, 3),
            "a lower epoch removes every entry at or above it"
        );
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 3
                }
            ]
        );
    }

    #[test]
    fn truncation_from_end_drops_epochs_starting_at_or_after_the_offset() {
        let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
        c.truncate_from_end(9);
        assert_eq!(c.latest_epoch(), Some(2));
        c.truncate_from_end(6);
        assert_eq!(c.latest_epoch(), Some(2), "epoch 2 still holds offset 5");
    }

    #[test]
    fn truncation_from_start_moves_the_first_kept_epoch_to_the_new_start() {
        let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
        c.truncate_from_start(6);
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 2,
                    start_offset: 6
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 9
                }
            ]
        );
        assert_eq!(c.epoch_for_offset(8), Some(2));
        assert_eq!(c.epoch_for_offset(5), None);
    }
}
