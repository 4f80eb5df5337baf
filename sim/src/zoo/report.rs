//! The text of `zoo list`, `zoo run` and `zoo check`.

use super::entry::{Entry, EntryError, Outcome, Side, named_count};
use crate::engine::RunReport;
use crate::engine::Simulation;
use std::fmt::Write;

/// One line per entry: id, upstream reference, component, one sentence.
pub fn list(entries: &[&Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(
            s,
            "{:<20} {:<42} {:<30} {}",
            e.id, e.reference, e.component, e.summary
        );
    }
    s
}

/// The verdict word of a run.
fn verdict(r: &RunReport) -> &'static str {
    if r.check.passed() { "PASS" } else { "FAIL" }
}

/// The rows of the side-by-side table: a label, then the bug's and the fix's values.
fn rows(entry: &Entry, o: &Outcome) -> Vec<(String, String, String)> {
    let both =
        |label: &str, f: &dyn Fn(&RunReport) -> String| (label.to_string(), f(&o.bug), f(&o.fix));
    let mut rows = vec![
        both("records in the log", &|r| r.check.log_records.to_string()),
        both("retries", &|r| r.retries.to_string()),
        both("epoch bumps", &|r| r.epoch_bumps.to_string()),
        both("duplicates dropped by broker", &|r| {
            r.broker.duplicates_dropped.to_string()
        }),
        both("gaps rejected (OOOS)", &|r| {
            r.broker.gaps_rejected.to_string()
        }),
    ];
    if o.bug.check.producer_state.is_some() {
        rows.push(both("producer ids held at most", &|r| {
            r.broker.producer_ids_peak.to_string()
        }));
        rows.push(both("producer state bytes at most", &|r| {
            r.broker.producer_state_bytes_peak.to_string()
        }));
        rows.push(both("producer ids evicted by the bound", &|r| {
            r.broker.producer_ids_evicted.to_string()
        }));
    }
    for (name, _) in o
        .bug
        .check
        .invariants()
        .into_iter()
        .chain(o.bug.check.limits())
    {
        let bug = named_count(&o.bug, name);
        let fix = named_count(&o.fix, name);
        if bug + fix > 0 || name == entry.anomaly {
            rows.push((name.to_string(), bug.to_string(), fix.to_string()));
        }
    }
    rows.push(both("verdict", &|r| verdict(r).to_string()));
    rows
}

/// `zoo run ID`: both verdicts side by side, the story, the replay commands.
pub fn run(entry: &Entry, o: &Outcome) -> Result<String, EntryError> {
    let mut s = String::new();
    let _ = writeln!(s, "{}  ({})", entry.id, entry.reference);
    let _ = writeln!(s, "  {}", entry.summary);
    let _ = writeln!(s, "  component  {}", entry.component);
    let _ = writeln!(s, "  faults     {}", entry.schedule()?.len());
    for f in entry.schedule()? {
        let _ = writeln!(s, "    {f}");
    }
    let bug = flags_text(entry.bug);
    let fix = flags_text(entry.fix);
    let _ = writeln!(s);
    let width = bug.len().max(fix.len()).max(12);
    let _ = writeln!(s, "{:<56} {bug:>width$} {fix:>width$}", "");
    for (label, b, f) in rows(entry, o) {
        let _ = writeln!(s, "{label:.<56} {b:>width$} {f:>width$}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", wrap(entry.story, 96));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "anomaly    `{}`: {} with the bug, {} with the fix",
        entry.anomaly,
        o.anomaly_count,
        named_count(&o.fix, entry.anomaly)
    );
    let _ = writeln!(
        s,
        "reproduces {}",
        if o.reproduces() { "yes" } else { "NO" }
    );
    // The entry's schedule is a list of faults by logical event, not a seed's draws, so the
    // command that replays it byte for byte is the entry itself (or its replay files).
    let _ = writeln!(
        s,
        "replay: idempo-sim zoo run {id} (byte for byte); the two runs as replay files: idempo-sim zoo run {id} --write-replay DIR, then idempo-sim replay DIR/{id}.bug.replay and DIR/{id}.fix.replay",
        id = entry.id
    );
    let _ = writeln!(
        s,
        "the settings alone, faults drawn from the seed instead of the schedule: {}",
        o.bug_config.replay_command("run")
    );
    Ok(s)
}

fn flags_text(flags: &[(&str, &str)]) -> String {
    flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Wraps `text` at `width` columns.
fn wrap(text: &str, width: usize) -> String {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("there is always a line");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n")
}

/// One row of `zoo check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRow {
    /// The entry's id.
    pub id: &'static str,
    /// The schedule reproduces the entry.
    pub reproduces: bool,
    /// Seeds (with the entry's fault rates, faults drawn from each seed) whose historical
    /// run shows the anomaly.
    pub bug_seeds: u64,
    /// Seeds whose fixed run passes.
    pub fix_clean_seeds: u64,
    /// Seeds tried.
    pub seeds: u64,
}

impl CheckRow {
    /// The entry passes the check: its schedule reproduces and the fix is clean on every seed.
    pub fn ok(&self) -> bool {
        self.reproduces && self.fix_clean_seeds == self.seeds
    }
}

/// Checks `entry`: its schedule, then `seeds` seeds from the entry's own under its fault rates.
pub fn check(entry: &'static Entry, seeds: u64) -> Result<CheckRow, EntryError> {
    let reproduces = entry.run()?.reproduces();
    let mut row = CheckRow {
        id: entry.id,
        reproduces,
        bug_seeds: 0,
        fix_clean_seeds: 0,
        seeds,
    };
    let first = entry.config(Side::Bug)?.seed;
    for seed in first..first.saturating_add(seeds) {
        for side in [Side::Bug, Side::Fix] {
            let mut config = entry.config(side)?;
            config.seed = seed;
            let (r, _) = Simulation::new(config, None)
                .map_err(EntryError::Sim)?
                .run();
            match side {
                Side::Bug => row.bug_seeds += u64::from(named_count(&r, entry.anomaly) > 0),
                Side::Fix => row.fix_clean_seeds += u64::from(r.check.passed()),
            }
        }
    }
    Ok(row)
}

/// The `zoo check` table.
pub fn check_table(rows: &[CheckRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>11} {:>16} {:>16} {:>6}",
        "entry", "schedule", "bug shows it", "fix clean", "ok"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<20} {:>11} {:>16} {:>16} {:>6}",
            r.id,
            if r.reproduces { "reproduces" } else { "NO" },
            format!("{}/{}", r.bug_seeds, r.seeds),
            format!("{}/{}", r.fix_clean_seeds, r.seeds),
            if r.ok() { "ok" } else { "FAIL" }
        );
    }
    s
}
