//! `idempo-producer`: idempo's idempotent producer against any Kafka-compatible broker, in
//! the style of Kafka's `kafka-producer-perf-test`, with an exactly-once check.
//!
//! ```text
//! idempo-producer --records 200000 --record-size 100               # 127.0.0.1:9092, topic idempo-perf
//! idempo-producer --bootstrap 127.0.0.1:19092 --topic t --throughput 5000 --verify
//! idempo-producer --idempotence off --acks 1 --max-in-flight 10 --verify   # show what it prevents
//! ```
//!
//! Every record's value starts with its identity, 8 bytes: the producer index (`u32`
//! big-endian, random per run unless `--producer-index` is given) and the record's index
//! (`u32` big-endian), padded to `--record-size`, the layout idempo's simulator uses. Batch
//! `b` holds records `b * batch_records ..` and goes to partition `b % partitions`.
//!
//! Every `--reporting-interval-ms` a line reports the window; at the end one line reports the
//! whole run, as `kafka-producer-perf-test` prints them (latency from `send()` to the delivery
//! report, per record, counted for acknowledged records; percentiles to 0.01 ms instead of
//! Kafka's whole milliseconds, since loopback latencies are below one).
//!
//! The producer sends each partition's batches to its leader, one connection per broker
//! (`idempo_net::client`), so `--bootstrap` may name any broker of a cluster.
//!
//! `--verify` then reads every partition back (ListOffsets and Fetch, each partition from
//! its leader, following a leader that moves) and checks the records
//! of this run against the delivery reports with the simulator's own exactly-once checker
//! (`idempo_sim::checker`), printing the same ack ledger, named invariants and limits as
//! `idempo-sim run`, each line prefixed `verify: `. Records of other producer indices in the
//! topic (other runs) are counted apart and left alone.
//!
//! Exit status: 0 done (and verified, with `--verify`); 1 `--verify` found an anomaly; 2 bad
//! arguments (the message names the flag); 3 the run could not be done (no broker, the
//! producer failed fatally, reading back failed).

use bytes::{BufMut, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use idempo_net::client::{
    ClientConfig, ClientError, ConfigError, Delivered, DeliveryError, DeliveryReport,
    KafkaProducer, ProducerStats,
};
use idempo_net::harness::HarnessError;
use idempo_protocol::Record;
use idempo_sim::checker::{self, BatchLedger, CheckReport, KnownFaults, Workload};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Produce records idempotently to a Kafka-compatible broker and report throughput and
/// latency like kafka-producer-perf-test; optionally read them back and check exactly-once.
#[derive(Parser, Debug)]
#[command(name = "idempo-producer", version)]
struct Args {
    /// Bootstrap broker(s), HOST:PORT, or several separated by commas: any brokers of the
    /// cluster (each partition is produced to, and read from, its leader).
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    bootstrap: String,
    /// Topic to produce to (created on first use if the broker auto-creates topics).
    #[arg(long, default_value = "idempo-perf")]
    topic: String,
    /// Records to produce.
    #[arg(long, default_value_t = 100_000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    records: u32,
    /// Bytes per record value (at least 8, the record's identity).
    #[arg(long, default_value_t = 100, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(8..=16 * 1024 * 1024))]
    record_size: u32,
    /// Records per batch (one send() is one RecordBatch).
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    batch_records: u32,
    /// Records per second at most; -1 (any negative) for no limit.
    #[arg(long, default_value_t = -1.0, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true)]
    throughput: f64,
    /// enable.idempotence.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    idempotence: Switch,
    /// max.in.flight.requests.per.connection (at most 5 with idempotence on).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// acks: all (-1), 1 or 0. Idempotence requires all.
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_negative_numbers = true)]
    acks: i16,
    /// request.timeout.ms.
    #[arg(long, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// delivery.timeout.ms (at least --request-timeout-ms).
    #[arg(long, default_value_t = 120_000, value_name = "MS")]
    delivery_timeout_ms: u64,
    /// retry.backoff.ms.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    retry_backoff_ms: u64,
    /// Partitions to spread batches over (the first N); default: all the topic has.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Producer index in every record's identity; default: random.
    #[arg(long, value_name = "N")]
    producer_index: Option<u32>,
    /// Milliseconds between progress lines.
    #[arg(long, default_value_t = 5_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    reporting_interval_ms: u64,
    /// client.id.
    #[arg(long, default_value = "idempo-producer")]
    client_id: String,
    /// Afterwards, read every partition back and check exactly-once; exit 1 on an anomaly.
    #[arg(long)]
    verify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

fn parse_acks(s: &str) -> Result<i16, idempo_sim::flags::ValueError> {
    idempo_sim::config::Acks::parse(s).map(idempo_sim::config::Acks::kafka_value)
}

/// A bad combination of flags: exit 2 naming the flag.
fn usage_error(flag: &str, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("idempo-producer: error: {flag}: {why}");
    ExitCode::from(2)
}

impl Args {
    /// The client settings, or the flag that is refused.
    fn client_config(&self) -> Result<ClientConfig, ExitCode> {
        if self.throughput == 0.0 || self.throughput.is_nan() {
            return Err(usage_error(
                "--throughput",
                format!(
                    "{} is neither a positive rate nor -1 (no limit)",
                    self.throughput
                ),
            ));
        }
        let mut config = ClientConfig::new(self.bootstrap.clone(), self.topic.clone());
        config.client_id = self.client_id.clone();
        config.producer.idempotence = self.idempotence == Switch::On;
        config.producer.max_in_flight = self.max_in_flight as usize;
        config.producer.acks = self.acks;
        config.producer.request_timeout_ms = self.request_timeout_ms;
        config.producer.delivery_timeout_ms = self.delivery_timeout_ms;
        config.producer.retry_backoff_ms = self.retry_backoff_ms;
        if let Err(e) = config.producer.validate() {
            use ConfigError as E;
            let flag = match e {
                E::MaxInFlightAboveDedupWindow { .. }
                | E::MaxInFlightAboveIdempotenceLimit { .. }
                | E::ZeroMaxInFlight => "--max-in-flight",
                E::IdempotenceRequiresAcksAll { .. } | E::InvalidAcks { .. } => "--acks",
                E::ZeroRequestTimeout => "--request-timeout-ms",
                E::DeliveryTimeoutBelowRequestTimeout { .. } => "--delivery-timeout-ms",
                E::IdempotenceRequiresRetries | E::ZeroDedupWindow => "--idempotence",
                // The TCP client never turns cluster routing on; named for completeness.
                E::EmptyBootstrap => "--bootstrap",
            };
            return Err(usage_error(flag, e));
        }
        Ok(config)
    }
}

// ----- the run -------------------------------------------------------------------------

/// What happened to one batch.
#[derive(Clone, Debug)]
struct BatchEntry {
    partition: i32,
    count: u32,
    /// `None` until the delivery report (or forever, if the producer task died).
    outcome: Option<Result<Delivered, DeliveryError>>,
}

/// kafka-producer-perf-test's `Stats`: a window for progress lines and the whole run.
#[derive(Debug)]
struct Perf {
    record_size: u64,
    window_start: Instant,
    window_records: u64,
    window_latency_us: u64,
    window_max_us: u64,
    records: u64,
    latency_sum_us: u64,
    max_us: u64,
    /// `(latency_us, records)` of every acknowledged batch.
    latencies: Vec<(u64, u64)>,
}

impl Perf {
    fn new(record_size: u64) -> Perf {
        Perf {
            record_size,
            window_start: Instant::now(),
            window_records: 0,
            window_latency_us: 0,
            window_max_us: 0,
            records: 0,
            latency_sum_us: 0,
            max_us: 0,
            latencies: Vec::new(),
        }
    }

    fn record(&mut self, latency_us: u64, records: u64) {
        self.window_records += records;
        self.window_latency_us += latency_us * records;
        self.window_max_us = self.window_max_us.max(latency_us);
        self.records += records;
        self.latency_sum_us += latency_us * records;
        self.max_us = self.max_us.max(latency_us);
        self.latencies.push((latency_us, records));
    }

    /// The progress line for the window, and a new window.
    fn window_line(&mut self) -> String {
        let seconds = self.window_start.elapsed().as_secs_f64().max(1e-9);
        let line = rate_line(
            self.window_records,
            seconds,
            self.record_size,
            self.window_latency_us,
            self.window_max_us,
        );
        self.window_start = Instant::now();
        self.window_records = 0;
        self.window_latency_us = 0;
        self.window_max_us = 0;
        format!("{line}.")
    }

    /// The final line, with percentiles.
    fn final_line(&mut self, seconds: f64) -> String {
        let head = rate_line(
            self.records,
            seconds,
            self.record_size,
            self.latency_sum_us,
            self.max_us,
        );
        self.latencies.sort_unstable();
        let ms = |q: f64| percentile_us(&self.latencies, self.records, q) as f64 / 1000.0;
        format!(
            "{head}, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            ms(0.5),
            ms(0.95),
            ms(0.99),
            ms(0.999)
        )
    }
}

fn rate_line(
    records: u64,
    seconds: f64,
    record_size: u64,
    latency_sum_us: u64,
    max_us: u64,
) -> String {
    let per_sec = records as f64 / seconds;
    let mb_per_sec = per_sec * record_size as f64 / (1024.0 * 1024.0);
    let avg_ms = if records == 0 {
        0.0
    } else {
        latency_sum_us as f64 / records as f64 / 1000.0
    };
    format!(
        "{records} records sent, {per_sec:.1} records/sec ({mb_per_sec:.2} MB/sec), \
         {avg_ms:.2} ms avg latency, {:.2} ms max latency",
        max_us as f64 / 1000.0
    )
}

/// The latency below which a fraction `q` of the records fall; `sorted` holds
/// `(latency_us, records)` in latency order.
fn percentile_us(sorted: &[(u64, u64)], total: u64, q: f64) -> u64 {
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for &(latency_us, records) in sorted {
        seen += records;
        if seen >= rank {
            return latency_us;
        }
    }
    sorted.last().map_or(0, |l| l.0)
}

/// The values of records `first..first + count`: identity, then padding, one allocation.
fn batch_records(producer_index: u32, first: u32, count: u32, record_size: usize) -> Vec<Record> {
    let mut buf = BytesMut::with_capacity(count as usize * record_size);
    for index in first..first + count {
        buf.put_u32(producer_index);
        buf.put_u32(index);
        for k in 8..record_size {
            buf.put_u8(b'A' + ((index as usize + k) % 26) as u8);
        }
    }
    let values: Bytes = buf.freeze();
    (0..count as usize)
        .map(|k| Record::with_value(0, values.slice(k * record_size..(k + 1) * record_size)))
        .collect()
}

fn random_index() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    nanos ^ std::process::id().rotate_left(16)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.client_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging();
    let producer = match KafkaProducer::connect(config.clone()).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("idempo-producer: {e}");
            return ExitCode::from(3);
        }
    };
    let partitions = match args.partitions {
        None => producer.partitions(),
        Some(n) if n <= producer.partitions() => n,
        Some(n) => {
            let has = producer.partitions();
            let why = format!("{n}, but topic {:?} has {has}", args.topic);
            return usage_error("--partitions", why);
        }
    };
    let producer_index = args.producer_index.unwrap_or_else(random_index);
    let idempotence = if config.producer.idempotence {
        "on"
    } else {
        "off"
    };
    println!(
        "producing {} records of {} bytes in batches of {} to topic {:?} ({partitions} \
         partitions, {}), idempotence {idempotence}, producer index {producer_index}",
        args.records,
        args.record_size,
        args.batch_records,
        args.topic,
        leaders(&producer, partitions),
    );
    let (ledger, seconds, perf, stats) =
        match produce(&args, producer, partitions, producer_index).await {
            Ok(run) => run,
            Err(e) => {
                eprintln!("idempo-producer: {e}");
                return ExitCode::from(3);
            }
        };
    let final_line = perf
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .final_line(seconds);
    println!("{final_line}");
    print_stats(&stats);
    report_failures(&ledger);
    if !args.verify {
        return ExitCode::SUCCESS;
    }
    let mut read_config = config;
    read_config.allow_auto_topic_creation = false;
    match verify(&read_config, &ledger, producer_index, &args).await {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("idempo-producer: verify: {e}");
            ExitCode::from(3)
        }
    }
}

/// Logs to stderr through `RUST_LOG` (default `warn`: the report is the output).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
}

/// The producer's counters, one line.
fn print_stats(stats: &ProducerStats) {
    println!(
        "producer: {} requests, {} batches sent, {} retries, {} request timeouts, {} connection \
         failures, {} duplicates acknowledged, {} epoch bumps, {} batches failed",
        stats.requests_sent,
        stats.batches_sent,
        stats.retries,
        stats.request_timeouts,
        stats.connection_failures,
        stats.duplicates_acked,
        stats.epoch_bumps,
        stats.batches_failed,
    );
}

type Run = (Vec<BatchEntry>, f64, Arc<Mutex<Perf>>, ProducerStats);

/// Prints the window's progress line every `every_ms`, until aborted.
fn spawn_reporter(perf: Arc<Mutex<Perf>>, every_ms: u64) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(every_ms);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let line = perf
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .window_line();
            println!("{line}");
        }
    })
}

/// Sends every batch (rate-limited), waits for every report, closes the producer.
async fn produce(
    args: &Args,
    producer: KafkaProducer,
    partitions: i32,
    producer_index: u32,
) -> Result<Run, ClientError> {
    let perf = Arc::new(Mutex::new(Perf::new(u64::from(args.record_size))));
    let reporter = spawn_reporter(Arc::clone(&perf), args.reporting_interval_ms);
    let batches = args.records.div_ceil(args.batch_records);
    let mut ledger: Vec<BatchEntry> = Vec::with_capacity(batches as usize);
    let mut waiting = JoinSet::new();
    let start = Instant::now();
    let record_size = args.record_size as usize;
    let settle = |ledger: &mut Vec<BatchEntry>, perf: &Mutex<Perf>, done| {
        let (b, latency, report): (usize, Duration, Result<DeliveryReport, ClientError>) = done;
        let entry: &mut BatchEntry = &mut ledger[b];
        if let Ok(report) = report {
            if report.result.is_ok() {
                let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                perf.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(latency_us, u64::from(entry.count));
            }
            entry.outcome = Some(report.result);
        }
    };
    for b in 0..batches {
        let first = b * args.batch_records;
        let count = args.batch_records.min(args.records - first);
        if args.throughput > 0.0 {
            let due = start + Duration::from_secs_f64(f64::from(first) / args.throughput);
            tokio::time::sleep_until(due).await;
        }
        let partition = i32::try_from(b % partitions as u32).unwrap_or(0);
        ledger.push(BatchEntry {
            partition,
            count,
            outcome: None,
        });
        let records = batch_records(producer_index, first, count, record_size);
        let sent_at = Instant::now();
        let delivery = producer.send(partition, records).await?;
        waiting.spawn(async move { (b as usize, sent_at.elapsed(), delivery.await) });
        while let Some(done) = waiting.try_join_next() {
            if let Ok(done) = done {
                settle(&mut ledger, &perf, done);
            }
        }
    }
    while let Some(done) = waiting.join_next().await {
        if let Ok(done) = done {
            settle(&mut ledger, &perf, done);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    reporter.abort();
    let stats = producer.close().await?;
    Ok((ledger, seconds, perf, stats))
}

/// Failed batches, grouped by reason (Kafka's error names).
fn report_failures(ledger: &[BatchEntry]) {
    let mut reasons: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for entry in ledger {
        let reason = match &entry.outcome {
            Some(Ok(_)) => continue,
            Some(Err(e)) => e.to_string(),
            None => "no delivery report".to_string(),
        };
        let slot = reasons.entry(reason).or_default();
        slot.0 += 1;
        slot.1 += u64::from(entry.count);
    }
    for (reason, (batches, records)) in reasons {
        println!("failed: {batches} batches ({records} records): {reason}");
    }
}

/// Where the partitions produced to are led, from the bootstrap Metadata: `leader HOST:PORT`
/// with one leader, else `leaders HOST:PORT (partitions 0, 3), ...`.
fn leaders(producer: &KafkaProducer, partitions: i32) -> String {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for partition in 0..partitions {
        let leader = producer.leader_of(partition).unwrap_or("no leader");
        by_leader.entry(leader).or_default().push(partition);
    }
    if by_leader.len() == 1 {
        let leader = by_leader.keys().next().copied().unwrap_or("no leader");
        return format!("leader {leader}");
    }
    let each: Vec<String> = by_leader
        .iter()
        .map(|(leader, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{leader} (partitions {})", ps.join(", "))
        })
        .collect();
    format!("leaders {}", each.join(", "))
}

// ----- the exactly-once check: the simulator's checker over the topic read back -----

/// The checker's workload and ledger for this run: one producer whose identity is
/// `producer_index`, in a topic that other runs may share.
fn check_inputs(
    ledger: &[BatchEntry],
    producer_index: u32,
    records: u32,
    batch_records: u32,
) -> (Workload, Vec<Vec<BatchLedger>>) {
    let workload = Workload {
        first_producer: producer_index,
        shared_log: true,
        ..Workload::new(1, u64::from(records), batch_records)
    };
    let entries = ledger
        .iter()
        .map(|entry| match &entry.outcome {
            Some(result) => idempo_net::harness::ledger_entry(result),
            None => BatchLedger::default(),
        })
        .collect();
    (workload, vec![entries])
}

/// Checks the log read back against the ledger with the simulator's checker. With
/// `acks=0` a missing record is the known limit (`lost_acks_zero`), as in `idempo-sim run
/// --acks 0`, not an anomaly.
fn check(
    log: idempo_net::harness::Log,
    ledger: &[BatchEntry],
    producer_index: u32,
    records: u32,
    batch_records: u32,
    acks: i16,
) -> CheckReport {
    let (workload, ledgers) = check_inputs(ledger, producer_index, records, batch_records);
    checker::check_log(
        log,
        workload,
        &ledgers,
        |_, b| ledger.get(b as usize).map_or(-1, |e| e.partition),
        |_| Some(0),
        &KnownFaults {
            acks_zero: acks == 0,
            ..KnownFaults::default()
        },
    )
}

/// Reads every partition back and checks it; prints the checker's sections, each line
/// prefixed `verify: `.
async fn verify(
    config: &ClientConfig,
    ledger: &[BatchEntry],
    producer_index: u32,
    args: &Args,
) -> Result<CheckReport, HarnessError> {
    let (partitions, log) = idempo_net::harness::read_log(config).await?;
    let report = check(
        log,
        ledger,
        producer_index,
        args.records,
        args.batch_records,
        args.acks,
    );
    println!(
        "verify: read {partitions} partitions: {} records of producer index {producer_index}, {} other records",
        report.log_records, report.other_records
    );
    for line in idempo_sim::report::check_sections(&report).lines() {
        println!("verify: {line}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_net::client::FailureReason;
    use idempo_protocol::{
        BatchHeader, ErrorCode, ProducerEpoch, ProducerId, RecordBatch, Sequence,
    };

    const INDEX: u32 = 7;

    /// The log as read back: every batch encoded, with its header.
    fn log(partitions: Vec<(i32, Vec<RecordBatch>)>) -> idempo_net::harness::Log {
        partitions
            .into_iter()
            .flat_map(|(partition, batches)| {
                batches.into_iter().map(move |b| {
                    let bytes = b.to_bytes();
                    let header = BatchHeader::parse(&bytes).expect("an encoded batch parses");
                    (partition, header, bytes)
                })
            })
            .collect()
    }

    fn batch(base_offset: i64, seq: i32, first: u32, count: u32) -> RecordBatch {
        let mut b = RecordBatch::idempotent(
            ProducerId(1),
            ProducerEpoch(0),
            Sequence(seq),
            0,
            batch_records(INDEX, first, count, 16),
        );
        for (k, r) in b.records.iter_mut().enumerate() {
            r.offset_delta = k as i32;
        }
        b.base_offset = base_offset;
        b
    }

    /// An acknowledged batch of two records (the ledger's position says which records).
    fn acked(partition: i32, base_offset: i64) -> BatchEntry {
        BatchEntry {
            partition,
            count: 2,
            outcome: Some(Ok(Delivered {
                base_offset,
                producer_id: ProducerId(1),
                producer_epoch: ProducerEpoch(0),
                base_sequence: Sequence(0),
                attempts: 1,
            })),
        }
    }

    #[test]
    fn a_clean_log_passes() {
        let logs = log(vec![(0, vec![batch(0, 0, 0, 2), batch(2, 2, 2, 2)])]);
        let ledger = vec![acked(0, 0), acked(0, 2)];
        let v = check(logs, &ledger, INDEX, 4, 2, -1);
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.log_records, 4);
        assert_eq!(v.ledger.written_acked_first_try, 2);
    }

    #[test]
    fn the_check_sees_duplicates_loss_order_gaps_and_wrong_offsets() {
        // Batch 1 first, then batch 0 twice: reordered, a gap, a duplicate; batch 1, written
        // once, is not where its ack said (batch 0's copies count as duplicates only).
        let logs = log(vec![(
            0,
            vec![batch(0, 2, 2, 2), batch(2, 0, 0, 2), batch(4, 0, 0, 2)],
        )]);
        let ledger = vec![acked(0, 0), acked(0, 2)];
        let v = check(logs, &ledger, INDEX, 4, 2, -1);
        assert_eq!(v.duplicates, 2);
        assert_eq!(v.out_of_order, 2);
        assert_eq!(v.sequence_gaps, 2);
        assert_eq!(v.wrong_offsets, 1);
        assert_eq!(v.ledger.written_more_than_once, 1);
        let v = check(log(vec![(0, vec![])]), &ledger, INDEX, 4, 2, -1);
        assert_eq!(v.lost, 4);
    }

    #[test]
    fn with_acks_zero_a_missing_record_is_the_known_limit_not_a_loss() {
        let ledger = vec![acked(0, 0), acked(0, 2)];
        let v = check(log(vec![(0, vec![])]), &ledger, INDEX, 4, 2, 0);
        assert_eq!(v.lost, 0, "{v:?}");
        assert_eq!(v.lost_acks_zero, 4);
        assert_eq!(v.anomalies(), 0, "acks=0 promised nothing");
    }

    #[test]
    fn definite_failure_written_is_an_anomaly_possibly_persisted_is_not() {
        let logs = log(vec![(1, vec![batch(0, 0, 0, 2), batch(2, 2, 2, 2)])]);
        let definite = BatchEntry {
            outcome: Some(Err(DeliveryError::Definite {
                reason: FailureReason::Broker(ErrorCode::InvalidRecord),
                attempts: 1,
            })),
            ..acked(1, 0)
        };
        let maybe = BatchEntry {
            outcome: Some(Err(DeliveryError::PossiblyPersisted {
                reason: FailureReason::RequestTimeout,
                attempts: 2,
            })),
            ..acked(1, 2)
        };
        let v = check(logs, &[definite, maybe], INDEX, 4, 2, -1);
        assert_eq!(v.failed_but_written, 2);
        assert_eq!(v.ledger.failed_possibly_persisted_written, 1);
        assert_eq!(v.anomalies(), 2);
    }

    #[test]
    fn records_of_other_runs_and_other_partitions_are_told_apart() {
        let mut foreign = batch(0, 0, 0, 2);
        foreign.records = batch_records(INDEX + 1, 0, 2, 16);
        let logs = log(vec![(0, vec![foreign]), (1, vec![batch(0, 0, 0, 2)])]);
        let v = check(logs, &[acked(0, 0)], INDEX, 2, 2, -1);
        assert_eq!(v.other_records, 2);
        assert_eq!(v.misplaced, 2, "sent to 0, found on 1");
    }

    #[test]
    fn percentiles_weigh_records() {
        let sorted = [(100, 98), (5_000, 1), (9_000, 1)];
        assert_eq!(percentile_us(&sorted, 100, 0.5), 100);
        assert_eq!(percentile_us(&sorted, 100, 0.99), 5_000);
        assert_eq!(percentile_us(&sorted, 100, 0.999), 9_000);
    }

    #[test]
    fn values_carry_the_identity_then_padding() {
        let records = batch_records(3, 10, 2, 12);
        let v = records[1].value.as_deref().unwrap_or_default();
        assert_eq!(v.len(), 12);
        assert_eq!(&v[..8], &[0, 0, 0, 3, 0, 0, 0, 11]);
    }

    #[test]
    fn acks_parse_like_kafka() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }
}
