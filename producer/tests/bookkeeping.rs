//! What the producer tells about itself: counters, the event buffer, correlation ids and
//! wakeups. The simulator's report and trace are built from these, so they are rules too.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{EVENTS_MAX, Producer, ProducerConfig, ProducerEvent, ProducerStats};
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Request, Response};

fn init_refused(correlation_id: i32, error_code: ErrorCode) -> idempo_protocol::ResponseFrame {
    let mut frame = init_ok(correlation_id, ProducerId::NONE, ProducerEpoch::NONE);
    if let Response::InitProducerId(r) = &mut frame.response {
        r.error_code = error_code;
    }
    frame
}

/// Every counter counts its own thing once: a run with one of each kind of answer ends with
/// exactly these stats.
#[test]
fn stats_count_each_request_batch_and_answer_once() {
    let mut p = Producer::new(ProducerConfig::default()).unwrap();
    let init = p.poll_request(0).unwrap();
    p.on_response(
        init_refused(init.correlation_id, ErrorCode::NotLeaderOrFollower),
        0,
    );
    let init = p.poll_request(100).unwrap();
    p.on_response(init_ok(init.correlation_id, PID, ProducerEpoch(0)), 100);
    for partition in 0..3 {
        p.send(partition, records(2), 100);
    }
    let (c1, sent) = poll_produce(&mut p, 100).unwrap();
    assert_eq!(sent.len(), 3);
    p.on_response(
        answer(
            c1,
            &[
                (0, ErrorCode::None, 0),
                (1, ErrorCode::DuplicateSequenceNumber, -1),
                (2, ErrorCode::InvalidProducerEpoch, -1),
            ],
        ),
        101,
    );
    p.on_response(answer(c1, &[(0, ErrorCode::None, 0)]), 102); // late: ignored
    p.on_request_failed(c1, 102); // late too
    p.send(0, records(1), 102);
    let (c2, _) = poll_produce(&mut p, 102).unwrap();
    p.on_request_failed(c2, 103);
    let (c3, _) = poll_produce(&mut p, 203).unwrap();
    p.on_response(
        answer(c3, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        204,
    );
    let (c4, _) = poll_produce(&mut p, 304).unwrap();
    p.on_response(answer(c4, &[(0, ErrorCode::UnknownProducerId, -1)]), 305);
    let (c5, _) = poll_produce(&mut p, 405).unwrap();
    p.on_response(answer(c5, &[(0, ErrorCode::None, 2)]), 406);
    assert_eq!(
        p.stats(),
        ProducerStats {
            requests_sent: 7,
            produce_requests_sent: 5,
            init_producer_id_requests_sent: 2,
            batches_sent: 7,
            retries: 3,
            // INVALID_PRODUCER_EPOCH's failed batch, the gap, then UNKNOWN_PRODUCER_ID for the
            // re-stamped batch once it was sent again (its reset flag cleared by the drain, as
            // Java's ProducerBatch.close clears `reopened`).
            epoch_bumps: 3,
            producer_id_resets: 0,
            producer_ids_assigned: 1,
            batches_rewritten: 2,
            out_of_order_responses: 1,
            duplicates_acked: 1,
            implicit_acks: 0,
            unknown_producer_id_responses: 1,
            invalid_epoch_responses: 1,
            request_timeouts: 0,
            connection_failures: 1,
            delivery_timeouts: 0,
            batches_delivered: 3,
            batches_failed: 1,
            batches_possibly_persisted: 0,
            late_responses_ignored: 2,
            stale_responses: 0,
            partitions_unresolved: 0,
            partitions_resolved: 0,
            events_dropped: 0,
            fatal_errors: 0,
        }
    );
}

/// Timeouts and expiries are counted, and a failure whose outcome is unknown is counted as
/// possibly persisted.
#[test]
fn stats_count_timeouts_expiries_and_unresolved_partitions() {
    let mut p = ready(ProducerConfig {
        request_timeout_ms: 100,
        delivery_timeout_ms: 500,
        ..ProducerConfig::default()
    });
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    poll_produce(&mut p, 0).unwrap(); // both partitions, one request
    p.send(2, records(1), 50);
    poll_produce(&mut p, 50).unwrap();
    // The first request times out and closes the connection: the second fails with it.
    p.on_timeout(100);
    poll_produce(&mut p, 200).unwrap(); // retries of all three
    // Partitions 0 and 1 (sent at 0) expire on the wire, retried: unresolved. Then their
    // request times out, and partition 2's batch (due at 550) is queued again.
    p.on_timeout(500);
    assert_eq!(
        p.stats(),
        ProducerStats {
            requests_sent: 4,
            produce_requests_sent: 3,
            init_producer_id_requests_sent: 1,
            batches_sent: 6,
            retries: 4,
            producer_ids_assigned: 1,
            request_timeouts: 2,
            connection_failures: 1,
            delivery_timeouts: 2,
            batches_failed: 2,
            batches_possibly_persisted: 2,
            partitions_unresolved: 2,
            ..ProducerStats::default()
        }
    );
}

/// Idempo's stale answers are counted, a stale duplicate as a duplicate too, and the stale
/// acknowledgement says how many later batches moved down.
#[test]
fn stale_answers_are_counted_and_a_stale_ack_says_how_many_batches_moved() {
    let mut p = ready_idempo_acked(idempo());
    for _ in 0..3 {
        p.send(0, records(2), 0);
    }
    let cs: Vec<i32> = (0..3).map(|_| poll_produce(&mut p, 0).unwrap().0).collect();
    p.on_response(
        answer(cs[0], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    poll_produce(&mut p, 101).unwrap();
    events(&mut p);
    let before = p.stats();
    p.on_response(
        answer(cs[1], &[(0, ErrorCode::DuplicateSequenceNumber, -1)]),
        102,
    );
    let shifted = events(&mut p).into_iter().find_map(|e| match e {
        ProducerEvent::StaleAckAccepted {
            batches_shifted, ..
        } => Some(batches_shifted),
        _ => None,
    });
    assert_eq!(shifted, Some(1), "the third batch moved down");
    let after = p.stats();
    assert_eq!(after.stale_responses, before.stale_responses + 1);
    assert_eq!(after.duplicates_acked, before.duplicates_acked + 1);
    assert_eq!(after.batches_delivered, before.batches_delivered + 1);
}

/// The event buffer keeps the newest `EVENTS_MAX` events and counts the ones it dropped.
#[test]
fn event_buffer_keeps_the_newest_events_and_counts_the_dropped_ones() {
    let mut p = ready(ProducerConfig::default());
    events(&mut p);
    let extra = 10;
    for _ in 0..EVENTS_MAX + extra {
        p.send(0, Vec::new(), 0); // refused at once: one BatchFailed event each
    }
    assert_eq!(p.stats().events_dropped, extra as u64);
    let kept = events(&mut p);
    assert_eq!(kept.len(), EVENTS_MAX);
    assert!(matches!(
        kept.first(),
        Some(ProducerEvent::BatchFailed { handle, .. }) if handle.0 == extra as u64
    ));
}

/// Switching events off drops the buffered ones and records no more; switching them on
/// again records again.
#[test]
fn events_switched_off_are_neither_kept_nor_recorded() {
    let mut p = ready(ProducerConfig::default());
    p.send(0, Vec::new(), 0);
    p.set_record_events(false);
    p.send(0, Vec::new(), 0);
    assert!(
        p.poll_event().is_none(),
        "buffered events dropped, none recorded"
    );
    p.set_record_events(true);
    p.send(0, Vec::new(), 0);
    assert!(matches!(
        p.poll_event(),
        Some(ProducerEvent::BatchFailed { .. })
    ));
}

/// Every request, InitProducerId or Produce, gets a fresh correlation id, counting up.
#[test]
fn every_request_gets_a_fresh_correlation_id() {
    let mut p = Producer::new(ProducerConfig::default()).unwrap();
    let first = p.poll_request(0).unwrap();
    p.on_response(
        init_refused(first.correlation_id, ErrorCode::NotLeaderOrFollower),
        0,
    );
    let second = p.poll_request(100).unwrap();
    p.on_response(init_ok(second.correlation_id, PID, ProducerEpoch(0)), 100);
    p.send(0, records(1), 100);
    let third = p.poll_request(100).unwrap();
    assert!(matches!(third.request, Request::Produce(_)));
    assert_eq!(
        [
            first.correlation_id,
            second.correlation_id,
            third.correlation_id
        ],
        [0, 1, 2]
    );
}

/// The settings given are the settings in force.
#[test]
fn config_returns_the_settings_given() {
    let config = ProducerConfig {
        max_in_flight: 3,
        retry_backoff_ms: 7,
        ..ProducerConfig::default()
    };
    let p = Producer::new(config.clone()).unwrap();
    assert_eq!(p.config(), &config);
}

/// A backoff that is over is no reason to wake up; one still running is.
#[test]
fn next_wakeup_reports_only_backoffs_still_running() {
    let mut p = ready(ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 5_000,
        ..ProducerConfig::default()
    });
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 10);
    assert_eq!(p.next_wakeup_ms(), Some(110), "the retry backoff");
    p.on_timeout(110);
    assert_eq!(
        p.next_wakeup_ms(),
        Some(5_000),
        "backoff over: the delivery timeout"
    );
}

/// The InitProducerId backoff is a wakeup while it runs and no request is awaited.
#[test]
fn next_wakeup_reports_the_init_producer_id_backoff_only_while_it_runs() {
    let mut p = Producer::new(ProducerConfig::default()).unwrap();
    let init = p.poll_request(0).unwrap();
    assert_eq!(p.next_wakeup_ms(), Some(30_000), "the request timeout only");
    p.on_response(
        init_refused(init.correlation_id, ErrorCode::NotLeaderOrFollower),
        5,
    );
    assert_eq!(p.next_wakeup_ms(), Some(105));
    p.on_timeout(105);
    assert_eq!(
        p.next_wakeup_ms(),
        None,
        "backoff over and nothing else pending"
    );
}

/// A response that is not the kind of the request fails the request's batches as a broken
/// connection would, and is reported as malformed.
#[test]
fn response_of_the_wrong_kind_fails_the_batches_as_malformed() {
    let mut p = ready(ProducerConfig::default());
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(init_ok(c1, PID, ProducerEpoch(0)), 1);
    assert!(events(&mut p).contains(&ProducerEvent::MalformedResponse {
        correlation_id: c1,
        partition: None
    }));
    let (_, sent) = poll_produce(&mut p, 101).expect("retried as after a network error");
    assert_eq!(sent[0].base_sequence.0, 0);
}

/// A partition's first batch starts its sequences without a reset event; a reset is
/// reported only for a partition that had sequences under another epoch.
#[test]
fn first_batch_of_a_partition_is_no_sequence_reset() {
    let mut p = ready(ProducerConfig::default());
    p.send(0, records(1), 0);
    poll_produce(&mut p, 0).unwrap();
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, ProducerEvent::PartitionSequenceReset { .. }))
    );
}
