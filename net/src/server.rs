//! The tokio TCP server: accepts connections, reads frames, serves them one at a time per
//! connection, writes the answers.
//!
//! All connections share one [`KafkaApis`] behind a mutex. A request holds the lock only
//! while the synchronous core runs (microseconds, never across an `.await`), so the core
//! sees requests one at a time, in the order they take the lock, exactly as the simulator
//! drives it. The core is told the wall-clock time before each request; it has no clock of
//! its own.
//!
//! Per connection, requests are answered in the order they arrive, as Kafka guarantees (a
//! client matches answers to requests by correlation id but relies on this order). A Fetch
//! that finds fewer than `min_bytes` waits, without the lock, for an append or for its
//! `max_wait_ms` (capped at [`MAX_FETCH_WAIT_MS`]).
//!
//! A JoinGroup or SyncGroup that the group coordinator cannot answer yet (a rebalance waits
//! for the other members) parks its connection, without the lock, on a channel that
//! [`crate::groups`] fills when the coordinator completes it; a task tells the core the time
//! every [`GROUP_TICK_MS`], so that rebalance delays and session timeouts fire without traffic.
//!
//! What ends a connection, each with a log line and a count by [`CloseReason`]: the client
//! closing it; no request for `connections_max_idle_ms`; a frame not complete within
//! `request_read_timeout_ms` of its first byte; a frame larger than `max_frame_bytes`; a
//! frame we cannot decode or do not serve; a failed `acks=0` produce (Kafka closes so that the
//! client notices); shutdown. None of these touches another connection or the core.
//!
//! The connection limits ([`crate::limits`] decides, this module applies): with
//! `max_connections` open the acceptor waits for a slot to free (new clients wait in the
//! listen backlog, as with Kafka), a connection from an address that has
//! `max_connections_per_ip` open is closed on accept, and a frame is read only once the
//! request memory pool (`queued_max_request_bytes`) has granted its announced size.
//!
//! Shutdown: the future given to [`Server::run`] completes (the binary wires it to Ctrl-C and
//! SIGTERM); the listener closes, each connection finishes the request in hand and closes,
//! and after [`ServerConfig::shutdown_grace_ms`] any connection still open is dropped.

use crate::dispatch::{Dispatched, Handled};
use crate::frames::{READ_CHUNK_BYTES, READ_MIN_BYTES};
use crate::groups::EncodableBody;
use crate::kafka_apis::{FrontEndSettings, KafkaApis};
use crate::kafka_codec::{
    self, CodecError, DEFAULT_MAX_FRAME_BYTES, Decoded, FrameCheck, LENGTH_PREFIX_BYTES,
    RequestBody,
};
use crate::limits::{
    CloseReason, ConnectionQuotas, ConnectionStats, Expiry, LimitsConfig, PoolStats, ReadClock,
    RequestMemoryPool,
};
use crate::metrics::MetricsSnapshot;
use crate::topics::TopicTableError;
use crate::unsupported_version::UnsupportedVersion;
use bytes::{Bytes, BytesMut};
use idempo_broker::{
    Broker, BrokerConfig, ConfigError, FileStorage, FileStorageError, GroupConfig, NodeStorage,
    OpenError, SimDisk, SyncPolicy,
};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// Longest a Fetch waits for `min_bytes`, whatever its `max_wait_ms` (clients send 500).
pub const MAX_FETCH_WAIT_MS: i32 = 10_000;

/// Default limit on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// A `HOST:PORT` that Metadata hands to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertised {
    /// Host name or address, as clients should dial it.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Why a value is not a `HOST:PORT` to advertise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvertisedError {
    /// No `:` separates a host from a port.
    NotHostPort(String),
    /// The host part is empty.
    NoHost(String),
    /// The port part is not a number in 0..=65535.
    NotAPort(String),
}

impl fmt::Display for AdvertisedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertisedError::NotHostPort(s) => write!(f, "{s:?} is not HOST:PORT"),
            AdvertisedError::NoHost(s) => write!(f, "{s:?} has no host"),
            AdvertisedError::NotAPort(port) => write!(f, "{port:?} is not a port number"),
        }
    }
}

impl std::error::Error for AdvertisedError {}

impl FromStr for Advertised {
    type Err = AdvertisedError;

    /// Parses `HOST:PORT` (an IPv6 host in brackets: `[::1]:9092`).
    fn from_str(s: &str) -> Result<Advertised, AdvertisedError> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| AdvertisedError::NotHostPort(s.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(AdvertisedError::NoHost(s.to_string()));
        }
        let port = port
            .parse()
            .map_err(|_| AdvertisedError::NotAPort(port.to_string()))?;
        Ok(Advertised {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Advertised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on (loopback unless asked otherwise).
    pub listen: SocketAddr,
    /// Address Metadata returns; `None` means the address actually bound (so port 0 works).
    pub advertise: Option<Advertised>,
    /// Cluster id in Metadata.
    pub cluster_id: String,
    /// Partitions of a topic created on first use.
    pub default_partitions: i32,
    /// Create topics on first use (Metadata or Produce).
    pub auto_create_topics: bool,
    /// Largest request frame accepted; a larger one closes the connection.
    pub max_frame_bytes: usize,
    /// Connection limits: slots, per address, idle and read timeouts, request memory.
    pub limits: LimitsConfig,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace_ms: u64,
    /// Where to serve Prometheus metrics over HTTP ([`crate::metrics`]); `None` for nowhere.
    pub metrics: Option<SocketAddr>,
    /// The core's settings (dedup window, idempotence, limits).
    pub broker: BrokerConfig,
    /// Where the broker keeps its files (`--data-dir`); `None` keeps everything in memory,
    /// lost when the process ends.
    pub data_dir: Option<PathBuf>,
    /// The group coordinator's settings (`group.initial.rebalance.delay.ms`, ...).
    pub group: GroupConfig,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertise: None,
            cluster_id: "idempo".to_string(),
            default_partitions: 1,
            auto_create_topics: true,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            limits: LimitsConfig::default(),
            shutdown_grace_ms: 5_000,
            metrics: None,
            broker: BrokerConfig {
                // Topics create partitions explicitly; the core never invents one.
                auto_create_partitions: false,
                ..BrokerConfig::default()
            },
            data_dir: None,
            group: GroupConfig::default(),
        }
    }
}

/// Why the server did not start.
#[derive(Debug)]
pub enum StartError {
    /// A core setting is invalid.
    Broker(ConfigError),
    /// A front-end setting is invalid.
    Setting(String),
    /// The listener could not be bound.
    Bind(io::Error),
    /// The data directory could not be opened (or another broker holds it).
    DataDir(FileStorageError),
    /// Recovery of the data directory failed.
    Recovery(OpenError),
    /// The topic table in the data directory could not be loaded.
    Topics(TopicTableError),
    /// The metrics endpoint could not be bound.
    Metrics(io::Error),
    /// The cluster's admin endpoint (`--admin`) could not be bound.
    Admin(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Broker(e) => write!(f, "invalid broker setting: {e}"),
            StartError::Setting(why) => write!(f, "invalid setting: {why}"),
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
            StartError::DataDir(e) => write!(f, "--data-dir: {e}"),
            StartError::Recovery(e) => write!(f, "--data-dir: {e}"),
            StartError::Topics(e) => write!(f, "--data-dir: {e}"),
            StartError::Metrics(e) => write!(f, "cannot serve metrics: {e}"),
            StartError::Admin(e) => write!(f, "cannot serve the admin endpoint: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, not yet running, Kafka-protocol server.
#[derive(Debug)]
pub struct Server {
    front: Front<Shared>,
    shutdown_grace: Duration,
    /// The metrics endpoint's listener, when asked for.
    metrics: Option<TcpListener>,
}

/// What a connection serves, through the one connection loop of this module: one broker
/// alone ([`Server`]), or one broker of a cluster ([`crate::cluster_server`]). Either way a
/// request goes through [`crate::dispatch::handle`], under the backend's lock.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Serves one decoded request from connection `connection` with the one dispatch, told
    /// the time first, and wakes the Fetch requests waiting for data if it may have brought
    /// some. `None`: the broker went away (crashed, cut off) before the request could be
    /// served, under the same lock; the connection closes unanswered.
    fn dispatch(
        &self,
        connection: u64,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
        client_host: &str,
    ) -> Option<Result<Dispatched, kafka_codec::EncodeError>>;

    /// Runs `f` on the broker's own front end, told the time first (a waiting Fetch).
    fn with_apis<R>(&self, f: impl FnOnce(&mut KafkaApis) -> R) -> R;

    /// Woken when data may have arrived, for Fetch requests waiting for `min_bytes`.
    fn appended(&self) -> &Notify;

    /// Largest request frame accepted.
    fn max_frame_bytes(&self) -> usize;

    /// Whether the broker serves a connection accepted now (a crashed broker does not).
    fn serving(&self) -> bool {
        true
    }

    /// Changes when the broker goes away (a crash or an isolation inside a cluster): its
    /// connections close, as a dead broker's would. `None`: never.
    fn gone(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// The one broker of a [`Server`]: its front end and core behind one lock.
#[derive(Debug)]
struct Shared {
    apis: Mutex<KafkaApis>,
    /// Woken after every append, for Fetch requests waiting for `min_bytes`.
    appended: Notify,
    max_frame_bytes: usize,
}

impl Backend for Shared {
    fn dispatch(
        &self,
        _connection: u64,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
        client_host: &str,
    ) -> Option<Result<Dispatched, kafka_codec::EncodeError>> {
        let dispatched = self.with_apis(|apis| apis.handle(api_key, header, body, client_host));
        if dispatched.as_ref().is_ok_and(|d| d.appended > 0) {
            self.appended.notify_waiters();
        }
        Some(dispatched)
    }

    fn with_apis<R>(&self, f: impl FnOnce(&mut KafkaApis) -> R) -> R {
        Shared::with_apis(self, f)
    }

    fn appended(&self) -> &Notify {
        &self.appended
    }

    fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Shared {
    /// Runs `f` on the core, told the time first.
    fn with_apis<R>(&self, f: impl FnOnce(&mut KafkaApis) -> R) -> R {
        // A panic while the lock was held is a bug already reported by its task; the state
        // it guards is still a valid broker, so go on with it.
        let mut apis = self.apis.lock().unwrap_or_else(PoisonError::into_inner);
        apis.advance_time(wall_clock_ms());
        f(&mut apis)
    }
}

/// Tells the core the time while no request does, so that `--sync interval:MS` syncs and
/// snapshots are taken on an idle broker too.
async fn tick_storage(shared: Arc<Shared>) {
    let period_ms = match shared.with_apis(|apis| apis.broker.config().sync_policy) {
        SyncPolicy::IntervalMs(ms) => ms.clamp(1, STORAGE_TICK_MS),
        SyncPolicy::EveryAppend | SyncPolicy::Never => STORAGE_TICK_MS,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms.unsigned_abs()));
    loop {
        tick.tick().await;
        shared.with_apis(|_| ());
    }
}

/// Longest the core goes without being told the time (its periodic syncs and snapshots).
const STORAGE_TICK_MS: i64 = 1_000;

fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens the core on its storage: the files of `data_dir`, recovered by the same code the
/// simulator's crashes run (segment scan, torn-tail truncation, newest valid snapshot,
/// replay, the producer-id block), or memory only.
fn open_broker(config: &ServerConfig) -> Result<Broker<NodeStorage>, StartError> {
    let storage = match &config.data_dir {
        Some(dir) => NodeStorage::Files(FileStorage::open(dir).map_err(StartError::DataDir)?),
        None => NodeStorage::Memory(SimDisk::new()),
    };
    let durable = storage.is_durable();
    let (broker, report) = Broker::open(config.broker.clone(), storage).map_err(|e| match e {
        OpenError::Config(e) => StartError::Broker(e),
        e => StartError::Recovery(e),
    })?;
    match &config.data_dir {
        Some(dir) => {
            for p in &report.partitions {
                let r = &p.recovery;
                if r.log.truncated_bytes > 0 || r.log.segments_removed > 0 || r.fell_back() {
                    warn!(
                        core_partition = p.partition,
                        truncated_bytes = r.log.truncated_bytes,
                        segments_removed = r.log.segments_removed,
                        snapshots_rejected = r.snapshots_rejected.len(),
                        "recovery repaired a partition"
                    );
                }
            }
            info!(
                data_dir = %dir.display(),
                partitions = report.partitions.len(),
                batches_replayed = report.partitions.iter().map(|p| p.recovery.replayed_batches).sum::<usize>(),
                producers = report.partitions.iter().map(|p| p.recovery.producers_recovered).sum::<usize>(),
                next_producer_id = report.next_producer_id.0,
                "recovered the data directory"
            );
        }
        None => {
            assert!(!durable, "no data dir, no files");
            warn!("no --data-dir: data is kept in memory only and lost when the broker stops");
        }
    }
    Ok(broker)
}

/// The settings every broker's server checks before it opens storage or binds: a default
/// partition count of at least 1, and connection limits that fit the frame size.
pub(crate) fn check_settings(config: &ServerConfig) -> Result<(), StartError> {
    if config.default_partitions < 1 {
        return Err(StartError::Setting(format!(
            "default partition count {} must be at least 1",
            config.default_partitions
        )));
    }
    config
        .limits
        .check(config.max_frame_bytes)
        .map_err(|e| StartError::Setting(e.to_string()))
}

impl Server {
    /// Checks the settings, opens (and recovers) the core's storage and binds the listener.
    pub async fn bind(config: ServerConfig) -> Result<Server, StartError> {
        check_settings(&config)?;
        // Recovery runs before the listener binds: clients connect to a recovered broker.
        let broker = open_broker(&config)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(StartError::Bind)?;
        let local = listener.local_addr().map_err(StartError::Bind)?;
        let advertised = config.advertise.clone().unwrap_or(Advertised {
            host: local.ip().to_string(),
            port: local.port(),
        });
        let settings = FrontEndSettings {
            advertised_host: advertised.host,
            advertised_port: advertised.port,
            cluster_id: config.cluster_id,
            default_partitions: config.default_partitions,
            auto_create_topics: config.auto_create_topics,
            group: config.group,
            member_id_seed: wall_clock_nanos(),
        };
        let mut apis = KafkaApis::new(broker, settings);
        apis.load_topics().map_err(StartError::Topics)?;
        if apis.broker.storage().is_durable() {
            info!(
                topics = apis.topics.iter().count(),
                "loaded the topic table"
            );
        }
        let shared = Arc::new(Shared {
            apis: Mutex::new(apis),
            appended: Notify::new(),
            max_frame_bytes: config.max_frame_bytes,
        });
        Ok(Server {
            front: Front::new(listener, shared, config.limits),
            metrics: match config.metrics {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(StartError::Metrics)?),
                None => None,
            },
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        })
    }

    /// The address bound (with the real port when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.front.listener.local_addr()
    }

    /// The address Metadata hands to clients.
    pub fn advertised(&self) -> Advertised {
        self.front.backend.with_apis(|apis| Advertised {
            host: apis.settings.advertised_host.clone(),
            port: apis.settings.advertised_port,
        })
    }

    /// Serves until `shutdown` completes, then closes every connection (see the module doc).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = self.front.backend.clone();
        let storage_ticker = tokio::spawn(tick_storage(shared.clone()));
        let group_ticker = tokio::spawn(tick_groups(shared.clone(), stop_rx.clone()));
        let metrics = self.serve_metrics();
        let connections = self.front.accept_until(shutdown, &stop_rx).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        drop(self.front);
        drain(connections, &stop_tx, self.shutdown_grace).await;
        storage_ticker.abort();
        group_ticker.abort();
        // Kafka's clean shutdown: every log synced, a snapshot of every partition.
        match shared.with_apis(|apis| apis.broker.shutdown()) {
            Ok(()) => info!("stopped (logs synced, producer state snapshotted)"),
            Err(e) => error!(error = %e, "stopped, but the final sync failed"),
        }
        info!("stopped");
    }

    /// The address the metrics endpoint listens on, if any (with the real port when asked
    /// for port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The numbers of a scrape: the core's under its lock, then the front end's.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        snapshot(&*self.front.backend, &self.front.limits)
    }

    fn serve_metrics(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let listener = self.metrics.take()?;
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "serving metrics at http://{addr}/metrics");
        }
        let (shared, limits) = (self.front.backend.clone(), self.front.limits.clone());
        Some(tokio::spawn(crate::metrics::serve(listener, move || {
            snapshot(&*shared, &limits)
        })))
    }

    /// The connection limits' counters, shared with the running server (for metrics and
    /// tests).
    pub fn limits(&self) -> Arc<ConnectionLimits> {
        self.front.limits.clone()
    }
}

/// Tells every connection to stop (each finishes the request in hand), waits up to `grace`
/// for them, then drops those still open.
pub(crate) async fn drain(
    mut connections: JoinSet<()>,
    stop: &watch::Sender<bool>,
    grace: Duration,
) {
    info!(
        open = connections.len(),
        "shutting down: stopped accepting connections"
    );
    // Receivers see the change even if some were created after this value was sent.
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            "dropped connections still open after the grace period"
        );
        connections.shutdown().await;
    }
}

/// One listener and the connections it accepts, under its own connection limits, each
/// served by the one connection loop against `backend`.
#[derive(Debug)]
pub(crate) struct Front<B> {
    listener: TcpListener,
    backend: Arc<B>,
    limits: Arc<ConnectionLimits>,
    /// Numbers the connections in accept order (keys the delayed answers of a cluster).
    accepted: std::sync::atomic::AtomicU64,
}

impl<B: Backend> Front<B> {
    /// A front for `listener` with its own connection limits.
    pub(crate) fn new(listener: TcpListener, backend: Arc<B>, limits: LimitsConfig) -> Front<B> {
        Front {
            listener,
            backend,
            limits: Arc::new(ConnectionLimits::new(limits)),
            accepted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The connection limits' counters.
    pub(crate) fn limits(&self) -> &Arc<ConnectionLimits> {
        &self.limits
    }

    /// Accepts connections until `shutdown` completes: only while a slot is free (Kafka's
    /// `waitForConnectionSlot`), closing at once one from an address over its quota.
    /// Finished tasks are reaped as they end, and a failed accept (typically out of file
    /// descriptors) backs off instead of spinning. Returns the connections still open.
    pub(crate) async fn accept_until(
        &self,
        shutdown: impl Future<Output = ()>,
        stop: &watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            if !self.limits.quotas().slot_available() {
                self.limits.quotas().acceptor_waited();
                let limit = self.limits.config.max_connections;
                info!(limit, "max connections open: waiting for one to close");
                loop {
                    tokio::select! {
                        () = &mut shutdown => return connections,
                        Some(done) = connections.join_next(), if !connections.is_empty() => {
                            log_task_end(done);
                        }
                        () = self.limits.slot_freed.notified() => {}
                    }
                    if self.limits.quotas().slot_available() {
                        break;
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => return connections,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    log_task_end(done);
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.admit(stream, peer, stop, &mut connections),
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// Takes a slot for an accepted connection and spawns its task, or closes it.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: &watch::Receiver<bool>,
        connections: &mut JoinSet<()>,
    ) {
        let ip = peer.ip();
        if !self.backend.serving() {
            debug!(%peer, "closed connection on accept: the broker is not up");
            return;
        }
        if let Err(rejected) = self.limits.quotas().open(ip) {
            warn!(%peer, reason = rejected.name(), "closed connection on accept: {rejected}");
            return;
        }
        let slot = Slot {
            limits: self.limits.clone(),
            ip,
            reason: CloseReason::Shutdown,
        };
        let connection = Connection {
            stream,
            peer,
            buf: BytesMut::new(),
            backend: self.backend.clone(),
            id: self
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stop: stop.clone(),
            gone: self.backend.gone(),
            clock: ReadClock::new(&self.limits.config, self.limits.now_ms()),
            limits: self.limits.clone(),
        };
        connections.spawn(
            async move {
                let mut slot = slot;
                debug!("accepted connection");
                slot.reason = connection.run().await;
            }
            .instrument(info_span!("connection", %peer)),
        );
    }
}

/// The numbers of a scrape of one broker: its core's under the lock, then its front end's.
pub(crate) fn snapshot(backend: &impl Backend, limits: &ConnectionLimits) -> MetricsSnapshot {
    let core = backend.with_apis(|apis| MetricsSnapshot::of_core(apis));
    MetricsSnapshot {
        connections: limits.connection_stats(),
        pool: limits.pool_stats(),
        ..core
    }
}

/// Logs an answer that does not encode and closes the connection.
fn encode_failed(e: &kafka_codec::EncodeError) -> Flow {
    error!(error = %e, "closed connection: cannot encode the answer");
    Flow::Close(CloseReason::Io)
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        error!(error = %e, "connection task failed");
    }
}

/// The connection limits of a running server: the decisions of [`crate::limits`] under a
/// lock each (held for a few instructions, never across an `.await`), and the wake-ups of
/// those waiting for a slot or for request memory.
#[derive(Debug)]
pub struct ConnectionLimits {
    config: LimitsConfig,
    quotas: Mutex<ConnectionQuotas>,
    pool: Mutex<RequestMemoryPool>,
    /// Woken when a connection gives its slot back (the acceptor waits on it).
    slot_freed: Notify,
    /// Woken when a frame gives its bytes back (connections waiting for a grant).
    memory_freed: Notify,
    /// Time zero of the read clocks.
    epoch: Instant,
}

impl ConnectionLimits {
    fn new(config: LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            config,
            quotas: Mutex::new(ConnectionQuotas::new(&config)),
            pool: Mutex::new(RequestMemoryPool::new(config.queued_max_request_bytes)),
            slot_freed: Notify::new(),
            memory_freed: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// The limits as configured.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// The connection counters now.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.quotas().stats()
    }

    /// The request memory pool's counters now.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool().stats()
    }

    // A panic while a lock was held is a bug already reported by its task; the counters it
    // guards are still consistent (each update is one step), so go on with them.
    fn quotas(&self) -> std::sync::MutexGuard<'_, ConnectionQuotas> {
        self.quotas.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, RequestMemoryPool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn instant_at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Waits until the pool grants `bytes` (backpressure: the caller reads nothing meanwhile).
    async fn allocate(self: &Arc<Self>, bytes: usize) -> Grant {
        let mut waiting: Option<PoolWait> = None;
        loop {
            // Register for the wake-up *before* asking, so a release in between is not lost.
            let freed = self.memory_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.pool().try_allocate(bytes) {
                return Grant {
                    limits: self.clone(),
                    bytes,
                };
            }
            if waiting.is_none() {
                self.pool().wait_started();
                waiting = Some(PoolWait(self.clone()));
                debug!(
                    bytes,
                    "waiting for request memory (queued max request bytes reached)"
                );
            }
            freed.await;
        }
    }
}

/// A connection's slot under the quotas, given back when its task ends, however it ends.
struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: std::net::IpAddr,
    reason: CloseReason,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.quotas().close(self.ip, self.reason);
        self.limits.slot_freed.notify_one();
    }
}

/// Bytes of the request memory pool held by one frame until it has been served.
struct Grant {
    limits: Arc<ConnectionLimits>,
    bytes: usize,
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.limits.pool().release(self.bytes);
        self.limits.memory_freed.notify_waiters();
    }
}

/// One frame waiting for a grant, counted while it waits (also when its connection closes).
struct PoolWait(Arc<ConnectionLimits>);

impl Drop for PoolWait {
    fn drop(&mut self) {
        self.0.pool().wait_ended();
    }
}

/// Whether a connection goes on after a request.
enum Flow {
    Continue,
    Close(CloseReason),
}

struct Connection<B> {
    stream: TcpStream,
    peer: SocketAddr,
    buf: BytesMut,
    backend: Arc<B>,
    /// This connection's number on its listener.
    id: u64,
    stop: watch::Receiver<bool>,
    /// Changes when the broker goes away ([`Backend::gone`]).
    gone: Option<watch::Receiver<u64>>,
    /// When this connection's read gives up (idle and read timeouts).
    clock: ReadClock,
    limits: Arc<ConnectionLimits>,
}

/// Completes when the broker behind `gone` goes away (or never, for `None`).
async fn broker_gone(gone: &mut Option<watch::Receiver<u64>>) {
    match gone {
        // An error is the cluster shutting down: gone too.
        Some(incarnation) => {
            let _ = incarnation.changed().await;
        }
        None => std::future::pending().await,
    }
}

impl<B: Backend> Connection<B> {
    /// Serves requests until the connection ends; says why it ended.
    async fn run(mut self) -> CloseReason {
        loop {
            if *self.stop.borrow() {
                debug!("closed connection: shutting down");
                return CloseReason::Shutdown;
            }
            let mut stop = self.stop.clone();
            let mut gone = self.gone.clone();
            let read = tokio::select! {
                _ = stop.changed() => {
                    debug!("closed connection: shutting down");
                    return CloseReason::Shutdown;
                }
                () = broker_gone(&mut gone) => {
                    info!("closed connection: the broker crashed or was cut off");
                    return CloseReason::Shutdown;
                }
                read = self.read_request() => read,
            };
            let (frame, grant) = match read {
                Ok(read) => read,
                Err(reason) => return reason,
            };
            let flow = self.serve(frame).await;
            drop(grant);
            let now_ms = self.limits.now_ms();
            self.clock.frame_done(now_ms, !self.buf.is_empty());
            if let Flow::Close(reason) = flow {
                return reason;
            }
        }
    }

    /// Reads one whole request frame and returns it without its length prefix, with the
    /// pool's grant for it. Check-then-parse as in [`crate::frames`]: nothing is reserved
    /// for the announced size until the pool has granted it, and the buffer grows only with
    /// the bytes that arrive. Gives up at the [`ReadClock`]'s deadline.
    async fn read_request(&mut self) -> Result<(Bytes, Grant), CloseReason> {
        let max_frame_bytes = self.backend.max_frame_bytes();
        let mut grant = None;
        loop {
            let check = kafka_codec::check_frame(&self.buf, max_frame_bytes);
            let announced = match check {
                FrameCheck::TooLarge { announced } => {
                    warn!(
                        announced,
                        max_frame_bytes, "closed connection: frame larger than the limit"
                    );
                    return Err(CloseReason::FrameTooLarge);
                }
                FrameCheck::Complete { frame_bytes } => Some(frame_bytes),
                FrameCheck::Incomplete { needed } => needed.map(|n| n - LENGTH_PREFIX_BYTES),
            };
            if let (Some(frame_bytes), None) = (announced, &grant) {
                grant = Some(self.limits.allocate(frame_bytes).await);
                self.clock.granted(self.limits.now_ms());
            }
            if let FrameCheck::Complete { frame_bytes } = check {
                let frame = self
                    .buf
                    .split_to(LENGTH_PREFIX_BYTES + frame_bytes)
                    .freeze();
                let grant = grant.expect("a complete frame was granted above");
                return Ok((frame.slice(LENGTH_PREFIX_BYTES..), grant));
            }
            let needed = announced.map_or(LENGTH_PREFIX_BYTES, |n| n + LENGTH_PREFIX_BYTES);
            self.read_more(needed - self.buf.len()).await?;
        }
    }

    /// Logs why a read gave up at its deadline, and says so.
    fn expired(&self, expiry: Expiry) -> CloseReason {
        let config = self.limits.config();
        let reason = expiry.close_reason();
        info!(
            buffered = self.buf.len(),
            connections_max_idle_ms = config.connections_max_idle_ms,
            request_read_timeout_ms = config.request_read_timeout_ms,
            reason = reason.name(),
            "closed connection: {}",
            match expiry {
                Expiry::Idle => "idle for connections.max.idle.ms",
                Expiry::ReadTimeout => "a request did not arrive whole within the read timeout",
            }
        );
        reason
    }

    /// Reads what arrives next (reserving at most [`READ_CHUNK_BYTES`] for it), until the
    /// read clock's deadline.
    async fn read_more(&mut self, missing: usize) -> Result<(), CloseReason> {
        self.buf
            .reserve(missing.clamp(READ_MIN_BYTES, READ_CHUNK_BYTES));
        let (deadline_ms, expiry) = self.clock.deadline_ms();
        if self.limits.now_ms() >= deadline_ms {
            return Err(self.expired(expiry));
        }
        // Bytes already there need no timer: arm one only when the read would wait.
        let read = match self.stream.try_read_buf(&mut self.buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::select! {
                read = self.stream.read_buf(&mut self.buf) => read,
                () = tokio::time::sleep_until(self.limits.instant_at(deadline_ms)) => {
                    return Err(self.expired(expiry));
                }
            },
            read => read,
        };
        match read {
            Ok(0) if self.buf.is_empty() => {
                debug!("client closed the connection");
                Err(CloseReason::ClientClosed)
            }
            Ok(0) => {
                info!(
                    buffered = self.buf.len(),
                    "client closed the connection inside a frame"
                );
                Err(CloseReason::ClientClosed)
            }
            Ok(_) => {
                self.clock
                    .bytes_arrived(self.limits.now_ms(), !self.buf.is_empty());
                Ok(())
            }
            Err(e) => {
                info!(error = %e, "closed connection: read failed");
                Err(CloseReason::Io)
            }
        }
    }

    async fn serve(&mut self, frame: Bytes) -> Flow {
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
                    client_id = header.client_id.as_ref().map_or("", |c| c.as_str()),
                );
                self.handle(api_key, header, *body).instrument(span).await
            }
            Ok(Decoded::UnsupportedApiVersions {
                api_version,
                correlation_id,
                client_id,
            }) => {
                let span = info_span!(
                    "request",
                    api = ?ApiKey::ApiVersions,
                    version = api_version,
                    correlation_id,
                    client_id = client_id.as_deref().unwrap_or(""),
                );
                let _entered = span.enter();
                info!("answered UNSUPPORTED_VERSION in the v0 format (KIP-511)");
                match crate::kafka_apis::unsupported_api_versions_frame(correlation_id) {
                    Ok(frame) => self.write(&frame).await,
                    Err(e) => encode_failed(&e),
                }
            }
            Ok(Decoded::UnsupportedVersion(request)) => self.unsupported_version(&request).await,
            Err(e) => {
                let reason = match &e {
                    CodecError::TooShort { .. } | CodecError::Malformed { .. } => {
                        "malformed request"
                    }
                    CodecError::UnknownApiKey { .. } => "unknown api key",
                    CodecError::UnsupportedApi { .. } => "api or version not served",
                };
                warn!(error = %e, "closed connection: {reason}");
                Flow::Close(CloseReason::BadRequest)
            }
        }
    }

    /// Answers UNSUPPORTED_VERSION in the request's header format, or closes for an API
    /// whose answer [`crate::unsupported_version`] cannot build.
    async fn unsupported_version(&mut self, request: &UnsupportedVersion) -> Flow {
        let span = info_span!(
            "request",
            api = ?request.api_key,
            version = request.api_version,
            correlation_id = request.correlation_id,
            client_id = request.client_id.as_deref().unwrap_or(""),
        );
        self.answer_unsupported(request).instrument(span).await
    }

    async fn answer_unsupported(&mut self, request: &UnsupportedVersion) -> Flow {
        match crate::unsupported_version::answer(request) {
            Some(Ok(frame)) => {
                info!(
                    answer_version = request.answer_version(),
                    "answered UNSUPPORTED_VERSION"
                );
                self.write(&frame).await
            }
            Some(Err(e)) => encode_failed(&e),
            None => {
                warn!(
                    "closed connection: version not served, and no UNSUPPORTED_VERSION answer for this api"
                );
                Flow::Close(CloseReason::BadRequest)
            }
        }
    }

    /// Serves one decoded request through the one dispatch ([`crate::dispatch::handle`], the
    /// dispatch the fuzz target runs too), then writes its answer, or waits for what it
    /// waits for.
    async fn handle(&mut self, api_key: ApiKey, header: RequestHeader, body: RequestBody) -> Flow {
        let client_host = format!("/{}", self.peer.ip());
        let dispatched = self
            .backend
            .dispatch(self.id, api_key, &header, body, &client_host);
        let handled = match dispatched {
            Some(Ok(dispatched)) => dispatched.handled,
            Some(Err(e)) => return encode_failed(&e),
            None => {
                info!("closed connection: the broker crashed or was cut off before serving it");
                return Flow::Close(CloseReason::Shutdown);
            }
        };
        let (version, correlation_id) = (header.request_api_version, header.correlation_id);
        let encode = |body: &dyn EncodableBody| body.encode_frame(api_key, version, correlation_id);
        let frame = match handled {
            Handled::Answer(frame) => frame,
            Handled::NoAnswer => {
                debug!("sent no answer (acks=0)");
                return Flow::Continue;
            }
            Handled::CloseAcksZeroFailure { failed } => {
                warn!(
                    failed,
                    "closed connection: an acks=0 produce failed, and closing is the only way to tell the client"
                );
                return Flow::Close(CloseReason::AcksZeroFailure);
            }
            Handled::ProduceWait(receiver) => {
                debug!("waiting for the high watermark (acks=all)");
                match self.parked(receiver).await.map(|r| encode(&r)) {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return encode_failed(&e),
                    // Shutdown, or the broker went away before the answer.
                    None => return Flow::Close(CloseReason::Shutdown),
                }
            }
            Handled::FetchWait(request) => {
                let response = self.fetch(&request).await;
                match encode(&response) {
                    Ok(frame) => frame,
                    Err(e) => return encode_failed(&e),
                }
            }
            Handled::JoinParked(receiver) => {
                debug!("parked JoinGroup until the rebalance completes");
                match self.parked(receiver).await.map(|r| encode(&r)) {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return encode_failed(&e),
                    // Shutdown while parked (or the coordinator dropped the answer).
                    None => return Flow::Close(CloseReason::Shutdown),
                }
            }
            Handled::SyncParked(receiver) => {
                debug!("parked SyncGroup until the leader's assignment");
                match self.parked(receiver).await.map(|r| encode(&r)) {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return encode_failed(&e),
                    None => return Flow::Close(CloseReason::Shutdown),
                }
            }
        };
        let flow = self.write(&frame).await;
        debug!(response_bytes = frame.len(), "answered request");
        flow
    }

    /// Serves a Fetch, waiting (without the lock) for an append while fewer than
    /// `min_bytes` are available, until `max_wait_ms` has passed or shutdown begins.
    async fn fetch(
        &mut self,
        request: &kafka_protocol::messages::FetchRequest,
    ) -> kafka_protocol::messages::FetchResponse {
        let wait_ms = request.max_wait_ms.clamp(0, MAX_FETCH_WAIT_MS);
        let deadline = Instant::now() + Duration::from_millis(wait_ms.unsigned_abs().into());
        let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
        let shared = self.backend.clone();
        loop {
            // Register for the wake-up *before* looking, so an append in between is not lost.
            let appended = shared.appended().notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let past_deadline = Instant::now() >= deadline;
            let (result, done) = shared.with_apis(|apis| {
                let result = apis.fetch(request);
                let done = result.record_bytes >= min_bytes || result.any_error || past_deadline;
                if done {
                    apis.fetched.record(&result.response);
                }
                (result, done)
            });
            if done {
                debug!(record_bytes = result.record_bytes, "fetched");
                return result.response;
            }
            let mut gone = self.gone.clone();
            let gone_now = tokio::select! {
                () = &mut appended => false,
                () = tokio::time::sleep_until(deadline) => false,
                _ = self.stop.changed() => false,
                () = broker_gone(&mut gone) => true,
            };
            if gone_now || *self.stop.borrow() {
                return shared.with_apis(|apis| {
                    let response = apis.fetch(request).response;
                    apis.fetched.record(&response);
                    response
                });
            }
        }
    }

    /// Waits for a parked answer; `None` on shutdown, when the broker goes away or when
    /// the answer is dropped.
    async fn parked<T>(&mut self, receiver: tokio::sync::oneshot::Receiver<T>) -> Option<T> {
        let mut gone = self.gone.clone();
        tokio::select! {
            answer = receiver => answer.ok(),
            _ = self.stop.changed() => {
                debug!("closed connection: shutting down with a parked request");
                None
            }
            () = broker_gone(&mut gone) => {
                info!("closed connection: the broker crashed or was cut off with a parked request");
                None
            }
        }
    }

    async fn write(&mut self, frame: &[u8]) -> Flow {
        match self.stream.write_all(frame).await {
            Ok(()) => Flow::Continue,
            Err(e) => {
                info!(error = %e, "closed connection: write failed");
                Flow::Close(CloseReason::Io)
            }
        }
    }
}

/// How often the group coordinator is told the time when no request arrives, so that
/// session timeouts and rebalance delays fire without traffic.
pub const GROUP_TICK_MS: u64 = 100;

/// Tells the core the time every [`GROUP_TICK_MS`] until shutdown (answers parked group
/// requests that the passing time completes).
async fn tick_groups(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(GROUP_TICK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => shared.with_apis(|_| ()),
            _ = stop.changed() => return,
        }
    }
}
