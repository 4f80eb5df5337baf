//! The `librdkafka` client profile: librdkafka 2.x's idempotence rules where they differ from
//! Kafka's Java client, one switch each ([`LibrdkafkaRules`]), and the per-partition state
//! they need (librdkafka's `rktp_eos.next_ack_seq` and `wait_drain`).
//!
//! librdkafka (`confluentinc/librdkafka`) runs the same broker protocol as the Java client but
//! makes different client choices. The ones this profile models, each a field of
//! [`LibrdkafkaRules`], with the function of librdkafka's source it follows:
//!
//! ```text
//! switch                                 librdkafka 2.x                            Java client
//! head_out_of_order_fatal                OUT_OF_ORDER_SEQUENCE_NUMBER for the      bumps the epoch and
//!                                        batch at next_ack_seq ("sequence          retries
//!                                        desynchronization") or below it
//!                                        ("rewound sequence number") is fatal
//!                                        (rd_kafka_handle_idempotent_Produce_error)
//! out_of_order_behind_head_bumps         ... for a batch after next_ack_seq        retried unchanged,
//!                                        ("skipped sequence numbers"): drain,      no bump (collateral
//!                                        bump the epoch, retry (same function)     damage, canRetry)
//! possibly_persisted_advances_next_ack   off since 2.3.0 (#4438); before, a        -
//!                                        retriable error of unknown outcome moved
//!                                        next_ack_seq past the batch
//!                                        (rd_kafka_handle_Produce_error)
//! message_timeout_bump                   on since 1.0.0 (#2163): a message that    an expired retried
//!                                        times out in a queue drains and bumps     batch makes the
//!                                        the epoch (rd_kafka_toppar_producer_serve partition unresolved
//!                                        -> rd_kafka_idemp_drain_epoch_bump)
//! message_timeout_in_queue               message.timeout.ms expires messages in    delivery.timeout.ms
//!                                        the partition and transmit queues only    also expires a batch
//!                                        (rd_kafka_broker_toppar_msgq_scan); one   on the wire
//!                                        on the wire waits for its request
//! drain_bump                             DRAIN_BUMP: nothing is sent while a bump  bumps at once; only
//!                                        is pending, the epoch goes up once no     the asking partitions
//!                                        request is in flight, then every          are re-stamped, others'
//!                                        partition restarts at 0 from its first    retries keep their
//!                                        unacknowledged message, retries included  epoch and sequence
//!                                        (rd_kafka_idemp_drain_done,
//!                                        rd_kafka_toppar_pid_change)
//! drain_before_retry                     after a retriable error the partition     only the lowest
//!                                        sends nothing until its requests in       in-flight batch is
//!                                        flight are answered, then re-sends its    retried, one at a
//!                                        queue in order, up to 5 requests          time (rule 4)
//!                                        (rd_kafka_idemp_drain_toppar)
//! drain_on_leader_change                 a partition moving to a new leader waits  a new batch goes to
//!                                        for its requests to the old one           the new leader at once
//!                                        (rd_kafka_broker_op_serve)
//! implicit_ack                           a success for a batch while earlier ones  the earlier batches
//!                                        of its partition wait in the queue for a  are retried, answered
//!                                        retry delivers them: the broker took the  as duplicates while
//!                                        later one, so it had them                 in the 5-batch window
//!                                        (rd_kafka_dr_implicit_ack, since 1.0.0)
//! ```
//!
//! ## `next_ack_seq`
//!
//! librdkafka keeps, per partition, the sequence it expects the broker to acknowledge next
//! (`rktp_eos.next_ack_seq`): an acknowledgement (`NO_ERROR` or `DUPLICATE_SEQUENCE_NUMBER`)
//! sets it to the end of the acknowledged batch (`rd_kafka_handle_idempotent_Produce_success`),
//! a new producer id or epoch resets it to 0 (`rd_kafka_toppar_reset_base_msgid`). An
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` is judged against it: `r = base_seq - next_ack_seq`. At
//! `r == 0` the broker refused the very batch it should have taken next, which librdkafka
//! reads as a desynchronisation between client and broker and makes fatal; at `r > 0` an
//! earlier batch failed and this one was refused as a consequence; at `r < 0` the broker
//! refused a batch it had already acknowledged past, also fatal.
//!
//! Before 2.3.0 (#4438) a retriable error whose outcome was unknown (a timeout, a cut
//! connection) also moved `next_ack_seq` past the batch, on the hope that the next answer
//! would be a success. When the batch had in fact not been written and its retry failed again
//! with an error that writes nothing, the batches behind it were refused with
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` at or below the advanced `next_ack_seq`: fatal.
//!
//! ## Left out
//!
//! librdkafka assigns sequences at `produce()` time from a per-partition message id (here, as
//! in Java, at the first drain); it wraps the epoch to 0 after 32 767 (here the producer id is
//! reset, as in Java); `UNKNOWN_PRODUCER_ID` and InitProducerId's
//! `CLUSTER_AUTHORIZATION_FAILED` keep Java's rules (librdkafka retries the former after a bump
//! only on a batch's first attempt, and makes the latter fatal); its exponential retry backoff,
//! `enable.gapless.guarantee` and the fatal "succeeded when expecting failure" check are not
//! modelled.

use idempo_protocol::{ProducerEpoch, ProducerId, Sequence};
use std::collections::{BTreeMap, BTreeSet};

/// librdkafka's rules where they differ from Java's client, one switch per difference. Read
/// only under [`ClientProfile::Librdkafka`](crate::ClientProfile::Librdkafka); the default is
/// librdkafka 2.x today ([`LibrdkafkaRules::V2`]). Each field names the version that changed
/// it where one did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LibrdkafkaRules {
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` for a batch at or below the partition's `next_ack_seq` is
    /// a fatal error (`rd_kafka_handle_idempotent_Produce_error`, "sequence desynchronization"
    /// and "rewound sequence number"). Off: Java's rules for it (bump and retry).
    pub head_out_of_order_fatal: bool,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` for a batch after `next_ack_seq` ("skipped sequence
    /// numbers") drains and bumps the epoch, and the batch is retried
    /// (`rd_kafka_idemp_drain_epoch_bump`). The bump re-sequences every partition, whose
    /// possibly written retries are then written again (librdkafka #4953, open; PR #4972
    /// proposes to retry without a bump). Off: Java's rule (`TransactionManager.canRetry`: a
    /// batch that is not the next one is retried unchanged, no bump).
    pub out_of_order_behind_head_bumps: bool,
    /// A retriable error whose outcome is unknown (request timeout, cut connection,
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`) moves `next_ack_seq` past the batch, as librdkafka
    /// did up to 2.2.0 (`perr->update_next_ack` for `RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED`
    /// in `rd_kafka_handle_Produce_error`). librdkafka 2.3.0 (#4438) turned it off: the batch
    /// counts as not written until an answer says otherwise.
    pub possibly_persisted_advances_next_ack: bool,
    /// A batch that expires (`message.timeout.ms`, here `delivery_timeout_ms`) in a queue
    /// drains and bumps the epoch, so that the gap it leaves is not sent
    /// (`rd_kafka_toppar_producer_serve`: "Message timeouts will lead to gaps ... Bump the
    /// epoch", librdkafka 1.0.0, #2163). Off: librdkafka 0.11.6, whose later batches went out
    /// behind the gap and were refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    pub message_timeout_bump: bool,
    /// `message.timeout.ms` expires batches in the queues only
    /// (`rd_kafka_broker_toppar_msgq_scan`); a batch on the wire past its deadline expires
    /// when its request fails and it is put back in the queue. Off: Java's
    /// `delivery.timeout.ms`, which also expires a batch on the wire.
    pub message_timeout_in_queue: bool,
    /// librdkafka's `DRAIN_BUMP`: while a bump is pending no partition sends, the epoch goes
    /// up once no Produce request is in flight (`rd_kafka_idemp_drain_done`), and then every
    /// partition restarts its sequences at 0 from its first unacknowledged batch, retries
    /// included (`rd_kafka_toppar_pid_change`). Off: Java's bump (at once, re-stamping only
    /// the partitions that asked).
    pub drain_bump: bool,
    /// After a retriable error a partition sends nothing until none of its batches is on the
    /// wire, then re-sends its queue in order, several requests at once
    /// (`rd_kafka_idemp_drain_toppar`, "drain before retrying"). Off: Java's rule that only
    /// the partition's lowest in-flight batch is retried.
    pub drain_before_retry: bool,
    /// A partition that moves to a new leader sends nothing there until none of its requests
    /// to the old leader is in flight (`rd_kafka_broker_op_serve` joining a toppar: "wait for
    /// outstanding requests to finish before producing to new leader"). Under cluster
    /// routing this is idempo's `one_leader_at_a_time`
    /// ([`Improvements`](crate::Improvements)), which the librdkafka profile takes from this
    /// switch. Off: Java's drain, which sends a new batch to the new leader at once.
    pub drain_on_leader_change: bool,
    /// A batch acknowledged (`NO_ERROR`) while earlier batches of its partition, under the
    /// same producer id and epoch, wait in the queue for a retry delivers those too, without
    /// an offset (`rd_kafka_dr_implicit_ack`, from `rd_kafka_handle_idempotent_Produce_success`:
    /// "R1 fail with uncertain persistence status ... but R2 succeeded, which means the
    /// messages in R1 were in fact persisted"; librdkafka 1.0.0). The broker takes a sequence
    /// only right after the one before it, so they were written. Off: they are retried, as
    /// Java retries them, and a retry that arrives after five later batches were written is
    /// outside the broker's dedup window: `OUT_OF_ORDER_SEQUENCE_NUMBER` below `next_ack_seq`,
    /// fatal ("rewound sequence number").
    pub implicit_ack: bool,
}

impl LibrdkafkaRules {
    /// librdkafka 2.x today (2.3.0 and later, up to the 2.12 sources read): #2163 and #4438
    /// fixed, #4953 not.
    pub const V2: LibrdkafkaRules = LibrdkafkaRules {
        head_out_of_order_fatal: true,
        out_of_order_behind_head_bumps: true,
        possibly_persisted_advances_next_ack: false,
        message_timeout_bump: true,
        message_timeout_in_queue: true,
        drain_bump: true,
        drain_before_retry: true,
        drain_on_leader_change: true,
        implicit_ack: true,
    };

    /// How an `OUT_OF_ORDER_SEQUENCE_NUMBER` for a batch at `base_sequence` is handled when
    /// the partition expects `next_ack` to be acknowledged next
    /// (`rd_kafka_handle_idempotent_Produce_error`).
    pub fn out_of_order(self, next_ack: Sequence, base_sequence: Sequence) -> OutOfOrder {
        // r = base_seq - next_ack_seq, read wrap-aware: half the space ahead or more is behind.
        let r_positive = next_ack.ahead_by(base_sequence).is_some_and(|r| r > 0);
        if r_positive {
            if self.out_of_order_behind_head_bumps {
                OutOfOrder::RetryAndBump
            } else {
                OutOfOrder::Retry
            }
        } else if self.head_out_of_order_fatal {
            OutOfOrder::Fatal
        } else {
            OutOfOrder::Java
        }
    }
}

impl Default for LibrdkafkaRules {
    fn default() -> LibrdkafkaRules {
        LibrdkafkaRules::V2
    }
}

/// What librdkafka does with an `OUT_OF_ORDER_SEQUENCE_NUMBER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutOfOrder {
    /// The producer fails fatally (the batch at or below `next_ack_seq`).
    Fatal,
    /// Drain, bump the epoch, retry (a batch behind the failed one).
    RetryAndBump,
    /// Retry unchanged (Java's rule for a batch behind the failed one).
    Retry,
    /// Java's rules decide.
    Java,
}

/// The per-partition state the librdkafka rules keep besides Java's.
#[derive(Debug)]
pub(crate) struct LibrdkafkaState {
    /// The switches in force.
    pub rules: LibrdkafkaRules,
    /// `next_ack_seq` per partition, with the producer id and epoch it was set under; under
    /// any other the partition restarted, and `next_ack_seq` is where its acknowledgements
    /// left it (0 after a restart).
    next_ack: BTreeMap<i32, (ProducerId, ProducerEpoch, Sequence)>,
    /// Partitions draining before a retry (`rktp_eos.wait_drain`).
    wait_drain: BTreeSet<i32>,
}

impl LibrdkafkaState {
    pub fn new(rules: LibrdkafkaRules) -> LibrdkafkaState {
        LibrdkafkaState {
            rules,
            next_ack: BTreeMap::new(),
            wait_drain: BTreeSet::new(),
        }
    }

    /// The partition's `next_ack_seq` under `(producer_id, epoch)`, its current state;
    /// `acked_next` is where Java's bookkeeping puts it (`last_acked_sequence + 1`).
    pub fn next_ack(
        &self,
        partition: i32,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        acked_next: Sequence,
    ) -> Sequence {
        match self.next_ack.get(&partition) {
            Some(&(id, e, seq)) if id == producer_id && e == epoch => seq,
            _ => acked_next,
        }
    }

    /// Sets the partition's `next_ack_seq` (an acknowledgement, or a possibly persisted error
    /// under [`LibrdkafkaRules::possibly_persisted_advances_next_ack`]).
    pub fn set_next_ack(
        &mut self,
        partition: i32,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        next: Sequence,
    ) {
        self.next_ack.insert(partition, (producer_id, epoch, next));
    }

    /// The partition starts draining before its retries (`rd_kafka_idemp_drain_toppar`).
    pub fn begin_drain(&mut self, partition: i32) {
        if self.rules.drain_before_retry {
            self.wait_drain.insert(partition);
        }
    }

    /// May the partition send now, with `on_wire` of its batches on the wire? Ends its drain
    /// once none is.
    pub fn partition_may_send(&mut self, partition: i32, on_wire: usize) -> bool {
        if !self.wait_drain.contains(&partition) {
            return true;
        }
        if on_wire > 0 {
            return false;
        }
        self.wait_drain.remove(&partition);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_is_judged_against_next_ack_seq() {
        let rules = LibrdkafkaRules::V2;
        assert_eq!(
            rules.out_of_order(Sequence(10), Sequence(10)),
            OutOfOrder::Fatal,
            "r == 0: sequence desynchronization"
        );
        assert_eq!(
            rules.out_of_order(Sequence(10), Sequence(5)),
            OutOfOrder::Fatal,
            "r < 0: rewound sequence number"
        );
        assert_eq!(
            rules.out_of_order(Sequence(10), Sequence(20)),
            OutOfOrder::RetryAndBump,
            "r > 0: skipped sequence numbers"
        );
        assert_eq!(
            rules.out_of_order(Sequence(i32::MAX), Sequence(3)),
            OutOfOrder::RetryAndBump,
            "r is read across the wrap"
        );
        let java_like = LibrdkafkaRules {
            head_out_of_order_fatal: false,
            out_of_order_behind_head_bumps: false,
            ..rules
        };
        assert_eq!(
            java_like.out_of_order(Sequence(10), Sequence(10)),
            OutOfOrder::Java
        );
        assert_eq!(
            java_like.out_of_order(Sequence(10), Sequence(20)),
            OutOfOrder::Retry
        );
    }

    #[test]
    fn next_ack_belongs_to_its_epoch_and_a_drain_ends_when_nothing_is_on_the_wire() {
        let mut state = LibrdkafkaState::new(LibrdkafkaRules::V2);
        let (id, e0, e1) = (ProducerId(7), ProducerEpoch(0), ProducerEpoch(1));
        assert_eq!(state.next_ack(0, id, e0, Sequence(4)), Sequence(4));
        state.set_next_ack(0, id, e0, Sequence(9));
        assert_eq!(state.next_ack(0, id, e0, Sequence(4)), Sequence(9));
        assert_eq!(
            state.next_ack(0, id, e1, Sequence(0)),
            Sequence(0),
            "a new epoch starts from Java's bookkeeping (0 after the restart)"
        );
        state.begin_drain(0);
        assert!(
            !state.partition_may_send(0, 2),
            "two batches still on the wire"
        );
        assert!(
            state.partition_may_send(1, 2),
            "another partition is not draining"
        );
        assert!(state.partition_may_send(0, 0), "drained");
        assert!(state.partition_may_send(0, 3), "the drain is over");
    }
}
