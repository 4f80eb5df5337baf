//! An entry of the zoo: an upstream bug, its historical and fixed settings, and the schedule
//! that tells them apart.

use crate::config::SimConfig;
use crate::engine::{RunReport, SimError};
use crate::flags::{self, FlagError};
use crate::plan::{self, Fault, ReplayError};
use crate::shrink::run_scripted;
use std::fmt;

/// One documented bug.
#[derive(Debug)]
pub struct Entry {
    /// The id `zoo run` takes: the upstream id where there is one.
    pub id: &'static str,
    /// The upstream reference: JIRA, KIP, GitHub issue or PR.
    pub reference: &'static str,
    /// The component that had the bug: `broker` or `client`, and the setting's name.
    pub component: &'static str,
    /// One sentence: what went wrong.
    pub summary: &'static str,
    /// The paragraph on the cause and the fix.
    pub story: &'static str,
    /// The run flags both runs share (`flag`, `value`), seed and fault rates included.
    pub base: &'static [(&'static str, &'static str)],
    /// The flags that switch the historical behaviour on.
    pub bug: &'static [(&'static str, &'static str)],
    /// The flags of the fixed behaviour.
    pub fix: &'static [(&'static str, &'static str)],
    /// The fault schedule: replay-file fault lines, found by search and shrunk.
    pub faults: &'static str,
    /// The checker's name for the anomaly the bug must show (an invariant or a limit of
    /// [`crate::checker::CheckReport`]).
    pub anomaly: &'static str,
}

/// Why an entry cannot run: a flag or a fault line of its own is wrong (a bug of the zoo).
#[derive(Debug)]
pub enum EntryError {
    /// A flag of the entry is refused.
    Flag(FlagError),
    /// A fault line of the entry is refused.
    Faults(ReplayError),
    /// The simulation refused the settings.
    Sim(SimError),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Flag(e) => write!(f, "entry flag: {e}"),
            EntryError::Faults(e) => write!(f, "entry faults: {e}"),
            EntryError::Sim(e) => write!(f, "entry settings: {e}"),
        }
    }
}

impl std::error::Error for EntryError {}

/// One of the two runs of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The historical behaviour.
    Bug,
    /// The fixed behaviour.
    Fix,
}

/// Both runs of an entry under its schedule.
#[derive(Debug)]
pub struct Outcome {
    /// The historical run's config.
    pub bug_config: SimConfig,
    /// Its report.
    pub bug: RunReport,
    /// The fixed run's config.
    pub fix_config: SimConfig,
    /// Its report.
    pub fix: RunReport,
    /// How many the checker counted of the entry's anomaly in the historical run.
    pub anomaly_count: u64,
}

impl Outcome {
    /// The entry reproduces: its anomaly with the bug, a clean run with the fix.
    pub fn reproduces(&self) -> bool {
        self.anomaly_count > 0 && self.fix.check.passed()
    }
}

/// The count the checker gives `name` (an invariant or a limit), 0 when it has no such name.
pub fn named_count(report: &RunReport, name: &str) -> u64 {
    report
        .check
        .invariants()
        .into_iter()
        .chain(report.check.limits())
        .filter(|(n, _)| *n == name)
        .map(|(_, count)| count)
        .sum()
}

impl Entry {
    /// The config of one side: the shared flags, then that side's.
    pub fn config(&self, side: Side) -> Result<SimConfig, EntryError> {
        let mut config = SimConfig::default();
        let own = match side {
            Side::Bug => self.bug,
            Side::Fix => self.fix,
        };
        for (name, value) in self.base.iter().chain(own) {
            flags::set(&mut config, name, value).map_err(EntryError::Flag)?;
        }
        Ok(config)
    }

    /// The entry's fault schedule.
    pub fn schedule(&self) -> Result<Vec<Fault>, EntryError> {
        let text = format!("flags\n{}", self.faults);
        plan::parse_replay(&text)
            .map(|file| file.faults)
            .map_err(EntryError::Faults)
    }

    /// Runs both sides under the entry's schedule.
    pub fn run(&self) -> Result<Outcome, EntryError> {
        self.run_with(&self.schedule()?)
    }

    /// Runs both sides under `faults`.
    pub fn run_with(&self, faults: &[Fault]) -> Result<Outcome, EntryError> {
        let bug_config = self.config(Side::Bug)?;
        let fix_config = self.config(Side::Fix)?;
        let bug = run_scripted(&bug_config, faults).map_err(EntryError::Sim)?;
        let fix = run_scripted(&fix_config, faults).map_err(EntryError::Sim)?;
        let anomaly_count = named_count(&bug, self.anomaly);
        Ok(Outcome {
            bug_config,
            bug,
            fix_config,
            fix,
            anomaly_count,
        })
    }

    /// The replay file of one side: `idempo-sim replay FILE` runs it.
    pub fn replay_file(&self, side: Side) -> Result<String, EntryError> {
        Ok(plan::replay_file(&self.config(side)?, &self.schedule()?))
    }
}
