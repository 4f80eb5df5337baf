//! Where a run's events go: `--trace` lines, a kept list (for `trace --record` and diagrams),
//! and a fingerprint of every event (for `--check-determinism`).
//!
//! ```text
//!      12 ms  P0  produce #3 [p1 pid=1 e0 seq 10..19] (arrives at 19 ms)
//!      19 ms  P0  broker: p1 appended at offsets 10..19: sequence 10 is the next expected (window: 0..9)
//!      19 ms  P0  response to request #3 — lost: the connection broke (lost ack)
//! ```
//!
//! Text goes to a writer as it is made (or into a buffer, for tests), so a long traced run
//! does not hold its trace in memory unless asked to keep the events.

use crate::events::{SimEvent, Timed};
use idempo_producer::{DeliveryReport, ProducerEvent};
use idempo_protocol::{Response, ResponseFrame};
use std::fmt::Write as _;
use std::io::Write;

/// The sink of a run's events.
pub struct Trace {
    buffer: String,
    sink: Option<Box<dyn Write>>,
    text: bool,
    keep: Option<Vec<Timed>>,
    fingerprint: u64,
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
            fingerprint: FNV_OFFSET,
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

    /// No text; events kept for later use (diagrams, `trace --record`).
    pub fn collecting() -> Trace {
        Trace {
            text: false,
            keep: Some(Vec::new()),
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

    /// Records one event of producer `producer` at `at_ms`.
    pub fn record(&mut self, at_ms: u64, producer: u32, event: SimEvent) {
        self.events += 1;
        let timed = Timed {
            at_ms,
            producer,
            event,
        };
        let start = self.buffer.len();
        let _ = writeln!(self.buffer, "{timed}");
        for b in &self.buffer.as_bytes()[start..] {
            self.fingerprint = (self.fingerprint ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
        }
        if !self.text {
            self.buffer.truncate(start);
        } else if self.buffer.len() > 1 << 16 {
            self.flush();
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
    /// overwhelming probability) identical runs.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
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

/// What a response says, in a few words.
pub fn response_summary(frame: &ResponseFrame) -> String {
    match &frame.response {
        Response::InitProducerId(r) => {
            format!(
                "producer id {} epoch {} ({})",
                r.producer_id,
                r.producer_epoch,
                r.error_code.name()
            )
        }
        Response::Produce(r) => {
            let parts: Vec<String> = r
                .partitions
                .iter()
                .map(|p| {
                    if p.error_code.is_ok() {
                        format!("p{} offset {}", p.partition, p.base_offset)
                    } else {
                        format!("p{} {}", p.partition, p.error_code.name())
                    }
                })
                .collect();
            parts.join(", ")
        }
        Response::Fetch(r) => format!("fetch {}", r.error_code.name()),
    }
}

/// A delivery report reaching the application.
pub fn delivered(batch: u64, report: &DeliveryReport) -> String {
    match &report.result {
        Ok(d) => format!(
            "acked batch {batch} (p{}, {} records) at offset {} after {} attempt(s)",
            report.partition, report.record_count, d.base_offset, d.attempts
        ),
        Err(e) => format!("batch {batch} (p{}) failed: {e}", report.partition),
    }
}

/// A producer decision worth a line, or `None` for bookkeeping the other lines already show.
pub fn producer_event(event: &ProducerEvent) -> Option<String> {
    Some(match event {
        ProducerEvent::ProducerIdAssigned {
            producer_id,
            producer_epoch,
        } => {
            format!("producer id {producer_id} assigned, epoch {producer_epoch}")
        }
        ProducerEvent::RetryScheduled {
            partition,
            base_sequence,
            reason,
            attempts,
            retry_at_ms,
            ..
        } => format!(
            "retry scheduled: p{partition} seq {base_sequence} after {reason} (attempt {attempts}, at {retry_at_ms} ms)"
        ),
        ProducerEvent::EpochBumped {
            producer_id,
            old_epoch,
            new_epoch,
            partition,
            reason,
        } => format!(
            "epoch bumped {old_epoch} -> {new_epoch} for producer {producer_id} (p{partition}: {reason:?}); sequences restart at 0"
        ),
        ProducerEvent::SequencesRewritten {
            partition,
            epoch,
            batches,
            next_sequence,
            ..
        } => format!(
            "rewrote {batches} in-flight batch(es) of p{partition} to epoch {epoch}; next sequence {next_sequence}"
        ),
        ProducerEvent::PartitionUnresolved {
            partition,
            unresolved_next_sequence,
        } => format!(
            "p{partition} unresolved: a batch timed out after it was sent; waiting for proof that sequence {unresolved_next_sequence} moved on"
        ),
        ProducerEvent::PartitionResolved {
            partition,
            last_acked_sequence,
        } => {
            format!(
                "p{partition} resolved by a later ack (last acked sequence {last_acked_sequence})"
            )
        }
        ProducerEvent::ProducerIdReset {
            old_producer_id,
            old_epoch,
        } => {
            format!(
                "epoch exhausted for producer {old_producer_id} at epoch {old_epoch}: requesting a new producer id"
            )
        }
        ProducerEvent::StaleResponseIgnored {
            correlation_id,
            partition,
            sent_epoch,
            current_epoch,
            error,
            ..
        } => {
            format!(
                "ignored {} for p{partition} in response #{correlation_id}: sent at epoch {sent_epoch}, now {current_epoch}",
                error.name()
            )
        }
        ProducerEvent::LateResponseIgnored { correlation_id } => {
            format!("late response #{correlation_id} ignored (request already failed)")
        }
        ProducerEvent::FatalError { error } => format!("fatal error {}", error.name()),
        _ => return None,
    })
}
