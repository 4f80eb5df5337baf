//! Kafka's compression codecs: how a batch's records are packed, and how a broker unpacks
//! them without trusting the sender.
//!
//! A producer may compress the *records* of a batch (everything after the 61-byte header);
//! the header itself, with the producer id, epoch and sequence the dedup rule reads, is
//! never compressed. Bits 0-2 of the batch's `attributes` name the codec:
//!
//! ```text
//! id  compression.type  bytes after the header                        who writes it
//! --  ----------------  --------------------------------------------  ------------------------
//!  0  none              the records                                   every client by default
//!  1  gzip              one or more gzip members (RFC 1952)           Java, librdkafka, kafkajs
//!  2  snappy            xerial framing: "\x82SNAPPY\0", version 1,    Java, kafka-python
//!                       compatible 1, then [i32 length][raw block]*
//!                       or one raw snappy block, no framing           librdkafka
//!  3  lz4               an LZ4 frame (magic 0x184D2204)               Java, librdkafka, kafka-python
//!  4  zstd              one or more zstd frames                       Java, librdkafka (Produce v7+)
//! ```
//!
//! Kafka's broker with `compression.type=producer` (its default) keeps a compressed batch
//! *as sent*: it decompresses the records only to validate them (walk each record, check the
//! count, the inner offsets and the timestamps), then appends the original bytes and
//! overwrites the base offset in place. idempo does the same, so a Fetch returns the batch
//! byte for byte as the producer compressed it, and the CRC the producer computed stays
//! valid.
//!
//! # Bombs
//!
//! A few hundred bytes of gzip or zstd can announce, or expand to, gigabytes. A broker that
//! allocates what a stream announces, or decompresses without a bound, can be killed by
//! one request. So [`decompress`] never sizes a buffer from the input: output grows in
//! chunks as the decoder produces it, never past `max_bytes` (the broker passes
//! `message.max.bytes`), and the first byte beyond the limit stops the decoder with
//! [`DecodeError::DecompressedTooLarge`] (the broker answers `MESSAGE_TOO_LARGE`). Each
//! codec's own working memory is bounded by a constant: gzip's 32 KiB window, an LZ4
//! frame's block buffers (at most 4 MiB blocks), a zstd window of at most
//! 2^[`ZSTD_WINDOW_LOG_MAX`] bytes (a frame that asks for more is refused before anything
//! is allocated for it), and a snappy block's announced length is checked against the
//! remaining budget before its bytes are produced.
//!
//! # Differences from Kafka
//!
//! * Kafka bounds the *compressed* batch by `message.max.bytes` and nothing bounds the
//!   decompressed records; idempo bounds both by the same number. Real clients build batches
//!   by their uncompressed size (`batch.size`: 16 KiB in Java, 1 MB in librdkafka), so
//!   their batches pass.
//! * A compressed batch whose inner offset deltas are not 0, 1, 2, ... is rewritten by
//!   Kafka (recompressed with fresh offsets, for old clients); idempo, which stores batches
//!   as sent, refuses it with `INVALID_RECORD`. No current client writes one.
//! * zstd frames with a window above 2^[`ZSTD_WINDOW_LOG_MAX`] bytes are refused (Kafka's
//!   zstd-jni accepts up to 2^27, zstd's default limit). Clients compress at level 3 by
//!   default, which uses at most 2^21.
//! * The broker never compresses: there is no `compression.type` other than `producer`.
//!   [`compress`] and [`compress_batch`] exist for tests, seeds and tools.

use crate::decode::DecodeError;
use crate::record_batch::{
    ATTR_COMPRESSION_MASK, ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD,
    RecordBatch,
};
use bytes::Bytes;
use std::fmt;
use std::io::{self, Read, Write};

/// Kafka's default `message.max.bytes` (1 MiB plus the 12-byte log overhead): the bound on a
/// decompressed batch used by decoders that are given none ([`crate::validate`],
/// [`RecordBatch::decode`], [`crate::visit_records`]).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 1_048_588;

/// The largest zstd window accepted, as a power of two (8 MiB). zstd's own default limit is
/// 27 (128 MiB); level 3, every client's default, uses at most 21, and levels up to 19 at
/// most 23.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The xerial snappy stream header that Java's `SnappyOutputStream` writes first: magic,
/// then version 1 and compatible version 1 as big-endian `i32`s.
pub const XERIAL_SNAPPY_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];

/// Block size of Java's `SnappyOutputStream` (32 KiB), which [`compress`] copies.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Bytes handed from a streaming decoder to the output per read.
const CHUNK_BYTES: usize = 16 * 1024;

/// A compression codec of a RecordBatch, with Kafka's ids (attributes bits 0-2) and its
/// `compression.type` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression (id 0).
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy (id 2): xerial-framed (Java) or one raw block (librdkafka).
    Snappy,
    /// lz4 (id 3): the LZ4 frame format.
    Lz4,
    /// zstd (id 4), from Produce v7 on (KIP-110).
    Zstd,
}

impl Compression {
    /// Every codec Kafka defines, by id.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec with Kafka id `id` (0-4); ids 5-7 are
    /// [`DecodeError::UnsupportedCompression`], as Kafka defines no codec for them.
    pub fn from_id(id: u8) -> Result<Compression, DecodeError> {
        Compression::ALL
            .get(usize::from(id))
            .copied()
            .ok_or(DecodeError::UnsupportedCompression(id))
    }

    /// The codec named by a batch's attributes (bits 0-2).
    pub fn from_attributes(attributes: i16) -> Result<Compression, DecodeError> {
        Compression::from_id((attributes & ATTR_COMPRESSION_MASK) as u8)
    }

    /// Kafka's id (attributes bits 0-2).
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's `compression.type` name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decompresses the records section of a batch compressed with `codec`, producing at most
/// `max_bytes` bytes. `Compression::None` copies the input, within the same bound.
///
/// Output is never sized from the input (see the module's "Bombs"): a stream that expands
/// past `max_bytes` stops with [`DecodeError::DecompressedTooLarge`]; one that does not
/// decode is [`DecodeError::Decompression`].
///
/// # Examples
///
/// ```
/// use idempo_protocol::compression::{Compression, compress, decompress};
/// let packed = compress(Compression::Zstd, &[7u8; 10_000]);
/// assert_eq!(decompress(Compression::Zstd, &packed, 10_000).unwrap().len(), 10_000);
/// assert!(decompress(Compression::Zstd, &packed, 9_999).is_err());
/// ```
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_bytes: usize,
) -> Result<Bytes, DecodeError> {
    let mut out = BoundedOutput::new(codec, max_bytes);
    match codec {
        Compression::None => out.push(input)?,
        Compression::Gzip => out.drain(flate2::read::MultiGzDecoder::new(input))?,
        Compression::Snappy => snappy_decompress(input, &mut out)?,
        Compression::Lz4 => out.drain(lz4_flex::frame::FrameDecoder::new(input))?,
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| out.failed(&e))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| out.failed(&e))?;
            out.drain(decoder)?;
        }
    }
    Ok(out.finish())
}

/// Decompressed bytes that can never grow past their bound: capacity grows by doubling but
/// is clamped to `max_bytes`, so not even the allocation exceeds it.
struct BoundedOutput {
    codec: Compression,
    max_bytes: usize,
    out: Vec<u8>,
    /// The largest capacity held, for the tests that check the bound.
    peak_capacity: usize,
}

impl BoundedOutput {
    fn new(codec: Compression, max_bytes: usize) -> BoundedOutput {
        BoundedOutput {
            codec,
            max_bytes,
            out: Vec::new(),
            peak_capacity: 0,
        }
    }

    fn too_large(&self) -> DecodeError {
        DecodeError::DecompressedTooLarge {
            codec: self.codec.id(),
            max_bytes: self.max_bytes,
        }
    }

    fn failed(&self, why: &dyn fmt::Display) -> DecodeError {
        DecodeError::Decompression {
            codec: self.codec.id(),
            why: why.to_string(),
        }
    }

    /// Makes room for `n` more bytes, or refuses them if they would pass the bound.
    fn reserve(&mut self, n: usize) -> Result<(), DecodeError> {
        if n > self.max_bytes - self.out.len() {
            return Err(self.too_large());
        }
        let needed = self.out.len() + n;
        if needed > self.out.capacity() {
            let target = (self.out.capacity() * 2)
                .max(needed)
                .max(CHUNK_BYTES)
                .min(self.max_bytes);
            self.out.reserve_exact(target - self.out.len());
            self.peak_capacity = self.peak_capacity.max(self.out.capacity());
        }
        Ok(())
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        self.reserve(chunk.len())?;
        self.out.extend_from_slice(chunk);
        Ok(())
    }

    /// Reads a streaming decoder to its end, chunk by chunk, within the bound.
    fn drain(&mut self, mut decoder: impl Read) -> Result<(), DecodeError> {
        let mut chunk = [0u8; CHUNK_BYTES];
        // Each pass either ends the loop or adds at least one byte, and the bound caps the
        // bytes: at most max_bytes + 1 passes.
        loop {
            match decoder.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => self.push(&chunk[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(&e)),
            }
        }
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.out)
    }
}

/// Snappy as Kafka's clients write it: xerial-framed blocks when the stream starts with
/// xerial's magic (as xerial's `SnappyInputStream`, which Kafka uses, decides), else one raw
/// snappy block.
fn snappy_decompress(input: &[u8], out: &mut BoundedOutput) -> Result<(), DecodeError> {
    let Some(mut rest) = input.strip_prefix(&XERIAL_SNAPPY_HEADER[..8]) else {
        return snappy_block(input, out);
    };
    // Version and compatible version: xerial reads both and checks neither strictly.
    rest = rest
        .get(8..)
        .ok_or_else(|| out.failed(&"truncated xerial header"))?;
    // Each chunk consumes at least its 4-byte length prefix: at most input.len() / 4 passes.
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| out.failed(&"truncated xerial chunk length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| out.failed(&"negative xerial chunk length"))?;
        if len > tail.len() {
            return Err(out.failed(&format!(
                "xerial chunk of {len} bytes, {} remain",
                tail.len()
            )));
        }
        let (block, tail) = tail.split_at(len);
        snappy_block(block, out)?;
        rest = tail;
    }
    Ok(())
}

/// One raw snappy block. Its announced length is checked against the remaining budget
/// before any byte is produced.
fn snappy_block(block: &[u8], out: &mut BoundedOutput) -> Result<(), DecodeError> {
    let len = snap::raw::decompress_len(block).map_err(|e| out.failed(&e))?;
    out.reserve(len)?;
    let start = out.out.len();
    out.out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out.out[start..]) {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(out.failed(&format!("snappy block announced {len} bytes, held {n}"))),
        Err(e) => Err(out.failed(&e)),
    }
}

/// Compresses `raw` as Kafka's Java client does: gzip, xerial-framed snappy in 32 KiB
/// blocks, an LZ4 frame, zstd at level 3. For tests and tools: the broker never compresses.
pub fn compress(codec: Compression, raw: &[u8]) -> Vec<u8> {
    let io_to_vec = "writing to a Vec cannot fail";
    match codec {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).expect(io_to_vec);
            e.finish().expect(io_to_vec)
        }
        Compression::Snappy => {
            let mut out = XERIAL_SNAPPY_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(XERIAL_BLOCK_BYTES) {
                let packed = encoder
                    .compress_vec(block)
                    .expect("a 32 KiB block is within snappy's limits");
                let len = i32::try_from(packed.len()).expect("a packed 32 KiB block fits an i32");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&packed);
            }
            out
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(raw).expect(io_to_vec);
            e.finish().expect(io_to_vec)
        }
        Compression::Zstd => zstd::encode_all(raw, 3).expect(io_to_vec),
    }
}

/// Compresses `raw` as one raw snappy block, as librdkafka does (no xerial framing).
pub fn compress_snappy_raw(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("test inputs are within snappy's 4 GiB limit")
}

/// Encodes `batch` with its records compressed by `codec` (with [`compress`]), the codec in
/// its attributes, and batchLength and CRC-32C computed over the compressed bytes: a batch
/// as a producer with `compression.type` = `codec` sends it.
///
/// # Examples
///
/// ```
/// use idempo_protocol::compression::{Compression, compress_batch};
/// use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence, validate};
/// let batch = RecordBatch::idempotent(
///     ProducerId(1), ProducerEpoch(0), Sequence(0), 1_000,
///     vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
/// );
/// let bytes = compress_batch(&batch, Compression::Lz4);
/// assert_eq!(validate(&bytes).unwrap().compression(), 3);
/// assert_eq!(RecordBatch::decode(bytes).unwrap().records, batch.records);
/// ```
pub fn compress_batch(batch: &RecordBatch, codec: Compression) -> Bytes {
    let plain = batch.to_bytes();
    let records = compress(codec, &plain[RECORD_BATCH_OVERHEAD..]);
    with_records(&plain[..RECORD_BATCH_OVERHEAD], codec, &records)
}

/// A batch made of `header` (the first 61 bytes of an encoded batch) and already compressed
/// `records`: sets the codec bits, batchLength and the CRC-32C. For tests that need records
/// compressed some other way (raw snappy, a bomb).
pub fn with_records(header: &[u8], codec: Compression, records: &[u8]) -> Bytes {
    assert!(
        header.len() >= RECORD_BATCH_OVERHEAD,
        "with_records needs a whole 61-byte batch header"
    );
    let mut out = header[..RECORD_BATCH_OVERHEAD].to_vec();
    out.extend_from_slice(records);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).expect("test batches fit an i32");
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let mut attributes = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]]);
    attributes = (attributes & !ATTR_COMPRESSION_MASK) | i16::from(codec.id());
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips_through_compress_and_decompress() {
        for codec in CODECS {
            for len in [0, 1, 100, 70_000] {
                let raw = sample(len);
                let packed = compress(codec, &raw);
                let out = decompress(codec, &packed, len.max(1)).expect("within the bound");
                assert_eq!(&out[..], &raw[..], "{codec} with {len} bytes");
            }
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_decompresses() {
        let raw = sample(50_000);
        let packed = compress_snappy_raw(&raw);
        assert_ne!(&packed[..8], &XERIAL_SNAPPY_HEADER[..8]);
        let out = decompress(Compression::Snappy, &packed, raw.len()).expect("raw block");
        assert_eq!(&out[..], &raw[..]);
    }

    #[test]
    fn codec_ids_follow_kafka_and_unknown_ids_are_unsupported() {
        for (id, codec) in Compression::ALL.iter().enumerate() {
            assert_eq!(Compression::from_id(id as u8), Ok(*codec));
            assert_eq!(usize::from(codec.id()), id);
        }
        assert_eq!(Compression::from_attributes(0x13), Ok(Compression::Lz4));
        for id in 5..=7 {
            assert_eq!(
                Compression::from_id(id),
                Err(DecodeError::UnsupportedCompression(id))
            );
        }
    }

    /// A bomb: 8 MiB of zeros packs into a few KiB (snappy, whose ratio is bounded, into
    /// a few hundred).
    fn bomb(codec: Compression) -> Vec<u8> {
        compress(codec, &vec![0u8; 8 << 20])
    }

    #[test]
    fn a_bomb_stops_at_the_bound_and_never_allocates_past_it() {
        let max_bytes = 1_048_588;
        for codec in CODECS {
            let packed = bomb(codec);
            assert!(
                packed.len() < max_bytes / 2,
                "{codec} bomb is smaller than the bound"
            );
            let mut out = BoundedOutput::new(codec, max_bytes);
            let result = match codec {
                Compression::Gzip => out.drain(flate2::read::MultiGzDecoder::new(&packed[..])),
                Compression::Snappy => snappy_decompress(&packed, &mut out),
                Compression::Lz4 => out.drain(lz4_flex::frame::FrameDecoder::new(&packed[..])),
                _ => {
                    let mut d = zstd::stream::read::Decoder::with_buffer(&packed[..]).unwrap();
                    d.window_log_max(ZSTD_WINDOW_LOG_MAX).unwrap();
                    out.drain(d)
                }
            };
            assert_eq!(
                result,
                Err(DecodeError::DecompressedTooLarge {
                    codec: codec.id(),
                    max_bytes
                }),
                "{codec}"
            );
            assert!(
                out.peak_capacity <= max_bytes,
                "{codec}: held {} bytes, bound {max_bytes}",
                out.peak_capacity
            );
            assert_eq!(
                decompress(codec, &packed, max_bytes),
                Err(DecodeError::DecompressedTooLarge {
                    codec: codec.id(),
                    max_bytes
                })
            );
        }
    }

    #[test]
    fn a_snappy_block_announcing_more_than_the_bound_is_refused_before_decoding() {
        // A raw snappy block starts with its uncompressed length as a varint: announce
        // 2^32 - 1 bytes and give none.
        let lie = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut out = BoundedOutput::new(Compression::Snappy, 1 << 20);
        assert_eq!(
            snappy_block(&lie, &mut out),
            Err(DecodeError::DecompressedTooLarge {
                codec: 2,
                max_bytes: 1 << 20
            })
        );
        assert_eq!(out.peak_capacity, 0, "nothing was allocated for the lie");
    }

    #[test]
    fn a_zstd_frame_asking_for_a_window_above_the_limit_is_refused() {
        // Streamed without a pledged size, the frame keeps the 2^27 window it was given.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(27).unwrap();
        e.write_all(&sample(300_000)).unwrap();
        let packed = e.finish().unwrap();
        match decompress(Compression::Zstd, &packed, 1 << 30) {
            Err(DecodeError::Decompression { codec: 4, why }) => {
                assert!(why.contains("memory") || why.contains("window"), "{why}")
            }
            other => panic!("expected a refused window, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_decompression_error_for_every_codec() {
        for codec in CODECS {
            let garbage = b"\x01\x02 definitely not compressed \xff\xfe";
            match decompress(codec, garbage, 1 << 20) {
                Err(DecodeError::Decompression { codec: id, .. }) => assert_eq!(id, codec.id()),
                other => panic!("{codec}: expected a decompression error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_truncated_xerial_chunk_is_a_decompression_error() {
        let mut packed = compress(Compression::Snappy, &sample(1000));
        packed.truncate(packed.len() - 3);
        assert!(matches!(
            decompress(Compression::Snappy, &packed, 1 << 20),
            Err(DecodeError::Decompression { codec: 2, .. })
        ));
    }
}
