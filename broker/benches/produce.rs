//! What deduplication costs on the broker's produce path.
//!
//! Group `produce_16_records` measures a fresh, in-sequence append of a 16-record batch
//! (values of 100 bytes, about 1.9 KB a batch) with idempotence on and off, side by side: the
//! same pre-encoded bytes, the same broker lifecycle, only `BrokerConfig::idempotence`
//! differs. Group `produce_refused` measures the two answers that append nothing: an exact
//! retry (a duplicate, answered with the original offsets) and a sequence gap
//! (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
//!
//! Run: `cargo bench -p idempo-broker --bench produce -- --warm-up-time 1 --measurement-time 3`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idempo_protocol::ErrorCode;
use std::hint::black_box;
use std::time::{Duration, Instant};

mod workload;
use idempo_broker::Broker;
use workload::{PARTITION, PRODUCERS, RECORDS_PER_BATCH, batch, broker, in_sequence_batches};

/// Produces `iters` batches, walking `batches` from the start on a fresh broker and starting
/// over on another fresh broker when they run out. Only the produce calls are timed: creating
/// and dropping brokers (and their logs) is not, and happens equally often on and off.
fn produce_in_sequence(idempotence: bool, batches: &[Bytes], iters: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let mut broker = broker(idempotence);
        let n = left.min(batches.len() as u64);
        let chunk = &batches[..usize::try_from(n).expect("at most batches.len()")];
        let start = Instant::now();
        for bytes in chunk {
            black_box(broker.produce(PARTITION, black_box(bytes)));
        }
        elapsed += start.elapsed();
        left -= n;
        drop(black_box(broker));
    }
    elapsed
}

fn produce_16_records(c: &mut Criterion) {
    let batches = in_sequence_batches();
    for idempotence in [true, false] {
        let mut broker = broker(idempotence);
        for bytes in &batches {
            let outcome = broker.produce(PARTITION, bytes);
            assert!(
                outcome.is_appended(),
                "every batch is a fresh append: {outcome}"
            );
        }
    }
    let mut group = c.benchmark_group("produce_16_records");
    group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
    group.bench_function("idempotence_on", |b| {
        b.iter_custom(|iters| produce_in_sequence(true, &batches, iters));
    });
    group.bench_function("idempotence_off", |b| {
        b.iter_custom(|iters| produce_in_sequence(false, &batches, iters));
    });
    group.finish();
}

/// A broker where every producer has a full window of five batches.
fn broker_with_full_windows() -> Broker {
    let mut broker = broker(true);
    for index in 0..5 {
        for producer_id in 1..=PRODUCERS {
            let outcome = broker.produce(PARTITION, &batch(producer_id, index));
            assert!(outcome.is_appended(), "setting up the windows: {outcome}");
        }
    }
    broker
}

fn produce_refused(c: &mut Criterion) {
    // Neither answer changes the broker, so one broker serves every iteration.
    let mut broker = broker_with_full_windows();
    let retry = batch(1, 2);
    let gap = batch(1, 9); // its 10th batch, after the 5th: 64 records missing
    let outcome = broker.produce(PARTITION, &retry);
    assert!(
        outcome.is_duplicate(),
        "a retry within the window: {outcome}"
    );
    let outcome = broker.produce(PARTITION, &gap);
    assert_eq!(
        outcome.response.error_code,
        ErrorCode::OutOfOrderSequenceNumber,
        "sequence 144 where 80 is expected: {outcome}"
    );

    let mut group = c.benchmark_group("produce_refused");
    group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
    group.bench_function("duplicate_retry", |b| {
        b.iter(|| broker.produce(PARTITION, black_box(&retry)));
    });
    group.bench_function("out_of_order", |b| {
        b.iter(|| broker.produce(PARTITION, black_box(&gap)));
    });
    group.finish();
}

criterion_group!(benches, produce_16_records, produce_refused);
criterion_main!(benches);
