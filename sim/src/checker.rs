//! The exactly-once checker: reads the final logs and the delivery reports, and counts every
//! anomaly by name. It is the one checker of idempo: `idempo-sim run` calls [`check`] on the
//! simulated broker; `idempo-sim run --bootstrap` and `idempo-producer --verify` read a real
//! broker's topic back with Fetch and call [`check_log`]; all three print the same lists
//! ([`CheckReport::invariants`], [`CheckReport::limits`], [`AckLedger::categories`]) through
//! [`report::check_sections`](crate::report::check_sections).
//!
//! Every record a checked workload sends carries its identity at the start of its value:
//! 8 bytes, the producer's identity and the record's index within that producer (both
//! big-endian `u32`), perhaps followed by padding. The checker reads every partition's log
//! back, decodes every batch (CRC included), and checks these invariants, named after
//! Jepsen's Kafka checker where it has a name for them:
//!
//! | invariant | counted as | meaning |
//! |---|---|---|
//! | no duplicates | `duplicates` | a record is in the log more than once (extra copies counted) |
//! | no lost acknowledged records | `lost` | delivery was reported `Ok`, yet the record is absent (a record that DeleteRecords or retention deleted on purpose is not absent: the deleted batches are read as the head of their partition's log, see [`KnownFaults::deleted`]) |
//! | per-producer order | `out_of_order` | a record sits after a later record of the same producer on the same partition (Jepsen's `nonmonotonic-send`) |
//! | nothing written that was reported failed | `failed_but_written` | a record reported *definitely* not written is in the log |
//! | no sequence gaps within an epoch | `sequence_gaps` | within one (producer id, epoch, partition) the log's batches do not follow each other in sequence |
//! | records where they were sent | `misplaced` | a record landed on another partition than it was sent to, or is not the workload's |
//! | acknowledged offsets match the log | `wrong_offsets` | a batch written once does not start at the base offset its acknowledgement reported |
//! | a producer's epoch never goes backwards | `epochs_backwards` | the broker refused a batch as `INVALID_PRODUCER_EPOCH` while its producer, under the same producer id, was at a lower epoch than the broker's (an epoch bump that wrapped at 32 767, KAFKA-5283); listed only when it happened, the run counts it from the broker's answers |
//! | no fatal producer error | `fatal_errors` | a producer entered its fatal state and failed everything after (librdkafka's "sequence desynchronization"); listed only when it happened, the run counts it from the producers |
//! | a new epoch starts at sequence 0 | `epochs_not_from_zero` | a producer sent batches to a partition under a (producer id, epoch) and none of them at sequence 0, so the broker refused them all (KAFKA-12152's stale sequence after a bump); listed only when it happened, the simulator counts it from the requests its producers sent |
//!
//! Some counts are kept apart from these protocol anomalies, because they measure limits of
//! the guarantee rather than bugs, so a reader sees which guarantee came from where. The run
//! tells the checker which faults happened ([`KnownFaults`]):
//!
//! | count | meaning |
//! |---|---|
//! | `lost_unsynced` | an acknowledged record vanished in a broker crash because it had not been synced to disk (a durability limit: `--sync` decides it) |
//! | `lost_acks_zero` | with `--acks 0`, a record the producer counted written once sent is absent (its request was lost, or its broker was down): nothing was acknowledged, so nothing was promised; the line is printed for `acks=0` runs only |
//! | `duplicates_across_sessions` | a record written by two producer processes (two producer ids): idempotence holds within one producer session only |
//! | `after_expiry` | a duplicate, reordering or sequence gap in the log of a (producer id, partition) whose state the broker expired during the run (`producer.id.expiration.ms`): after that the broker accepts any sequence from it |
//! | `duplicates_after_window_shrink` | a record written twice by one producer session on a (producer id, partition) whose dedup window a broker restart shrank: Kafka's producer-state snapshots keep only the last batch (`--snapshot-mode last-batch`), so the retry of an older batch is refused as `OUT_OF_ORDER_SEQUENCE_NUMBER`, the producer bumps its epoch and writes it again |
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
//! (and whether it was); and never resolved. Over TCP the broker's verdicts are not seen, so
//! an acknowledged retry counts as "written by a retry".

use crate::replication_check::{LossLimit, ReplicationCheck, ReplicationFaults};
use bytes::Bytes;
use idempo_broker::Broker;
use idempo_protocol::{BatchHeader, RecordRef, Sequence, visit_records};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

/// What happened to one batch on the wire and at the broker, gathered during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The base offset the acknowledgement reported, or -1 when it said none (`acks=0`, or no
    /// acknowledgement yet).
    pub acked_offset: i64,
}

impl Default for BatchLedger {
    fn default() -> BatchLedger {
        BatchLedger {
            sends: 0,
            requests_lost: 0,
            acks_lost: 0,
            appends: 0,
            duplicates: 0,
            rejections: 0,
            delivery: Delivery::Pending,
            handed_at_ms: 0,
            acked_offset: -1,
        }
    }
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

/// Reads a record identity back from the first 8 bytes of a value (anything after them is
/// padding, as `idempo-producer --record-size` writes), or `None` for a shorter value.
pub fn parse_record_value(value: &[u8]) -> Option<(u32, u32)> {
    let v: &[u8; 8] = value.first_chunk()?;
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

impl AckLedger {
    /// The categories with their batch counts, in the order they are printed.
    pub fn categories(&self) -> [(&'static str, u64); 9] {
        [
            (
                "written and acked at the first attempt",
                self.written_acked_first_try,
            ),
            (
                "request lost or refused, written by a retry, acked",
                self.written_on_retry_acked,
            ),
            (
                "written, ack lost, retry deduplicated, acked",
                self.written_ack_lost_retry_deduplicated,
            ),
            ("written more than once", self.written_more_than_once),
            ("failed, not written", self.failed_not_written),
            (
                "failed as possibly persisted, and written",
                self.failed_possibly_persisted_written,
            ),
            (
                "failed as definitely not written, yet written",
                self.failed_definite_but_written,
            ),
            ("acked, yet not written", self.acked_not_written),
            ("no delivery report", self.unresolved),
        ]
    }
}

/// The checker's verdict and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Records in all logs that belong to the workload (or, for a log of its own, all).
    pub log_records: u64,
    /// Records of other writers in a shared log ([`Workload::shared_log`]), left alone.
    pub other_records: u64,
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
    /// Records on a partition they were not sent to, or not written by the workload.
    pub misplaced: u64,
    /// Acknowledged batches, written once, whose first record is not at the acknowledged
    /// base offset.
    pub wrong_offsets: u64,
    /// Acknowledged records lost by a broker crash before they were synced.
    pub lost_unsynced: u64,
    /// With `acks=0`, records counted written once sent and absent from the log (their
    /// request lost, their broker down): no acknowledgement was asked for.
    pub lost_acks_zero: u64,
    /// The run used `acks=0` (the `lost_acks_zero` limit is listed).
    pub acks_zero: bool,
    /// Extra copies written by a later producer process (another producer id).
    pub duplicates_across_sessions: u64,
    /// Duplicates, reorderings and gaps of a (producer id, partition) the broker expired.
    pub after_expiry: u64,
    /// Extra copies in a (producer id, partition) whose dedup window a broker restart shrank
    /// (`--snapshot-mode last-batch`, Kafka's snapshots): the retry of an older batch is then
    /// refused as out of order, the producer bumps its epoch and writes it again.
    pub duplicates_after_window_shrink: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records reported failed.
    pub records_failed: u64,
    /// Records with no report.
    pub records_unresolved: u64,
    /// Producers that entered their fatal state (librdkafka's "sequence desynchronization",
    /// for example): the run reports it, [`CheckReport::invariants`] lists it when non-zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub fatal_errors: u64,
    /// Batches refused `INVALID_PRODUCER_EPOCH` while their producer (same producer id) was at
    /// a lower epoch than the broker's: the run reports it, [`CheckReport::invariants`] lists
    /// it when non-zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub epochs_backwards: u64,
    /// (Producer id, epoch, partition) triples a producer sent batches under, none of them at
    /// sequence 0: the broker refuses them all, since a new epoch starts at sequence 0 (Kafka
    /// 2.5 to 2.7's bump left idle partitions on their old sequence, KAFKA-12152). The run
    /// counts it from what its producers sent; [`CheckReport::invariants`] lists it when
    /// non-zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub epochs_not_from_zero: u64,
    /// The ack ledger.
    pub ledger: AckLedger,
    /// A replicated run's own counts (`None` for a one-broker run, whose output has none):
    /// see [`crate::replication_check`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationCheck>,
    /// The broker's producer state against the memory budget the run gave it
    /// (`--producer-state-budget`; `None` without one, and the invariant is not listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_state: Option<ProducerStateBudget>,
}

/// The most producer ids one broker held against the most it may hold (KIP-854: clients
/// that create a producer per message grow a broker's producer state until memory runs out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProducerStateBudget {
    /// The most producer ids with state a broker may hold (`--producer-state-budget`).
    pub budget: u64,
    /// The most it held at any moment of the run.
    pub peak: u64,
}

impl ProducerStateBudget {
    /// Producer ids held beyond the budget at the peak (0 when within it).
    pub fn over(&self) -> u64 {
        self.peak.saturating_sub(self.budget)
    }
}

impl CheckReport {
    /// True when no invariant is violated and no record was lost or written twice for any
    /// reason (protocol, durability, producer restarts or snapshot contents).
    pub fn passed(&self) -> bool {
        self.anomalies() + self.guarantee_limits() == 0
    }

    /// Losses and duplicates the guarantee does not cover (see [`CheckReport::limits`]).
    pub fn guarantee_limits(&self) -> u64 {
        self.limits().iter().map(|(_, n)| n).sum()
    }

    /// Protocol anomalies: bugs of the exactly-once machinery (see
    /// [`CheckReport::invariants`]).
    pub fn anomalies(&self) -> u64 {
        self.invariants().iter().map(|(_, n)| n).sum()
    }

    /// The named invariants with their violation counts, in a fixed order. Every checked run
    /// (`idempo-sim run`, `run --bootstrap`, `idempo-producer --verify`) prints this list; a
    /// replicated run adds its two (see [`crate::replication_check`]).
    pub fn invariants(&self) -> Vec<(&'static str, u64)> {
        let mut list = vec![
            ("no duplicates", self.duplicates),
            ("no lost acknowledged records", self.lost),
            ("per-producer order", self.out_of_order),
            (
                "nothing written that was reported failed",
                self.failed_but_written,
            ),
            ("no sequence gaps within an epoch", self.sequence_gaps),
            ("records where they were sent", self.misplaced),
            ("acknowledged offsets match the log", self.wrong_offsets),
        ];
        if self.fatal_errors > 0 {
            list.push(("no fatal producer error", self.fatal_errors));
        }
        if self.epochs_backwards > 0 {
            list.push((
                "a producer's epoch never goes backwards",
                self.epochs_backwards,
            ));
        }
        if self.epochs_not_from_zero > 0 {
            list.push((
                "a new epoch starts at sequence 0",
                self.epochs_not_from_zero,
            ));
        }
        if let Some(r) = &self.replication {
            list.push((
                "a record read below the high watermark is never lost",
                r.read_then_lost,
            ));
            list.push((
                "replicas agree below the high watermark",
                r.replicas_diverged,
            ));
        }
        if let Some(state) = &self.producer_state {
            list.push(("producer state within its memory budget", state.over()));
        }
        list
    }

    /// The limits of the guarantee with their counts, in a fixed order: losses and copies
    /// that are not protocol bugs but what Kafka's guarantee does not promise. A replicated
    /// run names its losses by the limit that explains them instead of the one-broker
    /// "lost in a crash before sync".
    pub fn limits(&self) -> Vec<(&'static str, u64)> {
        let mut list = match &self.replication {
            None => vec![(
                "acknowledged, lost in a crash before sync",
                self.lost_unsynced,
            )],
            Some(r) => vec![
                (
                    "acknowledged with acks=1, lost in a failover",
                    r.lost_acks_one_failover,
                ),
                (
                    "lost by an unclean leader election",
                    r.lost_unclean_election,
                ),
                (
                    "lost when every replica lost power before a sync",
                    r.lost_power_loss,
                ),
                (
                    "read below the high watermark, lost by such a limit",
                    r.read_then_lost_explained,
                ),
            ],
        };
        if self.acks_zero {
            list.push((
                "sent with acks=0 (never acknowledged), lost",
                self.lost_acks_zero,
            ));
        }
        list.extend([
            (
                "written again by a new producer session",
                self.duplicates_across_sessions,
            ),
            (
                "written again or out of order after producer-id expiry",
                self.after_expiry,
            ),
            (
                "written again after a restart shrank the dedup window",
                self.duplicates_after_window_shrink,
            ),
        ]);
        list
    }
}

/// For `skip_serializing_if`: a count of zero is left out of the JSON.
fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// The identity (first 4 bytes of a value) that producer 0 writes: 0 in the simulator,
    /// `--producer-index` for `idempo-producer`. Producer `p` writes `first_producer + p`.
    pub first_producer: u32,
    /// The log may hold records of other writers (a topic other runs wrote to): records with
    /// another producer identity are counted as [`CheckReport::other_records`] and their
    /// batches are not judged. Otherwise such records are misplaced.
    pub shared_log: bool,
}

impl Workload {
    /// A workload whose producers are identities `0..producers` and own the whole log.
    pub fn new(producers: u32, records: u64, batch_records: u32) -> Workload {
        Workload {
            producers,
            records,
            batch_records,
            first_producer: 0,
            shared_log: false,
        }
    }

    /// Producer `p` and record index `i` of an identity, if the identity is this workload's.
    fn own(&self, (producer, index): (u32, u32)) -> Option<(u32, u32)> {
        let p = producer.checked_sub(self.first_producer)?;
        (p < self.producers).then_some((p, index))
    }
}

/// What the run knew besides the log: the faults that explain a missing record or an extra
/// copy, so that they are counted as limits of the guarantee and not as protocol anomalies.
#[derive(Clone, Debug, Default)]
pub struct KnownFaults {
    /// Records (producer, index) a broker crash dropped before they were synced.
    pub crash_lost: FxHashSet<(u32, u32)>,
    /// (producer id, partition) pairs whose state the broker expired.
    pub expired: FxHashSet<(i64, i32)>,
    /// (producer id, partition) pairs whose dedup window a broker restart shrank (see
    /// [`DedupWindows`]).
    pub window_shrunk: FxHashSet<(i64, i32)>,
    /// In a replicated run, the limits of the guarantee it met (`None` with one broker).
    pub replication: Option<ReplicationFaults>,
    /// The producer ran with `acks=0`: it counts a batch written once sent, so a missing
    /// record is a limit (`lost_acks_zero`), not an anomaly.
    pub acks_zero: bool,
    /// Batches that DeleteRecords (or retention) removed from a log start during the run, in
    /// the order they were deleted, with their partition. [`check`] reads them before the
    /// retained log, as the head of their partition's log: records deleted on purpose are
    /// not lost, and a record written again after its first copy was deleted is still a
    /// duplicate (a consumer that read the first copy reads it twice).
    pub deleted: Vec<(i32, BatchHeader, Bytes)>,
}

/// The size of every producer's dedup window on every partition of a broker, taken before a
/// restart so that the windows it shrank (Kafka's snapshots keep one batch) can be named.
#[derive(Clone, Debug, Default)]
pub struct DedupWindows(FxHashMap<(i64, i32), usize>);

impl DedupWindows {
    /// The windows of `broker` now.
    pub fn of(broker: &Broker) -> DedupWindows {
        let mut windows = FxHashMap::default();
        for partition in broker.partition_ids() {
            let Some(state) = broker.producer_state(partition) else {
                continue;
            };
            for (producer_id, entry) in state.entries() {
                windows.insert((producer_id.0, partition), entry.batches().len());
            }
        }
        DedupWindows(windows)
    }

    /// The (producer id, partition) pairs whose window is smaller in `after` than here.
    pub fn shrunk_in<'s>(
        &'s self,
        after: &'s DedupWindows,
    ) -> impl Iterator<Item = (i64, i32)> + 's {
        self.0
            .iter()
            .filter(|(key, before)| after.0.get(key).copied().unwrap_or(0) < **before)
            .map(|(key, _)| *key)
    }
}

/// Checks the broker's final logs against the ledger. `ledger[p][b]` is producer `p`'s batch
/// `b`; `partition_of(p, b)` is where it was sent; `session_of(producer_id)` names the
/// producer process a producer id belonged to (`None` for batches without one). The batches
/// DeleteRecords removed during the run ([`KnownFaults::deleted`]) are read first, as the
/// head of their partitions' logs.
pub fn check(
    broker: &Broker,
    workload: Workload,
    ledger: &[Vec<BatchLedger>],
    partition_of: impl Fn(u32, u64) -> i32,
    session_of: impl Fn(i64) -> Option<u32>,
    known: &KnownFaults,
) -> CheckReport {
    let deleted = known
        .deleted
        .iter()
        .map(|(partition, header, bytes)| (*partition, *header, bytes.clone()));
    let retained = broker.partition_ids().into_iter().flat_map(|partition| {
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
        deleted.chain(retained),
        workload,
        ledger,
        partition_of,
        session_of,
        known,
    )
}

/// The same check over any log: `(partition, header, bytes)` for every batch, partition by
/// partition in offset order (for example read back over TCP with Fetch, by
/// `run --bootstrap` and `idempo-producer --verify`).
pub fn check_log(
    log: impl IntoIterator<Item = (i32, BatchHeader, Bytes)>,
    workload: Workload,
    ledger: &[Vec<BatchLedger>],
    partition_of: impl Fn(u32, u64) -> i32,
    session_of: impl Fn(i64) -> Option<u32>,
    known: &KnownFaults,
) -> CheckReport {
    let mut reading = Reading::new(workload, &partition_of, known);
    for (partition, header, bytes) in log {
        let session = session_of(header.producer_id.0).unwrap_or(0).min(255) as u8;
        reading.batch(partition, &header, &bytes, session);
    }
    reading.settle(ledger)
}

/// The state of one pass over the log.
struct Reading<'a, P> {
    workload: Workload,
    partition_of: &'a P,
    known: &'a KnownFaults,
    report: CheckReport,
    /// Copies of each record in the log, saturating: `copies[p][i]`.
    copies: Vec<Vec<u8>>,
    /// The producer session that wrote each record's first copy.
    first_session: Vec<Vec<u8>>,
    /// Offset of the first copy of each batch's first record, -1 for none: `[p][b]`.
    first_offset: Vec<Vec<i64>>,
    /// Highest record index seen per (producer, partition, session).
    highest: FxHashMap<(u32, i32, u8), u32>,
    /// Last sequence per (producer id, epoch, partition).
    last_seq: FxHashMap<(i64, i16, i32), Sequence>,
}

/// Where one record of the log falls.
#[derive(Clone, Copy)]
struct Place {
    partition: i32,
    session: u8,
    after_expiry: bool,
    window_shrunk: bool,
}

impl<'a, P: Fn(u32, u64) -> i32> Reading<'a, P> {
    fn new(workload: Workload, partition_of: &'a P, known: &'a KnownFaults) -> Self {
        let per_producer =
            |n: usize, v| -> Vec<_> { (0..workload.producers).map(|_| vec![v; n]).collect() };
        let records = workload.records as usize;
        let batches = workload.records.div_ceil(u64::from(workload.batch_records)) as usize;
        Reading {
            workload,
            partition_of,
            known,
            report: CheckReport {
                replication: known
                    .replication
                    .as_ref()
                    .map(|_| ReplicationCheck::default()),
                acks_zero: known.acks_zero,
                ..CheckReport::default()
            },
            copies: per_producer(records, 0u8),
            first_session: per_producer(records, 0u8),
            first_offset: (0..workload.producers)
                .map(|_| vec![-1i64; batches])
                .collect(),
            highest: FxHashMap::default(),
            last_seq: FxHashMap::default(),
        }
    }

    /// Reads one batch: its records, then its sequence against its predecessor's.
    fn batch(&mut self, partition: i32, h: &BatchHeader, bytes: &Bytes, session: u8) {
        let key = (h.producer_id.0, partition);
        let place = Place {
            partition,
            session,
            after_expiry: self.known.expired.contains(&key),
            window_shrunk: self.known.window_shrunk.contains(&key),
        };
        let mut ours = false;
        let walked = visit_records(bytes, |record| {
            ours |= self.record(place, h.base_offset, record);
        });
        if walked.is_err() {
            self.report.misplaced += u64::from(h.records_count.max(0) as u32);
        }
        if (ours || !self.workload.shared_log) && h.producer_id.is_some() {
            let key = (h.producer_id.0, h.producer_epoch.0, partition);
            if self
                .last_seq
                .get(&key)
                .is_some_and(|prev| !h.base_sequence.follows(*prev))
            {
                if place.after_expiry {
                    self.report.after_expiry += 1;
                } else {
                    self.report.sequence_gaps += 1;
                }
            }
            self.last_seq.insert(key, h.last_sequence());
        }
    }

    /// Counts one record; true when it belongs to the workload.
    fn record(&mut self, at: Place, base_offset: i64, record: RecordRef<'_>) -> bool {
        let w = self.workload;
        let id = record.value.and_then(parse_record_value);
        let own = id.and_then(|id| w.own(id));
        if w.shared_log && own.is_none() {
            self.report.other_records += 1;
            return false;
        }
        self.report.log_records += 1;
        let Some((p, i)) = own.filter(|(_, i)| u64::from(*i) < w.records) else {
            self.report.misplaced += 1;
            return true;
        };
        let per_batch = u64::from(w.batch_records);
        let b = u64::from(i) / per_batch;
        if (self.partition_of)(p, b) != at.partition {
            self.report.misplaced += 1;
        }
        let (pu, iu) = (p as usize, i as usize);
        let c = &mut self.copies[pu][iu];
        *c = c.saturating_add(1);
        if *c > 1 {
            let r = &mut self.report;
            if at.after_expiry {
                r.after_expiry += 1;
            } else if self.first_session[pu][iu] != at.session {
                r.duplicates_across_sessions += 1;
            } else if at.window_shrunk {
                r.duplicates_after_window_shrink += 1;
            } else {
                r.duplicates += 1;
            }
            return true;
        }
        self.first_session[pu][iu] = at.session;
        if u64::from(i) % per_batch == 0 {
            self.first_offset[pu][b as usize] = base_offset + i64::from(record.offset_delta);
        }
        let top = self
            .highest
            .entry((p, at.partition, at.session))
            .or_insert(i);
        if i < *top && at.after_expiry {
            self.report.after_expiry += 1;
        } else if i < *top {
            self.report.out_of_order += 1;
        } else {
            *top = i;
        }
        true
    }

    /// Judges every batch of the ledger by what the log holds of it.
    fn settle(mut self, ledger: &[Vec<BatchLedger>]) -> CheckReport {
        let per_batch = u64::from(self.workload.batch_records);
        for (p, batches) in ledger.iter().enumerate() {
            for (b, entry) in batches.iter().enumerate() {
                let first = b as u64 * per_batch;
                let count = (self.workload.records - first).min(per_batch);
                let range = first as usize..(first + count) as usize;
                let copies = &self.copies[p][range];
                let fate = Fate {
                    count,
                    present: copies.iter().filter(|c| **c > 0).count() as u64,
                    most: copies.iter().copied().max().unwrap_or(0),
                    first_offset: self.first_offset[p][b],
                };
                match entry.delivery {
                    Delivery::Acked => {
                        let partition = (self.partition_of)(p as u32, b as u64);
                        for (k, c) in copies.iter().enumerate() {
                            let id = (p as u32, (first as usize + k) as u32);
                            if *c == 0 {
                                count_loss(&mut self.report, self.known, partition, id);
                            }
                        }
                        settle_acked(&mut self.report, entry, fate);
                    }
                    _ => settle_unacked(&mut self.report, entry, fate),
                }
            }
        }
        self.report
    }
}

/// Counts one acknowledged record missing from the log: under the limit that explains it, or
/// as lost.
fn count_loss(report: &mut CheckReport, known: &KnownFaults, partition: i32, id: (u32, u32)) {
    let Some(faults) = &known.replication else {
        if known.crash_lost.contains(&id) {
            report.lost_unsynced += 1;
        } else if known.acks_zero {
            report.lost_acks_zero += 1;
        } else {
            report.lost += 1;
        }
        return;
    };
    let counts = report
        .replication
        .get_or_insert_with(ReplicationCheck::default);
    match faults.explain_loss(partition, id, &known.crash_lost) {
        Some(LossLimit::PowerLoss) => counts.lost_power_loss += 1,
        Some(LossLimit::UncleanElection) => counts.lost_unclean_election += 1,
        Some(LossLimit::AcksOneFailover) => counts.lost_acks_one_failover += 1,
        None if known.acks_zero => report.lost_acks_zero += 1,
        None => report.lost += 1,
    }
}

/// What the log holds of one batch.
#[derive(Clone, Copy)]
struct Fate {
    count: u64,
    /// Records of the batch with at least one copy.
    present: u64,
    /// Copies of the batch's most copied record.
    most: u8,
    /// Offset of the first copy of the batch's first record, -1 for none.
    first_offset: i64,
}

/// An acknowledged batch: its ledger category, and whether it sits where the ack said.
fn settle_acked(report: &mut CheckReport, entry: &BatchLedger, fate: Fate) {
    report.records_acked += fate.count;
    let written_once = fate.most == 1;
    if written_once
        && entry.acked_offset >= 0
        && fate.first_offset >= 0
        && fate.first_offset != entry.acked_offset
    {
        report.wrong_offsets += 1;
    }
    let l = &mut report.ledger;
    if fate.most > 1 {
        l.written_more_than_once += 1;
    } else if fate.present == 0 {
        l.acked_not_written += 1;
    } else if entry.duplicates > 0 {
        l.written_ack_lost_retry_deduplicated += 1;
    } else if entry.sends <= 1 {
        l.written_acked_first_try += 1;
    } else {
        l.written_on_retry_acked += 1;
    }
}

/// A batch reported failed, or not reported at all.
fn settle_unacked(report: &mut CheckReport, entry: &BatchLedger, fate: Fate) {
    let l = &mut report.ledger;
    if entry.delivery == Delivery::Pending {
        report.records_unresolved += fate.count;
        if fate.most > 1 {
            l.written_more_than_once += 1;
        } else {
            l.unresolved += 1;
        }
        return;
    }
    report.records_failed += fate.count;
    let definite = entry.delivery == Delivery::FailedDefinite;
    if definite {
        report.failed_but_written += fate.present;
    }
    if fate.most > 1 {
        l.written_more_than_once += 1;
    } else if fate.present == 0 {
        l.failed_not_written += 1;
    } else if definite {
        l.failed_definite_but_written += 1;
    } else {
        l.failed_possibly_persisted_written += 1;
    }
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
        Workload::new(1, 4, 2)
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
            &KnownFaults::default(),
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
            &KnownFaults::default(),
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
            &KnownFaults::default(),
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
            &KnownFaults::default(),
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
            &KnownFaults::default(),
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
        let known = KnownFaults {
            crash_lost: [(0, 0), (0, 1)].into_iter().collect(),
            ..KnownFaults::default()
        };
        let r = check(
            &empty,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &known,
        );
        assert_eq!(r.lost_unsynced, 2);
        assert_eq!(r.lost, 2);
    }

    #[test]
    fn copies_in_a_window_a_restart_shrank_are_a_limit_of_the_guarantee_not_an_anomaly() {
        let mut broker = Broker::new(BrokerConfig::default()).unwrap();
        broker.produce(0, &batch(1, 0, 0, 0, 2));
        broker.produce(0, &batch(1, 2, 0, 2, 2));
        broker.produce(0, &batch(1, 4, 0, 0, 2)); // batch 0 again, after an epoch bump
        let known = KnownFaults {
            window_shrunk: [(1, 0)].into_iter().collect(),
            ..KnownFaults::default()
        };
        let r = check(
            &broker,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &known,
        );
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.duplicates_after_window_shrink, 2);
        assert_eq!(r.anomalies(), 0);
        assert!(!r.passed(), "a record was written twice all the same");
        let unexplained = check(
            &broker,
            workload(),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            &KnownFaults::default(),
        );
        assert_eq!(unexplained.duplicates, 2, "without the restart it is a bug");
    }

    /// Kafka's snapshots keep one batch per producer (`--snapshot-mode last-batch`): after a
    /// restart the retry of an older batch is refused as out of order, the producer bumps its
    /// epoch and writes it again. The run reports those copies under their own line.
    #[test]
    fn kafkas_last_batch_snapshots_write_retries_twice_and_the_run_says_so_apart() {
        let config = crate::SimConfig {
            records: 500,
            ack_loss: 0.3,
            broker_restarts: 3,
            snapshot_mode: idempo_broker::SnapshotMode::LastBatchOnly,
            ..crate::SimConfig::default()
        };
        let kafka = crate::run(&config).expect("the run runs").check;
        assert_eq!(kafka.anomalies(), 0, "{kafka:?}");
        assert!(kafka.duplicates_after_window_shrink > 0, "{kafka:?}");
        let full = crate::run(&crate::SimConfig {
            snapshot_mode: idempo_broker::SnapshotMode::FullWindow,
            ..config.clone()
        })
        .expect("the run runs")
        .check;
        assert!(full.passed(), "idempo's full-window snapshots: {full:?}");
        let text = crate::report::check_sections(&kafka);
        assert!(
            text.contains("written again after a restart shrank the dedup window"),
            "{text}"
        );
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
