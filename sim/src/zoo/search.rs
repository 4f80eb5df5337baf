//! Finding an entry's schedule: seed search under the entry's fault rates, then shrinking.
//!
//! A seed qualifies when the historical run fails with the entry's anomaly and the fixed run
//! passes under the very faults that happened in the historical run. Its faults are then
//! shrunk by delta debugging ([`crate::shrink`]) with the same two-sided test, so the result
//! is a schedule under which removing any one fault loses the bug or dirties the fix.

use super::entry::{Entry, EntryError, Side, named_count};
use crate::engine::Simulation;
use crate::plan::Fault;

/// A schedule found for an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The seed whose faults were shrunk.
    pub seed: u64,
    /// Faults of the seed's historical run.
    pub original: usize,
    /// The shrunk schedule.
    pub faults: Vec<Fault>,
}

/// Whether `faults`, with latencies drawn from `seed`, show the entry: its anomaly with the
/// bug, a clean run with the fix.
fn shows(entry: &Entry, seed: u64, faults: &[Fault]) -> Result<bool, EntryError> {
    let mut bug = entry.config(Side::Bug)?;
    let mut fix = entry.config(Side::Fix)?;
    bug.seed = seed;
    fix.seed = seed;
    let b = crate::shrink::run_scripted(&bug, faults).map_err(EntryError::Sim)?;
    if named_count(&b, entry.anomaly) == 0 {
        return Ok(false);
    }
    let f = crate::shrink::run_scripted(&fix, faults).map_err(EntryError::Sim)?;
    Ok(f.check.passed())
}

/// Tries `seeds` (from the entry's own seed on) and shrinks the first that shows the entry,
/// spending at most `max_runs` runs on shrinking.
pub fn find(entry: &Entry, seeds: u64, max_runs: usize) -> Result<Option<Found>, EntryError> {
    let first = entry.config(Side::Bug)?.seed;
    for seed in first..first.saturating_add(seeds) {
        let mut bug = entry.config(Side::Bug)?;
        bug.seed = seed;
        let (report, _) = Simulation::new(bug, None).map_err(EntryError::Sim)?.run();
        let faults = report.faults_happened;
        if !shows(entry, seed, &faults)? {
            continue;
        }
        let original = faults.len();
        let faults = ddmin(entry, seed, faults, max_runs)?;
        return Ok(Some(Found {
            seed,
            original,
            faults,
        }));
    }
    Ok(None)
}

/// Removes chunks of `faults` while the rest still shows the entry (the shrinker's ddmin).
fn ddmin(
    entry: &Entry,
    seed: u64,
    current: Vec<Fault>,
    max_runs: usize,
) -> Result<Vec<Fault>, EntryError> {
    let (faults, _) =
        crate::shrink::ddmin(current, max_runs, |candidate| shows(entry, seed, candidate))?;
    Ok(faults)
}
