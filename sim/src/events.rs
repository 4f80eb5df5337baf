//! What happened in a run, as structured events: the raw material of `--trace` lines,
//! `trace --record`, the Lamport diagram and the determinism fingerprint.
//!
//! Every event has a virtual time and the producer it concerns (the broker's decisions are
//! filed under the producer whose request they answer). `Display` gives the one-line text that
//! `--trace` prints after the time and producer columns.

use std::fmt;

/// One batch inside a request, as the network saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRef {
    /// The simulator's batch number for this producer (the same in every setting).
    pub batch: u64,
    /// Partition.
    pub partition: i32,
    /// Producer id stamped on the batch (-1 without idempotence).
    pub producer_id: i64,
    /// Epoch stamped on the batch.
    pub epoch: i16,
    /// First sequence.
    pub first_sequence: i32,
    /// Last sequence.
    pub last_sequence: i32,
}

impl fmt::Display for BatchRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.producer_id < 0 {
            write!(f, "p{} batch {}", self.partition, self.batch)
        } else {
            write!(
                f,
                "p{} pid={} e{} seq {}..{}",
                self.partition,
                self.producer_id,
                self.epoch,
                self.first_sequence,
                self.last_sequence
            )
        }
    }
}

/// Why a message did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCause {
    /// The fault dropped this very message.
    Dropped,
    /// The fault broke the connection (TCP): this message and all after it are gone.
    ConnectionBroke,
    /// The connection had already broken, or was closed by the client.
    ConnectionGone,
    /// The producer process that sent it (or should receive it) is gone.
    ProducerGone,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossCause::Dropped => "dropped",
            LossCause::ConnectionBroke => "lost: the connection broke",
            LossCause::ConnectionGone => "lost with its connection",
            LossCause::ProducerGone => "lost: its producer process is gone",
        })
    }
}

/// A broker decision, reduced to what diagrams and traces need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictRef {
    /// The batch.
    pub batch: Option<u64>,
    /// Partition.
    pub partition: i32,
    /// `appended` | `duplicate` | `rejected`.
    pub outcome: &'static str,
    /// Kafka's name of the error answered (`NONE` for appended and duplicate).
    pub error: &'static str,
    /// The broker's explanation.
    pub explanation: String,
    /// The producer's retained window as the broker saw it (`first..last` per batch).
    pub window: String,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimEvent {
    /// A request left a producer.
    RequestSent {
        /// Correlation id.
        correlation_id: i32,
        /// Connection number.
        connection: u32,
        /// Batches carried (empty for InitProducerId).
        batches: Vec<BatchRef>,
        /// Arrival time at the broker, if it arrives.
        arrives_at_ms: Option<u64>,
        /// Why it will not arrive, if it does not.
        lost: Option<LossCause>,
        /// A second copy will also arrive (a duplicating network).
        duplicated: bool,
        /// A bit was flipped in the first batch on the way.
        corrupted: bool,
    },
    /// A request reached the broker but was lost with its connection.
    RequestLostInFlight {
        /// Correlation id.
        correlation_id: i32,
        /// Why.
        cause: LossCause,
    },
    /// The broker decided a batch.
    Verdict(VerdictRef),
    /// The broker answered; the response travels back.
    ResponseSent {
        /// Correlation id.
        correlation_id: i32,
        /// Arrival time, if it arrives.
        arrives_at_ms: Option<u64>,
        /// Why it will not arrive, if it does not.
        lost: Option<LossCause>,
    },
    /// A response reached the producer.
    ResponseArrived {
        /// Correlation id.
        correlation_id: i32,
        /// Short summary of what it says.
        summary: String,
    },
    /// A response was discarded on arrival.
    ResponseDiscarded {
        /// Correlation id.
        correlation_id: i32,
        /// Why.
        cause: LossCause,
    },
    /// The client closed its connection.
    Disconnected {
        /// Why.
        why: String,
        /// Requests that failed with it.
        failed: usize,
    },
    /// The application got a delivery report.
    Delivered {
        /// The batch.
        batch: u64,
        /// One-line result.
        result: String,
        /// True when acknowledged.
        acked: bool,
    },
    /// A producer decision worth a line (retry, epoch bump ...).
    Producer {
        /// The text.
        text: String,
    },
    /// The producer process died and a new one (new producer id) took over.
    ProducerRestarted {
        /// Batches the new process re-sends.
        resent: usize,
    },
    /// The broker crashed (or shut down cleanly) and recovered.
    BrokerRestarted {
        /// What recovery found.
        summary: String,
    },
}

impl SimEvent {
    /// A short machine-friendly name of the event kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SimEvent::RequestSent { .. } => "request_sent",
            SimEvent::RequestLostInFlight { .. } => "request_lost",
            SimEvent::Verdict(_) => "verdict",
            SimEvent::ResponseSent { .. } => "response_sent",
            SimEvent::ResponseArrived { .. } => "response_arrived",
            SimEvent::ResponseDiscarded { .. } => "response_discarded",
            SimEvent::Disconnected { .. } => "disconnected",
            SimEvent::Delivered { .. } => "delivered",
            SimEvent::Producer { .. } => "producer",
            SimEvent::ProducerRestarted { .. } => "producer_restarted",
            SimEvent::BrokerRestarted { .. } => "broker_restarted",
        }
    }

    /// The batches this event concerns (for `trace --record`).
    pub fn batches(&self) -> Vec<u64> {
        match self {
            SimEvent::RequestSent { batches, .. } => batches.iter().map(|b| b.batch).collect(),
            SimEvent::Verdict(v) => v.batch.into_iter().collect(),
            SimEvent::Delivered { batch, .. } => vec![*batch],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::RequestSent {
                correlation_id,
                batches,
                arrives_at_ms,
                lost,
                duplicated,
                corrupted,
                ..
            } => {
                if batches.is_empty() {
                    write!(f, "InitProducerId #{correlation_id}")?;
                } else {
                    write!(f, "produce #{correlation_id} [")?;
                    for (i, b) in batches.iter().enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{b}")?;
                    }
                    write!(f, "]")?;
                }
                match (arrives_at_ms, lost) {
                    (_, Some(cause)) => write!(f, " — {cause} on the way to the broker")?,
                    (Some(at), None) => write!(f, " (arrives at {at} ms)")?,
                    (None, None) => {}
                }
                if *duplicated {
                    write!(f, " — and a duplicate copy follows")?;
                }
                if *corrupted {
                    write!(f, " — a bit flips on the way")?;
                }
                Ok(())
            }
            SimEvent::RequestLostInFlight {
                correlation_id,
                cause,
            } => {
                write!(f, "request #{correlation_id} {cause}")
            }
            SimEvent::Verdict(v) => write!(f, "broker: p{} {}", v.partition, v.explanation),
            SimEvent::ResponseSent {
                correlation_id,
                lost,
                ..
            } => match lost {
                Some(cause) => write!(
                    f,
                    "response to request #{correlation_id} — {cause} (lost ack)"
                ),
                None => write!(f, "response to request #{correlation_id} sent"),
            },
            SimEvent::ResponseArrived {
                correlation_id,
                summary,
            } => {
                write!(f, "response #{correlation_id} arrived: {summary}")
            }
            SimEvent::ResponseDiscarded {
                correlation_id,
                cause,
            } => {
                write!(f, "response #{correlation_id} {cause}")
            }
            SimEvent::Disconnected { why, failed } => {
                write!(f, "connection closed ({why}): {failed} request(s) failed")
            }
            SimEvent::Delivered { result, .. } => f.write_str(result),
            SimEvent::Producer { text } => f.write_str(text),
            SimEvent::ProducerRestarted { resent } => write!(
                f,
                "producer process restarted: a new producer id; {resent} unacknowledged batch(es) re-sent"
            ),
            SimEvent::BrokerRestarted { summary } => write!(f, "broker {summary}"),
        }
    }
}

/// An event with its time and producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed {
    /// Virtual time.
    pub at_ms: u64,
    /// Producer index.
    pub producer: u32,
    /// The event.
    pub event: SimEvent,
}

impl fmt::Display for Timed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8} ms  P{:<2} {}",
            self.at_ms, self.producer, self.event
        )
    }
}
