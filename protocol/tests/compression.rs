//! Compressed RecordBatches: every codec round-trips, every decoder agrees, and damage to
//! the compressed bytes is a typed error, never a panic.

use idempo_protocol::compression::{
    Compression, compress, compress_batch, compress_snappy_raw, with_records,
};
use idempo_protocol::{
    DecodeError, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence, validate,
    validate_records_within, visit_records,
};
use proptest::collection::vec;
use proptest::prelude::*;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn batch_of(values: Vec<Vec<u8>>, base_sequence: i32) -> RecordBatch {
    let records = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Record::with_value(i as i32, v))
        .collect();
    RecordBatch::idempotent(
        ProducerId(9),
        ProducerEpoch(1),
        Sequence(base_sequence),
        1_000,
        records,
    )
}

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(CODECS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(idempo_testkit::proptest_cases(64)))]

    /// A batch compressed with any codec validates, decodes to the same records as the
    /// uncompressed batch, shows the same keys and values to `visit_records`, and keeps its
    /// header fields (producer id, epoch, sequence, count) and the codec in its attributes.
    #[test]
    fn a_compressed_batch_decodes_to_the_records_it_was_built_from(
        values in vec(vec(any::<u8>(), 0..200), 1..20),
        base_sequence in 0..i32::MAX,
        codec in codec(),
    ) {
        let plain = batch_of(values.clone(), base_sequence);
        let bytes = compress_batch(&plain, codec);
        let header = validate(&bytes).expect("a compressed batch validates");
        prop_assert_eq!(header.compression(), codec.id());
        prop_assert_eq!(header.records_count as usize, values.len());
        prop_assert_eq!(header.base_sequence, Sequence(base_sequence));
        let decoded = RecordBatch::decode(bytes.clone()).expect("and decodes");
        prop_assert_eq!(&decoded.records, &plain.records);
        let mut seen = Vec::new();
        visit_records(&bytes, |r| seen.push(r.value.map(<[u8]>::to_vec))).expect("and visits");
        prop_assert_eq!(seen, values.into_iter().map(Some).collect::<Vec<_>>());
    }

    /// Flipping any bit of a compressed batch's records and re-stamping its CRC gives a
    /// typed error or a batch that every decoder accepts alike: never a panic, and never a
    /// disagreement between `validate` and `decode`.
    #[test]
    fn damaged_compressed_records_are_a_typed_error_never_a_panic(
        values in vec(vec(any::<u8>(), 0..100), 1..8),
        codec in codec(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = compress_batch(&batch_of(values, 0), codec);
        let mut records = bytes[61..].to_vec();
        let i = at.index(records.len());
        records[i] ^= 1 << bit;
        let damaged = with_records(&bytes[..61], codec, &records);
        let validated = validate(&damaged);
        let decoded = RecordBatch::decode(damaged.clone());
        prop_assert_eq!(validated.is_ok(), decoded.is_ok(), "{:?} vs {:?}", validated, decoded);
    }
}

#[test]
fn librdkafkas_raw_snappy_batch_validates_like_the_xerial_one() {
    let plain = batch_of(vec![b"a".repeat(300), b"b".repeat(300)], 0);
    let encoded = plain.to_bytes();
    let raw = with_records(
        &encoded[..61],
        Compression::Snappy,
        &compress_snappy_raw(&encoded[61..]),
    );
    let xerial = compress_batch(&plain, Compression::Snappy);
    assert_ne!(raw, xerial);
    for bytes in [raw, xerial] {
        assert_eq!(RecordBatch::decode(bytes).unwrap().records, plain.records);
    }
}

#[test]
fn the_decompressed_bound_is_exact() {
    let plain = batch_of(vec![vec![0u8; 5_000]; 4], 0);
    let records_len = plain.to_bytes().len() - 61;
    for codec in CODECS {
        let bytes = compress_batch(&plain, codec);
        let header = validate(&bytes).unwrap();
        assert!(validate_records_within(&bytes, &header, records_len).is_ok());
        assert_eq!(
            validate_records_within(&bytes, &header, records_len - 1),
            Err(DecodeError::DecompressedTooLarge {
                codec: codec.id(),
                max_bytes: records_len - 1
            }),
            "{codec}"
        );
    }
}

#[test]
fn an_empty_compressed_section_is_refused_for_a_batch_with_records() {
    let header = batch_of(vec![b"x".to_vec()], 0).to_bytes();
    for codec in CODECS {
        let empty = with_records(&header[..61], codec, &compress(codec, b""));
        assert!(
            RecordBatch::decode(empty.clone()).is_err(),
            "{codec}: one record announced, none inside"
        );
    }
}

#[test]
fn compressed_records_must_carry_the_inner_offsets_0_1_2() {
    // Kafka's LogValidator rewrites a compressed batch whose inner offsets are not 0, 1, 2,
    // ...; idempo stores batches as sent, so it refuses one. An uncompressed batch is not
    // checked (as in Kafka).
    let records = vec![Record::with_value(0, "a"), Record::with_value(2, "b")];
    let plain =
        RecordBatch::idempotent(ProducerId(9), ProducerEpoch(1), Sequence(0), 1_000, records);
    validate(&plain.to_bytes()).expect("uncompressed inner offsets are not checked");
    for codec in CODECS {
        let bytes = compress_batch(&plain, codec);
        let expected = DecodeError::InvalidValue {
            field: "record.offsetDelta",
            value: 2,
            expected: "the record's index in its compressed batch (inner offsets 0, 1, 2, ...)",
        };
        assert_eq!(
            validate(&bytes).map(|_| ()),
            Err(expected.clone()),
            "{codec:?}: validate"
        );
        assert_eq!(
            RecordBatch::decode(bytes.clone()).map(|_| ()),
            Err(expected.clone()),
            "{codec:?}: decode"
        );
        let mut seen = 0;
        assert_eq!(
            visit_records(&bytes, |_| seen += 1).map(|_| ()),
            Err(expected),
            "{codec:?}: visit_records"
        );
        assert_eq!(seen, 0, "{codec:?}: no record of a refused batch is shown");
    }
    let single = RecordBatch::idempotent(
        ProducerId(9),
        ProducerEpoch(1),
        Sequence(0),
        1_000,
        vec![Record::with_value(1, "a")],
    );
    let bytes = compress_batch(&single, Compression::Gzip);
    assert!(
        visit_records(&bytes, |_| ()).is_err(),
        "one record must have inner offset 0"
    );
}

#[test]
fn codecs_are_named_as_kafkas_compression_type() {
    let names = [
        (Compression::None, "none"),
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ];
    for (codec, name) in names {
        assert_eq!(codec.name(), name);
        assert_eq!(codec.to_string(), name);
    }
}

#[test]
fn snappy_is_compressed_in_xerial_blocks_of_32_kib_as_java_writes_them() {
    use idempo_protocol::compression::{XERIAL_SNAPPY_HEADER, decompress};
    let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let packed = compress(Compression::Snappy, &raw);
    assert_eq!(&packed[..16], &XERIAL_SNAPPY_HEADER[..]);
    let mut rest = &packed[16..];
    let mut block_lens = Vec::new();
    while !rest.is_empty() {
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let block = &rest[4..4 + len];
        // Without the xerial magic, a block alone decodes as one raw snappy block.
        block_lens.push(
            decompress(Compression::Snappy, block, raw.len())
                .unwrap()
                .len(),
        );
        rest = &rest[4 + len..];
    }
    assert_eq!(
        block_lens,
        vec![32_768, 32_768, 32_768, 100_000 - 3 * 32_768]
    );
}

#[test]
fn decompressed_bytes_never_hold_an_allocation_past_the_bound() {
    use idempo_protocol::compression::decompress;
    // Sizes that are no power of two, so that a buffer grown by doubling would pass them.
    for len in [1_000_000usize, 100_000, 20_000] {
        let raw: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = compress(codec, &raw);
            let out = decompress(codec, &packed, len).unwrap();
            assert_eq!(out.len(), len, "{codec}");
            let capacity = out
                .try_into_mut()
                .expect("the only handle of its buffer")
                .capacity();
            assert!(
                capacity <= len,
                "{codec}: {capacity} bytes allocated for a bound of {len}"
            );
        }
    }
}

#[test]
fn compressing_a_batch_keeps_its_other_attribute_bits() {
    // Timestamp type LogAppendTime (0x08), transactional (0x10), and a high-byte bit.
    let attributes: i16 = 0x0118;
    let mut batch = batch_of(vec![b"a".to_vec(), b"b".to_vec()], 0);
    batch.attributes = attributes;
    for codec in CODECS {
        let bytes = compress_batch(&batch, codec);
        let decoded = RecordBatch::decode(bytes).unwrap();
        assert_eq!(
            decoded.attributes,
            attributes | i16::from(codec.id()),
            "{codec}"
        );
        assert_eq!(decoded.records, batch.records, "{codec}");
    }
}
