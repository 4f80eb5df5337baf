//! The broker's produce counters (`BrokerTopicStats`): each refusal is counted as failed, and
//! under its own error's counter only. Written against the survivors of `cargo mutants -p
//! idempo-broker -f broker/src/broker_topic_stats.rs` (bench/MUTANTS.md).

use idempo_broker::{Broker, BrokerConfig, PartitionConfig};
use idempo_protocol::{ErrorCode, ProducerEpoch, Record, RecordBatch, Sequence};

#[test]
fn a_refusal_is_counted_under_its_own_error_only() {
    let mut broker = Broker::new(BrokerConfig::default()).expect("valid config");
    broker.set_partition_config(
        0,
        PartitionConfig {
            max_message_bytes: Some(80),
            ..PartitionConfig::default()
        },
    );
    let id = broker.init_producer_id();
    let big = RecordBatch::idempotent(
        id.producer_id,
        ProducerEpoch(0),
        Sequence(0),
        1_000,
        vec![Record::with_value(0, "x".repeat(100))],
    )
    .to_bytes();
    let refused = broker.produce(0, &big);
    assert_eq!(refused.response.error_code, ErrorCode::MessageTooLarge);
    let stats = *broker.stats();
    assert_eq!(stats.failed_produce, 1);
    assert_eq!(
        stats.out_of_order_sequence, 0,
        "not an out-of-order sequence"
    );
    assert_eq!(stats.invalid_producer_epoch, 0, "not a fenced epoch");
    assert_eq!(
        (stats.messages_in, stats.bytes_in, stats.duplicates),
        (0, 0, 0)
    );
}
