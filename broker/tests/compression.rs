//! Compressed batches on the produce path: validated by decompressing, stored as sent,
//! deduplicated by the same rule, and bounded by `message.max.bytes` when they expand.

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig, InvalidBatch, Verdict};
use idempo_protocol::compression::{Compression, compress, compress_batch, with_records};
use idempo_protocol::{
    ErrorCode, FetchRequest, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
    decode_batches,
};

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn plain(pid: i64, seq: i32, count: i32, ts: i64) -> RecordBatch {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("{pid}-{seq}-{i} and some text that compresses")))
        .collect();
    RecordBatch::idempotent(
        ProducerId(pid),
        ProducerEpoch(0),
        Sequence(seq),
        ts,
        records,
    )
}

fn broker() -> Broker {
    Broker::new(BrokerConfig::default()).expect("the default config is valid")
}

#[test]
fn compressed_batches_of_every_codec_are_appended_and_fetched_byte_for_byte() {
    for codec in CODECS {
        let mut b = broker();
        let first = compress_batch(&plain(1, 0, 5, 100), codec);
        let second = compress_batch(&plain(1, 5, 3, 200), codec);
        assert!(b.produce(0, &first).is_appended(), "{codec}");
        let o = b.produce(0, &second);
        assert!(o.is_appended(), "{codec}: {o}");
        assert_eq!(o.response.base_offset, 5);
        let fetched = b.fetch(&FetchRequest::consumer(0, 0, 1 << 20)).records;
        // Stored as sent: only the fields the CRC does not cover were assigned, the base
        // offset and the partition leader epoch (0 while standalone), as Kafka does.
        let assigned = |bytes: &Bytes, base_offset: i64| {
            let mut b = bytes.to_vec();
            idempo_protocol::set_base_offset(&mut b, base_offset);
            idempo_protocol::set_partition_leader_epoch(&mut b, 0);
            b
        };
        let mut expected = assigned(&first, 0);
        expected.extend_from_slice(&assigned(&second, 5));
        assert_eq!(
            &fetched[..expected.len()],
            &expected[..],
            "{codec} byte for byte"
        );
        let batches = decode_batches(fetched).expect("stored batches decode");
        assert_eq!(batches[1].records, plain(1, 5, 3, 200).records);
        assert_eq!(batches[1].attributes & 0x07, i16::from(codec.id()));
    }
}

#[test]
fn a_retried_compressed_batch_is_a_duplicate_with_its_original_offset() {
    for codec in CODECS {
        let mut b = broker();
        let batch = compress_batch(&plain(7, 0, 4, 100), codec);
        b.produce(0, &batch);
        b.produce(0, &compress_batch(&plain(7, 4, 2, 150), codec));
        let retry = b.produce(0, &batch);
        assert!(retry.is_duplicate(), "{codec}: {retry}");
        assert_eq!(retry.response.base_offset, 0);
        assert_eq!(b.log_end_offset(0), Some(6), "{codec}: nothing appended");
    }
}

#[test]
fn a_compressed_bomb_is_message_too_large_and_appends_nothing() {
    // 2 MiB of records that compress to a few KiB: smaller than message.max.bytes on the
    // wire, larger once decompressed.
    let big = vec![Record::with_value(0, vec![0u8; 2 << 20])];
    let batch = RecordBatch::idempotent(ProducerId(3), ProducerEpoch(0), Sequence(0), 0, big);
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let mut b = broker();
        let bomb = compress_batch(&batch, codec);
        assert!(bomb.len() < 100_000, "{codec} bomb is {} bytes", bomb.len());
        let o = b.produce(0, &bomb);
        assert_eq!(o.response.error_code, ErrorCode::MessageTooLarge, "{codec}");
        assert_eq!(
            o.verdict,
            Verdict::Invalid(InvalidBatch::DecompressedTooLarge {
                codec: codec.id(),
                max: 1_048_588
            })
        );
        assert_eq!(b.log_end_offset(0), Some(0), "{codec}: nothing appended");
    }
}

#[test]
fn message_max_bytes_bounds_the_decompressed_records() {
    let batch = compress_batch(&plain(1, 0, 50, 0), Compression::Zstd);
    let raw = plain(1, 0, 50, 0).to_bytes().len() - 61;
    let mut within = Broker::new(BrokerConfig {
        max_message_bytes: raw,
        ..BrokerConfig::default()
    })
    .unwrap();
    assert!(within.produce(0, &batch).is_appended());
    let mut below = Broker::new(BrokerConfig {
        max_message_bytes: raw - 1,
        ..BrokerConfig::default()
    })
    .unwrap();
    assert_eq!(
        below.produce(0, &batch).response.error_code,
        ErrorCode::MessageTooLarge
    );
}

#[test]
fn records_that_do_not_decompress_are_invalid_record() {
    let header = plain(1, 0, 2, 0).to_bytes();
    for codec in CODECS {
        let mut b = broker();
        let bad = with_records(&header, codec, b"not compressed at all");
        let o = b.produce(0, &bad);
        assert_eq!(o.response.error_code, ErrorCode::InvalidRecord, "{codec}");
        assert!(o.to_string().contains("decompress"), "{codec}: {o}");
    }
}

#[test]
fn a_compressed_batch_whose_record_count_disagrees_with_its_records_is_invalid_record() {
    // The header says 3 records (lastOffsetDelta 2, recordsCount 3); the compressed section
    // holds only 2.
    let three = plain(1, 0, 3, 0).to_bytes();
    let two = plain(1, 0, 2, 0).to_bytes();
    for codec in CODECS {
        let mut b = broker();
        let lying = with_records(&three, codec, &compress(codec, &two[61..]));
        let o = b.produce(0, &lying);
        assert_eq!(o.response.error_code, ErrorCode::InvalidRecord, "{codec}");
    }
}

#[test]
fn a_compressed_batch_with_non_consecutive_inner_offsets_is_invalid_record() {
    let mut batch = plain(1, 0, 3, 0);
    batch.records[2].offset_delta = 5;
    batch.last_offset_delta = 2;
    for codec in CODECS {
        let mut b = broker();
        let o = b.produce(0, &compress_batch(&batch, codec));
        assert_eq!(o.response.error_code, ErrorCode::InvalidRecord, "{codec}");
        assert!(o.to_string().contains("offsetDelta"), "{codec}: {o}");
    }
}

#[test]
fn a_record_stamped_too_far_ahead_inside_a_compressed_batch_is_invalid_timestamp() {
    let mut batch = plain(1, 0, 2, 0);
    batch.records[1].timestamp_delta = 2 * 3_600_000;
    let o = broker().produce(0, &compress_batch(&batch, Compression::Lz4));
    assert_eq!(o.response.error_code, ErrorCode::InvalidTimestamp);
}

#[test]
fn an_undefined_codec_is_unsupported_compression_type() {
    let header = plain(1, 0, 2, 0).to_bytes();
    let mut bytes = with_records(&header, Compression::None, &header[61..]).to_vec();
    bytes[22] |= 0x05; // codec 5: attributes low byte, then restamp the CRC
    let crc = crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let o = broker().produce(0, &Bytes::from(bytes));
    assert_eq!(o.response.error_code, ErrorCode::UnsupportedCompressionType);
}

/// CRC-32C (Castagnoli), bitwise: slow and independent of the protocol crate's.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
