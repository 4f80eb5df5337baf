//! `run --bench`: how fast the simulator runs, against a yardstick measured in the same
//! process.
//!
//! The figure that matters is **simulated batch sends per second** (first tries and
//! retries, one core, with the faults and the checker on). Wall-clock rates depend on the
//! machine and on whatever else runs on it, so `--bench` also times a loop that every
//! discrete-event simulator does at its core, a binary heap's pop and push over
//! [`HEAP_ENTRIES`] entries, and prints the ratio: a figure that moves with the simulator's
//! code, not with the machine.

use crate::engine::RunReport;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Entries in the yardstick's heap.
pub const HEAP_ENTRIES: usize = 100_000;

/// Pop+push pairs per timed round of the yardstick.
const HEAP_OPS: u64 = 2_000_000;

/// Rounds of the yardstick; the fastest counts (the least disturbed by other work).
const HEAP_ROUNDS: u32 = 3;

/// Pop+push pairs per second on a binary heap of [`HEAP_ENTRIES`] entries shaped like the
/// simulator's queue entries (time, insertion number, slot), each push a little later than
/// the popped time, as scheduled events are.
pub fn heap_ops_per_sec() -> f64 {
    let mut best = f64::MAX;
    for _ in 0..HEAP_ROUNDS {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut heap: BinaryHeap<Reverse<(u64, u64, usize)>> = (0..HEAP_ENTRIES)
            .map(|i| Reverse((next() % 10_000, i as u64, i)))
            .collect();
        let mut order = HEAP_ENTRIES as u64;
        let started = Instant::now();
        for _ in 0..HEAP_OPS {
            let Some(Reverse((at, _, slot))) = heap.pop() else {
                unreachable!("the heap never empties: every pop is followed by a push")
            };
            order += 1;
            heap.push(Reverse((at + next() % 1_000, order, slot)));
        }
        black_box(&heap);
        best = best.min(started.elapsed().as_secs_f64());
    }
    HEAP_OPS as f64 / best.max(1e-9)
}

/// The `--bench` figures of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Batches put on the network (first tries and retries).
    pub batch_sends: u64,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// The yardstick: heap pop+push pairs per second.
    pub heap_ops_per_sec: f64,
}

impl Figures {
    /// Times the yardstick now, for a run that took `wall`.
    pub fn measure(report: &RunReport, wall: Duration) -> Figures {
        Figures {
            batch_sends: report.batch_sends,
            wall,
            heap_ops_per_sec: heap_ops_per_sec(),
        }
    }

    /// Simulated batch sends per second.
    pub fn batch_sends_per_sec(&self) -> f64 {
        self.batch_sends as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Batch sends per second over heap pop+push pairs per second.
    pub fn ratio(&self) -> f64 {
        self.batch_sends_per_sec() / self.heap_ops_per_sec
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bench: {} batch sends (first tries + retries): {:.3} M/s; heap baseline ({HEAP_ENTRIES} entries): {:.3} M pop+push/s; ratio {:.3}",
            self.batch_sends,
            self.batch_sends_per_sec() / 1e6,
            self.heap_ops_per_sec / 1e6,
            self.ratio()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_batch_sends_per_second_over_heap_operations_per_second() {
        let figures = Figures {
            batch_sends: 3_000_000,
            wall: Duration::from_secs(2),
            heap_ops_per_sec: 6_000_000.0,
        };
        assert_eq!(figures.batch_sends_per_sec(), 1_500_000.0);
        assert_eq!(figures.ratio(), 0.25);
        assert!(figures.to_string().contains("1.500 M/s"));
        assert!(figures.to_string().ends_with("ratio 0.250"));
    }
}
