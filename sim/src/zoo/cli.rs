//! `idempo-sim zoo`: list, run, check and search the entries.

use super::entry::{Entry, EntryError, Side};
use super::{entries, find, report, search};
use crate::engine::Simulation;
use crate::plan::FaultPlan;
use crate::trace::Trace;
use std::io::Write;
use std::process::ExitCode;

/// The flags of `idempo-sim zoo`.
#[derive(clap::Args, Clone, Debug)]
pub struct ZooArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ZooCommand,
}

/// The actions of `idempo-sim zoo`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum ZooCommand {
    /// One line per entry: id, upstream reference, component, one sentence.
    List,
    /// Run an entry's schedule with the historical behaviour and with the fix, side by side.
    ///
    /// Exit status: 0 when the entry reproduces (its anomaly with the bug, a clean run with
    /// the fix), 1 when it does not, 2 for an unknown id or an unwritable file.
    Run {
        /// The entry's id, as `zoo list` prints it.
        id: String,
        /// Draw the historical run as a Lamport diagram (SVG) to FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<String>,
        /// Print the historical run's events, one line each, before the table.
        #[arg(long)]
        trace: bool,
        /// Write the two runs as replay files DIR/ID.bug.replay and DIR/ID.fix.replay.
        #[arg(long, value_name = "DIR")]
        write_replay: Option<String>,
    },
    /// Run every entry: its schedule, and its fault rates over seeds; exit 0 when every
    /// schedule reproduces and every fixed run is clean.
    Check {
        /// Seeds per entry, from the entry's own seed.
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        seeds: u64,
    },
    /// Search seeds for a schedule of an entry and shrink it (how the entries' schedules
    /// were found).
    Search {
        /// The entry's id.
        id: String,
        /// Seeds to try.
        #[arg(long, value_name = "N", default_value_t = 100)]
        seeds: u64,
        /// Most runs to spend shrinking.
        #[arg(long, value_name = "N", default_value_t = 500)]
        shrink_runs: usize,
    },
}

/// Writes to standard output, ignoring a closed pipe (`zoo run ID | head`).
fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("idempo-sim: {message}");
    ExitCode::from(2)
}

fn entry(id: &str) -> Result<&'static Entry, ExitCode> {
    find(id).ok_or_else(|| {
        let ids: Vec<&str> = entries().iter().map(|e| e.id).collect();
        usage_error(format!(
            "unknown zoo entry `{id}` (expected one of: {})",
            ids.join(", ")
        ))
    })
}

/// Runs `idempo-sim zoo`.
pub fn main_zoo(args: ZooArgs) -> ExitCode {
    let result = match args.command {
        ZooCommand::List => {
            out(&report::list(&entries()));
            Ok(ExitCode::SUCCESS)
        }
        ZooCommand::Run {
            id,
            svg,
            trace,
            write_replay,
        } => run(&id, svg.as_deref(), trace, write_replay.as_deref()),
        ZooCommand::Check { seeds } => check(seeds),
        ZooCommand::Search {
            id,
            seeds,
            shrink_runs,
        } => search_one(&id, seeds, shrink_runs),
    };
    result.unwrap_or_else(|code| code)
}

fn entry_error(e: EntryError) -> ExitCode {
    usage_error(e)
}

fn run(
    id: &str,
    svg: Option<&str>,
    trace: bool,
    write_replay: Option<&str>,
) -> Result<ExitCode, ExitCode> {
    let entry = entry(id)?;
    if trace || svg.is_some() {
        draw_bug(entry, svg, trace)?;
    }
    let outcome = entry.run().map_err(entry_error)?;
    out(&report::run(entry, &outcome).map_err(entry_error)?);
    if let Some(dir) = write_replay {
        for (side, name) in [(Side::Bug, "bug"), (Side::Fix, "fix")] {
            let file = format!("{dir}/{}.{name}.replay", entry.id);
            let text = entry.replay_file(side).map_err(entry_error)?;
            std::fs::write(&file, text)
                .map_err(|e| usage_error(format!("--write-replay: cannot write `{file}`: {e}")))?;
            out(&format!("wrote {file}: idempo-sim replay {file}\n"));
        }
    }
    Ok(if outcome.reproduces() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The historical run again, traced: its events printed (`--trace`) and drawn (`--svg`).
fn draw_bug(entry: &Entry, svg: Option<&str>, trace: bool) -> Result<(), ExitCode> {
    let config = entry.config(Side::Bug).map_err(entry_error)?;
    let faults = entry.schedule().map_err(entry_error)?;
    let tracer = match (trace, svg.is_some()) {
        (true, true) => Trace::to_writer(Box::new(std::io::stdout())).keeping(),
        (true, false) => Trace::to_writer(Box::new(std::io::stdout())),
        _ => Trace::collecting(),
    };
    let plan = FaultPlan::scripted(&config, &faults);
    let sim = Simulation::with_plan(config.clone(), plan, Some(tracer)).map_err(usage_error)?;
    let (_, tracer) = sim.run();
    let mut tracer = tracer.expect("a trace was given");
    tracer.flush();
    if let Some(file) = svg {
        let text = crate::diagram::svg(&config, tracer.events())
            .map_err(|e| usage_error(format!("cannot draw `{file}`: {e}")))?;
        std::fs::write(file, text)
            .map_err(|e| usage_error(format!("cannot write `{file}`: {e}")))?;
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

fn check(seeds: u64) -> Result<ExitCode, ExitCode> {
    let mut rows = Vec::new();
    for e in entries() {
        rows.push(report::check(e, seeds).map_err(entry_error)?);
    }
    out(&report::check_table(&rows));
    Ok(if rows.iter().all(report::CheckRow::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn search_one(id: &str, seeds: u64, shrink_runs: usize) -> Result<ExitCode, ExitCode> {
    let entry = entry(id)?;
    match search::find(entry, seeds, shrink_runs).map_err(entry_error)? {
        None => {
            out(&format!("{id}: no seed of {seeds} shows the entry\n"));
            Ok(ExitCode::from(1))
        }
        Some(found) => {
            let mut text = format!(
                "{id}: seed {} shows it; {} of {} faults after shrinking:\n",
                found.seed,
                found.faults.len(),
                found.original
            );
            for f in &found.faults {
                text.push_str(&format!("{f}\n"));
            }
            out(&text);
            Ok(ExitCode::SUCCESS)
        }
    }
}
