//! The producer state machine: Kafka's `Sender` and the idempotence half of its
//! `TransactionManager`, with no I/O and no clock.
//!
//! # One turn of the loop
//!
//! The caller owns the network and the clock. It hands batches to [`Producer::send`], then
//! repeatedly:
//!
//! 1. asks [`Producer::poll_request`] for the next request to write, until it says `None`
//!    (with cluster routing, [`Producer::poll_outgoing`], which also names the node);
//! 2. delivers each response with [`Producer::on_response`], or reports a dead connection
//!    with [`Producer::on_request_failed`] (or, for every request to one node,
//!    [`Producer::on_node_disconnected`]);
//! 3. calls [`Producer::on_timeout`] when [`Producer::next_wakeup_ms`] comes;
//! 4. collects outcomes with [`Producer::poll_delivery`] (and, for tracing,
//!    [`Producer::poll_event`]).
//!
//! `poll_request` is Kafka's `Sender.runOnce` in this order: expire what is due
//! (delivery timeouts first, then request timeouts, as `sendProducerData` expires batches
//! before the network client times requests out), `maybeResolveSequences`,
//! `bumpIdempotentEpochAndResetIdIfNeeded`, InitProducerId if there is no producer id, then
//! drain at most one batch per partition into one Produce request (java profile: the drain
//! stops at the first partition that must not send, as Java's does; idempo: it skips it).
//!
//! # Draining (docs/KAFKA-RULES.md §2.4, §2.5)
//!
//! A partition's head batch is *not* drained when:
//!
//! ```text
//! rule  head batch                  partition                                 why
//! 0     retry inside its backoff    -                                         retry.backoff.ms
//! 1     any                         the producer has no producer id           nothing to stamp
//! 2     new (no sequence)           has in-flight batches of an old epoch     seq 0 of the new
//!                                                                             epoch must not
//!                                                                             overtake them
//! 3     new                         unresolved (a sent batch expired)         sequences unknown
//! 4     retry (has a sequence)      its lowest in-flight batch is another one only the lowest
//!                                                                             sequence retries
//! ```
//!
//! Rule 4 makes a retrying partition drop to one batch in flight. A new batch is stamped when
//! it is first drained: if the partition is still on an old epoch and has nothing in flight
//! it restarts at 0 under the current one, then the batch takes `next_sequence` and
//! `next_sequence` advances by the record count, wrapping at `i32::MAX`.
//!
//! # Answers (docs/KAFKA-RULES.md §2.6)
//!
//! ```text
//! answer                         what happens
//! NONE                           delivered; last_acked_sequence = max(last_acked, last_seq)
//! DUPLICATE_SEQUENCE_NUMBER      delivered with base_offset -1
//! retriable (incl. CORRUPT_MESSAGE, REQUEST_TIMED_OUT, NETWORK_EXCEPTION, request timeout,
//!            cut connection)     same pid/epoch/sequence re-queued in sequence order after
//!                                the backoff, while attempts <= retries and before the
//!                                delivery timeout
//! OUT_OF_ORDER_SEQUENCE_NUMBER   no unresolved sequence and (batch already rewritten, or
//!                                base != last_acked + 1): collateral damage of an earlier
//!                                failure, retried unchanged. Otherwise: a real gap; the
//!                                partition asks for an epoch bump (if nothing is unresolved,
//!                                or the batch is the one right after the unresolved
//!                                sequence) and the batch is retried. With
//!                                `out_of_order_sequence_fatal` (Kafka 0.11.0): fatal
//! UNKNOWN_PRODUCER_ID            log start offset -1 or batch already rewritten: retry;
//!                                otherwise bump and retry. If it fails the batch for good
//!                                (retries or delivery timeout spent) the partition asks for a
//!                                bump, as for OUT_OF_ORDER_SEQUENCE_NUMBER (Java's
//!                                UnknownProducerIdException extends OutOfOrderSequenceException)
//! INVALID_PRODUCER_EPOCH and     the batch fails (Definite unless an earlier attempt's outcome
//! other non-retriable errors     is unknown); if retries were not exhausted the partition
//!                                asks for a bump, since its sequence may now be a hole
//!                                (Kafka 2.4, `failed_batch_adjusts_sequences`: the later
//!                                batches move down into its sequences, same epoch)
//! CLUSTER_AUTHORIZATION_FAILED,  fatal: every batch fails, later sends fail at once
//! PRODUCER_FENCED,
//! UNSUPPORTED_VERSION
//! ```
//!
//! InitProducerId answers: a retriable error is retried after `retry_backoff_ms`;
//! `CLUSTER_AUTHORIZATION_FAILED` is recoverable since Kafka 3.6 (KAFKA-13668): the next
//! `poll_request` fails every pending batch and asks for an id again at once
//! (`Sender.shouldHandleAuthorizationError`); any other error is fatal.
//!
//! # Epoch bumps and stale answers
//!
//! A bump (KIP-360) is local: at the start of the next `poll_request` the epoch goes up by
//! one, and every partition that asked has its unfinished batches re-stamped, in sequence
//! order, from sequence 0 (`startSequencesAtBeginning`); `last_acked_sequence` goes back to -1
//! and the partition is no longer unresolved. Other partitions keep the old epoch until their
//! in-flight batches finish (rule 2). At epoch `i16::MAX` the producer drops its id instead,
//! asks for a new one, and re-stamps the asking partitions under it once it arrives.
//!
//! As in Kafka, the re-stamp happens while some of those batches may still be on the wire
//! under the old epoch. A batch is in at most one request at a time, so when such an answer
//! arrives the batch's new state has never been sent. Each re-stamp increments the batch's
//! `generation`, and each request remembers the generation it carried; under the idempo
//! profile an answer for an older generation is *stale* (the java profile, as Java, feeds it
//! to the ordinary rules):
//!
//! - A stale error is not acted on (it describes the old epoch, which the broker now fences
//!   with `INVALID_PRODUCER_EPOCH` or `OUT_OF_ORDER_SEQUENCE_NUMBER`); the batch is re-queued
//!   to go out under its new state. Java would feed it to `canRetry`, which retries
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER` for a rewritten batch but *fails* the batch on a stale
//!   `INVALID_PRODUCER_EPOCH`.
//! - A stale acknowledgement means the records are in the log under the old epoch. Re-sending
//!   them under the new one would write them twice, so the batch is delivered as acknowledged.
//!   Its slot in the new sequence space was never sent, and no later slot can have been
//!   accepted by the broker (that would need this slot first), so the partition's later
//!   batches move down by its record count and are marked rewritten. Java would instead
//!   complete the batch and let the hole surface as `OUT_OF_ORDER_SEQUENCE_NUMBER` until
//!   the delivery timeout.
//!
//! What no client can fix: a bump re-stamps a batch whose earlier attempt may have been
//! written (its answer was lost and a retry is pending). If that happens the re-stamped copy is
//! written again. The bumps that Kafka's rules trigger make this rare: a gap the broker
//! reports with `OUT_OF_ORDER_SEQUENCE_NUMBER` means the batches after it were not written,
//! and an unresolved partition is only bumped when nothing is in flight. A failed batch
//! (for example `INVALID_RECORD`) while an earlier batch's answer is still lost is one case
//! left (KAFKA-14034, not fixed in Kafka; `JavaRules::failed_batch_waits_for_in_flight` is the
//! fix proposed in its PR #13796). The other comes from the broker: since 2.5 (KIP-360) a
//! broker accepts the *first* batch of a producer it does not know at any sequence. If a partition's first batch is lost
//! and the second is appended (its answer lost too), the first one's retry is refused as the
//! next expected batch, the bump rewrites both, and the second is written twice. The test
//! `first_batch_lost_then_gap_accepted_by_modern_broker_writes_a_batch_twice` replays it; a
//! broker that insists on sequence 0 from an unknown producer refuses the gap instead. The
//! simulator's checker can show both cases.
//!
//! # Timeouts (docs/KAFKA-RULES.md §2.8)
//!
//! A request with no answer after `request_timeout_ms` leaves the in-flight table and its
//! batches are retried as after a network error (the attempt counts). As Kafka's
//! `NetworkClient` does, the timeout also closes the connection, so every other request in
//! flight fails the same way: answers on one connection arrive in order, and once one is
//! missing the later ones cannot be trusted to come. This is what keeps a retried batch
//! inside the broker's dedup window; see `max_in_flight` in [`crate::config`]. A batch still without an
//! outcome `delivery_timeout_ms` after `send()` fails: `Definite` if it was never sent (or every
//! attempt was refused outright), `PossiblyPersisted` otherwise. A sent batch that expires makes
//! its partition *unresolved* (java profile: only if it had been retried, as Java's `inRetry()`),
//! with `unresolved_next_sequence = max(existing, last_seq + 1)`. An expired batch that is on
//! the wire is reported at once but kept, invisible to the caller, until its request ends, so
//! that a late acknowledgement can still move `last_acked_sequence`; under the idempo profile
//! it also stays in the partition's in-flight set until then (Java drops it at expiry). Once an unresolved partition has nothing in flight, it is resolved without a
//! bump if `last_acked_sequence + 1 == next_sequence`, and bumped otherwise.
//!
//! # Routing in a cluster (`cluster_routing`)
//!
//! With [`ProducerConfig::cluster_routing`] off (the default) everything above happens on one
//! connection to node 0, and no Metadata is ever sent. With it on the producer is Kafka's
//! `Sender` over a `NetworkClient` with one connection per broker, and the caller asks
//! [`Producer::poll_outgoing`], which names the node of each request. Each poll, after the
//! timeouts, sequence resolution and epoch bump above (the java/idempo difference of the
//! drain applies per node):
//!
//! ```text
//! step  what goes out                    where                      Kafka
//! 1     Metadata, when a refresh is due  the least loaded node      NetworkClient.isReady: an
//!       (see crate::metadata); nothing   (fewest requests in        update due makes every node
//!       else while it is due             flight, not backing off)   unready; leastLoadedNode
//! 2     InitProducerId, without an id    the least loaded node      Sender.sendProducerData via
//!                                                                   the transaction manager
//! 3     Produce: at most one batch of    each partition's leader,   RecordAccumulator.ready,
//!       every partition the node leads   a node at a time, only if  drainBatchesForOneNode,
//!                                        its connection has fewer   Sender.sendProduceRequests
//!                                        than max_in_flight         (one request per node)
//! ```
//!
//! A partition with batches and no known leader asks for a refresh and its batches wait
//! (`unknownLeaderTopics`); so does a partition that Metadata answers `LEADER_NOT_AVAILABLE`
//! for (offline), until an answer names a leader. Answers:
//!
//! ```text
//! answer or event                         batch                      metadata
//! NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_   retried with the same      refresh requested
//!   EPOCH, LEADER_NOT_AVAILABLE, KAFKA_    producer id, epoch and      (InvalidMetadataException)
//!   STORAGE_ERROR, NETWORK_EXCEPTION       sequence, in order (rule 4)
//! UNKNOWN_LEADER_EPOCH                    retried                    not refreshed: the broker
//!                                                                    is behind, not the client
//! NOT_ENOUGH_REPLICAS                     retried (nothing appended) -
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND        retried, possibly          -
//!                                         persisted: the retry is
//!                                         answered as a duplicate
//! request failed or timed out             retried (the timeout also  refresh requested; the node
//!                                         fails that node's other    is left alone for
//!                                         requests, not the others') reconnect_backoff_ms
//! ```
//!
//! A retry normally waits `retry_backoff_ms`. When a Metadata answer names a newer leader
//! epoch for its partition since the batch's last attempt, it goes to the new leader at once
//! (KIP-951, `ProducerBatch.hasLeaderChangedForTheOngoingRetry`). A Metadata answer with an
//! older leader epoch than one seen before leaves that partition as it was (KIP-320).
//!
//! In-order retries across a leader change come from the rules above, not from the network:
//! only the partition's lowest in-flight sequence is re-sent (rule 4), and it is re-sent
//! unchanged, so the new leader either holds it (replicated before the failover: answered as
//! a duplicate) or does not (appended now, in sequence). Under the java profile, a *new*
//! batch is drained to the new leader at once even while an older one is still on the wire
//! to the old leader, on another connection; under the idempo profile
//! (`one_leader_at_a_time`) it waits until nothing of its partition is on the wire elsewhere.

use crate::accumulator::PartitionTable;
use crate::batch::{DeliveryHandle, ProducerBatch};
use crate::batch_table::BatchTable;
use crate::config::{ClientProfile, ConfigError, Improvements, JavaRules, ProducerConfig};
use crate::deadlines::Deadlines;
use crate::delivery::{Delivered, DeliveryError, DeliveryReport, FailureReason};
use crate::event::{BumpReason, EventLog, ProducerEvent};
use crate::in_flight::{InFlightKind, InFlightRequest, InFlightRequests, SentBatch};
use crate::metadata::Metadata;
use crate::profile_librdkafka::{LibrdkafkaState, OutOfOrder};
use crate::sequencer::PartitionEntry;
use crate::stats::{ProducerStats, RoutingStats};
use idempo_protocol::{
    ErrorCode, InitProducerIdRequest, InitProducerIdResponse, PartitionProduceData, ProduceRequest,
    ProduceResponse, ProducerEpoch, ProducerId, Record, Request, RequestFrame, Response,
    ResponseFrame, Sequence,
};
use std::collections::{BTreeMap, VecDeque};

mod routing;

pub use routing::Outgoing;
use routing::Routing;

/// Most batch lists of finished requests kept for reuse.
const SPARE_SENT_MAX: usize = 8;

/// What one attempt of one batch came to.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Acknowledged (`NONE`, or `DUPLICATE_SEQUENCE_NUMBER` with `duplicate`).
    Acked { base_offset: i64, duplicate: bool },
    /// Not acknowledged.
    Failed {
        reason: FailureReason,
        /// The broker's log start offset, `None` when no broker answered.
        log_start_offset: Option<i64>,
    },
}

/// One partition's turn in a drain.
enum DrainStep {
    /// The head batch went into the request.
    Took(PartitionProduceData, SentBatch),
    /// Nothing to send here now (empty queue, retry backoff); the drain goes on.
    Skip,
    /// The head batch must not be sent (`shouldStopDrainBatchesForPartition`).
    Blocked,
}

/// Errors after which Kafka's producer enters its fatal state (`maybeTransitionToErrorState`).
fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ClusterAuthorizationFailed
            | ErrorCode::ProducerFenced
            | ErrorCode::UnsupportedVersion
    )
}

/// A sans-IO idempotent producer, following Kafka's Java client.
///
/// See the [module documentation](self) for the rules, and the crate documentation for the
/// story. Every method takes the current virtual time where time matters; the producer never
/// reads a clock. `now_ms` should not go backwards.
///
/// # Examples
///
/// One batch, from `send()` to its delivery report, with the broker played by hand:
///
/// ```
/// use idempo_producer::{Producer, ProducerConfig};
/// use idempo_protocol::{
///     BatchHeader, ErrorCode, InitProducerIdResponse, PartitionProduceResponse, ProducerEpoch,
///     ProducerId, ProduceResponse, Record, Request, Response, ResponseFrame, Sequence,
/// };
///
/// let mut producer = Producer::new(ProducerConfig::default()).unwrap();
/// let handle = producer.send(0, vec![Record::with_value(0, "a"), Record::with_value(0, "b")], 0);
///
/// // First the producer needs an id.
/// let init = producer.poll_request(0).unwrap();
/// assert!(matches!(init.request, Request::InitProducerId(_)));
/// assert!(producer.poll_request(0).is_none(), "no Produce before the id arrives");
/// producer.on_response(
///     ResponseFrame {
///         correlation_id: init.correlation_id,
///         response: Response::InitProducerId(InitProducerIdResponse {
///             error_code: ErrorCode::None,
///             producer_id: ProducerId(42),
///             producer_epoch: ProducerEpoch(0),
///         }),
///     },
///     1,
/// );
///
/// // Then the batch goes out stamped with id 42, epoch 0, sequence 0.
/// let produce = producer.poll_request(1).unwrap();
/// let Request::Produce(request) = &produce.request else { panic!("expected Produce") };
/// let header = BatchHeader::parse(&request.partitions[0].records).unwrap();
/// assert_eq!((header.producer_id, header.base_sequence), (ProducerId(42), Sequence(0)));
///
/// producer.on_response(
///     ResponseFrame {
///         correlation_id: produce.correlation_id,
///         response: Response::Produce(ProduceResponse {
///             partitions: vec![PartitionProduceResponse {
///                 partition: 0,
///                 error_code: ErrorCode::None,
///                 base_offset: 100,
///                 log_append_time_ms: -1,
///                 log_start_offset: 0,
///             }],
///         }),
///     },
///     2,
/// );
/// let report = producer.poll_delivery().unwrap();
/// assert_eq!(report.handle, handle);
/// assert_eq!(report.result.unwrap().base_offset, 100);
/// assert!(producer.is_idle());
/// ```
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    /// The current producer id; `NONE` without idempotence or while one is being fetched.
    producer_id: ProducerId,
    /// The current epoch.
    producer_epoch: ProducerEpoch,
    /// Set once the producer failed fatally.
    fatal_error: Option<ErrorCode>,
    /// InitProducerId was refused with `CLUSTER_AUTHORIZATION_FAILED`: the next
    /// `poll_request` fails the pending batches and asks again (Kafka's abortable error).
    authorization_error: Option<ErrorCode>,
    /// InitProducerId backoff after a failure.
    init_retry_not_before_ms: u64,
    /// Every batch without an outcome (plus reported batches still on the wire), by handle.
    batches: BatchTable,
    /// `(deadline_ms, handle)` of every batch not yet reported, for delivery timeouts.
    deadlines: Deadlines,
    /// Queues and sequence state, by partition.
    partitions: PartitionTable,
    /// Kafka's `partitionsToRewriteSequences`: partitions that asked for an epoch bump, with
    /// the reason of the first request.
    partitions_to_rewrite: BTreeMap<i32, BumpReason>,
    in_flight: InFlightRequests,
    /// The idempo improvements in force (all off under the java profile).
    improvements: Improvements,
    /// librdkafka's rules and their state, under the librdkafka profile only.
    librdkafka: Option<LibrdkafkaState>,
    /// The Java client's historical rules in force (today's under the librdkafka profile).
    java: JavaRules,
    /// Partition the next drain starts at under the java profile (Kafka's `nodesDrainIndex`).
    drain_start: i32,
    next_handle: u64,
    next_correlation_id: i32,
    next_drain_order: u64,
    deliveries: VecDeque<DeliveryReport>,
    events: EventLog,
    stats: ProducerStats,
    /// Latest time seen, so `next_wakeup_ms` can skip backoffs already over.
    now_ms: u64,
    /// The cluster view (used only with `cluster_routing`).
    metadata: Metadata,
    /// Per-node state of cluster routing (unused without it).
    routing: Routing,
    /// Counters of cluster routing.
    routing_stats: RoutingStats,
    /// Batch lists of finished Produce requests, kept for the next ones (at most
    /// `SPARE_SENT_MAX`).
    spare_sent: Vec<Vec<SentBatch>>,
    /// The latest acks=0 Produce request and its batches (no answer will come for it), for
    /// [`Producer::unanswered_batches`]; replaced by the next one.
    unanswered: Option<(i32, Vec<SentBatch>)>,
}

impl Producer {
    /// A producer with the given settings, or the reason they are refused.
    pub fn new(config: ProducerConfig) -> Result<Producer, ConfigError> {
        config.validate()?;
        let improvements = config.improvements();
        let librdkafka = (config.client_profile == ClientProfile::Librdkafka)
            .then(|| LibrdkafkaState::new(config.librdkafka));
        let java = match config.client_profile {
            ClientProfile::Librdkafka => JavaRules::CURRENT,
            profile => config.java.with(profile.java_rules()),
        };
        let metadata = Metadata::new(
            config.bootstrap.clone(),
            config.retry_backoff_ms,
            config.metadata_max_age_ms,
        );
        Ok(Producer {
            config,
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            fatal_error: None,
            authorization_error: None,
            init_retry_not_before_ms: 0,
            batches: BatchTable::default(),
            deadlines: Deadlines::default(),
            partitions: PartitionTable::default(),
            partitions_to_rewrite: BTreeMap::new(),
            in_flight: InFlightRequests::default(),
            improvements,
            librdkafka,
            java,
            drain_start: 0,
            next_handle: 0,
            next_correlation_id: 0,
            next_drain_order: 0,
            deliveries: VecDeque::new(),
            events: EventLog::new(),
            stats: ProducerStats::default(),
            now_ms: 0,
            metadata,
            routing: Routing::default(),
            routing_stats: RoutingStats::default(),
            spare_sent: Vec::new(),
            unanswered: None,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Switches the event buffer on or off (on by default). Switching it off drops buffered
    /// events; a simulator that does not trace saves the work.
    pub fn set_record_events(&mut self, on: bool) {
        self.events.enabled = on;
        if !on {
            self.events.clear();
        }
    }

    /// Queues one batch for `partition`. One send is one batch: the caller chooses its size.
    /// Records are carried as given, except that the producer sets their offset deltas; the
    /// batch's timestamps are `now_ms`. The sequence is assigned later, when the batch is first
    /// drained. An empty batch, or a send after a fatal error, is reported failed at once.
    pub fn send(&mut self, partition: i32, records: Vec<Record>, now_ms: u64) -> DeliveryHandle {
        self.observe(now_ms);
        let handle = DeliveryHandle(self.next_handle);
        self.next_handle += 1;
        let refused = match self.fatal_error {
            Some(code) => Some(FailureReason::Fatal(code)),
            None if records.is_empty() => Some(FailureReason::EmptyBatch),
            None => None,
        };
        if let Some(reason) = refused {
            let error = DeliveryError::Definite {
                reason,
                attempts: 0,
            };
            self.report_failure(handle, partition, records.len(), Sequence::NONE, error);
            return handle;
        }
        let deadline_ms = now_ms.saturating_add(self.config.delivery_timeout_ms);
        let batch = ProducerBatch::new(handle, partition, records, now_ms, deadline_ms);
        self.batches.insert(handle.0, batch);
        self.deadlines.insert((deadline_ms, handle.0));
        self.partitions
            .get_or_insert(partition)
            .queue
            .push_back(handle.0);
        handle
    }

    /// The next request to put on the wire, if one may be sent now, with a fresh correlation
    /// id: InitProducerId first when idempotent and without a producer id, otherwise a Produce
    /// request with at most one batch per partition (batches of several partitions share it,
    /// as Kafka's drain does). Also runs what is due: timeouts, sequence resolution and
    /// epoch bumps.
    ///
    /// With [`ProducerConfig::cluster_routing`] this is [`Producer::poll_outgoing`] without
    /// the node, which a caller with several brokers needs.
    pub fn poll_request(&mut self, now_ms: u64) -> Option<RequestFrame> {
        if self.config.cluster_routing {
            return self.poll_routed(now_ms).map(|o| o.frame);
        }
        if !self.run_due(now_ms) {
            return None;
        }
        if self.config.idempotence && !self.producer_id.is_some() {
            if self.in_flight.len() >= self.config.max_in_flight {
                return None;
            }
            return self.maybe_init_producer_id(now_ms, 0);
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            return None;
        }
        self.drain(now_ms)
    }

    /// The next request to put on the wire and the node to send it to. Without
    /// [`ProducerConfig::cluster_routing`] every request goes to node 0 and this is
    /// [`Producer::poll_request`]. With it: Metadata first when a refresh is due (to the least
    /// loaded node), then InitProducerId (to the least loaded node), then one Produce request
    /// per node holding at most one batch of every partition that node leads (see the
    /// `routing` section of the module essay).
    ///
    /// # Examples
    ///
    /// Partition 4's batch goes to its leader, broker 2, once Metadata has said so:
    ///
    /// ```
    /// use idempo_producer::{Outgoing, Producer, ProducerConfig};
    /// use idempo_protocol::{
    ///     ErrorCode, InitProducerIdResponse, MetadataResponse, PartitionMetadata, ProducerEpoch,
    ///     ProducerId, Record, Request, Response, ResponseFrame,
    /// };
    ///
    /// let config = ProducerConfig { cluster_routing: true, ..ProducerConfig::default() };
    /// let mut producer = Producer::new(config).unwrap();
    /// producer.send(4, vec![Record::with_value(0, "a")], 0);
    ///
    /// // Metadata first, to the bootstrap node.
    /// let Outgoing { node, frame } = producer.poll_outgoing(0).unwrap();
    /// assert!(matches!(frame.request, Request::Metadata(_)));
    /// assert_eq!(node, 0);
    /// let leader = PartitionMetadata {
    ///     error_code: ErrorCode::None,
    ///     partition: 4,
    ///     leader_id: 2,
    ///     leader_epoch: 0,
    ///     replica_nodes: vec![2, 0, 1],
    ///     isr_nodes: vec![2, 0, 1],
    /// };
    /// let metadata = MetadataResponse { brokers: vec![0, 1, 2], controller_id: 0, partitions: vec![leader] };
    /// let answer = ResponseFrame { correlation_id: frame.correlation_id, response: Response::Metadata(metadata) };
    /// producer.on_response(answer, 1);
    ///
    /// // Then a producer id, from the least loaded node.
    /// let init = producer.poll_outgoing(1).unwrap();
    /// let id = InitProducerIdResponse {
    ///     error_code: ErrorCode::None,
    ///     producer_id: ProducerId(42),
    ///     producer_epoch: ProducerEpoch(0),
    /// };
    /// let answer = ResponseFrame { correlation_id: init.frame.correlation_id, response: Response::InitProducerId(id) };
    /// producer.on_response(answer, 2);
    ///
    /// // Then the batch, to partition 4's leader.
    /// let produce = producer.poll_outgoing(2).unwrap();
    /// assert!(matches!(produce.frame.request, Request::Produce(_)));
    /// assert_eq!(produce.node, 2);
    /// ```
    pub fn poll_outgoing(&mut self, now_ms: u64) -> Option<Outgoing> {
        if self.config.cluster_routing {
            return self.poll_routed(now_ms);
        }
        self.poll_request(now_ms)
            .map(|frame| Outgoing { node: 0, frame })
    }

    /// What `Sender.runOnce` does before it sends anything: timeouts, then (idempotent)
    /// the authorization error, `maybeResolveSequences` and the epoch bump. False once the
    /// producer has failed fatally.
    fn run_due(&mut self, now_ms: u64) -> bool {
        self.on_timeout(now_ms);
        if self.fatal_error.is_some() {
            return false;
        }
        if self.config.idempotence {
            if let Some(code) = self.authorization_error.take() {
                self.abort_batches(FailureReason::Broker(code));
            }
            if self.producer_id.is_some() {
                self.maybe_resolve_sequences();
                self.maybe_bump_epoch();
            }
        }
        true
    }

    /// Handles the answer to a request. A correlation id that is not awaited (the request
    /// timed out or failed earlier) is ignored and reported as an event.
    pub fn on_response(&mut self, frame: ResponseFrame, now_ms: u64) {
        self.observe(now_ms);
        let correlation_id = frame.correlation_id;
        let Some(request) = self.in_flight.remove(correlation_id) else {
            self.stats.late_responses_ignored += 1;
            self.event(ProducerEvent::LateResponseIgnored { correlation_id });
            return;
        };
        match (request.kind, frame.response) {
            (InFlightKind::InitProducerId, Response::InitProducerId(response)) => {
                self.handle_init_producer_id(response, now_ms)
            }
            (InFlightKind::Produce(sent), Response::Produce(response)) => {
                self.handle_produce_response(correlation_id, &sent, &response, now_ms);
                self.recycle_sent(sent);
            }
            (InFlightKind::Metadata, Response::Metadata(response)) => {
                self.handle_metadata_response(correlation_id, &response, now_ms)
            }
            (kind, _) => {
                self.event(ProducerEvent::MalformedResponse {
                    correlation_id,
                    partition: None,
                });
                self.fail_request(
                    correlation_id,
                    kind,
                    FailureReason::MalformedResponse,
                    now_ms,
                );
            }
        }
    }

    /// The connection carrying this request failed: its batches are retried as after
    /// `NETWORK_EXCEPTION` (their outcome is unknown).
    pub fn on_request_failed(&mut self, correlation_id: i32, now_ms: u64) {
        self.observe(now_ms);
        let Some(request) = self.in_flight.remove(correlation_id) else {
            self.stats.late_responses_ignored += 1;
            self.event(ProducerEvent::LateFailureIgnored { correlation_id });
            return;
        };
        self.stats.connection_failures += 1;
        self.event(ProducerEvent::RequestFailed { correlation_id });
        self.fail_request(
            correlation_id,
            request.kind,
            FailureReason::ConnectionFailure,
            now_ms,
        );
        if self.config.cluster_routing {
            self.on_node_failed(request.node, now_ms);
        }
    }

    /// Expires batches past `delivery_timeout_ms`, then requests past `request_timeout_ms`
    /// (their batches are retried).
    pub fn on_timeout(&mut self, now_ms: u64) {
        self.observe(now_ms);
        self.expire_batches(now_ms);
        self.expire_requests(now_ms);
    }

    /// Earliest virtual time at which `on_timeout` or `poll_request` would do something new:
    /// a request timeout, a delivery timeout, or the end of a retry backoff. `None` when
    /// nothing is pending.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        let mut wakeup: Option<u64> = None;
        let mut consider = |t: u64| wakeup = Some(wakeup.map_or(t, |w| w.min(t)));
        if let Some(sent_ms) = self.in_flight.earliest_sent_ms() {
            consider(sent_ms.saturating_add(self.config.request_timeout_ms));
        }
        if let Some(&(deadline_ms, _)) = self.deadlines.first() {
            consider(deadline_ms);
        }
        if self.fatal_error.is_some() {
            return wakeup;
        }
        if self.authorization_error.is_some() {
            consider(self.now_ms);
        }
        if self.config.idempotence
            && !self.producer_id.is_some()
            && self.init_retry_not_before_ms > self.now_ms
            && !self.in_flight.has_init_producer_id()
        {
            consider(self.init_retry_not_before_ms);
        }
        for part in self.partitions.values() {
            let head = part.queue.front().and_then(|h| self.batches.get(h));
            if let Some(batch) = head
                && batch.retry_not_before_ms > self.now_ms
            {
                consider(batch.retry_not_before_ms);
            }
        }
        if self.config.cluster_routing {
            self.routed_wakeups(&mut consider);
        }
        wakeup
    }

    /// The next delivery report, oldest first.
    pub fn poll_delivery(&mut self) -> Option<DeliveryReport> {
        self.deliveries.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ProducerEvent> {
        self.events.pop()
    }

    /// The current producer id (`ProducerId::NONE` without idempotence or before one arrived).
    pub fn producer_id(&self) -> ProducerId {
        self.producer_id
    }

    /// The current epoch.
    pub fn producer_epoch(&self) -> ProducerEpoch {
        self.producer_epoch
    }

    /// Requests awaiting an answer (Produce and InitProducerId).
    pub fn in_flight_requests(&self) -> usize {
        self.in_flight.len()
    }

    /// The batches produce request `correlation_id` carries, in request order, as stamped
    /// when it was sent, while it awaits its answer: what a caller needs to know about a
    /// request it just took from [`Producer::poll_request`] without decoding its bytes. Empty
    /// for InitProducerId, for `acks=0` (see [`Producer::unanswered_batches`]), and once the
    /// request is answered, failed or expired.
    pub fn request_batches(
        &self,
        correlation_id: i32,
    ) -> impl Iterator<Item = crate::InFlightBatch> + '_ {
        self.in_flight.batches_of(correlation_id)
    }

    /// The batches acks=0 produce request `correlation_id` carries, in request order, while
    /// it is the latest acks=0 request sent. The broker never answers such a request and its
    /// batches are complete once sent, so [`Producer::request_batches`] does not know them;
    /// this is how a caller learns what the request it just took from
    /// [`Producer::poll_request`] carries.
    pub fn unanswered_batches(
        &self,
        correlation_id: i32,
    ) -> impl Iterator<Item = crate::InFlightBatch> + '_ {
        let sent = match &self.unanswered {
            Some((id, sent)) if *id == correlation_id => &sent[..],
            _ => &[],
        };
        sent.iter().map(crate::InFlightBatch::from)
    }

    /// True when no batch awaits an outcome and no request awaits an answer. Delivery reports
    /// and events may still be waiting to be polled.
    pub fn is_idle(&self) -> bool {
        self.batches.is_empty() && self.in_flight.is_empty()
    }

    /// The fatal error, once the producer has failed for good.
    pub fn fatal_error(&self) -> Option<ErrorCode> {
        self.fatal_error
    }

    /// Counters since creation.
    pub fn stats(&self) -> ProducerStats {
        self.stats
    }

    /// Cluster routing counters since creation (all zero without `cluster_routing`).
    pub fn routing_stats(&self) -> RoutingStats {
        self.routing_stats
    }

    // ----- bookkeeping -------------------------------------------------------------------

    fn observe(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn event(&mut self, event: ProducerEvent) {
        self.events.push(&mut self.stats, event);
    }

    /// An empty list for the batches of the next Produce request, reusing one a finished
    /// request left (one allocation less per request).
    fn take_sent(&mut self) -> Vec<SentBatch> {
        self.spare_sent.pop().unwrap_or_default()
    }

    /// Keeps the list of a finished request for [`Producer::take_sent`], up to a few.
    fn recycle_sent(&mut self, mut sent: Vec<SentBatch>) {
        if self.spare_sent.len() < SPARE_SENT_MAX {
            sent.clear();
            self.spare_sent.push(sent);
        }
    }

    fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        id
    }

    fn report_delivered(&mut self, batch: &ProducerBatch, delivered: Delivered, duplicate: bool) {
        self.stats.batches_delivered += 1;
        self.event(ProducerEvent::BatchAcked {
            handle: batch.handle,
            partition: batch.partition,
            producer_id: delivered.producer_id,
            epoch: delivered.producer_epoch,
            base_sequence: delivered.base_sequence,
            base_offset: delivered.base_offset,
            duplicate_sequence: duplicate,
        });
        self.deliveries.push_back(DeliveryReport {
            handle: batch.handle,
            partition: batch.partition,
            record_count: batch.batch.records.len(),
            result: Ok(delivered),
        });
    }

    fn report_failure(
        &mut self,
        handle: DeliveryHandle,
        partition: i32,
        record_count: usize,
        base_sequence: Sequence,
        error: DeliveryError,
    ) {
        self.stats.batches_failed += 1;
        if error.is_possibly_persisted() {
            self.stats.batches_possibly_persisted += 1;
        }
        self.event(ProducerEvent::BatchFailed {
            handle,
            partition,
            base_sequence,
            error,
        });
        self.deliveries.push_back(DeliveryReport {
            handle,
            partition,
            record_count,
            result: Err(error),
        });
    }

    /// Fails a batch that is off the wire and reports it.
    fn report_batch_failure(&mut self, batch: &ProducerBatch, reason: FailureReason) {
        let error = batch.failure(reason);
        let records = batch.batch.records.len();
        self.report_failure(
            batch.handle,
            batch.partition,
            records,
            batch.base_sequence(),
            error,
        );
    }

    /// Kafka's `requestIdempotentEpochBumpForPartition`.
    fn request_epoch_bump(&mut self, partition: i32, reason: BumpReason) {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            self.partitions_to_rewrite.entry(partition)
        {
            slot.insert(reason);
            self.event(ProducerEvent::EpochBumpRequested { partition, reason });
        }
    }

    // ----- producer id and epoch ---------------------------------------------------------

    /// InitProducerId to `node`, unless one is in flight or backing off. The caller checked
    /// that `node`'s connection has room.
    fn maybe_init_producer_id(&mut self, now_ms: u64, node: i32) -> Option<RequestFrame> {
        if self.in_flight.has_init_producer_id() || now_ms < self.init_retry_not_before_ms {
            return None;
        }
        let correlation_id = self.next_correlation_id();
        self.in_flight.push(InFlightRequest {
            correlation_id,
            sent_ms: now_ms,
            node,
            kind: InFlightKind::InitProducerId,
        });
        self.stats.requests_sent += 1;
        self.stats.init_producer_id_requests_sent += 1;
        self.event(ProducerEvent::ProducerIdRequested { correlation_id });
        Some(RequestFrame {
            correlation_id,
            // Kafka's Java client sends Integer.MAX_VALUE without a transactional id.
            request: Request::InitProducerId(InitProducerIdRequest {
                transaction_timeout_ms: i32::MAX,
            }),
        })
    }

    fn handle_init_producer_id(&mut self, response: InitProducerIdResponse, now_ms: u64) {
        let code = response.error_code;
        let valid = response.producer_id.is_some() && response.producer_epoch.0 >= 0;
        if code.is_ok() && valid {
            self.assign_producer_id(response.producer_id, response.producer_epoch);
        } else if code.is_ok() || code.is_retriable() {
            // A success without a usable id is a broken peer; try again rather than panic.
            let reason = FailureReason::Broker(if code.is_ok() {
                ErrorCode::UnknownServerError
            } else {
                code
            });
            self.init_retry_not_before_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
            self.event(ProducerEvent::ProducerIdRequestFailed {
                reason,
                fatal: false,
            });
        } else if code == ErrorCode::ClusterAuthorizationFailed {
            // Kafka 3.6+ (KAFKA-13668): InitProducerIdHandler makes this an abortable error,
            // and the Sender's next runOnce (shouldHandleAuthorizationError) fails the pending
            // batches and goes back to UNINITIALIZED, which asks for a producer id again.
            self.event(ProducerEvent::ProducerIdRequestFailed {
                reason: FailureReason::Broker(code),
                fatal: false,
            });
            self.authorization_error = Some(code);
        } else {
            // Kafka's InitProducerIdHandler: other unexpected errors are fatal.
            self.event(ProducerEvent::ProducerIdRequestFailed {
                reason: FailureReason::Broker(code),
                fatal: true,
            });
            self.enter_fatal(code);
        }
    }

    fn assign_producer_id(&mut self, producer_id: ProducerId, producer_epoch: ProducerEpoch) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.stats.producer_ids_assigned += 1;
        self.event(ProducerEvent::ProducerIdAssigned {
            producer_id,
            producer_epoch,
        });
        // Partitions that asked for a bump that became a producer id reset restart under the
        // new id now; the others restart when their old batches are done (rule 2).
        let to_rewrite = std::mem::take(&mut self.partitions_to_rewrite);
        for partition in to_rewrite.into_keys() {
            self.start_sequences_at_beginning(partition);
        }
    }

    /// Kafka's `maybeResolveSequences`.
    fn maybe_resolve_sequences(&mut self) {
        let mut to_bump = Vec::new();
        for (&partition, part) in self.partitions.iter_mut() {
            let entry = &mut part.entry;
            if entry.unresolved_next_sequence.is_none() || !entry.in_flight.is_empty() {
                continue;
            }
            entry.unresolved_next_sequence = None;
            if entry.is_next_sequence(entry.next_sequence) {
                self.stats.partitions_resolved += 1;
                let last_acked_sequence = entry.last_acked_sequence;
                self.events.push(
                    &mut self.stats,
                    ProducerEvent::PartitionResolved {
                        partition,
                        last_acked_sequence,
                    },
                );
            } else {
                to_bump.push(partition);
            }
        }
        for partition in to_bump {
            self.request_epoch_bump(partition, BumpReason::UnresolvedSequence);
        }
    }

    /// Kafka's `bumpIdempotentEpochAndResetIdIfNeeded`.
    ///
    /// Under librdkafka's `drain_bump` the bump waits until no Produce request is in flight
    /// (`rd_kafka_idemp_drain_done`), and then every partition with unfinished batches is
    /// re-stamped from 0, not only the asking ones (`rd_kafka_toppar_pid_change`).
    fn maybe_bump_epoch(&mut self) {
        let Some((&partition, &reason)) = self.partitions_to_rewrite.first_key_value() else {
            return;
        };
        if let Some(rdk) = &self.librdkafka
            && rdk.rules.drain_bump
        {
            if self.in_flight.has_produce() {
                return;
            }
            // Nothing is on the wire now, so a partition still marked as draining ends its
            // drain at its next send (`partition_may_send`).
            for (&p, part) in self.partitions.iter() {
                if !part.entry.in_flight.is_empty() {
                    self.partitions_to_rewrite.entry(p).or_insert(reason);
                }
            }
        }
        let old_epoch = self.producer_epoch;
        // Before KAFKA-5283 the increment was `(epoch + 1).toShort`: 32767 wrapped to -32768.
        let wrapped = self
            .config
            .epoch_bump_wraps
            .then_some(ProducerEpoch(old_epoch.0.wrapping_add(1)));
        let Some(new_epoch) = old_epoch.bumped().or(wrapped) else {
            // Epoch exhausted: Java resets the producer id and asks for a new one.
            self.stats.producer_id_resets += 1;
            self.event(ProducerEvent::ProducerIdReset {
                old_producer_id: self.producer_id,
                old_epoch,
            });
            self.producer_id = ProducerId::NONE;
            self.producer_epoch = ProducerEpoch::NONE;
            if !self.improvements.restamp_after_producer_id_reset {
                // Java's bumpIdempotentProducerEpoch re-stamps the asking partitions at once,
                // under ProducerIdAndEpoch.NONE.
                let to_rewrite = std::mem::take(&mut self.partitions_to_rewrite);
                for p in to_rewrite.into_keys() {
                    self.start_sequences_at_beginning(p);
                }
                return;
            }
            let asking: Vec<i32> = self.partitions_to_rewrite.keys().copied().collect();
            for p in asking {
                if let Some(part) = self.partitions.get_mut(&p) {
                    part.entry.unresolved_next_sequence = None;
                }
            }
            return;
        };
        self.producer_epoch = new_epoch;
        self.stats.epoch_bumps += 1;
        self.event(ProducerEvent::EpochBumped {
            producer_id: self.producer_id,
            old_epoch,
            new_epoch,
            partition,
            reason,
        });
        let to_rewrite = std::mem::take(&mut self.partitions_to_rewrite);
        for p in to_rewrite.into_keys() {
            self.start_sequences_at_beginning(p);
        }
    }

    /// Kafka's `startSequencesAtBeginning`: re-stamps the partition's unfinished batches in
    /// sequence order from 0 under the current producer id and epoch. Batches already reported
    /// (expired while on the wire) are dropped from the set: they are never re-sent.
    fn start_sequences_at_beginning(&mut self, partition: i32) {
        self.restart_sequences_under(partition, self.producer_id, self.producer_epoch);
    }

    /// Kafka 2.4's `startSequencesAtBeginning` for `UNKNOWN_PRODUCER_ID`
    /// ([`JavaRules::unknown_producer_resets_sequences`]): the partition's unfinished batches
    /// restart at sequence 0 under the producer id and epoch they already carry.
    fn restart_sequences_in_place(&mut self, partition: i32) {
        let Some(entry) = self.partitions.get(&partition).map(|p| &p.entry) else {
            return;
        };
        let (producer_id, producer_epoch) = (entry.producer_id, entry.producer_epoch);
        self.restart_sequences_under(partition, producer_id, producer_epoch);
    }

    /// Re-stamps the partition's unfinished batches in sequence order from 0 under
    /// `(producer_id, producer_epoch)`, which the partition's sequences then belong to.
    fn restart_sequences_under(
        &mut self,
        partition: i32,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) {
        let part = self.partitions.get_or_insert(partition);
        let batches = &mut self.batches;
        let mut sequence = Sequence(0);
        part.entry
            .in_flight
            .retain(|handle| match batches.get_mut(handle) {
                Some(batch) if !batch.reported => {
                    batch.reset_producer_state(producer_id, producer_epoch, sequence);
                    sequence = sequence.wrapping_add(batch.record_count);
                    true
                }
                _ => false,
            });
        let rewritten = part.entry.in_flight.len();
        part.entry.restart(producer_id, producer_epoch, sequence);
        part.entry.assert_in_sequence_order(batches);
        self.stats.batches_rewritten += rewritten as u64;
        self.event(ProducerEvent::SequencesRewritten {
            partition,
            producer_id,
            epoch: producer_epoch,
            batches: rewritten,
            next_sequence: sequence,
        });
    }

    // ----- draining ----------------------------------------------------------------------

    /// Kafka's `shouldStopDrainBatchesForPartition`, rules 2 to 4 (rule 1 is checked before).
    ///
    /// With `first_batch_alone` (not in Kafka), a new batch also waits while the partition has
    /// a batch in flight and the broker has not yet acknowledged one under this producer id.
    fn should_stop_drain(
        entry: &PartitionEntry,
        batch: &ProducerBatch,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        first_batch_alone: bool,
        retries_in_queue_order: bool,
    ) -> bool {
        if batch.has_sequence() {
            !retries_in_queue_order && entry.in_flight.front() != Some(&batch.handle.0)
        } else {
            (!entry.in_flight.is_empty() && entry.is_stale(producer_id, producer_epoch))
                || entry.unresolved_next_sequence.is_some()
                || (first_batch_alone
                    && !entry.in_flight.is_empty()
                    && entry.acknowledged_producer_id != producer_id)
        }
    }

    /// Kafka's `drainBatchesForOneNode`: at most one batch per partition.
    ///
    /// Under the java profile the drain starts where the last one ended and *stops* at the
    /// first partition that must not send (`break` in `RecordAccumulator.drainBatchesForOneNode`),
    /// so the next drain starts at that partition again. Under the idempo profile it starts at
    /// the lowest partition and skips a blocked partition.
    fn drain(&mut self, now_ms: u64) -> Option<RequestFrame> {
        let correlation_id = self.next_correlation_id;
        let skip_blocked = self.improvements.drain_past_blocked_partition;
        let start = if skip_blocked {
            i32::MIN
        } else {
            self.drain_start
        };
        let first = self.partition_at_or_after(start);
        let (mut cursor, mut last_visited) = (first, None);
        let (mut data, mut sent) = (Vec::new(), self.take_sent());
        while let Some(partition) = cursor {
            last_visited = Some(partition);
            match self.drain_partition(partition, correlation_id, now_ms) {
                DrainStep::Took(d, s) => {
                    if data.is_empty() {
                        data.reserve_exact(self.partitions.len());
                    }
                    data.push(d);
                    sent.push(s);
                }
                DrainStep::Skip => {}
                DrainStep::Blocked if skip_blocked => {}
                DrainStep::Blocked => break,
            }
            cursor = partition
                .checked_add(1)
                .and_then(|next| self.partition_at_or_after(next))
                .or_else(|| self.partitions.first())
                .filter(|&next| Some(next) != first);
        }
        if let Some(partition) = last_visited {
            self.drain_start = partition;
        }
        if data.is_empty() {
            self.recycle_sent(sent);
            return None;
        }
        Some(self.send_produce(0, correlation_id, data, sent, now_ms))
    }

    /// The lowest known partition at or after `partition`, wrapping to the lowest of all.
    fn partition_at_or_after(&self, partition: i32) -> Option<i32> {
        self.partitions
            .first_at_or_after(partition)
            .or_else(|| self.partitions.first())
    }

    /// One partition's turn in a drain: its head batch, stamped if new, or why not.
    fn drain_partition(&mut self, partition: i32, correlation_id: i32, now_ms: u64) -> DrainStep {
        let handle = match self.drainable_head(partition, now_ms) {
            Ok(handle) => handle,
            Err(step) => return step,
        };
        if let Some(part) = self.partitions.get_mut(&partition) {
            part.queue.pop_front();
        }
        if self.config.idempotence {
            self.stamp_if_new(partition, handle);
        }
        let Some(batch) = self.batches.get_mut(&handle) else {
            return DrainStep::Skip;
        };
        assert!(batch.on_wire.is_none(), "a batch is in at most one request");
        if now_ms < batch.retry_not_before_ms {
            self.routing_stats.backoffs_skipped_for_new_leader += 1;
        }
        batch.attempts += 1;
        batch.on_wire = Some(correlation_id);
        // Java's drain closes the batch (`ProducerBatch.close`), which clears `reopened`: a
        // re-stamped batch counts as reset until it is sent again.
        batch.sequence_has_been_reset = false;
        let data = PartitionProduceData {
            partition,
            records: batch.encoded(),
        };
        let sent = SentBatch {
            handle,
            partition,
            generation: batch.generation,
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
        };
        let event = ProducerEvent::BatchSent {
            handle: batch.handle,
            partition,
            producer_id: sent.producer_id,
            epoch: sent.producer_epoch,
            base_sequence: sent.base_sequence,
            last_sequence: batch.last_sequence(),
            attempt: batch.attempts,
            correlation_id,
        };
        self.events.push(&mut self.stats, event);
        DrainStep::Took(data, sent)
    }

    /// The partition's head batch if it may be drained now, or the drain step that says why
    /// not (rules 0 to 4 of the module essay).
    fn drainable_head(&mut self, partition: i32, now_ms: u64) -> Result<u64, DrainStep> {
        let Some(part) = self.partitions.get_mut(&partition) else {
            return Err(DrainStep::Skip);
        };
        let Some(&handle) = part.queue.front() else {
            return Err(DrainStep::Skip);
        };
        let Some(batch) = self.batches.get_mut(&handle) else {
            part.queue.pop_front();
            return Err(DrainStep::Skip);
        };
        if self.config.cluster_routing
            && let Some(leader) = self.metadata.partition(partition)
            && leader.leader_epoch >= 0
        {
            batch.maybe_update_leader_epoch(leader.leader_epoch);
        }
        // A new batch has retry_not_before_ms 0: only a retry waits, unless its partition's
        // leader changed since its last attempt (KIP-951, never without cluster routing).
        if now_ms < batch.retry_not_before_ms && !batch.has_leader_changed_for_the_ongoing_retry() {
            return Err(DrainStep::Skip);
        }
        let mut retries_in_queue_order = false;
        if self.config.idempotence
            && let Some(rdk) = &mut self.librdkafka
        {
            // librdkafka: nothing goes while a drained bump is pending (its producer id is
            // not "assigned" then: rd_kafka_idemp_get_pid0), nor while the partition drains
            // before its retries; after the drain its queue goes out in order.
            if rdk.rules.drain_bump && !self.partitions_to_rewrite.is_empty() {
                return Err(DrainStep::Skip);
            }
            let batches = &self.batches;
            let on_wire = part
                .entry
                .in_flight
                .iter()
                .filter(|h| batches.get(h).is_some_and(|b| b.on_wire.is_some()))
                .count();
            if !rdk.partition_may_send(partition, on_wire) {
                return Err(DrainStep::Skip);
            }
            retries_in_queue_order = rdk.rules.drain_before_retry;
        }
        let Some(batch) = self.batches.get(&handle) else {
            return Err(DrainStep::Skip);
        };
        let blocked = self.config.idempotence
            && Self::should_stop_drain(
                &part.entry,
                batch,
                self.producer_id,
                self.producer_epoch,
                self.improvements.first_batch_alone,
                retries_in_queue_order,
            );
        if blocked {
            return Err(DrainStep::Blocked);
        }
        Ok(handle)
    }

    /// A new batch gets its producer state and sequence at its first drain (Kafka's
    /// `maybeUpdateProducerIdAndEpoch`, then `setProducerState`); a retry keeps its own.
    fn stamp_if_new(&mut self, partition: i32, handle: u64) {
        let (producer_id, producer_epoch) = (self.producer_id, self.producer_epoch);
        let Some(part) = self.partitions.get_mut(&partition) else {
            return;
        };
        let last_in_flight = part
            .entry
            .in_flight
            .back()
            .and_then(|h| self.batches.get(h));
        let last_end = last_in_flight.map(|b| (b.producer_epoch(), b.last_sequence().next()));
        let Some(batch) = self.batches.get_mut(&handle) else {
            return;
        };
        if batch.has_sequence() {
            return;
        }
        let had_id = part.entry.producer_id.is_some();
        let restarted = if self.java.bump_skips_idle_partitions {
            part.entry
                .adopt_epoch_keeping_sequence(producer_id, producer_epoch)
        } else {
            part.entry
                .maybe_update_producer_id_and_epoch(producer_id, producer_epoch)
        };
        if restarted && had_id {
            let event = ProducerEvent::PartitionSequenceReset {
                partition,
                producer_id,
                epoch: producer_epoch,
            };
            self.events.push(&mut self.stats, event);
        }
        assert!(
            !part.entry.is_stale(producer_id, producer_epoch),
            "a new batch is stamped only under the producer's current id and epoch"
        );
        self.next_drain_order += 1;
        part.entry.stamp_new_batch(batch, self.next_drain_order);
        if let Some((epoch, end)) = last_end
            && epoch == producer_epoch
        {
            assert!(
                end.ahead_by(batch.base_sequence()).is_some(),
                "the next sequence follows the last in-flight batch, in sequence order"
            );
        }
    }

    /// Puts the drained batches in one Produce request and tracks it (or, with `acks = 0`,
    /// completes its batches at once).
    fn send_produce(
        &mut self,
        node: i32,
        correlation_id: i32,
        data: Vec<PartitionProduceData>,
        sent: Vec<SentBatch>,
        now_ms: u64,
    ) -> RequestFrame {
        self.next_correlation_id = correlation_id.wrapping_add(1);
        self.stats.requests_sent += 1;
        self.stats.produce_requests_sent += 1;
        self.stats.batches_sent += sent.len() as u64;
        let frame = RequestFrame {
            correlation_id,
            request: Request::Produce(ProduceRequest {
                acks: self.config.acks,
                timeout_ms: i32::try_from(self.config.request_timeout_ms).unwrap_or(i32::MAX),
                partitions: data,
            }),
        };
        if self.config.acks == 0 {
            // The broker does not answer acks=0 requests: done as soon as written.
            for &s in &sent {
                let answer = Answer::Acked {
                    base_offset: -1,
                    duplicate: false,
                };
                self.complete_attempt(correlation_id, s, answer, now_ms);
            }
            if let Some((_, older)) = self.unanswered.replace((correlation_id, sent)) {
                self.recycle_sent(older);
            }
        } else {
            self.in_flight.push(InFlightRequest {
                correlation_id,
                sent_ms: now_ms,
                node,
                kind: InFlightKind::Produce(sent),
            });
        }
        frame
    }

    // ----- answers -----------------------------------------------------------------------

    fn handle_produce_response(
        &mut self,
        correlation_id: i32,
        sent: &[SentBatch],
        response: &ProduceResponse,
        now_ms: u64,
    ) {
        for s in sent {
            let answer = match response
                .partitions
                .iter()
                .find(|p| p.partition == s.partition)
            {
                Some(p) => match p.error_code {
                    ErrorCode::None => Answer::Acked {
                        base_offset: p.base_offset,
                        duplicate: false,
                    },
                    ErrorCode::DuplicateSequenceNumber => Answer::Acked {
                        base_offset: -1,
                        duplicate: true,
                    },
                    code => {
                        if self.config.cluster_routing {
                            self.note_produce_error(s.partition, code);
                        }
                        Answer::Failed {
                            reason: FailureReason::Broker(code),
                            log_start_offset: Some(p.log_start_offset),
                        }
                    }
                },
                None => {
                    self.event(ProducerEvent::MalformedResponse {
                        correlation_id,
                        partition: Some(s.partition),
                    });
                    Answer::Failed {
                        reason: FailureReason::MalformedResponse,
                        log_start_offset: None,
                    }
                }
            };
            self.complete_attempt(correlation_id, *s, answer, now_ms);
        }
    }

    /// A request ended without a usable answer: every batch it carried failed this way.
    fn fail_request(
        &mut self,
        correlation_id: i32,
        kind: InFlightKind,
        reason: FailureReason,
        now_ms: u64,
    ) {
        match kind {
            InFlightKind::InitProducerId => {
                self.init_retry_not_before_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
                self.event(ProducerEvent::ProducerIdRequestFailed {
                    reason,
                    fatal: false,
                });
            }
            InFlightKind::Produce(sent) => {
                for &s in &sent {
                    let answer = Answer::Failed {
                        reason,
                        log_start_offset: None,
                    };
                    self.complete_attempt(correlation_id, s, answer, now_ms);
                }
                self.recycle_sent(sent);
            }
            // DefaultMetadataUpdater.handleFailedRequest: the next attempt backs off.
            InFlightKind::Metadata => self.metadata.failed_update(now_ms),
        }
    }

    /// Kafka's `Sender.completeBatch` for one batch of one request.
    fn complete_attempt(
        &mut self,
        correlation_id: i32,
        sent: SentBatch,
        answer: Answer,
        now_ms: u64,
    ) {
        let Some(batch) = self.batches.get_mut(&sent.handle) else {
            return; // failed fatally meanwhile
        };
        assert_eq!(
            batch.on_wire,
            Some(correlation_id),
            "a batch marked on the wire is in that request, and only its answer completes it"
        );
        assert!(
            sent.generation <= batch.generation,
            "generations only grow: an answer cannot be newer than its batch"
        );
        batch.on_wire = None;
        if let Answer::Failed { reason, .. } = answer {
            self.count_error(reason);
        }
        let batch = &self.batches[&sent.handle];
        if batch.reported {
            self.settle_reported(sent, answer);
        } else if self.improvements.stale_answer_generations && batch.generation != sent.generation
        {
            self.handle_stale(correlation_id, sent, answer, now_ms);
        } else {
            match answer {
                Answer::Acked {
                    base_offset,
                    duplicate,
                } => self.complete_batch(sent, base_offset, duplicate),
                Answer::Failed {
                    reason,
                    log_start_offset,
                } => self.handle_failed_attempt(sent.handle, reason, log_start_offset, now_ms),
            }
        }
    }

    fn count_error(&mut self, reason: FailureReason) {
        match reason {
            FailureReason::Broker(ErrorCode::OutOfOrderSequenceNumber) => {
                self.stats.out_of_order_responses += 1
            }
            FailureReason::Broker(ErrorCode::UnknownProducerId) => {
                self.stats.unknown_producer_id_responses += 1
            }
            FailureReason::Broker(ErrorCode::InvalidProducerEpoch) => {
                self.stats.invalid_epoch_responses += 1
            }
            _ => {}
        }
    }

    /// Kafka's `handleCompletedBatch` plus the delivery report, which gives the producer
    /// state the acknowledged attempt carried.
    fn complete_batch(&mut self, sent: SentBatch, base_offset: i64, duplicate: bool) {
        let handle = sent.handle;
        let Some(batch) = self.batches.remove(&handle) else {
            return;
        };
        self.deadlines.remove(&(batch.deadline_ms, handle));
        if duplicate {
            self.stats.duplicates_acked += 1;
        }
        let mut position = None;
        if let Some(part) = self.partitions.get_mut(&batch.partition)
            && let Some(at) = part.entry.remove_in_flight(handle)
        {
            position = Some(at);
            assert!(
                !part
                    .entry
                    .is_stale(batch.producer_id(), batch.producer_epoch()),
                "a batch in its partition's in-flight set carries the partition's id and epoch"
            );
            part.entry
                .maybe_update_last_acked_sequence(batch.last_sequence());
            part.entry
                .update_last_acked_offset(base_offset, batch.record_count);
            part.entry.acknowledged_producer_id = batch.producer_id();
            // librdkafka's next_ack_seq follows the acknowledged batch
            // (rd_kafka_handle_idempotent_Produce_success).
            if let Some(rdk) = &mut self.librdkafka {
                let next = batch.last_sequence().next();
                rdk.set_next_ack(
                    batch.partition,
                    batch.producer_id(),
                    batch.producer_epoch(),
                    next,
                );
            }
        }
        if let Some(before) = position
            && !duplicate
        {
            self.librdkafka_implicit_ack(&batch, before);
        }
        self.maybe_restart_after_last_old_epoch_batch(batch.partition);
        let delivered = Delivered {
            base_offset,
            producer_id: sent.producer_id,
            producer_epoch: sent.producer_epoch,
            base_sequence: sent.base_sequence,
            attempts: batch.attempts,
        };
        self.report_delivered(&batch, delivered, duplicate);
    }

    /// librdkafka's implicit acknowledgement (`rd_kafka_dr_implicit_ack`, called by
    /// `rd_kafka_handle_idempotent_Produce_success` when the acknowledged batch starts after
    /// the last acknowledged message): the broker took the batch at `before` in its partition's
    /// in-flight set, which it does only right after the sequence before it, so the earlier
    /// batches of the same producer id and epoch that wait in the queue for a retry were
    /// written. They are delivered, without an offset, and never sent again; one still on the
    /// wire waits for its own answer. `DUPLICATE_SEQUENCE_NUMBER` does not come here
    /// (librdkafka handles it on its error path, as a success without this scan).
    fn librdkafka_implicit_ack(&mut self, acked: &ProducerBatch, before: usize) {
        if !self
            .librdkafka
            .as_ref()
            .is_some_and(|r| r.rules.implicit_ack)
        {
            return;
        }
        let Some(part) = self.partitions.get(&acked.partition) else {
            return;
        };
        let (id, epoch) = (acked.producer_id(), acked.producer_epoch());
        let earlier: Vec<u64> = part
            .entry
            .in_flight
            .iter()
            .take(before)
            .copied()
            .filter(|h| {
                self.batches.get(h).is_some_and(|b| {
                    b.on_wire.is_none() && b.producer_id() == id && b.producer_epoch() == epoch
                })
            })
            .collect();
        for handle in earlier {
            let Some(batch) = self.batches.remove(&handle) else {
                continue;
            };
            self.deadlines.remove(&(batch.deadline_ms, handle));
            if let Some(part) = self.partitions.get_mut(&batch.partition) {
                part.remove_queued(handle);
                part.entry.remove_in_flight(handle);
            }
            self.stats.implicit_acks += 1;
            let delivered = Delivered {
                base_offset: -1,
                producer_id: id,
                producer_epoch: epoch,
                base_sequence: batch.base_sequence(),
                attempts: batch.attempts,
            };
            self.report_delivered(&batch, delivered, false);
        }
    }

    /// Kafka 2.5 to 2.7's `handleCompletedBatch` (KAFKA-12152,
    /// [`JavaRules::bump_skips_idle_partitions`]): when the last in-flight batch of an old
    /// epoch is acknowledged, the partition restarts at sequence 0 under the current one.
    /// (Today's client restarts it when its next batch is drained, whatever ended the old
    /// batches; a failed one left 2.7's partition on its old sequence.)
    fn maybe_restart_after_last_old_epoch_batch(&mut self, partition: i32) {
        if !self.java.bump_skips_idle_partitions || !self.producer_id.is_some() {
            return;
        }
        let (producer_id, producer_epoch) = (self.producer_id, self.producer_epoch);
        let Some(part) = self.partitions.get_mut(&partition) else {
            return;
        };
        if part.entry.in_flight.is_empty() && part.entry.is_stale(producer_id, producer_epoch) {
            part.entry.restart(producer_id, producer_epoch, Sequence(0));
            let event = ProducerEvent::PartitionSequenceReset {
                partition,
                producer_id,
                epoch: producer_epoch,
            };
            self.events.push(&mut self.stats, event);
        }
    }

    /// The answer for a batch already reported (it expired while on the wire): only the
    /// partition's sequence bookkeeping learns from an acknowledgement.
    ///
    /// Under the idempo profile the batch counts only if it is still in the in-flight set,
    /// that is, under the partition's current epoch. Java (`Sender.completeBatch` on a done batch)
    /// calls `handleCompletedBatch`, which moves `lastAckedSequence` whatever the epoch.
    fn settle_reported(&mut self, sent: SentBatch, answer: Answer) {
        let Some(batch) = self.batches.remove(&sent.handle) else {
            return;
        };
        let keep = self.improvements.keep_expired_batches_in_flight;
        let Some(part) = self.partitions.get_mut(&batch.partition) else {
            return;
        };
        let tracked = part.entry.remove_in_flight(sent.handle).is_some();
        let Answer::Acked { .. } = answer else {
            return;
        };
        // Under the idempo profile a reported batch leaves the set only when a bump drops it
        // (start_sequences_at_beginning), after which its epoch is an old one.
        if keep && !tracked {
            return;
        }
        part.entry
            .maybe_update_last_acked_sequence(batch.last_sequence());
        if let Answer::Acked { base_offset, .. } = answer {
            part.entry
                .update_last_acked_offset(base_offset, batch.record_count);
        }
        part.entry.acknowledged_producer_id = batch.producer_id();
        self.maybe_restart_after_last_old_epoch_batch(batch.partition);
    }

    /// An answer to an attempt made under producer state the batch no longer has.
    fn handle_stale(&mut self, correlation_id: i32, sent: SentBatch, answer: Answer, now_ms: u64) {
        self.stats.stale_responses += 1;
        match answer {
            Answer::Acked {
                base_offset,
                duplicate,
            } => self.accept_stale_ack(correlation_id, sent, base_offset, duplicate),
            Answer::Failed { reason, .. } => {
                let Some(batch) = self.batches.get_mut(&sent.handle) else {
                    return;
                };
                if reason.outcome_is_unknown() {
                    batch.possibly_persisted = true;
                }
                let event = ProducerEvent::StaleResponseIgnored {
                    correlation_id,
                    handle: batch.handle,
                    partition: batch.partition,
                    sent_epoch: sent.producer_epoch,
                    current_epoch: batch.producer_epoch(),
                    error: reason.error_code(),
                };
                let can_retry = batch.attempts <= self.config.retries;
                self.event(event);
                if can_retry {
                    self.reenqueue(sent.handle, reason, now_ms);
                } else {
                    self.fail_batch(sent.handle, reason, false);
                }
            }
        }
    }

    /// A stale acknowledgement: the records are in the log under the old state. Deliver the
    /// batch and close the hole its new sequences leave (see the module essay).
    fn accept_stale_ack(
        &mut self,
        correlation_id: i32,
        sent: SentBatch,
        base_offset: i64,
        duplicate: bool,
    ) {
        let Some(batch) = self.batches.remove(&sent.handle) else {
            return;
        };
        self.deadlines.remove(&(batch.deadline_ms, sent.handle));
        if duplicate {
            self.stats.duplicates_acked += 1;
        }
        let position = self
            .partitions
            .get_mut(&batch.partition)
            .and_then(|part| part.entry.remove_in_flight(sent.handle));
        let shifted = position.map_or(0, |position| {
            self.move_later_batches_down(batch.partition, position, batch.record_count)
        });
        self.event(ProducerEvent::StaleAckAccepted {
            correlation_id,
            handle: batch.handle,
            partition: batch.partition,
            sent_epoch: sent.producer_epoch,
            batches_shifted: shifted,
        });
        let delivered = Delivered {
            base_offset,
            producer_id: sent.producer_id,
            producer_epoch: sent.producer_epoch,
            base_sequence: sent.base_sequence,
            attempts: batch.attempts,
        };
        self.report_delivered(&batch, delivered, duplicate);
    }

    /// Moves the partition's in-flight batches from `position` on down by `record_count`
    /// sequences, under the producer id and epoch each carries, and the next sequence with
    /// them (the slot of a batch that left the set is closed). Returns how many moved.
    fn move_later_batches_down(
        &mut self,
        partition: i32,
        position: usize,
        record_count: i32,
    ) -> usize {
        let Some(part) = self.partitions.get_mut(&partition) else {
            return 0;
        };
        let mut moved = 0;
        for handle in part.entry.in_flight.iter().skip(position) {
            if let Some(later) = self.batches.get_mut(handle) {
                let base = later.base_sequence().wrapping_sub(record_count);
                let (id, epoch) = (later.producer_id(), later.producer_epoch());
                later.reset_producer_state(id, epoch, base);
                moved += 1;
            }
        }
        part.entry.next_sequence = part.entry.next_sequence.wrapping_sub(record_count);
        part.entry.assert_in_sequence_order(&self.batches);
        moved
    }

    /// Kafka 2.4's `adjustSequencesDueToFailedBatch`
    /// ([`JavaRules::failed_batch_adjusts_sequences`]): `failed` was refused for good with
    /// retries left, so its sequences are taken as free and the partition's later batches
    /// move down into them, under the same producer id and epoch. As in 2.4, only a batch of
    /// the producer's current id and epoch (`handleFailedBatch` ignores others) whose
    /// partition still tracks it.
    fn adjust_sequences_due_to_failed_batch(&mut self, failed: &ProducerBatch, position: usize) {
        let current = (self.producer_id, self.producer_epoch);
        if (failed.producer_id(), failed.producer_epoch()) != current {
            return;
        }
        let moved = self.move_later_batches_down(failed.partition, position, failed.record_count);
        let Some(part) = self.partitions.get(&failed.partition) else {
            return;
        };
        let next_sequence = part.entry.next_sequence;
        self.event(ProducerEvent::SequencesAdjusted {
            partition: failed.partition,
            producer_id: current.0,
            epoch: current.1,
            failed_base_sequence: failed.base_sequence(),
            record_count: failed.record_count,
            batches: moved,
            next_sequence,
        });
    }

    /// An error for the batch's current attempt: retry or fail (Sender.completeBatch).
    fn handle_failed_attempt(
        &mut self,
        handle: u64,
        reason: FailureReason,
        log_start_offset: Option<i64>,
        now_ms: u64,
    ) {
        if reason.outcome_is_unknown()
            && let Some(batch) = self.batches.get_mut(&handle)
        {
            batch.possibly_persisted = true;
        }
        if self.librdkafka.is_some() && self.librdkafka_failed_attempt(handle, reason, now_ms) {
            return;
        }
        if self.can_retry(handle, reason, log_start_offset, now_ms) {
            if self.librdkafka.is_some() {
                self.librdkafka_retry(handle, reason, now_ms);
            } else {
                self.reenqueue(handle, reason, now_ms);
            }
        } else {
            // Sequences are adjusted only if the batch did not exhaust its retries: otherwise
            // whether its sequence was taken is unknown.
            let adjust = self
                .batches
                .get(&handle)
                .is_some_and(|b| b.attempts <= self.config.retries);
            self.fail_batch(handle, reason, adjust);
        }
    }

    /// Kafka's `Sender.canRetry` and `TransactionManager.canRetry`. May ask for an epoch bump.
    fn can_retry(
        &mut self,
        handle: u64,
        reason: FailureReason,
        log_start_offset: Option<i64>,
        now_ms: u64,
    ) -> bool {
        let Some(batch) = self.batches.get(&handle) else {
            return false;
        };
        // librdkafka expires a batch once it is back in its queue (message_timeout_in_queue).
        let expires_in_queue = self
            .librdkafka
            .as_ref()
            .is_some_and(|rdk| rdk.rules.message_timeout_in_queue);
        if (now_ms >= batch.deadline_ms && !expires_in_queue)
            || batch.attempts > self.config.retries
        {
            return false;
        }
        let code = reason.error_code();
        if !self.config.idempotence {
            return code.is_retriable();
        }
        let partition = batch.partition;
        let (base_sequence, reset) = (batch.base_sequence(), batch.sequence_has_been_reset);
        let Some(entry) = self.partitions.get(&partition).map(|p| &p.entry) else {
            return code.is_retriable();
        };
        let unresolved = entry.unresolved_next_sequence;
        let is_next = entry.is_next_sequence(base_sequence);
        let last_acked_offset = entry.last_acked_offset;
        match code {
            ErrorCode::OutOfOrderSequenceNumber if self.config.out_of_order_sequence_fatal => {
                false // Kafka 0.11.0: not retriable; fail_batch stops the producer
            }
            ErrorCode::UnknownProducerId => {
                // -1: the broker did not know its log start offset; retry until it does.
                let Some(log_start) = log_start_offset.filter(|&offset| offset != -1) else {
                    return true;
                };
                if reset {
                    return true;
                }
                if self.java.unknown_producer_resets_sequences {
                    // Kafka 2.4: blame retention and restart the sequences under the same
                    // epoch, or else fail the batch (fail_batch then asks for a bump where
                    // 2.4 reset the producer id).
                    if self
                        .java
                        .resets_for_unknown_producer(last_acked_offset, log_start)
                    {
                        self.restart_sequences_in_place(partition);
                        return true;
                    }
                    return false;
                }
                self.request_epoch_bump(partition, BumpReason::UnknownProducerId);
                true
            }
            ErrorCode::OutOfOrderSequenceNumber => {
                if unresolved.is_none() && (reset || !is_next) {
                    return true; // collateral damage of an earlier failure
                }
                if unresolved.is_none() || unresolved == Some(base_sequence) {
                    self.request_epoch_bump(partition, BumpReason::OutOfOrderSequence);
                }
                true
            }
            _ => code.is_retriable(),
        }
    }

    /// librdkafka's handling of `OUT_OF_ORDER_SEQUENCE_NUMBER`
    /// (`rd_kafka_handle_idempotent_Produce_error`), judged against the partition's
    /// `next_ack_seq`. True when it decided; false leaves the answer to Java's rules.
    fn librdkafka_failed_attempt(
        &mut self,
        handle: u64,
        reason: FailureReason,
        now_ms: u64,
    ) -> bool {
        let code = reason.error_code();
        if !self.config.idempotence || code != ErrorCode::OutOfOrderSequenceNumber {
            return false;
        }
        let (Some(rdk), Some(batch)) = (&self.librdkafka, self.batches.get(&handle)) else {
            return false;
        };
        let partition = batch.partition;
        let Some(entry) = self.partitions.get(&partition).map(|p| &p.entry) else {
            return false;
        };
        let next_ack = rdk.next_ack(
            partition,
            batch.producer_id(),
            batch.producer_epoch(),
            entry.last_acked_sequence.next(),
        );
        match rdk.rules.out_of_order(next_ack, batch.base_sequence()) {
            OutOfOrder::Java => false,
            OutOfOrder::Fatal => {
                // "sequence desynchronization" (or "rewound sequence number"): the batch fails
                // with the broker's error, then everything with the fatal one.
                self.fail_batch(handle, reason, false);
                self.enter_fatal(code);
                true
            }
            OutOfOrder::RetryAndBump => {
                // "skipped sequence numbers": drain, bump, retry (not counted as a retry).
                self.request_epoch_bump(partition, BumpReason::OutOfOrderSequence);
                self.librdkafka_retry(handle, reason, now_ms);
                true
            }
            OutOfOrder::Retry => {
                self.librdkafka_retry(handle, reason, now_ms);
                true
            }
        }
    }

    /// librdkafka's retry (`rd_kafka_handle_Produce_error`, then
    /// `rd_kafka_toppar_retry_msgq`): the partition drains first
    /// (`rd_kafka_idemp_drain_toppar`); up to 2.2.0 an unknown outcome moved `next_ack_seq`
    /// past the batch (#4438); the batch goes back to its queue, where one past its
    /// `message.timeout.ms` expires at once (the queue scan), now that it is off the wire.
    fn librdkafka_retry(&mut self, handle: u64, reason: FailureReason, now_ms: u64) {
        let Some(batch) = self.batches.get(&handle) else {
            return;
        };
        let (partition, deadline_ms) = (batch.partition, batch.deadline_ms);
        let (id, epoch, next) = (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.last_sequence().next(),
        );
        let Some(rdk) = &mut self.librdkafka else {
            return;
        };
        rdk.begin_drain(partition);
        if rdk.rules.possibly_persisted_advances_next_ack && reason.outcome_is_unknown() {
            rdk.set_next_ack(partition, id, epoch, next);
        }
        if rdk.rules.message_timeout_in_queue && now_ms >= deadline_ms {
            // Its deadline may still be listed (it came due while the request ended).
            self.deadlines.remove(&(deadline_ms, handle));
            self.stats.delivery_timeouts += 1;
            self.expire_batch(handle);
        } else {
            self.reenqueue(handle, reason, now_ms);
        }
    }

    /// Kafka's `reenqueueBatch`.
    fn reenqueue(&mut self, handle: u64, reason: FailureReason, now_ms: u64) {
        let retry_at_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
        let Some(batch) = self.batches.get_mut(&handle) else {
            return;
        };
        batch.retry_not_before_ms = retry_at_ms;
        batch.in_retry = true;
        let event = ProducerEvent::RetryScheduled {
            handle: batch.handle,
            partition: batch.partition,
            base_sequence: batch.base_sequence(),
            reason,
            attempts: batch.attempts,
            retry_at_ms,
        };
        let partition = batch.partition;
        self.stats.retries += 1;
        self.event(event);
        let part = self.partitions.get_or_insert(partition);
        if self.config.idempotence {
            part.insert_in_sequence_order(&self.batches, handle);
        } else {
            part.queue.push_front(handle);
        }
    }

    /// Kafka's `Sender.failBatch` and `TransactionManager.handleFailedBatch` for a batch that
    /// is off the wire.
    fn fail_batch(&mut self, handle: u64, reason: FailureReason, adjust_sequences: bool) {
        let Some(batch) = self.batches.remove(&handle) else {
            return;
        };
        self.deadlines.remove(&(batch.deadline_ms, handle));
        let position = self.partitions.get_mut(&batch.partition).and_then(|part| {
            part.remove_queued(handle);
            part.entry.remove_in_flight(handle)
        });
        self.report_batch_failure(&batch, reason);
        if !self.config.idempotence {
            return;
        }
        let code = reason.error_code();
        if let FailureReason::Broker(code) = reason
            && (is_fatal(code)
                || (code == ErrorCode::OutOfOrderSequenceNumber
                    && self.config.out_of_order_sequence_fatal))
        {
            self.enter_fatal(code);
        } else if code == ErrorCode::OutOfOrderSequenceNumber {
            self.request_epoch_bump(batch.partition, BumpReason::OutOfOrderSequence);
        } else if code == ErrorCode::UnknownProducerId {
            // Java's UnknownProducerIdException extends OutOfOrderSequenceException, so
            // handleFailedBatch bumps for it whatever `adjust_sequences` says.
            self.request_epoch_bump(batch.partition, BumpReason::UnknownProducerId);
        } else if adjust_sequences && self.java.failed_batch_adjusts_sequences {
            if let Some(position) = position {
                self.adjust_sequences_due_to_failed_batch(&batch, position);
            }
        } else if adjust_sequences && self.java.failed_batch_waits_for_in_flight {
            // KAFKA-14034's proposed fix (PR #13796): no new batch until the partition's
            // in-flight batches are done; maybe_resolve_sequences bumps then if need be.
            self.mark_unresolved(batch.partition, batch.last_sequence().next());
        } else if adjust_sequences {
            self.request_epoch_bump(batch.partition, BumpReason::FailedBatch(code));
        }
    }

    /// Kafka's `transitionToFatalError`: every batch fails, nothing is sent any more.
    fn enter_fatal(&mut self, code: ErrorCode) {
        if self.fatal_error.is_some() {
            return;
        }
        self.fatal_error = Some(code);
        self.stats.fatal_errors += 1;
        self.event(ProducerEvent::FatalError { error: code });
        self.in_flight.drain_all().for_each(drop);
        self.partitions_to_rewrite.clear();
        self.abort_batches(FailureReason::Fatal(code));
    }

    /// Kafka's `RecordAccumulator.abortBatches`: every batch without an outcome fails, sent
    /// or not. An answer that still arrives for one of them finds no batch and is ignored.
    fn abort_batches(&mut self, reason: FailureReason) {
        self.deadlines.clear();
        for part in self.partitions.values_mut() {
            part.queue.clear();
            part.entry.in_flight.clear();
        }
        let batches = std::mem::take(&mut self.batches);
        for batch in batches.into_values().filter(|b| !b.reported) {
            self.report_batch_failure(&batch, reason);
        }
    }

    // ----- timeouts ----------------------------------------------------------------------

    fn expire_batches(&mut self, now_ms: u64) {
        while let Some(&(deadline_ms, handle)) = self.deadlines.first() {
            if deadline_ms > now_ms {
                break;
            }
            self.deadlines.pop_first();
            // librdkafka's message.timeout.ms expires queued batches only: one on the wire
            // expires when its request fails and it is back in the queue
            // (librdkafka_retrying), or is delivered.
            if let Some(rdk) = &self.librdkafka
                && rdk.rules.message_timeout_in_queue
                && self
                    .batches
                    .get(&handle)
                    .is_some_and(|b| b.on_wire.is_some())
            {
                continue;
            }
            self.stats.delivery_timeouts += 1;
            self.expire_batch(handle);
        }
    }

    /// A batch reached `delivery_timeout_ms`.
    fn expire_batch(&mut self, handle: u64) {
        let Some(batch) = self.batches.get_mut(&handle) else {
            return;
        };
        let reason = FailureReason::DeliveryTimeout;
        let (partition, next, in_retry) = (
            batch.partition,
            batch.last_sequence().next(),
            batch.in_retry,
        );
        let on_wire = batch.on_wire.is_some();
        if on_wire {
            // Report now; keep the batch until its request ends, so that a late
            // acknowledgement still reaches the sequence bookkeeping (`settle_reported`).
            batch.reported = true;
            let error = batch.failure(reason);
            let (records, base) = (batch.batch.records.len(), batch.base_sequence());
            self.report_failure(DeliveryHandle(handle), partition, records, base, error);
        } else if let Some(batch) = self.batches.remove(&handle) {
            self.report_batch_failure(&batch, reason);
        }
        let keep = on_wire && self.improvements.keep_expired_batches_in_flight;
        let mut tracked = false;
        if let Some(part) = self.partitions.get_mut(&partition) {
            part.remove_queued(handle);
            tracked = if keep {
                part.entry.in_flight.contains(&handle)
            } else {
                part.entry.remove_in_flight(handle).is_some()
            };
        }
        if let Some(rdk) = &self.librdkafka {
            // librdkafka keeps no unresolved sequences: an expiry in a queue drains and bumps
            // the epoch (since 1.0.0), or, before, leaves the gap to be sent.
            if rdk.rules.message_timeout_bump && self.config.idempotence {
                self.request_epoch_bump(partition, BumpReason::MessageTimedOut);
            }
            return;
        }
        // Java (Sender.sendProducerData) marks the partition only if the batch was retried.
        let unresolve = if self.improvements.unresolve_on_any_expired_sent_batch {
            tracked
        } else {
            in_retry
        };
        if unresolve {
            self.mark_unresolved(partition, next);
        }
    }

    fn mark_unresolved(&mut self, partition: i32, next: Sequence) {
        if !self.config.idempotence {
            return;
        }
        let Some(part) = self.partitions.get_mut(&partition) else {
            return;
        };
        part.entry.mark_unresolved(next);
        let unresolved_next_sequence = part.entry.unresolved_next_sequence.unwrap_or(next);
        self.stats.partitions_unresolved += 1;
        self.event(ProducerEvent::PartitionUnresolved {
            partition,
            unresolved_next_sequence,
        });
    }

    fn expire_requests(&mut self, now_ms: u64) {
        let Some(cutoff_ms) = now_ms.checked_sub(self.config.request_timeout_ms) else {
            return;
        };
        let mut timed_out_nodes: Vec<i32> = Vec::new();
        while let Some(request) = self.in_flight.pop_sent_before(cutoff_ms) {
            if !timed_out_nodes.contains(&request.node) {
                timed_out_nodes.push(request.node);
            }
            let correlation_id = request.correlation_id;
            self.stats.request_timeouts += 1;
            self.event(ProducerEvent::RequestTimedOut { correlation_id });
            self.fail_request(
                correlation_id,
                request.kind,
                FailureReason::RequestTimeout,
                now_ms,
            );
        }
        // Kafka's NetworkClient closes the connection of a timed-out request, which fails
        // every other request in flight on it: answers on one connection come in order, so
        // the later ones cannot arrive either. Without cluster routing that is every request.
        for node in timed_out_nodes {
            self.close_connection(node, now_ms);
        }
    }

    /// The connection to `node` closed: every request still awaiting an answer on it fails,
    /// oldest first, its outcome unknown (Kafka's `cancelInFlightRequests`).
    fn close_connection(&mut self, node: i32, now_ms: u64) {
        for request in self.in_flight.drain_node(node) {
            let correlation_id = request.correlation_id;
            self.stats.connection_failures += 1;
            self.event(ProducerEvent::RequestFailed { correlation_id });
            self.fail_request(
                correlation_id,
                request.kind,
                FailureReason::ConnectionFailure,
                now_ms,
            );
        }
        if self.config.cluster_routing {
            self.on_node_failed(node, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::BatchHeader;

    fn ready() -> Producer {
        let mut p = Producer::new(ProducerConfig::default()).unwrap();
        let init = p.poll_request(0).unwrap();
        let response = Response::InitProducerId(InitProducerIdResponse {
            error_code: ErrorCode::None,
            producer_id: ProducerId(7),
            producer_epoch: ProducerEpoch(0),
        });
        p.on_response(
            ResponseFrame {
                correlation_id: init.correlation_id,
                response,
            },
            0,
        );
        p
    }

    fn records(n: usize) -> Vec<Record> {
        (0..n).map(|_| Record::with_value(0, "v")).collect()
    }

    fn header(frame: &RequestFrame) -> BatchHeader {
        let Request::Produce(request) = &frame.request else {
            panic!("expected Produce")
        };
        BatchHeader::parse(&request.partitions[0].records).unwrap()
    }

    #[test]
    fn sequences_are_assigned_at_first_drain_and_wrap_past_i32_max() {
        let mut p = ready();
        p.send(0, records(3), 0);
        p.send(0, records(3), 0);
        assert!(
            p.batches.values().all(|b| !b.has_sequence()),
            "send() stamps nothing"
        );
        // Put the partition two records before the wrap, as if 2^31 - 1 records had gone.
        let entry = &mut p.partitions.get_mut(&0).unwrap().entry;
        entry.producer_id = ProducerId(7);
        entry.producer_epoch = ProducerEpoch(0);
        entry.next_sequence = Sequence(i32::MAX - 1);
        let first = header(&p.poll_request(0).unwrap());
        assert_eq!(first.base_sequence, Sequence(i32::MAX - 1));
        assert_eq!(first.last_sequence(), Sequence(0), "MAX-1, MAX, 0");
        let second = header(&p.poll_request(0).unwrap());
        assert_eq!(second.base_sequence, Sequence(1));
        assert_eq!(p.partitions[&0].entry.next_sequence, Sequence(4));
    }
}
