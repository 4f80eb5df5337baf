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
//! `--verify` then reads every partition back (ListOffsets and Fetch) and checks the records
//! of this run against the delivery reports:
//!
//! | invariant | violated by |
//! |---|---|
//! | no duplicates | a record in the log more than once (extra copies counted) |
//! | no lost acknowledged records | an acknowledged record absent from the log |
//! | per-partition order | a record behind a later record of this run on its partition |
//! | nothing written that was reported failed | a record reported definitely not written, found in the log |
//! | no sequence gaps within an epoch | consecutive batches of one producer id and epoch whose sequences do not follow |
//! | records where they were sent | a record of this run on another partition than it was sent to |
//! | acknowledged offsets match the log | a delivery report's base offset is not where the batch's first record sits |
//!
//! Exit status: 0 done (and verified, with `--verify`); 1 `--verify` found an anomaly; 2 bad
//! arguments (the message names the flag); 3 the run could not be done (no broker, the
//! producer failed fatally, reading back failed).

use bytes::{BufMut, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use idempo_net::client::{
    ClientConfig, ClientError, ConfigError, Delivered, DeliveryError, DeliveryReport,
    KafkaProducer, KafkaReader, ProducerStats,
};
use idempo_protocol::{Record, RecordBatch, Sequence};
use std::collections::{BTreeMap, HashMap};
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
    /// Bootstrap broker, HOST:PORT.
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

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("{s:?} is not one of all, -1, 1, 0")),
    }
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
                E::MaxInFlightAboveDedupWindow { .. } | E::ZeroMaxInFlight => "--max-in-flight",
                E::IdempotenceRequiresAcksAll { .. } | E::InvalidAcks { .. } => "--acks",
                E::ZeroRequestTimeout => "--request-timeout-ms",
                E::DeliveryTimeoutBelowRequestTimeout { .. } => "--delivery-timeout-ms",
                E::IdempotenceRequiresRetries | E::ZeroDedupWindow => "--idempotence",
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
    first: u32,
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
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
            return usage_error(
                "--partitions",
                format!(
                    "{n}, but topic {:?} has {}",
                    args.topic,
                    producer.partitions()
                ),
            );
        }
    };
    let producer_index = args.producer_index.unwrap_or_else(random_index);
    println!(
        "producing {} records of {} bytes in batches of {} to topic {:?} ({partitions} \
         partitions, leader {}), idempotence {}, producer index {producer_index}",
        args.records,
        args.record_size,
        args.batch_records,
        args.topic,
        producer.leader(),
        if config.producer.idempotence {
            "on"
        } else {
            "off"
        },
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
    report_failures(&ledger);
    if !args.verify {
        return ExitCode::SUCCESS;
    }
    let mut read_config = config;
    read_config.allow_auto_topic_creation = false;
    match verify(
        &read_config,
        &ledger,
        producer_index,
        args.records,
        args.batch_records,
    )
    .await
    {
        Ok(verdict) => {
            verdict.print(producer_index);
            if verdict.anomalies() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("idempo-producer: verify: {e}");
            ExitCode::from(3)
        }
    }
}

type Run = (Vec<BatchEntry>, f64, Arc<Mutex<Perf>>, ProducerStats);

/// Sends every batch (rate-limited), waits for every report, closes the producer.
async fn produce(
    args: &Args,
    producer: KafkaProducer,
    partitions: i32,
    producer_index: u32,
) -> Result<Run, ClientError> {
    let perf = Arc::new(Mutex::new(Perf::new(u64::from(args.record_size))));
    let reporter = {
        let perf = Arc::clone(&perf);
        let every = Duration::from_millis(args.reporting_interval_ms);
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
    };
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
            first,
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

// ----- the exactly-once check ---------------------------------------------------------

/// Violations of each invariant, and the ack ledger (batches per fate).
#[derive(Debug, Default, PartialEq, Eq)]
struct Verdict {
    partitions: i32,
    records_read: u64,
    other_records: u64,
    duplicates: u64,
    lost: u64,
    out_of_order: u64,
    failed_but_written: u64,
    sequence_gaps: u64,
    misplaced: u64,
    wrong_offsets: u64,
    acked_first_try: u64,
    acked_after_retry: u64,
    written_more_than_once: u64,
    failed_not_written: u64,
    possibly_persisted_written: u64,
    possibly_persisted_not_written: u64,
    unresolved: u64,
}

impl Verdict {
    fn invariants(&self) -> [(&'static str, u64); 7] {
        [
            ("no duplicates", self.duplicates),
            ("no lost acknowledged records", self.lost),
            ("per-partition order", self.out_of_order),
            (
                "nothing written that was reported failed",
                self.failed_but_written,
            ),
            ("no sequence gaps within an epoch", self.sequence_gaps),
            ("records where they were sent", self.misplaced),
            ("acknowledged offsets match the log", self.wrong_offsets),
        ]
    }

    fn anomalies(&self) -> u64 {
        self.invariants().iter().map(|(_, n)| n).sum()
    }

    fn print(&self, producer_index: u32) {
        println!(
            "verify: read {} partitions: {} records of producer index {producer_index}, {} other records",
            self.partitions, self.records_read, self.other_records
        );
        for (name, violations) in self.invariants() {
            let verdict = if violations == 0 { "ok" } else { "VIOLATED" };
            println!("verify: {name:<42} {violations:>8}  {verdict}");
        }
        println!(
            "verify: ack ledger (batches): {} acked at the first try, {} acked after a retry, \
             {} written more than once, {} failed and not written, {} possibly persisted and \
             written, {} possibly persisted and not written, {} without a report",
            self.acked_first_try,
            self.acked_after_retry,
            self.written_more_than_once,
            self.failed_not_written,
            self.possibly_persisted_written,
            self.possibly_persisted_not_written,
            self.unresolved,
        );
        if self.anomalies() == 0 {
            println!(
                "verify: exactly once: every acknowledged record is in the log once, in order"
            );
        } else {
            println!("verify: FAILED: {} anomalies", self.anomalies());
        }
    }
}

async fn verify(
    config: &ClientConfig,
    ledger: &[BatchEntry],
    producer_index: u32,
    records: u32,
    batch_records: u32,
) -> Result<Verdict, ClientError> {
    let mut reader = KafkaReader::connect(config).await?;
    let mut logs = Vec::new();
    for partition in 0..reader.partitions() {
        logs.push((partition, reader.read_partition(partition).await?));
    }
    let mut verdict = check(&logs, ledger, producer_index, records, batch_records);
    verdict.partitions = reader.partitions();
    Ok(verdict)
}

/// Checks the logs read back against the ledger (see the invariants in the crate docs).
fn check(
    logs: &[(i32, Vec<RecordBatch>)],
    ledger: &[BatchEntry],
    producer_index: u32,
    records: u32,
    batch_records: u32,
) -> Verdict {
    let mut v = Verdict::default();
    let mut copies = vec![0u8; records as usize];
    let mut first_offset = vec![-1i64; records as usize];
    let mut last_sequence: HashMap<(i64, i16, i32), Sequence> = HashMap::new();
    for (partition, batches) in logs {
        let mut highest: Option<u32> = None;
        for batch in batches {
            let mut ours = false;
            for record in &batch.records {
                let value = record.value.as_deref().unwrap_or_default();
                let identity = value.first_chunk::<8>().map(|id| {
                    (
                        u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
                        u32::from_be_bytes([id[4], id[5], id[6], id[7]]),
                    )
                });
                let Some((_, index)) = identity.filter(|(p, _)| *p == producer_index) else {
                    v.other_records += 1;
                    continue;
                };
                ours = true;
                v.records_read += 1;
                let Some(slot) = copies.get_mut(index as usize) else {
                    v.misplaced += 1; // an index this run never wrote
                    continue;
                };
                *slot = slot.saturating_add(1);
                if *slot > 1 {
                    v.duplicates += 1;
                    continue;
                }
                first_offset[index as usize] = batch.base_offset + i64::from(record.offset_delta);
                if ledger[(index / batch_records) as usize].partition != *partition {
                    v.misplaced += 1;
                }
                match highest {
                    Some(top) if index < top => v.out_of_order += 1,
                    _ => highest = Some(index),
                }
            }
            if ours && batch.producer_id.is_some() {
                let key = (batch.producer_id.0, batch.producer_epoch.0, *partition);
                if let Some(previous) = last_sequence.get(&key)
                    && !batch.base_sequence.follows(*previous)
                {
                    v.sequence_gaps += 1;
                }
                last_sequence.insert(key, batch.last_sequence());
            }
        }
    }
    for entry in ledger {
        let range = entry.first as usize..(entry.first + entry.count) as usize;
        let written = &copies[range];
        let present = written.iter().filter(|c| **c > 0).count() as u64;
        let most = written.iter().copied().max().unwrap_or(0);
        if most > 1 {
            v.written_more_than_once += 1;
        }
        match &entry.outcome {
            Some(Ok(delivered)) => {
                v.lost += written.iter().filter(|c| **c == 0).count() as u64;
                let at = first_offset[entry.first as usize];
                if delivered.base_offset >= 0 && at >= 0 && at != delivered.base_offset {
                    v.wrong_offsets += 1;
                }
                if delivered.attempts <= 1 {
                    v.acked_first_try += 1;
                } else {
                    v.acked_after_retry += 1;
                }
            }
            Some(Err(e)) if !e.is_possibly_persisted() => {
                v.failed_but_written += present;
                if present == 0 {
                    v.failed_not_written += 1;
                }
            }
            Some(Err(_)) if present > 0 => v.possibly_persisted_written += 1,
            Some(Err(_)) => v.possibly_persisted_not_written += 1,
            None => v.unresolved += 1,
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_net::client::FailureReason;
    use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId};

    const INDEX: u32 = 7;

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

    fn acked(partition: i32, first: u32, base_offset: i64) -> BatchEntry {
        BatchEntry {
            partition,
            first,
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
        let logs = vec![(0, vec![batch(0, 0, 0, 2), batch(2, 2, 2, 2)])];
        let ledger = vec![acked(0, 0, 0), acked(0, 2, 2)];
        let v = check(&logs, &ledger, INDEX, 4, 2);
        assert_eq!(v.anomalies(), 0, "{v:?}");
        assert_eq!(v.records_read, 4);
        assert_eq!(v.acked_first_try, 2);
    }

    #[test]
    fn the_check_sees_duplicates_loss_order_gaps_and_wrong_offsets() {
        // Batch 1 first, then batch 0 twice: reordered, a gap, a duplicate, offsets wrong.
        let logs = vec![(
            0,
            vec![batch(0, 2, 2, 2), batch(2, 0, 0, 2), batch(4, 0, 0, 2)],
        )];
        let ledger = vec![acked(0, 0, 0), acked(0, 2, 2)];
        let v = check(&logs, &ledger, INDEX, 4, 2);
        assert_eq!(v.duplicates, 2);
        assert_eq!(v.out_of_order, 2);
        assert_eq!(v.sequence_gaps, 2);
        assert_eq!(v.wrong_offsets, 2);
        assert_eq!(v.written_more_than_once, 1);
        let v = check(&[(0, vec![])], &ledger, INDEX, 4, 2);
        assert_eq!(v.lost, 4);
    }

    #[test]
    fn definite_failure_written_is_an_anomaly_possibly_persisted_is_not() {
        let logs = vec![(1, vec![batch(0, 0, 0, 2), batch(2, 2, 2, 2)])];
        let definite = BatchEntry {
            outcome: Some(Err(DeliveryError::Definite {
                reason: FailureReason::Broker(ErrorCode::InvalidRecord),
                attempts: 1,
            })),
            ..acked(1, 0, 0)
        };
        let maybe = BatchEntry {
            outcome: Some(Err(DeliveryError::PossiblyPersisted {
                reason: FailureReason::RequestTimeout,
                attempts: 2,
            })),
            ..acked(1, 2, 2)
        };
        let v = check(&logs, &[definite, maybe], INDEX, 4, 2);
        assert_eq!(v.failed_but_written, 2);
        assert_eq!(v.possibly_persisted_written, 1);
        assert_eq!(v.anomalies(), 2);
    }

    #[test]
    fn records_of_other_runs_and_other_partitions_are_told_apart() {
        let mut foreign = batch(0, 0, 0, 2);
        foreign.records = batch_records(INDEX + 1, 0, 2, 16);
        let logs = vec![(0, vec![foreign]), (1, vec![batch(0, 0, 0, 2)])];
        let v = check(&logs, &[acked(0, 0, 0)], INDEX, 2, 2);
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
