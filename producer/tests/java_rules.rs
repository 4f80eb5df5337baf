//! The Java client's historical rules (`JavaRules`), each against today's rule, driven with
//! hand-made answers.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{ClientProfile, JavaRules, Producer, ProducerConfig};
use idempo_protocol::{ErrorCode, ProducerEpoch, ResponseFrame, Sequence};

fn java(rules: JavaRules) -> ProducerConfig {
    ProducerConfig {
        java: rules,
        ..ProducerConfig::default()
    }
}

fn java_2_4() -> ProducerConfig {
    ProducerConfig {
        client_profile: ClientProfile::JavaTwoFour,
        java: ClientProfile::JavaTwoFour.java_rules(),
        ..ProducerConfig::default()
    }
}

/// Two one-record batches to partition 0 in two requests, sent at 0; the first acknowledged
/// at offset 5 at 1 ms, the second answered `refusal(correlation id)` at `at_ms`.
fn acked_then(
    config: ProducerConfig,
    refusal: impl FnOnce(i32) -> ResponseFrame,
    at_ms: u64,
) -> Producer {
    let mut p = ready(config);
    p.send(0, records(1), 0);
    p.send(0, records(1), 0);
    let (c0, _) = poll_produce(&mut p, 0).unwrap();
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c0, &[(0, ErrorCode::None, 5)]), 1);
    p.on_response(refusal(c1), at_ms);
    p
}

/// [`acked_then`] with `UNKNOWN_PRODUCER_ID` and `log_start_offset`.
fn acked_then_unknown_producer(config: ProducerConfig, log_start_offset: i64) -> Producer {
    acked_then(config, |c| unknown_producer_id(c, log_start_offset), 2)
}

/// [`acked_then`] with `OUT_OF_ORDER_SEQUENCE_NUMBER`.
fn acked_then_out_of_order(config: ProducerConfig, at_ms: u64) -> Producer {
    let out_of_order = |c| answer(c, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]);
    acked_then(config, out_of_order, at_ms)
}

#[test]
fn the_java_2_4_profile_stands_for_the_pre_kip_360_rules() {
    assert_eq!(
        ClientProfile::JavaTwoFour.java_rules(),
        JavaRules::KAFKA_2_4
    );
    assert_eq!(ClientProfile::Java.java_rules(), JavaRules::CURRENT);
    assert_eq!(ProducerConfig::default().java, JavaRules::CURRENT);
    assert_eq!("java-2.4".parse(), Ok(ClientProfile::JavaTwoFour));
}

#[test]
fn kafka_2_4_restarts_the_sequences_under_the_same_epoch_when_the_log_start_passed_the_ack() {
    // (config, epoch of the retry): 2.4 keeps epoch 0, KIP-360 bumps to 1; both restart at 0.
    for (config, epoch) in [(java_2_4(), 0), (ProducerConfig::default(), 1)] {
        let mut p = acked_then_unknown_producer(config, 100);
        let (_, retry) = poll_produce(&mut p, 200).unwrap();
        assert_eq!(
            (retry[0].epoch, retry[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(0)),
            "the refused batch restarts at sequence 0"
        );
        assert!(deliveries(&mut p).iter().all(|d| d.result.is_ok()));
    }
}

#[test]
fn kafka_2_4_fails_the_batch_when_the_last_acknowledged_record_is_still_in_the_log() {
    // Log start 3 is below the acknowledged offset 5: 2.4 cannot blame retention.
    let mut old = acked_then_unknown_producer(java_2_4(), 3);
    let failed: Vec<_> = deliveries(&mut old)
        .into_iter()
        .filter(|d| d.result.is_err())
        .collect();
    assert_eq!(failed.len(), 1, "Kafka 2.4 fails the refused batch");
    let mut today = acked_then_unknown_producer(ProducerConfig::default(), 3);
    let (_, retry) = poll_produce(&mut today, 200).unwrap();
    assert_eq!(
        (retry[0].epoch, retry[0].base_sequence),
        (ProducerEpoch(1), Sequence(0)),
        "KIP-360 bumps and retries it"
    );
}

#[test]
fn a_partition_idle_at_the_bump_keeps_its_sequence_under_the_new_epoch_before_kafka_2_8() {
    for (skips, sequence) in [(true, 1), (false, 0)] {
        let rules = JavaRules {
            bump_skips_idle_partitions: skips,
            ..JavaRules::CURRENT
        };
        let mut p = ready(java(rules));
        p.send(0, records(1), 0);
        p.send(1, records(1), 0);
        let (c, sent) = poll_produce(&mut p, 0).unwrap();
        assert_eq!(sent.len(), 2, "one request carries both partitions");
        // Partition 0's batch fails for good: the producer bumps. Partition 1's is acked.
        p.on_response(
            answer(
                c,
                &[(0, ErrorCode::InvalidRecord, -1), (1, ErrorCode::None, 0)],
            ),
            1,
        );
        p.send(1, records(1), 2);
        let (_, next) = poll_produce(&mut p, 2).unwrap();
        assert_eq!(
            (next[0].partition, next[0].epoch, next[0].base_sequence),
            (1, ProducerEpoch(1), Sequence(sequence)),
            "bump_skips_idle_partitions {skips}"
        );
    }
}

#[test]
fn a_failed_batch_waits_for_the_retry_before_it_instead_of_re_stamping_it() {
    // (switch, epoch of the earlier batch's retry)
    for (waits, epoch) in [(true, 0), (false, 1)] {
        let rules = JavaRules {
            failed_batch_waits_for_in_flight: waits,
            ..JavaRules::CURRENT
        };
        let mut p = ready(java(rules));
        p.send(0, records(1), 0);
        p.send(0, records(1), 0);
        let (c0, _) = poll_produce(&mut p, 0).unwrap();
        let (c1, _) = poll_produce(&mut p, 0).unwrap();
        // The first batch's outcome is unknown; the second is refused for good.
        p.on_request_failed(c0, 1);
        p.on_response(answer(c1, &[(0, ErrorCode::InvalidRecord, -1)]), 2);
        let (c2, retry) = poll_produce(&mut p, 200).unwrap();
        assert_eq!(
            (retry[0].epoch, retry[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(0)),
            "failed_batch_waits_for_in_flight {waits}"
        );
        // It had been written: a duplicate under epoch 0, an append under epoch 1.
        let code = if waits {
            ErrorCode::DuplicateSequenceNumber
        } else {
            ErrorCode::None
        };
        p.on_response(answer(c2, &[(0, code, 0)]), 201);
        p.send(0, records(1), 300);
        let (_, next) = poll_produce(&mut p, 300).unwrap();
        assert_eq!(
            (next[0].epoch, next[0].base_sequence),
            (ProducerEpoch(1), Sequence(if waits { 0 } else { 1 })),
            "the partition restarts under a new epoch once nothing is in flight"
        );
    }
}

/// Kafka 2.4.1's `TransactionManager.adjustSequencesDueToFailedBatch`: a batch refused for
/// good before its retries ran out frees its sequences, and the later batches move down into
/// them under the same epoch, whatever became of their earlier attempts. Kafka 2.5.0
/// (KAFKA-8805) bumps the epoch instead.
#[test]
fn kafka_2_4_moves_a_timed_out_batch_into_a_failed_batchs_sequences_under_the_same_epoch() {
    // (config, epoch of the retry and of the next batch)
    for (config, epoch) in [(java_2_4(), 0), (ProducerConfig::default(), 1)] {
        let mut p = ready(config);
        p.send(0, records(1), 0);
        p.send(0, records(1), 0);
        let (c0, _) = poll_produce(&mut p, 0).unwrap();
        let (c1, first) = poll_produce(&mut p, 0).unwrap();
        assert_eq!(first[0].base_sequence, Sequence(1));
        // The first batch is refused for good; the second's attempt may still land.
        p.on_response(answer(c0, &[(0, ErrorCode::InvalidRecord, -1)]), 1);
        p.on_request_failed(c1, 2);
        let (c2, retry) = poll_produce(&mut p, 200).unwrap();
        assert_eq!(
            (retry[0].epoch, retry[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(0)),
            "the second batch takes the failed batch's sequence"
        );
        p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 201);
        p.send(0, records(1), 300);
        let (_, next) = poll_produce(&mut p, 300).unwrap();
        assert_eq!(
            (next[0].epoch, next[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(1)),
            "the next new batch follows the moved one"
        );
    }
}

#[test]
fn kafka_0_11_stops_the_producer_at_an_out_of_order_answer_where_today_it_retries() {
    for (fatal, expected) in [
        (true, Some(ErrorCode::OutOfOrderSequenceNumber)),
        (false, None),
    ] {
        let config = ProducerConfig {
            out_of_order_sequence_fatal: fatal,
            ..ProducerConfig::default()
        };
        let mut p = acked_then_out_of_order(config, 2);
        assert_eq!(
            p.fatal_error(),
            expected,
            "out_of_order_sequence_fatal {fatal}"
        );
        let failed = failed_reports(&mut p);
        if fatal {
            assert_eq!(failed, 1, "0.11: the batch fails, not retriable");
            assert_eq!(p.stats().fatal_errors, 1);
            assert!(
                poll_produce(&mut p, 200).is_none(),
                "nothing is sent any more"
            );
        } else {
            assert_eq!(failed, 0, "today: retried after an epoch bump");
            assert!(poll_produce(&mut p, 200).is_some(), "the retry goes out");
        }
    }
}

#[test]
fn an_out_of_order_batch_past_its_delivery_timeout_fails_alone_and_the_epoch_is_bumped() {
    let config = ProducerConfig {
        request_timeout_ms: 100,
        delivery_timeout_ms: 150,
        ..ProducerConfig::default()
    };
    // The answer comes past the batch's delivery timeout: canRetry says no.
    let mut p = acked_then_out_of_order(config, 150);
    assert_eq!(p.fatal_error(), None, "today's client is not stopped by it");
    assert_eq!(p.stats().fatal_errors, 0);
    let failed = failed_reports(&mut p);
    assert_eq!(failed, 1, "no retry left: the batch fails");
    p.send(0, records(1), 151);
    let (_, sent) = poll_produce(&mut p, 151).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0)),
        "handleFailedBatch bumped the epoch: the next batch starts it at 0"
    );
}

#[test]
fn a_fatal_error_forgets_every_request_in_flight() {
    let mut p = ready(ProducerConfig {
        out_of_order_sequence_fatal: true,
        ..ProducerConfig::default()
    });
    for _ in 0..3 {
        p.send(0, records(1), 0);
    }
    let (c0, _) = poll_produce(&mut p, 0).unwrap();
    let (_c1, _) = poll_produce(&mut p, 0).unwrap();
    let (c2, _) = poll_produce(&mut p, 0).unwrap();
    assert_eq!(p.in_flight_requests(), 3);
    p.on_response(
        answer(c0, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    assert_eq!(p.fatal_error(), Some(ErrorCode::OutOfOrderSequenceNumber));
    assert_eq!(
        p.in_flight_requests(),
        0,
        "transitionToFatalError aborts them all"
    );
    let failed = failed_reports(&mut p);
    assert_eq!(failed, 3, "every batch fails");
    p.on_response(answer(c2, &[(0, ErrorCode::None, 2)]), 2);
    assert!(
        deliveries(&mut p).is_empty(),
        "a late answer finds no batch"
    );
}
