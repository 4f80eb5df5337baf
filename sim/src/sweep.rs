//! `idempo-sim sweep`: many seeds over a grid of fault rates and settings, summarised as
//! rates with confidence intervals: a dose-response curve instead of one pass or fail.
//!
//! # What a sweep answers
//!
//! One `run` says whether *this* seed broke exactly-once. A sweep says *how often* and *how
//! badly*, and how that changes with the dose of faults:
//!
//! - With idempotence off, how fast does the share of runs with duplicates grow with the
//!   ack-loss rate? (Every lost ack is a retry, and every retry of a written batch is a
//!   duplicate.)
//! - With idempotence on, does it stay at zero, and how sure can we be after N seeds?
//! - What does a dedup window smaller than `max.in.flight` cost (`--set dedup-window=1`)?
//! - What do retries cost in latency: how do the p50 and p99 of produce latency move as
//!   faults rise?
//!
//! The grid is *setting* × `--ack-loss` × `--request-loss` × `--duplicate`, and each cell
//! runs the seeds `--first-seed ..` (`--seeds` of them). A setting is one `--set` value in
//! the syntax of `compare --variant`: `idempotence=off`, or several changes at once,
//! `network=proxy,first-batch-alone=on`.
//!
//! # Paired runs
//!
//! Fault decisions are a pure function of the seed and the logical event ([`crate::faults`]),
//! and a fault happens when a uniform draw falls below its rate. So seed 7 in the row
//! `idempotence=on` and seed 7 in the row `idempotence=off` face the same network, and seed 7
//! at ack loss 0.2 loses every ack it lost at 0.1, plus more. Differences between rows are
//! differences of the protocol, not of luck (statisticians call this *common random
//! numbers*). The price: cells are not independent samples of each other, only of their
//! seeds.
//!
//! # How to read the table
//!
//! One line per cell, grouped by setting. Counts are means per run over the seeds; latency
//! is the median over seeds of each run's own p50 and p99, in virtual milliseconds (so the
//! numbers are the same on any machine).
//!
//! An excerpt of `idempo-sim sweep --seeds 20` (3 producers × 2000 records, some columns
//! left out):
//!
//! ```text
//! setting idempotence=on
//!   ack_loss ... failed dups/run dup_runs rate 95% interval ... dropped/run gaps/run ... p50_ms   p99_ms
//!          0 ...      0     0.00     0/20 0.00 [0.00, 0.16] ...        0.00     0.00 ...   50.0     92.5
//!        0.3 ...      0     0.00     0/20 0.00 [0.00, 0.16] ...      450.00     0.00 ... 1088.5   2415.0
//! setting idempotence=off
//!        0.1 ...     20  2004.00    20/20 1.00 [0.84, 1.00] ...        0.00     0.00 ...  243.0    909.5
//!        0.3 ...     20 12260.00    20/20 1.00 [0.84, 1.00] ...        0.00     0.00 ... 1493.0   6019.5
//! setting dedup-window=1
//!        0.1 ...     20   980.00    20/20 1.00 [0.84, 1.00] ...       29.40 18114.00 ...  310.0 119808.0
//! ```
//!
//! Read it as: with idempotence on, no run of 20 wrote a duplicate at any ack-loss rate, so
//! the rate is below 0.16 with 95% confidence, and the broker recognised 450 retries per run
//! at 30% ack loss. Without idempotence every run failed, with a dose-response: 2004
//! duplicate records per run at 10% ack loss, 12260 at 30%. With a dedup window of 1 batch
//! and 5 in flight, retries fall out of the window: duplicates, thousands of
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` answers, and a p99 near `delivery.timeout.ms` (120 s).
//!
//! | column | meaning |
//! |---|---|
//! | `ack_loss`, `req_loss`, `net_dup` | the cell's fault rates: `--ack-loss`, `--request-loss`, `--duplicate` |
//! | `runs`, `failed` | runs in the cell, and runs whose checker verdict was FAIL |
//! | `dups/run` | extra copies of records in the log, mean per run |
//! | `dup_runs`, `rate` | runs with at least one duplicate, as k/n and as a fraction |
//! | `95% interval` | Wilson score interval of that fraction (below) |
//! | `lost/run`, `ooo/run` | acknowledged records missing from the log; records behind a later record of their producer |
//! | `dropped/run` | retries the broker recognised and answered without appending (the dedup at work) |
//! | `gaps/run` | `OUT_OF_ORDER_SEQUENCE_NUMBER` answers |
//! | `bumps/run` | producer epoch bumps |
//! | `p50_ms`, `p99_ms` | produce latency, from handing a batch to the producer to its ack |
//!
//! A mean says how bad; the fraction of runs says how often. One unlucky seed can carry a
//! mean, so only the fraction gets an interval.
//!
//! # The Wilson interval
//!
//! "0 of 20 runs had a duplicate" does not mean the rate is 0; it means the rate is probably
//! small. The textbook interval `p ± 1.96·√(p(1−p)/n)` collapses to `[0, 0]` exactly there,
//! the case this tool exists for. Edwin B. Wilson's score interval (1927) inverts the normal
//! test instead, and stays honest at 0 and at n:
//!
//! ```text
//! centre    = (p + z²/2n) / (1 + z²/n)
//! half      = z / (1 + z²/n) · √( p(1−p)/n + z²/4n² )
//! interval  = [centre − half, centre + half]        with p = k/n and z = 1.96 for 95%
//! ```
//!
//! For k = 0 the upper end is `z²/(n + z²)`: 0.16 for 20 runs, 0.019 for 200. That is the
//! sweep's resolution: to claim a rate below 1%, run a few hundred seeds. (The "rule of
//! three", 3/n, is the one-sided version of the same idea.) The interval treats the seeds of
//! a cell as independent trials, which they are: each seed draws its own faults.
//!
//! # Reproducibility
//!
//! The same flags print the same table and write the same CSV, byte for byte, with any
//! `--threads`: runs are independent, results are put back in grid order before anything is
//! summed, and every number is virtual. Only the progress bar (on standard error, and only
//! when it is a terminal) depends on the clock.
//!
//! # Shards: one sweep over many machines
//!
//! `--shard K/N --csv FILE` runs only the K-th of N slices of the grid's runs and writes them,
//! one line per run, with the grid's flags, to FILE (a shard file). The runs (cell × seed, in
//! grid order, seeds innermost) are dealt round robin, run `j` to shard `j mod N + 1`, so
//! every shard gets a share of every cell, cheap and expensive. `idempo-sim merge FILE...`
//! checks that the N files are the N shards of one sweep, each run exactly once, puts the
//! runs back in grid order and prints the table and writes the CSV (`--csv`) exactly as the
//! unsharded sweep does, byte for byte: every number is a function of the runs alone. So any
//! job runner spreads a sweep: a Slurm array (`--shard $((SLURM_ARRAY_TASK_ID+1))/$N`), a
//! Kubernetes indexed Job (`JOB_COMPLETION_INDEX`), GNU parallel:
//!
//! ```text
//! parallel idempo-sim sweep --seeds 1000 --shard {}/8 --csv shard-{}.csv ::: 1 2 3 4 5 6 7 8
//! idempo-sim merge shard-*.csv --csv sweep.csv
//! ```
//!
//! # What we deliberately leave out
//!
//! - Latency percentiles are not pooled into one histogram (hdrhistogram-style) across
//!   seeds; the median of per-run percentiles is robust to one stalled seed and needs no
//!   extra state in the engine.
//! - Intervals are given for the fraction of runs with duplicates only, not for the means,
//!   whose distribution across seeds is heavy-tailed.
//! - No correction for multiple comparisons: with 50 cells, expect a couple of 95% intervals
//!   to miss.
//! - Crashes, restarts, corruption and spikes are not axes of the grid; `run --swarm` mixes
//!   those.

use crate::compare::{VariantError, apply_variant};
use crate::config::{Network, SimConfig};
use crate::engine::RunReport;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The settings swept when no `--set` is given: the protocol as Kafka ships it, without
/// idempotence, and with a dedup window too small for `max.in.flight` 5.
pub const DEFAULT_SETTINGS: [&str; 3] = ["idempotence=on", "idempotence=off", "dedup-window=1"];

/// The first line of the CSV: one column per number of a cell, in this order.
pub const CSV_HEADER: &str = "setting,ack_loss,request_loss,duplicate,runs,failed,\
duplicates_per_run,runs_with_duplicates,duplicate_run_rate,duplicate_run_rate_low95,\
duplicate_run_rate_high95,lost_per_run,out_of_order_per_run,duplicates_dropped_per_run,\
gaps_rejected_per_run,epoch_bumps_per_run,latency_p50_ms,latency_p99_ms";

/// The normal quantile for a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;
/// Most values one rate list may hold.
const RATES_MAX: usize = 100;
/// Most runs one sweep may make (cells × seeds): a bound on the loop and on memory.
const RUNS_MAX: u64 = 1_000_000;

/// Why a sweep, a shard or a merge cannot be done; every message names its flag or file.
#[derive(Debug)]
pub enum SweepError {
    /// The flags do not parse (clap's message names the flag).
    Flags(String),
    /// A rate list (`--ack-loss`, `--request-loss`, `--duplicate`) is refused.
    Rates {
        /// The flag, without dashes.
        flag: &'static str,
        /// The whole list.
        text: String,
        /// What is wrong with it.
        why: RatesError,
    },
    /// A `--set` value is given twice.
    SettingTwice(String),
    /// A `--set` value changes an axis of the grid.
    AxisInSetting {
        /// The `--set` value.
        setting: String,
        /// The axis flag, without dashes.
        axis: String,
    },
    /// A `--set` value is refused.
    Setting {
        /// The `--set` value.
        setting: String,
        /// Why.
        error: Box<VariantError>,
    },
    /// `--first-seed` plus `--seeds` overflows.
    SeedOverflow {
        /// `--first-seed`.
        first_seed: u64,
        /// `--seeds`.
        seeds: u64,
    },
    /// Too many runs.
    TooManyRuns {
        /// `--seeds`.
        seeds: u64,
        /// Cells of the grid.
        cells: usize,
        /// Their product.
        runs: u64,
    },
    /// One run could not be made.
    Run {
        /// The `--set` value of its cell.
        setting: String,
        /// Its seed.
        seed: u64,
        /// Why.
        why: crate::SimError,
    },
    /// `--shard` without `--csv`: the shard's runs would go nowhere.
    ShardNeedsCsv,
    /// A file could not be read or written.
    File {
        /// The flag that named it (`--csv`) or `merge`.
        what: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A shard file given to `merge` is refused.
    Merge(MergeError),
}

/// What is wrong with a rate list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RatesError {
    /// An item is not a number.
    NotANumber(String),
    /// An item is not in 0..=1.
    NotAProbability(String),
    /// An item is listed twice.
    Twice(String),
    /// More items than a list may hold.
    TooMany(usize),
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::Flags(message) => write!(f, "{}", message.trim_end()),
            SweepError::Rates { flag, text, why } => match why {
                RatesError::NotANumber(item) => write!(
                    f,
                    "--{flag} `{text}`: `{item}` is not a number (expected a comma-separated list like 0,0.1,0.2)"
                ),
                RatesError::NotAProbability(item) => write!(
                    f,
                    "--{flag} `{text}`: {item} is not a probability between 0 and 1"
                ),
                RatesError::Twice(item) => write!(f, "--{flag} `{text}`: {item} is listed twice"),
                RatesError::TooMany(n) => write!(f, "--{flag}: {n} rates; at most {RATES_MAX}"),
            },
            SweepError::SettingTwice(s) => write!(f, "--set `{s}` is given twice"),
            SweepError::AxisInSetting { setting, axis } => write!(
                f,
                "--set `{setting}`: {axis} is an axis of the sweep; give its rates with --{axis}"
            ),
            SweepError::Setting { setting, error } => {
                write!(f, "--set `{setting}`: {}", error.reason())
            }
            SweepError::SeedOverflow { first_seed, seeds } => write!(
                f,
                "--first-seed {first_seed} plus --seeds {seeds} overflows a 64-bit seed"
            ),
            SweepError::TooManyRuns { seeds, cells, runs } => write!(
                f,
                "--seeds {seeds} over {cells} cells is {runs} runs; at most {RUNS_MAX} (fewer --seeds or shorter lists)"
            ),
            SweepError::Run { setting, seed, why } => {
                write!(f, "--set `{setting}` seed {seed}: {why}")
            }
            SweepError::ShardNeedsCsv => write!(
                f,
                "--shard needs --csv FILE: the shard's runs are written there for `idempo-sim merge`"
            ),
            SweepError::File { what, path, error } => {
                write!(f, "{what} {}: {error}", path.display())
            }
            SweepError::Merge(e) => write!(f, "merge: {e}"),
        }
    }
}

impl std::error::Error for SweepError {}

impl From<MergeError> for SweepError {
    fn from(e: MergeError) -> SweepError {
        SweepError::Merge(e)
    }
}

/// `--shard K/N`: the K-th (1-based) of N slices of the grid's runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K, in 1..=N.
    pub index: u64,
    /// N, at least 1.
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` with 1 <= K <= N.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let (k, n) = text.split_once('/').ok_or(ShardError::NotKOverN)?;
        let number = |v: &str| v.trim().parse::<u64>().map_err(|_| ShardError::NotKOverN);
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err(ShardError::NoSlices);
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether run number `job` (grid order, seeds innermost) belongs to this shard: the
    /// runs are dealt round robin, so that every shard gets a share of every cell.
    pub fn owns(&self, job: usize) -> bool {
        job as u64 % self.count == self.index - 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a `--shard` value is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardError {
    /// Not `K/N` with two numbers.
    NotKOverN,
    /// N is 0.
    NoSlices,
    /// K is not in 1..=N.
    OutOfRange {
        /// K.
        index: u64,
        /// N.
        count: u64,
    },
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardError::NotKOverN => write!(f, "expected K/N, e.g. 2/8"),
            ShardError::NoSlices => write!(f, "N must be at least 1"),
            ShardError::OutOfRange { index, count } => {
                write!(f, "K must be between 1 and {count}, not {index}")
            }
        }
    }
}

impl std::error::Error for ShardError {}

/// The flags of `idempo-sim sweep`.
#[derive(clap::Args, Clone, Debug)]
pub struct SweepArgs {
    /// Seeds per cell.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seeds: u64,
    /// The first seed; a cell runs seeds FIRST_SEED, FIRST_SEED+1, ...
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Ack-loss rates to sweep, comma-separated probabilities.
    #[arg(long, value_name = "LIST", default_value = "0,0.1,0.2,0.3")]
    pub ack_loss: String,
    /// Request-loss rates to sweep, comma-separated probabilities.
    #[arg(long, value_name = "LIST", default_value = "0")]
    pub request_loss: String,
    /// Rates of requests the network delivers twice, comma-separated probabilities.
    #[arg(long, value_name = "LIST", default_value = "0")]
    pub duplicate: String,
    /// A row group: settings changed from the defaults, as in `compare --variant`
    /// (`idempotence=off`, `dedup-window=1`, `network=proxy,first-batch-alone=on` ...).
    /// Repeatable; replaces the default groups.
    #[arg(long = "set", value_name = "KEY=VALUE,...", default_values = DEFAULT_SETTINGS)]
    pub settings: Vec<String>,
    /// Records each producer sends.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=4_294_967_295))]
    pub records: u64,
    /// Number of producers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub producers: u32,
    /// Number of partitions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub partitions: u32,
    /// Records per batch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_records: u32,
    /// Network model of every cell: tcp, proxy or datagram (a `--set network=...` overrides it).
    #[arg(long, default_value = "tcp", value_parser = Network::parse)]
    pub network: Network,
    /// Also write the cells as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
    /// Runs at once; the output does not depend on it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// No progress bar (it is drawn only on a terminal's standard error anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Run only the K-th of N slices of the grid's runs (K from 1) and write them to --csv
    /// as a shard file; `idempo-sim merge` puts the N files together into exactly the
    /// unsharded sweep's table and CSV.
    #[arg(long, value_name = "K/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
}

/// Parses `sweep` flags alone, as the command line would (for tests and examples).
#[derive(clap::Parser)]
#[command(name = "idempo-sim sweep", no_binary_name = true)]
struct SweepCommand {
    #[command(flatten)]
    args: SweepArgs,
}

impl SweepArgs {
    /// The arguments that `flags` (without the program and subcommand names) would give.
    pub fn from_flags<S: AsRef<str>>(flags: &[S]) -> Result<SweepArgs, SweepError> {
        <SweepCommand as clap::Parser>::try_parse_from(flags.iter().map(AsRef::as_ref))
            .map(|c| c.args)
            .map_err(|e| SweepError::Flags(e.to_string()))
    }

    /// The flags that decide the grid and its numbers (not `--csv`, `--threads`,
    /// `--no-progress` or `--shard`), as [`SweepArgs::from_flags`] takes them: what a shard
    /// file records so that `merge` rebuilds the same sweep.
    pub fn grid_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = [
            ("--seeds", self.seeds.to_string()),
            ("--first-seed", self.first_seed.to_string()),
            ("--ack-loss", self.ack_loss.clone()),
            ("--request-loss", self.request_loss.clone()),
            ("--duplicate", self.duplicate.clone()),
            ("--records", self.records.to_string()),
            ("--producers", self.producers.to_string()),
            ("--partitions", self.partitions.to_string()),
            ("--batch-records", self.batch_records.to_string()),
            ("--network", self.network.name().to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
        for setting in &self.settings {
            flags.push("--set".to_string());
            flags.push(setting.clone());
        }
        flags
    }
}

/// One cell of the grid: a setting and three fault rates.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The `--set` value of the row group.
    pub setting: String,
    /// Probability that an ack is lost.
    pub ack_loss: f64,
    /// Probability that a request is lost.
    pub request_loss: f64,
    /// Probability that a request is delivered twice.
    pub duplicate: f64,
    /// The config of the cell's first seed; the others differ only in `seed`.
    pub config: SimConfig,
}

/// What a cell's runs added up to.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    /// Runs made.
    pub runs: u64,
    /// Runs whose verdict was FAIL.
    pub failed: u64,
    /// Runs with at least one duplicate record.
    pub runs_with_duplicates: u64,
    /// `runs_with_duplicates / runs` with its 95% Wilson interval.
    pub duplicate_run_rate: Proportion,
    /// Duplicate records, mean per run.
    pub duplicates_per_run: f64,
    /// Acknowledged records missing from the log, mean per run.
    pub lost_per_run: f64,
    /// Records behind a later record of the same producer, mean per run.
    pub out_of_order_per_run: f64,
    /// Retries the broker recognised and did not append, mean per run.
    pub duplicates_dropped_per_run: f64,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER answers, mean per run.
    pub gaps_rejected_per_run: f64,
    /// Producer epoch bumps, mean per run.
    pub epoch_bumps_per_run: f64,
    /// Median over seeds of each run's median produce latency, virtual ms.
    pub latency_p50_ms: f64,
    /// Median over seeds of each run's 99th percentile produce latency, virtual ms.
    pub latency_p99_ms: f64,
}

/// A fraction k/n with its 95% Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proportion {
    /// k/n (0 when n is 0).
    pub rate: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

impl Proportion {
    /// The fraction `k / n` and its 95% Wilson score interval (see the module essay).
    ///
    /// # Examples
    ///
    /// ```
    /// use idempo_sim::sweep::Proportion;
    /// let none = Proportion::wilson(0, 20);
    /// assert_eq!((none.rate, none.low), (0.0, 0.0));
    /// assert!((none.high - 0.161).abs() < 0.001, "0 of 20 still allows 16%");
    /// ```
    pub fn wilson(k: u64, n: u64) -> Proportion {
        assert!(k <= n, "{k} successes out of {n} trials");
        if n == 0 {
            return Proportion {
                rate: 0.0,
                low: 0.0,
                high: 1.0,
            };
        }
        let n = n as f64;
        let p = k as f64 / n;
        let z2 = Z_95 * Z_95;
        let denominator = 1.0 + z2 / n;
        let centre = (p + z2 / (2.0 * n)) / denominator;
        let half = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Proportion {
            rate: p,
            low: (centre - half).max(0.0),
            high: (centre + half).min(1.0),
        }
    }
}

/// A cell and its statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct CellResult {
    /// Where in the grid.
    pub cell: Cell,
    /// What its runs gave.
    pub stats: CellStats,
}

/// Everything a sweep produced, ready to print.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepOutput {
    /// The cells in grid order: setting, then ack loss, request loss, duplicate rate.
    pub cells: Vec<CellResult>,
    /// The terminal table.
    pub table: String,
    /// The CSV text, starting with [`CSV_HEADER`].
    pub csv: String,
}

/// Runs the sweep without a progress bar and returns the table and the CSV.
///
/// # Examples
///
/// ```
/// use idempo_sim::sweep::{SweepArgs, run_sweep, CSV_HEADER};
/// let args = SweepArgs::from_flags(&["--seeds", "2", "--records", "50", "--ack-loss", "0,0.2"])?;
/// let out = run_sweep(&args)?;
/// assert_eq!(out.cells.len(), 3 * 2, "three default settings times two ack-loss rates");
/// assert!(out.csv.starts_with(CSV_HEADER));
/// # Ok::<(), idempo_sim::sweep::SweepError>(())
/// ```
pub fn run_sweep(args: &SweepArgs) -> Result<SweepOutput, SweepError> {
    run_sweep_with_progress(args, &ProgressBar::hidden())
}

/// Runs the sweep, advancing `progress` by one per run. The output does not depend on it.
pub fn run_sweep_with_progress(
    args: &SweepArgs,
    progress: &ProgressBar,
) -> Result<SweepOutput, SweepError> {
    let cells = grid(args)?;
    let jobs: Vec<usize> = (0..cells.len() * args.seeds as usize).collect();
    let summaries = run_jobs(&cells, args, &jobs, progress)?;
    Ok(output(args, cells, &summaries))
}

/// The table and CSV of a grid whose runs gave `summaries`, in job order.
fn output(args: &SweepArgs, cells: Vec<Cell>, summaries: &[RunSummary]) -> SweepOutput {
    let cells: Vec<CellResult> = cells
        .into_iter()
        .zip(summaries.chunks(args.seeds as usize))
        .map(|(cell, runs)| CellResult {
            cell,
            stats: cell_stats(runs),
        })
        .collect();
    SweepOutput {
        table: table(args, &cells),
        csv: csv(&cells),
        cells,
    }
}

/// The cells of the sweep in grid order, each config validated. Errors name the flag.
pub fn grid(args: &SweepArgs) -> Result<Vec<Cell>, SweepError> {
    let ack_losses = parse_rates("ack-loss", &args.ack_loss)?;
    let request_losses = parse_rates("request-loss", &args.request_loss)?;
    let duplicates = parse_rates("duplicate", &args.duplicate)?;
    let settings = if args.settings.is_empty() {
        DEFAULT_SETTINGS.iter().map(|s| s.to_string()).collect()
    } else {
        args.settings.clone()
    };
    for (i, s) in settings.iter().enumerate() {
        if settings[..i].contains(s) {
            return Err(SweepError::SettingTwice(s.clone()));
        }
    }
    if args.first_seed.checked_add(args.seeds).is_none() {
        return Err(SweepError::SeedOverflow {
            first_seed: args.first_seed,
            seeds: args.seeds,
        });
    }
    let cells = settings.len() * ack_losses.len() * request_losses.len() * duplicates.len();
    let runs = (cells as u64).saturating_mul(args.seeds);
    if runs > RUNS_MAX {
        return Err(SweepError::TooManyRuns {
            seeds: args.seeds,
            cells,
            runs,
        });
    }
    let base = SimConfig {
        seed: args.first_seed,
        producers: args.producers,
        partitions: args.partitions,
        records: args.records,
        batch_records: args.batch_records,
        network: args.network,
        ..SimConfig::default()
    };
    let mut out = Vec::with_capacity(cells);
    for setting in &settings {
        for &ack_loss in &ack_losses {
            for &request_loss in &request_losses {
                for &duplicate in &duplicates {
                    let rates = SimConfig {
                        ack_loss,
                        request_loss,
                        duplicate,
                        ..base.clone()
                    };
                    out.push(Cell {
                        setting: setting.clone(),
                        ack_loss,
                        request_loss,
                        duplicate,
                        config: apply_setting(&rates, setting)?,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// `base` with one `--set` value applied, in `compare --variant` syntax.
fn apply_setting(base: &SimConfig, setting: &str) -> Result<SimConfig, SweepError> {
    for part in setting.split(',') {
        let key = part.split_once('=').map_or(part, |(k, _)| k).trim();
        if ["ack-loss", "request-loss", "duplicate"].contains(&key) {
            return Err(SweepError::AxisInSetting {
                setting: setting.to_string(),
                axis: key.to_string(),
            });
        }
    }
    apply_variant(base, setting).map_err(|error| SweepError::Setting {
        setting: setting.to_string(),
        error: Box::new(error),
    })
}

/// Parses a comma-separated list of probabilities; errors name `--{flag}`.
fn parse_rates(flag: &'static str, text: &str) -> Result<Vec<f64>, SweepError> {
    let refuse = |why| SweepError::Rates {
        flag,
        text: text.to_string(),
        why,
    };
    let mut rates = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let rate: f64 = item
            .parse()
            .map_err(|_| refuse(RatesError::NotANumber(item.to_string())))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(refuse(RatesError::NotAProbability(item.to_string())));
        }
        if rates.contains(&rate) {
            return Err(refuse(RatesError::Twice(item.to_string())));
        }
        rates.push(rate);
    }
    if rates.len() > RATES_MAX {
        return Err(refuse(RatesError::TooMany(rates.len())));
    }
    Ok(rates)
}

/// The numbers of one run that the sweep keeps (a `RunReport` also holds every fault).
#[derive(Clone, Copy, Debug, PartialEq)]
struct RunSummary {
    passed: bool,
    duplicates: u64,
    lost: u64,
    out_of_order: u64,
    duplicates_dropped: u64,
    gaps_rejected: u64,
    epoch_bumps: u64,
    latency_p50_ms: u64,
    latency_p99_ms: u64,
}

impl RunSummary {
    fn of(r: &RunReport) -> RunSummary {
        RunSummary {
            passed: r.check.passed(),
            duplicates: r.check.duplicates,
            lost: r.check.lost,
            out_of_order: r.check.out_of_order,
            duplicates_dropped: r.broker.duplicates_dropped,
            gaps_rejected: r.broker.gaps_rejected,
            epoch_bumps: r.epoch_bumps,
            latency_p50_ms: r.latency_p50_ms,
            latency_p99_ms: r.latency_p99_ms,
        }
    }
}

/// Runs the jobs `jobs` (numbers in grid order, seeds innermost: job `j` is seed
/// `first_seed + j % seeds` of cell `j / seeds`) and returns their summaries in that order.
fn run_jobs(
    cells: &[Cell],
    args: &SweepArgs,
    jobs: &[usize],
    progress: &ProgressBar,
) -> Result<Vec<RunSummary>, SweepError> {
    let seeds = args.seeds as usize;
    let run_job = |job: usize| -> Result<RunSummary, SweepError> {
        let cell = &cells[job / seeds];
        let config = SimConfig {
            seed: cell.config.seed + (job % seeds) as u64,
            ..cell.config.clone()
        };
        let report = crate::run(&config).map_err(|why| SweepError::Run {
            setting: cell.setting.clone(),
            seed: config.seed,
            why,
        })?;
        progress.inc(1);
        Ok(RunSummary::of(&report))
    };
    let threads = (args.threads as usize).clamp(1, jobs.len().max(1));
    if threads == 1 {
        return jobs.iter().map(|&job| run_job(job)).collect();
    }
    // Workers take the next position in `jobs`; each result goes back to its position, so
    // the order of completion never reaches the output.
    let next = AtomicUsize::new(0);
    let finished: Vec<Vec<(usize, Result<RunSummary, SweepError>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&job) = jobs.get(at) else {
                            break done;
                        };
                        done.push((at, run_job(job)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a sweep worker does not panic"))
            .collect()
    });
    let mut results: Vec<Option<Result<RunSummary, SweepError>>> =
        (0..jobs.len()).map(|_| None).collect();
    for (at, result) in finished.into_iter().flatten() {
        results[at] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

/// The statistics of one cell's runs.
fn cell_stats(runs: &[RunSummary]) -> CellStats {
    assert!(!runs.is_empty(), "a cell has at least one seed");
    let n = runs.len() as u64;
    let mean = |f: fn(&RunSummary) -> u64| runs.iter().map(|r| f(r) as f64).sum::<f64>() / n as f64;
    let runs_with_duplicates = runs.iter().filter(|r| r.duplicates > 0).count() as u64;
    CellStats {
        runs: n,
        failed: runs.iter().filter(|r| !r.passed).count() as u64,
        runs_with_duplicates,
        duplicate_run_rate: Proportion::wilson(runs_with_duplicates, n),
        duplicates_per_run: mean(|r| r.duplicates),
        lost_per_run: mean(|r| r.lost),
        out_of_order_per_run: mean(|r| r.out_of_order),
        duplicates_dropped_per_run: mean(|r| r.duplicates_dropped),
        gaps_rejected_per_run: mean(|r| r.gaps_rejected),
        epoch_bumps_per_run: mean(|r| r.epoch_bumps),
        latency_p50_ms: median(runs.iter().map(|r| r.latency_p50_ms).collect()),
        latency_p99_ms: median(runs.iter().map(|r| r.latency_p99_ms).collect()),
    }
}

/// The median; the mean of the two middle values for an even count.
fn median(mut values: Vec<u64>) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid] as f64
    } else {
        (values[mid - 1] as f64 + values[mid] as f64) / 2.0
    }
}

/// The numbers of a cell as text, in [`CSV_HEADER`] order after the setting.
fn fields(r: &CellResult) -> Vec<String> {
    let (c, s) = (&r.cell, &r.stats);
    vec![
        c.ack_loss.to_string(),
        c.request_loss.to_string(),
        c.duplicate.to_string(),
        s.runs.to_string(),
        s.failed.to_string(),
        format!("{:.2}", s.duplicates_per_run),
        format!("{}/{}", s.runs_with_duplicates, s.runs),
        format!("{:.2}", s.duplicate_run_rate.rate),
        format!(
            "[{:.2}, {:.2}]",
            s.duplicate_run_rate.low, s.duplicate_run_rate.high
        ),
        format!("{:.2}", s.lost_per_run),
        format!("{:.2}", s.out_of_order_per_run),
        format!("{:.2}", s.duplicates_dropped_per_run),
        format!("{:.2}", s.gaps_rejected_per_run),
        format!("{:.2}", s.epoch_bumps_per_run),
        format!("{:.1}", s.latency_p50_ms),
        format!("{:.1}", s.latency_p99_ms),
    ]
}

/// The column headings of the table, matching [`fields`].
const TABLE_COLUMNS: [&str; 16] = [
    "ack_loss",
    "req_loss",
    "net_dup",
    "runs",
    "failed",
    "dups/run",
    "dup_runs",
    "rate",
    "95% interval",
    "lost/run",
    "ooo/run",
    "dropped/run",
    "gaps/run",
    "bumps/run",
    "p50_ms",
    "p99_ms",
];

/// The terminal table: a header, then per setting a group line and one line per cell, with
/// columns aligned across groups.
fn table(args: &SweepArgs, cells: &[CellResult]) -> String {
    let rows: Vec<Vec<String>> = cells.iter().map(fields).collect();
    let widths: Vec<usize> = TABLE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, h)| rows.iter().map(|r| r[i].len()).fold(h.len(), usize::max))
        .collect();
    let line = |values: &[&str]| {
        let mut s = String::from(" ");
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(s, " {v:>w$}");
        }
        s.push('\n');
        s
    };
    let last_seed = args.first_seed + (args.seeds - 1);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "idempo-sim sweep  seeds {}..={last_seed}  producers={} partitions={} records={} (per producer) batch_records={} network={}",
        args.first_seed,
        args.producers,
        args.partitions,
        args.records,
        args.batch_records,
        args.network.name(),
    );
    let _ = writeln!(
        s,
        "  {} cells x {} seeds = {} runs; counts are means per run; dup_runs = runs with a duplicate, \
         with its 95% Wilson interval; latency = median over seeds of each run's p50/p99, virtual ms",
        cells.len(),
        args.seeds,
        cells.len() as u64 * args.seeds,
    );
    let mut group: Option<&str> = None;
    for (cell, row) in cells.iter().zip(&rows) {
        if group != Some(cell.cell.setting.as_str()) {
            group = Some(cell.cell.setting.as_str());
            let _ = writeln!(s, "setting {}", cell.cell.setting);
            s.push_str(&line(&TABLE_COLUMNS));
        }
        let values: Vec<&str> = row.iter().map(String::as_str).collect();
        s.push_str(&line(&values));
    }
    s
}

/// The CSV: [`CSV_HEADER`], then one line per cell in grid order.
fn csv(cells: &[CellResult]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in cells {
        let (c, st) = (&r.cell, &r.stats);
        let p = st.duplicate_run_rate;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.4},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.1},{:.1}",
            csv_field(&c.setting),
            c.ack_loss,
            c.request_loss,
            c.duplicate,
            st.runs,
            st.failed,
            st.duplicates_per_run,
            st.runs_with_duplicates,
            p.rate,
            p.low,
            p.high,
            st.lost_per_run,
            st.out_of_order_per_run,
            st.duplicates_dropped_per_run,
            st.gaps_rejected_per_run,
            st.epoch_bumps_per_run,
            st.latency_p50_ms,
            st.latency_p99_ms,
        );
    }
    s
}

/// Quotes a CSV field that holds a comma or a quote (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

// ----- shards and merge ---------------------------------------------------------------

/// The first line of a shard file; the shard `K/N` follows it.
const SHARD_MAGIC: &str = "# idempo-sim sweep shard ";
/// The second line's prefix: the grid's flags as a JSON array of words.
const SHARD_FLAGS: &str = "# flags ";
/// The column line of a shard file: one line per run, in job order.
pub const SHARD_HEADER: &str = "job,seed,passed,duplicates,lost,out_of_order,\
duplicates_dropped,gaps_rejected,epoch_bumps,latency_p50_ms,latency_p99_ms";

/// Why a shard file is refused by `merge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeError {
    /// A line of a file is not what a shard file holds there.
    Malformed {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
        /// What was expected.
        expected: &'static str,
    },
    /// A file is a shard of another sweep (other grid flags or another N) than the first.
    OtherSweep {
        /// The file.
        file: String,
    },
    /// Shard K was given twice.
    ShardTwice(Shard),
    /// Shard K of N was not given.
    ShardMissing(Shard),
    /// A run is not one the shard owns, or is listed twice, or its seed is not its job's.
    WrongRun {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// A run of the shard is missing from its file (the shard did not finish).
    RunMissing {
        /// The job number.
        job: usize,
    },
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::Malformed {
                file,
                line,
                expected,
            } => write!(f, "{file}: line {line}: expected {expected}"),
            MergeError::OtherSweep { file } => write!(
                f,
                "{file} is a shard of another sweep (other flags or another --shard N) than the first file"
            ),
            MergeError::ShardTwice(s) => write!(f, "shard {s} is given twice"),
            MergeError::ShardMissing(s) => write!(f, "shard {s} is missing"),
            MergeError::WrongRun { file, line } => write!(
                f,
                "{file}: line {line}: a run this shard does not own, listed twice, or with another seed"
            ),
            MergeError::RunMissing { job } => write!(
                f,
                "run {job} of the grid is in no file (did every shard finish?)"
            ),
        }
    }
}

impl std::error::Error for MergeError {}

/// Runs the shard `shard` of the sweep and returns the shard file's text: the grid's flags
/// and one line per run the shard owns.
pub fn run_shard(
    args: &SweepArgs,
    shard: Shard,
    progress: &ProgressBar,
) -> Result<String, SweepError> {
    let cells = grid(args)?;
    let jobs: Vec<usize> = (0..cells.len() * args.seeds as usize)
        .filter(|&job| shard.owns(job))
        .collect();
    let summaries = run_jobs(&cells, args, &jobs, progress)?;
    let flags = serde_json::to_string(&args.grid_flags()).expect("words serialize");
    let mut s = format!("{SHARD_MAGIC}{shard}\n{SHARD_FLAGS}{flags}\n{SHARD_HEADER}\n");
    let seeds = args.seeds as usize;
    for (job, r) in jobs.iter().zip(&summaries) {
        let seed = args.first_seed + (job % seeds) as u64;
        let _ = writeln!(
            s,
            "{job},{seed},{},{},{},{},{},{},{},{},{}",
            u8::from(r.passed),
            r.duplicates,
            r.lost,
            r.out_of_order,
            r.duplicates_dropped,
            r.gaps_rejected,
            r.epoch_bumps,
            r.latency_p50_ms,
            r.latency_p99_ms,
        );
    }
    Ok(s)
}

/// One shard file, read.
struct ShardFile {
    shard: Shard,
    flags: Vec<String>,
    /// `(line, job, seed, summary)` of every run listed.
    runs: Vec<(usize, usize, u64, RunSummary)>,
}

/// Reads a shard file's text; `file` names it in errors.
fn parse_shard(file: &str, text: &str) -> Result<ShardFile, MergeError> {
    let malformed = |line, expected| MergeError::Malformed {
        file: file.to_string(),
        line,
        expected,
    };
    let mut lines = text.lines();
    let shard = lines
        .next()
        .and_then(|l| l.strip_prefix(SHARD_MAGIC))
        .and_then(|k| Shard::parse(k).ok())
        .ok_or_else(|| {
            malformed(
                1,
                "`# idempo-sim sweep shard K/N` (a file of sweep --shard)",
            )
        })?;
    let flags = lines
        .next()
        .and_then(|l| l.strip_prefix(SHARD_FLAGS))
        .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .ok_or_else(|| malformed(2, "`# flags [...]`"))?;
    if lines.next() != Some(SHARD_HEADER) {
        return Err(malformed(3, "the column line"));
    }
    let mut runs = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 4;
        let v: Vec<u64> = line
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| malformed(n, "11 whole numbers"))?;
        let [
            job,
            seed,
            passed,
            duplicates,
            lost,
            out_of_order,
            dropped,
            gaps,
            bumps,
            p50,
            p99,
        ] = v[..]
        else {
            return Err(malformed(n, "11 whole numbers"));
        };
        let summary = RunSummary {
            passed: passed == 1,
            duplicates,
            lost,
            out_of_order,
            duplicates_dropped: dropped,
            gaps_rejected: gaps,
            epoch_bumps: bumps,
            latency_p50_ms: p50,
            latency_p99_ms: p99,
        };
        runs.push((n, job as usize, seed, summary));
    }
    Ok(ShardFile { shard, flags, runs })
}

/// Puts the shard files of one sweep together: `files` holds each file's name and text.
/// Returns the sweep's arguments and exactly the output the unsharded sweep gives.
pub fn merge(files: &[(String, String)]) -> Result<(SweepArgs, SweepOutput), SweepError> {
    let shards: Vec<(&str, ShardFile)> = files
        .iter()
        .map(|(name, text)| parse_shard(name, text).map(|s| (name.as_str(), s)))
        .collect::<Result<_, _>>()?;
    let Some((_, first)) = shards.first() else {
        return Err(MergeError::ShardMissing(Shard { index: 1, count: 1 }).into());
    };
    let count = first.shard.count;
    let args = SweepArgs::from_flags(&first.flags)?;
    let cells = grid(&args)?;
    let jobs = cells.len() * args.seeds as usize;
    let mut summaries: Vec<Option<RunSummary>> = vec![None; jobs];
    let mut seen = vec![false; count as usize];
    for (name, file) in &shards {
        if file.flags != first.flags || file.shard.count != count {
            return Err(MergeError::OtherSweep {
                file: name.to_string(),
            }
            .into());
        }
        let k = (file.shard.index - 1) as usize;
        if std::mem::replace(&mut seen[k], true) {
            return Err(MergeError::ShardTwice(file.shard).into());
        }
        for &(line, job, seed, summary) in &file.runs {
            let expected_seed = args.first_seed + (job % args.seeds.max(1) as usize) as u64;
            let slot = summaries.get_mut(job).filter(|_| file.shard.owns(job));
            match slot {
                Some(slot @ None) if seed == expected_seed => *slot = Some(summary),
                _ => {
                    return Err(MergeError::WrongRun {
                        file: name.to_string(),
                        line,
                    }
                    .into());
                }
            }
        }
    }
    if let Some(k) = seen.iter().position(|s| !s) {
        return Err(MergeError::ShardMissing(Shard {
            index: k as u64 + 1,
            count,
        })
        .into());
    }
    let summaries: Vec<RunSummary> = summaries
        .into_iter()
        .enumerate()
        .map(|(job, s)| s.ok_or(MergeError::RunMissing { job }))
        .collect::<Result<_, _>>()?;
    let output = output(&args, cells, &summaries);
    Ok((args, output))
}

/// The flags of `idempo-sim merge`.
#[derive(clap::Args, Clone, Debug)]
pub struct MergeArgs {
    /// The shard files (`sweep --shard K/N --csv FILE`), all N of them, in any order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Also write the cells as CSV to FILE, as the unsharded sweep's --csv does.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
}

fn usage_error(e: SweepError) -> ExitCode {
    eprintln!("idempo-sim: {e}");
    ExitCode::from(2)
}

/// Prints the table and writes the CSV to `csv_file`, as `sweep` and `merge` both do.
fn print_output(
    output: &SweepOutput,
    csv_file: Option<(&std::path::Path, std::fs::File)>,
) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(output.table.as_bytes());
    if let Some((path, mut file)) = csv_file {
        if let Err(error) = file.write_all(output.csv.as_bytes()) {
            return usage_error(SweepError::File {
                what: "--csv",
                path: path.to_path_buf(),
                error,
            });
        }
        let _ = writeln!(
            out,
            "csv: {} cells written to {}",
            output.cells.len(),
            path.display()
        );
    }
    ExitCode::SUCCESS
}

/// Creates the `--csv` file at once, so that a bad path fails before any run.
fn create_csv(
    path: &Option<std::path::PathBuf>,
) -> Result<Option<(&std::path::Path, std::fs::File)>, SweepError> {
    match path {
        Some(path) => std::fs::File::create(path)
            .map(|f| Some((path.as_path(), f)))
            .map_err(|error| SweepError::File {
                what: "--csv",
                path: path.clone(),
                error,
            }),
        None => Ok(None),
    }
}

/// `idempo-sim sweep`: runs the grid (or one `--shard` of it) with a progress bar on standard
/// error, prints the table, and writes the CSV if asked. Exit status 2 for bad arguments (the
/// message names the flag), 0 otherwise: a sweep measures, it does not pass or fail.
pub fn main_sweep(args: SweepArgs) -> ExitCode {
    let runs = match grid(&args) {
        Ok(cells) => cells.len() as u64 * args.seeds,
        Err(e) => return usage_error(e),
    };
    if args.shard.is_some() && args.csv.is_none() {
        return usage_error(SweepError::ShardNeedsCsv);
    }
    let csv_file = match create_csv(&args.csv) {
        Ok(file) => file,
        Err(e) => return usage_error(e),
    };
    let progress = if args.no_progress {
        ProgressBar::hidden()
    } else {
        let total = args.shard.map_or(runs, |s| runs.div_ceil(s.count));
        // Draws on standard error, and hides itself when that is not a terminal.
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "sweep [{bar:40}] {pos}/{len} runs  {elapsed_precise} elapsed, eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        )
    };
    if let Some(shard) = args.shard {
        let Some((path, file)) = csv_file else {
            return usage_error(SweepError::ShardNeedsCsv);
        };
        return write_shard(&args, shard, (path, file), runs, &progress);
    }
    let output = match run_sweep_with_progress(&args, &progress) {
        Ok(output) => output,
        Err(e) => return usage_error(e),
    };
    progress.finish_and_clear();
    print_output(&output, csv_file)
}

/// Runs one shard and writes its file.
fn write_shard(
    args: &SweepArgs,
    shard: Shard,
    (path, mut file): (&std::path::Path, std::fs::File),
    runs: u64,
    progress: &ProgressBar,
) -> ExitCode {
    let text = match run_shard(args, shard, progress) {
        Ok(text) => text,
        Err(e) => return usage_error(e),
    };
    progress.finish_and_clear();
    if let Err(error) = file.write_all(text.as_bytes()) {
        return usage_error(SweepError::File {
            what: "--csv",
            path: path.to_path_buf(),
            error,
        });
    }
    println!(
        "sweep shard {shard}: {} of {runs} runs written to {}; put the {} shard files together with: idempo-sim merge FILE...",
        text.lines().count() - 3,
        path.display(),
        shard.count
    );
    ExitCode::SUCCESS
}

/// `idempo-sim merge FILE...`: puts the shard files of one sweep together and prints the
/// table and writes the CSV exactly as the unsharded sweep does. Exit status 2 when a file is
/// unreadable, not a shard, of another sweep, or when a shard or a run is missing.
pub fn main_merge(args: MergeArgs) -> ExitCode {
    let mut files = Vec::new();
    for path in &args.files {
        match std::fs::read_to_string(path) {
            Ok(text) => files.push((path.display().to_string(), text)),
            Err(error) => {
                return usage_error(SweepError::File {
                    what: "merge",
                    path: path.clone(),
                    error,
                });
            }
        }
    }
    let output = match merge(&files) {
        Ok((_, output)) => output,
        Err(e) => return usage_error(e),
    };
    match create_csv(&args.csv) {
        Ok(csv_file) => print_output(&output, csv_file),
        Err(e) => usage_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_published_values() {
        // p = 0.5, n = 10: centre 0.5, half 1.96/1.384 * sqrt(0.025 + 0.0096) = 0.2634.
        let half = Proportion::wilson(5, 10);
        assert!((half.low - 0.2366).abs() < 1e-4, "{half:?}");
        assert!((half.high - 0.7634).abs() < 1e-4, "{half:?}");
        let all = Proportion::wilson(20, 20);
        assert_eq!((all.rate, all.high), (1.0, 1.0));
        assert!((all.low - 20.0 / (20.0 + Z_95 * Z_95)).abs() < 1e-12);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![9, 1, 5]), 5.0);
        assert_eq!(median(vec![40, 10, 20, 30]), 25.0);
    }

    #[test]
    fn rate_lists_refuse_repeats_and_blanks() {
        assert_eq!(
            parse_rates("ack-loss", "0, 0.5,1").expect("a valid list"),
            vec![0.0, 0.5, 1.0]
        );
        let error = |flag, text| parse_rates(flag, text).unwrap_err().to_string();
        assert!(error("ack-loss", "0.1,0.1").contains("twice"));
        assert!(error("ack-loss", "0,,1").contains("not a number"));
        assert!(error("duplicate", "NaN").starts_with("--duplicate"));
    }
}
