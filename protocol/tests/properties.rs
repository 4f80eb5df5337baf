//! Property tests for the protocol crate: every wire type round-trips, the CRC-32C catches
//! what Kafka's CRC catches (and only that), and no input, however hostile, makes a decoder
//! panic.
//!
//! Each property is stated in the doc comment of its test. The generators live at the top;
//! the properties follow in three groups:
//!
//! 1. record batches round-trip and their header agrees with the struct;
//! 2. the CRC covers exactly bytes 21..end (plus its own field);
//! 3. decoders are total: arbitrary and mutated bytes give `Ok` or `Err`, never a panic.
//!
//! (The request and response values of `message` have no byte encoding: see that module.)

use bytes::{Bytes, BytesMut};
use idempo_protocol::record_batch::{
    ATTR_COMPRESSION_MASK, ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD,
};
use idempo_protocol::{
    BatchHeader, DecodeError, Header, ProducerEpoch, ProducerId, RECORD_BATCH_OVERHEAD, Record,
    RecordBatch, Sequence, decode_batches, validate, verify_crc,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use std::fmt::Debug;

/// Proptest settings: `cases` cases, and failing cases saved to
/// `protocol/proptest-regressions/properties.txt` (tests run from the package root), which is
/// committed so that everyone replays them.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Cases for the fuzz-style properties, which are cheap per case and want breadth.
const FUZZ_CASES: u32 = 1500;

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn header() -> impl Strategy<Value = Header> {
    // `.` is any char but a newline, so keys range over multi-byte UTF-8.
    (".{0,8}", option::of(bytes_up_to(8))).prop_map(|(key, value)| Header { key, value })
}

/// A record; its `offset_delta` is fixed up by [`record_batch`] to its position.
fn record() -> impl Strategy<Value = Record> {
    (
        any::<i8>(),
        any::<i64>(),
        option::of(bytes_up_to(16)),
        option::of(bytes_up_to(32)),
        vec(header(), 0..3),
    )
        .prop_map(
            |(attributes, timestamp_delta, key, value, headers)| Record {
                attributes,
                timestamp_delta,
                offset_delta: 0,
                key,
                value,
                headers,
            },
        )
}

/// Base sequences that matter: none, anywhere, and close enough to `i32::MAX` to wrap.
fn base_sequence() -> impl Strategy<Value = Sequence> {
    prop_oneof![
        Just(Sequence::NONE),
        (0..=i32::MAX).prop_map(Sequence),
        (i32::MAX - 8..=i32::MAX).prop_map(Sequence),
    ]
}

/// A well-formed uncompressed batch with `records.len()` records whose offset deltas are
/// `0..len` and whose `last_offset_delta` is `len - 1`, as a producer builds it.
fn record_batch() -> impl Strategy<Value = RecordBatch> {
    (
        (any::<i64>(), any::<i32>(), any::<i16>()),
        (any::<i64>(), any::<i64>()),
        (
            prop_oneof![Just(ProducerId::NONE), any::<i64>().prop_map(ProducerId)],
            any::<i16>().prop_map(ProducerEpoch),
            base_sequence(),
        ),
        vec(record(), 0..6),
    )
        .prop_map(
            |(
                (base_offset, partition_leader_epoch, attributes),
                (base_timestamp, max_timestamp),
                (producer_id, producer_epoch, base_sequence),
                mut records,
            )| {
                for (i, r) in records.iter_mut().enumerate() {
                    r.offset_delta = i32::try_from(i).expect("at most 6 records");
                }
                RecordBatch {
                    base_offset,
                    partition_leader_epoch,
                    attributes: attributes & !ATTR_COMPRESSION_MASK,
                    last_offset_delta: records.len() as i32 - 1,
                    base_timestamp,
                    max_timestamp,
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    records,
                }
            },
        )
}

/// One way to damage a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    InsertByte(Index, u8),
    RemoveByte(Index),
    Truncate(Index),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
        any::<Index>().prop_map(Mutation::RemoveByte),
        any::<Index>().prop_map(Mutation::Truncate),
        vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    vec(mutation(), 1..6)
}

fn apply_mutations(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
            Mutation::SetByte(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Mutation::InsertByte(i, b) => bytes.insert(i.index(len + 1), *b),
            Mutation::RemoveByte(i) if len > 0 => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Mutation::Extend(tail) => bytes.extend_from_slice(tail),
            // Byte-addressed mutations of an empty buffer do nothing.
            _ => {}
        }
    }
}

/// Calls every batch-level decoder and header accessor on `bytes`. Only a panic can fail.
fn decode_batch_every_way(bytes: &Bytes) {
    let decoded = RecordBatch::decode(bytes.clone());
    let validated = validate(bytes);
    assert_eq!(
        decoded.is_ok(),
        validated.is_ok(),
        "validate and decode disagree: {decoded:?} vs {validated:?}"
    );
    if let Ok(header) = BatchHeader::parse(bytes) {
        let _ = (
            header.last_sequence(),
            header.last_offset(),
            header.total_size(),
            header.compression(),
            header.is_transactional(),
            header.is_control(),
        );
        if let Ok(validated) = validated {
            assert_eq!(validated, header, "validate returns the parsed header");
        }
    }
    let _ = verify_crc(bytes);
    let _ = decode_batches(bytes.clone());
}

/// Rewrites the envelope of a damaged batch so that it passes the length, magic, compression
/// and CRC checks, which lets the damage reach the record parser.
fn restamp_envelope(bytes: &mut [u8]) {
    if bytes.len() < RECORD_BATCH_OVERHEAD {
        return;
    }
    let batch_length = (bytes.len() - LOG_OVERHEAD) as i32;
    bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    bytes[16] = 2;
    bytes[ATTRIBUTES_OFFSET + 1] &= !(ATTR_COMPRESSION_MASK as u8);
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Kafka's sequence arithmetic written independently: sequences live in `0..=i32::MAX` and
/// wrap to 0.
fn expected_last_sequence(base: Sequence, last_offset_delta: i32) -> Sequence {
    if base == Sequence::NONE || last_offset_delta < 0 {
        return Sequence::NONE;
    }
    let modulus = i64::from(i32::MAX) + 1;
    let last = (i64::from(base.0) + i64::from(last_offset_delta)) % modulus;
    Sequence(i32::try_from(last).expect("reduced modulo 2^31"))
}

fn flip(bytes: &Bytes, index: usize, bit: u8) -> Bytes {
    let mut damaged = bytes.to_vec();
    damaged[index] ^= 1 << bit;
    Bytes::from(damaged)
}

// ---------------------------------------------------------------------------------------------
// 1. Record batches
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(ProptestConfig::default().cases))]

    /// Every uncompressed batch round-trips through `to_bytes` and `RecordBatch::decode`;
    /// its encoded size is `encoded_len()`; `BatchHeader::parse` and `validate` agree with the
    /// struct field by field (batchLength = size - 12, magic 2, the stored CRC is the CRC-32C
    /// of bytes 21..end, recordsCount = records.len()); and `last_sequence()` is
    /// base + last_offset_delta, wrapping past `i32::MAX` to 0.
    #[test]
    fn record_batch_round_trips_and_its_header_agrees(batch in record_batch()) {
        let bytes = batch.to_bytes();
        prop_assert_eq!(bytes.len(), batch.encoded_len());
        prop_assert_eq!(RecordBatch::decode(bytes.clone()), Ok(batch.clone()));

        let header = BatchHeader::parse(&bytes).expect("a whole batch has a header");
        prop_assert_eq!(header.base_offset, batch.base_offset);
        prop_assert_eq!(header.batch_length as usize, bytes.len() - LOG_OVERHEAD);
        prop_assert_eq!(header.total_size(), bytes.len() as i64);
        prop_assert_eq!(header.partition_leader_epoch, batch.partition_leader_epoch);
        prop_assert_eq!(header.magic, 2);
        prop_assert_eq!(header.crc, crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]));
        prop_assert_eq!(header.attributes, batch.attributes);
        prop_assert_eq!(header.compression(), 0);
        prop_assert_eq!(header.last_offset_delta, batch.last_offset_delta);
        prop_assert_eq!(header.base_timestamp, batch.base_timestamp);
        prop_assert_eq!(header.max_timestamp, batch.max_timestamp);
        prop_assert_eq!(header.producer_id, batch.producer_id);
        prop_assert_eq!(header.producer_epoch, batch.producer_epoch);
        prop_assert_eq!(header.base_sequence, batch.base_sequence);
        prop_assert_eq!(header.records_count as usize, batch.records.len());
        prop_assert_eq!(validate(&bytes), Ok(header));
        prop_assert_eq!(verify_crc(&bytes), Ok(()));

        let expected = expected_last_sequence(batch.base_sequence, batch.last_offset_delta);
        prop_assert_eq!(batch.last_sequence(), expected);
        prop_assert_eq!(header.last_sequence(), expected);
    }

    /// `last_sequence` is base + delta modulo 2^31 for every base in `0..=i32::MAX` and every
    /// non-negative delta (Kafka's `DefaultRecordBatch.incrementSequence`).
    #[test]
    fn last_sequence_is_base_plus_delta_wrapping_to_zero(
        base in prop_oneof![0..=i32::MAX, i32::MAX - 1000..=i32::MAX],
        last_offset_delta in prop_oneof![0..=i32::MAX, 0..1000i32],
    ) {
        let header = BatchHeader::parse(
            &RecordBatch {
                last_offset_delta,
                ..RecordBatch::idempotent(ProducerId(1), ProducerEpoch(0), Sequence(base), 0, vec![])
            }
            .to_bytes(),
        )
        .expect("a whole batch has a header");
        prop_assert_eq!(
            header.last_sequence(),
            expected_last_sequence(Sequence(base), last_offset_delta)
        );
    }

    /// Concatenated batches (a fetch response's records) split back into the same batches;
    /// a partial batch at the end is ignored, not an error.
    #[test]
    fn decode_batches_splits_concatenated_batches_and_ignores_a_partial_tail(
        batches in vec(record_batch(), 0..4),
        tail in record_batch(),
        tail_cut in any::<Index>(),
    ) {
        let mut buf = BytesMut::new();
        for b in &batches {
            b.encode(&mut buf);
        }
        let tail_bytes = tail.to_bytes();
        buf.extend_from_slice(&tail_bytes[..tail_cut.index(tail_bytes.len())]);
        prop_assert_eq!(decode_batches(buf.freeze()), Ok(batches));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The CRC covers attributes..end, and nothing before the CRC field
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(ProptestConfig::default().cases))]

    /// Any single flipped bit in the CRC-covered region (attributes..end, byte 21 onwards) is
    /// caught: decode and validate both answer `CorruptMessage` with two different CRCs.
    #[test]
    fn any_flipped_bit_in_the_covered_region_is_corrupt_message(
        batch in record_batch(),
        at in any::<Index>(),
        bit in 0..8u8,
    ) {
        let bytes = batch.to_bytes();
        let index = ATTRIBUTES_OFFSET + at.index(bytes.len() - ATTRIBUTES_OFFSET);
        let damaged = flip(&bytes, index, bit);
        match RecordBatch::decode(damaged.clone()) {
            Err(DecodeError::CorruptMessage { expected, actual }) => prop_assert_ne!(expected, actual),
            other => prop_assert!(false, "byte {} bit {}: expected CorruptMessage, got {:?}", index, bit, other),
        }
        let validated = validate(&damaged);
        prop_assert!(
            matches!(validated, Err(DecodeError::CorruptMessage { .. })),
            "validate: expected CorruptMessage, got {:?}",
            validated
        );
    }

    /// A flipped bit inside the stored CRC itself (bytes 17..21) is caught the same way.
    #[test]
    fn any_flipped_bit_in_the_crc_field_is_corrupt_message(
        batch in record_batch(),
        at in 0..4usize,
        bit in 0..8u8,
    ) {
        let damaged = flip(&batch.to_bytes(), CRC_OFFSET + at, bit);
        match RecordBatch::decode(damaged) {
            Err(DecodeError::CorruptMessage { expected, actual }) => prop_assert_ne!(expected, actual),
            other => prop_assert!(false, "expected CorruptMessage, got {:?}", other),
        }
    }

    /// As in Kafka, the CRC does not cover baseOffset (bytes 0..8) or partitionLeaderEpoch
    /// (bytes 12..16): the leader rewrites them without recomputing the CRC, so a flipped bit
    /// there decodes fine, with only that field changed.
    #[test]
    fn flipped_bits_in_base_offset_or_leader_epoch_are_not_covered_by_the_crc(
        batch in record_batch(),
        at in prop_oneof![0..8usize, 12..16usize],
        bit in 0..8u8,
    ) {
        let damaged = flip(&batch.to_bytes(), at, bit);
        prop_assert_eq!(verify_crc(&damaged), Ok(()));
        let decoded = RecordBatch::decode(damaged).expect("the CRC does not cover this byte");
        let mut expected = batch;
        if at < 8 {
            expected.base_offset ^= 1i64 << (8 * (7 - at) + usize::from(bit));
        } else {
            expected.partition_leader_epoch ^= 1i32 << (8 * (15 - at) + usize::from(bit));
        }
        prop_assert_eq!(decoded, expected);
    }

    /// batchLength (bytes 8..12) and magic (byte 16) are not covered by the CRC either:
    /// `verify_crc` still passes, and it is the structural checks that refuse the batch.
    #[test]
    fn flipped_bits_in_batch_length_or_magic_fail_structure_not_crc(
        batch in record_batch(),
        at in prop_oneof![8..12usize, Just(16usize)],
        bit in 0..8u8,
    ) {
        let damaged = flip(&batch.to_bytes(), at, bit);
        prop_assert_eq!(verify_crc(&damaged), Ok(()));
        match RecordBatch::decode(damaged) {
            Err(DecodeError::InvalidValue { field: "batchLength", .. }) => prop_assert!(at < 12),
            Err(DecodeError::UnsupportedMagic(_)) => prop_assert_eq!(at, 16),
            other => prop_assert!(false, "expected a structural error, got {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Decoders are total
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(idempo_testkit::proptest_cases(FUZZ_CASES)))]

    /// Arbitrary bytes never make any decoder panic: `RecordBatch::decode`, `validate`,
    /// `BatchHeader::parse` and its accessors, `decode_batches` and `verify_crc`. `validate`
    /// accepts exactly what `decode` accepts.
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in vec(any::<u8>(), 0..300)) {
        decode_batch_every_way(&Bytes::from(bytes));
    }

    /// Valid batches with random mutations decode to `Ok` or `Err`, never a panic, both as
    /// damaged and after their length, magic, compression bits and CRC are re-stamped so the
    /// damage reaches the record parser. `validate` accepts exactly what `decode` accepts.
    #[test]
    fn mutated_valid_batches_never_panic_even_with_a_restamped_crc(
        batches in vec(record_batch(), 1..3),
        mutations in mutations(),
    ) {
        let mut buf = BytesMut::new();
        for b in &batches {
            b.encode(&mut buf);
        }
        let mut bytes = buf.to_vec();
        apply_mutations(&mut bytes, &mutations);
        decode_batch_every_way(&Bytes::from(bytes.clone()));

        let mut single = batches[0].to_bytes().to_vec();
        apply_mutations(&mut single, &mutations);
        decode_batch_every_way(&Bytes::from(single.clone()));
        restamp_envelope(&mut single);
        decode_batch_every_way(&Bytes::from(single));
    }
}

/// A header whose base offset is near `i64::MAX` is something a hostile client can send;
/// asking for its last offset must not panic (Kafka's Java computes it in wrapping `long`
/// arithmetic).
#[test]
fn last_offset_of_a_hostile_header_does_not_panic() {
    let mut batch = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        0,
        vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
    );
    batch.base_offset = i64::MAX;
    let header = BatchHeader::parse(&batch.to_bytes()).expect("a whole batch has a header");
    assert_eq!(header.last_offset(), i64::MAX.wrapping_add(1));
}
