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
//! ## Differences from the one-broker server
//! The one-broker server ([`crate::server`]) enforces Kafka's connection limits and request
//! memory pool; these connections do not (a cluster is a test bed on loopback). Served APIs:
//! ApiVersions, Metadata, InitProducerId, Produce, Fetch, ListOffsets, ElectLeaders,
//! DescribeConfigs and the consumer-group APIs (each broker coordinates its own groups and
//! answers FindCoordinator with node id 1, see [`crate::groups`]: use groups on a cluster
//! only with one broker). CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords and
//! IncrementalAlterConfigs close the connection with a log line: topics are created on
//! first use with `--partitions` and `--replication-factor`.

use crate::cluster_node::{ClusterError, ClusterNode, ClusterSettings, ProduceAnswer};
use crate::groups::{Client, EncodableBody, GroupReply, GroupRequest};
use crate::kafka_apis::{FrontEndSettings, api_versions_response};
use crate::kafka_codec::{self, Decoded, FrameCheck, LENGTH_PREFIX_BYTES, RequestBody};
use crate::server::{ServerConfig, StartError};
use bytes::{Bytes, BytesMut};
use idempo_broker::{ElectionType, FileStorage, NodeStorage, SimDisk};
use kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, ProduceResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

/// How often the cluster is told the time when no request arrives (heartbeats, session
/// checks, ISR shrinks, delayed produce deadlines).
pub const TICK_MS: u64 = 50;

/// Longest a Fetch waits for `min_bytes` (as the one-broker server).
const MAX_FETCH_WAIT_MS: i32 = 30_000;

/// A bound, not yet running, cluster.
#[derive(Debug)]
pub struct ClusterServer {
    listeners: Vec<TcpListener>,
    handle: Arc<ClusterHandle>,
    admin: Option<TcpListener>,
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

    /// Runs `f` on the cluster for a request that came in on broker `b`'s connection, if `b`
    /// is still up: a connection may have read its request just before `b` crashed or was
    /// cut off, and the check must be made under the same lock as the request.
    fn with_up<R>(&self, b: i32, f: impl FnOnce(&mut ClusterNode) -> R) -> Option<R> {
        self.with(|n| n.reachable(b).then(|| f(n)))
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

    /// ElectLeaders (Kafka's API 43): each partition asked gets the election asked for
    /// (0: preferred, 1: unclean), answered with its error code.
    fn elect_leaders(&self, request: &ElectLeadersRequest) -> ElectLeadersResponse {
        use kafka_protocol::messages::elect_leaders_response::{
            PartitionResult, ReplicaElectionResult,
        };
        let election = if request.election_type == 1 {
            ElectionType::Unclean
        } else {
            ElectionType::Preferred
        };
        let results = self.with(|n| {
            let wanted: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)> =
                match &request.topic_partitions {
                    Some(topics) => topics
                        .iter()
                        .map(|t| (t.topic.clone(), t.partitions.clone()))
                        .collect(),
                    None => n.brokers()[0]
                        .apis
                        .topics
                        .iter()
                        .map(|t| {
                            (
                                kafka_protocol::messages::TopicName(StrBytes::from_string(
                                    t.name.clone(),
                                )),
                                (0..t.partition_count).collect(),
                            )
                        })
                        .collect(),
                };
            wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = n.topic(topic.0.as_str(), false).ok();
                    let partition_result = partitions
                        .into_iter()
                        .map(|p| {
                            let code = match found.as_ref().and_then(|t| t.core_partition(p)) {
                                None => 3,
                                Some(core) => match n.elect(core, election) {
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
                .collect()
        });
        self.changed.notify_waiters();
        ElectLeadersResponse::default().with_replica_election_results(results)
    }
}

impl ClusterServer {
    /// Opens every broker (storage under `data_dir/broker-N/` when `config.data_dir` is
    /// set), binds one listener per address of `listen` (broker `b` on `listen[b]`) and the
    /// admin endpoint if asked. `config` holds the settings every broker shares.
    pub async fn bind(
        config: ServerConfig,
        settings: ClusterSettings,
        listen: Vec<SocketAddr>,
        admin: Option<SocketAddr>,
    ) -> Result<ClusterServer, StartError> {
        if listen.len() != settings.brokers as usize {
            return Err(StartError::Setting(format!(
                "{} listen addresses for {} brokers",
                listen.len(),
                settings.brokers
            )));
        }
        let mut listeners = Vec::with_capacity(listen.len());
        let mut addrs = Vec::with_capacity(listen.len());
        for addr in &listen {
            let listener = TcpListener::bind(addr).await.map_err(StartError::Bind)?;
            addrs.push(listener.local_addr().map_err(StartError::Bind)?);
            listeners.push(listener);
        }
        let mut storages = Vec::with_capacity(addrs.len());
        let mut front_ends = Vec::with_capacity(addrs.len());
        for (b, addr) in addrs.iter().enumerate() {
            storages.push(match &config.data_dir {
                Some(dir) => NodeStorage::Files(
                    FileStorage::open(dir.join(format!("broker-{b}")))
                        .map_err(StartError::DataDir)?,
                ),
                None => NodeStorage::Memory(SimDisk::new()),
            });
            front_ends.push(FrontEndSettings {
                advertised_host: addr.ip().to_string(),
                advertised_port: addr.port(),
                cluster_id: config.cluster_id.clone(),
                default_partitions: config.default_partitions,
                auto_create_topics: config.auto_create_topics,
                group: config.group.clone(),
                member_id_seed: u64::try_from(wall_clock_ms()).unwrap_or(0) + b as u64,
            });
        }
        let configs = vec![config.broker.clone(); addrs.len()];
        let node = ClusterNode::open(&settings, configs, storages, front_ends, wall_clock_ms())
            .map_err(|e| StartError::Setting(e.to_string()))?;
        let admin = match admin {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(StartError::Metrics)?),
            None => None,
        };
        Ok(ClusterServer {
            listeners,
            handle: Arc::new(ClusterHandle {
                node: Mutex::new(node),
                changed: Notify::new(),
                incarnations: addrs.iter().map(|_| watch::channel(0).0).collect(),
                addrs,
                max_frame_bytes: config.max_frame_bytes,
            }),
            admin,
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

    /// The shared cluster (for tests and the admin endpoint).
    pub fn handle(&self) -> Arc<ClusterHandle> {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes; then every broker shuts down cleanly (logs
    /// synced, producer state snapshotted).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (b, listener) in self.listeners.into_iter().enumerate() {
            tasks.spawn(accept(self.handle.clone(), b as i32, listener));
        }
        tasks.spawn(tick(self.handle.clone()));
        if let Some(admin) = self.admin {
            if let Ok(addr) = admin.local_addr() {
                info!(%addr, "serving the cluster admin endpoint at http://{addr}/cluster");
            }
            tasks.spawn(crate::admin_http::serve(admin, self.handle.clone()));
        }
        shutdown.await;
        tasks.shutdown().await;
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

async fn accept(handle: Arc<ClusterHandle>, b: i32, listener: TcpListener) {
    let mut next_client: u64 = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !handle.with(|n| n.reachable(b)) {
            debug!(broker = b, %peer, "closed connection: broker is not up");
            continue;
        }
        next_client += 1;
        let connection = Connection {
            handle: handle.clone(),
            broker: b,
            client: (u64::from(b as u32) << 48) | next_client,
            stream,
            peer,
            buf: BytesMut::new(),
            incarnation: handle.incarnations[b as usize].subscribe(),
        };
        tokio::spawn(
            connection
                .run()
                .instrument(info_span!("connection", broker = b, %peer)),
        );
    }
}

/// Why a connection closes instead of answering.
struct Close(String);

/// Close: no answer can tell the client (a failed acks=0 produce, a broker gone, an API not
/// served).
const CLOSE: Close = Close(String::new());

struct Connection {
    handle: Arc<ClusterHandle>,
    broker: i32,
    client: u64,
    stream: TcpStream,
    peer: SocketAddr,
    buf: BytesMut,
    incarnation: watch::Receiver<u64>,
}

impl Connection {
    async fn run(mut self) {
        self.incarnation.mark_unchanged();
        loop {
            match kafka_codec::check_frame(&self.buf, self.handle.max_frame_bytes) {
                FrameCheck::TooLarge { announced } => {
                    warn!(announced, "closed connection: frame larger than the limit");
                    return;
                }
                FrameCheck::Complete { frame_bytes } => {
                    // Requests already read (pipelined) when the broker crashed or was cut off
                    // must not reach the broker's new, down core.
                    if self.incarnation.has_changed().unwrap_or(true) {
                        info!("closed connection: the broker crashed or was cut off");
                        return;
                    }
                    let frame = self
                        .buf
                        .split_to(LENGTH_PREFIX_BYTES + frame_bytes)
                        .freeze()
                        .slice(LENGTH_PREFIX_BYTES..);
                    if !self.serve(frame).await {
                        return;
                    }
                }
                FrameCheck::Incomplete { .. } => {
                    tokio::select! {
                        read = self.stream.read_buf(&mut self.buf) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        },
                        _ = self.incarnation.changed() => {
                            info!("closed connection: the broker crashed or was cut off");
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Serves one frame; false to close the connection.
    async fn serve(&mut self, frame: Bytes) -> bool {
        match kafka_codec::decode_request(frame) {
            Ok(Decoded::Request {
                api_key,
                header,
                body,
            }) => {
                let span = info_span!(
                    "request",
                    api = ?api_key,
                    version = header.request_api_version,
                    correlation_id = header.correlation_id,
                );
                let answer = self
                    .handle_request(api_key, &header, *body)
                    .instrument(span)
                    .await;
                match answer {
                    Some(Ok(frame)) => self.write(&frame).await,
                    Some(Err(Close(why))) => {
                        debug!(why, "closed connection");
                        false
                    }
                    None => true,
                }
            }
            Ok(Decoded::UnsupportedApiVersions { correlation_id, .. }) => {
                let body = crate::kafka_apis::unsupported_api_versions_response();
                match kafka_codec::encode_frame(0, correlation_id, |buf| {
                    kafka_protocol::protocol::Encodable::encode(&body, buf, 0)
                }) {
                    Ok(frame) => self.write(&frame).await,
                    Err(_) => false,
                }
            }
            Ok(Decoded::UnsupportedVersion(request)) => {
                match crate::unsupported_version::answer(&request) {
                    Some(Ok(frame)) => self.write(&frame).await,
                    _ => false,
                }
            }
            Err(e) => {
                warn!(error = %e, "closed connection: cannot serve the request");
                false
            }
        }
    }

    /// The encoded answer; `None` for no answer (acks=0); `Some(Err)` closes.
    async fn handle_request(
        &mut self,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
    ) -> Option<Result<Bytes, Close>> {
        let (b, version, correlation_id) = (
            self.broker,
            header.request_api_version,
            header.correlation_id,
        );
        let handle = self.handle.clone();
        let encode = |r: &dyn EncodableBody| {
            r.encode_frame(api_key, version, correlation_id)
                .map_err(|e| Close(e.to_string()))
        };
        let gone = || Close("the broker crashed or was cut off".to_string());
        match body {
            RequestBody::ApiVersions(_) => Some(encode(&api_versions_response())),
            RequestBody::Metadata(r) => Some(
                handle
                    .with_up(b, |n| n.metadata(b, &r, version))
                    .ok_or_else(gone)
                    .and_then(|r| encode(&r)),
            ),
            RequestBody::InitProducerId(r) => Some(
                handle
                    .with_up(b, |n| n.init_producer_id(b, &r))
                    .ok_or_else(gone)
                    .and_then(|r| encode(&r)),
            ),
            RequestBody::ListOffsets(r) => Some(
                handle
                    .with_up(b, |n| n.list_offsets(b, &r, version))
                    .ok_or_else(gone)
                    .and_then(|r| encode(&r)),
            ),
            RequestBody::DescribeConfigs(r) => {
                Some(encode(&handle.with(|n| {
                    n.brokers()[b as usize].apis.describe_configs(&r, version)
                })))
            }
            RequestBody::ElectLeaders(r) => Some(encode(&handle.elect_leaders(&r))),
            RequestBody::Produce(r) => self.produce(&r, version, correlation_id, api_key).await,
            RequestBody::Fetch(r) => Some(encode(&self.fetch(&r).await)),
            RequestBody::Group(r) => Some(self.group(&r, api_key, header).await),
            _ => {
                warn!(api = ?api_key, "closed connection: this API is not served by a cluster");
                Some(Err(CLOSE))
            }
        }
    }

    /// A Produce: answered now, later (acks=all, when the HW passes it, unless the broker
    /// goes away first), or not at all (acks=0).
    async fn produce(
        &mut self,
        request: &kafka_protocol::messages::ProduceRequest,
        version: i16,
        correlation_id: i32,
        api_key: ApiKey,
    ) -> Option<Result<Bytes, Close>> {
        let (handle, b, client) = (self.handle.clone(), self.broker, self.client);
        let Some(answer) = handle.with_up(b, |n| {
            n.produce(b, client, correlation_id, request, version)
        }) else {
            return Some(Err(Close("the broker crashed or was cut off".to_string())));
        };
        handle.changed.notify_waiters();
        let encode = |r: &ProduceResponse| {
            kafka_codec::encode_response(api_key, version, correlation_id, r)
                .map_err(|e| Close(e.to_string()))
        };
        match answer {
            ProduceAnswer::Now(response) => Some(encode(&response)),
            ProduceAnswer::None { failed: 0 } => None,
            ProduceAnswer::None { .. } => {
                warn!("closed connection: an acks=0 produce failed");
                Some(Err(CLOSE))
            }
            ProduceAnswer::Later(receiver) => {
                let mut incarnation = self.incarnation.clone();
                tokio::select! {
                    answer = receiver => match answer {
                        Ok(response) => Some(encode(&response)),
                        Err(_) => Some(Err(CLOSE)),
                    },
                    _ = incarnation.changed() => Some(Err(CLOSE)),
                }
            }
        }
    }

    /// A consumer-group request, served by this broker's own coordinator; a parked
    /// JoinGroup or SyncGroup keeps the connection waiting.
    async fn group(
        &mut self,
        request: &GroupRequest,
        api_key: ApiKey,
        header: &RequestHeader,
    ) -> Result<Bytes, Close> {
        let (version, correlation_id, b) = (
            header.request_api_version,
            header.correlation_id,
            self.broker,
        );
        let client = Client {
            client_id: header
                .client_id
                .as_ref()
                .map_or_else(String::new, |c| c.to_string()),
            client_host: format!("/{}", self.peer.ip()),
        };
        let reply = self.handle.with(|n| {
            n.brokers_mut()[b as usize].apis.group_request(
                request,
                api_key,
                version,
                correlation_id,
                &client,
            )
        });
        let encode = |r: &dyn EncodableBody| {
            r.encode_frame(api_key, version, correlation_id)
                .map_err(|e| Close(e.to_string()))
        };
        match reply {
            Err(e) => Err(Close(e.to_string())),
            Ok(GroupReply::Now(frame)) => Ok(frame),
            Ok(GroupReply::Join(receiver)) => match receiver.await {
                Ok(r) => encode(&r),
                Err(_) => Err(CLOSE),
            },
            Ok(GroupReply::Sync(receiver)) => match receiver.await {
                Ok(r) => encode(&r),
                Err(_) => Err(CLOSE),
            },
        }
    }

    /// A consumer Fetch on this broker, waiting for `min_bytes` until `max_wait_ms`.
    async fn fetch(
        &mut self,
        request: &kafka_protocol::messages::FetchRequest,
    ) -> kafka_protocol::messages::FetchResponse {
        let wait_ms = request.max_wait_ms.clamp(0, MAX_FETCH_WAIT_MS);
        let deadline = Instant::now() + Duration::from_millis(wait_ms.unsigned_abs().into());
        let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
        let (handle, b) = (self.handle.clone(), self.broker);
        loop {
            let changed = handle.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let result = handle.with(|n| n.brokers()[b as usize].apis.fetch(request));
            if result.record_bytes >= min_bytes || result.any_error || Instant::now() >= deadline {
                return result.response;
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn write(&mut self, frame: &[u8]) -> bool {
        self.stream.write_all(frame).await.is_ok()
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
