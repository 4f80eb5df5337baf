//! Cross-check of idempo's RecordBatch v2 against code nobody here wrote: the
//! [`kafka-protocol`](https://docs.rs/kafka-protocol/0.18) crate's `RecordBatchEncoder` and
//! `RecordBatchDecoder`.
//!
//! Both directions are checked, with fixed examples and with properties over random records:
//! batches idempo encodes decode with kafka-protocol to the same producer id, epoch,
//! sequences, offsets, timestamps, keys, values and headers; batches kafka-protocol encodes
//! (v2, uncompressed) decode with idempo, CRC check included, to the same fields, and idempo
//! re-encodes them byte for byte.
//!
//! Where the two disagree, Kafka's Java code (`DefaultRecordBatch`, `DefaultRecord`) is the
//! referee. The disagreements found are pinned by the tests at the end of this file, each
//! naming who follows Kafka:
//!
//! - kafka-protocol numbers records past `i32::MAX` with `i32` wrapping (to `i32::MIN`);
//!   Kafka's `incrementSequence` wraps to 0, as idempo does. Its encoder therefore splits a
//!   batch whose sequences wrap the Kafka way into two batches.
//! - kafka-protocol gives a record of a batch without a sequence (-1) the sequence
//!   `-1 + offsetDelta`; Kafka gives it -1 (`NO_SEQUENCE`).
//! - kafka-protocol keeps headers in a map, so duplicate header keys collapse to the last
//!   value; Kafka (and idempo) keep every header in order.
//! - kafka-protocol accepts a record whose length announces more bytes than its fields use;
//!   Kafka's `DefaultRecord.readFrom` refuses it ("Invalid record size"), as idempo does.
//! - kafka-protocol's encoder never sets the timestamp-type attribute bit, whatever the
//!   records' `timestamp_type`.
//!
//! One legitimate difference is not a disagreement: kafka-protocol writes the smallest
//! record timestamp as baseTimestamp, Kafka's Java producer writes the first record's (so
//! its deltas may be negative). Both decode the same; idempo reads either.

use bytes::{Bytes, BytesMut};
use idempo_protocol::record_batch::{ATTR_COMPRESSION_MASK, ATTRIBUTES_OFFSET, CRC_OFFSET};
use idempo_protocol::{
    BatchHeader, DecodeError, Header, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
    decode_batches, validate, verify_crc,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Proptest settings: `cases` cases, and failing cases saved to
/// `protocol/proptest-regressions/kafka_protocol_compat.txt` (tests run from the package
/// root), which is committed so that everyone replays them.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/kafka_protocol_compat.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Attribute bit 3: timestamps are log-append time.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: transactional.
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: control batch.
const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6: delete horizon set (KIP-534).
const ATTR_DELETE_HORIZON: i16 = 0x40;

// ---------------------------------------------------------------------------------------------
// Translating between the two models
// ---------------------------------------------------------------------------------------------

/// Encodes records with kafka-protocol as a v2, uncompressed batch (or several, if the
/// encoder decides the records do not share a batch header).
fn kafka_encode(records: &[KRecord]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("kafka-protocol encodes uncompressed v2 batches");
    buf.freeze()
}

/// Decodes exactly one batch with kafka-protocol and checks nothing is left over.
fn kafka_decode_one(bytes: &Bytes) -> Vec<KRecord> {
    let mut buf = bytes.clone();
    let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes the batch");
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, Compression::None);
    assert!(buf.is_empty(), "{} bytes after one batch", buf.len());
    set.records
}

/// The records kafka-protocol should see in an idempo batch, by Kafka's rules: offsets and
/// timestamps are base + delta, sequences base + offsetDelta (wrapping to 0), the batch's
/// attributes and producer fields copied onto every record.
fn as_kafka_records(batch: &RecordBatch) -> Vec<KRecord> {
    batch
        .records
        .iter()
        .map(|r| KRecord {
            transactional: batch.attributes & ATTR_TRANSACTIONAL != 0,
            control: batch.attributes & ATTR_CONTROL != 0,
            delete_horizon: batch.attributes & ATTR_DELETE_HORIZON != 0,
            partition_leader_epoch: batch.partition_leader_epoch,
            producer_id: batch.producer_id.0,
            producer_epoch: batch.producer_epoch.0,
            timestamp_type: if batch.attributes & ATTR_LOG_APPEND_TIME != 0 {
                TimestampType::LogAppend
            } else {
                TimestampType::Creation
            },
            offset: batch.base_offset + i64::from(r.offset_delta),
            sequence: if batch.base_sequence == Sequence::NONE {
                Sequence::NONE.0
            } else {
                batch.base_sequence.wrapping_add(r.offset_delta).0
            },
            timestamp: batch.base_timestamp + r.timestamp_delta,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                .collect(),
        })
        .collect()
}

/// The batch idempo should decode from kafka-protocol's encoding of `records` (which all
/// share one batch header and sit at offsets 0..n): baseTimestamp is the smallest timestamp,
/// maxTimestamp the largest, sequences start at the first record's.
fn as_idempo_batch(records: &[KRecord]) -> RecordBatch {
    let first = &records[0];
    let min_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .min()
        .expect("non-empty");
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .expect("non-empty");
    let mut attributes = 0;
    for (flag, bit) in [
        (first.transactional, ATTR_TRANSACTIONAL),
        (first.control, ATTR_CONTROL),
        (first.delete_horizon, ATTR_DELETE_HORIZON),
    ] {
        if flag {
            attributes |= bit;
        }
    }
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: first.partition_leader_epoch,
        attributes,
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp: min_timestamp,
        max_timestamp,
        producer_id: ProducerId(first.producer_id),
        producer_epoch: ProducerEpoch(first.producer_epoch),
        base_sequence: Sequence(first.sequence),
        records: records
            .iter()
            .map(|r| Record {
                attributes: 0,
                timestamp_delta: r.timestamp - min_timestamp,
                offset_delta: i32::try_from(r.offset).expect("offsets 0..n"),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| Header {
                        key: k.as_str().to_owned(),
                        value: v.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Headers as an ordered list, so that comparisons see order and duplicates (an `IndexMap`'s
/// `==` ignores order).
fn header_list(r: &KRecord) -> Vec<(String, Option<Bytes>)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect()
}

/// Asserts kafka-protocol decoded `expected`, comparing headers in order too.
fn assert_same_records(got: &[KRecord], expected: &[KRecord]) {
    assert_eq!(got, expected);
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(header_list(g), header_list(e), "header order");
    }
}

/// A plain idempotent producer's record: offset `i`, sequence `base_sequence + i`.
fn kafka_record(i: i64, base_sequence: i32, timestamp: i64) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: 4242,
        producer_epoch: 7,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: base_sequence.wrapping_add(i as i32),
        timestamp,
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(format!("value-{i}"))),
        headers: Default::default(),
    }
}

fn sample_idempo_batch() -> RecordBatch {
    let mut batch = RecordBatch::idempotent(
        ProducerId(4242),
        ProducerEpoch(7),
        Sequence(100),
        1_700_000_000_000,
        vec![
            Record::with_value(0, "value-0"),
            Record {
                attributes: 0,
                timestamp_delta: -5,
                offset_delta: 1,
                key: Some(Bytes::from_static(b"key-1")),
                value: None,
                headers: vec![
                    Header {
                        key: "trace-id".into(),
                        value: Some(Bytes::from_static(b"abc")),
                    },
                    Header {
                        key: "empty-\u{e9}".into(),
                        value: None,
                    },
                ],
            },
            Record {
                timestamp_delta: 20,
                offset_delta: 2,
                key: Some(Bytes::new()),
                value: Some(Bytes::new()),
                ..Record::default()
            },
        ],
    );
    batch.max_timestamp = batch.base_timestamp + 20;
    batch.partition_leader_epoch = 3;
    batch
}

// ---------------------------------------------------------------------------------------------
// Fixed examples, both directions
// ---------------------------------------------------------------------------------------------

#[test]
fn idempo_batch_decodes_with_kafka_protocol_field_for_field() {
    let batch = sample_idempo_batch();
    let records = kafka_decode_one(&batch.to_bytes());
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].sequence, 101);
    assert_eq!(records[1].timestamp, 1_700_000_000_000 - 5);
    assert_eq!(records[2].offset, 2);
    assert_same_records(&records, &as_kafka_records(&batch));
}

#[test]
fn idempo_batch_with_an_assigned_offset_decodes_with_kafka_protocol() {
    let mut bytes = BytesMut::from(&sample_idempo_batch().to_bytes()[..]);
    idempo_protocol::set_base_offset(&mut bytes, 1_000);
    let records = kafka_decode_one(&bytes.freeze());
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [1_000, 1_001, 1_002]);
}

#[test]
fn kafka_protocol_batch_decodes_with_idempo_field_for_field() {
    let mut records: Vec<KRecord> = (0..3)
        .map(|i| kafka_record(i, 500, 1_700_000_000_000 + 10 * i))
        .collect();
    records[1].key = None;
    records[1].headers = [
        (
            StrBytes::from_static_str("h1"),
            Some(Bytes::from_static(b"v1")),
        ),
        (StrBytes::from_static_str("h2"), None),
    ]
    .into_iter()
    .collect();
    records[2].value = None;
    let bytes = kafka_encode(&records);

    verify_crc(&bytes).expect("kafka-protocol writes Kafka's CRC-32C");
    let header = validate(&bytes).expect("idempo accepts kafka-protocol's batch");
    assert_eq!(header.producer_id, ProducerId(4242));
    assert_eq!(header.producer_epoch, ProducerEpoch(7));
    assert_eq!(header.base_sequence, Sequence(500));
    assert_eq!(header.last_sequence(), Sequence(502));
    assert_eq!(header.records_count, 3);

    let batch = RecordBatch::decode(bytes.clone()).expect("idempo decodes the batch");
    assert_eq!(batch, as_idempo_batch(&records));
    assert_eq!(
        batch.to_bytes(),
        bytes,
        "idempo re-encodes it byte for byte"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties, both directions
// ---------------------------------------------------------------------------------------------

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// Headers with distinct keys (kafka-protocol keeps headers in a map; see the duplicate-key
/// test below), in random order.
fn distinct_headers() -> impl Strategy<Value = Vec<(String, Option<Bytes>)>> {
    vec((".{0,6}", option::of(bytes_up_to(8))), 0..4).prop_map(|mut headers| {
        let mut seen = std::collections::HashSet::new();
        headers.retain(|(k, _)| seen.insert(k.clone()));
        headers
    })
}

/// Key, value and distinct-keyed headers of one record.
type Payload = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>);

/// Key, value and headers of one record.
fn payload() -> impl Strategy<Value = Payload> {
    (
        option::of(bytes_up_to(16)),
        option::of(bytes_up_to(32)),
        distinct_headers(),
    )
}

/// An idempo batch as a producer or leader might write it, with sequences that do not wrap
/// (the wrap is where the two crates differ; it has its own test).
fn idempo_batch() -> impl Strategy<Value = RecordBatch> {
    (
        (0..i64::MAX / 2, any::<i32>(), any::<i16>()),
        (0..1i64 << 50, -(1i64 << 40)..1i64 << 40),
        (0..i64::MAX, 0..=i16::MAX, 0..i32::MAX - 16),
        vec((-(1i64 << 40)..1i64 << 40, payload()), 1..6),
    )
        .prop_map(
            |(
                (base_offset, partition_leader_epoch, attributes),
                (base_timestamp, max_timestamp_delta),
                (producer_id, producer_epoch, base_sequence),
                records,
            )| {
                let records: Vec<Record> = records
                    .into_iter()
                    .enumerate()
                    .map(|(i, (timestamp_delta, (key, value, headers)))| Record {
                        attributes: 0,
                        timestamp_delta,
                        offset_delta: i as i32,
                        key,
                        value,
                        headers: headers
                            .into_iter()
                            .map(|(key, value)| Header { key, value })
                            .collect(),
                    })
                    .collect();
                RecordBatch {
                    base_offset,
                    partition_leader_epoch,
                    attributes: attributes & !ATTR_COMPRESSION_MASK,
                    last_offset_delta: records.len() as i32 - 1,
                    base_timestamp,
                    max_timestamp: base_timestamp + max_timestamp_delta,
                    producer_id: ProducerId(producer_id),
                    producer_epoch: ProducerEpoch(producer_epoch),
                    base_sequence: Sequence(base_sequence),
                    records,
                }
            },
        )
}

/// Records one idempotent producer sends in one batch: one producer id, epoch, leader epoch
/// and flag set, offsets 0..n, sequences base..base+n without wrapping, any timestamps.
fn kafka_records() -> impl Strategy<Value = Vec<KRecord>> {
    (
        (0..i64::MAX, 0..=i16::MAX, 0..i32::MAX - 16, any::<i32>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        vec((0..1i64 << 50, payload()), 1..6),
    )
        .prop_map(
            |(
                (producer_id, producer_epoch, base_sequence, partition_leader_epoch),
                (transactional, control, delete_horizon),
                records,
            )| {
                records
                    .into_iter()
                    .enumerate()
                    .map(|(i, (timestamp, (key, value, headers)))| KRecord {
                        transactional,
                        control,
                        delete_horizon,
                        partition_leader_epoch,
                        producer_id,
                        producer_epoch,
                        timestamp_type: TimestampType::Creation,
                        offset: i as i64,
                        sequence: base_sequence + i as i32,
                        timestamp,
                        key,
                        value,
                        headers: headers
                            .into_iter()
                            .map(|(k, v)| (StrBytes::from_string(k), v))
                            .collect(),
                    })
                    .collect()
            },
        )
}

proptest! {
    #![proptest_config(config(ProptestConfig::default().cases))]

    /// Every batch idempo encodes decodes with kafka-protocol to records with the batch's
    /// producer id, epoch, leader epoch and flags, offsets and timestamps base + delta,
    /// sequences base sequence + offset delta, and the same keys, values and headers in order.
    #[test]
    fn random_idempo_batches_decode_identically_with_kafka_protocol(batch in idempo_batch()) {
        let records = kafka_decode_one(&batch.to_bytes());
        prop_assert_eq!(&records, &as_kafka_records(&batch));
        for (got, expected) in records.iter().zip(as_kafka_records(&batch)) {
            prop_assert_eq!(header_list(got), header_list(&expected));
        }
    }

    /// Every batch kafka-protocol encodes (v2, uncompressed, one producer, offsets from 0)
    /// passes idempo's CRC and structure checks, decodes to the same header and records, and
    /// re-encodes byte for byte: the two crates agree on every byte of the layout.
    #[test]
    fn random_kafka_protocol_batches_decode_identically_with_idempo(records in kafka_records()) {
        let bytes = kafka_encode(&records);
        prop_assert_eq!(verify_crc(&bytes), Ok(()));
        let batches = decode_batches(bytes.clone()).expect("idempo decodes kafka-protocol's batch");
        prop_assert_eq!(batches.len(), 1, "one producer, consecutive sequences: one batch");
        let expected = as_idempo_batch(&records);
        prop_assert_eq!(&batches[0], &expected);
        prop_assert_eq!(
            validate(&bytes).map(|h| (h.base_sequence, h.last_sequence())),
            Ok((expected.base_sequence, expected.last_sequence()))
        );
        prop_assert_eq!(batches[0].to_bytes(), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Where the two disagree, with Kafka as referee
// ---------------------------------------------------------------------------------------------

/// Kafka numbers the records of a batch with base sequence `i32::MAX - 1` as MAX - 1, MAX, 0
/// (`DefaultRecordBatch.incrementSequence`), and so does idempo's `last_sequence`.
/// kafka-protocol 0.18 uses `i32::wrapping_add`, so it reports MAX - 1, MAX, `i32::MIN`.
#[test]
fn kafka_protocol_numbers_sequences_past_i32_max_to_i32_min_where_kafka_wraps_to_zero() {
    let batch = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(i32::MAX - 1),
        0,
        (0..3).map(|i| Record::with_value(i, "v")).collect(),
    );
    assert_eq!(batch.last_sequence(), Sequence(0), "Kafka's rule");

    let sequences: Vec<i32> = kafka_decode_one(&batch.to_bytes())
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(
        sequences,
        [i32::MAX - 1, i32::MAX, i32::MIN],
        "kafka-protocol 0.18 wraps with i32 arithmetic; if this changed, update the module doc"
    );
}

/// kafka-protocol's encoder keeps records in one batch only while `offset - sequence` stays
/// constant in `i32` arithmetic. Records whose sequences wrap the Kafka way (MAX, then 0)
/// are therefore split into two batches; feeding it `i32`-wrapped sequences (MAX, then MIN)
/// yields the single batch that Kafka would have written.
#[test]
fn kafka_protocol_splits_a_batch_whose_sequences_wrap_to_zero() {
    let kafka_way: Vec<KRecord> = [i32::MAX - 1, i32::MAX, 0]
        .into_iter()
        .enumerate()
        .map(|(i, seq)| KRecord {
            sequence: seq,
            ..kafka_record(i as i64, 0, 0)
        })
        .collect();
    let batches = decode_batches(kafka_encode(&kafka_way)).expect("both batches are valid");
    let shape: Vec<(i64, Sequence, usize)> = batches
        .iter()
        .map(|b| (b.base_offset, b.base_sequence, b.records.len()))
        .collect();
    assert_eq!(
        shape,
        [(0, Sequence(i32::MAX - 1), 2), (2, Sequence(0), 1)],
        "kafka-protocol 0.18 splits at the wrap; if this changed, update the module doc"
    );

    let i32_way: Vec<KRecord> = (0..3).map(|i| kafka_record(i, i32::MAX - 1, 0)).collect();
    assert_eq!(i32_way[2].sequence, i32::MIN);
    let batch = RecordBatch::decode(kafka_encode(&i32_way)).expect("a single valid batch");
    assert_eq!(batch.base_sequence, Sequence(i32::MAX - 1));
    assert_eq!(batch.last_sequence(), Sequence(0));
}

/// A batch without a sequence (base sequence -1, not idempotent): Kafka gives every record
/// `NO_SEQUENCE` (-1). kafka-protocol 0.18 gives record `i` the sequence `-1 + i`.
#[test]
fn kafka_protocol_numbers_records_of_a_batch_without_sequence_from_minus_one() {
    let batch = RecordBatch::idempotent(
        ProducerId::NONE,
        ProducerEpoch::NONE,
        Sequence::NONE,
        0,
        (0..3).map(|i| Record::with_value(i, "v")).collect(),
    );
    assert_eq!(batch.last_sequence(), Sequence::NONE, "Kafka's rule");
    let sequences: Vec<i32> = kafka_decode_one(&batch.to_bytes())
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(
        sequences,
        [-1, 0, 1],
        "kafka-protocol 0.18 adds the offset delta to -1; if this changed, update the module doc"
    );
}

/// Kafka's record headers are a list and may repeat a key; idempo keeps both. kafka-protocol
/// stores headers in a map, so the second value replaces the first.
#[test]
fn kafka_protocol_collapses_duplicate_header_keys() {
    let mut record = Record::with_value(0, "v");
    record.headers = vec![
        Header {
            key: "k".into(),
            value: Some(Bytes::from_static(b"first")),
        },
        Header {
            key: "k".into(),
            value: Some(Bytes::from_static(b"second")),
        },
    ];
    let batch = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        0,
        vec![record],
    );
    let bytes = batch.to_bytes();
    assert_eq!(
        RecordBatch::decode(bytes.clone()),
        Ok(batch),
        "idempo keeps both"
    );

    let records = kafka_decode_one(&bytes);
    assert_eq!(
        header_list(&records[0]),
        [("k".to_owned(), Some(Bytes::from_static(b"second")))],
        "kafka-protocol 0.18 keeps one value per key; if this changed, update the module doc"
    );
}

/// A record whose length prefix announces one byte more than its fields use. Kafka's
/// `DefaultRecord.readFrom` refuses it ("Invalid record size: expected to read N bytes in
/// record payload, but instead read N-1"); idempo refuses it as `TrailingBytes`;
/// kafka-protocol 0.18 skips the extra byte and accepts it.
#[test]
fn record_with_bytes_past_its_fields_is_refused_by_idempo_as_by_kafka() {
    let batch = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        0,
        vec![Record::with_value(0, "v")],
    );
    let mut bytes = batch.to_bytes().to_vec();
    // The single record starts right after the header with a one-byte zig-zag length.
    let length_at = idempo_protocol::RECORD_BATCH_OVERHEAD;
    let body_len = i64::from(bytes[length_at] >> 1);
    assert!(body_len < 63, "the length fits one varint byte");
    bytes[length_at] = ((body_len + 1) << 1) as u8;
    bytes.push(0);
    let batch_length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let bytes = Bytes::from(bytes);

    assert_eq!(
        RecordBatch::decode(bytes.clone()),
        Err(DecodeError::TrailingBytes {
            field: "record",
            count: 1
        })
    );
    assert!(validate(&bytes).is_err());
    let records = kafka_decode_one(&bytes);
    assert_eq!(
        records[0].value.as_deref(),
        Some(&b"v"[..]),
        "kafka-protocol 0.18 ignores the extra byte; if this changed, update the module doc"
    );
}

/// kafka-protocol's encoder builds the attributes from compression, transactional, control
/// and delete-horizon only: a record marked `LogAppend` still yields a CreateTime batch.
#[test]
fn kafka_protocol_encoder_does_not_write_the_timestamp_type_bit() {
    let record = KRecord {
        timestamp_type: TimestampType::LogAppend,
        ..kafka_record(0, 0, 0)
    };
    let header = BatchHeader::parse(&kafka_encode(&[record])).expect("a whole batch");
    assert_eq!(
        header.attributes & ATTR_LOG_APPEND_TIME,
        0,
        "kafka-protocol 0.18 drops the timestamp type; if this changed, update the module doc"
    );
}
