//! What happened in a run, as structured events: the raw material of `--trace` lines,
//! `trace --record`, the Lamport diagram and the determinism fingerprint.
//!
//! Every event has a virtual time and the producer it concerns (the broker's decisions are
//! filed under the producer whose request they answer). `Display` gives the one-line text that
//! `--trace` prints after the time and producer columns.

use idempo_broker::{
    AcceptRule, AppendReason, ProduceOutcome, RestartReport, SequenceRejection, StorageError,
    Verdict, WindowView,
};
use idempo_producer::{DeliveryReport, ProducerEvent};
use idempo_protocol::{ErrorCode, ProducerId, Response};
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

/// A broker decision on one batch, as the broker made it: the typed [`ProduceOutcome`] (the
/// verdict, the rule, the producer state the rule saw). Every text about it (the `--trace`
/// line, the diagram's label, `trace --record`) is computed from these values when printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictRef {
    /// The batch.
    pub batch: Option<u64>,
    /// What the broker decided, and why (boxed: it carries the window the rule saw).
    pub outcome: Box<ProduceOutcome>,
}

impl VerdictRef {
    /// Partition.
    pub fn partition(&self) -> i32 {
        self.outcome.response.partition
    }

    /// `appended` | `duplicate` | `rejected`.
    pub fn outcome_name(&self) -> &'static str {
        self.outcome.outcome_name()
    }

    /// The error answered (`NONE` for appended and duplicate).
    pub fn error(&self) -> ErrorCode {
        self.outcome.error_code()
    }

    /// The producer's retained window as the broker saw it; `None` when the broker had no
    /// state for the producer on the partition.
    pub fn window(&self) -> Option<&WindowView> {
        self.outcome.seen.as_ref().and_then(|s| s.window())
    }

    /// True when the append started a new epoch, dropping the old window.
    pub fn dropped_window(&self) -> bool {
        matches!(
            self.outcome.verdict,
            Verdict::Appended {
                reason: AppendReason::Sequence(AcceptRule::NewEpochFromZero { .. }),
                ..
            }
        )
    }

    /// Why the batch was refused, in a few words (`expected 4`, `epoch 0 is older than the
    /// current epoch 1`), or `None` when it was not refused.
    pub fn refusal(&self) -> Option<String> {
        let epoch = self.outcome.producer_epoch;
        let base = self.outcome.first_sequence;
        Some(match &self.outcome.verdict {
            Verdict::Appended { .. } | Verdict::Duplicate { .. } => return None,
            Verdict::Rejected(SequenceRejection::StaleEpoch { current }) => {
                format!("epoch {epoch} is older than the current epoch {current}")
            }
            Verdict::Rejected(SequenceRejection::NewEpochNotFromZero { current }) => {
                format!("new epoch {epoch} (was {current}) must start at sequence 0, not {base}")
            }
            Verdict::Rejected(SequenceRejection::OutOfOrder { expected }) => {
                format!("expected {expected}")
            }
            Verdict::Rejected(SequenceRejection::UnknownProducer { .. }) => {
                format!("unknown producer at sequence {base}")
            }
            Verdict::Invalid(why) => why.to_string(),
        })
    }
}

/// The window's retained batches as the diagram and `trace --record` show them, oldest
/// first: `N older` (for windows larger than the view) and then one item per batch.
pub fn window_items(window: &WindowView) -> impl Iterator<Item = String> + '_ {
    let older = (window.omitted() > 0).then(|| format!("{} older", window.omitted()));
    older
        .into_iter()
        .chain(window.batches().iter().map(|b| b.to_string()))
}

/// Offsets as the broker's explanations print them: `offset 4` or `offsets 6..8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets(pub i64, pub i64);

impl fmt::Display for Offsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == self.1 {
            write!(f, "offset {}", self.0)
        } else {
            write!(f, "offsets {}..{}", self.0, self.1)
        }
    }
}

/// Why the client closed its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectCause {
    /// A response arrived that was not the oldest awaited: an earlier one was lost.
    OutOfTurn {
        /// The response that arrived.
        arrived: i32,
        /// The oldest request awaited (-1 if none).
        missing: i32,
    },
    /// The oldest request waited `request.timeout.ms` without an answer.
    Unanswered {
        /// The request.
        correlation_id: i32,
    },
    /// The connection broke under a request that expects no answer (`acks=0`): no timeout
    /// will reveal it, and the client's socket reports the break when it writes, as Kafka's
    /// selector does, so the client closes the connection at once.
    Broken {
        /// The request lost with it.
        correlation_id: i32,
    },
}

impl fmt::Display for DisconnectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectCause::OutOfTurn { arrived, missing } => {
                write!(f, "response #{arrived} arrived but #{missing}'s never did")
            }
            DisconnectCause::Unanswered { correlation_id } => {
                write!(
                    f,
                    "request #{correlation_id} unanswered after request.timeout.ms"
                )
            }
            DisconnectCause::Broken { correlation_id } => write!(
                f,
                "the connection broke under acks=0 request #{correlation_id}, which awaits no answer"
            ),
        }
    }
}

/// What a broker restart was, and what recovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerRestart {
    /// Power loss, then recovery.
    Crashed(RestartReport),
    /// A clean shutdown and restart.
    Restarted(RestartReport),
    /// The clean restart failed.
    RestartFailed(StorageError),
}

impl fmt::Display for BrokerRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerRestart::Crashed(report) => write!(
                f,
                "crashed (power loss) and recovered: {}",
                RestartSummary(report)
            ),
            BrokerRestart::Restarted(report) => write!(
                f,
                "shut down cleanly and restarted: {}",
                RestartSummary(report)
            ),
            BrokerRestart::RestartFailed(e) => write!(f, "clean restart failed: {e}"),
        }
    }
}

/// One line on what a broker restart did to each partition.
struct RestartSummary<'a>(&'a RestartReport);

impl fmt::Display for RestartSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.partitions.is_empty() {
            return f.write_str("no partitions yet");
        }
        for (i, p) in self.0.partitions.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let r = &p.recovery;
            write!(
                f,
                "p{} end {}→{}",
                p.partition, p.log_end_offset_before, r.log_end_offset
            )?;
            let lost = p.log_end_offset_before - r.log_end_offset;
            if lost > 0 {
                write!(f, " ({lost} unsynced offsets lost)")?;
            }
            if r.log.truncated_bytes > 0 {
                write!(f, ", {} torn bytes cut", r.log.truncated_bytes)?;
            }
            match r.snapshot_loaded {
                Some(offset) if r.fell_back() => {
                    write!(f, "; fell back to the snapshot at {offset}")?
                }
                Some(offset) => write!(f, "; snapshot at {offset}")?,
                None if r.fell_back() => f.write_str("; no valid snapshot, full replay")?,
                None => f.write_str("; no snapshot, full replay")?,
            }
            write!(
                f,
                ", {} batch(es) replayed, {} producer(s)",
                r.replayed_batches, r.producers_recovered
            )?;
        }
        Ok(())
    }
}

/// What a response says, in a few words (`p0 offset 10, p1 OUT_OF_ORDER_SEQUENCE_NUMBER`).
pub struct ResponseSummary<'a>(pub &'a Response);

impl fmt::Display for ResponseSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Response::InitProducerId(r) => write!(
                f,
                "producer id {} epoch {} ({})",
                r.producer_id,
                r.producer_epoch,
                r.error_code.name()
            ),
            Response::Produce(r) => {
                for (i, p) in r.partitions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if p.error_code.is_ok() {
                        write!(f, "p{} offset {}", p.partition, p.base_offset)?;
                    } else {
                        write!(f, "p{} {}", p.partition, p.error_code.name())?;
                    }
                }
                Ok(())
            }
            Response::Fetch(r) => write!(f, "fetch {}", r.error_code.name()),
            Response::Metadata(r) => write!(f, "metadata of {} partitions", r.partitions.len()),
        }
    }
}

/// A producer decision worth a trace line: [`shown`] says which [`ProducerEvent`]s are (the
/// others are bookkeeping the other lines already show).
pub fn shown(event: &ProducerEvent) -> bool {
    matches!(
        event,
        ProducerEvent::ProducerIdAssigned { .. }
            | ProducerEvent::RetryScheduled { .. }
            | ProducerEvent::EpochBumped { .. }
            | ProducerEvent::SequencesRewritten { .. }
            | ProducerEvent::SequencesAdjusted { .. }
            | ProducerEvent::PartitionUnresolved { .. }
            | ProducerEvent::PartitionResolved { .. }
            | ProducerEvent::ProducerIdReset { .. }
            | ProducerEvent::StaleResponseIgnored { .. }
            | ProducerEvent::LateResponseIgnored { .. }
            | ProducerEvent::FatalError { .. }
    )
}

/// The partition a shown producer event concerns, if it names one.
pub fn producer_event_partition(event: &ProducerEvent) -> Option<i32> {
    match event {
        ProducerEvent::RetryScheduled { partition, .. }
        | ProducerEvent::EpochBumped { partition, .. }
        | ProducerEvent::SequencesRewritten { partition, .. }
        | ProducerEvent::SequencesAdjusted { partition, .. }
        | ProducerEvent::PartitionUnresolved { partition, .. }
        | ProducerEvent::PartitionResolved { partition, .. }
        | ProducerEvent::StaleResponseIgnored { partition, .. } => Some(*partition),
        _ => None,
    }
}

/// A shown producer event's trace line.
struct ProducerLine<'a>(&'a ProducerEvent);

impl fmt::Display for ProducerLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ProducerEvent::ProducerIdAssigned { .. }
            | ProducerEvent::ProducerIdReset { .. }
            | ProducerEvent::LateResponseIgnored { .. }
            | ProducerEvent::FatalError { .. } => self.producer_wide(f),
            _ => self.partition_wide(f),
        }
    }
}

impl ProducerLine<'_> {
    /// The lines about the producer as a whole.
    fn producer_wide(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ProducerEvent::ProducerIdAssigned {
                producer_id,
                producer_epoch,
            } => write!(
                f,
                "producer id {producer_id} assigned, epoch {producer_epoch}"
            ),
            ProducerEvent::ProducerIdReset {
                old_producer_id,
                old_epoch,
            } => write!(
                f,
                "epoch exhausted for producer {old_producer_id} at epoch {old_epoch}: requesting a new producer id"
            ),
            ProducerEvent::LateResponseIgnored { correlation_id } => write!(
                f,
                "late response #{correlation_id} ignored (request already failed)"
            ),
            ProducerEvent::FatalError { error } => write!(f, "fatal error {}", error.name()),
            other => write!(f, "{other:?}"),
        }
    }

    /// The lines about one partition.
    fn partition_wide(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ProducerEvent::RetryScheduled {
                partition,
                base_sequence,
                reason,
                attempts,
                retry_at_ms,
                ..
            } => write!(
                f,
                "retry scheduled: p{partition} seq {base_sequence} after {reason} (attempt {attempts}, at {retry_at_ms} ms)"
            ),
            ProducerEvent::EpochBumped {
                producer_id,
                old_epoch,
                new_epoch,
                partition,
                reason,
            } => write!(
                f,
                "epoch bumped {old_epoch} -> {new_epoch} for producer {producer_id} (p{partition}: {reason:?}); sequences restart at 0"
            ),
            ProducerEvent::SequencesRewritten {
                partition,
                epoch,
                batches,
                next_sequence,
                ..
            } => write!(
                f,
                "rewrote {batches} in-flight batch(es) of p{partition} to epoch {epoch}; next sequence {next_sequence}"
            ),
            ProducerEvent::SequencesAdjusted {
                partition,
                epoch,
                failed_base_sequence,
                record_count,
                batches,
                next_sequence,
                ..
            } => write!(
                f,
                "moved {batches} in-flight batch(es) of p{partition} down by {record_count} into the failed batch's sequences from {failed_base_sequence}, epoch {epoch} kept; next sequence {next_sequence}"
            ),
            ProducerEvent::PartitionUnresolved {
                partition,
                unresolved_next_sequence,
            } => write!(
                f,
                "p{partition} unresolved: a batch timed out after it was sent; waiting for proof that sequence {unresolved_next_sequence} moved on"
            ),
            ProducerEvent::PartitionResolved {
                partition,
                last_acked_sequence,
            } => write!(
                f,
                "p{partition} resolved by a later ack (last acked sequence {last_acked_sequence})"
            ),
            ProducerEvent::StaleResponseIgnored {
                correlation_id,
                partition,
                sent_epoch,
                current_epoch,
                error,
                ..
            } => write!(
                f,
                "ignored {} for p{partition} in response #{correlation_id}: sent at epoch {sent_epoch}, now {current_epoch}",
                error.name()
            ),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A delivery report reaching the application.
struct DeliveredLine<'a>(u64, &'a DeliveryReport);

impl fmt::Display for DeliveredLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DeliveredLine(batch, report) = self;
        match &report.result {
            Ok(d) => write!(
                f,
                "acked batch {batch} (p{}, {} records) at offset {} after {} attempt(s)",
                report.partition, report.record_count, d.base_offset, d.attempts
            ),
            Err(e) => write!(f, "batch {batch} (p{}) failed: {e}", report.partition),
        }
    }
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
        /// In a cluster, the broker it goes to (`None` with one broker).
        node: Option<u32>,
        /// A Metadata request (a cluster's producer asks where the leaders are).
        metadata: bool,
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
        /// What it says.
        response: Response,
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
        cause: DisconnectCause,
        /// Requests that failed with it.
        failed: usize,
    },
    /// The application got a delivery report.
    Delivered {
        /// The batch.
        batch: u64,
        /// The report.
        report: DeliveryReport,
    },
    /// A producer decision worth a line (retry, epoch bump ...; see [`shown`]).
    Producer(ProducerEvent),
    /// The broker expired a producer's state on a partition (idle for
    /// `producer.id.expiration.ms`).
    ProducerExpired {
        /// The producer id.
        producer_id: ProducerId,
        /// The partition.
        partition: i32,
    },
    /// The producer process died and a new one (new producer id) took over.
    ProducerRestarted {
        /// Batches the new process re-sends.
        resent: usize,
    },
    /// The broker crashed (or shut down cleanly) and recovered.
    BrokerRestarted(BrokerRestart),
    /// A DeleteRecords request moved a partition's log start offset (`--delete-records`).
    RecordsDeleted {
        /// The partition.
        partition: i32,
        /// Its new log start offset.
        log_start_offset: i64,
        /// Batches deleted.
        batches: usize,
        /// Producer ids whose state the broker removed with them (Kafka before 2.4.0).
        producers_evicted: usize,
    },
    /// Something happened in the cluster (replicated runs only).
    Cluster(ClusterChange),
}

/// Why a broker of a cluster lost power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashCause {
    /// `--broker-crashes`.
    BrokerCrash,
    /// `--leader-kills`: it led this partition.
    LeaderKill {
        /// The partition.
        partition: i32,
    },
    /// `--correlated-crashes`: every replica of this partition lost power.
    CorrelatedCrash {
        /// The partition.
        partition: i32,
    },
}

impl fmt::Display for CrashCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashCause::BrokerCrash => write!(f, "broker crash"),
            CrashCause::LeaderKill { partition } => write!(f, "leader kill of p{partition}"),
            CrashCause::CorrelatedCrash { partition } => {
                write!(f, "correlated crash of every replica of p{partition}")
            }
        }
    }
}

/// One change in a replicated cluster, as values: `--trace` prints it, the diagram draws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A broker lost power; it recovered its disk at once and stays down for `down_ms`.
    Crashed {
        /// Why.
        cause: CrashCause,
        /// Batches its recovery dropped (unsynced or torn).
        batches_lost: usize,
        /// How long it stays down.
        down_ms: u64,
    },
    /// A crashed broker is back; it registered with the controller at once, or (cut off)
    /// registers when its isolation heals ([`ChangeKind::Registered`]).
    Up {
        /// Whether it registered at once.
        registered: bool,
    },
    /// A broker that came back while cut off registered with the controller (its isolation
    /// healed).
    Registered,
    /// The broker is cut off from the other brokers, the controller and the clients.
    Isolated {
        /// Until when.
        until_ms: u64,
    },
    /// The cut healed.
    Healed,
    /// The controller fenced the broker (its session expired, or it came back as a new
    /// incarnation).
    Fenced,
    /// The controller unfenced it.
    Unfenced,
    /// The controller elected a leader.
    Elected {
        /// The partition.
        partition: i32,
        /// Its new leader epoch.
        leader_epoch: i32,
        /// From the ISR, or not (an unclean election).
        clean: bool,
    },
    /// No replica may lead the partition.
    Offline {
        /// The partition.
        partition: i32,
    },
    /// The partition's ISR changed.
    IsrChanged {
        /// The partition.
        partition: i32,
        /// The new ISR.
        isr: Vec<i32>,
    },
    /// The broker's high watermark of a partition moved.
    HighWatermark {
        /// The partition.
        partition: i32,
        /// Before.
        from: i64,
        /// After.
        to: i64,
    },
    /// A follower truncated its log (a diverging epoch) and reloaded its producer state.
    Truncated {
        /// The partition.
        partition: i32,
        /// Log end before.
        from: i64,
        /// Log end after.
        to: i64,
        /// The snapshot the producer state was reloaded from (`None`: from the log start).
        snapshot: Option<i64>,
        /// Batches replayed after it.
        replayed: usize,
    },
    /// A follower fetched batches from its leader (one line per fetch answer that carried
    /// any).
    Fetched {
        /// The leader.
        leader: i32,
        /// Batches appended, over all partitions of the fetch.
        batches: usize,
        /// Per partition that got batches, the offsets appended: (partition, first, end).
        ranges: Vec<(i32, i64, i64)>,
    },
    /// The broker answered a produce NOT_LEADER_OR_FOLLOWER.
    NotLeader {
        /// The partition.
        partition: i32,
    },
    /// The broker answered a produce NOT_ENOUGH_REPLICAS or NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    NotEnoughReplicas {
        /// The partition.
        partition: i32,
        /// Which of the two.
        after_append: bool,
    },
    /// A producer asked for metadata and the controller's view answered.
    Metadata {
        /// The producer.
        producer: u32,
        /// Each partition's leader (-1: none).
        leaders: Vec<i32>,
    },
}

/// A [`ChangeKind`] at one broker (or, for a controller decision, the broker it is about:
/// the new leader, or -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterChange {
    /// The broker.
    pub broker: i32,
    /// What changed.
    pub kind: ChangeKind,
}

impl ClusterChange {
    /// True when this change concerns offset `offset` of `partition`: a fetch that copied
    /// it, a high watermark that passed it, a truncation that cut it; or the partition's
    /// leadership; or a broker's crash, isolation or return.
    pub fn touches(&self, partition: i32, offset: i64) -> bool {
        match &self.kind {
            ChangeKind::Fetched { ranges, .. } => ranges
                .iter()
                .any(|(p, first, end)| *p == partition && (*first..*end).contains(&offset)),
            ChangeKind::HighWatermark {
                partition: p,
                from,
                to,
            } => *p == partition && *from <= offset && offset < *to,
            ChangeKind::Truncated {
                partition: p,
                from,
                to,
                ..
            } => *p == partition && *to <= offset && offset < *from,
            ChangeKind::Elected { partition: p, .. }
            | ChangeKind::Offline { partition: p }
            | ChangeKind::IsrChanged { partition: p, .. } => *p == partition,
            ChangeKind::Crashed { .. }
            | ChangeKind::Up { .. }
            | ChangeKind::Registered
            | ChangeKind::Isolated { .. }
            | ChangeKind::Healed => true,
            ChangeKind::Fenced
            | ChangeKind::Unfenced
            | ChangeKind::NotLeader { .. }
            | ChangeKind::NotEnoughReplicas { .. }
            | ChangeKind::Metadata { .. } => false,
        }
    }
}

impl fmt::Display for ClusterChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.broker;
        match &self.kind {
            ChangeKind::Crashed {
                cause,
                batches_lost,
                down_ms,
            } => write!(
                f,
                "broker {b} lost power ({cause}): recovery dropped {batches_lost} batch(es); down for {down_ms} ms"
            ),
            ChangeKind::Up { registered: true } => {
                write!(f, "broker {b} is back and registered with the controller")
            }
            ChangeKind::Up { registered: false } => write!(
                f,
                "broker {b} is back, cut off: it registers with the controller when the isolation heals"
            ),
            ChangeKind::Registered => write!(f, "broker {b} registered with the controller"),
            ChangeKind::Isolated { until_ms } => write!(
                f,
                "broker {b} is cut off from the brokers, the controller and the clients until {until_ms} ms"
            ),
            ChangeKind::Healed => write!(f, "broker {b}'s isolation healed"),
            ChangeKind::Fenced => write!(f, "controller fenced broker {b}"),
            ChangeKind::Unfenced => write!(f, "controller unfenced broker {b}"),
            ChangeKind::Elected {
                partition,
                leader_epoch,
                clean,
            } => write!(
                f,
                "controller elected broker {b} leader of p{partition} at leader epoch {leader_epoch}{}",
                if *clean {
                    ""
                } else {
                    " (UNCLEAN: from outside the ISR)"
                }
            ),
            ChangeKind::Offline { partition } => write!(
                f,
                "controller: p{partition} is offline (no live in-sync replica)"
            ),
            ChangeKind::IsrChanged { partition, isr } => {
                write!(f, "controller: p{partition} ISR is now {isr:?}")
            }
            ChangeKind::HighWatermark {
                partition,
                from,
                to,
            } => write!(f, "broker {b}: p{partition} high watermark {from} -> {to}"),
            ChangeKind::Truncated {
                partition,
                from,
                to,
                snapshot,
                replayed,
            } => {
                write!(
                    f,
                    "broker {b}: p{partition} truncated from {from} to {to} (diverging epoch); producer state reloaded from "
                )?;
                match snapshot {
                    Some(offset) => write!(f, "the snapshot at {offset}")?,
                    None => write!(f, "the log start")?,
                }
                write!(f, ", {replayed} batch(es) replayed")
            }
            ChangeKind::Fetched {
                leader,
                batches,
                ranges,
            } => write!(
                f,
                "broker {b} fetched {batches} batch(es) from leader {leader}: {}",
                ranges
                    .iter()
                    .map(|(p, first, end)| format!("p{p} offsets {first}..{}", end - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ChangeKind::NotLeader { partition } => write!(
                f,
                "broker {b}: produce to p{partition} answered NOT_LEADER_OR_FOLLOWER"
            ),
            ChangeKind::NotEnoughReplicas {
                partition,
                after_append,
            } => write!(
                f,
                "broker {b}: produce to p{partition} answered {}",
                if *after_append {
                    "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
                } else {
                    "NOT_ENOUGH_REPLICAS"
                }
            ),
            ChangeKind::Metadata { producer, leaders } => write!(
                f,
                "broker {b} answered P{producer}'s metadata request: leaders {leaders:?}"
            ),
        }
    }
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
            SimEvent::Producer(_) | SimEvent::ProducerExpired { .. } => "producer",
            SimEvent::ProducerRestarted { .. } => "producer_restarted",
            SimEvent::BrokerRestarted(_) => "broker_restarted",
            SimEvent::RecordsDeleted { .. } => "records_deleted",
            SimEvent::Cluster(_) => "cluster",
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

/// `InitProducerId #3`, or `produce #4 [p0 pid=1 e0 seq 0..9, ...]`.
fn request_sent(
    f: &mut fmt::Formatter<'_>,
    correlation_id: i32,
    batches: &[BatchRef],
) -> fmt::Result {
    if batches.is_empty() {
        return write!(f, "InitProducerId #{correlation_id}");
    }
    write!(f, "produce #{correlation_id} [")?;
    for (i, b) in batches.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{b}")?;
    }
    write!(f, "]")
}

impl fmt::Display for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::RequestSent { .. }
            | SimEvent::RequestLostInFlight { .. }
            | SimEvent::ResponseSent { .. }
            | SimEvent::ResponseArrived { .. }
            | SimEvent::ResponseDiscarded { .. }
            | SimEvent::Disconnected { .. } => self.fmt_message(f),
            SimEvent::Verdict(v) => write!(f, "broker: p{} {}", v.partition(), v.outcome),
            SimEvent::Delivered { batch, report } => DeliveredLine(*batch, report).fmt(f),
            SimEvent::Producer(event) => ProducerLine(event).fmt(f),
            SimEvent::ProducerExpired {
                producer_id,
                partition,
            } => write!(
                f,
                "broker expired producer {producer_id} on p{partition} (idle for producer.id.expiration.ms)"
            ),
            SimEvent::ProducerRestarted { resent } => write!(
                f,
                "producer process restarted: a new producer id; {resent} unacknowledged batch(es) re-sent"
            ),
            SimEvent::BrokerRestarted(restart) => write!(f, "broker {restart}"),
            SimEvent::RecordsDeleted {
                partition,
                log_start_offset,
                batches,
                producers_evicted,
            } => {
                write!(
                    f,
                    "DeleteRecords: p{partition} log start offset -> {log_start_offset} ({batches} batch(es) deleted"
                )?;
                match producers_evicted {
                    0 => write!(f, "; producer state kept)"),
                    n => write!(
                        f,
                        "; producer state of {n} producer id(s) evicted with them)"
                    ),
                }
            }
            SimEvent::Cluster(change) => change.fmt(f),
        }
    }
}

impl SimEvent {
    /// The lines about messages and connections.
    fn fmt_message(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::RequestSent {
                correlation_id,
                batches,
                arrives_at_ms,
                lost,
                duplicated,
                corrupted,
                node,
                metadata,
                ..
            } => {
                if *metadata {
                    write!(f, "Metadata #{correlation_id}")?;
                } else {
                    request_sent(f, *correlation_id, batches)?;
                }
                if let Some(node) = node {
                    write!(f, " to broker {node}")?;
                }
                match (arrives_at_ms, lost) {
                    (_, Some(cause)) => write!(f, " — {cause} on the way to the broker")?,
                    (Some(at), None) => write!(f, " (arrives at {at} ms)")?,
                    (None, None) => {}
                }
                let duplicated = if *duplicated {
                    " — and a duplicate copy follows"
                } else {
                    ""
                };
                let corrupted = if *corrupted {
                    " — a bit flips on the way"
                } else {
                    ""
                };
                write!(f, "{duplicated}{corrupted}")
            }
            SimEvent::RequestLostInFlight {
                correlation_id,
                cause,
            } => write!(f, "request #{correlation_id} {cause}"),
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
                response,
            } => write!(
                f,
                "response #{correlation_id} arrived: {}",
                ResponseSummary(response)
            ),
            SimEvent::ResponseDiscarded {
                correlation_id,
                cause,
            } => write!(f, "response #{correlation_id} {cause}"),
            SimEvent::Disconnected { cause, failed } => {
                write!(f, "connection closed ({cause}): {failed} request(s) failed")
            }
            _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_says_which_response_came_out_of_turn_or_which_request_timed_out() {
        let out_of_turn = DisconnectCause::OutOfTurn {
            arrived: 7,
            missing: 5,
        };
        assert_eq!(
            out_of_turn.to_string(),
            "response #7 arrived but #5's never did"
        );
        let timed_out = DisconnectCause::Unanswered { correlation_id: 5 };
        assert_eq!(
            timed_out.to_string(),
            "request #5 unanswered after request.timeout.ms"
        );
    }

    #[test]
    fn offsets_read_as_one_offset_or_a_range() {
        assert_eq!(Offsets(4, 4).to_string(), "offset 4");
        assert_eq!(Offsets(6, 8).to_string(), "offsets 6..8");
    }
}
