//! The cluster half of the engine (`--brokers 2` or more): brokers that replicate, the
//! controller, the network between brokers, and the cluster faults.
//!
//! Every broker is the real sans-IO [`Broker`] with its own disk, sync policy and snapshots;
//! the controller is the real [`Controller`], assumed always available (Kafka's KRaft quorum
//! is itself replicated). The simulator only moves values between them:
//!
//! | from | to | what | when |
//! |---|---|---|---|
//! | controller | every replica | `LeaderAndIsr` ([`Broker::apply_leader_and_isr`]) | each decision; a broker back from a crash or an isolation replays the current state of every partition (KRaft brokers replay the metadata log) |
//! | broker | controller | heartbeat | every `broker.heartbeat.interval.ms` (2 000, or a third of the session timeout) unless it is down or cut off |
//! | leader | controller | `AlterPartition` ([`Broker::take_alter_partitions`]) | after follower fetches and at each heartbeat; refused ones are told back ([`Broker::alter_partition_rejected`]) |
//! | follower | leader | one fetch per (follower, leader) pair, carrying a [`FetchRequest`] per partition it follows there | at once after an answer with data; after `replica.fetch.backoff.ms` (1 000) after an error; after `replica.socket.timeout.ms` (30 000) when one was lost |
//! | leader | follower | the fetch's answers | at once when any has data, an error or a diverging epoch; else held (Kafka's `DelayedFetch`) until the leader appends to one of its partitions or `replica.fetch.wait.max.ms` (500) passes |
//! | client | any broker | Metadata | answered from the controller's view (brokers' metadata caches are taken as up to date) |
//!
//! Messages between brokers take `--inter-broker-latency-ms` and are lost with
//! `--inter-broker-loss`, both drawn from the seed keyed by (follower, fetch number), in
//! random and replay mode alike. A broker that is down or isolated receives nothing: requests
//! and fetches sent to it are lost (their senders time out), and its connections break.
//!
//! A crash is a power loss as in the one-broker run ([`Broker::crash`]: the unsynced tail is
//! lost, recovery runs at once), then the broker stays down for the fault's `down_ms` and
//! registers again ([`Controller::broker_registered`]). When every producer is done, the run
//! waits (at most [`SETTLE_MS_MAX`]) for every broker to be back and every replica in sync,
//! then the checker reads the final cluster ([`crate::replication_check`]).

use super::{Destination, Event, Simulation};
use crate::checker::{self, KnownFaults};
use crate::config::{Acks, SimConfig};
use crate::engine::ClusterCounts;
use crate::events::{ChangeKind, ClusterChange, CrashCause, LossCause, SimEvent};
use crate::faults::FaultKind;
use crate::network::MessageKey;
use crate::plan::Fault;
use crate::replication_check::{
    ClusterView, PartitionView, Reads, ReplicaLog, ReplicationFaults, batch_identity,
};
use idempo_broker::{
    Controller, ControllerConfig, ControllerDecision, LeaderAndIsr, NO_LEADER, ReplicationEvent,
};
use idempo_protocol::{
    ErrorCode, FetchRequest, FetchResponse, Request, RequestFrame, Response, ResponseFrame,
};
use rustc_hash::{FxHashMap, FxHashSet};

/// Kafka's `replica.fetch.wait.max.ms`: how long a leader holds a fetch that found nothing.
pub(crate) const REPLICA_FETCH_WAIT_MAX_MS: u64 = 500;
/// Kafka's `replica.fetch.backoff.ms`: a follower's pause after an error answer.
pub(crate) const REPLICA_FETCH_BACKOFF_MS: u64 = 1_000;
/// Kafka's `replica.socket.timeout.ms`: a fetch unanswered this long is sent again.
pub(crate) const REPLICA_SOCKET_TIMEOUT_MS: u64 = 30_000;
/// Kafka's `broker.heartbeat.interval.ms`.
pub(crate) const BROKER_HEARTBEAT_INTERVAL_MS: u64 = 2_000;
/// Once every producer is done, how long the run waits for the cluster to heal and catch up.
pub(crate) const SETTLE_MS_MAX: u64 = 120_000;

/// The events of the cluster half of the loop.
pub(crate) enum ClusterEvent {
    /// Heartbeats, the controller's session check, ISR proposals, the consumer's reads.
    Tick,
    /// A follower's fetch reaches its leader.
    FetchArrives {
        follower: u32,
        leader: u32,
        generation: u32,
        requests: Vec<FetchRequest>,
    },
    /// The leader's answers reach the follower.
    FetchAnswered {
        follower: u32,
        leader: u32,
        generation: u32,
        answers: Vec<(FetchRequest, FetchResponse)>,
    },
    /// The fetcher's hold timer: the fetch the leader holds, if any, may have waited
    /// `replica.fetch.wait.max.ms`. One timer per fetcher, re-armed for the hold it finds,
    /// stands in for one per held fetch.
    FetchWaitExpired { follower: u32, leader: u32 },
    /// The follower fetches again (after a backoff or a lost fetch).
    FetchRetry {
        follower: u32,
        leader: u32,
        generation: u32,
    },
    /// A crashed broker comes back.
    BrokerUp { broker: u32, incarnation: u32 },
    /// An isolation heals.
    Healed { broker: u32 },
}

/// One follower's fetcher towards one leader (Kafka's `ReplicaFetcherThread`, one per
/// source broker).
#[derive(Debug, Default)]
pub(crate) struct Fetcher {
    /// Bumped whenever the fetcher restarts: answers and timers of older generations are
    /// dropped.
    generation: u32,
    /// The fetch the leader holds (a `DelayedFetch`), if it holds one.
    held: Option<Vec<FetchRequest>>,
    /// The generation the held fetch was sent in.
    held_generation: u32,
    /// When the held fetch's `replica.fetch.wait.max.ms` passes.
    held_until_ms: u64,
    /// When the hold timer is armed to fire, if it is.
    timer_at_ms: Option<u64>,
}

/// A produce request an acks=all leader answers later: where its answer goes.
#[derive(Debug)]
pub(crate) struct Pending {
    connection: u32,
    key: MessageKey,
    batches: Vec<u64>,
}

/// The cluster's state besides the brokers themselves.
pub(crate) struct Cluster {
    pub(crate) controller: Controller,
    /// `fetchers[follower * brokers + leader]`.
    fetchers: Vec<Fetcher>,
    /// Brokers down after a power loss.
    down: Vec<bool>,
    /// Isolations in force per broker.
    isolated: Vec<u32>,
    /// Bumped by every crash, so that a stale `BrokerUp` is dropped.
    incarnation: Vec<u32>,
    /// Brokers that restarted while cut off and have not registered yet: they register when
    /// the isolation heals (a restarted Kafka broker retries its BrokerRegistration until the
    /// controller answers).
    unregistered: Vec<bool>,
    /// Delayed produce answers, by (broker, client, correlation id).
    pending: FxHashMap<(u32, u64, i32), Pending>,
    pub(crate) counts: ClusterCounts,
    /// Partitions that changed leader, and those that did so uncleanly.
    failed_over: FxHashSet<i32>,
    unclean: FxHashSet<i32>,
    /// Partitions of which a crash dropped unsynced batches.
    power_lost: FxHashSet<i32>,
    /// What the consumer read below the HW, and where it reads next per partition.
    pub(crate) reads: Reads,
    read_position: Vec<i64>,
    /// When every producer was done.
    settling_since: Option<u64>,
    tick_ms: u64,
    /// Fetches sent, the key of their loss and latency draws.
    fetches_sent: u64,
    /// When the next ISR expiration check is due.
    next_shrink_check_ms: u64,
    /// True during an ISR expiration check.
    shrink_check_now: bool,
}

impl Cluster {
    /// The cluster of a run's config.
    pub(crate) fn new(config: &SimConfig) -> Result<Cluster, idempo_broker::ControllerConfigError> {
        let controller = Controller::new(
            ControllerConfig {
                brokers: config.brokers as i32,
                partitions: config.partitions as i32,
                replication_factor: config.replication_factor as usize,
                unclean_leader_election: config.unclean_leader_election,
                broker_session_timeout_ms: config.broker_session_timeout_ms as i64,
            },
            0,
        )?;
        let n = config.brokers as usize;
        Ok(Cluster {
            controller,
            fetchers: (0..n * n).map(|_| Fetcher::default()).collect(),
            down: vec![false; n],
            isolated: vec![0; n],
            incarnation: vec![0; n],
            unregistered: vec![false; n],
            pending: FxHashMap::default(),
            counts: ClusterCounts::default(),
            failed_over: FxHashSet::default(),
            unclean: FxHashSet::default(),
            power_lost: FxHashSet::default(),
            reads: Reads::default(),
            read_position: vec![0; config.partitions as usize],
            settling_since: None,
            tick_ms: BROKER_HEARTBEAT_INTERVAL_MS
                .min(config.broker_session_timeout_ms / 3)
                .min(config.replica_lag_time_max_ms / 2)
                .max(1),
            fetches_sent: 0,
            next_shrink_check_ms: 0,
            shrink_check_now: false,
        })
    }

    fn reachable(&self, broker: u32) -> bool {
        !self.down[broker as usize] && self.isolated[broker as usize] == 0
    }

    fn brokers(&self) -> u32 {
        self.down.len() as u32
    }

    fn fetcher(&mut self, follower: u32, leader: u32) -> &mut Fetcher {
        let n = self.down.len();
        &mut self.fetchers[follower as usize * n + leader as usize]
    }

    fn generation(&self, follower: u32, leader: u32) -> u32 {
        self.fetchers[follower as usize * self.down.len() + leader as usize].generation
    }

    /// Notes how many brokers are down or cut off now.
    fn count_down(&mut self) {
        let now = (0..self.brokers()).filter(|b| !self.reachable(*b)).count() as u64;
        self.counts.most_down_at_once = self.counts.most_down_at_once.max(now);
    }
}

/// The client id a broker is told for producer `p`'s process `session`.
fn client_id(p: u32, session: u32) -> u64 {
    u64::from(p) | (u64::from(session) << 32)
}

fn producer_of(client: u64) -> u32 {
    client as u32
}

fn cluster_event(event: ClusterEvent) -> Event {
    Event::Cluster(event)
}

impl Simulation {
    fn cluster(&mut self) -> &mut Cluster {
        self.cluster
            .as_deref_mut()
            .expect("cluster code runs only in a replicated run")
    }

    fn change(&mut self, broker: i32, kind: ChangeKind) {
        self.record(0, || SimEvent::Cluster(ClusterChange { broker, kind }));
    }

    /// The start of a replicated run: producer id blocks, the initial `LeaderAndIsr` of
    /// every partition, the fetchers and the first tick.
    pub(super) fn start_cluster(&mut self) {
        for b in 0..self.nodes.len() as u32 {
            self.grant_producer_ids(b);
        }
        let states: Vec<LeaderAndIsr> = self.cluster().controller.partitions().to_vec();
        for state in &states {
            if state.leader != NO_LEADER {
                // The controller's first election: each partition's preferred replica.
                let kind = ChangeKind::Elected {
                    partition: state.partition,
                    leader_epoch: state.leader_epoch,
                    clean: true,
                };
                self.change(state.leader, kind);
            }
            self.deliver_state(state);
        }
        let tick = self.cluster().tick_ms;
        self.schedule(tick, cluster_event(ClusterEvent::Tick));
    }

    fn grant_producer_ids(&mut self, b: u32) {
        let (first, len) = self.cluster().controller.allocate_producer_ids(b as i32);
        self.nodes[b as usize]
            .broker
            .grant_producer_id_block(first, len);
    }

    pub(super) fn dispatch_cluster(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Tick => self.tick(),
            ClusterEvent::FetchArrives {
                follower,
                leader,
                generation,
                requests,
            } => self.fetch_arrives(follower, leader, generation, requests),
            ClusterEvent::FetchAnswered {
                follower,
                leader,
                generation,
                answers,
            } => self.fetch_answered(follower, leader, generation, answers),
            ClusterEvent::FetchWaitExpired { follower, leader } => {
                self.hold_timer_fired(follower, leader)
            }
            ClusterEvent::FetchRetry {
                follower,
                leader,
                generation,
            } => {
                if self.cluster().generation(follower, leader) == generation {
                    self.send_fetch(follower, leader);
                }
            }
            ClusterEvent::BrokerUp {
                broker,
                incarnation,
            } => {
                if self.cluster().incarnation[broker as usize] == incarnation {
                    self.broker_up(broker);
                }
            }
            ClusterEvent::Healed { broker } => self.healed(broker),
        }
    }

    // ----- produce, metadata and InitProducerId at a broker of the cluster -----

    /// A client request reaches broker `node` of the cluster.
    pub(super) fn cluster_request(
        &mut self,
        to: Destination,
        frame: &RequestFrame,
        batches: &[u64],
        key: MessageKey,
    ) {
        let node = to.node;
        if !self.cluster().reachable(node) {
            // A broker that is down or cut off gets nothing: the connection is gone and the
            // client notices by its request timeout.
            self.slots[to.producer as usize].links[node as usize].cut = true;
            self.faults.lost_with_connection += 1;
            let correlation_id = frame.correlation_id;
            self.record(to.producer, || SimEvent::RequestLostInFlight {
                correlation_id,
                cause: LossCause::ConnectionGone,
            });
            return;
        }
        match &frame.request {
            Request::Metadata(_) => {
                let metadata = self.cluster().controller.metadata();
                let leaders = metadata.partitions.iter().map(|p| p.leader_id).collect();
                self.change(
                    node as i32,
                    ChangeKind::Metadata {
                        producer: to.producer,
                        leaders,
                    },
                );
                let response = ResponseFrame {
                    correlation_id: frame.correlation_id,
                    response: Response::Metadata(metadata),
                };
                self.answer(to, frame.correlation_id, response, batches, key);
                return;
            }
            Request::InitProducerId(_)
                if self.nodes[node as usize].broker.producer_ids_remaining() <= 0 =>
            {
                self.grant_producer_ids(node);
            }
            _ => {}
        }
        self.expire_producers(to.producer, node);
        let session = self.slots[to.producer as usize].session;
        let client = client_id(to.producer, session);
        let handled = self.nodes[node as usize].broker.handle_from(client, frame);
        self.sample_producer_state(node);
        let mut appended = Vec::new();
        for (i, outcome) in handled.outcomes.into_iter().enumerate() {
            let batch = batches.get(i).copied();
            if matches!(outcome.verdict, idempo_broker::Verdict::Appended { .. }) {
                appended.push(outcome.response.partition);
            }
            self.count_verdict(to.producer, batch, &outcome);
            self.record(to.producer, || {
                SimEvent::Verdict(crate::events::VerdictRef {
                    batch,
                    outcome: Box::new(outcome),
                })
            });
        }
        match handled.response {
            Some(response) => {
                self.count_produce_errors(node, &response);
                self.answer(to, frame.correlation_id, response, batches, key);
            }
            None if self.expects_answer(frame) => {
                let pending = Pending {
                    connection: to.connection,
                    key,
                    batches: batches.to_vec(),
                };
                self.cluster()
                    .pending
                    .insert((node, client, frame.correlation_id), pending);
            }
            None => {}
        }
        self.wake_held_fetches(node, &appended);
        self.drain_broker(node);
        self.broker_faults();
    }

    /// Counts (and traces) the replication errors of a produce answer.
    fn count_produce_errors(&mut self, node: u32, response: &ResponseFrame) {
        let Response::Produce(r) = &response.response else {
            return;
        };
        for p in &r.partitions {
            let kind = match p.error_code {
                ErrorCode::NotLeaderOrFollower => {
                    self.cluster().counts.not_leader += 1;
                    ChangeKind::NotLeader {
                        partition: p.partition,
                    }
                }
                ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
                    self.cluster().counts.not_enough_replicas += 1;
                    ChangeKind::NotEnoughReplicas {
                        partition: p.partition,
                        after_append: p.error_code == ErrorCode::NotEnoughReplicasAfterAppend,
                    }
                }
                ErrorCode::RequestTimedOut => {
                    self.cluster().counts.produce_timeouts += 1;
                    continue;
                }
                _ => continue,
            };
            self.change(node as i32, kind);
        }
    }

    /// Everything broker `node` has to say after a call that may have changed it: delayed
    /// produce answers, ISR proposals (to the controller), replication events (to the
    /// trace).
    fn drain_broker(&mut self, node: u32) {
        self.drain_answers(node);
        self.propose_isr_changes(node);
        self.drain_events(node);
    }

    /// Delayed produce answers of broker `node` travel to their producers.
    fn drain_answers(&mut self, node: u32) {
        let completed = self.nodes[node as usize].broker.take_completed();
        for done in completed {
            let key = (node, done.client, done.response.correlation_id);
            let Some(pending) = self.cluster().pending.remove(&key) else {
                continue;
            };
            self.count_produce_errors(node, &done.response);
            let to = Destination {
                producer: producer_of(done.client),
                node,
                connection: pending.connection,
            };
            let correlation_id = done.response.correlation_id;
            self.answer(
                to,
                correlation_id,
                done.response,
                &pending.batches,
                pending.key,
            );
        }
    }

    /// Broker `node`'s ISR proposals go to the controller; its answers to the replicas.
    /// Expansions go at once (Kafka's `maybeExpandIsr` runs on every follower fetch);
    /// shrinks only at the ISR expiration check, every `replica.lag.time.max.ms / 2`
    /// (Kafka's `isr-expiration` task): a shrink proposed in between is withdrawn.
    fn propose_isr_changes(&mut self, node: u32) {
        let now = self.now_ms as i64;
        let shrink_time = self.cluster().shrink_check_now;
        let broker = &mut self.nodes[node as usize].broker;
        // Between checks a shrink would be withdrawn at once: do not look for one.
        let alters = match shrink_time {
            true => broker.take_alter_partitions(now),
            false => broker.take_isr_expansions(now),
        };
        for alter in alters {
            let current = self
                .cluster()
                .controller
                .partition(alter.partition)
                .isr
                .len();
            if alter.new_isr.len() < current && !shrink_time {
                self.nodes[node as usize]
                    .broker
                    .alter_partition_rejected(alter.partition);
                continue;
            }
            let result = self.cluster().controller.alter_partition(&alter);
            match result {
                Ok(state) => {
                    self.count_isr_change(&state);
                    self.deliver_state(&state);
                }
                Err(_) => self.nodes[node as usize]
                    .broker
                    .alter_partition_rejected(alter.partition),
            }
        }
    }

    /// Broker `node`'s replication events become trace lines.
    fn drain_events(&mut self, node: u32) {
        let events = self.nodes[node as usize].broker.take_replication_events();
        // Every truncation is counted here, by a fetch's diverging epoch or, with
        // `--truncation high-watermark`, by a leader change.
        let truncations = events
            .iter()
            .filter(|e| matches!(e, ReplicationEvent::Truncated(_)))
            .count();
        self.cluster().counts.truncations += truncations as u64;
        if self.trace.is_none() {
            return;
        }
        for event in events {
            let kind = match event {
                ReplicationEvent::HighWatermarkMoved {
                    partition,
                    from,
                    to,
                } => ChangeKind::HighWatermark {
                    partition,
                    from,
                    to,
                },
                ReplicationEvent::Truncated(t) => ChangeKind::Truncated {
                    partition: t.partition,
                    from: t.from,
                    to: t.to,
                    snapshot: t.snapshot_loaded,
                    replayed: t.batches_replayed,
                },
                _ => continue,
            };
            self.change(node as i32, kind);
        }
    }

    fn count_isr_change(&mut self, state: &LeaderAndIsr) {
        self.change(
            state.leader,
            ChangeKind::IsrChanged {
                partition: state.partition,
                isr: state.isr.clone(),
            },
        );
    }

    // ----- the controller -----

    /// Applies the controller's decisions: counts them, traces them, and delivers every new
    /// partition state to its replicas.
    fn apply_decisions(&mut self, decisions: Vec<ControllerDecision>) {
        for decision in decisions {
            match &decision {
                ControllerDecision::BrokerFenced { broker } => {
                    self.change(*broker, ChangeKind::Fenced)
                }
                ControllerDecision::BrokerUnfenced { broker } => {
                    self.change(*broker, ChangeKind::Unfenced)
                }
                ControllerDecision::Elected {
                    partition,
                    leader,
                    leader_epoch,
                    clean,
                    ..
                } => {
                    let cluster = self.cluster();
                    cluster.failed_over.insert(*partition);
                    if !clean {
                        cluster.unclean.insert(*partition);
                    }
                    let kind = ChangeKind::Elected {
                        partition: *partition,
                        leader_epoch: *leader_epoch,
                        clean: *clean,
                    };
                    self.change(*leader, kind);
                }
                ControllerDecision::Offline { partition, .. } => {
                    self.change(
                        NO_LEADER,
                        ChangeKind::Offline {
                            partition: *partition,
                        },
                    );
                }
                ControllerDecision::IsrChanged { state, .. } => {
                    let state = state.clone();
                    self.count_isr_change(&state);
                }
            }
            if let Some(state) = decision.state() {
                let state = state.clone();
                self.deliver_state(&state);
            }
        }
    }

    /// Tells every reachable replica of a partition its new state, and restarts the
    /// fetchers of those that follow.
    fn deliver_state(&mut self, state: &LeaderAndIsr) {
        for &b in &state.replicas {
            let b = b as u32;
            if !self.cluster().reachable(b) {
                continue;
            }
            self.nodes[b as usize]
                .broker
                .advance_time(self.now_ms as i64);
            let _ = self.nodes[b as usize].broker.apply_leader_and_isr(state);
            if state.leader != NO_LEADER && state.leader as u32 != b {
                self.restart_fetcher(b, state.leader as u32);
            }
            self.drain_broker(b);
        }
    }

    /// A broker that was unreachable replays the current state of every partition it holds
    /// a replica of, then fetches from their leaders.
    fn replay_metadata(&mut self, b: u32) {
        let states: Vec<LeaderAndIsr> = self
            .cluster()
            .controller
            .partitions()
            .iter()
            .filter(|s| s.replicas.contains(&(b as i32)))
            .cloned()
            .collect();
        self.nodes[b as usize]
            .broker
            .advance_time(self.now_ms as i64);
        for state in &states {
            let _ = self.nodes[b as usize].broker.apply_leader_and_isr(state);
        }
        let leaders: FxHashSet<u32> = states
            .iter()
            .filter(|s| s.leader != NO_LEADER && s.leader as u32 != b)
            .map(|s| s.leader as u32)
            .collect();
        let mut leaders: Vec<u32> = leaders.into_iter().collect();
        leaders.sort_unstable();
        for leader in leaders {
            self.restart_fetcher(b, leader);
        }
        self.drain_broker(b);
    }

    /// Heartbeats of every reachable broker, the controller's session check, shrink
    /// proposals, the consumer's reads; then whether the run is over.
    fn tick(&mut self) {
        let now = self.now_ms as i64;
        for b in 0..self.nodes.len() as u32 {
            if self.cluster().reachable(b) {
                let decisions = self.cluster().controller.heartbeat(b as i32, now);
                self.apply_decisions(decisions);
            }
        }
        let decisions = self.cluster().controller.tick(now);
        self.apply_decisions(decisions);
        let lag_ms = self.config.replica_lag_time_max_ms;
        let cluster = self.cluster();
        cluster.shrink_check_now = cluster.next_shrink_check_ms <= now as u64;
        if cluster.shrink_check_now {
            cluster.next_shrink_check_ms = now as u64 + (lag_ms / 2).max(1);
        }
        for b in 0..self.nodes.len() as u32 {
            if self.cluster().reachable(b) {
                self.drain_broker(b);
            }
        }
        self.cluster().shrink_check_now = false;
        self.consume();
        if self.settled() {
            self.queue.clear();
            return;
        }
        let at = self.now_ms + self.cluster().tick_ms;
        self.schedule(at, cluster_event(ClusterEvent::Tick));
    }

    /// The consumer reads every partition from its leader, below the HW, from where it
    /// stopped.
    fn consume(&mut self) {
        let partitions = self.config.partitions as i32;
        for partition in 0..partitions {
            let leader = self.cluster().controller.partition(partition).leader;
            if leader == NO_LEADER || !self.cluster().reachable(leader as u32) {
                continue;
            }
            let broker = &self.nodes[leader as usize].broker;
            let Some(hw) = broker.high_watermark(partition) else {
                continue;
            };
            let Some(log) = broker.log(partition) else {
                continue;
            };
            let cluster = self
                .cluster
                .as_deref_mut()
                .expect("a replicated run has a cluster");
            let from = cluster.read_position[partition as usize];
            let mut next = from.min(hw);
            for batch in log.batches_from(from) {
                if batch.header.last_offset() >= hw {
                    break;
                }
                if batch.header.base_offset >= from {
                    cluster.reads.read_batch(partition, &batch.header);
                }
                next = batch.header.last_offset() + 1;
            }
            cluster.read_position[partition as usize] = next.max(from.min(hw));
        }
    }

    /// True once every producer is done and the cluster has healed and caught up (or
    /// [`SETTLE_MS_MAX`] has passed since the producers were done).
    fn settled(&mut self) -> bool {
        let total = self.config.batches_per_producer();
        let done = self
            .slots
            .iter()
            .all(|s| s.outstanding == 0 && !s.handles.resend_pending() && s.next_new == total);
        if !done {
            return false;
        }
        let now = self.now_ms;
        let since = *self.cluster().settling_since.get_or_insert(now);
        if now.saturating_sub(since) >= SETTLE_MS_MAX {
            return true;
        }
        let cluster = self.cluster.as_deref().expect("a replicated run");
        if (0..cluster.brokers()).any(|b| !cluster.reachable(b)) {
            return false;
        }
        cluster.controller.partitions().iter().all(|state| {
            if state.leader == NO_LEADER || state.isr.len() != state.replicas.len() {
                return false;
            }
            let leader = &self.nodes[state.leader as usize].broker;
            let end = leader.log_end_offset(state.partition);
            end.is_some()
                && leader.high_watermark(state.partition) == end
                && state.replicas.iter().all(|b| {
                    self.nodes[*b as usize]
                        .broker
                        .log_end_offset(state.partition)
                        == end
                })
        })
    }

    // ----- follower fetches -----

    /// Restarts the fetcher of `follower` towards `leader`: a new generation, a fetch now.
    fn restart_fetcher(&mut self, follower: u32, leader: u32) {
        let fetcher = self.cluster().fetcher(follower, leader);
        fetcher.generation += 1;
        fetcher.held = None;
        self.send_fetch(follower, leader);
    }

    /// Sends `follower`'s fetch to `leader` for every partition it follows there (nothing
    /// if none).
    fn send_fetch(&mut self, follower: u32, leader: u32) {
        if !self.cluster().reachable(follower) {
            return;
        }
        let broker = &self.nodes[follower as usize].broker;
        let requests: Vec<FetchRequest> = (0..self.config.partitions as i32)
            .filter(|p| {
                broker
                    .replication(*p)
                    .is_some_and(|r| r.leader() == leader as i32)
            })
            .filter_map(|p| broker.follower_fetch_request(p))
            .collect();
        if requests.is_empty() {
            return;
        }
        let generation = self.cluster().generation(follower, leader);
        match self.inter_broker_fate(follower, leader) {
            Some(at) => self.schedule(
                at,
                cluster_event(ClusterEvent::FetchArrives {
                    follower,
                    leader,
                    generation,
                    requests,
                }),
            ),
            None => self.fetch_lost(follower, leader, generation),
        }
    }

    /// When a message between two brokers arrives, or `None` when it is lost (a cut, a
    /// broker down, or `--inter-broker-loss`).
    fn inter_broker_fate(&mut self, from: u32, to: u32) -> Option<u64> {
        let (config, now) = (&self.config, self.now_ms);
        let oracle = *self.plan.oracle();
        let plan = &mut self.plan;
        let cluster = self
            .cluster
            .as_deref_mut()
            .expect("a replicated run has a cluster");
        cluster.fetches_sent += 1;
        let n = cluster.fetches_sent;
        if !cluster.reachable(from) || !cluster.reachable(to) {
            return None;
        }
        if plan.inter_broker_loss(config, from, to, n) {
            cluster.counts.inter_broker_lost += 1;
            return None;
        }
        let latency = oracle.latency(
            config.inter_broker_latency_min_ms,
            config.inter_broker_latency_max_ms,
            FaultKind::InterBrokerLatency,
            from,
            n,
            to,
        );
        Some(now + latency)
    }

    /// A fetch (or its answer) was lost: the follower sends it again after
    /// `replica.socket.timeout.ms`.
    fn fetch_lost(&mut self, follower: u32, leader: u32, generation: u32) {
        self.schedule(
            self.now_ms + REPLICA_SOCKET_TIMEOUT_MS,
            cluster_event(ClusterEvent::FetchRetry {
                follower,
                leader,
                generation,
            }),
        );
    }

    /// A follower's fetch reaches its leader.
    fn fetch_arrives(
        &mut self,
        follower: u32,
        leader: u32,
        generation: u32,
        requests: Vec<FetchRequest>,
    ) {
        if !self.cluster().reachable(leader) {
            self.fetch_lost(follower, leader, generation);
            return;
        }
        self.serve_fetch(follower, leader, generation, requests, false);
    }

    /// The leader serves a fetch: answers at once if any partition has data, an error or a
    /// diverging epoch (or `answer_anyway`), else holds it.
    fn serve_fetch(
        &mut self,
        follower: u32,
        leader: u32,
        generation: u32,
        requests: Vec<FetchRequest>,
        answer_anyway: bool,
    ) {
        if !self.cluster().reachable(leader) {
            self.fetch_lost(follower, leader, generation);
            return;
        }
        let broker = &mut self.nodes[leader as usize].broker;
        broker.advance_time(self.now_ms as i64);
        let answers: Vec<(FetchRequest, FetchResponse)> = requests
            .iter()
            .map(|r| (*r, broker.replica_fetch(r)))
            .collect();
        self.cluster().counts.fetches += 1;
        let empty = answers.iter().all(|(_, a)| {
            a.error_code == ErrorCode::None && a.diverging_epoch.is_none() && a.records.is_empty()
        });
        self.drain_broker(leader);
        if empty && !answer_anyway {
            self.hold_fetch(follower, leader, generation, requests);
            return;
        }
        match self.inter_broker_fate(leader, follower) {
            Some(at) => self.schedule(
                at,
                cluster_event(ClusterEvent::FetchAnswered {
                    follower,
                    leader,
                    generation,
                    answers,
                }),
            ),
            None => self.fetch_lost(follower, leader, generation),
        }
    }

    /// The leader holds a fetch that found nothing (Kafka's `DelayedFetch`) for at most
    /// `replica.fetch.wait.max.ms`, arming the fetcher's timer unless it is armed already
    /// (it then re-arms itself for this hold when it fires).
    fn hold_fetch(
        &mut self,
        follower: u32,
        leader: u32,
        generation: u32,
        requests: Vec<FetchRequest>,
    ) {
        let until_ms = self.now_ms + REPLICA_FETCH_WAIT_MAX_MS;
        let fetcher = self.cluster().fetcher(follower, leader);
        fetcher.held = Some(requests);
        fetcher.held_generation = generation;
        fetcher.held_until_ms = until_ms;
        if fetcher.timer_at_ms.is_none() {
            fetcher.timer_at_ms = Some(until_ms);
            let event = ClusterEvent::FetchWaitExpired { follower, leader };
            self.schedule(until_ms, cluster_event(event));
        }
    }

    /// The hold timer fired: the held fetch is answered if it has waited
    /// `replica.fetch.wait.max.ms` (and is of the fetcher's generation; an older one stays
    /// until an append wakes it), else the timer is re-armed for it.
    fn hold_timer_fired(&mut self, follower: u32, leader: u32) {
        let now_ms = self.now_ms;
        let fetcher = self.cluster().fetcher(follower, leader);
        fetcher.timer_at_ms = None;
        if fetcher.held.is_none() {
            return;
        }
        if fetcher.held_until_ms > now_ms {
            let at_ms = fetcher.held_until_ms;
            fetcher.timer_at_ms = Some(at_ms);
            let event = ClusterEvent::FetchWaitExpired { follower, leader };
            self.schedule(at_ms, cluster_event(event));
            return;
        }
        let generation = fetcher.held_generation;
        if generation == fetcher.generation
            && let Some(requests) = fetcher.held.take()
        {
            self.serve_fetch(follower, leader, generation, requests, true);
        }
    }

    /// The leader appended to `partitions`: the fetches it holds for any of them are
    /// answered now.
    fn wake_held_fetches(&mut self, leader: u32, partitions: &[i32]) {
        if partitions.is_empty() {
            return;
        }
        for follower in 0..self.nodes.len() as u32 {
            let fetcher = self.cluster().fetcher(follower, leader);
            let wakes = fetcher
                .held
                .as_ref()
                .is_some_and(|held| held.iter().any(|r| partitions.contains(&r.partition)));
            if !wakes {
                continue;
            }
            let generation = fetcher.generation;
            let requests = fetcher.held.take().expect("checked above");
            self.serve_fetch(follower, leader, generation, requests, true);
        }
    }

    /// The leader's answers reach the follower: it truncates or appends, then fetches again.
    fn fetch_answered(
        &mut self,
        follower: u32,
        leader: u32,
        generation: u32,
        answers: Vec<(FetchRequest, FetchResponse)>,
    ) {
        if self.cluster().generation(follower, leader) != generation {
            return;
        }
        if !self.cluster().reachable(follower) {
            return;
        }
        let broker = &mut self.nodes[follower as usize].broker;
        broker.advance_time(self.now_ms as i64);
        let (mut batches, mut ranges, mut failed) = (0, Vec::new(), false);
        for (request, response) in &answers {
            let fetched = broker.on_follower_fetch_response(request, response);
            failed |= fetched.error_code != ErrorCode::None && !fetched.stale;
            if fetched.batches_appended > 0 {
                batches += fetched.batches_appended;
                ranges.push((
                    fetched.partition,
                    request.fetch_offset,
                    fetched.log_end_offset,
                ));
            }
        }
        if batches > 0 {
            let kind = ChangeKind::Fetched {
                leader: leader as i32,
                batches,
                ranges,
            };
            self.change(follower as i32, kind);
        }
        self.drain_answers(follower);
        self.drain_events(follower);
        if failed {
            self.schedule(
                self.now_ms + REPLICA_FETCH_BACKOFF_MS,
                cluster_event(ClusterEvent::FetchRetry {
                    follower,
                    leader,
                    generation,
                }),
            );
        } else {
            self.send_fetch(follower, leader);
        }
    }

    // ----- cluster faults -----

    /// Applies one whole-process fault of a replicated run.
    pub(super) fn cluster_fault(&mut self, fault: Fault) {
        match fault {
            Fault::BrokerCrash {
                broker,
                tear_bytes,
                down_ms,
                ..
            } => {
                self.faults.broker_crashes += 1;
                self.crash_node(broker as u32, tear_bytes, down_ms, CrashCause::BrokerCrash);
            }
            Fault::LeaderKill {
                partition,
                tear_bytes,
                down_ms,
                ..
            } => {
                let leader = self.cluster().controller.partition(partition).leader;
                if leader != NO_LEADER && self.cluster().reachable(leader as u32) {
                    self.cluster().counts.leader_kills += 1;
                    let cause = CrashCause::LeaderKill { partition };
                    self.crash_node(leader as u32, tear_bytes, down_ms, cause);
                }
            }
            Fault::CorrelatedCrash {
                partition,
                tear_bytes,
                down_ms,
                ..
            } => {
                self.cluster().counts.correlated_crashes += 1;
                let replicas = self
                    .cluster()
                    .controller
                    .partition(partition)
                    .replicas
                    .clone();
                for b in replicas {
                    if !self.cluster().down[b as usize] {
                        let cause = CrashCause::CorrelatedCrash { partition };
                        self.crash_node(b as u32, tear_bytes, down_ms, cause);
                    }
                }
            }
            Fault::Isolation {
                broker,
                duration_ms,
                ..
            } => self.isolate(broker as u32, duration_ms),
            Fault::BrokerRestart { after_appends } => {
                self.faults.broker_restarts += 1;
                let b = (after_appends % u64::from(self.config.brokers)) as u32;
                if self.cluster().reachable(b) {
                    let _ = self.nodes[b as usize].broker.restart_clean();
                    self.lose_connections(b);
                    self.after_restart(b);
                }
            }
            // DeleteRecords is a one-broker fault (the config refuses --delete-records here).
            Fault::Message { .. }
            | Fault::ProducerRestart { .. }
            | Fault::InterBrokerLoss { .. }
            | Fault::DeleteRecords { .. } => {}
        }
    }

    /// Broker `b` loses power: its unsynced tail is lost (and remembered for the checker),
    /// it recovers at once and stays down for `down_ms`.
    fn crash_node(&mut self, b: u32, tear_bytes: u32, down_ms: u64, cause: CrashCause) {
        let report = self.nodes[b as usize]
            .broker
            .crash(|_file, unsynced| u64::from(tear_bytes).min(unsynced));
        let mut batches_lost = 0;
        for partition in &report.partitions {
            if !partition.lost_batches.is_empty() {
                self.cluster().power_lost.insert(partition.partition);
            }
            for batch in &partition.lost_batches {
                batches_lost += 1;
                let _ = idempo_protocol::visit_records(&batch.bytes, |record| {
                    if let Some(id) = record.value.and_then(checker::parse_record_value) {
                        self.known.crash_lost.insert(id);
                    }
                });
            }
        }
        let cluster = self.cluster();
        cluster.down[b as usize] = true;
        cluster.incarnation[b as usize] += 1;
        let incarnation = cluster.incarnation[b as usize];
        cluster.pending.retain(|(node, _, _), _| *node != b);
        cluster.count_down();
        self.lose_connections(b);
        self.change(
            b as i32,
            ChangeKind::Crashed {
                cause,
                batches_lost,
                down_ms,
            },
        );
        self.schedule(
            self.now_ms + down_ms.max(1),
            cluster_event(ClusterEvent::BrokerUp {
                broker: b,
                incarnation,
            }),
        );
    }

    /// Every client connection to `b` breaks, and `b`'s own fetchers stop.
    fn lose_connections(&mut self, b: u32) {
        if self.config.network.fifo() {
            for slot in &mut self.slots {
                slot.links[b as usize].cut = true;
            }
        }
        for leader in 0..self.nodes.len() as u32 {
            let fetcher = self.cluster().fetcher(b, leader);
            fetcher.generation += 1;
            fetcher.held = None;
        }
        for follower in 0..self.nodes.len() as u32 {
            self.cluster().fetcher(follower, b).held = None;
        }
    }

    /// A crashed broker is back: it registers with the controller, gets a producer id block
    /// and replays the partitions' states.
    fn broker_up(&mut self, b: u32) {
        self.cluster().down[b as usize] = false;
        let registered = self.cluster().reachable(b);
        self.change(b as i32, ChangeKind::Up { registered });
        self.after_restart(b);
    }

    fn after_restart(&mut self, b: u32) {
        self.grant_producer_ids(b);
        if self.cluster().reachable(b) {
            self.register(b);
        } else {
            self.cluster().unregistered[b as usize] = true;
        }
    }

    /// `b`'s new incarnation registers with the controller (which fences the old one, so
    /// that no partition keeps, at the same leader epoch, a leader that lost its unsynced
    /// tail), then learns the partitions' states.
    fn register(&mut self, b: u32) {
        self.cluster().unregistered[b as usize] = false;
        let now = self.now_ms as i64;
        let decisions = self.cluster().controller.broker_registered(b as i32, now);
        self.apply_decisions(decisions);
        self.replay_metadata(b);
    }

    /// `b` is cut off for `duration_ms`.
    fn isolate(&mut self, b: u32, duration_ms: u64) {
        let cluster = self.cluster();
        cluster.isolated[b as usize] += 1;
        cluster.counts.isolations += 1;
        cluster.count_down();
        self.lose_connections(b);
        let until_ms = self.now_ms + duration_ms.max(1);
        self.change(b as i32, ChangeKind::Isolated { until_ms });
        self.schedule(until_ms, cluster_event(ClusterEvent::Healed { broker: b }));
    }

    fn healed(&mut self, b: u32) {
        let cluster = self.cluster();
        cluster.isolated[b as usize] = cluster.isolated[b as usize].saturating_sub(1);
        if cluster.reachable(b) {
            self.change(b as i32, ChangeKind::Healed);
            if self.cluster().unregistered[b as usize] {
                self.change(b as i32, ChangeKind::Registered);
                self.register(b);
            } else {
                self.replay_metadata(b);
            }
        }
    }

    // ----- the end -----

    /// The final cluster as the checker reads it.
    pub(super) fn cluster_view(&self) -> ClusterView {
        let cluster = self.cluster.as_deref().expect("a replicated run");
        let partitions = cluster
            .controller
            .partitions()
            .iter()
            .map(|state| {
                let read_from = if state.leader != NO_LEADER {
                    Some(state.leader)
                } else {
                    state.isr.first().copied()
                };
                let high_watermark = read_from
                    .and_then(|b| {
                        self.nodes[b as usize]
                            .broker
                            .high_watermark(state.partition)
                    })
                    .unwrap_or(0);
                let replicas = state
                    .replicas
                    .iter()
                    .map(|&b| {
                        let log = self.nodes[b as usize].broker.log(state.partition);
                        let batches = log.into_iter().flat_map(|log| log.batches());
                        let in_sync = state.isr.contains(&b);
                        // Only a replica the checker may read keeps the bytes (the leader,
                        // or any in-sync replica of an offline partition); the others are
                        // compared by batch identity alone.
                        let read = match state.leader {
                            NO_LEADER => in_sync,
                            leader => leader == b,
                        };
                        let (batches, identities) = match read {
                            true => (batches.map(|b| (b.header, b.bytes)).collect(), Vec::new()),
                            false => (
                                Vec::new(),
                                batches.map(|b| batch_identity(&b.header)).collect(),
                            ),
                        };
                        ReplicaLog {
                            broker: b,
                            in_sync,
                            batches,
                            identities,
                        }
                    })
                    .collect();
                PartitionView {
                    partition: state.partition,
                    leader: (state.leader != NO_LEADER).then_some(state.leader),
                    high_watermark,
                    replicas,
                }
            })
            .collect();
        ClusterView { partitions }
    }

    /// What the checker must know of the run's replication: the limits it met, and whether
    /// it stayed where Kafka promises exactly-once.
    pub(super) fn replication_faults(&self) -> ReplicationFaults {
        let c = &self.config;
        let cluster = self.cluster.as_deref().expect("a replicated run");
        let tolerated = u64::from(c.replication_factor.saturating_sub(c.min_insync_replicas));
        let durable =
            c.sync == idempo_broker::SyncPolicy::EveryAppend || self.known.crash_lost.is_empty();
        ReplicationFaults {
            acks_below_all: c.acks != Acks::All,
            acks_zero: c.acks == Acks::None,
            failed_over: cluster.failed_over.clone(),
            unclean: cluster.unclean.clone(),
            power_lost: cluster.power_lost.clone(),
            guaranteed: c.acks == Acks::All
                && c.min_insync_replicas >= 2
                && !c.unclean_leader_election
                && cluster.counts.most_down_at_once <= tolerated
                && durable,
        }
    }

    /// The cluster's counts, with the controller's.
    pub(super) fn cluster_counts(&self) -> ClusterCounts {
        let cluster = self.cluster.as_deref().expect("a replicated run");
        let counters = cluster.controller.counters();
        ClusterCounts {
            leader_elections: counters.leader_elections,
            unclean_elections: counters.unclean_elections,
            offline: counters.partitions_gone_offline,
            isr_shrinks: counters.isr_shrinks,
            isr_expands: counters.isr_expands,
            ..cluster.counts.clone()
        }
    }

    /// The known faults with the replication ones.
    pub(super) fn known_with_replication(&self) -> KnownFaults {
        KnownFaults {
            replication: Some(self.replication_faults()),
            ..self.known.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Acks, SimConfig};
    use crate::trace::Trace;
    use crate::{RunReport, Simulation};

    /// Three brokers, RF 3, timeouts short enough for a failure to be noticed in the run.
    fn cluster() -> SimConfig {
        SimConfig {
            producers: 2,
            partitions: 3,
            records: 200,
            batch_records: 5,
            brokers: 3,
            replication_factor: 3,
            replica_lag_time_max_ms: 1_000,
            broker_session_timeout_ms: 1_500,
            ..SimConfig::default()
        }
    }

    fn traced(config: &SimConfig) -> (RunReport, String) {
        let (report, trace) = Simulation::new(config.clone(), Some(Trace::buffered()))
            .expect("a valid config")
            .run();
        (report, trace.expect("a trace").into_string())
    }

    #[test]
    fn every_replica_holds_every_committed_batch_at_the_end() {
        let (r, trace) = traced(&cluster());
        assert!(r.finished && r.check.passed(), "{:?}", r.check);
        let c = r.cluster.as_ref().expect("cluster counts");
        assert!(c.fetches > 0, "followers fetched");
        assert_eq!(c.leader_elections, 0, "nothing failed");
        assert!(trace.contains("fetched"), "fetch summaries are traced");
        assert!(trace.contains("high watermark"), "HW moves are traced");
        assert!(trace.contains("Metadata #"), "metadata requests are traced");
    }

    #[test]
    fn a_leader_kill_elects_an_in_sync_replica_at_a_new_epoch() {
        let config = SimConfig {
            leader_kills: 1,
            min_insync_replicas: 2,
            ..cluster()
        };
        let (r, trace) = traced(&config);
        assert!(r.check.passed(), "{:?}", r.check);
        let c = r.cluster.as_ref().expect("cluster counts");
        assert!(c.leader_elections > 0 && c.unclean_elections == 0, "{c:?}");
        assert!(trace.contains("lost power (leader kill of p"), "{trace}");
        assert!(trace.contains("at leader epoch 1"), "the epoch is bumped");
        assert!(
            trace.contains("controller fenced broker"),
            "the session expired"
        );
    }

    #[test]
    fn an_acks_one_leader_cut_off_truncates_when_it_heals_and_reloads_producer_state() {
        let found = (1..30).find_map(|seed| {
            let config = SimConfig {
                seed,
                acks: Acks::Leader,
                idempotence: false,
                isolations: 1,
                ..cluster()
            };
            let (r, trace) = traced(&config);
            (r.cluster.as_ref().is_some_and(|c| c.truncations > 0)).then_some(trace)
        });
        let trace = found.expect("some seed truncates a replica");
        assert!(
            trace.contains("truncated from") && trace.contains("producer state reloaded from"),
            "a truncation names its producer-state reload"
        );
    }

    #[test]
    fn a_cut_off_broker_receives_nothing_and_is_fenced() {
        let found = (1..20).find_map(|seed| {
            let config = SimConfig {
                seed,
                isolations: 1,
                min_insync_replicas: 2,
                ..cluster()
            };
            let (r, trace) = traced(&config);
            assert_eq!(r.check.anomalies(), 0, "{:?}", r.check);
            trace.contains("controller fenced broker").then_some(trace)
        });
        let trace = found.expect("some isolation outlasts the session timeout");
        assert!(trace.contains("is cut off from the brokers"), "{trace}");
        assert!(trace.contains("isolation healed"), "{trace}");
    }

    #[test]
    fn a_broker_back_while_cut_off_registers_when_its_isolation_heals() {
        let found = (1..200).find_map(|seed| {
            let config = SimConfig {
                seed,
                broker_crashes: 2,
                isolations: 2,
                ..cluster()
            };
            let (_, trace) = traced(&config);
            let line = trace.lines().position(|l| l.contains("is back, cut off"))?;
            Some((trace, line))
        });
        let (trace, line) = found.expect("some broker comes back while it is cut off");
        let lines: Vec<&str> = trace.lines().collect();
        let broker = lines[line]
            .split("broker ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .expect("the line names its broker");
        let after = |needle: &str, from: usize| {
            lines[from..]
                .iter()
                .position(|l| l.contains(needle))
                .map(|i| from + i)
        };
        let healed = after(&format!("broker {broker}'s isolation healed"), line)
            .expect("the isolation heals after the restart");
        let registered = after(
            &format!("broker {broker} registered with the controller"),
            line,
        )
        .expect("it registers");
        assert!(
            registered > healed,
            "registered (line {registered}) only after the heal (line {healed}):\n{trace}"
        );
    }

    #[test]
    fn the_same_seed_and_cluster_give_the_same_trace() {
        let config = SimConfig {
            leader_kills: 2,
            isolations: 1,
            inter_broker_loss: 0.05,
            ..cluster()
        };
        assert_eq!(traced(&config).1, traced(&config).1);
    }
}
