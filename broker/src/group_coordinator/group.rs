//! One consumer group's metadata: its state, generation, members and protocol (Kafka's
//! `GroupMetadata` and `MemberMetadata`).

use super::RequestToken;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;

/// The states of a classic group, with Kafka's names (`GroupState` in `GroupMetadata.scala`).
///
/// ```text
///            join                   all joined / timeout          leader's SyncGroup
/// Empty ───────────▶ PreparingRebalance ───────────▶ CompletingRebalance ───────────▶ Stable
///   ▲                 ▲   ▲     │ no member left            │ join/leave/expiry       │
///   └─────────────────┼───┼─────┘                           │                         │
///                     │   └─────────────────────────────────┘                         │
///                     └───────────────────── join / leave / session expiry ───────────┘
/// Dead: the group was deleted (DeleteGroups); it is forgotten at once.
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; committed offsets may remain.
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Everyone joined; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// The leader's assignment was handed out; members heartbeat.
    Stable,
    /// Deleted, or never known: what DescribeGroups reports for a group the coordinator does
    /// not hold. Kafka keeps a deleted group's object in this state for the requests still
    /// holding it; here a deleted group is removed from the coordinator's map at once, so no
    /// group it holds is ever Dead, and a request for a deleted group is answered as for an
    /// unknown one.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One member of a group (Kafka's `MemberMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id`, kept for DescribeGroups; static membership is not modelled.
    pub group_instance_id: Option<String>,
    /// The client id of its JoinGroup.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// `session.timeout.ms`: removed when no heartbeat arrives for this long.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` for the Java client: how long a rebalance waits for it.
    pub rebalance_timeout_ms: i32,
    /// The protocols (assignors) it supports, in its order of preference, with its metadata
    /// for each (the subscription).
    pub protocols: Vec<(String, Bytes)>,
    /// Its part of the current generation's assignment.
    pub assignment: Bytes,
    /// Its JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<RequestToken>,
    /// Its SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<RequestToken>,
    /// Joined during the rebalance in progress and never got a generation yet.
    pub is_new: bool,
    /// Got the current generation's assignment with SyncGroup (Kafka's pending-sync set).
    pub synced: bool,
    /// The session expires at this time unless a heartbeat (or any request of the member)
    /// comes first.
    pub heartbeat_deadline_ms: i64,
}

impl Member {
    /// Its metadata for `protocol`, empty if it does not support it.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// The first of `candidates` in its own order of preference (Kafka's `vote`).
    fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Same protocols with the same metadata, in the same order (Kafka's `matches`).
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// The phase of a rebalance in `PreparingRebalance` (Kafka's `InitialDelayedJoin` and
/// `DelayedJoin` operations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinPhase {
    /// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, and
    /// again while new members keep arriving, up to the rebalance timeout (`remaining_ms`).
    Initial {
        /// Time left in the rebalance timeout after the current delay.
        remaining_ms: i64,
    },
    /// Completes as soon as every member has rejoined, or at the deadline.
    Delayed,
}

/// One group: members, generation and the offsets its members committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// The generation: bumped at the end of every rebalance.
    pub generation_id: i32,
    /// The members' protocol type (`consumer` for consumers), while it has members.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for the current generation.
    pub protocol_name: Option<String>,
    /// The member that computes the assignment.
    pub leader_id: Option<String>,
    /// Members by id (ordered, so every walk over them is deterministic).
    pub members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined with them, and
    /// when each expires (its session timeout).
    pub pending_members: BTreeMap<String, i64>,
    /// A member joined during the initial delay (the delay is extended).
    pub new_member_added: bool,
    /// The phase of the rebalance in progress.
    pub join_phase: JoinPhase,
    /// When the rebalance in progress completes at the latest (or its initial delay ends).
    pub join_deadline_ms: Option<i64>,
    /// When members that did not SyncGroup in this generation are removed (Kafka's
    /// `DelayedSync`, the rebalance timeout after the join completed).
    pub sync_deadline_ms: Option<i64>,
    /// When the group last became Empty (it is forgotten, if it has no offsets,
    /// [`EMPTY_GROUP_RETENTION_MS`](super::EMPTY_GROUP_RETENTION_MS) later).
    pub empty_since_ms: i64,
}

impl Group {
    /// A new, empty group at generation 0.
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            new_member_added: false,
            join_phase: JoinPhase::Delayed,
            join_deadline_ms: None,
            sync_deadline_ms: None,
            empty_since_ms: now_ms,
        }
    }

    /// True when `member_id` is the leader.
    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// The largest rebalance timeout of the members (Kafka's `rebalanceTimeoutMs`).
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; a group
    /// with members takes a member of the same protocol type with at least one protocol that
    /// every current member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for the one it prefers; the most votes win (ties: the name first in order, so the
    /// choice is deterministic). `None` only for a group without members.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|&(_, n)| n == most)
            .map(|(name, _)| name.to_string())
    }

    /// Every member has a JoinGroup parked and no KIP-394 member is still to join (Kafka's
    /// `hasAllMembersJoined`).
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }
}
