//! Cluster faults over TCP: the simulator's `--leader-kills` and `--isolations`, drawn from
//! the seed exactly as the simulator draws them, injected into a running cluster through its
//! admin endpoint (`idempo-broker --brokers N --admin HOST:PORT`, [`crate::admin_http`]), the
//! same HTTP endpoint users call by hand.
//!
//! # The schedule
//!
//! [`schedule`] takes the simulator's own fault plan ([`FaultPlan::random`]) for the run's
//! flags and keeps its leader kills and isolations: which partition's leader dies and for how
//! long, which broker is cut off and for how long, and at which moment, all from the seed.
//! The same seed and flags give the same schedule, line for line, in the simulator and over
//! TCP. What differs is the clock the moments are read on:
//!
//! ```text
//! fault        moment (after-appends=K)               action over HTTP
//! leader-kill  the simulator: K batches appended;      GET /cluster: the partition's leader
//!              over TCP: K batches with an outcome     now; POST /brokers/{it}/crash; after
//!              (the harness cannot count a real        down-ms, POST /brokers/{it}/start
//!              broker's appends)
//! isolation    the same                                POST /brokers/{broker}/isolate?ms=
//!                                                      duration-ms
//! ```
//!
//! As in the simulator, a leader kill of a partition that has no leader, or whose leader is
//! not up, does nothing; an isolation of a broker that is down is refused by the endpoint
//! (`409`) and does nothing. A fault whose moment never comes (the run ended first) is
//! reported as not reached. The broker a leader kill hits, and the wall-clock times, depend
//! on timing and are reported next to the schedule, not part of it.
//!
//! Time is real: down times and isolations last the drawn number of milliseconds (up to
//! twice `--broker-session-timeout-ms`, and twice the larger of that and
//! `--replica-lag-time-max-ms`, as in the simulator), so a run lasts at least as long as its
//! longest fault. [`inject`] ends once every crashed broker has been started again and every
//! isolation has healed, so that the log is read from a whole cluster.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use idempo_sim::SimConfig;
use idempo_sim::plan::{Fault, FaultPlan};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// Longest one admin request may take.
pub const ADMIN_TIMEOUT_MS: u64 = 10_000;

/// Pause between two reads of `GET /cluster` while waiting for the cluster to settle.
const SETTLE_POLL_MS: u64 = 100;

/// The cluster faults of `config`'s fault plan that go through the admin endpoint: its
/// leader kills and isolations, by moment (then plan order).
///
/// # Examples
///
/// ```
/// use idempo_net::cluster_faults::schedule;
/// use idempo_sim::SimConfig;
///
/// let config = SimConfig { brokers: 3, leader_kills: 2, isolations: 1, ..SimConfig::default() };
/// let faults = schedule(&config);
/// assert_eq!(faults.len(), 3);
/// assert_eq!(faults, schedule(&config), "drawn from the seed");
/// ```
pub fn schedule(config: &SimConfig) -> Vec<Fault> {
    let mut plan = FaultPlan::random(config);
    let mut faults: Vec<Fault> = plan
        .broker_faults_due(u64::MAX)
        .into_iter()
        .filter(|f| matches!(f, Fault::LeaderKill { .. } | Fault::Isolation { .. }))
        .collect();
    faults.sort_by_key(moment);
    faults
}

/// The moment of a scheduled fault: after how many batches.
fn moment(fault: &Fault) -> u64 {
    match fault {
        Fault::LeaderKill { after_appends, .. } | Fault::Isolation { after_appends, .. } => {
            *after_appends
        }
        _ => 0,
    }
}

/// What became of one scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The fault, as scheduled.
    pub fault: Fault,
    /// Milliseconds after the start of the run it was acted on; `None` if never.
    pub at_ms: Option<u64>,
    /// What happened, in words (`crashed broker 1; started 4211 ms later`).
    pub outcome: String,
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at_ms {
            Some(ms) => write!(f, "{}  -> at {ms} ms: {}", self.fault, self.outcome),
            None => write!(f, "{}  -> {}", self.fault, self.outcome),
        }
    }
}

/// Why an admin request failed.
#[derive(Debug)]
pub enum AdminError {
    /// No TCP connection, or no HTTP exchange.
    Connect(String),
    /// No answer within [`ADMIN_TIMEOUT_MS`].
    Timeout,
    /// The body is not JSON.
    Json(serde_json::Error),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Connect(why) => write!(f, "admin endpoint: {why}"),
            AdminError::Timeout => {
                write!(f, "admin endpoint: no answer within {ADMIN_TIMEOUT_MS} ms")
            }
            AdminError::Json(e) => write!(f, "admin endpoint: the answer is not JSON: {e}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// A client of the cluster's admin endpoint: one HTTP/1.1 request per connection.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    addr: SocketAddr,
}

impl Admin {
    /// The endpoint at `addr`.
    pub fn new(addr: SocketAddr) -> Admin {
        Admin { addr }
    }

    /// `GET /cluster`.
    pub async fn cluster(&self) -> Result<serde_json::Value, AdminError> {
        let (status, body) = self.request(Method::GET, "/cluster").await?;
        if status != StatusCode::OK {
            return Err(AdminError::Connect(format!(
                "GET /cluster: {status} {body}"
            )));
        }
        Ok(body)
    }

    /// One request: the status and the JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, serde_json::Value), AdminError> {
        let exchange = async {
            let fail = |e: &dyn fmt::Display| AdminError::Connect(format!("{method} {path}: {e}"));
            let stream = TcpStream::connect(self.addr).await.map_err(|e| fail(&e))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| fail(&e))?;
            let connection = tokio::spawn(connection);
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(hyper::header::HOST, self.addr.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|e| fail(&e))?;
            let response = sender.send_request(request).await.map_err(|e| fail(&e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(&e))?
                .to_bytes();
            connection.abort();
            let json = serde_json::from_slice(&body).map_err(AdminError::Json)?;
            Ok((status, json))
        };
        tokio::time::timeout(Duration::from_millis(ADMIN_TIMEOUT_MS), exchange)
            .await
            .map_err(|_| AdminError::Timeout)?
    }

    /// `POST path`: `Ok(body)` on 200, `Err(why)` with the endpoint's error otherwise.
    async fn post(&self, path: &str) -> Result<serde_json::Value, String> {
        match self.request(Method::POST, path).await {
            Ok((StatusCode::OK, body)) => Ok(body),
            Ok((status, body)) => Err(format!(
                "{path}: {} {}",
                status.as_u16(),
                body["error"].as_str().unwrap_or("")
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The leader of `topic`'s `partition` if it is up, from `GET /cluster`.
    async fn live_leader(&self, topic: &str, partition: i32) -> Result<Option<i32>, AdminError> {
        let cluster = self.cluster().await?;
        let leader = cluster["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["topic"] == topic && p["partition"] == partition)
            .and_then(|p| p["leader"].as_i64())
            .and_then(|l| i32::try_from(l).ok())
            .filter(|l| *l >= 0);
        let up = |b: i32| {
            cluster["brokers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["id"] == b && x["state"] == "up")
        };
        Ok(leader.filter(|&l| up(l)))
    }

    /// Waits until every partition of `topic` has a leader whose high watermark has reached
    /// its log end offset (everything appended is committed), at most `within`. Returns
    /// whether it did.
    pub async fn settle(&self, topic: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(cluster) = self.cluster().await
                && settled(&cluster, topic)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
        }
    }
}

/// Every partition of `topic` in a `GET /cluster` answer has a leader, every replica in
/// its ISR, and a high watermark at the leader's log end offset.
fn settled(cluster: &serde_json::Value, topic: &str) -> bool {
    let mut partitions = cluster["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["topic"] == topic)
        .peekable();
    partitions.peek().is_some()
        && partitions.all(|p| {
            let leader = p["leader"].as_i64().unwrap_or(-1);
            let full_isr =
                p["isr"].as_array().map(Vec::len) == p["replicas"].as_array().map(Vec::len);
            let leader_end = p["logs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["broker"].as_i64() == Some(leader))
                .and_then(|l| l["log_end_offset"].as_i64());
            leader >= 0
                && full_isr
                && leader_end.is_some()
                && leader_end == p["high_watermark"].as_i64()
        })
}

/// A crashed broker to start again.
struct Restart {
    at: Instant,
    broker: i32,
    /// Index of the fault in the report.
    index: usize,
}

/// Acts on `schedule` against the cluster behind `admin`, for `topic`, as `progress` (the
/// batches with an outcome so far) passes each fault's moment; `done` turns true when the
/// producers are done. Returns once every fault has been acted on or cannot be any more,
/// every crashed broker has been started again and every isolation has healed.
pub async fn inject(
    admin: Admin,
    topic: String,
    schedule: Vec<Fault>,
    mut progress: watch::Receiver<u64>,
    mut done: watch::Receiver<bool>,
    started: Instant,
) -> Vec<Injected> {
    let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut report: Vec<Injected> = Vec::with_capacity(schedule.len());
    let mut restarts: Vec<Restart> = Vec::new();
    let mut healed_by = Instant::now();
    for fault in schedule {
        let due = moment(&fault);
        loop {
            restart_due(&admin, &mut restarts, &mut report, started).await;
            if *progress.borrow() >= due || *done.borrow() {
                break;
            }
            let next_restart = restarts.iter().map(|r| r.at).min();
            tokio::select! {
                _ = progress.changed() => {}
                _ = done.changed() => {}
                _ = sleep_until_some(next_restart) => {}
            }
        }
        if *progress.borrow() < due {
            let outcome = format!(
                "not reached: the run ended after {} batches",
                *progress.borrow()
            );
            report.push(Injected {
                fault,
                at_ms: None,
                outcome,
            });
            continue;
        }
        let at_ms = Some(elapsed_ms());
        let outcome = match fault {
            Fault::LeaderKill {
                partition, down_ms, ..
            } => match admin.live_leader(&topic, partition).await {
                Ok(Some(broker)) => match admin.post(&format!("/brokers/{broker}/crash")).await {
                    Ok(body) => {
                        restarts.push(Restart {
                            at: Instant::now() + Duration::from_millis(down_ms),
                            broker,
                            index: report.len(),
                        });
                        let lost = body["lost_batches"].as_u64().unwrap_or(0);
                        info!(broker, partition, down_ms, "leader kill: crashed broker");
                        format!("crashed broker {broker} (the leader), {lost} batches lost")
                    }
                    Err(why) => format!("crash refused: {why}"),
                },
                Ok(None) => "nothing: the partition has no live leader".to_string(),
                Err(e) => format!("nothing: {e}"),
            },
            Fault::Isolation {
                broker,
                duration_ms,
                ..
            } => {
                let ms = duration_ms.max(1);
                match admin
                    .post(&format!("/brokers/{broker}/isolate?ms={ms}"))
                    .await
                {
                    Ok(_) => {
                        healed_by = healed_by.max(Instant::now() + Duration::from_millis(ms));
                        info!(broker, ms, "isolated broker");
                        format!("isolated broker {broker} for {ms} ms")
                    }
                    Err(why) => format!("nothing: {why}"),
                }
            }
            other => format!("not injected over TCP: {other}"),
        };
        report.push(Injected {
            fault,
            at_ms,
            outcome,
        });
    }
    while !restarts.is_empty() {
        let next = restarts.iter().map(|r| r.at).min();
        sleep_until_some(next).await;
        restart_due(&admin, &mut restarts, &mut report, started).await;
    }
    tokio::time::sleep_until(healed_by).await;
    report
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts every crashed broker whose down time is over.
async fn restart_due(
    admin: &Admin,
    restarts: &mut Vec<Restart>,
    report: &mut [Injected],
    started: Instant,
) {
    let now = Instant::now();
    let (due, later): (Vec<Restart>, Vec<Restart>) = std::mem::take(restarts)
        .into_iter()
        .partition(|r| r.at <= now);
    *restarts = later;
    for r in due {
        let after_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let note = match admin.post(&format!("/brokers/{}/start", r.broker)).await {
            Ok(_) => format!("; started again at {after_ms} ms"),
            Err(why) => {
                warn!(broker = r.broker, why, "could not start the broker again");
                format!("; start refused at {after_ms} ms: {why}")
            }
        };
        if let Some(entry) = report.get_mut(r.index) {
            entry.outcome.push_str(&note);
        }
    }
}
