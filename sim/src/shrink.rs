//! Shrinking a failing run: reduce its fault schedule to a small one that still fails.
//!
//! A failing run's faults (every lost request, lost ack, duplicate, flipped bit, spike, crash
//! and restart that happened, keyed by logical event) are replayed as a scripted
//! [`FaultPlan`]; then delta debugging (Zeller's *ddmin*) removes chunks of them for as long
//! as the run still fails. The result is 1-minimal within the run budget: removing any single
//! remaining fault makes the run pass. It is written as a replay file (see
//! [`crate::plan`]), which `idempo-sim replay FILE` runs again, and which still means the same
//! faults after the code changes.

use crate::config::SimConfig;
use crate::engine::{RunReport, SimError, Simulation};
use crate::plan::{Fault, FaultPlan};

/// What shrinking found.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing fault list found.
    pub faults: Vec<Fault>,
    /// Faults before shrinking.
    pub original: usize,
    /// Runs spent.
    pub runs: usize,
    /// The report of the smallest failing run.
    pub report: RunReport,
}

/// Runs `config` with exactly `faults`.
pub fn run_scripted(config: &SimConfig, faults: &[Fault]) -> Result<RunReport, SimError> {
    let plan = FaultPlan::scripted(config, faults);
    Ok(Simulation::with_plan(config.clone(), plan, None)?.run().0)
}

/// Shrinks `faults` (which make `config` fail) with at most `max_runs` runs. `None` when the
/// scripted replay of `faults` does not fail (it always should: decisions are keyed by
/// logical event).
pub fn shrink(
    config: &SimConfig,
    faults: Vec<Fault>,
    max_runs: usize,
) -> Result<Option<Shrunk>, SimError> {
    let original = faults.len();
    let mut runs = 1;
    let mut best = run_scripted(config, &faults)?;
    if best.check.passed() {
        return Ok(None);
    }
    let (mut current, tries) = ddmin(faults, max_runs.saturating_sub(runs), |candidate| {
        let report = run_scripted(config, candidate)?;
        let fails = !report.check.passed();
        if fails {
            best = report;
        }
        Ok(fails)
    })?;
    runs += tries;
    if current.len() == 1 && runs < max_runs {
        runs += 1;
        let report = run_scripted(config, &[])?;
        if !report.check.passed() {
            current.clear();
            best = report;
        }
    }
    Ok(Some(Shrunk {
        faults: current,
        original,
        runs,
        report: best,
    }))
}

/// Zeller's ddmin: removes chunks of `faults` (halves, then quarters, ...) while `keeps` says
/// the smaller list still shows what the whole list showed, trying at most `max_tries`
/// candidates. Returns the smallest list found and the candidates tried. `keeps` sees every
/// candidate once, in order, so it can remember the run of the last one it kept.
pub fn ddmin<E>(
    mut current: Vec<Fault>,
    max_tries: usize,
    mut keeps: impl FnMut(&[Fault]) -> Result<bool, E>,
) -> Result<(Vec<Fault>, usize), E> {
    let mut tries = 0;
    let mut n = 2usize;
    while current.len() >= 2 && tries < max_tries {
        let chunk = current.len().div_ceil(n);
        let mut reduced = false;
        for start in (0..current.len()).step_by(chunk) {
            if tries >= max_tries {
                break;
            }
            let candidate: Vec<Fault> = current
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < start || *i >= start + chunk)
                .map(|(_, f)| *f)
                .collect();
            tries += 1;
            if keeps(&candidate)? {
                current = candidate;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    Ok((current, tries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_keeps_the_run_failing_and_removes_faults() {
        let config = SimConfig {
            idempotence: false,
            producers: 1,
            partitions: 1,
            records: 100,
            batch_records: 5,
            ack_loss: 0.3,
            ..SimConfig::default()
        };
        let (report, _) = Simulation::new(config.clone(), None).unwrap().run();
        assert!(
            !report.check.passed(),
            "idempotence off with ack loss duplicates"
        );
        let shrunk = shrink(&config, report.faults_happened.clone(), 300)
            .unwrap()
            .expect("replay fails too");
        assert!(shrunk.faults.len() < shrunk.original);
        assert!(
            !shrunk.faults.is_empty(),
            "a duplicate needs at least one lost ack"
        );
        assert!(
            !run_scripted(&config, &shrunk.faults)
                .unwrap()
                .check
                .passed()
        );
    }
}
