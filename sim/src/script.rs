//! The `explain` script language: one broker operation a line.
//!
//! ```text
//! init-producer                                   # allocate a producer id (epoch 0)
//! produce pid=1 epoch=0 seq=0 count=3 partition=0 ts=1000
//! advance ms=90000000                             # move the broker clock; runs expiration
//! delete-records partition=0 before=5             # move the log start offset
//! restart                                         # rebuild producer state from the log
//! restart mode=clean                              # clean shutdown (snapshot) and restart
//! restart mode=crash                              # power loss, recovery from the disk
//! fetch partition=0 offset=0                      # read the log back
//! ```
//!
//! A script may start with `cluster`, which replaces the one broker by a replicated cluster
//! (the controller, `Controller`, places the replicas and elects the leaders), and then use
//! the cluster operations:
//!
//! ```text
//! cluster brokers=3 replication-factor=3 min-insync-replicas=2 unclean-leader-election=false
//! produce pid=1 epoch=0 seq=0 count=2 acks=all    # to the partition's leader (or broker=N)
//! replicate                                       # follower fetches until nothing changes
//! replicate rounds=1                              # exactly one round of follower fetches
//! crash-broker broker=0                           # power loss; fenced when its session expires
//! restart-broker broker=0                         # it recovers, registers and follows again
//! elect partition=0 type=unclean                  # an administrator's election (or preferred)
//! log broker=1 partition=0                        # one replica's log, epochs and HW
//! fetch partition=0 broker=1                      # a consumer fetch (default: the leader)
//! ```
//!
//! `cluster` takes `brokers`, `replication-factor` (default: every broker),
//! `min-insync-replicas` (default 1), `unclean-leader-election` (default false),
//! `partitions` (default 1), `replica-lag-time-max-ms` (default 30000) and `sync`
//! (`every-append`, `interval:MS` or `never`; default every-append). `produce` in a
//! cluster takes `acks=all|1|0` (default all), `timeout-ms` (default 30000) and `broker`.
//! Without a `cluster` line none of these exist and a script runs exactly as before; `restart`
//! and `delete-records` are one-broker operations. Broker ids and partitions are checked
//! against the cluster when the script is parsed.
//!
//! `#` starts a comment; blank lines are skipped. Arguments are `key=value`. `produce` needs
//! `pid`, `epoch`, `seq` and `count`; `partition` defaults to 0 and `ts` to the broker clock.
//! `produce` also takes `corrupt=true` (flip one bit after the CRC was computed, as a bad
//! network would); `count=0` sends an empty batch (`recordsCount` 0, `lastOffsetDelta` -1),
//! which the broker refuses.
//!
//! `restart` has three modes. Bare `restart` rebuilds producer state by replaying the retained
//! log, without a snapshot (Kafka after losing its snapshot files): a producer whose batches
//! were all deleted is forgotten. `restart mode=clean` is Kafka's clean shutdown: logs synced,
//! a snapshot of every in-memory producer written (even one whose batches were all deleted),
//! then recovery loads it and replays the rest. `restart mode=crash` is a power loss: the disk
//! keeps what was synced, and recovery rebuilds from the latest snapshot at or below the log
//! end, then replays the log after it. The whole script is parsed before anything runs: a malformed line is an
//! error naming its line number, and nothing is half-run.

use std::fmt;

/// One parsed operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Ask for a producer id.
    InitProducer,
    /// Send one batch.
    Produce(Produce),
    /// Move the broker clock forward by `ms`.
    Advance {
        /// Milliseconds to add.
        ms: i64,
    },
    /// Move a partition's log start offset.
    DeleteRecords {
        /// The partition.
        partition: i32,
        /// New log start offset.
        before: i64,
    },
    /// Restart the broker.
    Restart {
        /// How (see the module docs).
        mode: RestartMode,
    },
    /// Read a partition back.
    Fetch {
        /// The partition.
        partition: i32,
        /// First offset.
        offset: i64,
        /// In a cluster, the broker asked (`None`: the partition's leader).
        broker: Option<i32>,
    },
    /// Build a replicated cluster in place of the one broker.
    Cluster(ClusterSpec),
    /// Power loss of one broker: its unsynced bytes are lost; its heartbeats stop, and the
    /// controller fences it when its session expires (`broker.session.timeout.ms` later).
    CrashBroker {
        /// The broker.
        broker: i32,
    },
    /// A crashed broker comes back: it registers with the controller and follows.
    RestartBroker {
        /// The broker.
        broker: i32,
    },
    /// An administrator's leader election (Kafka's ElectLeaders).
    Elect {
        /// The partition.
        partition: i32,
        /// Preferred or unclean.
        election: Election,
    },
    /// Follower fetches: until nothing changes (`None`), or exactly `rounds` rounds.
    Replicate {
        /// Rounds to run.
        rounds: Option<u32>,
    },
    /// Show one replica's log, leader epochs and high watermark.
    Log {
        /// The broker.
        broker: i32,
        /// The partition.
        partition: i32,
    },
}

/// A `cluster` line: the cluster's shape and settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Brokers, with ids `0..brokers`.
    pub brokers: i32,
    /// Partitions of the one topic.
    pub partitions: i32,
    /// `replication.factor`.
    pub replication_factor: usize,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// Every broker's sync policy (`None`: the command line's, `every-append` by default).
    pub sync: Option<idempo_broker::SyncPolicy>,
}

/// The elections `elect` can ask for (Kafka's `--election-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// Give the leadership back to the first replica, if it is a live ISR member.
    Preferred,
    /// Elect a leader for an offline partition from any live replica.
    Unclean,
}

/// `acks` of a scripted produce in a cluster: the simulator's own (one parser, one name).
pub use crate::config::Acks;

/// A scripted `produce` line: one batch to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produce {
    /// Producer id.
    pub pid: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Base sequence.
    pub seq: i32,
    /// Records in the batch (0..=10000; 0 is an empty batch).
    pub count: i32,
    /// Target partition.
    pub partition: i32,
    /// Record timestamp; `None` means the broker clock.
    pub ts: Option<i64>,
    /// Flip a bit after the CRC was computed.
    pub corrupt: bool,
    /// In a cluster: `acks` (`None` outside a cluster).
    pub acks: Option<Acks>,
    /// In a cluster: the request's `timeout_ms` (`None`: 30000).
    pub timeout_ms: Option<i32>,
    /// In a cluster: the broker sent to (`None`: the partition's leader).
    pub broker: Option<i32>,
}

/// The three restarts `explain` can script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartMode {
    /// Bare `restart`: producer state rebuilt from the retained log alone, no snapshot.
    FromLog,
    /// `mode=clean`: Kafka's clean shutdown (sync, snapshot), then recovery from the disk.
    Clean,
    /// `mode=crash`: a power loss (unsynced bytes dropped), then recovery from the latest
    /// snapshot at or below the log end plus replay.
    Crash,
}

impl Op {
    /// The operation's name as written in scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Op::InitProducer => "init-producer",
            Op::Produce(_) => "produce",
            Op::Advance { .. } => "advance",
            Op::DeleteRecords { .. } => "delete-records",
            Op::Restart { .. } => "restart",
            Op::Fetch { .. } => "fetch",
            Op::Cluster(_) => "cluster",
            Op::CrashBroker { .. } => "crash-broker",
            Op::RestartBroker { .. } => "restart-broker",
            Op::Elect { .. } => "elect",
            Op::Replicate { .. } => "replicate",
            Op::Log { .. } => "log",
        }
    }
}

/// An operation with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// The operation.
    pub op: Op,
}

/// A malformed script line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub error: LineError,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

impl std::error::Error for ScriptError {}

/// What is wrong with one script line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// A word that is not `key=value`.
    NotKeyValue(String),
    /// An argument given to an operation that takes none.
    TakesNoArguments(String),
    /// An argument the operation does not know.
    UnknownArgument {
        /// The argument.
        key: String,
        /// The arguments the operation takes.
        allowed: &'static [&'static str],
    },
    /// The same argument twice.
    GivenTwice(String),
    /// A value that does not parse as the argument's type.
    NotValid {
        /// The argument.
        key: &'static str,
        /// Its value.
        value: String,
        /// The type it should be.
        expected: &'static str,
    },
    /// A required argument is missing.
    Missing(&'static str),
    /// `count` outside `0..=MAX_SCRIPT_RECORDS`.
    CountOutOfRange(i32),
    /// A negative `partition`.
    NegativePartition(i32),
    /// A negative `advance ms`.
    NegativeAdvance(i64),
    /// `restart mode=` something else than `clean` or `crash`.
    UnknownRestartMode(String),
    /// An operation the language does not have.
    UnknownOperation(String),
    /// A cluster operation or argument before any `cluster` line.
    NeedsCluster(&'static str),
    /// A one-broker operation after the `cluster` line.
    NotInCluster(&'static str),
    /// A `cluster` line after other operations, or a second one.
    ClusterNotFirst,
    /// The `cluster` line describes no valid cluster.
    InvalidCluster(String),
    /// A broker id outside the cluster.
    NoSuchBroker {
        /// The id given.
        broker: i32,
        /// Brokers in the cluster.
        brokers: i32,
    },
    /// A partition outside the cluster's topic.
    NoSuchPartition {
        /// The partition given.
        partition: i32,
        /// Partitions of the topic.
        partitions: i32,
    },
    /// `acks=` something else than `all`, `1`, `0` or `-1`.
    UnknownAcks(String),
    /// `elect type=` something else than `preferred` or `unclean`.
    UnknownElection(String),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotKeyValue(word) => write!(f, "expected key=value, found `{word}`"),
            LineError::TakesNoArguments(key) => write!(f, "takes no arguments, found `{key}`"),
            LineError::UnknownArgument { key, allowed } => write!(
                f,
                "unknown argument `{key}` (expected one of: {})",
                allowed.join(", ")
            ),
            LineError::GivenTwice(key) => write!(f, "argument `{key}` given twice"),
            LineError::NotValid {
                key,
                value,
                expected,
            } => write!(f, "`{key}={value}` is not a valid {expected}"),
            LineError::Missing(key) => write!(f, "missing required argument `{key}=`"),
            LineError::CountOutOfRange(count) => write!(
                f,
                "`count={count}` must be between 0 and {MAX_SCRIPT_RECORDS}"
            ),
            LineError::NegativePartition(p) => write!(f, "`partition={p}` must not be negative"),
            LineError::NegativeAdvance(ms) => {
                write!(f, "`ms={ms}` must not be negative: time only moves forward")
            }
            LineError::UnknownRestartMode(mode) => write!(
                f,
                "`mode={mode}` is not a restart mode (expected clean or crash)"
            ),
            LineError::UnknownOperation(name) => write!(
                f,
                "unknown operation `{name}` (expected init-producer, produce, advance, delete-records, restart, fetch, cluster, crash-broker, restart-broker, elect, replicate or log)"
            ),
            LineError::NeedsCluster(what) => write!(
                f,
                "`{what}` needs a cluster: start the script with a `cluster brokers=N ...` line"
            ),
            LineError::NotInCluster(what) => write!(
                f,
                "`{what}` is a one-broker operation: in a cluster use crash-broker and restart-broker"
            ),
            LineError::ClusterNotFirst => {
                write!(f, "`cluster` must be the first operation, and appear once")
            }
            LineError::InvalidCluster(why) => write!(f, "not a valid cluster: {why}"),
            LineError::NoSuchBroker { broker, brokers } => write!(
                f,
                "`broker={broker}` is not in the cluster (brokers 0..{})",
                brokers - 1
            ),
            LineError::NoSuchPartition {
                partition,
                partitions,
            } => write!(
                f,
                "`partition={partition}` is not in the topic (partitions 0..{})",
                partitions - 1
            ),
            LineError::UnknownAcks(acks) => {
                write!(f, "`acks={acks}` is not valid (expected all, 1 or 0)")
            }
            LineError::UnknownElection(kind) => write!(
                f,
                "`type={kind}` is not an election type (expected preferred or unclean)"
            ),
        }
    }
}

impl std::error::Error for LineError {}

/// Largest record count one scripted batch may have.
pub const MAX_SCRIPT_RECORDS: i32 = 10_000;

struct Args<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn parse(words: &[&'a str], allowed: &'static [&'static str]) -> Result<Args<'a>, LineError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| LineError::NotKeyValue(word.to_string()))?;
            if !allowed.contains(&key) {
                return Err(if allowed.is_empty() {
                    LineError::TakesNoArguments(key.to_string())
                } else {
                    LineError::UnknownArgument {
                        key: key.to_string(),
                        allowed,
                    }
                });
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(LineError::GivenTwice(key.to_string()));
            }
            pairs.push((key, value));
        }
        Ok(Args { pairs })
    }

    fn get<T: std::str::FromStr>(&self, key: &'static str) -> Result<Option<T>, LineError> {
        match self.pairs.iter().find(|(k, _)| *k == key) {
            None => Ok(None),
            Some((_, v)) => v.parse().map(Some).map_err(|_| LineError::NotValid {
                key,
                value: v.to_string(),
                expected: std::any::type_name::<T>(),
            }),
        }
    }

    fn required<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, LineError> {
        self.get(key)?.ok_or(LineError::Missing(key))
    }
}

fn parse_produce(rest: &[&str]) -> Result<Op, LineError> {
    let a = Args::parse(
        rest,
        &[
            "pid",
            "epoch",
            "seq",
            "count",
            "partition",
            "ts",
            "corrupt",
            "acks",
            "timeout-ms",
            "broker",
        ],
    )?;
    let count: i32 = a.required("count")?;
    if !(0..=MAX_SCRIPT_RECORDS).contains(&count) {
        return Err(LineError::CountOutOfRange(count));
    }
    let partition = a.get("partition")?.unwrap_or(0);
    if partition < 0 {
        return Err(LineError::NegativePartition(partition));
    }
    Ok(Op::Produce(Produce {
        pid: a.required("pid")?,
        epoch: a.required("epoch")?,
        seq: a.required("seq")?,
        count,
        partition,
        ts: a.get("ts")?,
        corrupt: a.get("corrupt")?.unwrap_or(false),
        acks: match a.get::<String>("acks")?.as_deref() {
            None => None,
            Some(text) => {
                Some(Acks::parse(text).map_err(|_| LineError::UnknownAcks(text.to_string()))?)
            }
        },
        timeout_ms: a.get("timeout-ms")?,
        broker: a.get("broker")?,
    }))
}

fn parse_cluster(rest: &[&str]) -> Result<Op, LineError> {
    let a = Args::parse(
        rest,
        &[
            "brokers",
            "partitions",
            "replication-factor",
            "min-insync-replicas",
            "unclean-leader-election",
            "replica-lag-time-max-ms",
            "sync",
        ],
    )?;
    let brokers: i32 = a.required("brokers")?;
    let spec = ClusterSpec {
        brokers,
        partitions: a.get("partitions")?.unwrap_or(1),
        replication_factor: a
            .get("replication-factor")?
            .unwrap_or(usize::try_from(brokers).unwrap_or(0)),
        min_insync_replicas: a.get("min-insync-replicas")?.unwrap_or(1),
        unclean_leader_election: a.get("unclean-leader-election")?.unwrap_or(false),
        replica_lag_time_max_ms: a.get("replica-lag-time-max-ms")?.unwrap_or(30_000),
        sync: match a.get::<String>("sync")? {
            None => None,
            Some(text) => Some(
                crate::config::parse_sync(&text)
                    .map_err(|e| LineError::InvalidCluster(format!("`sync={text}`: {e}")))?,
            ),
        },
    };
    let controller = idempo_broker::ControllerConfig {
        brokers: spec.brokers,
        partitions: spec.partitions,
        replication_factor: spec.replication_factor,
        unclean_leader_election: spec.unclean_leader_election,
        ..idempo_broker::ControllerConfig::default()
    };
    controller
        .validate()
        .map_err(|e| LineError::InvalidCluster(e.to_string()))?;
    if spec.min_insync_replicas == 0 {
        return Err(LineError::InvalidCluster(
            "min-insync-replicas must be at least 1".to_string(),
        ));
    }
    if spec.replica_lag_time_max_ms < 1 {
        return Err(LineError::InvalidCluster(
            "replica-lag-time-max-ms must be at least 1".to_string(),
        ));
    }
    Ok(Op::Cluster(spec))
}

fn parse_elect(rest: &[&str]) -> Result<Op, LineError> {
    let a = Args::parse(rest, &["partition", "type"])?;
    let election = match a.get::<String>("type")?.as_deref() {
        Some("preferred") => Election::Preferred,
        Some("unclean") => Election::Unclean,
        Some(other) => return Err(LineError::UnknownElection(other.to_string())),
        None => return Err(LineError::Missing("type")),
    };
    Ok(Op::Elect {
        partition: a.get("partition")?.unwrap_or(0),
        election,
    })
}

fn parse_restart(rest: &[&str]) -> Result<Op, LineError> {
    let a = Args::parse(rest, &["mode"])?;
    let mode = match a.get::<String>("mode")?.as_deref() {
        None => RestartMode::FromLog,
        Some("clean") => RestartMode::Clean,
        Some("crash") => RestartMode::Crash,
        Some(other) => {
            return Err(LineError::UnknownRestartMode(other.to_string()));
        }
    };
    Ok(Op::Restart { mode })
}

fn parse_line(text: &str) -> Result<Option<Op>, LineError> {
    let code = text.split('#').next().unwrap_or("");
    let words: Vec<&str> = code.split_whitespace().collect();
    let Some((name, rest)) = words.split_first() else {
        return Ok(None);
    };
    let op = match *name {
        "init-producer" => {
            Args::parse(rest, &[])?;
            Op::InitProducer
        }
        "produce" => parse_produce(rest)?,
        "advance" => {
            let a = Args::parse(rest, &["ms"])?;
            let ms: i64 = a.required("ms")?;
            if ms < 0 {
                return Err(LineError::NegativeAdvance(ms));
            }
            Op::Advance { ms }
        }
        "delete-records" => {
            let a = Args::parse(rest, &["partition", "before"])?;
            Op::DeleteRecords {
                partition: a.get("partition")?.unwrap_or(0),
                before: a.required("before")?,
            }
        }
        "restart" => parse_restart(rest)?,
        "fetch" => {
            let a = Args::parse(rest, &["partition", "offset", "broker"])?;
            Op::Fetch {
                partition: a.get("partition")?.unwrap_or(0),
                offset: a.get("offset")?.unwrap_or(0),
                broker: a.get("broker")?,
            }
        }
        "cluster" => parse_cluster(rest)?,
        "crash-broker" => Op::CrashBroker {
            broker: Args::parse(rest, &["broker"])?.required("broker")?,
        },
        "restart-broker" => Op::RestartBroker {
            broker: Args::parse(rest, &["broker"])?.required("broker")?,
        },
        "elect" => parse_elect(rest)?,
        "replicate" => Op::Replicate {
            rounds: Args::parse(rest, &["rounds"])?.get("rounds")?,
        },
        "log" => {
            let a = Args::parse(rest, &["broker", "partition"])?;
            Op::Log {
                broker: a.required("broker")?,
                partition: a.get("partition")?.unwrap_or(0),
            }
        }
        other => {
            return Err(LineError::UnknownOperation(other.to_string()));
        }
    };
    Ok(Some(op))
}

/// Checks `op` against what came before it: cluster operations only after a `cluster`
/// line, one-broker ones only without, broker ids and partitions inside the cluster.
fn check_context(op: &Op, cluster: &mut Option<ClusterSpec>, first: bool) -> Result<(), LineError> {
    let Some(spec) = *cluster else {
        return match op {
            Op::Cluster(spec) if first => {
                *cluster = Some(*spec);
                Ok(())
            }
            Op::Cluster(_) => Err(LineError::ClusterNotFirst),
            Op::Produce(p) if p.acks.is_some() => Err(LineError::NeedsCluster("acks=")),
            Op::Produce(Produce {
                broker: Some(_), ..
            })
            | Op::Fetch {
                broker: Some(_), ..
            } => Err(LineError::NeedsCluster("broker=")),
            Op::Produce(p) if p.timeout_ms.is_some() => Err(LineError::NeedsCluster("timeout-ms=")),
            Op::CrashBroker { .. }
            | Op::RestartBroker { .. }
            | Op::Elect { .. }
            | Op::Replicate { .. }
            | Op::Log { .. } => Err(LineError::NeedsCluster(op.name())),
            _ => Ok(()),
        };
    };
    let broker_ok = |b: Option<i32>| match b {
        Some(broker) if !(0..spec.brokers).contains(&broker) => Err(LineError::NoSuchBroker {
            broker,
            brokers: spec.brokers,
        }),
        _ => Ok(()),
    };
    let partition_ok = |partition: i32| {
        if (0..spec.partitions).contains(&partition) {
            Ok(())
        } else {
            Err(LineError::NoSuchPartition {
                partition,
                partitions: spec.partitions,
            })
        }
    };
    match op {
        Op::Cluster(_) => Err(LineError::ClusterNotFirst),
        Op::Restart { .. } | Op::DeleteRecords { .. } => Err(LineError::NotInCluster(op.name())),
        Op::Produce(p) => {
            broker_ok(p.broker)?;
            partition_ok(p.partition)
        }
        Op::Fetch {
            partition, broker, ..
        } => {
            broker_ok(*broker)?;
            partition_ok(*partition)
        }
        Op::CrashBroker { broker } | Op::RestartBroker { broker } => broker_ok(Some(*broker)),
        Op::Log { broker, partition } => {
            broker_ok(Some(*broker))?;
            partition_ok(*partition)
        }
        Op::Elect { partition, .. } => partition_ok(*partition),
        Op::InitProducer | Op::Advance { .. } | Op::Replicate { .. } => Ok(()),
    }
}

/// Parses a whole script. The first malformed line is the error.
pub fn parse(text: &str) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    let mut cluster = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let checked = parse_line(raw).and_then(|op| {
            if let Some(op) = &op {
                check_context(op, &mut cluster, steps.is_empty())?;
            }
            Ok(op)
        });
        match checked {
            Ok(Some(op)) => steps.push(Step { line, op }),
            Ok(None) => {}
            Err(error) => return Err(ScriptError { line, error }),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operation_with_defaults() {
        let steps = parse(
            "# comment\n\ninit-producer\nproduce pid=1 epoch=0 seq=0 count=3 # trailing\nadvance ms=5\n\
             delete-records before=2\nrestart\nfetch partition=1\nrestart mode=clean\nrestart mode=crash\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 8);
        assert_eq!(
            steps[4].op,
            Op::Restart {
                mode: RestartMode::FromLog
            }
        );
        assert_eq!(
            steps[6].op,
            Op::Restart {
                mode: RestartMode::Clean
            }
        );
        assert_eq!(
            steps[7].op,
            Op::Restart {
                mode: RestartMode::Crash
            }
        );
        assert_eq!(steps[0].line, 3);
        assert_eq!(
            steps[1].op,
            Op::Produce(Produce {
                pid: 1,
                epoch: 0,
                seq: 0,
                count: 3,
                partition: 0,
                ts: None,
                corrupt: false,
                acks: None,
                timeout_ms: None,
                broker: None,
            })
        );
        assert_eq!(
            steps[5].op,
            Op::Fetch {
                partition: 1,
                offset: 0,
                broker: None,
            }
        );
    }

    #[test]
    fn malformed_lines_name_their_line_and_problem() {
        let cases = [
            ("frobnicate", "unknown operation `frobnicate`"),
            (
                "produce pid=1 epoch=0 seq=0",
                "missing required argument `count=`",
            ),
            (
                "produce pid=x epoch=0 seq=0 count=1",
                "`pid=x` is not a valid i64",
            ),
            ("produce pid=1 epoch=0 seq=0 count=-1", "must be between 0"),
            ("restart mode=warm", "not a restart mode"),
            ("produce pid=1 pid=2 epoch=0 seq=0 count=1", "given twice"),
            (
                "produce pid=1 epoch=0 seq=0 count=1 colour=red",
                "unknown argument `colour`",
            ),
            ("advance ms=-1", "must not be negative"),
            ("restart now", "expected key=value"),
            ("restart force=1", "unknown argument `force`"),
            ("init-producer x=1", "takes no arguments"),
            ("produce pid=1 epoch=99999 seq=0 count=1", "not a valid i16"),
        ];
        for (text, want) in cases {
            let err = parse(&format!("init-producer\n{text}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            let message = err.error.to_string();
            assert!(message.contains(want), "{text}: {message}");
        }
    }

    #[test]
    fn parses_cluster_operations_with_defaults() {
        let steps = parse(
            "cluster brokers=3 min-insync-replicas=2\nproduce pid=1 epoch=0 seq=0 count=1 acks=1 broker=2\n\
             replicate\nreplicate rounds=2\ncrash-broker broker=0\nrestart-broker broker=0\n\
             elect partition=0 type=unclean\nlog broker=1\nfetch broker=1\n",
        )
        .unwrap();
        assert_eq!(
            steps[0].op,
            Op::Cluster(ClusterSpec {
                brokers: 3,
                partitions: 1,
                replication_factor: 3,
                min_insync_replicas: 2,
                unclean_leader_election: false,
                replica_lag_time_max_ms: 30_000,
                sync: None,
            })
        );
        let Op::Produce(p) = &steps[1].op else {
            panic!("a produce: {:?}", steps[1].op)
        };
        assert_eq!(
            (p.acks, p.broker, p.timeout_ms),
            (Some(Acks::Leader), Some(2), None)
        );
        assert_eq!(steps[2].op, Op::Replicate { rounds: None });
        assert_eq!(steps[3].op, Op::Replicate { rounds: Some(2) });
        assert_eq!(
            steps[6].op,
            Op::Elect {
                partition: 0,
                election: Election::Unclean
            }
        );
        assert_eq!(
            steps[7].op,
            Op::Log {
                broker: 1,
                partition: 0
            }
        );
    }

    #[test]
    fn cluster_lines_out_of_place_name_their_problem() {
        let cases = [
            (
                "produce pid=1 epoch=0 seq=0 count=1 acks=all",
                "`acks=` needs a cluster",
            ),
            ("replicate", "`replicate` needs a cluster"),
            ("crash-broker broker=0", "`crash-broker` needs a cluster"),
            ("fetch broker=1", "`broker=` needs a cluster"),
            ("cluster brokers=3", "must be the first operation"),
        ];
        for (text, want) in cases {
            let err = parse(&format!("init-producer\n{text}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(
                err.error.to_string().contains(want),
                "{text}: {}",
                err.error
            );
        }
        let in_cluster = [
            ("restart", "one-broker operation"),
            ("delete-records before=1", "one-broker operation"),
            ("cluster brokers=2", "must be the first operation"),
            (
                "crash-broker broker=3",
                "`broker=3` is not in the cluster (brokers 0..2)",
            ),
            (
                "log broker=0 partition=1",
                "`partition=1` is not in the topic",
            ),
            (
                "produce pid=1 epoch=0 seq=0 count=1 acks=2",
                "`acks=2` is not valid",
            ),
            ("elect partition=0", "missing required argument `type=`"),
            ("elect type=random", "not an election type"),
        ];
        for (text, want) in in_cluster {
            let err = parse(&format!("cluster brokers=3\n{text}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(
                err.error.to_string().contains(want),
                "{text}: {}",
                err.error
            );
        }
        let err = parse("cluster brokers=2 replication-factor=3\n").unwrap_err();
        assert!(
            err.error.to_string().contains("not a valid cluster"),
            "{}",
            err.error
        );
        let err = parse("cluster brokers=2 sync=sometimes\n").unwrap_err();
        assert!(
            err.error
                .to_string()
                .contains("`sync=sometimes`: expected one of every-append"),
            "{}",
            err.error
        );
        let err = parse("cluster brokers=2 min-insync-replicas=0\n").unwrap_err();
        assert!(
            err.error.to_string().contains("min-insync-replicas"),
            "{}",
            err.error
        );
    }
}
