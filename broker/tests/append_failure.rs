//! KAFKA-6683: the producer state learns a batch only after its append succeeded. A disk
//! write error (`SimDisk::fail_next_appends`) answers `KAFKA_STORAGE_ERROR` and leaves the
//! state as it was; Kafka 0.11.0 to 1.0.x (`producer_state_before_append`) left it ahead.

use idempo_broker::{Broker, BrokerConfig, Verdict};
use idempo_protocol::ErrorCode;

mod support;
use support::batch;

/// Sequence 0 appended, sequence 1's append fails on the disk, then sequence 1 is retried:
/// the retry's verdict and the log end after it.
fn retry_after_a_failed_append(before_append: bool) -> (Verdict, i64) {
    let mut b = Broker::new(BrokerConfig {
        producer_state_before_append: before_append,
        ..BrokerConfig::default()
    })
    .expect("a valid config");
    assert!(b.produce(0, &batch(0)).is_appended());
    b.storage_mut().fail_next_appends(1);
    let failed = b.produce(0, &batch(1));
    assert_eq!(failed.response.error_code, ErrorCode::KafkaStorageError);
    assert_eq!(b.log_end_offset(0), Some(1), "nothing was written");
    assert_eq!(b.storage().failing_appends(), 0, "the failure was used");
    let retry = b.produce(0, &batch(1));
    (
        retry.verdict,
        b.log_end_offset(0).expect("the partition exists"),
    )
}

#[test]
fn after_a_failed_append_the_retry_is_appended() {
    let (verdict, log_end) = retry_after_a_failed_append(false);
    assert!(matches!(verdict, Verdict::Appended { .. }), "{verdict:?}");
    assert_eq!(log_end, 2);
}

#[test]
fn kafka_6683_state_updated_before_the_append_answers_the_retry_as_a_duplicate_of_nothing() {
    let (verdict, log_end) = retry_after_a_failed_append(true);
    assert!(matches!(verdict, Verdict::Duplicate { .. }), "{verdict:?}");
    assert_eq!(log_end, 1, "acknowledged, never written");
}

#[test]
fn a_disk_set_to_fail_n_appends_fails_exactly_n_counting_down() {
    let mut b = Broker::new(BrokerConfig::default()).expect("a valid config");
    b.storage_mut().fail_next_appends(2);
    for left in [1, 0] {
        let failed = b.produce(0, &batch(0));
        assert_eq!(failed.response.error_code, ErrorCode::KafkaStorageError);
        assert_eq!(b.storage().failing_appends(), left, "one failure used");
    }
    assert!(
        b.produce(0, &batch(0)).is_appended(),
        "the third append works"
    );
    assert_eq!(b.log_end_offset(0), Some(1));
}
