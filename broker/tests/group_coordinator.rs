//! The classic group coordinator's rules, one behaviour per test, and a property test over
//! random schedules of joins, syncs, heartbeats, leaves and time.

mod support;

use bytes::Bytes;
use idempo_broker::group_coordinator::{
    Answer, Completed, GroupConfig, GroupCoordinator, GroupError, GroupState, JoinGroupRequest,
    JoinGroupResult, OFFSETS_FILE, OffsetCommitRequest, RequestToken, SyncGroupRequest,
    SyncGroupResult, TopicPartition,
};
use idempo_broker::{SimDisk, Storage};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const GROUP: &str = "g";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;
const DELAY_MS: i64 = 100;

fn config() -> GroupConfig {
    GroupConfig {
        group_initial_rebalance_delay_ms: DELAY_MS,
        ..GroupConfig::default()
    }
}

fn open(disk: &mut SimDisk) -> GroupCoordinator {
    GroupCoordinator::open(config(), disk, 7)
        .expect("SimDisk reads")
        .0
}

fn join_request(member_id: &str, protocols: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("sub-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

/// A coordinator, a disk and a clock, with helpers that follow a client's steps.
struct Harness {
    coordinator: GroupCoordinator,
    disk: SimDisk,
    now_ms: i64,
    next_token: u64,
    joins: BTreeMap<RequestToken, JoinGroupResult>,
    syncs: BTreeMap<RequestToken, SyncGroupResult>,
}

impl Harness {
    fn new() -> Harness {
        let mut disk = SimDisk::new();
        let coordinator = open(&mut disk);
        Harness {
            coordinator,
            disk,
            now_ms: 1_000,
            next_token: 0,
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
        }
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    fn collect(&mut self) {
        for completed in self.coordinator.take_completed() {
            match completed {
                Completed::Join { token, result } => {
                    self.joins.insert(token, result);
                }
                Completed::Sync { token, result } => {
                    self.syncs.insert(token, result);
                }
            }
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        self.coordinator.tick(self.now_ms);
        self.collect();
    }

    /// Lets the initial rebalance delay (and its extensions) run out.
    fn settle(&mut self) {
        for _ in 0..5 {
            self.advance(DELAY_MS);
        }
    }

    /// JoinGroup; returns the token and the answer if it came at once.
    fn join(&mut self, request: &JoinGroupRequest) -> (RequestToken, Option<JoinGroupResult>) {
        let token = self.token();
        let answer = self.coordinator.join_group(token, request, self.now_ms);
        self.collect();
        match answer {
            Answer::Now(result) => (token, Some(result)),
            Answer::Parked => (token, None),
        }
    }

    /// The KIP-394 first step: a member id.
    fn member_id(&mut self) -> String {
        let (_, answer) = self.join(&join_request("", &["range"]));
        let answer = answer.expect("an unknown member is answered at once");
        assert_eq!(answer.error, GroupError::MemberIdRequired);
        answer.member_id
    }

    fn joined(&self, token: RequestToken) -> Option<&JoinGroupResult> {
        self.joins.get(&token)
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation_id: i32,
        assignments: &[(&str, &str)],
    ) -> (RequestToken, Option<SyncGroupResult>) {
        let token = self.token();
        let request = SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id,
            member_id: member_id.into(),
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        };
        let answer = self.coordinator.sync_group(token, &request, self.now_ms);
        self.collect();
        match answer {
            Answer::Now(result) => (token, Some(result)),
            Answer::Parked => (token, None),
        }
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> GroupError {
        self.coordinator
            .heartbeat(GROUP, member_id, generation_id, self.now_ms)
    }

    fn state(&self) -> GroupState {
        self.coordinator
            .group(GROUP)
            .map_or(GroupState::Dead, |g| g.state)
    }

    fn commit(&mut self, member_id: &str, generation_id: i32, offset: i64) -> GroupError {
        let request = OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id,
            member_id: member_id.into(),
            offsets: vec![(tp(0), offset, -1, String::new())],
        };
        let answers = self
            .coordinator
            .commit_offsets(&mut self.disk, &request, self.now_ms);
        answers[0]
    }

    /// Two members joined and synced: (leader, follower, generation).
    fn stable_pair(&mut self) -> (String, String, i32) {
        let a = self.member_id();
        let b = self.member_id();
        let (ta, _) = self.join(&join_request(&a, &["range"]));
        let (tb, _) = self.join(&join_request(&b, &["range"]));
        self.settle();
        let ja = self.joined(ta).expect("a's join completed").clone();
        let jb = self.joined(tb).expect("b's join completed").clone();
        let (leader, follower) = if ja.leader_id == a { (a, b) } else { (b, a) };
        let generation = ja.generation_id;
        assert_eq!(jb.generation_id, generation);
        let (tf, parked) = self.sync(&follower, generation, &[]);
        assert!(parked.is_none(), "a follower waits for the leader");
        let (_, led) = self.sync(&leader, generation, &[(&leader, "p0"), (&follower, "p1")]);
        assert_eq!(
            led.expect("the leader is answered at once").assignment,
            "p0"
        );
        assert_eq!(self.syncs[&tf].assignment, "p1");
        (leader, follower, generation)
    }
}

/// The offset the group committed for partition 0, if any.
fn committed_offset_of_partition_0(coordinator: &GroupCoordinator) -> Option<i64> {
    coordinator.fetch_offsets(GROUP, Some(&[tp(0)]))[0]
        .1
        .as_ref()
        .map(|o| o.offset)
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic: "t".into(),
        partition,
    }
}

#[test]
fn a_new_member_of_a_v4_join_gets_member_id_required_with_its_id() {
    let mut h = Harness::new();
    let (_, answer) = h.join(&join_request("", &["range"]));
    let answer = answer.expect("answered at once");
    assert_eq!(answer.error, GroupError::MemberIdRequired);
    assert_eq!(answer.error.code(), 79);
    assert!(answer.member_id.starts_with("c-"), "{}", answer.member_id);
}

#[test]
fn the_first_join_waits_the_initial_rebalance_delay_then_the_leader_gets_the_members() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, now) = h.join(&join_request(&a, &["range"]));
    assert!(now.is_none(), "parked during the initial delay");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance(DELAY_MS - 1);
    assert!(h.joined(ta).is_none(), "still waiting");
    h.advance(1);
    let result = h.joined(ta).expect("completed after the delay");
    assert_eq!(result.error, GroupError::None);
    assert_eq!(result.generation_id, 1);
    assert_eq!(result.leader_id, a);
    assert_eq!(result.protocol_name.as_deref(), Some("range"));
    assert_eq!(result.members.len(), 1);
    assert_eq!(result.members[0].metadata, "sub-range");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_member_joining_during_the_initial_delay_extends_it() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS / 2);
    let (tb, _) = h.join(&join_request(&b, &["range"]));
    h.advance(DELAY_MS / 2);
    assert!(h.joined(ta).is_none(), "a new member extended the delay");
    h.advance(DELAY_MS);
    assert_eq!(h.joined(ta).expect("completed").generation_id, 1);
    assert_eq!(h.joined(tb).expect("completed").generation_id, 1);
}

#[test]
fn only_the_leader_gets_the_member_list_and_sync_hands_each_member_its_assignment() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    assert_ne!(leader, follower);
    assert_eq!(generation, 1);
    assert_eq!(h.state(), GroupState::Stable);
    let (_, again) = h.sync(&follower, generation, &[]);
    assert_eq!(again.expect("stable: at once").assignment, "p1");
}

#[test]
fn the_protocol_is_one_every_member_supports_and_most_prefer() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let c = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["cooperative-sticky", "range"]));
    let _ = h.join(&join_request(&b, &["range", "roundrobin"]));
    let _ = h.join(&join_request(&c, &["roundrobin", "range"]));
    h.settle();
    assert_eq!(
        h.joined(ta).expect("completed").protocol_name.as_deref(),
        Some("range"),
        "range is the only protocol all three support"
    );
}

#[test]
fn a_member_with_no_protocol_in_common_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    let _ = h.stable_pair();
    let (_, answer) = h.join(&join_request("", &["roundrobin"]));
    assert_eq!(
        answer.expect("at once").error,
        GroupError::InconsistentGroupProtocol
    );
}

#[test]
fn a_join_of_a_new_member_rebalances_a_stable_group_and_bumps_the_generation() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let c = h.member_id();
    let (tc, _) = h.join(&join_request(&c, &["range"]));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&leader, generation),
        GroupError::RebalanceInProgress
    );
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    assert!(h.joined(tc).is_none(), "waits for the follower to rejoin");
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    for token in [tc, tl, tf] {
        let result = h
            .joined(token)
            .expect("everyone rejoined: completed at once");
        assert_eq!(result.generation_id, generation + 1);
    }
    assert_eq!(h.joined(tl).expect("joined").members.len(), 3);
}

#[test]
fn a_stale_generation_is_refused_with_illegal_generation() {
    let mut h = Harness::new();
    let (leader, _, generation) = h.stable_pair();
    assert_eq!(
        h.heartbeat(&leader, generation - 1),
        GroupError::IllegalGeneration
    );
    assert_eq!(
        h.commit(&leader, generation + 1, 5),
        GroupError::IllegalGeneration
    );
    let (_, sync) = h.sync(&leader, generation - 1, &[]);
    assert_eq!(sync.expect("at once").error, GroupError::IllegalGeneration);
    assert_eq!(GroupError::IllegalGeneration.code(), 22);
}

#[test]
fn an_unknown_member_is_refused_with_unknown_member_id() {
    let mut h = Harness::new();
    let (_, _, generation) = h.stable_pair();
    assert_eq!(
        h.heartbeat("nobody", generation),
        GroupError::UnknownMemberId
    );
    assert_eq!(
        h.commit("nobody", generation, 1),
        GroupError::UnknownMemberId
    );
    let (_, join) = h.join(&join_request("nobody", &["range"]));
    assert_eq!(join.expect("at once").error, GroupError::UnknownMemberId);
}

#[test]
fn a_leave_rebalances_and_the_other_member_takes_the_group_alone() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let left = h
        .coordinator
        .leave_group(GROUP, std::slice::from_ref(&leader), h.now_ms)
        .expect("the group exists");
    assert_eq!(left, vec![GroupError::None]);
    assert_eq!(
        h.heartbeat(&follower, generation),
        GroupError::RebalanceInProgress
    );
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    let result = h.joined(tf).expect("the only member rejoined: completed");
    assert_eq!(result.generation_id, generation + 1);
    assert_eq!(result.leader_id, follower, "the leader left: a new one");
    assert_eq!(result.members.len(), 1);
}

#[test]
fn a_silent_member_is_removed_after_its_session_timeout() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    h.advance(i64::from(SESSION_MS) / 2);
    assert_eq!(h.heartbeat(&leader, generation), GroupError::None);
    h.advance(i64::from(SESSION_MS) / 2 - 1);
    assert_eq!(
        h.heartbeat(&leader, generation),
        GroupError::None,
        "not yet expired"
    );
    h.advance(1);
    assert_eq!(
        h.heartbeat(&leader, generation),
        GroupError::RebalanceInProgress
    );
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "the follower expired"
    );
    assert!(
        !h.coordinator
            .group(GROUP)
            .expect("exists")
            .members
            .contains_key(&follower)
    );
    assert_eq!(
        h.heartbeat(&follower, generation),
        GroupError::UnknownMemberId
    );
}

#[test]
fn a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let c = h.member_id();
    let (tc, _) = h.join(&join_request(&c, &["range"]));
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    // The follower keeps heartbeating but never rejoins.
    for _ in 0..(REBALANCE_MS / 2_000) {
        h.advance(2_000);
        let _ = h.heartbeat(&follower, generation);
    }
    let result = h.joined(tl).expect("the rebalance timed out and completed");
    assert_eq!(result.members.len(), 2, "the follower was removed");
    assert!(h.joined(tc).is_some());
}

#[test]
fn the_leader_joining_again_in_a_completing_rebalance_gets_the_same_generation() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let first = h.joined(ta).expect("completed").clone();
    let (_, again) = h.join(&join_request(&a, &["range"]));
    assert_eq!(
        again.expect("at once"),
        first,
        "a retried join is answered the same"
    );
}

#[test]
fn a_sync_during_a_rebalance_is_refused_with_rebalance_in_progress() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let _ = h.join(&join_request(&leader, &["range"]));
    let (_, sync) = h.sync(&follower, generation, &[]);
    assert_eq!(
        sync.expect("at once").error,
        GroupError::RebalanceInProgress
    );
    assert_eq!(GroupError::RebalanceInProgress.code(), 27);
}

#[test]
fn a_parked_sync_is_answered_rebalance_in_progress_when_the_group_rebalances_again() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let _ = h.join(&join_request(&b, &["range"]));
    h.settle();
    let generation = h.joined(ta).expect("joined").generation_id;
    let follower = if h.joined(ta).expect("joined").leader_id == a {
        b
    } else {
        a
    };
    let (ts, _) = h.sync(&follower, generation, &[]);
    let c = h.member_id();
    let _ = h.join(&join_request(&c, &["range"]));
    assert_eq!(h.syncs[&ts].error, GroupError::RebalanceInProgress);
}

#[test]
fn a_first_join_without_protocols_is_inconsistent_and_creates_no_group() {
    let mut h = Harness::new();
    let (_, answer) = h.join(&join_request("", &[]));
    assert_eq!(
        answer.expect("at once").error,
        GroupError::InconsistentGroupProtocol
    );
    assert!(h.coordinator.group(GROUP).is_none());
}

#[test]
fn a_session_timeout_outside_the_bounds_is_invalid_session_timeout() {
    let mut h = Harness::new();
    let mut request = join_request("", &["range"]);
    request.session_timeout_ms = 10;
    let (_, answer) = h.join(&request);
    assert_eq!(
        answer.expect("at once").error,
        GroupError::InvalidSessionTimeout
    );
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let (tb, _) = h.join(&join_request(&b, &["range"]));
    h.settle();
    let ja = h.joined(ta).expect("joined").clone();
    let generation = ja.generation_id;
    let (leader, follower) = if ja.leader_id == a { (a, b) } else { (b, a) };
    assert!(h.joined(tb).is_some());
    let _ = h.sync(&leader, generation, &[]);
    for _ in 0..(REBALANCE_MS / 2_000) {
        h.advance(2_000);
        let _ = h.heartbeat(&follower, generation);
        let _ = h.heartbeat(&leader, generation);
    }
    let group = h.coordinator.group(GROUP).expect("exists");
    assert!(
        !group.members.contains_key(&follower),
        "never synced: removed"
    );
}

#[test]
fn a_group_of_one_that_leaves_is_empty_at_a_new_generation() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    let _ = h.sync(&a, generation, &[(&a, "all")]);
    assert_eq!(h.commit(&a, generation, 3), GroupError::None);
    let _ = h.coordinator.leave_group(GROUP, &[a], h.now_ms);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(
        h.coordinator
            .group(GROUP)
            .expect("kept: it has offsets")
            .generation_id,
        generation + 1
    );
}

#[test]
fn a_simple_commit_with_generation_minus_one_is_allowed_only_while_the_group_is_empty() {
    let mut h = Harness::new();
    assert_eq!(
        h.commit("", -1, 7),
        GroupError::None,
        "no group yet: created"
    );
    let _ = h.stable_pair();
    assert_eq!(h.commit("", -1, 8), GroupError::UnknownMemberId);
    let fetched = h.coordinator.fetch_offsets(GROUP, Some(&[tp(0), tp(1)]));
    assert_eq!(fetched[0].1.as_ref().map(|o| o.offset), Some(7));
    assert_eq!(fetched[1].1, None, "nothing committed for partition 1");
}

#[test]
fn a_commit_needs_the_current_generation_and_a_completed_sync() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    assert_eq!(h.commit(&a, generation, 1), GroupError::RebalanceInProgress);
    let _ = h.sync(&a, generation, &[]);
    assert_eq!(h.commit(&a, generation, 1), GroupError::None);
}

#[test]
fn oversized_commit_metadata_is_offset_metadata_too_large() {
    let mut h = Harness::new();
    let request = OffsetCommitRequest {
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![
            (tp(0), 1, -1, "x".repeat(5_000)),
            (tp(1), 2, -1, String::new()),
        ],
    };
    let answers = h
        .coordinator
        .commit_offsets(&mut h.disk, &request, h.now_ms);
    assert_eq!(
        answers,
        vec![GroupError::OffsetMetadataTooLarge, GroupError::None]
    );
}

#[test]
fn committed_offsets_survive_a_crash_and_reopen() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 41), GroupError::None);
    assert_eq!(h.commit("", -1, 42), GroupError::None);
    h.disk.crash(|_, _| 0);
    let reopened = open(&mut h.disk);
    let fetched = reopened.fetch_offsets(GROUP, None);
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].1.as_ref().map(|o| o.offset), Some(42));
    assert_eq!(
        reopened.group(GROUP).map(|g| g.state),
        Some(GroupState::Empty)
    );
}

#[test]
fn a_torn_tail_of_the_offsets_log_is_cut_off_at_reopen() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 10), GroupError::None);
    let good = h.disk.file_len(OFFSETS_FILE).expect("written");
    // A crash inside the next append: part of a record reached the disk.
    h.disk
        .append(OFFSETS_FILE, &[0, 0, 0, 40, 1, 2, 3])
        .expect("appends");
    h.disk.sync(OFFSETS_FILE).expect("syncs");
    let (reopened, replay) =
        GroupCoordinator::open(config(), &mut h.disk, 8).expect("SimDisk reads");
    assert_eq!(replay.records, 1);
    assert_eq!(replay.truncated_bytes, 7);
    assert_eq!(h.disk.file_len(OFFSETS_FILE).expect("exists"), good);
    assert_eq!(committed_offset_of_partition_0(&reopened), Some(10));
}

#[test]
fn a_corrupt_record_ends_the_replay_there() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 10), GroupError::None);
    let first = h.disk.file_len(OFFSETS_FILE).expect("written");
    assert_eq!(h.commit("", -1, 11), GroupError::None);
    let mut bytes = h.disk.read_all(OFFSETS_FILE).expect("reads").to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    h.disk.write_atomic(OFFSETS_FILE, &bytes).expect("writes");
    h.disk.sync(OFFSETS_FILE).expect("syncs");
    let (reopened, replay) =
        GroupCoordinator::open(config(), &mut h.disk, 9).expect("SimDisk reads");
    assert_eq!(
        replay.truncated_bytes,
        h.disk
            .file_len(OFFSETS_FILE)
            .map_or(0, |_| bytes.len() as u64 - first)
    );
    assert_eq!(
        committed_offset_of_partition_0(&reopened),
        Some(10),
        "the corrupt commit is not believed"
    );
}

#[test]
fn a_deleted_group_stays_deleted_after_reopen_and_a_non_empty_one_is_refused() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 5), GroupError::None);
    let _ = h.stable_pair();
    let refused =
        h.coordinator
            .delete_groups(&mut h.disk, &[GROUP.into(), "other".into()], h.now_ms);
    assert_eq!(
        refused,
        vec![GroupError::NonEmptyGroup, GroupError::GroupIdNotFound]
    );
    let members: Vec<String> = h
        .coordinator
        .group(GROUP)
        .expect("exists")
        .members
        .keys()
        .cloned()
        .collect();
    let _ = h.coordinator.leave_group(GROUP, &members, h.now_ms);
    let deleted = h
        .coordinator
        .delete_groups(&mut h.disk, &[GROUP.into()], h.now_ms);
    assert_eq!(deleted, vec![GroupError::None]);
    let reopened = open(&mut h.disk);
    assert!(reopened.group(GROUP).is_none());
    assert!(reopened.fetch_offsets(GROUP, None).is_empty());
}

#[test]
fn the_offsets_log_is_compacted_once_mostly_stale_and_replays_the_same() {
    let mut h = Harness::new();
    for offset in 0..40_000 {
        assert_eq!(h.commit("", -1, offset), GroupError::None);
    }
    let len = h.disk.file_len(OFFSETS_FILE).expect("exists");
    assert!(len < 2 * 1024 * 1024, "compacted: {len} bytes");
    let reopened = open(&mut h.disk);
    assert_eq!(committed_offset_of_partition_0(&reopened), Some(39_999));
}

#[test]
fn list_and_describe_report_state_protocol_and_members() {
    let mut h = Harness::new();
    let (leader, follower, _) = h.stable_pair();
    let listed = h.coordinator.list_groups(None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, GroupState::Stable);
    assert_eq!(listed[0].protocol_type, "consumer");
    assert!(
        h.coordinator
            .list_groups(Some(&[GroupState::Empty]))
            .is_empty()
    );
    let described = h.coordinator.describe_group(GROUP);
    assert_eq!(described.state.name(), "Stable");
    assert_eq!(described.protocol_name, "range");
    let assignments: BTreeMap<_, _> = described
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.clone()))
        .collect();
    assert_eq!(assignments[&leader], "p0");
    assert_eq!(assignments[&follower], "p1");
    assert_eq!(h.coordinator.describe_group("nope").state, GroupState::Dead);
}

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Step {
    /// A new client asks to join (and then joins with its id).
    NewMember,
    /// Member `i` (modulo the known ones) joins again.
    Rejoin(usize),
    /// Member `i` syncs; as leader it assigns "<member>@<generation>" to everyone it knows.
    Sync(usize),
    /// Member `i` heartbeats.
    Heartbeat(usize),
    /// Member `i` leaves.
    Leave(usize),
    /// Time passes.
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::NewMember),
        2 => (0..8usize).prop_map(Step::Rejoin),
        3 => (0..8usize).prop_map(Step::Sync),
        3 => (0..8usize).prop_map(Step::Heartbeat),
        1 => (0..8usize).prop_map(Step::Leave),
        2 => (0..4_000i64).prop_map(Step::Wait),
    ]
}

/// What a generation's leader was told, and what it assigned.
#[derive(Default)]
struct GenerationSeen {
    leader: Option<String>,
    members: Vec<String>,
}

proptest! {
    /// Property: over any schedule of joins, syncs, heartbeats, leaves and time, (1) every
    /// successful JoinGroup answer of one generation names the same leader, and the leader's
    /// member list is exactly the set of members answered for that generation; (2) every
    /// successful SyncGroup answer hands a member the assignment the generation's leader gave
    /// it ("<member>@<generation>"), so no member ever receives another member's or another
    /// generation's assignment; (3) generations only grow; (4) no parked request is lost: each
    /// is answered exactly once or still belongs to a member of the group.
    #[test]
    fn every_stable_assignment_was_given_by_that_generations_leader_to_exactly_its_members(
        steps in prop::collection::vec(step(), 1..120)
    ) {
        let mut h = Harness::new();
        let mut members: Vec<String> = Vec::new();
        let mut generation_of: BTreeMap<String, i32> = BTreeMap::new();
        let mut generations: BTreeMap<i32, GenerationSeen> = BTreeMap::new();
        let mut join_tokens: BTreeMap<RequestToken, String> = BTreeMap::new();
        let mut sync_tokens: BTreeMap<RequestToken, (String, i32)> = BTreeMap::new();
        let mut last_generation = 0;
        let mut answered: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
        for step in steps {
            match step {
                Step::NewMember => {
                    let id = h.member_id();
                    let (token, _) = h.join(&join_request(&id, &["range"]));
                    join_tokens.insert(token, id.clone());
                    members.push(id);
                }
                Step::Rejoin(i) if !members.is_empty() => {
                    let id = members[i % members.len()].clone();
                    let (token, now) = h.join(&join_request(&id, &["range"]));
                    match now {
                        Some(result) => { h.joins.insert(token, result); }
                        None => { join_tokens.insert(token, id); }
                    }
                }
                Step::Sync(i) if !members.is_empty() => {
                    let id = members[i % members.len()].clone();
                    let generation = generation_of.get(&id).copied().unwrap_or(-1);
                    let known: Vec<String> = generations
                        .get(&generation)
                        .map(|g| g.members.clone())
                        .unwrap_or_default();
                    let assignment: Vec<(String, String)> = known
                        .iter()
                        .map(|m| (m.clone(), format!("{m}@{generation}")))
                        .collect();
                    let refs: Vec<(&str, &str)> =
                        assignment.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
                    let (token, now) = h.sync(&id, generation, &refs);
                    if let Some(result) = now {
                        h.syncs.insert(token, result);
                    }
                    sync_tokens.insert(token, (id, generation));
                }
                Step::Heartbeat(i) if !members.is_empty() => {
                    let id = members[i % members.len()].clone();
                    let generation = generation_of.get(&id).copied().unwrap_or(-1);
                    let _ = h.heartbeat(&id, generation);
                }
                Step::Leave(i) if !members.is_empty() => {
                    let id = members.remove(i % members.len());
                    let _ = h.coordinator.leave_group(GROUP, &[id], h.now_ms);
                    h.collect();
                }
                Step::Wait(ms) => h.advance(ms),
                _ => {}
            }
            // Check every join answered so far.
            for (token, result) in std::mem::take(&mut h.joins) {
                join_tokens.remove(&token);
                if result.error != GroupError::None {
                    continue;
                }
                answered.entry(result.generation_id).or_default().insert(result.member_id.clone());
                prop_assert!(result.generation_id >= last_generation, "generations only grow");
                last_generation = result.generation_id;
                generation_of.insert(result.member_id.clone(), result.generation_id);
                let seen = generations.entry(result.generation_id).or_default();
                let leader = seen.leader.get_or_insert(result.leader_id.clone());
                prop_assert_eq!(&*leader, &result.leader_id, "one leader per generation");
                if result.member_id == result.leader_id {
                    seen.members = result.members.iter().map(|m| m.member_id.clone()).collect();
                }
            }
            for (token, result) in std::mem::take(&mut h.syncs) {
                let (member, generation) = sync_tokens.remove(&token).expect("a sync we sent");
                if result.error == GroupError::None {
                    let expected = if generations[&generation].members.contains(&member) {
                        format!("{member}@{generation}")
                    } else {
                        String::new()
                    };
                    prop_assert_eq!(&result.assignment[..], expected.as_bytes());
                }
            }
        }
        // Every still-parked request belongs to a current member.
        let group = h.coordinator.group(GROUP);
        for member in join_tokens.values() {
            prop_assert!(group.is_some_and(|g| g.members.contains_key(member)),
                "a parked join of {} was lost", member);
        }
        for (member, _) in sync_tokens.values() {
            prop_assert!(group.is_some_and(|g| g.members.contains_key(member)),
                "a parked sync of {} was lost", member);
        }
        // (1) the leader's list is exactly the members answered for its generation.
        for (generation, seen) in &generations {
            if seen.members.is_empty() {
                continue; // the leader's answer is still parked (or it was never the leader)
            }
            let listed: BTreeSet<String> = seen.members.iter().cloned().collect();
            prop_assert_eq!(Some(&listed), answered.get(generation), "generation {}", generation);
        }
    }
}

// Rules pinned by mutation testing (bench/MUTANTS.md): one test per rule.

#[test]
fn member_ids_are_the_client_id_and_a_uuid_shaped_splitmix64_of_the_start_seed_and_count() {
    let mut h = Harness::new(); // seed 7
    let first = h.member_id();
    let second = h.member_id();
    // SplitMix64 (Steele, Lea, Flood 2014) of seed ^ count, then of that ^ count.rotl(32).
    assert_eq!(first, "c-bd64a5d9-adef-e000-a48a-7e12f0cc7851");
    assert_eq!(second, "c-63033b0c-a389-c35a-9c2e-bf91f399af3c");
    let mut disk = SimDisk::new();
    let (mut restarted, _) = GroupCoordinator::open(config(), &mut disk, 8).expect("SimDisk reads");
    let Answer::Now(answer) =
        restarted.join_group(RequestToken(1), &join_request("", &["range"]), 0)
    else {
        panic!("an unknown member is answered at once");
    };
    assert_eq!(
        answer.member_id, "c-aeaf52fe-be70-6064-5c79-ce96beeabd73",
        "another start seed, other ids"
    );
}

#[test]
fn the_coordinator_counts_the_members_of_every_group() {
    let mut h = Harness::new();
    assert_eq!(h.coordinator.member_count(), 0);
    let _ = h.stable_pair();
    assert_eq!(h.coordinator.member_count(), 2);
    let mut other = join_request("", &["range"]);
    other.group_id = "other".into();
    other.require_known_member_id = false;
    let _ = h.join(&other);
    assert_eq!(h.coordinator.member_count(), 3, "members of both groups");
}

#[test]
fn rebalances_and_removals_are_reported_as_events_once() {
    use idempo_broker::group_coordinator::{GroupEvent, RemovalReason};
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    let _ = h.sync(&a, generation, &[(&a, "p0")]);
    let _ = h
        .coordinator
        .leave_group(GROUP, std::slice::from_ref(&a), h.now_ms);
    let group_id = GROUP.to_string();
    assert_eq!(
        h.coordinator.take_events(),
        vec![
            GroupEvent::RebalanceStarted {
                group_id: group_id.clone(),
                generation_id: 0
            },
            GroupEvent::Rebalanced {
                group_id: group_id.clone(),
                generation_id: 1,
                members: 1,
                protocol_name: Some("range".into()),
                leader_id: Some(a.clone()),
            },
            GroupEvent::Stabilized {
                group_id: group_id.clone(),
                generation_id: 1
            },
            GroupEvent::MemberRemoved {
                group_id: group_id.clone(),
                member_id: a.clone(),
                reason: RemovalReason::Left
            },
            GroupEvent::RebalanceStarted {
                group_id: group_id.clone(),
                generation_id: 1
            },
            GroupEvent::Rebalanced {
                group_id,
                generation_id: 2,
                members: 0,
                protocol_name: None,
                leader_id: None,
            },
        ]
    );
    assert!(h.coordinator.take_events().is_empty(), "taken once");
}

#[test]
fn the_next_deadline_is_the_earliest_of_the_join_sync_session_and_pending_deadlines() {
    let mut h = Harness::new();
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        None,
        "no group: nothing to wait for"
    );
    let start = h.now_ms;
    let a = h.member_id();
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        Some(start + i64::from(SESSION_MS)),
        "a KIP-394 member id expires after its session timeout"
    );
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        Some(start + DELAY_MS),
        "the initial delay; a member with a parked join is not expiring"
    );
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    let joined_at = h.now_ms;
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        Some(joined_at + i64::from(SESSION_MS)),
        "completing: the session (10 s) before the sync deadline (20 s)"
    );
    h.advance(1_000);
    let _ = h.sync(&a, generation, &[(&a, "p0")]);
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        Some(joined_at + 1_000 + i64::from(SESSION_MS)),
        "stable: the session, renewed by the sync"
    );
}

#[test]
fn an_empty_or_oversized_group_id_is_invalid_group_id() {
    let mut h = Harness::new();
    for group_id in [String::new(), "g".repeat(65_536)] {
        let mut request = join_request("", &["range"]);
        request.group_id = group_id.clone();
        let (_, answer) = h.join(&request);
        assert_eq!(answer.expect("at once").error, GroupError::InvalidGroupId);
        let commit = OffsetCommitRequest {
            group_id,
            generation_id: -1,
            member_id: String::new(),
            offsets: vec![(tp(0), 1, -1, String::new()), (tp(1), 1, -1, String::new())],
        };
        assert_eq!(
            h.coordinator.commit_offsets(&mut h.disk, &commit, h.now_ms),
            vec![GroupError::InvalidGroupId; 2]
        );
    }
    let mut longest = join_request("", &["range"]);
    longest.group_id = "g".repeat(65_535);
    let (_, answer) = h.join(&longest);
    assert_eq!(
        answer.expect("at once").error,
        GroupError::MemberIdRequired,
        "u16::MAX bytes fit"
    );
    assert!(
        h.coordinator.list_groups(None).len() == 1,
        "only the valid id made a group"
    );
    let commit = OffsetCommitRequest {
        group_id: "c".repeat(65_535),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![(tp(0), 1, -1, String::new())],
    };
    assert_eq!(
        h.coordinator.commit_offsets(&mut h.disk, &commit, h.now_ms),
        vec![GroupError::None],
        "a commit's group id of u16::MAX bytes fits too"
    );
}

#[test]
fn session_timeouts_at_the_bounds_are_accepted_and_beyond_them_refused() {
    let mut h = Harness::new();
    let bounds = config();
    for (timeout, error) in [
        (
            bounds.group_min_session_timeout_ms - 1,
            GroupError::InvalidSessionTimeout,
        ),
        (
            bounds.group_min_session_timeout_ms,
            GroupError::MemberIdRequired,
        ),
        (
            bounds.group_max_session_timeout_ms,
            GroupError::MemberIdRequired,
        ),
        (
            bounds.group_max_session_timeout_ms + 1,
            GroupError::InvalidSessionTimeout,
        ),
    ] {
        let mut request = join_request("", &["range"]);
        request.session_timeout_ms = timeout;
        let (_, answer) = h.join(&request);
        assert_eq!(
            answer.expect("at once").error,
            error,
            "session.timeout.ms {timeout}"
        );
    }
}

#[test]
fn a_group_at_group_max_size_refuses_new_members_but_not_its_own() {
    let mut disk = SimDisk::new();
    let (coordinator, _) = GroupCoordinator::open(
        GroupConfig {
            group_max_size: 2,
            ..config()
        },
        &mut disk,
        7,
    )
    .expect("SimDisk reads");
    let mut h = Harness::new();
    h.coordinator = coordinator;
    let a = h.member_id();
    let b = h.member_id(); // a pending member counts
    let (_, third) = h.join(&join_request("", &["range"]));
    assert_eq!(
        third.expect("at once").error,
        GroupError::GroupMaxSizeReached
    );
    assert_eq!(GroupError::GroupMaxSizeReached.code(), 81);
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let (tb, _) = h.join(&join_request(&b, &["range"]));
    h.settle();
    assert_eq!(
        h.joined(ta).expect("joined").members.len() + h.joined(tb).expect("joined").members.len(),
        2
    );
}

#[test]
fn a_member_id_never_used_to_join_expires_after_its_session_timeout() {
    use idempo_broker::group_coordinator::{GroupEvent, RemovalReason};
    let mut h = Harness::new();
    let a = h.member_id();
    h.advance(i64::from(SESSION_MS) - 1);
    assert!(
        h.coordinator
            .group(GROUP)
            .expect("exists")
            .pending_members
            .contains_key(&a)
    );
    h.advance(1);
    assert!(
        h.coordinator
            .group(GROUP)
            .is_none_or(|g| g.pending_members.is_empty())
    );
    assert!(
        h.coordinator
            .take_events()
            .contains(&GroupEvent::MemberRemoved {
                group_id: GROUP.into(),
                member_id: a.clone(),
                reason: RemovalReason::PendingExpired,
            })
    );
    let (_, late) = h.join(&join_request(&a, &["range"]));
    assert_eq!(late.expect("at once").error, GroupError::UnknownMemberId);
}

#[test]
fn an_empty_group_without_offsets_is_forgotten_after_the_retention_and_one_with_offsets_kept() {
    use idempo_broker::group_coordinator::EMPTY_GROUP_RETENTION_MS;
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let _ = h.joined(ta).expect("joined");
    let _ = h
        .coordinator
        .leave_group(GROUP, std::slice::from_ref(&a), h.now_ms);
    assert_eq!(h.state(), GroupState::Empty);
    h.advance(EMPTY_GROUP_RETENTION_MS - 1);
    assert!(h.coordinator.group(GROUP).is_some(), "not yet");
    h.advance(1);
    assert!(h.coordinator.group(GROUP).is_none(), "forgotten");
    assert_eq!(h.commit("", -1, 3), GroupError::None);
    h.advance(2 * EMPTY_GROUP_RETENTION_MS);
    assert!(h.coordinator.group(GROUP).is_some(), "its offsets keep it");
}

/// A working test disk (nothing refused yet) and a coordinator opened on it.
fn opened() -> (support::TestDisk, GroupCoordinator) {
    let mut storage = support::TestDisk::default();
    let (coordinator, _) =
        GroupCoordinator::open(config(), &mut storage, 7).expect("SimDisk reads");
    (storage, coordinator)
}

#[test]
fn offsets_that_cannot_be_stored_are_not_coordinator_and_not_believed() {
    let (mut storage, mut coordinator) = opened();
    let commit = |offset| OffsetCommitRequest {
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![
            (tp(0), offset, -1, String::new()),
            (tp(1), offset, -1, "x".repeat(5_000)),
        ],
    };
    assert_eq!(
        coordinator.commit_offsets(&mut storage, &commit(1), 0),
        vec![GroupError::None, GroupError::OffsetMetadataTooLarge]
    );
    storage.refuse(support::Op::Append);
    assert_eq!(
        coordinator.commit_offsets(&mut storage, &commit(2), 0),
        vec![
            GroupError::NotCoordinator,
            GroupError::OffsetMetadataTooLarge
        ],
        "the refused offset keeps its own error"
    );
    assert_eq!(
        committed_offset_of_partition_0(&coordinator),
        Some(1),
        "an offset that was not stored is not answered"
    );
    // Deleting a group with offsets needs the log too.
    assert_eq!(
        coordinator.delete_groups(&mut storage, &[GROUP.into()], 0),
        vec![GroupError::NotCoordinator]
    );
    assert!(coordinator.group(GROUP).is_some(), "not deleted");
}

#[test]
fn group_errors_have_kafkas_codes_and_names() {
    let table = [
        (GroupError::None, 0, "NONE"),
        (
            GroupError::OffsetMetadataTooLarge,
            12,
            "OFFSET_METADATA_TOO_LARGE",
        ),
        (
            GroupError::CoordinatorNotAvailable,
            15,
            "COORDINATOR_NOT_AVAILABLE",
        ),
        (GroupError::NotCoordinator, 16, "NOT_COORDINATOR"),
        (GroupError::IllegalGeneration, 22, "ILLEGAL_GENERATION"),
        (
            GroupError::InconsistentGroupProtocol,
            23,
            "INCONSISTENT_GROUP_PROTOCOL",
        ),
        (GroupError::InvalidGroupId, 24, "INVALID_GROUP_ID"),
        (GroupError::UnknownMemberId, 25, "UNKNOWN_MEMBER_ID"),
        (
            GroupError::InvalidSessionTimeout,
            26,
            "INVALID_SESSION_TIMEOUT",
        ),
        (GroupError::RebalanceInProgress, 27, "REBALANCE_IN_PROGRESS"),
        (GroupError::NonEmptyGroup, 68, "NON_EMPTY_GROUP"),
        (GroupError::GroupIdNotFound, 69, "GROUP_ID_NOT_FOUND"),
        (GroupError::MemberIdRequired, 79, "MEMBER_ID_REQUIRED"),
        (
            GroupError::GroupMaxSizeReached,
            81,
            "GROUP_MAX_SIZE_REACHED",
        ),
    ];
    for (error, code, name) in table {
        assert_eq!((error.code(), error.name()), (code, name));
        assert_eq!(error.to_string(), format!("{name} ({code})"));
    }
}

#[test]
fn removal_reasons_and_states_read_as_kafka_says_them() {
    use idempo_broker::group_coordinator::RemovalReason;
    assert_eq!(RemovalReason::Left.to_string(), "left the group");
    assert_eq!(
        RemovalReason::SessionTimeout.to_string(),
        "session timed out"
    );
    assert_eq!(
        RemovalReason::NotRejoined.to_string(),
        "did not rejoin within the rebalance timeout"
    );
    assert_eq!(
        RemovalReason::NotSynced.to_string(),
        "did not sync within the rebalance timeout"
    );
    assert_eq!(
        RemovalReason::PendingExpired.to_string(),
        "never joined with its KIP-394 member id"
    );
    let states = [
        (GroupState::Empty, "Empty"),
        (GroupState::PreparingRebalance, "PreparingRebalance"),
        (GroupState::CompletingRebalance, "CompletingRebalance"),
        (GroupState::Stable, "Stable"),
        (GroupState::Dead, "Dead"),
    ];
    for (state, name) in states {
        assert_eq!((state.name(), state.to_string()), (name, name.to_string()));
    }
}

#[test]
fn a_completed_answer_carries_the_token_of_its_request() {
    let mut h = Harness::new();
    let a = h.member_id();
    let token = RequestToken(77);
    assert_eq!(
        h.coordinator
            .join_group(token, &join_request(&a, &["range"]), h.now_ms),
        Answer::Parked
    );
    h.now_ms += DELAY_MS;
    h.coordinator.tick(h.now_ms);
    let completed = h.coordinator.take_completed();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].token(), token);
}

#[test]
fn describe_shows_members_metadata_and_assignments_only_when_stable() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    let completing = h.coordinator.describe_group(GROUP);
    assert_eq!(completing.state, GroupState::CompletingRebalance);
    assert_eq!(completing.protocol_type, "consumer");
    assert_eq!(
        completing.protocol_name, "",
        "the protocol only when Stable"
    );
    assert_eq!(completing.members.len(), 1);
    assert_eq!(completing.members[0].member_id, a);
    assert_eq!(completing.members[0].client_id, "c");
    assert_eq!(completing.members[0].client_host, "/127.0.0.1");
    assert!(completing.members[0].metadata.is_empty());
    assert!(completing.members[0].assignment.is_empty());
    let _ = h.sync(&a, generation, &[(&a, "p0")]);
    let stable = h.coordinator.describe_group(GROUP);
    assert_eq!(stable.group_id, GROUP);
    assert_eq!(stable.members[0].metadata, "sub-range");
    assert_eq!(stable.members[0].assignment, "p0");
    let listed = h
        .coordinator
        .list_groups(Some(&[GroupState::Stable, GroupState::Empty]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, GROUP);
}

#[test]
fn a_group_with_a_pending_member_is_not_deleted_and_a_pending_member_may_leave() {
    let mut h = Harness::new();
    let a = h.member_id();
    assert_eq!(
        h.coordinator
            .delete_groups(&mut h.disk, &[GROUP.into()], h.now_ms),
        vec![GroupError::NonEmptyGroup],
        "a member id was handed out: the group is in use"
    );
    let left = h
        .coordinator
        .leave_group(GROUP, &[a.clone(), "nobody".into()], h.now_ms)
        .expect("the group exists");
    assert_eq!(left, vec![GroupError::None, GroupError::UnknownMemberId]);
    assert_eq!(
        h.coordinator.leave_group("unknown", &[a], h.now_ms),
        Ok(vec![GroupError::UnknownMemberId]),
        "an unknown group: every member unknown"
    );
    assert_eq!(
        h.coordinator
            .delete_groups(&mut h.disk, &[GROUP.into()], h.now_ms),
        vec![GroupError::None]
    );
    assert!(h.coordinator.group(GROUP).is_none());
}

#[test]
fn a_rebalance_waiting_only_for_a_pending_member_completes_when_it_leaves_or_expires() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let c = h.member_id();
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    assert!(h.joined(tl).is_none(), "waits for the member id handed out");
    let _ = h.coordinator.leave_group(GROUP, &[c], h.now_ms);
    h.collect();
    assert_eq!(
        h.joined(tl).expect("completed").generation_id,
        generation + 1
    );
    assert_eq!(
        h.joined(tf).expect("completed").generation_id,
        generation + 1
    );
}

#[test]
fn a_sync_naming_another_protocol_type_or_name_is_inconsistent_group_protocol() {
    let mut h = Harness::new();
    let (leader, _, generation) = h.stable_pair();
    for (protocol_type, protocol_name) in [(Some("connect"), None), (None, Some("roundrobin"))] {
        let request = SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: leader.clone(),
            protocol_type: protocol_type.map(str::to_string),
            protocol_name: protocol_name.map(str::to_string),
            assignments: vec![],
        };
        let Answer::Now(answer) = h
            .coordinator
            .sync_group(RequestToken(900), &request, h.now_ms)
        else {
            panic!("answered at once");
        };
        assert_eq!(answer.error, GroupError::InconsistentGroupProtocol);
    }
    let matching = SyncGroupRequest {
        group_id: GROUP.into(),
        generation_id: generation,
        member_id: leader.clone(),
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: vec![],
    };
    let Answer::Now(answer) = h
        .coordinator
        .sync_group(RequestToken(901), &matching, h.now_ms)
    else {
        panic!("answered at once");
    };
    assert_eq!(
        (answer.error, &answer.assignment[..]),
        (GroupError::None, &b"p0"[..])
    );
    assert_eq!(answer.protocol_name.as_deref(), Some("range"));
}

#[test]
fn a_join_without_require_known_member_id_joins_at_once_with_a_new_id() {
    let mut h = Harness::new();
    let mut request = join_request("", &["range"]);
    request.require_known_member_id = false; // JoinGroup v0-v3
    let (token, now) = h.join(&request);
    assert!(now.is_none(), "parked: no MEMBER_ID_REQUIRED round trip");
    h.settle();
    let joined = h.joined(token).expect("completed").clone();
    assert_eq!(joined.error, GroupError::None);
    assert!(joined.member_id.starts_with("c-"));
    assert_eq!(joined.leader_id, joined.member_id);
}

#[test]
fn a_committed_offset_keeps_its_leader_epoch_metadata_and_commit_time_across_reopen() {
    let mut h = Harness::new();
    let request = OffsetCommitRequest {
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![
            (tp(0), 17, 4, "note".into()),
            (
                TopicPartition {
                    topic: "u".into(),
                    partition: 3,
                },
                9,
                -1,
                String::new(),
            ),
        ],
    };
    assert_eq!(
        h.coordinator.commit_offsets(&mut h.disk, &request, 5_000),
        vec![GroupError::None; 2]
    );
    let reopened = open(&mut h.disk);
    let fetched = reopened.fetch_offsets(GROUP, None);
    assert_eq!(fetched.len(), 2);
    let first = fetched[0].1.as_ref().expect("committed");
    assert_eq!(fetched[0].0, tp(0));
    assert_eq!(
        (
            first.offset,
            first.leader_epoch,
            &first.metadata[..],
            first.commit_timestamp_ms
        ),
        (17, 4, "note", 5_000)
    );
    assert_eq!(
        fetched[1].0,
        TopicPartition {
            topic: "u".into(),
            partition: 3
        }
    );
    assert_eq!(fetched[1].1.as_ref().map(|o| o.offset), Some(9));
}

/// A simple commit (generation -1) of one offset of `partition`, with `metadata`.
fn commit_one(h: &mut Harness, group_id: &str, partition: i32, metadata: &str) {
    let request = OffsetCommitRequest {
        group_id: group_id.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![(tp(partition), 1, -1, metadata.into())],
    };
    let answers = h
        .coordinator
        .commit_offsets(&mut h.disk, &request, h.now_ms);
    assert_eq!(answers, vec![GroupError::None]);
}

#[test]
fn a_commit_records_size_is_its_encoded_length() {
    use idempo_broker::group_coordinator::{CommittedOffset, offsets_log};
    for (group_id, topic, metadata) in [("g", "t", ""), ("group", "topic-1", "note"), ("", "", "")]
    {
        let partition = TopicPartition {
            topic: topic.into(),
            partition: 7,
        };
        let record = offsets_log::OffsetRecord::Commit {
            group_id: group_id.into(),
            partition: partition.clone(),
            offset: CommittedOffset {
                offset: 1,
                leader_epoch: 2,
                metadata: metadata.into(),
                commit_timestamp_ms: 3,
            },
        };
        assert_eq!(
            offsets_log::commit_record_bytes(group_id, &partition, metadata),
            record.encode().len() as u64
        );
    }
}

#[test]
fn the_offsets_log_is_rewritten_when_it_reaches_compact_min_bytes_and_each_time_again() {
    use idempo_broker::group_coordinator::offsets_log::{COMPACT_MIN_BYTES, commit_record_bytes};
    let mut h = Harness::new();
    let metadata = "m".repeat(1_000);
    let record = commit_record_bytes(GROUP, &tp(0), &metadata);
    let below = COMPACT_MIN_BYTES.div_ceil(record) - 1; // records that stay below 1 MiB
    let len = |h: &Harness| h.disk.file_len(OFFSETS_FILE).expect("exists");
    for n in 1..=below {
        commit_one(&mut h, GROUP, 0, &metadata);
        assert_eq!(len(&h), n * record, "below 1 MiB: not compacted");
    }
    commit_one(&mut h, GROUP, 0, &metadata);
    assert_eq!(
        len(&h),
        record,
        "1 MiB reached: rewritten with the one live commit"
    );
    // From the rewritten log, whose record counts: one commit fewer to the next rewrite.
    for n in 1..below {
        commit_one(&mut h, GROUP, 0, &metadata);
        assert_eq!(len(&h), (n + 1) * record, "below 1 MiB again");
    }
    commit_one(&mut h, GROUP, 0, &metadata);
    assert_eq!(len(&h), record, "rewritten again");
    // A reopened coordinator counts the log it replayed.
    for _ in 1..below {
        commit_one(&mut h, GROUP, 0, &metadata);
    }
    let coordinator = open(&mut h.disk);
    h.coordinator = coordinator;
    assert_eq!(len(&h), below * record);
    commit_one(&mut h, GROUP, 0, &metadata);
    assert_eq!(len(&h), record, "rewritten after the reopen too");
}

#[test]
fn the_offsets_log_is_rewritten_only_once_at_least_half_of_it_is_stale() {
    use idempo_broker::group_coordinator::offsets_log::{COMPACT_MIN_BYTES, commit_record_bytes};
    let mut h = Harness::new();
    let metadata = "m".repeat(1_000);
    let record = commit_record_bytes(GROUP, &tp(0), &metadata);
    let partitions = COMPACT_MIN_BYTES.div_ceil(record); // live commits past 1 MiB
    let len = |h: &Harness| h.disk.file_len(OFFSETS_FILE).expect("exists");
    for p in 0..partitions {
        commit_one(&mut h, GROUP, p as i32, &metadata);
    }
    assert_eq!(len(&h), partitions * record, "all live: kept as is");
    for p in 0..partitions - 1 {
        commit_one(&mut h, GROUP, p as i32, &metadata);
    }
    assert_eq!(
        len(&h),
        (2 * partitions - 1) * record,
        "less than half stale: kept"
    );
    commit_one(&mut h, GROUP, (partitions - 1) as i32, &metadata);
    assert_eq!(len(&h), partitions * record, "half stale: rewritten");
}

#[test]
fn a_deleted_groups_offsets_no_longer_count_as_live() {
    use idempo_broker::group_coordinator::offsets_log::{COMPACT_MIN_BYTES, commit_record_bytes};
    let mut h = Harness::new();
    let metadata = "m".repeat(1_000);
    let record = commit_record_bytes("a", &tp(0), &metadata);
    let partitions = COMPACT_MIN_BYTES.div_ceil(record);
    let len = |h: &Harness| h.disk.file_len(OFFSETS_FILE).expect("exists");
    for reopen in [false, true] {
        for p in 0..partitions {
            commit_one(&mut h, "a", p as i32, &metadata);
        }
        assert_eq!(
            h.coordinator
                .delete_groups(&mut h.disk, &["a".into()], h.now_ms),
            vec![GroupError::None]
        );
        if reopen {
            let coordinator = open(&mut h.disk);
            h.coordinator = coordinator;
        }
        commit_one(&mut h, "b", 0, &metadata);
        assert_eq!(
            len(&h),
            record,
            "only b's commit is live: rewritten (reopened: {reopen})"
        );
    }
}

/// `body` framed as the offsets log frames a record: its length, its CRC-32C, itself.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

#[test]
fn a_record_whose_checksum_matches_but_whose_body_does_not_parse_ends_the_replay() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 10), GroupError::None);
    let good = h.disk.file_len(OFFSETS_FILE).expect("written");
    let whole = h.disk.read_all(OFFSETS_FILE).expect("reads").to_vec();
    let body = &whole[8..];
    let mut deleted_body = vec![1u8];
    deleted_body.extend_from_slice(&1u16.to_be_bytes());
    deleted_body.push(b'g');
    let bad_bodies: Vec<Vec<u8>> = vec![
        Vec::new(),                         // no kind
        vec![9, 0, 1, b'g'],                // an unknown kind
        vec![0, 0],                         // a string length cut short
        vec![0, 0, 5, b'g'],                // a string longer than the body
        vec![0, 0, 1, 0xff, 0, 1, b't'],    // a group id that is not UTF-8
        body[..body.len() - 8].to_vec(),    // no commit timestamp
        body[..body.len() - 3].to_vec(),    // part of the timestamp
        body[..1 + 3 + 3 + 10].to_vec(),    // partition, offset and epoch cut short
        [body, &[0]].concat(),              // a byte after the record
        [&deleted_body[..], &[0]].concat(), // a byte after a deletion
    ];
    for bad in bad_bodies {
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&framed(&bad));
        bytes.extend_from_slice(&whole); // a good record after it is not reached
        h.disk.write_atomic(OFFSETS_FILE, &bytes).expect("writes");
        h.disk.sync(OFFSETS_FILE).expect("syncs");
        let (reopened, replay) =
            GroupCoordinator::open(config(), &mut h.disk, 9).expect("SimDisk reads");
        assert_eq!(replay.records, 1, "{bad:?}");
        assert_eq!(replay.truncated_bytes, bytes.len() as u64 - good, "{bad:?}");
        assert_eq!(h.disk.file_len(OFFSETS_FILE).expect("exists"), good);
        assert_eq!(reopened.fetch_offsets(GROUP, None).len(), 1);
    }
    // The deletion record itself is read.
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&framed(&deleted_body));
    h.disk.write_atomic(OFFSETS_FILE, &bytes).expect("writes");
    let (reopened, replay) =
        GroupCoordinator::open(config(), &mut h.disk, 9).expect("SimDisk reads");
    assert_eq!((replay.records, replay.truncated_bytes), (2, 0));
    assert!(reopened.fetch_offsets(GROUP, None).is_empty(), "deleted");
}

#[test]
fn a_follower_rejoining_a_stable_group_unchanged_gets_its_generation_without_a_rebalance() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let (_, again) = h.join(&join_request(&follower, &["range"]));
    let again = again.expect("answered at once");
    assert_eq!(
        (again.error, again.generation_id),
        (GroupError::None, generation)
    );
    assert_eq!(again.leader_id, leader);
    assert!(again.members.is_empty(), "a follower gets no member list");
    assert_eq!(h.state(), GroupState::Stable, "no rebalance");
    // The rejoin counts as a heartbeat.
    h.advance(i64::from(SESSION_MS) - 1);
    let _ = h.heartbeat(&leader, generation);
    let (_, _) = h.join(&join_request(&follower, &["range"]));
    h.advance(i64::from(SESSION_MS) - 1);
    assert_eq!(
        h.heartbeat(&follower, generation),
        GroupError::None,
        "still a member"
    );
    // The session a rejoin renews is one session long: silent past it, the follower is gone.
    let _ = h.heartbeat(&leader, generation);
    let (_, _) = h.join(&join_request(&follower, &["range"]));
    h.advance(i64::from(SESSION_MS) - 1);
    let _ = h.heartbeat(&leader, generation);
    h.advance(2);
    assert_eq!(
        h.heartbeat(&leader, generation),
        GroupError::RebalanceInProgress,
        "the follower's session expired one session after its rejoin"
    );
}

#[test]
fn the_leader_rejoining_or_a_member_changing_its_protocols_rebalances() {
    let mut h = Harness::new();
    let (leader, _, _) = h.stable_pair();
    let (_, parked) = h.join(&join_request(&leader, &["range"]));
    assert!(parked.is_none(), "the leader's rejoin starts a rebalance");
    assert_eq!(h.state(), GroupState::PreparingRebalance);

    let mut h = Harness::new();
    let (_, follower, _) = h.stable_pair();
    let (_, parked) = h.join(&join_request(&follower, &["range", "roundrobin"]));
    assert!(parked.is_none(), "new protocols start a rebalance");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_members_second_parked_request_answers_its_first_rebalance_in_progress() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let (first, _) = h.join(&join_request(&leader, &["range"]));
    let (second, _) = h.join(&join_request(&leader, &["range"]));
    assert_eq!(
        h.joined(first).expect("the first join is answered").error,
        GroupError::RebalanceInProgress
    );
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    let joined = h
        .joined(second)
        .expect("completed with the follower's rejoin")
        .clone();
    assert_eq!(joined.generation_id, generation + 1);
    let new_generation = joined.generation_id;
    let sync_follower = if joined.leader_id == leader {
        follower.clone()
    } else {
        leader.clone()
    };
    assert!(h.joined(tf).is_some());
    let (s1, parked) = h.sync(&sync_follower, new_generation, &[]);
    assert!(parked.is_none());
    let (s2, parked) = h.sync(&sync_follower, new_generation, &[]);
    assert!(parked.is_none());
    assert_eq!(
        h.syncs[&s1].error,
        GroupError::RebalanceInProgress,
        "the first sync is answered when the second parks"
    );
    assert!(
        !h.syncs.contains_key(&s2),
        "the second waits for the leader"
    );
}

#[test]
fn heartbeats_are_answered_by_group_state() {
    let mut h = Harness::new();
    assert_eq!(
        h.coordinator.heartbeat("unknown", "m", 1, h.now_ms),
        GroupError::UnknownMemberId
    );
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    assert_eq!(
        h.heartbeat(&a, 0),
        GroupError::RebalanceInProgress,
        "preparing: rejoin"
    );
    h.advance(DELAY_MS);
    let generation = h.joined(ta).expect("joined").generation_id;
    assert_eq!(
        h.heartbeat(&a, generation),
        GroupError::None,
        "completing: waiting for the assignment is fine"
    );
}

#[test]
fn a_members_commit_needs_a_known_group_is_allowed_while_preparing_and_keeps_the_session() {
    let mut h = Harness::new();
    assert_eq!(
        h.commit("m", 1, 1),
        GroupError::IllegalGeneration,
        "a generation of a group that does not exist"
    );
    let (leader, follower, generation) = h.stable_pair();
    // The follower only commits: its commits keep its session.
    for _ in 0..3 {
        h.advance(i64::from(SESSION_MS) - 1);
        let _ = h.heartbeat(&leader, generation);
        assert_eq!(h.commit(&follower, generation, 1), GroupError::None);
    }
    assert_eq!(h.state(), GroupState::Stable, "nobody expired");
    // The session a commit renews is one session long: silent past it, the follower is gone.
    h.advance(i64::from(SESSION_MS) - 1);
    let _ = h.heartbeat(&leader, generation);
    h.advance(1);
    assert_eq!(
        h.heartbeat(&leader, generation),
        GroupError::RebalanceInProgress,
        "the follower's session expired one session after its last commit"
    );
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let _ = h.join(&join_request(&leader, &["range"]));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.commit(&follower, generation, 2),
        GroupError::None,
        "a commit of the last generation is allowed while preparing"
    );
}

#[test]
fn a_rebalance_waits_for_the_largest_rebalance_timeout_of_its_members() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let mut slow = join_request(&b, &["range"]);
    slow.rebalance_timeout_ms = 2 * REBALANCE_MS;
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let _ = h.join(&slow);
    h.settle();
    let ja = h.joined(ta).expect("joined").clone();
    let generation = ja.generation_id;
    let (leader, follower) = if ja.leader_id == a { (a, b) } else { (b, a) };
    let _ = h.sync(&follower, generation, &[]);
    let _ = h.sync(&leader, generation, &[]);
    assert_eq!(h.state(), GroupState::Stable);
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    let start = h.now_ms;
    while h.now_ms < start + i64::from(2 * REBALANCE_MS) - 1_000 {
        h.advance(1_000);
        let _ = h.heartbeat(&follower, generation);
    }
    assert!(
        h.joined(tl).is_none(),
        "{} ms: still waiting",
        h.now_ms - start
    );
    h.advance(1_000);
    assert!(
        h.joined(tl).is_some(),
        "the largest rebalance timeout passed"
    );
}

#[test]
fn the_initial_delay_is_extended_no_further_than_the_rebalance_timeout() {
    let mut h = Harness::new();
    let rebalance_ms = 250; // with a 100 ms delay: 150 ms of extensions at most
    let ids: Vec<String> = (0..5).map(|_| h.member_id()).collect();
    let start = h.now_ms;
    let mut first = None;
    for (i, id) in ids.iter().enumerate() {
        let mut request = join_request(id, &["range"]);
        request.rebalance_timeout_ms = rebalance_ms;
        let (token, _) = h.join(&request);
        first.get_or_insert(token);
        if i + 1 < ids.len() {
            h.advance(DELAY_MS / 2); // a new member every 50 ms keeps extending the delay
        }
    }
    // The joins came at 0, 50, 100, 150, 200 ms; the delay ends at 250 ms, no later.
    let first = first.expect("joined");
    while h.now_ms < start + i64::from(rebalance_ms) - 1 {
        h.advance(1);
        assert!(
            h.joined(first).is_none(),
            "{} ms: extended",
            h.now_ms - start
        );
    }
    h.advance(1);
    assert!(
        h.joined(first).is_some(),
        "completed at the rebalance timeout"
    );
}

#[test]
fn a_tie_in_the_protocol_vote_goes_to_the_name_first_in_order() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["roundrobin", "range"]));
    let _ = h.join(&join_request(&b, &["range", "roundrobin"]));
    h.settle();
    assert_eq!(
        h.joined(ta).expect("joined").protocol_name.as_deref(),
        Some("range"),
        "one vote each: alphabetical"
    );
}

#[test]
fn offsets_of_a_group_that_committed_nothing_are_none() {
    let h = Harness::new();
    assert_eq!(
        h.coordinator.fetch_offsets("nobody", Some(&[tp(0)])),
        vec![(tp(0), None)]
    );
    assert!(h.coordinator.fetch_offsets("nobody", None).is_empty());
}

#[test]
fn an_empty_group_is_listed_with_no_protocol_type() {
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    h.advance(DELAY_MS);
    let _ = h.joined(ta).expect("joined");
    let _ = h.coordinator.leave_group(GROUP, &[a], h.now_ms);
    let listed = h.coordinator.list_groups(Some(&[GroupState::Empty]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].protocol_type, "", "no members: no protocol type");
    assert_eq!(h.coordinator.describe_group(GROUP).protocol_type, "");
}

#[test]
fn a_join_or_sync_naming_a_member_of_a_group_that_does_not_exist_is_unknown_member_id() {
    let mut h = Harness::new();
    let (_, answer) = h.join(&join_request("c-ghost", &["range"]));
    assert_eq!(answer.expect("at once").error, GroupError::UnknownMemberId);
    assert!(
        h.coordinator.group(GROUP).is_none(),
        "no group was made for it"
    );
    let (_, sync) = h.sync("c-ghost", 1, &[]);
    assert_eq!(sync.expect("at once").error, GroupError::UnknownMemberId);
    let _ = h.stable_pair();
    let (_, sync) = h.sync("c-ghost", 1, &[]);
    assert_eq!(
        sync.expect("at once").error,
        GroupError::UnknownMemberId,
        "not a member of the group"
    );
}

#[test]
fn commit_metadata_up_to_offset_metadata_max_bytes_and_topics_up_to_u16_max_are_stored() {
    let mut h = Harness::new();
    let max = config().offset_metadata_max_bytes;
    let long_topic = TopicPartition {
        topic: "t".repeat(65_536),
        partition: 0,
    };
    let longest_topic = TopicPartition {
        topic: "t".repeat(65_535),
        partition: 0,
    };
    let request = OffsetCommitRequest {
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![
            (tp(0), 1, -1, "m".repeat(max)),
            (tp(1), 1, -1, "m".repeat(max + 1)),
            (long_topic, 1, -1, String::new()),
            (longest_topic.clone(), 1, -1, String::new()),
        ],
    };
    assert_eq!(
        h.coordinator
            .commit_offsets(&mut h.disk, &request, h.now_ms),
        vec![
            GroupError::None,
            GroupError::OffsetMetadataTooLarge,
            GroupError::OffsetMetadataTooLarge,
            GroupError::None
        ]
    );
    let reopened = open(&mut h.disk);
    let fetched = reopened.fetch_offsets(GROUP, Some(&[tp(0), longest_topic]));
    assert!(fetched.iter().all(|(_, o)| o.is_some()), "both replayed");
}

#[test]
fn a_members_parked_requests_are_answered_unknown_member_id_when_it_is_removed() {
    let mut h = Harness::new();
    let (leader, follower, _) = h.stable_pair();
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    let left = h
        .coordinator
        .leave_group(GROUP, std::slice::from_ref(&leader), h.now_ms);
    assert_eq!(left, Ok(vec![GroupError::None]));
    h.collect();
    assert_eq!(
        h.joined(tl).expect("answered").error,
        GroupError::UnknownMemberId
    );
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    let generation = h.joined(tf).expect("alone: completed").generation_id;
    let c = h.member_id();
    let (tc, _) = h.join(&join_request(&c, &["range"]));
    let (tf2, _) = h.join(&join_request(&follower, &["range"]));
    let joined = h.joined(tc).expect("completed").clone();
    assert_eq!(joined.generation_id, generation + 1);
    assert!(h.joined(tf2).is_some());
    let waiting = if joined.leader_id == c { follower } else { c };
    let (ts, _) = h.sync(&waiting, joined.generation_id, &[]);
    let _ = h
        .coordinator
        .leave_group(GROUP, std::slice::from_ref(&waiting), h.now_ms);
    h.collect();
    assert_eq!(h.syncs[&ts].error, GroupError::UnknownMemberId);
}

#[test]
fn a_member_that_has_not_synced_is_removed_exactly_at_the_rebalance_timeout_after_the_join() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let _ = h.join(&join_request(&b, &["range"]));
    while h.joined(ta).is_none() {
        h.advance(1); // the initial delay, extended once for b
    }
    let joined_at = h.now_ms;
    let ja = h.joined(ta).expect("joined").clone();
    let (leader, follower) = if ja.leader_id == a { (a, b) } else { (b, a) };
    let _ = h.sync(&leader, ja.generation_id, &[]);
    let deadline = joined_at + i64::from(REBALANCE_MS);
    while h.now_ms < deadline - 1 {
        h.advance((deadline - 1 - h.now_ms).min(5_000));
        let _ = h.heartbeat(&leader, ja.generation_id);
        let _ = h.heartbeat(&follower, ja.generation_id);
    }
    let members = |h: &Harness| h.coordinator.group(GROUP).expect("exists").members.len();
    assert_eq!(members(&h), 2, "1 ms before the sync deadline");
    h.advance(1);
    assert_eq!(members(&h), 1, "the follower never synced");
}

#[test]
fn an_empty_group_with_a_pending_member_id_is_not_forgotten() {
    use idempo_broker::group_coordinator::EMPTY_GROUP_RETENTION_MS;
    let mut h = Harness::new();
    let mut request = join_request("", &["range"]);
    request.session_timeout_ms = 1_000_000; // the id stays pending longer than the retention
    let (_, answer) = h.join(&request);
    assert_eq!(answer.expect("at once").error, GroupError::MemberIdRequired);
    h.advance(EMPTY_GROUP_RETENTION_MS + 1);
    assert!(
        h.coordinator.group(GROUP).is_some(),
        "a member id is still pending"
    );
}

#[test]
fn a_known_empty_group_takes_no_join_without_a_protocol_type_and_protocols() {
    let mut h = Harness::new();
    assert_eq!(h.commit("", -1, 1), GroupError::None); // an Empty group with offsets
    for (protocol_type, protocols) in [("", vec!["range"]), ("consumer", vec![])] {
        let mut request = join_request("", &protocols);
        request.protocol_type = protocol_type.into();
        let (_, answer) = h.join(&request);
        assert_eq!(
            answer.expect("at once").error,
            GroupError::InconsistentGroupProtocol,
            "protocol type {protocol_type:?}, protocols {protocols:?}"
        );
    }
    let _ = h.stable_pair();
    let mut other_type = join_request("", &["range"]);
    other_type.protocol_type = "connect".into();
    let (_, answer) = h.join(&other_type);
    assert_eq!(
        answer.expect("at once").error,
        GroupError::InconsistentGroupProtocol,
        "the members are consumers"
    );
}

#[test]
fn the_protocol_most_members_prefer_wins_over_the_first_in_order() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..3).map(|_| h.member_id()).collect();
    let (t0, _) = h.join(&join_request(&ids[0], &["roundrobin", "range"]));
    let _ = h.join(&join_request(&ids[1], &["roundrobin", "range"]));
    let _ = h.join(&join_request(&ids[2], &["range", "roundrobin"]));
    h.settle();
    assert_eq!(
        h.joined(t0).expect("joined").protocol_name.as_deref(),
        Some("roundrobin"),
        "two votes to one"
    );
}

#[test]
fn a_rebalance_waiting_only_for_a_pending_member_completes_when_its_id_expires() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let c = h.member_id(); // pending for SESSION_MS
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    let (tf, _) = h.join(&join_request(&follower, &["range"]));
    assert!(h.joined(tl).is_none(), "waits for the member id handed out");
    h.advance(i64::from(SESSION_MS));
    assert!(
        !h.coordinator
            .group(GROUP)
            .expect("exists")
            .pending_members
            .contains_key(&c)
    );
    assert_eq!(
        h.joined(tl).expect("completed").generation_id,
        generation + 1
    );
    assert_eq!(
        h.joined(tf).expect("completed").generation_id,
        generation + 1
    );
}

#[test]
fn a_member_with_a_parked_join_has_no_session_deadline_to_wake_for() {
    let mut h = Harness::new();
    let (leader, follower, generation) = h.stable_pair();
    let stable_at = h.now_ms;
    h.advance(5_000);
    assert_eq!(h.heartbeat(&follower, generation), GroupError::None);
    let (tl, _) = h.join(&join_request(&leader, &["range"]));
    assert!(h.joined(tl).is_none(), "waits for the follower");
    // The leader's session would end at stable_at + 10 s, but it is waiting on us; the
    // follower's ends at stable_at + 15 s, the rebalance at stable_at + 25 s.
    assert_eq!(
        h.coordinator.next_deadline_ms(),
        Some(stable_at + 5_000 + i64::from(SESSION_MS))
    );
}

#[test]
fn the_offsets_log_is_rewritten_at_exactly_compact_min_bytes() {
    use idempo_broker::group_coordinator::offsets_log::{COMPACT_MIN_BYTES, commit_record_bytes};
    // Records of 1 KiB: the 1 024th commit brings the log to exactly 1 MiB, which is the
    // threshold itself (reached, not passed): that append rewrites the log.
    let mut h = Harness::new();
    let metadata = "m".repeat(1024 - commit_record_bytes(GROUP, &tp(0), "") as usize);
    let record = commit_record_bytes(GROUP, &tp(0), &metadata);
    assert_eq!(COMPACT_MIN_BYTES % record, 0, "records tile 1 MiB exactly");
    let len = |h: &Harness| h.disk.file_len(OFFSETS_FILE).expect("exists");
    for _ in 1..COMPACT_MIN_BYTES / record {
        commit_one(&mut h, GROUP, 0, &metadata);
    }
    assert_eq!(
        len(&h),
        COMPACT_MIN_BYTES - record,
        "one record short: kept"
    );
    commit_one(&mut h, GROUP, 0, &metadata);
    assert_eq!(
        len(&h),
        record,
        "exactly 1 MiB: rewritten to the live commit"
    );
}

#[test]
fn every_offsets_record_replays_as_written_empty_strings_included() {
    use idempo_broker::group_coordinator::{CommittedOffset, offsets_log};
    // The log's reader takes back every record its writer writes, including a string that
    // is empty and ends the record (a group id of length 0 is the record's last two bytes).
    let records = vec![
        offsets_log::OffsetRecord::GroupDeleted {
            group_id: String::new(),
        },
        offsets_log::OffsetRecord::GroupDeleted {
            group_id: "g".into(),
        },
        offsets_log::OffsetRecord::Commit {
            group_id: String::new(),
            partition: TopicPartition {
                topic: String::new(),
                partition: 0,
            },
            offset: CommittedOffset {
                offset: 0,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        },
    ];
    let mut disk = SimDisk::new();
    for record in &records {
        disk.append(OFFSETS_FILE, &record.encode())
            .expect("SimDisk appends");
    }
    let (replayed, report) = offsets_log::replay(&mut disk).expect("SimDisk reads");
    assert_eq!(replayed, records);
    assert_eq!(report.truncated_bytes, 0, "nothing cut off");
}

#[test]
fn a_coordinator_keeps_the_settings_it_was_opened_with() {
    let h = Harness::new();
    assert_eq!(h.coordinator.config(), &config());
    assert_ne!(
        config(),
        GroupConfig::default(),
        "the test's config is not the default"
    );
}

#[test]
fn a_group_deletion_record_counts_once_toward_the_next_rewrite() {
    use idempo_broker::group_coordinator::offsets_log::{COMPACT_MIN_BYTES, commit_record_bytes};
    // The coordinator counts the log's bytes to decide when to rewrite it: a deletion record
    // adds its own length, so the rewrite comes exactly when the file reaches 1 MiB.
    let mut h = Harness::new();
    let metadata = "m".repeat(1_000);
    let record = commit_record_bytes(GROUP, &tp(0), &metadata);
    let len = |h: &Harness| h.disk.file_len(OFFSETS_FILE).expect("exists");
    for p in 0..3 {
        commit_one(&mut h, "a", p, &metadata);
    }
    assert_eq!(
        h.coordinator
            .delete_groups(&mut h.disk, &["a".into()], h.now_ms),
        vec![GroupError::None]
    );
    let after_delete = len(&h);
    assert!(after_delete > 3 * commit_record_bytes("a", &tp(0), &metadata));
    let mut grown = after_delete;
    while grown + 2 * record <= COMPACT_MIN_BYTES {
        commit_one(&mut h, GROUP, 0, &metadata);
        grown += record;
        assert_eq!(len(&h), grown, "below 1 MiB: appended, not rewritten");
    }
    // The last commit is sized to bring the file to exactly 1 MiB: counted with the deletion
    // record's bytes that is the threshold; counted without them (or with them taken off) it
    // would fall short and the log would not be rewritten.
    let last =
        "m".repeat((COMPACT_MIN_BYTES - grown - commit_record_bytes(GROUP, &tp(0), "")) as usize);
    assert_eq!(
        grown + commit_record_bytes(GROUP, &tp(0), &last),
        COMPACT_MIN_BYTES
    );
    commit_one(&mut h, GROUP, 0, &last);
    assert_eq!(
        len(&h),
        commit_record_bytes(GROUP, &tp(0), &last),
        "exactly 1 MiB reached: rewritten to the one live commit"
    );
}

#[test]
fn only_a_negative_generation_is_a_simple_commit() {
    // Kafka's `handleCommitOffsets`: generation -1 (any negative) is a commit from outside
    // the group protocol; 0 is a generation, and a group that does not exist has none.
    let mut h = Harness::new();
    assert_eq!(h.commit("", 0, 1), GroupError::IllegalGeneration);
    assert!(h.coordinator.group(GROUP).is_none(), "no group was made");
    assert_eq!(h.commit("", -1, 1), GroupError::None);
    assert_eq!(h.commit("", -7, 2), GroupError::None);
}

#[test]
fn an_error_answer_to_a_join_carries_no_generation() {
    // Kafka answers a failed JoinGroup with generation -1 (JoinGroupRequest's
    // UNKNOWN_GENERATION_ID), no protocol and no leader.
    let mut h = Harness::new();
    let (_, answer) = h.join(&join_request("", &["range"]));
    let answer = answer.expect("an unknown member is answered at once");
    assert_eq!(answer.error, GroupError::MemberIdRequired);
    assert_eq!(answer.generation_id, -1);
    assert_eq!(answer.protocol_name, None);
    assert_eq!(answer.leader_id, "");
    let (_, answer) = h.join(&join_request("never-given", &["range"]));
    let answer = answer.expect("answered at once");
    assert_eq!(
        (answer.error, answer.generation_id),
        (GroupError::UnknownMemberId, -1)
    );
}

#[test]
fn a_member_changing_its_protocols_while_the_assignment_is_awaited_rebalances_again() {
    let mut h = Harness::new();
    let a = h.member_id();
    let b = h.member_id();
    let (ta, _) = h.join(&join_request(&a, &["range"]));
    let (_, _) = h.join(&join_request(&b, &["range"]));
    h.settle();
    let generation = h.joined(ta).expect("a's join completed").generation_id;
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let (_, same) = h.join(&join_request(&b, &["range"]));
    assert_eq!(
        same.expect("unchanged: answered at once").generation_id,
        generation
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance, "no rebalance");
    let (_, parked) = h.join(&join_request(&b, &["range", "roundrobin"]));
    assert!(
        parked.is_none(),
        "new protocols wait for the next generation"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_new_member_whose_join_never_completes_is_removed_after_new_member_join_timeout() {
    use idempo_broker::group_coordinator::NEW_MEMBER_JOIN_TIMEOUT_MS;
    // Kafka's NewMemberJoinTimeoutMs: a member that joined but never completed a rebalance
    // is dropped after 5 minutes, even while its JoinGroup is parked; here the rebalance
    // waits 10 minutes for a member that keeps heartbeating but does not rejoin.
    let long = |member_id: &str| JoinGroupRequest {
        rebalance_timeout_ms: 600_000,
        ..join_request(member_id, &["range"])
    };
    let mut h = Harness::new();
    let a = h.member_id();
    let (ta, _) = h.join(&long(&a));
    h.settle();
    let generation = h.joined(ta).expect("a's join completed").generation_id;
    let _ = h.sync(&a, generation, &[(&a, "p0")]);
    assert_eq!(h.state(), GroupState::Stable);
    let n = h.member_id();
    let joined_at = h.now_ms;
    let (tn, parked) = h.join(&long(&n));
    assert!(parked.is_none(), "the new member waits for a to rejoin");
    let is_member = |h: &Harness| {
        h.coordinator
            .group(GROUP)
            .expect("the group exists")
            .members
            .contains_key(&n)
    };
    let step = i64::from(SESSION_MS) / 2;
    while h.now_ms + step < joined_at + NEW_MEMBER_JOIN_TIMEOUT_MS {
        h.advance(step);
        assert_eq!(h.heartbeat(&a, generation), GroupError::RebalanceInProgress);
    }
    h.advance(joined_at + NEW_MEMBER_JOIN_TIMEOUT_MS - 1 - h.now_ms);
    assert!(is_member(&h), "one millisecond short of the timeout: kept");
    assert!(h.joined(tn).is_none(), "still parked");
    h.advance(1);
    assert!(!is_member(&h), "the new member join timeout removed it");
}

#[test]
fn opening_on_a_whole_offsets_log_writes_nothing_to_it() {
    // Replay cuts off a torn tail, and only a torn tail: a log that is whole is read and left
    // as it is, so a coordinator opens on a disk it may not write (and pays no fsync).
    let (mut storage, mut coordinator) = opened();
    let commit = OffsetCommitRequest {
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![(tp(0), 5, -1, String::new())],
    };
    assert_eq!(
        coordinator.commit_offsets(&mut storage, &commit, 0),
        vec![GroupError::None]
    );
    storage.read_only();
    let (reopened, report) = GroupCoordinator::open(config(), &mut storage, 7)
        .expect("a whole log is replayed without writing");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(committed_offset_of_partition_0(&reopened), Some(5));
}

#[test]
fn an_offsets_log_under_one_mebibyte_is_never_rewritten_however_stale() {
    use idempo_broker::group_coordinator::offsets_log::commit_record_bytes;
    // COMPACT_MIN_BYTES is 1 MiB: a small log is cheap to replay, so it is kept as written
    // even when all but one of its records are stale.
    let mut h = Harness::new();
    let metadata = "m".repeat(1_000);
    let record = commit_record_bytes(GROUP, &tp(0), &metadata);
    let commits = 1_000;
    assert!(
        commits * record < 1024 * 1024,
        "the commits stay under 1 MiB"
    );
    for _ in 0..commits {
        commit_one(&mut h, GROUP, 0, &metadata);
    }
    assert_eq!(
        h.disk.file_len(OFFSETS_FILE).expect("exists"),
        commits * record,
        "999 stale commits and the live one, all kept"
    );
}
