//! The cluster's admin endpoint (`idempo-broker --brokers 3 --admin HOST:PORT`): faults on
//! demand and the cluster's state, over HTTP/1.1 (hyper), in JSON.
//!
//! | request | what it does |
//! |---|---|
//! | `GET /cluster` | brokers (state, fenced), and per partition its leader, leader epoch, replicas, ISR, high watermark and each replica's log end offset and high watermark |
//! | `POST /brokers/{id}/crash` | the broker crashes inside the process ([`ClusterNode::crash`](crate::cluster_node::ClusterNode::crash)): connections closed, unsynced tail lost on memory storage |
//! | `POST /brokers/{id}/start` | the crashed broker starts again and registers |
//! | `POST /brokers/{id}/isolate?ms=N` | the broker receives nothing for N ms |
//! | `POST /partitions/{topic}/{partition}/elect?leader=ID&unclean=true\|false` | an election on request (Kafka's ElectLeaders): preferred, or unclean |
//!
//! Success is `200` with a JSON body; a bad request `400`, an unknown broker, topic or path
//! `404`, an operation that does not apply (crash a broker that is down) `409`, each with
//! `{"error": "..."}`.

use crate::cluster_node::ClusterError;
use crate::cluster_server::ClusterHandle;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, info};

/// A request head slower than this ends its connection.
const HTTP_READ_TIMEOUT_MS: u64 = 10_000;

/// Longest isolation accepted (a day), so that a typo cannot cut a broker off forever.
pub const ISOLATE_MS_MAX: i64 = 86_400_000;

/// Serves the admin endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handle: Arc<ClusterHandle>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (status, body) = route(&handle, request.method(), request.uri());
                info!(%peer, method = %request.method(), path = request.uri().path(), status = status.as_u16(), "admin request");
                std::future::ready(Ok::<_, Infallible>(json_response(status, &body)))
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HTTP_READ_TIMEOUT_MS))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, serde_json::Value) {
    (status, serde_json::json!({ "error": message.into() }))
}

fn from_cluster(e: &ClusterError) -> (StatusCode, serde_json::Value) {
    let status = match e {
        ClusterError::UnknownBroker(_) | ClusterError::UnknownPartition(_) => StatusCode::NOT_FOUND,
        ClusterError::Conflict(_) => StatusCode::CONFLICT,
        ClusterError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// The value of `key` in the query string, if present.
fn query<'a>(uri: &'a hyper::Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Dispatches one admin request: the status and the JSON body.
pub fn route(
    handle: &ClusterHandle,
    method: &Method,
    uri: &hyper::Uri,
) -> (StatusCode, serde_json::Value) {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["cluster"]) => (StatusCode::OK, handle.describe()),
        (&Method::POST, ["brokers", id, action]) => broker_action(handle, id, action, uri),
        (&Method::POST, ["partitions", topic, partition, "elect"]) => {
            elect(handle, topic, partition, uri)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!(
                "no {method} {}: try GET /cluster, POST /brokers/ID/crash|start|isolate?ms=N, \
                 POST /partitions/TOPIC/PARTITION/elect?unclean=false",
                uri.path()
            ),
        ),
    }
}

fn broker_action(
    handle: &ClusterHandle,
    id: &str,
    action: &str,
    uri: &hyper::Uri,
) -> (StatusCode, serde_json::Value) {
    let Ok(b) = id.parse::<i32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("broker id {id:?} is not a number"),
        );
    };
    let done = match action {
        "crash" => handle
            .crash(b)
            .map(|lost| serde_json::json!({ "broker": b, "state": "down", "lost_batches": lost })),
        "start" => handle
            .start(b)
            .map(|()| serde_json::json!({ "broker": b, "state": "up" })),
        "isolate" => {
            let ms = match query(uri, "ms").map(str::parse::<i64>) {
                Some(Ok(ms)) if (1..=ISOLATE_MS_MAX).contains(&ms) => ms,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("isolate needs ?ms=N with N in 1..={ISOLATE_MS_MAX}"),
                    );
                }
            };
            handle
                .isolate(b, ms)
                .map(|()| serde_json::json!({ "broker": b, "state": "isolated", "ms": ms }))
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no broker action {other:?}: crash, start or isolate"),
            );
        }
    };
    match done {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => from_cluster(&e),
    }
}

fn elect(
    handle: &ClusterHandle,
    topic: &str,
    partition: &str,
    uri: &hyper::Uri,
) -> (StatusCode, serde_json::Value) {
    let Ok(partition) = partition.parse::<i32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("partition {partition:?} is not a number"),
        );
    };
    let leader = match query(uri, "leader").map(str::parse::<i32>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "leader=ID needs a broker id"),
    };
    let unclean = match query(uri, "unclean") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unclean={other:?}: true or false"),
            );
        }
    };
    match handle.elect(topic, partition, leader, unclean) {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => from_cluster(&e),
    }
}
