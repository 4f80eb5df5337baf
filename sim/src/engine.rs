//! The discrete-event simulation: producers, a network that loses and reorders, one broker.
//!
//! Time is virtual (milliseconds). The event queue is ordered by (time, insertion number), so
//! simultaneous events run in the order they were scheduled and a run is a pure function of
//! its [`SimConfig`]. The loop:
//!
//! 1. **Producers** are the real sans-IO [`Producer`] state machines. The workload hands each
//!    one its batches (round robin over partitions), keeping a bounded number outstanding, and
//!    puts whatever [`Producer::poll_request`] yields on the network.
//! 2. **The network** decides each message's fate with the [`FaultOracle`], keyed by the
//!    logical event (producer, batch, attempt): lost request, lost ack, or a latency drawn
//!    from the configured range. Each producer has one connection that behaves as TCP does:
//!    FIFO in each direction (latency varies, order does not), and a loss is a *break*: the
//!    lost message and everything after it on that connection are gone, until the client
//!    notices (a request unanswered for `request_timeout_ms`, or a response that is not the
//!    oldest awaited) and closes it, failing every request awaiting an answer, as Kafka's
//!    `NetworkClient` does. Retries then go out on a new connection.
//!
//!    Two other models are experiments ([`Network`](crate::config::Network)): `proxy` drops
//!    single frames and keeps the connection (what a fault proxy does to real clients), and
//!    `datagram` loses and reorders each message on its own, which Kafka's protocol does not
//!    expect.
//! 3. **The broker** is the real [`Broker`]; it answers at once, and its answer travels back
//!    through the network, where the ack may be lost.
//! 4. **Timeouts**: each producer is woken at [`Producer::next_wakeup_ms`].
//!
//! When every producer has a delivery report for every batch (or the virtual time limit is
//! reached), the [`checker`](mod@crate::checker) reads the logs back.

use crate::checker::{self, BatchLedger, CheckReport, Delivery, Workload, record_values};
use crate::config::SimConfig;
use crate::faults::{FaultKind, FaultOracle, INIT_PRODUCER_ID};
use crate::trace::{self, Trace};
use idempo_broker::{Broker, BrokerConfig, SequenceRejection, Verdict};
use idempo_producer::{DeliveryHandle, Producer, ProducerConfig};
use idempo_protocol::{Record, Request, RequestFrame, ResponseFrame};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Counts of what the network and broker did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Requests lost on the way to the broker.
    pub request_lost: u64,
    /// Responses lost on the way back.
    pub ack_lost: u64,
    /// Connections the clients closed (a response missing or a request timed out).
    pub disconnects: u64,
    /// Requests and responses lost because their connection had already broken.
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
    /// Any other error.
    pub other_rejected: u64,
    /// Retries of batches already in the log that the broker no longer recognised and
    /// answered OUT_OF_ORDER_SEQUENCE_NUMBER: the retry fell outside the dedup window.
    pub retries_outside_window: u64,
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
    /// Network faults injected.
    pub faults: FaultCounts,
    /// Broker answers.
    pub broker: BrokerCounts,
    /// The checker's findings.
    pub check: CheckReport,
    /// Virtual time at the end.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// False when the virtual time limit stopped the run before every batch was resolved.
    pub finished: bool,
}

enum Event {
    /// A request reaches the broker.
    Request {
        producer: u32,
        connection: u32,
        frame: RequestFrame,
        batches: Vec<u64>,
        key_batch: u64,
        attempt: u32,
    },
    /// A response reaches a producer over connection number `connection`.
    Response {
        producer: u32,
        connection: u32,
        frame: ResponseFrame,
    },
    /// A producer's timer fires.
    Wakeup { producer: u32 },
    /// The connection's request timer: if the oldest unanswered request has waited
    /// `request.timeout.ms`, the client closes the connection, as Kafka's `NetworkClient` does.
    /// One timer per connection, armed for the oldest request, stands in for one per request.
    RequestTimeout { producer: u32 },
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

struct Slot {
    producer: Producer,
    next_batch: u64,
    outstanding: u64,
    first_handle: Option<u64>,
    init_attempts: u32,
    wakeup_at_ms: Option<u64>,
    /// Arrival time of the last request on this producer's connection (kept FIFO unless the
    /// network model reorders).
    request_arrival_ms: u64,
    /// Arrival time of the last response on this producer's connection.
    response_arrival_ms: u64,
    /// Number of the producer's current connection; bumped when the client closes it.
    connection: u32,
    /// Requests sent on the current connection and not yet answered, oldest first, with the
    /// time each one times out.
    awaiting: VecDeque<(i32, u64)>,
    /// When the armed request timer fires, if one is armed.
    timer_at_ms: Option<u64>,
    /// The current connection was cut by a fault; the client has not noticed yet.
    cut: bool,
    ledger: Vec<BatchLedger>,
}

/// Most batches the application keeps handed to a producer but not yet reported.
fn outstanding_max(config: &SimConfig) -> u64 {
    (2 * config.max_in_flight as u64 * u64::from(config.partitions)).clamp(4, 1024)
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
    oracle: FaultOracle,
    trace: Option<Trace>,
    faults: FaultCounts,
    broker_counts: BrokerCounts,
    requests: u64,
    events: u64,
}

impl Simulation {
    /// Builds a run; fails with a message naming the flag when the config is unusable.
    pub fn new(config: SimConfig, trace: Option<Trace>) -> Result<Simulation, String> {
        config.validate()?;
        let broker = Broker::new(BrokerConfig {
            idempotence: config.idempotence,
            dedup_window: config.dedup_window,
            producer_id_expiration_ms: config.producer_id_expiration_ms,
            ..BrokerConfig::default()
        })
        .map_err(|e| format!("--dedup-window: {e}"))?;
        let mut slots = Vec::new();
        for _ in 0..config.producers {
            let mut producer = Producer::new(ProducerConfig {
                idempotence: config.idempotence,
                max_in_flight: config.max_in_flight,
                allow_unsafe_max_in_flight: config.unsafe_max_in_flight,
                broker_dedup_window: config.dedup_window,
                request_timeout_ms: config.request_timeout_ms,
                delivery_timeout_ms: config.delivery_timeout_ms,
                retries: config.retries,
                retry_backoff_ms: config.retry_backoff_ms,
                first_batch_alone: config.first_batch_alone,
                ..ProducerConfig::default()
            })
            .map_err(|e| e.to_string())?;
            producer.set_record_events(trace.is_some());
            slots.push(Slot {
                producer,
                next_batch: 0,
                outstanding: 0,
                first_handle: None,
                init_attempts: 0,
                wakeup_at_ms: None,
                request_arrival_ms: 0,
                response_arrival_ms: 0,
                connection: 0,
                awaiting: VecDeque::new(),
                timer_at_ms: None,
                cut: false,
                ledger: vec![BatchLedger::default(); config.batches_per_producer() as usize],
            });
        }
        Ok(Simulation {
            oracle: FaultOracle::new(config.seed),
            config,
            broker,
            slots,
            queue: BinaryHeap::new(),
            events_slab: Vec::new(),
            free_slots: Vec::new(),
            order: 0,
            now_ms: 0,
            trace,
            faults: FaultCounts::default(),
            broker_counts: BrokerCounts::default(),
            requests: 0,
            events: 0,
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
                    key_batch,
                    attempt,
                } => {
                    self.deliver_request(producer, connection, frame, &batches, key_batch, attempt)
                }
                Event::Response {
                    producer,
                    connection,
                    frame,
                } => self.receive_response(producer, connection, frame),
                Event::RequestTimeout { producer } => self.request_timer(producer),
                Event::Wakeup { producer } => {
                    let slot = &mut self.slots[producer as usize];
                    if slot.wakeup_at_ms == Some(self.now_ms) {
                        slot.wakeup_at_ms = None;
                    }
                    slot.producer.on_timeout(self.now_ms);
                    self.pump(producer);
                }
            }
        }
        finished &= self
            .slots
            .iter()
            .all(|s| s.outstanding == 0 && s.next_batch == s.ledger.len() as u64);
        self.report(finished)
    }

    /// Lets producer `p` make progress: hand it batches, send what it wants to send, collect
    /// its delivery reports and events, and arm its timer.
    fn pump(&mut self, p: u32) {
        let max = outstanding_max(&self.config);
        let total = self.config.batches_per_producer();
        let now = self.now_ms;
        loop {
            let slot = &mut self.slots[p as usize];
            while slot.outstanding < max && slot.next_batch < total {
                let b = slot.next_batch;
                let n = self.config.records_in_batch(b);
                let first = (b * u64::from(self.config.batch_records)) as u32;
                let values = record_values(p, first, n);
                let records = (0..n as usize)
                    .map(|k| Record::with_value(k as i32, values.slice(8 * k..8 * k + 8)))
                    .collect();
                let DeliveryHandle(h) =
                    slot.producer
                        .send(self.config.partition_of(p, b), records, now);
                let first_handle = *slot.first_handle.get_or_insert(h);
                assert_eq!(
                    h - first_handle,
                    b,
                    "delivery handles are consecutive per producer"
                );
                slot.next_batch += 1;
                slot.outstanding += 1;
            }
            let Some(frame) = slot.producer.poll_request(now) else {
                break;
            };
            self.send_request(p, frame);
        }
        let slot = &mut self.slots[p as usize];
        while let Some(report) = slot.producer.poll_delivery() {
            let b = report.handle.0 - slot.first_handle.unwrap_or(0);
            let entry = &mut slot.ledger[b as usize];
            entry.delivery = match &report.result {
                Ok(_) => Delivery::Acked,
                Err(e) if e.is_possibly_persisted() => Delivery::FailedPossiblyPersisted,
                Err(_) => Delivery::FailedDefinite,
            };
            slot.outstanding -= 1;
            if let Some(t) = &mut self.trace {
                t.line(now, p, trace::delivered(b, &report));
            }
        }
        if let Some(t) = &mut self.trace {
            while let Some(event) = slot.producer.poll_event() {
                if let Some(text) = trace::producer_event(&event) {
                    t.line(now, p, text);
                }
            }
        }
        let busy = slot.outstanding > 0 || slot.next_batch < total;
        if let Some(at) = slot.producer.next_wakeup_ms().filter(|_| busy) {
            let at = at.max(now);
            if slot.wakeup_at_ms.is_none_or(|w| at < w || w < now) {
                slot.wakeup_at_ms = Some(at);
                self.schedule(at, Event::Wakeup { producer: p });
            }
        }
    }

    /// Puts a request on the network: decides its fate by the logical event it carries.
    fn send_request(&mut self, p: u32, frame: RequestFrame) {
        self.requests += 1;
        let per_batch = u64::from(self.config.batch_records);
        let slot = &mut self.slots[p as usize];
        let (key_batch, attempt, batches) = match &frame.request {
            Request::Produce(r) => {
                let batches: Vec<u64> = r
                    .partitions
                    .iter()
                    .filter_map(|d| first_record_id(&d.records))
                    .map(|(_, index)| u64::from(index) / per_batch)
                    .collect();
                for b in &batches {
                    slot.ledger[*b as usize].sends += 1;
                }
                let key = batches.first().copied().unwrap_or(INIT_PRODUCER_ID - 1);
                let attempt = batches
                    .first()
                    .map_or(1, |b| u32::from(slot.ledger[*b as usize].sends));
                (key, attempt, batches)
            }
            _ => {
                slot.init_attempts += 1;
                (INIT_PRODUCER_ID, slot.init_attempts, Vec::new())
            }
        };
        let connection = slot.connection;
        if self.config.network.fifo() {
            let deadline = self.now_ms + self.config.request_timeout_ms;
            slot.awaiting.push_back((frame.correlation_id, deadline));
            if slot.timer_at_ms.is_none() {
                slot.timer_at_ms = Some(deadline);
                self.schedule(deadline, Event::RequestTimeout { producer: p });
            }
        }
        let slot = &mut self.slots[p as usize];
        let c = &self.config;
        let lost_with_connection = c.network.loss_breaks_connection() && slot.cut;
        if lost_with_connection
            || self.oracle.happens(
                c.request_loss,
                FaultKind::RequestLoss,
                p,
                key_batch,
                attempt,
            )
        {
            if lost_with_connection {
                self.faults.lost_with_connection += 1;
            } else {
                self.faults.request_lost += 1;
                slot.cut = c.network.loss_breaks_connection();
            }
            for b in &batches {
                slot.ledger[*b as usize].requests_lost += 1;
            }
            if let Some(t) = &mut self.trace {
                let why = if lost_with_connection {
                    "lost: the connection is already broken"
                } else if !c.network.loss_breaks_connection() {
                    "dropped on the way to the broker"
                } else {
                    "lost: the connection broke before the broker read it"
                };
                t.line(
                    self.now_ms,
                    p,
                    format!("{} — {why}", trace::request(&frame)),
                );
            }
            return;
        }
        let latency = self.oracle.latency(
            c.latency_min_ms,
            c.latency_max_ms,
            FaultKind::RequestLatency,
            p,
            key_batch,
            attempt,
        );
        let mut arrival = self.now_ms + latency;
        if c.network.fifo() {
            arrival = arrival.max(slot.request_arrival_ms);
            slot.request_arrival_ms = arrival;
        }
        if let Some(t) = &mut self.trace {
            t.line(
                self.now_ms,
                p,
                format!(
                    "{} (arrives in {} ms)",
                    trace::request(&frame),
                    arrival - self.now_ms
                ),
            );
        }
        self.schedule(
            arrival,
            Event::Request {
                producer: p,
                connection,
                frame,
                batches,
                key_batch,
                attempt,
            },
        );
    }

    /// The broker serves a request; its answer travels back, unless the ack is lost.
    fn deliver_request(
        &mut self,
        p: u32,
        connection: u32,
        frame: RequestFrame,
        batches: &[u64],
        key_batch: u64,
        attempt: u32,
    ) {
        if self.config.network.fifo() && self.connection_broken(p, connection) {
            self.faults.lost_with_connection += 1;
            if let Some(t) = &mut self.trace {
                t.line(
                    self.now_ms,
                    p,
                    format!(
                        "{} — lost with its broken connection",
                        trace::request(&frame)
                    ),
                );
            }
            return;
        }
        self.broker.advance_time(self.now_ms as i64);
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
                Verdict::Invalid(_) => {
                    counts.other_rejected += 1;
                    entry.rejections += 1;
                }
            }
            if let Some(t) = &mut self.trace {
                t.line(
                    self.now_ms,
                    p,
                    format!("broker: p{} {}", outcome.response.partition, outcome),
                );
            }
        }
        let c = &self.config;
        if self
            .oracle
            .happens(c.ack_loss, FaultKind::AckLoss, p, key_batch, attempt)
        {
            self.faults.ack_lost += 1;
            if c.network.loss_breaks_connection() {
                self.slots[p as usize].cut = true;
            }
            for b in batches {
                self.slots[p as usize].ledger[*b as usize].acks_lost += 1;
            }
            if let Some(t) = &mut self.trace {
                let how = if c.network.loss_breaks_connection() {
                    "the connection broke before it was sent"
                } else {
                    "dropped on the way back"
                };
                t.line(
                    self.now_ms,
                    p,
                    format!(
                        "response to request #{} — {how} (lost ack)",
                        frame.correlation_id
                    ),
                );
            }
            return;
        }
        let latency = self.oracle.latency(
            c.latency_min_ms,
            c.latency_max_ms,
            FaultKind::ResponseLatency,
            p,
            key_batch,
            attempt,
        );
        let mut arrival = self.now_ms + latency;
        if c.network.fifo() {
            let slot = &mut self.slots[p as usize];
            arrival = arrival.max(slot.response_arrival_ms);
            slot.response_arrival_ms = arrival;
        }
        self.schedule(
            arrival,
            Event::Response {
                producer: p,
                connection,
                frame: handled.response,
            },
        );
    }

    /// A response reaches its producer. On a FIFO connection it must answer the oldest
    /// unanswered request: if it does not, an earlier response was lost, and the client closes
    /// the connection (Kafka's `NetworkClient` refuses a response whose correlation id is not
    /// the oldest in flight). Responses on a closed connection are discarded.
    fn receive_response(&mut self, p: u32, connection: u32, frame: ResponseFrame) {
        if self.config.network.fifo() && self.connection_broken(p, connection) {
            self.faults.lost_with_connection += 1;
            if let Some(t) = &mut self.trace {
                t.line(
                    self.now_ms,
                    p,
                    format!(
                        "response #{} lost with its broken connection",
                        frame.correlation_id
                    ),
                );
            }
            return;
        }
        let slot = &mut self.slots[p as usize];
        if self.config.network.fifo() {
            if slot.awaiting.front().map(|(c, _)| *c) != Some(frame.correlation_id) {
                let missing = slot.awaiting.front().map_or(-1, |(c, _)| *c);
                self.disconnect(
                    p,
                    &format!(
                        "response #{} arrived but #{missing}'s never did",
                        frame.correlation_id
                    ),
                );
                self.pump(p);
                return;
            }
            slot.awaiting.pop_front();
        }
        if let Some(t) = &mut self.trace {
            t.line(self.now_ms, p, trace::response_arrived(&frame));
        }
        self.slots[p as usize]
            .producer
            .on_response(frame, self.now_ms);
        self.pump(p);
    }

    /// The request timer fired: close the connection if its oldest request has waited too
    /// long, else re-arm the timer for that request.
    fn request_timer(&mut self, p: u32) {
        let slot = &mut self.slots[p as usize];
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
                self.schedule(deadline, Event::RequestTimeout { producer: p });
            }
            None => {}
        }
    }

    /// True when `connection` is no longer producer `p`'s live connection: the client closed
    /// it, or a fault cut it.
    fn connection_broken(&self, p: u32, connection: u32) -> bool {
        let slot = &self.slots[p as usize];
        connection != slot.connection || slot.cut
    }

    /// Closes producer `p`'s connection: every request awaiting an answer on it fails (its
    /// outcome unknown), as when Kafka's client disconnects; later requests use a new one.
    fn disconnect(&mut self, p: u32, why: &str) {
        let slot = &mut self.slots[p as usize];
        slot.connection += 1;
        slot.cut = false;
        let failed: Vec<i32> = slot.awaiting.drain(..).map(|(c, _)| c).collect();
        self.faults.disconnects += 1;
        if let Some(t) = &mut self.trace {
            t.line(
                self.now_ms,
                p,
                format!(
                    "connection closed ({why}): {} request(s) failed",
                    failed.len()
                ),
            );
        }
        for correlation_id in failed {
            self.slots[p as usize]
                .producer
                .on_request_failed(correlation_id, self.now_ms);
        }
    }

    fn report(self, finished: bool) -> (RunReport, Option<Trace>) {
        let config = &self.config;
        let ledgers: Vec<Vec<BatchLedger>> = self.slots.iter().map(|s| s.ledger.clone()).collect();
        let check = checker::check(
            &self.broker,
            Workload {
                producers: config.producers,
                records: config.records,
                batch_records: config.batch_records,
            },
            &ledgers,
            |p, b| config.partition_of(p, b),
        );
        let stats: Vec<_> = self.slots.iter().map(|s| s.producer.stats()).collect();
        let report = RunReport {
            records_sent: config.records * u64::from(config.producers),
            requests: self.requests,
            retries: stats.iter().map(|s| s.retries).sum(),
            epoch_bumps: stats.iter().map(|s| s.epoch_bumps).sum(),
            producer_id_resets: stats.iter().map(|s| s.producer_id_resets).sum(),
            faults: self.faults,
            broker: self.broker_counts,
            check,
            virtual_ms: self.now_ms,
            events: self.events,
            finished,
        };
        (report, self.trace)
    }
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
