//! Rules of the Java client's historical profiles that mutation testing found unchecked
//! (bench/MUTANTS.md): what moves the last acknowledged offset that Kafka 2.4 compares with the
//! log start, what resets it, and when a partition of Kafka 2.5 to 2.7 restarts under a new
//! epoch.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{JavaRules, Producer, ProducerConfig, ProducerEvent};
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Request, Sequence};

/// Today's Java client with Kafka 2.4's answer to `UNKNOWN_PRODUCER_ID` (restart the sequences
/// when the log start passed the last acknowledged offset, else fail the batch).
fn kafka_2_4_unknown_producer_rule() -> ProducerConfig {
    ProducerConfig {
        java: JavaRules {
            unknown_producer_resets_sequences: true,
            ..JavaRules::CURRENT
        },
        ..ProducerConfig::default()
    }
}

/// Whether the batch refused with `UNKNOWN_PRODUCER_ID` is retried (true) or fails (false).
fn retried_after_unknown_producer(p: &mut Producer, correlation_id: i32, log_start: i64) -> bool {
    deliveries(p);
    p.on_response(unknown_producer_id(correlation_id, log_start), 10);
    let failed = deliveries(p).iter().any(|d| d.result.is_err());
    let retried = poll_produce(p, 500).is_some();
    assert_ne!(
        failed, retried,
        "the refused batch either fails or goes out again"
    );
    retried
}

#[test]
fn the_last_acknowledged_offset_is_the_last_record_of_the_acknowledged_batch() {
    // A batch of three records acknowledged at base offset 0: its last record is offset 2.
    // Kafka 2.4 blames retention only if the log start passed that record.
    for (log_start, retried) in [(2, false), (3, true)] {
        let mut p = ready(kafka_2_4_unknown_producer_rule());
        p.send(0, records(3), 0);
        p.send(0, records(1), 0);
        let (c0, _) = poll_produce(&mut p, 0).unwrap();
        let (c1, _) = poll_produce(&mut p, 0).unwrap();
        p.on_response(answer(c0, &[(0, ErrorCode::None, 0)]), 1);
        assert_eq!(
            retried_after_unknown_producer(&mut p, c1, log_start),
            retried,
            "log start {log_start} against the last acknowledged offset 2"
        );
    }
}

/// A producer at `epoch` whose one-record batch to partition 0 was acknowledged at offset 5,
/// and whose next batch was then refused for good (`INVALID_RECORD`): the producer bumps.
fn acked_at_5_then_failed(epoch: ProducerEpoch) -> Producer {
    let mut p = Producer::new(kafka_2_4_unknown_producer_rule()).expect("valid config");
    let init = p.poll_request(0).expect("InitProducerId first");
    p.on_response(init_ok(init.correlation_id, PID, epoch), 0);
    p.send(0, records(1), 0);
    p.send(0, records(1), 0);
    let (c0, _) = poll_produce(&mut p, 0).unwrap();
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c0, &[(0, ErrorCode::None, 5)]), 1);
    p.on_response(answer(c1, &[(0, ErrorCode::InvalidRecord, -1)]), 2);
    p
}

#[test]
fn an_epoch_bump_keeps_the_last_acknowledged_offset() {
    let mut p = acked_at_5_then_failed(ProducerEpoch(0));
    p.send(0, records(1), 3);
    let (c, sent) = poll_produce(&mut p, 3).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].epoch, sent[0].base_sequence),
        (PID, ProducerEpoch(1), Sequence(0)),
        "the bump keeps the producer id"
    );
    // Offset 5 is still acknowledged: a log start of 3 cannot be retention's doing.
    assert!(!retried_after_unknown_producer(&mut p, c, 3));
}

#[test]
fn a_new_producer_id_starts_with_nothing_acknowledged() {
    // At epoch Short.MAX_VALUE the bump cannot add one: the producer asks for a new id.
    let mut p = acked_at_5_then_failed(ProducerEpoch(i16::MAX));
    p.send(0, records(1), 3);
    let init = p.poll_request(3).expect("a new producer id is asked for");
    assert!(matches!(init.request, Request::InitProducerId(_)));
    p.on_response(
        init_ok(init.correlation_id, ProducerId(8), ProducerEpoch(0)),
        4,
    );
    let (c, sent) = poll_produce(&mut p, 4).unwrap();
    assert_eq!(
        (sent[0].producer_id, sent[0].base_sequence),
        (ProducerId(8), Sequence(0))
    );
    // Nothing of producer 8 was acknowledged (-1, below even a log start of 0): blamed on
    // retention, retried.
    assert!(retried_after_unknown_producer(&mut p, c, 0));
}

/// Partition 0's batch fails for good while partition 1's, in another request, is in flight;
/// partition 1's is acknowledged after the bump. Returns the producer and its events since.
fn acked_after_the_bump(rules: JavaRules) -> (Producer, Vec<ProducerEvent>) {
    let mut p = ready(ProducerConfig {
        java: rules,
        ..ProducerConfig::default()
    });
    p.send(0, records(1), 0);
    let (c0, _) = poll_produce(&mut p, 0).unwrap();
    p.send(1, records(1), 0);
    let (c1, _) = poll_produce(&mut p, 0).unwrap();
    p.on_response(answer(c0, &[(0, ErrorCode::InvalidRecord, -1)]), 1);
    p.send(0, records(1), 1);
    let (_, bumped) = poll_produce(&mut p, 1).unwrap();
    assert_eq!(bumped[0].epoch, ProducerEpoch(1), "the producer bumped");
    events(&mut p);
    p.on_response(answer(c1, &[(1, ErrorCode::None, 0)]), 2);
    let since = events(&mut p);
    (p, since)
}

fn resets_of_partition_1(events: &[ProducerEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ProducerEvent::PartitionSequenceReset { partition: 1, .. }
            )
        })
        .count()
}

#[test]
fn before_kafka_2_8_the_last_old_epoch_batch_acknowledged_restarts_its_partition_at_once() {
    let rules = JavaRules {
        bump_skips_idle_partitions: true,
        ..JavaRules::CURRENT
    };
    let (mut p, since) = acked_after_the_bump(rules);
    assert_eq!(resets_of_partition_1(&since), 1, "restarted by the ack");
    p.send(1, records(1), 3);
    let (_, next) = poll_produce(&mut p, 3).unwrap();
    assert_eq!(
        (next[0].epoch, next[0].base_sequence),
        (ProducerEpoch(1), Sequence(0)),
        "sequence 0 under the new epoch, not its old next sequence 1"
    );
}

#[test]
fn today_a_partition_restarts_when_its_next_batch_is_drained_not_when_acknowledged() {
    let (mut p, since) = acked_after_the_bump(JavaRules::CURRENT);
    assert_eq!(resets_of_partition_1(&since), 0, "the ack restarts nothing");
    p.send(1, records(1), 3);
    let (_, next) = poll_produce(&mut p, 3).unwrap();
    assert_eq!(
        (next[0].epoch, next[0].base_sequence),
        (ProducerEpoch(1), Sequence(0))
    );
    assert_eq!(
        resets_of_partition_1(&events(&mut p)),
        1,
        "restarted at drain"
    );
}
