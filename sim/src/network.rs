//! The simulated network between each producer and the broker: latency, loss, duplication,
//! corruption, and connections.
//!
//! Each message's fate is decided by the [`FaultPlan`], keyed by the logical event
//! (producer, batch, attempt): lost request, lost ack, duplicate delivery, a flipped bit, a
//! latency spike, or an ordinary latency drawn from the configured range.
//!
//! Three models ([`Network`]):
//!
//! - **`tcp`** (the default): each producer has one connection that behaves as TCP does: FIFO
//!   in each direction (latency varies, order does not), and a loss is a *break*: the lost
//!   message and everything after it on that connection are gone, until the client notices
//!   (a request unanswered for `request_timeout_ms`, or a response that is not the oldest
//!   awaited) and closes it, failing every request awaiting an answer, as Kafka's
//!   `NetworkClient` does. Requests already on their way when the client closes a connection
//!   still reach the broker; their answers are discarded. Retries go out on a new connection.
//! - **`proxy`**: FIFO, but a loss drops a single frame and keeps the connection (what a
//!   fault proxy does to real clients).
//! - **`datagram`**: each message is lost and delayed on its own, so latency reorders them,
//!   which Kafka's protocol does not expect.
//!
//! A `Link` is one producer's side of this: its current connection, the connections cut
//! under it, the requests awaiting an answer, and the arrival times that keep a FIFO model
//! FIFO. `request_fate` and `response_fate` decide what happens to one message.

use crate::config::{Network, SimConfig};
use crate::engine::FaultCounts;
use crate::events::LossCause;
use crate::faults::FaultKind;
use crate::plan::{FaultPlan, MessageFault};
use bytes::{Bytes, BytesMut};
use idempo_protocol::{Request, RequestFrame};
use rustc_hash::FxHashSet;
use std::collections::VecDeque;

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Producer to broker.
    Request,
    /// Broker to producer.
    Response,
}

/// One producer's connection state.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// Arrival time of the last request on this producer's connection (kept FIFO unless the
    /// network model reorders).
    request_arrival_ms: u64,
    /// Arrival time of the last response on this producer's connection.
    response_arrival_ms: u64,
    /// Number of the current connection; bumped when the client closes it.
    pub connection: u32,
    /// The current connection was cut by a fault; the client has not noticed yet.
    pub cut: bool,
    /// Earlier connections that were cut (everything in flight on them is lost).
    cut_connections: FxHashSet<u32>,
    /// Requests sent on the current connection and not yet answered, oldest first, with the
    /// time each one times out.
    awaiting: VecDeque<(i32, u64)>,
    /// When the armed request timer fires, if one is armed.
    timer_at_ms: Option<u64>,
}

/// What becomes of a response reaching its producer on a FIFO connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// It answers the oldest request awaited: hand it to the producer.
    Accepted,
    /// Its connection was closed or cut: discard it.
    ConnectionGone,
    /// It is not the answer to the oldest request awaited (-1 if none): an earlier response
    /// was lost, so the client closes the connection.
    OutOfTurn {
        /// The oldest request awaited.
        missing: i32,
    },
}

/// What the request timer found when it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerFired {
    /// Nothing awaits an answer.
    Idle,
    /// The oldest request waited `request.timeout.ms`: close the connection.
    Expired {
        /// The request.
        correlation_id: i32,
    },
    /// The oldest request has time left: the timer is re-armed for its deadline.
    Rearmed {
        /// The new deadline.
        at_ms: u64,
    },
}

impl Link {
    /// When a message sent at `now_ms` with `latency_ms` arrives: never before an earlier
    /// message of the same direction on a FIFO connection.
    pub fn arrival(
        &mut self,
        model: Network,
        now_ms: u64,
        latency_ms: u64,
        direction: Direction,
    ) -> u64 {
        let mut at = now_ms + latency_ms;
        if model.fifo() {
            let last = match direction {
                Direction::Request => &mut self.request_arrival_ms,
                Direction::Response => &mut self.response_arrival_ms,
            };
            at = at.max(*last);
            *last = at;
        }
        at
    }

    /// Notes a request sent on the current connection that times out at `deadline_ms`.
    /// True when the request timer must be armed for it (none was).
    pub fn await_answer(&mut self, correlation_id: i32, deadline_ms: u64) -> bool {
        self.awaiting.push_back((correlation_id, deadline_ms));
        if self.timer_at_ms.is_some() {
            return false;
        }
        self.timer_at_ms = Some(deadline_ms);
        true
    }

    /// True when a message sent on `connection` was lost with it (the connection was cut).
    pub fn lost_with(&self, connection: u32) -> bool {
        self.cut_connections.contains(&connection) || (connection == self.connection && self.cut)
    }

    /// A fault broke `connection` (a lost message on a TCP connection).
    pub fn break_connection(&mut self, connection: u32) {
        if connection == self.connection {
            self.cut = true;
        } else {
            self.cut_connections.insert(connection);
        }
    }

    /// The client closes its connection: every request awaiting an answer on it fails (their
    /// correlation ids are returned, oldest first); later requests use a new connection.
    pub fn close(&mut self) -> Vec<i32> {
        self.retire_connection();
        self.awaiting.drain(..).map(|(c, _)| c).collect()
    }

    /// The producer process died: its connection goes with it, and nothing is awaited.
    pub fn reset(&mut self) {
        self.retire_connection();
        self.awaiting.clear();
        self.timer_at_ms = None;
    }

    fn retire_connection(&mut self) {
        if self.cut {
            self.cut_connections.insert(self.connection);
        }
        self.connection += 1;
        self.cut = false;
    }

    /// What becomes of response `correlation_id` arriving over `connection` (FIFO models).
    pub fn receive(&mut self, connection: u32, correlation_id: i32) -> Receipt {
        if connection != self.connection || self.cut {
            return Receipt::ConnectionGone;
        }
        match self.awaiting.front() {
            Some((c, _)) if *c == correlation_id => {
                self.awaiting.pop_front();
                Receipt::Accepted
            }
            front => Receipt::OutOfTurn {
                missing: front.map_or(-1, |(c, _)| *c),
            },
        }
    }

    /// The request timer fired at `now_ms`.
    pub fn timer_fired(&mut self, now_ms: u64) -> TimerFired {
        self.timer_at_ms = None;
        match self.awaiting.front().copied() {
            Some((correlation_id, deadline)) if deadline <= now_ms => {
                TimerFired::Expired { correlation_id }
            }
            Some((_, deadline)) => {
                self.timer_at_ms = Some(deadline);
                TimerFired::Rearmed { at_ms: deadline }
            }
            None => TimerFired::Idle,
        }
    }
}

/// The logical event a message belongs to: (batch, attempt) of its producer. Attempt 0 marks
/// a duplicate copy, which draws no faults of its own.
pub(crate) type MessageKey = (u64, u32);

/// What the network does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestFate {
    /// It never reaches the broker.
    Lost(LossCause),
    /// It arrives.
    Arrives {
        /// When.
        at_ms: u64,
        /// A bit flipped on the way (its position), for requests carrying batches.
        corrupt_bit: Option<u64>,
        /// The first batch's magic byte damaged on the way (outside the CRC).
        header_corrupt: bool,
        /// A second copy arrives then too.
        duplicate_at_ms: Option<u64>,
    },
}

/// The faults and the clock a fate is decided with.
pub(crate) struct Faults<'a> {
    /// The run's settings.
    pub config: &'a SimConfig,
    /// The run's fault plan.
    pub plan: &'a mut FaultPlan,
    /// The fault counters.
    pub counts: &'a mut FaultCounts,
    /// Now.
    pub now_ms: u64,
}

impl Faults<'_> {
    fn happens(&mut self, kind: MessageFault, p: u32, (batch, attempt): MessageKey) -> bool {
        self.plan.message(self.config, kind, p, batch, attempt)
    }

    fn latency(&self, kind: FaultKind, p: u32, (batch, attempt): MessageKey) -> u64 {
        let c = self.config;
        self.plan
            .oracle()
            .latency(c.latency_min_ms, c.latency_max_ms, kind, p, batch, attempt)
    }
}

/// Decides the fate of a request of producer `p` (`carries_batches`: a produce request) sent
/// now over `link`, counting the faults.
pub(crate) fn request_fate(
    f: &mut Faults<'_>,
    link: &mut Link,
    p: u32,
    key: MessageKey,
    carries_batches: bool,
) -> RequestFate {
    let model = f.config.network;
    let breaks = model.loss_breaks_connection();
    if breaks && link.cut {
        f.counts.lost_with_connection += 1;
        return RequestFate::Lost(LossCause::ConnectionGone);
    }
    if f.happens(MessageFault::RequestLoss, p, key) {
        f.counts.request_lost += 1;
        link.cut = breaks;
        return RequestFate::Lost(if breaks {
            LossCause::ConnectionBroke
        } else {
            LossCause::Dropped
        });
    }
    let corrupt_bit = (carries_batches && f.happens(MessageFault::Corrupt, p, key)).then(|| {
        f.counts.corrupted += 1;
        let (batch, attempt) = key;
        f.plan
            .oracle()
            .draw(FaultKind::CorruptBit, p, batch, attempt)
    });
    let header_corrupt = carries_batches && f.happens(MessageFault::HeaderCorrupt, p, key);
    if header_corrupt {
        f.counts.header_corrupted += 1;
    }
    let mut latency = f.latency(FaultKind::RequestLatency, p, key);
    if f.happens(MessageFault::Spike, p, key) {
        f.counts.spikes += 1;
        latency = f.config.spike_ms;
    }
    let at_ms = link.arrival(model, f.now_ms, latency, Direction::Request);
    let duplicate_at_ms = f.happens(MessageFault::Duplicate, p, key).then(|| {
        f.counts.duplicated += 1;
        let extra = f.latency(FaultKind::DuplicateLatency, p, key);
        link.arrival(model, f.now_ms, latency + extra, Direction::Request)
    });
    RequestFate::Arrives {
        at_ms,
        corrupt_bit,
        header_corrupt,
        duplicate_at_ms,
    }
}

/// Decides the fate of the broker's answer to a request of producer `p` that came over
/// `connection`: its arrival time, or why it is lost (a lost ack breaks a TCP connection).
pub(crate) fn response_fate(
    f: &mut Faults<'_>,
    link: &mut Link,
    p: u32,
    connection: u32,
    key: MessageKey,
) -> Result<u64, LossCause> {
    let model = f.config.network;
    let breaks = model.loss_breaks_connection();
    if key.1 > 0 && f.happens(MessageFault::AckLoss, p, key) {
        f.counts.ack_lost += 1;
        if breaks {
            link.break_connection(connection);
            return Err(LossCause::ConnectionBroke);
        }
        return Err(LossCause::Dropped);
    }
    let latency = f.latency(FaultKind::ResponseLatency, p, key);
    Ok(link.arrival(model, f.now_ms, latency, Direction::Response))
}

/// Flips one bit of the first batch of a produce request, in the CRC-covered part (attributes
/// to the end), as a damaged network would.
/// Damages the magic byte of the request's first batch (offset 16, outside the CRC, which
/// covers the batch from its attributes on): the broker finds a batch that is not magic 2 and
/// refuses it with `INVALID_RECORD` (Kafka's `ProduceRequest.validateRecords`), a
/// non-retriable error.
pub(crate) fn corrupt_magic(frame: &mut RequestFrame) {
    let Request::Produce(r) = &mut frame.request else {
        return;
    };
    let Some(first) = r.partitions.first_mut() else {
        return;
    };
    const MAGIC_OFFSET: usize = 16;
    if first.records.len() <= MAGIC_OFFSET {
        return;
    }
    let mut bytes = BytesMut::from(&first.records[..]);
    bytes[MAGIC_OFFSET] ^= 1;
    first.records = Bytes::from(bytes);
}

pub(crate) fn flip_bit(frame: &mut RequestFrame, bit: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_connection_never_delivers_a_later_message_first() {
        let mut link = Link::default();
        let first = link.arrival(Network::Tcp, 0, 20, Direction::Request);
        let second = link.arrival(Network::Tcp, 1, 2, Direction::Request);
        assert_eq!((first, second), (20, 20));
        let mut datagrams = Link::default();
        datagrams.arrival(Network::Datagram, 0, 20, Direction::Request);
        assert_eq!(
            datagrams.arrival(Network::Datagram, 1, 2, Direction::Request),
            3
        );
    }

    #[test]
    fn a_response_out_of_turn_names_the_request_still_awaited() {
        let mut link = Link::default();
        assert!(
            link.await_answer(1, 100),
            "the first request arms the timer"
        );
        assert!(
            !link.await_answer(2, 110),
            "one timer serves the connection"
        );
        assert_eq!(link.receive(0, 2), Receipt::OutOfTurn { missing: 1 });
        assert_eq!(link.receive(0, 1), Receipt::Accepted);
        assert_eq!(link.receive(0, 2), Receipt::Accepted);
        assert_eq!(link.receive(1, 3), Receipt::ConnectionGone);
    }

    #[test]
    fn closing_a_cut_connection_fails_what_it_awaited_and_keeps_it_cut() {
        let mut link = Link::default();
        link.await_answer(7, 50);
        link.break_connection(0);
        assert!(link.lost_with(0));
        assert_eq!(link.close(), vec![7]);
        assert!(link.lost_with(0), "messages still in flight on it are lost");
        assert!(!link.lost_with(1), "the new connection works");
    }

    #[test]
    fn the_request_timer_closes_only_after_the_oldest_deadline() {
        let mut link = Link::default();
        link.await_answer(1, 100);
        assert_eq!(link.timer_fired(50), TimerFired::Rearmed { at_ms: 100 });
        assert_eq!(
            link.timer_fired(100),
            TimerFired::Expired { correlation_id: 1 }
        );
        link.close();
        assert_eq!(link.timer_fired(200), TimerFired::Idle);
    }
}
