//! Where a run's events go: `--trace` lines, a kept list (for `trace --record` and diagrams),
//! and a fingerprint of every event (for `--check-determinism`).
//!
//! ```text
//!      12 ms  P0  produce #3 [p1 pid=1 e0 seq 10..19] (arrives at 19 ms)
//!      19 ms  P0  broker: p1 appended at offsets 10..19: sequence 10 is the next expected (window: 0..9)
//!      19 ms  P0  response to request #3 — lost: the connection broke (lost ack)
//! ```
//!
//! Events arrive as values ([`SimEvent`]); text is made only when it is printed: a trace that
//! prints lines formats each event once, into a buffer flushed to its writer, and a trace
//! that only keeps events (for a diagram or `trace --record`) formats nothing. A run without
//! a trace records nothing at all. A long traced run does not hold its trace in memory unless
//! asked to keep the events.

use crate::events::{SimEvent, Timed};
use std::fmt::Write as _;
use std::io::Write;

/// The sink of a run's events.
pub struct Trace {
    buffer: String,
    sink: Option<Box<dyn Write>>,
    text: bool,
    keep: Option<Vec<Timed>>,
    /// The FNV-1a state, when this trace fingerprints (text traces and
    /// [`Trace::fingerprint_only`]).
    fingerprint: Option<u64>,
    events: u64,
}

impl Trace {
    /// Text lines kept in memory (see [`Trace::into_string`]).
    pub fn buffered() -> Trace {
        Trace {
            buffer: String::new(),
            sink: None,
            text: true,
            keep: None,
            fingerprint: Some(FNV_OFFSET),
            events: 0,
        }
    }

    /// Text lines written to `sink` as they are made.
    pub fn to_writer(sink: Box<dyn Write>) -> Trace {
        Trace {
            sink: Some(sink),
            ..Trace::buffered()
        }
    }

    /// No text and no fingerprint; events kept as values for later use (diagrams,
    /// `trace --record`).
    pub fn collecting() -> Trace {
        Trace {
            text: false,
            keep: Some(Vec::new()),
            fingerprint: None,
            ..Trace::buffered()
        }
    }

    /// No text, nothing kept: only the fingerprint.
    pub fn fingerprint_only() -> Trace {
        Trace {
            text: false,
            ..Trace::buffered()
        }
    }

    /// Also keep every event (in addition to whatever else this trace does).
    pub fn keeping(mut self) -> Trace {
        self.keep = Some(Vec::new());
        self
    }

    /// Records one event of producer `producer` at `at_ms`. The event is formatted only if
    /// this trace prints lines or fingerprints them.
    pub fn record(&mut self, at_ms: u64, producer: u32, event: SimEvent) {
        self.events += 1;
        let timed = Timed {
            at_ms,
            producer,
            event,
        };
        if self.text {
            let start = self.buffer.len();
            let _ = writeln!(self.buffer, "{timed}");
            if let Some(h) = &mut self.fingerprint {
                *h = fnv1a(*h, &self.buffer.as_bytes()[start..]);
            }
            if self.buffer.len() > 1 << 16 {
                self.flush();
            }
        } else if let Some(h) = self.fingerprint {
            let mut hasher = Fnv(h);
            let _ = writeln!(hasher, "{timed}");
            self.fingerprint = Some(hasher.0);
        }
        if let Some(keep) = &mut self.keep {
            keep.push(timed);
        }
    }

    /// Writes buffered lines to the sink, if there is one. A closed sink (a pipe into `head`)
    /// silently discards the rest.
    pub fn flush(&mut self) {
        if let Some(sink) = &mut self.sink {
            if sink.write_all(self.buffer.as_bytes()).is_err() {
                self.sink = Some(Box::new(std::io::sink()));
            }
            self.buffer.clear();
        }
    }

    /// Events recorded so far.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// FNV-1a over the text of every event, in order: equal fingerprints mean (with
    /// overwhelming probability) identical runs. A [`Trace::collecting`] trace does not
    /// fingerprint, and answers the FNV offset basis.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint.unwrap_or(FNV_OFFSET)
    }

    /// The kept events (empty unless the trace keeps them).
    pub fn events(&self) -> &[Timed] {
        self.keep.as_deref().unwrap_or(&[])
    }

    /// The buffered text (everything, for a buffered trace).
    pub fn into_string(mut self) -> String {
        self.flush();
        std::mem::take(&mut self.buffer)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Hashes text as it is formatted, with no buffer.
struct Fnv(u64);

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = fnv1a(self.0, s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LossCause;

    fn event() -> SimEvent {
        SimEvent::ResponseDiscarded {
            correlation_id: 3,
            cause: LossCause::ConnectionGone,
        }
    }

    #[test]
    fn a_collecting_trace_keeps_values_and_makes_no_text() {
        let mut trace = Trace::collecting();
        trace.record(5, 0, event());
        assert_eq!(trace.events().len(), 1);
        assert_eq!(trace.fingerprint(), FNV_OFFSET, "nothing was formatted");
        assert_eq!(trace.into_string(), "");
    }

    #[test]
    fn text_and_fingerprint_hash_the_same_line() {
        let mut text = Trace::buffered();
        let mut fingerprint = Trace::fingerprint_only();
        text.record(5, 0, event());
        fingerprint.record(5, 0, event());
        assert_eq!(text.fingerprint(), fingerprint.fingerprint());
        assert_ne!(text.fingerprint(), FNV_OFFSET);
        let line = text.into_string();
        assert_eq!(
            line,
            "       5 ms  P0  response #3 lost with its connection\n"
        );
        assert_eq!(
            fnv1a(FNV_OFFSET, line.as_bytes()),
            fingerprint.fingerprint()
        );
    }
}
