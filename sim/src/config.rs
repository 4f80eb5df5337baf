//! Everything a simulation run depends on. Two runs with equal configs print the same bytes.
//!
//! Every field that changes a run has one row in [`crate::flags::RUN_FLAGS`], from which the
//! command line, the replay line ([`SimConfig`]'s `Display`) and `compare --variant` come.

use crate::flags::ValueError;
use std::fmt;

/// How the network carries frames between a producer and the broker.
///
/// | model | order | a lost frame | how the client notices |
/// |---|---|---|---|
/// | `tcp` (default) | FIFO per connection | breaks the connection: it and every later frame on it are gone | a request unanswered for `request_timeout_ms`; then it closes the connection and retries everything awaiting an answer |
/// | `proxy` | FIFO per connection | only that frame is gone (a Kafka-aware proxy dropped it); later frames flow | a response that answers a later request than the oldest awaited (Kafka's `NetworkClient` then closes the connection), or the timeout |
/// | `datagram` | none: random latency reorders frames | only that frame is gone | each request's own timeout; no connection to close |
///
/// Kafka's protocol assumes the first. `proxy` is what the fault proxy does to real clients
/// (issue 5); it produces sequence gaps (`OUT_OF_ORDER_SEQUENCE_NUMBER`) and exposes a hazard
/// of KIP-360's rule that an unknown producer may start at any sequence. `datagram` is beyond
/// what TCP allows and shows that the guarantee relies on in-order delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// One TCP connection per producer.
    Tcp,
    /// A TCP connection through a proxy that drops single frames.
    Proxy,
    /// Independent datagrams, reordered by latency.
    Datagram,
}

impl Network {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Network::Tcp => "tcp",
            Network::Proxy => "proxy",
            Network::Datagram => "datagram",
        }
    }

    /// Parses a flag value.
    pub fn parse(text: &str) -> Result<Network, ValueError> {
        match text {
            "tcp" => Ok(Network::Tcp),
            "proxy" => Ok(Network::Proxy),
            "datagram" => Ok(Network::Datagram),
            _ => Err(ValueError::NotOneOf("tcp, proxy, datagram")),
        }
    }

    /// Frames on one connection arrive in the order they were sent.
    pub fn fifo(self) -> bool {
        self != Network::Datagram
    }

    /// A lost frame breaks the connection.
    pub fn loss_breaks_connection(self) -> bool {
        self == Network::Tcp
    }
}

/// Producer `acks`: how many replicas must have a batch before the leader answers.
///
/// | `--acks` | Kafka | the leader answers | what a failover can lose |
/// |---|---|---|---|
/// | `all` (default) | `acks=-1` | once the high watermark passes the batch (every in-sync replica has it) | nothing, with `min.insync.replicas >= 2` and clean elections |
/// | `1` | `acks=1` | after its own append | what the followers had not fetched yet |
/// | `0` | `acks=0` | never: the producer counts a batch written once sent | anything |
///
/// Kafka's producer refuses idempotence without `acks=all`, so `--acks 1` and `--acks 0`
/// need `--idempotence off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `acks=all` (-1).
    All,
    /// `acks=1`: the leader alone.
    Leader,
    /// `acks=0`: no answer.
    None,
}

impl Acks {
    /// The flag value: `all`, `1` or `0`.
    pub fn name(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }

    /// Parses a flag value (`-1` is accepted for `all`, as Kafka spells it).
    pub fn parse(text: &str) -> Result<Acks, ValueError> {
        match text {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            _ => Err(ValueError::NotOneOf("all, 1, 0")),
        }
    }

    /// The value of the produce request's `acks` field.
    pub fn kafka_value(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// The parameters of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every fault decision.
    pub seed: u64,
    /// Number of producers.
    pub producers: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// Records each producer sends.
    pub records: u64,
    /// Records per batch.
    pub batch_records: u32,
    /// Produce requests each producer keeps in flight.
    pub max_in_flight: usize,
    /// Let `max_in_flight` exceed the broker's dedup window (an experiment that breaks
    /// idempotence on purpose).
    pub unsafe_max_in_flight: bool,
    /// Probability that a response (ack) is lost.
    pub ack_loss: f64,
    /// Probability that a request is lost.
    pub request_loss: f64,
    /// Probability that the network delivers a request twice.
    pub duplicate: f64,
    /// Probability that a bit of a request's batch flips on the way (the CRC catches it).
    pub corrupt: f64,
    /// Probability that a bit of a request's first batch header flips outside the CRC (its
    /// magic byte): the broker refuses the batch with `INVALID_RECORD`, a non-retriable error.
    pub header_corrupt: f64,
    /// Probability that a request is delayed by `spike_ms`.
    pub spike: f64,
    /// The delay of a latency spike (by default longer than the request timeout).
    pub spike_ms: u64,
    /// Broker crashes (power loss) at moments drawn from the seed.
    pub broker_crashes: u32,
    /// Clean broker restarts at moments drawn from the seed.
    pub broker_restarts: u32,
    /// Restarts of each producer process (a new producer id re-sends what was unacknowledged).
    pub producer_restarts: u32,
    /// DeleteRecords requests at moments drawn from the seed: each moves one partition's log
    /// start offset to its high watermark (`kafka-delete-records.sh` with offset -1), deleting
    /// every batch written so far on purpose. One broker only.
    pub delete_records: u32,
    /// Probability that the broker's disk fails the append of a produce request's batch (a
    /// write error): nothing is written and the broker answers `KAFKA_STORAGE_ERROR` (56).
    pub append_failure: f64,
    /// Broker: enter a batch into the producer state before its append (Kafka 0.11.0 to
    /// 1.0.x, KAFKA-6683; see `BrokerConfig::producer_state_before_append`).
    pub producer_state_before_append: bool,
    /// Producer: `OUT_OF_ORDER_SEQUENCE_NUMBER` stops the producer, as Kafka 0.11.0's client
    /// and its documentation had it (see `ProducerConfig::out_of_order_sequence_fatal`).
    pub out_of_order_sequence_fatal: bool,
    /// Broker: the epoch InitProducerId hands out with a new producer id (Kafka: 0; see
    /// `BrokerConfig::initial_producer_epoch`), so that a run reaches epoch exhaustion fast.
    pub initial_producer_epoch: i16,
    /// Producer: an epoch bump at 32 767 wraps to -32 768, as before KAFKA-5283 (see
    /// `ProducerConfig::epoch_bump_wraps`).
    pub epoch_bump_wraps: bool,
    /// When the broker syncs its log to disk (what a crash can lose).
    pub sync: idempo_broker::SyncPolicy,
    /// What the broker's producer-state snapshots hold.
    pub snapshot_mode: idempo_broker::SnapshotMode,
    /// How often the broker snapshots producer state.
    pub snapshot_interval_ms: i64,
    /// Smallest one-way latency.
    pub latency_min_ms: u64,
    /// Largest one-way latency.
    pub latency_max_ms: u64,
    /// How the network between each producer and the broker behaves.
    pub network: Network,
    /// Producer setting not in Kafka: send a partition's first batch alone until the broker
    /// has acknowledged one (closes the KIP-360 hole that `Network::Proxy` exposes).
    pub first_batch_alone: bool,
    /// Producer client profile: Kafka's Java client exactly (the default) or idempo's
    /// improvements (see `idempo_producer::ClientProfile`).
    pub client_profile: idempo_producer::ClientProfile,
    /// The librdkafka switches, read under `--client-profile librdkafka` only (see
    /// `idempo_producer::LibrdkafkaRules`; default librdkafka 2.x today).
    pub librdkafka: idempo_producer::LibrdkafkaRules,
    /// The Java client's historical switches (see `idempo_producer::JavaRules`; default
    /// today's client; `--client-profile java-2.4` turns Kafka 2.4's on besides).
    pub java: idempo_producer::JavaRules,
    /// Producer `request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// Producer `delivery.timeout.ms`.
    pub delivery_timeout_ms: u64,
    /// Producer `retries`.
    pub retries: u32,
    /// Producer `retry.backoff.ms`.
    pub retry_backoff_ms: u64,
    /// Idempotence in producer and broker.
    pub idempotence: bool,
    /// Batches the broker retains per producer per partition.
    pub dedup_window: usize,
    /// Whose deduplication rules the broker follows: today's Kafka (the default) or a
    /// historical broker (see `idempo_broker::BrokerProfile`); a profile that remembered
    /// fewer batches caps `dedup_window` in the broker, not in the producer's check of
    /// `max_in_flight` (the client of the day allowed five in flight).
    pub broker_profile: idempo_broker::BrokerProfile,
    /// Broker `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// Broker `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: i64,
    /// idempo's bound on producer ids with state per partition, beyond Kafka (`None`, the
    /// default: Kafka, no bound; see `BrokerConfig::max_producer_ids_per_partition`).
    pub max_producer_ids_per_partition: Option<usize>,
    /// The most producer ids with state a broker may hold before its memory runs out, for
    /// the checker's "producer state within its memory budget" (`None`: not checked).
    pub producer_state_budget: Option<u64>,
    /// The workload creates a producer per batch: each batch is sent by a new producer
    /// (new producer id) once the previous one's batch was answered (KIP-854's clients).
    pub producer_per_batch: bool,
    /// Stop after this much virtual time even if producers still have work.
    pub max_virtual_ms: u64,
    /// Brokers in the cluster. With one (the default) the run is the one-broker run of
    /// earlier versions, byte for byte: no replication, no controller.
    pub brokers: u32,
    /// Replicas of every partition (`replication.factor`), at most `brokers`.
    pub replication_factor: u32,
    /// Broker `min.insync.replicas`: an `acks=all` produce needs this many in-sync replicas.
    pub min_insync_replicas: u32,
    /// Producer `acks`.
    pub acks: Acks,
    /// Controller `unclean.leader.election.enable`: elect an out-of-sync replica when no
    /// in-sync replica is alive.
    pub unclean_leader_election: bool,
    /// Where a follower cuts its log when it follows a new leader: by leader epoch (KIP-101,
    /// the default) or at its own high watermark, as Kafka did before 0.11.
    pub truncation: idempo_broker::TruncationMode,
    /// Broker `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Controller `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// Smallest one-way latency between brokers.
    pub inter_broker_latency_min_ms: u64,
    /// Largest one-way latency between brokers.
    pub inter_broker_latency_max_ms: u64,
    /// Probability that a message between brokers (a fetch or its answer) is lost.
    pub inter_broker_loss: f64,
    /// Crashes (power loss) of the current leader of a partition drawn from the seed.
    pub leader_kills: u32,
    /// Isolations: a broker is cut off from the other brokers, the controller and the
    /// clients for a drawn time, then healed.
    pub isolations: u32,
    /// Correlated crashes: every replica of a partition loses power at once.
    pub correlated_crashes: u32,
}

impl Default for SimConfig {
    /// Defaults give an interesting run in well under a second: ack loss and request loss,
    /// latency that reorders requests, and a request timeout short enough to retry often.
    fn default() -> SimConfig {
        SimConfig {
            seed: 1,
            producers: 3,
            partitions: 4,
            records: 2_000,
            batch_records: 10,
            max_in_flight: 5,
            unsafe_max_in_flight: false,
            ack_loss: 0.1,
            request_loss: 0.02,
            duplicate: 0.0,
            corrupt: 0.0,
            header_corrupt: 0.0,
            spike: 0.0,
            spike_ms: 1_000,
            broker_crashes: 0,
            broker_restarts: 0,
            producer_restarts: 0,
            delete_records: 0,
            append_failure: 0.0,
            producer_state_before_append: false,
            out_of_order_sequence_fatal: false,
            initial_producer_epoch: 0,
            epoch_bump_wraps: false,
            sync: idempo_broker::SyncPolicy::EveryAppend,
            snapshot_mode: idempo_broker::SnapshotMode::FullWindow,
            snapshot_interval_ms: 1_000,
            latency_min_ms: 1,
            latency_max_ms: 20,
            network: Network::Tcp,
            first_batch_alone: false,
            client_profile: idempo_producer::ClientProfile::Java,
            librdkafka: idempo_producer::LibrdkafkaRules::V2,
            java: idempo_producer::JavaRules::CURRENT,
            request_timeout_ms: 200,
            delivery_timeout_ms: 120_000,
            retries: i32::MAX as u32,
            retry_backoff_ms: 10,
            idempotence: true,
            dedup_window: 5,
            broker_profile: idempo_broker::BrokerProfile::Kafka,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            max_producer_ids_per_partition: None,
            producer_state_budget: None,
            producer_per_batch: false,
            max_virtual_ms: 86_400_000,
            brokers: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
            acks: Acks::All,
            unclean_leader_election: false,
            truncation: idempo_broker::TruncationMode::LeaderEpoch,
            replica_lag_time_max_ms: 30_000,
            broker_session_timeout_ms: 9_000,
            inter_broker_latency_min_ms: 1,
            inter_broker_latency_max_ms: 5,
            inter_broker_loss: 0.0,
            leader_kills: 0,
            isolations: 0,
            correlated_crashes: 0,
        }
    }
}

impl SimConfig {
    /// Batches each producer sends.
    pub fn batches_per_producer(&self) -> u64 {
        self.records.div_ceil(u64::from(self.batch_records.max(1)))
    }

    /// Records in batch `b` of a producer (the last batch may be short).
    pub fn records_in_batch(&self, b: u64) -> u32 {
        let per = u64::from(self.batch_records);
        (self.records - b * per).min(per) as u32
    }

    /// The records of batch `b` of producer `p`, each carrying its identity (see
    /// [`crate::checker::record_values`]); one allocation for all their values.
    pub fn batch_of(&self, p: u32, b: u64) -> Vec<idempo_protocol::Record> {
        let n = self.records_in_batch(b);
        let first = (b * u64::from(self.batch_records)) as u32;
        let values = crate::checker::record_values(p, first, n);
        (0..n as usize)
            .map(|k| idempo_protocol::Record::with_value(k as i32, values.slice(8 * k..8 * k + 8)))
            .collect()
    }

    /// The partition batch `b` of producer `p` goes to: round robin, staggered per producer.
    pub fn partition_of(&self, p: u32, b: u64) -> i32 {
        ((b + u64::from(p)) % u64::from(self.partitions)) as i32
    }

    /// Checks what the command line cannot express alone (ranges that depend on each other);
    /// the error names the flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, p) in [
            ("ack-loss", self.ack_loss),
            ("request-loss", self.request_loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("header-corrupt", self.header_corrupt),
            ("spike", self.spike),
            ("append-failure", self.append_failure),
            ("inter-broker-loss", self.inter_broker_loss),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Probability { flag, value: p });
            }
        }
        if self.producer_restarts > 0 && self.batches_per_producer() < 2 {
            return Err(ConfigError::RestartsNeedTwoBatches);
        }
        if self.producer_restarts > 100 || self.broker_crashes > 1000 || self.broker_restarts > 1000
        {
            return Err(ConfigError::TooManyRestarts);
        }
        self.validate_cluster()?;
        if self.delete_records > 0 && self.is_cluster() {
            return Err(ConfigError::NeedsOneBroker {
                flag: "delete-records",
            });
        }
        if self.delete_records > 1000 {
            return Err(ConfigError::TooManyRestarts);
        }
        if self.latency_min_ms > self.latency_max_ms {
            return Err(ConfigError::LatencyRange {
                min_ms: self.latency_min_ms,
                max_ms: self.latency_max_ms,
            });
        }
        if self.producers == 0 || self.partitions == 0 || self.batch_records == 0 {
            return Err(ConfigError::ZeroCount);
        }
        if self.records > u64::from(u32::MAX) {
            return Err(ConfigError::TooManyRecords(self.records));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroMaxInFlight);
        }
        if self.idempotence && self.max_in_flight > self.dedup_window && !self.unsafe_max_in_flight
        {
            return Err(ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight: self.max_in_flight,
                dedup_window: self.dedup_window,
            });
        }
        Ok(())
    }

    /// True for a run with more than one broker: replication, a controller, leader elections.
    pub fn is_cluster(&self) -> bool {
        self.brokers > 1
    }

    /// The cluster settings that depend on each other.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if self.replication_factor > self.brokers {
            return Err(ConfigError::ReplicationFactorAboveBrokers {
                replication_factor: self.replication_factor,
                brokers: self.brokers,
            });
        }
        if self.min_insync_replicas > self.replication_factor {
            return Err(ConfigError::MinInsyncAboveReplicationFactor {
                min_insync_replicas: self.min_insync_replicas,
                replication_factor: self.replication_factor,
            });
        }
        if self.idempotence && self.acks != Acks::All {
            return Err(ConfigError::IdempotenceNeedsAcksAll { acks: self.acks });
        }
        if self.inter_broker_latency_min_ms > self.inter_broker_latency_max_ms {
            return Err(ConfigError::InterBrokerLatencyRange {
                min_ms: self.inter_broker_latency_min_ms,
                max_ms: self.inter_broker_latency_max_ms,
            });
        }
        for (flag, n) in [
            ("leader-kills", self.leader_kills),
            ("isolations", self.isolations),
            ("correlated-crashes", self.correlated_crashes),
        ] {
            if n > 0 && !self.is_cluster() {
                return Err(ConfigError::NeedsSeveralBrokers { flag });
            }
            if n > 1000 {
                return Err(ConfigError::TooManyClusterFaults { flag, count: n });
            }
        }
        Ok(())
    }

    /// The command line that replays this run.
    pub fn replay_command(&self, subcommand: &str) -> String {
        format!("idempo-sim {subcommand} {self}")
    }
}

/// A config the simulator refuses to run; the message names the flag.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// A rate outside 0..=1.
    Probability {
        /// The flag, without dashes.
        flag: &'static str,
        /// The rate given.
        value: f64,
    },
    /// Producer restarts need at least two batches per producer.
    RestartsNeedTwoBatches,
    /// More process restarts than the simulator bounds.
    TooManyRestarts,
    /// `--latency-ms MIN..MAX` with MIN above MAX.
    LatencyRange {
        /// MIN.
        min_ms: u64,
        /// MAX.
        max_ms: u64,
    },
    /// A producer, partition or batch count of zero.
    ZeroCount,
    /// More records per producer than a record index holds.
    TooManyRecords(u64),
    /// No request may be in flight.
    ZeroMaxInFlight,
    /// More requests in flight than the broker's dedup window, without the experiment flag.
    MaxInFlightAboveDedupWindow {
        /// `--max-in-flight`.
        max_in_flight: usize,
        /// `--dedup-window`.
        dedup_window: usize,
    },
    /// `--replication-factor` above `--brokers`.
    ReplicationFactorAboveBrokers {
        /// `--replication-factor`.
        replication_factor: u32,
        /// `--brokers`.
        brokers: u32,
    },
    /// `--min-insync-replicas` above `--replication-factor`: no `acks=all` write could succeed.
    MinInsyncAboveReplicationFactor {
        /// `--min-insync-replicas`.
        min_insync_replicas: u32,
        /// `--replication-factor`.
        replication_factor: u32,
    },
    /// Idempotence with `--acks` other than `all` (Kafka's producer refuses it).
    IdempotenceNeedsAcksAll {
        /// `--acks`.
        acks: Acks,
    },
    /// `--inter-broker-latency-ms MIN..MAX` with MIN above MAX.
    InterBrokerLatencyRange {
        /// MIN.
        min_ms: u64,
        /// MAX.
        max_ms: u64,
    },
    /// A cluster fault with one broker.
    NeedsSeveralBrokers {
        /// The flag, without dashes.
        flag: &'static str,
    },
    /// A one-broker fault in a cluster run.
    NeedsOneBroker {
        /// The flag, without dashes.
        flag: &'static str,
    },
    /// More cluster faults than the simulator bounds.
    TooManyClusterFaults {
        /// The flag, without dashes.
        flag: &'static str,
        /// The count given.
        count: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Probability { flag, value } => {
                write!(f, "--{flag} {value} must be between 0 and 1")
            }
            ConfigError::RestartsNeedTwoBatches => write!(
                f,
                "--producer-restarts needs at least two batches per producer (--records)"
            ),
            ConfigError::TooManyRestarts => write!(
                f,
                "--producer-restarts (at most 100), --broker-crashes, --broker-restarts and --delete-records (at most 1000) are too large"
            ),
            ConfigError::LatencyRange { min_ms, max_ms } => write!(
                f,
                "--latency-ms {min_ms}..{max_ms}: the minimum is above the maximum"
            ),
            ConfigError::ZeroCount => write!(
                f,
                "--producers, --partitions and --batch-records must be at least 1"
            ),
            ConfigError::TooManyRecords(n) => {
                write!(f, "--records {n} must be at most {}", u32::MAX)
            }
            ConfigError::ZeroMaxInFlight => write!(f, "--max-in-flight must be at least 1"),
            ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight,
                dedup_window,
            } => write!(
                f,
                "--max-in-flight {max_in_flight} is above the broker's --dedup-window {dedup_window}: a retry could fall out of the \
                 window and be written twice; pass --unsafe-max-in-flight to run this experiment anyway"
            ),
            ConfigError::ReplicationFactorAboveBrokers {
                replication_factor,
                brokers,
            } => write!(
                f,
                "--replication-factor {replication_factor} is above --brokers {brokers}: each replica needs its own broker"
            ),
            ConfigError::MinInsyncAboveReplicationFactor {
                min_insync_replicas,
                replication_factor,
            } => write!(
                f,
                "--min-insync-replicas {min_insync_replicas} is above --replication-factor {replication_factor}: no acks=all write could ever succeed"
            ),
            ConfigError::IdempotenceNeedsAcksAll { acks } => write!(
                f,
                "--acks {} needs --idempotence off: Kafka's producer refuses idempotence without acks=all",
                acks.name()
            ),
            ConfigError::InterBrokerLatencyRange { min_ms, max_ms } => write!(
                f,
                "--inter-broker-latency-ms {min_ms}..{max_ms}: the minimum is above the maximum"
            ),
            ConfigError::NeedsSeveralBrokers { flag } => {
                write!(f, "--{flag} needs a cluster: --brokers 2 or more")
            }
            ConfigError::NeedsOneBroker { flag } => {
                write!(
                    f,
                    "--{flag} is a one-broker fault: not with --brokers 2 or more"
                )
            }
            ConfigError::TooManyClusterFaults { flag, count } => {
                write!(f, "--{flag} {count} is too large (at most 1000)")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// For callers that still report errors as text.
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

impl fmt::Display for SimConfig {
    /// The flags that reproduce this config, in a fixed order: see [`crate::flags`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::flags::replay_words(self).join(" "))
    }
}

/// Parses `MIN..MAX` (or a single number for a fixed value).
pub fn parse_range(text: &str) -> Result<(u64, u64), ValueError> {
    let number = |v: &str| v.trim().parse().map_err(|_| ValueError::NotARange);
    match text.split_once("..") {
        Some((min, max)) => Ok((number(min)?, number(max)?)),
        None => {
            let v = number(text)?;
            Ok((v, v))
        }
    }
}

/// The flag value of a sync policy: `every-append`, `interval:MS` or `never`.
pub fn sync_name(sync: idempo_broker::SyncPolicy) -> String {
    match sync {
        idempo_broker::SyncPolicy::EveryAppend => "every-append".to_string(),
        idempo_broker::SyncPolicy::IntervalMs(ms) => format!("interval:{ms}"),
        idempo_broker::SyncPolicy::Never => "never".to_string(),
    }
}

/// Parses a sync policy flag value.
pub fn parse_sync(text: &str) -> Result<idempo_broker::SyncPolicy, ValueError> {
    match text {
        "every-append" => Ok(idempo_broker::SyncPolicy::EveryAppend),
        "never" => Ok(idempo_broker::SyncPolicy::Never),
        other => match other.strip_prefix("interval:").map(str::parse::<i64>) {
            Some(Ok(ms)) if ms > 0 => Ok(idempo_broker::SyncPolicy::IntervalMs(ms)),
            _ => Err(ValueError::NotOneOf(
                "every-append, interval:MS (MS at least 1), never",
            )),
        },
    }
}

/// The flag value of a snapshot mode: `full` or `last-batch`.
pub fn snapshot_mode_name(mode: idempo_broker::SnapshotMode) -> &'static str {
    match mode {
        idempo_broker::SnapshotMode::FullWindow => "full",
        idempo_broker::SnapshotMode::LastBatchOnly => "last-batch",
    }
}

/// Parses a snapshot mode flag value.
pub fn parse_snapshot_mode(text: &str) -> Result<idempo_broker::SnapshotMode, ValueError> {
    match text {
        "full" => Ok(idempo_broker::SnapshotMode::FullWindow),
        "last-batch" => Ok(idempo_broker::SnapshotMode::LastBatchOnly),
        _ => Err(ValueError::NotOneOf("full, last-batch")),
    }
}
