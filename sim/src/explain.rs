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

use crate::script::{Op, Step};
use bytes::BytesMut;
use idempo_broker::{Broker, BrokerConfig, ProduceOutcome, Verdict};
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
    pub json: Value,
}

/// Runs `steps` against a fresh broker built from `config`.
pub fn run(
    steps: &[Step],
    config: BrokerConfig,
) -> Result<Vec<Explained>, idempo_broker::ConfigError> {
    let mut broker = Broker::new(config)?;
    Ok(steps
        .iter()
        .map(|step| explain_step(&mut broker, step))
        .collect())
}

fn base(step: &Step) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("line".into(), json!(step.line));
    m.insert("op".into(), json!(step.op.name()));
    m
}

fn explain_step(broker: &mut Broker, step: &Step) -> Explained {
    let mut m = base(step);
    let (request, answer) = match &step.op {
        Op::InitProducer => {
            let r = broker.init_producer_id();
            m.insert("producer_id".into(), json!(r.producer_id.0));
            m.insert("producer_epoch".into(), json!(r.producer_epoch.0));
            (
                "init-producer".to_string(),
                format!(
                    "producer id {} at epoch {}",
                    r.producer_id, r.producer_epoch
                ),
            )
        }
        Op::Produce {
            pid,
            epoch,
            seq,
            count,
            partition,
            ts,
            corrupt,
        } => {
            let ts = ts.unwrap_or(broker.now_ms());
            let records = (0..*count)
                .map(|i| {
                    Record::with_value(i, format!("pid{pid}-seq{}", Sequence(*seq).wrapping_add(i)))
                })
                .collect();
            let batch = RecordBatch::idempotent(
                ProducerId(*pid),
                ProducerEpoch(*epoch),
                Sequence(*seq),
                ts,
                records,
            );
            let mut bytes = BytesMut::from(&batch.to_bytes()[..]);
            if *corrupt {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x01;
            }
            let outcome = broker.produce(*partition, &bytes.freeze());
            produce_json(&mut m, *partition, &outcome);
            let seqs = if batch.last_sequence() == batch.base_sequence {
                format!("{seq}")
            } else {
                format!("{seq}..{}", batch.last_sequence())
            };
            let corrupt = if *corrupt { " (bit flipped)" } else { "" };
            (
                format!("produce p{partition} pid={pid} epoch={epoch} seq={seqs}{corrupt}"),
                format!("{:<5} {outcome}", short_code(outcome.error_code())),
            )
        }
        Op::Advance { ms } => {
            let now = broker.now_ms().saturating_add(*ms);
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
            (
                format!("advance ms={ms}"),
                format!("clock at {now} ms; {what}"),
            )
        }
        Op::DeleteRecords { partition, before } => {
            let answer = match broker.delete_records(*partition, *before) {
                Ok(start) => {
                    m.insert("log_start_offset".into(), json!(start));
                    format!(
                        "log start offset of p{partition} is {start}; producer state kept (Kafka 2.5+)"
                    )
                }
                Err(e) => {
                    m.insert("error".into(), json!(e.to_string()));
                    format!("refused: {e}")
                }
            };
            (
                format!("delete-records p{partition} before={before}"),
                answer,
            )
        }
        Op::Restart => {
            let rebuilt = broker.restart();
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
            (
                "restart".to_string(),
                format!("producer state rebuilt by replaying the retained log: {list}"),
            )
        }
        Op::Fetch { partition, offset } => {
            let r = broker.fetch(&FetchRequest {
                partition: *partition,
                fetch_offset: *offset,
                max_bytes: i32::MAX,
            });
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
                    Ok(batches) => {
                        let mut values = Vec::new();
                        let parts: Vec<String> = batches
                            .iter()
                            .map(|b| {
                                for (i, rec) in b.records.iter().enumerate() {
                                    let v = rec
                                        .value
                                        .as_ref()
                                        .map(|v| String::from_utf8_lossy(v).into_owned());
                                    values.push(
                                        json!({"offset": b.base_offset + i as i64, "value": v}),
                                    );
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
                    Err(e) => format!("stored batches failed to decode: {e}"),
                }
            };
            (format!("fetch p{partition} offset={offset}"), answer)
        }
    };
    Explained {
        line: step.line,
        text: format!("{:>4}  {request:<38} {answer}", step.line),
        json: Value::Object(m),
    }
}

fn short_code(code: ErrorCode) -> &'static str {
    if code == ErrorCode::None {
        "NONE"
    } else {
        "ERROR"
    }
}

fn produce_json(m: &mut Map<String, Value>, partition: i32, o: &ProduceOutcome) {
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
    if let Some(seen) = o.seen {
        m.insert("expected_sequence".into(), json!(seen.expected_sequence.0));
        let window: Vec<Value> = seen
            .window
            .batches()
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
    fn corrupt_flag_gives_corrupt_message() {
        let out = explain("produce pid=1 epoch=0 seq=0 count=2 corrupt=true\n");
        assert_eq!(out[0].json["error"], "CORRUPT_MESSAGE");
    }
}
