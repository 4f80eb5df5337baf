//! Helpers shared by the broker's integration tests.

use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// Producer 1's batch at epoch 0 and sequence `seq`: one record whose value is the sequence.
pub fn batch(seq: i32) -> bytes::Bytes {
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(seq),
        1_000,
        vec![Record::with_value(0, format!("{seq}"))],
    )
    .to_bytes()
}
