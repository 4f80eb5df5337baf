//! A cluster of brokers in one process: the controller and every broker's core, driven by
//! the same rules as the simulator's cluster (`sim/src/engine/cluster.rs`), told the time by
//! the caller.
//!
//! `idempo-broker --brokers 3` serves three brokers, each on its own port with its own node
//! id, storage and topic table, and one [`Controller`] (Kafka's KRaft quorum, assumed always
//! available). This module is the synchronous half: it has no sockets and no clock. The
//! tokio half ([`crate::cluster_server`]) locks it, tells it the time, and moves bytes.
//!
//! | from | to | what | when |
//! |---|---|---|---|
//! | controller | every reachable replica | `LeaderAndIsr` ([`Broker::apply_leader_and_isr`]) | each decision; a broker back from a crash or an isolation replays the state of every partition it holds |
//! | broker | controller | heartbeat | every tick, unless it is down or isolated |
//! | leader | controller | `AlterPartition` | expansions after follower fetches; shrinks at the ISR expiration check, every `replica.lag.time.max.ms / 2` |
//! | follower | leader | [`Broker::follower_fetch_request`] → [`Broker::replica_fetch`] → [`Broker::on_follower_fetch_response`] | after every produce (Kafka's leader wakes its held fetches on append) and every tick, until a round changes nothing |
//! | client | any broker | Metadata | from the controller's view: every unfenced broker, each partition's leader, replicas and ISR |
//!
//! Replication is a direct call from one core to another (no inter-broker TCP): the fetch,
//! its answer and the follower's append are exactly the values the simulator moves, through
//! the same three calls, so the high watermark, the ISR, `acks=all` and the elections follow
//! the same rules. A produce with `acks=all` is answered when the HW passes it
//! ([`Broker::take_completed`]), which here is usually within the same call.
//!
//! ## Topics
//! Every broker keeps its own topic table (in its own storage). A topic is created on every
//! broker in the same step, so every table numbers the topic's core partitions alike; the
//! controller was built with one partition per possible core partition
//! (`max.partitions`), and the states of the core partitions that belong to a topic are
//! delivered to their replicas when the topic is created.
//!
//! ## Faults
//! - [`ClusterNode::crash`]: a power loss inside the process. On memory storage the
//!   unsynced tail is dropped ([`SimDisk::crash`]), as in the simulator; recovery runs at
//!   once; the broker stays down (its connections closed, no heartbeats) until
//!   [`ClusterNode::start`]. The controller notices only when the session times out.
//! - [`ClusterNode::isolate`]: the broker keeps its state but receives nothing for a while.
//! - [`ClusterNode::elect`]: Kafka's ElectLeaders (preferred or unclean).
//!
//! ## Differences from Kafka
//! - One process: a "crash" is this module dropping a broker's memory, not a process kill.
//!   On `--data-dir` storage every append was written to the OS, so a crash loses nothing
//!   (as a `kill -9` of a single broker); only memory storage loses the unsynced tail.
//! - No inter-broker network: fetches are not delayed or lost; `replica.fetch.wait.max.ms`
//!   has no meaning.
//! - One replication factor for every topic (`--replication-factor`): CreateTopics asks
//!   for it (or -1), and the controller places every replica (no manual assignment).

use crate::dispatch::{ProduceReply, Produced, RequestHandlers};
use crate::kafka_apis::{FrontEndSettings, KafkaApis};
use crate::topics::Topic;
use idempo_broker::{
    Broker, BrokerConfig, Controller, ControllerConfig, ControllerConfigError, ControllerDecision,
    ElectionType, LeaderAndIsr, NO_LEADER, NodeStorage, OpenError, SimDisk,
};
use idempo_protocol::{ErrorCode, Request, RequestFrame, Response, ResponseFrame};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
    create_partitions_response::CreatePartitionsTopicResult,
    create_topics_response::CreatableTopicResult,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// Most fetch rounds one replication pass runs (each round is one fetch per followed
/// partition); what is left is fetched at the next pass.
pub const FETCH_ROUNDS_MAX: usize = 16;

/// Most producer id blocks skipped at start-up past the ids the brokers know.
const PRODUCER_ID_BLOCKS_SKIPPED_MAX: usize = 1_000_000;

/// The cluster's shape and policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Number of brokers, with node ids `0..brokers`.
    pub brokers: i32,
    /// Replicas of every partition (`default.replication.factor`), at most `brokers`.
    pub replication_factor: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: i64,
}

/// Why a cluster could not be built, or an operation on it was refused.
#[derive(Debug)]
pub enum ClusterError {
    /// The controller's settings are invalid.
    Controller(ControllerConfigError),
    /// A broker's storage could not be opened or recovered.
    Open {
        /// The broker.
        broker: i32,
        /// Why.
        error: OpenError,
    },
    /// A broker's topic table could not be loaded.
    Topics {
        /// The broker.
        broker: i32,
        /// Why.
        error: crate::topics::TopicTableError,
    },
    /// No broker with that id.
    UnknownBroker(i32),
    /// No such topic or partition.
    UnknownPartition(String),
    /// The operation does not apply in the broker's state (crash a down broker, ...).
    Conflict(String),
    /// The request is not valid (an election of a leader that is not the preferred one).
    Invalid(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Controller(e) => write!(f, "invalid cluster settings: {e}"),
            ClusterError::Open { broker, error } => {
                write!(f, "cannot open broker {broker}'s storage: {error}")
            }
            ClusterError::Topics { broker, error } => {
                write!(f, "cannot load broker {broker}'s topic table: {error}")
            }
            ClusterError::UnknownBroker(b) => write!(f, "no broker {b}"),
            ClusterError::UnknownPartition(what) => write!(f, "unknown partition {what}"),
            ClusterError::Conflict(why) | ClusterError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ClusterError {}

/// What a broker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState {
    /// Serving.
    Up,
    /// Crashed, until started again.
    Down,
    /// Cut off until the given time (ms).
    Isolated {
        /// When the isolation heals.
        until_ms: i64,
    },
}

impl BrokerState {
    /// `up`, `down` or `isolated`.
    pub fn name(self) -> &'static str {
        match self {
            BrokerState::Up => "up",
            BrokerState::Down => "down",
            BrokerState::Isolated { .. } => "isolated",
        }
    }
}

/// One broker of the cluster.
#[derive(Debug)]
pub struct ClusterBroker {
    /// Its front end and core.
    pub apis: KafkaApis,
    /// Up, down or isolated.
    pub state: BrokerState,
    /// Bumped at every crash and isolation: connections accepted before are closed.
    pub incarnation: u64,
}

/// Where each partition of a delayed produce request goes back to.
#[derive(Debug)]
struct Waiting {
    routing: Routing,
    version: i16,
    reply: oneshot::Sender<ProduceResponse>,
}

/// Per topic of a produce request: its name and, per partition, its index and either
/// "sent to the core" or the error it was answered.
type Routing = Vec<(TopicName, Vec<(i32, Result<(), (i16, String)>)>)>;

/// The controller and every broker.
#[derive(Debug)]
pub struct ClusterNode {
    controller: Controller,
    brokers: Vec<ClusterBroker>,
    configs: Vec<BrokerConfig>,
    /// Core partitions that belong to a topic: only their states are delivered.
    in_use: BTreeSet<i32>,
    next_shrink_check_ms: i64,
    waiting: HashMap<(i32, u64, i32), Waiting>,
    now_ms: i64,
}

impl ClusterNode {
    /// A cluster of `settings.brokers` brokers, broker `b` with config `configs[b]`
    /// (`broker_id` set to `b` here), storage `storages[b]` and front-end settings
    /// `front_ends[b]`, at `now_ms`. Each broker recovers its storage and loads its topic
    /// table; the controller places every possible core partition and the partitions of the
    /// loaded topics are delivered.
    pub fn open(
        settings: &ClusterSettings,
        mut configs: Vec<BrokerConfig>,
        storages: Vec<NodeStorage>,
        front_ends: Vec<FrontEndSettings>,
        now_ms: i64,
    ) -> Result<ClusterNode, ClusterError> {
        assert!(
            configs.len() == settings.brokers as usize
                && storages.len() == configs.len()
                && front_ends.len() == configs.len(),
            "one config, storage and front end per broker"
        );
        let partitions = configs.first().map_or(1, |c| c.max_partitions);
        let controller = Controller::new(
            ControllerConfig {
                brokers: settings.brokers,
                partitions,
                replication_factor: settings.replication_factor,
                unclean_leader_election: settings.unclean_leader_election,
                broker_session_timeout_ms: settings.broker_session_timeout_ms,
            },
            now_ms,
        )
        .map_err(ClusterError::Controller)?;
        let mut brokers = Vec::with_capacity(configs.len());
        for (b, ((config, storage), front_end)) in
            configs.iter_mut().zip(storages).zip(front_ends).enumerate()
        {
            config.broker_id = b as i32;
            let apis = open_apis(b as i32, config, storage, front_end)?;
            brokers.push(ClusterBroker {
                apis,
                state: BrokerState::Up,
                incarnation: 0,
            });
        }
        let mut node = ClusterNode {
            controller,
            brokers,
            configs,
            in_use: BTreeSet::new(),
            next_shrink_check_ms: now_ms,
            waiting: HashMap::new(),
            now_ms,
        };
        node.advance_time(now_ms);
        node.skip_known_producer_ids();
        for b in 0..node.brokers.len() {
            node.grant_producer_ids(b as i32);
        }
        let cores: Vec<i32> = node.brokers[0]
            .apis
            .topics
            .iter()
            .flat_map(|t| t.core_partitions.clone())
            .collect();
        node.restore_leader_epochs(&cores);
        node.start_partitions(&cores);
        Ok(node)
    }

    /// The brokers, by node id.
    pub fn brokers(&self) -> &[ClusterBroker] {
        &self.brokers
    }

    /// The brokers, by node id, to change (their group coordinators, their shutdown).
    pub fn brokers_mut(&mut self) -> &mut [ClusterBroker] {
        &mut self.brokers
    }

    /// The controller.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Broker `b`, if it exists.
    pub fn broker(&self, b: i32) -> Result<&ClusterBroker, ClusterError> {
        usize::try_from(b)
            .ok()
            .and_then(|i| self.brokers.get(i))
            .ok_or(ClusterError::UnknownBroker(b))
    }

    fn broker_mut(&mut self, b: i32) -> Result<&mut ClusterBroker, ClusterError> {
        usize::try_from(b)
            .ok()
            .and_then(|i| self.brokers.get_mut(i))
            .ok_or(ClusterError::UnknownBroker(b))
    }

    /// True when broker `b` is up and not cut off: it serves clients, heartbeats, fetches.
    pub fn reachable(&self, b: i32) -> bool {
        self.broker(b).is_ok_and(|x| x.state == BrokerState::Up)
    }

    /// Tells every reachable broker the time (expiry, syncs, delayed produce deadlines,
    /// group timers).
    pub fn advance_time(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        for x in &mut self.brokers {
            if x.state == BrokerState::Up {
                x.apis.advance_time(self.now_ms);
            }
        }
    }

    /// After a restart of the process (with `--data-dir`), each partition starts at a leader
    /// epoch one above the newest any replica's log holds: a new epoch, as after an
    /// election, so that followers truncate to the leader's log by the usual
    /// diverging-epoch rule and no batch of an old epoch passes for a new one.
    fn restore_leader_epochs(&mut self, cores: &[i32]) {
        for &core in cores {
            let newest = self
                .brokers
                .iter()
                .filter_map(|x| x.apis.broker.log(core))
                .filter_map(|log| log.leader_epoch_cache().latest_epoch())
                .max();
            if let Some(epoch) = newest {
                let _ = self
                    .controller
                    .restore_leader_epoch(core, epoch.saturating_add(1));
            }
        }
    }

    /// The controller keeps no metadata log, so after a restart of the process (with
    /// `--data-dir`) it would hand out producer ids from 1 again: ids the partitions still
    /// hold state for. Its blocks are skipped until they pass every id any broker knows
    /// (Kafka's controller reads the last block from its metadata log instead).
    fn skip_known_producer_ids(&mut self) {
        let known = self
            .brokers
            .iter()
            .flat_map(|x| {
                x.apis
                    .topics
                    .iter()
                    .flat_map(|t| t.core_partitions.iter())
                    .filter_map(|&c| x.apis.broker.producer_state(c))
                    .flat_map(|s| s.producer_ids())
                    .map(|id| id.0)
                    .collect::<Vec<_>>()
            })
            .max();
        let Some(known) = known else { return };
        // Bounded: ids are ours, handed out in blocks of 1 000.
        for _ in 0..PRODUCER_ID_BLOCKS_SKIPPED_MAX {
            let (first, len) = self.controller.allocate_producer_ids(0);
            if first.saturating_add(len) > known {
                break;
            }
        }
    }

    fn grant_producer_ids(&mut self, b: i32) {
        let (first, len) = self.controller.allocate_producer_ids(b);
        self.brokers[b as usize]
            .apis
            .broker
            .grant_producer_id_block(first, len);
    }

    /// Marks `cores` in use and delivers their current states.
    fn start_partitions(&mut self, cores: &[i32]) {
        for &core in cores {
            if self.in_use.insert(core) {
                let state = self.controller.partition(core).clone();
                self.deliver(&state);
            }
        }
        self.replicate();
    }

    /// Tells every reachable replica of a partition in use its new state.
    fn deliver(&mut self, state: &LeaderAndIsr) {
        if !self.in_use.contains(&state.partition) {
            return;
        }
        for &b in &state.replicas {
            if self.reachable(b) {
                let _ = self.brokers[b as usize]
                    .apis
                    .broker
                    .apply_leader_and_isr(state);
            }
        }
    }

    fn apply_decisions(&mut self, decisions: Vec<ControllerDecision>) {
        for decision in decisions {
            match &decision {
                ControllerDecision::BrokerFenced { broker } => info!(broker, "fenced broker"),
                ControllerDecision::BrokerUnfenced { broker } => info!(broker, "unfenced broker"),
                ControllerDecision::Elected {
                    partition,
                    leader,
                    leader_epoch,
                    clean,
                    ..
                } if self.in_use.contains(partition) => info!(
                    core_partition = partition,
                    leader, leader_epoch, clean, "elected leader"
                ),
                ControllerDecision::Offline { partition, .. }
                    if self.in_use.contains(partition) =>
                {
                    warn!(core_partition = partition, "partition offline")
                }
                _ => {}
            }
            if let Some(state) = decision.state() {
                let state = state.clone();
                self.deliver(&state);
            }
        }
    }

    /// The topic `name`, created on every broker (and its partitions started) if unknown and
    /// `create` allows; else the error code and why.
    pub fn topic(&mut self, name: &str, create: bool) -> Result<Topic, (i16, String)> {
        if let Some(topic) = self.brokers[0].apis.topics.get(name) {
            return Ok(topic.clone());
        }
        if !create {
            return Err((
                ResponseError::UnknownTopicOrPartition.code(),
                "unknown topic and auto-creation is off".to_string(),
            ));
        }
        let mut created: Option<Topic> = None;
        for x in &mut self.brokers {
            let partitions = x.apis.settings.default_partitions;
            let apis = &mut x.apis;
            let topic = apis
                .topics
                .get_or_create(&mut apis.broker, name, partitions)
                .map_err(|e| (e.error_code(), e.to_string()))?
                .clone();
            if let Some(first) = &created {
                assert_eq!(
                    first.core_partitions, topic.core_partitions,
                    "every broker's topic table numbers core partitions alike"
                );
            }
            created = Some(topic);
        }
        let topic = created.expect("a cluster has at least one broker");
        info!(topic = name, core_partitions = ?topic.core_partitions, "created topic on every broker");
        self.start_partitions(&topic.core_partitions);
        Ok(topic)
    }

    /// The topic and partition of core partition `core`, if it belongs to one.
    pub fn topic_of(&self, core: i32) -> Option<(String, i32)> {
        self.brokers[0].apis.topics.iter().find_map(|t| {
            t.core_partitions
                .iter()
                .position(|&c| c == core)
                .map(|i| (t.name.clone(), i as i32))
        })
    }

    /// Metadata as broker `b` answers it: every unfenced broker, and per partition the
    /// controller's leader, leader epoch, replicas and ISR.
    pub fn metadata(
        &mut self,
        b: i32,
        request: &MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        let settings = self.brokers[b as usize].apis.settings.clone();
        let auto_create =
            settings.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let topics = match &request.topics {
            Some(wanted) if !(wanted.is_empty() && version == 0) => wanted
                .iter()
                .map(|t| match &t.name {
                    None => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                    Some(name) => match self.topic(name.0.as_str(), auto_create) {
                        Ok(topic) => self.describe(&topic),
                        Err((code, _)) => MetadataResponseTopic::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(code),
                    },
                })
                .collect(),
            _ => {
                let all: Vec<Topic> = self.brokers[0].apis.topics.iter().cloned().collect();
                all.iter().map(|t| self.describe(t)).collect()
            }
        };
        let brokers: Vec<MetadataResponseBroker> = self
            .brokers
            .iter()
            .enumerate()
            .filter(|(id, _)| !self.controller.is_fenced(*id as i32))
            .map(|(id, x)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id as i32))
                    .with_host(StrBytes::from_string(
                        x.apis.settings.advertised_host.clone(),
                    ))
                    .with_port(i32::from(x.apis.settings.advertised_port))
            })
            .collect();
        let controller_id = brokers.first().map_or(-1, |x| x.node_id.0);
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(StrBytes::from_string(settings.cluster_id)))
            .with_controller_id(BrokerId(controller_id))
            .with_topics(topics)
    }

    fn describe(&self, topic: &Topic) -> MetadataResponseTopic {
        let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
        let partitions = topic
            .core_partitions
            .iter()
            .enumerate()
            .map(|(index, &core)| {
                let state = self.controller.partition(core);
                let error = if state.leader == NO_LEADER {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    0
                };
                MetadataResponsePartition::default()
                    .with_partition_index(index as i32)
                    .with_error_code(error)
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch)
                    .with_replica_nodes(ids(&state.replicas))
                    .with_isr_nodes(ids(&state.isr))
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
            .with_topic_id(topic.topic_id)
            .with_partitions(partitions)
    }

    /// InitProducerId on broker `b`, from the block of ids the controller granted it (a new
    /// block when it ran out).
    pub fn init_producer_id(
        &mut self,
        b: i32,
        request: &InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        if self.brokers[b as usize]
            .apis
            .broker
            .producer_ids_remaining()
            <= 0
        {
            self.grant_producer_ids(b);
        }
        self.brokers[b as usize].apis.init_producer_id(request)
    }

    /// ListOffsets on broker `b`: refused with NOT_LEADER_OR_FOLLOWER where it does not lead;
    /// "latest" is the high watermark (what a consumer may read), with the leader epoch.
    pub fn list_offsets(
        &self,
        b: i32,
        request: &ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        let apis = &self.brokers[b as usize].apis;
        let mut response = apis.list_offsets(request, version);
        for (topic, answer) in request.topics.iter().zip(&mut response.topics) {
            let found = apis.topics.get(topic.name.0.as_str());
            for (wanted, p) in topic.partitions.iter().zip(&mut answer.partitions) {
                let Some(core) = found.and_then(|t| t.core_partition(wanted.partition_index))
                else {
                    continue;
                };
                let state = self.controller.partition(core);
                if state.leader != b {
                    p.error_code = ResponseError::NotLeaderOrFollower.code();
                    p.offset = -1;
                    continue;
                }
                if version >= 4 {
                    p.leader_epoch = state.leader_epoch;
                }
                if wanted.timestamp == -1 {
                    p.offset = apis.broker.high_watermark(core).unwrap_or(p.offset);
                }
            }
        }
        response
    }

    /// Produce on broker `b` from connection `client`: routed to core partitions as the
    /// one-broker front end does, then [`Broker::handle_from`], which refuses a partition
    /// this broker does not lead (NOT_LEADER_OR_FOLLOWER) and delays an `acks=all` answer
    /// until the high watermark passes it ([`ProduceReply::Later`]; the sender is dropped if
    /// the broker crashes or is cut off first). Followers fetch at once.
    pub fn produce(
        &mut self,
        b: i32,
        client: u64,
        correlation_id: i32,
        request: &ProduceRequest,
        version: i16,
    ) -> Produced {
        let (core, routing) = self.route(b, request, version);
        let frame = RequestFrame {
            correlation_id,
            request: Request::Produce(core),
        };
        let handled = self.brokers[b as usize]
            .apis
            .broker
            .handle_from(client, &frame);
        for outcome in &handled.outcomes {
            debug!(core_partition = outcome.response.partition, verdict = %outcome, "produced");
        }
        let appended = handled.outcomes.iter().filter(|o| o.is_appended()).count();
        let reply = match handled.response {
            Some(ResponseFrame {
                response: Response::Produce(r),
                ..
            }) => ProduceReply::Now(wire_response(&routing, &r.partitions, version)),
            Some(_) => unreachable!("a produce request is answered with a produce response"),
            None if request.acks == 0 => ProduceReply::NoAnswer {
                failed: routing
                    .iter()
                    .flat_map(|(_, p)| p)
                    .filter(|(_, r)| r.is_err())
                    .count()
                    + handled
                        .outcomes
                        .iter()
                        .filter(|o| o.response.error_code != ErrorCode::None)
                        .count(),
            },
            None => {
                let (reply, receiver) = oneshot::channel();
                let waiting = Waiting {
                    routing,
                    version,
                    reply,
                };
                self.waiting.insert((b, client, correlation_id), waiting);
                ProduceReply::Later(receiver)
            }
        };
        self.replicate();
        Produced { reply, appended }
    }

    /// The core request of a wire Produce (topics created on first use), and where each
    /// partition's answer goes back to.
    fn route(
        &mut self,
        b: i32,
        request: &ProduceRequest,
        version: i16,
    ) -> (idempo_protocol::ProduceRequest, Routing) {
        let auto_create = self.brokers[b as usize].apis.settings.auto_create_topics;
        let mut core = idempo_protocol::ProduceRequest {
            acks: request.acks,
            timeout_ms: request.timeout_ms,
            partitions: Vec::new(),
        };
        let mut routing: Routing = Vec::with_capacity(request.topic_data.len());
        for topic in &request.topic_data {
            let found = self.topic(topic.name.0.as_str(), auto_create);
            let mut partitions = Vec::with_capacity(topic.partition_data.len());
            for data in &topic.partition_data {
                let routed = found.as_ref().map_err(Clone::clone).and_then(|t| {
                    let c = t.core_partition(data.index).ok_or_else(|| {
                        (
                            ResponseError::UnknownTopicOrPartition.code(),
                            "the topic has no such partition".to_string(),
                        )
                    })?;
                    crate::kafka_apis::zstd_allowed(version, data.records.as_ref())?;
                    Ok(c)
                });
                if let Ok(c) = routed {
                    core.partitions.push(idempo_protocol::PartitionProduceData {
                        partition: c,
                        records: data.records.clone().unwrap_or_default(),
                    });
                }
                partitions.push((data.index, routed.map(|_| ())));
            }
            routing.push((topic.name.clone(), partitions));
        }
        (core, routing)
    }

    /// One replication pass: every reachable follower fetches every partition it follows
    /// from its reachable leader, round after round until a round changes nothing (at most
    /// [`FETCH_ROUNDS_MAX`]); then the ISR proposals and the delayed answers.
    pub fn replicate(&mut self) {
        let in_use: Vec<i32> = self.in_use.iter().copied().collect();
        for _ in 0..FETCH_ROUNDS_MAX {
            let mut progress = false;
            for f in 0..self.brokers.len() as i32 {
                if !self.reachable(f) {
                    continue;
                }
                for &p in &in_use {
                    progress |= self.fetch_once(f, p);
                }
            }
            self.drain(false);
            if !progress {
                break;
            }
        }
    }

    /// Follower `f` fetches partition `p` once from its leader; true if anything moved.
    fn fetch_once(&mut self, f: i32, p: i32) -> bool {
        let follower = &self.brokers[f as usize].apis.broker;
        let Some(request) = follower.follower_fetch_request(p) else {
            return false;
        };
        let Some(leader) = follower.replication(p).map(|r| r.leader()) else {
            return false;
        };
        if leader == f || !self.reachable(leader) {
            return false;
        }
        let response = self.brokers[leader as usize]
            .apis
            .broker
            .replica_fetch(&request);
        let fetched = self.brokers[f as usize]
            .apis
            .broker
            .on_follower_fetch_response(&request, &response);
        fetched.batches_appended > 0
            || fetched.truncation.is_some()
            || fetched.high_watermark_moved.is_some()
    }

    /// Delayed produce answers to their connections, ISR proposals to the controller (shrinks
    /// only when `shrink_check`), replication events to the log.
    fn drain(&mut self, shrink_check: bool) {
        let now_ms = self.now_ms;
        for b in 0..self.brokers.len() as i32 {
            if !self.reachable(b) {
                continue;
            }
            let broker = &mut self.brokers[b as usize].apis.broker;
            let completed = broker.take_completed();
            let alters = if shrink_check {
                broker.take_alter_partitions(now_ms)
            } else {
                broker.take_isr_expansions(now_ms)
            };
            for event in broker.take_replication_events() {
                debug!(broker = b, ?event, "replication event");
            }
            for done in completed {
                let key = (b, done.client, done.response.correlation_id);
                let (Some(waiting), Response::Produce(r)) =
                    (self.waiting.remove(&key), &done.response.response)
                else {
                    continue;
                };
                let wire = wire_response(&waiting.routing, &r.partitions, waiting.version);
                let _ = waiting.reply.send(wire);
            }
            for alter in alters {
                match self.controller.alter_partition(&alter) {
                    Ok(state) => {
                        info!(core_partition = state.partition, isr = ?state.isr, "ISR changed");
                        self.deliver(&state);
                    }
                    Err(e) => {
                        debug!(broker = b, error = %e, "AlterPartition refused");
                        self.brokers[b as usize]
                            .apis
                            .broker
                            .alter_partition_rejected(alter.partition);
                    }
                }
            }
        }
    }

    /// The periodic step at `now_ms`: heals isolations that are over, heartbeats of every
    /// reachable broker, the controller's session check, the ISR expiration check when due
    /// (every `replica.lag.time.max.ms / 2`), a replication pass.
    pub fn tick(&mut self, now_ms: i64) {
        self.advance_time(now_ms);
        for b in 0..self.brokers.len() as i32 {
            if let BrokerState::Isolated { until_ms } = self.brokers[b as usize].state
                && until_ms <= self.now_ms
            {
                info!(broker = b, "isolation healed");
                self.brokers[b as usize].state = BrokerState::Up;
                self.replay_metadata(b);
            }
        }
        for b in 0..self.brokers.len() as i32 {
            if self.reachable(b) {
                let decisions = self.controller.heartbeat(b, self.now_ms);
                self.apply_decisions(decisions);
            }
        }
        let decisions = self.controller.tick(self.now_ms);
        self.apply_decisions(decisions);
        let shrink_check = self.next_shrink_check_ms <= self.now_ms;
        if shrink_check {
            let lag_ms = self.configs[0].replica_lag_time_max_ms;
            self.next_shrink_check_ms = self.now_ms + (lag_ms / 2).max(1);
        }
        self.drain(shrink_check);
        self.replicate();
    }

    /// A broker back from a crash or an isolation applies the current state of every
    /// partition it holds a replica of (KRaft brokers replay the metadata log).
    fn replay_metadata(&mut self, b: i32) {
        let states: Vec<LeaderAndIsr> = self
            .in_use
            .iter()
            .map(|&p| self.controller.partition(p).clone())
            .filter(|s| s.replicas.contains(&b))
            .collect();
        let broker = &mut self.brokers[b as usize].apis;
        broker.advance_time(self.now_ms);
        for state in &states {
            let _ = broker.broker.apply_leader_and_isr(state);
        }
    }

    /// Broker `b` crashes: on memory storage its unsynced tail is lost (a power loss, as
    /// in the simulator), recovery runs at once, and it stays down (no connections, no
    /// heartbeats) until [`start`](Self::start). Its delayed produce answers are dropped.
    /// Returns the batches the crash lost.
    pub fn crash(&mut self, b: i32) -> Result<usize, ClusterError> {
        let x = self.broker_mut(b)?;
        if x.state == BrokerState::Down {
            return Err(ClusterError::Conflict(format!(
                "broker {b} is already down"
            )));
        }
        x.state = BrokerState::Down;
        x.incarnation += 1;
        let before: u64 = total_batches(&x.apis);
        let mut storage = std::mem::replace(
            x.apis.broker.storage_mut(),
            NodeStorage::Memory(SimDisk::new()),
        );
        if let NodeStorage::Memory(disk) = &mut storage {
            disk.crash(|_file, _unsynced| 0);
        }
        let front_end = x.apis.settings.clone();
        let config = self.configs[b as usize].clone();
        self.brokers[b as usize].apis = open_apis(b, &config, storage, front_end)?;
        let after = total_batches(&self.brokers[b as usize].apis);
        self.waiting.retain(|(broker, _, _), _| *broker != b);
        let lost = usize::try_from(before.saturating_sub(after)).unwrap_or(usize::MAX);
        warn!(
            broker = b,
            lost_batches = lost,
            "crashed broker (in process)"
        );
        Ok(lost)
    }

    /// Broker `b` starts again after a crash: it registers with the controller (which
    /// fences its old incarnation if still live, then unfences it), gets a producer id
    /// block, replays the partitions' states and fetches from their leaders.
    pub fn start(&mut self, b: i32) -> Result<(), ClusterError> {
        let x = self.broker_mut(b)?;
        if x.state != BrokerState::Down {
            return Err(ClusterError::Conflict(format!(
                "broker {b} is {}, not down",
                x.state.name()
            )));
        }
        x.state = BrokerState::Up;
        self.advance_time(self.now_ms);
        let decisions = self.controller.broker_registered(b, self.now_ms);
        self.grant_producer_ids(b);
        self.replay_metadata(b);
        self.apply_decisions(decisions);
        self.replicate();
        info!(broker = b, "started broker");
        Ok(())
    }

    /// Broker `b` is cut off for `duration_ms`: its connections close, it heartbeats to no
    /// one and fetches nothing, but keeps its state; then it replays the partitions' states.
    pub fn isolate(&mut self, b: i32, duration_ms: i64) -> Result<(), ClusterError> {
        let until_ms = self.now_ms.saturating_add(duration_ms.max(0));
        let x = self.broker_mut(b)?;
        if x.state == BrokerState::Down {
            return Err(ClusterError::Conflict(format!("broker {b} is down")));
        }
        x.state = BrokerState::Isolated { until_ms };
        x.incarnation += 1;
        self.waiting.retain(|(broker, _, _), _| *broker != b);
        info!(broker = b, duration_ms, "isolated broker");
        Ok(())
    }

    /// An election on request (Kafka's ElectLeaders) for core partition `core`: preferred
    /// (the first replica leads again, if it is a live ISR member) or unclean (an offline
    /// partition comes back from any live replica). Returns the new state.
    pub fn elect(
        &mut self,
        core: i32,
        election: ElectionType,
    ) -> Result<LeaderAndIsr, idempo_broker::ElectLeaderError> {
        let decision = self.controller.elect_leader(core, election)?;
        self.apply_decisions(vec![decision]);
        self.replicate();
        Ok(self.controller.partition(core).clone())
    }
}

/// The topic admin APIs and ElectLeaders on a cluster: every broker keeps its own topic
/// table, so a topic is created, grown, deleted or reconfigured on every broker in the same
/// step (the tables number core partitions alike), and the controller's states of the core
/// partitions that come into use are delivered to their replicas.
impl ClusterNode {
    /// Core partitions of every topic broker 0 knows.
    fn cores_of_topics(&self) -> BTreeSet<i32> {
        self.brokers[0]
            .apis
            .topics
            .iter()
            .flat_map(|t| t.core_partitions.iter().copied())
            .collect()
    }

    /// After a change to every broker's topic table: the core partitions that came into use
    /// are started, those that went out of use are no longer replicated.
    fn topics_changed(&mut self, before: &BTreeSet<i32>) {
        let after = self.cores_of_topics();
        for x in &self.brokers[1..] {
            let theirs: BTreeSet<i32> = x
                .apis
                .topics
                .iter()
                .flat_map(|t| t.core_partitions.iter().copied())
                .collect();
            assert_eq!(
                theirs, after,
                "every broker's topic table numbers core partitions alike"
            );
        }
        self.in_use.retain(|c| after.contains(c));
        let new: Vec<i32> = after.difference(before).copied().collect();
        self.start_partitions(&new);
    }

    /// CreateTopics: the replication factor is the cluster's (`--replication-factor`, or -1
    /// for it), at most the number of brokers, and the controller places the replicas (no
    /// manual assignment); partitions -1 means `--partitions`.
    pub fn create_topics(
        &mut self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let rf = self.controller.config().replication_factor;
        let brokers = self.brokers.len();
        let mut accepted = request.clone();
        accepted.topics.clear();
        let mut refused = HashMap::new();
        for t in &request.topics {
            let why = if usize::try_from(t.replication_factor).is_ok_and(|r| r > brokers) {
                Some((
                    ResponseError::InvalidReplicationFactor.code(),
                    format!(
                        "replication factor {} is larger than the number of available brokers: {brokers}",
                        t.replication_factor
                    ),
                ))
            } else if !matches!(usize::try_from(t.replication_factor), Ok(r) if r == rf)
                && t.replication_factor != -1
            {
                Some((
                    ResponseError::InvalidReplicationFactor.code(),
                    format!(
                        "this cluster places every partition on {rf} replicas (--replication-factor): ask for {rf} or -1"
                    ),
                ))
            } else if !t.assignments.is_empty() {
                Some((
                    ResponseError::InvalidReplicaAssignment.code(),
                    "the controller places the replicas: give no assignment".to_string(),
                ))
            } else {
                None
            };
            match why {
                Some(why) => {
                    refused.insert(t.name.clone(), why);
                }
                None => accepted.topics.push(t.clone().with_replication_factor(-1)),
            }
        }
        let before = self.cores_of_topics();
        let mut answers = self.brokers[0]
            .apis
            .create_topics(&accepted, version)
            .topics
            .into_iter();
        for x in &mut self.brokers[1..] {
            x.apis.create_topics(&accepted, version);
        }
        self.topics_changed(&before);
        let rf_answer = i16::try_from(rf).unwrap_or(i16::MAX);
        let topics = request
            .topics
            .iter()
            .map(|t| match refused.get(&t.name) {
                Some((code, why)) => CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(*code)
                    .with_error_message(Some(StrBytes::from_string(why.clone())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
                None => {
                    let answer = answers
                        .next()
                        .expect("broker 0 answers every topic it was asked");
                    if answer.error_code == 0 {
                        answer.with_replication_factor(rf_answer)
                    } else {
                        answer
                    }
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    /// DeleteTopics on every broker; the partitions deleted are no longer replicated.
    pub fn delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        let before = self.cores_of_topics();
        let answer = self.brokers[0].apis.delete_topics(request, version);
        for x in &mut self.brokers[1..] {
            x.apis.delete_topics(request, version);
        }
        self.topics_changed(&before);
        answer
    }

    /// CreatePartitions on every broker (the controller places the new replicas: a manual
    /// assignment is refused); the new partitions are started.
    pub fn create_partitions(
        &mut self,
        request: &CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut accepted = request.clone();
        accepted.topics.retain(|t| t.assignments.is_none());
        let before = self.cores_of_topics();
        let mut answers = self.brokers[0]
            .apis
            .create_partitions(&accepted)
            .results
            .into_iter();
        for x in &mut self.brokers[1..] {
            x.apis.create_partitions(&accepted);
        }
        self.topics_changed(&before);
        let results = request
            .topics
            .iter()
            .map(|t| match t.assignments {
                Some(_) => CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "the controller places the replicas: give no assignment",
                    ))),
                None => answers
                    .next()
                    .expect("broker 0 answers every topic it was asked"),
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    /// DeleteRecords on every replica (each moves its log start offset), answered by broker
    /// `b`.
    pub fn delete_records(
        &mut self,
        b: i32,
        request: &DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let mut answer = None;
        for (i, x) in self.brokers.iter_mut().enumerate() {
            let response = x.apis.delete_records(request);
            if i as i32 == b {
                answer = Some(response);
            }
        }
        answer.expect("broker b exists")
    }

    /// IncrementalAlterConfigs on every broker's topic table, answered by broker `b`.
    pub fn incremental_alter_configs(
        &mut self,
        b: i32,
        request: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let mut answer = None;
        for (i, x) in self.brokers.iter_mut().enumerate() {
            let response = x.apis.incremental_alter_configs(request);
            if i as i32 == b {
                answer = Some(response);
            }
        }
        answer.expect("broker b exists")
    }

    /// ElectLeaders (Kafka's API 43): each partition asked (every partition when none is)
    /// gets the election asked for (0: preferred, 1: unclean), answered with its error code.
    pub fn elect_leaders(&mut self, request: &ElectLeadersRequest) -> ElectLeadersResponse {
        use kafka_protocol::messages::elect_leaders_response::{
            PartitionResult, ReplicaElectionResult,
        };
        let election = if request.election_type == 1 {
            ElectionType::Unclean
        } else {
            ElectionType::Preferred
        };
        let wanted: Vec<(TopicName, Vec<i32>)> = match &request.topic_partitions {
            Some(topics) => topics
                .iter()
                .map(|t| (t.topic.clone(), t.partitions.clone()))
                .collect(),
            None => self.brokers[0]
                .apis
                .topics
                .iter()
                .map(|t| {
                    (
                        TopicName(StrBytes::from_string(t.name.clone())),
                        (0..t.partition_count).collect(),
                    )
                })
                .collect(),
        };
        let results = wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let found = self.topic(topic.0.as_str(), false).ok();
                let partition_result = partitions
                    .into_iter()
                    .map(|p| {
                        let code = match found.as_ref().and_then(|t| t.core_partition(p)) {
                            None => ResponseError::UnknownTopicOrPartition.code(),
                            Some(core) => match self.elect(core, election) {
                                Ok(_) => 0,
                                Err(e) => e.code(),
                            },
                        };
                        PartitionResult::default()
                            .with_partition_id(p)
                            .with_error_code(code)
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_result)
            })
            .collect();
        ElectLeadersResponse::default().with_replica_election_results(results)
    }
}

/// Broker `broker` of a cluster serving a request from its connection `connection`: the
/// handlers of the one dispatch ([`crate::dispatch::handle`]) where the answer depends on
/// the cluster, the broker's own [`KafkaApis`] for the rest.
#[derive(Debug)]
pub struct BrokerOfCluster<'a> {
    /// The cluster.
    pub node: &'a mut ClusterNode,
    /// The broker the connection came in on.
    pub broker: i32,
    /// The connection, unique per broker (keys the delayed `acks=all` answers).
    pub connection: u64,
}

impl RequestHandlers for BrokerOfCluster<'_> {
    fn apis(&mut self) -> &mut KafkaApis {
        &mut self.node.brokers[self.broker as usize].apis
    }

    fn metadata(&mut self, request: &MetadataRequest, version: i16) -> MetadataResponse {
        self.node.metadata(self.broker, request, version)
    }

    fn init_producer_id(&mut self, request: &InitProducerIdRequest) -> InitProducerIdResponse {
        self.node.init_producer_id(self.broker, request)
    }

    fn produce(&mut self, request: &ProduceRequest, version: i16, correlation_id: i32) -> Produced {
        self.node.produce(
            self.broker,
            self.connection,
            correlation_id,
            request,
            version,
        )
    }

    fn list_offsets(&mut self, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        self.node.list_offsets(self.broker, request, version)
    }

    fn create_topics(
        &mut self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        self.node.create_topics(request, version)
    }

    fn delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        self.node.delete_topics(request, version)
    }

    fn create_partitions(&mut self, request: &CreatePartitionsRequest) -> CreatePartitionsResponse {
        self.node.create_partitions(request)
    }

    fn delete_records(&mut self, request: &DeleteRecordsRequest) -> DeleteRecordsResponse {
        self.node.delete_records(self.broker, request)
    }

    fn incremental_alter_configs(
        &mut self,
        request: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        self.node.incremental_alter_configs(self.broker, request)
    }

    fn elect_leaders(&mut self, request: &ElectLeadersRequest) -> ElectLeadersResponse {
        self.node.elect_leaders(request)
    }
}

/// Opens one broker's core on `storage` and its front end, with its topic table.
fn open_apis(
    b: i32,
    config: &BrokerConfig,
    storage: NodeStorage,
    front_end: FrontEndSettings,
) -> Result<KafkaApis, ClusterError> {
    let (broker, _report) = Broker::open(config.clone(), storage)
        .map_err(|error| ClusterError::Open { broker: b, error })?;
    let mut apis = KafkaApis::new(broker, front_end);
    apis.load_topics()
        .map_err(|error| ClusterError::Topics { broker: b, error })?;
    Ok(apis)
}

/// Log end offsets summed over a broker's topics (for the crash report).
fn total_batches(apis: &KafkaApis) -> u64 {
    apis.topics
        .iter()
        .flat_map(|t| t.core_partitions.iter())
        .map(|&c| apis.broker.log_end_offset(c).unwrap_or(0).max(0) as u64)
        .sum()
}

/// The core's per-partition answers back on the wire, in the request's topic order.
fn wire_response(
    routing: &Routing,
    core: &[idempo_protocol::PartitionProduceResponse],
    version: i16,
) -> ProduceResponse {
    let mut answers = core.iter();
    let mut response = ProduceResponse::default();
    for (name, partitions) in routing {
        let partition_responses = partitions
            .iter()
            .map(|(index, routed)| {
                let base = PartitionProduceResponse::default().with_index(*index);
                match routed {
                    Ok(()) => {
                        let c = answers
                            .next()
                            .expect("the core answers every partition it was given");
                        base.with_error_code(c.error_code.code())
                            .with_base_offset(c.base_offset)
                            .with_log_append_time_ms(c.log_append_time_ms)
                            .with_log_start_offset(c.log_start_offset)
                    }
                    Err((code, why)) => {
                        let answer = base
                            .with_error_code(*code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1);
                        if version >= 8 {
                            answer.with_error_message(Some(StrBytes::from_string(why.clone())))
                        } else {
                            answer
                        }
                    }
                }
            })
            .collect();
        response.responses.push(
            TopicProduceResponse::default()
                .with_name(name.clone())
                .with_partition_responses(partition_responses),
        );
    }
    response
}
