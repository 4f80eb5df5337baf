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
    pub fn insert_in_sequence_order(
        &mut self,
        batches: &BatchTable,
        handle: u64,
    ) {
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
