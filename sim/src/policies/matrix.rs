//! The policy × scenario matrix: every cell run over many seeds, and its text, JSON Lines and
//! CSV forms.
//!
//! A cell's verdict is the worst any seed gave (duplicate, then lost, then refused, then
//! exactly-once), with the number of seeds that gave it and the reason of the first of them;
//! replaying that seed (`--seed S --trace`) shows it event by event.

use super::{PolicyName, ScenarioName, StoreName, Verdict, run_one};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The policy.
    pub policy: PolicyName,
    /// The scenario.
    pub scenario: ScenarioName,
    /// The key store (`None` where the policy has none).
    pub store: Option<StoreName>,
    /// The worst verdict of any seed.
    pub verdict: Verdict,
    /// How many seeds gave it.
    pub seeds: u64,
    /// How many seeds ran.
    pub seeds_total: u64,
    /// The first seed that gave it (the reason is that seed's).
    pub seed: u64,
    /// The one-line reason, with exact simulated times.
    pub reason: String,
    /// Every verdict seen, with its number of seeds.
    pub tally: BTreeMap<String, u64>,
}

impl Cell {
    /// The short text of the grid: `duplicate`, `refused 409`, `duplicate 4/10`.
    pub fn short(&self) -> String {
        if self.seeds == self.seeds_total {
            self.verdict.to_string()
        } else {
            format!("{} {}/{}", self.verdict, self.seeds, self.seeds_total)
        }
    }

    /// The JSON Lines object: `policy`, `scenario`, `store`, `verdict`, `error`, `seeds`,
    /// `seeds_total`, `seed`, `reason` and `tally`.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "policy": self.policy.name(),
            "scenario": self.scenario.name(),
            "store": self.store.map(StoreName::name),
            "verdict": self.verdict.word(),
            "error": self.verdict.error(),
            "seeds": self.seeds,
            "seeds_total": self.seeds_total,
            "seed": self.seed,
            "reason": self.reason,
            "tally": self.tally,
        })
    }

    /// One CSV row in the order of [`CSV_HEADER`].
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},\"{}\"",
            self.policy.name(),
            self.scenario.name(),
            self.store.map_or("", StoreName::name),
            self.verdict.word(),
            self.verdict.error().unwrap_or(""),
            self.seeds,
            self.seeds_total,
            self.seed,
            self.reason.replace('"', "\"\"")
        )
    }
}

/// The CSV header line.
pub const CSV_HEADER: &str = "policy,scenario,store,verdict,error,seeds,seeds_total,seed,reason";

/// Runs one cell over seeds `first_seed .. first_seed + seeds`.
pub fn cell(
    policy: PolicyName,
    scenario: ScenarioName,
    store: StoreName,
    first_seed: u64,
    seeds: u64,
) -> Cell {
    assert!(seeds > 0, "a cell runs at least one seed");
    let mut worst: Option<(Verdict, u64, String)> = None;
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    for seed in first_seed..first_seed.saturating_add(seeds) {
        let r = run_one(policy, scenario, store, seed);
        *tally.entry(r.verdict.to_string()).or_default() += 1;
        let worse = worst
            .as_ref()
            .is_none_or(|(v, _, _)| r.verdict.severity() > v.severity());
        if worse {
            worst = Some((r.verdict, seed, r.reason));
        }
    }
    let (verdict, seed, reason) = worst.expect("at least one seed ran");
    Cell {
        policy,
        scenario,
        store: policy.has_store().then_some(store),
        seeds: tally.get(&verdict.to_string()).copied().unwrap_or(0),
        seeds_total: seeds,
        verdict,
        seed,
        reason,
        tally,
    }
}

/// Every cell of `policies` × `scenarios`, policy by policy.
pub fn cells(
    policies: &[PolicyName],
    scenarios: &[ScenarioName],
    store: StoreName,
    first_seed: u64,
    seeds: u64,
) -> Vec<Cell> {
    let mut out = Vec::with_capacity(policies.len() * scenarios.len());
    for &p in policies {
        for &s in scenarios {
            out.push(cell(p, s, store, first_seed, seeds));
        }
    }
    out
}

/// The grid (one row per policy, one column per scenario), then one line per cell with its
/// reason.
pub fn table(cells: &[Cell], policies: &[PolicyName], scenarios: &[ScenarioName]) -> String {
    let find = |p: PolicyName, s: ScenarioName| {
        cells
            .iter()
            .find(|c| c.policy == p && c.scenario == s)
            .map_or_else(String::new, Cell::short)
    };
    let first_w = policies
        .iter()
        .map(|p| p.name().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let widths: Vec<usize> = scenarios
        .iter()
        .map(|&s| {
            policies
                .iter()
                .map(|&p| find(p, s).len())
                .chain(std::iter::once(s.name().len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:first_w$}", "policy");
    for (s, w) in scenarios.iter().zip(&widths) {
        let _ = write!(out, "  {:w$}", s.name());
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for &p in policies {
        let _ = write!(out, "{:first_w$}", p.name());
        for (&s, w) in scenarios.iter().zip(&widths) {
            let _ = write!(out, "  {:w$}", find(p, s));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out.push('\n');
    for c in cells {
        let store = c
            .store
            .map_or(String::new(), |s| format!(" [{}]", s.name()));
        let _ = writeln!(
            out,
            "{} × {}{store}: {} ({}/{} seeds; seed {}): {}",
            c.policy.name(),
            c.scenario.name(),
            c.verdict,
            c.seeds,
            c.seeds_total,
            c.seed,
            c.reason
        );
    }
    out
}
