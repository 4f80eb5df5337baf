//! Delivery deadlines of the batches not yet reported, soonest first.
//!
//! Every batch's deadline is its `send()` time plus `delivery_timeout_ms`, and the caller's
//! time does not go backwards, so deadlines almost always arrive in order: a sorted
//! `VecDeque` takes a new one at its back, gives the soonest at its front, and a batch that
//! completes is found by binary search. Ties are broken by handle, as a sorted set of
//! `(deadline_ms, handle)` would.

use std::collections::VecDeque;

/// `(deadline_ms, handle)` of every batch not yet reported, sorted, each once.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    entries: VecDeque<(u64, u64)>,
}

impl Deadlines {
    /// Adds a batch's deadline.
    pub fn insert(&mut self, deadline: (u64, u64)) {
        match self.entries.back() {
            Some(last) if *last >= deadline => {
                if let Err(index) = self.entries.binary_search(&deadline) {
                    self.entries.insert(index, deadline);
                }
            }
            _ => self.entries.push_back(deadline),
        }
    }

    /// The soonest deadline.
    pub fn first(&self) -> Option<&(u64, u64)> {
        self.entries.front()
    }

    /// Takes the soonest deadline out.
    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        self.entries.pop_front()
    }

    /// Takes a batch's deadline out; true if it was there.
    pub fn remove(&mut self, deadline: &(u64, u64)) -> bool {
        // Batches mostly complete in the order they were sent: try the soonest first.
        if self.entries.front() == Some(deadline) {
            self.entries.pop_front();
            return true;
        }
        match self.entries.binary_search(deadline) {
            Ok(index) => {
                self.entries.remove(index);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes every deadline out.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_out_soonest_first_whatever_the_insertion_order() {
        let mut d = Deadlines::default();
        for entry in [(10, 1), (10, 2), (5, 3), (20, 4), (10, 0), (10, 2)] {
            d.insert(entry);
        }
        assert!(d.remove(&(20, 4)));
        assert!(!d.remove(&(20, 4)), "removed once");
        let mut order = Vec::new();
        while let Some(entry) = d.pop_first() {
            order.push(entry);
        }
        assert_eq!(
            order,
            vec![(5, 3), (10, 0), (10, 1), (10, 2)],
            "sorted, each once"
        );
        assert!(d.first().is_none());
    }
}
