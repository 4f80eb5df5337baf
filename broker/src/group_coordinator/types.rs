//! The values the group coordinator takes and gives: requests, answers, error codes.

use bytes::Bytes;
use std::fmt;

/// The errors of the group APIs, with Kafka's names and wire codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum GroupError {
    /// `NONE` (0).
    None = 0,
    /// `OFFSET_METADATA_TOO_LARGE` (12): the commit's metadata exceeds
    /// `offset.metadata.max.bytes`.
    OffsetMetadataTooLarge = 12,
    /// `COORDINATOR_NOT_AVAILABLE` (15): the group is being deleted or not loaded.
    CoordinatorNotAvailable = 15,
    /// `NOT_COORDINATOR` (16): the offsets could not be stored (Kafka's answer to a
    /// storage error of `__consumer_offsets`); the client finds the coordinator again.
    NotCoordinator = 16,
    /// `ILLEGAL_GENERATION` (22): the request names another generation than the group's.
    IllegalGeneration = 22,
    /// `INCONSISTENT_GROUP_PROTOCOL` (23): no protocol in common with the group's members.
    InconsistentGroupProtocol = 23,
    /// `INVALID_GROUP_ID` (24): an empty or oversized group id.
    InvalidGroupId = 24,
    /// `UNKNOWN_MEMBER_ID` (25): the member id is not one of the group's members.
    UnknownMemberId = 25,
    /// `INVALID_SESSION_TIMEOUT` (26): outside `group.min/max.session.timeout.ms`.
    InvalidSessionTimeout = 26,
    /// `REBALANCE_IN_PROGRESS` (27): rejoin the group.
    RebalanceInProgress = 27,
    /// `NON_EMPTY_GROUP` (68): DeleteGroups of a group with members.
    NonEmptyGroup = 68,
    /// `GROUP_ID_NOT_FOUND` (69): DeleteGroups of a group the coordinator does not know.
    GroupIdNotFound = 69,
    /// `MEMBER_ID_REQUIRED` (79): KIP-394; join again with the member id in this answer.
    MemberIdRequired = 79,
    /// `GROUP_MAX_SIZE_REACHED` (81): the group has `group.max.size` members.
    GroupMaxSizeReached = 81,
}

impl GroupError {
    /// The wire code.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            GroupError::None => "NONE",
            GroupError::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            GroupError::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            GroupError::NotCoordinator => "NOT_COORDINATOR",
            GroupError::IllegalGeneration => "ILLEGAL_GENERATION",
            GroupError::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            GroupError::InvalidGroupId => "INVALID_GROUP_ID",
            GroupError::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            GroupError::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            GroupError::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            GroupError::NonEmptyGroup => "NON_EMPTY_GROUP",
            GroupError::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            GroupError::MemberIdRequired => "MEMBER_ID_REQUIRED",
            GroupError::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Names a parked request, chosen by the caller (the server: one per waiting connection), so
/// that a JoinGroup or SyncGroup answered later finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestToken(pub u64);

/// An answer now, or later through [`take_completed`](super::GroupCoordinator::take_completed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// Answered at once.
    Now(T),
    /// Parked: the answer comes with the request's token when the rebalance moves on.
    Parked,
}

/// A topic partition, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// An offset a group committed for a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last record consumed, or -1.
    pub leader_epoch: i32,
    /// The client's free text.
    pub metadata: String,
    /// When the coordinator stored it.
    pub commit_timestamp_ms: i64,
}

/// A JoinGroup, as the coordinator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group_id: String,
    /// Empty for a new member.
    pub member_id: String,
    /// `group.instance.id` (kept, not honoured: no static membership).
    pub group_instance_id: Option<String>,
    /// The request header's client id (the prefix of a new member id).
    pub client_id: String,
    /// The address the request came from.
    pub client_host: String,
    /// The member's session timeout.
    pub session_timeout_ms: i32,
    /// The member's rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// Protocols (assignor names) with the member's metadata, in its order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (JoinGroup v4+): a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    /// Its id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol (its subscription).
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResult {
    /// The error, or [`GroupError::None`].
    pub error: GroupError,
    /// The new generation (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader_id: String,
    /// The member's id (also on MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata, for the leader only; empty for the others.
    pub members: Vec<JoinedMember>,
}

impl JoinGroupResult {
    /// An error answer.
    pub fn error(error: GroupError, member_id: &str) -> JoinGroupResult {
        JoinGroupResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup, as the coordinator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// v5+: checked against the group's.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_name: Option<String>,
    /// The leader's assignment (member id, assignment bytes); empty from the others.
    pub assignments: Vec<(String, Bytes)>,
}

/// The SyncGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResult {
    /// The error, or [`GroupError::None`].
    pub error: GroupError,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The generation's protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResult {
    /// An error answer.
    pub fn error(error: GroupError) -> SyncGroupResult {
        SyncGroupResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A parked request's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completed {
    /// A JoinGroup's.
    Join {
        /// The token the request was parked with.
        token: RequestToken,
        /// The answer.
        result: JoinGroupResult,
    },
    /// A SyncGroup's.
    Sync {
        /// The token the request was parked with.
        token: RequestToken,
        /// The answer.
        result: SyncGroupResult,
    },
}

impl Completed {
    /// The token of the request answered.
    pub fn token(&self) -> RequestToken {
        match self {
            Completed::Join { token, .. } | Completed::Sync { token, .. } => *token,
        }
    }
}

/// An OffsetCommit, as the coordinator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation, or -1 for a commit outside any generation ("simple" commit
    /// of a consumer that assigns partitions itself).
    pub generation_id: i32,
    /// The member, or empty with generation -1.
    pub member_id: String,
    /// The offsets: partition, offset, leader epoch (-1 if unknown), metadata.
    pub offsets: Vec<(TopicPartition, i64, i32, String)>,
}

/// Why a member left its group, for the coordinator's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    /// LeaveGroup.
    Left,
    /// No heartbeat within the session timeout.
    SessionTimeout,
    /// Did not rejoin within the rebalance timeout.
    NotRejoined,
    /// Did not SyncGroup within the rebalance timeout after the join completed.
    NotSynced,
    /// A KIP-394 member id was never used to join.
    PendingExpired,
}

impl fmt::Display for RemovalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemovalReason::Left => "left the group",
            RemovalReason::SessionTimeout => "session timed out",
            RemovalReason::NotRejoined => "did not rejoin within the rebalance timeout",
            RemovalReason::NotSynced => "did not sync within the rebalance timeout",
            RemovalReason::PendingExpired => "never joined with its KIP-394 member id",
        })
    }
}

/// What happened in a group, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// A rebalance began.
    RebalanceStarted {
        /// The group.
        group_id: String,
        /// The generation that is ending.
        generation_id: i32,
    },
    /// A rebalance completed: a new generation.
    Rebalanced {
        /// The group.
        group_id: String,
        /// The new generation.
        generation_id: i32,
        /// Its members.
        members: usize,
        /// Its protocol, `None` for an empty generation.
        protocol_name: Option<String>,
        /// Its leader.
        leader_id: Option<String>,
    },
    /// The leader's assignment was handed out: the group is Stable.
    Stabilized {
        /// The group.
        group_id: String,
        /// The generation.
        generation_id: i32,
    },
    /// A member was removed.
    MemberRemoved {
        /// The group.
        group_id: String,
        /// The member.
        member_id: String,
        /// Why.
        reason: RemovalReason,
    },
}

/// A group in ListGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its protocol type, empty when it has no members.
    pub protocol_type: String,
    /// Its state.
    pub state: super::GroupState,
}

/// A member in DescribeGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    /// Its id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its address.
    pub client_host: String,
    /// Its metadata for the generation's protocol (Stable only, as in Kafka).
    pub metadata: Bytes,
    /// Its assignment (Stable only).
    pub assignment: Bytes,
}

/// A group in DescribeGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state (Dead for a group the coordinator does not know, as in Kafka).
    pub state: super::GroupState,
    /// Its protocol type, or empty.
    pub protocol_type: String,
    /// Its protocol when Stable, or empty.
    pub protocol_name: String,
    /// Its members.
    pub members: Vec<MemberDescription>,
}
