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
//! What ends a connection, each with a log line: the client closing it; a frame larger than
//! `max_frame_bytes`; a frame we cannot decode or do not serve; a failed `acks=0` produce
//! (Kafka closes so that the client notices); shutdown. None of these touches another
//! connection or the core. A connection beyond `max_connections` is closed as soon as it is
//! accepted.
//!
//! Shutdown: the future given to [`Server::run`] completes (the binary wires it to Ctrl-C and
//! SIGTERM); the listener closes, each connection finishes the request in hand and closes,
//! and after [`ServerConfig::shutdown_grace_ms`] any connection still open is dropped.

use crate::frames::{self, ReadEnd};
use crate::groups::{Client, EncodableBody, GroupReply, GroupRequest};
use crate::kafka_apis::{FrontEndSettings, KafkaApis, api_versions_response};
use crate::kafka_codec::{self, CodecError, DEFAULT_MAX_FRAME_BYTES, Decoded, RequestBody};
use crate::topics::TopicTableError;
use bytes::{Bytes, BytesMut};
use idempo_broker::{
    Broker, BrokerConfig, ConfigError, FileStorage, FileStorageError, GroupConfig, NodeStorage,
    OpenError, SimDisk, SyncPolicy,
};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Encodable;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
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
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace_ms: u64,
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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace_ms: 5_000,
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
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, not yet running, Kafka-protocol server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    shutdown_grace: Duration,
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    apis: Mutex<KafkaApis>,
    /// Woken after every append, for Fetch requests waiting for `min_bytes`.
    appended: Notify,
    max_frame_bytes: usize,
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

impl Server {
    /// Checks the settings, opens (and recovers) the core's storage and binds the listener.
    pub async fn bind(config: ServerConfig) -> Result<Server, StartError> {
        if config.default_partitions < 1 {
            return Err(StartError::Setting(format!(
                "default partition count {} must be at least 1",
                config.default_partitions
            )));
        }
        if config.max_connections < 1 {
            return Err(StartError::Setting(
                "max connections must be at least 1".into(),
            ));
        }
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
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                apis: Mutex::new(apis),
                appended: Notify::new(),
                max_frame_bytes: config.max_frame_bytes,
            }),
            max_connections: config.max_connections,
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        })
    }

    /// The address bound (with the real port when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address Metadata hands to clients.
    pub fn advertised(&self) -> Advertised {
        self.shared.with_apis(|apis| Advertised {
            host: apis.settings.advertised_host.clone(),
            port: apis.settings.advertised_port,
        })
    }

    /// Serves until `shutdown` completes, then closes every connection (see the module doc).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let shared = &self.shared;
        let max_connections = self.max_connections;
        let storage_ticker = tokio::spawn(tick_storage(shared.clone()));
        let group_ticker = tokio::spawn(tick_groups(shared.clone(), stop_rx.clone()));
        let mut connections = crate::process::accept_until(
            &self.listener,
            shutdown,
            "broker",
            |stream, peer, connections| {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    warn!(%peer, limit = max_connections, "closed connection: too many connections");
                    return;
                };
                let connection = Connection {
                    stream,
                    peer,
                    buf: BytesMut::new(),
                    shared: shared.clone(),
                    stop: stop_rx.clone(),
                };
                connections.spawn(
                    async move {
                        debug!("accepted connection");
                        connection.run().await;
                        drop(permit);
                    }
                    .instrument(info_span!("connection", %peer)),
                );
            },
        )
        .await;
        info!(
            open = connections.len(),
            "shutting down: stopped accepting connections"
        );
        drop(self.listener);
        // Receivers see the change even if some were created after this value was sent.
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.shutdown_grace, async {
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
        storage_ticker.abort();
        group_ticker.abort();
        // Kafka's clean shutdown: every log synced, a snapshot of every partition.
        match shared.with_apis(|apis| apis.broker.shutdown()) {
            Ok(()) => info!("stopped (logs synced, producer state snapshotted)"),
            Err(e) => error!(error = %e, "stopped, but the final sync failed"),
        }
        info!("stopped");
    }
}

/// Whether a connection goes on after a request.
enum Flow {
    Continue,
    Close,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    buf: BytesMut,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self) {
        loop {
            if *self.stop.borrow() {
                debug!("closed connection: shutting down");
                return;
            }
            let mut stop = self.stop.clone();
            let frame = tokio::select! {
                _ = stop.changed() => {
                    debug!("closed connection: shutting down");
                    return;
                }
                frame = self.read_frame() => frame,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(ReadEnd::Closed) => {
                    debug!("client closed the connection");
                    return;
                }
                Err(ReadEnd::ClosedMidFrame { buffered }) => {
                    info!(buffered, "client closed the connection inside a frame");
                    return;
                }
                Err(ReadEnd::TooLarge { announced }) => {
                    warn!(
                        announced,
                        max_frame_bytes = self.shared.max_frame_bytes,
                        "closed connection: frame larger than the limit"
                    );
                    return;
                }
                Err(ReadEnd::Io(e)) => {
                    info!(error = %e, "closed connection: read failed");
                    return;
                }
            };
            if let Flow::Close = self.serve(frame).await {
                return;
            }
        }
    }

    /// Reads one whole request frame ([`frames::read_frame`]) and returns it without its
    /// length prefix.
    async fn read_frame(&mut self) -> Result<Bytes, ReadEnd> {
        let frame =
            frames::read_frame(&mut self.stream, &mut self.buf, self.shared.max_frame_bytes)
                .await?;
        Ok(frames::body(&frame))
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
                let body = crate::kafka_apis::unsupported_api_versions_response();
                let frame = kafka_codec::encode_frame(0, correlation_id, |buf| body.encode(buf, 0));
                match frame {
                    Ok(frame) => self.write(&frame).await,
                    Err(e) => {
                        error!(error = %e, "closed connection: cannot encode the answer");
                        Flow::Close
                    }
                }
            }
            Err(e) => {
                let reason = match &e {
                    CodecError::TooShort { .. } | CodecError::Malformed { .. } => {
                        "malformed request"
                    }
                    CodecError::UnknownApiKey { .. } => "unknown api key",
                    CodecError::UnsupportedApi { .. } => "api or version not served",
                };
                warn!(error = %e, "closed connection: {reason}");
                Flow::Close
            }
        }
    }

    async fn handle(&mut self, api_key: ApiKey, header: RequestHeader, body: RequestBody) -> Flow {
        let version = header.request_api_version;
        let correlation_id = header.correlation_id;
        let shared = self.shared.clone();
        let frame = match body {
            RequestBody::ApiVersions(_) => kafka_codec::encode_response(
                api_key,
                version,
                correlation_id,
                &api_versions_response(),
            ),
            RequestBody::Metadata(request) => {
                let response = shared.with_apis(|apis| apis.metadata(&request, version));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::InitProducerId(request) => {
                let response = shared.with_apis(|apis| apis.init_producer_id(&request));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::Produce(request) => {
                let result = shared.with_apis(|apis| apis.produce(&request, version));
                if result.appended > 0 {
                    shared.appended.notify_waiters();
                }
                if request.acks == 0 {
                    if result.failed > 0 {
                        warn!(
                            failed = result.failed,
                            "closed connection: an acks=0 produce failed, and closing is the only way to tell the client"
                        );
                        return Flow::Close;
                    }
                    debug!("sent no answer (acks=0)");
                    return Flow::Continue;
                }
                kafka_codec::encode_response(api_key, version, correlation_id, &result.response)
            }
            RequestBody::Fetch(request) => {
                let response = self.fetch(&request).await;
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::ListOffsets(request) => {
                let response = shared.with_apis(|apis| apis.list_offsets(&request, version));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::CreateTopics(request) => {
                let response = shared.with_apis(|apis| apis.create_topics(&request, version));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::DeleteTopics(request) => {
                let response = shared.with_apis(|apis| apis.delete_topics(&request, version));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::DeleteRecords(request) => {
                let response = shared.with_apis(|apis| apis.delete_records(&request));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::DescribeConfigs(request) => {
                let response = shared.with_apis(|apis| apis.describe_configs(&request, version));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::CreatePartitions(request) => {
                let response = shared.with_apis(|apis| apis.create_partitions(&request));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::IncrementalAlterConfigs(request) => {
                let response = shared.with_apis(|apis| apis.incremental_alter_configs(&request));
                kafka_codec::encode_response(api_key, version, correlation_id, &response)
            }
            RequestBody::Group(request) => match self.group(api_key, &header, &request).await {
                Some(frame) => frame,
                None => return Flow::Close,
            },
        };
        match frame {
            Ok(frame) => {
                let flow = self.write(&frame).await;
                debug!(response_bytes = frame.len(), "answered request");
                flow
            }
            Err(e) => {
                error!(error = %e, "closed connection: cannot encode the answer");
                Flow::Close
            }
        }
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
        let shared = self.shared.clone();
        loop {
            // Register for the wake-up *before* looking, so an append in between is not lost.
            let appended = shared.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let result = shared.with_apis(|apis| apis.fetch(request));
            if result.record_bytes >= min_bytes || result.any_error || Instant::now() >= deadline {
                debug!(record_bytes = result.record_bytes, "fetched");
                return result.response;
            }
            tokio::select! {
                () = &mut appended => {}
                () = tokio::time::sleep_until(deadline) => {}
                _ = self.stop.changed() => {}
            }
            if *self.stop.borrow() {
                return shared.with_apis(|apis| apis.fetch(request)).response;
            }
        }
    }

    /// Serves a consumer-group request. A JoinGroup or SyncGroup the coordinator parks keeps
    /// the connection waiting (it reads nothing meanwhile, like Kafka's muted channel) until
    /// the coordinator completes it; `None` when shutdown comes first.
    async fn group(
        &mut self,
        api_key: ApiKey,
        header: &RequestHeader,
        request: &GroupRequest,
    ) -> Option<Result<Bytes, kafka_codec::EncodeError>> {
        let version = header.request_api_version;
        let correlation_id = header.correlation_id;
        let client = Client {
            client_id: header
                .client_id
                .as_ref()
                .map_or_else(String::new, |c| c.to_string()),
            client_host: format!("/{}", self.peer.ip()),
        };
        let reply = self.shared.with_apis(|apis| {
            apis.group_request(request, api_key, version, correlation_id, &client)
        });
        let encode = |body: &dyn EncodableBody| body.encode_frame(api_key, version, correlation_id);
        match reply {
            Err(e) => Some(Err(e)),
            Ok(GroupReply::Now(frame)) => Some(Ok(frame)),
            Ok(GroupReply::Join(receiver)) => {
                debug!("parked JoinGroup until the rebalance completes");
                self.parked(receiver).await.map(|r| encode(&r))
            }
            Ok(GroupReply::Sync(receiver)) => {
                debug!("parked SyncGroup until the leader's assignment");
                self.parked(receiver).await.map(|r| encode(&r))
            }
        }
    }

    async fn parked<T>(&mut self, receiver: tokio::sync::oneshot::Receiver<T>) -> Option<T> {
        tokio::select! {
            answer = receiver => answer.ok(),
            _ = self.stop.changed() => {
                debug!("closed connection: shutting down with a parked group request");
                None
            }
        }
    }

    async fn write(&mut self, frame: &[u8]) -> Flow {
        match self.stream.write_all(frame).await {
            Ok(()) => Flow::Continue,
            Err(e) => {
                info!(error = %e, "closed connection: write failed");
                Flow::Close
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
