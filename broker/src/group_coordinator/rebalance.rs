//! The rebalance rules of one group: prepare, complete the join, hand out the assignment,
//! remove members (Kafka's `GroupCoordinator.prepareRebalance`, `onCompleteJoin`,
//! `setAndPropagateAssignment`, `removeMemberAndUpdateGroup`).

use super::group::{Group, GroupState, JoinPhase};
use super::{
    Completed, GroupConfig, GroupError, GroupEvent, JoinGroupResult, JoinedMember, RemovalReason,
    SyncGroupResult,
};
use bytes::Bytes;

/// Where the rules put their answers and events, and the time they run at.
pub(super) struct Out<'a> {
    pub config: &'a GroupConfig,
    pub now_ms: i64,
    pub completed: &'a mut Vec<Completed>,
    pub events: &'a mut Vec<GroupEvent>,
}

impl Group {
    /// Kafka's `maybePrepareRebalance`: from Empty, CompletingRebalance or Stable, start a
    /// rebalance; in PreparingRebalance, see whether it can complete now.
    pub(super) fn maybe_prepare_rebalance(&mut self, out: &mut Out<'_>) {
        match self.state {
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable => {
                self.prepare_rebalance(out);
            }
            GroupState::PreparingRebalance => self.try_complete_join(out),
            GroupState::Dead => {}
        }
    }

    /// Kafka's `prepareRebalance`: the assignment of a generation still being synced is void
    /// (its parked SyncGroups are answered REBALANCE_IN_PROGRESS); an empty group waits
    /// `group.initial.rebalance.delay.ms` for more members, any other the rebalance timeout at
    /// most for its members to rejoin.
    fn prepare_rebalance(&mut self, out: &mut Out<'_>) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(token) = member.awaiting_sync.take() {
                    out.completed.push(Completed::Sync {
                        token,
                        result: SyncGroupResult::error(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        if self.state == GroupState::Empty {
            let delay_ms = out.config.group_initial_rebalance_delay_ms;
            self.join_phase = JoinPhase::Initial {
                remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
            };
            self.join_deadline_ms = Some(out.now_ms + delay_ms);
        } else {
            self.join_phase = JoinPhase::Delayed;
            self.join_deadline_ms = Some(out.now_ms + rebalance_timeout_ms);
        }
        self.sync_deadline_ms = None;
        self.state = GroupState::PreparingRebalance;
        out.events.push(GroupEvent::RebalanceStarted {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
        });
        self.try_complete_join(out);
    }

    /// Kafka's `DelayedJoin.tryComplete`: done once every member has rejoined. The initial
    /// delay never completes early.
    pub(super) fn try_complete_join(&mut self, out: &mut Out<'_>) {
        if self.state == GroupState::PreparingRebalance
            && self.join_phase == JoinPhase::Delayed
            && self.all_members_joined()
        {
            self.complete_join(out);
        }
    }

    /// The join deadline passed: extend the initial delay while new members keep arriving
    /// (Kafka's `InitialDelayedJoin.onComplete`), or complete the join.
    pub(super) fn join_deadline_passed(&mut self, out: &mut Out<'_>) {
        if let JoinPhase::Initial { remaining_ms } = self.join_phase
            && self.new_member_added
            && remaining_ms > 0
        {
            self.new_member_added = false;
            let delay_ms = out
                .config
                .group_initial_rebalance_delay_ms
                .min(remaining_ms);
            self.join_phase = JoinPhase::Initial {
                remaining_ms: (remaining_ms - delay_ms).max(0),
            };
            self.join_deadline_ms = Some(out.now_ms + delay_ms);
            return;
        }
        self.complete_join(out);
    }

    /// Kafka's `onCompleteJoin`: members that did not rejoin are removed, the generation is
    /// bumped, the protocol chosen, and every parked JoinGroup answered (the leader's with
    /// the member list). No member left: an empty generation, state Empty.
    fn complete_join(&mut self, out: &mut Out<'_>) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(&member_id, RemovalReason::NotRejoined, out);
        }
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.generation_id += 1;
        self.join_deadline_ms = None;
        self.new_member_added = false;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.protocol_type = None;
            self.state = GroupState::Empty;
            self.empty_since_ms = out.now_ms;
        } else {
            self.protocol_name = self.select_protocol();
            self.state = GroupState::CompletingRebalance;
            self.sync_deadline_ms = Some(out.now_ms + self.rebalance_timeout_ms());
        }
        out.events.push(GroupEvent::Rebalanced {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
            members: self.members.len(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
        });
        self.answer_joins(out);
    }

    /// Answers every parked JoinGroup with the new generation.
    fn answer_joins(&mut self, out: &mut Out<'_>) {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = self
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect();
        let leader_id = self.leader_id.clone().unwrap_or_default();
        for member in self.members.values_mut() {
            member.is_new = false;
            member.synced = false;
            member.heartbeat_deadline_ms = out.now_ms + i64::from(member.session_timeout_ms);
            let token = member
                .awaiting_join
                .take()
                .expect("a join completes only when every member left has rejoined");
            let members = if member.member_id == leader_id {
                all.clone()
            } else {
                Vec::new()
            };
            out.completed.push(Completed::Join {
                token,
                result: JoinGroupResult {
                    error: GroupError::None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader_id: leader_id.clone(),
                    member_id: member.member_id.clone(),
                    members,
                },
            });
        }
    }

    /// The current generation's JoinGroup answer for `member_id`, for a member that joins
    /// again with nothing changed (Kafka answers it without a rebalance).
    pub(super) fn current_join_result(&self, member_id: &str) -> JoinGroupResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResult {
            error: GroupError::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Kafka's `setAndPropagateAssignment`: the leader's assignment (members it left out get
    /// an empty one) goes to every member; parked SyncGroups other than the leader's own are
    /// answered; the group is Stable.
    pub(super) fn propagate_assignment(
        &mut self,
        leader_id: &str,
        assignments: &[(String, Bytes)],
        out: &mut Out<'_>,
    ) {
        assert!(
            self.state == GroupState::CompletingRebalance,
            "an assignment is handed out only while completing a rebalance"
        );
        for member in self.members.values_mut() {
            member.assignment = assignments
                .iter()
                .find(|(id, _)| *id == member.member_id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            if member.member_id == leader_id {
                member.awaiting_sync = None;
                member.synced = true;
            } else if let Some(token) = member.awaiting_sync.take() {
                member.synced = true;
                out.completed.push(Completed::Sync {
                    token,
                    result: SyncGroupResult {
                        error: GroupError::None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                });
            }
        }
        self.state = GroupState::Stable;
        out.events.push(GroupEvent::Stabilized {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
        });
    }

    /// Kafka's `removeMemberAndUpdateGroup`: the member's parked requests are answered
    /// UNKNOWN_MEMBER_ID, a new leader is picked if it led, and the group rebalances (or, in
    /// PreparingRebalance, may now complete its join).
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        reason: RemovalReason,
        out: &mut Out<'_>,
    ) {
        self.remove_member(member_id, reason, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(out),
            GroupState::PreparingRebalance => self.try_complete_join(out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn remove_member(&mut self, member_id: &str, reason: RemovalReason, out: &mut Out<'_>) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join {
            out.completed.push(Completed::Join {
                token,
                result: JoinGroupResult::error(GroupError::UnknownMemberId, member_id),
            });
        }
        if let Some(token) = member.awaiting_sync {
            out.completed.push(Completed::Sync {
                token,
                result: SyncGroupResult::error(GroupError::UnknownMemberId),
            });
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        if self.members.is_empty() {
            self.protocol_type = None;
        }
        out.events.push(GroupEvent::MemberRemoved {
            group_id: self.group_id.clone(),
            member_id: member_id.to_string(),
            reason,
        });
    }

    /// Removes the members whose session expired, the KIP-394 ids never used, and (after the
    /// sync deadline) the members that never synced; completes a join whose deadline passed.
    pub(super) fn expire(&mut self, out: &mut Out<'_>) {
        let now_ms = out.now_ms;
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|&(_, &deadline)| deadline <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in expired_pending {
            self.pending_members.remove(&member_id);
            out.events.push(GroupEvent::MemberRemoved {
                group_id: self.group_id.clone(),
                member_id,
                reason: RemovalReason::PendingExpired,
            });
            self.try_complete_join(out);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                // A member with a parked request is waiting on us, not silent (Kafka's
                // `hasSatisfiedHeartbeat`), except a new member that never completed a join.
                let waiting = m.awaiting_join.is_some() || m.awaiting_sync.is_some();
                (m.is_new || !waiting) && m.heartbeat_deadline_ms <= now_ms
            })
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            self.remove_member_and_rebalance(&member_id, RemovalReason::SessionTimeout, out);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            self.join_deadline_passed(out);
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            self.sync_deadline_ms = None;
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.synced)
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in unsynced {
                self.remove_member_and_rebalance(&member_id, RemovalReason::NotSynced, out);
            }
        }
    }

    /// The earliest time at which [`expire`](Self::expire) has something to do.
    pub(super) fn next_deadline_ms(&self) -> Option<i64> {
        let members = self.members.values().filter_map(|m| {
            let waiting = m.awaiting_join.is_some() || m.awaiting_sync.is_some();
            (m.is_new || !waiting).then_some(m.heartbeat_deadline_ms)
        });
        let pending = self.pending_members.values().copied();
        let join = self
            .join_deadline_ms
            .filter(|_| self.state == GroupState::PreparingRebalance);
        members
            .chain(pending)
            .chain(join)
            .chain(self.sync_deadline_ms)
            .min()
    }
}
