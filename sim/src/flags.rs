//! The run flags: one table ([`RUN_FLAGS`]) from which the command line's arguments, the
//! printed `replay:` command (and a replay file's `flags` line) and `compare --variant` /
//! `sweep --set` keys all come, so the three cannot drift apart.
//!
//! Each row names a flag, says how it takes its value, how to set it on a [`SimConfig`]
//! (checking the value) and how to print it back. Printing is the inverse of setting, so a
//! config printed by [`replay_words`] and parsed again by [`RunFlags`] is the same config:
//! the replay line *is* the run. A flag is printed when it is one of the always-printed core
//! (the workload, the producer and the broker's window) or when its value differs from the
//! default.
//!
//! ```
//! use idempo_sim::SimConfig;
//! use idempo_sim::flags::{self, replay_words};
//! let mut config = SimConfig::default();
//! flags::set(&mut config, "snapshot-mode", "last-batch")?;
//! let line = replay_words(&config).join(" ");
//! assert!(line.ends_with("--snapshot-mode last-batch"), "{line}");
//! # Ok::<(), idempo_sim::flags::FlagError>(())
//! ```

use crate::config::{
    Acks, Network, SimConfig, parse_range, parse_snapshot_mode, parse_sync, snapshot_mode_name,
    sync_name,
};
use std::fmt;
use std::str::FromStr;

/// Why a flag's value is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// Not a number of the flag's type.
    NotANumber,
    /// A number outside the flag's range.
    OutOfRange {
        /// The smallest value allowed.
        min: String,
        /// The largest value allowed.
        max: String,
    },
    /// Not a probability between 0 and 1.
    NotAProbability,
    /// Not `on` or `off`.
    NotOnOff,
    /// Not `MIN..MAX` (or one number).
    NotARange,
    /// `MIN..MAX` with MIN above MAX.
    MinAboveMax,
    /// None of the names the flag knows.
    NotOneOf(&'static str),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NotANumber => write!(f, "not a number"),
            ValueError::OutOfRange { min, max } => write!(f, "must be between {min} and {max}"),
            ValueError::NotAProbability => write!(f, "not a probability between 0 and 1"),
            ValueError::NotOnOff => write!(f, "expected on or off"),
            ValueError::NotARange => write!(f, "not MIN..MAX in milliseconds"),
            ValueError::MinAboveMax => write!(f, "the minimum is above the maximum"),
            ValueError::NotOneOf(names) => write!(f, "expected one of {names}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A flag given a value it refuses, or a flag that does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `--flag value` with a refused value.
    BadValue {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        error: ValueError,
    },
    /// No run flag has this name.
    Unknown(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::BadValue { flag, value, error } => {
                write!(f, "`{value}` is not a valid value for --{flag}: {error}")
            }
            FlagError::Unknown(name) => write!(
                f,
                "unknown setting `{name}` (expected one of: {})",
                names().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for FlagError {}

/// How a flag takes its value on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `--flag VALUE`, with the value's placeholder name.
    Value(&'static str),
    /// `--flag` alone turns it on (as a variant: `flag=on` or `flag=off`).
    Switch,
}

/// When the replay line prints a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Always: the core of every run's description.
    Always,
    /// Only when its value differs from the default.
    WhenChanged,
}

/// One row of the table.
pub struct RunFlag {
    /// The flag without dashes: `ack-loss`.
    pub name: &'static str,
    /// How it takes its value.
    pub form: Form,
    /// When the replay line prints it.
    pub replay: Replay,
    /// The help text.
    pub help: &'static str,
    set: fn(&mut SimConfig, &str) -> Result<(), ValueError>,
    get: fn(&SimConfig) -> String,
}

impl RunFlag {
    /// Sets the flag's value on `config`, or says why the value is refused.
    pub fn set(&self, config: &mut SimConfig, value: &str) -> Result<(), FlagError> {
        (self.set)(config, value).map_err(|error| FlagError::BadValue {
            flag: self.name,
            value: value.to_string(),
            error,
        })
    }

    /// The flag's value in `config`, as it is written on the command line (`on`/`off` for a
    /// switch).
    pub fn value(&self, config: &SimConfig) -> String {
        (self.get)(config)
    }

    /// The words that give `config` this flag's value: `["--flag", "value"]`, `["--flag"]`
    /// for a switch that is on, nothing for a switch that is off.
    pub fn words(&self, config: &SimConfig) -> Vec<String> {
        let value = self.value(config);
        match self.form {
            Form::Switch if value == "on" => vec![format!("--{}", self.name)],
            Form::Switch => Vec::new(),
            Form::Value(_) => vec![format!("--{}", self.name), value],
        }
    }
}

impl fmt::Debug for RunFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunFlag").field("name", &self.name).finish()
    }
}

fn int<T: FromStr + PartialOrd + fmt::Display>(v: &str, min: T, max: T) -> Result<T, ValueError> {
    let n: T = v.trim().parse().map_err(|_| ValueError::NotANumber)?;
    if n < min || n > max {
        return Err(ValueError::OutOfRange {
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(n)
}

/// Parses a probability between 0 and 1 (every probability flag, the simulator's and the
/// fault proxy's).
pub fn probability(v: &str) -> Result<f64, ValueError> {
    let p: f64 = v.trim().parse().map_err(|_| ValueError::NotANumber)?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(ValueError::NotAProbability)
    }
}

fn on_off(v: &str) -> Result<bool, ValueError> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ValueError::NotOnOff),
    }
}

fn on_off_name(on: bool) -> String {
    if on { "on" } else { "off" }.to_string()
}

/// Parses `MIN..MAX` milliseconds (or one number for both), MIN at most MAX (every latency
/// and delay flag, the simulator's and the fault proxy's).
pub fn latency(v: &str) -> Result<(u64, u64), ValueError> {
    let (min, max) = parse_range(v)?;
    if min > max {
        return Err(ValueError::MinAboveMax);
    }
    Ok((min, max))
}

/// Shorthand for a row.
macro_rules! flag {
    ($name:literal, $form:expr, $replay:expr, $help:literal, |$c:ident, $v:ident| $set:expr, |$g:ident| $get:expr) => {
        RunFlag {
            name: $name,
            form: $form,
            replay: $replay,
            help: $help,
            set: |$c: &mut SimConfig, $v: &str| -> Result<(), ValueError> {
                $set;
                Ok(())
            },
            get: |$g: &SimConfig| -> String { $get },
        }
    };
}

use Form::{Switch, Value};
use Replay::{Always, WhenChanged};

/// Every flag that changes a run, in the order the replay line prints them.
pub static RUN_FLAGS: &[RunFlag] = &[
    flag!(
        "seed",
        Value("N"),
        Always,
        "Seed of every fault decision; the same seed and flags print the same bytes.",
        |c, v| c.seed = int(v, 0, u64::MAX)?,
        |c| c.seed.to_string()
    ),
    flag!(
        "producers",
        Value("N"),
        Always,
        "Number of producers.",
        |c, v| c.producers = int(v, 1, 10_000)?,
        |c| c.producers.to_string()
    ),
    flag!(
        "partitions",
        Value("N"),
        Always,
        "Number of partitions.",
        |c, v| c.partitions = int(v, 1, 10_000)?,
        |c| c.partitions.to_string()
    ),
    flag!(
        "records",
        Value("N"),
        Always,
        "Records each producer sends.",
        |c, v| c.records = int(v, 1, u64::from(u32::MAX))?,
        |c| c.records.to_string()
    ),
    flag!(
        "batch-records",
        Value("N"),
        Always,
        "Records per batch.",
        |c, v| c.batch_records = int(v, 1, 100_000)?,
        |c| c.batch_records.to_string()
    ),
    flag!(
        "max-in-flight",
        Value("N"),
        Always,
        "Produce requests each producer keeps in flight (Kafka: at most 5 with idempotence).",
        |c, v| c.max_in_flight = int(v, 1, 1_000)?,
        |c| c.max_in_flight.to_string()
    ),
    flag!(
        "ack-loss",
        Value("P"),
        Always,
        "Probability that a response (the ack) is lost after the broker handled the request.",
        |c, v| c.ack_loss = probability(v)?,
        |c| c.ack_loss.to_string()
    ),
    flag!(
        "request-loss",
        Value("P"),
        Always,
        "Probability that a request is lost before the broker.",
        |c, v| c.request_loss = probability(v)?,
        |c| c.request_loss.to_string()
    ),
    flag!(
        "latency-ms",
        Value("MIN..MAX"),
        Always,
        "One-way latency range (random per message; with --network datagram it reorders messages in flight).",
        |c, v| (c.latency_min_ms, c.latency_max_ms) = latency(v)?,
        |c| format!("{}..{}", c.latency_min_ms, c.latency_max_ms)
    ),
    flag!(
        "request-timeout-ms",
        Value("MS"),
        Always,
        "Producer request.timeout.ms.",
        |c, v| c.request_timeout_ms = int(v, 1, u64::MAX)?,
        |c| c.request_timeout_ms.to_string()
    ),
    flag!(
        "delivery-timeout-ms",
        Value("MS"),
        Always,
        "Producer delivery.timeout.ms.",
        |c, v| c.delivery_timeout_ms = int(v, 1, u64::MAX)?,
        |c| c.delivery_timeout_ms.to_string()
    ),
    flag!(
        "retries",
        Value("N"),
        Always,
        "Producer retries.",
        |c, v| c.retries = int(v, 0, u32::MAX)?,
        |c| c.retries.to_string()
    ),
    flag!(
        "retry-backoff-ms",
        Value("MS"),
        Always,
        "Producer retry.backoff.ms.",
        |c, v| c.retry_backoff_ms = int(v, 0, u64::MAX)?,
        |c| c.retry_backoff_ms.to_string()
    ),
    flag!(
        "idempotence",
        Value("on|off"),
        Always,
        "Idempotence in the producer and the broker.",
        |c, v| c.idempotence = on_off(v)?,
        |c| on_off_name(c.idempotence)
    ),
    flag!(
        "dedup-window",
        Value("N"),
        Always,
        "Batches the broker retains per producer per partition (Kafka: 5).",
        |c, v| c.dedup_window = int(v, 1, 1024)?,
        |c| c.dedup_window.to_string()
    ),
    flag!(
        "broker-profile",
        Value("kafka|kafka-2.4|kafka-1.0|kafka-0.11|redpanda-21.10"),
        WhenChanged,
        "Whose dedup rules the broker follows: kafka (today's, the default), kafka-2.4 (snapshots of the last batch, UNKNOWN_PRODUCER_ID for an unknown producer), kafka-1.0 (1.0 to 2.3: also evicts producer state with the log head, KAFKA-7190), kafka-0.11 (the last batch only, KAFKA-5494; OUT_OF_ORDER_SEQUENCE_NUMBER for an unknown producer, KAFKA-5793) or redpanda-21.10 (no 5-batch cache, redpanda #3039).",
        |c, v| c.broker_profile = v.parse().map_err(|_| ValueError::NotOneOf(
            "kafka, kafka-2.4, kafka-1.0, kafka-0.11, redpanda-21.10"
        ))?,
        |c| c.broker_profile.name().to_string()
    ),
    flag!(
        "unsafe-max-in-flight",
        Switch,
        WhenChanged,
        "Allow --max-in-flight above --dedup-window (an experiment that breaks idempotence).",
        |c, v| c.unsafe_max_in_flight = on_off(v)?,
        |c| on_off_name(c.unsafe_max_in_flight)
    ),
    flag!(
        "network",
        Value("tcp|proxy|datagram"),
        WhenChanged,
        "Network model: tcp (FIFO; a loss breaks the connection), proxy (FIFO; single frames dropped, as by a fault proxy), datagram (each message lost or delayed on its own, so latency reorders them).",
        |c, v| c.network = Network::parse(v)?,
        |c| c.network.name().to_string()
    ),
    flag!(
        "client-profile",
        Value("java|idempo|java-2.4|librdkafka"),
        WhenChanged,
        "The producer's behaviour: java (Kafka's Java client 3.9/4.x exactly, the default), idempo (every idempo improvement on, first-batch-alone included; the producer crate's docs list each difference), java-2.4 (Kafka 2.4's client, before KIP-360's safe epoch bump: --unknown-producer-resets-sequences and --failed-batch-adjusts-sequences always on) or librdkafka (librdkafka 2.x's idempotence rules: fatal OUT_OF_ORDER_SEQUENCE_NUMBER at the head, drained epoch bumps, message.timeout.ms in queues).",
        |c, v| c.client_profile = v
            .parse()
            .map_err(|_| ValueError::NotOneOf("java, idempo, java-2.4, librdkafka"))?,
        |c| c.client_profile.name().to_string()
    ),
    flag!(
        "unknown-producer-resets-sequences",
        Switch,
        WhenChanged,
        "Java client up to 2.4.1 (always on with --client-profile java-2.4): UNKNOWN_PRODUCER_ID while the partition's last acknowledged offset is below the log start restarts its sequences at 0 under the same epoch, and otherwise fails the batch; off (2.5.0 and later, KIP-360): the epoch is bumped.",
        |c, v| c.java.unknown_producer_resets_sequences = on_off(v)?,
        |c| on_off_name(c.java.unknown_producer_resets_sequences)
    ),
    flag!(
        "failed-batch-adjusts-sequences",
        Switch,
        WhenChanged,
        "Java client up to 2.4.1 (always on with --client-profile java-2.4, adjustSequencesDueToFailedBatch): a batch refused for good before its retries ran out moves the partition's later batches down into its sequences under the same epoch, a batch whose earlier attempt may still land among them; off (2.5.0 and later, KAFKA-8805, KIP-360): the epoch is bumped.",
        |c, v| c.java.failed_batch_adjusts_sequences = on_off(v)?,
        |c| on_off_name(c.java.failed_batch_adjusts_sequences)
    ),
    flag!(
        "bump-skips-idle-partitions",
        Switch,
        WhenChanged,
        "Java client 2.5.0 to 2.7.x (KAFKA-12152, fixed in 2.8.0): an epoch bump restarts the sequences of the partitions that asked and of those whose last old-epoch batch is acknowledged; a partition idle at the bump keeps its sequence under the new epoch and is refused. Off: today's rule.",
        |c, v| c.java.bump_skips_idle_partitions = on_off(v)?,
        |c| on_off_name(c.java.bump_skips_idle_partitions)
    ),
    flag!(
        "failed-batch-waits-for-in-flight",
        Switch,
        WhenChanged,
        "Not in Kafka (KAFKA-14034's fix proposed in PR #13796, not merged): a batch failed for good marks its partition unresolved, so the epoch bump waits for the partition's in-flight batches. Off (Kafka 2.5.0 to today): it asks for a bump at once, which re-stamps earlier batches still being retried.",
        |c, v| c.java.failed_batch_waits_for_in_flight = on_off(v)?,
        |c| on_off_name(c.java.failed_batch_waits_for_in_flight)
    ),
    flag!(
        "librdkafka-timeout-bump",
        Value("on|off"),
        WhenChanged,
        "With --client-profile librdkafka: a batch that expires in its queue (message.timeout.ms, here --delivery-timeout-ms) drains and bumps the epoch (on, librdkafka 1.0.0, #2163) or leaves its sequence gap to be sent (off, librdkafka 0.11.6).",
        |c, v| c.librdkafka.message_timeout_bump = on_off(v)?,
        |c| on_off_name(c.librdkafka.message_timeout_bump)
    ),
    flag!(
        "librdkafka-possibly-persisted-ack",
        Value("on|off"),
        WhenChanged,
        "With --client-profile librdkafka: a retriable error of unknown outcome (timeout, cut connection) moves next_ack_seq past the batch (on, librdkafka up to 2.2.0) or not (off, 2.3.0 and later, #4438).",
        |c, v| c.librdkafka.possibly_persisted_advances_next_ack = on_off(v)?,
        |c| on_off_name(c.librdkafka.possibly_persisted_advances_next_ack)
    ),
    flag!(
        "librdkafka-out-of-order-bump",
        Value("on|off"),
        WhenChanged,
        "With --client-profile librdkafka: OUT_OF_ORDER_SEQUENCE_NUMBER for a batch behind the expected one drains and bumps the epoch (on, librdkafka 2.x, #4953 open) or is retried unchanged (off, Java's rule, proposed in librdkafka PR #4972).",
        |c, v| c.librdkafka.out_of_order_behind_head_bumps = on_off(v)?,
        |c| on_off_name(c.librdkafka.out_of_order_behind_head_bumps)
    ),
    flag!(
        "first-batch-alone",
        Switch,
        WhenChanged,
        "Producer improvement not in Kafka: send a partition's first batch alone until the broker acknowledged one (closes the hole --network proxy exposes); on with --client-profile idempo.",
        |c, v| c.first_batch_alone = on_off(v)?,
        |c| on_off_name(c.first_batch_alone)
    ),
    flag!(
        "duplicate",
        Value("P"),
        WhenChanged,
        "Probability that the network delivers a request twice.",
        |c, v| c.duplicate = probability(v)?,
        |c| c.duplicate.to_string()
    ),
    flag!(
        "corrupt",
        Value("P"),
        WhenChanged,
        "Probability that a bit of a request's batch flips (the CRC catches it: CORRUPT_MESSAGE).",
        |c, v| c.corrupt = probability(v)?,
        |c| c.corrupt.to_string()
    ),
    flag!(
        "header-corrupt",
        Value("P"),
        WhenChanged,
        "Probability that a bit of a request's first batch header flips outside the CRC (the magic byte): the broker refuses the batch with INVALID_RECORD, which the producer does not retry.",
        |c, v| c.header_corrupt = probability(v)?,
        |c| c.header_corrupt.to_string()
    ),
    flag!(
        "spike",
        Value("P"),
        WhenChanged,
        "Probability that a request is delayed by --spike-ms (a latency spike).",
        |c, v| c.spike = probability(v)?,
        |c| c.spike.to_string()
    ),
    flag!(
        "spike-ms",
        Value("MS"),
        WhenChanged,
        "Delay of a latency spike; by default longer than the request timeout.",
        |c, v| c.spike_ms = int(v, 0, u64::MAX)?,
        |c| c.spike_ms.to_string()
    ),
    flag!(
        "broker-crashes",
        Value("N"),
        WhenChanged,
        "Broker crashes (power loss) at moments drawn from the seed.",
        |c, v| c.broker_crashes = int(v, 0, u32::MAX)?,
        |c| c.broker_crashes.to_string()
    ),
    flag!(
        "broker-restarts",
        Value("N"),
        WhenChanged,
        "Clean broker restarts at moments drawn from the seed.",
        |c, v| c.broker_restarts = int(v, 0, u32::MAX)?,
        |c| c.broker_restarts.to_string()
    ),
    flag!(
        "producer-restarts",
        Value("N"),
        WhenChanged,
        "Restarts of each producer process: a new process (new producer id) re-sends what was not acknowledged. Idempotence does not span producer sessions.",
        |c, v| c.producer_restarts = int(v, 0, u32::MAX)?,
        |c| c.producer_restarts.to_string()
    ),
    flag!(
        "delete-records",
        Value("N"),
        WhenChanged,
        "DeleteRecords requests at moments drawn from the seed, each moving one partition's log start offset to its high watermark (Kafka's DeleteRecords with offset -1); the checker reads the deleted batches as the head of the log, so they are not lost. One broker only.",
        |c, v| c.delete_records = int(v, 0, u32::MAX)?,
        |c| c.delete_records.to_string()
    ),
    flag!(
        "append-failure",
        Value("P"),
        WhenChanged,
        "Probability that the broker's disk fails the append of a produce request's batch (a write error): nothing is written, the answer is KAFKA_STORAGE_ERROR (56).",
        |c, v| c.append_failure = probability(v)?,
        |c| c.append_failure.to_string()
    ),
    flag!(
        "producer-state-before-append",
        Value("on|off"),
        WhenChanged,
        "Broker: enter a batch into the producer state before its log append (on: Kafka 0.11.0 to 1.0.x, KAFKA-6683, so a failed append leaves the state ahead of the log) or after it succeeded (off, the default: Kafka 1.1.0 and later).",
        |c, v| c.producer_state_before_append = on_off(v)?,
        |c| on_off_name(c.producer_state_before_append)
    ),
    flag!(
        "out-of-order-sequence-fatal",
        Value("on|off"),
        WhenChanged,
        "Producer: OUT_OF_ORDER_SEQUENCE_NUMBER stops the producer (on: Kafka 0.11.0's client, which did not retry it, and whose documentation told the application to close the producer) or is retried with an epoch bump (off, the default: today's Java client, KIP-360).",
        |c, v| c.out_of_order_sequence_fatal = on_off(v)?,
        |c| on_off_name(c.out_of_order_sequence_fatal)
    ),
    flag!(
        "initial-producer-epoch",
        Value("N"),
        WhenChanged,
        "Broker: the epoch InitProducerId hands out with a new producer id (Kafka: 0). idempo's simulation setting: near 32767 a run reaches epoch exhaustion after a bump or two (KAFKA-5283).",
        |c, v| c.initial_producer_epoch = int(v, 0, i16::MAX)?,
        |c| c.initial_producer_epoch.to_string()
    ),
    flag!(
        "epoch-bump-wraps",
        Value("on|off"),
        WhenChanged,
        "Producer: an epoch bump at 32767 (Short.MAX_VALUE) wraps to -32768 (on: the (epoch + 1).toShort of Kafka before KAFKA-5283, 0.11.0.0) or drops the producer id and asks for a new one (off, the default: KAFKA-5283's rule, Java's bumpIdempotentProducerEpoch).",
        |c, v| c.epoch_bump_wraps = on_off(v)?,
        |c| on_off_name(c.epoch_bump_wraps)
    ),
    flag!(
        "producer-per-batch",
        Switch,
        WhenChanged,
        "The workload creates a producer per batch: each batch goes out from a new producer (new producer id) once the previous one's was answered, as clients that create a producer per message do (KIP-854).",
        |c, v| c.producer_per_batch = on_off(v)?,
        |c| on_off_name(c.producer_per_batch)
    ),
    flag!(
        "max-producer-ids-per-partition",
        Value("N|off"),
        WhenChanged,
        "idempo's bound, beyond Kafka: a partition keeps the state of at most N producer ids, evicting the one whose last batch is oldest (expired ones first); off (the default) is Kafka's: no bound but producer.id.expiration.ms.",
        |c, v| c.max_producer_ids_per_partition = match v {
            "off" => None,
            n => Some(int(n, 1, usize::MAX)?),
        },
        |c| c
            .max_producer_ids_per_partition
            .map_or("off".to_string(), |n| n.to_string())
    ),
    flag!(
        "producer-state-budget",
        Value("IDS|off"),
        WhenChanged,
        "The most producer ids with state a broker may hold before its memory runs out: the checker names a peak above it (producer state within its memory budget); off (the default) checks nothing.",
        |c, v| c.producer_state_budget = match v {
            "off" => None,
            n => Some(int(n, 0, u64::MAX)?),
        },
        |c| c
            .producer_state_budget
            .map_or("off".to_string(), |n| n.to_string())
    ),
    flag!(
        "producer-id-expiration-check-interval-ms",
        Value("MS"),
        WhenChanged,
        "Broker producer.id.expiration.check.interval.ms.",
        |c, v| c.producer_id_expiration_check_interval_ms = int(v, 1, i64::MAX)?,
        |c| c.producer_id_expiration_check_interval_ms.to_string()
    ),
    flag!(
        "producer-id-expiration-ms",
        Value("MS"),
        WhenChanged,
        "Broker producer.id.expiration.ms.",
        |c, v| c.producer_id_expiration_ms = int(v, 1, i64::MAX)?,
        |c| c.producer_id_expiration_ms.to_string()
    ),
    flag!(
        "max-virtual-ms",
        Value("MS"),
        WhenChanged,
        "Stop after this much virtual time.",
        |c, v| c.max_virtual_ms = int(v, 1, u64::MAX)?,
        |c| c.max_virtual_ms.to_string()
    ),
    flag!(
        "sync",
        Value("every-append|interval:MS|never"),
        WhenChanged,
        "When the broker syncs its log: every-append (before each ack), interval:MS, or never (only at clean shutdown, Kafka's default). Decides what a crash loses.",
        |c, v| c.sync = parse_sync(v)?,
        |c| sync_name(c.sync)
    ),
    flag!(
        "snapshot-mode",
        Value("full|last-batch"),
        WhenChanged,
        "What producer-state snapshots hold: full (idempo: the whole dedup window) or last-batch (Kafka: the window shrinks to one batch after a restart).",
        |c, v| c.snapshot_mode = parse_snapshot_mode(v)?,
        |c| snapshot_mode_name(c.snapshot_mode).to_string()
    ),
    flag!(
        "snapshot-interval-ms",
        Value("MS"),
        WhenChanged,
        "How often the broker snapshots producer state.",
        |c, v| c.snapshot_interval_ms = int(v, 1, i64::MAX)?,
        |c| c.snapshot_interval_ms.to_string()
    ),
    flag!(
        "brokers",
        Value("N"),
        WhenChanged,
        "Brokers in the cluster; with 1 (the default) there is no replication and the run is the one-broker run.",
        |c, v| c.brokers = int(v, 1, 64)?,
        |c| c.brokers.to_string()
    ),
    flag!(
        "replication-factor",
        Value("R"),
        WhenChanged,
        "Replicas of every partition (replication.factor), at most --brokers.",
        |c, v| c.replication_factor = int(v, 1, 64)?,
        |c| c.replication_factor.to_string()
    ),
    flag!(
        "min-insync-replicas",
        Value("N"),
        WhenChanged,
        "Broker min.insync.replicas: an acks=all write needs this many in-sync replicas, else NOT_ENOUGH_REPLICAS (Kafka's default 1).",
        |c, v| c.min_insync_replicas = int(v, 1, 64)?,
        |c| c.min_insync_replicas.to_string()
    ),
    flag!(
        "acks",
        Value("all|1|0"),
        WhenChanged,
        "Producer acks: all (the in-sync replicas have it), 1 (the leader has it) or 0 (no answer); 1 and 0 need --idempotence off, as in Kafka.",
        |c, v| c.acks = Acks::parse(v)?,
        |c| c.acks.name().to_string()
    ),
    flag!(
        "unclean-leader-election",
        Switch,
        WhenChanged,
        "Controller unclean.leader.election.enable: with no in-sync replica alive, elect any live replica (and lose what it lacks).",
        |c, v| c.unclean_leader_election = on_off(v)?,
        |c| on_off_name(c.unclean_leader_election)
    ),
    flag!(
        "truncation",
        Value("leader-epoch|high-watermark"),
        WhenChanged,
        "Where a follower cuts its log when its leader changes: leader-epoch (KIP-101, Kafka 0.11+, the default) or high-watermark (before 0.11: at its own high watermark, fetching without epochs).",
        |c, v| c.truncation = v
            .parse()
            .map_err(|_| ValueError::NotOneOf("leader-epoch, high-watermark"))?,
        |c| c.truncation.name().to_string()
    ),
    flag!(
        "replica-lag-time-max-ms",
        Value("MS"),
        WhenChanged,
        "Broker replica.lag.time.max.ms: a follower not caught up for this long leaves the ISR.",
        |c, v| c.replica_lag_time_max_ms = int(v, 1, i64::MAX as u64)?,
        |c| c.replica_lag_time_max_ms.to_string()
    ),
    flag!(
        "broker-session-timeout-ms",
        Value("MS"),
        WhenChanged,
        "Controller broker.session.timeout.ms: a broker that has not heartbeated for this long is fenced and loses its leaderships (KRaft's default 9000).",
        |c, v| c.broker_session_timeout_ms = int(v, 1, i64::MAX as u64)?,
        |c| c.broker_session_timeout_ms.to_string()
    ),
    flag!(
        "inter-broker-latency-ms",
        Value("MIN..MAX"),
        WhenChanged,
        "One-way latency range between brokers (follower fetches and their answers).",
        |c, v| (c.inter_broker_latency_min_ms, c.inter_broker_latency_max_ms) = latency(v)?,
        |c| format!(
            "{}..{}",
            c.inter_broker_latency_min_ms, c.inter_broker_latency_max_ms
        )
    ),
    flag!(
        "inter-broker-loss",
        Value("P"),
        WhenChanged,
        "Probability that a message between brokers (a follower fetch or its answer) is lost; the follower retries after replica.socket.timeout.ms.",
        |c, v| c.inter_broker_loss = probability(v)?,
        |c| c.inter_broker_loss.to_string()
    ),
    flag!(
        "leader-kills",
        Value("N"),
        WhenChanged,
        "Crashes (power loss) of the current leader of a partition drawn from the seed (needs --brokers 2 or more).",
        |c, v| c.leader_kills = int(v, 0, u32::MAX)?,
        |c| c.leader_kills.to_string()
    ),
    flag!(
        "isolations",
        Value("N"),
        WhenChanged,
        "A broker drawn from the seed is cut off from the other brokers, the controller and the clients for a drawn time, then healed.",
        |c, v| c.isolations = int(v, 0, u32::MAX)?,
        |c| c.isolations.to_string()
    ),
    flag!(
        "correlated-crashes",
        Value("N"),
        WhenChanged,
        "Every replica of a partition drawn from the seed loses power at once (what --sync decides to lose).",
        |c, v| c.correlated_crashes = int(v, 0, u32::MAX)?,
        |c| c.correlated_crashes.to_string()
    ),
];

/// The row of flag `name` (without dashes).
pub fn find(name: &str) -> Option<&'static RunFlag> {
    RUN_FLAGS.iter().find(|f| f.name == name)
}

/// Every flag's name, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    RUN_FLAGS.iter().map(|f| f.name)
}

/// Sets flag `name` to `value` on `config`.
pub fn set(config: &mut SimConfig, name: &str, value: &str) -> Result<(), FlagError> {
    find(name)
        .ok_or_else(|| FlagError::Unknown(name.to_string()))?
        .set(config, value)
}

/// The words that reproduce `config`: every always-printed flag, then every other whose value
/// differs from the default, in table order.
pub fn replay_words(config: &SimConfig) -> Vec<String> {
    let default = SimConfig::default();
    RUN_FLAGS
        .iter()
        .filter(|f| f.replay == Replay::Always || f.value(config) != f.value(&default))
        .flat_map(|f| f.words(config))
        .collect()
}

/// The run flags as command-line arguments: flatten it into a clap command
/// (`#[command(flatten)]`) and read the config from it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFlags {
    /// The config the flags give (the defaults for flags not given).
    pub config: SimConfig,
}

impl clap::FromArgMatches for RunFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = RunFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for flag in RUN_FLAGS {
            let value = match flag.form {
                Form::Switch if matches.get_flag(flag.name) => "on".to_string(),
                Form::Switch => continue,
                Form::Value(_) => match matches.get_one::<String>(flag.name) {
                    Some(v) => v.clone(),
                    None => continue,
                },
            };
            flag.set(&mut self.config, &value).map_err(|e| {
                clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n"))
            })?;
        }
        Ok(())
    }
}

impl clap::Args for RunFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        let default = SimConfig::default();
        for flag in RUN_FLAGS {
            let arg = clap::Arg::new(flag.name).long(flag.name);
            let arg = match flag.form {
                Form::Switch => arg.help(flag.help).action(clap::ArgAction::SetTrue),
                Form::Value(placeholder) => arg
                    .value_name(placeholder)
                    .help(format!("{} [default: {}]", flag.help, flag.value(&default)))
                    .value_parser(move |v: &str| -> Result<String, ValueError> {
                        (flag.set)(&mut SimConfig::default(), v).map(|()| v.to_string())
                    }),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with every flag set to a value other than its default.
    fn every_flag_changed() -> SimConfig {
        let mut c = SimConfig::default();
        for (name, value) in [
            ("seed", "9"),
            ("producers", "2"),
            ("partitions", "3"),
            ("records", "77"),
            ("batch-records", "7"),
            ("max-in-flight", "3"),
            ("ack-loss", "0.25"),
            ("request-loss", "0.5"),
            ("latency-ms", "2..9"),
            ("request-timeout-ms", "300"),
            ("delivery-timeout-ms", "5000"),
            ("retries", "4"),
            ("retry-backoff-ms", "7"),
            ("idempotence", "off"),
            ("dedup-window", "2"),
            ("broker-profile", "kafka-0.11"),
            ("unsafe-max-in-flight", "on"),
            ("network", "proxy"),
            ("client-profile", "idempo"),
            ("librdkafka-timeout-bump", "off"),
            ("librdkafka-possibly-persisted-ack", "on"),
            ("librdkafka-out-of-order-bump", "off"),
            ("unknown-producer-resets-sequences", "on"),
            ("failed-batch-adjusts-sequences", "on"),
            ("bump-skips-idle-partitions", "on"),
            ("failed-batch-waits-for-in-flight", "on"),
            ("first-batch-alone", "on"),
            ("duplicate", "0.1"),
            ("corrupt", "0.2"),
            ("header-corrupt", "0.05"),
            ("spike", "0.3"),
            ("spike-ms", "400"),
            ("broker-crashes", "1"),
            ("broker-restarts", "2"),
            ("producer-restarts", "1"),
            ("delete-records", "2"),
            ("append-failure", "0.05"),
            ("producer-state-before-append", "on"),
            ("out-of-order-sequence-fatal", "on"),
            ("initial-producer-epoch", "32000"),
            ("epoch-bump-wraps", "on"),
            ("producer-per-batch", "on"),
            ("max-producer-ids-per-partition", "100"),
            ("producer-state-budget", "1000"),
            ("producer-id-expiration-check-interval-ms", "60"),
            ("producer-id-expiration-ms", "600"),
            ("max-virtual-ms", "9000"),
            ("sync", "interval:50"),
            ("snapshot-mode", "last-batch"),
            ("snapshot-interval-ms", "250"),
            ("brokers", "4"),
            ("replication-factor", "3"),
            ("min-insync-replicas", "2"),
            ("acks", "1"),
            ("unclean-leader-election", "on"),
            ("truncation", "high-watermark"),
            ("replica-lag-time-max-ms", "1500"),
            ("broker-session-timeout-ms", "2500"),
            ("inter-broker-latency-ms", "2..8"),
            ("inter-broker-loss", "0.01"),
            ("leader-kills", "2"),
            ("isolations", "1"),
            ("correlated-crashes", "1"),
        ] {
            set(&mut c, name, value).expect("a valid value");
        }
        c
    }

    #[test]
    fn every_flag_of_the_table_is_set_by_the_list_above() {
        let changed = every_flag_changed();
        let default = SimConfig::default();
        for flag in RUN_FLAGS {
            assert_ne!(
                flag.value(&changed),
                flag.value(&default),
                "--{} is not exercised",
                flag.name
            );
        }
    }

    #[test]
    fn the_replay_words_parse_back_to_the_same_config() {
        #[derive(clap::Parser)]
        #[command(no_binary_name = true)]
        struct Cli {
            #[command(flatten)]
            flags: RunFlags,
        }
        for config in [SimConfig::default(), every_flag_changed()] {
            let words = replay_words(&config);
            let parsed = <Cli as clap::Parser>::try_parse_from(&words).expect("the words parse");
            assert_eq!(parsed.flags.config, config, "{}", words.join(" "));
        }
    }

    #[test]
    fn refused_values_name_the_flag_and_the_reason() {
        let mut c = SimConfig::default();
        let e = set(&mut c, "ack-loss", "1.5").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`1.5` is not a valid value for --ack-loss: not a probability between 0 and 1"
        );
        assert!(
            set(&mut c, "latency-ms", "9..3")
                .unwrap_err()
                .to_string()
                .contains("minimum is above")
        );
        assert!(matches!(
            set(&mut c, "colour", "red"),
            Err(FlagError::Unknown(_))
        ));
        assert_eq!(c, SimConfig::default(), "a refused value changes nothing");
    }
}
