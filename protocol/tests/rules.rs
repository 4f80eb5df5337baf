//! Rules of the wire layer (RecordBatch v2 decoding, error codes), one test per rule, through
//! the public API.
//!
//! `properties.rs` checks round trips and totality over random batches; these tests pin the
//! exact answer for the hand-built edge cases a random batch rarely reaches (a varint cut by
//! the end of the batch, bytes after the last record, the smallest possible records), so that
//! a change to any one rule fails a test named after it. They were written against the
//! survivors of `cargo mutants -p idempo-protocol` (see bench/MUTANTS.md).

use bytes::{BufMut, Bytes, BytesMut};
use idempo_protocol::record_batch::{ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD};
use idempo_protocol::{
    DecodeError, ErrorCode, ProducerEpoch, ProducerId, RECORD_BATCH_OVERHEAD, Record, RecordBatch,
    Sequence, decode_batches, validate, visit_records,
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
