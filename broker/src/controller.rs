//! The controller: which broker leads each partition, who is in sync, and what happens when a
//! broker dies.
//!
//! In Kafka a quorum of controllers (KRaft, KIP-500) owns the cluster's metadata. Brokers
//! register with it and send it heartbeats; a broker silent for `broker.session.timeout.ms`
//! (9 000 by default) is *fenced*: it is removed from every in-sync replica set and the
//! partitions it led get a new leader. Leaders ask it to shrink or expand their ISR with
//! AlterPartition (KIP-497). Every change is a `PartitionChangeRecord` in the metadata log that
//! the brokers replay; here it is a [`LeaderAndIsr`] value handed back to the caller, who
//! delivers it to the brokers with `Broker::apply_leader_and_isr`.
//!
//! This module is that controller as one synchronous state machine. It is told the time
//! ([`Controller::tick`], [`Controller::heartbeat`]) and is assumed always available: Kafka's
//! KRaft quorum is itself replicated with Raft, so that a controller failure only moves
//! leadership between controllers without losing a decision. Modelling that quorum would add
//! nothing to the question this project asks (does the *data* survive a broker failure?), so
//! the controller never crashes, never loses a decision and never partitions away.
//!
//! ## The rules, as Kafka has them
//! Each rule is in `metadata/src/main/java/org/apache/kafka/controller/`:
//!
//! - **Fencing** (`BrokerHeartbeatManager.findOneStaleBroker`, `ReplicationControlManager.
//!   handleBrokerFenced`): a broker whose last heartbeat is older than the session timeout is
//!   fenced. It is removed from the ISR of every partition, *except* where it is the last
//!   member: an ISR is never emptied (`PartitionChangeBuilder.build` does not write an empty
//!   ISR without KIP-966's eligible leader replicas), so the last member stays listed and the
//!   partition has no leader. Only that replica can then be elected cleanly.
//! - **Election** (`PartitionChangeBuilder.electAnyLeader`): the current leader stays when it
//!   is still live and in the ISR; otherwise the first replica *in assignment order* that is
//!   live and in the ISR leads (a clean election). If there is none and
//!   `unclean.leader.election.enable` is set, the first live replica leads and the ISR is
//!   forced to just that replica: an *unclean* election, which can lose acknowledged records.
//!   If there is still none, the partition is offline (leader [`NO_LEADER`]).
//! - **Unfencing** (`handleBrokerUnfenced`): a broker that registers again (after a restart)
//!   or heartbeats while fenced is unfenced, and every leaderless partition is given another
//!   election, so an offline partition comes back when its last ISR member returns. The
//!   returning broker does *not* rejoin other ISRs here: its leader adds it back with an
//!   AlterPartition once it has caught up.
//! - **AlterPartition** (`ReplicationControlManager.validateAlterPartitionData`), checked in
//!   Kafka's order: the partition exists; the request is not ahead of the controller
//!   (`NOT_CONTROLLER`); its leader epoch is current (`FENCED_LEADER_EPOCH`); it comes from
//!   the leader (`INVALID_REQUEST`); its partition epoch is current
//!   (`INVALID_UPDATE_VERSION`); the new ISR holds only assigned replicas, without duplicates
//!   (`INVALID_REQUEST`), and the leader (`INVALID_REQUEST`); and no fenced broker
//!   (`INELIGIBLE_REPLICA`).
//! - **Epochs** (`PartitionRegistration.merge`): every change bumps the partition epoch; a
//!   change of leader (including to no leader) bumps the leader epoch too. An ISR change
//!   alone keeps the leader epoch (since metadata version 3.6, KAFKA-15021).
//! - **Producer ids** (`ProducerIdControlManager.generateNextProducerId`, KIP-730): brokers
//!   ask the controller for blocks of 1 000 ids, so no two brokers hand out the same id.
//! - **Elections on request** (ElectLeaders, KIP-460; `ReplicationControlManager.electLeader`):
//!   a *preferred* election gives the leadership back to the first replica if it is a live
//!   ISR member; an *unclean* one brings an offline partition back from any live replica,
//!   whatever `unclean.leader.election.enable` says ([`Controller::elect_leader`]).
//!
//! A worked example, three brokers, partition 0 assigned `[0, 1, 2]`, clean election only:
//!
//! ```text
//! event                      | leader | leader epoch | ISR       | partition epoch | decision
//! created                    | 0      | 0            | [0, 1, 2] | 0               |
//! broker 0's session expires | 1      | 1            | [1, 2]    | 1               | Elected, clean
//! broker 2's session expires | 1      | 1            | [1]       | 2               | IsrChanged
//! broker 1's session expires | -1     | 2            | [1]       | 3               | Offline
//! broker 0 registers again   | -1     | 2            | [1]       | 3               | (0 is not in the ISR)
//! broker 1 registers again   | 1      | 3            | [1]       | 4               | Elected, clean
//! ```
//!
//! With `unclean.leader.election.enable` the fifth line would instead elect broker 0, with ISR
//! `[0]`, counted as an unclean election: whatever broker 1 had and broker 0 did not is lost.
//!
//! ## Replica placement
//! Partition `p` of `N` brokers gets its replicas from Kafka's classic rack-unaware assignment
//! (`AdminUtils.assignReplicasToBrokersRackUnaware`, used by ZooKeeper-era Kafka and still by
//! the admin tools) with a fixed start index of 0 and brokers `0..N`: the first replica is
//! broker `p % N`, the others follow it with a shift that grows by one every `N` partitions, so
//! that the partitions led by one broker have their followers spread over all the others. See
//! [`assign_replicas`] for the table. KRaft's own placer (`StripedReplicaPlacer`) reduces,
//! without racks and with every broker unfenced, to the same round robin of leaders but draws
//! its starting offsets at random; the classic assignment was chosen because with a fixed
//! start index it is a pure, documented function of (brokers, partitions, replication factor),
//! so that a simulation replays from its seed and a reader can predict every replica list.
//!
//! ## Differences from Kafka
//! - One controller, always available, with no metadata log: decisions are returned as values
//!   and take effect at once; brokers learn them when the caller delivers them.
//! - No eligible leader replicas (KIP-966), no controlled shutdown, no reassignment, no
//!   automatic preferred-leader rebalancing (`auto.leader.rebalance.enable`): leadership moves
//!   on failure or on request ([`Controller::elect_leader`]), and stays where it moved. Nor
//!   the periodic retry of unclean elections (`maybeElectUncleanLeaders`): nothing changes
//!   between a fencing and the next unfencing that it could act on.
//! - A broker that registers again while its old session is still valid has that old
//!   incarnation fenced first, then is unfenced in the same step. Kafka refuses the new
//!   registration (`DUPLICATE_BROKER_REGISTRATION`) until the old session expires, then fences
//!   it; the outcome is the same, without the wait.
//! - The ISR is kept in assignment order (Kafka keeps the order the leader sent).
//! - Producer id blocks start at 1, as a standalone broker's ids do (Kafka's first block
//!   starts at 0), so that a one-broker run hands out the same ids either way.

use crate::broker::{BrokerConfig, PRODUCER_ID_BLOCK_SIZE};
use crate::cluster::{AlterPartition, BrokerId, LeaderAndIsr, NO_LEADER};
use idempo_protocol::{MetadataResponse, PartitionMetadata};
use std::fmt;

/// Kafka's default `broker.session.timeout.ms` (KRaft): a broker silent this long is fenced.
pub const DEFAULT_BROKER_SESSION_TIMEOUT_MS: i64 = 9_000;

/// Kafka's default `broker.heartbeat.interval.ms` (KRaft): how often a live broker sends
/// [`Controller::heartbeat`]. A broker setting, named here because it is the controller
/// that listens.
pub const DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS: i64 = 2_000;

/// The controller's settings: the cluster's shape and its election policy. The defaults are
/// a one-broker cluster with Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Number of brokers, with ids `0..brokers`.
    pub brokers: i32,
    /// Number of partitions of the one topic, numbered `0..partitions`.
    pub partitions: i32,
    /// Replicas per partition (`replication.factor`), at most `brokers`.
    pub replication_factor: usize,
    /// `unclean.leader.election.enable` (default false): when no ISR member is live, elect
    /// any live replica rather than leave the partition offline, at the risk of losing
    /// acknowledged records.
    pub unclean_leader_election: bool,
    /// `broker.session.timeout.ms`: a broker whose last heartbeat is older than this is
    /// fenced.
    pub broker_session_timeout_ms: i64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            brokers: 1,
            partitions: 1,
            replication_factor: 1,
            unclean_leader_election: false,
            broker_session_timeout_ms: DEFAULT_BROKER_SESSION_TIMEOUT_MS,
        }
    }
}

impl ControllerConfig {
    /// Checks the settings, as Kafka's `AdminUtils.assignReplicasToBrokers` checks a topic's
    /// (`INVALID_PARTITIONS`, `INVALID_REPLICATION_FACTOR`).
    ///
    /// # Examples
    /// ```
    /// use idempo_broker::{ControllerConfig, ControllerConfigError};
    ///
    /// let config = ControllerConfig { brokers: 2, replication_factor: 3, ..ControllerConfig::default() };
    /// assert_eq!(
    ///     config.validate(),
    ///     Err(ControllerConfigError::ReplicationFactorTooLarge { replication_factor: 3, brokers: 2 })
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ControllerConfigError> {
        if self.brokers <= 0 {
            return Err(ControllerConfigError::NoBrokers {
                brokers: self.brokers,
            });
        }
        if self.partitions <= 0 {
            return Err(ControllerConfigError::NoPartitions {
                partitions: self.partitions,
            });
        }
        if self.replication_factor == 0 {
            return Err(ControllerConfigError::ReplicationFactorZero);
        }
        if self.replication_factor > self.brokers as usize {
            return Err(ControllerConfigError::ReplicationFactorTooLarge {
                replication_factor: self.replication_factor,
                brokers: self.brokers,
            });
        }
        if self.broker_session_timeout_ms <= 0 {
            return Err(ControllerConfigError::SessionTimeoutNotPositive {
                broker_session_timeout_ms: self.broker_session_timeout_ms,
            });
        }
        Ok(())
    }
}

/// Why a [`ControllerConfig`] cannot describe a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerConfigError {
    /// A cluster needs at least one broker.
    NoBrokers {
        /// The number given.
        brokers: i32,
    },
    /// A topic needs at least one partition (Kafka: `INVALID_PARTITIONS`).
    NoPartitions {
        /// The number given.
        partitions: i32,
    },
    /// A partition needs at least one replica (Kafka: `INVALID_REPLICATION_FACTOR`).
    ReplicationFactorZero,
    /// Two replicas of a partition may not share a broker, so the replication factor is at
    /// most the number of brokers (Kafka: `INVALID_REPLICATION_FACTOR`).
    ReplicationFactorTooLarge {
        /// The replication factor given.
        replication_factor: usize,
        /// The number of brokers.
        brokers: i32,
    },
    /// The session timeout must be positive, or every broker would be fenced at once.
    SessionTimeoutNotPositive {
        /// The value given.
        broker_session_timeout_ms: i64,
    },
}

impl fmt::Display for ControllerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControllerConfigError::NoBrokers { brokers } => {
                write!(f, "a cluster needs at least one broker, got {brokers}")
            }
            ControllerConfigError::NoPartitions { partitions } => {
                write!(f, "a topic needs at least one partition, got {partitions}")
            }
            ControllerConfigError::ReplicationFactorZero => {
                write!(f, "replication factor must be larger than 0")
            }
            ControllerConfigError::ReplicationFactorTooLarge {
                replication_factor,
                brokers,
            } => write!(
                f,
                "replication factor {replication_factor} larger than available brokers {brokers}"
            ),
            ControllerConfigError::SessionTimeoutNotPositive {
                broker_session_timeout_ms,
            } => write!(
                f,
                "broker.session.timeout.ms must be positive, got {broker_session_timeout_ms}"
            ),
        }
    }
}

impl std::error::Error for ControllerConfigError {}

/// The replicas of every partition, preferred leader first: Kafka's rack-unaware assignment
/// (`AdminUtils.assignReplicasToBrokersRackUnaware`) over brokers `0..brokers` with a fixed
/// start index of 0.
///
/// The first replica of partition `p` is broker `p % brokers`; replica `j >= 1` is broker
/// `(first + 1 + (shift + j - 1) % (brokers - 1)) % brokers`, where `shift` starts at 0 and
/// grows by one every `brokers` partitions. Five brokers, replication factor 3:
///
/// ```text
/// partition | replicas      partition | replicas
/// 0         | [0, 1, 2]     5         | [0, 2, 3]
/// 1         | [1, 2, 3]     6         | [1, 3, 4]
/// 2         | [2, 3, 4]     7         | [2, 4, 0]
/// 3         | [3, 4, 0]     8         | [3, 0, 1]
/// 4         | [4, 0, 1]     9         | [4, 1, 2]
/// ```
///
/// # Panics
/// If the arguments fail [`ControllerConfig::validate`]'s checks (a caller's bug: validate
/// first).
///
/// # Examples
/// ```
/// use idempo_broker::assign_replicas;
///
/// assert_eq!(assign_replicas(3, 3, 2), vec![vec![0, 1], vec![1, 2], vec![2, 0]]);
/// ```
pub fn assign_replicas(
    brokers: i32,
    partitions: i32,
    replication_factor: usize,
) -> Vec<Vec<BrokerId>> {
    assert!(
        brokers > 0 && partitions > 0 && replication_factor > 0,
        "assign_replicas needs brokers, partitions and a replication factor (got {brokers}, {partitions}, {replication_factor})"
    );
    assert!(
        replication_factor <= brokers as usize,
        "replication factor {replication_factor} exceeds the {brokers} brokers"
    );
    let mut shift: i32 = 0;
    (0..partitions)
        .map(|partition| {
            if partition > 0 && partition % brokers == 0 {
                shift += 1;
            }
            let first = partition % brokers;
            let mut replicas = Vec::with_capacity(replication_factor);
            replicas.push(first);
            for j in 0..(replication_factor as i32 - 1) {
                // Kafka's `AdminUtils.replicaIndex`: never `first` itself, since the step is
                // 1..brokers-1.
                let step = 1 + (shift + j) % (brokers - 1);
                replicas.push((first + step) % brokers);
            }
            replicas
        })
        .collect()
}

/// One thing the controller decided, in the order it decided them. A partition change
/// carries the new [`LeaderAndIsr`] to deliver to the partition's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerDecision {
    /// The broker's session expired (or its old incarnation was replaced): it leads nothing
    /// and is in no ISR where it had company.
    BrokerFenced {
        /// The broker.
        broker: BrokerId,
    },
    /// The broker is live again and may be elected.
    BrokerUnfenced {
        /// The broker.
        broker: BrokerId,
    },
    /// The partition has a new leader.
    Elected {
        /// The partition.
        partition: i32,
        /// The new leader.
        leader: BrokerId,
        /// Its leader epoch.
        leader_epoch: i32,
        /// From the ISR (`true`), or unclean: from outside it, at the risk of losing
        /// acknowledged records (`false`).
        clean: bool,
        /// The new state to deliver.
        state: LeaderAndIsr,
    },
    /// The partition lost its leader and no replica may lead it: it is offline until its
    /// last ISR member returns (or, with unclean election, any replica).
    Offline {
        /// The partition.
        partition: i32,
        /// The new state to deliver (leader [`NO_LEADER`]).
        state: LeaderAndIsr,
    },
    /// The partition's ISR changed and its leader stayed.
    IsrChanged {
        /// The partition.
        partition: i32,
        /// The new ISR.
        isr: Vec<BrokerId>,
        /// The new state to deliver.
        state: LeaderAndIsr,
    },
}

impl ControllerDecision {
    /// The new partition state to deliver to the brokers, if this decision changed one.
    pub fn state(&self) -> Option<&LeaderAndIsr> {
        match self {
            ControllerDecision::Elected { state, .. }
            | ControllerDecision::Offline { state, .. }
            | ControllerDecision::IsrChanged { state, .. } => Some(state),
            ControllerDecision::BrokerFenced { .. } | ControllerDecision::BrokerUnfenced { .. } => {
                None
            }
        }
    }
}

/// Why the controller refused an [`AlterPartition`], with Kafka's error names and codes
/// (`ReplicationControlManager.validateAlterPartitionData`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterPartitionError {
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3): no such partition.
    UnknownTopicOrPartition {
        /// The partition asked about.
        partition: i32,
    },
    /// `NOT_CONTROLLER` (41): the request carries a leader or partition epoch *newer* than
    /// the controller's, which in Kafka means it reached a controller that is behind.
    NotController {
        /// The request's leader epoch.
        request_leader_epoch: i32,
        /// The request's partition epoch.
        request_partition_epoch: i32,
    },
    /// `FENCED_LEADER_EPOCH` (74): the leader is in an older leader epoch; a newer leader
    /// has been elected since.
    FencedLeaderEpoch {
        /// The request's leader epoch.
        request_leader_epoch: i32,
        /// The current one.
        leader_epoch: i32,
    },
    /// `INVALID_REQUEST` (42): the broker asking does not lead the partition.
    NotLeader {
        /// The broker asking.
        broker: BrokerId,
        /// The partition's leader.
        leader: BrokerId,
    },
    /// `INVALID_UPDATE_VERSION` (95): the proposal is based on an older partition epoch (the
    /// controller changed the ISR since, for example by fencing a follower).
    InvalidUpdateVersion {
        /// The request's partition epoch.
        request_partition_epoch: i32,
        /// The current one.
        partition_epoch: i32,
    },
    /// `INVALID_REQUEST` (42): the new ISR names a broker that is not an assigned replica,
    /// names one twice, or is empty.
    InvalidIsr {
        /// The ISR proposed.
        new_isr: Vec<BrokerId>,
    },
    /// `INVALID_REQUEST` (42): the new ISR leaves out the leader.
    IsrWithoutLeader {
        /// The ISR proposed.
        new_isr: Vec<BrokerId>,
    },
    /// `INELIGIBLE_REPLICA` (107): the new ISR names a fenced broker.
    IneligibleReplica {
        /// The fenced broker.
        replica: BrokerId,
    },
}

impl AlterPartitionError {
    /// Kafka's wire code for the error.
    pub fn code(&self) -> i16 {
        match self {
            AlterPartitionError::UnknownTopicOrPartition { .. } => 3,
            AlterPartitionError::NotController { .. } => 41,
            AlterPartitionError::FencedLeaderEpoch { .. } => 74,
            AlterPartitionError::NotLeader { .. }
            | AlterPartitionError::InvalidIsr { .. }
            | AlterPartitionError::IsrWithoutLeader { .. } => 42,
            AlterPartitionError::InvalidUpdateVersion { .. } => 95,
            AlterPartitionError::IneligibleReplica { .. } => 107,
        }
    }

    /// Kafka's name for the error, as `Errors.java` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            AlterPartitionError::UnknownTopicOrPartition { .. } => "UNKNOWN_TOPIC_OR_PARTITION",
            AlterPartitionError::NotController { .. } => "NOT_CONTROLLER",
            AlterPartitionError::FencedLeaderEpoch { .. } => "FENCED_LEADER_EPOCH",
            AlterPartitionError::NotLeader { .. }
            | AlterPartitionError::InvalidIsr { .. }
            | AlterPartitionError::IsrWithoutLeader { .. } => "INVALID_REQUEST",
            AlterPartitionError::InvalidUpdateVersion { .. } => "INVALID_UPDATE_VERSION",
            AlterPartitionError::IneligibleReplica { .. } => "INELIGIBLE_REPLICA",
        }
    }
}

impl fmt::Display for AlterPartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.name(), self.code())?;
        match self {
            AlterPartitionError::UnknownTopicOrPartition { partition } => {
                write!(f, "no partition {partition}")
            }
            AlterPartitionError::NotController {
                request_leader_epoch,
                request_partition_epoch,
            } => write!(
                f,
                "leader epoch {request_leader_epoch} / partition epoch {request_partition_epoch} are ahead of the controller"
            ),
            AlterPartitionError::FencedLeaderEpoch {
                request_leader_epoch,
                leader_epoch,
            } => write!(
                f,
                "leader epoch {request_leader_epoch} is older than the current {leader_epoch}"
            ),
            AlterPartitionError::NotLeader { broker, leader } => {
                write!(
                    f,
                    "broker {broker} is not the leader (the leader is {leader})"
                )
            }
            AlterPartitionError::InvalidUpdateVersion {
                request_partition_epoch,
                partition_epoch,
            } => write!(
                f,
                "partition epoch {request_partition_epoch} is older than the current {partition_epoch}"
            ),
            AlterPartitionError::InvalidIsr { new_isr } => {
                write!(f, "ISR {new_isr:?} is not a set of assigned replicas")
            }
            AlterPartitionError::IsrWithoutLeader { new_isr } => {
                write!(f, "ISR {new_isr:?} does not include the leader")
            }
            AlterPartitionError::IneligibleReplica { replica } => {
                write!(f, "replica {replica} is fenced")
            }
        }
    }
}

impl std::error::Error for AlterPartitionError {}

/// The election an administrator asks for (Kafka's `ElectionType`, KIP-460).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Give the leadership back to the preferred replica (`kafka-leader-election
    /// --election-type preferred`).
    Preferred,
    /// Bring an offline partition back, from outside the ISR if need be
    /// (`--election-type unclean`).
    Unclean,
}

/// Why [`Controller::elect_leader`] elected no one, with Kafka's error names and codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectLeaderError {
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3): no such partition.
    UnknownTopicOrPartition {
        /// The partition asked about.
        partition: i32,
    },
    /// `ELECTION_NOT_NEEDED` (84): the preferred replica already leads (preferred), or the
    /// partition has a leader (unclean).
    ElectionNotNeeded {
        /// The partition.
        partition: i32,
    },
    /// `PREFERRED_LEADER_NOT_AVAILABLE` (80): the preferred replica is fenced or out of sync.
    PreferredLeaderNotAvailable {
        /// The partition.
        partition: i32,
    },
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE` (83): every replica is fenced.
    EligibleLeadersNotAvailable {
        /// The partition.
        partition: i32,
    },
}

impl ElectLeaderError {
    /// Kafka's wire code for the error.
    pub fn code(&self) -> i16 {
        match self {
            ElectLeaderError::UnknownTopicOrPartition { .. } => 3,
            ElectLeaderError::ElectionNotNeeded { .. } => 84,
            ElectLeaderError::PreferredLeaderNotAvailable { .. } => 80,
            ElectLeaderError::EligibleLeadersNotAvailable { .. } => 83,
        }
    }

    /// Kafka's name for the error, as `Errors.java` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ElectLeaderError::UnknownTopicOrPartition { .. } => "UNKNOWN_TOPIC_OR_PARTITION",
            ElectLeaderError::ElectionNotNeeded { .. } => "ELECTION_NOT_NEEDED",
            ElectLeaderError::PreferredLeaderNotAvailable { .. } => {
                "PREFERRED_LEADER_NOT_AVAILABLE"
            }
            ElectLeaderError::EligibleLeadersNotAvailable { .. } => {
                "ELIGIBLE_LEADERS_NOT_AVAILABLE"
            }
        }
    }
}

impl fmt::Display for ElectLeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.name(), self.code())?;
        match self {
            ElectLeaderError::UnknownTopicOrPartition { partition } => {
                write!(f, "no partition {partition}")
            }
            ElectLeaderError::ElectionNotNeeded { partition } => {
                write!(f, "partition {partition} needs no such election")
            }
            ElectLeaderError::PreferredLeaderNotAvailable { partition } => write!(
                f,
                "the preferred replica of partition {partition} is not a live in-sync replica"
            ),
            ElectLeaderError::EligibleLeadersNotAvailable { partition } => {
                write!(f, "no replica of partition {partition} is live")
            }
        }
    }
}

impl std::error::Error for ElectLeaderError {}

/// What the controller has done so far, for reports (Kafka's controller metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerCounters {
    /// Leader elections that found a leader, clean or unclean (not the initial placement).
    pub leader_elections: u64,
    /// Of those, unclean ones (Kafka's `UncleanLeaderElectionsPerSec`).
    pub unclean_elections: u64,
    /// Times a partition lost its leader with no replica to replace it.
    pub partitions_gone_offline: u64,
    /// ISR changes that removed a member, whoever asked (a leader's AlterPartition or a
    /// fencing).
    pub isr_shrinks: u64,
    /// ISR changes that added a member.
    pub isr_expands: u64,
    /// Brokers fenced.
    pub brokers_fenced: u64,
    /// Brokers unfenced.
    pub brokers_unfenced: u64,
}

/// The controller's view of one broker (Kafka's `BrokerHeartbeatState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BrokerSession {
    /// Fenced brokers lead nothing and may not join an ISR.
    fenced: bool,
    /// The time of its last heartbeat or registration.
    last_contact_ms: i64,
}

/// The election a partition change holds (Kafka's `PartitionChangeBuilder.Election`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElectionRule {
    /// Keep the partition online from its ISR (`ONLINE`).
    Online,
    /// From the ISR if possible, else from any live replica (`UNCLEAN`).
    Unclean,
    /// The preferred replica if it is a live ISR member (`PREFERRED`).
    Preferred,
}

/// The leader an election found.
struct Election {
    leader: BrokerId,
    unclean: bool,
}

/// The cluster's controller: replica assignment, leaders, ISRs, broker liveness and producer
/// id blocks. See the [module essay](self) for its rules.
///
/// # Examples
/// ```
/// use idempo_broker::{Controller, ControllerConfig, ControllerDecision};
///
/// let config = ControllerConfig { brokers: 3, replication_factor: 3, ..ControllerConfig::default() };
/// let mut controller = Controller::new(config, 0).expect("a valid config");
/// assert_eq!(controller.partition(0).leader, 0);
///
/// // Brokers 1 and 2 keep heartbeating; broker 0 goes silent and is fenced after 9 s.
/// for now_ms in (0..=10_000).step_by(1_000) {
///     let _ = controller.heartbeat(1, now_ms);
///     let _ = controller.heartbeat(2, now_ms);
/// }
/// let decisions = controller.tick(10_000);
/// assert_eq!(decisions[0], ControllerDecision::BrokerFenced { broker: 0 });
/// let state = controller.partition(0);
/// assert_eq!((state.leader, state.leader_epoch, state.isr.clone()), (1, 1, vec![1, 2]));
/// ```
#[derive(Clone, Debug)]
pub struct Controller {
    config: ControllerConfig,
    brokers: Vec<BrokerSession>,
    partitions: Vec<LeaderAndIsr>,
    next_producer_id: i64,
    counters: ControllerCounters,
}

impl Controller {
    /// A controller for a new cluster at `now_ms`: every broker registered and live, every
    /// partition placed by [`assign_replicas`] with its preferred replica leading at leader
    /// epoch 0 and every replica in sync (Kafka's `createTopic`: ISR = the live replicas,
    /// leader = the first of them).
    pub fn new(config: ControllerConfig, now_ms: i64) -> Result<Controller, ControllerConfigError> {
        config.validate()?;
        let partitions =
            assign_replicas(config.brokers, config.partitions, config.replication_factor)
                .into_iter()
                .zip(0..)
                .map(|(replicas, partition)| LeaderAndIsr {
                    partition,
                    leader: replicas[0],
                    leader_epoch: 0,
                    isr: replicas.clone(),
                    replicas,
                    partition_epoch: 0,
                })
                .collect();
        let session = BrokerSession {
            fenced: false,
            last_contact_ms: now_ms,
        };
        Ok(Controller {
            brokers: vec![session; config.brokers as usize],
            partitions,
            next_producer_id: BrokerConfig::default().first_producer_id,
            counters: ControllerCounters::default(),
            config,
        })
    }

    /// The settings this controller was built with.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// A heartbeat from `broker` at `now_ms` (Kafka's BrokerHeartbeat): its session is
    /// renewed. A fenced broker that heartbeats is unfenced (Kafka unfences a fenced broker
    /// whose heartbeat shows it has caught up with the metadata log; here it always has), and
    /// the returned decisions say which offline partitions it now leads.
    ///
    /// # Panics
    /// If `broker` is not in `0..brokers` (a caller's bug).
    #[must_use = "unfencing may elect leaders that the brokers must be told about"]
    pub fn heartbeat(&mut self, broker: BrokerId, now_ms: i64) -> Vec<ControllerDecision> {
        let session = self.session_mut(broker);
        session.last_contact_ms = session.last_contact_ms.max(now_ms);
        if session.fenced {
            self.unfence_broker(broker)
        } else {
            Vec::new()
        }
    }

    /// `broker` registers at `now_ms` after a restart (Kafka's BrokerRegistration, then the
    /// heartbeat that unfences it). If its previous incarnation was still live, that one is
    /// fenced first, so that no partition keeps a leader that lost its unsynced tail in the
    /// crash; then the broker is unfenced and the partitions left without a leader get an
    /// election.
    ///
    /// # Panics
    /// If `broker` is not in `0..brokers` (a caller's bug).
    #[must_use = "fencing and unfencing change leaders that the brokers must be told about"]
    pub fn broker_registered(&mut self, broker: BrokerId, now_ms: i64) -> Vec<ControllerDecision> {
        let mut decisions = self.fence_broker(broker);
        let session = self.session_mut(broker);
        session.last_contact_ms = session.last_contact_ms.max(now_ms);
        decisions.extend(self.unfence_broker(broker));
        decisions
    }

    /// Fences every live broker whose session has expired at `now_ms` (last contact older
    /// than `broker.session.timeout.ms`, Kafka's `BrokerHeartbeatManager.hasValidSession`),
    /// in broker id order.
    #[must_use = "fencing changes leaders and ISRs that the brokers must be told about"]
    pub fn tick(&mut self, now_ms: i64) -> Vec<ControllerDecision> {
        let timeout_ms = self.config.broker_session_timeout_ms;
        let expired: Vec<BrokerId> = (0..self.config.brokers)
            .filter(|&broker| {
                let session = self.brokers[broker as usize];
                !session.fenced && session.last_contact_ms.saturating_add(timeout_ms) < now_ms
            })
            .collect();
        expired
            .into_iter()
            .flat_map(|broker| self.fence_broker(broker))
            .collect()
    }

    /// The earliest time at which [`Controller::tick`] would fence a broker, if no heartbeat
    /// comes first: one past the oldest live session's last contact plus the session timeout.
    /// `None` when every broker is fenced. A driver that ticks only then sees every fencing
    /// at the same time as one that ticks every millisecond.
    pub fn next_session_expiry_ms(&self) -> Option<i64> {
        let timeout_ms = self.config.broker_session_timeout_ms;
        self.brokers
            .iter()
            .filter(|session| !session.fenced)
            .map(|session| {
                session
                    .last_contact_ms
                    .saturating_add(timeout_ms)
                    .saturating_add(1)
            })
            .min()
    }

    /// Fences `broker` now (Kafka's `handleBrokerFenced`): it is removed from every ISR it
    /// shares with another member, and every partition it led gets a new leader or goes
    /// offline. Nothing happens to a broker already fenced. [`Controller::tick`] calls this
    /// when a session expires; a caller may call it directly to model a failure the
    /// controller has noticed.
    ///
    /// # Panics
    /// If `broker` is not in `0..brokers` (a caller's bug).
    #[must_use = "fencing changes leaders and ISRs that the brokers must be told about"]
    pub fn fence_broker(&mut self, broker: BrokerId) -> Vec<ControllerDecision> {
        let session = self.session_mut(broker);
        if session.fenced {
            return Vec::new();
        }
        session.fenced = true;
        self.counters.brokers_fenced += 1;
        let mut decisions = vec![ControllerDecision::BrokerFenced { broker }];
        for index in 0..self.partitions.len() {
            if !self.partitions[index].isr.contains(&broker) {
                continue;
            }
            let target_isr: Vec<BrokerId> = self.partitions[index]
                .isr
                .iter()
                .copied()
                .filter(|&replica| replica != broker)
                .collect();
            decisions.extend(self.change_partition(index, target_isr));
        }
        decisions
    }

    /// Unfences `broker` (Kafka's `handleBrokerUnfenced`) and holds an election in every
    /// partition without a leader.
    fn unfence_broker(&mut self, broker: BrokerId) -> Vec<ControllerDecision> {
        let session = self.session_mut(broker);
        assert!(session.fenced, "only a fenced broker is unfenced");
        session.fenced = false;
        self.counters.brokers_unfenced += 1;
        let mut decisions = vec![ControllerDecision::BrokerUnfenced { broker }];
        for index in 0..self.partitions.len() {
            if self.partitions[index].leader == NO_LEADER {
                let target_isr = self.partitions[index].isr.clone();
                decisions.extend(self.change_partition(index, target_isr));
            }
        }
        decisions
    }

    /// A leader's request to change its ISR (Kafka's AlterPartition, KIP-497), checked as
    /// `ReplicationControlManager.validateAlterPartitionData` does. On success the new state
    /// (with a bumped partition epoch, unless the ISR was already that) is returned, to be
    /// delivered to the partition's replicas.
    ///
    /// # Examples
    /// ```
    /// use idempo_broker::{AlterPartition, AlterPartitionError, Controller, ControllerConfig};
    ///
    /// let config = ControllerConfig { brokers: 3, replication_factor: 3, ..ControllerConfig::default() };
    /// let mut controller = Controller::new(config, 0).expect("a valid config");
    /// let shrink = AlterPartition { partition: 0, leader: 0, leader_epoch: 0, partition_epoch: 0, new_isr: vec![0, 1] };
    /// let state = controller.alter_partition(&shrink).expect("a current proposal");
    /// assert_eq!((state.isr.clone(), state.partition_epoch), (vec![0, 1], 1));
    /// // The same proposal again is based on a stale partition epoch.
    /// assert!(matches!(
    ///     controller.alter_partition(&shrink),
    ///     Err(AlterPartitionError::InvalidUpdateVersion { .. })
    /// ));
    /// ```
    pub fn alter_partition(
        &mut self,
        request: &AlterPartition,
    ) -> Result<LeaderAndIsr, AlterPartitionError> {
        let index = self.validate_alter_partition(request)?;
        let replicas = &self.partitions[index].replicas;
        let target_isr: Vec<BrokerId> = replicas
            .iter()
            .copied()
            .filter(|replica| request.new_isr.contains(replica))
            .collect();
        let leader_before = self.partitions[index].leader;
        // The decision (an IsrChanged, or nothing when the ISR is unchanged) is the returned
        // state itself.
        let _ = self.change_partition(index, target_isr);
        let state = &self.partitions[index];
        assert_eq!(
            state.leader, leader_before,
            "an AlterPartition keeps a live leader that is in its own ISR"
        );
        Ok(state.clone())
    }

    /// Kafka's `validateAlterPartitionData`, in its order; the partition's index on success.
    fn validate_alter_partition(
        &self,
        request: &AlterPartition,
    ) -> Result<usize, AlterPartitionError> {
        let Some(index) = self.partition_index(request.partition) else {
            return Err(AlterPartitionError::UnknownTopicOrPartition {
                partition: request.partition,
            });
        };
        let current = &self.partitions[index];
        if request.leader_epoch > current.leader_epoch
            || request.partition_epoch > current.partition_epoch
        {
            return Err(AlterPartitionError::NotController {
                request_leader_epoch: request.leader_epoch,
                request_partition_epoch: request.partition_epoch,
            });
        }
        if request.leader_epoch < current.leader_epoch {
            return Err(AlterPartitionError::FencedLeaderEpoch {
                request_leader_epoch: request.leader_epoch,
                leader_epoch: current.leader_epoch,
            });
        }
        if request.leader != current.leader {
            return Err(AlterPartitionError::NotLeader {
                broker: request.leader,
                leader: current.leader,
            });
        }
        if request.partition_epoch < current.partition_epoch {
            return Err(AlterPartitionError::InvalidUpdateVersion {
                request_partition_epoch: request.partition_epoch,
                partition_epoch: current.partition_epoch,
            });
        }
        self.validate_new_isr(current, &request.new_isr)?;
        Ok(index)
    }

    /// The ISR checks of `validateAlterPartitionData`: `Replicas.validateIsr`, the leader's
    /// presence, and `ineligibleReplicasForIsr`.
    fn validate_new_isr(
        &self,
        current: &LeaderAndIsr,
        new_isr: &[BrokerId],
    ) -> Result<(), AlterPartitionError> {
        let duplicate = new_isr
            .iter()
            .enumerate()
            .any(|(i, replica)| new_isr[..i].contains(replica));
        let unassigned = new_isr.iter().any(|r| !current.replicas.contains(r));
        // Kafka's `validateIsr` accepts an empty ISR, which then fails the leader check;
        // refusing it here names the problem more plainly.
        if new_isr.is_empty() || duplicate || unassigned {
            return Err(AlterPartitionError::InvalidIsr {
                new_isr: new_isr.to_vec(),
            });
        }
        if !new_isr.contains(&current.leader) {
            return Err(AlterPartitionError::IsrWithoutLeader {
                new_isr: new_isr.to_vec(),
            });
        }
        if let Some(&replica) = new_isr.iter().find(|&&r| self.brokers[r as usize].fenced) {
            return Err(AlterPartitionError::IneligibleReplica { replica });
        }
        Ok(())
    }

    /// An administrator's election for one partition (Kafka's ElectLeaders, KIP-460;
    /// `ReplicationControlManager.electLeader`). [`ElectionType::Preferred`] moves the
    /// leadership back to the preferred replica (the first in the assignment) if it is a live
    /// ISR member; [`ElectionType::Unclean`] elects a leader for an *offline* partition from
    /// its ISR if one is live again, else from any live replica, whatever
    /// `unclean.leader.election.enable` says.
    ///
    /// # Examples
    /// ```
    /// use idempo_broker::{Controller, ControllerConfig, ElectLeaderError, ElectionType};
    ///
    /// let config = ControllerConfig { brokers: 2, replication_factor: 2, ..ControllerConfig::default() };
    /// let mut controller = Controller::new(config, 0).expect("a valid config");
    /// let _ = controller.fence_broker(0); // partition 0: broker 1 leads now
    /// let _ = controller.broker_registered(0, 10_000);
    /// // Broker 0 is not back in the ISR yet, so the preferred leader cannot take over.
    /// assert_eq!(
    ///     controller.elect_leader(0, ElectionType::Preferred),
    ///     Err(ElectLeaderError::PreferredLeaderNotAvailable { partition: 0 })
    /// );
    /// ```
    pub fn elect_leader(
        &mut self,
        partition: i32,
        election: ElectionType,
    ) -> Result<ControllerDecision, ElectLeaderError> {
        let Some(index) = self.partition_index(partition) else {
            return Err(ElectLeaderError::UnknownTopicOrPartition { partition });
        };
        let current = &self.partitions[index];
        let (rule, not_needed) = match election {
            ElectionType::Preferred => (
                ElectionRule::Preferred,
                current.leader == current.replicas[0],
            ),
            ElectionType::Unclean => (ElectionRule::Unclean, current.leader != NO_LEADER),
        };
        if not_needed {
            return Err(ElectLeaderError::ElectionNotNeeded { partition });
        }
        let target_isr = current.isr.clone();
        self.change_partition_with(index, target_isr, rule)
            .ok_or(match election {
                ElectionType::Preferred => {
                    ElectLeaderError::PreferredLeaderNotAvailable { partition }
                }
                ElectionType::Unclean => {
                    ElectLeaderError::EligibleLeadersNotAvailable { partition }
                }
            })
    }

    /// Kafka's `PartitionChangeBuilder.build` for a new target ISR, without reassignment or
    /// eligible leader replicas: elect (`electAnyLeader`), set the ISR unless it would be
    /// empty, and apply the change with its epoch bumps (`PartitionRegistration.merge`).
    /// `None` when nothing changes.
    fn change_partition(
        &mut self,
        index: usize,
        target_isr: Vec<BrokerId>,
    ) -> Option<ControllerDecision> {
        let rule = if self.config.unclean_leader_election {
            ElectionRule::Unclean
        } else {
            ElectionRule::Online
        };
        self.change_partition_with(index, target_isr, rule)
    }

    /// [`change_partition`](Self::change_partition) with an explicit election rule.
    fn change_partition_with(
        &mut self,
        index: usize,
        target_isr: Vec<BrokerId>,
        rule: ElectionRule,
    ) -> Option<ControllerDecision> {
        let election = self.elect(&self.partitions[index], &target_isr, rule);
        let current = &self.partitions[index];
        let leader_changed = election.leader != current.leader;
        let new_isr = if leader_changed && election.unclean {
            // An unclean leader's log is the truth from now on: it is the only replica known
            // to be in sync with it.
            vec![election.leader]
        } else if !target_isr.is_empty() {
            target_isr
        } else {
            // Never empty the ISR: the last member stays listed so that only it may be
            // elected cleanly when it returns.
            current.isr.clone()
        };
        if !leader_changed && new_isr == current.isr {
            return None;
        }
        let old_isr = std::mem::replace(&mut self.partitions[index].isr, new_isr);
        let state = &mut self.partitions[index];
        state.partition_epoch += 1;
        if leader_changed {
            state.leader = election.leader;
            state.leader_epoch += 1;
        }
        let state = state.clone();
        self.count_isr_change(&old_isr, &state.isr);
        Some(self.decision(leader_changed, election.unclean, state))
    }

    /// Kafka's `PartitionChangeBuilder.electLeader`: `electPreferredLeader` for
    /// [`ElectionRule::Preferred`], else `electAnyLeader`.
    fn elect(
        &self,
        current: &LeaderAndIsr,
        target_isr: &[BrokerId],
        rule: ElectionRule,
    ) -> Election {
        let acceptable = |replica: BrokerId| !self.brokers[replica as usize].fenced;
        let valid = |replica: BrokerId| target_isr.contains(&replica) && acceptable(replica);
        let clean = |leader| Election {
            leader,
            unclean: false,
        };
        if rule == ElectionRule::Preferred {
            let preferred = current.replicas[0];
            if valid(preferred) {
                return clean(preferred);
            }
            if current.leader != NO_LEADER && valid(current.leader) {
                return clean(current.leader);
            }
            let other = current.replicas[1..].iter().copied().find(|&r| valid(r));
            return clean(other.unwrap_or(NO_LEADER));
        }
        if current.leader != NO_LEADER && valid(current.leader) {
            return Election {
                leader: current.leader,
                unclean: false,
            };
        }
        if let Some(&leader) = current.replicas.iter().find(|&&r| valid(r)) {
            return Election {
                leader,
                unclean: false,
            };
        }
        if rule == ElectionRule::Unclean
            && let Some(&leader) = current.replicas.iter().find(|&&r| acceptable(r))
        {
            return Election {
                leader,
                unclean: true,
            };
        }
        Election {
            leader: NO_LEADER,
            unclean: false,
        }
    }

    /// The decision for an applied change, counted.
    fn decision(
        &mut self,
        leader_changed: bool,
        unclean: bool,
        state: LeaderAndIsr,
    ) -> ControllerDecision {
        let partition = state.partition;
        if !leader_changed {
            return ControllerDecision::IsrChanged {
                partition,
                isr: state.isr.clone(),
                state,
            };
        }
        if state.leader == NO_LEADER {
            self.counters.partitions_gone_offline += 1;
            return ControllerDecision::Offline { partition, state };
        }
        self.counters.leader_elections += 1;
        if unclean {
            self.counters.unclean_elections += 1;
        }
        ControllerDecision::Elected {
            partition,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            clean: !unclean,
            state,
        }
    }

    fn count_isr_change(&mut self, old_isr: &[BrokerId], new_isr: &[BrokerId]) {
        if old_isr.iter().any(|r| !new_isr.contains(r)) {
            self.counters.isr_shrinks += 1;
        }
        if new_isr.iter().any(|r| !old_isr.contains(r)) {
            self.counters.isr_expands += 1;
        }
    }

    /// The current state of `partition`.
    ///
    /// # Panics
    /// If `partition` is not in `0..partitions` (a caller's bug).
    pub fn partition(&self, partition: i32) -> &LeaderAndIsr {
        let index = self.partition_index(partition);
        let index = index.unwrap_or_else(|| {
            panic!(
                "partition {partition} is not in 0..{}",
                self.config.partitions
            )
        });
        &self.partitions[index]
    }

    /// Every partition's current state, in partition order (what a new broker is told).
    pub fn partitions(&self) -> &[LeaderAndIsr] {
        &self.partitions
    }

    /// Whether `broker` is fenced (its session expired and it has not come back).
    ///
    /// # Panics
    /// If `broker` is not in `0..brokers` (a caller's bug).
    pub fn is_fenced(&self, broker: BrokerId) -> bool {
        self.brokers[self.broker_index(broker)].fenced
    }

    /// The unfenced brokers, in id order.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        (0..self.config.brokers)
            .filter(|&broker| !self.brokers[broker as usize].fenced)
            .collect()
    }

    /// Partitions without a leader right now (Kafka's `OfflinePartitionsCount`).
    pub fn offline_partitions(&self) -> usize {
        self.partitions
            .iter()
            .filter(|state| state.leader == NO_LEADER)
            .count()
    }

    /// What the controller has done so far.
    pub fn counters(&self) -> &ControllerCounters {
        &self.counters
    }

    /// The cluster as a Metadata response shows it (Kafka's `KRaftMetadataCache.
    /// getPartitionMetadata`): the live brokers, and per partition its leader and epoch, or
    /// `LEADER_NOT_AVAILABLE` with leader -1 while it is offline; replicas and ISR unfiltered.
    /// KRaft brokers name a random live broker as the controller (clients cannot reach the
    /// quorum); this names the lowest live broker id, or -1 if none is live.
    pub fn metadata(&self) -> MetadataResponse {
        let brokers = self.live_brokers();
        let partitions = self
            .partitions
            .iter()
            .map(|state| {
                PartitionMetadata::new(
                    state.partition,
                    state.leader,
                    state.leader_epoch,
                    state.replicas.clone(),
                    state.isr.clone(),
                )
            })
            .collect();
        MetadataResponse {
            controller_id: brokers.first().copied().unwrap_or(NO_LEADER),
            brokers,
            partitions,
        }
    }

    /// Hands `broker` the next block of producer ids, `(first, len)` with `len` =
    /// [`PRODUCER_ID_BLOCK_SIZE`] (KIP-730, `ProducerIdControlManager.
    /// generateNextProducerId`): blocks never overlap, so producer ids are unique across
    /// the cluster. Deliver it with `Broker::grant_producer_id_block`.
    ///
    /// # Panics
    /// If `broker` is not in `0..brokers`, or if the 64-bit id space is exhausted (Kafka
    /// fails the request with `UNKNOWN_SERVER_ERROR`; unreachable in a simulation).
    pub fn allocate_producer_ids(&mut self, broker: BrokerId) -> (i64, i64) {
        self.broker_index(broker);
        let first = self.next_producer_id;
        self.next_producer_id = first
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .expect("the producer id space is not exhausted within a run");
        (first, PRODUCER_ID_BLOCK_SIZE)
    }

    /// Restores a partition's leader epoch after a restart of a controller that keeps no
    /// metadata log: the partition's leader epoch (and partition epoch) become at least
    /// `leader_epoch`, so that the epochs the replicas' logs already hold are never handed
    /// out again (Kafka's controller replays them from its metadata log). Returns the
    /// state to deliver when it changed.
    ///
    /// # Panics
    /// If `partition` does not exist (a caller's bug).
    pub fn restore_leader_epoch(
        &mut self,
        partition: i32,
        leader_epoch: i32,
    ) -> Option<LeaderAndIsr> {
        let index = self
            .partition_index(partition)
            .unwrap_or_else(|| panic!("partition {partition} does not exist"));
        let state = &mut self.partitions[index];
        if state.leader_epoch >= leader_epoch {
            return None;
        }
        state.leader_epoch = leader_epoch;
        state.partition_epoch = state.partition_epoch.max(leader_epoch);
        Some(state.clone())
    }

    fn partition_index(&self, partition: i32) -> Option<usize> {
        usize::try_from(partition)
            .ok()
            .filter(|&index| index < self.partitions.len())
    }

    fn broker_index(&self, broker: BrokerId) -> usize {
        let index = usize::try_from(broker)
            .ok()
            .filter(|&i| i < self.brokers.len());
        index.unwrap_or_else(|| panic!("broker {broker} is not in 0..{}", self.config.brokers))
    }

    fn session_mut(&mut self, broker: BrokerId) -> &mut BrokerSession {
        let index = self.broker_index(broker);
        &mut self.brokers[index]
    }
}
