//! Kafka's RecordBatch v2 (magic 2), byte for byte.
//!
//! A producer sends its records to a partition as one *batch*. The batch header carries
//! everything the broker's deduplication needs, the producer id, epoch and base sequence,
//! and a CRC-32C that lets the broker refuse a batch damaged on the way.
//!
//! # Layout
//!
//! All integers are big-endian. The header is [`RECORD_BATCH_OVERHEAD`] = 61 bytes.
//!
//! ```text
//! offset  size  field                 notes
//! ------  ----  --------------------  ------------------------------------------------------
//!      0     8  baseOffset            the client sends 0; the leader writes the real offset
//!      8     4  batchLength           bytes after this field (total size - 12)
//!     12     4  partitionLeaderEpoch  set by the leader; not covered by the CRC
//!     16     1  magic                 2
//!     17     4  crc                   CRC-32C (Castagnoli) of bytes 21..end
//!     21     2  attributes            bits 0-2 compression, 3 timestamp type,
//!                                     4 transactional, 5 control, 6 delete horizon
//!     23     4  lastOffsetDelta       record count - 1 for a fresh batch
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp          the broker's "last timestamp" for producer expiry
//!     43     8  producerId            -1 = not idempotent
//!     51     2  producerEpoch         -1 = none
//!     53     4  baseSequence          -1 = none
//!     57     4  recordsCount
//!     61     *  records               recordsCount records, laid out as below
//! ```
//!
//! Each record uses zig-zag varints (Kafka's `DefaultRecord`):
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, 0
//! timestampDelta  varlong  timestamp - baseTimestamp
//! offsetDelta     varint   offset - baseOffset
//! keyLength       varint   -1 = null key
//! key             bytes
//! valueLength     varint   -1 = null value
//! value           bytes
//! headerCount     varint
//! headers         headerKeyLength varint, headerKey UTF-8, headerValueLength varint (-1 = null), headerValue
//! ```
//!
//! The CRC does not cover baseOffset, batchLength, partitionLeaderEpoch or magic, so the
//! broker can assign the offset without recomputing it ([`set_base_offset`]).
//!
//! A compressed batch (attributes bits 0-2 other than 0, see [`crate::compression`]) keeps
//! this header as is and compresses everything after it: the decoders here decompress the
//! records (within a bound) to walk them, and additionally require the record offset deltas
//! 0, 1, 2, ... (Kafka's inner offsets). Codec ids 5-7 are
//! [`DecodeError::UnsupportedCompression`].

use crate::compression::{Compression, DEFAULT_MAX_DECOMPRESSED_BYTES, decompress};
use crate::decode::{DecodeError, Reader, put_varlong, varlong_len};
use crate::types::{ProducerEpoch, ProducerId, Sequence};
use bytes::{BufMut, Bytes, BytesMut};

/// Size of the RecordBatch v2 header, Kafka's `RECORD_BATCH_OVERHEAD`.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record or batch without a timestamp.
pub const NO_TIMESTAMP: i64 = -1;
/// Byte offset of the CRC field.
pub const CRC_OFFSET: usize = 17;
/// Byte offset where CRC coverage starts (the attributes field).
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Bytes before the `batchLength` field's coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// The only magic this crate speaks.
pub const MAGIC_V2: i8 = 2;

/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: the batch is a control batch (transaction marker).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bits 0-2: the compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;

/// One record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header key; Kafka requires it to be non-null UTF-8.
    pub key: String,
    /// Header value; may be null.
    pub value: Option<Bytes>,
}

/// One record inside a batch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Record attributes (unused by Kafka today, always 0 from real clients).
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset; record `i` of a fresh batch has delta `i`.
    pub offset_delta: i32,
    /// Record key; `None` is Kafka's null key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Record headers.
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with only a value, at the given position in its batch.
    pub fn with_value(offset_delta: i32, value: impl Into<Bytes>) -> Record {
        Record {
            offset_delta,
            value: Some(value.into()),
            ..Record::default()
        }
    }

    fn body_len(&self) -> usize {
        let opt_len = |b: &Option<Bytes>| match b {
            Some(b) => varlong_len(b.len() as i64) + b.len(),
            None => 1,
        };
        1 + varlong_len(self.timestamp_delta)
            + varlong_len(i64::from(self.offset_delta))
            + opt_len(&self.key)
            + opt_len(&self.value)
            + varlong_len(self.headers.len() as i64)
            + self
                .headers
                .iter()
                .map(|h| varlong_len(h.key.len() as i64) + h.key.len() + opt_len(&h.value))
                .sum::<usize>()
    }

    /// Appends the record. Runs of small fields are built on the stack and copied at once
    /// (one bounds check per run, not one per byte): this is the producer's hot path.
    fn encode(&self, buf: &mut BytesMut) {
        fn put_opt(buf: &mut BytesMut, b: &Option<Bytes>) {
            match b {
                Some(b) => {
                    put_varlong(buf, b.len() as i64);
                    buf.put_slice(b);
                }
                None => put_varlong(buf, -1),
            }
        }
        fn opt_len(b: &Option<Bytes>) -> i64 {
            b.as_ref().map_or(-1, |b| b.len() as i64)
        }
        let mut run = [0u8; 4 * VARLONG_MAX_LEN + 1];
        let mut n = write_varlong(&mut run, self.body_len() as i64);
        run[n] = self.attributes as u8;
        n += 1;
        n += write_varlong(&mut run[n..], self.timestamp_delta);
        n += write_varlong(&mut run[n..], i64::from(self.offset_delta));
        n += write_varlong(&mut run[n..], opt_len(&self.key));
        buf.extend_from_slice(&run[..n]);
        if let Some(key) = &self.key {
            buf.extend_from_slice(key);
        }
        let n = write_varlong(&mut run, opt_len(&self.value));
        buf.extend_from_slice(&run[..n]);
        if let Some(value) = &self.value {
            buf.extend_from_slice(value);
        }
        let n = write_varlong(&mut run, self.headers.len() as i64);
        buf.extend_from_slice(&run[..n]);
        for h in &self.headers {
            put_varlong(buf, h.key.len() as i64);
            buf.put_slice(h.key.as_bytes());
            put_opt(buf, &h.value);
        }
    }

    /// Decodes one record: [`skip_record`] checks every field first (one walk holds the
    /// rules), then the record is built from the positions it found.
    fn decode(r: &mut Reader) -> Result<Record, DecodeError> {
        let s = skip_record(r)?;
        let headers = if s.header_count == 0 {
            Vec::new()
        } else {
            let mut h = Reader::new(r.slice(s.headers_at, r.position() - s.headers_at));
            let mut headers = Vec::with_capacity(s.header_count);
            for _ in 0..s.header_count {
                let key = read_opt_bytes(&mut h, "record.header.key")?.unwrap_or_default();
                let key =
                    String::from_utf8(key.to_vec()).map_err(|_| DecodeError::InvalidUtf8 {
                        field: "record.header.key",
                    })?;
                let value = read_opt_bytes(&mut h, "record.header.value")?;
                headers.push(Header { key, value });
            }
            headers
        };
        Ok(Record {
            attributes: s.attributes,
            timestamp_delta: s.timestamp_delta,
            offset_delta: s.offset_delta,
            key: s.key.map(|(at, len)| r.slice(at, len)),
            value: s.value.map(|(at, len)| r.slice(at, len)),
            headers,
        })
    }
}

fn read_opt_bytes(r: &mut Reader, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
    let len = r.varint(field)?;
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidValue {
            field,
            value: i64::from(n),
            expected: "a length >= -1",
        }),
        n => Ok(Some(r.bytes(n as usize, field)?)),
    }
}

/// The fixed 61-byte header of a batch, parsed without touching the records.
///
/// This is what the broker's dedup path reads: it never needs the record payloads to decide
/// whether a batch is a duplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch, set by the leader.
    pub partition_leader_epoch: i32,
    /// Format version; 2 for this layout.
    pub magic: i8,
    /// The CRC-32C stored in the header.
    pub crc: u32,
    /// Attribute bits (compression, transactional, control ...).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// The producer id, or `ProducerId::NONE`.
    pub producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// Sequence of the first record.
    pub base_sequence: Sequence,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header from the start of `batch`. Checks nothing but length: use
    /// [`verify_crc`] and [`RecordBatch::decode`] for the rest.
    pub fn parse(batch: &[u8]) -> Result<BatchHeader, DecodeError> {
        if batch.len() < RECORD_BATCH_OVERHEAD {
            return Err(DecodeError::Truncated {
                field: "record batch header",
                needed: RECORD_BATCH_OVERHEAD,
                remaining: batch.len(),
            });
        }
        let h: &[u8; RECORD_BATCH_OVERHEAD] = batch[..RECORD_BATCH_OVERHEAD]
            .try_into()
            .expect("the length was checked above");
        fn field<const N: usize>(h: &[u8; RECORD_BATCH_OVERHEAD], at: usize) -> [u8; N] {
            let mut out = [0u8; N];
            out.copy_from_slice(&h[at..at + N]);
            out
        }
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(field(h, 0)),
            batch_length: i32::from_be_bytes(field(h, 8)),
            partition_leader_epoch: i32::from_be_bytes(field(h, 12)),
            magic: h[16] as i8,
            crc: u32::from_be_bytes(field(h, 17)),
            attributes: i16::from_be_bytes(field(h, 21)),
            last_offset_delta: i32::from_be_bytes(field(h, 23)),
            base_timestamp: i64::from_be_bytes(field(h, 27)),
            max_timestamp: i64::from_be_bytes(field(h, 35)),
            producer_id: ProducerId(i64::from_be_bytes(field(h, 43))),
            producer_epoch: ProducerEpoch(i16::from_be_bytes(field(h, 51))),
            base_sequence: Sequence(i32::from_be_bytes(field(h, 53))),
            records_count: i32::from_be_bytes(field(h, 57)),
        })
    }

    /// Sequence of the last record: `base_sequence + last_offset_delta`, wrapping past
    /// `i32::MAX` to 0, or `NONE` when the batch has no sequence. Computed from the offset
    /// delta, not the record count, as Kafka does (so it survives compaction).
    pub fn last_sequence(&self) -> Sequence {
        last_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Offset of the last record. Wraps like Kafka's `long` arithmetic: the header may come
    /// from a peer, and a baseOffset near `i64::MAX` must not panic.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Total encoded size announced by the header (`batchLength + 12`).
    pub fn total_size(&self) -> i64 {
        i64::from(self.batch_length) + LOG_OVERHEAD as i64
    }

    /// The compression codec (attributes bits 0-2).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// True when the transactional attribute bit is set.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True when the control attribute bit is set.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Wrap-aware last sequence of a batch (see [`BatchHeader::last_sequence`]).
pub fn last_sequence(base_sequence: Sequence, last_offset_delta: i32) -> Sequence {
    if base_sequence == Sequence::NONE || last_offset_delta < 0 {
        Sequence::NONE
    } else {
        base_sequence.wrapping_add(last_offset_delta)
    }
}

/// Checks the CRC-32C of an encoded batch (bytes 21..end against the header's field).
pub fn verify_crc(batch: &[u8]) -> Result<(), DecodeError> {
    if batch.len() < RECORD_BATCH_OVERHEAD {
        return Err(DecodeError::Truncated {
            field: "record batch header",
            needed: RECORD_BATCH_OVERHEAD,
            remaining: batch.len(),
        });
    }
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&batch[CRC_OFFSET..CRC_OFFSET + 4]);
    let expected = u32::from_be_bytes(stored);
    let actual = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if expected == actual {
        Ok(())
    } else {
        Err(DecodeError::CorruptMessage { expected, actual })
    }
}

/// Overwrites the baseOffset field of an encoded batch. The CRC does not cover it, so the
/// batch stays valid. Does nothing to a slice shorter than 8 bytes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(field) = batch.get_mut(..8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Overwrites the partitionLeaderEpoch field of an encoded batch (bytes 12..16), which the
/// leader sets and the CRC does not cover. Does nothing to a slice shorter than 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], partition_leader_epoch: i32) {
    if let Some(field) = batch.get_mut(12..16) {
        field.copy_from_slice(&partition_leader_epoch.to_be_bytes());
    }
}

/// The longest zig-zag varlong: ten bytes.
const VARLONG_MAX_LEN: usize = 10;

/// Writes `value` as a zig-zag varlong at the start of `out` (which has room for
/// [`VARLONG_MAX_LEN`] bytes) and returns its length: the encoder's form of `put_varlong`.
fn write_varlong(out: &mut [u8], value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// A decoded RecordBatch v2 with its records.
///
/// # Examples
///
/// ```
/// use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
/// let batch = RecordBatch::idempotent(
///     ProducerId(7),
///     ProducerEpoch(0),
///     Sequence(5),
///     1_000,
///     vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
/// );
/// let bytes = batch.to_bytes();
/// assert_eq!(RecordBatch::decode(bytes).unwrap(), batch);
/// assert_eq!(batch.last_sequence(), Sequence(6));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// Offset of the first record (0 from a client).
    pub base_offset: i64,
    /// Leader epoch (set by the leader).
    pub partition_leader_epoch: i32,
    /// Attribute bits. Compression bits must be 0 to encode records as written here.
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Producer id, or `ProducerId::NONE`.
    pub producer_id: ProducerId,
    /// Producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// Sequence of the first record.
    pub base_sequence: Sequence,
    /// The records; `recordsCount` is their number.
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// A fresh batch as an idempotent producer builds it: base offset 0, offset deltas and
    /// `last_offset_delta` from the records, every record stamped `timestamp_ms`.
    pub fn idempotent(
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        base_sequence: Sequence,
        timestamp_ms: i64,
        records: Vec<Record>,
    ) -> RecordBatch {
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: (records.len() as i32).saturating_sub(1),
            base_timestamp: timestamp_ms,
            max_timestamp: timestamp_ms,
            producer_id,
            producer_epoch,
            base_sequence,
            records,
        }
    }

    /// Sequence of the last record, wrapping past `i32::MAX`.
    pub fn last_sequence(&self) -> Sequence {
        last_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Size of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        RECORD_BATCH_OVERHEAD
            + self
                .records
                .iter()
                .map(|r| {
                    let body = r.body_len();
                    varlong_len(body as i64) + body
                })
                .sum::<usize>()
    }

    /// Appends the encoded batch to `buf`, computing batchLength and the CRC-32C.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        self.encode_reserved(buf);
    }

    /// [`encode`](Self::encode) into a buffer with room for it.
    fn encode_reserved(&self, buf: &mut BytesMut) {
        let start = buf.len();
        // The header is built on the stack and copied once; batchLength (8..12) and the crc
        // (17..21) are patched in below.
        let mut head = [0u8; RECORD_BATCH_OVERHEAD];
        head[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        head[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        head[16] = MAGIC_V2 as u8;
        head[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        head[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        head[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        head[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        head[43..51].copy_from_slice(&self.producer_id.0.to_be_bytes());
        head[51..53].copy_from_slice(&self.producer_epoch.0.to_be_bytes());
        head[53..57].copy_from_slice(&self.base_sequence.0.to_be_bytes());
        head[57..61].copy_from_slice(&(self.records.len() as i32).to_be_bytes());
        buf.extend_from_slice(&head);
        for record in &self.records {
            record.encode(buf);
        }
        let batch_length = (buf.len() - start - LOG_OVERHEAD) as i32;
        buf[start + 8..start + 12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&buf[start + ATTRIBUTES_OFFSET..]);
        buf[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// The encoded batch as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_reserved(&mut buf);
        buf.freeze()
    }

    /// Decodes exactly one batch occupying all of `bytes`: checks the length, the magic, the
    /// CRC-32C (`CorruptMessage` with both values on mismatch), the compression codec, and
    /// that exactly `recordsCount` well-formed records fill the rest (decompressed, within
    /// [`DEFAULT_MAX_DECOMPRESSED_BYTES`], when the batch is compressed: the records then
    /// point into the decompressed bytes, and `to_bytes` would write them uncompressed).
    pub fn decode(bytes: Bytes) -> Result<RecordBatch, DecodeError> {
        let header = check_envelope(&bytes)?;
        let count = records_count(&header)?;
        let body = records_section(&bytes, &header, DEFAULT_MAX_DECOMPRESSED_BYTES)?;
        let mut r = Reader::new(body);
        // Each record takes at least 7 bytes, which bounds the allocation below.
        if count.saturating_mul(7) > r.remaining() {
            return Err(DecodeError::Truncated {
                field: "records",
                needed: count.saturating_mul(7),
                remaining: r.remaining(),
            });
        }
        let mut records = Vec::with_capacity(count);
        for index in 0..count {
            let record = Record::decode(&mut r)?;
            check_inner_offset(&header, index, record.offset_delta)?;
            records.push(record);
        }
        r.finish("records")?;
        Ok(RecordBatch {
            base_offset: header.base_offset,
            partition_leader_epoch: header.partition_leader_epoch,
            attributes: header.attributes,
            last_offset_delta: header.last_offset_delta,
            base_timestamp: header.base_timestamp,
            max_timestamp: header.max_timestamp,
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            records,
        })
    }
}

/// Validates one encoded batch occupying all of `bytes` the way a broker must before it
/// appends, without building the records: length, magic, CRC-32C, compression, and that
/// exactly `recordsCount` well-formed records fill the rest. Returns the parsed header.
///
/// The broker, which parses the header once and checks other rules between these steps,
/// calls the parts itself: [`check_framing`], [`check_integrity`], [`validate_records`].
/// [`RecordBatch::decode`] accepts exactly the batches this accepts.
pub fn validate(bytes: &Bytes) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(bytes)?;
    check_framing(bytes, &header)?;
    check_integrity(bytes, &header)?;
    validate_records(bytes, &header)?;
    Ok(header)
}

/// What walking a batch's records found (see [`validate_records`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsSummary {
    /// The largest record timestamp (`baseTimestamp + timestampDelta`), ignoring records
    /// whose timestamp is `NO_TIMESTAMP` (-1) as Kafka's `LogValidator` does; `None` when no
    /// record has one.
    pub max_record_timestamp: Option<i64>,
    /// The smallest record timestamp, ignoring `NO_TIMESTAMP` the same way (Kafka checks
    /// every record against `message.timestamp.before.max.ms`; the oldest decides).
    pub min_record_timestamp: Option<i64>,
}

/// Checks that `header` (parsed from `bytes`) announces exactly `bytes.len()` bytes and is
/// magic 2.
pub fn check_framing(bytes: &[u8], header: &BatchHeader) -> Result<(), DecodeError> {
    if header.total_size() != bytes.len() as i64 {
        return Err(DecodeError::InvalidValue {
            field: "batchLength",
            value: i64::from(header.batch_length),
            expected: "the batch's size minus 12",
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(DecodeError::UnsupportedMagic(header.magic));
    }
    Ok(())
}

/// Checks the CRC-32C, then that the compression codec is one Kafka defines (the codec is
/// covered by the CRC, so a damaged attributes field is reported as corruption first).
pub fn check_integrity(bytes: &[u8], header: &BatchHeader) -> Result<(), DecodeError> {
    verify_crc(bytes)?;
    Compression::from_attributes(header.attributes)?;
    Ok(())
}

/// Walks the records of a batch whose framing was checked: exactly `recordsCount`
/// well-formed records must fill the bytes after the header. Decompresses a compressed
/// batch within [`DEFAULT_MAX_DECOMPRESSED_BYTES`]; see [`validate_records_within`].
pub fn validate_records(
    bytes: &Bytes,
    header: &BatchHeader,
) -> Result<RecordsSummary, DecodeError> {
    validate_records_within(bytes, header, DEFAULT_MAX_DECOMPRESSED_BYTES)
}

/// [`validate_records`] with a bound on the decompressed records of a compressed batch (the
/// broker passes `message.max.bytes`): beyond it, [`DecodeError::DecompressedTooLarge`].
/// An uncompressed batch is walked in place, without allocating; a compressed one is
/// decompressed once into a buffer of at most `max_decompressed_bytes`, and its records
/// must have the offset deltas 0, 1, 2, ... (Kafka's inner offsets).
pub fn validate_records_within(
    bytes: &Bytes,
    header: &BatchHeader,
    max_decompressed_bytes: usize,
) -> Result<RecordsSummary, DecodeError> {
    let count = records_count(header)?;
    let mut r = Reader::new(records_section(bytes, header, max_decompressed_bytes)?);
    let mut max_record_timestamp = None;
    let mut min_record_timestamp = None;
    for index in 0..count {
        let record = skip_record(&mut r)?;
        check_inner_offset(header, index, record.offset_delta)?;
        let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
        if timestamp != NO_TIMESTAMP {
            max_record_timestamp = max_record_timestamp.max(Some(timestamp));
            min_record_timestamp =
                Some(min_record_timestamp.map_or(timestamp, |m: i64| m.min(timestamp)));
        }
    }
    r.finish("records")?;
    Ok(RecordsSummary {
        max_record_timestamp,
        min_record_timestamp,
    })
}

/// Header, length, magic, CRC and compression checks shared by [`validate`]'s callers that
/// decode the records ([`RecordBatch::decode`], [`visit_records`]).
fn check_envelope(bytes: &[u8]) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(bytes)?;
    check_framing(bytes, &header)?;
    check_integrity(bytes, &header)?;
    Ok(header)
}

/// The records of a batch whose envelope was checked: the bytes after the header in place,
/// or, for a compressed batch, those bytes decompressed within `max_decompressed_bytes`.
fn records_section(
    bytes: &Bytes,
    header: &BatchHeader,
    max_decompressed_bytes: usize,
) -> Result<Bytes, DecodeError> {
    let body = bytes.slice(RECORD_BATCH_OVERHEAD..);
    match Compression::from_attributes(header.attributes)? {
        Compression::None => Ok(body),
        codec => decompress(codec, &body, max_decompressed_bytes),
    }
}

/// Kafka's inner-offset rule for compressed batches (`LogValidator`): record `index` has
/// offset delta `index`. Kafka rewrites a batch that breaks it; idempo, which stores batches
/// as sent, refuses it. Uncompressed batches are not checked, as in Kafka.
fn check_inner_offset(
    header: &BatchHeader,
    index: usize,
    offset_delta: i32,
) -> Result<(), DecodeError> {
    if header.compression() == 0 || usize::try_from(offset_delta).is_ok_and(|d| d == index) {
        return Ok(());
    }
    Err(DecodeError::InvalidValue {
        field: "record.offsetDelta",
        value: i64::from(offset_delta),
        expected: "the record's index in its compressed batch (inner offsets 0, 1, 2, ...)",
    })
}

fn records_count(header: &BatchHeader) -> Result<usize, DecodeError> {
    usize::try_from(header.records_count).map_err(|_| DecodeError::InvalidValue {
        field: "recordsCount",
        value: i64::from(header.records_count),
        expected: "a count >= 0",
    })
}

/// Walks one record without keeping it (the same checks as `Record::decode`), reading the
/// fields in place: no sub-buffer and no reference count is taken per field, which keeps the
/// broker's validation cheap.
fn skip_record(r: &mut Reader) -> Result<RecordSpans, DecodeError> {
    let len = r.varint("record.length")?;
    let len = usize::try_from(len).map_err(|_| DecodeError::InvalidValue {
        field: "record.length",
        value: i64::from(len),
        expected: "a length >= 0",
    })?;
    if len > r.remaining() {
        return Err(DecodeError::Truncated {
            field: "record",
            needed: len,
            remaining: r.remaining(),
        });
    }
    let end = r.remaining() - len;
    let attributes = r.i8("record.attributes")?;
    let timestamp_delta = r.varlong("record.timestampDelta")?;
    let offset_delta = r.varint("record.offsetDelta")?;
    let key = span_opt_bytes(r, "record.key")?;
    let value = span_opt_bytes(r, "record.value")?;
    let header_count = r.varint("record.headerCount")?;
    let headers_at = r.position();
    if header_count < 0 {
        return Err(DecodeError::InvalidValue {
            field: "record.headerCount",
            value: i64::from(header_count),
            expected: "a count >= 0",
        });
    }
    for _ in 0..header_count {
        let key = skip_opt_bytes(r, "record.header.key")?.ok_or(DecodeError::InvalidValue {
            field: "record.header.key",
            value: -1,
            expected: "a non-null header key",
        })?;
        std::str::from_utf8(key).map_err(|_| DecodeError::InvalidUtf8 {
            field: "record.header.key",
        })?;
        skip_opt_bytes(r, "record.header.value")?;
        if r.remaining() < end {
            break;
        }
    }
    match r.remaining().checked_sub(end) {
        Some(0) => Ok(RecordSpans {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers_at,
            header_count: header_count as usize,
        }),
        Some(count) => Err(DecodeError::TrailingBytes {
            field: "record",
            count,
        }),
        None => Err(DecodeError::Truncated {
            field: "record",
            needed: len + (end - r.remaining()),
            remaining: len,
        }),
    }
}

/// Where a record's key and value sit in the batch (positions after the header).
struct RecordSpans {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    /// Where the first header starts, and how many there are (already validated).
    headers_at: usize,
    header_count: usize,
}

/// Skips a nullable byte field, returning its position and length (`None` for null).
fn span_opt_bytes(
    r: &mut Reader,
    field: &'static str,
) -> Result<Option<(usize, usize)>, DecodeError> {
    let len = r.varint(field)?;
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidValue {
            field,
            value: i64::from(n),
            expected: "a length >= -1",
        }),
        n => {
            let start = r.position();
            r.take(n as usize, field)?;
            Ok(Some((start, n as usize)))
        }
    }
}

/// One record seen in place by [`visit_records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// The key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for null.
    pub value: Option<&'a [u8]>,
}

/// Validates one encoded batch as [`validate`] does and shows each record's key and value in
/// place, without allocating (but for decompressing a compressed batch once): for readers
/// that only need the payloads (a checker, a consumer).
pub fn visit_records(
    bytes: &Bytes,
    mut f: impl FnMut(RecordRef<'_>),
) -> Result<BatchHeader, DecodeError> {
    let header = check_envelope(bytes)?;
    let count = records_count(&header)?;
    let body = records_section(bytes, &header, DEFAULT_MAX_DECOMPRESSED_BYTES)?;
    let mut r = Reader::new(body.clone());
    let at = |span: Option<(usize, usize)>| span.map(|(start, len)| &body[start..start + len]);
    if count == 1 {
        // One record (the common case): one walk validates it and finds its payloads.
        let s = skip_record(&mut r)?;
        check_inner_offset(&header, 0, s.offset_delta)?;
        r.finish("records")?;
        f(RecordRef {
            offset_delta: s.offset_delta,
            key: at(s.key),
            value: at(s.value),
        });
        return Ok(header);
    }
    // Validate everything first, so that `f` never sees a record of a batch that is refused.
    for index in 0..count {
        let record = skip_record(&mut r)?;
        check_inner_offset(&header, index, record.offset_delta)?;
    }
    r.finish("records")?;
    let mut r = Reader::new(body.clone());
    for _ in 0..count {
        let s = skip_record(&mut r)?;
        f(RecordRef {
            offset_delta: s.offset_delta,
            key: at(s.key),
            value: at(s.value),
        });
    }
    Ok(header)
}

/// Skips a nullable byte field, returning its bytes in place (`None` for null).
fn skip_opt_bytes<'a>(
    r: &'a mut Reader,
    field: &'static str,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let len = r.varint(field)?;
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidValue {
            field,
            value: i64::from(n),
            expected: "a length >= -1",
        }),
        n => Ok(Some(r.take(n as usize, field)?)),
    }
}

/// Splits a buffer of concatenated batches (a Fetch response's records) into batches.
/// A trailing partial batch, as Kafka may return at the end of a fetch, is ignored.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<RecordBatch>, DecodeError> {
    let mut out = Vec::new();
    while bytes.len() >= LOG_OVERHEAD {
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[8..12]);
        let total = i64::from(i32::from_be_bytes(len)) + LOG_OVERHEAD as i64;
        if total < RECORD_BATCH_OVERHEAD as i64 {
            return Err(DecodeError::InvalidValue {
                field: "batchLength",
                value: total - LOG_OVERHEAD as i64,
                expected: "at least 49",
            });
        }
        if total > bytes.len() as i64 {
            break;
        }
        let batch = bytes.split_to(total as usize);
        out.push(RecordBatch::decode(batch)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBatch {
        let mut r = Record::with_value(1, "value-1");
        r.key = Some(Bytes::from_static(b"k"));
        r.headers.push(Header {
            key: "h".into(),
            value: None,
        });
        RecordBatch::idempotent(
            ProducerId(42),
            ProducerEpoch(3),
            Sequence(i32::MAX - 1),
            1_700_000_000_000,
            vec![Record::with_value(0, "value-0"), r, Record::default()],
        )
    }

    #[test]
    fn the_encoders_varlongs_are_the_decoders_varlongs() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -301,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = [0u8; VARLONG_MAX_LEN];
            let n = write_varlong(&mut out, value);
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, value);
            assert_eq!(&out[..n], &buf[..], "{value}");
            assert_eq!(n, varlong_len(value), "{value}");
        }
    }

    #[test]
    fn header_fields_sit_at_documented_offsets() {
        let b = sample().to_bytes();
        assert_eq!(&b[0..8], &0i64.to_be_bytes());
        assert_eq!(
            i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize,
            b.len() - 12
        );
        assert_eq!(b[16] as i8, MAGIC_V2);
        assert_eq!(&b[43..51], &42i64.to_be_bytes());
        assert_eq!(&b[51..53], &3i16.to_be_bytes());
        assert_eq!(&b[53..57], &(i32::MAX - 1).to_be_bytes());
        assert_eq!(&b[57..61], &3i32.to_be_bytes());
    }

    #[test]
    fn last_sequence_wraps_past_max() {
        let b = sample();
        assert_eq!(b.last_sequence(), Sequence(0));
        let h = BatchHeader::parse(&b.to_bytes()).unwrap();
        assert_eq!(h.last_sequence(), Sequence(0));
        assert_eq!(last_sequence(Sequence::NONE, 3), Sequence::NONE);
    }

    #[test]
    fn flipped_crc_covered_bit_is_corrupt_message() {
        let mut b = BytesMut::from(&sample().to_bytes()[..]);
        b[40] ^= 0x01;
        match RecordBatch::decode(b.freeze()) {
            Err(DecodeError::CorruptMessage { expected, actual }) => assert_ne!(expected, actual),
            other => panic!("expected CorruptMessage, got {other:?}"),
        }
    }

    #[test]
    fn base_offset_can_be_assigned_without_breaking_the_crc() {
        let mut b = BytesMut::from(&sample().to_bytes()[..]);
        set_base_offset(&mut b, 1234);
        let decoded = RecordBatch::decode(b.freeze()).unwrap();
        assert_eq!(decoded.base_offset, 1234);
    }

    #[test]
    fn undefined_compression_codec_is_refused_by_name() {
        let mut batch = sample();
        batch.attributes = 5; // Kafka defines codecs 0-4
        assert_eq!(
            RecordBatch::decode(batch.to_bytes()),
            Err(DecodeError::UnsupportedCompression(5))
        );
    }

    #[test]
    fn concatenated_batches_split_and_partial_tail_is_ignored() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf);
        sample().encode(&mut buf);
        let full = buf.len();
        sample().encode(&mut buf);
        buf.truncate(full + 30);
        let batches = decode_batches(buf.freeze()).unwrap();
        assert_eq!(batches.len(), 2);
    }
}
