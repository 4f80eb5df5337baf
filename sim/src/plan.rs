//! The fault plan of a run: which faults happen, decided at random from the seed or read from
//! a replay file, and the list of faults that actually happened.
//!
//! Per-message faults are keyed by the logical event (see [`crate::faults`]): a kind, a
//! producer, a batch number and an attempt. Whole-process faults happen at logical moments:
//! a broker crash after the broker has appended a number of batches, a producer restart after
//! the application has handed over a number of batches. In random mode the seed decides; in
//! scripted mode (a replay file) exactly the listed faults happen and no other.
//!
//! # Replay files
//!
//! ```text
//! # idempo-sim replay file, version 1
//! flags --seed 7 --producers 1 --partitions 1 --records 40 ...
//! request-loss producer=0 batch=3 attempt=1
//! ack-loss producer=0 batch=5 attempt=2
//! duplicate producer=0 batch=6 attempt=1
//! corrupt producer=0 batch=8 attempt=1
//! header-corrupt producer=0 batch=8 attempt=2
//! spike producer=0 batch=9 attempt=1
//! append-failure producer=0 batch=10 attempt=1
//! delete-records after-appends=11 partition=0
//! broker-crash after-appends=12 tear-bytes=17
//! broker-restart after-appends=20
//! producer-restart producer=0 after-batch=30
//! inter-broker-loss from=2 to=0 message=41
//! ```
//!
//! A replay file names faults by logical event, not by random draw, so it still means the same
//! thing after the code changes (message latencies are still drawn from the seed by the
//! stable SplitMix64 mixer of [`crate::faults`]). `flags` holds the run's settings; the fault
//! rates in it are ignored when the file lists the faults. A replicated run's lost messages
//! between brokers (`--inter-broker-loss`) are listed too, by the pair of brokers and the
//! cluster's message number, so a replay loses exactly those and shrinking can drop them.

use crate::config::SimConfig;
use crate::faults::{FaultKind, FaultOracle};
use rustc_hash::FxHashSet;
use std::fmt;

/// A fault that happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageFault {
    /// The request is lost before the broker.
    RequestLoss,
    /// The response is lost after the broker answered.
    AckLoss,
    /// The network delivers the request twice.
    Duplicate,
    /// A bit of the request's first batch flips on the way.
    Corrupt,
    /// The request is delayed by `spike_ms`, longer than the request timeout.
    Spike,
    /// The broker's disk fails the append of the request's batch (a write error): nothing
    /// is written and the broker answers `KAFKA_STORAGE_ERROR`.
    AppendFailure,
    /// A bit of the request's first batch header flips outside the CRC (the magic byte):
    /// the broker refuses the batch with `INVALID_RECORD`, which the producer does not retry.
    HeaderCorrupt,
}

impl MessageFault {
    /// Every kind, in file order.
    pub const ALL: [MessageFault; 7] = [
        MessageFault::RequestLoss,
        MessageFault::AckLoss,
        MessageFault::Duplicate,
        MessageFault::Corrupt,
        MessageFault::Spike,
        MessageFault::AppendFailure,
        MessageFault::HeaderCorrupt,
    ];

    /// The name used in replay files and reports.
    pub fn name(self) -> &'static str {
        match self {
            MessageFault::RequestLoss => "request-loss",
            MessageFault::AckLoss => "ack-loss",
            MessageFault::Duplicate => "duplicate",
            MessageFault::Corrupt => "corrupt",
            MessageFault::HeaderCorrupt => "header-corrupt",
            MessageFault::Spike => "spike",
            MessageFault::AppendFailure => "append-failure",
        }
    }

    fn oracle_kind(self) -> FaultKind {
        match self {
            MessageFault::RequestLoss => FaultKind::RequestLoss,
            MessageFault::AckLoss => FaultKind::AckLoss,
            MessageFault::Duplicate => FaultKind::Duplicate,
            MessageFault::Corrupt => FaultKind::Corrupt,
            MessageFault::HeaderCorrupt => FaultKind::HeaderCorrupt,
            MessageFault::Spike => FaultKind::Spike,
            MessageFault::AppendFailure => FaultKind::AppendFailure,
        }
    }

    fn probability(self, c: &SimConfig) -> f64 {
        match self {
            MessageFault::RequestLoss => c.request_loss,
            MessageFault::AckLoss => c.ack_loss,
            MessageFault::Duplicate => c.duplicate,
            MessageFault::Corrupt => c.corrupt,
            MessageFault::HeaderCorrupt => c.header_corrupt,
            MessageFault::Spike => c.spike,
            MessageFault::AppendFailure => c.append_failure,
        }
    }
}

/// One fault in a plan or in the list of faults that happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// A message fault.
    Message {
        /// What happens.
        kind: MessageFault,
        /// Producer index.
        producer: u32,
        /// Batch number of the request's first batch (`u64::MAX` for InitProducerId).
        batch: u64,
        /// Attempt number of that batch.
        attempt: u32,
    },
    /// The broker loses power after it has appended this many batches, keeping `tear_bytes` of
    /// the last unsynced write.
    BrokerCrash {
        /// Appends before the crash.
        after_appends: u64,
        /// Bytes of the last unsynced write that survive (a torn write).
        tear_bytes: u32,
        /// The broker (always 0 with one broker).
        broker: i32,
        /// How long it stays down before it recovers and registers again (0: at once, as
        /// the one-broker run does).
        down_ms: u64,
    },
    /// The broker shuts down cleanly and restarts.
    BrokerRestart {
        /// Appends before the restart.
        after_appends: u64,
    },
    /// The current leader of `partition` loses power (a cluster fault; the trace names the
    /// broker it was).
    LeaderKill {
        /// Appends before the crash.
        after_appends: u64,
        /// The partition whose leader dies.
        partition: i32,
        /// Bytes of the last unsynced write that survive.
        tear_bytes: u32,
        /// How long the broker stays down.
        down_ms: u64,
    },
    /// `broker` is cut off from the other brokers, the controller and the clients for
    /// `duration_ms`, then healed.
    Isolation {
        /// Appends before the cut.
        after_appends: u64,
        /// The broker cut off.
        broker: i32,
        /// How long the cut lasts.
        duration_ms: u64,
    },
    /// Every replica of `partition` loses power at once.
    CorrelatedCrash {
        /// Appends before the crash.
        after_appends: u64,
        /// The partition whose replicas all die.
        partition: i32,
        /// Bytes of each last unsynced write that survive.
        tear_bytes: u32,
        /// How long the brokers stay down.
        down_ms: u64,
    },
    /// A producer process dies after the application handed it this many batches; a new one
    /// (new producer id) re-sends what was not acknowledged.
    ProducerRestart {
        /// Producer index.
        producer: u32,
        /// Batches handed over before the restart.
        after_batch: u64,
    },
    /// A DeleteRecords request moves `partition`'s log start offset to its high watermark
    /// once the broker has appended this many batches (`--delete-records`, one broker).
    DeleteRecords {
        /// Appends before the request.
        after_appends: u64,
        /// The partition whose records are deleted.
        partition: i32,
    },
    /// A message between two brokers of a cluster (a follower's fetch or the leader's
    /// answer) is lost (`--inter-broker-loss`).
    InterBrokerLoss {
        /// The sending broker.
        from: u32,
        /// The receiving broker.
        to: u32,
        /// The cluster's count of inter-broker messages sent so far, this one included.
        message: u64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Message {
                kind,
                producer,
                batch,
                attempt,
            } => {
                write!(
                    f,
                    "{} producer={producer} batch={batch} attempt={attempt}",
                    kind.name()
                )
            }
            Fault::BrokerCrash {
                after_appends,
                tear_bytes,
                broker,
                down_ms,
            } => {
                write!(
                    f,
                    "broker-crash after-appends={after_appends} tear-bytes={tear_bytes}"
                )?;
                if *broker != 0 {
                    write!(f, " broker={broker}")?;
                }
                if *down_ms != 0 {
                    write!(f, " down-ms={down_ms}")?;
                }
                Ok(())
            }
            Fault::LeaderKill {
                after_appends,
                partition,
                tear_bytes,
                down_ms,
            } => write!(
                f,
                "leader-kill after-appends={after_appends} partition={partition} tear-bytes={tear_bytes} down-ms={down_ms}"
            ),
            Fault::Isolation {
                after_appends,
                broker,
                duration_ms,
            } => write!(
                f,
                "isolation after-appends={after_appends} broker={broker} duration-ms={duration_ms}"
            ),
            Fault::CorrelatedCrash {
                after_appends,
                partition,
                tear_bytes,
                down_ms,
            } => write!(
                f,
                "correlated-crash after-appends={after_appends} partition={partition} tear-bytes={tear_bytes} down-ms={down_ms}"
            ),
            Fault::BrokerRestart { after_appends } => {
                write!(f, "broker-restart after-appends={after_appends}")
            }
            Fault::ProducerRestart {
                producer,
                after_batch,
            } => {
                write!(
                    f,
                    "producer-restart producer={producer} after-batch={after_batch}"
                )
            }
            Fault::InterBrokerLoss { from, to, message } => {
                write!(f, "inter-broker-loss from={from} to={to} message={message}")
            }
            Fault::DeleteRecords {
                after_appends,
                partition,
            } => write!(
                f,
                "delete-records after-appends={after_appends} partition={partition}"
            ),
        }
    }
}

/// Decides faults and records those that happen.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    oracle: FaultOracle,
    scripted: Option<FxHashSet<Fault>>,
    scheduled: Vec<Fault>,
    happened: Vec<Fault>,
}

impl FaultPlan {
    /// Faults drawn from the config's seed and rates. Whole-process faults are placed at
    /// logical moments drawn from the seed.
    pub fn random(config: &SimConfig) -> FaultPlan {
        let oracle = FaultOracle::new(config.seed);
        let total = config.batches_per_producer().max(2);
        let all = total * u64::from(config.producers);
        let mut scheduled = Vec::new();
        for k in 0..u64::from(config.broker_crashes) {
            let after_appends = 1 + oracle.draw(FaultKind::BrokerCrash, 0, k, 0) % all.max(1);
            let tear_bytes = (oracle.draw(FaultKind::BrokerCrash, 1, k, 0) % 128) as u32;
            let (broker, down_ms) = if config.is_cluster() {
                let broker =
                    oracle.draw(FaultKind::CrashedBroker, 0, k, 0) % u64::from(config.brokers);
                (
                    broker as i32,
                    down_ms(config, &oracle, FaultKind::CrashedBroker, k),
                )
            } else {
                (0, 0)
            };
            scheduled.push(Fault::BrokerCrash {
                after_appends,
                tear_bytes,
                broker,
                down_ms,
            });
        }
        scheduled.extend(cluster_faults(config, &oracle, all.max(1)));
        for k in 0..u64::from(config.broker_restarts) {
            let after_appends = 1 + oracle.draw(FaultKind::BrokerRestart, 0, k, 0) % all.max(1);
            scheduled.push(Fault::BrokerRestart { after_appends });
        }
        for k in 0..u64::from(config.delete_records) {
            let after_appends = 1 + oracle.draw(FaultKind::DeleteRecords, 0, k, 0) % all.max(1);
            let partition = oracle.draw(FaultKind::DeleteRecords, 1, k, 0)
                % u64::from(config.partitions.max(1));
            scheduled.push(Fault::DeleteRecords {
                after_appends,
                partition: partition as i32,
            });
        }
        for p in 0..config.producers {
            for k in 0..u64::from(config.producer_restarts) {
                let after_batch =
                    1 + oracle.draw(FaultKind::ProducerRestart, p, k, 0) % (total - 1);
                scheduled.push(Fault::ProducerRestart {
                    producer: p,
                    after_batch,
                });
            }
        }
        scheduled.sort();
        FaultPlan {
            oracle,
            scripted: None,
            scheduled,
            happened: Vec::new(),
        }
    }

    /// Exactly `faults` (and latencies still drawn from `config.seed`).
    pub fn scripted(config: &SimConfig, faults: &[Fault]) -> FaultPlan {
        let per_message =
            |f: &Fault| matches!(f, Fault::Message { .. } | Fault::InterBrokerLoss { .. });
        let mut scheduled: Vec<Fault> =
            faults.iter().copied().filter(|f| !per_message(f)).collect();
        scheduled.sort();
        FaultPlan {
            oracle: FaultOracle::new(config.seed),
            scripted: Some(faults.iter().copied().filter(per_message).collect()),
            scheduled,
            happened: Vec::new(),
        }
    }

    /// The seed's oracle (latencies, bit positions).
    pub fn oracle(&self) -> &FaultOracle {
        &self.oracle
    }

    /// Whether `kind` happens to this message; records it if so.
    pub fn message(
        &mut self,
        config: &SimConfig,
        kind: MessageFault,
        producer: u32,
        batch: u64,
        attempt: u32,
    ) -> bool {
        let fault = Fault::Message {
            kind,
            producer,
            batch,
            attempt,
        };
        let happens = match &self.scripted {
            Some(set) => set.contains(&fault),
            None => self.oracle.happens(
                kind.probability(config),
                kind.oracle_kind(),
                producer,
                batch,
                attempt,
            ),
        };
        if happens {
            self.happened.push(fault);
        }
        happens
    }

    /// Whether the `message`-th message between brokers, from broker `from` to broker `to`,
    /// is lost (`--inter-broker-loss`, or the replay file's list); records it if so.
    pub fn inter_broker_loss(
        &mut self,
        config: &SimConfig,
        from: u32,
        to: u32,
        message: u64,
    ) -> bool {
        let fault = Fault::InterBrokerLoss { from, to, message };
        let happens = match &self.scripted {
            Some(set) => set.contains(&fault),
            None => self.oracle.happens(
                config.inter_broker_loss,
                FaultKind::InterBrokerLoss,
                from,
                message,
                to,
            ),
        };
        if happens {
            self.happened.push(fault);
        }
        happens
    }

    /// Broker crashes, restarts and DeleteRecords requests (and, in a cluster, leader kills,
    /// isolations and correlated crashes) due once the brokers have appended `appends` batches, in plan
    /// order; each is returned once.
    pub fn broker_faults_due(&mut self, appends: u64) -> Vec<Fault> {
        let (due, rest): (Vec<Fault>, Vec<Fault>) = self.scheduled.iter().partition(|f| match f {
            Fault::BrokerCrash { after_appends, .. }
            | Fault::BrokerRestart { after_appends }
            | Fault::LeaderKill { after_appends, .. }
            | Fault::Isolation { after_appends, .. }
            | Fault::CorrelatedCrash { after_appends, .. }
            | Fault::DeleteRecords { after_appends, .. } => *after_appends <= appends,
            Fault::Message { .. }
            | Fault::ProducerRestart { .. }
            | Fault::InterBrokerLoss { .. } => false,
        });
        self.scheduled = rest;
        self.happened.extend(due.iter().copied());
        due
    }

    /// Whether producer `producer` restarts once it has been handed `handed` batches.
    pub fn producer_restart_due(&mut self, producer: u32, handed: u64) -> bool {
        let position = self.scheduled.iter().position(|f| {
            matches!(f, Fault::ProducerRestart { producer: p, after_batch } if *p == producer && *after_batch <= handed)
        });
        match position {
            Some(i) => {
                self.happened.push(self.scheduled.remove(i));
                true
            }
            None => false,
        }
    }

    /// Every fault that happened, in the order it happened.
    pub fn happened(&self) -> &[Fault] {
        &self.happened
    }
}

/// How long a crashed broker of a cluster stays down: up to twice the session timeout, so
/// that the controller notices some crashes (and moves leaderships) and not others.
fn down_ms(config: &SimConfig, oracle: &FaultOracle, kind: FaultKind, k: u64) -> u64 {
    1 + oracle.draw(kind, 1, k, 1) % (2 * config.broker_session_timeout_ms).max(1)
}

/// The cluster faults of a random plan: leader kills, isolations and correlated crashes, each
/// at a moment (`1..=all` appends), on a partition or broker and for a time drawn from the
/// seed.
fn cluster_faults(config: &SimConfig, oracle: &FaultOracle, all: u64) -> Vec<Fault> {
    let mut faults = Vec::new();
    let moment = |kind, k| 1 + oracle.draw(kind, 0, k, 0) % all;
    let partition = |kind, k| (oracle.draw(kind, 2, k, 0) % u64::from(config.partitions)) as i32;
    let tear = |kind, k| (oracle.draw(kind, 3, k, 0) % 128) as u32;
    for k in 0..u64::from(config.leader_kills) {
        faults.push(Fault::LeaderKill {
            after_appends: moment(FaultKind::LeaderKill, k),
            partition: partition(FaultKind::LeaderKill, k),
            tear_bytes: tear(FaultKind::LeaderKill, k),
            down_ms: down_ms(config, oracle, FaultKind::LeaderKill, k),
        });
    }
    let longest = config
        .broker_session_timeout_ms
        .max(config.replica_lag_time_max_ms);
    for k in 0..u64::from(config.isolations) {
        let broker = oracle.draw(FaultKind::Isolation, 2, k, 0) % u64::from(config.brokers);
        faults.push(Fault::Isolation {
            after_appends: moment(FaultKind::Isolation, k),
            broker: broker as i32,
            duration_ms: 1 + oracle.draw(FaultKind::Isolation, 1, k, 1) % (2 * longest).max(1),
        });
    }
    for k in 0..u64::from(config.correlated_crashes) {
        faults.push(Fault::CorrelatedCrash {
            after_appends: moment(FaultKind::CorrelatedCrash, k),
            partition: partition(FaultKind::CorrelatedCrash, k),
            tear_bytes: tear(FaultKind::CorrelatedCrash, k),
            down_ms: down_ms(config, oracle, FaultKind::CorrelatedCrash, k),
        });
    }
    faults
}

/// The text of a replay file for `config` and `faults`.
pub fn replay_file(config: &SimConfig, faults: &[Fault]) -> String {
    let mut s = String::from(
        "# idempo-sim replay file, version 1\n# run it with: idempo-sim replay FILE\n",
    );
    s.push_str(&format!("flags {config}\n"));
    for f in faults {
        s.push_str(&format!("{f}\n"));
    }
    s
}

/// A replay file, parsed: the flags line (to be parsed by the command line) and the faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayFile {
    /// The words after `flags`.
    pub flags: Vec<String>,
    /// The faults, in file order.
    pub faults: Vec<Fault>,
}

/// Why a replay file is refused; the message names the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// A line is refused.
    Line {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        why: ReplayLineError,
    },
    /// The file has no `flags` line.
    NoFlags,
}

/// What is wrong with one line of a replay file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayLineError {
    /// A word that is not `key=value`.
    NotKeyValue(String),
    /// A fault without one of its keys.
    Missing {
        /// The fault.
        fault: String,
        /// The key it needs.
        key: &'static str,
    },
    /// A value that is not a number.
    NotANumber {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// A value too large for its key.
    TooLarge(&'static str),
    /// A fault name this version does not know.
    UnknownFault(String),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::NoFlags => write!(f, "the replay file has no `flags` line"),
            ReplayError::Line { line, why } => {
                write!(f, "line {line}: ")?;
                match why {
                    ReplayLineError::NotKeyValue(w) => write!(f, "expected key=value, found `{w}`"),
                    ReplayLineError::Missing { fault, key } => {
                        write!(f, "`{fault}` needs `{key}=`")
                    }
                    ReplayLineError::NotANumber { key, value } => {
                        write!(f, "`{key}={value}` is not a number")
                    }
                    ReplayLineError::TooLarge(key) => write!(f, "`{key}` is too large"),
                    ReplayLineError::UnknownFault(name) => write!(f, "unknown fault `{name}`"),
                }
            }
        }
    }
}

impl std::error::Error for ReplayError {}

/// Parses a replay file; errors name the line.
pub fn parse_replay(text: &str) -> Result<ReplayFile, ReplayError> {
    let mut flags = None;
    let mut faults = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or("");
        if name == "flags" {
            flags = Some(words.map(str::to_string).collect());
            continue;
        }
        let fault =
            parse_fault(name, words).map_err(|why| ReplayError::Line { line: i + 1, why })?;
        faults.push(fault);
    }
    let flags = flags.ok_or(ReplayError::NoFlags)?;
    Ok(ReplayFile { flags, faults })
}

/// One fault line: its name, then `key=value` words.
fn parse_fault<'a>(
    name: &str,
    words: impl Iterator<Item = &'a str>,
) -> Result<Fault, ReplayLineError> {
    let args: Vec<(&str, &str)> = words
        .map(|w| {
            w.split_once('=')
                .ok_or_else(|| ReplayLineError::NotKeyValue(w.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let get = |key: &'static str| -> Result<u64, ReplayLineError> {
        let v = args
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| ReplayLineError::Missing {
                fault: name.to_string(),
                key,
            })?
            .1;
        v.parse().map_err(|_| ReplayLineError::NotANumber {
            key,
            value: v.to_string(),
        })
    };
    let small = |key: &'static str| -> Result<u32, ReplayLineError> {
        u32::try_from(get(key)?).map_err(|_| ReplayLineError::TooLarge(key))
    };
    let id = |key: &'static str| -> Result<i32, ReplayLineError> {
        i32::try_from(get(key)?).map_err(|_| ReplayLineError::TooLarge(key))
    };
    let optional = |key: &'static str| args.iter().any(|(k, _)| *k == key);
    if let Some(kind) = MessageFault::ALL.iter().find(|k| k.name() == name) {
        return Ok(Fault::Message {
            kind: *kind,
            producer: small("producer")?,
            batch: get("batch")?,
            attempt: small("attempt")?,
        });
    }
    match name {
        "broker-crash" => Ok(Fault::BrokerCrash {
            after_appends: get("after-appends")?,
            tear_bytes: small("tear-bytes")?,
            broker: if optional("broker") { id("broker")? } else { 0 },
            down_ms: if optional("down-ms") {
                get("down-ms")?
            } else {
                0
            },
        }),
        "leader-kill" => Ok(Fault::LeaderKill {
            after_appends: get("after-appends")?,
            partition: id("partition")?,
            tear_bytes: small("tear-bytes")?,
            down_ms: get("down-ms")?,
        }),
        "isolation" => Ok(Fault::Isolation {
            after_appends: get("after-appends")?,
            broker: id("broker")?,
            duration_ms: get("duration-ms")?,
        }),
        "correlated-crash" => Ok(Fault::CorrelatedCrash {
            after_appends: get("after-appends")?,
            partition: id("partition")?,
            tear_bytes: small("tear-bytes")?,
            down_ms: get("down-ms")?,
        }),
        "broker-restart" => Ok(Fault::BrokerRestart {
            after_appends: get("after-appends")?,
        }),
        "producer-restart" => Ok(Fault::ProducerRestart {
            producer: small("producer")?,
            after_batch: get("after-batch")?,
        }),
        "delete-records" => Ok(Fault::DeleteRecords {
            after_appends: get("after-appends")?,
            partition: id("partition")?,
        }),
        "inter-broker-loss" => Ok(Fault::InterBrokerLoss {
            from: small("from")?,
            to: small("to")?,
            message: get("message")?,
        }),
        other => Err(ReplayLineError::UnknownFault(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_file_round_trips() {
        let config = SimConfig::default();
        let faults = vec![
            Fault::Message {
                kind: MessageFault::AckLoss,
                producer: 1,
                batch: 17,
                attempt: 2,
            },
            Fault::Message {
                kind: MessageFault::Corrupt,
                producer: 0,
                batch: 3,
                attempt: 1,
            },
            Fault::BrokerCrash {
                after_appends: 12,
                tear_bytes: 5,
                broker: 0,
                down_ms: 0,
            },
            Fault::BrokerCrash {
                after_appends: 13,
                tear_bytes: 0,
                broker: 2,
                down_ms: 700,
            },
            Fault::BrokerRestart { after_appends: 40 },
            Fault::LeaderKill {
                after_appends: 41,
                partition: 3,
                tear_bytes: 9,
                down_ms: 1200,
            },
            Fault::Isolation {
                after_appends: 42,
                broker: 1,
                duration_ms: 5000,
            },
            Fault::CorrelatedCrash {
                after_appends: 43,
                partition: 0,
                tear_bytes: 1,
                down_ms: 3,
            },
            Fault::ProducerRestart {
                producer: 2,
                after_batch: 9,
            },
            Fault::InterBrokerLoss {
                from: 2,
                to: 0,
                message: 41,
            },
            Fault::DeleteRecords {
                after_appends: 44,
                partition: 1,
            },
            Fault::Message {
                kind: MessageFault::AppendFailure,
                producer: 0,
                batch: 8,
                attempt: 1,
            },
        ];
        let parsed = parse_replay(&replay_file(&config, &faults)).expect("the file parses");
        assert_eq!(parsed.faults, faults);
        assert_eq!(parsed.flags.join(" "), config.to_string());
    }

    #[test]
    fn a_one_broker_crash_line_reads_as_it_always_did() {
        let fault = Fault::BrokerCrash {
            after_appends: 12,
            tear_bytes: 17,
            broker: 0,
            down_ms: 0,
        };
        assert_eq!(
            fault.to_string(),
            "broker-crash after-appends=12 tear-bytes=17"
        );
        let parsed = parse_replay("flags\nbroker-crash after-appends=12 tear-bytes=17\n")
            .expect("the old line parses");
        assert_eq!(parsed.faults, vec![fault]);
    }

    /// Every cluster fault of a random plan names its broker or partition within the
    /// cluster, and the same seed draws the same plan.
    #[test]
    fn cluster_faults_are_drawn_from_the_seed_and_name_a_broker_or_partition() {
        let config = SimConfig {
            brokers: 3,
            replication_factor: 3,
            broker_crashes: 4,
            leader_kills: 3,
            isolations: 3,
            correlated_crashes: 2,
            ..SimConfig::default()
        };
        let plan = FaultPlan::random(&config);
        assert_eq!(plan.scheduled, FaultPlan::random(&config).scheduled);
        assert_eq!(plan.scheduled.len(), 12);
        for fault in &plan.scheduled {
            match *fault {
                Fault::BrokerCrash {
                    broker, down_ms, ..
                } => {
                    assert!((0..3).contains(&broker), "{fault}");
                    assert!(down_ms > 0, "a cluster broker stays down a while: {fault}");
                }
                Fault::Isolation {
                    broker,
                    duration_ms,
                    ..
                } => {
                    assert!((0..3).contains(&broker), "{fault}");
                    assert!(duration_ms > 0, "{fault}");
                }
                Fault::LeaderKill { partition, .. } | Fault::CorrelatedCrash { partition, .. } => {
                    assert!((0..4).contains(&partition), "{fault}")
                }
                _ => panic!("not a fault of this config: {fault}"),
            }
        }
        let other = FaultPlan::random(&SimConfig {
            seed: 2,
            ..config.clone()
        });
        assert_ne!(
            plan.scheduled, other.scheduled,
            "another seed, other faults"
        );
        let standalone = FaultPlan::random(&SimConfig {
            broker_crashes: 4,
            ..SimConfig::default()
        });
        assert!(
            standalone.scheduled.iter().all(|f| matches!(
                f,
                Fault::BrokerCrash {
                    broker: 0,
                    down_ms: 0,
                    ..
                }
            )),
            "one broker: every crash is broker 0's and recovers at once"
        );
    }

    #[test]
    fn malformed_replay_lines_name_their_line() {
        let error = |text| parse_replay(text).unwrap_err().to_string();
        assert!(error("flags --seed 1\nfrobnicate x=1\n").contains("line 2"));
        assert!(error("flags\nack-loss producer=1\n").contains("needs `batch=`"));
        assert!(error("ack-loss producer=1 batch=2 attempt=1\n").contains("no `flags`"));
    }

    #[test]
    fn scripted_plan_decides_exactly_the_listed_faults() {
        let config = SimConfig::default();
        let listed = Fault::Message {
            kind: MessageFault::AckLoss,
            producer: 0,
            batch: 4,
            attempt: 1,
        };
        let mut plan = FaultPlan::scripted(&config, &[listed]);
        assert!(plan.message(&config, MessageFault::AckLoss, 0, 4, 1));
        assert!(!plan.message(&config, MessageFault::AckLoss, 0, 4, 2));
        assert!(!plan.message(&config, MessageFault::RequestLoss, 0, 4, 1));
        assert_eq!(plan.happened(), &[listed]);
    }
}
