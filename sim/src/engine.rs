//! The discrete-event simulation: producers, a network that loses, duplicates, corrupts and
//! delays, one broker that may crash, or (`--brokers N`) a replicated cluster.
//!
//! Time is virtual (milliseconds). The event queue is ordered by (time, insertion number), so
//! simultaneous events run in the order they were scheduled and a run is a pure function of
//! its [`SimConfig`] and [`FaultPlan`]. The loop:
//!
//! 1. **Producers** are the real sans-IO [`Producer`] state machines. The workload hands each
//!    one its batches (round robin over partitions), keeping a bounded number outstanding, and
//!    puts whatever [`Producer::poll_request`] yields on the network. Which batches a request
//!    carries the producer says itself ([`Producer::request_batches`]): the simulator never
//!    decodes a request's bytes.
//! 2. **The network** ([`network`](mod@crate::network)) decides each message's fate with the
//!    [`FaultPlan`], keyed by the logical event (producer, batch, attempt), and models each
//!    producer's connection (TCP by default: FIFO, and a loss breaks it).
//! 3. **The broker** is the real [`Broker`]; it answers at once. It may crash (power loss:
//!    unsynced data is lost and the last write may be torn) or restart cleanly at moments of
//!    the plan; every connection breaks when it does.
//! 4. **Producer processes** may die; a new process (new producer id) re-sends what the old
//!    one had not had acknowledged. Idempotence does not span producer sessions, and the
//!    checker reports those duplicates under their own name.
//! 5. **Timeouts**: each producer is woken at [`Producer::next_wakeup_ms`].
//!
//! 6. **A cluster** (`--brokers 2` or more): each producer routes by leader over one
//!    connection per broker ([`Producer::poll_outgoing`]), and the `cluster` submodule
//!    moves fetches between followers and leaders, `LeaderAndIsr` and `AlterPartition`
//!    between brokers and the controller, and applies leader kills, isolations and
//!    correlated crashes (its essay has the table). With one broker none of it exists and
//!    the loop is the one-broker loop, byte for byte.
//!
//! What happens is recorded as typed [`SimEvent`]s, and only when a [`Trace`] is given: a
//! run without one builds no event and formats no text.
//!
//! When every batch has a delivery report (or the virtual time limit is reached), the
//! [`checker`](mod@crate::checker) reads the logs back.

mod cluster;

use crate::checker::{
    self, BatchLedger, CheckReport, DedupWindows, Delivery, KnownFaults, Workload,
};
use crate::config::{ConfigError, SimConfig};
use crate::events::{
    self, BatchRef, BrokerRestart, DisconnectCause, LossCause, SimEvent, VerdictRef,
};
use crate::faults::INIT_PRODUCER_ID;
use crate::network::{self, Faults, Link, MessageKey, Receipt, RequestFate, TimerFired};
use crate::plan::{Fault, FaultPlan};
use crate::trace::Trace;
use idempo_broker::{Broker, BrokerConfig, ProduceOutcome, SequenceRejection, Verdict};
use idempo_producer::{DeliveryHandle, DeliveryReport, Producer, ProducerConfig, ProducerStats};
use idempo_protocol::{Request, RequestFrame, ResponseFrame};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

/// Counts of the faults injected and their side effects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Requests lost on the way to the broker.
    pub request_lost: u64,
    /// Responses lost on the way back.
    pub ack_lost: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Requests with a flipped bit.
    pub corrupted: u64,
    /// Requests whose first batch's magic byte was damaged (outside the CRC).
    pub header_corrupted: u64,
    /// Requests delayed by a latency spike.
    pub spikes: u64,
    /// Broker crashes (power loss).
    pub broker_crashes: u64,
    /// Clean broker restarts.
    pub broker_restarts: u64,
    /// Producer process restarts.
    pub producer_restarts: u64,
    /// DeleteRecords requests that moved a log start offset.
    pub delete_records: u64,
    /// Connections the clients closed (a response missing or a request timed out).
    pub disconnects: u64,
    /// Messages lost because their connection had already broken or their process died.
    pub lost_with_connection: u64,
}

/// Counts of what the broker answered, per batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BrokerCounts {
    /// Batches appended.
    pub appended: u64,
    /// Batches recognised as retries (answered with the original offsets).
    pub duplicates_dropped: u64,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER answers.
    pub gaps_rejected: u64,
    /// INVALID_PRODUCER_EPOCH answers.
    pub stale_epoch_rejected: u64,
    /// CORRUPT_MESSAGE answers.
    pub corrupt_rejected: u64,
    /// Any other error.
    pub other_rejected: u64,
    /// Retries of batches already in the log that the broker no longer recognised and
    /// answered OUT_OF_ORDER_SEQUENCE_NUMBER: the retry fell outside the dedup window.
    pub retries_outside_window: u64,
    /// Producers whose state the broker dropped as expired.
    pub producers_expired: u64,
    /// The most producer ids with state on one broker at any moment of the run (Kafka's
    /// `ProducerIdCount` gauge, sampled after every produce request).
    pub producer_ids_peak: u64,
    /// The most bytes of producer state on one broker at any moment (an estimate from sizes
    /// and capacities, sampled with the count).
    pub producer_state_bytes_peak: u64,
    /// Producer ids whose state the bound `--max-producer-ids-per-partition` removed.
    pub producer_ids_evicted: u64,
    /// INVALID_PRODUCER_EPOCH answers to a batch whose producer, under the same producer id,
    /// was at that moment at a lower epoch than the broker's: its epoch went backwards
    /// (`--epoch-bump-wraps`, KAFKA-5283).
    pub epochs_backwards: u64,
}

/// Counts of what the cluster did (replicated runs only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCounts {
    /// Leader elections the controller made after the first assignment (clean and unclean).
    pub leader_elections: u64,
    /// Elections of an out-of-sync replica (`--unclean-leader-election`).
    pub unclean_elections: u64,
    /// Times a partition went offline (no live in-sync replica, clean election only).
    pub offline: u64,
    /// Follower truncations (a diverging epoch, KIP-101/279/320, or with `--truncation
    /// high-watermark` a leader change), each with a producer-state reload.
    pub truncations: u64,
    /// ISR shrinks (a follower out of sync for `replica.lag.time.max.ms`, or fenced).
    pub isr_shrinks: u64,
    /// ISR expansions (a follower caught up within the leader epoch).
    pub isr_expands: u64,
    /// NOT_ENOUGH_REPLICAS (19) and NOT_ENOUGH_REPLICAS_AFTER_APPEND (20) answers.
    pub not_enough_replicas: u64,
    /// NOT_LEADER_OR_FOLLOWER (6) answers.
    pub not_leader: u64,
    /// REQUEST_TIMED_OUT (7) answers to acks=all produces.
    pub produce_timeouts: u64,
    /// Follower fetches answered.
    pub fetches: u64,
    /// Messages between brokers lost (`--inter-broker-loss`).
    pub inter_broker_lost: u64,
    /// Leader kills, isolations and correlated crashes that happened.
    pub leader_kills: u64,
    /// Isolations that happened.
    pub isolations: u64,
    /// Correlated crashes that happened.
    pub correlated_crashes: u64,
    /// The most brokers down (crashed or isolated) at one moment.
    pub most_down_at_once: u64,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Records the application handed to producers.
    pub records_sent: u64,
    /// Produce and InitProducerId requests put on the network.
    pub requests: u64,
    /// Batch re-sends.
    pub retries: u64,
    /// Local epoch bumps across producers.
    pub epoch_bumps: u64,
    /// New producer ids after epoch exhaustion.
    pub producer_id_resets: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Broker answers.
    pub broker: BrokerCounts,
    /// The checker's findings.
    pub check: CheckReport,
    /// Median virtual time from handing a batch to the producer to its acknowledgement.
    pub latency_p50_ms: u64,
    /// 99th percentile of the same.
    pub latency_p99_ms: u64,
    /// Virtual time at the end.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// False when the virtual time limit stopped the run before every batch was resolved.
    pub finished: bool,
    /// Every fault that happened, in order (what shrinking and replay files work on).
    #[serde(skip)]
    pub faults_happened: Vec<Fault>,
    /// Batches put on the network: first tries and retries (what `--bench` counts).
    #[serde(skip)]
    pub batch_sends: u64,
    /// What the cluster did (`None` with one broker).
    #[serde(skip)]
    pub cluster: Option<ClusterCounts>,
}

/// Why a simulation could not start.
#[derive(Clone, Debug, PartialEq)]
pub enum SimError {
    /// The run's settings are invalid.
    Config(ConfigError),
    /// The broker refused the settings derived from the run's.
    Broker(idempo_broker::ConfigError),
    /// The producer refused the settings derived from the run's.
    Producer(idempo_producer::ConfigError),
    /// The controller refused the cluster's settings.
    Controller(idempo_broker::ControllerConfigError),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "{e}"),
            SimError::Broker(e) => write!(f, "broker settings: {e}"),
            SimError::Producer(e) => write!(f, "{e}"),
            SimError::Controller(e) => write!(f, "cluster settings: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<SimError> for String {
    fn from(e: SimError) -> String {
        e.to_string()
    }
}

enum Event {
    /// A request reaches broker `node`.
    Request {
        producer: u32,
        node: u32,
        connection: u32,
        frame: RequestFrame,
        /// The simulator's batch numbers, in the request's partition order.
        batches: Vec<u64>,
        key: MessageKey,
    },
    /// A response of broker `node` reaches a producer process over connection number
    /// `connection`.
    Response {
        producer: u32,
        session: u32,
        node: u32,
        connection: u32,
        frame: ResponseFrame,
    },
    /// A producer's timer fires.
    Wakeup { producer: u32, session: u32 },
    /// The connection's request timer: if the oldest unanswered request has waited
    /// `request.timeout.ms`, the client closes the connection, as Kafka's `NetworkClient` does.
    /// One timer per connection, armed for the oldest request, stands in for one per request.
    RequestTimeout {
        producer: u32,
        session: u32,
        node: u32,
    },
    /// An event of the cluster half of the loop (replicated runs only).
    Cluster(cluster::ClusterEvent),
}

/// A queue entry: when, in which order, and where the event waits in the slab. Keeping the
/// (large) events out of the heap makes every sift move 24 bytes.
struct Scheduled {
    at_ms: u64,
    order: u64,
    slot: usize,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.order) == (other.at_ms, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.order).cmp(&(other.at_ms, other.order))
    }
}

/// The event queue: a binary heap of small entries over a slab of events, with the batch
/// lists of finished requests kept for reuse (no allocation per request once warm).
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    slab: Vec<Option<Event>>,
    free_slots: Vec<usize>,
    free_lists: Vec<Vec<u64>>,
    order: u64,
}

impl Queue {
    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.order += 1;
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.slab[i] = Some(event);
                i
            }
            None => {
                self.slab.push(Some(event));
                self.slab.len() - 1
            }
        };
        self.heap.push(Reverse(Scheduled {
            at_ms,
            order: self.order,
            slot,
        }));
    }

    /// The next event and its time, unless it is due after `until_ms` (then it stays).
    fn pop(&mut self, until_ms: u64) -> Option<Result<(u64, Event), ()>> {
        let Reverse(next) = self.heap.pop()?;
        if next.at_ms > until_ms {
            return Some(Err(()));
        }
        let event = self.slab[next.slot]
            .take()
            .expect("a scheduled slot holds its event");
        self.free_slots.push(next.slot);
        Some(Ok((next.at_ms, event)))
    }

    /// An empty batch list (a reused one when there is one).
    fn list(&mut self) -> Vec<u64> {
        self.free_lists.pop().unwrap_or_default()
    }

    /// Drops every scheduled event: the run is over.
    fn clear(&mut self) {
        self.heap.clear();
        self.slab.clear();
        self.free_slots.clear();
    }

    /// Gives a batch list back for reuse.
    fn recycle(&mut self, mut list: Vec<u64>) {
        list.clear();
        self.free_lists.push(list);
    }
}

/// Which batch each delivery handle of the current producer process carries. Handles are
/// consecutive per process; a process is handed the batches it must re-send first, then new
/// batches in order, so the map is the re-send list and where the new batches start.
#[derive(Debug, Default)]
struct Handles {
    /// First delivery handle of the current process.
    base: Option<u64>,
    /// Handles handed out so far.
    handed: u64,
    /// Batches the process re-sends first, in order.
    resend: Vec<u64>,
    /// How many of `resend` were handed.
    resent: usize,
    /// The batch number of the first new batch of this process.
    first_new: u64,
}

impl Handles {
    /// A new process that re-sends `resend` first, then new batches from `first_new`.
    fn new(resend: Vec<u64>, first_new: u64) -> Handles {
        Handles {
            resend,
            first_new,
            ..Handles::default()
        }
    }

    /// True while some re-send is not handed yet.
    fn resend_pending(&self) -> bool {
        self.resent < self.resend.len()
    }

    /// The next re-send to hand, if any.
    fn next_resend(&mut self) -> Option<u64> {
        let b = *self.resend.get(self.resent)?;
        self.resent += 1;
        Some(b)
    }

    /// Notes that handle `h` was handed out.
    fn handed(&mut self, DeliveryHandle(h): DeliveryHandle) {
        let base = *self.base.get_or_insert(h);
        assert_eq!(
            h - base,
            self.handed,
            "delivery handles are consecutive per producer"
        );
        self.handed += 1;
    }

    /// The batch handle `h` carries.
    fn batch(&self, DeliveryHandle(h): DeliveryHandle) -> u64 {
        let index = h - self.base.unwrap_or(0);
        assert!(index < self.handed, "handle {h} was handed by this process");
        match self.resend.get(index as usize) {
            Some(b) => *b,
            None => self.first_new + (index - self.resend.len() as u64),
        }
    }
}

/// A request leaving a producer: what the network and the broker need to know of it.
struct Outgoing {
    /// The broker it goes to.
    node: u32,
    /// The connection it goes out on.
    connection: u32,
    /// The logical event its faults are keyed by.
    key: MessageKey,
    /// The simulator's batch numbers, in the request's partition order.
    batches: Vec<u64>,
    /// The same batches as the trace shows them (empty without a trace).
    refs: Vec<BatchRef>,
    /// A Metadata request.
    metadata: bool,
}

/// Where an answer goes: a producer's connection to one broker.
#[derive(Clone, Copy, Debug)]
struct Destination {
    producer: u32,
    node: u32,
    connection: u32,
}

/// One producer as the simulation sees it: the current process and its connections.
struct Slot {
    /// Incarnation of the producer process; bumped by a restart.
    session: u32,
    producer: Producer,
    /// Statistics of earlier processes.
    retired: Vec<ProducerStats>,
    /// The batch of each delivery handle of the current process.
    handles: Handles,
    /// Next batch never handed to any process.
    next_new: u64,
    /// Batches handed to the current process and not yet reported.
    outstanding: u64,
    init_attempts: u32,
    /// Metadata requests sent (the attempt number of their fault key).
    metadata_requests: u32,
    wakeup_at_ms: Option<u64>,
    /// One connection per broker, as Kafka's `NetworkClient` keeps (one with one broker).
    links: Vec<Link>,
    ledger: Vec<BatchLedger>,
    /// Every (producer id, epoch, partition) this producer has sent a batch under: how the
    /// epoch started there (see [`EpochStart`]).
    epoch_starts: FxHashMap<(i64, i16, i32), EpochStart>,
}

/// How a producer's epoch started on a partition, from the batches it sent there.
#[derive(Clone, Copy, Debug)]
struct EpochStart {
    /// The first batch sent under the epoch was a new batch (its first attempt) stamped past
    /// sequence 0: the producer carried an old sequence into the epoch (KAFKA-12152). A
    /// re-stamped retry sent first is not counted: Java re-stamps from 0 and may then deliver
    /// the batch at 0 through its answer for the old epoch, a hole of its own.
    opened_by_new_batch_past_zero: bool,
    /// Some batch sent under the epoch carried sequence 0.
    sent_at_zero: bool,
}

impl EpochStart {
    /// The epoch never started at sequence 0 on the partition: every batch the producer sent
    /// there under it was refused by the broker.
    fn never_started_at_zero(self) -> bool {
        self.opened_by_new_batch_past_zero && !self.sent_at_zero
    }
}

/// Exact percentiles of latencies in milliseconds, kept as counts per value: memory follows
/// the range of latencies, not the number of batches.
#[derive(Debug, Default)]
struct Latencies {
    /// Counts of latencies below [`Latencies::DENSE_MS`], by value.
    dense: Vec<u64>,
    /// Counts of longer latencies.
    sparse: BTreeMap<u64, u64>,
    total: u64,
}

impl Latencies {
    const DENSE_MS: u64 = 1 << 16;

    fn push(&mut self, ms: u64) {
        self.total += 1;
        if ms < Self::DENSE_MS {
            let i = ms as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, 0);
            }
            self.dense[i] += 1;
        } else {
            *self.sparse.entry(ms).or_default() += 1;
        }
    }

    /// The latency at rank `round((n - 1) * q)` of the sorted latencies (0 when empty).
    fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64 - 1.0) * q).round() as u64;
        let dense = self.dense.iter().enumerate().map(|(ms, n)| (ms as u64, *n));
        let sparse = self.sparse.iter().map(|(ms, n)| (*ms, *n));
        let mut seen = 0;
        for (ms, n) in dense.chain(sparse) {
            seen += n;
            if seen > rank {
                return ms;
            }
        }
        unreachable!("the rank is below the total count")
    }
}

/// The batch number of a Metadata request's fault key (it carries no batch).
const METADATA: u64 = INIT_PRODUCER_ID - 2;

/// Most batches the application keeps handed to a producer but not yet reported.
fn outstanding_max(config: &SimConfig) -> u64 {
    (2 * config.max_in_flight as u64 * u64::from(config.partitions)).clamp(4, 1024)
}

/// The producer settings a run's config asks for (shared with the TCP harness).
pub fn producer_config(config: &SimConfig) -> ProducerConfig {
    ProducerConfig {
        idempotence: config.idempotence,
        max_in_flight: config.max_in_flight,
        allow_unsafe_max_in_flight: config.unsafe_max_in_flight,
        broker_dedup_window: config.dedup_window,
        request_timeout_ms: config.request_timeout_ms,
        delivery_timeout_ms: config.delivery_timeout_ms,
        retries: config.retries,
        retry_backoff_ms: config.retry_backoff_ms,
        first_batch_alone: config.first_batch_alone,
        client_profile: config.client_profile,
        librdkafka: config.librdkafka,
        out_of_order_sequence_fatal: config.out_of_order_sequence_fatal,
        epoch_bump_wraps: config.epoch_bump_wraps,
        java: config.java,
        acks: config.acks.kafka_value(),
        cluster_routing: config.is_cluster(),
        bootstrap: (0..config.brokers as i32).collect(),
        ..ProducerConfig::default()
    }
}

/// The settings of broker `broker_id` of a run.
fn broker_config(config: &SimConfig, broker_id: i32) -> BrokerConfig {
    let mut broker = BrokerConfig {
        broker_id,
        min_insync_replicas: config.min_insync_replicas as usize,
        replica_lag_time_max_ms: config.replica_lag_time_max_ms as i64,
        truncation: config.truncation,
        max_producer_ids_per_partition: config.max_producer_ids_per_partition,
        idempotence: config.idempotence,
        dedup_window: config.dedup_window,
        producer_id_expiration_ms: config.producer_id_expiration_ms,
        producer_id_expiration_check_interval_ms: config.producer_id_expiration_check_interval_ms,
        sync_policy: config.sync,
        snapshot_mode: config.snapshot_mode,
        snapshot_interval_ms: config.snapshot_interval_ms,
        producer_state_before_append: config.producer_state_before_append,
        initial_producer_epoch: config.initial_producer_epoch,
        ..BrokerConfig::default()
    };
    config.broker_profile.apply(&mut broker);
    broker
}

/// One broker of the run, with its own disk (its [`Broker`] owns a `SimDisk`), sync policy
/// and snapshots.
struct Node {
    broker: Broker,
}

/// One simulation run.
pub struct Simulation {
    config: SimConfig,
    /// The brokers, by id (one without `--brokers`).
    nodes: Vec<Node>,
    slots: Vec<Slot>,
    queue: Queue,
    now_ms: u64,
    plan: FaultPlan,
    trace: Option<Trace>,
    faults: FaultCounts,
    broker_counts: BrokerCounts,
    requests: u64,
    events: u64,
    /// Which producer process each producer id belongs to: (producer, session).
    pid_owner: FxHashMap<i64, (u32, u32)>,
    /// What the checker must know of the faults: records lost unsynced by broker crashes,
    /// expired producer states, dedup windows a restart shrank.
    known: KnownFaults,
    /// Virtual ms from handing a batch over to its acknowledgement.
    latencies: Latencies,
    /// Batches put on the network (first tries and retries).
    batch_sends: u64,
    /// The controller, fetchers and cluster faults of a replicated run.
    cluster: Option<Box<cluster::Cluster>>,
}

impl Simulation {
    /// A run with faults drawn from the config's seed and rates.
    pub fn new(config: SimConfig, trace: Option<Trace>) -> Result<Simulation, SimError> {
        let plan = FaultPlan::random(&config);
        Simulation::with_plan(config, plan, trace)
    }

    /// A run with the given fault plan (a replay file's, or a shrinking candidate).
    pub fn with_plan(
        config: SimConfig,
        plan: FaultPlan,
        trace: Option<Trace>,
    ) -> Result<Simulation, SimError> {
        config.validate().map_err(SimError::Config)?;
        let acks_zero = config.acks == crate::config::Acks::None;
        let mut nodes = Vec::new();
        for b in 0..config.brokers {
            let mut broker =
                Broker::new(broker_config(&config, b as i32)).map_err(SimError::Broker)?;
            broker.set_record_windows(trace.is_some());
            nodes.push(Node { broker });
        }
        let mut slots = Vec::new();
        for _ in 0..config.producers {
            let mut producer =
                Producer::new(producer_config(&config)).map_err(SimError::Producer)?;
            producer.set_record_events(trace.is_some());
            slots.push(Slot {
                session: 0,
                producer,
                retired: Vec::new(),
                handles: Handles::default(),
                next_new: 0,
                outstanding: 0,
                init_attempts: 0,
                metadata_requests: 0,
                wakeup_at_ms: None,
                links: (0..config.brokers).map(|_| Link::default()).collect(),
                ledger: vec![BatchLedger::default(); config.batches_per_producer() as usize],
                epoch_starts: FxHashMap::default(),
            });
        }
        let cluster = match config.is_cluster() {
            true => Some(Box::new(
                cluster::Cluster::new(&config).map_err(SimError::Controller)?,
            )),
            false => None,
        };
        Ok(Simulation {
            config,
            nodes,
            slots,
            queue: Queue::default(),
            now_ms: 0,
            plan,
            trace,
            faults: FaultCounts::default(),
            broker_counts: BrokerCounts::default(),
            requests: 0,
            events: 0,
            pid_owner: FxHashMap::default(),
            known: KnownFaults {
                acks_zero,
                ..KnownFaults::default()
            },
            latencies: Latencies::default(),
            batch_sends: 0,
            cluster,
        })
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.queue.schedule(at_ms, event);
    }

    /// Records an event, built only if there is a trace to record it.
    fn record(&mut self, producer: u32, event: impl FnOnce() -> SimEvent) {
        if let Some(t) = &mut self.trace {
            t.record(self.now_ms, producer, event());
        }
    }

    /// Runs to the end and checks the result.
    pub fn run(mut self) -> (RunReport, Option<Trace>) {
        if self.cluster.is_some() {
            self.start_cluster();
        }
        for p in 0..self.config.producers {
            self.pump(p);
        }
        let mut finished = true;
        while let Some(next) = self.queue.pop(self.config.max_virtual_ms) {
            let Ok((at_ms, event)) = next else {
                finished = false;
                break;
            };
            self.now_ms = at_ms;
            self.events += 1;
            self.dispatch(event);
        }
        let total = self.config.batches_per_producer();
        finished &= self
            .slots
            .iter()
            .all(|s| s.outstanding == 0 && !s.handles.resend_pending() && s.next_new == total);
        self.report(finished)
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Request {
                producer,
                node,
                connection,
                frame,
                batches,
                key,
            } => {
                self.deliver_request(producer, node, connection, &frame, &batches, key);
                self.queue.recycle(batches);
            }
            Event::Response {
                producer,
                session,
                node,
                connection,
                frame,
            } => {
                let from = Destination {
                    producer,
                    node,
                    connection,
                };
                self.receive_response(from, session, frame)
            }
            Event::RequestTimeout {
                producer,
                session,
                node,
            } => self.request_timer(producer, session, node),
            Event::Cluster(event) => self.dispatch_cluster(event),
            Event::Wakeup { producer, session } => {
                let slot = &mut self.slots[producer as usize];
                if slot.session != session {
                    return;
                }
                if slot.wakeup_at_ms == Some(self.now_ms) {
                    slot.wakeup_at_ms = None;
                }
                slot.producer.on_timeout(self.now_ms);
                self.pump(producer);
            }
        }
    }

    /// Hands producer `p` its next batch (a re-send after a restart first), unless a producer
    /// restart is due first.
    fn hand_batch(&mut self, p: u32) -> bool {
        let total = self.config.batches_per_producer();
        let slot = &self.slots[p as usize];
        if self.config.producer_per_batch {
            // A client that creates a producer per message: it waits for the last one's
            // answer, closes it and opens a new one (a new producer id) for the next batch.
            if slot.outstanding > 0 {
                return false;
            }
            if slot.next_new > 0 && slot.next_new < total && !slot.handles.resend_pending() {
                self.replace_producer(p);
            }
        }
        let slot = &self.slots[p as usize];
        if !slot.handles.resend_pending()
            && slot.next_new < total
            && self.plan.producer_restart_due(p, slot.next_new)
        {
            self.restart_producer(p);
        }
        let slot = &mut self.slots[p as usize];
        let b = match slot.handles.next_resend() {
            Some(b) => b,
            None if slot.next_new < total => {
                slot.next_new += 1;
                slot.ledger[(slot.next_new - 1) as usize].handed_at_ms = self.now_ms;
                slot.next_new - 1
            }
            None => return false,
        };
        let records = self.config.batch_of(p, b);
        let handle = slot
            .producer
            .send(self.config.partition_of(p, b), records, self.now_ms);
        slot.handles.handed(handle);
        slot.outstanding += 1;
        true
    }

    /// Lets producer `p` make progress: hand it batches, send what it wants to send, collect
    /// its delivery reports and events, and arm its timer.
    fn pump(&mut self, p: u32) {
        let max = outstanding_max(&self.config);
        let now = self.now_ms;
        loop {
            loop {
                while self.slots[p as usize].outstanding < max && self.hand_batch(p) {}
                let Some(out) = self.slots[p as usize].producer.poll_outgoing(now) else {
                    break;
                };
                self.send_request(p, out.node as u32, out.frame);
            }
            let slot = &mut self.slots[p as usize];
            let pid = slot.producer.producer_id();
            if pid.is_some() {
                self.pid_owner.entry(pid.0).or_insert((p, slot.session));
            }
            let mut delivered = false;
            while let Some(report) = self.slots[p as usize].producer.poll_delivery() {
                self.delivered(p, report);
                delivered = true;
            }
            // With acks=0 a batch is complete once drained (no answer will come to wake the
            // producer again), so the workload hands the next batches at once. With acks=1
            // or all the next answer or timer does that, as it always has.
            if !(delivered && self.config.acks == crate::config::Acks::None) {
                break;
            }
        }
        if let Some(t) = &mut self.trace {
            let slot = &mut self.slots[p as usize];
            while let Some(event) = slot.producer.poll_event() {
                if events::shown(&event) {
                    t.record(now, p, SimEvent::Producer(event));
                }
            }
        }
        self.arm_wakeup(p);
    }

    /// The application gets a delivery report: the ledger learns it.
    fn delivered(&mut self, p: u32, report: DeliveryReport) {
        let now = self.now_ms;
        let slot = &mut self.slots[p as usize];
        let b = slot.handles.batch(report.handle);
        let entry = &mut slot.ledger[b as usize];
        entry.delivery = match &report.result {
            Ok(delivered) => {
                entry.acked_offset = delivered.base_offset;
                self.latencies.push(
                    now.saturating_sub(entry.handed_at_ms)
                        .min(u64::from(u32::MAX)),
                );
                Delivery::Acked
            }
            Err(e) if e.is_possibly_persisted() => Delivery::FailedPossiblyPersisted,
            Err(_) => Delivery::FailedDefinite,
        };
        slot.outstanding -= 1;
        self.record(p, || SimEvent::Delivered { batch: b, report });
    }

    /// Schedules producer `p`'s next wakeup, if it is busy and wants one earlier than armed.
    fn arm_wakeup(&mut self, p: u32) {
        let now = self.now_ms;
        let total = self.config.batches_per_producer();
        let slot = &mut self.slots[p as usize];
        let busy = slot.outstanding > 0 || slot.handles.resend_pending() || slot.next_new < total;
        let Some(at) = slot.producer.next_wakeup_ms().filter(|_| busy) else {
            return;
        };
        let at = at.max(now);
        if slot.wakeup_at_ms.is_none_or(|w| at < w || w < now) {
            slot.wakeup_at_ms = Some(at);
            let session = slot.session;
            self.schedule(
                at,
                Event::Wakeup {
                    producer: p,
                    session,
                },
            );
        }
    }

    /// The producer process dies; a new one (new producer id, nothing in flight) takes over and
    /// re-sends every batch the old one had not had reported.
    fn restart_producer(&mut self, p: u32) {
        self.faults.producer_restarts += 1;
        let resent = self.replace_producer(p);
        self.record(p, || SimEvent::ProducerRestarted { resent });
    }

    /// Producer `p`'s process is replaced by a new one (new producer id, nothing in flight),
    /// which will re-send every batch the old one had not had reported. Returns how many.
    fn replace_producer(&mut self, p: u32) -> usize {
        let mut producer = match Producer::new(producer_config(&self.config)) {
            Ok(producer) => producer,
            Err(e) => unreachable!("the config was valid at the start of the run: {e}"),
        };
        producer.set_record_events(self.trace.is_some());
        let slot = &mut self.slots[p as usize];
        let old = std::mem::replace(&mut slot.producer, producer);
        slot.retired.push(old.stats());
        slot.session += 1;
        let resend: Vec<u64> = (0..slot.next_new)
            .filter(|b| slot.ledger[*b as usize].delivery == Delivery::Pending)
            .collect();
        let resent = resend.len();
        slot.handles = Handles::new(resend, slot.next_new);
        slot.outstanding = 0;
        slot.init_attempts = 0;
        slot.wakeup_at_ms = None;
        for link in &mut slot.links {
            link.reset();
        }
        resent
    }

    /// The batches (simulator numbers) of a request producer `p` just polled, as its producer
    /// reports them, and the logical event the request's faults are keyed by.
    fn request_key(&mut self, p: u32, frame: &RequestFrame, batches: &mut Vec<u64>) -> MessageKey {
        let slot = &mut self.slots[p as usize];
        if matches!(frame.request, Request::Metadata(_)) {
            slot.metadata_requests += 1;
            return (METADATA, slot.metadata_requests);
        }
        if !matches!(frame.request, Request::Produce(_)) {
            slot.init_attempts += 1;
            return (INIT_PRODUCER_ID, slot.init_attempts);
        }
        let id = frame.correlation_id;
        let unanswered = slot.producer.unanswered_batches(id);
        for sent in slot.producer.request_batches(id).chain(unanswered) {
            let b = slot.handles.batch(sent.handle);
            slot.ledger[b as usize].sends += 1;
            batches.push(b);
            // Kafka's broker takes a new epoch only from sequence 0 (a producer id's first
            // epoch, or a bump).
            if sent.producer_id.is_some() {
                let key = (sent.producer_id.0, sent.producer_epoch.0, sent.partition);
                let at_zero = sent.base_sequence == idempo_protocol::Sequence(0);
                let first_attempt = slot.ledger[b as usize].sends == 1;
                let start = slot.epoch_starts.entry(key).or_insert(EpochStart {
                    opened_by_new_batch_past_zero: first_attempt && !at_zero,
                    sent_at_zero: false,
                });
                start.sent_at_zero |= at_zero;
            }
        }
        self.batch_sends += batches.len() as u64;
        match batches.first() {
            Some(&b) => (b, u32::from(slot.ledger[b as usize].sends)),
            None => (INIT_PRODUCER_ID - 1, 1),
        }
    }

    /// The batches of a request as the trace shows them (only called when tracing).
    fn batch_refs(&self, p: u32, correlation_id: i32) -> Vec<BatchRef> {
        let slot = &self.slots[p as usize];
        let unanswered = slot.producer.unanswered_batches(correlation_id);
        slot.producer
            .request_batches(correlation_id)
            .chain(unanswered)
            .map(|sent| {
                let batch = slot.handles.batch(sent.handle);
                let count = self.config.records_in_batch(batch) as i32;
                BatchRef {
                    batch,
                    partition: sent.partition,
                    producer_id: sent.producer_id.0,
                    epoch: sent.producer_epoch.0,
                    first_sequence: sent.base_sequence.0,
                    last_sequence: idempo_protocol::record_batch::last_sequence(
                        sent.base_sequence,
                        count - 1,
                    )
                    .0,
                }
            })
            .collect()
    }

    /// Puts a request to broker `node` on the network: decides its fate by the logical event
    /// it carries.
    fn send_request(&mut self, p: u32, node: u32, frame: RequestFrame) {
        self.requests += 1;
        let mut batches = self.queue.list();
        let key = self.request_key(p, &frame, &mut batches);
        let refs = match self.trace {
            Some(_) => self.batch_refs(p, frame.correlation_id),
            None => Vec::new(),
        };
        let sent = Outgoing {
            node,
            connection: self.slots[p as usize].links[node as usize].connection,
            key,
            batches,
            refs,
            metadata: matches!(frame.request, Request::Metadata(_)),
        };
        if self.config.network.fifo() && self.expects_answer(&frame) {
            self.await_answer(p, node, frame.correlation_id);
        }
        let mut faults = Faults {
            config: &self.config,
            plan: &mut self.plan,
            counts: &mut self.faults,
            now_ms: self.now_ms,
        };
        let link = &mut self.slots[p as usize].links[node as usize];
        let carries_batches = !sent.batches.is_empty();
        match network::request_fate(&mut faults, link, p, key, carries_batches) {
            RequestFate::Lost(cause) => {
                let correlation_id = frame.correlation_id;
                self.request_lost(p, correlation_id, sent, cause);
                // acks=0: no timeout will reveal a broken connection; the socket does.
                let broke = matches!(
                    cause,
                    LossCause::ConnectionBroke | LossCause::ConnectionGone
                );
                if broke && !self.expects_answer(&frame) {
                    self.disconnect(p, node, DisconnectCause::Broken { correlation_id });
                }
            }
            RequestFate::Arrives {
                at_ms,
                corrupt_bit,
                header_corrupt,
                duplicate_at_ms,
            } => {
                let mut frame = frame;
                if let Some(bit) = corrupt_bit {
                    network::flip_bit(&mut frame, bit);
                }
                if header_corrupt {
                    network::corrupt_magic(&mut frame);
                }
                let damaged = corrupt_bit.is_some() || header_corrupt;
                self.request_travels(p, frame, sent, at_ms, damaged, duplicate_at_ms)
            }
        }
    }

    /// A request is on its way to the broker, arriving at `at_ms` (perhaps `damaged` on the
    /// way, perhaps with a second copy arriving at `duplicate_at_ms`).
    fn request_travels(
        &mut self,
        p: u32,
        frame: RequestFrame,
        sent: Outgoing,
        at_ms: u64,
        damaged: bool,
        duplicate_at_ms: Option<u64>,
    ) {
        let Outgoing {
            node,
            connection,
            key,
            batches,
            refs,
            ..
        } = sent;
        let correlation_id = frame.correlation_id;
        let target = self.cluster.as_ref().map(|_| node);
        let metadata = matches!(frame.request, Request::Metadata(_));
        self.record(p, || SimEvent::RequestSent {
            correlation_id,
            connection,
            batches: refs,
            arrives_at_ms: Some(at_ms),
            lost: None,
            duplicated: duplicate_at_ms.is_some(),
            corrupted: damaged,
            node: target,
            metadata,
        });
        let copy = duplicate_at_ms.map(|again| {
            let mut list = self.queue.list();
            list.extend_from_slice(&batches);
            let copy = Event::Request {
                producer: p,
                node,
                connection,
                frame: frame.clone(),
                batches: list,
                key: (key.0, 0),
            };
            (again, copy)
        });
        self.schedule(
            at_ms,
            Event::Request {
                producer: p,
                node,
                connection,
                frame,
                batches,
                key,
            },
        );
        if let Some((again, copy)) = copy {
            self.schedule(again, copy);
        }
    }

    /// True unless the request is a produce with `acks=0`, which the broker never answers.
    fn expects_answer(&self, frame: &RequestFrame) -> bool {
        !matches!(&frame.request, Request::Produce(r) if r.acks == 0)
    }

    /// Notes a request producer `p` sent to `node` that awaits an answer, arming the
    /// connection's request timer.
    fn await_answer(&mut self, p: u32, node: u32, correlation_id: i32) {
        let deadline = self.now_ms + self.config.request_timeout_ms;
        let slot = &mut self.slots[p as usize];
        if slot.links[node as usize].await_answer(correlation_id, deadline) {
            let session = slot.session;
            self.schedule(
                deadline,
                Event::RequestTimeout {
                    producer: p,
                    session,
                    node,
                },
            );
        }
    }

    /// A request was lost on its way: the ledger and the trace learn it.
    fn request_lost(&mut self, p: u32, correlation_id: i32, sent: Outgoing, cause: LossCause) {
        let Outgoing {
            node,
            connection,
            batches,
            refs,
            metadata,
            ..
        } = sent;
        for b in &batches {
            self.slots[p as usize].ledger[*b as usize].requests_lost += 1;
        }
        self.queue.recycle(batches);
        let target = self.cluster.as_ref().map(|_| node);
        self.record(p, || SimEvent::RequestSent {
            correlation_id,
            connection,
            batches: refs,
            arrives_at_ms: None,
            lost: Some(cause),
            duplicated: false,
            corrupted: false,
            node: target,
            metadata,
        });
    }

    /// The broker serves a request; its answer travels back, unless the ack is lost. `key`
    /// is the logical event of the request; attempt 0 marks a duplicate copy, which draws no
    /// faults of its own.
    fn deliver_request(
        &mut self,
        p: u32,
        node: u32,
        connection: u32,
        frame: &RequestFrame,
        batches: &[u64],
        key: MessageKey,
    ) {
        if self.config.network.fifo()
            && self.slots[p as usize].links[node as usize].lost_with(connection)
        {
            self.faults.lost_with_connection += 1;
            let correlation_id = frame.correlation_id;
            self.record(p, || SimEvent::RequestLostInFlight {
                correlation_id,
                cause: LossCause::ConnectionGone,
            });
            return;
        }
        if self.cluster.is_some() {
            let to = Destination {
                producer: p,
                node,
                connection,
            };
            self.cluster_request(to, frame, batches, key);
            return;
        }
        self.expire_producers(p, node);
        // The disk fails this request's append (`--append-failure`): keyed like the network's
        // faults, by the request's first batch and attempt (a duplicate copy draws none).
        let fail_append = matches!(frame.request, Request::Produce(_))
            && key.1 > 0
            && self.plan.message(
                &self.config,
                crate::plan::MessageFault::AppendFailure,
                p,
                key.0,
                key.1,
            );
        let broker = &mut self.nodes[node as usize].broker;
        if fail_append {
            broker.storage_mut().fail_next_appends(1);
        }
        let handled = broker.handle(frame);
        // A failure the request did not reach (its batch was refused or a duplicate) lapses.
        broker.storage_mut().fail_next_appends(0);
        self.sample_producer_state(node);
        for (i, outcome) in handled.outcomes.into_iter().enumerate() {
            let batch = batches.get(i).copied();
            self.count_verdict(p, batch, &outcome);
            self.record(p, || {
                SimEvent::Verdict(VerdictRef {
                    batch,
                    outcome: Box::new(outcome),
                })
            });
        }
        if self.expects_answer(frame) {
            let to = Destination {
                producer: p,
                node,
                connection,
            };
            let response = handled
                .response
                .expect("the simulator's one broker is standalone: it answers at once");
            self.answer(to, frame.correlation_id, response, batches, key);
        }
        self.broker_faults();
    }

    /// Records broker `node`'s producer-state size if it is the largest seen yet.
    fn sample_producer_state(&mut self, node: u32) {
        let broker = &self.nodes[node as usize].broker;
        let counts = &mut self.broker_counts;
        counts.producer_ids_peak = counts
            .producer_ids_peak
            .max(broker.producer_id_count() as u64);
        counts.producer_state_bytes_peak = counts
            .producer_state_bytes_peak
            .max(broker.producer_state_bytes() as u64);
    }

    /// Lets broker `node`'s clock reach now, expiring idle producers.
    fn expire_producers(&mut self, p: u32, node: u32) {
        let broker = &mut self.nodes[node as usize].broker;
        for expired in broker.advance_time(self.now_ms as i64) {
            self.broker_counts.producers_expired += 1;
            self.known
                .expired
                .insert((expired.producer_id.0, expired.partition));
            self.record(p, || SimEvent::ProducerExpired {
                producer_id: expired.producer_id,
                partition: expired.partition,
            });
        }
    }

    /// Counts one broker decision, in the run's counts and the batch's ledger.
    fn count_verdict(&mut self, p: u32, batch: Option<u64>, outcome: &ProduceOutcome) {
        let producer = &self.slots[p as usize].producer;
        let now_at = (producer.producer_id(), producer.producer_epoch());
        let mut scratch = BatchLedger::default();
        let entry = match batch {
            Some(b) => &mut self.slots[p as usize].ledger[b as usize],
            None => &mut scratch,
        };
        let counts = &mut self.broker_counts;
        match &outcome.verdict {
            Verdict::Appended { .. } => {
                counts.appended += 1;
                entry.appends += 1;
            }
            Verdict::Duplicate { .. } => {
                counts.duplicates_dropped += 1;
                entry.duplicates += 1;
            }
            Verdict::Rejected(SequenceRejection::StaleEpoch { current }) => {
                counts.stale_epoch_rejected += 1;
                entry.rejections += 1;
                if now_at.0 == outcome.producer_id && now_at.1 < *current {
                    counts.epochs_backwards += 1;
                }
            }
            Verdict::Rejected(_) => {
                counts.gaps_rejected += 1;
                if entry.appends > 0 && outcome.producer_epoch.0 >= 0 {
                    counts.retries_outside_window += 1;
                }
                entry.rejections += 1;
            }
            Verdict::Invalid(why) => {
                if why.error_code() == idempo_protocol::ErrorCode::CorruptMessage {
                    counts.corrupt_rejected += 1;
                } else {
                    counts.other_rejected += 1;
                }
                entry.rejections += 1;
            }
        }
    }

    /// A broker's answer to a request travels back to its producer, unless it is lost.
    fn answer(
        &mut self,
        to: Destination,
        correlation_id: i32,
        response: ResponseFrame,
        batches: &[u64],
        key: MessageKey,
    ) {
        let Destination {
            producer: p,
            node,
            connection,
        } = to;
        let mut faults = Faults {
            config: &self.config,
            plan: &mut self.plan,
            counts: &mut self.faults,
            now_ms: self.now_ms,
        };
        let slot = &mut self.slots[p as usize];
        let link = &mut slot.links[node as usize];
        match network::response_fate(&mut faults, link, p, connection, key) {
            Ok(arrival) => {
                let session = slot.session;
                self.schedule(
                    arrival,
                    Event::Response {
                        producer: p,
                        session,
                        node,
                        connection,
                        frame: response,
                    },
                );
            }
            Err(cause) => {
                for b in batches {
                    slot.ledger[*b as usize].acks_lost += 1;
                }
                self.record(p, || SimEvent::ResponseSent {
                    correlation_id,
                    arrives_at_ms: None,
                    lost: Some(cause),
                });
            }
        }
    }

    /// Applies the broker crashes and restarts that are due after the latest append.
    fn broker_faults(&mut self) {
        if self.cluster.is_some() {
            for fault in self.plan.broker_faults_due(self.broker_counts.appended) {
                self.cluster_fault(fault);
            }
            return;
        }
        for fault in self.plan.broker_faults_due(self.broker_counts.appended) {
            // Kafka's snapshots keep one batch per producer: name the windows a restart shrinks.
            let windows_before = (self.config.snapshot_mode
                == idempo_broker::SnapshotMode::LastBatchOnly)
                .then(|| DedupWindows::of(&self.nodes[0].broker));
            let restart = match fault {
                Fault::BrokerCrash { tear_bytes, .. } => {
                    self.faults.broker_crashes += 1;
                    BrokerRestart::Crashed(self.crash_broker(tear_bytes))
                }
                Fault::BrokerRestart { .. } => {
                    self.faults.broker_restarts += 1;
                    match self.nodes[0].broker.restart_clean() {
                        Ok(report) => BrokerRestart::Restarted(report),
                        Err(e) => BrokerRestart::RestartFailed(e),
                    }
                }
                Fault::DeleteRecords { partition, .. } => {
                    self.delete_records(partition);
                    continue;
                }
                _ => continue,
            };
            if let Some(before) = windows_before {
                let after = DedupWindows::of(&self.nodes[0].broker);
                self.known.window_shrunk.extend(before.shrunk_in(&after));
            }
            // Every connection breaks with the broker process.
            if self.config.network.fifo() {
                for slot in &mut self.slots {
                    slot.links[0].cut = true;
                }
            }
            self.record(0, || SimEvent::BrokerRestarted(restart));
        }
    }

    /// A DeleteRecords request (`--delete-records`): `partition`'s log start moves to its high
    /// watermark (the log end, standalone). The batches it deletes are kept for the checker,
    /// which reads them as the head of the partition's log: deleted on purpose, their records
    /// are not lost, and a copy written again after them is still a duplicate.
    fn delete_records(&mut self, partition: i32) {
        let broker = &mut self.nodes[0].broker;
        let Some(end) = broker.log_end_offset(partition) else {
            return; // nothing was ever written there
        };
        let before: Vec<(idempo_protocol::BatchHeader, bytes::Bytes)> = broker
            .log(partition)
            .map(|view| view.batches().map(|b| (b.header, b.bytes)).collect())
            .unwrap_or_default();
        let producers_before = broker.producer_state(partition).map_or(0, |s| s.len());
        let Ok(log_start_offset) = broker.delete_records(partition, end) else {
            return; // the simulated disk does not fail a delete
        };
        let kept_from = broker
            .log(partition)
            .and_then(|view| view.batches().next().map(|b| b.header.base_offset))
            .unwrap_or(i64::MAX);
        let producers_after = broker.producer_state(partition).map_or(0, |s| s.len());
        let deleted: Vec<_> = before
            .into_iter()
            .filter(|(h, _)| h.base_offset < kept_from)
            .map(|(h, bytes)| (partition, h, bytes))
            .collect();
        let batches = deleted.len();
        self.known.deleted.extend(deleted);
        self.faults.delete_records += 1;
        self.record(0, || SimEvent::RecordsDeleted {
            partition,
            log_start_offset,
            batches,
            producers_evicted: producers_before.saturating_sub(producers_after),
        });
    }

    /// Power loss at the broker: the disk keeps what was synced (and `tear_bytes` of each
    /// file's unsynced tail, a torn write), recovery truncates what does not check out, and
    /// every acknowledged record that vanished is remembered for the checker.
    fn crash_broker(&mut self, tear_bytes: u32) -> idempo_broker::CrashReport {
        let report = self.nodes[0]
            .broker
            .crash(|_file, unsynced| u64::from(tear_bytes).min(unsynced));
        for partition in &report.partitions {
            for batch in &partition.lost_batches {
                let _ = idempo_protocol::visit_records(&batch.bytes, |record| {
                    if let Some(id) = record.value.and_then(checker::parse_record_value) {
                        self.known.crash_lost.insert(id);
                    }
                });
            }
        }
        report
    }

    /// A response reaches its producer. On a FIFO connection it must answer the oldest
    /// unanswered request: if it does not, an earlier response was lost, and the client closes
    /// the connection (Kafka's `NetworkClient` refuses a response whose correlation id is not
    /// the oldest in flight). Responses on a closed connection, or for a dead process, are
    /// discarded.
    fn receive_response(&mut self, from: Destination, session: u32, frame: ResponseFrame) {
        let Destination {
            producer: p,
            node,
            connection,
        } = from;
        let correlation_id = frame.correlation_id;
        let fifo = self.config.network.fifo();
        let slot = &mut self.slots[p as usize];
        let receipt = if session != slot.session {
            Err(LossCause::ProducerGone)
        } else if fifo {
            match slot.links[node as usize].receive(connection, correlation_id) {
                Receipt::Accepted => Ok(()),
                Receipt::ConnectionGone => Err(LossCause::ConnectionGone),
                Receipt::OutOfTurn { missing } => {
                    let cause = DisconnectCause::OutOfTurn {
                        arrived: correlation_id,
                        missing,
                    };
                    self.disconnect(p, node, cause);
                    self.pump(p);
                    return;
                }
            }
        } else {
            Ok(())
        };
        if let Err(cause) = receipt {
            self.faults.lost_with_connection += 1;
            self.record(p, || SimEvent::ResponseDiscarded {
                correlation_id,
                cause,
            });
            return;
        }
        self.record(p, || SimEvent::ResponseArrived {
            correlation_id,
            response: frame.response.clone(),
        });
        self.slots[p as usize]
            .producer
            .on_response(frame, self.now_ms);
        self.pump(p);
    }

    /// The request timer fired: close the connection if its oldest request has waited too
    /// long, else re-arm the timer for that request.
    fn request_timer(&mut self, p: u32, session: u32, node: u32) {
        let slot = &mut self.slots[p as usize];
        if slot.session != session {
            return;
        }
        match slot.links[node as usize].timer_fired(self.now_ms) {
            TimerFired::Expired { correlation_id } => {
                self.disconnect(p, node, DisconnectCause::Unanswered { correlation_id });
                self.pump(p);
            }
            TimerFired::Rearmed { at_ms } => self.schedule(
                at_ms,
                Event::RequestTimeout {
                    producer: p,
                    session,
                    node,
                },
            ),
            TimerFired::Idle => {}
        }
    }

    /// Closes producer `p`'s connection: every request awaiting an answer on it fails (its
    /// outcome unknown), as when Kafka's client disconnects; later requests use a new one.
    fn disconnect(&mut self, p: u32, node: u32, cause: DisconnectCause) {
        let failed = self.slots[p as usize].links[node as usize].close();
        self.faults.disconnects += 1;
        let count = failed.len();
        self.record(p, || SimEvent::Disconnected {
            cause,
            failed: count,
        });
        for correlation_id in failed {
            self.slots[p as usize]
                .producer
                .on_request_failed(correlation_id, self.now_ms);
        }
    }

    fn report(mut self, finished: bool) -> (RunReport, Option<Trace>) {
        let ledgers: Vec<Vec<BatchLedger>> = self
            .slots
            .iter_mut()
            .map(|s| std::mem::take(&mut s.ledger))
            .collect();
        let config = &self.config;
        let owners = &self.pid_owner;
        let workload = Workload::new(config.producers, config.records, config.batch_records);
        let mut check = match &self.cluster {
            None => checker::check(
                &self.nodes[0].broker,
                workload,
                &ledgers,
                |p, b| config.partition_of(p, b),
                |pid| owners.get(&pid).map(|(_, session)| *session),
                &self.known,
            ),
            Some(cluster) => crate::replication_check::check_cluster(
                &self.cluster_view(),
                workload,
                &ledgers,
                |p, b| config.partition_of(p, b),
                |pid| owners.get(&pid).map(|(_, session)| *session),
                &self.known_with_replication(),
                &cluster.reads,
            ),
        };
        drop(ledgers);
        let mut broker_counts = self.broker_counts.clone();
        broker_counts.producer_ids_evicted = self
            .nodes
            .iter()
            .map(|n| n.broker.producer_ids_evicted())
            .sum();
        if let Some(budget) = config.producer_state_budget {
            check.producer_state = Some(checker::ProducerStateBudget {
                budget,
                peak: broker_counts.producer_ids_peak,
            });
        }
        let stats: Vec<ProducerStats> = self
            .slots
            .iter()
            .flat_map(|s| s.retired.iter().copied().chain([s.producer.stats()]))
            .collect();
        check.fatal_errors = stats.iter().map(|s| s.fatal_errors).sum();
        check.epochs_backwards = broker_counts.epochs_backwards;
        check.epochs_not_from_zero = self
            .slots
            .iter()
            .flat_map(|s| s.epoch_starts.values())
            .filter(|start| start.never_started_at_zero())
            .count() as u64;
        let report = RunReport {
            records_sent: config.records * u64::from(config.producers),
            requests: self.requests,
            retries: stats.iter().map(|s| s.retries).sum(),
            epoch_bumps: stats.iter().map(|s| s.epoch_bumps).sum(),
            producer_id_resets: stats.iter().map(|s| s.producer_id_resets).sum(),
            faults: self.faults.clone(),
            broker: broker_counts,
            check,
            latency_p50_ms: self.latencies.percentile(0.50),
            latency_p99_ms: self.latencies.percentile(0.99),
            virtual_ms: self.now_ms,
            events: self.events,
            finished,
            faults_happened: self.plan.happened().to_vec(),
            batch_sends: self.batch_sends,
            cluster: self.cluster.as_ref().map(|_| self.cluster_counts()),
        };
        (report, self.trace)
    }
}
