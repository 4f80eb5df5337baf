//! Each rule of the broker's produce path, as a behaviour.

use bytes::{Bytes, BytesMut};
use idempo_broker::{
    AcceptRule, AppendReason, Broker, BrokerConfig, InvalidBatch, SequenceRejection, Verdict,
};
use idempo_protocol::{
    ErrorCode, FetchRequest, PartitionProduceData, ProduceRequest, ProducerEpoch, ProducerId,
    Record, RecordBatch, Request, RequestFrame, Response, Sequence, decode_batches,
};

fn batch(pid: i64, epoch: i16, seq: i32, count: i32, ts: i64) -> Bytes {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("{pid}-{seq}-{i}")))
        .collect();
    RecordBatch::idempotent(
        ProducerId(pid),
        ProducerEpoch(epoch),
        Sequence(seq),
        ts,
        records,
    )
    .to_bytes()
}

/// A default broker that records windows, so explanations can be checked word for word.
fn broker() -> Broker {
    let mut b = Broker::new(BrokerConfig::default()).expect("the default config is valid");
    b.set_record_windows(true);
    b
}

#[test]
fn first_batch_of_unknown_producer_is_appended_with_any_sequence() {
    let mut b = broker();
    let o = b.produce(0, &batch(1, 0, 42, 3, 0));
    assert_eq!(
        o.verdict,
        Verdict::Appended {
            base_offset: 0,
            last_offset: 2,
            reason: AppendReason::Sequence(AcceptRule::UnknownProducer)
        }
    );
    assert_eq!(o.response.error_code, ErrorCode::None);
}

#[test]
fn next_sequence_is_appended() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 0));
    let o = b.produce(0, &batch(1, 0, 3, 2, 0));
    assert!(matches!(
        o.verdict,
        Verdict::Appended {
            base_offset: 3,
            last_offset: 4,
            reason: AppendReason::Sequence(AcceptRule::NextInSequence)
        }
    ));
    assert_eq!(o.seen.as_ref().unwrap().expected_sequence, Sequence(3));
}

#[test]
fn duplicate_batch_returns_original_offset_and_appends_nothing() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 100));
    b.produce(0, &batch(1, 0, 3, 3, 200));
    let o = b.produce(0, &batch(1, 0, 0, 3, 100));
    assert!(o.is_duplicate());
    assert_eq!(o.response.error_code, ErrorCode::None);
    assert_eq!(o.response.base_offset, 0);
    assert_eq!(
        o.response.log_append_time_ms, 100,
        "Kafka answers the original max timestamp"
    );
    assert_eq!(o.offsets(), Some((0, 2)));
    assert_eq!(b.log_end_offset(0), Some(6));
    assert_eq!(
        o.to_string(),
        "duplicate of the batch at offsets 0..2 (window: 0..2, 3..5): nothing appended"
    );
}

#[test]
fn duplicate_is_decided_by_sequences_not_payload() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 2, 0));
    let other_payload = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        0,
        vec![Record::with_value(0, "x"), Record::with_value(1, "y")],
    )
    .to_bytes();
    assert!(b.produce(0, &other_payload).is_duplicate());
}

#[test]
fn sequence_gap_is_out_of_order() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 5, 0));
    let o = b.produce(0, &batch(1, 0, 8, 2, 0));
    assert_eq!(o.response.error_code, ErrorCode::OutOfOrderSequenceNumber);
    assert_eq!(o.response.base_offset, -1);
    assert_eq!(
        o.verdict,
        Verdict::Rejected(SequenceRejection::OutOfOrder {
            expected: Sequence(5)
        })
    );
    assert!(
        o.to_string()
            .contains("expected sequence 5, got 8 (3 records missing before it)"),
        "{o}"
    );
    assert_eq!(b.log_end_offset(0), Some(5));
}

#[test]
fn partial_overlap_is_out_of_order_not_duplicate() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 0));
    b.produce(0, &batch(1, 0, 3, 3, 0));
    let o = b.produce(0, &batch(1, 0, 3, 2, 0));
    assert_eq!(o.response.error_code, ErrorCode::OutOfOrderSequenceNumber);
    assert!(o.to_string().contains("behind"), "{o}");
}

#[test]
fn retry_older_than_the_window_is_out_of_order() {
    let mut b = broker();
    for seq in 0..6 {
        b.produce(0, &batch(1, 0, seq, 1, 0));
    }
    // Window now holds 1..=5; the batch at sequence 0 has been evicted.
    let o = b.produce(0, &batch(1, 0, 0, 1, 0));
    assert_eq!(o.response.error_code, ErrorCode::OutOfOrderSequenceNumber);
    let o = b.produce(0, &batch(1, 0, 1, 1, 0));
    assert!(
        o.is_duplicate(),
        "the oldest retained batch is still recognised"
    );
}

#[test]
fn window_size_is_a_setting() {
    let mut b = Broker::new(BrokerConfig {
        dedup_window: 1,
        ..BrokerConfig::default()
    })
    .unwrap();
    b.produce(0, &batch(1, 0, 0, 1, 0));
    b.produce(0, &batch(1, 0, 1, 1, 0));
    assert_eq!(
        b.produce(0, &batch(1, 0, 0, 1, 0)).response.error_code,
        ErrorCode::OutOfOrderSequenceNumber
    );
    assert!(
        Broker::new(BrokerConfig {
            dedup_window: 0,
            ..BrokerConfig::default()
        })
        .is_err()
    );
}

#[test]
fn stale_epoch_is_invalid_producer_epoch() {
    let mut b = broker();
    b.produce(0, &batch(1, 1, 0, 1, 0));
    let o = b.produce(0, &batch(1, 0, 1, 1, 0));
    assert_eq!(o.response.error_code, ErrorCode::InvalidProducerEpoch);
    assert_eq!(
        o.verdict,
        Verdict::Rejected(SequenceRejection::StaleEpoch {
            current: ProducerEpoch(1)
        })
    );
}

#[test]
fn exact_retry_from_an_older_epoch_is_invalid_producer_epoch_not_duplicate() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 2, 0));
    b.produce(0, &batch(1, 1, 0, 2, 0));
    assert_eq!(
        b.produce(0, &batch(1, 0, 0, 2, 0)).response.error_code,
        ErrorCode::InvalidProducerEpoch
    );
}

#[test]
fn new_epoch_must_start_at_zero_and_clears_the_window() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 0));
    let o = b.produce(0, &batch(1, 1, 3, 1, 0));
    assert_eq!(
        o.verdict,
        Verdict::Rejected(SequenceRejection::NewEpochNotFromZero {
            current: ProducerEpoch(0)
        })
    );
    let o = b.produce(0, &batch(1, 1, 0, 1, 0));
    assert!(matches!(
        o.verdict,
        Verdict::Appended {
            reason: AppendReason::Sequence(AcceptRule::NewEpochFromZero {
                previous_epoch: ProducerEpoch(0)
            }),
            ..
        }
    ));
    let entry = b.producer_state(0).unwrap().entry(ProducerId(1)).unwrap();
    assert_eq!(entry.producer_epoch, ProducerEpoch(1));
    assert_eq!(entry.batches().len(), 1);
}

#[test]
fn sequence_wraps_from_max_to_zero() {
    let mut b = broker();
    let o = b.produce(0, &batch(1, 0, i32::MAX - 1, 3, 0)); // MAX-1, MAX, 0
    assert_eq!(o.last_sequence, Sequence(0));
    let o = b.produce(0, &batch(1, 0, 1, 1, 0));
    assert!(o.is_appended(), "{o}");
    let o = b.produce(0, &batch(1, 0, i32::MAX - 1, 3, 0));
    assert!(
        o.is_duplicate(),
        "a batch that wrapped is still matched: {o}"
    );
    let mut b2 = broker();
    b2.produce(0, &batch(1, 0, i32::MAX, 1, 0));
    assert!(
        b2.produce(0, &batch(1, 0, 0, 1, 0)).is_appended(),
        "0 follows i32::MAX"
    );
}

#[test]
fn producers_and_partitions_are_independent() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 2, 0));
    b.produce(1, &batch(1, 0, 0, 2, 0));
    b.produce(0, &batch(2, 0, 0, 2, 0));
    assert_eq!(b.log_end_offset(0), Some(4));
    assert_eq!(b.log_end_offset(1), Some(2));
    assert!(b.produce(1, &batch(1, 0, 2, 1, 0)).is_appended());
}

#[test]
fn rejected_batch_leaves_state_untouched() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 2, 0));
    let before = b.producer_state(0).unwrap().entry(ProducerId(1)).cloned();
    b.produce(0, &batch(1, 0, 9, 2, 0));
    b.produce(0, &batch(1, 1, 5, 2, 0));
    assert_eq!(
        b.producer_state(0).unwrap().entry(ProducerId(1)).cloned(),
        before
    );
}

#[test]
fn corrupt_batch_is_corrupt_message_and_nothing_is_appended() {
    let mut b = broker();
    let mut bytes = BytesMut::from(&batch(1, 0, 0, 2, 0)[..]);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let o = b.produce(0, &bytes.freeze());
    assert_eq!(o.response.error_code, ErrorCode::CorruptMessage);
    assert!(matches!(
        o.verdict,
        Verdict::Invalid(InvalidBatch::Corrupt { .. })
    ));
    assert_eq!(
        o.producer_id,
        ProducerId(1),
        "the explanation still names the producer"
    );
    assert_eq!(b.log_end_offset(0), Some(0));
}

#[test]
fn malformed_bytes_are_invalid_record() {
    let mut b = broker();
    let o = b.produce(0, &Bytes::from_static(b"not a batch"));
    assert_eq!(o.response.error_code, ErrorCode::InvalidRecord);
    let mut two = BytesMut::from(&batch(1, 0, 0, 1, 0)[..]);
    two.extend_from_slice(&batch(1, 0, 1, 1, 0));
    assert_eq!(
        b.produce(0, &two.freeze()).response.error_code,
        ErrorCode::InvalidRecord,
        "one batch per partition"
    );
}

#[test]
fn client_batch_with_nonzero_base_offset_is_invalid_record() {
    let mut b = broker();
    let mut rb = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        0,
        vec![Record::with_value(0, "a")],
    );
    rb.base_offset = 7;
    let o = b.produce(0, &rb.to_bytes());
    assert_eq!(
        o.verdict,
        Verdict::Invalid(InvalidBatch::NonZeroBaseOffset(7))
    );
}

#[test]
fn negative_sequence_with_producer_id_is_invalid_record() {
    let mut b = broker();
    let o = b.produce(0, &batch(1, 0, -1, 1, 0));
    assert_eq!(
        o.verdict,
        Verdict::Invalid(InvalidBatch::NegativeSequence(Sequence(-1)))
    );
}

#[test]
fn oversized_batch_is_message_too_large() {
    let mut b = Broker::new(BrokerConfig {
        max_message_bytes: 64,
        ..BrokerConfig::default()
    })
    .unwrap();
    assert_eq!(
        b.produce(0, &batch(1, 0, 0, 5, 0)).response.error_code,
        ErrorCode::MessageTooLarge
    );
}

#[test]
fn batch_without_producer_id_is_appended_without_dedup() {
    let mut b = broker();
    let bytes = batch(-1, -1, -1, 2, 0);
    assert!(b.produce(0, &bytes).is_appended());
    assert!(b.produce(0, &bytes).is_appended());
    assert_eq!(b.log_end_offset(0), Some(4));
}

#[test]
fn idempotence_off_appends_retries_twice() {
    let mut b = Broker::new(BrokerConfig {
        idempotence: false,
        ..BrokerConfig::default()
    })
    .unwrap();
    let bytes = batch(1, 0, 0, 2, 0);
    b.produce(0, &bytes);
    let o = b.produce(0, &bytes);
    assert_eq!(
        o.verdict,
        Verdict::Appended {
            base_offset: 2,
            last_offset: 3,
            reason: AppendReason::IdempotenceOff
        }
    );
}

#[test]
fn unknown_partition_is_refused_when_auto_create_is_off() {
    let mut b = Broker::new(BrokerConfig {
        auto_create_partitions: false,
        ..BrokerConfig::default()
    })
    .unwrap();
    assert_eq!(
        b.produce(3, &batch(1, 0, 0, 1, 0)).response.error_code,
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(
        broker()
            .produce(-1, &batch(1, 0, 0, 1, 0))
            .response
            .error_code,
        ErrorCode::UnknownTopicOrPartition
    );
    b.create_partition(3).unwrap();
    assert!(b.produce(3, &batch(1, 0, 0, 1, 0)).is_appended());
}

#[test]
fn producer_id_expires_after_idle_time_and_late_retry_is_appended_again() {
    let mut b = broker();
    let first = batch(1, 0, 0, 2, 1_000);
    b.produce(0, &first);
    assert!(
        b.advance_time(1_000 + 86_400_000 - 1).is_empty(),
        "not idle long enough yet"
    );
    let expired = b.advance_time(1_000 + 86_400_000 + 600_000);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].producer_id, ProducerId(1));
    let o = b.produce(0, &first);
    assert!(
        o.is_appended(),
        "after expiry the retry is a first batch again: a duplicate in the log"
    );
    assert_eq!(b.log_end_offset(0), Some(4));
}

#[test]
fn expiry_runs_only_at_check_intervals() {
    let mut b = Broker::new(BrokerConfig {
        producer_id_expiration_ms: 10,
        producer_id_expiration_check_interval_ms: 1_000,
        ..BrokerConfig::default()
    })
    .unwrap();
    b.produce(0, &batch(1, 0, 0, 1, 0));
    assert!(
        b.advance_time(500).is_empty(),
        "expired but not yet checked"
    );
    assert_eq!(b.advance_time(1_000).len(), 1);
}

#[test]
fn delete_records_keeps_producer_state() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 0));
    b.produce(0, &batch(1, 0, 3, 3, 0));
    assert_eq!(b.delete_records(0, 6), Ok(6));
    assert_eq!(b.log(0).unwrap().batches().len(), 0);
    let o = b.produce(0, &batch(1, 0, 6, 1, 0));
    assert!(o.is_appended());
    assert_eq!(o.response.log_start_offset, 6);
    assert!(
        b.produce(0, &batch(1, 0, 3, 3, 0)).is_duplicate(),
        "window survives deletion"
    );
    assert!(b.delete_records(0, 100).is_err());
    assert!(b.delete_records(9, 0).is_err());
}

#[test]
fn restart_rebuilds_producer_state_from_the_log() {
    let mut b = broker();
    for seq in (0..21).step_by(3) {
        b.produce(0, &batch(1, 0, seq, 3, 0));
    }
    b.produce(1, &batch(2, 0, 0, 1, 0));
    let before: Vec<_> = [0, 1]
        .iter()
        .map(|p| {
            b.producer_state(*p)
                .unwrap()
                .entry(ProducerId(if *p == 0 { 1 } else { 2 }))
                .cloned()
        })
        .collect();
    assert_eq!(b.restart(), vec![(0, 1), (1, 1)]);
    let after: Vec<_> = [0, 1]
        .iter()
        .map(|p| {
            b.producer_state(*p)
                .unwrap()
                .entry(ProducerId(if *p == 0 { 1 } else { 2 }))
                .cloned()
        })
        .collect();
    assert_eq!(before, after);
    assert!(b.produce(0, &batch(1, 0, 18, 3, 0)).is_duplicate());
}

#[test]
fn restart_forgets_producers_whose_batches_were_deleted() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 0, 3, 0));
    b.delete_records(0, 3).unwrap();
    b.restart();
    assert!(b.producer_state(0).unwrap().entry(ProducerId(1)).is_none());
    let o = b.produce(0, &batch(1, 0, 0, 3, 0));
    assert!(
        o.is_appended(),
        "the producer is unknown again, so its retry is appended twice"
    );
}

#[test]
fn init_producer_id_allocates_increasing_ids_at_epoch_zero() {
    let mut b = broker();
    let a = b.init_producer_id();
    let c = b.init_producer_id();
    assert_eq!(
        (a.producer_id, a.producer_epoch),
        (ProducerId(1), ProducerEpoch(0))
    );
    assert_eq!(c.producer_id, ProducerId(2));
    b.restart();
    assert_eq!(
        b.init_producer_id().producer_id,
        ProducerId(3),
        "ids are never reused"
    );
}

#[test]
fn handle_answers_produce_per_partition_and_fetch_reads_back() {
    let mut b = broker();
    let frame = RequestFrame {
        correlation_id: 5,
        request: Request::Produce(ProduceRequest {
            acks: -1,
            timeout_ms: 30_000,
            partitions: vec![
                PartitionProduceData {
                    partition: 0,
                    records: batch(1, 0, 0, 2, 0),
                },
                PartitionProduceData {
                    partition: 1,
                    records: batch(1, 0, 7, 1, 0),
                },
            ],
        }),
    };
    let handled = b.handle(&frame);
    let response = handled
        .response
        .expect("a standalone broker answers at once");
    assert_eq!(response.correlation_id, 5);
    assert_eq!(handled.outcomes.len(), 2);
    let Response::Produce(resp) = response.response else {
        panic!("produce response")
    };
    assert!(
        resp.partitions
            .iter()
            .all(|p| p.error_code == ErrorCode::None)
    );
    let fetched = b.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(fetched.high_watermark, 2);
    let batches = decode_batches(fetched.records).unwrap();
    assert_eq!(batches[0].records.len(), 2);
    assert_eq!(
        b.fetch(&FetchRequest::consumer(0, 9, 10)).error_code,
        ErrorCode::OffsetOutOfRange
    );
    assert_eq!(
        b.fetch(&FetchRequest::consumer(7, 0, 10)).error_code,
        ErrorCode::UnknownTopicOrPartition
    );
}

#[test]
fn invalid_acks_fail_every_partition() {
    let mut b = broker();
    let outcomes = b.produce_request(&ProduceRequest {
        acks: 2,
        timeout_ms: 0,
        partitions: vec![PartitionProduceData {
            partition: 0,
            records: batch(1, 0, 0, 1, 0),
        }],
    });
    assert_eq!(
        outcomes[0].response.error_code,
        ErrorCode::InvalidRequiredAcks
    );
    assert_eq!(b.log_end_offset(0), None, "nothing was appended or created");
}

/// An encoded batch whose `recordsCount` and `lastOffsetDelta` are overwritten after the CRC
/// was computed, then re-stamped with a valid CRC (so only the count rule can refuse it).
fn batch_with_count(pid: i64, seq: i32, records: i32, records_count: i32, delta: i32) -> Bytes {
    let mut bytes = BytesMut::from(&batch(pid, 0, seq, records, 0)[..]);
    bytes[23..27].copy_from_slice(&delta.to_be_bytes());
    bytes[57..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes.freeze()
}

#[test]
fn empty_batch_is_invalid_record_and_leaves_the_state_untouched() {
    let mut b = broker();
    assert!(b.produce(0, &batch(1, 0, 0, 2, 0)).is_appended());
    let before = b.producer_state(0).unwrap().entry(ProducerId(1)).cloned();
    // records_count 0 and last_offset_delta -1, as a client building no records sends it.
    let empty = batch(1, 0, 2, 0, 0);
    let o = b.produce(0, &empty);
    assert_eq!(o.response.error_code, ErrorCode::InvalidRecord);
    assert_eq!(
        o.verdict,
        Verdict::Invalid(InvalidBatch::InvalidOffsetRange {
            last_offset_delta: -1
        })
    );
    assert_eq!(b.log_end_offset(0), Some(2), "nothing appended");
    assert_eq!(
        b.producer_state(0).unwrap().entry(ProducerId(1)).cloned(),
        before,
        "the producer's last sequence is not moved to -1"
    );
    // The next batch is still judged against sequence 1.
    let next = b.produce(0, &batch(1, 0, 2, 1, 0));
    assert!(next.is_appended(), "{next}");
}

#[test]
fn batch_whose_count_and_offset_range_disagree_is_invalid_record() {
    let cases = [
        // (records_count, last_offset_delta, expected refusal)
        (0, 1, InvalidBatch::InvalidRecordCount(0)),
        (
            3,
            1,
            InvalidBatch::CountMismatch {
                records_count: 3,
                last_offset_delta: 1,
            },
        ),
        (
            2,
            -2,
            InvalidBatch::InvalidOffsetRange {
                last_offset_delta: -2,
            },
        ),
    ];
    for (records_count, delta, why) in cases {
        let mut b = broker();
        let o = b.produce(0, &batch_with_count(1, 0, 2, records_count, delta));
        assert_eq!(o.response.error_code, ErrorCode::InvalidRecord, "{o}");
        assert_eq!(o.verdict, Verdict::Invalid(why));
        assert_eq!(b.log_end_offset(0), Some(0));
        assert!(
            b.producer_state(0).unwrap().is_empty(),
            "no state is created"
        );
    }
}

#[test]
fn record_stamped_beyond_timestamp_after_max_is_invalid_timestamp() {
    let mut b = broker();
    b.advance_time(10_000);
    let hour = 3_600_000;
    let at_the_limit = b.produce(0, &batch(1, 0, 0, 1, 10_000 + hour));
    assert!(
        at_the_limit.is_appended(),
        "exactly one hour ahead is allowed"
    );
    let too_far = b.produce(0, &batch(1, 0, 1, 1, 10_000 + hour + 1));
    assert_eq!(too_far.response.error_code, ErrorCode::InvalidTimestamp);
    assert_eq!(too_far.response.error_code.code(), 32);
    assert_eq!(
        too_far.verdict,
        Verdict::Invalid(InvalidBatch::InvalidTimestamp {
            timestamp: 10_000 + hour + 1,
            now_ms: 10_000,
            before_max_ms: i64::MAX,
            after_max_ms: hour,
        })
    );
    assert_eq!(b.log_end_offset(0), Some(1), "nothing appended");
    let past = b.produce(0, &batch(1, 0, 1, 1, 0));
    assert!(
        past.is_appended(),
        "an old timestamp is fine (before.max.ms is off)"
    );
}

#[test]
fn record_stamped_beyond_timestamp_before_max_is_invalid_timestamp() {
    let mut b = Broker::new(BrokerConfig {
        log_message_timestamp_before_max_ms: 5_000,
        ..BrokerConfig::default()
    })
    .unwrap();
    b.advance_time(100_000);
    let at_the_limit = b.produce(0, &batch(1, 0, 0, 1, 95_000));
    assert!(
        at_the_limit.is_appended(),
        "exactly before.max.ms behind is allowed"
    );
    let too_old = b.produce(0, &batch(1, 0, 1, 1, 94_999));
    assert_eq!(too_old.response.error_code, ErrorCode::InvalidTimestamp);
    assert_eq!(
        too_old.verdict,
        Verdict::Invalid(InvalidBatch::InvalidTimestamp {
            timestamp: 94_999,
            now_ms: 100_000,
            before_max_ms: 5_000,
            after_max_ms: 3_600_000,
        })
    );
    assert!(
        too_old.to_string().contains("[95000, 3700000]"),
        "the answer names the window, as Kafka's: {too_old}"
    );
    assert_eq!(b.log_end_offset(0), Some(1), "nothing appended");
    let retry = b.produce(0, &batch(1, 0, 1, 1, 99_000));
    assert!(
        retry.is_appended(),
        "the refused batch did not move the producer's sequence"
    );
}

#[test]
fn timestamp_check_is_off_at_i64_max() {
    let mut b = Broker::new(BrokerConfig {
        log_message_timestamp_after_max_ms: i64::MAX,
        ..BrokerConfig::default()
    })
    .unwrap();
    assert!(b.produce(0, &batch(1, 0, 0, 1, i64::MAX)).is_appended());
}

#[test]
fn timestamp_before_max_is_off_by_default_even_for_timestamp_zero() {
    let mut b = Broker::new(BrokerConfig::default()).unwrap();
    b.advance_time(i64::MAX / 2);
    assert!(b.produce(0, &batch(1, 0, 0, 1, 0)).is_appended());
}

#[test]
fn a_negative_timestamp_after_max_is_a_config_error() {
    let refused = Broker::new(BrokerConfig {
        log_message_timestamp_after_max_ms: -1,
        ..BrokerConfig::default()
    });
    assert!(refused.is_err());
}

#[test]
fn recording_windows_changes_the_explanation_not_the_decision() {
    let mut quiet = Broker::new(BrokerConfig::default()).unwrap();
    let mut explained = broker();
    let batches = [
        batch(1, 0, 0, 3, 100),
        batch(1, 0, 3, 3, 200),
        batch(1, 0, 0, 3, 100),
    ];
    for bytes in &batches {
        let (a, b) = (quiet.produce(0, bytes), explained.produce(0, bytes));
        assert_eq!(a.response, b.response);
        assert_eq!(a.verdict, b.verdict);
        let expected =
            |o: &idempo_broker::ProduceOutcome| o.seen.as_ref().map(|s| s.expected_sequence);
        assert_eq!(expected(&a), expected(&b));
        assert!(
            a.seen.as_ref().is_none_or(|s| s.window().is_none()),
            "no copy unless asked"
        );
    }
    let retry = quiet.produce(0, &batches[2]);
    assert_eq!(
        retry.to_string(),
        "duplicate of the batch at offsets 0..2: nothing appended"
    );
}
