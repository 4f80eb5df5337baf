//! The per-partition queues of batches waiting to be drained into a request (the part of
//! Kafka's `RecordAccumulator` that matters for ordering, docs/KAFKA-RULES.md §2.5).
//!
//! New batches join the back of their partition's queue. A batch that must be retried goes
//! back *in sequence order*, ahead of every batch that has no sequence yet (Kafka's
//! `insertInSequenceOrder`). So if the answers for sequences 5 and 0 come back in that order,
//! both are still re-sent as 0 then 5. Without idempotence Kafka simply puts a retry at the
//! front (`addFirst`), which is how a plain producer with several requests in flight
//! reorders records.
//!
//! The partitions are kept in a [`PartitionTable`], a vector sorted by partition: a producer
//! writes to a handful of partitions, and the drain walks them in order many times per
//! request, so a binary search over a few entries beats a tree.
//!
//! The queues are not bounded here: one `send()` is one batch, and how many batches a caller
//! may have outstanding (Kafka's `buffer.memory`) is the caller's concern.

use crate::batch_table::BatchTable;
use crate::sequencer::PartitionEntry;
use std::collections::VecDeque;

/// One partition: its queue of batches (by handle) and its sequence state.
#[derive(Debug)]
pub(crate) struct Partition {
    /// Batches waiting to be drained, front first.
    pub queue: VecDeque<u64>,
    /// Sequence state.
    pub entry: PartitionEntry,
}

impl Partition {
    /// An empty partition.
    pub fn new() -> Partition {
        Partition {
            queue: VecDeque::new(),
            entry: PartitionEntry::new(),
        }
    }

    /// Kafka's `insertInSequenceOrder`: before the first queued batch that has no sequence or
    /// comes later in sequence order.
    pub fn insert_in_sequence_order(&mut self, batches: &BatchTable, handle: u64) {
        let order = batches.get(&handle).map_or(u64::MAX, |b| b.drain_order);
        let position = self
            .queue
            .iter()
            .position(|h| {
                batches
                    .get(h)
                    .is_none_or(|b| b.drain_order == 0 || b.drain_order > order)
            })
            .unwrap_or(self.queue.len());
        self.queue.insert(position, handle);
    }

    /// Removes a batch from the queue, wherever it is.
    pub fn remove_queued(&mut self, handle: u64) {
        if let Some(position) = self.queue.iter().position(|&h| h == handle) {
            self.queue.remove(position);
        }
    }
}

/// Every partition the producer has batches or sequence state for, in partition order.
#[derive(Debug, Default)]
pub(crate) struct PartitionTable {
    /// `(partition, state)`, sorted by partition, each partition once.
    entries: Vec<(i32, Partition)>,
}

impl PartitionTable {
    /// The partition's state, if known.
    pub fn get(&self, partition: &i32) -> Option<&Partition> {
        let index = self.position(*partition).ok()?;
        Some(&self.entries[index].1)
    }

    /// The partition's state, if known, to change it.
    pub fn get_mut(&mut self, partition: &i32) -> Option<&mut Partition> {
        let index = self.position(*partition).ok()?;
        Some(&mut self.entries[index].1)
    }

    /// The partition's state, created empty if it was not known.
    pub fn get_or_insert(&mut self, partition: i32) -> &mut Partition {
        let index = match self.position(partition) {
            Ok(index) => index,
            Err(index) => {
                self.entries.insert(index, (partition, Partition::new()));
                index
            }
        };
        &mut self.entries[index].1
    }

    /// The lowest known partition at or after `partition`.
    pub fn first_at_or_after(&self, partition: i32) -> Option<i32> {
        let index = self.entries.partition_point(|(p, _)| *p < partition);
        self.entries.get(index).map(|(p, _)| *p)
    }

    /// Partitions known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The lowest known partition.
    pub fn first(&self) -> Option<i32> {
        self.entries.first().map(|(p, _)| *p)
    }

    /// Every partition's state, in partition order.
    pub fn values(&self) -> impl Iterator<Item = &Partition> {
        self.entries.iter().map(|(_, part)| part)
    }

    /// Every partition and its state, in partition order.
    pub fn iter(&self) -> impl Iterator<Item = (&i32, &Partition)> {
        self.entries.iter().map(|(p, part)| (p, part))
    }

    /// Every partition's state, in partition order, to change it.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Partition> {
        self.entries.iter_mut().map(|(_, part)| part)
    }

    /// Every partition and its state, in partition order, to change the state.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&i32, &mut Partition)> {
        self.entries.iter_mut().map(|(p, part)| (&*p, part))
    }

    fn position(&self, partition: i32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&partition, |(p, _)| *p)
    }
}

impl std::ops::Index<&i32> for PartitionTable {
    type Output = Partition;

    fn index(&self, partition: &i32) -> &Partition {
        self.get(partition)
            .expect("the caller looked up a partition the table knows")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_kept_in_order_and_found_from_any_point() {
        let mut t = PartitionTable::default();
        for p in [5, 1, 3, 1] {
            t.get_or_insert(p);
        }
        let known: Vec<i32> = t.iter_mut().map(|(p, _)| *p).collect();
        assert_eq!(known, vec![1, 3, 5], "sorted, each once");
        assert_eq!(t.first(), Some(1));
        assert_eq!(t.first_at_or_after(2), Some(3));
        assert_eq!(t.first_at_or_after(5), Some(5));
        assert_eq!(t.first_at_or_after(6), None, "nothing at or after 6");
        assert!(t.get(&2).is_none());
        assert!(t.get_mut(&3).is_some());
    }
}
