//! Instruction counts of the produce path, idempotence on versus off, for `callgrind`.
//!
//! Not a timing benchmark: `bench/produce-instructions.sh` runs this binary under
//! `valgrind --tool=callgrind`, collecting only inside [`produce_all`], once with
//! idempotence on and once off, and prints the two counts and the dedup rule's share. The
//! workload is `benches/produce.rs`'s: 16 producers interleaved, 128 in-sequence batches
//! each, 16 records of 100 bytes a batch, every produce a fresh append.
//!
//! Run directly it does the same work and prints what it did (so `cargo bench` is harmless).

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
use std::hint::black_box;

const RECORDS_PER_BATCH: i32 = 16;
const VALUE_BYTES: usize = 100;
const PRODUCERS: i64 = 16;
const BATCHES_PER_PRODUCER: i32 = 128;

fn batch(producer_id: i64, index: i32) -> Bytes {
    let base_sequence = index * RECORDS_PER_BATCH;
    let records = (0..RECORDS_PER_BATCH)
        .map(|i| {
            let mut value = format!("producer {producer_id} sequence {}", base_sequence + i);
            value.extend(std::iter::repeat_n(
                '.',
                VALUE_BYTES.saturating_sub(value.len()),
            ));
            Record::with_value(i, value)
        })
        .collect();
    RecordBatch::idempotent(
        ProducerId(producer_id),
        ProducerEpoch(0),
        Sequence(base_sequence),
        1_000 + i64::from(index),
        records,
    )
    .to_bytes()
}

/// The measured part: every batch produced once on `broker`.
#[inline(never)]
fn produce_all(broker: &mut Broker, batches: &[Bytes]) -> usize {
    let mut appended = 0;
    for bytes in batches {
        appended += usize::from(black_box(broker.produce(0, black_box(bytes))).is_appended());
    }
    appended
}

fn main() {
    let idempotence = !std::env::args().any(|a| a == "off");
    let batches: Vec<Bytes> = (0..BATCHES_PER_PRODUCER)
        .flat_map(|index| (1..=PRODUCERS).map(move |producer_id| batch(producer_id, index)))
        .collect();
    let mut broker = Broker::new(BrokerConfig {
        idempotence,
        ..BrokerConfig::default()
    })
    .expect("the default configuration is valid");
    let appended = produce_all(&mut broker, &batches);
    assert_eq!(appended, batches.len(), "every batch is a fresh append");
    println!(
        "idempotence {}: {appended} batches appended",
        if idempotence { "on" } else { "off" }
    );
}
