//! `idempo-sim policies`: the matrix, one cell's trace, its diagram.

use super::{PolicyName, ScenarioName, StoreName, diagram, matrix, run_one};
use std::io::Write;
use std::process::ExitCode;

/// The flags of `idempo-sim policies`.
#[derive(clap::Args, Clone, Debug)]
pub struct PoliciesArgs {
    /// A policy to run (repeatable; default: all nine).
    #[arg(long = "policy", value_enum, value_name = "P")]
    pub policies: Vec<PolicyName>,
    /// A scenario to run (repeatable; default: all nine).
    #[arg(long = "scenario", value_enum, value_name = "S")]
    pub scenarios: Vec<ScenarioName>,
    /// Where the keys live, for the policies that keep them.
    #[arg(long, value_enum, value_name = "S", default_value = "memory-ttl")]
    pub store: StoreName,
    /// Seeds per cell.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seeds: u64,
    /// The first seed (with --trace or --svg: the one seed replayed).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Also write the cells as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<String>,
    /// Print JSON Lines, one object per cell, instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Replay one cell (one --policy, one --scenario) for --seed, event by event.
    #[arg(long, conflicts_with = "json")]
    pub trace: bool,
    /// Draw one cell (one --policy, one --scenario) for --seed as a Lamport diagram (SVG);
    /// with --json, the cell's JSON object is printed instead of its verdict line.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<String>,
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("idempo-sim: {message}");
    ExitCode::from(2)
}

fn or_all<T: Copy>(given: &[T], all: &[T]) -> Vec<T> {
    if given.is_empty() {
        all.to_vec()
    } else {
        given.to_vec()
    }
}

/// Runs `idempo-sim policies`. Exit status 0; 2 for bad arguments or an unwritable file.
pub fn main_policies(args: PoliciesArgs) -> ExitCode {
    let policies = or_all(&args.policies, &PolicyName::ALL);
    let scenarios = or_all(&args.scenarios, &ScenarioName::ALL);
    if args.trace || args.svg.is_some() {
        let flag = if args.trace { "--trace" } else { "--svg" };
        let (&[policy], &[scenario]) = (&policies[..], &scenarios[..]) else {
            return usage_error(format!(
                "{flag} replays one cell: give exactly one --policy and one --scenario"
            ));
        };
        return one_cell(&args, policy, scenario);
    }
    let cells = matrix::cells(&policies, &scenarios, args.store, args.seed, args.seeds);
    if let Some(file) = &args.csv {
        let mut text = format!("{}\n", matrix::CSV_HEADER);
        for c in &cells {
            text.push_str(&c.csv());
            text.push('\n');
        }
        if let Err(e) = std::fs::write(file, text) {
            return usage_error(format!("--csv: cannot write `{file}`: {e}"));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        for c in &cells {
            let _ = writeln!(out, "{}", c.json());
        }
    } else {
        let last = args.seed.saturating_add(args.seeds - 1);
        let _ = writeln!(
            out,
            "idempo-sim policies: {} policies × {} scenarios, store {} (where the policy has one), seeds {}..={}\n",
            policies.len(),
            scenarios.len(),
            args.store.name(),
            args.seed,
            last
        );
        let _ = write!(out, "{}", matrix::table(&cells, &policies, &scenarios));
    }
    ExitCode::SUCCESS
}

fn one_cell(args: &PoliciesArgs, policy: PolicyName, scenario: ScenarioName) -> ExitCode {
    let r = run_one(policy, scenario, args.store, args.seed);
    let store = if policy.has_store() {
        args.store.name()
    } else {
        "none"
    };
    if let Some(file) = &args.svg {
        let title = format!(
            "idempo-sim policies --policy {} --scenario {} --store {} --seed {}",
            policy.name(),
            scenario.name(),
            args.store.name(),
            args.seed
        );
        let text = diagram::svg(&title, &r);
        if let Err(e) = std::fs::write(file, text) {
            return usage_error(format!("--svg: cannot write `{file}`: {e}"));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.trace {
        let _ = writeln!(
            out,
            "{} × {}, store {store}, seed {}",
            policy.name(),
            scenario.name(),
            args.seed
        );
        for line in &r.lines {
            let lane = match line.lane {
                super::run::Lane::Client => "client",
                super::run::Lane::Server => "server",
            };
            let _ = writeln!(
                out,
                "{:>14} ms  {lane}  {}",
                super::model::ms(line.at_ms),
                line.text
            );
        }
        for a in &r.ctx.ledger.applied {
            let _ = writeln!(
                out,
                "ledger: operation {} applied at {} ms by attempt {}{}: {}",
                a.op + 1,
                super::model::ms(a.at_ms),
                a.attempt,
                if a.copy { " (network copy)" } else { "" },
                a.what
            );
        }
    }
    if args.json {
        let cell = matrix::cell(policy, scenario, args.store, args.seed, 1);
        let _ = writeln!(out, "{}", cell.json());
    } else {
        let _ = writeln!(out, "verdict: {}: {}", r.verdict, r.reason);
    }
    ExitCode::SUCCESS
}
