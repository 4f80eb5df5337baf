//! `idempo-broker`: idempo's broker core on a TCP port, speaking Kafka's wire protocol.
//!
//! ```text
//! idempo-broker                                   # 127.0.0.1:9092, topics auto-created, in memory only
//! idempo-broker --data-dir /var/lib/idempo        # durable: survives kill -9 and restarts
//! idempo-broker --listen 127.0.0.1:19092 --advertise 127.0.0.1:29092 --partitions 3
//! RUST_LOG=idempo_net=debug idempo-broker         # one line per batch with the verdict
//! idempo-broker --brokers 3 --admin 127.0.0.1:8080 # brokers 0,1,2 on 9092..9094, replicated
//! ```
//!
//! Logs go to stderr (`RUST_LOG` filters them; the default is `info`).

use clap::{CommandFactory, Parser, ValueEnum};
use idempo_broker::{BrokerConfig, GroupConfig, SyncPolicy};
use idempo_net::cluster_node::ClusterSettings;
use idempo_net::cluster_server::ClusterServer;
use idempo_net::limits::{
    DEFAULT_CONNECTIONS_MAX_IDLE_MS, DEFAULT_QUEUED_MAX_REQUEST_BYTES,
    DEFAULT_REQUEST_READ_TIMEOUT_MS, LimitsConfig,
};
use idempo_net::server::DEFAULT_MAX_CONNECTIONS;
use idempo_net::{Advertised, DEFAULT_MAX_FRAME_BYTES, Server, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::{error, info};

/// Serve idempo's broker core over Kafka's wire protocol (ApiVersions, Metadata,
/// InitProducerId, Produce, Fetch, ListOffsets, topic admin and the consumer-group APIs),
/// so that real idempotent producers can write to it and consumers can read back, in groups
/// or not.
///
/// Without --data-dir the broker keeps data in memory only: topics, logs, producer ids
/// and offsets are lost when it stops.
#[derive(Parser, Debug)]
#[command(name = "idempo-broker", version)]
struct Args {
    /// Address to listen on. Loopback by default; give another address to expose it. With
    /// --brokers N: broker 0's address, the others on the next ports (port 0: any free
    /// port each), or give --listen once per broker.
    #[arg(long, default_value = "127.0.0.1:9092", action = clap::ArgAction::Append)]
    listen: Vec<SocketAddr>,
    /// Brokers in this process, with node ids 0..N, each on its own port with its own
    /// storage (--data-dir DIR/broker-N), replicating through one controller: leaders,
    /// followers, ISR, high watermark, elections (see docs/BROKER.md, "A cluster in one
    /// process"). 1 (the default) is the one-broker server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=64))]
    brokers: i32,
    /// With --brokers: replicas of every partition (default.replication.factor), at most
    /// --brokers. Default: --brokers, at most 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    replication_factor: Option<u16>,
    /// min.insync.replicas: an acks=all produce is refused with NOT_ENOUGH_REPLICAS while
    /// the ISR is smaller.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    min_insync_replicas: u16,
    /// With --brokers: broker.session.timeout.ms, how long a silent (crashed) broker keeps
    /// its leaderships before the controller fences it and elects others.
    #[arg(long, value_name = "MS", default_value_t = idempo_broker::DEFAULT_BROKER_SESSION_TIMEOUT_MS, value_parser = clap::value_parser!(i64).range(1..))]
    broker_session_timeout_ms: i64,
    /// replica.lag.time.max.ms: a follower not caught up for this long leaves the ISR.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(i64).range(1..))]
    replica_lag_time_max_ms: i64,
    /// unclean.leader.election.enable: when no ISR member is live, elect any live replica
    /// (losing what it lacks) rather than leave the partition offline.
    #[arg(long)]
    unclean_leader_election: bool,
    /// With --brokers: serve the admin endpoint (JSON over HTTP) at HOST:PORT: GET
    /// /cluster, POST /brokers/ID/crash|start|isolate?ms=N, POST
    /// /partitions/TOPIC/P/elect?unclean=false.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<SocketAddr>,
    /// HOST:PORT that Metadata tells clients to connect to (put a proxy in front by
    /// advertising the proxy). Defaults to the address listened on. With --brokers N:
    /// broker 0's, the others on the next ports, or give it once per broker.
    #[arg(long, value_name = "HOST:PORT", action = clap::ArgAction::Append)]
    advertise: Vec<Advertised>,
    /// Partitions of a topic created on first use (Kafka's num.partitions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Do not create unknown topics on Metadata or Produce (answer
    /// UNKNOWN_TOPIC_OR_PARTITION instead).
    #[arg(long)]
    no_auto_create_topics: bool,
    /// Largest request frame accepted; a larger one closes the connection. The default is
    /// Kafka's socket.request.max.bytes, 100 MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Connections open at once (Kafka's max.connections). With that many open, new
    /// connections wait to be accepted until one closes (idle ones close after
    /// --connections-max-idle-ms).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    max_connections: usize,
    /// Connections open at once from one address (Kafka's max.connections.per.ip); one more
    /// is closed as soon as it is accepted. Unlimited by default.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_connections_per_ip: Option<usize>,
    /// Close a connection that sends no request for this long (Kafka's
    /// connections.max.idle.ms), freeing its slot under --max-connections.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_CONNECTIONS_MAX_IDLE_MS, value_parser = clap::value_parser!(u64).range(1..))]
    connections_max_idle_ms: u64,
    /// Close a connection whose request has begun to arrive but is not complete this long
    /// after its first byte (a stalled or slow-loris client). Kafka has no such setting; the
    /// default is a client's own request.timeout.ms, after which it has given up anyway.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_REQUEST_READ_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    request_read_timeout_ms: u64,
    /// Bytes of requests being read, all connections together (Kafka's
    /// queued.max.request.bytes): a connection whose announced frame does not fit waits,
    /// unread, until others are served. At least --max-frame-bytes. Default 200 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_QUEUED_MAX_REQUEST_BYTES, value_parser = at_least_one)]
    queued_max_request_bytes: usize,
    /// Batches remembered per producer per partition for deduplication (Kafka: 5).
    #[arg(long, default_value_t = 5)]
    dedup_window: usize,
    /// Deduplicate by producer id and sequence (on, as Kafka), or append every valid batch
    /// (off, to show what idempotence prevents).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    idempotence: Switch,
    /// Total partitions over all topics (bounds memory against hostile requests).
    #[arg(long, default_value_t = 10_000)]
    max_partitions: i32,
    /// log.message.timestamp.after.max.ms: how far ahead of the broker clock a record may be
    /// stamped before its batch is refused with INVALID_TIMESTAMP (Kafka 4.0: one hour);
    /// `off` for no check.
    #[arg(long, value_name = "MS|off", default_value = "3600000", value_parser = idempo_broker::parse_timestamp_after_max_ms)]
    log_message_timestamp_after_max_ms: i64,
    /// log.message.timestamp.before.max.ms: how far behind the broker clock a record may be
    /// stamped before its batch is refused with INVALID_TIMESTAMP (KIP-937; Kafka's default:
    /// no check, `off`). A topic's message.timestamp.before.max.ms overrides it.
    #[arg(long, value_name = "MS|off", default_value = "off", value_parser = idempo_broker::parse_timestamp_after_max_ms)]
    log_message_timestamp_before_max_ms: i64,
    /// group.initial.rebalance.delay.ms: how long the first rebalance of an empty consumer
    /// group waits for more members to join (extended while they keep coming). Kafka's
    /// default; tests use a few ms.
    #[arg(long, default_value_t = idempo_broker::group_coordinator::DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS, value_parser = clap::value_parser!(i64).range(0..))]
    group_initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms: the shortest session.timeout.ms a group member may ask
    /// for (shorter: INVALID_SESSION_TIMEOUT).
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(i32).range(1..))]
    group_min_session_timeout_ms: i32,
    /// Serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (producer ids
    /// tracked, duplicates, sequence and epoch errors, bytes and records in and out, log end
    /// offsets, connections). Off by default. With --brokers N: broker 0's, each other
    /// broker's on the next ports.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    /// message.max.bytes: the largest record batch accepted, and the most its records may
    /// expand to when compressed (a decompression bomb is refused at this bound with
    /// MESSAGE_TOO_LARGE). Kafka's default: 1048588.
    #[arg(long, value_name = "BYTES", default_value_t = 1_048_588, value_parser = clap::value_parser!(u32).range(1..))]
    message_max_bytes: u32,
    /// Cluster id reported in Metadata.
    #[arg(long, default_value = "idempo")]
    cluster_id: String,
    /// Keep segments, producer-state snapshots, the producer-id block, the topic table and
    /// committed offsets in DIR, and recover them at start-up (CRC check, torn-tail
    /// truncation, newest valid snapshot, replay). Without it the broker keeps data in
    /// memory only, lost when it stops. One broker per directory (a lock file).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When appends are fsynced (with --data-dir). A kill -9 loses nothing in any mode:
    /// every append was written to the OS. A power loss or kernel crash loses what was not
    /// synced: every-append (the default) loses nothing acknowledged; interval:MS loses up
    /// to MS of acknowledged appends; never (Kafka's default) loses everything since the
    /// last clean shutdown.
    #[arg(long, value_name = "every-append|interval:MS|never", default_value = "every-append", value_parser = idempo_sim::config::parse_sync)]
    sync: SyncPolicy,
}

/// A count of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Args {
    fn server_config(self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            listen: self.listen[0],
            advertise: self.advertise.first().cloned(),
            cluster_id: self.cluster_id,
            default_partitions: self.partitions,
            auto_create_topics: !self.no_auto_create_topics,
            max_frame_bytes: self.max_frame_bytes,
            metrics: self.metrics,
            limits: LimitsConfig {
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip.unwrap_or(usize::MAX),
                connections_max_idle_ms: self.connections_max_idle_ms,
                request_read_timeout_ms: self.request_read_timeout_ms,
                queued_max_request_bytes: self.queued_max_request_bytes,
            },
            broker: BrokerConfig {
                idempotence: self.idempotence == Switch::On,
                dedup_window: self.dedup_window,
                max_partitions: self.max_partitions,
                log_message_timestamp_after_max_ms: self.log_message_timestamp_after_max_ms,
                log_message_timestamp_before_max_ms: self.log_message_timestamp_before_max_ms,
                sync_policy: self.sync,
                max_message_bytes: self.message_max_bytes as usize,
                min_insync_replicas: usize::from(self.min_insync_replicas),
                replica_lag_time_max_ms: self.replica_lag_time_max_ms,
                ..defaults.broker.clone()
            },
            data_dir: self.data_dir,
            group: GroupConfig {
                group_initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
                group_min_session_timeout_ms: self.group_min_session_timeout_ms,
                ..defaults.group.clone()
            },
            ..defaults
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    idempo_net::process::init_logging();
    let args = Args::parse();
    if args.queued_max_request_bytes < args.max_frame_bytes {
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "--queued-max-request-bytes ({}) must be at least --max-frame-bytes ({}), \
                     or a frame of that size could never be read",
                    args.queued_max_request_bytes, args.max_frame_bytes
                ),
            )
            .exit();
    }
    if args.brokers > 1 || args.admin.is_some() {
        return run_cluster(args).await;
    }
    if args.listen.len() > 1 {
        usage_error("--listen is given once per broker: more than once needs --brokers");
    }
    if args.advertise.len() > 1 {
        usage_error("--advertise is given once per broker: more than once needs --brokers");
    }
    let config = args.server_config();
    let server = match Server::bind(config.clone()).await {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            eprintln!("idempo-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listening = server
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    info!(
        listening,
        advertised = %server.advertised(),
        partitions = config.default_partitions,
        auto_create_topics = config.auto_create_topics,
        idempotence = config.broker.idempotence,
        dedup_window = config.broker.dedup_window,
        max_frame_bytes = config.max_frame_bytes,
        max_connections = config.limits.max_connections,
        connections_max_idle_ms = config.limits.connections_max_idle_ms,
        request_read_timeout_ms = config.limits.request_read_timeout_ms,
        queued_max_request_bytes = config.limits.queued_max_request_bytes,
        data_dir = config.data_dir.as_ref().map_or_else(
            || "none: in memory only".to_string(),
            |d| d.display().to_string()
        ),
        sync = %idempo_sim::config::sync_name(config.broker.sync_policy),
        "idempo-broker ready"
    );
    server.run(idempo_net::process::shutdown_signal()).await;
    ExitCode::SUCCESS
}

fn usage_error(message: &str) -> ! {
    Args::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// The listening address of each broker: the ones given, or broker 0's and the next ports.
fn cluster_listen(listen: &[SocketAddr], brokers: i32) -> Vec<SocketAddr> {
    if listen.len() == brokers as usize {
        return listen.to_vec();
    }
    if listen.len() != 1 {
        usage_error(&format!(
            "--listen is given once (broker 0, the others on the next ports) or once per broker ({brokers}), not {} times",
            listen.len()
        ));
    }
    let first = listen[0];
    (0..brokers as u16)
        .map(|b| {
            let port = match first.port() {
                0 => Some(0),
                p => p.checked_add(b),
            };
            match port {
                Some(port) => SocketAddr::new(first.ip(), port),
                None => usage_error("--listen: the brokers' ports run past 65535"),
            }
        })
        .collect()
}

/// `--brokers N`: a cluster in this process ([`ClusterServer`]).
async fn run_cluster(args: Args) -> ExitCode {
    let brokers = args.brokers;
    let advertise = match args.advertise.len() {
        n if n == brokers as usize && n > 1 => args.advertise.clone(),
        0 | 1 => Vec::new(),
        n => usage_error(&format!(
            "--advertise is given once (broker 0, the others on the next ports) or once per broker ({brokers}), not {n} times"
        )),
    };
    let replication_factor = args
        .replication_factor
        .map_or_else(|| brokers.min(3) as usize, usize::from);
    if replication_factor > brokers as usize {
        usage_error(&format!(
            "--replication-factor {replication_factor} is more than --brokers {brokers}"
        ));
    }
    let settings = ClusterSettings {
        brokers,
        replication_factor,
        unclean_leader_election: args.unclean_leader_election,
        broker_session_timeout_ms: args.broker_session_timeout_ms,
    };
    let listen = cluster_listen(&args.listen, brokers);
    let admin = args.admin;
    let config = args.server_config();
    let bound = if advertise.is_empty() {
        ClusterServer::bind(config.clone(), settings.clone(), listen, admin).await
    } else {
        ClusterServer::bind_advertised(config.clone(), settings.clone(), listen, advertise, admin)
            .await
    };
    let server = match bound {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            eprintln!("idempo-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs: Vec<String> = server.addrs().iter().map(ToString::to_string).collect();
    info!(
        brokers,
        listening = ?addrs,
        admin = ?server.admin_addr(),
        metrics = ?server.metrics_addrs(),
        replication_factor,
        min_insync_replicas = config.broker.min_insync_replicas,
        broker_session_timeout_ms = settings.broker_session_timeout_ms,
        partitions = config.default_partitions,
        data_dir = config.data_dir.as_ref().map_or_else(
            || "none: in memory only".to_string(),
            |d| d.display().to_string()
        ),
        sync = %idempo_sim::config::sync_name(config.broker.sync_policy),
        "idempo-broker cluster ready"
    );
    server.run(idempo_net::process::shutdown_signal()).await;
    ExitCode::SUCCESS
}
