//! The historical rules for a producer a partition has no state for (KAFKA-5793, KAFKA-7190,
//! KIP-360), switched on by the broker profiles: a quiet producer whose records DeleteRecords
//! removed sends its next batch.

use idempo_broker::{Broker, BrokerConfig, BrokerProfile, UnknownProducerRule};
use idempo_protocol::ErrorCode;

mod support;
use support::batch;

/// Two batches (sequences 0 and 1), every record then deleted, then sequence 2: the answer.
fn next_batch_after_delete_records(config: BrokerConfig) -> ErrorCode {
    let mut b = Broker::new(config).expect("a valid config");
    assert!(b.produce(0, &batch(0)).is_appended());
    assert!(b.produce(0, &batch(1)).is_appended());
    assert_eq!(b.delete_records(0, 2), Ok(2));
    b.produce(0, &batch(2)).response.error_code
}

fn profile(p: BrokerProfile) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    p.apply(&mut config);
    config
}

#[test]
fn kafka_0_11_evicts_a_quiet_producer_and_refuses_its_next_batch_out_of_order() {
    assert_eq!(
        next_batch_after_delete_records(profile(BrokerProfile::Kafka011)),
        ErrorCode::OutOfOrderSequenceNumber
    );
}

#[test]
fn kafka_1_0_to_2_3_answer_unknown_producer_id_instead() {
    let config = BrokerConfig {
        unknown_producer: UnknownProducerRule::UnknownProducerId,
        evict_producers_below_log_start: true,
        ..BrokerConfig::default()
    };
    assert_eq!(
        next_batch_after_delete_records(config.clone()),
        ErrorCode::UnknownProducerId
    );
    assert_eq!(
        profile(BrokerProfile::Kafka10),
        BrokerConfig {
            snapshot_mode: idempo_broker::SnapshotMode::LastBatchOnly,
            ..config
        },
        "the kafka-1.0 profile is those two switches (and 2.4's last-batch snapshots)"
    );
}

#[test]
fn kafka_2_4_and_later_keep_the_state_past_the_log_start_and_accept_the_next_batch() {
    for p in [BrokerProfile::Kafka24, BrokerProfile::Kafka] {
        assert_eq!(
            next_batch_after_delete_records(profile(p)),
            ErrorCode::None,
            "{p}"
        );
    }
}

#[test]
fn kafka_2_4_refuses_a_producer_it_never_saw_unless_it_starts_at_zero() {
    let mut b = Broker::new(profile(BrokerProfile::Kafka24)).expect("valid");
    assert_eq!(
        b.produce(0, &batch(3)).response.error_code,
        ErrorCode::UnknownProducerId
    );
    assert!(b.produce(0, &batch(0)).is_appended());
    let mut today = Broker::new(profile(BrokerProfile::Kafka)).expect("valid");
    assert!(
        today.produce(0, &batch(3)).is_appended(),
        "KIP-360: any sequence"
    );
}
