//! Rules of the wire layer (RecordBatch v2 decoding, error codes), one test per rule, through
//! the public API.
//!
//! `properties.rs` checks round trips and totality over random batches; these tests pin the
//! exact answer for the hand-built edge cases a random batch rarely reaches (a varint cut by
//! the end of the batch, bytes after the last record, the smallest possible records), so that
//! a change to any one rule fails a test named after it. They were written against the
//! survivors of `cargo mutants -p idempo-protocol` (see bench/MUTANTS.md).

use bytes::{BufMut, Bytes, BytesMut};
use idempo_protocol::record_batch::{ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD, NO_TIMESTAMP};
use idempo_protocol::{
    BatchHeader, CONSUMER_REPLICA_ID, DecodeError, ErrorCode, FetchRequest, NO_LEADER_EPOCH,
    ProducerEpoch, ProducerId, RECORD_BATCH_OVERHEAD, Record, RecordBatch, Sequence,
    decode_batches, set_partition_leader_epoch, validate, validate_records, visit_records,
};

/// A batch header announcing `records_count` records, followed by `body` as the records, with
/// batchLength and the CRC-32C made right so that the body reaches the record parser.
fn batch_with_body(records_count: i32, body: &[u8]) -> Bytes {
    let empty = RecordBatch::idempotent(ProducerId(7), ProducerEpoch(0), Sequence(0), 0, vec![]);
    let mut buf = BytesMut::from(&empty.to_bytes()[..]);
    buf[57..61].copy_from_slice(&records_count.to_be_bytes());
    buf.put_slice(body);
    let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

/// `decode`, `validate` and `visit_records` all refuse `bytes`; returns `validate`'s error,
/// which `visit_records` gives too (`decode` may stop earlier, at its allocation bound).
fn refused_everywhere(bytes: &Bytes) -> DecodeError {
    RecordBatch::decode(bytes.clone()).expect_err("decode must refuse the batch");
    let validated = validate(bytes).expect_err("validate must refuse the batch");
    assert_eq!(
        visit_records(bytes, |_| {}).expect_err("visit_records must refuse the batch"),
        validated,
        "visit_records gives the same error"
    );
    validated
}

/// The smallest record: length 6, attributes 0, timestampDelta 0, offsetDelta `delta`, null
/// key, null value, no headers. Seven bytes in all.
fn minimal_record(offset_delta: u8) -> [u8; 7] {
    assert!(offset_delta < 64, "a one-byte zig-zag varint");
    [12, 0, 0, offset_delta * 2, 1, 1, 0]
}

#[test]
fn a_varint_cut_short_by_the_end_of_the_batch_is_truncated_by_one_byte() {
    for cut in 1..10usize {
        let bytes = batch_with_body(1, &vec![0xff; cut]);
        assert_eq!(
            refused_everywhere(&bytes),
            DecodeError::Truncated {
                field: "record.length",
                needed: cut + 1,
                remaining: cut,
            },
            "{cut} continuation bytes and then the end"
        );
    }
}

#[test]
fn a_varint_of_ten_continuation_bytes_is_too_long_not_truncated() {
    for run in [10usize, 11, 20] {
        let bytes = batch_with_body(1, &vec![0xff; run]);
        assert_eq!(
            refused_everywhere(&bytes),
            DecodeError::VarintTooLong {
                field: "record.length"
            },
            "{run} continuation bytes"
        );
    }
}

#[test]
fn bytes_after_the_last_record_are_trailing_bytes_of_the_records() {
    let mut body = minimal_record(0).to_vec();
    body.extend_from_slice(&[0, 0, 0]);
    let bytes = batch_with_body(1, &body);
    assert_eq!(
        refused_everywhere(&bytes),
        DecodeError::TrailingBytes {
            field: "records",
            count: 3,
        }
    );
    assert_eq!(
        decode_batches(bytes),
        Err(DecodeError::TrailingBytes {
            field: "records",
            count: 3,
        }),
        "a fetch response with such a batch is refused too"
    );
}

#[test]
fn records_of_seven_bytes_each_exactly_fill_their_batch() {
    let count = 5u8;
    let body: Vec<u8> = (0..count).flat_map(minimal_record).collect();
    assert_eq!(body.len(), 7 * usize::from(count));
    let bytes = batch_with_body(i32::from(count), &body);
    let header = validate(&bytes).expect("five minimal records are a valid batch");
    assert_eq!(header.records_count, 5);
    let batch = RecordBatch::decode(bytes.clone()).expect("validate and decode agree");
    let expected: Vec<Record> = (0..i32::from(count))
        .map(|offset_delta| Record {
            offset_delta,
            ..Record::default()
        })
        .collect();
    assert_eq!(batch.records, expected);
    let mut seen = Vec::new();
    visit_records(&bytes, |r| {
        seen.push((r.offset_delta, r.key.is_none(), r.value.is_none()))
    })
    .expect("visit_records agrees");
    assert_eq!(seen, (0..5).map(|i| (i, true, true)).collect::<Vec<_>>());
}

#[test]
fn a_decode_error_names_the_field_it_was_reading() {
    let bytes = batch_with_body(1, &[0xff, 0xff]);
    let error = refused_everywhere(&bytes);
    assert_eq!(error.to_string(), "record.length: needs 3 bytes, 2 remain");
    let short = Bytes::from_static(&[0; 10]);
    assert_eq!(
        validate(&short)
            .expect_err("ten bytes are no batch")
            .to_string(),
        format!("record batch header: needs {RECORD_BATCH_OVERHEAD} bytes, 10 remain")
    );
}

#[test]
fn none_is_the_only_error_code_that_means_success() {
    assert!(ErrorCode::None.is_ok());
    assert_eq!(ErrorCode::None.code(), 0);
    for code in ErrorCode::ALL.iter().copied() {
        assert_eq!(code.is_ok(), code == ErrorCode::None, "{code}");
    }
}

#[test]
fn attribute_bits_name_transactional_control_and_compression() {
    // Kafka's DefaultRecordBatch: bits 0-2 compression, 3 timestamp type, 4 transactional,
    // 5 control, 6 delete horizon.
    let empty = RecordBatch::idempotent(ProducerId(1), ProducerEpoch(0), Sequence(0), 0, vec![]);
    for attributes in [0i16, 0x08, 0x10, 0x20, 0x30, 0x40, 0x13, 0x27, 0x7f] {
        let bytes = RecordBatch {
            attributes,
            ..empty.clone()
        }
        .to_bytes();
        let header = BatchHeader::parse(&bytes).expect("a whole header");
        assert_eq!(header.attributes, attributes);
        assert_eq!(
            header.is_transactional(),
            attributes & 0x10 != 0,
            "{attributes:#x}: transactional is bit 4"
        );
        assert_eq!(
            header.is_control(),
            attributes & 0x20 != 0,
            "{attributes:#x}: control is bit 5"
        );
        assert_eq!(
            header.compression(),
            (attributes & 0x07) as u8,
            "{attributes:#x}: compression is bits 0-2"
        );
    }
}

#[test]
fn a_fresh_client_batch_carries_no_offset_and_no_leader_epoch() {
    let batch = RecordBatch::idempotent(
        ProducerId(3),
        ProducerEpoch(1),
        Sequence(10),
        1_000,
        vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
    );
    assert_eq!(batch.base_offset, 0, "the leader assigns the offset");
    assert_eq!(
        batch.partition_leader_epoch, -1,
        "the leader sets the epoch (NO_PARTITION_LEADER_EPOCH until then)"
    );
    assert_eq!(batch.attributes, 0, "uncompressed, not transactional");
    assert_eq!(batch.last_offset_delta, 1, "two records");
    assert_eq!((batch.base_timestamp, batch.max_timestamp), (1_000, 1_000));
    let bytes = batch.to_bytes();
    assert_eq!(&bytes[12..16], &(-1i32).to_be_bytes());
}

#[test]
fn a_record_header_key_may_not_be_null() {
    // length 7: attributes, timestampDelta, offsetDelta, null key, null value, one header
    // whose key length is -1.
    let record = [14, 0, 0, 0, 1, 1, 2, 1];
    assert_eq!(
        refused_everywhere(&batch_with_body(1, &record)),
        DecodeError::InvalidValue {
            field: "record.header.key",
            value: -1,
            expected: "a non-null header key",
        }
    );
}

#[test]
fn a_record_whose_fields_run_past_its_length_is_truncated_at_that_length() {
    // The first record announces 2 bytes but its fields take 6; a second record follows, so
    // the overrun stays inside the batch and only the record's own length is violated.
    let mut body = vec![4, 0, 0, 0, 1, 1, 0];
    body.extend_from_slice(&minimal_record(1));
    assert_eq!(
        refused_everywhere(&batch_with_body(2, &body)),
        DecodeError::Truncated {
            field: "record",
            needed: 6,
            remaining: 2,
        }
    );
}

#[test]
fn a_byte_length_below_minus_one_is_an_invalid_value_not_a_huge_read() {
    // -1 is Kafka's null; -2 (zig-zag 3) is no length at all, for keys, values and headers.
    let cases: [(&'static str, &[u8]); 4] = [
        ("record.key", &[12, 0, 0, 0, 3, 1, 0]),
        ("record.value", &[12, 0, 0, 0, 1, 3, 0]),
        ("record.header.key", &[16, 0, 0, 0, 1, 1, 2, 3, 1]),
        ("record.header.value", &[18, 0, 0, 0, 1, 1, 2, 2, b'h', 3]),
    ];
    for (field, record) in cases {
        assert_eq!(
            refused_everywhere(&batch_with_body(1, record)),
            DecodeError::InvalidValue {
                field,
                value: -2,
                expected: "a length >= -1",
            },
            "{field}"
        );
    }
}

#[test]
fn visit_records_shows_each_key_and_value_as_encoded() {
    let mut keyed = Record::with_value(1, "second value");
    keyed.key = Some(Bytes::from_static(b"key-1"));
    let records = vec![
        Record::with_value(0, "v0"),
        keyed,
        Record {
            offset_delta: 2,
            key: Some(Bytes::from_static(b"k2")),
            value: None,
            ..Record::default()
        },
    ];
    let bytes = RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(0),
        5,
        records.clone(),
    )
    .to_bytes();
    let mut seen = Vec::new();
    visit_records(&bytes, |r| {
        seen.push((
            r.offset_delta,
            r.key.map(<[u8]>::to_vec),
            r.value.map(<[u8]>::to_vec),
        ))
    })
    .expect("a valid batch");
    let expected: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.offset_delta,
                r.key.as_ref().map(|k| k.to_vec()),
                r.value.as_ref().map(|v| v.to_vec()),
            )
        })
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_fetch_buffer_announcing_a_batch_shorter_than_its_header_is_refused() {
    let mut buf = vec![0u8; RECORD_BATCH_OVERHEAD];
    buf[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(
        decode_batches(Bytes::from(buf)),
        Err(DecodeError::InvalidValue {
            field: "batchLength",
            value: 10,
            expected: "at least 49",
        })
    );
}

#[test]
fn minus_one_means_no_producer_id_and_no_epoch() {
    // Kafka's RecordBatch.NO_PRODUCER_ID and NO_PRODUCER_EPOCH; hasProducerId is id > -1.
    assert_eq!(ProducerId::NONE, ProducerId(-1));
    assert_eq!(ProducerEpoch::NONE, ProducerEpoch(-1));
    assert_eq!(Sequence::NONE, Sequence(-1));
    for (id, idempotent) in [
        (-5, false),
        (-1, false),
        (0, true),
        (1, true),
        (i64::MAX, true),
    ] {
        assert_eq!(ProducerId(id).is_some(), idempotent, "producer id {id}");
    }
}

#[test]
fn a_fetch_without_a_replica_or_an_epoch_carries_kafkas_minus_one() {
    // Kafka's FetchRequest.CONSUMER_REPLICA_ID and RecordBatch.NO_PARTITION_LEADER_EPOCH: the
    // Kafka-wire edge passes a client's fields through unchanged, so these must be -1.
    assert_eq!(CONSUMER_REPLICA_ID, -1);
    assert_eq!(NO_LEADER_EPOCH, -1);
    let fetch = FetchRequest::consumer(0, 7, 1_024);
    assert_eq!(
        (
            fetch.replica_id,
            fetch.current_leader_epoch,
            fetch.last_fetched_epoch
        ),
        (-1, -1, -1),
        "a consumer's fetch names no replica and skips both epoch checks"
    );
}

#[test]
fn a_record_with_the_widest_fields_round_trips() {
    // The most bytes a record's leading varints can take: a ten-byte timestamp delta, a
    // five-byte offset delta and key length, a two-byte body length.
    let record = Record {
        attributes: 0,
        timestamp_delta: i64::MIN,
        offset_delta: i32::MAX,
        key: Some(Bytes::from(vec![7u8; 300])),
        value: Some(Bytes::from_static(b"v")),
        headers: Vec::new(),
    };
    for timestamp_delta in [i64::MIN, i64::MAX, -1, 0] {
        let record = Record {
            timestamp_delta,
            ..record.clone()
        };
        let mut batch = RecordBatch::idempotent(
            ProducerId(3),
            ProducerEpoch(1),
            Sequence(0),
            1_000,
            vec![record.clone()],
        );
        batch.last_offset_delta = i32::MAX;
        let decoded = RecordBatch::decode(batch.to_bytes()).expect("a valid record decodes");
        assert_eq!(decoded.records, vec![record], "delta {timestamp_delta}");
    }
}

#[test]
fn identifiers_print_as_their_wire_numbers() {
    assert_eq!(ProducerId(4_000).to_string(), "4000");
    assert_eq!(ProducerId::NONE.to_string(), "-1");
    assert_eq!(ProducerEpoch(12).to_string(), "12");
    assert_eq!(Sequence(i32::MAX).to_string(), i32::MAX.to_string());
}

#[test]
fn the_next_sequence_is_one_more_and_wraps_only_after_max() {
    assert_eq!(
        Sequence::NONE.next(),
        Sequence(0),
        "nothing seen yet: 0 comes first"
    );
    for s in [0, 1, 5, 1_000, i32::MAX - 1] {
        assert_eq!(Sequence(s).next(), Sequence(s + 1), "after {s}");
        assert!(
            Sequence(s + 1).follows(Sequence(s)),
            "{} follows {s}",
            s + 1
        );
    }
    assert_eq!(Sequence(i32::MAX).next(), Sequence(0));
}

#[test]
fn a_sequence_less_than_half_the_space_ahead_is_ahead_and_half_or_more_is_behind() {
    let half = 1i64 << 30;
    assert_eq!(
        Sequence(7).ahead_by(Sequence(7)),
        Some(0),
        "the same sequence"
    );
    assert_eq!(
        Sequence(0).ahead_by(Sequence((1 << 30) - 1)),
        Some(half - 1)
    );
    assert_eq!(
        Sequence(0).ahead_by(Sequence(1 << 30)),
        None,
        "exactly half: behind"
    );
    assert_eq!(
        Sequence(0).ahead_by(Sequence(i32::MAX)),
        None,
        "one step behind 0"
    );
    assert_eq!(
        Sequence(i32::MAX - 1).ahead_by(Sequence(3)),
        Some(5),
        "across the wrap"
    );
    assert_eq!(
        Sequence(1 << 30).ahead_by(Sequence(0)),
        None,
        "half the space across the wrap is behind too"
    );
    assert_eq!(
        Sequence::NONE.ahead_by(Sequence(0)),
        Some(1),
        "NONE is before 0"
    );
}

#[test]
fn only_zero_follows_max_and_only_after_max_does_a_sequence_restart() {
    assert!(Sequence(0).follows(Sequence(i32::MAX)));
    assert!(
        !Sequence(0).follows(Sequence(5)),
        "0 after 5 is a restart, not the next"
    );
    assert!(
        !Sequence(3).follows(Sequence(i32::MAX)),
        "after MAX only 0 is next"
    );
    assert!(
        !Sequence(5).follows(Sequence(5)),
        "a repeat is not the next"
    );
    assert!(
        !Sequence(4).follows(Sequence(5)),
        "going back is not the next"
    );
}

/// A batch whose records carry these absolute timestamps (deltas from a base of 1000).
fn batch_with_timestamps(timestamps: &[i64]) -> Bytes {
    let records = timestamps
        .iter()
        .enumerate()
        .map(|(i, t)| Record {
            offset_delta: i as i32,
            timestamp_delta: t - 1_000,
            ..Record::default()
        })
        .collect();
    RecordBatch::idempotent(ProducerId(1), ProducerEpoch(0), Sequence(0), 1_000, records).to_bytes()
}

#[test]
fn the_largest_record_timestamp_is_found_ignoring_records_without_one() {
    // Kafka's LogValidator skips NO_TIMESTAMP (-1) when it finds a batch's max timestamp.
    assert_eq!(NO_TIMESTAMP, -1);
    for (timestamps, max) in [
        (vec![1_005, 1_050, 1_020], Some(1_050)),
        (vec![1_050, 1_005], Some(1_050)),
        (vec![NO_TIMESTAMP, 1], Some(1)),
        (vec![1, NO_TIMESTAMP], Some(1)),
        (vec![NO_TIMESTAMP], None),
        (vec![NO_TIMESTAMP, NO_TIMESTAMP], None),
    ] {
        let bytes = batch_with_timestamps(&timestamps);
        let header = BatchHeader::parse(&bytes).expect("a whole header");
        let summary = validate_records(&bytes, &header).expect("valid records");
        assert_eq!(summary.max_record_timestamp, max, "{timestamps:?}");
    }
}

#[test]
fn the_smallest_record_timestamp_is_found_ignoring_records_without_one() {
    // The oldest record decides message.timestamp.before.max.ms (KIP-937).
    for (timestamps, min) in [
        (vec![1_050, 1_005, 1_020], Some(1_005)),
        (vec![1_005, 1_050], Some(1_005)),
        (vec![NO_TIMESTAMP, 7], Some(7)),
        (vec![7, NO_TIMESTAMP], Some(7)),
        (vec![NO_TIMESTAMP], None),
    ] {
        let bytes = batch_with_timestamps(&timestamps);
        let header = BatchHeader::parse(&bytes).expect("a whole header");
        let summary = validate_records(&bytes, &header).expect("valid records");
        assert_eq!(summary.min_record_timestamp, min, "{timestamps:?}");
    }
}

#[test]
fn the_leader_epoch_can_be_assigned_without_breaking_the_crc() {
    let bytes = batch_with_timestamps(&[1_000]);
    let mut stamped = BytesMut::from(&bytes[..]);
    set_partition_leader_epoch(&mut stamped, 7);
    assert_eq!(&stamped[12..16], &7i32.to_be_bytes());
    let decoded = RecordBatch::decode(stamped.freeze()).expect("the CRC does not cover it");
    assert_eq!(decoded.partition_leader_epoch, 7);
    let mut short = [0u8; 15];
    set_partition_leader_epoch(&mut short, 7);
    assert_eq!(short, [0u8; 15], "a slice without the field is left alone");
}
