//! The librdkafka profile: each of its switches (`LibrdkafkaRules`) against Java's rule,
//! driven with hand-made answers.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{
    BumpReason, ClientProfile, FailureReason, LibrdkafkaRules, Producer, ProducerConfig,
    ProducerEvent,
};
use idempo_protocol::{ErrorCode, ProducerEpoch, Sequence};

fn librdkafka(rules: LibrdkafkaRules) -> ProducerConfig {
    ProducerConfig {
        client_profile: ClientProfile::Librdkafka,
        librdkafka: rules,
        ..ProducerConfig::default()
    }
}

/// Three one-record batches to partition 0, each in its own request: (c0, c1, c2).
fn three_in_flight(p: &mut Producer) -> (i32, i32, i32) {
    for _ in 0..3 {
        p.send(0, records(1), 0);
    }
    let (c0, _) = poll_produce(p, 0).unwrap();
    let (c1, _) = poll_produce(p, 0).unwrap();
    let (c2, _) = poll_produce(p, 0).unwrap();
    (c0, c1, c2)
}

fn bumped(p: &mut Producer) -> Vec<BumpReason> {
    events(p)
        .into_iter()
        .filter_map(|e| match e {
            ProducerEvent::EpochBumped { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn out_of_order_for_the_batch_expected_next_is_fatal_where_java_bumps() {
    for (config, fatal) in [
        (librdkafka(LibrdkafkaRules::V2), true),
        (ProducerConfig::default(), false),
    ] {
        let mut p = ready(config);
        let (c0, c1, c2) = three_in_flight(&mut p);
        p.on_response(answer(c0, &[(0, ErrorCode::None, 0)]), 1);
        // Sequence 1 is next_ack_seq: the broker refused the very batch it should take.
        p.on_response(
            answer(c1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            2,
        );
        p.on_response(
            answer(c2, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            3,
        );
        let expected = fatal.then_some(ErrorCode::OutOfOrderSequenceNumber);
        assert_eq!(p.fatal_error(), expected, "fatal under librdkafka only");
        if fatal {
            let failed = failed_reports(&mut p);
            assert_eq!(failed, 2, "every unacknowledged batch fails");
        } else {
            poll_produce(&mut p, 200).unwrap();
            assert_eq!(bumped(&mut p), [BumpReason::OutOfOrderSequence]);
        }
    }
}

#[test]
fn out_of_order_behind_a_failed_batch_drains_and_bumps_unless_switched_off() {
    for bump in [true, false] {
        let rules = LibrdkafkaRules {
            out_of_order_behind_head_bumps: bump,
            ..LibrdkafkaRules::V2
        };
        let mut p = ready(librdkafka(rules));
        let (c0, c1, c2) = three_in_flight(&mut p);
        // The first batch is refused without being written, the two behind it are refused
        // as out of order (r > 0: "skipped sequence numbers").
        p.on_response(answer(c0, &[(0, ErrorCode::NotEnoughReplicas, -1)]), 1);
        p.on_response(
            answer(c1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            2,
        );
        assert!(
            poll_produce(&mut p, 200).is_none(),
            "the partition drains: nothing goes while c2 is in flight"
        );
        p.on_response(
            answer(c2, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            3,
        );
        assert_eq!(p.fatal_error(), None);
        let (_, sent) = poll_produce(&mut p, 200).unwrap();
        let epoch = if bump { 1 } else { 0 };
        assert_eq!(
            (sent[0].epoch, sent[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(0)),
            "the drained queue goes out from its first batch"
        );
        let (_, second) = poll_produce(&mut p, 200).unwrap();
        assert_eq!(
            second[0].base_sequence,
            Sequence(1),
            "after the drain the queued retries go out together, in order"
        );
        let expected: &[BumpReason] = if bump {
            &[BumpReason::OutOfOrderSequence]
        } else {
            &[]
        };
        assert_eq!(bumped(&mut p), expected);
    }
}

#[test]
fn a_possibly_persisted_batch_counted_as_written_makes_the_next_refusal_fatal_before_2_3() {
    for (advance, fatal) in [(true, true), (false, false)] {
        let rules = LibrdkafkaRules {
            possibly_persisted_advances_next_ack: advance,
            ..LibrdkafkaRules::V2
        };
        let mut p = ready(librdkafka(rules));
        let (c0, c1, c2) = three_in_flight(&mut p);
        // Both answers lost with their connection: possibly persisted, in fact not written.
        p.on_request_failed(c0, 1);
        p.on_request_failed(c1, 1);
        p.on_request_failed(c2, 1);
        let (r0, _) = poll_produce(&mut p, 200).unwrap();
        let (r1, _) = poll_produce(&mut p, 200).unwrap();
        let (r2, _) = poll_produce(&mut p, 200).unwrap();
        // The first retry is refused without a write; the ones behind it are out of order.
        p.on_response(answer(r0, &[(0, ErrorCode::CorruptMessage, -1)]), 201);
        p.on_response(
            answer(r1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            202,
        );
        p.on_response(
            answer(r2, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            203,
        );
        let expected = fatal.then_some(ErrorCode::OutOfOrderSequenceNumber);
        assert_eq!(
            p.fatal_error(),
            expected,
            "up to 2.2.0 next_ack_seq had moved past the lost batches: sequence 1 reads as rewound"
        );
    }
}

#[test]
fn a_message_timeout_in_the_queue_bumps_since_1_0_and_one_on_the_wire_waits() {
    for bump in [true, false] {
        let rules = LibrdkafkaRules {
            message_timeout_bump: bump,
            ..LibrdkafkaRules::V2
        };
        let mut p = ready(ProducerConfig {
            request_timeout_ms: 100,
            delivery_timeout_ms: 150,
            retry_backoff_ms: 10,
            ..librdkafka(rules)
        });
        p.send(0, records(1), 0);
        poll_produce(&mut p, 0).unwrap();
        p.on_timeout(100); // the request times out; the batch is retried
        poll_produce(&mut p, 110).unwrap();
        p.on_timeout(160);
        assert!(
            deliveries(&mut p).is_empty(),
            "past its deadline on the wire: it waits for its request"
        );
        p.on_timeout(210); // back in the queue past its deadline: expired
        let report = deliveries(&mut p).pop().unwrap();
        assert_eq!(
            report.result.unwrap_err().reason(),
            FailureReason::DeliveryTimeout
        );
        assert_eq!(p.stats().delivery_timeouts, 1);
        p.send(0, records(1), 211);
        let (_, sent) = poll_produce(&mut p, 211).unwrap();
        let (epoch, seq) = if bump { (1, 0) } else { (0, 1) };
        assert_eq!(
            (sent[0].epoch, sent[0].base_sequence),
            (ProducerEpoch(epoch), Sequence(seq)),
            "1.0.0 bumps past the gap; 0.11.6 sends behind it"
        );
    }
}

#[test]
fn the_drained_bump_re_sequences_every_partition_retries_included() {
    for (config, epoch) in [
        (librdkafka(LibrdkafkaRules::V2), ProducerEpoch(1)),
        (ProducerConfig::default(), ProducerEpoch(0)),
    ] {
        let mut p = ready(config);
        p.send(0, records(1), 0);
        let (a0, _) = poll_produce(&mut p, 0).unwrap();
        p.send(1, records(1), 0);
        let (b0, _) = poll_produce(&mut p, 0).unwrap();
        p.send(0, records(1), 0);
        let (a1, _) = poll_produce(&mut p, 0).unwrap();
        // Partition 1's batch may be written (its answer is lost); partition 0's first
        // batch is refused, its second is refused as out of order.
        p.on_request_failed(b0, 1);
        p.on_response(answer(a0, &[(0, ErrorCode::NotEnoughReplicas, -1)]), 2);
        p.on_response(
            answer(a1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
            3,
        );
        let mut retried = Vec::new();
        while let Some((_, sent)) = poll_produce(&mut p, 200) {
            retried.extend(sent);
        }
        let p1 = retried.iter().find(|s| s.partition == 1).unwrap();
        assert_eq!(
            (p1.epoch, p1.base_sequence),
            (epoch, Sequence(0)),
            "librdkafka re-sequences partition 1's possibly written retry under the new epoch \
             (#4953's duplicates); Java retries it unchanged"
        );
    }
}

#[test]
fn an_implicit_ack_takes_no_batch_still_on_the_wire() {
    let mut p = ready(librdkafka(LibrdkafkaRules::V2));
    let (c0, c1, c2) = three_in_flight(&mut p);
    // Sequence 1's answer comes first (another connection, say); sequence 0 is still on the
    // wire, so it waits for its own answer and its own offset.
    p.on_response(answer(c1, &[(0, ErrorCode::None, 1)]), 1);
    p.on_response(answer(c0, &[(0, ErrorCode::None, 0)]), 2);
    p.on_response(answer(c2, &[(0, ErrorCode::None, 2)]), 3);
    let mut offsets: Vec<(Sequence, i64)> = deliveries(&mut p)
        .into_iter()
        .filter_map(|d| d.result.ok().map(|ok| (ok.base_sequence, ok.base_offset)))
        .collect();
    offsets.sort();
    assert_eq!(
        offsets,
        [(Sequence(0), 0), (Sequence(1), 1), (Sequence(2), 2)],
        "every batch delivered with the offset of its own answer"
    );
    assert_eq!(p.stats().implicit_acks, 0);
}

#[test]
fn a_success_behind_a_batch_waiting_for_its_retry_acknowledges_it_implicitly() {
    for implicit in [true, false] {
        let rules = LibrdkafkaRules {
            implicit_ack: implicit,
            ..LibrdkafkaRules::V2
        };
        let mut p = ready(librdkafka(rules));
        let (c0, c1, c2) = three_in_flight(&mut p);
        // Sequence 0 is refused without a write (say, on a new leader whose ISR is too small
        // for a batch the old leader had written), and goes back to the queue; sequence 1 is
        // taken, which the broker does only right after sequence 0.
        p.on_response(answer(c0, &[(0, ErrorCode::NotEnoughReplicas, -1)]), 1);
        p.on_response(answer(c1, &[(0, ErrorCode::None, 1)]), 2);
        p.on_response(answer(c2, &[(0, ErrorCode::None, 2)]), 3);
        let offsets: Vec<i64> = deliveries(&mut p)
            .into_iter()
            .filter_map(|d| d.result.ok().map(|ok| ok.base_offset))
            .collect();
        let retry = poll_produce(&mut p, 200);
        if implicit {
            assert_eq!(
                offsets,
                [-1, 1, 2],
                "the waiting batch is delivered first, without an offset"
            );
            assert_eq!(p.stats().implicit_acks, 1);
            assert!(retry.is_none(), "nothing is sent again");
        } else {
            assert_eq!(offsets, [1, 2]);
            let (_, sent) = retry.unwrap();
            assert_eq!(
                sent[0].base_sequence,
                Sequence(0),
                "off: the batch is retried, to be answered as a duplicate or, once five later \
                 batches were written, as out of order"
            );
        }
    }
}
