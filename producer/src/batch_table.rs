//! The producer's table of batches without an outcome, by delivery handle.
//!
//! Handles are handed out by `send()` one after another, starting at 0, and a batch usually
//! gets its outcome a few handles after it was sent. So the table is a window of slots from
//! the oldest batch still held to the newest one, indexed by `handle - base`: a lookup is an
//! index, not a tree search, and a batch stays where it is until it leaves. A slot whose batch
//! left is empty until every older slot is empty too, then the window's front moves past it.
//!
//! ```text
//! handles  7  8  9  10 11      base = 7
//! slots    B  -  B  B  -       8 and 11 have their outcome; 7 holds the window open
//! ```
//!
//! The window is as long as the handles between the oldest batch held and the newest, so a
//! batch that waits long (a retry behind a leader that is not known) keeps the empty slots
//! after it. Delivery timeouts bound how long that lasts.

use crate::batch::ProducerBatch;
use std::collections::VecDeque;

/// Every batch without an outcome (plus reported batches still on the wire), by handle,
/// iterated in handle order.
#[derive(Debug, Default)]
pub(crate) struct BatchTable {
    /// Handle of `slots[0]`.
    base: u64,
    /// One slot per handle from `base` on; `None` once the batch left (or was never held).
    slots: VecDeque<Option<ProducerBatch>>,
    /// Batches held.
    len: usize,
}

impl BatchTable {
    /// Holds `batch` under `handle`, which is newer than every handle held or held before.
    pub fn insert(&mut self, handle: u64, batch: ProducerBatch) {
        if self.slots.is_empty() {
            self.base = handle;
        }
        let index = self.index(handle);
        assert!(
            index.is_some_and(|i| i >= self.slots.len()),
            "handles are held in the order send() handed them out"
        );
        let index = index.unwrap_or(usize::MAX);
        while self.slots.len() < index {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(batch));
        self.len += 1;
    }

    /// The batch held under `handle`.
    pub fn get(&self, handle: &u64) -> Option<&ProducerBatch> {
        self.slots.get(self.index(*handle)?)?.as_ref()
    }

    /// The batch held under `handle`, to change it.
    pub fn get_mut(&mut self, handle: &u64) -> Option<&mut ProducerBatch> {
        let index = self.index(*handle)?;
        self.slots.get_mut(index)?.as_mut()
    }

    /// Takes the batch held under `handle` out of the table.
    pub fn remove(&mut self, handle: &u64) -> Option<ProducerBatch> {
        let index = self.index(*handle)?;
        let batch = self.slots.get_mut(index)?.take()?;
        self.len -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(batch)
    }

    /// True when no batch is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batches held, in handle order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn values(&self) -> impl Iterator<Item = &ProducerBatch> {
        self.slots.iter().flatten()
    }

    /// Takes every batch out, in handle order.
    pub fn into_values(self) -> impl Iterator<Item = ProducerBatch> {
        self.slots.into_iter().flatten()
    }

    /// The slot index of `handle`, if it is not older than the window.
    fn index(&self, handle: u64) -> Option<usize> {
        usize::try_from(handle.checked_sub(self.base)?).ok()
    }
}

impl std::ops::Index<&u64> for BatchTable {
    type Output = ProducerBatch;

    fn index(&self, handle: &u64) -> &ProducerBatch {
        self.get(handle)
            .expect("the caller looked up a handle the table holds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::DeliveryHandle;
    use idempo_protocol::Record;

    fn batch(handle: u64) -> ProducerBatch {
        let records = vec![Record::with_value(0, "v")];
        ProducerBatch::new(DeliveryHandle(handle), 0, records, 0, 1_000)
    }

    #[test]
    fn batches_leave_in_any_order_and_the_window_follows_the_oldest() {
        let mut t = BatchTable::default();
        for h in [3, 4, 6] {
            t.insert(h, batch(h));
        }
        assert!(t.get(&5).is_none(), "a handle never held is empty");
        assert!(
            t.get(&2).is_none(),
            "a handle older than the window is empty"
        );
        assert_eq!(t.remove(&4).map(|b| b.handle), Some(DeliveryHandle(4)));
        assert!(t.remove(&4).is_none(), "a batch leaves once");
        assert_eq!(t.remove(&3).map(|b| b.handle), Some(DeliveryHandle(3)));
        assert_eq!((t.base, t.slots.len()), (6, 1), "the window starts at 6");
        let handles: Vec<u64> = t.values().map(|b| b.handle.0).collect();
        assert_eq!(handles, vec![6]);
        assert_eq!(t.remove(&6).map(|b| b.handle), Some(DeliveryHandle(6)));
        assert!(t.is_empty());
        t.insert(9, batch(9));
        assert_eq!(
            t[&9].handle,
            DeliveryHandle(9),
            "an empty table starts anew"
        );
    }
}
