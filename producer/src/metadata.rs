//! The producer's view of the cluster: which node leads each partition, at which leader
//! epoch, and when to ask again (Kafka's `Metadata`, `MetadataSnapshot` and the timing half
//! of `NetworkClient.DefaultMetadataUpdater`). Used only with
//! [`ProducerConfig::cluster_routing`](crate::ProducerConfig::cluster_routing).
//!
//! A Metadata answer replaces the whole view, partition by partition, with one exception
//! (KIP-320, `Metadata.updateLatestMetadata`): an answer that names an *older* leader epoch
//! than one already seen for a partition comes from a broker that has not heard of the
//! election yet, and that partition keeps what it had. A partition without a leader
//! (`LEADER_NOT_AVAILABLE`, or a leader that is not among the answer's live brokers) has no
//! node to go to: its batches wait, and the answer itself asks for another refresh.
//!
//! When to refresh (`Metadata.timeToNextUpdate`):
//!
//! ```text
//! refresh due when                                    and
//! an update was requested (NOT_LEADER_OR_FOLLOWER,    retry.backoff.ms has passed since the
//!   a failed request, a partition without a leader)   last attempt, answered or failed
//! or metadata.max.age.ms passed since the last
//!   successful refresh
//! ```
//!
//! and no Metadata request is already in flight. The first refresh is due at once.
//!
//! ## Differences from Kafka
//!
//! - The backoff between refreshes is the fixed `retry.backoff.ms`; Kafka 3.7+ backs off
//!   exponentially (`refreshBackoff`, and again for answers that change nothing,
//!   `equivalentResponseCount`).
//! - One topic, so partitions are numbers and there are no topic ids or topic errors.
//! - Brokers are node ids; a Metadata answer's `brokers` are the nodes the producer may talk
//!   to. There are no rack or listener names.
//! - No re-bootstrap (`metadata.recovery.strategy`): once an answer named the brokers, the
//!   bootstrap nodes are not asked again.

use idempo_protocol::{ErrorCode, MetadataResponse, NO_LEADER_EPOCH};
use std::collections::BTreeMap;

/// What the producer knows of one partition's leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLeader {
    /// The node that leads the partition, `None` while it has none (offline).
    pub leader: Option<i32>,
    /// Its leader epoch, [`NO_LEADER_EPOCH`] when the answer gave none.
    pub leader_epoch: i32,
}

/// A partition's leadership as a Metadata answer changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderChange {
    /// The partition.
    pub partition: i32,
    /// The leader now known (`None`: no leader).
    pub leader: Option<i32>,
    /// The leader epoch now known.
    pub leader_epoch: i32,
}

/// Errors that make Kafka's client ask for fresh metadata: their exception classes extend
/// `InvalidMetadataException` (`Sender.completeBatch`, `Metadata.handleMetadataResponse`).
/// `UNKNOWN_LEADER_EPOCH` is not one of them (the broker is behind the client, not the client
/// behind the broker), nor are `NOT_ENOUGH_REPLICAS` and `NOT_ENOUGH_REPLICAS_AFTER_APPEND`.
pub fn is_invalid_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::KafkaStorageError
            | ErrorCode::NetworkException
            | ErrorCode::UnknownTopicOrPartition
    )
}

/// The summary of applying one Metadata answer.
#[derive(Debug, Default)]
pub(crate) struct MetadataApplied {
    /// Partitions whose leader or epoch changed (or that appeared), in partition order.
    pub leader_changes: Vec<LeaderChange>,
    /// Partitions the answer gave an older leader epoch for: `(partition, answered, known)`.
    pub older_epochs_ignored: Vec<(i32, i32, i32)>,
    /// Partitions left without a leader.
    pub partitions_without_leader: usize,
}

/// Partition ids below this are also kept by index ([`Metadata::partition`]'s fast path).
const DENSE_PARTITIONS_MAX: usize = 1 << 16;

/// The cluster view and its refresh clock.
#[derive(Debug)]
pub(crate) struct Metadata {
    /// The live brokers of the last answer (or `bootstrap`), in id order.
    nodes: Vec<i32>,
    /// Leadership by partition, from the last answer.
    leaders: BTreeMap<i32, PartitionLeader>,
    /// `leaders` by index for partitions `0..DENSE_PARTITIONS_MAX`, the form the hot
    /// lookups read (partition ids are small and dense; any other id a broker names is
    /// looked up in `leaders`, so a peer cannot make this grow).
    leader_by_partition: Vec<Option<PartitionLeader>>,
    /// Partitions by leader, in partition order (Kafka's `partitionsForNode`), sorted by
    /// node id: a handful of nodes, scanned rather than searched.
    partitions_by_node: Vec<(i32, Vec<i32>)>,
    /// Kafka's `lastSeenLeaderEpochs`.
    last_seen_leader_epochs: BTreeMap<i32, i32>,
    /// Kafka's `needFullUpdate`: someone asked for a refresh.
    need_update: bool,
    /// Correlation id of the Metadata request in flight (Kafka's `inProgress`).
    pub in_progress: Option<i32>,
    /// Last attempt's end, answered or failed (`lastRefreshMs`); `None` before the first.
    last_refresh_ms: Option<u64>,
    /// Last answer (`lastSuccessfulRefreshMs`).
    last_successful_refresh_ms: u64,
    refresh_backoff_ms: u64,
    max_age_ms: u64,
}

impl Metadata {
    /// A view that knows only the bootstrap nodes and wants a refresh at once.
    pub fn new(bootstrap: Vec<i32>, refresh_backoff_ms: u64, max_age_ms: u64) -> Metadata {
        Metadata {
            nodes: bootstrap,
            leaders: BTreeMap::new(),
            leader_by_partition: Vec::new(),
            partitions_by_node: Vec::new(),
            last_seen_leader_epochs: BTreeMap::new(),
            need_update: true,
            in_progress: None,
            last_refresh_ms: None,
            last_successful_refresh_ms: 0,
            refresh_backoff_ms,
            max_age_ms,
        }
    }

    /// The nodes a request that may go anywhere can go to.
    pub fn nodes(&self) -> &[i32] {
        &self.nodes
    }

    /// How many nodes lead at least one partition.
    pub fn leader_node_count(&self) -> usize {
        self.partitions_by_node.len()
    }

    /// The first node at or after `node` that leads a partition, wrapping to the lowest.
    pub fn leader_node_at_or_after(&self, node: i32) -> Option<i32> {
        self.partitions_by_node
            .iter()
            .find(|(n, _)| *n >= node)
            .or_else(|| self.partitions_by_node.first())
            .map(|(n, _)| *n)
    }

    /// The partitions `node` leads, in partition order.
    pub fn partitions_for_node(&self, node: i32) -> &[i32] {
        self.partitions_by_node
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(&[], |(_, partitions)| partitions.as_slice())
    }

    /// What is known of a partition's leadership.
    pub fn partition(&self, partition: i32) -> Option<PartitionLeader> {
        match usize::try_from(partition) {
            Ok(i) if i < DENSE_PARTITIONS_MAX => self.leader_by_partition.get(i).copied().flatten(),
            _ => self.leaders.get(&partition).copied(),
        }
    }

    /// The partition's leader, if it has one.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partition(partition).and_then(|l| l.leader)
    }

    /// Kafka's `requestUpdate`. Returns true when no update was requested before.
    pub fn request_update(&mut self) -> bool {
        !std::mem::replace(&mut self.need_update, true)
    }

    /// True when an update was requested and not yet answered.
    pub fn update_requested(&self) -> bool {
        self.need_update
    }

    /// Kafka's `timeToNextUpdate`, ignoring a request in flight.
    pub fn time_to_next_update_ms(&self, now_ms: u64) -> u64 {
        let expire_ms = if self.need_update {
            0
        } else {
            self.last_successful_refresh_ms
                .saturating_add(self.max_age_ms)
                .saturating_sub(now_ms)
        };
        let allow_ms = self.last_refresh_ms.map_or(0, |t| {
            t.saturating_add(self.refresh_backoff_ms)
                .saturating_sub(now_ms)
        });
        expire_ms.max(allow_ms)
    }

    /// `DefaultMetadataUpdater.isUpdateDue`: no request in flight and the time has come.
    pub fn update_due(&self, now_ms: u64) -> bool {
        self.in_progress.is_none() && self.time_to_next_update_ms(now_ms) == 0
    }

    /// When the next refresh becomes due, if none is in flight.
    pub fn next_update_ms(&self, now_ms: u64) -> Option<u64> {
        match self.in_progress {
            Some(_) => None,
            None => Some(now_ms.saturating_add(self.time_to_next_update_ms(now_ms))),
        }
    }

    /// Kafka's `failedUpdate`: the request in flight failed; the next waits for the backoff.
    pub fn failed_update(&mut self, now_ms: u64) {
        self.last_refresh_ms = Some(now_ms);
        self.in_progress = None;
    }

    /// Kafka's `Metadata.update` with `handleMetadataResponse`. An answer that names no
    /// broker counts as a failed update, as in `handleSuccessfulResponse`.
    pub fn update(&mut self, response: &MetadataResponse, now_ms: u64) -> MetadataApplied {
        self.in_progress = None;
        if response.brokers.is_empty() {
            self.failed_update(now_ms);
            return MetadataApplied::default();
        }
        self.last_refresh_ms = Some(now_ms);
        self.last_successful_refresh_ms = now_ms;
        self.need_update = false;
        let mut nodes = response.brokers.clone();
        nodes.sort_unstable();
        nodes.dedup();
        let mut applied = MetadataApplied::default();
        let mut leaders = BTreeMap::new();
        for pm in &response.partitions {
            let seen = self.last_seen_leader_epochs.get(&pm.partition).copied();
            let older_than = if pm.leader_epoch == NO_LEADER_EPOCH {
                self.last_seen_leader_epochs.remove(&pm.partition);
                None
            } else if seen.is_none_or(|s| pm.leader_epoch >= s) {
                self.last_seen_leader_epochs
                    .insert(pm.partition, pm.leader_epoch);
                None
            } else {
                seen
            };
            let entry = match (older_than, self.leaders.get(&pm.partition)) {
                (Some(known), Some(&old)) => {
                    applied
                        .older_epochs_ignored
                        .push((pm.partition, pm.leader_epoch, known));
                    old
                }
                _ => {
                    let live = pm.leader_id >= 0 && nodes.binary_search(&pm.leader_id).is_ok();
                    PartitionLeader {
                        leader: (pm.error_code != ErrorCode::LeaderNotAvailable && live)
                            .then_some(pm.leader_id),
                        leader_epoch: pm.leader_epoch,
                    }
                }
            };
            if is_invalid_metadata(pm.error_code) || entry.leader.is_none() {
                self.need_update = true;
            }
            if entry.leader.is_none() {
                applied.partitions_without_leader += 1;
            }
            if self.leaders.get(&pm.partition) != Some(&entry) {
                applied.leader_changes.push(LeaderChange {
                    partition: pm.partition,
                    leader: entry.leader,
                    leader_epoch: entry.leader_epoch,
                });
            }
            leaders.insert(pm.partition, entry);
        }
        self.leaders = leaders;
        self.nodes = nodes;
        self.index_partitions_by_node();
        applied
    }

    fn index_partitions_by_node(&mut self) {
        let mut by_node: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        self.leader_by_partition.clear();
        for (&partition, entry) in &self.leaders {
            if let Some(node) = entry.leader {
                by_node.entry(node).or_default().push(partition);
            }
            if let Ok(i) = usize::try_from(partition)
                && i < DENSE_PARTITIONS_MAX
            {
                if self.leader_by_partition.len() <= i {
                    self.leader_by_partition.resize(i + 1, None);
                }
                self.leader_by_partition[i] = Some(*entry);
            }
        }
        self.partitions_by_node = by_node.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::PartitionMetadata;

    fn answer(partitions: &[(i32, i32, i32)]) -> MetadataResponse {
        MetadataResponse {
            brokers: vec![0, 1, 2],
            controller_id: 0,
            partitions: partitions
                .iter()
                .map(|&(partition, leader_id, leader_epoch)| {
                    PartitionMetadata::new(
                        partition,
                        leader_id,
                        leader_epoch,
                        vec![0, 1, 2],
                        vec![0, 1, 2],
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn first_refresh_is_due_at_once_and_the_next_after_the_max_age() {
        let mut m = Metadata::new(vec![0], 100, 300_000);
        assert!(m.update_due(0));
        m.in_progress = Some(1);
        assert!(!m.update_due(0), "one Metadata request at a time");
        m.update(&answer(&[(0, 1, 0)]), 10);
        assert!(!m.update_due(10));
        assert_eq!(m.next_update_ms(10), Some(300_010));
        assert_eq!(m.leader(0), Some(1));
        assert_eq!(m.partitions_for_node(1), &[0]);
    }

    #[test]
    fn a_requested_update_waits_for_the_backoff_after_the_last_attempt() {
        let mut m = Metadata::new(vec![0], 100, 300_000);
        m.update(&answer(&[(0, 1, 0)]), 10);
        assert!(m.request_update(), "first request");
        assert!(!m.request_update(), "already requested");
        assert!(!m.update_due(50));
        assert!(m.update_due(110));
        m.in_progress = Some(2);
        m.failed_update(120);
        assert!(!m.update_due(200), "a failed attempt backs off too");
        assert!(m.update_due(220));
    }

    #[test]
    fn an_older_leader_epoch_is_ignored_and_an_offline_partition_asks_again() {
        let mut m = Metadata::new(vec![0], 100, 300_000);
        m.update(&answer(&[(0, 1, 3), (1, 2, 0)]), 0);
        let applied = m.update(&answer(&[(0, 2, 2), (1, -1, 1)]), 200);
        assert_eq!(m.leader(0), Some(1), "epoch 2 is older than 3");
        assert_eq!(applied.older_epochs_ignored, vec![(0, 2, 3)]);
        assert_eq!(m.leader(1), None, "offline");
        assert_eq!(applied.partitions_without_leader, 1);
        assert!(
            m.update_requested(),
            "a partition without a leader asks again"
        );
        assert_eq!(m.leader_node_count(), 1);
        assert_eq!(m.leader_node_at_or_after(2), Some(1), "wraps to the lowest");
    }
}
