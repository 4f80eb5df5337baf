//! The consumer-group APIs on the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups and DeleteGroups, over
//! the broker core's [`GroupCoordinator`].
//!
//! Every rule is in the core (`idempo_broker::group_coordinator`, with its essay); this module
//! only turns `kafka-protocol` requests into the core's values and its answers back into the
//! wire format of the version asked for (a field a version does not have is left at its
//! default, since the encoder refuses it otherwise).
//!
//! JoinGroup and SyncGroup are often answered later than they arrive (a rebalance waits for
//! the other members). [`Groups`] gives each such request a [`RequestToken`] and a channel:
//! the server parks the connection on the [`Reply::Later`] receiver, and whenever the
//! coordinator completes parked requests (after any call, including the clock tick of
//! [`KafkaApis::advance_time`]) [`Groups::dispatch`] sends each answer, encoded for its
//! version, to its connection. The broker is the coordinator of every group: FindCoordinator
//! always names this node.

use crate::kafka_apis::{KafkaApis, NODE_ID};
use crate::kafka_codec::EncodeError;
use bytes::Bytes;
use idempo_broker::group_coordinator::{
    self, Answer, Completed, GroupConfig, GroupCoordinator, GroupEvent, GroupState, RequestToken,
    TopicPartition,
};
use idempo_broker::{SimDisk, Storage};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
    delete_groups_response::DeletableGroupResult,
    describe_groups_response::{DescribedGroup, DescribedGroupMember},
    find_coordinator_response::Coordinator,
    join_group_response::JoinGroupResponseMember,
    leave_group_response::MemberResponse,
    list_groups_response::ListedGroup,
    offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    },
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::collections::HashMap;
use tokio::sync::oneshot;
use tracing::{error, info};

/// FindCoordinator's key types (KIP-98, KIP-932).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A JoinGroup or SyncGroup answer: now, or on the receiver when the rebalance moves on.
#[derive(Debug)]
pub enum Reply<T> {
    /// Answered at once.
    Now(T),
    /// Parked: the answer arrives on this receiver.
    Later(oneshot::Receiver<T>),
}

/// A parked request: its version (the answer is encoded for it) and where the answer goes.
#[derive(Debug)]
enum Parked {
    Join {
        version: i16,
        sender: oneshot::Sender<JoinGroupResponse>,
    },
    Sync {
        version: i16,
        sender: oneshot::Sender<SyncGroupResponse>,
    },
}

/// The group coordinator of this broker and the requests parked on it.
#[derive(Debug)]
pub struct Groups {
    /// The core.
    pub coordinator: GroupCoordinator,
    /// Why the committed offsets could not be read at start-up; while set, FindCoordinator
    /// answers COORDINATOR_NOT_AVAILABLE, so clients never use a coordinator that lost them.
    pub unavailable: Option<String>,
    parked: HashMap<RequestToken, Parked>,
    next_token: u64,
}

impl Groups {
    /// Opens the coordinator over the broker's storage (replaying the committed offsets).
    pub fn open(config: GroupConfig, storage: &mut impl Storage, member_id_seed: u64) -> Groups {
        let (coordinator, unavailable) =
            match GroupCoordinator::open(config.clone(), storage, member_id_seed) {
                Ok((coordinator, replay)) => {
                    info!(
                        records = replay.records,
                        truncated_bytes = replay.truncated_bytes,
                        groups = coordinator.list_groups(None).len(),
                        "loaded committed offsets"
                    );
                    (coordinator, None)
                }
                Err(e) => {
                    error!(error = %e, "cannot read the committed offsets: groups unavailable");
                    let (empty, _) = GroupCoordinator::open(config, &mut SimDisk::new(), 0)
                        .expect("an empty disk replays");
                    (empty, Some(e.to_string()))
                }
            };
        Groups {
            coordinator,
            unavailable,
            parked: HashMap::new(),
            next_token: 0,
        }
    }

    /// Parked requests waiting for an answer.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Tells the coordinator the time and sends what it completed.
    pub fn tick(&mut self, now_ms: i64) {
        self.coordinator.tick(now_ms);
        self.dispatch();
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    /// Sends every completed answer to its parked connection, and logs the group events.
    pub fn dispatch(&mut self) {
        for event in self.coordinator.take_events() {
            log_event(&event);
        }
        for completed in self.coordinator.take_completed() {
            let Some(parked) = self.parked.remove(&completed.token()) else {
                continue;
            };
            // A closed receiver is a connection that went away: nothing to answer.
            match (parked, completed) {
                (Parked::Join { version, sender }, Completed::Join { result, .. }) => {
                    let _ = sender.send(join_response(&result, version));
                }
                (Parked::Sync { version, sender }, Completed::Sync { result, .. }) => {
                    let _ = sender.send(sync_response(&result, version));
                }
                _ => unreachable!("a token names one request of one kind"),
            }
        }
    }
}

fn log_event(event: &GroupEvent) {
    match event {
        GroupEvent::RebalanceStarted {
            group_id,
            generation_id,
        } => info!(group_id, generation_id, "group began rebalancing"),
        GroupEvent::Rebalanced {
            group_id,
            generation_id,
            members,
            protocol_name,
            leader_id,
        } => info!(
            group_id,
            generation_id,
            members,
            protocol = protocol_name.as_deref().unwrap_or(""),
            leader = leader_id.as_deref().unwrap_or(""),
            "group completed its join: new generation"
        ),
        GroupEvent::Stabilized {
            group_id,
            generation_id,
        } => info!(
            group_id,
            generation_id, "group is stable: assignment handed out"
        ),
        GroupEvent::MemberRemoved {
            group_id,
            member_id,
            reason,
        } => info!(group_id, member_id, %reason, "removed group member"),
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn join_response(result: &group_coordinator::JoinGroupResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_metadata(m.metadata.clone());
            if version >= 5 {
                member.with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
            } else {
                member
            }
        })
        .collect();
    let protocol_name = result.protocol_name.as_deref().map(str_bytes);
    let response = JoinGroupResponse::default()
        .with_error_code(result.error.code())
        .with_generation_id(result.generation_id)
        .with_leader(str_bytes(&result.leader_id))
        .with_member_id(str_bytes(&result.member_id))
        .with_members(members);
    if version >= 7 {
        response
            .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(protocol_name)
    } else {
        // Not nullable before v7.
        response.with_protocol_name(Some(protocol_name.unwrap_or_default()))
    }
}

fn sync_response(result: &group_coordinator::SyncGroupResult, version: i16) -> SyncGroupResponse {
    let response = SyncGroupResponse::default()
        .with_error_code(result.error.code())
        .with_assignment(result.assignment.clone());
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(result.protocol_name.as_deref().map(str_bytes))
    } else {
        response
    }
}

/// Who sent a request: the header's client id and the peer's address, for new member ids and
/// DescribeGroups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Client {
    /// The request header's client id.
    pub client_id: String,
    /// The peer address as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
}

impl KafkaApis {
    /// FindCoordinator: this broker coordinates every group (v4+: every key of the batch).
    /// Transactional ids are refused as InitProducerId refuses them (transactions are not
    /// modelled); other key types are INVALID_REQUEST.
    pub fn find_coordinator(
        &self,
        request: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let (code, message) = match (request.key_type, &self.groups.unavailable) {
            (KEY_TYPE_GROUP, None) => (0, None),
            (KEY_TYPE_GROUP, Some(why)) => (
                ResponseError::CoordinatorNotAvailable.code(),
                Some(why.clone()),
            ),
            (KEY_TYPE_TRANSACTION, _) => (
                ResponseError::TransactionalIdAuthorizationFailed.code(),
                Some("transactions are not modelled".to_string()),
            ),
            (other, _) => (
                ResponseError::InvalidRequest.code(),
                Some(format!("key type {other} is not served")),
            ),
        };
        let (node_id, host, port) = if code == 0 {
            (
                NODE_ID,
                str_bytes(&self.settings.advertised_host),
                i32::from(self.settings.advertised_port),
            )
        } else {
            (-1, StrBytes::default(), -1)
        };
        if version >= 4 {
            let coordinators = request
                .coordinator_keys
                .iter()
                .map(|key| {
                    Coordinator::default()
                        .with_key(key.clone())
                        .with_node_id(BrokerId(node_id))
                        .with_host(host.clone())
                        .with_port(port)
                        .with_error_code(code)
                        .with_error_message(message.as_deref().map(str_bytes))
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(node_id))
            .with_host(host)
            .with_port(port);
        if version >= 1 {
            response.with_error_message(message.as_deref().map(str_bytes))
        } else {
            response
        }
    }

    /// JoinGroup. KIP-394's MEMBER_ID_REQUIRED round trip from v4 on; v0 has no rebalance
    /// timeout (the session timeout stands in, as in Kafka).
    pub fn join_group(
        &mut self,
        request: &JoinGroupRequest,
        version: i16,
        client: &Client,
    ) -> Reply<JoinGroupResponse> {
        let core = group_coordinator::JoinGroupRequest {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let now_ms = self.broker.now_ms();
        let token = self.groups.token();
        let answer = self.groups.coordinator.join_group(token, &core, now_ms);
        let reply = match answer {
            Answer::Now(result) => Reply::Now(join_response(&result, version)),
            Answer::Parked => {
                let (sender, receiver) = oneshot::channel();
                self.groups
                    .parked
                    .insert(token, Parked::Join { version, sender });
                Reply::Later(receiver)
            }
        };
        self.groups.dispatch();
        reply
    }

    /// SyncGroup: the leader's assignment, handed to each member.
    pub fn sync_group(
        &mut self,
        request: &SyncGroupRequest,
        version: i16,
    ) -> Reply<SyncGroupResponse> {
        let core = group_coordinator::SyncGroupRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let now_ms = self.broker.now_ms();
        let token = self.groups.token();
        let reply = match self.groups.coordinator.sync_group(token, &core, now_ms) {
            Answer::Now(result) => Reply::Now(sync_response(&result, version)),
            Answer::Parked => {
                let (sender, receiver) = oneshot::channel();
                self.groups
                    .parked
                    .insert(token, Parked::Sync { version, sender });
                Reply::Later(receiver)
            }
        };
        self.groups.dispatch();
        reply
    }

    /// Heartbeat.
    pub fn heartbeat(&mut self, request: &HeartbeatRequest) -> HeartbeatResponse {
        let now_ms = self.broker.now_ms();
        let error = self.groups.coordinator.heartbeat(
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            request.generation_id,
            now_ms,
        );
        self.groups.dispatch();
        HeartbeatResponse::default().with_error_code(error.code())
    }

    /// LeaveGroup: one member before v3, a batch from v3 on (each with its own error).
    pub fn leave_group(&mut self, request: &LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let member_ids: Vec<String> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect()
        } else {
            vec![request.member_id.to_string()]
        };
        let now_ms = self.broker.now_ms();
        let result =
            self.groups
                .coordinator
                .leave_group(request.group_id.0.as_str(), &member_ids, now_ms);
        self.groups.dispatch();
        let errors = match result {
            Ok(errors) => errors,
            Err(error) => return LeaveGroupResponse::default().with_error_code(error.code()),
        };
        if version < 3 {
            let code = errors.first().map_or(0, |e| e.code());
            return LeaveGroupResponse::default().with_error_code(code);
        }
        let members = request
            .members
            .iter()
            .zip(&errors)
            .map(|(m, e)| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(e.code())
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    /// OffsetCommit: a partition of an unknown topic is UNKNOWN_TOPIC_OR_PARTITION (as Kafka's
    /// `KafkaApis` answers before the coordinator); the others go to the coordinator, which
    /// checks the generation and stores them durably.
    pub fn offset_commit(&mut self, request: &OffsetCommitRequest) -> OffsetCommitResponse {
        let mut offsets = Vec::new();
        // Per partition: Ok(index into the coordinator's answers) or the error.
        let mut routed: Vec<Vec<Result<usize, i16>>> = Vec::new();
        for topic in &request.topics {
            let found = self.topics.get(topic.name.0.as_str());
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                if found.is_some_and(|t| (0..t.partition_count).contains(&p.partition_index)) {
                    partitions.push(Ok(offsets.len()));
                    offsets.push((
                        TopicPartition {
                            topic: topic.name.0.to_string(),
                            partition: p.partition_index,
                        },
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                    ));
                } else {
                    partitions.push(Err(ResponseError::UnknownTopicOrPartition.code()));
                }
            }
            routed.push(partitions);
        }
        let core = group_coordinator::OffsetCommitRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            offsets,
        };
        let now_ms = self.broker.now_ms();
        let answers =
            self.groups
                .coordinator
                .commit_offsets(self.broker.storage_mut(), &core, now_ms);
        self.groups.dispatch();
        let topics = request
            .topics
            .iter()
            .zip(routed)
            .map(|(topic, partitions)| {
                let partitions = topic
                    .partitions
                    .iter()
                    .zip(partitions)
                    .map(|(p, routed)| {
                        let code = routed.map_or_else(|code| code, |i| answers[i].code());
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// OffsetFetch: the committed offset of each partition (-1 where none), every committed
    /// partition for a null topic list; from v8 on, for a batch of groups.
    pub fn offset_fetch(&self, request: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if version >= 8 {
            let groups = request
                .groups
                .iter()
                .map(|group| {
                    let wanted = group.topics.as_ref().map(|topics| {
                        wanted_partitions(topics.iter().map(|t| (&t.name, &t.partition_indexes)))
                    });
                    let topics = self
                        .fetch_by_topic(&group.group_id, wanted.as_deref())
                        .map(|(name, partitions)| {
                            let partitions = partitions
                                .into_iter()
                                .map(|(partition, offset)| {
                                    let (offset, epoch, metadata) = offset_fields(offset);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(partitions)
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(group.group_id.clone())
                        .with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let wanted = request.topics.as_ref().map(|topics| {
            wanted_partitions(topics.iter().map(|t| (&t.name, &t.partition_indexes)))
        });
        let topics = self
            .fetch_by_topic(&request.group_id, wanted.as_deref())
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(partition, offset)| {
                        let (offset, epoch, metadata) = offset_fields(offset);
                        let answer = OffsetFetchResponsePartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset)
                            .with_metadata(Some(metadata));
                        if version >= 5 {
                            answer.with_committed_leader_epoch(epoch)
                        } else {
                            answer
                        }
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// The group's committed offsets of `wanted` (all when `None`), by topic.
    fn fetch_by_topic(
        &self,
        group_id: &GroupId,
        wanted: Option<&[TopicPartition]>,
    ) -> impl Iterator<Item = (TopicName, PartitionOffsets)> {
        let fetched = self
            .groups
            .coordinator
            .fetch_offsets(group_id.0.as_str(), wanted);
        by_topic(fetched)
            .into_iter()
            .map(|(name, partitions)| (TopicName(str_bytes(&name)), partitions))
    }

    /// ListGroups, with the v4 state filter and the v5 type filter (every group here is
    /// `classic`).
    pub fn list_groups(&self, request: &ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: Vec<GroupState> = request
            .states_filter
            .iter()
            .filter_map(|s| state_named(s.as_str()))
            .collect();
        let filter_states = version >= 4 && !request.states_filter.is_empty();
        let classic = request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case("classic"));
        if version >= 5 && !classic {
            return ListGroupsResponse::default();
        }
        let groups = self
            .groups
            .coordinator
            .list_groups(filter_states.then_some(&states[..]))
            .into_iter()
            .map(|g| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(&g.group_id)))
                    .with_protocol_type(str_bytes(&g.protocol_type));
                match version {
                    4 => listed.with_group_state(str_bytes(g.state.name())),
                    v if v >= 5 => listed
                        .with_group_state(str_bytes(g.state.name()))
                        .with_group_type(str_bytes("classic")),
                    _ => listed,
                }
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DescribeGroups. A group the coordinator does not know is Dead with no error before v6,
    /// GROUP_ID_NOT_FOUND from v6 on, as in Kafka.
    pub fn describe_groups(
        &self,
        request: &DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = request
            .groups
            .iter()
            .map(|group_id| {
                let d = self.groups.coordinator.describe_group(group_id.0.as_str());
                let members = d
                    .members
                    .iter()
                    .map(|m| {
                        let member = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata.clone())
                            .with_member_assignment(m.assignment.clone());
                        if version >= 4 {
                            member.with_group_instance_id(
                                m.group_instance_id.as_deref().map(str_bytes),
                            )
                        } else {
                            member
                        }
                    })
                    .collect();
                let described = DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(str_bytes(d.state.name()))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol_name))
                    .with_members(members);
                if version >= 6 && d.state == GroupState::Dead {
                    described
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(&format!(
                            "Group {} not found.",
                            group_id.0.as_str()
                        ))))
                } else {
                    described
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups: empty groups and their offsets, durably.
    pub fn delete_groups(&mut self, request: &DeleteGroupsRequest) -> DeleteGroupsResponse {
        let ids: Vec<String> = request
            .groups_names
            .iter()
            .map(|g| g.0.to_string())
            .collect();
        let now_ms = self.broker.now_ms();
        let errors = self
            .groups
            .coordinator
            .delete_groups(self.broker.storage_mut(), &ids, now_ms);
        self.groups.dispatch();
        let results = request
            .groups_names
            .iter()
            .zip(errors)
            .map(|(g, e)| {
                DeletableGroupResult::default()
                    .with_group_id(g.clone())
                    .with_error_code(e.code())
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }
}

fn state_named(name: &str) -> Option<GroupState> {
    [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ]
    .into_iter()
    .find(|s| s.name().eq_ignore_ascii_case(name))
}

type Fetched = Vec<(TopicPartition, Option<group_coordinator::CommittedOffset>)>;
type PartitionOffsets = Vec<(i32, Option<group_coordinator::CommittedOffset>)>;

/// The partitions an OffsetFetch names.
fn wanted_partitions<'a>(
    topics: impl Iterator<Item = (&'a TopicName, &'a Vec<i32>)>,
) -> Vec<TopicPartition> {
    topics
        .flat_map(|(name, partitions)| {
            partitions.iter().map(|&partition| TopicPartition {
                topic: name.0.to_string(),
                partition,
            })
        })
        .collect()
}

/// Groups fetched offsets by topic, keeping the order topics first appear in.
fn by_topic(fetched: Fetched) -> Vec<(String, PartitionOffsets)> {
    let mut topics: Vec<(String, Vec<_>)> = Vec::new();
    for (tp, offset) in fetched {
        match topics.iter_mut().find(|(name, _)| *name == tp.topic) {
            Some((_, partitions)) => partitions.push((tp.partition, offset)),
            None => topics.push((tp.topic, vec![(tp.partition, offset)])),
        }
    }
    topics
}

/// (offset, leader epoch, metadata) on the wire: -1, -1, "" where nothing was committed.
fn offset_fields(offset: Option<group_coordinator::CommittedOffset>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, StrBytes::from_string(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

/// A decoded consumer-group request (one variant of
/// [`RequestBody`](crate::kafka_codec::RequestBody)).
#[derive(Clone, Debug, PartialEq)]
pub enum GroupRequest {
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// ListGroups.
    ListGroups(ListGroupsRequest),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
}

impl GroupRequest {
    /// Decodes the body of a group API request.
    pub fn decode(api_key: ApiKey, version: i16, buf: &mut Bytes) -> anyhow::Result<GroupRequest> {
        Ok(match api_key {
            ApiKey::FindCoordinator => {
                GroupRequest::FindCoordinator(FindCoordinatorRequest::decode(buf, version)?)
            }
            ApiKey::JoinGroup => GroupRequest::JoinGroup(JoinGroupRequest::decode(buf, version)?),
            ApiKey::SyncGroup => GroupRequest::SyncGroup(SyncGroupRequest::decode(buf, version)?),
            ApiKey::Heartbeat => GroupRequest::Heartbeat(HeartbeatRequest::decode(buf, version)?),
            ApiKey::LeaveGroup => {
                GroupRequest::LeaveGroup(LeaveGroupRequest::decode(buf, version)?)
            }
            ApiKey::OffsetCommit => {
                GroupRequest::OffsetCommit(OffsetCommitRequest::decode(buf, version)?)
            }
            ApiKey::OffsetFetch => {
                GroupRequest::OffsetFetch(OffsetFetchRequest::decode(buf, version)?)
            }
            ApiKey::ListGroups => {
                GroupRequest::ListGroups(ListGroupsRequest::decode(buf, version)?)
            }
            ApiKey::DescribeGroups => {
                GroupRequest::DescribeGroups(DescribeGroupsRequest::decode(buf, version)?)
            }
            ApiKey::DeleteGroups => {
                GroupRequest::DeleteGroups(DeleteGroupsRequest::decode(buf, version)?)
            }
            other => anyhow::bail!("{other:?} is not a group API"),
        })
    }
}

/// A group API's answer, ready to encode, or a parked one.
#[derive(Debug)]
pub enum GroupReply {
    /// Encoded at once.
    Now(bytes::Bytes),
    /// A JoinGroup answered later.
    Join(oneshot::Receiver<JoinGroupResponse>),
    /// A SyncGroup answered later.
    Sync(oneshot::Receiver<SyncGroupResponse>),
}

impl KafkaApis {
    /// Serves one group request: the encoded answer frame, or the receiver of a parked one.
    pub fn group_request(
        &mut self,
        request: &GroupRequest,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        client: &Client,
    ) -> Result<GroupReply, EncodeError> {
        let encode = |body: &dyn EncodableBody| body.encode_frame(api_key, version, correlation_id);
        let frame = match request {
            GroupRequest::FindCoordinator(r) => encode(&self.find_coordinator(r, version)),
            GroupRequest::JoinGroup(r) => match self.join_group(r, version, client) {
                Reply::Now(response) => encode(&response),
                Reply::Later(receiver) => return Ok(GroupReply::Join(receiver)),
            },
            GroupRequest::SyncGroup(r) => match self.sync_group(r, version) {
                Reply::Now(response) => encode(&response),
                Reply::Later(receiver) => return Ok(GroupReply::Sync(receiver)),
            },
            GroupRequest::Heartbeat(r) => encode(&self.heartbeat(r)),
            GroupRequest::LeaveGroup(r) => encode(&self.leave_group(r, version)),
            GroupRequest::OffsetCommit(r) => encode(&self.offset_commit(r)),
            GroupRequest::OffsetFetch(r) => encode(&self.offset_fetch(r, version)),
            GroupRequest::ListGroups(r) => encode(&self.list_groups(r, version)),
            GroupRequest::DescribeGroups(r) => encode(&self.describe_groups(r, version)),
            GroupRequest::DeleteGroups(r) => encode(&self.delete_groups(r)),
        };
        frame.map(GroupReply::Now)
    }
}

/// A response body that can be framed (object-safe, unlike `Encodable`'s generic use).
pub trait EncodableBody {
    /// The response frame.
    fn encode_frame(
        &self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<bytes::Bytes, EncodeError>;
}

impl<T: kafka_protocol::protocol::Encodable> EncodableBody for T {
    fn encode_frame(
        &self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<bytes::Bytes, EncodeError> {
        crate::kafka_codec::encode_response(api_key, version, correlation_id, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_apis::FrontEndSettings;
    use crate::kafka_codec::supported_versions;
    use bytes::BytesMut;
    use idempo_broker::{Broker, BrokerConfig, NodeStorage, SimDisk};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::protocol::Encodable;

    const DELAY_MS: i64 = 50;

    fn apis() -> KafkaApis {
        let (broker, _) = Broker::open(
            BrokerConfig {
                auto_create_partitions: false,
                ..BrokerConfig::default()
            },
            NodeStorage::Memory(SimDisk::new()),
        )
        .expect("valid config");
        let mut apis = KafkaApis::new(
            broker,
            FrontEndSettings {
                advertised_host: "127.0.0.1".into(),
                advertised_port: 9092,
                cluster_id: "test".into(),
                default_partitions: 2,
                auto_create_topics: true,
                group: GroupConfig {
                    group_initial_rebalance_delay_ms: DELAY_MS,
                    ..GroupConfig::default()
                },
                member_id_seed: 1,
            },
        );
        apis.advance_time(1_000);
        apis
    }

    fn served(api: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (min, max) = supported_versions(api).expect("served");
        min..=max
    }

    fn join(member_id: &str) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range"))
                    .with_metadata(Bytes::from_static(b"sub")),
            ])
    }

    fn requests(version_of: impl Fn(ApiKey) -> i16) -> Vec<(ApiKey, GroupRequest)> {
        let v = version_of;
        let commit_topic = OffsetCommitRequestTopic::default()
            .with_name(TopicName(str_bytes("t")))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)
                    .with_committed_metadata(Some(str_bytes(""))),
            ]);
        let fetch = if v(ApiKey::OffsetFetch) >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(str_bytes("g")))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(str_bytes("t")))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str_bytes("t")))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        };
        let find = if v(ApiKey::FindCoordinator) >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes("g")])
        } else {
            FindCoordinatorRequest::default().with_key(str_bytes("g"))
        };
        let leave = if v(ApiKey::LeaveGroup) >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(str_bytes("x")),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_member_id(str_bytes("x"))
        };
        vec![
            (ApiKey::FindCoordinator, GroupRequest::FindCoordinator(find)),
            (ApiKey::JoinGroup, GroupRequest::JoinGroup(join(""))),
            (
                ApiKey::SyncGroup,
                GroupRequest::SyncGroup(
                    SyncGroupRequest::default().with_group_id(GroupId(str_bytes("g"))),
                ),
            ),
            (
                ApiKey::Heartbeat,
                GroupRequest::Heartbeat(
                    HeartbeatRequest::default().with_group_id(GroupId(str_bytes("g"))),
                ),
            ),
            (ApiKey::LeaveGroup, GroupRequest::LeaveGroup(leave)),
            (
                ApiKey::OffsetCommit,
                GroupRequest::OffsetCommit(
                    OffsetCommitRequest::default()
                        .with_group_id(GroupId(str_bytes("g")))
                        .with_generation_id_or_member_epoch(-1)
                        .with_topics(vec![commit_topic]),
                ),
            ),
            (ApiKey::OffsetFetch, GroupRequest::OffsetFetch(fetch)),
            (
                ApiKey::ListGroups,
                GroupRequest::ListGroups(ListGroupsRequest::default()),
            ),
            (
                ApiKey::DescribeGroups,
                GroupRequest::DescribeGroups(
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(str_bytes("g")), GroupId(str_bytes("h"))]),
                ),
            ),
            (
                ApiKey::DeleteGroups,
                GroupRequest::DeleteGroups(
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("h"))]),
                ),
            ),
        ]
    }

    fn body_bytes(request: &GroupRequest, version: i16) -> BytesMut {
        let mut buf = BytesMut::new();
        let encoded = match request {
            GroupRequest::FindCoordinator(r) => r.encode(&mut buf, version),
            GroupRequest::JoinGroup(r) => r.encode(&mut buf, version),
            GroupRequest::SyncGroup(r) => r.encode(&mut buf, version),
            GroupRequest::Heartbeat(r) => r.encode(&mut buf, version),
            GroupRequest::LeaveGroup(r) => r.encode(&mut buf, version),
            GroupRequest::OffsetCommit(r) => r.encode(&mut buf, version),
            GroupRequest::OffsetFetch(r) => r.encode(&mut buf, version),
            GroupRequest::ListGroups(r) => r.encode(&mut buf, version),
            GroupRequest::DescribeGroups(r) => r.encode(&mut buf, version),
            GroupRequest::DeleteGroups(r) => r.encode(&mut buf, version),
        };
        encoded.expect("the test request encodes");
        buf
    }

    #[test]
    fn every_served_version_of_every_group_api_decodes_walks_and_encodes_its_answer() {
        for step in 0..10 {
            // Step `step` of each API's range, clamped to its maximum.
            let version_of = |api: ApiKey| {
                let range = served(api);
                (*range.start() + step).min(*range.end())
            };
            let mut apis = apis();
            let topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(str_bytes("t"))));
            let _ = apis.metadata(
                &kafka_protocol::messages::MetadataRequest::default()
                    .with_topics(Some(vec![topic])),
                12,
            );
            for (api, request) in requests(version_of) {
                let version = version_of(api);
                let body = body_bytes(&request, version);
                crate::preflight::check(api, version, &body)
                    .unwrap_or_else(|e| panic!("{api:?} v{version} walks: {e}"));
                let decoded = GroupRequest::decode(api, version, &mut body.freeze())
                    .unwrap_or_else(|e| panic!("{api:?} v{version} decodes: {e}"));
                let reply = apis.group_request(&decoded, api, version, 7, &Client::default());
                assert!(
                    matches!(reply, Ok(GroupReply::Now(_)) | Ok(GroupReply::Join(_))),
                    "{api:?} v{version} is answered: {reply:?}"
                );
            }
        }
    }

    #[test]
    fn a_group_request_announcing_more_elements_than_bytes_is_refused_before_decoding() {
        let mut body = body_bytes(
            &GroupRequest::DescribeGroups(DescribeGroupsRequest::default()),
            0,
        )
        .to_vec();
        body[..4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(crate::preflight::check(ApiKey::DescribeGroups, 0, &body).is_err());
    }

    #[test]
    fn a_v4_join_gets_member_id_required_and_a_v3_join_is_parked_until_the_delay_passes() {
        let mut apis = apis();
        let client = Client {
            client_id: "app".into(),
            client_host: "/127.0.0.1".into(),
        };
        match apis.join_group(&join(""), 4, &client) {
            Reply::Now(r) => {
                assert_eq!(
                    r.error_code,
                    group_coordinator::GroupError::MemberIdRequired.code()
                );
                assert!(r.member_id.starts_with("app-"));
            }
            Reply::Later(_) => panic!("KIP-394 answers at once"),
        }
        let Reply::Later(mut receiver) = apis.join_group(&join(""), 3, &client) else {
            panic!("a v3 join waits for the initial rebalance delay");
        };
        assert!(receiver.try_recv().is_err(), "not before the delay");
        apis.advance_time(1_000 + DELAY_MS);
        // The v4 member never joined with its id: the join waits for it until it expires.
        apis.advance_time(1_000 + DELAY_MS + 10_000);
        let response = receiver.try_recv().expect("answered once the delay passed");
        assert_eq!(response.error_code, 0);
        assert_eq!(response.generation_id, 1);
        assert_eq!(
            response.protocol_name.as_ref().map(|p| p.as_str()),
            Some("range")
        );
        assert_eq!(response.members.len(), 1, "the only member leads");
    }

    #[test]
    fn find_coordinator_names_this_broker_and_refuses_transactional_ids() {
        let apis = apis();
        let group = apis.find_coordinator(
            &FindCoordinatorRequest::default().with_key(str_bytes("g")),
            2,
        );
        assert_eq!(group.error_code, 0);
        assert_eq!(group.node_id, BrokerId(NODE_ID));
        assert_eq!(group.port, 9092);
        let txn = apis.find_coordinator(
            &FindCoordinatorRequest::default()
                .with_key_type(KEY_TYPE_TRANSACTION)
                .with_coordinator_keys(vec![str_bytes("tx")]),
            4,
        );
        assert_eq!(
            txn.coordinators[0].error_code,
            ResponseError::TransactionalIdAuthorizationFailed.code()
        );
    }

    #[test]
    fn an_offset_commit_to_an_unknown_topic_is_unknown_topic_or_partition() {
        let mut apis = apis();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("nope")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()]),
            ]);
        let response = apis.offset_commit(&request);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
