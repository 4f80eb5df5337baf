//! The `idempo-sim` command line.

use clap::{Parser, Subcommand, ValueEnum};
use idempo_broker::BrokerConfig;
use idempo_sim::{explain, script};
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "idempo-sim",
    version,
    about = "Study and simulate Kafka's idempotent producer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script of broker operations and explain every decision.
    Explain {
        /// The script file, or `-` for standard input.
        file: String,
        /// Print JSON Lines, one object per operation.
        #[arg(long)]
        json: bool,
        /// Batches the broker retains per producer per partition.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1024))]
        dedup_window: u32,
        /// Broker-side deduplication.
        #[arg(long, value_enum, default_value_t = OnOff::On)]
        idempotence: OnOff,
        /// Idle time after which a producer's state is dropped.
        #[arg(long, default_value_t = 86_400_000, value_parser = clap::value_parser!(i64).range(1..))]
        producer_id_expiration_ms: i64,
        /// How often expiry runs.
        #[arg(long, default_value_t = 600_000, value_parser = clap::value_parser!(i64).range(1..))]
        producer_id_expiration_check_interval_ms: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain {
            file,
            json,
            dedup_window,
            idempotence,
            producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms,
        } => {
            let config = BrokerConfig {
                idempotence: idempotence == OnOff::On,
                dedup_window: dedup_window as usize,
                producer_id_expiration_ms,
                producer_id_expiration_check_interval_ms,
                ..BrokerConfig::default()
            };
            run_explain(&file, json, config)
        }
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("idempo-sim: {message}");
    ExitCode::from(2)
}

fn run_explain(file: &str, json: bool, config: BrokerConfig) -> ExitCode {
    let text = if file == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            return usage_error(format!("cannot read standard input: {e}"));
        }
        s
    } else {
        match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => return usage_error(format!("cannot read script `{file}`: {e}")),
        }
    };
    let steps = match script::parse(&text) {
        Ok(steps) => steps,
        Err(e) => return usage_error(format!("{file}: {e}")),
    };
    let lines = match explain::run(&steps, config) {
        Ok(lines) => lines,
        Err(e) => return usage_error(e),
    };
    let mut out = std::io::stdout().lock();
    for line in lines {
        let written = if json {
            writeln!(out, "{}", line.json)
        } else {
            writeln!(out, "{}", line.text)
        };
        if written.is_err() {
            return ExitCode::SUCCESS; // stdout closed (e.g. piped into `head`)
        }
    }
    ExitCode::SUCCESS
}
