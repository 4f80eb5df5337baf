//! The broker's produce counters, named after Kafka's `BrokerTopicStats` (the numbers behind
//! `kafka.server:type=BrokerTopicMetrics`): what came in, and how the sequence rule answered.
//!
//! They are counted where the decision is made, once per batch the core judges
//! ([`Broker::produce_request`](crate::Broker::produce_request) and
//! [`Broker::produce`](crate::Broker::produce)), so a front end reads them instead of
//! counting log lines. They are plain totals since the broker was built (a restart of the
//! process starts them at 0, as Kafka's do); nothing here is persisted.
//!
//! ## Differences from Kafka
//! - Broker-wide totals only: Kafka also keeps one set per topic, and the core knows
//!   partitions, not topics.
//! - Kafka counts no duplicates: a retried batch is answered like an appended one. We count
//!   them, since showing them is what idempo is for.

use crate::ProduceOutcome;
use idempo_protocol::ErrorCode;

/// Totals since the broker was built, over every partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerTopicStats {
    /// Records appended (Kafka's `MessagesInPerSec`).
    pub messages_in: u64,
    /// Bytes of the batches appended (Kafka's `BytesInPerSec`).
    pub bytes_in: u64,
    /// Batches answered with their original offsets as retries of retained batches.
    pub duplicates: u64,
    /// Batches answered `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    pub out_of_order_sequence: u64,
    /// Batches answered `INVALID_PRODUCER_EPOCH`.
    pub invalid_producer_epoch: u64,
    /// Batches answered with any error (Kafka's `FailedProduceRequestsPerSec`, per batch).
    pub failed_produce: u64,
}

impl BrokerTopicStats {
    /// Counts one batch of `bytes` bytes and how it was answered.
    pub fn record(&mut self, outcome: &ProduceOutcome, bytes: usize) {
        if outcome.is_appended() {
            self.messages_in += u64::try_from(outcome.record_count.max(0)).unwrap_or(0);
            self.bytes_in += bytes as u64;
        }
        self.duplicates += u64::from(outcome.is_duplicate());
        match outcome.error_code() {
            ErrorCode::None => {}
            code => {
                self.failed_produce += 1;
                self.out_of_order_sequence +=
                    u64::from(code == ErrorCode::OutOfOrderSequenceNumber);
                self.invalid_producer_epoch += u64::from(code == ErrorCode::InvalidProducerEpoch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Broker, BrokerConfig};
    use idempo_protocol::{ProducerEpoch, Record, RecordBatch, Sequence};

    #[test]
    fn appends_duplicates_and_refusals_are_each_counted_once() {
        let mut broker = Broker::new(BrokerConfig::default()).expect("valid config");
        let id = broker.init_producer_id();
        let batch = |epoch: i16, sequence: i32| {
            RecordBatch::idempotent(
                id.producer_id,
                ProducerEpoch(epoch),
                Sequence(sequence),
                1_000,
                vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
            )
            .to_bytes()
        };
        let first = batch(0, 0);
        assert!(broker.produce(0, &first).is_appended());
        assert!(broker.produce(0, &first).is_duplicate());
        broker.produce(0, &batch(0, 7)); // a gap: out of order
        assert!(broker.produce(0, &batch(1, 0)).is_appended()); // a new epoch from 0
        broker.produce(0, &batch(0, 2)); // the old epoch: fenced
        let stats = *broker.stats();
        assert_eq!(stats.messages_in, 4);
        assert_eq!(stats.bytes_in, 2 * first.len() as u64);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.out_of_order_sequence, 1);
        assert_eq!(stats.invalid_producer_epoch, 1);
        assert_eq!(stats.failed_produce, 2);
        assert_eq!(broker.producer_id_count(), 1);
    }
}
