//! The producer's rules, one behaviour per test, driven with hand-made answers
//! (docs/KAFKA-RULES.md §2).

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{
    BumpReason, ClientProfile, DeliveryError, FailureReason, Producer, ProducerConfig,
    ProducerEvent,
};
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Request, Sequence};

fn config() -> ProducerConfig {
    ProducerConfig::default()
}

#[test]
fn init_producer_id_is_requested_before_any_produce() {
    let mut p = Producer::new(config()).unwrap();
    p.send(0, records(2), 0);
    let init = p.poll_request(0).unwrap();
    assert!(matches!(init.request, Request::InitProducerId(_)));
    assert!(
        p.poll_request(0).is_none(),
        "no Produce and no second InitProducerId"
    );
    p.on_response(init_ok(init.correlation_id, PID, ProducerEpoch(0)), 1);
    assert_eq!(p.producer_id(), PID);
    let (_, sent) = poll_produce(&mut p, 1).unwrap();
    assert_eq!(sent[0].producer_id, PID);
    assert_eq!(sent[0].epoch, ProducerEpoch(0));
    assert_eq!(sent[0].base_sequence, Sequence(0));
}

#[test]
fn init_producer_id_retriable_error_is_retried_after_backoff() {
    let mut p = Producer::new(config()).unwrap();
    let init = p.poll_request(0).unwrap();
    let mut failed = init_ok(init.correlation_id, ProducerId::NONE, ProducerEpoch::NONE);
    if let idempo_protocol::Response::InitProducerId(r) = &mut failed.response {
        r.error_code = ErrorCode::NotLeaderOrFollower;
    }
    p.on_response(failed, 5);
    assert!(p.poll_request(50).is_none(), "inside the backoff");
    assert_eq!(p.next_wakeup_ms(), Some(105));
    let again = p.poll_request(105).unwrap();
    assert!(matches!(again.request, Request::InitProducerId(_)));
}

#[test]
fn retry_resends_same_producer_id_epoch_and_sequence() {
    let mut p = ready(config());
    p.send(0, records(3), 0);
    p.send(0, records(2), 0);
    let first = p.poll_request(0).unwrap();
    let (c2, b) = poll_produce(&mut p, 0).unwrap();
    assert_eq!(
        (b[0].base_sequence, b[0].last_sequence),
        (Sequence(3), Sequence(4))
    );
    p.on_request_failed(first.correlation_id, 10);
    assert!(
        p.poll_request(10).is_none(),
        "retry waits for retry_backoff_ms"
    );
    let retry = p.poll_request(110).unwrap();
    assert_eq!(
        parse(&retry),
        parse(&first),
        "same producer id, epoch and sequences"
    );
    let (Request::Produce(a), Request::Produce(b)) = (&first.request, &retry.request) else {
        panic!("produce requests")
    };
    assert_eq!(
        a.partitions[0].records, b.partitions[0].records,
        "byte for byte"
    );
    p.on_response(answer(c2, &[(0, ErrorCode::None, 3)]), 111);
    p.on_response(
        answer(retry.correlation_id, &[(0, ErrorCode::None, 0)]),
        112,
    );
    let reports = deliveries(&mut p);
    assert_eq!(reports.len(), 2);
    let a = reports[1].result.unwrap();
    assert_eq!(
        (a.base_offset, a.attempts, a.base_sequence),
        (0, 2, Sequence(0))
    );
    assert_eq!(p.stats().retries, 1);
}

#[test]
fn at_most_max_in_flight_requests() {
    let mut p = ready(ProducerConfig {
        max_in_flight: 2,
        ..config()
    });
    for _ in 0..4 {
        p.send(0, records(1), 0);
    }
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    poll_produce(&mut p, 0).unwrap();
    assert!(p.poll_request(0).is_none());
    assert_eq!(p.in_flight_requests(), 2);
    p.on_response(answer(c1, &[(0, ErrorCode::None, 0)]), 1);
    let (_, third) = poll_produce(&mut p, 1).unwrap();
    assert_eq!(third[0].base_sequence, Sequence(2));
    assert_eq!(p.in_flight_requests(), 2);
}

#[test]
fn max_in_flight_above_window_is_refused_unless_opted_in() {
    let err = Producer::new(ProducerConfig {
        max_in_flight: 6,
        ..config()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("max_in_flight 6 above the broker's dedup window 5 with idempotence on"),
        "{err}"
    );
    assert!(
        Producer::new(ProducerConfig {
            max_in_flight: 6,
            allow_unsafe_max_in_flight: true,
            ..config()
        })
        .is_ok()
    );
}

#[test]
fn one_request_carries_one_batch_per_partition() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (_, sent) = poll_produce(&mut p, 0).unwrap();
    let partitions: Vec<i32> = sent.iter().map(|s| s.partition).collect();
    assert_eq!(partitions, vec![0, 1]);
    let (_, sent) = poll_produce(&mut p, 0).unwrap();
    assert_eq!((sent.len(), sent[0].base_sequence), (1, Sequence(1)));
}

#[test]
fn retried_batch_goes_ahead_of_new_batches_in_sequence_order() {
    // Kafka's testCorrectHandlingOfOutOfOrderResponses: seq 2's error arrives before seq 0's.
    let mut p = ready(config());
    p.send(0, records(2), 0);
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    let (c2, _) = poll_produce(&mut p, 0).unwrap();
    p.send(0, records(2), 1); // new, no sequence yet
    p.on_response(answer(c2, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 2);
    p.on_response(answer(c1, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 3);
    let mut order = Vec::new();
    let mut now = 200;
    loop {
        let mut batch = Vec::new();
        while let Some((c, sent)) = poll_produce(&mut p, now) {
            order.push((sent[0].base_sequence.0, sent[0].epoch.0));
            batch.push(c);
        }
        if batch.is_empty() {
            break;
        }
        for c in batch {
            p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), now);
        }
        now += 1;
    }
    // The retries go one at a time; the new batch may follow the last retry at once.
    assert_eq!(order, vec![(0, 0), (2, 0), (4, 0)]);
}

#[test]
fn retrying_partition_sends_only_its_lowest_sequence() {
    let mut p = ready(config());
    for _ in 0..3 {
        p.send(0, records(1), 0);
    }
    let cs: Vec<i32> = (0..3).map(|_| poll_produce(&mut p, 0).unwrap().0).collect();
    for c in &cs {
        p.on_request_failed(*c, 1);
    }
    p.send(1, records(1), 1);
    let (c, sent) = poll_produce(&mut p, 101).unwrap();
    let seqs: Vec<(i32, i32)> = sent
        .iter()
        .map(|s| (s.partition, s.base_sequence.0))
        .collect();
    assert_eq!(
        seqs,
        vec![(0, 0), (1, 0)],
        "the lowest retry, and the healthy partition"
    );
    assert!(
        p.poll_request(101).is_none(),
        "sequence 1 waits for sequence 0"
    );
    p.on_response(
        answer(c, &[(0, ErrorCode::None, 0), (1, ErrorCode::None, 0)]),
        102,
    );
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(sent[0].base_sequence, Sequence(1));
}

#[test]
fn out_of_order_for_next_expected_batch_bumps_epoch_and_rewrites_from_zero() {
    let mut p = ready(config());
    p.send(0, records(2), 0);
    p.send(0, records(3), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    let (c2, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(
        answer(c1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    p.on_response(
        answer(c2, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        2,
    );
    let (c3, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(p.producer_epoch(), ProducerEpoch(1));
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    let ev = events(&mut p);
    assert!(ev.contains(&ProducerEvent::EpochBumped {
        producer_id: PID,
        old_epoch: ProducerEpoch(0),
        new_epoch: ProducerEpoch(1),
        partition: 0,
        reason: BumpReason::OutOfOrderSequence,
    }));
    assert!(ev.iter().any(|e| matches!(
        e,
        ProducerEvent::SequencesRewritten {
            partition: 0,
            batches: 2,
            next_sequence: Sequence(5),
            ..
        }
    )));
    p.on_response(answer(c3, &[(0, ErrorCode::None, 0)]), 102);
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(2))
    );
    assert_eq!(p.stats().epoch_bumps, 1);
    assert!(
        deliveries(&mut p).iter().all(|r| r.result.is_ok()),
        "the user sees no error"
    );
}

#[test]
fn out_of_order_for_collateral_batch_retries_unchanged() {
    let mut p = ready(config());
    p.send(0, records(2), 0);
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    let (c2, _) = poll_produce(&mut p, 0).unwrap();
    // Sequence 0 failed retriably, so the broker saw a gap before sequence 2.
    p.on_response(answer(c1, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 1);
    p.on_response(
        answer(c2, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        2,
    );
    let (c3, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(0))
    );
    p.on_response(answer(c3, &[(0, ErrorCode::None, 0)]), 102);
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(2))
    );
    assert_eq!(p.stats().epoch_bumps, 0);
    assert_eq!(p.stats().out_of_order_responses, 1);
}

#[test]
fn duplicate_sequence_number_is_success_without_offset() {
    let mut p = ready(config());
    let h = p.send(0, records(1), 0);
    let (c, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c, &[(0, ErrorCode::DuplicateSequenceNumber, -1)]), 1);
    let r = p.poll_delivery().unwrap();
    assert_eq!(r.handle, h);
    assert_eq!(r.result.unwrap().base_offset, -1);
    assert_eq!(p.stats().duplicates_acked, 1);
    assert!(p.is_idle());
}

#[test]
fn request_timeout_retries_the_batch() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, first) = poll_produce(&mut p, 0).unwrap();
    assert_eq!(p.next_wakeup_ms(), Some(30_000));
    p.on_timeout(29_999);
    assert_eq!(p.in_flight_requests(), 1);
    p.on_timeout(30_000);
    assert_eq!(p.in_flight_requests(), 0);
    assert!(events(&mut p).contains(&ProducerEvent::RequestTimedOut { correlation_id: c1 }));
    assert_eq!(p.next_wakeup_ms(), Some(30_100), "the retry backoff");
    let (c2, retry) = poll_produce(&mut p, 30_100).unwrap();
    assert_eq!(retry, first);
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 30_101);
    assert_eq!(p.poll_delivery().unwrap().result.unwrap().attempts, 2);
    assert_eq!(p.stats().request_timeouts, 1);
}

#[test]
fn late_response_after_timeout_is_ignored() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_timeout(30_000);
    events(&mut p);
    p.on_response(answer(c1, &[(0, ErrorCode::None, 0)]), 30_001);
    assert_eq!(
        events(&mut p),
        vec![ProducerEvent::LateResponseIgnored { correlation_id: c1 }]
    );
    assert!(
        p.poll_delivery().is_none(),
        "the batch is being retried, not delivered twice"
    );
    let (c2, _) = poll_produce(&mut p, 30_100).unwrap();
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 30_101);
    assert!(p.poll_delivery().unwrap().result.is_ok());
    assert!(p.poll_delivery().is_none());
}

#[test]
fn corrupt_message_is_retried() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, first) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c1, &[(0, ErrorCode::CorruptMessage, -1)]), 1);
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        ProducerEvent::RetryScheduled {
            reason: FailureReason::Broker(ErrorCode::CorruptMessage),
            ..
        }
    )));
    let (_, retry) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(retry, first);
}

#[test]
fn delivery_timeout_of_unsent_batch_is_definite() {
    let mut p = Producer::new(ProducerConfig {
        request_timeout_ms: 500,
        delivery_timeout_ms: 1_000,
        ..config()
    })
    .unwrap();
    p.send(0, records(1), 0);
    assert!(matches!(
        p.poll_request(0).unwrap().request,
        Request::InitProducerId(_)
    ));
    p.on_timeout(1_000);
    let r = p.poll_delivery().unwrap();
    assert_eq!(
        r.result,
        Err(DeliveryError::Definite {
            reason: FailureReason::DeliveryTimeout,
            attempts: 0
        })
    );
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, ProducerEvent::PartitionUnresolved { .. }))
    );
}

fn timeouts() -> ProducerConfig {
    ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_000,
        ..config()
    }
}

/// Under the idempo profile any sent batch that expires leaves its partition unresolved
/// (Java needs the batch to have been retried; see `tests/profiles.rs`).
#[test]
fn delivery_timeout_of_sent_batch_is_possibly_persisted_and_leaves_partition_unresolved() {
    let mut p = ready(ProducerConfig {
        client_profile: ClientProfile::Idempo,
        ..timeouts()
    });
    p.send(0, records(2), 0);
    poll_produce(&mut p, 0).unwrap();
    p.on_timeout(1_000);
    let r = p.poll_delivery().unwrap();
    assert_eq!(
        r.result,
        Err(DeliveryError::PossiblyPersisted {
            reason: FailureReason::DeliveryTimeout,
            attempts: 1
        })
    );
    assert!(r.result.unwrap_err().is_possibly_persisted());
    assert!(
        events(&mut p).contains(&ProducerEvent::PartitionUnresolved {
            partition: 0,
            unresolved_next_sequence: Sequence(2)
        })
    );
}

/// The first batch is retried late (at 550), so it expires at 1 500 while its retry is still
/// awaited; the second batch is sent behind it.
///
/// Under the idempo profile partition 0 first has a one-record batch acknowledged, so the
/// sequences are one higher.
fn expire_first_of_two_on_the_wire(profile: ProducerConfig) -> (Producer, i32, i32) {
    let config = ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_500,
        ..profile
    };
    let mut p = if config.client_profile == ClientProfile::Idempo {
        ready_idempo_acked(config)
    } else {
        ready(config)
    };
    let shift = if p.config().client_profile == ClientProfile::Idempo {
        1
    } else {
        0
    };
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 450);
    let (c2, _) = poll_produce(&mut p, 550).unwrap();
    p.send(0, records(2), 560);
    let (c3, sent) = poll_produce(&mut p, 560).unwrap();
    assert_eq!(sent[0].base_sequence, Sequence(2 + shift));
    p.on_timeout(1_500);
    assert!(
        p.poll_delivery()
            .unwrap()
            .result
            .unwrap_err()
            .is_possibly_persisted()
    );
    (p, c2, c3)
}

/// Under the idempo profile the expired batch stays in flight until its request ends (Java
/// drops it at expiry; see `tests/profiles.rs`).
#[test]
fn unresolved_partition_blocks_new_batches_while_its_batches_are_in_flight() {
    let (mut p, _c2, c3) = expire_first_of_two_on_the_wire(idempo());
    p.send(0, records(1), 1_500);
    assert!(
        p.poll_request(1_500).is_none(),
        "no new batch while unresolved"
    );
    p.on_response(answer(c3, &[(0, ErrorCode::None, 2)]), 1_501);
    assert!(
        p.poll_request(1_501).is_none(),
        "the expired batch's request is still awaited"
    );
    p.on_timeout(1_550);
    assert!(p.poll_request(1_550).is_some());
}

#[test]
fn later_ack_resolves_unresolved_partition_without_bump() {
    let (mut p, _c2, c3) = expire_first_of_two_on_the_wire(config());
    p.on_response(answer(c3, &[(0, ErrorCode::None, 2)]), 1_501);
    p.on_timeout(1_550); // the expired batch's last request ends without an answer
    p.send(0, records(1), 1_551);
    let (_, sent) = poll_produce(&mut p, 1_551).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(4))
    );
    assert!(events(&mut p).contains(&ProducerEvent::PartitionResolved {
        partition: 0,
        last_acked_sequence: Sequence(3)
    }));
    assert_eq!(p.stats().epoch_bumps, 0);
    assert_eq!(
        (
            p.stats().partitions_unresolved,
            p.stats().partitions_resolved
        ),
        (1, 1)
    );
}

#[test]
fn late_ack_of_expired_batch_resolves_partition_without_bump() {
    // librdkafka expires no batch on the wire (its profile's own tests show what it does).
    for client_profile in [ClientProfile::Java, ClientProfile::Idempo] {
        late_ack_of_expired_batch_resolves_partition_without_bump_under(client_profile);
    }
}

fn late_ack_of_expired_batch_resolves_partition_without_bump_under(profile: ClientProfile) {
    let mut p = ready(ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_500,
        client_profile: profile,
        ..config()
    });
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 450);
    let (c2, _) = poll_produce(&mut p, 550).unwrap();
    p.on_timeout(1_500); // expired while its retry (sent at 550) is still awaited
    assert!(
        p.poll_delivery()
            .unwrap()
            .result
            .unwrap_err()
            .is_possibly_persisted()
    );
    assert_eq!(p.in_flight_requests(), 1);
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 1_501);
    assert!(p.poll_delivery().is_none(), "reported once");
    p.send(0, records(1), 1_501);
    let (_, sent) = poll_produce(&mut p, 1_501).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(2)),
        "{profile}"
    );
}

/// Under the idempo profile (Java needs the batch to have been retried).
#[test]
fn unresolved_partition_with_nothing_in_flight_bumps_epoch() {
    let mut p = ready(ProducerConfig {
        client_profile: ClientProfile::Idempo,
        ..timeouts()
    });
    p.send(0, records(2), 0);
    poll_produce(&mut p, 0).unwrap();
    p.on_timeout(1_000);
    p.send(0, records(1), 1_000);
    let (_, sent) = poll_produce(&mut p, 1_000).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        ProducerEvent::EpochBumped {
            reason: BumpReason::UnresolvedSequence,
            ..
        }
    )));
}

/// Under the idempo profile the asking partition is re-stamped when the new id arrives (Java
/// re-stamps it at once under no producer id; see `tests/profiles.rs`).
#[test]
fn epoch_exhaustion_requests_new_producer_id() {
    let mut p = Producer::new(idempo()).unwrap();
    let init = p.poll_request(0).unwrap();
    p.on_response(init_ok(init.correlation_id, PID, ProducerEpoch::MAX), 0);
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(
        answer(c1, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    let reinit = p.poll_request(101).unwrap();
    assert!(matches!(reinit.request, Request::InitProducerId(_)));
    assert_eq!(p.producer_id(), ProducerId::NONE);
    p.on_response(
        init_ok(reinit.correlation_id, ProducerId(8), ProducerEpoch(0)),
        102,
    );
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (ProducerId(8), ProducerEpoch(0), Sequence(0))
    );
    assert_eq!(p.stats().producer_id_resets, 1);
}

#[test]
fn invalid_producer_epoch_fails_batch_definitely_and_bumps_epoch() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c1, &[(0, ErrorCode::InvalidProducerEpoch, -1)]), 1);
    assert_eq!(
        p.poll_delivery().unwrap().result,
        Err(DeliveryError::Definite {
            reason: FailureReason::Broker(ErrorCode::InvalidProducerEpoch),
            attempts: 1
        })
    );
    p.send(0, records(1), 2);
    let (_, sent) = poll_produce(&mut p, 2).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
}

#[test]
fn non_retriable_error_after_an_unknown_outcome_is_possibly_persisted() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 1);
    let (c2, _) = poll_produce(&mut p, 101).unwrap();
    p.on_response(answer(c2, &[(0, ErrorCode::InvalidRecord, -1)]), 102);
    let err = p.poll_delivery().unwrap().result.unwrap_err();
    assert!(
        err.is_possibly_persisted(),
        "the first attempt may have been written: {err}"
    );
}

#[test]
fn unknown_producer_id_bumps_epoch_and_retries() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c1, &[(0, ErrorCode::UnknownProducerId, -1)]), 1);
    let (_, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    assert_eq!(p.stats().unknown_producer_id_responses, 1);
}

#[test]
fn healthy_partition_finishes_old_epoch_before_restarting_at_zero() {
    // Kafka's testHealthyPartitionRetriesDuringEpochBump.
    let mut p = ready(config());
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.send(1, records(1), 0);
    p.on_response(
        answer(
            c1,
            &[
                (0, ErrorCode::OutOfOrderSequenceNumber, -1),
                (1, ErrorCode::NotLeaderOrFollower, -1),
            ],
        ),
        1,
    );
    let (c2, sent) = poll_produce(&mut p, 101).unwrap();
    let got: Vec<(i32, i16, i32)> = sent
        .iter()
        .map(|s| (s.partition, s.epoch.0, s.base_sequence.0))
        .collect();
    assert_eq!(
        got,
        vec![(1, 0, 0), (0, 1, 0)],
        "partition 1 retries under the old epoch (first: Java's drain starts where the last \
         one ended)"
    );
    p.on_response(
        answer(c2, &[(0, ErrorCode::None, 0), (1, ErrorCode::None, 0)]),
        102,
    );
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(
        (sent[0].partition, sent[0].epoch.0, sent[0].base_sequence.0),
        (1, 1, 0)
    );
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        ProducerEvent::PartitionSequenceReset { partition: 1, .. }
    )));
}

/// Under the idempo profile (Java feeds stale answers to its ordinary rules; see
/// `tests/profiles.rs`).
#[test]
fn stale_error_after_bump_is_ignored_and_batch_resent_under_new_epoch() {
    let mut p = ready_idempo_acked(idempo());
    for _ in 0..3 {
        p.send(0, records(2), 0);
    }
    let cs: Vec<i32> = (0..3).map(|_| poll_produce(&mut p, 0).unwrap().0).collect();
    p.on_response(
        answer(cs[0], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    let (c4, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!((sent[0].epoch.0, sent[0].base_sequence.0), (1, 0));
    p.on_response(
        answer(cs[1], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        102,
    );
    p.on_response(
        answer(cs[2], &[(0, ErrorCode::InvalidProducerEpoch, -1)]),
        103,
    );
    assert_eq!(p.stats().stale_responses, 2);
    p.on_response(answer(c4, &[(0, ErrorCode::None, 0)]), 104);
    let mut got = Vec::new();
    let mut now = 204;
    while let Some((c, sent)) = poll_produce(&mut p, now) {
        got.push((sent[0].epoch.0, sent[0].base_sequence.0));
        p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), now);
        now += 1;
    }
    assert_eq!(got, vec![(1, 2), (1, 4)]);
    assert!(deliveries(&mut p).iter().all(|r| r.result.is_ok()));
    assert_eq!(p.stats().epoch_bumps, 1);
}

/// Under the idempo profile (see `tests/profiles.rs` for Java).
#[test]
fn stale_ack_after_bump_delivers_batch_and_closes_sequence_hole() {
    let mut p = ready_idempo_acked(idempo());
    let handles: Vec<_> = (0..3).map(|_| p.send(0, records(2), 0)).collect();
    let cs: Vec<i32> = (0..3).map(|_| poll_produce(&mut p, 0).unwrap().0).collect();
    p.on_response(
        answer(cs[0], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    let (c4, _) = poll_produce(&mut p, 101).unwrap();
    // The second batch's old-epoch attempt was in fact written.
    p.on_response(answer(cs[1], &[(0, ErrorCode::None, 10)]), 102);
    let r = p.poll_delivery().unwrap();
    assert_eq!(r.handle, handles[1]);
    let d = r.result.unwrap();
    assert_eq!(
        (d.producer_epoch.0, d.base_sequence.0, d.base_offset),
        (0, 3, 10),
        "sequence 0 went to the acknowledged first batch"
    );
    p.on_response(answer(c4, &[(0, ErrorCode::None, 12)]), 103);
    p.on_response(
        answer(cs[2], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        104,
    );
    let (_, sent) = poll_produce(&mut p, 204).unwrap();
    assert_eq!(
        (sent[0].epoch.0, sent[0].base_sequence.0),
        (1, 2),
        "moved down into the hole"
    );
}

#[test]
fn idempotence_off_sends_no_producer_id_and_retries_plainly() {
    let mut p = Producer::new(ProducerConfig {
        idempotence: false,
        acks: 1,
        max_in_flight: 10,
        ..config()
    })
    .unwrap();
    p.send(0, records(2), 0);
    let (c1, sent) = poll_produce(&mut p, 0).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (ProducerId::NONE, ProducerEpoch::NONE, Sequence::NONE)
    );
    p.on_request_failed(c1, 1);
    let (c2, retry) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(retry, sent);
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 102);
    let d = p.poll_delivery().unwrap().result.unwrap();
    assert_eq!((d.producer_id, d.attempts), (ProducerId::NONE, 2));
    assert_eq!(p.stats().init_producer_id_requests_sent, 0);
}

fn refused_init(correlation_id: i32, error_code: ErrorCode) -> idempo_protocol::ResponseFrame {
    let mut refused = init_ok(correlation_id, ProducerId::NONE, ProducerEpoch::NONE);
    if let idempo_protocol::Response::InitProducerId(r) = &mut refused.response {
        r.error_code = error_code;
    }
    refused
}

#[test]
fn cluster_authorization_failure_on_produce_is_fatal() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(
        answer(
            c1,
            &[
                (0, ErrorCode::ClusterAuthorizationFailed, -1),
                (1, ErrorCode::ClusterAuthorizationFailed, -1),
            ],
        ),
        1,
    );
    assert_eq!(p.fatal_error(), Some(ErrorCode::ClusterAuthorizationFailed));
    let reports = deliveries(&mut p);
    assert_eq!(reports.len(), 2, "every batch fails");
    assert!(reports.iter().all(|r| r.result.is_err()));
    p.send(0, records(1), 2);
    assert!(
        p.poll_delivery().unwrap().result.is_err(),
        "later sends fail at once"
    );
    assert!(p.poll_request(2).is_none());
    assert!(p.is_idle());
}

#[test]
fn a_fatal_error_leaves_no_delivery_deadline_to_wake_for() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (c, _) = poll_produce(&mut p, 0).unwrap();
    p.send(2, records(1), 0);
    p.on_response(
        answer(
            c,
            &[
                (0, ErrorCode::ClusterAuthorizationFailed, -1),
                (1, ErrorCode::None, 0),
            ],
        ),
        1,
    );
    assert_eq!(p.fatal_error(), Some(ErrorCode::ClusterAuthorizationFailed));
    assert_eq!(deliveries(&mut p).len(), 3, "every batch has its outcome");
    assert_eq!(p.next_wakeup_ms(), None, "no batch is left to expire");
    p.on_timeout(u64::MAX);
    assert_eq!(p.stats().delivery_timeouts, 0);
}

/// Kafka 3.6+ (KAFKA-13668): an authorization failure on InitProducerId is not fatal. The
/// pending batches fail, the producer goes back to uninitialized and asks for an id again;
/// once authorized, later sends go through.
#[test]
fn cluster_authorization_failure_on_init_producer_id_fails_pending_batches_and_asks_again() {
    let mut p = Producer::new(config()).unwrap();
    let pending = p.send(0, records(1), 0);
    let init = p.poll_request(0).unwrap();
    p.on_response(
        refused_init(init.correlation_id, ErrorCode::ClusterAuthorizationFailed),
        1,
    );
    assert_eq!(p.fatal_error(), None, "not fatal since Kafka 3.6");
    assert_eq!(p.next_wakeup_ms(), Some(1), "the abort is due at once");
    let again = p
        .poll_request(1)
        .expect("InitProducerId again, without a backoff");
    assert!(matches!(again.request, Request::InitProducerId(_)));
    let report = p.poll_delivery().expect("the pending batch failed");
    assert_eq!(report.handle, pending);
    assert_eq!(
        report.result,
        Err(DeliveryError::Definite {
            reason: FailureReason::Broker(ErrorCode::ClusterAuthorizationFailed),
            attempts: 0
        })
    );
    p.on_response(init_ok(again.correlation_id, PID, ProducerEpoch(0)), 2);
    let later = p.send(0, records(1), 2);
    let (c, sent) = poll_produce(&mut p, 2).expect("authorized now: the batch goes out");
    assert_eq!(
        (sent[0].producer_id, sent[0].base_sequence),
        (PID, Sequence(0))
    );
    p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), 3);
    let report = p.poll_delivery().unwrap();
    assert_eq!(report.handle, later);
    assert!(report.result.is_ok());
}

#[test]
fn other_init_producer_id_errors_are_fatal() {
    let mut p = Producer::new(config()).unwrap();
    p.send(0, records(1), 0);
    let init = p.poll_request(0).unwrap();
    p.on_response(
        refused_init(init.correlation_id, ErrorCode::InvalidRequest),
        1,
    );
    assert_eq!(p.fatal_error(), Some(ErrorCode::InvalidRequest));
    assert!(matches!(
        p.poll_delivery().unwrap().result,
        Err(DeliveryError::Definite {
            reason: FailureReason::Fatal(ErrorCode::InvalidRequest),
            ..
        })
    ));
    assert!(p.poll_request(2).is_none());
}

/// Java's `UnknownProducerIdException` extends `OutOfOrderSequenceException`, so
/// `handleFailedBatch` asks for an epoch bump when 59 fails a batch for good, even after its
/// retries ran out (when other failures leave the sequences alone).
#[test]
fn unknown_producer_id_failing_a_batch_for_good_bumps_the_epoch() {
    let mut p = ready(ProducerConfig {
        retries: 1,
        ..config()
    });
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c1, &[(0, ErrorCode::NetworkException, -1)]), 1);
    let (c2, _) = poll_produce(&mut p, 101).unwrap();
    p.on_response(answer(c2, &[(0, ErrorCode::UnknownProducerId, -1)]), 102);
    let failed = p.poll_delivery().unwrap();
    assert!(failed.result.is_err(), "retries exhausted: the batch fails");
    assert!(events(&mut p).contains(&ProducerEvent::EpochBumpRequested {
        partition: 0,
        reason: BumpReason::UnknownProducerId
    }));
    p.send(0, records(1), 103);
    let (_, sent) = poll_produce(&mut p, 103).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
}

/// Other failures after the retries ran out leave the sequences alone: whether the
/// sequence was taken is unknown (Sender.completeBatch, `attempts < retries`).
#[test]
fn retriable_failure_after_retries_ran_out_does_not_bump() {
    let mut p = ready(ProducerConfig {
        retries: 1,
        ..config()
    });
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c1, &[(0, ErrorCode::NetworkException, -1)]), 1);
    let (c2, _) = poll_produce(&mut p, 101).unwrap();
    p.on_response(answer(c2, &[(0, ErrorCode::NetworkException, -1)]), 102);
    assert!(p.poll_delivery().unwrap().result.is_err());
    p.send(0, records(1), 103);
    let (_, sent) = poll_produce(&mut p, 103).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(1))
    );
}

#[test]
fn next_wakeup_is_the_earliest_deadline() {
    let mut p = ready(ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 5_000,
        ..config()
    });
    assert_eq!(p.next_wakeup_ms(), None);
    p.send(0, records(1), 100);
    assert_eq!(p.next_wakeup_ms(), Some(5_100));
    poll_produce(&mut p, 200).unwrap();
    assert_eq!(p.next_wakeup_ms(), Some(1_200));
}

#[test]
fn empty_batch_is_refused_at_once() {
    let mut p = ready(config());
    p.send(0, Vec::new(), 0);
    assert!(matches!(
        p.poll_delivery().unwrap().result,
        Err(DeliveryError::Definite {
            reason: FailureReason::EmptyBatch,
            attempts: 0
        })
    ));
    assert!(p.poll_request(0).is_none());
}

/// An InitProducerId answer is used only when it is `NONE` *and* carries a usable id and
/// epoch; anything else is retried after the backoff (a success without an id is a broken
/// peer, an error with an id is still an error).
#[test]
fn init_producer_id_answer_without_a_usable_id_or_with_an_error_is_retried() {
    let answers = [
        (ErrorCode::None, ProducerId::NONE, ProducerEpoch(0)),
        (ErrorCode::None, PID, ProducerEpoch::NONE),
        (ErrorCode::NotLeaderOrFollower, PID, ProducerEpoch(0)),
    ];
    for (error_code, producer_id, producer_epoch) in answers {
        let mut p = Producer::new(config()).unwrap();
        let init = p.poll_request(0).unwrap();
        let mut frame = init_ok(init.correlation_id, producer_id, producer_epoch);
        if let idempo_protocol::Response::InitProducerId(r) = &mut frame.response {
            r.error_code = error_code;
        }
        p.on_response(frame, 1);
        assert_eq!(
            p.producer_id(),
            ProducerId::NONE,
            "{error_code:?} {producer_id:?}"
        );
        assert_eq!(p.fatal_error(), None);
        assert!(p.poll_request(50).is_none(), "inside the backoff");
        let again = p.poll_request(101).unwrap();
        assert!(matches!(again.request, Request::InitProducerId(_)));
    }
}

/// Under the idempo profile a batch that expired on the wire (already reported) stays in the
/// in-flight set, but a bump does not re-stamp it: it is never sent again, so the batch behind
/// it restarts at sequence 0 without it.
#[test]
fn bump_does_not_restamp_a_batch_already_reported_expired() {
    let mut p = ready_idempo_acked(ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_500,
        ..idempo()
    });
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap(); // X: sequences 1..=2
    p.on_request_failed(c1, 450);
    poll_produce(&mut p, 550).unwrap(); // X's retry, awaited until 1 550
    p.send(0, records(2), 560);
    let (cy, sent) = poll_produce(&mut p, 560).unwrap(); // Y: 3..=4
    assert_eq!(sent[0].base_sequence, Sequence(3));
    p.on_timeout(1_500); // X expires on the wire: reported, still in flight
    p.on_response(
        answer(cy, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1_501,
    );
    // The bump happens now, while X's last request is still awaited; Y is in its backoff.
    assert!(p.poll_request(1_502).is_none());
    let (_, sent) = poll_produce(&mut p, 1_601).expect("Y's retry after the bump");
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0)),
        "the reported batch took no sequence"
    );
}

/// `UNKNOWN_PRODUCER_ID` with log start offset -1 means the broker did not know it yet: the
/// batch is retried unchanged, without a bump (TransactionManager.canRetry).
#[test]
fn unknown_producer_id_without_a_log_start_offset_retries_unchanged() {
    let mut p = ready(config());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    let mut frame = answer(c1, &[(0, ErrorCode::UnknownProducerId, -1)]);
    if let idempo_protocol::Response::Produce(r) = &mut frame.response {
        r.partitions[0].log_start_offset = -1;
    }
    p.on_response(frame, 1);
    let (_, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(0))
    );
    assert_eq!(p.stats().epoch_bumps, 0);
}

/// A queued batch that expires leaves its queue: the retry behind it is what the producer
/// wakes up for next.
#[test]
fn expired_queued_batch_leaves_its_queue() {
    let mut p = ready(ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_000,
        retry_backoff_ms: 20,
        ..config()
    });
    p.send(0, records(1), 0);
    let (ca, _) = poll_produce(&mut p, 0).unwrap();
    p.send(0, records(1), 50);
    let (cb, _) = poll_produce(&mut p, 50).unwrap();
    p.on_request_failed(ca, 990);
    p.on_request_failed(cb, 990); // both queued again, A ahead of B, until 1 010
    p.on_timeout(1_000); // A expires in the queue
    assert!(p.poll_delivery().unwrap().result.is_err());
    assert_eq!(
        p.next_wakeup_ms(),
        Some(1_010),
        "B's backoff, not A's ghost"
    );
}

/// A producer waiting for its producer id is not idle, even with no batch.
#[test]
fn producer_waiting_for_its_producer_id_is_not_idle() {
    let mut p = Producer::new(config()).unwrap();
    assert!(p.is_idle());
    p.poll_request(0).unwrap();
    assert!(!p.is_idle(), "an InitProducerId is awaited");
}
