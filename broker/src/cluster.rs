//! The values a replicated cluster passes between its controller and its brokers.
//!
//! Kafka's controller (a KRaft quorum; here one state machine assumed always available, see the
//! `controller` module) owns each partition's replica assignment, leader,
//! leader epoch and in-sync replica set. It tells the brokers with a [`LeaderAndIsr`] (in
//! KRaft, a `PartitionRecord`/`PartitionChangeRecord` the brokers replay from the metadata
//! log); a leader asks it to change the ISR with an [`AlterPartition`] (KIP-497).

/// A broker's id (Kafka's `node.id`).
pub type BrokerId = i32;

/// "No leader": the partition is offline (Kafka's `LeaderConstants.NO_LEADER`).
pub const NO_LEADER: BrokerId = -1;

/// One partition's replication state as the controller decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAndIsr {
    /// The partition.
    pub partition: i32,
    /// The leader, or [`NO_LEADER`] while the partition is offline.
    pub leader: BrokerId,
    /// Bumped at every leader change (and every election); stamped into the batches the
    /// leader appends and checked on every fetch (KIP-101, KIP-320).
    pub leader_epoch: i32,
    /// The in-sync replicas, in assignment order. Kept non-empty: when the last member
    /// fails it stays listed (with no leader) so that only it may be elected cleanly.
    pub isr: Vec<BrokerId>,
    /// The assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// Bumped at every change of this state, leader or ISR (Kafka's `partitionEpoch`, the
    /// ZooKeeper-era `zkVersion`): an [`AlterPartition`] based on an older one is refused.
    pub partition_epoch: i32,
}

/// A leader's request to change a partition's ISR (Kafka's AlterPartition, KIP-497): shrink
/// it when a follower lags more than `replica.lag.time.max.ms`, expand it when a follower has
/// caught up within the current leader epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartition {
    /// The partition.
    pub partition: i32,
    /// The leader asking.
    pub leader: BrokerId,
    /// The leader epoch the leader is in.
    pub leader_epoch: i32,
    /// The partition epoch its proposal is based on.
    pub partition_epoch: i32,
    /// The ISR it proposes.
    pub new_isr: Vec<BrokerId>,
}
