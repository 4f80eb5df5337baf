//! What a request carries, as the producer tells it (`request_batches`, `unanswered_batches`):
//! the simulator learns a request's batches from these values instead of decoding its bytes,
//! so they must say exactly what the bytes say, for exactly the request asked about.

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{InFlightBatch, Producer, ProducerConfig};
use idempo_protocol::{ErrorCode, ProducerId, Sequence};

/// `(partition, producer id, epoch, base sequence)` of each batch, in request order.
fn stamps(batches: impl Iterator<Item = InFlightBatch>) -> Vec<(i32, ProducerId, i16, Sequence)> {
    batches
        .map(|b| {
            (
                b.partition,
                b.producer_id,
                b.producer_epoch.0,
                b.base_sequence,
            )
        })
        .collect()
}

fn as_sent(sent: &[Sent]) -> Vec<(i32, ProducerId, i16, Sequence)> {
    sent.iter()
        .map(|s| (s.partition, s.producer_id, s.epoch.0, s.base_sequence))
        .collect()
}

#[test]
fn a_request_awaiting_its_answer_carries_the_batches_its_bytes_hold() {
    let mut p = ready(ProducerConfig::default());
    p.send(0, records(2), 0);
    p.send(1, records(1), 0);
    let (first, sent) = poll_produce(&mut p, 0).unwrap();
    p.send(0, records(1), 0);
    let (second, sent_second) = poll_produce(&mut p, 0).unwrap();
    assert_eq!(stamps(p.request_batches(first)), as_sent(&sent));
    assert_eq!(stamps(p.request_batches(second)), as_sent(&sent_second));
    assert_eq!(sent.len(), 2, "the first request carries both partitions");
    assert_eq!(
        p.unanswered_batches(first).count(),
        0,
        "an acks=all request is answered"
    );
    p.on_response(
        answer(first, &[(0, ErrorCode::None, 0), (1, ErrorCode::None, 0)]),
        1,
    );
    assert_eq!(
        p.request_batches(first).count(),
        0,
        "answered: nothing awaits"
    );
    assert_eq!(
        p.request_batches(second).count(),
        1,
        "the other still awaits"
    );
}

#[test]
fn an_acks_zero_request_tells_its_batches_only_while_it_is_the_latest() {
    let mut p = Producer::new(ProducerConfig {
        idempotence: false,
        acks: 0,
        ..ProducerConfig::default()
    })
    .unwrap();
    p.send(0, records(1), 0);
    let first = p.poll_request(0).unwrap();
    let carried = stamps(p.unanswered_batches(first.correlation_id));
    assert_eq!(carried, as_sent(&parse(&first)));
    assert_eq!(carried.len(), 1);
    assert_eq!(
        p.request_batches(first.correlation_id).count(),
        0,
        "complete once sent"
    );
    assert_eq!(
        p.unanswered_batches(first.correlation_id + 1).count(),
        0,
        "another id"
    );
    p.send(1, records(1), 0);
    let second = p.poll_request(0).unwrap();
    assert_eq!(
        p.unanswered_batches(first.correlation_id).count(),
        0,
        "no longer the latest"
    );
    assert_eq!(
        stamps(p.unanswered_batches(second.correlation_id)),
        as_sent(&parse(&second))
    );
}
