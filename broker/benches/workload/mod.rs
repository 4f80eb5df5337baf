//! The produce benchmarks' one workload, shared by `produce.rs` (criterion, wall clock) and
//! `produce_instructions.rs` (callgrind, instruction counts), so both measure the same batches:
//! `PRODUCERS` producers interleaved, `BATCHES_PER_PRODUCER` in-sequence batches each, of
//! `RECORDS_PER_BATCH` records of `VALUE_BYTES` bytes.

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// Records per batch.
pub const RECORDS_PER_BATCH: i32 = 16;
/// Bytes per record value.
pub const VALUE_BYTES: usize = 100;
/// Producers writing to the partition, interleaved.
pub const PRODUCERS: i64 = 16;
/// Batches each producer sends before the broker is recreated. With `PRODUCERS` this bounds
/// the log at 2048 batches (about 4 MB).
pub const BATCHES_PER_PRODUCER: i32 = 128;
/// The partition written to.
pub const PARTITION: i32 = 0;

/// A batch of `RECORDS_PER_BATCH` records of `VALUE_BYTES` each, as producer `producer_id`
/// sends it as its `index`-th batch.
pub fn batch(producer_id: i64, index: i32) -> Bytes {
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

/// Every producer's batches in send order, round-robin across producers: with idempotence on,
/// each one is the next in its producer's sequence, so each produce is a fresh append.
pub fn in_sequence_batches() -> Vec<Bytes> {
    (0..BATCHES_PER_PRODUCER)
        .flat_map(|index| (1..=PRODUCERS).map(move |producer_id| batch(producer_id, index)))
        .collect()
}

/// A broker with the default configuration but for `idempotence`.
pub fn broker(idempotence: bool) -> Broker {
    Broker::new(BrokerConfig {
        idempotence,
        ..BrokerConfig::default()
    })
    .expect("the default configuration is valid")
}
