//! The typed decoding error and the bounds-checked reader every decoder in this crate uses.
//!
//! Every read names the field it was reading, so an error says *what* was malformed
//! ("produce.partitions[0].records: needs 120 bytes, 7 remain"), and no read can index past
//! the end of the input: decoders return [`DecodeError`] for any input and never panic.

use bytes::Bytes;
use std::fmt;

/// Why bytes could not be decoded. Every variant names the field involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before a field did.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that remained.
        remaining: usize,
    },
    /// A field held a value outside its allowed range.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value read.
        value: i64,
        /// What was expected instead.
        expected: &'static str,
    },
    /// Bytes were left over after the last field of a batch or record.
    TrailingBytes {
        /// What was being decoded.
        field: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// The record batch's CRC-32C does not match its contents (Kafka's CORRUPT_MESSAGE).
    CorruptMessage {
        /// The CRC stored in the batch header.
        expected: u32,
        /// The CRC computed over the batch's attributes..end.
        actual: u32,
    },
    /// The record batch names a compression codec Kafka does not define (ids 5-7).
    UnsupportedCompression(u8),
    /// The records of a compressed batch do not decompress (Kafka's `INVALID_RECORD`).
    Decompression {
        /// The codec id (attributes bits 0-2).
        codec: u8,
        /// What the decoder said.
        why: String,
    },
    /// The records of a compressed batch expand past the bound they were given (the
    /// broker's `message.max.bytes`; Kafka's `MESSAGE_TOO_LARGE`): a decompression bomb or
    /// simply too big. Decoding stopped at the bound.
    DecompressedTooLarge {
        /// The codec id (attributes bits 0-2).
        codec: u8,
        /// The bound on the decompressed records, in bytes.
        max_bytes: usize,
    },
    /// The record batch is not magic 2 (RecordBatch v2).
    UnsupportedMagic(i8),
    /// A varint ran longer than its maximum encoded size.
    VarintTooLong {
        /// The field.
        field: &'static str,
    },
    /// A header key was not valid UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated {
                field,
                needed,
                remaining,
            } => {
                write!(f, "{field}: needs {needed} bytes, {remaining} remain")
            }
            DecodeError::InvalidValue {
                field,
                value,
                expected,
            } => {
                write!(f, "{field}: value {value} is invalid, expected {expected}")
            }
            DecodeError::TrailingBytes { field, count } => {
                write!(f, "{field}: {count} unexpected trailing bytes")
            }
            DecodeError::CorruptMessage { expected, actual } => write!(
                f,
                "CORRUPT_MESSAGE: record batch CRC-32C is {actual:#010x}, header says {expected:#010x}"
            ),
            DecodeError::UnsupportedCompression(codec) => {
                write!(f, "record batch compression codec {codec} is not supported")
            }
            DecodeError::Decompression { codec, why } => {
                write!(
                    f,
                    "records compressed with codec {codec} do not decompress: {why}"
                )
            }
            DecodeError::DecompressedTooLarge { codec, max_bytes } => write!(
                f,
                "records compressed with codec {codec} expand past {max_bytes} bytes (message.max.bytes)"
            ),
            DecodeError::UnsupportedMagic(magic) => {
                write!(f, "record batch magic {magic} is not supported (need 2)")
            }
            DecodeError::VarintTooLong { field } => write!(f, "{field}: varint too long"),
            DecodeError::InvalidUtf8 { field } => write!(f, "{field}: not valid UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over a complete batch. Every read is bounds-checked and names its field.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// `n` bytes in place.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    /// `len` bytes at `position` (an earlier read's position) as a zero-copy slice. The
    /// caller got both from this reader, so they lie inside it.
    pub(crate) fn slice(&self, position: usize, len: usize) -> Bytes {
        self.buf.slice(position..position + len)
    }

    /// `n` bytes as a zero-copy slice of the input.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    fn uvarint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let rest = &self.buf[self.pos..];
        let mut value: u64 = 0;
        for (i, b) in rest.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if rest.len() < 10 {
            Err(DecodeError::Truncated {
                field,
                needed: rest.len() + 1,
                remaining: rest.len(),
            })
        } else {
            Err(DecodeError::VarintTooLong { field })
        }
    }

    /// A zig-zag signed varint that must fit in 32 bits (Kafka's `readVarint`).
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        let v = self.varlong(field)?;
        i32::try_from(v).map_err(|_| DecodeError::InvalidValue {
            field,
            value: v,
            expected: "a 32-bit varint",
        })
    }

    /// A zig-zag signed varint of up to 64 bits (Kafka's `readVarlong`).
    pub(crate) fn varlong(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let raw = self.uvarint(field)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was consumed.
    pub(crate) fn finish(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { field, count }),
        }
    }
}

/// Writes a zig-zag varint (Kafka's `writeVarlong`).
pub(crate) fn put_varlong(buf: &mut bytes::BytesMut, value: i64) {
    use bytes::BufMut;
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// The encoded size of a zig-zag varint.
pub(crate) fn varlong_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = bytes::BytesMut::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            let mut r = Reader::new(buf.freeze());
            assert_eq!(r.varlong("v").expect("encoded just above"), v);
            r.finish("v").expect("fully consumed");
        }
    }

    #[test]
    fn overlong_varint_is_a_typed_error() {
        let mut r = Reader::new(Bytes::from_static(&[0xff; 11]));
        assert_eq!(
            r.varlong("x"),
            Err(DecodeError::VarintTooLong { field: "x" })
        );
    }
}
