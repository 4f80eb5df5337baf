//! Length-prefixed frames: how requests and responses cross a byte stream.
//!
//! ```text
//! offset  size  field
//!      0     4  length         u32, bytes after this field
//!      4     2  apiKey         i16, Kafka's api key (0 Produce, 1 Fetch, 22 InitProducerId)
//!      6     4  correlationId  i32, echoed in the response
//!     10     *  body           see the `message` module
//! ```
//!
//! Decoding is *check, then parse* (as mini-redis does): [`check`] looks only at the length
//! prefix and says whether a whole frame is buffered. Not enough bytes yet is the normal
//! [`FrameCheck::Incomplete`] outcome, not an error. A length above the configured maximum is
//! refused before anything is allocated. Only then is the body parsed, and every malformation
//! is a [`DecodeError`] naming the field. Unlike Kafka, responses repeat the api key, so a
//! response can be decoded without remembering the request.

use crate::decode::{DecodeError, Reader};
use crate::message::{ApiKey, Request, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default maximum frame length: 1 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 1024 * 1024;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the fixed frame header after the prefix (api key + correlation id).
pub const FRAME_HEADER_BYTES: usize = 6;

/// What [`check`] found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A whole frame of `frame_bytes` bytes (prefix included) is buffered.
    Complete {
        /// Total size including the 4-byte prefix.
        frame_bytes: usize,
    },
    /// More bytes are needed; `needed` is how many more, when known.
    Incomplete {
        /// Bytes still missing.
        needed: usize,
    },
}

/// Looks at the length prefix of `buf` without consuming or allocating.
pub fn check(buf: &[u8], max_frame_bytes: u32) -> Result<FrameCheck, DecodeError> {
    if buf.len() < LENGTH_PREFIX_BYTES {
        return Ok(FrameCheck::Incomplete {
            needed: LENGTH_PREFIX_BYTES - buf.len(),
        });
    }
    let mut prefix = [0u8; 4];
    prefix.copy_from_slice(&buf[..4]);
    let length = u32::from_be_bytes(prefix);
    if length > max_frame_bytes {
        return Err(DecodeError::FrameTooLarge {
            length: u64::from(length),
            max: u64::from(max_frame_bytes),
        });
    }
    if (length as usize) < FRAME_HEADER_BYTES {
        return Err(DecodeError::InvalidValue {
            field: "frame.length",
            value: i64::from(length),
            expected: "at least 6 (api key and correlation id)",
        });
    }
    let total = LENGTH_PREFIX_BYTES + length as usize;
    if buf.len() < total {
        Ok(FrameCheck::Incomplete {
            needed: total - buf.len(),
        })
    } else {
        Ok(FrameCheck::Complete { frame_bytes: total })
    }
}

/// A request with its correlation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFrame {
    /// Echoed in the response so the client can match them.
    pub correlation_id: i32,
    /// The request.
    pub request: Request,
}

/// A response with the correlation id of its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseFrame {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// The response.
    pub response: Response,
}

fn write_frame(
    buf: &mut BytesMut,
    key: ApiKey,
    correlation_id: i32,
    body: impl FnOnce(&mut BytesMut),
) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_i16(key as i16);
    buf.put_i32(correlation_id);
    body(buf);
    let length = (buf.len() - start - LENGTH_PREFIX_BYTES) as u32;
    buf[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

/// Splits a complete frame into (api key, correlation id, body).
fn split_frame(frame: Bytes) -> Result<(ApiKey, i32, Bytes), DecodeError> {
    let mut r = Reader::new(frame);
    let _length = r.u32("frame.length")?;
    let key = ApiKey::from_i16(r.i16("frame.apiKey")?)?;
    let correlation_id = r.i32("frame.correlationId")?;
    let body = r.bytes(r.remaining(), "frame.body")?;
    Ok((key, correlation_id, body))
}

/// Consumes one complete frame from the front of `buf`, or returns `Ok(None)` (consuming
/// nothing) when the frame is not complete yet.
fn take_frame(buf: &mut BytesMut, max_frame_bytes: u32) -> Result<Option<Bytes>, DecodeError> {
    match check(buf, max_frame_bytes)? {
        FrameCheck::Incomplete { .. } => Ok(None),
        FrameCheck::Complete { frame_bytes } => Ok(Some(buf.split_to(frame_bytes).freeze())),
    }
}

impl RequestFrame {
    /// Appends the encoded frame to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        write_frame(buf, self.request.api_key(), self.correlation_id, |b| {
            self.request.encode_body(b)
        });
    }

    /// Decodes one complete frame (prefix included), as [`check`] delimited it.
    pub fn decode(frame: Bytes) -> Result<RequestFrame, DecodeError> {
        let (key, correlation_id, body) = split_frame(frame)?;
        Ok(RequestFrame {
            correlation_id,
            request: Request::decode_body(key, body)?,
        })
    }

    /// Reads the next request from a stream buffer: `Ok(None)` until a whole frame is there.
    pub fn read(
        buf: &mut BytesMut,
        max_frame_bytes: u32,
    ) -> Result<Option<RequestFrame>, DecodeError> {
        take_frame(buf, max_frame_bytes)?
            .map(RequestFrame::decode)
            .transpose()
    }
}

impl ResponseFrame {
    /// Appends the encoded frame to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        write_frame(buf, self.response.api_key(), self.correlation_id, |b| {
            self.response.encode_body(b)
        });
    }

    /// Decodes one complete frame (prefix included).
    pub fn decode(frame: Bytes) -> Result<ResponseFrame, DecodeError> {
        let (key, correlation_id, body) = split_frame(frame)?;
        Ok(ResponseFrame {
            correlation_id,
            response: Response::decode_body(key, body)?,
        })
    }

    /// Reads the next response from a stream buffer: `Ok(None)` until a whole frame is there.
    pub fn read(
        buf: &mut BytesMut,
        max_frame_bytes: u32,
    ) -> Result<Option<ResponseFrame>, DecodeError> {
        take_frame(buf, max_frame_bytes)?
            .map(ResponseFrame::decode)
            .transpose()
    }
}

/// Discards `n` bytes from the front of `buf` (after a frame was refused and the caller chose
/// to skip it rather than close the connection).
pub fn skip(buf: &mut BytesMut, n: usize) {
    buf.advance(n.min(buf.len()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    #[test]
    fn partial_frame_is_incomplete_not_an_error() {
        let mut buf = BytesMut::new();
        RequestFrame {
            correlation_id: 9,
            request: Request::Fetch(FetchRequest {
                partition: 1,
                fetch_offset: 2,
                max_bytes: 3,
            }),
        }
        .encode(&mut buf);
        let whole = buf.clone();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(
                RequestFrame::read(&mut part, DEFAULT_MAX_FRAME_BYTES),
                Ok(None)
            );
            assert_eq!(part.len(), cut, "an incomplete read consumes nothing");
        }
        let frame = RequestFrame::read(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(frame.correlation_id, 9);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_length_is_refused_before_reading_the_body() {
        let buf = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            check(&buf, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::FrameTooLarge {
                length: u64::from(u32::MAX),
                max: 1 << 20
            })
        );
    }

    #[test]
    fn unknown_api_key_is_named() {
        let mut buf = BytesMut::new();
        buf.put_u32(6);
        buf.put_i16(77);
        buf.put_i32(1);
        assert_eq!(
            RequestFrame::read(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::UnknownApiKey(77))
        );
    }

    #[test]
    fn truncated_body_names_the_field() {
        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.put_i16(1); // Fetch
        buf.put_i32(1);
        buf.put_i16(0); // half a partition field
        match RequestFrame::read(&mut buf, DEFAULT_MAX_FRAME_BYTES) {
            Err(DecodeError::Truncated { field, .. }) => assert_eq!(field, "fetch.partition"),
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
}
