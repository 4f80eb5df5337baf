//! The exactly-once checker: reads the final logs and the delivery reports, and counts every
//! anomaly by name.
//!
//! Every record the simulator sends carries its identity as its value: 8 bytes, the
//! producer's index and the record's index within that producer (both big-endian `u32`). The
//! checker reads every partition's log back, decodes every batch (CRC included), and checks
//! these invariants, named after Jepsen's Kafka checker where it has a name for them:
//!
//! | invariant | counted as | meaning |
//! |---|---|---|
//! | no duplicates | `duplicates` | a record is in the log more than once (extra copies counted) |
//! | no lost acknowledged records | `lost` | delivery was reported `Ok`, yet the record is absent |
//! | per-producer order | `out_of_order` | a record sits after a later record of the same producer on the same partition (Jepsen's `nonmonotonic-send`) |
//! | nothing written that was reported failed | `failed_but_written` | a record reported *definitely* not written is in the log |
//! | no sequence gaps | `sequence_gaps` | within one (producer id, epoch, partition) the log's batches do not follow each other in sequence |
//! | records where they were sent | `misplaced` | a record landed on another partition than it was sent to |
//!
//! Two more counts are kept apart from these protocol anomalies, because they measure limits
//! of the guarantee rather than bugs, so a reader sees which guarantee came from where:
//!
//! | count | meaning |
//! |---|---|
//! | `lost_unsynced` | an acknowledged record vanished in a broker crash because it had not been synced to disk (a durability limit: `--sync` decides it) |
//! | `duplicates_across_sessions` | a record written by two producer processes (two producer ids): idempotence holds within one producer session only |
//! | `after_expiry` | a duplicate, reordering or sequence gap in the log of a (producer id, partition) whose state the broker expired during the run (`producer.id.expiration.ms`): after that the broker accepts any sequence from it |
//!
//! Duplicates and order are judged within a producer session: records written by different
//! producer ids are not compared with each other for order.
//!
//! A record reported `PossiblyPersisted` may or may not be in the log: both are correct, and
//! the ack ledger counts which happened.
//!
//! The **ack ledger** classifies every batch by what happened to it, so a reader sees where
//! the guarantee came from: written and acked on the first try; written on a retry after the
//! request was lost; written once although an ack was lost, its retry recognised as a
//! duplicate; written more than once; failed and not written; failed but possibly persisted
//! (and whether it was); and never resolved.

use bytes::Bytes;
use idempo_broker::Broker;
use idempo_protocol::{BatchHeader, Sequence, visit_records};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

/// What happened to one batch on the wire and at the broker, gathered during the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchLedger {
    /// Times the producer put the batch on the wire.
    pub sends: u16,
    /// Requests carrying it that were lost before the broker.
    pub requests_lost: u16,
    /// Responses covering it that were lost after the broker answered.
    pub acks_lost: u16,
    /// Times the broker appended it.
    pub appends: u16,
    /// Times the broker recognised it as a duplicate.
    pub duplicates: u16,
    /// Times the broker rejected it (any error).
    pub rejections: u16,
    /// The delivery report the application received.
    pub delivery: Delivery,
    /// Virtual time the application first handed the batch to a producer.
    pub handed_at_ms: u64,
}

/// The delivery report of a batch, reduced to what the checker needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// No report yet.
    #[default]
    Pending,
    /// Acknowledged.
    Acked,
    /// Reported as definitely not written.
    FailedDefinite,
    /// Reported as failed, possibly written.
    FailedPossiblyPersisted,
}

/// The encoded identity of record `index` of producer `producer`.
pub fn record_value(producer: u32, index: u32) -> Bytes {
    record_values(producer, index, 1)
}

/// The identities of records `first..first + n` of `producer`, in one buffer (8 bytes each),
/// so that a batch's values cost one allocation.
pub fn record_values(producer: u32, first: u32, n: u32) -> Bytes {
    let mut buf = bytes::BytesMut::with_capacity(8 * n as usize);
    for index in first..first + n {
        buf.extend_from_slice(&producer.to_be_bytes());
        buf.extend_from_slice(&index.to_be_bytes());
    }
    buf.freeze()
}

/// Reads a record identity back, or `None` for a value the simulator did not write.
pub fn parse_record_value(value: &[u8]) -> Option<(u32, u32)> {
    let v: &[u8; 8] = value.try_into().ok()?;
    let (p, i) = v.split_at(4);
    Some((
        u32::from_be_bytes(p.try_into().ok()?),
        u32::from_be_bytes(i.try_into().ok()?),
    ))
}

/// Batches per ledger category (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AckLedger {
    /// Appended once and acknowledged at the first attempt.
    pub written_acked_first_try: u64,
    /// The first request was lost or refused; a retry appended it, and it was acknowledged.
    pub written_on_retry_acked: u64,
    /// Appended once; an ack was lost; the retry was recognised as a duplicate.
    pub written_ack_lost_retry_deduplicated: u64,
    /// Appended more than once.
    pub written_more_than_once: u64,
    /// Reported failed and not in the log.
    pub failed_not_written: u64,
    /// Reported possibly persisted, and it was.
    pub failed_possibly_persisted_written: u64,
    /// Reported definitely failed, yet in the log (an anomaly).
    pub failed_definite_but_written: u64,
    /// Acknowledged yet not in the log (an anomaly).
    pub acked_not_written: u64,
    /// No delivery report by the end of the run.
    pub unresolved: u64,
}

/// The checker's verdict and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Records in all logs.
    pub log_records: u64,
    /// Extra copies of records.
    pub duplicates: u64,
    /// Acknowledged records absent from the log.
    pub lost: u64,
    /// Records behind a later record of the same producer and partition.
    pub out_of_order: u64,
    /// Records reported definitely failed but present.
    pub failed_but_written: u64,
    /// Batches not following their predecessor's sequence within one producer id and epoch.
    pub sequence_gaps: u64,
    /// Records on a partition they were not sent to, or not written by the simulator.
    pub misplaced: u64,
    /// Acknowledged records lost by a broker crash before they were synced.
    pub lost_unsynced: u64,
    /// Extra copies written by a later producer process (another producer id).
    pub duplicates_across_sessions: u64,
    /// Duplicates, reorderings and gaps of a (producer id, partition) the broker expired.
    pub after_expiry: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records reported failed.
    pub records_failed: u64,
    /// Records with no report.
    pub records_unresolved: u64,
    /// The ack ledger.
    pub ledger: AckLedger,
}

impl CheckReport {
    /// True when no invariant is violated and no record was lost or written twice for any
    /// reason (protocol, durability or producer restarts).
    pub fn passed(&self) -> bool {
        self.anomalies() + self.guarantee_limits() == 0
    }

    /// Losses and duplicates the guarantee does not cover: unsynced data lost in a crash, and
    /// duplicates across producer sessions.
    pub fn guarantee_limits(&self) -> u64 {
        self.lost_unsynced + self.duplicates_across_sessions + self.after_expiry
    }

    /// Protocol anomalies: bugs of the exactly-once machinery.
    pub fn anomalies(&self) -> u64 {
        self.duplicates
            + self.lost
            + self.out_of_order
            + self.failed_but_written
            + self.sequence_gaps
            + self.misplaced
    }

    /// The named invariants with their violation counts, in a fixed order.
    pub fn invariants(&self) -> [(&'static str, u64); 6] {
        [
            ("no duplicates", self.duplicates),
            ("no lost acknowledged records", self.lost),
            ("per-producer order", self.out_of_order),
            (
                "nothing written that was reported failed",
                self.failed_but_written,
            ),
            ("no sequence gaps within an epoch", self.sequence_gaps),
            ("records where they were sent", self.misplaced),
        ]
    }
}

/// Geometry of the workload the checker needs.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Producers.
    pub producers: u32,
    /// Records per producer.
    pub records: u64,
    /// Records per batch.
    pub batch_records: u32,
}

/// Checks the broker's final logs against the ledger. `ledger[p][b]` is producer `p`'s batch
/// `b`; `partition_of(p, b)` is where it was sent.
///
/// `session_of(producer_id)` names the producer process a producer id belonged to (`None` for
/// batches without one); `crash_lost` holds the records a broker crash dropped before they
/// were synced; `expired` the (producer id, partition) pairs whose state the broker expired.
pub fn check(
    broker: &Broker,
    workload: Workload,
    ledger: &[Vec<BatchLedger>],
    partition_of: impl Fn(u32, u64) -> i32,
    session_of: impl Fn(i64) -> Option<u32>,
    crash_lost: &FxHashSet<(u32, u32)>,
    expired: &FxHashSet<(i64, i32)>,
) -> CheckReport {
    let log = broker.partition_ids().into_iter().flat_map(|partition| {
        broker
            .log(partition)
            .into_iter()
            .flat_map(|view| {
                view.batches()
                    .map(|b| (b.header, b.bytes))
                    .collect::<Vec<_>>()
            })
            .map(move |(header, bytes)| (partition, header, bytes))
    });
    check_log(
        log,
        workload,
        ledger,
        partition_of,
        session_of,
        crash_lost,
        expired,
    )
}

/// The same check over any log: `(partition, header, bytes)` for every batch, partition by
/// partition in offset order (for example read back over TCP with Fetch).
///
/// `session_of(producer_id)` names the producer process a producer id belonged to (`None` for
/// batches without one); `crash_lost` holds the records a broker crash dropped before they
/// were synced; `expired` the (producer id, partition) pairs whose state the broker expired.
pub fn check_log(
    log: impl IntoIterator<Item = (i32, BatchHeader, Bytes)>,
    workload: Workload,
    ledger: &[Vec<BatchLedger>],
    partition_of: impl Fn(u32, u64) -> i32,
    session_of: impl Fn(i64) -> Option<u32>,
    crash_lost: &FxHashSet<(u32, u32)>,
    expired: &FxHashSet<(i64, i32)>,
) -> CheckReport {
    let mut report = CheckReport::default();
    let per_batch = u64::from(workload.batch_records);
    let fresh = || -> Vec<Vec<u8>> {
        (0..workload.producers)
            .map(|_| vec![0u8; workload.records as usize])
            .collect()
    };
    let mut copies = fresh();
    let mut first_session = fresh();
    let mut highest: FxHashMap<(u32, i32, u8), u32> = FxHashMap::default();
    let mut last_seq: FxHashMap<(i64, i16, i32), Sequence> = FxHashMap::default();

    {
        for (partition, header, bytes) in log {
            let h = &header;
            let after_expiry = expired.contains(&(h.producer_id.0, partition));
            if h.producer_id.is_some() {
                let key = (h.producer_id.0, h.producer_epoch.0, partition);
                if last_seq
                    .get(&key)
                    .is_some_and(|prev| !h.base_sequence.follows(*prev))
                {
                    if after_expiry {
                        report.after_expiry += 1;
                    } else {
                        report.sequence_gaps += 1;
                    }
                }
                last_seq.insert(key, h.last_sequence());
            }
            let session = session_of(h.producer_id.0).unwrap_or(0).min(255) as u8;
            let walked = visit_records(&bytes, |record| {
                report.log_records += 1;
                let id = record.value.and_then(parse_record_value);
                let Some((p, i)) =
                    id.filter(|(p, i)| *p < workload.producers && u64::from(*i) < workload.records)
                else {
                    report.misplaced += 1;
                    return;
                };
                if partition_of(p, u64::from(i) / per_batch) != partition {
                    report.misplaced += 1;
                }
                let c = &mut copies[p as usize][i as usize];
                *c = c.saturating_add(1);
                if *c > 1 {
                    if after_expiry {
                        report.after_expiry += 1;
                    } else if first_session[p as usize][i as usize] == session {
                        report.duplicates += 1;
                    } else {
                        report.duplicates_across_sessions += 1;
                    }
                    return;
                }
                first_session[p as usize][i as usize] = session;
                let top = highest.entry((p, partition, session)).or_insert(i);
                if i < *top && after_expiry {
                    report.after_expiry += 1;
                } else if i < *top {
                    report.out_of_order += 1;
                } else {
                    *top = i;
                }
            });
            if walked.is_err() {
                report.misplaced += u64::from(h.records_count.max(0) as u32);
            }
        }
    }

    for (p, batches) in ledger.iter().enumerate() {
        for (b, entry) in batches.iter().enumerate() {
            let first = b as u64 * per_batch;
            let count = (workload.records - first).min(per_batch);
            let range = first as usize..(first + count) as usize;
            let written = &copies[p][range];
            let present = written.iter().filter(|c| **c > 0).count() as u64;
            let most = written.iter().copied().max().unwrap_or(0);
            let l = &mut report.ledger;
            match entry.delivery {
                Delivery::Acked => {
                    report.records_acked += count;
                    for (k, c) in written.iter().enumerate() {
                        if *c == 0 {
                            if crash_lost.contains(&(p as u32, (first as usize + k) as u32)) {
                                report.lost_unsynced += 1;
                            } else {
                                report.lost += 1;
                            }
                        }
                    }
                    if most > 1 {
                        l.written_more_than_once += 1;
                    } else if present == 0 {
                        l.acked_not_written += 1;
                    } else if entry.duplicates > 0 {
                        l.written_ack_lost_retry_deduplicated += 1;
                    } else if entry.sends <= 1 {
                        l.written_acked_first_try += 1;
                    } else {
                        l.written_on_retry_acked += 1;
                    }
                }
                Delivery::FailedDefinite | Delivery::FailedPossiblyPersisted => {
                    report.records_failed += count;
                    let definite = entry.delivery == Delivery::FailedDefinite;
                    if definite {
                        report.failed_but_written += present;
                    }
                    if most > 1 {
                        l.written_more_than_once += 1;
                    } else if present == 0 {
                        l.failed_not_written += 1;
                    } else if definite {
                        l.failed_definite_but_written += 1;
                    } else {
                        l.failed_possibly_persisted_written += 1;
                    }
                }
                Delivery::Pending => {
                    report.records_unresolved += count;
                    if most > 1 {
                        l.written_more_than_once += 1;
                    } else {
                        l.unresolved += 1;
                    }
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_broker::BrokerConfig;
    use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch};

    fn batch(pid: i64, seq: i32, producer: u32, first: u32, n: u32) -> Bytes {
        let records = (0..n)
            .map(|k| Record::with_value(k as i32, record_value(producer, first + k)))
            .collect();
        RecordBatch::idempotent(ProducerId(pid), ProducerEpoch(0), Sequence(seq), 0, records)
            .to_bytes()
    }

    fn workload() -> Workload {
        Workload {
            producers: 1,
            records: 4,
            batch_records: 2,
        }
    }

    fn acked() -> BatchLedger {
        BatchLedger {
            sends: 1,
            appends: 1,
            delivery: Delivery::Acked,
            ..BatchLedger::default()
        }
    }

    #[test]
    fn clean_log_passes() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.produce(0, &batch(1, 0, 0, 0, 2));
        broker.produce(0, &batch(1, 2, 0, 2, 2));
        let r = check(
            &broker,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &FxHashSet::default(),
            &FxHashSet::default(),
        );
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.ledger.written_acked_first_try, 2);
        assert_eq!(r.log_records, 4);
    }

    #[test]
    fn checker_is_not_blind_to_duplicates_loss_order_and_gaps() {
        let mut broker = Broker::new(BrokerConfig {
            idempotence: false,
            ..BrokerConfig::default()
        })
        .unwrap();
        broker.produce(0, &batch(1, 2, 0, 2, 2)); // batch 1 before batch 0: out of order
        broker.produce(0, &batch(1, 0, 0, 0, 2)); // sequence 0 after 3: a gap within the epoch
        broker.produce(0, &batch(1, 0, 0, 0, 2)); // written twice
        let r = check(
            &broker,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &FxHashSet::default(),
            &FxHashSet::default(),
        );
        assert_eq!(r.duplicates, 2);
        assert_eq!(r.out_of_order, 2);
        assert_eq!(r.sequence_gaps, 2);
        assert_eq!(r.ledger.written_more_than_once, 1);
        assert!(!r.passed());

        let empty = Broker::new(BrokerConfig::default()).unwrap();
        let r = check(
            &empty,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &FxHashSet::default(),
            &FxHashSet::default(),
        );
        assert_eq!(r.lost, 4);
        assert_eq!(r.ledger.acked_not_written, 2);
    }

    #[test]
    fn definite_failure_that_was_written_is_an_anomaly_but_possibly_persisted_is_not() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.produce(0, &batch(1, 0, 0, 0, 2));
        broker.produce(0, &batch(1, 2, 0, 2, 2));
        let definite = BatchLedger {
            delivery: Delivery::FailedDefinite,
            ..acked()
        };
        let maybe = BatchLedger {
            delivery: Delivery::FailedPossiblyPersisted,
            ..acked()
        };
        let r = check(
            &broker,
            workload(),
            &[vec![definite, maybe]],
            |_, _| 0,
            |_| Some(0),
            &FxHashSet::default(),
            &FxHashSet::default(),
        );
        assert_eq!(r.failed_but_written, 2);
        assert_eq!(r.ledger.failed_definite_but_written, 1);
        assert_eq!(r.ledger.failed_possibly_persisted_written, 1);
    }

    #[test]
    fn copies_from_another_producer_session_are_counted_apart() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.produce(0, &batch(1, 0, 0, 0, 2));
        broker.produce(0, &batch(1, 2, 0, 2, 2));
        broker.produce(0, &batch(2, 0, 0, 2, 2)); // a new process re-sent batch 1
        let session = |pid: i64| Some(if pid == 1 { 0 } else { 1 });
        let r = check(
            &broker,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            session,
            &FxHashSet::default(),
            &FxHashSet::default(),
        );
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.duplicates_across_sessions, 2);
        assert_eq!(r.anomalies(), 0);
        assert!(
            !r.passed(),
            "exactly-once did not hold, though no protocol rule broke"
        );
    }

    #[test]
    fn acknowledged_records_lost_unsynced_in_a_crash_are_counted_apart() {
        let empty = Broker::new(BrokerConfig::default()).unwrap();
        let lost: FxHashSet<(u32, u32)> = [(0, 0), (0, 1)].into_iter().collect();
        let r = check(
            &empty,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &lost,
            &FxHashSet::default(),
        );
        assert_eq!(r.lost_unsynced, 2);
        assert_eq!(r.lost, 2);
    }

    #[test]
    fn record_identity_round_trips() {
        assert_eq!(
            parse_record_value(&record_value(7, 123_456)),
            Some((7, 123_456))
        );
        assert_eq!(parse_record_value(b"short"), None);
    }
}
