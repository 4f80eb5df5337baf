//! `idempo-sim explain`: run a script against a fresh broker and say, for every operation,
//! what the broker did and why.
//!
//! This is the study tool. Each produce line shows the batch (partition, producer id, epoch,
//! sequences), the broker's answer and the rule that decided it, with the producer state the
//! rule consulted, for example:
//!
//! ```text
//!   9  produce p0 pid=1 epoch=0 seq=6..8      NONE  duplicate of the batch at offsets 6..8 (window: 2, 3, 4, 5, 6..8): nothing appended
//! ```
//!
//! With `--json` each operation is one JSON object instead (JSON Lines), with the fields
//! documented on [`Explained::json`].
//!
//! A script that starts with a `cluster` line runs against a replicated cluster instead
//! (brokers, their disks and the controller; see `explain_cluster`): produce with `acks=`,
//! `replicate`, `crash-broker`, `restart-broker`, `elect` and `log`. Each of those
//! operations prints its first line as above and then one indented line per consequence
//! (fetches, HW moves, ISR changes, elections, truncations with the producer-state reload,
//! delayed answers, acknowledged batches lost), each citing its section of
//! docs/KAFKA-RULES.md; in JSON they are the `events` array (`event`, `text`), next to
//! `answer`. A script without a `cluster` line prints exactly what it did before.

use crate::explain_cluster::Cluster;
use crate::script::{Op, Produce, RestartMode, Step};
use bytes::BytesMut;
use idempo_broker::{Broker, BrokerConfig, ProduceOutcome, RestartReport, Verdict};
use idempo_protocol::{
    ErrorCode, FetchRequest, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
    decode_batches,
};
use serde_json::{Map, Value, json};

/// One operation's explanation, as text and as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// Script line.
    pub line: usize,
    /// The text line.
    pub text: String,
    /// The JSON object. Always `line` and `op`; for produce also `partition`, `producer_id`,
    /// `producer_epoch`, `first_sequence`, `last_sequence`, `record_count`, `outcome`
    /// (`appended` | `duplicate` | `rejected`), `base_offset` and `last_offset` (a
    /// duplicate's are the original batch's; -1 when rejected), `error` and `error_code` when
    /// rejected, `reason` (the explanation), and the state the rule saw:
    /// `expected_sequence` and `window` (`[[first, last], ...]`, oldest first) when the
    /// producer was known; for init-producer `producer_id` and `producer_epoch`.
    /// After a `cluster` line every object also has `answer` (the text answer) and `events`
    /// (`[{event, text}, ...]`: `placed`, `controller`, `fetched`, `truncated`,
    /// `high_watermark`, `isr_proposed`, `isr_changed`, `isr_refused`, `delayed_answer`,
    /// `no_answer`, `role`, `expired`, `lost`); produce adds `acks`, `broker` and `response`
    /// (`now` | `delayed` | `none`); crash-broker adds `broker` and `lost_batches`.
    pub json: Value,
}

/// Runs `steps` against a fresh broker built from `config`, keeping every explanation (for
/// tests and short scripts; [`stream`] keeps none).
pub fn run(
    steps: &[Step],
    config: BrokerConfig,
) -> Result<Vec<Explained>, idempo_broker::ConfigError> {
    let mut out = Vec::with_capacity(steps.len());
    stream(steps, config, |e| {
        out.push(e);
        true
    })?;
    Ok(out)
}

/// Runs `steps` against a fresh broker built from `config`, handing each explanation to
/// `emit` as soon as it is made and keeping none, so memory follows the broker's data, not
/// the script's length. `emit` returns `false` to stop early (its output was closed).
pub fn stream(
    steps: &[Step],
    config: BrokerConfig,
    mut emit: impl FnMut(Explained) -> bool,
) -> Result<(), idempo_broker::ConfigError> {
    let mut broker = Broker::new(config.clone())?;
    broker.set_record_windows(true);
    let mut cluster: Option<Cluster> = None;
    for step in steps {
        let explained = if let Op::Cluster(spec) = &step.op {
            let (built, explained) = Cluster::build(spec, &config, step)?;
            cluster = Some(built);
            explained
        } else if let Some(cluster) = cluster.as_mut() {
            cluster.explain_step(step)
        } else {
            explain_step(&mut broker, step)
        };
        if !emit(explained) {
            break;
        }
    }
    Ok(())
}

pub(crate) fn base(step: &Step) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("line".into(), json!(step.line));
    m.insert("op".into(), json!(step.op.name()));
    m
}

/// One operation: what was asked (the left column) and what the broker answered.
pub(crate) struct Said {
    pub(crate) request: String,
    pub(crate) answer: String,
}

/// The text line of one operation: line number, request, answer.
pub(crate) fn text_line(line: usize, said: &Said) -> String {
    format!("{:>4}  {:<38} {}", line, said.request, said.answer)
}

fn explain_step(broker: &mut Broker, step: &Step) -> Explained {
    let mut m = base(step);
    let said = match &step.op {
        Op::InitProducer => init_producer(broker, &mut m),
        Op::Produce(batch) => produce(broker, batch, &mut m),
        Op::Advance { ms } => advance(broker, *ms, &mut m),
        Op::DeleteRecords { partition, before } => {
            delete_records(broker, *partition, *before, &mut m)
        }
        Op::Restart { mode } => restart(broker, *mode, &mut m),
        Op::Fetch {
            partition, offset, ..
        } => fetch(broker, *partition, *offset, &mut m),
        Op::Cluster(_)
        | Op::CrashBroker { .. }
        | Op::RestartBroker { .. }
        | Op::Elect { .. }
        | Op::Replicate { .. }
        | Op::Log { .. } => {
            unreachable!("the parser accepts cluster operations only after a `cluster` line")
        }
    };
    Explained {
        line: step.line,
        text: text_line(step.line, &said),
        json: Value::Object(m),
    }
}

fn init_producer(broker: &mut Broker, m: &mut Map<String, Value>) -> Said {
    let r = broker.init_producer_id();
    m.insert("producer_id".into(), json!(r.producer_id.0));
    m.insert("producer_epoch".into(), json!(r.producer_epoch.0));
    Said {
        request: "init-producer".to_string(),
        answer: format!(
            "producer id {} at epoch {}",
            r.producer_id, r.producer_epoch
        ),
    }
}

/// The batch a `produce` line sends, stamped `now_ms` unless the line gives `ts`, with a bit
/// flipped after the CRC when the line says `corrupt=true`.
pub(crate) fn scripted_batch(b: &Produce, now_ms: i64) -> (RecordBatch, bytes::Bytes) {
    let ts = b.ts.unwrap_or(now_ms);
    let records = (0..b.count)
        .map(|i| {
            let seq = Sequence(b.seq).wrapping_add(i);
            Record::with_value(i, format!("pid{}-seq{seq}", b.pid))
        })
        .collect();
    let batch = RecordBatch::idempotent(
        ProducerId(b.pid),
        ProducerEpoch(b.epoch),
        Sequence(b.seq),
        ts,
        records,
    );
    let mut bytes = BytesMut::from(&batch.to_bytes()[..]);
    if b.corrupt {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
    }
    (batch, bytes.freeze())
}

/// `produce p0 pid=1 epoch=0 seq=0..2`, the left column of a produce line.
pub(crate) fn produce_request_text(b: &Produce, batch: &RecordBatch) -> String {
    let seqs = if b.count == 0 {
        format!("{} (empty)", b.seq)
    } else if batch.last_sequence() == batch.base_sequence {
        format!("{}", b.seq)
    } else {
        format!("{}..{}", b.seq, batch.last_sequence())
    };
    let corrupt = if b.corrupt { " (bit flipped)" } else { "" };
    format!(
        "produce p{} pid={} epoch={} seq={seqs}{corrupt}",
        b.partition, b.pid, b.epoch
    )
}

fn produce(broker: &mut Broker, b: &Produce, m: &mut Map<String, Value>) -> Said {
    let (batch, bytes) = scripted_batch(b, broker.now_ms());
    let outcome = broker.produce(b.partition, &bytes);
    produce_json(m, b.partition, &outcome);
    Said {
        request: produce_request_text(b, &batch),
        answer: format!("{:<5} {outcome}", short_code(outcome.error_code())),
    }
}

fn advance(broker: &mut Broker, ms: i64, m: &mut Map<String, Value>) -> Said {
    let now = broker.now_ms().saturating_add(ms);
    let expired = broker.advance_time(now);
    m.insert("now_ms".into(), json!(now));
    m.insert(
        "expired".into(),
        json!(
            expired
                .iter()
                .map(|e| json!({"partition": e.partition, "producer_id": e.producer_id.0}))
                .collect::<Vec<_>>()
        ),
    );
    let what = if expired.is_empty() {
        "no producer expired".to_string()
    } else {
        let list: Vec<String> = expired
            .iter()
            .map(|e| format!("producer {} on p{}", e.producer_id, e.partition))
            .collect();
        format!(
            "expired {} (idle for producer.id.expiration.ms): their next batch is a first batch again",
            list.join(", ")
        )
    };
    Said {
        request: format!("advance ms={ms}"),
        answer: format!("clock at {now} ms; {what}"),
    }
}

fn delete_records(
    broker: &mut Broker,
    partition: i32,
    before: i64,
    m: &mut Map<String, Value>,
) -> Said {
    let answer = match broker.delete_records(partition, before) {
        Ok(start) => {
            m.insert("log_start_offset".into(), json!(start));
            format!("log start offset of p{partition} is {start}; producer state kept (Kafka 2.5+)")
        }
        Err(e) => {
            m.insert("error".into(), json!(e.to_string()));
            format!("refused: {e}")
        }
    };
    Said {
        request: format!("delete-records p{partition} before={before}"),
        answer,
    }
}

fn restart(broker: &mut Broker, mode: RestartMode, m: &mut Map<String, Value>) -> Said {
    let (request, how, rebuilt) = match mode {
        RestartMode::FromLog => {
            let rebuilt = broker.restart();
            (
                "restart",
                "producer state rebuilt by replaying the retained log".to_string(),
                rebuilt,
            )
        }
        RestartMode::Clean => match broker.restart_clean() {
            Ok(report) => (
                "restart mode=clean",
                format!(
                    "clean shutdown (logs synced, snapshots written), then recovery: {}",
                    recovered_from(&report)
                ),
                producers_per_partition(&report),
            ),
            Err(e) => {
                m.insert("error".into(), json!(e.to_string()));
                ("restart mode=clean", format!("refused: {e}"), Vec::new())
            }
        },
        RestartMode::Crash => {
            let report = broker.crash(|_file, _unsynced| 0);
            (
                "restart mode=crash",
                format!(
                    "power loss (unsynced bytes dropped), then recovery: {}",
                    recovered_from(&report)
                ),
                producers_per_partition(&report),
            )
        }
    };
    m.insert(
        "rebuilt".into(),
        json!(
            rebuilt
                .iter()
                .map(|(p, n)| json!({"partition": p, "producers": n}))
                .collect::<Vec<_>>()
        ),
    );
    let list: Vec<String> = rebuilt
        .iter()
        .map(|(p, n)| format!("p{p}: {n} producer(s)"))
        .collect();
    let list = if list.is_empty() {
        "no partitions".to_string()
    } else {
        list.join(", ")
    };
    Said {
        request: request.to_string(),
        answer: format!("{how}: {list}"),
    }
}

/// Per partition: which snapshot recovery loaded and how many batches it replayed.
pub(crate) fn recovered_from(report: &RestartReport) -> String {
    let parts: Vec<String> = report
        .partitions
        .iter()
        .map(|p| {
            let r = &p.recovery;
            let from = r
                .snapshot_loaded
                .map_or_else(|| "no snapshot".to_string(), |o| format!("snapshot at {o}"));
            format!(
                "p{} from {from} + {} batch(es) replayed",
                p.partition, r.replayed_batches
            )
        })
        .collect();
    if parts.is_empty() {
        "no partitions".to_string()
    } else {
        parts.join(", ")
    }
}

fn producers_per_partition(report: &RestartReport) -> Vec<(i32, usize)> {
    report
        .partitions
        .iter()
        .map(|p| (p.partition, p.recovery.producers_recovered))
        .collect()
}

pub(crate) fn fetch(
    broker: &mut Broker,
    partition: i32,
    offset: i64,
    m: &mut Map<String, Value>,
) -> Said {
    let r = broker.fetch(&FetchRequest::consumer(partition, offset, i32::MAX));
    m.insert("error".into(), json!(r.error_code.name()));
    m.insert("high_watermark".into(), json!(r.high_watermark));
    m.insert("log_start_offset".into(), json!(r.log_start_offset));
    let answer = if r.error_code != ErrorCode::None {
        format!(
            "{} (log {}..{})",
            r.error_code, r.log_start_offset, r.high_watermark
        )
    } else {
        match decode_batches(r.records) {
            Ok(batches) => describe_batches(&batches, m),
            Err(e) => format!("stored batches failed to decode: {e}"),
        }
    };
    Said {
        request: format!("fetch p{partition} offset={offset}"),
        answer,
    }
}

/// `0..1 pid=1 epoch=0 seq=0..1; ...`, and the records' values into `m`.
pub(crate) fn describe_batches(batches: &[RecordBatch], m: &mut Map<String, Value>) -> String {
    let mut values = Vec::new();
    let parts: Vec<String> = batches
        .iter()
        .map(|b| {
            for (i, rec) in b.records.iter().enumerate() {
                let v = rec
                    .value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                values.push(json!({"offset": b.base_offset + i as i64, "value": v}));
            }
            format!(
                "{}..{} pid={} epoch={} seq={}..{}",
                b.base_offset,
                b.base_offset + i64::from(b.last_offset_delta),
                b.producer_id,
                b.producer_epoch,
                b.base_sequence,
                b.last_sequence()
            )
        })
        .collect();
    m.insert("records".into(), json!(values));
    if parts.is_empty() {
        "no records".to_string()
    } else {
        parts.join("; ")
    }
}

pub(crate) fn short_code(code: ErrorCode) -> &'static str {
    if code == ErrorCode::None {
        "NONE"
    } else {
        "ERROR"
    }
}

pub(crate) fn produce_json(m: &mut Map<String, Value>, partition: i32, o: &ProduceOutcome) {
    m.insert("partition".into(), json!(partition));
    m.insert("producer_id".into(), json!(o.producer_id.0));
    m.insert("producer_epoch".into(), json!(o.producer_epoch.0));
    m.insert("first_sequence".into(), json!(o.first_sequence.0));
    m.insert("last_sequence".into(), json!(o.last_sequence.0));
    m.insert("record_count".into(), json!(o.record_count));
    m.insert("outcome".into(), json!(o.outcome_name()));
    let (first, last) = o.offsets().unwrap_or((-1, -1));
    m.insert("base_offset".into(), json!(first));
    m.insert("last_offset".into(), json!(last));
    if matches!(o.verdict, Verdict::Rejected(_) | Verdict::Invalid(_)) {
        m.insert("error".into(), json!(o.error_code().name()));
        m.insert("error_code".into(), json!(o.error_code().code()));
    }
    m.insert("reason".into(), json!(o.to_string()));
    if let Some(seen) = &o.seen {
        m.insert("expected_sequence".into(), json!(seen.expected_sequence.0));
        let window: Vec<Value> = seen
            .window()
            .map(|w| w.batches())
            .unwrap_or_default()
            .iter()
            .map(|b| json!([b.first_sequence().0, b.last_sequence.0]))
            .collect();
        m.insert("window".into(), json!(window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse;

    fn explain(text: &str) -> Vec<Explained> {
        run(&parse(text).unwrap(), BrokerConfig::default()).unwrap()
    }

    #[test]
    fn lost_ack_retry_is_explained_as_duplicate_with_original_offsets() {
        let out = explain(
            "init-producer\nproduce pid=1 epoch=0 seq=0 count=3\nproduce pid=1 epoch=0 seq=0 count=3\n",
        );
        assert_eq!(out[2].json["outcome"], "duplicate");
        assert_eq!(out[2].json["base_offset"], 0);
        assert_eq!(out[2].json["last_offset"], 2);
        assert!(
            out[2].text.contains(
                "duplicate of the batch at offsets 0..2 (window: 0..2): nothing appended"
            ),
            "{}",
            out[2].text
        );
    }

    #[test]
    fn rejection_json_carries_kafka_name_and_code() {
        let out =
            explain("produce pid=1 epoch=0 seq=0 count=1\nproduce pid=1 epoch=0 seq=5 count=1\n");
        assert_eq!(out[1].json["outcome"], "rejected");
        assert_eq!(out[1].json["error"], "OUT_OF_ORDER_SEQUENCE_NUMBER");
        assert_eq!(out[1].json["error_code"], 45);
        assert_eq!(out[1].json["expected_sequence"], 1);
    }

    #[test]
    fn empty_batch_is_explained_as_invalid_record_and_the_next_batch_still_follows() {
        let out = explain(
            "produce pid=1 epoch=0 seq=0 count=1\nproduce pid=1 epoch=0 seq=1 count=0\n\
             produce pid=1 epoch=0 seq=1 count=1\n",
        );
        assert_eq!(out[1].json["error"], "INVALID_RECORD");
        assert_eq!(out[1].json["error_code"], 87);
        assert_eq!(out[2].json["outcome"], "appended", "{}", out[2].text);
    }

    #[test]
    fn record_stamped_beyond_timestamp_after_max_is_explained_as_invalid_timestamp() {
        let out = explain("advance ms=1000\nproduce pid=1 epoch=0 seq=0 count=1 ts=3601001\n");
        assert_eq!(out[1].json["error"], "INVALID_TIMESTAMP");
        assert_eq!(out[1].json["error_code"], 32);
        let off = run(
            &parse("produce pid=1 epoch=0 seq=0 count=1 ts=999999999999\n").unwrap(),
            BrokerConfig {
                log_message_timestamp_after_max_ms: i64::MAX,
                ..BrokerConfig::default()
            },
        )
        .unwrap();
        assert_eq!(off[0].json["outcome"], "appended");
    }

    /// Producer 1's only batch is deleted; producer 2 keeps the log end moving. Then
    /// `retry` re-sends producer 1's batch after the restart in `mode`.
    fn after_restart(mode: &str) -> Vec<Explained> {
        explain(&format!(
            "produce pid=1 epoch=0 seq=0 count=1\nproduce pid=2 epoch=0 seq=0 count=1\n\
             delete-records before=1\nrestart{mode}\nproduce pid=1 epoch=0 seq=0 count=1\n"
        ))
    }

    #[test]
    fn bare_restart_forgets_a_producer_whose_batches_were_all_deleted() {
        let out = after_restart("");
        assert_eq!(out[3].json["rebuilt"][0]["producers"], 1, "{}", out[3].text);
        assert_eq!(
            out[4].json["outcome"], "appended",
            "unknown again: {}",
            out[4].text
        );
    }

    #[test]
    fn clean_restart_keeps_every_in_memory_producer_through_its_snapshot() {
        let out = after_restart(" mode=clean");
        assert_eq!(out[3].json["rebuilt"][0]["producers"], 2, "{}", out[3].text);
        assert!(
            out[3].text.contains("from snapshot at 2"),
            "{}",
            out[3].text
        );
        assert_eq!(out[4].json["outcome"], "duplicate", "{}", out[4].text);
    }

    #[test]
    fn crash_restart_rebuilds_from_the_latest_snapshot_then_replays() {
        let out = explain(
            "produce pid=1 epoch=0 seq=0 count=1\nadvance ms=60000\n\
             produce pid=1 epoch=0 seq=1 count=1\nrestart mode=crash\n\
             produce pid=1 epoch=0 seq=1 count=1\n",
        );
        assert!(
            out[3]
                .text
                .contains("p0 from snapshot at 1 + 1 batch(es) replayed"),
            "{}",
            out[3].text
        );
        assert_eq!(out[4].json["outcome"], "duplicate", "{}", out[4].text);
    }

    #[test]
    fn corrupt_flag_gives_corrupt_message() {
        let out = explain("produce pid=1 epoch=0 seq=0 count=2 corrupt=true\n");
        assert_eq!(out[0].json["error"], "CORRUPT_MESSAGE");
    }
}
