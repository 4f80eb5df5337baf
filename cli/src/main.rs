//! The `idempo-sim` command line: the simulator and study tools of `idempo-sim`, and their
//! TCP edge from `idempo-net` (`run --bootstrap`, `proxy`). It lives in its own crate so that
//! the simulator library depends on no sockets and no tokio.
//!
//! ```text
//! cargo run --release --bin idempo-sim -- run --ack-loss 0.2
//! ```

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// The simulator allocates and frees small buffers on every event (requests, responses,
/// batch lists): with glibc's malloc that was about a tenth of a run's instructions, and
/// mimalloc's thread-local free lists cut it. Built with `no_thp`: with transparent huge
/// pages the kernel zeroed 2 MiB pages over and over (bench/SPEED.md, "Third pass").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use idempo_broker::BrokerConfig;
use idempo_sim::flags::RunFlags;
use idempo_sim::trace::Trace;
use idempo_sim::{SimConfig, Simulation, compare, explain, report, script};
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

/// The flags shared by `run`, `trace` and `compare`: the run flags of
/// [`idempo_sim::flags::RUN_FLAGS`] (the workload, the producer, the broker and the network;
/// the same table gives the replay line and `compare --variant`), and `--swarm`. Defaults give
/// an interesting run in well under a second.
#[derive(Args, Clone, Debug)]
struct RunArgs {
    #[command(flatten)]
    flags: RunFlags,
    /// Each seed draws its own fault mix (FoundationDB/VOPR-style swarm testing); the replay
    /// line prints the mix drawn.
    #[arg(long)]
    swarm: bool,
}

impl RunArgs {
    fn config(&self) -> SimConfig {
        if self.swarm {
            idempo_sim::swarm::swarm(&self.flags.config)
        } else {
            self.flags.config.clone()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Simulate producers, a faulty network and a broker; check the logs for exactly-once.
    ///
    /// Exit status: 0 when the checker finds no anomaly, 1 when it finds one, 2 for bad
    /// arguments.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// Print one line per event (sent, dropped, appended, duplicate, retried, acked ...).
        #[arg(long)]
        trace: bool,
        /// Print one JSON summary object instead of the text report.
        #[arg(long, conflicts_with = "trace")]
        json: bool,
        /// Also measure the run: wall-clock time, simulated requests per second, peak memory.
        /// (These figures vary from run to run; everything else is deterministic.)
        #[arg(long, conflicts_with = "trace")]
        bench: bool,
        /// If the run fails, shrink its faults to a minimal failing set and write it to FILE
        /// as a replay file.
        #[arg(long, value_name = "FILE")]
        shrink: Option<String>,
        /// Most runs to spend shrinking.
        #[arg(long, default_value_t = 500)]
        shrink_runs: usize,
        /// Run the seed twice and compare a fingerprint of every event.
        #[arg(long, conflicts_with = "trace")]
        check_determinism: bool,
        /// Run over real TCP instead of the simulator: through a Kafka-aware fault proxy to
        /// the broker at HOST:PORT, or `embedded` for an idempo broker started on loopback.
        /// (`--bootstrap` alone means `embedded`.)
        #[arg(
            long,
            value_name = "HOST:PORT|embedded",
            num_args = 0..=1,
            default_missing_value = "embedded",
            conflicts_with_all = ["trace", "svg", "html", "shrink", "check_determinism"]
        )]
        bootstrap: Option<String>,
        /// Draw the run as a Lamport diagram (SVG) to FILE; small runs only.
        #[arg(long, value_name = "FILE")]
        svg: Option<String>,
        /// The same diagram as a self-contained HTML page with hover text and a legend.
        #[arg(long, value_name = "FILE")]
        html: Option<String>,
    },
    /// Follow one record through a run: every send, loss, retry and broker verdict (with the
    /// rule and the window that decided it) to its final offset.
    Trace {
        #[command(flatten)]
        args: RunArgs,
        /// The record: PRODUCER:INDEX, the record's 0-based index in that producer's workload.
        #[arg(long, value_name = "PRODUCER:INDEX", value_parser = record_ref)]
        record: (u32, u64),
    },
    /// A Kafka-aware fault proxy in front of any broker: loses produce acks and requests and
    /// duplicates requests by seeded probability, closing the connection after each loss as a
    /// broken TCP connection would, and rewrites Metadata so clients stay behind it.
    Proxy(idempo_net::proxy_cli::ProxyArgs),
    /// Run a replay file (written by `run --shrink`): exactly the faults it lists.
    Replay {
        /// The replay file.
        file: String,
        /// Print one line per event.
        #[arg(long)]
        trace: bool,
    },
    /// Run the same seed and fault schedule with idempotence on and off (and variants) and
    /// print the counts side by side.
    ///
    /// Exit status: 0 when the idempotence-on run passes, 1 when it does not, 2 for bad
    /// arguments.
    Compare {
        #[command(flatten)]
        args: RunArgs,
        /// Another column: the idempotence-on run with one setting changed, as KEY=VALUE
        /// (dedup-window=1, max-in-flight=1, ack-loss=0.3 ...). Repeatable.
        #[arg(long = "variant", value_name = "KEY=VALUE")]
        variants: Vec<String>,
        /// Print the columns as a JSON array of run summaries.
        #[arg(long)]
        json: bool,
    },
    /// Sweep a grid of fault rates and settings over many seeds; print rates of anomalies
    /// with confidence intervals and latency percentiles.
    Sweep(idempo_sim::sweep::SweepArgs),
    /// Put the shard files of a sweep (`sweep --shard K/N --csv FILE`) together: prints the
    /// table and writes the CSV exactly as the unsharded sweep does.
    Merge(idempo_sim::sweep::MergeArgs),
    /// Compare idempotency designs (Kafka sequences, Stripe keys, the IETF header, AWS
    /// tokens, SQS windows, Pub/Sub, webhook dedup) under the same faults: a policy ×
    /// scenario matrix of exactly-once, duplicate, lost or refused, with reasons.
    Policies(idempo_sim::policies::cli::PoliciesArgs),
    /// The bug zoo: documented idempotence bugs of Kafka and Redpanda, each replayed with
    /// the historical behaviour and with the fix (`zoo list`, `zoo run ID`, `zoo check`).
    Zoo(idempo_sim::zoo::cli::ZooArgs),
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
        /// How far ahead of the broker clock a record may be stamped (`off`: no check).
        #[arg(long, value_name = "MS|off", default_value = "3600000", value_parser = idempo_broker::parse_timestamp_after_max_ms)]
        log_message_timestamp_after_max_ms: i64,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Whether a run flag was given on the command line (not left at its default).
    let given = |flag: &str| {
        matches.subcommand_matches("run").is_some_and(|run| {
            run.value_source(flag) == Some(clap::parser::ValueSource::CommandLine)
        })
    };
    match cli.command {
        Command::Run {
            args,
            trace,
            json,
            bench,
            shrink,
            shrink_runs,
            check_determinism,
            svg,
            html,
            bootstrap,
        } => {
            if let Some(bootstrap) = bootstrap {
                let rf_given = given("replication-factor");
                let min_isr_given = given("min-insync-replicas");
                return run_tcp(&args.config(), &bootstrap, json, (rf_given, min_isr_given));
            }
            let options = RunOptions {
                svg,
                html,
                trace,
                json,
                bench,
                shrink,
                shrink_runs,
                check_determinism,
            };
            run(args.config(), &options)
        }
        Command::Trace { args, record } => follow_record(args.config(), record),
        Command::Replay { file, trace } => replay(&file, trace),
        Command::Proxy(args) => idempo_net::proxy_cli::main("idempo-sim proxy", &args),
        Command::Sweep(args) => idempo_sim::sweep::main_sweep(args),
        Command::Merge(args) => idempo_sim::sweep::main_merge(args),
        Command::Policies(args) => idempo_sim::policies::cli::main_policies(args),
        Command::Zoo(args) => idempo_sim::zoo::cli::main_zoo(args),
        Command::Compare {
            args,
            variants,
            json,
        } => run_compare(args.config(), &variants, json),
        Command::Explain {
            file,
            json,
            dedup_window,
            idempotence,
            producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms,
            log_message_timestamp_after_max_ms,
        } => {
            let config = BrokerConfig {
                log_message_timestamp_after_max_ms,
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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let streamed = explain::stream(&steps, config, |line| {
        let written = if json {
            writeln!(out, "{}", line.json)
        } else {
            writeln!(out, "{}", line.text)
        };
        written.is_ok() // false: stdout closed (e.g. piped into `head`)
    });
    if let Err(e) = streamed {
        return usage_error(e);
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

struct RunOptions {
    svg: Option<String>,
    html: Option<String>,
    trace: bool,
    json: bool,
    bench: bool,
    shrink: Option<String>,
    shrink_runs: usize,
    check_determinism: bool,
}

fn run(config: SimConfig, options: &RunOptions) -> ExitCode {
    if let Err(e) = config.validate() {
        return usage_error(e);
    }
    if options.check_determinism {
        return check_determinism(&config);
    }
    let mut out = std::io::stdout().lock();
    if !options.json {
        let _ = write!(out, "{}", report::header(&config));
        let _ = out.flush();
    }
    let drawing = options.svg.is_some() || options.html.is_some();
    let tracer = match (options.trace, drawing) {
        (true, true) => Some(Trace::to_writer(Box::new(std::io::stdout())).keeping()),
        (true, false) => Some(Trace::to_writer(Box::new(std::io::stdout()))),
        (false, true) => Some(Trace::collecting()),
        (false, false) => None,
    };
    let sim = match Simulation::new(config.clone(), tracer) {
        Ok(sim) => sim,
        Err(e) => return usage_error(e),
    };
    let started = std::time::Instant::now();
    let (result, tracer) = sim.run();
    let wall = started.elapsed();
    if let Some(t) = &tracer
        && let Err(code) = draw(&config, options, t.events())
    {
        return code;
    }
    if let Some(mut t) = tracer {
        t.flush();
    }
    if options.json {
        let _ = writeln!(out, "{}", report::json(&config, &result));
    } else {
        let _ = write!(out, "{}", report::summary(&config, &result));
    }
    if options.bench {
        print_bench(&mut out, &result, wall);
    }
    if let (Some(file), false) = (&options.shrink, result.check.passed())
        && let Err(code) = shrink_to(file, &config, &result, options.shrink_runs, &mut out)
    {
        return code;
    }
    if result.check.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Writes the `--svg` and `--html` diagrams of a run's events.
fn draw(
    config: &SimConfig,
    options: &RunOptions,
    events: &[idempo_sim::events::Timed],
) -> Result<(), ExitCode> {
    type Render = fn(
        &SimConfig,
        &[idempo_sim::events::Timed],
    ) -> Result<String, idempo_sim::diagram::DiagramError>;
    let renders: [(&Option<String>, Render); 2] = [
        (&options.svg, idempo_sim::diagram::svg),
        (&options.html, idempo_sim::diagram::html),
    ];
    for (file, render) in renders {
        let Some(file) = file else { continue };
        let text = render(config, events)
            .map_err(|e| usage_error(format!("cannot draw `{file}`: {e}")))?;
        std::fs::write(file, text)
            .map_err(|e| usage_error(format!("cannot write `{file}`: {e}")))?;
    }
    Ok(())
}

/// The `--bench` lines: wall time, rates and peak memory; batch sends per second against a
/// heap baseline measured now.
fn print_bench(out: &mut impl Write, result: &idempo_sim::RunReport, wall: std::time::Duration) {
    let secs = wall.as_secs_f64().max(1e-9);
    let peak = peak_rss_kib().map_or_else(
        || "unknown".to_string(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    );
    let _ = writeln!(
        out,
        "bench: {:.3} s wall, {} requests ({:.0} simulated requests/s), {} events ({:.0} events/s), {:.0} records/s, peak RSS {peak}",
        secs,
        result.requests,
        result.requests as f64 / secs,
        result.events,
        result.events as f64 / secs,
        result.records_sent as f64 / secs,
    );
    let _ = writeln!(out, "{}", idempo_sim::bench::Figures::measure(result, wall));
}

/// `--shrink FILE`: reduces a failing run's faults and writes them as a replay file.
fn shrink_to(
    file: &str,
    config: &SimConfig,
    result: &idempo_sim::RunReport,
    runs: usize,
    out: &mut impl Write,
) -> Result<(), ExitCode> {
    let shrunk = idempo_sim::shrink::shrink(config, result.faults_happened.clone(), runs)
        .map_err(usage_error)?;
    let Some(shrunk) = shrunk else {
        let _ = writeln!(
            out,
            "shrink: the replayed faults did not fail the run; nothing written"
        );
        return Ok(());
    };
    let text = idempo_sim::plan::replay_file(config, &shrunk.faults);
    std::fs::write(file, text)
        .map_err(|e| usage_error(format!("cannot write --shrink file `{file}`: {e}")))?;
    let _ = writeln!(
        out,
        "shrunk: {} of {} faults still fail it ({} runs); replay: idempo-sim replay {file}",
        shrunk.faults.len(),
        shrunk.original,
        shrunk.runs
    );
    for f in &shrunk.faults {
        let _ = writeln!(out, "  {f}");
    }
    Ok(())
}

/// Runs the seed twice with a fingerprint of every event and compares.
fn check_determinism(config: &SimConfig) -> ExitCode {
    let mut prints = Vec::new();
    for _ in 0..2 {
        let sim = match Simulation::new(config.clone(), Some(Trace::fingerprint_only())) {
            Ok(sim) => sim,
            Err(e) => return usage_error(e),
        };
        let (result, trace) = sim.run();
        let trace = trace.expect("a fingerprinting trace was given");
        prints.push((
            trace.fingerprint(),
            trace.len(),
            report::json(config, &result).to_string(),
        ));
    }
    let same = prints[0] == prints[1];
    println!(
        "determinism: 2 runs of seed {}: {} events each, fingerprints {:#018x} and {:#018x}: {}",
        config.seed,
        prints[0].1,
        prints[0].0,
        prints[1].0,
        if same { "identical" } else { "DIFFERENT" }
    );
    if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `run --bootstrap`: the run over TCP ([`idempo_net::harness`]). `given` says whether
/// `--replication-factor` and `--min-insync-replicas` were on the command line: an embedded
/// cluster takes its own defaults for those that were not
/// ([`idempo_net::harness::embedded_cluster_config`]), and the replay line names them.
fn run_tcp(config: &SimConfig, bootstrap: &str, json: bool, given: (bool, bool)) -> ExitCode {
    let embedded = bootstrap == "embedded";
    let config = if embedded {
        idempo_net::harness::embedded_cluster_config(config, given.0, given.1)
    } else {
        config.clone()
    };
    if let Err(e) = config.validate() {
        return usage_error(e);
    }
    if !embedded && config.brokers > 1 {
        return usage_error(format!(
            "--brokers: `run --bootstrap {bootstrap}` produces to the cluster behind that \
             address, whatever its size; --brokers {} starts a cluster with `--bootstrap embedded`",
            config.brokers
        ));
    }
    for (flag, n) in [
        ("correlated-crashes", config.correlated_crashes),
        ("broker-crashes", config.broker_crashes),
        ("broker-restarts", config.broker_restarts),
        ("producer-restarts", config.producer_restarts),
    ] {
        if n > 0 {
            return usage_error(format!(
                "--{flag}: not injected over TCP (`run --bootstrap` injects the proxy's \
                 message faults and, with `--bootstrap embedded --brokers N`, --leader-kills \
                 and --isolations); leave out --bootstrap to simulate it"
            ));
        }
    }
    if std::env::var_os("RUST_LOG").is_some() {
        // The clients', brokers' and proxy's logs, to stderr, only when asked for.
        idempo_net::process::init_logging();
    }
    let target = (!embedded).then_some(bootstrap);
    let replay = config.replay_command(&format!("run --bootstrap {bootstrap}"));
    match idempo_net::harness::run(&config, target) {
        Ok(r) => {
            if json {
                let faults: Vec<serde_json::Value> = r
                    .cluster_faults
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "fault": f.fault.to_string(),
                            "at_ms": f.at_ms,
                            "outcome": f.outcome,
                        })
                    })
                    .collect();
                let value = serde_json::json!({
                    "seed": config.seed,
                    "idempotence": config.idempotence,
                    "broker": r.broker,
                    "topic": r.topic,
                    "cluster_faults": faults,
                    "produce_seconds": r.produce_seconds,
                    "batches_per_second": r.batches_per_second(),
                    "check": r.check,
                    "verdict": if r.check.passed() { "pass" } else { "fail" },
                    "replay": replay,
                });
                println!("{value}");
            } else {
                print!(
                    "{}",
                    report::header(&config).replace("idempo-sim run", "idempo-sim run --bootstrap")
                );
                print!("{}", idempo_net::harness::summary(&config, &r));
                println!("replay: {replay}");
            }
            if r.check.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("idempo-sim: {e}");
            ExitCode::from(3)
        }
    }
}

/// A `--record` value that is not `PRODUCER:INDEX`.
#[derive(Debug)]
enum RecordRefError {
    /// No colon.
    NotProducerIndex(String),
    /// The producer is not a number.
    Producer(String),
    /// The index is not a number.
    Index(String),
}

impl std::fmt::Display for RecordRefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordRefError::NotProducerIndex(text) => {
                write!(f, "`{text}` is not PRODUCER:INDEX (e.g. 0:17)")
            }
            RecordRefError::Producer(p) => write!(f, "`{p}` is not a producer number"),
            RecordRefError::Index(i) => write!(f, "`{i}` is not a record index"),
        }
    }
}

impl std::error::Error for RecordRefError {}

/// Parses `PRODUCER:INDEX`.
fn record_ref(text: &str) -> Result<(u32, u64), RecordRefError> {
    let (p, i) = text
        .split_once(':')
        .ok_or_else(|| RecordRefError::NotProducerIndex(text.to_string()))?;
    let p = p
        .parse()
        .map_err(|_| RecordRefError::Producer(p.to_string()))?;
    let i = i
        .parse()
        .map_err(|_| RecordRefError::Index(i.to_string()))?;
    Ok((p, i))
}

/// `idempo-sim trace --record`: runs the config keeping every event, then follows one record.
fn follow_record(config: SimConfig, (producer, record): (u32, u64)) -> ExitCode {
    if let Err(e) = config.validate() {
        return usage_error(e);
    }
    let sim = match Simulation::new(config.clone(), Some(Trace::collecting())) {
        Ok(sim) => sim,
        Err(e) => return usage_error(e),
    };
    let (result, trace) = sim.run();
    let trace = trace.expect("a collecting trace was given");
    match idempo_sim::record_trace::follow(&config, trace.events(), producer, record) {
        Ok(text) => {
            print!("{text}");
            println!(
                "run verdict: {}; replay: {}",
                if result.check.passed() {
                    "PASS"
                } else {
                    "FAIL"
                },
                config.replay_command("run")
            );
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(format!("--record {producer}:{record}: {e}")),
    }
}

/// Runs a replay file: its flags, and exactly its faults.
fn replay(file: &str, trace: bool) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return usage_error(format!("cannot read replay file `{file}`: {e}")),
    };
    let parsed = match idempo_sim::plan::parse_replay(&text) {
        Ok(parsed) => parsed,
        Err(e) => return usage_error(format!("{file}: {e}")),
    };
    let words = std::iter::once("idempo-sim".to_string())
        .chain(std::iter::once("run".to_string()))
        .chain(parsed.flags);
    let config = match Cli::try_parse_from(words) {
        Ok(Cli {
            command: Command::Run { args, .. },
        }) => args.config(),
        Ok(_) => return usage_error(format!("{file}: the flags line is not a run")),
        Err(e) => return usage_error(format!("{file}: flags: {e}")),
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "{}",
        report::header(&config).replace("idempo-sim run", "idempo-sim replay")
    );
    let _ = writeln!(out, "  faults     {} listed in {file}", parsed.faults.len());
    let _ = out.flush();
    let plan = idempo_sim::plan::FaultPlan::scripted(&config, &parsed.faults);
    let tracer = trace.then(|| Trace::to_writer(Box::new(std::io::stdout())));
    let sim = match Simulation::with_plan(config.clone(), plan, tracer) {
        Ok(sim) => sim,
        Err(e) => return usage_error(e),
    };
    let (result, tracer) = sim.run();
    if let Some(mut t) = tracer {
        t.flush();
    }
    // The faults are the file's, not the seed's draws: the file is what replays this run.
    let summary = report::summary(&config, &result);
    for line in summary.lines() {
        if line.starts_with("replay: ") {
            let _ = writeln!(out, "replay: idempo-sim replay {file}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    if result.check.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run_compare(base: SimConfig, variants: &[String], json: bool) -> ExitCode {
    let configs = match compare::columns(&base, variants) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let mut columns = Vec::new();
    for (label, config) in configs {
        match idempo_sim::run(&config) {
            Ok(report) => columns.push(compare::Column {
                label,
                config,
                report,
            }),
            Err(e) => return usage_error(format!("{label}: {e}")),
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<_> = columns
            .iter()
            .map(|c| serde_json::json!({"label": c.label, "summary": report::json(&c.config, &c.report)}))
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(all));
    } else {
        let _ = write!(
            out,
            "{}",
            report::header(&columns[0].config).replace("idempo-sim run", "idempo-sim compare")
        );
        let _ = write!(out, "\n{}", compare::table(&columns));
        let _ = writeln!(
            out,
            "\nreplay a column: {}",
            columns[0].config.replay_command("run")
        );
    }
    if columns[0].report.check.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
