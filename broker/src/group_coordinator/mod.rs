//! Kafka's classic consumer-group coordinator, as a synchronous state machine.
//!
//! # What Kafka does
//!
//! Consumers that `subscribe()` share a topic's partitions through a *group*. One broker is
//! the group's coordinator. It does not compute the assignment: it gathers the members,
//! picks one of them as the *leader*, hands the leader every member's subscription, and
//! passes the leader's assignment back to everyone. Every change of membership is a
//! *rebalance*, and every rebalance starts a new *generation*; requests that name an old
//! generation are refused, which is what fences a consumer that missed a rebalance.
//!
//! ```text
//! member A          member B          coordinator (group "g")
//!  JoinGroup("")  ─────────────────▶  MEMBER_ID_REQUIRED, member id "a-1"  (KIP-394, v4+)
//!  JoinGroup("a-1") ───────────────▶  Empty → PreparingRebalance; parked, waits
//!                                     group.initial.rebalance.delay.ms for more members
//!                   JoinGroup("b-2") ▶ parked (after its own MEMBER_ID_REQUIRED)
//!                                     delay over: generation 1, protocol "range" (every
//!                                     member supports it, most members prefer it)
//!  ◀── leader: generation 1, members [a-1, b-2] with their subscriptions
//!                   ◀── follower: generation 1, no members         → CompletingRebalance
//!  SyncGroup(gen 1, {a-1: p0, b-2: p1}) ─▶ Stable
//!  ◀── p0           ◀── p1 (its parked SyncGroup answered)
//!  Heartbeat(gen 1) ─▶ NONE ... B leaves (LeaveGroup) or stops heartbeating (session timeout)
//!  Heartbeat(gen 1) ─▶ REBALANCE_IN_PROGRESS: A joins again → generation 2 with A alone
//! ```
//!
//! | state               | JoinGroup (known member)         | SyncGroup               | Heartbeat / OffsetCommit |
//! |---------------------|----------------------------------|-------------------------|--------------------------|
//! | Empty               | (new members only) → rebalance    | UNKNOWN_MEMBER_ID       | UNKNOWN_MEMBER_ID; commit with generation -1 allowed |
//! | PreparingRebalance  | parked until all rejoined        | REBALANCE_IN_PROGRESS   | REBALANCE_IN_PROGRESS / commit allowed |
//! | CompletingRebalance | same metadata: current generation | parked; the leader's completes all | NONE / REBALANCE_IN_PROGRESS |
//! | Stable              | leader or new metadata: rebalance | the member's assignment | NONE / commit allowed |
//!
//! A wrong generation is ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, a member
//! whose protocols share none with the group INCONSISTENT_GROUP_PROTOCOL. A member is removed
//! (and the group rebalances) when it leaves, when no heartbeat arrives within its
//! `session.timeout.ms`, when it does not rejoin within the rebalance timeout (the largest of
//! the members' `rebalance.timeout.ms`, `max.poll.interval.ms` in the Java client), or when it
//! does not SyncGroup within the rebalance timeout after the join completed. A member with a
//! parked request is not expired: it is waiting for us.
//!
//! Committed offsets belong to the group: an OffsetCommit from a member must name the current
//! generation; a consumer outside any group (it assigns partitions itself) commits with
//! generation -1, allowed while the group has no members.
//!
//! # What we do
//!
//! [`GroupCoordinator`] is told the time with every call and never reads a clock. JoinGroup
//! and SyncGroup answers often come later than the request (a rebalance waits for the other
//! members): the caller gives each request a [`RequestToken`], gets [`Answer::Parked`], and
//! collects the answers with [`GroupCoordinator::take_completed`] after any later call
//! (including [`GroupCoordinator::tick`], which the server calls periodically so that session
//! timeouts fire without traffic). Committed offsets go through the broker's [`Storage`]
//! under `groups/` ([`offsets_log`]): an append-only log with a CRC per record, synced before
//! the commit is answered, replayed by [`GroupCoordinator::open`] (a torn tail is cut off).
//!
//! # Differences from Kafka
//!
//! - No static membership (KIP-345): `group.instance.id` is kept and reported but a member
//!   with one is treated as a dynamic member (it gets a new member id when it rejoins).
//! - No KIP-848 (the `consumer` group protocol, ConsumerGroupHeartbeat) and no share groups.
//! - Only offsets are persisted, not the group's membership: after a restart every group
//!   is Empty at generation 0 and its consumers rejoin (they get UNKNOWN_MEMBER_ID, or
//!   ILLEGAL_GENERATION, and join again, as after a coordinator failover in Kafka). Member
//!   ids carry a per-start seed, so an id from before the restart is never handed out again.
//! - Offsets never expire (`offsets.retention.minutes` is not modelled); an empty group with
//!   no offsets is forgotten [`EMPTY_GROUP_RETENTION_MS`] after it became empty (Kafka: at
//!   its next cleanup, within that time).
//! - `group.max.size` defaults to 1 000 (Kafka: unbounded), a bound on memory.
//! - Protocol votes that tie go to the name first in alphabetical order (Kafka: any).

mod group;
pub mod offsets_log;
mod rebalance;
mod types;

pub use group::{Group, GroupState, JoinPhase, Member};
pub use offsets_log::{OFFSETS_FILE, OffsetRecord, OffsetsReplay};
pub use types::{
    Answer, CommittedOffset, Completed, GroupDescription, GroupError, GroupEvent, GroupListing,
    JoinGroupRequest, JoinGroupResult, JoinedMember, MemberDescription, OffsetCommitRequest,
    RemovalReason, RequestToken, SyncGroupRequest, SyncGroupResult, TopicPartition,
};

use crate::storage::{Storage, StorageError};
use rebalance::Out;
use std::collections::BTreeMap;

/// Kafka's `group.initial.rebalance.delay.ms` default.
pub const DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS: i64 = 3_000;

/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: a member that joined and never
/// completed a rebalance is removed after this long.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// An empty group without committed offsets is forgotten this long after it became empty
/// (Kafka removes it at its next offsets cleanup, every `offsets.retention.check.interval.ms`,
/// 600 000 by default).
pub const EMPTY_GROUP_RETENTION_MS: i64 = 600_000;

/// The coordinator's settings, with Kafka's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (3 000): how long the first rebalance of an empty
    /// group waits for more members (extended while they keep coming).
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (6 000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1 800 000).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`: members (and KIP-394 pending members) per group.
    pub group_max_size: usize,
    /// `offset.metadata.max.bytes` (4 096).
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            group_initial_rebalance_delay_ms: DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 1_000,
            offset_metadata_max_bytes: 4_096,
        }
    }
}

/// The longest group id, topic name or metadata the offsets log stores (a `u16` length).
const MAX_STORED_STRING_BYTES: usize = u16::MAX as usize;

/// The group coordinator: every group of this broker, their offsets, and the answers of
/// parked requests (see the module doc).
///
/// # Examples
///
/// One consumer joins (KIP-394: it first gets its member id), waits out the initial
/// rebalance delay, leads generation 1, hands itself the assignment and commits.
///
/// ```
/// use bytes::Bytes;
/// use idempo_broker::SimDisk;
/// use idempo_broker::group_coordinator::*;
///
/// let mut disk = SimDisk::new();
/// let (mut coordinator, _) = GroupCoordinator::open(GroupConfig::default(), &mut disk, 1).unwrap();
/// let mut join = JoinGroupRequest {
///     group_id: "g".into(),
///     member_id: String::new(),
///     group_instance_id: None,
///     client_id: "app".into(),
///     client_host: "/127.0.0.1".into(),
///     session_timeout_ms: 10_000,
///     rebalance_timeout_ms: 30_000,
///     protocol_type: "consumer".into(),
///     protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
///     require_known_member_id: true,
/// };
/// let Answer::Now(first) = coordinator.join_group(RequestToken(1), &join, 0) else { panic!() };
/// assert_eq!(first.error, GroupError::MemberIdRequired);
/// join.member_id = first.member_id.clone();
/// assert_eq!(coordinator.join_group(RequestToken(2), &join, 0), Answer::Parked);
/// coordinator.tick(DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS);
/// let [Completed::Join { token, result }] = &coordinator.take_completed()[..] else { panic!() };
/// assert_eq!((*token, result.generation_id), (RequestToken(2), 1));
/// assert_eq!(result.leader_id, join.member_id, "the only member leads");
///
/// let sync = SyncGroupRequest {
///     group_id: "g".into(),
///     generation_id: 1,
///     member_id: join.member_id.clone(),
///     protocol_type: None,
///     protocol_name: None,
///     assignments: vec![(join.member_id.clone(), Bytes::from_static(b"t-0"))],
/// };
/// let Answer::Now(assigned) = coordinator.sync_group(RequestToken(3), &sync, 3_001) else { panic!() };
/// assert_eq!(assigned.assignment, "t-0");
/// assert_eq!(coordinator.group("g").unwrap().state, GroupState::Stable);
///
/// let commit = OffsetCommitRequest {
///     group_id: "g".into(),
///     generation_id: 1,
///     member_id: join.member_id.clone(),
///     offsets: vec![(TopicPartition { topic: "t".into(), partition: 0 }, 42, -1, String::new())],
/// };
/// assert_eq!(coordinator.commit_offsets(&mut disk, &commit, 3_002), vec![GroupError::None]);
/// ```
#[derive(Clone, Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    offsets: BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
    completed: Vec<Completed>,
    events: Vec<GroupEvent>,
    /// Mixed into every member id, so that ids differ from one start to the next.
    member_id_seed: u64,
    members_created: u64,
    /// Bytes in the offsets log, and how many of them the live commits would take.
    log_bytes: u64,
    live_bytes: u64,
}

impl GroupCoordinator {
    /// Opens the coordinator over `storage`: replays the committed offsets (cutting a torn
    /// tail off the log). `member_id_seed` should differ between starts (the server uses the
    /// wall clock), so that member ids from before a restart are never handed out again.
    pub fn open(
        config: GroupConfig,
        storage: &mut impl Storage,
        member_id_seed: u64,
    ) -> Result<(GroupCoordinator, OffsetsReplay), StorageError> {
        let (records, replay) = offsets_log::replay(storage)?;
        let mut coordinator = GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            completed: Vec::new(),
            events: Vec::new(),
            member_id_seed,
            members_created: 0,
            log_bytes: storage.file_len(OFFSETS_FILE).unwrap_or(0),
            live_bytes: 0,
        };
        for record in records {
            match record {
                OffsetRecord::Commit {
                    group_id,
                    partition,
                    offset,
                } => coordinator.store_offset(&group_id, partition, offset),
                OffsetRecord::GroupDeleted { group_id } => coordinator.forget_offsets(&group_id),
            }
        }
        for group_id in coordinator.offsets.keys() {
            coordinator
                .groups
                .insert(group_id.clone(), Group::new(group_id, 0));
        }
        Ok((coordinator, replay))
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// A group, if the coordinator knows it.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Members over all groups (for metrics).
    pub fn member_count(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }

    /// The answers of parked requests completed since the last call, in order.
    pub fn take_completed(&mut self) -> Vec<Completed> {
        std::mem::take(&mut self.completed)
    }

    /// What happened since the last call (rebalances, removals), for the log.
    pub fn take_events(&mut self) -> Vec<GroupEvent> {
        std::mem::take(&mut self.events)
    }

    /// The earliest time at which [`tick`](Self::tick) would change something.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min()
    }

    /// Tells the coordinator the time: sessions expire, delayed joins complete.
    pub fn tick(&mut self, now_ms: i64) {
        let GroupCoordinator {
            config,
            groups,
            offsets,
            completed,
            events,
            ..
        } = self;
        let mut out = Out {
            config,
            now_ms,
            completed,
            events,
        };
        for group in groups.values_mut() {
            group.expire(&mut out);
        }
        groups.retain(|id, g| {
            !is_forgettable(g)
                || offsets.contains_key(id)
                || now_ms < g.empty_since_ms + EMPTY_GROUP_RETENTION_MS
        });
    }

    fn out(&mut self, now_ms: i64) -> (&mut BTreeMap<String, Group>, Out<'_>) {
        (
            &mut self.groups,
            Out {
                config: &self.config,
                now_ms,
                completed: &mut self.completed,
                events: &mut self.events,
            },
        )
    }

    /// JoinGroup (Kafka's `handleJoinGroup`). Answered at once on an error, with
    /// MEMBER_ID_REQUIRED, or when a known member joins again with nothing changed;
    /// otherwise parked under `token` until the rebalance completes.
    pub fn join_group(
        &mut self,
        token: RequestToken,
        request: &JoinGroupRequest,
        now_ms: i64,
    ) -> Answer<JoinGroupResult> {
        self.tick(now_ms);
        let fail = |error| Answer::Now(JoinGroupResult::error(error, &request.member_id));
        if request.group_id.is_empty() || request.group_id.len() > MAX_STORED_STRING_BYTES {
            return fail(GroupError::InvalidGroupId);
        }
        let timeout = request.session_timeout_ms;
        if timeout < self.config.group_min_session_timeout_ms
            || timeout > self.config.group_max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        if !self.groups.contains_key(&request.group_id) {
            if !request.member_id.is_empty() {
                return fail(GroupError::UnknownMemberId);
            }
            // Checked before the group is created, so that a refused join leaves nothing.
            if request.protocol_type.is_empty() || request.protocols.is_empty() {
                return fail(GroupError::InconsistentGroupProtocol);
            }
        }
        let new_member_id = request
            .member_id
            .is_empty()
            .then(|| self.new_member_id(&request.client_id));
        let max_size = self.config.group_max_size;
        let (groups, mut out) = self.out(now_ms);
        let group = groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id, now_ms));
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        let known = group.members.contains_key(&request.member_id)
            || group.pending_members.contains_key(&request.member_id);
        if !known && group.members.len() + group.pending_members.len() >= max_size {
            return fail(GroupError::GroupMaxSizeReached);
        }
        match new_member_id {
            Some(member_id) if request.require_known_member_id => {
                let deadline = now_ms + i64::from(request.session_timeout_ms);
                group.pending_members.insert(member_id.clone(), deadline);
                Answer::Now(JoinGroupResult::error(
                    GroupError::MemberIdRequired,
                    &member_id,
                ))
            }
            Some(member_id) => {
                group.add_member(token, &member_id, request, &mut out);
                Answer::Parked
            }
            None => group.join_known_member(token, request, &mut out),
        }
    }

    /// A member id as Kafka makes them: the client id, a dash, a UUID-shaped suffix.
    fn new_member_id(&mut self, client_id: &str) -> String {
        self.members_created += 1;
        let a = splitmix64(self.member_id_seed ^ self.members_created);
        let b = splitmix64(a ^ self.members_created.rotate_left(32));
        format!(
            "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// SyncGroup (Kafka's `handleSyncGroup`): answered at once unless the group is completing
    /// a rebalance and this is a follower whose leader has not synced yet.
    pub fn sync_group(
        &mut self,
        token: RequestToken,
        request: &SyncGroupRequest,
        now_ms: i64,
    ) -> Answer<SyncGroupResult> {
        self.tick(now_ms);
        let fail = |error| Answer::Now(SyncGroupResult::error(error));
        let (groups, mut out) = self.out(now_ms);
        let Some(group) = groups.get_mut(&request.group_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        if !group.members.contains_key(&request.member_id) {
            return fail(GroupError::UnknownMemberId);
        }
        if request.generation_id != group.generation_id {
            return fail(GroupError::IllegalGeneration);
        }
        let mismatch = |asked: &Option<String>, ours: &Option<String>| {
            asked.as_ref().is_some_and(|a| Some(a) != ours.as_ref())
        };
        if mismatch(&request.protocol_type, &group.protocol_type)
            || mismatch(&request.protocol_name, &group.protocol_name)
        {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance => group.sync_completing(token, request, &mut out),
            GroupState::Stable => Answer::Now(group.sync_stable(&request.member_id, now_ms)),
        }
    }

    /// Heartbeat (Kafka's `handleHeartbeat`): keeps the member's session; tells it to rejoin
    /// while a rebalance is in progress.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        now_ms: i64,
    ) -> GroupError {
        self.tick(now_ms);
        let Some(group) = self.groups.get_mut(group_id) else {
            return GroupError::UnknownMemberId;
        };
        let state = group.state;
        let generation = group.generation_id;
        let Some(member) = group.members.get_mut(member_id) else {
            return GroupError::UnknownMemberId;
        };
        if generation_id != generation {
            return GroupError::IllegalGeneration;
        }
        member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match state {
            GroupState::PreparingRebalance => GroupError::RebalanceInProgress,
            GroupState::Empty | GroupState::Dead => GroupError::UnknownMemberId,
            GroupState::CompletingRebalance | GroupState::Stable => GroupError::None,
        }
    }

    /// LeaveGroup (Kafka's `handleLeaveGroup`, v3+ with a batch of members): one error per
    /// member, or a group-level error.
    pub fn leave_group(
        &mut self,
        group_id: &str,
        member_ids: &[String],
        now_ms: i64,
    ) -> Result<Vec<GroupError>, GroupError> {
        self.tick(now_ms);
        let (groups, mut out) = self.out(now_ms);
        let Some(group) = groups.get_mut(group_id) else {
            return Ok(vec![GroupError::UnknownMemberId; member_ids.len()]);
        };
        let answers = member_ids
            .iter()
            .map(|member_id| {
                if group.pending_members.remove(member_id).is_some() {
                    group.try_complete_join(&mut out);
                    GroupError::None
                } else if group.members.contains_key(member_id) {
                    group.remove_member_and_rebalance(member_id, RemovalReason::Left, &mut out);
                    GroupError::None
                } else {
                    GroupError::UnknownMemberId
                }
            })
            .collect();
        self.tick(now_ms);
        Ok(answers)
    }

    /// OffsetCommit (Kafka's `handleCommitOffsets`): one error per offset, in order. The
    /// accepted offsets are appended to the offsets log and synced before this returns.
    pub fn commit_offsets(
        &mut self,
        storage: &mut impl Storage,
        request: &OffsetCommitRequest,
        now_ms: i64,
    ) -> Vec<GroupError> {
        self.tick(now_ms);
        let all = |error| vec![error; request.offsets.len()];
        if request.group_id.is_empty() || request.group_id.len() > MAX_STORED_STRING_BYTES {
            return all(GroupError::InvalidGroupId);
        }
        if let Err(error) = self.check_commit(request, now_ms) {
            return all(error);
        }
        let mut answers = Vec::with_capacity(request.offsets.len());
        let mut records = Vec::new();
        for (partition, offset, leader_epoch, metadata) in &request.offsets {
            if metadata.len()
                > self
                    .config
                    .offset_metadata_max_bytes
                    .min(MAX_STORED_STRING_BYTES)
                || partition.topic.len() > MAX_STORED_STRING_BYTES
            {
                answers.push(GroupError::OffsetMetadataTooLarge);
                continue;
            }
            answers.push(GroupError::None);
            records.push(OffsetRecord::Commit {
                group_id: request.group_id.clone(),
                partition: partition.clone(),
                offset: CommittedOffset {
                    offset: *offset,
                    leader_epoch: *leader_epoch,
                    metadata: metadata.clone(),
                    commit_timestamp_ms: now_ms,
                },
            });
        }
        if records.is_empty() {
            return answers;
        }
        match offsets_log::append(storage, &records) {
            Ok(bytes) => self.log_bytes += bytes,
            Err(_) => {
                return answers
                    .into_iter()
                    .map(|a| match a {
                        GroupError::None => GroupError::NotCoordinator,
                        other => other,
                    })
                    .collect();
            }
        }
        for record in records {
            if let OffsetRecord::Commit {
                group_id,
                partition,
                offset,
            } = record
            {
                self.store_offset(&group_id, partition, offset);
            }
        }
        self.groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id, now_ms));
        self.maybe_compact(storage);
        answers
    }

    /// The generation and member checks of an OffsetCommit (Kafka's `doCommitOffsets`); a
    /// member's commit also counts as its heartbeat.
    fn check_commit(
        &mut self,
        request: &OffsetCommitRequest,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let simple = request.generation_id < 0;
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return if simple {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        if simple && group.state == GroupState::Empty {
            return Ok(());
        }
        let generation = group.generation_id;
        let state = group.state;
        let Some(member) = group.members.get_mut(&request.member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if request.generation_id != generation {
            return Err(GroupError::IllegalGeneration);
        }
        if state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        Ok(())
    }

    fn store_offset(&mut self, group_id: &str, partition: TopicPartition, offset: CommittedOffset) {
        let added = offsets_log::commit_record_bytes(group_id, &partition, &offset.metadata);
        let offsets = self.offsets.entry(group_id.to_string()).or_default();
        if let Some(old) = offsets.insert(partition.clone(), offset) {
            let removed = offsets_log::commit_record_bytes(group_id, &partition, &old.metadata);
            self.live_bytes -= removed;
        }
        self.live_bytes += added;
    }

    fn forget_offsets(&mut self, group_id: &str) {
        if let Some(offsets) = self.offsets.remove(group_id) {
            for (partition, offset) in &offsets {
                self.live_bytes -=
                    offsets_log::commit_record_bytes(group_id, partition, &offset.metadata);
            }
        }
    }

    /// Rewrites the offsets log with the live commits once it is more than twice as large.
    fn maybe_compact(&mut self, storage: &mut impl Storage) {
        if self.log_bytes < offsets_log::COMPACT_MIN_BYTES || self.log_bytes < 2 * self.live_bytes {
            return;
        }
        // A failed rewrite leaves the old log in place (atomic replacement): nothing lost.
        if let Ok(len) = offsets_log::rewrite(storage, &self.offsets) {
            self.log_bytes = len;
        }
    }

    /// OffsetFetch: the committed offset of each partition asked for (`None`: every partition
    /// the group committed), `None` where nothing was committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, Option<CommittedOffset>)> {
        let offsets = self.offsets.get(group_id);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|p| (p.clone(), offsets.and_then(|o| o.get(p)).cloned()))
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|(p, o)| (p.clone(), Some(o.clone())))
                .collect(),
        }
    }

    /// ListGroups: every group, or those in `states` when given (v4+).
    pub fn list_groups(&self, states: Option<&[GroupState]>) -> Vec<GroupListing> {
        self.groups
            .values()
            .filter(|g| states.is_none_or(|s| s.contains(&g.state)))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DescribeGroups for one group (Kafka's `GroupMetadata.summary`): a group the
    /// coordinator does not know is Dead; members' metadata and assignments only when Stable.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Default::default()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Default::default()
                },
            })
            .collect();
        GroupDescription {
            group_id: group.group_id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { protocol } else { String::new() },
            members,
        }
    }

    /// DeleteGroups: an empty group and its offsets are deleted (durably); a group with
    /// members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.
    pub fn delete_groups(
        &mut self,
        storage: &mut impl Storage,
        group_ids: &[String],
        now_ms: i64,
    ) -> Vec<GroupError> {
        self.tick(now_ms);
        group_ids
            .iter()
            .map(|group_id| {
                let Some(group) = self.groups.get(group_id) else {
                    return GroupError::GroupIdNotFound;
                };
                if group.state != GroupState::Empty || !group.pending_members.is_empty() {
                    return GroupError::NonEmptyGroup;
                }
                if self.offsets.contains_key(group_id) {
                    let record = OffsetRecord::GroupDeleted {
                        group_id: group_id.clone(),
                    };
                    match offsets_log::append(storage, &[record]) {
                        Ok(bytes) => self.log_bytes += bytes,
                        Err(_) => return GroupError::NotCoordinator,
                    }
                    self.forget_offsets(group_id);
                }
                self.groups.remove(group_id);
                GroupError::None
            })
            .collect()
    }
}

/// An empty group with nothing pending: nothing to keep but its offsets.
fn is_forgettable(group: &Group) -> bool {
    group.state == GroupState::Empty && group.members.is_empty() && group.pending_members.is_empty()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Group {
    /// Kafka's `addMemberAndRebalance`.
    fn add_member(
        &mut self,
        token: RequestToken,
        member_id: &str,
        request: &JoinGroupRequest,
        out: &mut Out<'_>,
    ) {
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        self.members.insert(
            member_id.to_string(),
            Member {
                member_id: member_id.to_string(),
                group_instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: request.protocols.clone(),
                assignment: Default::default(),
                awaiting_join: Some(token),
                awaiting_sync: None,
                is_new: true,
                synced: false,
                heartbeat_deadline_ms: out.now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
            },
        );
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.to_string());
        }
        self.maybe_prepare_rebalance(out);
    }

    /// Kafka's `doCurrentMemberJoinGroup`: a member id we gave out joins (again).
    fn join_known_member(
        &mut self,
        token: RequestToken,
        request: &JoinGroupRequest,
        out: &mut Out<'_>,
    ) -> Answer<JoinGroupResult> {
        let member_id = request.member_id.as_str();
        if self.pending_members.remove(member_id).is_some() {
            self.add_member(token, member_id, request, out);
            return Answer::Parked;
        }
        let state = self.state;
        let is_leader = self.is_leader(member_id);
        let Some(member) = self.members.get_mut(member_id) else {
            return Answer::Now(JoinGroupResult::error(
                GroupError::UnknownMemberId,
                member_id,
            ));
        };
        let unchanged = member.matches(&request.protocols);
        match state {
            GroupState::Empty | GroupState::Dead => Answer::Now(JoinGroupResult::error(
                GroupError::UnknownMemberId,
                member_id,
            )),
            GroupState::CompletingRebalance if unchanged => {
                Answer::Now(self.current_join_result(member_id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                member.heartbeat_deadline_ms = out.now_ms + i64::from(member.session_timeout_ms);
                Answer::Now(self.current_join_result(member_id))
            }
            _ => {
                // Kafka's `updateMemberAndRebalance`.
                member.protocols = request.protocols.clone();
                member.session_timeout_ms = request.session_timeout_ms;
                member.rebalance_timeout_ms = request.rebalance_timeout_ms;
                if let Some(old) = member.awaiting_join.replace(token) {
                    out.completed.push(Completed::Join {
                        token: old,
                        result: JoinGroupResult::error(GroupError::RebalanceInProgress, member_id),
                    });
                }
                self.maybe_prepare_rebalance(out);
                Answer::Parked
            }
        }
    }

    /// SyncGroup while completing a rebalance: a follower waits for the leader; the leader's
    /// assignment answers everyone.
    fn sync_completing(
        &mut self,
        token: RequestToken,
        request: &SyncGroupRequest,
        out: &mut Out<'_>,
    ) -> Answer<SyncGroupResult> {
        let member = self
            .members
            .get_mut(&request.member_id)
            .expect("the caller checked that the member exists");
        member.heartbeat_deadline_ms = out.now_ms + i64::from(member.session_timeout_ms);
        if let Some(old) = member.awaiting_sync.replace(token) {
            out.completed.push(Completed::Sync {
                token: old,
                result: SyncGroupResult::error(GroupError::RebalanceInProgress),
            });
        }
        if !self.is_leader(&request.member_id) {
            return Answer::Parked;
        }
        self.propagate_assignment(&request.member_id, &request.assignments, out);
        Answer::Now(self.sync_stable(&request.member_id, out.now_ms))
    }

    /// SyncGroup in Stable: the member's assignment of the current generation.
    fn sync_stable(&mut self, member_id: &str, now_ms: i64) -> SyncGroupResult {
        let member = self
            .members
            .get_mut(member_id)
            .expect("the caller checked that the member exists");
        member.synced = true;
        member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        SyncGroupResult {
            error: GroupError::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: member.assignment.clone(),
        }
    }
}
