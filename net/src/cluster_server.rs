//! The tokio half of a cluster in one process: a listener per broker, the connections, the
//! ticker that tells the [`ClusterNode`] the time, and the admin endpoint's operations.
//!
//! Each broker listens on its own port; a connection is served by the broker whose port it
//! came in on, against the one [`ClusterNode`] behind one lock. A crashed or isolated
//! broker's connections are closed (each connection watches its broker's incarnation) and a
//! connection accepted while it is down is closed at once: the client sees its broker go
//! away, as when a Kafka broker dies. Every [`TICK_MS`] the ticker runs
//! [`ClusterNode::tick`]: heartbeats, the controller's session check, ISR shrinks,
//! replication, delayed produce deadlines.
//!
//! ## One connection loop, one dispatch
//! Each broker's listener is a [`crate::server`] front: the same connection loop as the
//! one-broker server, with its limits (`--max-connections`, idle and read timeouts, the
//! request memory pool, each broker its own), preflight, UNSUPPORTED_VERSION answers and
//! shutdown; and every request goes through the one dispatch
//! ([`crate::dispatch::handle`]) with the broker's cluster handlers
//! ([`BrokerOfCluster`]). What differs is only what
//! a cluster adds: an `acks=all` produce waits for the high watermark, and a crashed or
//! isolated broker closes its connections and refuses new ones.
//!
//! Served APIs: every API of the one-broker server. The topic admin APIs change every
//! broker's topic table in one step (CreateTopics with the cluster's replication factor,
//! see [`ClusterNode::create_topics`]). The consumer-group APIs are each broker's own: each
//! broker coordinates its own groups and answers FindCoordinator with node id 1 (see
//! [`crate::groups`]): use groups on a cluster only through one broker.
//!
//! `--metrics` serves each broker's numbers on its own port (broker 0's, the others on the
//! next ports) and `--advertise` names broker 0's address (the others on the next ports),
//! as `--listen` does.

use crate::cluster_node::{BrokerOfCluster, ClusterError, ClusterNode, ClusterSettings};
use crate::dispatch::Dispatched;
use crate::kafka_apis::{FrontEndSettings, KafkaApis};
use crate::kafka_codec::{EncodeError, RequestBody};
use crate::server::{Advertised, Backend, Front, ServerConfig, StartError};
use idempo_broker::{ElectionType, FileStorage, NodeStorage, SimDisk};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, RequestHeader};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// How often the cluster is told the time when no request arrives (heartbeats, session
/// checks, ISR shrinks, delayed produce deadlines).
pub const TICK_MS: u64 = 50;

/// A bound, not yet running, cluster.
#[derive(Debug)]
pub struct ClusterServer {
    /// One per broker, by node id.
    fronts: Vec<Front<BrokerBackend>>,
    handle: Arc<ClusterHandle>,
    admin: Option<TcpListener>,
    /// Each broker's metrics endpoint, by node id, when asked for.
    metrics: Vec<TcpListener>,
    shutdown_grace: Duration,
}

/// Broker `broker` of the cluster, as its connections see it ([`Backend`]).
#[derive(Debug)]
pub(crate) struct BrokerBackend {
    handle: Arc<ClusterHandle>,
    broker: i32,
}

impl Backend for BrokerBackend {
    fn dispatch(
        &self,
        connection: u64,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
        client_host: &str,
    ) -> Option<Result<Dispatched, EncodeError>> {
        let dispatched = self.handle.with(|node| {
            // A request read just before a crash or an isolation must not reach the broker:
            // it is down (its core not even told the time).
            if !node.reachable(self.broker) {
                return None;
            }
            let mut handlers = BrokerOfCluster {
                node,
                broker: self.broker,
                connection,
            };
            Some(crate::dispatch::handle(
                &mut handlers,
                api_key,
                header,
                body,
                client_host,
            ))
        });
        // A produce, an election or a topic change may move a high watermark.
        self.handle.changed.notify_waiters();
        dispatched
    }

    fn with_apis<R>(&self, f: impl FnOnce(&mut KafkaApis) -> R) -> R {
        self.handle
            .with(|n| f(&mut n.brokers_mut()[self.broker as usize].apis))
    }

    fn appended(&self) -> &Notify {
        &self.handle.changed
    }

    fn max_frame_bytes(&self) -> usize {
        self.handle.max_frame_bytes
    }

    fn serving(&self) -> bool {
        self.handle.with(|n| n.reachable(self.broker))
    }

    fn gone(&self) -> Option<watch::Receiver<u64>> {
        self.handle
            .incarnations
            .get(self.broker as usize)
            .map(watch::Sender::subscribe)
    }
}

/// What the connections, the ticker and the admin endpoint share: the cluster behind its
/// lock, and the signals around it.
#[derive(Debug)]
pub struct ClusterHandle {
    node: Mutex<ClusterNode>,
    /// Woken after every produce and every tick, for Fetch requests waiting for data.
    changed: Notify,
    /// Per broker, its incarnation: a connection closes when it changes.
    incarnations: Vec<watch::Sender<u64>>,
    /// Listening addresses, by broker id.
    addrs: Vec<SocketAddr>,
    max_frame_bytes: usize,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ClusterHandle {
    /// Runs `f` on the cluster, told the time first.
    pub fn with<R>(&self, f: impl FnOnce(&mut ClusterNode) -> R) -> R {
        let mut node = self.lock();
        node.advance_time(wall_clock_ms());
        f(&mut node)
    }

    fn lock(&self) -> MutexGuard<'_, ClusterNode> {
        // A panic under the lock is a bug its task reported; the cluster is still whole.
        self.node.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The brokers' listening addresses, by node id.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Closes broker `b`'s connections if its incarnation moved.
    fn publish_incarnation(&self, b: i32) {
        let incarnation = self.with(|n| n.broker(b).map(|x| x.incarnation));
        if let (Ok(i), Some(tx)) = (incarnation, self.incarnations.get(b as usize)) {
            tx.send_replace(i);
        }
    }

    /// Crashes broker `b` ([`ClusterNode::crash`]) and closes its connections. Returns the
    /// batches lost.
    pub fn crash(&self, b: i32) -> Result<usize, ClusterError> {
        let lost = self.with(|n| n.crash(b))?;
        self.publish_incarnation(b);
        self.changed.notify_waiters();
        Ok(lost)
    }

    /// Starts broker `b` again ([`ClusterNode::start`]).
    pub fn start(&self, b: i32) -> Result<(), ClusterError> {
        self.with(|n| n.start(b))?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Cuts broker `b` off for `duration_ms` ([`ClusterNode::isolate`]) and closes its
    /// connections.
    pub fn isolate(&self, b: i32, duration_ms: i64) -> Result<(), ClusterError> {
        self.with(|n| n.isolate(b, duration_ms))?;
        self.publish_incarnation(b);
        Ok(())
    }

    /// An election on request for `topic`'s `partition` ([`ClusterNode::elect`]). `leader`,
    /// if given, must be the replica the election picks: the preferred replica for a
    /// preferred election (Kafka's ElectLeaders cannot name another).
    pub fn elect(
        &self,
        topic: &str,
        partition: i32,
        leader: Option<i32>,
        unclean: bool,
    ) -> Result<serde_json::Value, ClusterError> {
        let result = self.with(|n| {
            let core = n
                .topic(topic, false)
                .ok()
                .and_then(|t| t.core_partition(partition))
                .ok_or_else(|| ClusterError::UnknownPartition(format!("{topic}-{partition}")))?;
            let preferred = n.controller().partition(core).replicas[0];
            if let Some(wanted) = leader
                && !unclean
                && wanted != preferred
            {
                return Err(ClusterError::Invalid(format!(
                    "a preferred election elects the first replica, broker {preferred}, not {wanted} \
                     (Kafka's ElectLeaders cannot name a leader)"
                )));
            }
            let election = if unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            let state = n
                .elect(core, election)
                .map_err(|e| ClusterError::Conflict(format!("{}: {e}", e.name())))?;
            if let Some(wanted) = leader
                && wanted != state.leader
            {
                warn!(wanted, elected = state.leader, "election chose another leader");
            }
            Ok(serde_json::json!({
                "topic": topic, "partition": partition, "leader": state.leader,
                "leader_epoch": state.leader_epoch, "isr": state.isr,
            }))
        });
        self.changed.notify_waiters();
        result
    }

    /// The cluster as `GET /cluster` shows it: brokers, partitions, leaders, ISR, high
    /// watermarks and log end offsets per replica.
    pub fn describe(&self) -> serde_json::Value {
        self.with(|n| {
            let brokers: Vec<serde_json::Value> = n
                .brokers()
                .iter()
                .enumerate()
                .map(|(id, x)| {
                    serde_json::json!({
                        "id": id,
                        "host": x.apis.settings.advertised_host,
                        "port": x.apis.settings.advertised_port,
                        "state": x.state.name(),
                        "fenced": n.controller().is_fenced(id as i32),
                    })
                })
                .collect();
            let mut partitions = Vec::new();
            for topic in n.brokers()[0].apis.topics.iter() {
                for (index, &core) in topic.core_partitions.iter().enumerate() {
                    let state = n.controller().partition(core);
                    let replicas: Vec<serde_json::Value> = state
                        .replicas
                        .iter()
                        .map(|&b| {
                            let broker = &n.brokers()[b as usize].apis.broker;
                            serde_json::json!({
                                "broker": b,
                                "log_end_offset": broker.log_end_offset(core),
                                "high_watermark": broker.high_watermark(core),
                            })
                        })
                        .collect();
                    let hw = (state.leader >= 0)
                        .then(|| {
                            n.brokers()[state.leader as usize]
                                .apis
                                .broker
                                .high_watermark(core)
                        })
                        .flatten();
                    partitions.push(serde_json::json!({
                        "topic": topic.name, "partition": index, "leader": state.leader,
                        "leader_epoch": state.leader_epoch, "replicas": state.replicas,
                        "isr": state.isr, "high_watermark": hw, "logs": replicas,
                    }));
                }
            }
            serde_json::json!({ "brokers": brokers, "partitions": partitions })
        })
    }
}

/// `first` for broker 0 and the next ports for the others (port 0: any free port each).
fn consecutive(first: SocketAddr, brokers: usize) -> Result<Vec<SocketAddr>, StartError> {
    (0..brokers)
        .map(|b| {
            let port = match first.port() {
                0 => Some(0),
                p => u16::try_from(b).ok().and_then(|b| p.checked_add(b)),
            };
            port.map(|port| SocketAddr::new(first.ip(), port))
                .ok_or_else(|| {
                    StartError::Setting(format!("the brokers' ports from {first} run past 65535"))
                })
        })
        .collect()
}

impl ClusterServer {
    /// Opens every broker (storage under `data_dir/broker-N/` when `config.data_dir` is
    /// set), binds one listener per address of `listen` (broker `b` on `listen[b]`) and the
    /// admin endpoint if asked. `config` holds the settings every broker shares; its
    /// `advertise` and `metrics`, if set, are broker 0's, the others' on the next ports
    /// ([`ClusterServer::bind_advertised`] names each broker's address).
    pub async fn bind(
        config: ServerConfig,
        settings: ClusterSettings,
        listen: Vec<SocketAddr>,
        admin: Option<SocketAddr>,
    ) -> Result<ClusterServer, StartError> {
        let advertise = match &config.advertise {
            None => Vec::new(),
            Some(first) => (0..listen.len())
                .map(|b| {
                    u16::try_from(b)
                        .ok()
                        .and_then(|b| first.port.checked_add(b))
                        .map(|port| Advertised {
                            host: first.host.clone(),
                            port,
                        })
                        .ok_or_else(|| {
                            StartError::Setting(format!(
                                "--advertise {first}: the ports run past 65535"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        ClusterServer::bind_advertised(config, settings, listen, advertise, admin).await
    }

    /// As [`ClusterServer::bind`], broker `b` advertising `advertise[b]` in Metadata
    /// (`advertise` empty: each broker's bound address).
    pub async fn bind_advertised(
        config: ServerConfig,
        settings: ClusterSettings,
        listen: Vec<SocketAddr>,
        advertise: Vec<Advertised>,
        admin: Option<SocketAddr>,
    ) -> Result<ClusterServer, StartError> {
        let brokers = settings.brokers as usize;
        if listen.len() != brokers {
            return Err(StartError::Setting(format!(
                "{} listen addresses for {brokers} brokers",
                listen.len()
            )));
        }
        if !advertise.is_empty() && advertise.len() != brokers {
            return Err(StartError::Setting(format!(
                "{} advertised addresses for {brokers} brokers",
                advertise.len()
            )));
        }
        crate::server::check_settings(&config)?;
        let mut listeners = Vec::with_capacity(brokers);
        let mut addrs = Vec::with_capacity(brokers);
        for addr in &listen {
            let listener = TcpListener::bind(addr).await.map_err(StartError::Bind)?;
            addrs.push(listener.local_addr().map_err(StartError::Bind)?);
            listeners.push(listener);
        }
        let mut storages = Vec::with_capacity(brokers);
        let mut front_ends = Vec::with_capacity(brokers);
        for (b, addr) in addrs.iter().enumerate() {
            storages.push(match &config.data_dir {
                Some(dir) => NodeStorage::Files(
                    FileStorage::open(dir.join(format!("broker-{b}")))
                        .map_err(StartError::DataDir)?,
                ),
                None => NodeStorage::Memory(SimDisk::new()),
            });
            let advertised = advertise.get(b).cloned().unwrap_or(Advertised {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
            front_ends.push(FrontEndSettings {
                advertised_host: advertised.host,
                advertised_port: advertised.port,
                cluster_id: config.cluster_id.clone(),
                default_partitions: config.default_partitions,
                auto_create_topics: config.auto_create_topics,
                group: config.group.clone(),
                member_id_seed: u64::try_from(wall_clock_ms()).unwrap_or(0) + b as u64,
            });
        }
        let configs = vec![config.broker.clone(); brokers];
        let node = ClusterNode::open(&settings, configs, storages, front_ends, wall_clock_ms())
            .map_err(|e| StartError::Setting(e.to_string()))?;
        let admin = match admin {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(StartError::Admin)?),
            None => None,
        };
        let mut metrics = Vec::new();
        if let Some(first) = config.metrics {
            for addr in consecutive(first, brokers)? {
                metrics.push(TcpListener::bind(addr).await.map_err(StartError::Metrics)?);
            }
        }
        let handle = Arc::new(ClusterHandle {
            node: Mutex::new(node),
            changed: Notify::new(),
            incarnations: addrs.iter().map(|_| watch::channel(0).0).collect(),
            addrs,
            max_frame_bytes: config.max_frame_bytes,
        });
        let fronts = listeners
            .into_iter()
            .enumerate()
            .map(|(b, listener)| {
                let backend = Arc::new(BrokerBackend {
                    handle: handle.clone(),
                    broker: b as i32,
                });
                Front::new(listener, backend, config.limits)
            })
            .collect();
        Ok(ClusterServer {
            fronts,
            handle,
            admin,
            metrics,
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        })
    }

    /// The brokers' listening addresses, by node id.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.handle.addrs.clone()
    }

    /// The admin endpoint's address, if any.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Each broker's metrics endpoint, by node id (empty without `--metrics`).
    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.metrics
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The shared cluster (for tests and the admin endpoint).
    pub fn handle(&self) -> Arc<ClusterHandle> {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes; then each broker's connections finish the request
    /// in hand (for up to the shutdown grace) and every broker shuts down cleanly (logs
    /// synced, producer state snapshotted).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut side_tasks = tokio::task::JoinSet::new();
        side_tasks.spawn(tick(self.handle.clone()));
        if let Some(admin) = self.admin {
            if let Ok(addr) = admin.local_addr() {
                info!(%addr, "serving the cluster admin endpoint at http://{addr}/cluster");
            }
            side_tasks.spawn(crate::admin_http::serve(admin, self.handle.clone()));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let mut brokers = tokio::task::JoinSet::new();
        for (b, (front, metrics)) in self
            .fronts
            .into_iter()
            .zip(
                self.metrics
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .enumerate()
        {
            if let Some(listener) = metrics {
                if let Ok(addr) = listener.local_addr() {
                    info!(broker = b, %addr, "serving metrics at http://{addr}/metrics");
                }
                let backend = BrokerBackend {
                    handle: self.handle.clone(),
                    broker: b as i32,
                };
                let limits = front.limits().clone();
                side_tasks.spawn(crate::metrics::serve(listener, move || {
                    crate::server::snapshot(&backend, &limits)
                }));
            }
            let (stop_tx, mut accepting, stop_rx) =
                (stop_tx.clone(), stop_rx.clone(), stop_rx.clone());
            let grace = self.shutdown_grace;
            brokers.spawn(async move {
                let connections = front
                    .accept_until(
                        async move {
                            let _ = accepting.wait_for(|s| *s).await;
                        },
                        &stop_rx,
                    )
                    .await;
                drop(front);
                crate::server::drain(connections, &stop_tx, grace).await;
            });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while brokers.join_next().await.is_some() {}
        side_tasks.shutdown().await;
        self.handle.with(|n| {
            for (b, x) in n.brokers_mut().iter_mut().enumerate() {
                if let Err(e) = x.apis.broker.shutdown() {
                    warn!(broker = b, error = %e, "final sync failed");
                }
            }
        });
        info!("stopped");
    }
}

async fn tick(handle: Arc<ClusterHandle>) {
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        handle.with(|n| n.tick(wall_clock_ms()));
        handle.changed.notify_waiters();
    }
}

/// ElectLeaders on the one-broker server: its one replica always leads, so every known
/// partition is answered ELECTION_NOT_NEEDED (84), an unknown one
/// UNKNOWN_TOPIC_OR_PARTITION (3), as Kafka answers a partition whose preferred replica
/// already leads.
pub fn elect_leaders_standalone(
    apis: &crate::kafka_apis::KafkaApis,
    request: &ElectLeadersRequest,
) -> ElectLeadersResponse {
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    let results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let found = apis.topics.get(t.topic.0.as_str());
            let partition_result = t
                .partitions
                .iter()
                .map(|&p| {
                    let known = found.and_then(|f| f.core_partition(p)).is_some();
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(if known { 84 } else { 3 })
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;

    /// A request read from a connection just before its broker crashed reaches the dispatch
    /// after the crash: it must not be served by the down broker (whose fresh core has not
    /// been told the time and would, for one, refuse every timestamp as INVALID_TIMESTAMP).
    #[tokio::test]
    async fn a_request_that_reaches_a_crashed_broker_is_not_served() {
        let settings = ClusterSettings {
            brokers: 3,
            replication_factor: 3,
            unclean_leader_election: false,
            broker_session_timeout_ms: 1_000,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let server = ClusterServer::bind(ServerConfig::default(), settings, vec![any; 3], None)
            .await
            .expect("the cluster starts");
        let handle = server.handle();
        let backend = |broker| BrokerBackend {
            handle: handle.clone(),
            broker,
        };
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12);
        let metadata = || RequestBody::Metadata(MetadataRequest::default());
        let serve =
            |b: &BrokerBackend| b.dispatch(1, ApiKey::Metadata, &header, metadata(), "/127.0.0.1");
        assert!(serve(&backend(0)).is_some(), "an up broker serves");
        handle.crash(0).expect("broker 0 crashes");
        assert!(serve(&backend(0)).is_none(), "a down broker does not");
        assert!(serve(&backend(1)).is_some(), "the others still do");
        assert!(!backend(0).serving(), "nor does it take new connections");
    }
}
