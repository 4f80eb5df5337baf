//! Cluster routing: the parts of Kafka's `Sender.sendProducerData`, `RecordAccumulator.ready`
//! and `drain`, and `NetworkClient` (`leastLoadedNode`, `DefaultMetadataUpdater`,
//! `InFlightRequests`) that send each partition's batches to its leader. Used only with
//! [`ProducerConfig::cluster_routing`](crate::ProducerConfig::cluster_routing); the module
//! essay's "Routing" section tells the rules.

use super::{DrainStep, Producer};
use crate::event::{MetadataRefreshReason, ProducerEvent};
use crate::in_flight::{InFlightKind, InFlightRequest};
use crate::metadata::{PartitionLeader, is_invalid_metadata};
use idempo_protocol::{ErrorCode, MetadataRequest, MetadataResponse, Request, RequestFrame};
use std::collections::BTreeMap;

/// A request and the node it must go to, from [`Producer::poll_outgoing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The broker (node id) to send it to: each node is one connection. Always 0 without
    /// cluster routing.
    pub node: i32,
    /// The request.
    pub frame: RequestFrame,
}

/// Per-node state of cluster routing.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// Until when each node is left alone after a failed request (Kafka's connection state
    /// after a disconnect, `reconnect.backoff.ms`).
    backoff_until_ms: BTreeMap<i32, u64>,
    /// Index into each node's partition list where its next drain starts (Kafka's
    /// `nodesDrainIndex`).
    drain_index: BTreeMap<i32, usize>,
    /// The node whose Produce request is tried first in the next poll, so that one busy
    /// node does not starve the others.
    next_node: i32,
}

impl Producer {
    /// `poll_outgoing` with cluster routing: Metadata when due, then InitProducerId, then one
    /// Produce request for the first node (from `next_node` on) that has room and something
    /// to send.
    pub(super) fn poll_routed(&mut self, now_ms: u64) -> Option<Outgoing> {
        if !self.run_due(now_ms) {
            return None;
        }
        if self.metadata.update_due(now_ms) {
            // NetworkClient.isReady: while an update is due no node is ready, so that
            // Metadata goes first.
            return self.maybe_send_metadata(now_ms);
        }
        if self.config.idempotence && !self.producer_id.is_some() {
            let node = self.least_loaded_node(now_ms)?;
            let frame = self.maybe_init_producer_id(now_ms, node)?;
            return Some(Outgoing { node, frame });
        }
        self.note_unknown_leaders();
        let mut cursor = self
            .metadata
            .leader_node_at_or_after(self.routing.next_node);
        for _ in 0..self.metadata.leader_node_count() {
            let node = cursor?;
            if self.node_has_room(node, now_ms)
                && let Some(frame) = self.drain_node(node, now_ms)
            {
                self.routing.next_node = node.checked_add(1).unwrap_or(i32::MIN);
                return Some(Outgoing { node, frame });
            }
            cursor = self
                .metadata
                .leader_node_at_or_after(node.checked_add(1).unwrap_or(i32::MIN));
        }
        None
    }

    /// The node's connection may take a request: not backing off after a failure, and fewer
    /// than `max_in_flight` requests awaiting an answer on it (Kafka's `canSendRequest`).
    fn node_has_room(&self, node: i32, now_ms: u64) -> bool {
        let backing_off = self
            .routing
            .backoff_until_ms
            .get(&node)
            .is_some_and(|&until| now_ms < until);
        !backing_off && self.in_flight.count_for_node(node) < self.config.max_in_flight
    }

    /// Kafka's `leastLoadedNode`: of the nodes with room, the one with the fewest requests
    /// in flight (the first with none at once). Java starts the scan at a random node;
    /// here it goes in id order, so that runs replay.
    fn least_loaded_node(&self, now_ms: u64) -> Option<i32> {
        let mut best: Option<(usize, i32)> = None;
        for &node in self.metadata.nodes() {
            if !self.node_has_room(node, now_ms) {
                continue;
            }
            let in_flight = self.in_flight.count_for_node(node);
            if in_flight == 0 {
                return Some(node);
            }
            if best.is_none_or(|(fewest, _)| in_flight < fewest) {
                best = Some((in_flight, node));
            }
        }
        best.map(|(_, node)| node)
    }

    /// `DefaultMetadataUpdater.maybeUpdate`: a Metadata request to the least loaded node.
    fn maybe_send_metadata(&mut self, now_ms: u64) -> Option<Outgoing> {
        let node = self.least_loaded_node(now_ms)?;
        let correlation_id = self.next_correlation_id();
        self.in_flight.push(InFlightRequest {
            correlation_id,
            sent_ms: now_ms,
            node,
            kind: InFlightKind::Metadata,
        });
        self.metadata.in_progress = Some(correlation_id);
        self.stats.requests_sent += 1;
        self.routing_stats.metadata_requests_sent += 1;
        self.event(ProducerEvent::MetadataRequested {
            correlation_id,
            node,
        });
        let request = Request::Metadata(MetadataRequest {});
        let frame = RequestFrame {
            correlation_id,
            request,
        };
        Some(Outgoing { node, frame })
    }

    /// Applies a Metadata answer (`handleSuccessfulResponse`, `Metadata.update`).
    pub(super) fn handle_metadata_response(
        &mut self,
        correlation_id: i32,
        response: &MetadataResponse,
        now_ms: u64,
    ) {
        let applied = self.metadata.update(response, now_ms);
        if response.brokers.is_empty() {
            return; // a failed update: the request stays due after the backoff
        }
        self.routing_stats.metadata_updates += 1;
        self.routing_stats.leader_changes += applied.leader_changes.len() as u64;
        for &(partition, leader_epoch, known_leader_epoch) in &applied.older_epochs_ignored {
            self.event(ProducerEvent::OlderLeaderEpochIgnored {
                partition,
                leader_epoch,
                known_leader_epoch,
            });
        }
        let without_leader = response
            .partitions
            .iter()
            .find(|p| !p.error_code.is_ok() || self.metadata.leader(p.partition).is_none())
            .map(|p| p.partition);
        self.event(ProducerEvent::MetadataUpdated {
            correlation_id,
            leader_changes: applied.leader_changes,
            partitions_without_leader: applied.partitions_without_leader,
        });
        // Metadata.handleMetadataResponse asks again for a partition without a leader.
        if let Some(partition) = without_leader
            && self.metadata.update_requested()
        {
            self.count_update_requested(MetadataRefreshReason::LeaderNotAvailable { partition });
        }
    }

    /// A Produce answer's error for one partition: the errors that mean stale metadata ask
    /// for a refresh (`Sender.completeBatch`: `InvalidMetadataException`).
    pub(super) fn note_produce_error(&mut self, partition: i32, error: ErrorCode) {
        match error {
            ErrorCode::NotLeaderOrFollower => self.routing_stats.not_leader_responses += 1,
            ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
                self.routing_stats.not_enough_replicas_responses += 1
            }
            _ => {}
        }
        if is_invalid_metadata(error) {
            self.request_metadata_update(MetadataRefreshReason::ProduceError { partition, error });
        }
    }

    /// A request to `node` failed (its connection broke, or a request timed out and closed
    /// it): the node is left alone for `reconnect.backoff.ms`, and since the failure may come
    /// from stale metadata, a refresh is requested (`handleServerDisconnect`).
    pub(super) fn on_node_failed(&mut self, node: i32, now_ms: u64) {
        let until_ms = now_ms.saturating_add(self.config.reconnect_backoff_ms);
        self.routing.backoff_until_ms.insert(node, until_ms);
        self.request_metadata_update(MetadataRefreshReason::NodeFailed { node });
    }

    /// `RecordAccumulator.ready`'s `unknownLeaderTopics`: a partition with batches waiting
    /// and no known leader asks for a refresh.
    fn note_unknown_leaders(&mut self) {
        if self.metadata.update_requested() {
            return;
        }
        let unknown = self
            .partitions
            .iter()
            .find(|(p, part)| !part.queue.is_empty() && self.metadata.leader(**p).is_none())
            .map(|(&p, _)| p);
        if let Some(partition) = unknown {
            self.request_metadata_update(MetadataRefreshReason::UnknownLeader { partition });
        }
    }

    /// Kafka's `metadata.requestUpdate`, with an event when it was not requested already.
    fn request_metadata_update(&mut self, reason: MetadataRefreshReason) {
        if self.metadata.request_update() {
            self.count_update_requested(reason);
        }
    }

    fn count_update_requested(&mut self, reason: MetadataRefreshReason) {
        self.routing_stats.metadata_updates_requested += 1;
        self.event(ProducerEvent::MetadataUpdateRequested { reason });
    }

    /// Kafka's `drainBatchesForOneNode`: at most one batch of every partition `node` leads,
    /// starting where the node's last drain ended (java profile, which stops at a blocked
    /// partition) or at its lowest partition (idempo, which skips it).
    fn drain_node(&mut self, node: i32, now_ms: u64) -> Option<RequestFrame> {
        let count = self.metadata.partitions_for_node(node).len();
        if count == 0 {
            return None;
        }
        let correlation_id = self.next_correlation_id;
        let skip_blocked = self.improvements.drain_past_blocked_partition;
        let start = match skip_blocked {
            true => 0,
            false => self.routing.drain_index.get(&node).copied().unwrap_or(0) % count,
        };
        let (mut data, mut sent) = (Vec::new(), self.take_sent());
        let mut index = start;
        let mut last_visited;
        loop {
            let partition = self.metadata.partitions_for_node(node)[index];
            last_visited = index;
            index = (index + 1) % count;
            let step = if self.on_wire_elsewhere(partition, node) {
                DrainStep::Skip
            } else {
                self.drain_partition(partition, correlation_id, now_ms)
            };
            match step {
                DrainStep::Took(d, s) => {
                    data.push(d);
                    sent.push(s);
                }
                DrainStep::Skip => {}
                DrainStep::Blocked if skip_blocked => {}
                DrainStep::Blocked => break,
            }
            if index == start {
                break;
            }
        }
        self.routing.drain_index.insert(node, last_visited);
        if data.is_empty() {
            self.recycle_sent(sent);
            return None;
        }
        Some(self.send_produce(node, correlation_id, data, sent, now_ms))
    }

    /// With `one_leader_at_a_time` (idempo): the partition has a batch on the wire to a node
    /// other than `node`, its leader now. Java does not wait for it.
    fn on_wire_elsewhere(&self, partition: i32, node: i32) -> bool {
        if !self.improvements.one_leader_at_a_time {
            return false;
        }
        let Some(part) = self.partitions.get(&partition) else {
            return false;
        };
        part.entry.in_flight.iter().any(|handle| {
            self.batches
                .get(handle)
                .and_then(|b| b.on_wire)
                .and_then(|c| self.in_flight.node_of(c))
                .is_some_and(|n| n != node)
        })
    }

    /// What `next_wakeup_ms` adds with cluster routing: the next metadata refresh and the
    /// end of node backoffs.
    pub(super) fn routed_wakeups(&self, consider: &mut impl FnMut(u64)) {
        let now_ms = self.now_ms;
        if let Some(at_ms) = self.metadata.next_update_ms(now_ms)
            && (at_ms > now_ms || self.least_loaded_node(now_ms).is_some())
        {
            consider(at_ms);
        }
        for &until_ms in self.routing.backoff_until_ms.values() {
            if until_ms > now_ms {
                consider(until_ms);
            }
        }
    }

    /// The connection to `node` broke (Kafka's `NetworkClient.processDisconnection`): every
    /// request awaiting an answer from it fails, oldest first, as with
    /// [`Producer::on_request_failed`] for each. Requests to other nodes are not touched.
    pub fn on_node_disconnected(&mut self, node: i32, now_ms: u64) {
        self.observe(now_ms);
        self.close_connection(node, now_ms);
    }

    /// Requests awaiting an answer from `node` (every request is node 0's without cluster
    /// routing).
    pub fn in_flight_requests_to(&self, node: i32) -> usize {
        self.in_flight.count_for_node(node)
    }

    /// What the producer knows of `partition`'s leader from Metadata (`None` before any
    /// answer named the partition, or without cluster routing).
    pub fn partition_leader(&self, partition: i32) -> Option<PartitionLeader> {
        self.metadata.partition(partition)
    }
}
