//! Per-partition overrides of broker settings: Kafka's topic-level configs.
//!
//! In Kafka a topic config (`max.message.bytes`, `message.timestamp.before.max.ms`,
//! `message.timestamp.after.max.ms`, `min.insync.replicas`, ...) overrides the broker's
//! default (`message.max.bytes`, `log.message.timestamp.before.max.ms`,
//! `log.message.timestamp.after.max.ms`, `min.insync.replicas`) for that topic's partitions
//! only (`LogConfig`). The core knows no topics, so the front end tells it, per partition,
//! which settings differ from the [`BrokerConfig`](crate::BrokerConfig)
//! ([`Broker::set_partition_config`](crate::Broker::set_partition_config)); everything else
//! falls back to the broker's. Overrides are memory, set again by whoever owns the topic
//! table after a restart.
//!
//! # Differences from Kafka
//! - `retention.ms` deletes whole batches from the log start (Kafka deletes whole segments,
//!   never the active one), and the broker-wide default keeps everything (Kafka: 7 days).
//! - Only the settings below are per partition; `segment.bytes`, the dedup window and the
//!   sync policy stay broker-wide.
//! - `min.insync.replicas` above 1 on a standalone partition (its ISR is this broker alone)
//!   refuses `acks=all` with `NOT_ENOUGH_REPLICAS`, as a one-broker Kafka cluster does.

/// The settings of one partition that differ from the broker's (`None`: the broker's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionConfig {
    /// `max.message.bytes`: the largest batch accepted (`MESSAGE_TOO_LARGE` above).
    pub max_message_bytes: Option<usize>,
    /// `message.timestamp.after.max.ms`: how far ahead of the broker clock a record may be
    /// stamped (`INVALID_TIMESTAMP` beyond).
    pub message_timestamp_after_max_ms: Option<i64>,
    /// `message.timestamp.before.max.ms`: how far behind the broker clock a record may be
    /// stamped (`INVALID_TIMESTAMP` beyond; KIP-937).
    pub message_timestamp_before_max_ms: Option<i64>,
    /// `min.insync.replicas`: with `acks=all`, the ISR must be at least this large.
    pub min_insync_replicas: Option<usize>,
    /// `retention.ms`: batches whose max timestamp is older than this (against the broker
    /// clock) are deleted from the log start, checked every `snapshot_interval_ms`
    /// ([`Broker::enforce_retention`](crate::Broker::enforce_retention)). `None` (and -1
    /// on the wire): kept for ever, the broker default here.
    pub retention_ms: Option<i64>,
}

impl PartitionConfig {
    /// True when nothing is overridden.
    pub fn is_default(&self) -> bool {
        *self == PartitionConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::{Broker, BrokerConfig};
    use idempo_protocol::{
        ErrorCode, ProduceRequest, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
    };
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A batch of a new producer each time (an unknown producer may start at any sequence).
    fn batch(value: &str) -> bytes::Bytes {
        static NEXT: AtomicI64 = AtomicI64::new(100);
        let producer_id = ProducerId(NEXT.fetch_add(1, Ordering::Relaxed));
        let records = vec![Record::with_value(0, value.to_string())];
        RecordBatch::idempotent(producer_id, ProducerEpoch(0), Sequence(0), 1_000, records)
            .to_bytes()
    }

    #[test]
    fn an_override_applies_to_its_partition_only() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.set_partition_config(
            1,
            PartitionConfig {
                max_message_bytes: Some(80),
                ..PartitionConfig::default()
            },
        );
        let big = batch(&"x".repeat(100));
        assert!(broker.produce(0, &big).is_appended());
        let refused = broker.produce(1, &big);
        assert_eq!(refused.response.error_code, ErrorCode::MessageTooLarge);
        broker.set_partition_config(1, PartitionConfig::default());
        assert!(broker.produce(1, &big).is_appended(), "removed override");
    }

    #[test]
    fn timestamp_before_max_of_a_partition_refuses_its_old_records_only() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.advance_time(1_000_000);
        broker.set_partition_config(
            1,
            PartitionConfig {
                message_timestamp_before_max_ms: Some(10_000),
                ..PartitionConfig::default()
            },
        );
        let old = batch("stamped 1 000, almost 1 000 s ago");
        assert!(
            broker.produce(0, &old).is_appended(),
            "the broker's: no check"
        );
        let refused = broker.produce(1, &old);
        assert_eq!(refused.response.error_code, ErrorCode::InvalidTimestamp);
        assert_eq!(refused.response.error_code.code(), 32);
        broker.set_partition_config(1, PartitionConfig::default());
        assert!(broker.produce(1, &old).is_appended(), "removed override");
    }

    #[test]
    fn min_insync_replicas_above_one_refuses_acks_all_on_a_standalone_partition() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.set_partition_config(
            0,
            PartitionConfig {
                min_insync_replicas: Some(2),
                ..PartitionConfig::default()
            },
        );
        let request = |acks| ProduceRequest {
            acks,
            timeout_ms: 1_000,
            partitions: vec![idempo_protocol::PartitionProduceData {
                partition: 0,
                records: batch("a"),
            }],
        };
        let all = broker.produce_request(&request(-1));
        assert_eq!(all[0].response.error_code, ErrorCode::NotEnoughReplicas);
        let one = broker.produce_request(&request(1));
        assert!(one[0].is_appended(), "acks=1 does not need the ISR");
    }

    #[test]
    fn retention_deletes_the_batches_older_than_retention_ms_from_the_log_start() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.advance_time(1_000);
        for _ in 0..3 {
            assert!(broker.produce(0, &batch("old")).is_appended()); // stamped 1 000
        }
        assert!(broker.produce(1, &batch("kept")).is_appended());
        broker.set_partition_config(
            0,
            PartitionConfig {
                retention_ms: Some(5_000),
                ..PartitionConfig::default()
            },
        );
        broker.advance_time(5_000);
        assert_eq!(broker.enforce_retention(), vec![], "not old enough yet");
        broker.advance_time(6_001);
        assert_eq!(broker.enforce_retention(), vec![(0, 3)]);
        let start = broker.fetch(&idempo_protocol::FetchRequest::consumer(0, 3, 0));
        assert_eq!(start.log_start_offset, 3);
        assert_eq!(broker.log_end_offset(1), Some(1), "no retention.ms: kept");
    }

    #[test]
    fn deleting_a_partition_removes_its_files_and_memory() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        assert!(broker.produce(3, &batch("a")).is_appended());
        assert!(!broker.storage().list("partition-3/").is_empty());
        broker.delete_partition(3).unwrap();
        assert!(broker.storage().list("partition-3/").is_empty());
        assert_eq!(broker.log_end_offset(3), None);
    }
}
