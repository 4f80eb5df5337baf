//! `--trace`: one short line per event, in virtual time.
//!
//! ```text
//!      12 ms  P0  produce #3 [p1 pid=1 e0 seq 10..19 #1] (arrives in 7 ms)
//!      19 ms  P0  broker: p1 appended at offsets 10..19: sequence 10 is the next expected (window: 0..9)
//!      19 ms  P0  response to request #3 — dropped on the way back (lost ack)
//! ```
//!
//! Lines go to a writer as they are made (or into a buffer, for tests), so a long traced run
//! does not hold its trace in memory.

use idempo_producer::{DeliveryReport, ProducerEvent};
use idempo_protocol::{Request, RequestFrame, Response, ResponseFrame};
use std::fmt::Write as _;
use std::io::Write;

/// Where trace lines go.
pub struct Trace {
    buffer: String,
    sink: Option<Box<dyn Write>>,
    lines: u64,
}

impl Trace {
    /// A trace kept in memory (see [`Trace::into_string`]).
    pub fn buffered() -> Trace {
        Trace {
            buffer: String::new(),
            sink: None,
            lines: 0,
        }
    }

    /// A trace written to `sink` as it goes.
    pub fn to_writer(sink: Box<dyn Write>) -> Trace {
        Trace {
            buffer: String::new(),
            sink: Some(sink),
            lines: 0,
        }
    }

    /// Adds one line for producer `producer` at `now_ms`.
    pub fn line(&mut self, now_ms: u64, producer: u32, text: impl AsRef<str>) {
        self.lines += 1;
        let _ = writeln!(
            self.buffer,
            "{now_ms:>8} ms  P{producer:<2} {}",
            text.as_ref()
        );
        if self.buffer.len() > 1 << 16 {
            self.flush();
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

    /// Lines traced so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The buffered text (everything, for a buffered trace).
    pub fn into_string(mut self) -> String {
        self.flush();
        std::mem::take(&mut self.buffer)
    }
}

/// A request as one line: `produce #3 [p1 pid=1 e0 seq 10..19 #1, ...]`.
pub fn request(frame: &RequestFrame) -> String {
    match &frame.request {
        Request::InitProducerId(_) => format!("InitProducerId #{}", frame.correlation_id),
        Request::Fetch(f) => format!(
            "fetch #{} p{} from {}",
            frame.correlation_id, f.partition, f.fetch_offset
        ),
        Request::Produce(r) => {
            let mut s = format!("produce #{} [", frame.correlation_id);
            for (i, d) in r.partitions.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                match idempo_protocol::BatchHeader::parse(&d.records) {
                    Ok(h) if h.producer_id.is_some() => {
                        let _ = write!(
                            s,
                            "p{} pid={} e{} seq {}..{}",
                            d.partition,
                            h.producer_id,
                            h.producer_epoch,
                            h.base_sequence,
                            h.last_sequence()
                        );
                    }
                    Ok(h) => {
                        let _ = write!(
                            s,
                            "p{} {} records, no producer id",
                            d.partition, h.records_count
                        );
                    }
                    Err(_) => {
                        let _ = write!(s, "p{} unreadable batch", d.partition);
                    }
                }
            }
            s.push(']');
            s
        }
    }
}

/// A response arriving at its producer.
pub fn response_arrived(frame: &ResponseFrame) -> String {
    match &frame.response {
        Response::InitProducerId(r) => format!(
            "response #{} arrived: producer id {} epoch {} ({})",
            frame.correlation_id,
            r.producer_id,
            r.producer_epoch,
            r.error_code.name()
        ),
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
            format!(
                "response #{} arrived: {}",
                frame.correlation_id,
                parts.join(", ")
            )
        }
        Response::Fetch(r) => format!(
            "response #{} arrived: fetch {}",
            frame.correlation_id,
            r.error_code.name()
        ),
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
        ProducerEvent::RequestTimedOut { correlation_id } => {
            format!("request #{correlation_id} timed out (no response within request.timeout.ms)")
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
            format!("late response #{correlation_id} ignored (request already timed out)")
        }
        ProducerEvent::FatalError { error } => format!("fatal error {}", error.name()),
        _ => return None,
    })
}
