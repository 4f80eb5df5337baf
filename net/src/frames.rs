//! Reading Kafka frames off a socket: the frame reader of the proxy and the client. (The
//! server reads the same way, check-then-parse with [`kafka_codec::check_frame`], but asks
//! its request memory pool for a frame's bytes before reading them: see `server.rs` and
//! [`crate::limits`].)
//!
//! Check-then-parse, as in mini-redis: bytes are read into a buffer, and after each read
//! [`kafka_codec::check_frame`] says whether a whole frame is there. A length prefix that
//! announces more than the limit (or a negative size) is refused the moment the prefix has
//! arrived, before anything is allocated for it, and memory grows only with the bytes that
//! actually arrive (at most [`READ_CHUNK_BYTES`] are reserved at a time, at least
//! [`READ_MIN_BYTES`]), so a peer cannot
//! make us allocate by announcing a large frame. An incomplete frame is a normal outcome:
//! read more.

use crate::kafka_codec::{self, FrameCheck, LENGTH_PREFIX_BYTES};
use bytes::{Bytes, BytesMut};
use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes reserved in the buffer at most per read call.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Bytes reserved at least per read call, so that one read can take several small frames
/// (a pipeline of small answers) instead of one prefix at a time.
pub const READ_MIN_BYTES: usize = 4 * 1024;

/// Why no frame came: the peer closed, announced too much, or the socket failed.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed between frames: the normal end of a connection.
    Closed,
    /// The peer closed inside a frame.
    ClosedMidFrame {
        /// Bytes of the unfinished frame received.
        buffered: usize,
    },
    /// The prefix announces more than the limit, or a negative size: Kafka closes the
    /// connection without an answer, and so do we.
    TooLarge {
        /// The announced size.
        announced: i32,
    },
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadEnd::Closed => write!(f, "the peer closed the connection"),
            ReadEnd::ClosedMidFrame { buffered } => write!(
                f,
                "the peer closed the connection inside a frame ({buffered} bytes received)"
            ),
            ReadEnd::TooLarge { announced } => {
                write!(f, "a frame of {announced} bytes, above the limit")
            }
            ReadEnd::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

impl std::error::Error for ReadEnd {}

impl From<ReadEnd> for io::Error {
    /// For callers that speak `io::Error`: a close is `UnexpectedEof`, a refused prefix
    /// `InvalidData`.
    fn from(end: ReadEnd) -> io::Error {
        match end {
            ReadEnd::Io(e) => e,
            ReadEnd::Closed | ReadEnd::ClosedMidFrame { .. } => {
                io::Error::new(io::ErrorKind::UnexpectedEof, end.to_string())
            }
            ReadEnd::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidData, end.to_string()),
        }
    }
}

/// Reads from `stream` into `buf` until one whole frame of at most `max_frame_bytes` is
/// buffered, and returns it **with** its 4-byte length prefix (bytes after it stay in `buf`
/// for the next call). See [`body`] for the frame without its prefix.
pub async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Bytes, ReadEnd> {
    loop {
        match kafka_codec::check_frame(buf, max_frame_bytes) {
            FrameCheck::Complete { frame_bytes } => {
                return Ok(buf.split_to(LENGTH_PREFIX_BYTES + frame_bytes).freeze());
            }
            FrameCheck::TooLarge { announced } => return Err(ReadEnd::TooLarge { announced }),
            FrameCheck::Incomplete { needed } => {
                let missing = needed.unwrap_or(LENGTH_PREFIX_BYTES) - buf.len();
                buf.reserve(missing.clamp(READ_MIN_BYTES, READ_CHUNK_BYTES));
                match stream.read_buf(buf).await {
                    Ok(0) if buf.is_empty() => return Err(ReadEnd::Closed),
                    Ok(0) => {
                        return Err(ReadEnd::ClosedMidFrame {
                            buffered: buf.len(),
                        });
                    }
                    Ok(_) => {}
                    Err(e) => return Err(ReadEnd::Io(e)),
                }
            }
        }
    }
}

/// A frame read by [`read_frame`], without its length prefix.
pub fn body(frame: &Bytes) -> Bytes {
    frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8], max: usize) -> (Vec<Bytes>, ReadEnd) {
        let mut stream = bytes;
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        loop {
            match read_frame(&mut stream, &mut buf, max).await {
                Ok(frame) => frames.push(body(&frame)),
                Err(end) => return (frames, end),
            }
        }
    }

    #[tokio::test]
    async fn frames_come_whole_and_in_order_then_the_close() {
        let (frames, end) = read_all(&[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0], 100).await;
        assert_eq!(frames, vec![Bytes::from_static(b"hi"), Bytes::new()]);
        assert!(matches!(end, ReadEnd::Closed), "{end}");
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_its_bytes_arrive() {
        let (frames, end) = read_all(&[0x7f, 0xff, 0xff, 0xff], 1024).await;
        assert!(frames.is_empty());
        assert!(
            matches!(
                end,
                ReadEnd::TooLarge {
                    announced: i32::MAX
                }
            ),
            "{end}"
        );
        let (_, negative) = read_all(&[0xff, 0xff, 0xff, 0xfe], 1024).await;
        assert!(
            matches!(negative, ReadEnd::TooLarge { announced: -2 }),
            "{negative}"
        );
    }

    #[tokio::test]
    async fn a_close_inside_a_frame_says_how_much_came() {
        let (_, end) = read_all(&[0, 0, 0, 9, 1, 2], 100).await;
        assert!(
            matches!(end, ReadEnd::ClosedMidFrame { buffered: 6 }),
            "{end}"
        );
        let e = io::Error::from(end);
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
