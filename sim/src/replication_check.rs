//! The checker's invariants for a replicated run (`--brokers 2` or more), over the cluster as
//! it stands at the end of the run ([`ClusterView`]).
//!
//! A one-broker run has one log per partition and [`crate::checker::check`] reads it. A
//! cluster has a log per replica, and Kafka's guarantee is about the *committed* part of the
//! log: what the leader holds below its high watermark (HW). So a replicated run is checked
//! on [`ClusterView::committed_log`] (each partition read from its final leader up to its
//! HW, as a consumer would), with every invariant of the one-broker checker, plus:
//!
//! | invariant | counted as | meaning |
//! |---|---|---|
//! | a record read below the high watermark is never lost | `read_then_lost` | a record a consumer read during the run (below the HW at that moment) is not at the same offset of the final log (Kafka's "committed means durable") |
//! | replicas agree below the high watermark | `replicas_diverged` | for an offset below the final HW, an in-sync replica holds another batch than the leader (Kafka's log-matching property, what KIP-101/279 truncation restores) |
//!
//! An acknowledged record missing from the final log is not always a bug: Kafka's guarantee
//! has named limits, and the run tells the checker which of them happened
//! ([`ReplicationFaults`]). A missing acknowledged record is counted, in this order, as
//!
//! | limit | counted as | when |
//! |---|---|---|
//! | lost when every replica lost power before a sync | `lost_power_loss` | a broker crash dropped the record from a replica's unsynced tail (`--sync never` is Kafka's default: durability comes from replication alone, and a correlated power loss, or a replica that lost its tail and was then elected, loses it) |
//! | lost by an unclean leader election | `lost_unclean_election` | its partition elected an out-of-sync replica (`--unclean-leader-election`) |
//! | acknowledged with acks=1, lost in a failover | `lost_acks_one_failover` | the run used `--acks 1` and its partition changed leader: the old leader had acknowledged what no follower had fetched |
//!
//! With `--acks 0` nothing is acknowledged (the producer counts a batch written once sent),
//! so a missing record no power loss or unclean election explains is counted as
//! `lost_acks_zero` ("sent with acks=0 (never acknowledged), lost", as in a one-broker run):
//! its request was lost, its broker was down, or a failover cut it. Otherwise a missing
//! record is `lost`, a protocol anomaly. Inside the region where Kafka promises
//! exactly-once (`acks=all`, `min.insync.replicas >= 2`, clean elections only, at most
//! R − min.insync brokers down at once, and no acknowledged record dropped unsynced by a
//! power loss), no limit applies: every loss is `lost` ([`ReplicationFaults::guaranteed`]).

use crate::checker::{self, BatchLedger, CheckReport, KnownFaults, Workload};
use bytes::Bytes;
use idempo_protocol::BatchHeader;
use rustc_hash::FxHashSet;
use serde::Serialize;

/// One replica's log at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct ReplicaLog {
    /// The broker holding it.
    pub broker: i32,
    /// In the partition's final ISR.
    pub in_sync: bool,
    /// Its batches in offset order: header and the batch's bytes. Kept for the replica the
    /// checker reads; another replica may give only `identities` (a quarter of the memory,
    /// all that the replica-agreement invariant compares).
    pub batches: Vec<(BatchHeader, Bytes)>,
    /// The identities ([`batch_identity`]) of its batches, in offset order, when `batches`
    /// was not kept.
    pub identities: Vec<BatchIdentity>,
}

impl ReplicaLog {
    /// The identity of each of its batches, in offset order, from whichever form it holds.
    pub fn batch_identities(&self) -> impl Iterator<Item = BatchIdentity> + '_ {
        let from_batches = self.batches.iter().map(|(h, _)| batch_identity(h));
        from_batches.chain(self.identities.iter().copied())
    }
}

/// One partition at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct PartitionView {
    /// The partition.
    pub partition: i32,
    /// The final leader (`None`: offline).
    pub leader: Option<i32>,
    /// The leader's high watermark (for an offline partition, that of its last ISR member).
    pub high_watermark: i64,
    /// Every replica, in assignment order.
    pub replicas: Vec<ReplicaLog>,
}

impl PartitionView {
    /// The replica the checker reads: the leader, or for an offline partition the first
    /// in-sync replica (the one the controller keeps listed as the last ISR member).
    pub fn read_replica(&self) -> Option<&ReplicaLog> {
        match self.leader {
            Some(leader) => self.replicas.iter().find(|r| r.broker == leader),
            None => self.replicas.iter().find(|r| r.in_sync),
        }
    }

    /// The committed batches: the read replica's, below the high watermark.
    pub fn committed(&self) -> impl Iterator<Item = &(BatchHeader, Bytes)> {
        let hw = self.high_watermark;
        self.read_replica()
            .into_iter()
            .flat_map(|r| r.batches.iter())
            .filter(move |(h, _)| h.last_offset() < hw)
    }
}

/// The cluster at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Every partition, in partition order.
    pub partitions: Vec<PartitionView>,
}

impl ClusterView {
    /// The final log as a consumer reads it: every partition from its leader up to the HW.
    pub fn committed_log(&self) -> impl Iterator<Item = (i32, BatchHeader, Bytes)> + '_ {
        self.partitions.iter().flat_map(|p| {
            p.committed()
                .map(move |(h, bytes)| (p.partition, *h, bytes.clone()))
        })
    }

    /// Batches below the final HW that an in-sync replica holds differently from the read
    /// replica (another batch, or none), counted once per replica and offset.
    pub fn replicas_diverged(&self) -> u64 {
        let mut diverged = 0;
        for p in &self.partitions {
            let Some(reader) = p.read_replica() else {
                continue;
            };
            let committed: Vec<_> = p.committed().map(|(h, _)| batch_identity(h)).collect();
            for replica in p.replicas.iter().filter(|r| r.in_sync) {
                if replica.broker == reader.broker {
                    continue;
                }
                let held: FxHashSet<_> = replica.batch_identities().collect();
                diverged += committed.iter().filter(|b| !held.contains(b)).count() as u64;
            }
        }
        diverged
    }
}

/// What makes two copies of a batch the same batch: (base offset, last offset delta, leader
/// epoch, CRC of its contents).
pub type BatchIdentity = (i64, i32, i32, u32);

/// What makes two copies of a batch the same batch: where it sits, its leader epoch and the
/// CRC of its contents.
pub fn batch_identity(h: &BatchHeader) -> BatchIdentity {
    (
        h.base_offset,
        h.last_offset_delta,
        h.partition_leader_epoch,
        h.crc,
    )
}

/// What a replicated run knew besides the logs: which limits of the guarantee it met.
#[derive(Clone, Debug, Default)]
pub struct ReplicationFaults {
    /// The producer ran with `acks` 1 or 0.
    pub acks_below_all: bool,
    /// The producer ran with `acks=0`: it counts a batch written once sent, so any loss of
    /// it is explained (as `lost_acks_zero` unless a power loss or an unclean election
    /// explains it: not even the leader's word was asked for).
    pub acks_zero: bool,
    /// Partitions whose leader changed during the run (a failover).
    pub failed_over: FxHashSet<i32>,
    /// Partitions that had an unclean leader election.
    pub unclean: FxHashSet<i32>,
    /// Partitions of which a power loss dropped unsynced batches from some replica.
    pub power_lost: FxHashSet<i32>,
    /// The run stayed inside the region where Kafka promises no loss (see the module docs):
    /// no limit explains a loss there.
    pub guaranteed: bool,
}

/// Why an acknowledged record is missing, when a limit of the guarantee explains it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossLimit {
    /// A power loss dropped it unsynced.
    PowerLoss,
    /// An unclean election lost it.
    UncleanElection,
    /// `acks=1`, then a failover.
    AcksOneFailover,
}

impl ReplicationFaults {
    /// The limit that explains a missing record `id` of `partition`, if one does.
    pub fn explain_loss(
        &self,
        partition: i32,
        id: (u32, u32),
        crash_lost: &FxHashSet<(u32, u32)>,
    ) -> Option<LossLimit> {
        if self.guaranteed {
            None
        } else if crash_lost.contains(&id) {
            Some(LossLimit::PowerLoss)
        } else if self.unclean.contains(&partition) {
            Some(LossLimit::UncleanElection)
        } else if self.acks_below_all && !self.acks_zero && self.failed_over.contains(&partition) {
            Some(LossLimit::AcksOneFailover)
        } else {
            None
        }
    }
}

/// The replicated run's own counts, apart from the one-broker checker's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicationCheck {
    /// Acknowledged records lost because a power loss dropped them before a sync.
    pub lost_power_loss: u64,
    /// Acknowledged records lost by an unclean leader election.
    pub lost_unclean_election: u64,
    /// Records acknowledged with `acks=1` and lost in a failover.
    pub lost_acks_one_failover: u64,
    /// Records read below the HW during the run and not in the final log where they were
    /// read, with no limit to explain it (an anomaly).
    pub read_then_lost: u64,
    /// The same, explained by an unclean election or a power loss on their partition.
    pub read_then_lost_explained: u64,
    /// Batches below the final HW an in-sync replica does not hold as the leader does.
    pub replicas_diverged: u64,
    /// The run was inside the guaranteed region.
    pub guaranteed: bool,
}

impl ReplicationCheck {
    /// Acknowledged records lost to a named limit (the `--json` `lost_in_failover`).
    pub fn lost_in_failover(&self) -> u64 {
        self.lost_power_loss + self.lost_unclean_election + self.lost_acks_one_failover
    }
}

/// What a consumer read during the run, batch by batch: each batch as it was when it was
/// below the high watermark. A batch is compared by its identity (offset, leader epoch, CRC),
/// so no record is decoded.
#[derive(Clone, Debug, Default)]
pub struct Reads {
    /// Per partition, the batches read, in offset order.
    batches: Vec<Vec<ReadBatch>>,
}

/// One batch a consumer read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReadBatch {
    identity: (i64, i32, i32, u32),
    records: u32,
}

impl Reads {
    /// Notes a batch read from `partition` below the HW.
    pub fn read_batch(&mut self, partition: i32, header: &BatchHeader) {
        let index = usize::try_from(partition).unwrap_or(0);
        if self.batches.len() <= index {
            self.batches.resize_with(index + 1, Vec::new);
        }
        self.batches[index].push(ReadBatch {
            identity: batch_identity(header),
            records: header.records_count.max(0) as u32,
        });
    }

    /// Batches read so far.
    pub fn len(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }

    /// True when nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records read and not in the final log as they were read: (unexplained, explained by
    /// an unclean election or a power loss on their partition).
    pub fn lost_from(&self, view: &ClusterView, faults: &ReplicationFaults) -> (u64, u64) {
        let (mut unexplained, mut explained) = (0, 0);
        for (index, read) in self.batches.iter().enumerate() {
            let partition = index as i32;
            let final_log: FxHashSet<(i64, i32, i32, u32)> = view
                .partitions
                .iter()
                .filter(|p| p.partition == partition)
                .flat_map(|p| p.committed().map(|(h, _)| batch_identity(h)))
                .collect();
            let lost: u64 = read
                .iter()
                .filter(|b| !final_log.contains(&b.identity))
                .map(|b| u64::from(b.records))
                .sum();
            let limit = !faults.guaranteed
                && (faults.unclean.contains(&partition) || faults.power_lost.contains(&partition));
            if limit {
                explained += lost;
            } else {
                unexplained += lost;
            }
        }
        (unexplained, explained)
    }
}

/// Checks a replicated run: the one-broker invariants over the committed log, each missing
/// acknowledged record explained by a limit or counted lost, and the replication invariants.
pub fn check_cluster(
    view: &ClusterView,
    workload: Workload,
    ledger: &[Vec<BatchLedger>],
    partition_of: impl Fn(u32, u64) -> i32,
    session_of: impl Fn(i64) -> Option<u32>,
    known: &KnownFaults,
    reads: &Reads,
) -> CheckReport {
    let mut report = checker::check_log(
        view.committed_log(),
        workload,
        ledger,
        partition_of,
        session_of,
        known,
    );
    let faults = known.replication.clone().unwrap_or_default();
    let (read_then_lost, read_then_lost_explained) = reads.lost_from(view, &faults);
    let replication = report.replication.get_or_insert_with(Default::default);
    replication.read_then_lost = read_then_lost;
    replication.read_then_lost_explained = read_then_lost_explained;
    replication.replicas_diverged = view.replicas_diverged();
    replication.guaranteed = faults.guaranteed;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{Delivery, record_value};
    use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

    /// A batch of producer 0's records `first..first + n` at `offset`, written in
    /// `leader_epoch`.
    fn batch(offset: i64, leader_epoch: i32, first: u32, n: u32) -> (BatchHeader, Bytes) {
        let records = (0..n)
            .map(|k| Record::with_value(k as i32, record_value(0, first + k)))
            .collect();
        let mut bytes = RecordBatch::idempotent(
            ProducerId(1),
            ProducerEpoch(0),
            Sequence(first as i32),
            0,
            records,
        )
        .to_bytes()
        .to_vec();
        bytes[..8].copy_from_slice(&offset.to_be_bytes());
        bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        let bytes = Bytes::from(bytes);
        let header = BatchHeader::parse(&bytes).expect("a batch header");
        (header, bytes)
    }

    fn replica(broker: i32, in_sync: bool, batches: Vec<(BatchHeader, Bytes)>) -> ReplicaLog {
        ReplicaLog {
            broker,
            in_sync,
            batches,
            identities: Vec::new(),
        }
    }

    /// Partition 0 of three replicas; the leader 0 holds `leader`, the followers `followers`.
    fn view(
        hw: i64,
        leader: Vec<(BatchHeader, Bytes)>,
        followers: Vec<(BatchHeader, Bytes)>,
    ) -> ClusterView {
        ClusterView {
            partitions: vec![PartitionView {
                partition: 0,
                leader: Some(0),
                high_watermark: hw,
                replicas: vec![
                    replica(0, true, leader),
                    replica(1, true, followers.clone()),
                    replica(2, true, followers),
                ],
            }],
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

    fn check(view: &ClusterView, known: &KnownFaults, reads: &Reads) -> CheckReport {
        check_cluster(
            view,
            Workload::new(1, 4, 2),
            &[vec![acked(), acked()]],
            |_, _| 0,
            |_| Some(0),
            known,
            reads,
        )
    }

    fn replicated(faults: ReplicationFaults) -> KnownFaults {
        KnownFaults {
            replication: Some(faults),
            ..KnownFaults::default()
        }
    }

    #[test]
    fn a_fully_replicated_log_passes_every_replicated_invariant() {
        let log = vec![batch(0, 0, 0, 2), batch(2, 0, 2, 2)];
        let v = view(4, log.clone(), log);
        let r = check(
            &v,
            &replicated(ReplicationFaults::default()),
            &Reads::default(),
        );
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.replication.as_ref().map(|c| c.replicas_diverged), Some(0));
    }

    #[test]
    fn the_checker_reads_only_below_the_high_watermark() {
        let log = vec![batch(0, 0, 0, 2), batch(2, 0, 2, 2)];
        let v = view(2, log.clone(), log[..1].to_vec());
        let r = check(
            &v,
            &replicated(ReplicationFaults::default()),
            &Reads::default(),
        );
        assert_eq!(r.log_records, 2, "the batch at offset 2 is above the HW");
        assert_eq!(r.lost, 2, "acknowledged above the HW is lost: {r:?}");
    }

    #[test]
    fn an_in_sync_replica_holding_another_batch_below_the_hw_diverges() {
        let leader = vec![batch(0, 0, 0, 2), batch(2, 1, 2, 2)];
        let follower = vec![batch(0, 0, 0, 2), batch(2, 0, 2, 2)];
        let v = view(4, leader, follower);
        assert_eq!(
            v.replicas_diverged(),
            2,
            "both followers differ at offset 2"
        );
        let r = check(
            &v,
            &replicated(ReplicationFaults::default()),
            &Reads::default(),
        );
        assert!(r.anomalies() > 0, "divergence is a protocol anomaly: {r:?}");
    }

    #[test]
    fn a_replica_given_only_batch_identities_is_compared_by_them() {
        let leader = vec![batch(0, 0, 0, 2), batch(2, 1, 2, 2)];
        let same: Vec<_> = leader.iter().map(|(h, _)| batch_identity(h)).collect();
        let other = batch_identity(&batch(2, 0, 2, 2).0);
        let mut v = view(4, leader, Vec::new());
        v.partitions[0].replicas[1].identities = same.clone();
        v.partitions[0].replicas[2].identities = vec![same[0], other];
        assert_eq!(
            v.replicas_diverged(),
            1,
            "only broker 2 differs, at offset 2"
        );
    }

    #[test]
    fn an_out_of_sync_replica_may_lag_without_diverging() {
        let log = vec![batch(0, 0, 0, 2), batch(2, 0, 2, 2)];
        let mut v = view(4, log.clone(), log);
        v.partitions[0].replicas[2] = replica(2, false, Vec::new());
        assert_eq!(v.replicas_diverged(), 0);
    }

    #[test]
    fn a_record_read_below_the_hw_and_then_truncated_is_an_anomaly() {
        let old = vec![batch(0, 0, 0, 2), batch(2, 0, 2, 2)];
        let mut reads = Reads::default();
        for (h, _) in &old {
            reads.read_batch(0, h);
        }
        assert_eq!(reads.len(), 2);
        let now = vec![batch(0, 0, 0, 2)];
        let v = view(2, now.clone(), now);
        let r = check(&v, &replicated(ReplicationFaults::default()), &reads);
        let c = r.replication.clone().expect("a replicated report");
        assert_eq!((c.read_then_lost, c.read_then_lost_explained), (2, 0));
        let unclean = replicated(ReplicationFaults {
            unclean: [0].into_iter().collect(),
            ..ReplicationFaults::default()
        });
        let c = check(&v, &unclean, &reads).replication.expect("replicated");
        assert_eq!(
            (c.read_then_lost, c.read_then_lost_explained),
            (0, 2),
            "an unclean election explains it"
        );
    }

    /// Each limit explains a loss only on its own condition, and none applies inside the
    /// guaranteed region.
    #[test]
    fn each_limit_explains_a_loss_only_in_its_own_bucket() {
        let v = view(2, vec![batch(0, 0, 0, 2)], vec![batch(0, 0, 0, 2)]);
        let lost = |faults: ReplicationFaults, crash_lost: &[(u32, u32)]| {
            let known = KnownFaults {
                crash_lost: crash_lost.iter().copied().collect(),
                replication: Some(faults),
                ..KnownFaults::default()
            };
            let r = check(&v, &known, &Reads::default());
            let c = r.replication.clone().expect("replicated");
            (
                r.lost,
                c.lost_acks_one_failover,
                c.lost_unclean_election,
                c.lost_power_loss,
            )
        };
        let failover: FxHashSet<i32> = [0].into_iter().collect();
        assert_eq!(
            lost(ReplicationFaults::default(), &[]),
            (2, 0, 0, 0),
            "no limit: lost"
        );
        assert_eq!(
            lost(
                ReplicationFaults {
                    failed_over: failover.clone(),
                    ..ReplicationFaults::default()
                },
                &[]
            ),
            (2, 0, 0, 0),
            "acks=all through a failover loses nothing: a loss is a bug"
        );
        assert_eq!(
            lost(
                ReplicationFaults {
                    acks_below_all: true,
                    failed_over: failover.clone(),
                    ..ReplicationFaults::default()
                },
                &[]
            ),
            (0, 2, 0, 0)
        );
        assert_eq!(
            lost(
                ReplicationFaults {
                    unclean: failover.clone(),
                    ..ReplicationFaults::default()
                },
                &[]
            ),
            (0, 0, 2, 0)
        );
        assert_eq!(
            lost(ReplicationFaults::default(), &[(0, 2), (0, 3)]),
            (0, 0, 0, 2)
        );
        assert_eq!(
            lost(
                ReplicationFaults {
                    acks_below_all: true,
                    failed_over: failover.clone(),
                    unclean: failover,
                    guaranteed: true,
                    ..ReplicationFaults::default()
                },
                &[(0, 2)]
            ),
            (2, 0, 0, 0),
            "inside the guaranteed region every loss is an anomaly"
        );
    }

    #[test]
    fn an_offline_partition_is_read_from_its_last_in_sync_replica() {
        let log = vec![batch(0, 0, 0, 2)];
        let mut v = view(2, log.clone(), log);
        v.partitions[0].leader = None;
        v.partitions[0].replicas[0].in_sync = false;
        assert_eq!(v.partitions[0].read_replica().map(|r| r.broker), Some(1));
        assert_eq!(v.committed_log().count(), 1);
    }
}
