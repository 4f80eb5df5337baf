//! The client profiles, one behaviour per difference: what Kafka's Java client does (the
//! `java` profile, the default) and what idempo's improvement does instead (the `idempo`
//! profile). The crate documentation's table names the Kafka source of each.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{DeliveryError, FailureReason, Producer, ProducerConfig, ProducerEvent};
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Request, Sequence};

fn java() -> ProducerConfig {
    ProducerConfig::default()
}

fn timeouts(profile: ProducerConfig) -> ProducerConfig {
    ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_000,
        ..profile
    }
}

/// Three batches of two records on partition 0 in flight, the first answered
/// `OUT_OF_ORDER_SEQUENCE_NUMBER` (a real gap): the epoch is bumped and the first batch is
/// re-sent as epoch 1, sequence 0. Returns the producer, the two older requests and the
/// re-send's request.
fn bump_with_two_old_attempts_in_flight(mut p: Producer) -> (Producer, [i32; 2], i32) {
    for _ in 0..3 {
        p.send(0, records(2), 0);
    }
    let cs: Vec<i32> = (0..3).map(|_| poll_produce(&mut p, 0).unwrap().0).collect();
    p.on_response(
        answer(cs[0], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1,
    );
    let (c4, sent) = poll_produce(&mut p, 101).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    deliveries(&mut p);
    (p, [cs[1], cs[2]], c4)
}

// ----- stale-answer generations ----------------------------------------------------------

/// Java (`Sender.completeBatch` → `canRetry`) treats an answer to an attempt made before the
/// bump like any other: `INVALID_PRODUCER_EPOCH` is not retriable, so the batch fails although
/// its new state was never sent.
#[test]
fn java_fails_a_batch_on_a_stale_invalid_producer_epoch() {
    let (mut p, old, _) = bump_with_two_old_attempts_in_flight(ready(java()));
    p.on_response(
        answer(old[1], &[(0, ErrorCode::InvalidProducerEpoch, -1)]),
        102,
    );
    let report = p.poll_delivery().expect("the third batch failed");
    assert_eq!(
        report.result,
        Err(DeliveryError::Definite {
            reason: FailureReason::Broker(ErrorCode::InvalidProducerEpoch),
            attempts: 1
        })
    );
    assert_eq!(
        p.stats().stale_responses,
        0,
        "no stale answer is recognised"
    );
}

/// idempo recognises the stale answer by the batch's generation, does not act on it, and
/// re-sends the batch under its new state.
#[test]
fn idempo_ignores_a_stale_invalid_producer_epoch_and_resends_the_batch() {
    let (mut p, old, _) = bump_with_two_old_attempts_in_flight(ready_idempo_acked(idempo()));
    p.on_response(
        answer(old[1], &[(0, ErrorCode::InvalidProducerEpoch, -1)]),
        102,
    );
    assert!(p.poll_delivery().is_none(), "the batch is not failed");
    assert_eq!(p.stats().stale_responses, 1);
}

/// Java completes a batch whose old-epoch attempt was acknowledged, and the later batch keeps
/// the sequence after the completed one's new (never sent) slot: a hole the broker refuses.
#[test]
fn java_completes_a_stale_ack_and_leaves_the_later_batch_behind_a_hole() {
    let (mut p, old, c4) = bump_with_two_old_attempts_in_flight(ready(java()));
    p.on_response(answer(old[0], &[(0, ErrorCode::None, 10)]), 102);
    let d = p.poll_delivery().unwrap().result.unwrap();
    assert_eq!(
        (d.producer_epoch, d.base_sequence, d.base_offset),
        (ProducerEpoch(0), Sequence(2), 10),
        "the report gives the attempt that was written"
    );
    p.on_response(answer(c4, &[(0, ErrorCode::None, 12)]), 103);
    p.on_response(
        answer(old[1], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        104,
    );
    let (_, sent) = poll_produce(&mut p, 204).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(4)),
        "still after the hole at 2..=3"
    );
}

/// idempo delivers the stale-acknowledged batch and moves the later batch down into its slot.
#[test]
fn idempo_closes_the_sequence_hole_of_a_stale_ack() {
    let (mut p, old, c4) = bump_with_two_old_attempts_in_flight(ready_idempo_acked(idempo()));
    p.on_response(answer(old[0], &[(0, ErrorCode::None, 10)]), 102);
    assert!(p.poll_delivery().unwrap().result.is_ok());
    p.on_response(answer(c4, &[(0, ErrorCode::None, 12)]), 103);
    p.on_response(
        answer(old[1], &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        104,
    );
    let (_, sent) = poll_produce(&mut p, 204).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(2))
    );
}

// ----- unresolved on any expired sent batch ------------------------------------------------

/// Java (`Sender.sendProducerData`) marks a partition unresolved only for an expired batch
/// that was retried (`inRetry()`). A batch that expires on its first attempt leaves the
/// partition as it was: the next batch simply takes the next sequence.
#[test]
fn java_leaves_the_partition_resolved_when_a_batch_expires_on_its_first_attempt() {
    let mut p = ready(timeouts(java()));
    p.send(0, records(2), 0);
    poll_produce(&mut p, 0).unwrap();
    p.on_timeout(1_000);
    assert!(p.poll_delivery().unwrap().result.is_err());
    assert!(
        !events(&mut p)
            .iter()
            .any(|e| matches!(e, ProducerEvent::PartitionUnresolved { .. }))
    );
    p.send(0, records(1), 1_000);
    let (_, sent) = poll_produce(&mut p, 1_000).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(2))
    );
}

/// Java marks the partition unresolved once the expired batch had been retried.
#[test]
fn java_marks_the_partition_unresolved_when_a_retried_batch_expires() {
    let mut p = ready(timeouts(java()));
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 10);
    poll_produce(&mut p, 110).unwrap();
    p.on_timeout(1_000);
    assert!(
        events(&mut p).contains(&ProducerEvent::PartitionUnresolved {
            partition: 0,
            unresolved_next_sequence: Sequence(2)
        })
    );
}

/// idempo marks it for any sent batch: its sequence's fate is unknown either way.
#[test]
fn idempo_marks_the_partition_unresolved_when_a_batch_expires_on_its_first_attempt() {
    let mut p = ready(timeouts(idempo()));
    p.send(0, records(2), 0);
    poll_produce(&mut p, 0).unwrap();
    p.on_timeout(1_000);
    assert!(
        events(&mut p).contains(&ProducerEvent::PartitionUnresolved {
            partition: 0,
            unresolved_next_sequence: Sequence(2)
        })
    );
    p.send(0, records(1), 1_000);
    let (_, sent) = poll_produce(&mut p, 1_000).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0)),
        "resolved by a bump"
    );
}

// ----- expired batches in flight -------------------------------------------------------------

/// A retried batch (sequence `base`, two records) expires while its retry is on the wire, with
/// a second batch (sequence `base + 2`) sent behind it; the second is acknowledged.
fn expired_retry_with_later_batch_acked(mut p: Producer, base: i32) -> (Producer, i32) {
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 450);
    let (c2, _) = poll_produce(&mut p, 550).unwrap();
    p.send(0, records(2), 560);
    let (c3, sent) = poll_produce(&mut p, 560).unwrap();
    assert_eq!(sent[0].base_sequence, Sequence(base + 2));
    p.on_timeout(1_500);
    assert!(p.poll_delivery().unwrap().result.is_err());
    p.on_response(answer(c3, &[(0, ErrorCode::None, 2)]), 1_501);
    (p, c2)
}

fn expiry(profile: ProducerConfig) -> ProducerConfig {
    ProducerConfig {
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 1_500,
        ..profile
    }
}

/// Java removes an expired batch from the in-flight set at expiry (`handleFailedBatch` →
/// `removeInFlightBatch`), so the later acknowledgement resolves the partition at once, while
/// the expired batch's request is still awaited.
#[test]
fn java_drops_an_expired_batch_from_the_in_flight_set_at_once() {
    let (mut p, _c2) = expired_retry_with_later_batch_acked(ready(expiry(java())), 0);
    p.send(0, records(1), 1_501);
    let (_, sent) = poll_produce(&mut p, 1_501).expect("resolved: a new batch goes out");
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(4))
    );
}

/// idempo keeps it in flight until its request ends, so that its own late answer can still
/// prove the partition consistent.
#[test]
fn idempo_keeps_an_expired_batch_in_flight_until_its_request_ends() {
    let (mut p, c2) = expired_retry_with_later_batch_acked(ready_idempo_acked(expiry(idempo())), 1);
    p.send(0, records(1), 1_501);
    assert!(p.poll_request(1_501).is_none(), "still unresolved");
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 1_502);
    let (_, sent) = poll_produce(&mut p, 1_502).expect("resolved by the late ack");
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(0), Sequence(5))
    );
}

/// A late acknowledgement of an expired batch moves Java's `lastAckedSequence` even when the
/// partition has moved to a new epoch since (`handleCompletedBatch` checks no epoch).
#[test]
fn java_learns_from_a_late_ack_of_an_expired_batch_whatever_the_epoch() {
    let mut p = ready(expiry(java()));
    p.send(0, records(2), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_request_failed(c1, 450);
    let (c2, _) = poll_produce(&mut p, 550).unwrap();
    p.on_timeout(1_500); // expired in retry: unresolved, and out of the in-flight set
    p.send(0, records(1), 1_500);
    let (c3, sent) = poll_produce(&mut p, 1_500).expect("resolved by a bump");
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    // The old attempt's ack arrives: Java's lastAckedSequence becomes 1 (epoch 0's).
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 1_501);
    // The new batch is refused as a gap; for Java it is not the next sequence (0 != 1 + 1),
    // so it is collateral damage and retried unchanged, without a bump.
    p.on_response(
        answer(c3, &[(0, ErrorCode::OutOfOrderSequenceNumber, -1)]),
        1_502,
    );
    let (_, sent) = poll_produce(&mut p, 1_602).unwrap();
    assert_eq!(
        (sent[0].epoch, sent[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    assert_eq!(p.stats().epoch_bumps, 1, "no second bump");
}

// ----- producer id reset ------------------------------------------------------------------------

/// At epoch `i16::MAX` Java resets the producer id and, in the same
/// `bumpIdempotentProducerEpoch`, re-stamps the asking partitions under
/// `ProducerIdAndEpoch.NONE`: the retry goes out with no producer id once the new id arrives.
#[test]
fn java_restamps_under_no_producer_id_when_the_epoch_is_exhausted() {
    let mut p = Producer::new(java()).unwrap();
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
    p.on_response(
        init_ok(reinit.correlation_id, ProducerId(8), ProducerEpoch(0)),
        102,
    );
    p.send(0, records(1), 102);
    let (c2, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(sent.len(), 1, "the new batch waits for the old one");
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (ProducerId::NONE, ProducerEpoch::NONE, Sequence(0))
    );
    p.on_response(answer(c2, &[(0, ErrorCode::None, 0)]), 103);
    let (_, sent) = poll_produce(&mut p, 103).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (ProducerId(8), ProducerEpoch(0), Sequence(0))
    );
}

/// idempo re-stamps the asking partitions under the new producer id when it arrives.
#[test]
fn idempo_restamps_under_the_new_producer_id_when_the_epoch_is_exhausted() {
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
    p.on_response(
        init_ok(reinit.correlation_id, ProducerId(8), ProducerEpoch(0)),
        102,
    );
    let (_, sent) = poll_produce(&mut p, 102).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (ProducerId(8), ProducerEpoch(0), Sequence(0))
    );
}

// ----- draining past a blocked partition ------------------------------------------------------

/// Partition 0 has batch A (sequence 0) in flight and batch B (sequence 1) back in its queue
/// after a retriable error, so B must wait for A (rule 4). Partition 1 then gets a new batch.
/// Returns the producer and A's request.
fn blocked_partition_zero(config: ProducerConfig) -> (Producer, i32) {
    let mut p = if config.client_profile == idempo().client_profile {
        ready_idempo_acked(config)
    } else {
        ready(config)
    };
    p.send(0, records(1), 0);
    let (ca, _) = poll_produce(&mut p, 0).unwrap();
    p.send(0, records(1), 0);
    let (cb, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(cb, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 1);
    p.send(1, records(1), 1);
    (p, ca)
}

/// Java's `drainBatchesForOneNode` stops (`break`) at the blocked partition, and the next
/// drain starts there again: partition 1's new batch waits too.
#[test]
fn java_drain_stops_at_a_blocked_partition() {
    let (mut p, ca) = blocked_partition_zero(java());
    assert!(p.poll_request(101).is_none(), "partition 1 waits behind 0");
    assert!(
        p.poll_request(102).is_none(),
        "and the next drain starts at 0 again"
    );
    p.on_response(answer(ca, &[(0, ErrorCode::None, 0)]), 103);
    let (_, sent) = poll_produce(&mut p, 103).unwrap();
    let partitions: Vec<i32> = sent.iter().map(|s| s.partition).collect();
    assert_eq!(partitions, vec![0, 1], "both go once 0 is unblocked");
}

/// idempo skips the blocked partition and drains the others.
#[test]
fn idempo_drains_past_a_blocked_partition() {
    let (mut p, _ca) = blocked_partition_zero(idempo());
    let (_, sent) = poll_produce(&mut p, 101).expect("partition 1 goes");
    let partitions: Vec<i32> = sent.iter().map(|s| s.partition).collect();
    assert_eq!(partitions, vec![1]);
}

// ----- first batch alone ---------------------------------------------------------------------

/// Java sends a partition's second batch while its first is unacknowledged.
#[test]
fn java_sends_a_second_batch_before_the_first_is_acknowledged() {
    let mut p = ready(java());
    p.send(0, records(1), 0);
    p.send(0, records(1), 0);
    assert!(poll_produce(&mut p, 0).is_some());
    assert!(poll_produce(&mut p, 0).is_some());
}

/// idempo keeps a partition's first batch under a producer id alone until the broker
/// acknowledges one.
#[test]
fn idempo_sends_a_partitions_first_batch_alone_until_one_is_acknowledged() {
    let mut p = ready(idempo());
    p.send(0, records(1), 0);
    p.send(0, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    assert!(poll_produce(&mut p, 0).is_none(), "the second batch waits");
    p.on_response(answer(c1, &[(0, ErrorCode::None, 0)]), 1);
    let (_, sent) = poll_produce(&mut p, 1).unwrap();
    assert_eq!(sent[0].base_sequence, Sequence(1));
}

/// Partition 0's first batch acknowledged by node 1, then batch A on the wire to node 1 when
/// the metadata (refreshed at its max age, 1 000 ms) says node 2 leads now, and batch B sent.
/// Returns the producer and A's request.
fn leader_moves_with_a_batch_on_the_wire(profile: ProducerConfig) -> (Producer, i32) {
    let config = routed_with(ProducerConfig {
        metadata_max_age_ms: 1_000,
        ..profile
    });
    let mut p = ready_routed(config, &[(0, 1, 0)]);
    p.send(0, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), 10);
    p.send(0, records(1), 500);
    let (node, a, _) = poll_routed(&mut p, 500).unwrap();
    assert_eq!(node, 1);
    let (m, _) = poll_metadata(&mut p, 1_000);
    p.on_response(metadata(m, &[(0, 2, 1)]), 1_000);
    p.send(0, records(1), 1_000);
    (p, a)
}

#[test]
fn java_drains_a_new_batch_to_the_new_leader_while_an_older_one_is_on_the_wire() {
    let (mut p, _) = leader_moves_with_a_batch_on_the_wire(java());
    let (node, _, sent) = poll_routed(&mut p, 1_000).expect("B goes at once");
    assert_eq!(node, 2, "to the new leader, on another connection than A");
    assert_eq!(sent[0].base_sequence, Sequence(2), "after A's sequence 1");
}

#[test]
fn idempo_drains_to_the_new_leader_once_nothing_is_on_the_wire_to_the_old_one() {
    let (mut p, a) = leader_moves_with_a_batch_on_the_wire(idempo());
    assert!(
        p.poll_outgoing(1_000).is_none(),
        "B waits while A is on the wire to node 1"
    );
    p.on_response(answer(a, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 1_010);
    let (node, _, first) = poll_routed(&mut p, 1_010).unwrap();
    assert_eq!(
        (node, first[0].base_sequence),
        (2, Sequence(1)),
        "A's retry first, to the new leader"
    );
    let (node, _, second) = poll_routed(&mut p, 1_010).unwrap();
    assert_eq!((node, second[0].base_sequence), (2, Sequence(2)), "then B");
}
