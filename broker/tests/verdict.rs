//! What a produce outcome tells its reader: the outcome's name, the offsets it answers with,
//! and the explanation's words for refused batches. The simulator's trace, its diagrams and
//! `explain` show exactly these, so each is a rule of its own.

use bytes::{Bytes, BytesMut};
use idempo_broker::{Broker, BrokerConfig};
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

fn batch(pid: i64, seq: i32, count: i32) -> Bytes {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("{pid}-{seq}-{i}")))
        .collect();
    RecordBatch::idempotent(ProducerId(pid), ProducerEpoch(0), Sequence(seq), 0, records).to_bytes()
}

fn broker() -> Broker {
    Broker::new(BrokerConfig::default()).expect("the default config is valid")
}

#[test]
fn outcomes_are_named_appended_duplicate_or_rejected() {
    let mut b = broker();
    let first = b.produce(0, &batch(1, 0, 2));
    let retry = b.produce(0, &batch(1, 0, 2));
    let gap = b.produce(0, &batch(1, 9, 1));
    assert_eq!(first.outcome_name(), "appended");
    assert_eq!(retry.outcome_name(), "duplicate");
    assert_eq!(gap.outcome_name(), "rejected");
}

#[test]
fn an_appended_batch_answers_with_its_own_offsets_and_a_duplicate_with_the_originals() {
    let mut b = broker();
    b.produce(0, &batch(2, 0, 3));
    let appended = b.produce(0, &batch(1, 0, 2));
    assert_eq!(appended.offsets(), Some((3, 4)));
    let retry = b.produce(0, &batch(1, 0, 2));
    assert_eq!(retry.offsets(), Some((3, 4)));
    let gap = b.produce(0, &batch(1, 9, 1));
    assert_eq!(gap.offsets(), None, "a refused batch has no offsets");
}

#[test]
fn an_invalid_batch_is_explained_in_words() {
    let mut b = broker();
    let mut bytes = BytesMut::from(&batch(1, 0, 2)[..]);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let o = b.produce(0, &bytes.freeze());
    assert_eq!(o.response.error_code, ErrorCode::CorruptMessage);
    let text = o.to_string();
    assert!(
        text.contains("CRC-32C") && text.contains("does not match"),
        "{text}"
    );
}

/// A batch exactly 2^30 sequences ahead of the expected one is read as behind (an old retry),
/// not as a gap of 2^30 missing records: the explanation splits the 2^31 sequence space in
/// half, as the wrap-aware comparison does.
#[test]
fn a_batch_half_the_sequence_space_ahead_is_explained_as_behind() {
    let mut b = broker();
    b.produce(0, &batch(1, 0, 1));
    let just_ahead = b.produce(0, &batch(1, 1 + (1 << 30) - 1, 1));
    assert_eq!(
        just_ahead.response.error_code,
        ErrorCode::OutOfOrderSequenceNumber
    );
    assert!(
        just_ahead
            .to_string()
            .contains("1073741823 records missing before it"),
        "{just_ahead}"
    );
    let half = b.produce(0, &batch(1, 1 + (1 << 30), 1));
    assert_eq!(
        half.response.error_code,
        ErrorCode::OutOfOrderSequenceNumber
    );
    let text = half.to_string();
    assert!(
        text.contains("behind") && !text.contains("missing"),
        "{text}"
    );
}

#[test]
fn an_outcome_carries_the_batchs_own_last_sequence() {
    let mut b = broker();
    let first = b.produce(0, &batch(1, 5, 3));
    assert_eq!(
        (first.first_sequence, first.last_sequence),
        (Sequence(5), Sequence(7))
    );
    let next = b.produce(0, &batch(1, 8, 4));
    assert_eq!(
        (next.first_sequence, next.last_sequence),
        (Sequence(8), Sequence(11))
    );
}

/// Two brokers' producer states are equal exactly when each producer's epoch, last timestamp
/// and retained batches are: a different timestamp or epoch makes them differ.
#[test]
fn producer_states_differ_when_the_epoch_or_the_timestamp_differs() {
    let stamped = |epoch: i16, ts: i64| {
        let mut b = broker();
        let records = vec![Record::with_value(0, "v")];
        let bytes = RecordBatch::idempotent(
            ProducerId(1),
            ProducerEpoch(epoch),
            Sequence(0),
            ts,
            records,
        )
        .to_bytes();
        assert!(b.produce(0, &bytes).is_appended());
        b
    };
    let (a, same) = (stamped(0, 10), stamped(0, 10));
    let entry = |b: &Broker| {
        b.producer_state(0)
            .and_then(|s| s.entry(ProducerId(1)))
            .cloned()
            .expect("the producer has state")
    };
    assert_eq!(entry(&a), entry(&same));
    assert_ne!(entry(&a), entry(&stamped(0, 11)), "another last timestamp");
    assert_ne!(entry(&a), entry(&stamped(1, 10)), "another epoch");
    assert!(
        format!("{:?}", entry(&a)).contains("producer_epoch"),
        "Debug names the fields"
    );
}
