//! Counters of what the producer did, for the simulator's report and for tests.

/// Counters since the producer was created. All only ever increase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Requests put on the wire (Produce and InitProducerId).
    pub requests_sent: u64,
    /// Produce requests put on the wire.
    pub produce_requests_sent: u64,
    /// InitProducerId requests put on the wire.
    pub init_producer_id_requests_sent: u64,
    /// Batches put on the wire, first sends and retries.
    pub batches_sent: u64,
    /// Batches put back in the queue to be re-sent.
    pub retries: u64,
    /// Local epoch bumps (KIP-360).
    pub epoch_bumps: u64,
    /// Producer id resets after the epoch was exhausted.
    pub producer_id_resets: u64,
    /// Producer ids assigned by InitProducerId.
    pub producer_ids_assigned: u64,
    /// Batches rewritten to a new epoch or producer id.
    pub batches_rewritten: u64,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` answers received.
    pub out_of_order_responses: u64,
    /// `DUPLICATE_SEQUENCE_NUMBER` answers received (treated as success).
    pub duplicates_acked: u64,
    /// Batches waiting for a retry that librdkafka counted as delivered because a later
    /// batch of their partition was acknowledged (`rd_kafka_dr_implicit_ack`; librdkafka
    /// profile only).
    pub implicit_acks: u64,
    /// `UNKNOWN_PRODUCER_ID` answers received.
    pub unknown_producer_id_responses: u64,
    /// `INVALID_PRODUCER_EPOCH` answers received.
    pub invalid_epoch_responses: u64,
    /// Requests given up after `request_timeout_ms`.
    pub request_timeouts: u64,
    /// Requests whose connection the caller reported failed.
    pub connection_failures: u64,
    /// Batches expired by `delivery_timeout_ms`.
    pub delivery_timeouts: u64,
    /// Batches reported delivered.
    pub batches_delivered: u64,
    /// Batches reported failed.
    pub batches_failed: u64,
    /// Of those, failures reported as possibly persisted.
    pub batches_possibly_persisted: u64,
    /// Responses (or failures) for requests no longer awaited.
    pub late_responses_ignored: u64,
    /// Answers to attempts made under producer state a batch no longer had.
    pub stale_responses: u64,
    /// Partitions marked unresolved.
    pub partitions_unresolved: u64,
    /// Unresolved partitions proven consistent without a bump.
    pub partitions_resolved: u64,
    /// Events dropped because the buffer was full.
    pub events_dropped: u64,
    /// Times the producer entered its fatal state (0 or 1 per producer).
    pub fatal_errors: u64,
}

/// Counters of cluster routing since the producer was created (all zero without
/// [`ProducerConfig::cluster_routing`](crate::ProducerConfig::cluster_routing)). All only
/// ever increase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingStats {
    /// Metadata requests put on the wire.
    pub metadata_requests_sent: u64,
    /// Metadata answers applied.
    pub metadata_updates: u64,
    /// Times the producer asked for fresh metadata (while none was asked for already).
    pub metadata_updates_requested: u64,
    /// Partition leadership changes learnt from Metadata answers.
    pub leader_changes: u64,
    /// `NOT_LEADER_OR_FOLLOWER` answers received.
    pub not_leader_responses: u64,
    /// `NOT_ENOUGH_REPLICAS` and `NOT_ENOUGH_REPLICAS_AFTER_APPEND` answers received.
    pub not_enough_replicas_responses: u64,
    /// Retries sent before their `retry.backoff.ms` because the partition's leader changed
    /// (KIP-951).
    pub backoffs_skipped_for_new_leader: u64,
}
