//! `idempo-sim trace --record PRODUCER:RECORD`: the life of one record, from its first send
//! to its delivery report, with every broker decision on the way.
//!
//! ## Which record
//!
//! `RECORD` is the record's **index in its producer's workload**, counting from 0: producer
//! `P` sends records `0..records`, cut into batches of `batch_records`, so record `i` travels
//! in batch `i / batch_records` (the simulator's batch number) to the partition the workload
//! assigns that batch. This identity never changes. Its *sequence number* does: the producer
//! stamps it when the batch is first sent, rewrites it when the epoch is bumped, and a
//! restarted producer process (a new producer id) starts again at 0. So the output names the
//! record by index and shows, at each send, which sequence it carried:
//!
//! ```text
//! record 17 of producer 0 is in batch 1 (records 10..19), partition 0
//! (a record is numbered by its 0-based index in its producer's workload, ...)
//!       10 ms  sent      produce #2 [p0 pid=1 e0 seq 10..19] (arrives at 20 ms) — record 17 is sequence 17 (producer id 1, epoch 0)
//!       20 ms  broker    p0 appended, NONE: appended at offsets 10..19: sequence 10 is the next expected (window: 0..9)
//!                        window seen: 0..9
//!       20 ms  response  response to request #2 — lost: the connection broke (lost ack)
//!      210 ms  client    connection closed (request #1 unanswered after request.timeout.ms): 3 request(s) failed
//!      210 ms  producer  retry scheduled: p0 seq 10 after connection failed (attempt 1, at 220 ms)
//!      244 ms  sent      produce #5 [p0 pid=1 e0 seq 10..19] (arrives at 247 ms) — record 17 is sequence 17 (producer id 1, epoch 0)
//!      247 ms  broker    p0 duplicate, NONE: duplicate of the batch at offsets 10..19 (window: 0..9, 10..19): nothing appended
//!                        window seen: 0..9, 10..19
//!      255 ms  response  response #5 arrived: p0 offset 10
//!      255 ms  report    acked batch 1 (p0, 10 records) at offset 10 after 2 attempt(s)
//! final: record 17 is at offset 17 of partition 0 (its batch starts at offset 10)
//! ```
//!
//! (`idempo-sim run --producers 1 --partitions 1 --records 30 --ack-loss 0.3`, seed 1.)
//!
//! ## Which events
//!
//! Every event of the record's producer that concerns its batch: the requests that carried it
//! (and their fates), the broker's verdicts on it with the rule and the dedup window the broker
//! consulted, the responses and disconnects of those requests (matched by correlation id, see
//! [`Links`](crate::diagram)), the producer's decisions about the batch (a retry names its
//! partition and sequence) or its partition (epoch bumps, sequence rewrites), producer and
//! broker restarts while the batch was outstanding, and the delivery report.

use crate::config::SimConfig;
use crate::diagram::Links;
use crate::events::{self, BatchRef, SimEvent, Timed};
use idempo_producer::ProducerEvent;
use std::fmt;
use std::fmt::Write as _;

/// The life of record `record` (its 0-based index in producer `producer`'s workload) as text:
/// one time-stamped line per event that touched its batch, ending with the record's final
/// offset, or why it has none.
///
/// Errors name the valid range when the producer or record index is out of range.
///
/// # Examples
///
/// ```
/// use idempo_sim::{SimConfig, Simulation, record_trace, trace::Trace};
///
/// let config = SimConfig { producers: 1, partitions: 1, records: 30, ack_loss: 0.3,
///                          ..SimConfig::default() };
/// let (_, trace) = Simulation::new(config.clone(), Some(Trace::collecting()))?.run();
/// let text = record_trace::follow(&config, trace.expect("a trace was given").events(), 0, 17)?;
/// assert!(text.starts_with("record 17 of producer 0 is in batch 1 (records 10..19)"));
/// # Ok::<(), String>(())
/// ```
pub fn follow(
    config: &SimConfig,
    events: &[Timed],
    producer: u32,
    record: u64,
) -> Result<String, RecordError> {
    let target = Target::of(config, producer, record)?;
    let links = Links::of(events);
    let chosen = target.select(events, &links);
    let mut out = target.header();
    let mut current: Option<BatchRef> = None;
    for i in chosen {
        let e = &events[i];
        if let SimEvent::RequestSent { batches, .. } = &e.event {
            current = batches.iter().find(|b| b.batch == target.batch).cloned();
        }
        out.push_str(&target.line(e, current.as_ref()));
    }
    out.push_str(&target.ending(events));
    Ok(out)
}

/// Why a record cannot be followed: it is not in the run's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// No such producer.
    ProducerOutOfRange {
        /// The producer asked for.
        producer: u32,
        /// Producers in the run.
        producers: u32,
    },
    /// No such record index.
    RecordOutOfRange {
        /// The record index asked for.
        record: u64,
        /// Records each producer sends.
        records: u64,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RecordError::ProducerOutOfRange {
                producer,
                producers,
            } => write!(
                f,
                "producer {producer} is out of range: the run has {producers} producer(s), numbered 0..={}",
                producers.saturating_sub(1)
            ),
            RecordError::RecordOutOfRange { record, records } => write!(
                f,
                "record {record} is out of range: each producer sends {records} records, numbered 0..={} \
                 (RECORD is the record's index in its producer's workload, not a sequence number)",
                records.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<RecordError> for String {
    fn from(e: RecordError) -> String {
        e.to_string()
    }
}

/// The record followed and where the workload put it.
struct Target {
    producer: u32,
    record: u64,
    batch: u64,
    first: u64,
    last: u64,
    partition: i32,
}

impl Target {
    fn of(config: &SimConfig, producer: u32, record: u64) -> Result<Target, RecordError> {
        if producer >= config.producers {
            return Err(RecordError::ProducerOutOfRange {
                producer,
                producers: config.producers,
            });
        }
        if record >= config.records {
            return Err(RecordError::RecordOutOfRange {
                record,
                records: config.records,
            });
        }
        let per = u64::from(config.batch_records);
        let batch = record / per;
        let first = batch * per;
        Ok(Target {
            producer,
            record,
            batch,
            first,
            last: first + u64::from(config.records_in_batch(batch)) - 1,
            partition: config.partition_of(producer, batch),
        })
    }

    fn header(&self) -> String {
        format!(
            "record {} of producer {} is in batch {} (records {}..{}), partition {}\n\
             (a record is numbered by its 0-based index in its producer's workload, the same in \
             every epoch and producer session; the sequence number it carried is shown at each send)\n",
            self.record, self.producer, self.batch, self.first, self.last, self.partition
        )
    }

    /// The events to show, in order.
    fn select(&self, events: &[Timed], links: &Links) -> Vec<usize> {
        let carried: Vec<usize> = links
            .requests
            .iter()
            .enumerate()
            .filter(|(_, q)| q.producer == self.producer && q.batches.contains(&self.batch))
            .map(|(r, _)| r)
            .collect();
        let born = carried.first().map(|&r| links.requests[r].event);
        let settled = events.iter().rposition(|e| {
            e.producer == self.producer
                && matches!(e.event, SimEvent::Delivered { batch, .. } if batch == self.batch)
        });
        let Some(born) = born else {
            return settled.into_iter().collect();
        };
        let alive = |i: usize| i >= born && settled.is_none_or(|s| i <= s);
        let failed_by = self.disconnects(events, links, &carried);
        let mut sequence = None;
        // The offsets the record was appended at (on the leader of the time), so that the
        // cluster's changes to it are followed across replicas.
        let mut offsets: Vec<i64> = Vec::new();
        let mut chosen = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let SimEvent::Verdict(v) = &e.event
                && e.producer == self.producer
                && v.batch == Some(self.batch)
                && let idempo_broker::Verdict::Appended { base_offset, .. } = v.outcome.verdict
            {
                offsets.push(base_offset + (self.record - self.first) as i64);
            }
            if let SimEvent::RequestSent { batches, .. } = &e.event
                && e.producer == self.producer
                && let Some(b) = batches.iter().find(|b| b.batch == self.batch)
            {
                sequence = Some(b.first_sequence);
            }
            let linked = links.of_event[i].is_some_and(|(r, _)| carried.contains(&r));
            let take = match &e.event {
                SimEvent::BrokerRestarted { .. } => alive(i),
                SimEvent::RecordsDeleted { partition, .. } => {
                    alive(i) && *partition == self.partition
                }
                SimEvent::Cluster(change) => {
                    i >= born && offsets.iter().any(|o| change.touches(self.partition, *o))
                }
                _ if e.producer != self.producer => false,
                SimEvent::Delivered { batch, .. } => *batch == self.batch,
                // A request may carry batches of other partitions: their verdicts are not ours.
                SimEvent::Verdict(v) => linked && v.batch == Some(self.batch),
                SimEvent::Producer(event) => alive(i) && self.mentions(event, sequence),
                SimEvent::ProducerExpired { partition, .. } => {
                    alive(i) && *partition == self.partition
                }
                SimEvent::ProducerRestarted { .. } => alive(i),
                SimEvent::Disconnected { .. } => linked || failed_by.contains(&i),
                _ => linked,
            };
            if take {
                chosen.push(i);
            }
        }
        chosen
    }

    /// Disconnects that failed a request carrying the batch: the first disconnect of the
    /// producer after the request was sent, unless its answer arrived first or the process
    /// restarted (which drops the connection without a disconnect event).
    fn disconnects(&self, events: &[Timed], links: &Links, carried: &[usize]) -> Vec<usize> {
        let mut awaiting: Vec<usize> = Vec::new();
        let mut found = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if e.producer != self.producer {
                continue;
            }
            let link = links.of_event[i].map(|(r, _)| r);
            match &e.event {
                SimEvent::RequestSent { .. } => {
                    awaiting.extend(link.filter(|r| carried.contains(r)));
                }
                SimEvent::ResponseArrived { .. } => awaiting.retain(|r| Some(*r) != link),
                SimEvent::ProducerRestarted { .. } => awaiting.clear(),
                SimEvent::Disconnected { .. } if !awaiting.is_empty() => {
                    found.push(i);
                    awaiting.clear();
                }
                _ => {}
            }
        }
        found
    }

    /// True when a producer decision concerns the batch: it names its partition and, if it
    /// names a sequence (a retry), the batch's current first sequence. A retry without a
    /// sequence (idempotence off) names no batch of its partition in particular, so it is not
    /// shown.
    fn mentions(&self, event: &ProducerEvent, sequence: Option<i32>) -> bool {
        if events::producer_event_partition(event) != Some(self.partition) {
            return false;
        }
        match event {
            ProducerEvent::RetryScheduled { base_sequence, .. } => {
                base_sequence.0 >= 0 && Some(base_sequence.0) == sequence
            }
            _ => true,
        }
    }
}

// Output lines.
impl Target {
    fn line(&self, e: &Timed, batch: Option<&BatchRef>) -> String {
        let mut line = format!("{:>8} ms  ", e.at_ms);
        match &e.event {
            SimEvent::RequestSent { .. } => {
                let _ = write!(line, "sent      {}", e.event);
                if let Some(b) = batch.filter(|b| b.producer_id >= 0) {
                    let sequence = i64::from(b.first_sequence) + (self.record - self.first) as i64;
                    let _ = write!(
                        line,
                        " — record {} is sequence {sequence} (producer id {}, epoch {})",
                        self.record, b.producer_id, b.epoch
                    );
                }
            }
            SimEvent::Verdict(v) => {
                let window = match v.window() {
                    Some(w) => w.to_string(),
                    None => "none (no state for this producer on the partition)".to_string(),
                };
                let _ = write!(
                    line,
                    "broker    p{} {}, {}: {}\n{:>23}window seen: {window}",
                    v.partition(),
                    v.outcome_name(),
                    v.error().name(),
                    v.outcome,
                    ""
                );
            }
            SimEvent::RequestLostInFlight { .. } => {
                let _ = write!(line, "network   {}", e.event);
            }
            SimEvent::ResponseSent { .. }
            | SimEvent::ResponseArrived { .. }
            | SimEvent::ResponseDiscarded { .. } => {
                let _ = write!(line, "response  {}", e.event);
            }
            SimEvent::Disconnected { .. } => {
                let _ = write!(line, "client    {}", e.event);
            }
            SimEvent::Delivered { .. } => {
                let _ = write!(line, "report    {}", e.event);
            }
            SimEvent::BrokerRestarted { .. } | SimEvent::RecordsDeleted { .. } => {
                let _ = write!(line, "broker    {}", e.event);
            }
            SimEvent::Cluster(_) => {
                let _ = write!(line, "cluster   {}", e.event);
            }
            _ => {
                let _ = write!(line, "producer  {}", e.event);
            }
        }
        line.push('\n');
        line
    }

    /// The last line: where the record ended up.
    fn ending(&self, events: &[Timed]) -> String {
        let report = events.iter().rev().find_map(|e| match &e.event {
            SimEvent::Delivered { batch, report }
                if e.producer == self.producer && *batch == self.batch =>
            {
                Some((report, &e.event))
            }
            _ => None,
        });
        match report {
            Some((report, line)) => match &report.result {
                Ok(d) => format!(
                    "final: record {} is at offset {} of partition {} (its batch starts at offset {})\n",
                    self.record,
                    d.base_offset + (self.record - self.first) as i64,
                    self.partition,
                    d.base_offset
                ),
                Err(_) => format!(
                    "final: record {} was not acknowledged: {line}\n",
                    self.record
                ),
            },
            None if events.iter().any(|e| {
                e.producer == self.producer && e.event.batches().contains(&self.batch)
            }) =>
            {
                "final: no delivery report (the run stopped before the batch was resolved)\n"
                    .to_string()
            }
            None => "final: the batch was never sent (the run stopped before it)\n".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Simulation;
    use crate::trace::Trace;

    /// Property: the final line's offset is the delivery report's base offset plus the
    /// record's place in its batch, for every acknowledged record of a lossy run.
    #[test]
    fn the_final_offset_comes_from_the_delivery_report() {
        let config = SimConfig {
            producers: 1,
            partitions: 2,
            records: 40,
            batch_records: 4,
            ack_loss: 0.3,
            ..SimConfig::default()
        };
        let (_, trace) = Simulation::new(config.clone(), Some(Trace::collecting()))
            .expect("a valid config")
            .run();
        let events = trace.expect("a trace was given").events().to_vec();
        for record in 0..config.records {
            let batch = record / 4;
            let base = events.iter().rev().find_map(|e| match &e.event {
                SimEvent::Delivered { batch: b, report } if *b == batch => {
                    report.result.as_ref().ok().map(|d| d.base_offset)
                }
                _ => None,
            });
            let base = base.expect("every batch is acknowledged");
            let text = follow(&config, &events, 0, record).expect("in range");
            let last = text.lines().last().expect("a final line");
            let offset = base + (record % 4) as i64;
            assert!(
                last.starts_with(&format!("final: record {record} is at offset {offset} ")),
                "{last}"
            );
        }
    }
}
