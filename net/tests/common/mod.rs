//! Helpers shared by the integration tests: the server in-process on 127.0.0.1:0 and a raw
//! Kafka client built on `kafka-protocol`'s client-side encoders. Each test binary uses a
//! subset of them.
#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use idempo_net::server::ConnectionLimits;
use idempo_net::{Server, ServerConfig};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
use kafka_protocol::messages::{RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down.
pub struct Running {
    pub addr: SocketAddr,
    /// The server's connection limits and their counters.
    pub limits: Arc<ConnectionLimits>,
    _stop: oneshot::Sender<()>,
}

pub async fn start(config: ServerConfig) -> Running {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..config
    };
    let server = Server::bind(config).await.expect("server starts");
    let addr = server.local_addr().expect("bound");
    let limits = server.limits();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        limits,
        _stop: stop,
    }
}

/// A raw Kafka client: one connection, requests answered in order.
pub struct Client {
    pub stream: TcpStream,
    pub next_correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connects"),
            next_correlation_id: 1,
        }
    }

    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (i32, Vec<u8>) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-test-client")))
            .encode(&mut buf, R::header_version(version))
            .expect("header encodes");
        request.encode(&mut buf, version).expect("request encodes");
        let len = i32::try_from(buf.len() - 4).expect("small");
        buf[..4].copy_from_slice(&len.to_be_bytes());
        (correlation_id, buf.to_vec())
    }

    /// Sends `request` without reading an answer; returns its correlation id.
    pub async fn send_only<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let (correlation_id, bytes) = self.frame(request, version);
        self.stream.write_all(&bytes).await.expect("writes");
        correlation_id
    }

    /// The next response, with its correlation id, or `None` when the connection closed.
    pub async fn receive<R: Request>(&mut self, version: i16) -> Option<(i32, R::Response)> {
        let mut frame = self.read_frame().await?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .expect("response header");
        let response = R::Response::decode(&mut frame, version).expect("response body");
        assert!(!frame.has_remaining(), "the whole frame was the response");
        Some((header.correlation_id, response))
    }

    /// Sends `request` and reads its answer, which must be the next frame.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation_id = self.send_only(request, version).await;
        let (answered, response) = self.receive::<R>(version).await.expect("an answer");
        assert_eq!(answered, correlation_id, "answers come in request order");
        response
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let len = self.stream.read_i32().await.ok()?;
            let mut frame = vec![0; usize::try_from(len).ok()?];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server answers or closes within 10 s")
    }

    pub async fn is_closed_by_server(&mut self) -> bool {
        self.read_frame().await.is_none()
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn batch(producer_id: i64, base_sequence: i32, values: &[&str]) -> Bytes {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record::with_value(i32::try_from(i).expect("few"), v.to_string()))
        .collect();
    RecordBatch::idempotent(
        ProducerId(producer_id),
        ProducerEpoch(0),
        Sequence(base_sequence),
        1_700_000_000_000,
        records,
    )
    .to_bytes()
}

/// Waits (polling, up to 10 s) until `done` holds, and panics naming `what` otherwise.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

/// An `idempo-broker` process, killed on drop.
pub struct BrokerProcess {
    child: std::process::Child,
    /// The address each broker listens on, in `--listen` order.
    pub addrs: Vec<SocketAddr>,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `idempo-broker ARGS --listen A1 .. --listen An` on `ports` free loopback ports and
/// returns once every one accepts connections and the process still runs.
///
/// A port seen free here can be taken before the broker binds it (another test's outgoing
/// connection gets its local port from the same range), and then the broker exits at start.
/// So a broker that exits is started again on fresh ports, up to 5 times; the last try's
/// stderr is in the panic message.
pub fn spawn_broker_process(ports: usize, args: &[&str]) -> BrokerProcess {
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "idempo-broker-{}-{}.log",
        std::process::id(),
        NEXT_LOG.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut exits = Vec::new();
    for _ in 0..5 {
        let addrs: Vec<SocketAddr> = (0..ports)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
            })
            .collect();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_idempo-broker"));
        command.args(args);
        for addr in &addrs {
            command.args(["--listen", &addr.to_string()]);
        }
        let stderr = std::fs::File::create(&log).expect("the broker's log file");
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("idempo-broker starts");
        let mut process = BrokerProcess { child, addrs };
        match wait_until_listening(&mut process) {
            Ok(()) => return process,
            Err(exit) => exits.push(exit),
        }
    }
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    panic!(
        "idempo-broker {args:?} did not start listening in 5 tries: {exits:?}; last stderr:\n{stderr}"
    );
}

static NEXT_LOG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits (up to 5 s) until every address accepts connections while the process runs; `Err`
/// with how the process ended if it exits first.
fn wait_until_listening(process: &mut BrokerProcess) -> Result<(), String> {
    for _ in 0..200 {
        let up = process
            .addrs
            .iter()
            .all(|addr| std::net::TcpStream::connect(addr).is_ok());
        match process.child.try_wait() {
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            _ if up => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
    Err("not listening within 5 s".to_string())
}
