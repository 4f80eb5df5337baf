//! The discrete-event simulation: producers, a network that loses, duplicates, corrupts and
//! delays, one broker that may crash.
//!
//! Time is virtual (milliseconds). The event queue is ordered by (time, insertion number), so
//! simultaneous events run in the order they were scheduled and a run is a pure function of
//! its [`SimConfig`] and [`FaultPlan`]. The loop:
//!
//! 1. **Producers** are the real sans-IO [`Producer`] state machines. The workload hands each
//!    one its batches (round robin over partitions), keeping a bounded number outstanding, and
//!    puts whatever [`Producer::poll_request`] yields on the network.
//! 2. **The network** decides each message's fate with the [`FaultPlan`], keyed by the
//!    logical event (producer, batch, attempt): lost request, lost ack, duplicate delivery, a
//!    flipped bit, a latency spike, or an ordinary latency drawn from the configured range.
//!    Each producer has one connection that behaves as TCP does: FIFO in each direction
//!    (latency varies, order does not), and a loss is a *break*: the lost message and
//!    everything after it on that connection are gone, until the client notices (a request
//!    unanswered for `request_timeout_ms`, or a response that is not the oldest awaited) and
//!    closes it, failing every request awaiting an answer, as Kafka's `NetworkClient` does.
//!    Requests already on their way when the client closes a connection still reach the
//!    broker; their answers are discarded. Retries go out on a new connection.
//!
//!    Two other models are experiments ([`Network`](crate::config::Network)): `proxy` drops
//!    single frames and keeps the connection (what a fault proxy does to real clients), and
//!    `datagram` loses and reorders each message on its own, which Kafka's protocol does not
//!    expect.
//! 3. **The broker** is the real [`Broker`]; it answers at once. It may crash (power loss:
//!    unsynced data is lost and the last write may be torn) or restart cleanly at moments of
//!    the plan; every connection breaks when it does.
//! 4. **Producer processes** may die; a new process (new producer id) re-sends what the old
//!    one had not had acknowledged. Idempotence does not span producer sessions, and the
//!    checker reports those duplicates under their own name.
//! 5. **Timeouts**: each producer is woken at [`Producer::next_wakeup_ms`].
//!
//! When every batch has a delivery report (or the virtual time limit is reached), the
//! [`checker`](mod@crate::checker) reads the logs back.

use crate::checker::{
    self, BatchLedger, CheckReport, DedupWindows, Delivery, KnownFaults, Workload,
};
use crate::config::SimConfig;
use crate::events::{BatchRef, LossCause, SimEvent, VerdictRef};
use crate::faults::{FaultKind, INIT_PRODUCER_ID};
use crate::plan::{Fault, FaultPlan, MessageFault};
use crate::trace::{self, Trace};
use bytes::{Bytes, BytesMut};
use idempo_broker::{Broker, BrokerConfig, SequenceRejection, Verdict};
use idempo_producer::{DeliveryHandle, Producer, ProducerConfig, ProducerStats};
use idempo_protocol::{BatchHeader, Request, RequestFrame, ResponseFrame};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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
    /// Requests delayed by a latency spike.
    pub spikes: u64,
    /// Broker crashes (power loss).
    pub broker_crashes: u64,
    /// Clean broker restarts.
    pub broker_restarts: u64,
    /// Producer process restarts.
    pub producer_restarts: u64,
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
}

enum Event {
    /// A request reaches the broker.
    Request {
        producer: u32,
        connection: u32,
        frame: RequestFrame,
        batches: Vec<u64>,
        key: (u64, u32),
    },
    /// A response reaches a producer process over connection number `connection`.
    Response {
        producer: u32,
        session: u32,
        connection: u32,
        frame: ResponseFrame,
    },
    /// A producer's timer fires.
    Wakeup { producer: u32, session: u32 },
    /// The connection's request timer: if the oldest unanswered request has waited
    /// `request.timeout.ms`, the client closes the connection, as Kafka's `NetworkClient` does.
    /// One timer per connection, armed for the oldest request, stands in for one per request.
    RequestTimeout { producer: u32, session: u32 },
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

/// One producer as the simulation sees it: the current process and its connection.
struct Slot {
    /// Incarnation of the producer process; bumped by a restart.
    session: u32,
    producer: Producer,
    /// Statistics of earlier processes.
    retired: Vec<ProducerStats>,
    /// First delivery handle of the current process (handles are consecutive per process).
    handle_base: Option<u64>,
    /// Batch number of each handle of the current process, by `handle - handle_base`.
    batch_of_handle: Vec<u64>,
    /// Next batch never handed to any process.
    next_new: u64,
    /// Batches a restarted process must re-send first.
    resend: VecDeque<u64>,
    /// Batches handed to the current process and not yet reported.
    outstanding: u64,
    init_attempts: u32,
    wakeup_at_ms: Option<u64>,
    /// Arrival time of the last request on this producer's connection (kept FIFO unless the
    /// network model reorders).
    request_arrival_ms: u64,
    /// Arrival time of the last response on this producer's connection.
    response_arrival_ms: u64,
    /// Number of the current connection; bumped when the client closes it.
    connection: u32,
    /// The current connection was cut by a fault; the client has not noticed yet.
    cut: bool,
    /// Earlier connections that were cut (everything in flight on them is lost).
    cut_connections: FxHashSet<u32>,
    /// Requests sent on the current connection and not yet answered, oldest first, with the
    /// time each one times out.
    awaiting: VecDeque<(i32, u64)>,
    /// When the armed request timer fires, if one is armed.
    timer_at_ms: Option<u64>,
    ledger: Vec<BatchLedger>,
}

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
        ..ProducerConfig::default()
    }
}

/// One simulation run.
pub struct Simulation {
    config: SimConfig,
    broker: Broker,
    slots: Vec<Slot>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    events_slab: Vec<Option<Event>>,
    free_slots: Vec<usize>,
    order: u64,
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
    latencies_ms: Vec<u32>,
}

impl Simulation {
    /// A run with faults drawn from the config's seed and rates.
    pub fn new(config: SimConfig, trace: Option<Trace>) -> Result<Simulation, String> {
        let plan = FaultPlan::random(&config);
        Simulation::with_plan(config, plan, trace)
    }

    /// A run with the given fault plan (a replay file's, or a shrinking candidate).
    pub fn with_plan(
        config: SimConfig,
        plan: FaultPlan,
        trace: Option<Trace>,
    ) -> Result<Simulation, String> {
        config.validate()?;
        let mut broker = Broker::new(BrokerConfig {
            idempotence: config.idempotence,
            dedup_window: config.dedup_window,
            producer_id_expiration_ms: config.producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms: config
                .producer_id_expiration_check_interval_ms,
            sync_policy: config.sync,
            snapshot_mode: config.snapshot_mode,
            snapshot_interval_ms: config.snapshot_interval_ms,
            ..BrokerConfig::default()
        })
        .map_err(|e| format!("broker settings: {e}"))?;
        broker.set_record_windows(trace.is_some());
        let mut slots = Vec::new();
        for _ in 0..config.producers {
            let mut producer =
                Producer::new(producer_config(&config)).map_err(|e| e.to_string())?;
            producer.set_record_events(trace.is_some());
            slots.push(Slot {
                session: 0,
                producer,
                retired: Vec::new(),
                handle_base: None,
                batch_of_handle: Vec::new(),
                next_new: 0,
                resend: VecDeque::new(),
                outstanding: 0,
                init_attempts: 0,
                wakeup_at_ms: None,
                request_arrival_ms: 0,
                response_arrival_ms: 0,
                connection: 0,
                cut: false,
                cut_connections: FxHashSet::default(),
                awaiting: VecDeque::new(),
                timer_at_ms: None,
                ledger: vec![BatchLedger::default(); config.batches_per_producer() as usize],
            });
        }
        Ok(Simulation {
            config,
            broker,
            slots,
            queue: BinaryHeap::new(),
            events_slab: Vec::new(),
            free_slots: Vec::new(),
            order: 0,
            now_ms: 0,
            plan,
            trace,
            faults: FaultCounts::default(),
            broker_counts: BrokerCounts::default(),
            requests: 0,
            events: 0,
            pid_owner: FxHashMap::default(),
            known: KnownFaults::default(),
            latencies_ms: Vec::new(),
        })
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.order += 1;
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.events_slab[i] = Some(event);
                i
            }
            None => {
                self.events_slab.push(Some(event));
                self.events_slab.len() - 1
            }
        };
        self.queue.push(Reverse(Scheduled {
            at_ms,
            order: self.order,
            slot,
        }));
    }

    fn record(&mut self, producer: u32, event: impl FnOnce() -> SimEvent) {
        if let Some(t) = &mut self.trace {
            t.record(self.now_ms, producer, event());
        }
    }

    /// Runs to the end and checks the result.
    pub fn run(mut self) -> (RunReport, Option<Trace>) {
        for p in 0..self.config.producers {
            self.pump(p);
        }
        let mut finished = true;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at_ms > self.config.max_virtual_ms {
                finished = false;
                break;
            }
            self.now_ms = next.at_ms;
            self.events += 1;
            let event = self.events_slab[next.slot]
                .take()
                .expect("a scheduled slot holds its event");
            self.free_slots.push(next.slot);
            match event {
                Event::Request {
                    producer,
                    connection,
                    frame,
                    batches,
                    key,
                } => self.deliver_request(producer, connection, frame, &batches, key),
                Event::Response {
                    producer,
                    session,
                    connection,
                    frame,
                } => self.receive_response(producer, session, connection, frame),
                Event::RequestTimeout { producer, session } => {
                    self.request_timer(producer, session)
                }
                Event::Wakeup { producer, session } => {
                    let slot = &mut self.slots[producer as usize];
                    if slot.session != session {
                        continue;
                    }
                    if slot.wakeup_at_ms == Some(self.now_ms) {
                        slot.wakeup_at_ms = None;
                    }
                    slot.producer.on_timeout(self.now_ms);
                    self.pump(producer);
                }
            }
        }
        let total = self.config.batches_per_producer();
        finished &= self
            .slots
            .iter()
            .all(|s| s.outstanding == 0 && s.resend.is_empty() && s.next_new == total);
        self.report(finished)
    }

    /// Hands producer `p` its next batch (a re-send after a restart first), unless a producer
    /// restart is due first.
    fn hand_batch(&mut self, p: u32) -> bool {
        let total = self.config.batches_per_producer();
        let slot = &self.slots[p as usize];
        if slot.resend.is_empty()
            && slot.next_new < total
            && self.plan.producer_restart_due(p, slot.next_new)
        {
            self.restart_producer(p);
        }
        let slot = &mut self.slots[p as usize];
        let b = match slot.resend.pop_front() {
            Some(b) => b,
            None if slot.next_new < total => {
                slot.next_new += 1;
                slot.ledger[(slot.next_new - 1) as usize].handed_at_ms = self.now_ms;
                slot.next_new - 1
            }
            None => return false,
        };
        let records = self.config.batch_of(p, b);
        let DeliveryHandle(h) =
            slot.producer
                .send(self.config.partition_of(p, b), records, self.now_ms);
        let base = *slot.handle_base.get_or_insert(h);
        assert_eq!(
            h - base,
            slot.batch_of_handle.len() as u64,
            "delivery handles are consecutive per producer"
        );
        slot.batch_of_handle.push(b);
        slot.outstanding += 1;
        true
    }

    /// Lets producer `p` make progress: hand it batches, send what it wants to send, collect
    /// its delivery reports and events, and arm its timer.
    fn pump(&mut self, p: u32) {
        let max = outstanding_max(&self.config);
        let now = self.now_ms;
        loop {
            while self.slots[p as usize].outstanding < max && self.hand_batch(p) {}
            let Some(frame) = self.slots[p as usize].producer.poll_request(now) else {
                break;
            };
            self.send_request(p, frame);
        }
        let slot = &mut self.slots[p as usize];
        let pid = slot.producer.producer_id();
        if pid.is_some() {
            self.pid_owner.entry(pid.0).or_insert((p, slot.session));
        }
        while let Some(report) = slot.producer.poll_delivery() {
            let index = report.handle.0 - slot.handle_base.unwrap_or(0);
            let b = slot.batch_of_handle[index as usize];
            let entry = &mut slot.ledger[b as usize];
            entry.delivery = match &report.result {
                Ok(delivered) => {
                    entry.acked_offset = delivered.base_offset;
                    let waited = now.saturating_sub(entry.handed_at_ms);
                    self.latencies_ms
                        .push(u32::try_from(waited).unwrap_or(u32::MAX));
                    Delivery::Acked
                }
                Err(e) if e.is_possibly_persisted() => Delivery::FailedPossiblyPersisted,
                Err(_) => Delivery::FailedDefinite,
            };
            slot.outstanding -= 1;
            if let Some(t) = &mut self.trace {
                let acked = report.result.is_ok();
                t.record(
                    now,
                    p,
                    SimEvent::Delivered {
                        batch: b,
                        result: trace::delivered(b, &report),
                        acked,
                    },
                );
            }
        }
        if let Some(t) = &mut self.trace {
            while let Some(event) = slot.producer.poll_event() {
                if let Some(text) = trace::producer_event(&event) {
                    t.record(now, p, SimEvent::Producer { text });
                }
            }
        }
        let busy = slot.outstanding > 0
            || !slot.resend.is_empty()
            || slot.next_new < self.config.batches_per_producer();
        if let Some(at) = slot.producer.next_wakeup_ms().filter(|_| busy) {
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
    }

    /// The producer process dies; a new one (new producer id, nothing in flight) takes over and
    /// re-sends every batch the old one had not had reported.
    fn restart_producer(&mut self, p: u32) {
        self.faults.producer_restarts += 1;
        let mut producer = match Producer::new(producer_config(&self.config)) {
            Ok(producer) => producer,
            Err(e) => unreachable!("the config was valid at the start of the run: {e}"),
        };
        producer.set_record_events(self.trace.is_some());
        let slot = &mut self.slots[p as usize];
        let old = std::mem::replace(&mut slot.producer, producer);
        slot.retired.push(old.stats());
        slot.session += 1;
        slot.handle_base = None;
        slot.batch_of_handle.clear();
        slot.resend = (0..slot.next_new)
            .filter(|b| slot.ledger[*b as usize].delivery == Delivery::Pending)
            .collect();
        slot.outstanding = 0;
        slot.init_attempts = 0;
        slot.wakeup_at_ms = None;
        if slot.cut {
            slot.cut_connections.insert(slot.connection);
        }
        slot.connection += 1;
        slot.cut = false;
        slot.awaiting.clear();
        slot.timer_at_ms = None;
        let resent = slot.resend.len();
        self.record(p, || SimEvent::ProducerRestarted { resent });
    }

    /// Puts a request on the network: decides its fate by the logical event it carries.
    fn send_request(&mut self, p: u32, mut frame: RequestFrame) {
        self.requests += 1;
        let per_batch = u64::from(self.config.batch_records);
        let tracing = self.trace.is_some();
        let slot = &mut self.slots[p as usize];
        let mut refs = Vec::new();
        let (key, batches) = match &frame.request {
            Request::Produce(r) => {
                let mut batches = Vec::with_capacity(r.partitions.len());
                for d in &r.partitions {
                    let Some((_, index)) = first_record_id(&d.records) else {
                        continue;
                    };
                    let b = u64::from(index) / per_batch;
                    batches.push(b);
                    if tracing && let Ok(h) = BatchHeader::parse(&d.records) {
                        refs.push(BatchRef {
                            batch: b,
                            partition: d.partition,
                            producer_id: h.producer_id.0,
                            epoch: h.producer_epoch.0,
                            first_sequence: h.base_sequence.0,
                            last_sequence: h.last_sequence().0,
                        });
                    }
                }
                for b in &batches {
                    slot.ledger[*b as usize].sends += 1;
                }
                let key_batch = batches.first().copied().unwrap_or(INIT_PRODUCER_ID - 1);
                let attempt = batches
                    .first()
                    .map_or(1, |b| u32::from(slot.ledger[*b as usize].sends));
                ((key_batch, attempt), batches)
            }
            _ => {
                slot.init_attempts += 1;
                ((INIT_PRODUCER_ID, slot.init_attempts), Vec::new())
            }
        };
        let connection = slot.connection;
        let fifo = self.config.network.fifo();
        if fifo {
            let deadline = self.now_ms + self.config.request_timeout_ms;
            slot.awaiting.push_back((frame.correlation_id, deadline));
            if slot.timer_at_ms.is_none() {
                slot.timer_at_ms = Some(deadline);
                let session = slot.session;
                self.schedule(
                    deadline,
                    Event::RequestTimeout {
                        producer: p,
                        session,
                    },
                );
            }
        }
        let breaks = self.config.network.loss_breaks_connection();
        let (batch, attempt) = key;
        let already_cut = breaks && self.slots[p as usize].cut;
        let lost = if already_cut {
            self.faults.lost_with_connection += 1;
            Some(LossCause::ConnectionGone)
        } else if self
            .plan
            .message(&self.config, MessageFault::RequestLoss, p, batch, attempt)
        {
            self.faults.request_lost += 1;
            self.slots[p as usize].cut = breaks;
            Some(if breaks {
                LossCause::ConnectionBroke
            } else {
                LossCause::Dropped
            })
        } else {
            None
        };
        if let Some(cause) = lost {
            for b in &batches {
                self.slots[p as usize].ledger[*b as usize].requests_lost += 1;
            }
            let correlation_id = frame.correlation_id;
            self.record(p, || SimEvent::RequestSent {
                correlation_id,
                connection,
                batches: refs,
                arrives_at_ms: None,
                lost: Some(cause),
                duplicated: false,
                corrupted: false,
            });
            return;
        }
        let corrupted = !batches.is_empty()
            && self
                .plan
                .message(&self.config, MessageFault::Corrupt, p, batch, attempt);
        if corrupted {
            self.faults.corrupted += 1;
            let bit = self
                .plan
                .oracle()
                .draw(FaultKind::CorruptBit, p, batch, attempt);
            flip_bit(&mut frame, bit);
        }
        let c = &self.config;
        let mut latency = self.plan.oracle().latency(
            c.latency_min_ms,
            c.latency_max_ms,
            FaultKind::RequestLatency,
            p,
            batch,
            attempt,
        );
        if self
            .plan
            .message(&self.config, MessageFault::Spike, p, batch, attempt)
        {
            self.faults.spikes += 1;
            latency = self.config.spike_ms;
        }
        let arrival = self.arrival(p, latency, true);
        let duplicated =
            self.plan
                .message(&self.config, MessageFault::Duplicate, p, batch, attempt);
        let correlation_id = frame.correlation_id;
        self.record(p, || SimEvent::RequestSent {
            correlation_id,
            connection,
            batches: refs,
            arrives_at_ms: Some(arrival),
            lost: None,
            duplicated,
            corrupted,
        });
        if duplicated {
            self.faults.duplicated += 1;
            let c = &self.config;
            let extra = self.plan.oracle().latency(
                c.latency_min_ms,
                c.latency_max_ms,
                FaultKind::DuplicateLatency,
                p,
                batch,
                attempt,
            );
            let again = self.arrival(p, latency + extra, true);
            let copy = Event::Request {
                producer: p,
                connection,
                frame: frame.clone(),
                batches: batches.clone(),
                key: (batch, 0),
            };
            self.schedule(
                arrival,
                Event::Request {
                    producer: p,
                    connection,
                    frame,
                    batches,
                    key,
                },
            );
            self.schedule(again, copy);
        } else {
            self.schedule(
                arrival,
                Event::Request {
                    producer: p,
                    connection,
                    frame,
                    batches,
                    key,
                },
            );
        }
    }

    /// When a message sent now with `latency` arrives: never before an earlier message of the
    /// same direction on a FIFO connection.
    fn arrival(&mut self, p: u32, latency: u64, request: bool) -> u64 {
        let mut at = self.now_ms + latency;
        if self.config.network.fifo() {
            let slot = &mut self.slots[p as usize];
            let last = if request {
                &mut slot.request_arrival_ms
            } else {
                &mut slot.response_arrival_ms
            };
            at = at.max(*last);
            *last = at;
        }
        at
    }

    /// The broker serves a request; its answer travels back, unless the ack is lost. `key`
    /// is the logical event of the request; attempt 0 marks a duplicate copy, which draws no
    /// faults of its own.
    fn deliver_request(
        &mut self,
        p: u32,
        connection: u32,
        frame: RequestFrame,
        batches: &[u64],
        key: (u64, u32),
    ) {
        let slot = &self.slots[p as usize];
        let cut = slot.cut_connections.contains(&connection)
            || (connection == slot.connection && slot.cut);
        if self.config.network.fifo() && cut {
            self.faults.lost_with_connection += 1;
            let correlation_id = frame.correlation_id;
            self.record(p, || SimEvent::RequestLostInFlight {
                correlation_id,
                cause: LossCause::ConnectionGone,
            });
            return;
        }
        for expired in self.broker.advance_time(self.now_ms as i64) {
            self.broker_counts.producers_expired += 1;
            self.known
                .expired
                .insert((expired.producer_id.0, expired.partition));
            self.record(p, || SimEvent::Producer {
                text: format!(
                    "broker expired producer {} on p{} (idle for producer.id.expiration.ms)",
                    expired.producer_id, expired.partition
                ),
            });
        }
        let handled = self.broker.handle(&frame);
        for (i, outcome) in handled.outcomes.iter().enumerate() {
            let mut scratch = BatchLedger::default();
            let entry = match batches.get(i) {
                Some(b) => &mut self.slots[p as usize].ledger[*b as usize],
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
                Verdict::Rejected(SequenceRejection::StaleEpoch { .. }) => {
                    counts.stale_epoch_rejected += 1;
                    entry.rejections += 1;
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
            if let Some(t) = &mut self.trace {
                let window = outcome
                    .seen
                    .as_ref()
                    .and_then(|s| s.window().map(ToString::to_string))
                    .unwrap_or_default();
                t.record(
                    self.now_ms,
                    p,
                    SimEvent::Verdict(VerdictRef {
                        batch: batches.get(i).copied(),
                        partition: outcome.response.partition,
                        outcome: outcome.outcome_name(),
                        error: outcome.error_code().name(),
                        explanation: outcome.to_string(),
                        window,
                    }),
                );
            }
        }
        let correlation_id = frame.correlation_id;
        let (batch, attempt) = key;
        let breaks = self.config.network.loss_breaks_connection();
        if attempt > 0
            && self
                .plan
                .message(&self.config, MessageFault::AckLoss, p, batch, attempt)
        {
            self.faults.ack_lost += 1;
            let slot = &mut self.slots[p as usize];
            if breaks && connection == slot.connection {
                slot.cut = true;
            } else if breaks {
                slot.cut_connections.insert(connection);
            }
            for b in batches {
                slot.ledger[*b as usize].acks_lost += 1;
            }
            let cause = if breaks {
                LossCause::ConnectionBroke
            } else {
                LossCause::Dropped
            };
            self.record(p, || SimEvent::ResponseSent {
                correlation_id,
                arrives_at_ms: None,
                lost: Some(cause),
            });
        } else {
            let c = &self.config;
            let latency = self.plan.oracle().latency(
                c.latency_min_ms,
                c.latency_max_ms,
                FaultKind::ResponseLatency,
                p,
                batch,
                attempt,
            );
            let arrival = self.arrival(p, latency, false);
            let session = self.slots[p as usize].session;
            self.schedule(
                arrival,
                Event::Response {
                    producer: p,
                    session,
                    connection,
                    frame: handled.response,
                },
            );
        }
        self.broker_faults();
    }

    /// Applies the broker crashes and restarts that are due after the latest append.
    fn broker_faults(&mut self) {
        for fault in self.plan.broker_faults_due(self.broker_counts.appended) {
            // Kafka's snapshots keep one batch per producer: name the windows a restart shrinks.
            let windows_before = (self.config.snapshot_mode
                == idempo_broker::SnapshotMode::LastBatchOnly)
                .then(|| DedupWindows::of(&self.broker));
            let summary = match fault {
                Fault::BrokerCrash { tear_bytes, .. } => {
                    self.faults.broker_crashes += 1;
                    self.crash_broker(tear_bytes)
                }
                Fault::BrokerRestart { .. } => {
                    self.faults.broker_restarts += 1;
                    match self.broker.restart_clean() {
                        Ok(report) => format!(
                            "shut down cleanly and restarted: {}",
                            restart_summary(&report)
                        ),
                        Err(e) => format!("clean restart failed: {e}"),
                    }
                }
                _ => continue,
            };
            if let Some(before) = windows_before {
                let after = DedupWindows::of(&self.broker);
                self.known.window_shrunk.extend(before.shrunk_in(&after));
            }
            // Every connection breaks with the broker process.
            for p in 0..self.config.producers {
                let slot = &mut self.slots[p as usize];
                if self.config.network.fifo() {
                    slot.cut = true;
                }
            }
            self.record(0, || SimEvent::BrokerRestarted { summary });
        }
    }

    /// Power loss at the broker: the disk keeps what was synced (and `tear_bytes` of each
    /// file's unsynced tail, a torn write), recovery truncates what does not check out, and
    /// every acknowledged record that vanished is remembered for the checker.
    fn crash_broker(&mut self, tear_bytes: u32) -> String {
        let report = self
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
        format!(
            "crashed (power loss) and recovered: {}",
            restart_summary(&report)
        )
    }

    /// A response reaches its producer. On a FIFO connection it must answer the oldest
    /// unanswered request: if it does not, an earlier response was lost, and the client closes
    /// the connection (Kafka's `NetworkClient` refuses a response whose correlation id is not
    /// the oldest in flight). Responses on a closed connection, or for a dead process, are
    /// discarded.
    fn receive_response(&mut self, p: u32, session: u32, connection: u32, frame: ResponseFrame) {
        let correlation_id = frame.correlation_id;
        let slot = &self.slots[p as usize];
        let cause = if session != slot.session {
            Some(LossCause::ProducerGone)
        } else if self.config.network.fifo() && (connection != slot.connection || slot.cut) {
            Some(LossCause::ConnectionGone)
        } else {
            None
        };
        if let Some(cause) = cause {
            self.faults.lost_with_connection += 1;
            self.record(p, || SimEvent::ResponseDiscarded {
                correlation_id,
                cause,
            });
            return;
        }
        if self.config.network.fifo() {
            let slot = &mut self.slots[p as usize];
            if slot.awaiting.front().map(|(c, _)| *c) != Some(correlation_id) {
                let missing = slot.awaiting.front().map_or(-1, |(c, _)| *c);
                self.disconnect(
                    p,
                    &format!("response #{correlation_id} arrived but #{missing}'s never did"),
                );
                self.pump(p);
                return;
            }
            slot.awaiting.pop_front();
        }
        self.record(p, || SimEvent::ResponseArrived {
            correlation_id,
            summary: trace::response_summary(&frame),
        });
        self.slots[p as usize]
            .producer
            .on_response(frame, self.now_ms);
        self.pump(p);
    }

    /// The request timer fired: close the connection if its oldest request has waited too
    /// long, else re-arm the timer for that request.
    fn request_timer(&mut self, p: u32, session: u32) {
        let slot = &mut self.slots[p as usize];
        if slot.session != session {
            return;
        }
        slot.timer_at_ms = None;
        match slot.awaiting.front().copied() {
            Some((correlation_id, deadline)) if deadline <= self.now_ms => {
                self.disconnect(
                    p,
                    &format!("request #{correlation_id} unanswered after request.timeout.ms"),
                );
                self.pump(p);
            }
            Some((_, deadline)) => {
                slot.timer_at_ms = Some(deadline);
                self.schedule(
                    deadline,
                    Event::RequestTimeout {
                        producer: p,
                        session,
                    },
                );
            }
            None => {}
        }
    }

    /// Closes producer `p`'s connection: every request awaiting an answer on it fails (its
    /// outcome unknown), as when Kafka's client disconnects; later requests use a new one.
    fn disconnect(&mut self, p: u32, why: &str) {
        let slot = &mut self.slots[p as usize];
        if slot.cut {
            slot.cut_connections.insert(slot.connection);
        }
        slot.connection += 1;
        slot.cut = false;
        let failed: Vec<i32> = slot.awaiting.drain(..).map(|(c, _)| c).collect();
        self.faults.disconnects += 1;
        let count = failed.len();
        self.record(p, || SimEvent::Disconnected {
            why: why.to_string(),
            failed: count,
        });
        for correlation_id in failed {
            self.slots[p as usize]
                .producer
                .on_request_failed(correlation_id, self.now_ms);
        }
    }

    fn report(mut self, finished: bool) -> (RunReport, Option<Trace>) {
        let config = &self.config;
        let ledgers: Vec<Vec<BatchLedger>> = self.slots.iter().map(|s| s.ledger.clone()).collect();
        let owners = &self.pid_owner;
        let check = checker::check(
            &self.broker,
            Workload::new(config.producers, config.records, config.batch_records),
            &ledgers,
            |p, b| config.partition_of(p, b),
            |pid| owners.get(&pid).map(|(_, session)| *session),
            &self.known,
        );
        let stats: Vec<ProducerStats> = self
            .slots
            .iter()
            .flat_map(|s| s.retired.iter().copied().chain([s.producer.stats()]))
            .collect();
        self.latencies_ms.sort_unstable();
        let percentile = |q: f64| -> u64 {
            if self.latencies_ms.is_empty() {
                return 0;
            }
            let i = ((self.latencies_ms.len() as f64 - 1.0) * q).round() as usize;
            u64::from(self.latencies_ms[i])
        };
        let report = RunReport {
            records_sent: config.records * u64::from(config.producers),
            requests: self.requests,
            retries: stats.iter().map(|s| s.retries).sum(),
            epoch_bumps: stats.iter().map(|s| s.epoch_bumps).sum(),
            producer_id_resets: stats.iter().map(|s| s.producer_id_resets).sum(),
            faults: self.faults.clone(),
            broker: self.broker_counts.clone(),
            check,
            latency_p50_ms: percentile(0.50),
            latency_p99_ms: percentile(0.99),
            virtual_ms: self.now_ms,
            events: self.events,
            finished,
            faults_happened: self.plan.happened().to_vec(),
        };
        (report, self.trace)
    }
}

/// One line on what a broker restart did to each partition.
fn restart_summary(report: &idempo_broker::RestartReport) -> String {
    let parts: Vec<String> = report
        .partitions
        .iter()
        .map(|p| {
            let r = &p.recovery;
            let lost = p.log_end_offset_before - r.log_end_offset;
            let snapshot = match r.snapshot_loaded {
                Some(offset) if r.fell_back() => format!("fell back to the snapshot at {offset}"),
                Some(offset) => format!("snapshot at {offset}"),
                None if r.fell_back() => "no valid snapshot, full replay".to_string(),
                None => "no snapshot, full replay".to_string(),
            };
            let truncated = if r.log.truncated_bytes > 0 {
                format!(", {} torn bytes cut", r.log.truncated_bytes)
            } else {
                String::new()
            };
            format!(
                "p{} end {}→{}{}{}; {snapshot}, {} batch(es) replayed, {} producer(s)",
                p.partition,
                p.log_end_offset_before,
                r.log_end_offset,
                if lost > 0 {
                    format!(" ({lost} unsynced offsets lost)")
                } else {
                    String::new()
                },
                truncated,
                r.replayed_batches,
                r.producers_recovered
            )
        })
        .collect();
    if parts.is_empty() {
        "no partitions yet".to_string()
    } else {
        parts.join("; ")
    }
}

/// Flips one bit of the first batch of a produce request, in the CRC-covered part (attributes
/// to the end), as a damaged network would.
fn flip_bit(frame: &mut RequestFrame, bit: u64) {
    let Request::Produce(r) = &mut frame.request else {
        return;
    };
    let Some(first) = r.partitions.first_mut() else {
        return;
    };
    let covered = first
        .records
        .len()
        .saturating_sub(idempo_protocol::record_batch::ATTRIBUTES_OFFSET);
    if covered == 0 {
        return;
    }
    let mut bytes = BytesMut::from(&first.records[..]);
    let index = idempo_protocol::record_batch::ATTRIBUTES_OFFSET + (bit / 8) as usize % covered;
    bytes[index] ^= 1 << (bit % 8);
    first.records = Bytes::from(bytes);
}

/// Reads the simulator's record identity from the first record of an encoded batch without
/// decoding the batch: the first record's value (8 bytes) follows the 61-byte header and five
/// small varints.
pub fn first_record_id(batch: &[u8]) -> Option<(u32, u32)> {
    let mut pos = idempo_protocol::RECORD_BATCH_OVERHEAD;
    let varint = |pos: &mut usize| -> Option<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *batch.get(*pos)?;
            *pos += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    };
    let _length = varint(&mut pos)?;
    pos += 1; // attributes
    let _timestamp_delta = varint(&mut pos)?;
    let _offset_delta = varint(&mut pos)?;
    let key_len = varint(&mut pos)?;
    if key_len > 0 {
        pos += key_len as usize;
    }
    let value_len = varint(&mut pos)?;
    if value_len != 8 {
        return None;
    }
    checker::parse_record_value(batch.get(pos..pos + 8)?)
}
