//! Requests awaiting an answer, by correlation id (the part of Kafka's `NetworkClient` and
//! `InFlightRequests` the producer needs).
//!
//! A request leaves this table exactly once: when its response arrives, when the caller says
//! its connection failed, or when `request_timeout_ms` passes. After that its correlation id
//! is unknown, so a response that arrives later is reported and ignored: the batches it
//! carried were already retried or failed, and acting on the answer twice could deliver a
//! batch twice.
//!
//! The table is a small `VecDeque` in send order. It holds at most `max_in_flight` entries
//! (5 by default), so a linear search beats a map, and send order is also deadline order.

use crate::batch::DeliveryHandle;
use idempo_protocol::{ProducerEpoch, ProducerId, Sequence};
use std::collections::VecDeque;

/// One batch of a request awaiting its answer, as the request carried it (see
/// [`Producer::request_batches`](crate::Producer::request_batches)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightBatch {
    /// The batch's delivery handle.
    pub handle: DeliveryHandle,
    /// Its partition.
    pub partition: i32,
    /// Producer id stamped on it (`-1` without idempotence).
    pub producer_id: ProducerId,
    /// Epoch stamped on it.
    pub producer_epoch: ProducerEpoch,
    /// Base sequence stamped on it (`NONE` without idempotence).
    pub base_sequence: Sequence,
}

/// One batch as a request carried it: the producer state it was sent under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SentBatch {
    /// Handle of the batch.
    pub handle: u64,
    /// Partition of the batch.
    pub partition: i32,
    /// The batch's generation when it was sent; a different current generation means the
    /// batch was rewritten since and this attempt's answer is stale.
    pub generation: u32,
    /// Producer id the attempt carried.
    pub producer_id: ProducerId,
    /// Epoch the attempt carried.
    pub producer_epoch: ProducerEpoch,
    /// Base sequence the attempt carried.
    pub base_sequence: Sequence,
}

impl From<&SentBatch> for InFlightBatch {
    fn from(s: &SentBatch) -> InFlightBatch {
        InFlightBatch {
            handle: DeliveryHandle(s.handle),
            partition: s.partition,
            producer_id: s.producer_id,
            producer_epoch: s.producer_epoch,
            base_sequence: s.base_sequence,
        }
    }
}

/// What a request was.
#[derive(Debug)]
pub(crate) enum InFlightKind {
    /// InitProducerId.
    InitProducerId,
    /// Metadata (only with cluster routing).
    Metadata,
    /// Produce, with the batches it carried in request order.
    Produce(Vec<SentBatch>),
}

/// One request awaiting an answer.
#[derive(Debug)]
pub(crate) struct InFlightRequest {
    /// Its correlation id.
    pub correlation_id: i32,
    /// When it was put on the wire.
    pub sent_ms: u64,
    /// The node it went to (always 0 without cluster routing): each node is one connection.
    pub node: i32,
    /// What it carried.
    pub kind: InFlightKind,
}

/// The table of requests awaiting an answer.
#[derive(Debug, Default)]
pub(crate) struct InFlightRequests {
    requests: VecDeque<InFlightRequest>,
    /// How many of `requests` went to each node, by node id: asked for every node at every
    /// poll (`canSendRequest`), so kept rather than counted.
    per_node: Vec<(i32, usize)>,
}

impl InFlightRequests {
    /// Adds a request just sent.
    pub fn push(&mut self, request: InFlightRequest) {
        match self.per_node.iter_mut().find(|(n, _)| *n == request.node) {
            Some((_, count)) => *count += 1,
            None => self.per_node.push((request.node, 1)),
        }
        self.requests.push_back(request);
    }

    /// Notes that `request` left the table.
    fn left(&mut self, request: &InFlightRequest) {
        let entry = self.per_node.iter_mut().find(|(n, _)| *n == request.node);
        let Some((_, count)) = entry.filter(|(_, c)| *c > 0) else {
            unreachable!("a request in the table was counted for its node")
        };
        *count -= 1;
    }

    /// Takes the request with this correlation id out of the table.
    pub fn remove(&mut self, correlation_id: i32) -> Option<InFlightRequest> {
        let position = self
            .requests
            .iter()
            .position(|r| r.correlation_id == correlation_id)?;
        let request = self.requests.remove(position)?;
        self.left(&request);
        Some(request)
    }

    /// Takes the oldest request sent at or before `sent_at_or_before_ms`, if any.
    pub fn pop_sent_before(&mut self, sent_at_or_before_ms: u64) -> Option<InFlightRequest> {
        let position = self
            .requests
            .iter()
            .position(|r| r.sent_ms <= sent_at_or_before_ms)?;
        let request = self.requests.remove(position)?;
        self.left(&request);
        Some(request)
    }

    /// The batches of request `correlation_id`, in request order (none for InitProducerId or
    /// a request not in the table). Searched newest first: callers ask about the request
    /// they just sent.
    pub fn batches_of(&self, correlation_id: i32) -> impl Iterator<Item = InFlightBatch> + '_ {
        let sent: &[SentBatch] = match self
            .requests
            .iter()
            .rev()
            .find(|r| r.correlation_id == correlation_id)
        {
            Some(InFlightRequest {
                kind: InFlightKind::Produce(sent),
                ..
            }) => sent,
            _ => &[],
        };
        sent.iter().map(|s| InFlightBatch {
            handle: DeliveryHandle(s.handle),
            partition: s.partition,
            producer_id: s.producer_id,
            producer_epoch: s.producer_epoch,
            base_sequence: s.base_sequence,
        })
    }

    /// Requests in the table that went to `node` (Kafka's `InFlightRequests.count(node)`).
    pub fn count_for_node(&self, node: i32) -> usize {
        let count = self
            .per_node
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(0, |(_, c)| *c);
        debug_assert_eq!(
            count,
            self.requests.iter().filter(|r| r.node == node).count(),
            "the per-node count follows the table"
        );
        count
    }

    /// The node request `correlation_id` went to, while it awaits its answer.
    pub fn node_of(&self, correlation_id: i32) -> Option<i32> {
        self.requests
            .iter()
            .find(|r| r.correlation_id == correlation_id)
            .map(|r| r.node)
    }

    /// Takes every request to `node` out of the table, oldest first (its connection closed).
    pub fn drain_node(&mut self, node: i32) -> Vec<InFlightRequest> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.requests.len());
        for request in self.requests.drain(..) {
            if request.node == node {
                taken.push(request);
            } else {
                kept.push_back(request);
            }
        }
        self.requests = kept;
        if let Some((_, count)) = self.per_node.iter_mut().find(|(n, _)| *n == node) {
            *count = 0;
        }
        taken
    }

    /// Requests in the table.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True when no request awaits an answer.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// True when an InitProducerId awaits its answer.
    pub fn has_init_producer_id(&self) -> bool {
        self.requests
            .iter()
            .any(|r| matches!(r.kind, InFlightKind::InitProducerId))
    }

    /// True when a Produce request awaits its answer.
    pub fn has_produce(&self) -> bool {
        self.requests
            .iter()
            .any(|r| matches!(r.kind, InFlightKind::Produce(_)))
    }

    /// Earliest send time among the requests.
    pub fn earliest_sent_ms(&self) -> Option<u64> {
        self.requests.iter().map(|r| r.sent_ms).min()
    }

    /// Takes every request out of the table, oldest first.
    pub fn drain_all(&mut self) -> impl Iterator<Item = InFlightRequest> + '_ {
        self.per_node.clear();
        self.requests.drain(..)
    }
}
