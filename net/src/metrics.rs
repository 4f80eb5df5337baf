//! `--metrics HOST:PORT`: the broker's numbers in Prometheus' text format, over HTTP.
//!
//! Every number comes from a counter kept where the event happens, never from the log: the
//! produce counters and the producer id count from the core ([`BrokerTopicStats`],
//! [`Broker::producer_id_count`](idempo_broker::Broker::producer_id_count)), log end offsets
//! from the core's partitions through the topic table, the connection counters from the
//! limits ([`crate::limits`]), the bytes and records sent to consumers from the server's
//! [`FetchCounters`]. A scrape takes a [`MetricsSnapshot`] under the same lock a request
//! takes (so it sees the core between two requests, never inside one), builds a registry of
//! the `prometheus` crate for it, and encodes that.
//!
//! Names: Kafka's own, as the Prometheus JMX exporter spells Kafka's MBeans
//! (`kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec` becomes
//! `kafka_server_brokertopicmetrics_messagesin_total`), where Kafka has the metric; `idempo_`
//! and Kafka's nearest name in the help text where it has none.
//!
//! | metric | type | labels | from |
//! |--------|------|--------|------|
//! | `kafka_server_replicamanager_produceridcount` | gauge | | producer ids with state, over all partitions (KIP-847) |
//! | `kafka_server_brokertopicmetrics_messagesin_total` | counter | | records appended |
//! | `kafka_server_brokertopicmetrics_bytesin_total` | counter | | bytes of batches appended |
//! | `kafka_server_brokertopicmetrics_bytesout_total` | counter | | record bytes sent to consumers |
//! | `idempo_records_out_total` | counter | | records sent to consumers |
//! | `kafka_server_brokertopicmetrics_failedproducerequests_total` | counter | | batches answered with an error |
//! | `idempo_duplicates_total` | counter | | retries answered with their original offsets |
//! | `kafka_network_requestmetrics_errors_total` | counter | `request="Produce"`, `error` | OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH answers |
//! | `kafka_log_log_logendoffset` | gauge | `topic`, `partition` | each partition's log end offset |
//! | `kafka_server_socketservermetrics_connection_count` | gauge | | connections open |
//! | `idempo_connections_accepted_total` | counter | | connections admitted |
//! | `idempo_connections_rejected_total` | counter | `reason` | connections closed on accept (`max_connections_per_ip`) |
//! | `idempo_connections_closed_total` | counter | `reason` | connections closed (`idle`, `read_timeout`, `client_closed`, ...) |
//! | `idempo_acceptor_waits_total` | counter | | times every slot was taken (Kafka: `AcceptorBlockedPercent`) |
//! | `kafka_network_socketserver_memorypoolused` | gauge | | request bytes granted now |
//! | `kafka_network_socketserver_memorypoolavailable` | gauge | | request bytes left in the pool |
//! | `idempo_request_memory_waits_total` | counter | | frames that waited for request memory |
//! | `idempo_group_members` | gauge | `group` | members of each consumer group |
//!
//! The HTTP side is hyper's HTTP/1.1 server: `GET /metrics` (or `/`) answered, anything else
//! 404, a request head larger than [`MAX_HTTP_REQUEST_BYTES`] or slower than
//! [`HTTP_READ_TIMEOUT_MS`] ends its connection.
//!
//! ## Differences from Kafka
//! - Kafka's `...PerSec` meters are rates with a count; we export the counts (`_total`),
//!   from which Prometheus computes rates.
//! - Broker-wide totals: Kafka also keeps one set per topic.

use crate::kafka_apis::KafkaApis;
use crate::limits::{ConnectionStats, PoolStats};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use idempo_broker::BrokerTopicStats;
use kafka_protocol::messages::FetchResponse;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, info};

/// Longest HTTP request head read before the connection is dropped.
pub const MAX_HTTP_REQUEST_BYTES: usize = 8 * 1024;

/// Longest wait for an HTTP request head.
pub const HTTP_READ_TIMEOUT_MS: u64 = 5_000;

/// Bytes and records of the Fetch answers written to consumers (Kafka counts `BytesOut` in
/// `KafkaApis` as it answers a fetch).
#[derive(Debug, Default)]
pub struct FetchCounters {
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

impl FetchCounters {
    /// Counts the record batches of one Fetch answer.
    pub fn record(&self, response: &FetchResponse) {
        for partition in response.responses.iter().flat_map(|t| &t.partitions) {
            if let Some(records) = &partition.records {
                self.bytes_out
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                self.records_out
                    .fetch_add(record_count(records), Ordering::Relaxed);
            }
        }
    }

    /// (bytes, records) sent so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.bytes_out.load(Ordering::Relaxed),
            self.records_out.load(Ordering::Relaxed),
        )
    }
}

/// Records in a run of RecordBatch v2 batches: the `records_count` field of each batch
/// header (bytes 57..61), batch after batch by `batch_length`. A truncated last batch (Fetch
/// may end inside one) is not counted.
pub fn record_count(batches: &[u8]) -> u64 {
    const LENGTH_AT: usize = 8;
    const COUNT_AT: usize = 57;
    let mut rest = batches;
    let mut records = 0;
    // Each batch takes at least 61 bytes, so this loop is bounded by the length.
    while let (Some(length), Some(count)) = (
        rest.get(LENGTH_AT..LENGTH_AT + 4),
        rest.get(COUNT_AT..COUNT_AT + 4),
    ) {
        let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
        let Some(total) = usize::try_from(length).ok().map(|l| l + LENGTH_AT + 4) else {
            break;
        };
        if total > rest.len() || total < COUNT_AT + 4 {
            break;
        }
        let count = i32::from_be_bytes(count.try_into().expect("4 bytes"));
        records += u64::try_from(count).unwrap_or(0);
        rest = &rest[total..];
    }
    records
}

/// The numbers of one scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// The core's produce counters.
    pub stats: BrokerTopicStats,
    /// Producer ids with state, over all partitions.
    pub producer_id_count: usize,
    /// (topic, partition, log end offset) of every partition.
    pub log_end_offsets: Vec<(String, i32, i64)>,
    /// The connection counters.
    pub connections: ConnectionStats,
    /// The request memory pool's counters.
    pub pool: PoolStats,
    /// Record bytes sent to consumers.
    pub bytes_out: u64,
    /// Records sent to consumers.
    pub records_out: u64,
    /// (group, members) of each consumer group: see [`group_members`].
    pub group_members: Vec<(String, usize)>,
}

impl MetricsSnapshot {
    /// Reads the core's side of the numbers (call it with the lock held).
    pub fn of_core(apis: &KafkaApis) -> MetricsSnapshot {
        let log_end_offsets = apis
            .topics
            .iter()
            .flat_map(|topic| {
                (0..topic.partition_count).filter_map(move |partition| {
                    let core = topic.core_partition(partition)?;
                    let leo = apis.broker.log_end_offset(core)?;
                    Some((topic.name.clone(), partition, leo))
                })
            })
            .collect();
        let (bytes_out, records_out) = apis.fetched.totals();
        MetricsSnapshot {
            stats: *apis.broker.stats(),
            bytes_out,
            records_out,
            producer_id_count: apis.broker.producer_id_count(),
            log_end_offsets,
            group_members: group_members(apis),
            ..MetricsSnapshot::default()
        }
    }
}

/// The members of each consumer group the coordinator knows, for `idempo_group_members`
/// (read under the lock, like every other number here).
pub fn group_members(apis: &KafkaApis) -> Vec<(String, usize)> {
    let coordinator = &apis.groups.coordinator;
    coordinator
        .list_groups(None)
        .into_iter()
        .map(|listing| {
            let members = coordinator
                .group(&listing.group_id)
                .map_or(0, |g| g.members.len());
            (listing.group_id, members)
        })
        .collect()
}

fn counter(registry: &Registry, name: &str, help: &str, value: u64) -> prometheus::Result<()> {
    let c = IntCounter::new(name, help)?;
    c.inc_by(value);
    registry.register(Box::new(c))
}

fn gauge(registry: &Registry, name: &str, help: &str, value: i64) -> prometheus::Result<()> {
    let g = IntGauge::new(name, help)?;
    g.set(value);
    registry.register(Box::new(g))
}

fn counter_vec(
    registry: &Registry,
    (name, help, labels): (&str, &str, &[&str]),
    values: &[(Vec<&str>, u64)],
) -> prometheus::Result<()> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    for (label_values, value) in values {
        c.with_label_values(label_values).inc_by(*value);
    }
    registry.register(Box::new(c))
}

/// The Prometheus text of one snapshot.
pub fn render(s: &MetricsSnapshot) -> prometheus::Result<String> {
    let r = Registry::new();
    produce_metrics(&r, s)?;
    connection_metrics(&r, s)?;
    let leo = IntGaugeVec::new(
        Opts::new(
            "kafka_log_log_logendoffset",
            "Log end offset of each partition (Kafka's kafka.log:type=Log,name=LogEndOffset).",
        ),
        &["topic", "partition"],
    )?;
    for (topic, partition, offset) in &s.log_end_offsets {
        leo.with_label_values(&[topic.as_str(), &partition.to_string()])
            .set(*offset);
    }
    r.register(Box::new(leo))?;
    let groups = IntGaugeVec::new(
        Opts::new("idempo_group_members", "Members of each consumer group."),
        &["group"],
    )?;
    for (group, members) in &s.group_members {
        groups
            .with_label_values(&[group.as_str()])
            .set(i64::try_from(*members).unwrap_or(i64::MAX));
    }
    r.register(Box::new(groups))?;
    let mut text = Vec::new();
    prometheus::TextEncoder::new().encode(&r.gather(), &mut text)?;
    String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

fn produce_metrics(r: &Registry, s: &MetricsSnapshot) -> prometheus::Result<()> {
    let st = &s.stats;
    gauge(
        r,
        "kafka_server_replicamanager_produceridcount",
        "Producer ids with state on this broker, over all partitions (Kafka's ProducerIdCount, KIP-847).",
        i64::try_from(s.producer_id_count).unwrap_or(i64::MAX),
    )?;
    counter(
        r,
        "kafka_server_brokertopicmetrics_messagesin_total",
        "Records appended (Kafka's MessagesInPerSec).",
        st.messages_in,
    )?;
    counter(
        r,
        "kafka_server_brokertopicmetrics_bytesin_total",
        "Bytes of the batches appended (Kafka's BytesInPerSec).",
        st.bytes_in,
    )?;
    counter(
        r,
        "kafka_server_brokertopicmetrics_bytesout_total",
        "Record bytes sent to consumers (Kafka's BytesOutPerSec).",
        s.bytes_out,
    )?;
    counter(
        r,
        "idempo_records_out_total",
        "Records sent to consumers (Kafka has no such meter).",
        s.records_out,
    )?;
    counter(
        r,
        "kafka_server_brokertopicmetrics_failedproducerequests_total",
        "Batches answered with an error (Kafka's FailedProduceRequestsPerSec, per batch).",
        st.failed_produce,
    )?;
    counter(
        r,
        "idempo_duplicates_total",
        "Retried batches answered with their original offsets, appended once (Kafka counts none).",
        st.duplicates,
    )?;
    counter_vec(
        r,
        (
            "kafka_network_requestmetrics_errors_total",
            "Errors answered, by request and error (Kafka's RequestMetrics ErrorsPerSec).",
            &["request", "error"],
        ),
        &[
            (
                vec!["Produce", "OUT_OF_ORDER_SEQUENCE_NUMBER"],
                st.out_of_order_sequence,
            ),
            (
                vec!["Produce", "INVALID_PRODUCER_EPOCH"],
                st.invalid_producer_epoch,
            ),
        ],
    )
}

fn connection_metrics(r: &Registry, s: &MetricsSnapshot) -> prometheus::Result<()> {
    let c = &s.connections;
    gauge(
        r,
        "kafka_server_socketservermetrics_connection_count",
        "Connections open (Kafka's socket-server-metrics connection-count).",
        i64::try_from(c.open).unwrap_or(i64::MAX),
    )?;
    counter(
        r,
        "idempo_connections_accepted_total",
        "Connections accepted and admitted (Kafka's connection-creation-total).",
        c.opened_total,
    )?;
    let rejected: Vec<_> = c
        .rejected_total
        .iter()
        .map(|(r, n)| (vec![*r], *n))
        .collect();
    counter_vec(
        r,
        (
            "idempo_connections_rejected_total",
            "Connections closed on accept, by reason.",
            &["reason"],
        ),
        &rejected,
    )?;
    let closed: Vec<_> = c.closed_total.iter().map(|(r, n)| (vec![*r], *n)).collect();
    counter_vec(
        r,
        (
            "idempo_connections_closed_total",
            "Connections closed, by reason (Kafka's connection-close-total, without reasons).",
            &["reason"],
        ),
        &closed,
    )?;
    counter(
        r,
        "idempo_acceptor_waits_total",
        "Times the acceptor found max.connections open and waited for a slot (Kafka: AcceptorBlockedPercent).",
        c.acceptor_waits_total,
    )?;
    let p = &s.pool;
    gauge(
        r,
        "kafka_network_socketserver_memorypoolused",
        "Request bytes granted now (Kafka's MemoryPoolUsed).",
        i64::try_from(p.in_use_bytes).unwrap_or(i64::MAX),
    )?;
    gauge(
        r,
        "kafka_network_socketserver_memorypoolavailable",
        "Request bytes left in the pool (Kafka's MemoryPoolAvailable).",
        i64::try_from(p.capacity_bytes - p.in_use_bytes).unwrap_or(i64::MAX),
    )?;
    counter(
        r,
        "idempo_request_memory_waits_total",
        "Frames that waited for request memory (queued.max.request.bytes reached).",
        p.waits_total,
    )?;
    Ok(())
}

/// Serves `GET /metrics` on `listener` over HTTP/1.1 (hyper) until the task is dropped, each
/// scrape answered with `render(snapshot())`. A request head larger than
/// [`MAX_HTTP_REQUEST_BYTES`] or slower than [`HTTP_READ_TIMEOUT_MS`] ends its connection.
pub async fn serve(
    listener: TcpListener,
    snapshot: impl Fn() -> MetricsSnapshot + Send + Sync + 'static,
) {
    let snapshot = Arc::new(snapshot);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let answer = answer(&request, &*snapshot);
                debug!(%peer, status = answer.status().as_u16(), "answered metrics request");
                std::future::ready(Ok::<_, Infallible>(answer))
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HTTP_READ_TIMEOUT_MS))
                .max_buf_size(MAX_HTTP_REQUEST_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                info!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

/// The answer to one HTTP request: the metrics for `GET /metrics` (or `/`), else 404.
fn answer(
    request: &Request<Incoming>,
    snapshot: &impl Fn() -> MetricsSnapshot,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics" | "/") => match render(&snapshot()) {
            Ok(text) => (StatusCode::OK, prometheus::TEXT_FORMAT, text),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode metrics: {e}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try GET /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

    fn batch(records: usize) -> Vec<u8> {
        RecordBatch::idempotent(
            ProducerId(1),
            ProducerEpoch(0),
            Sequence(0),
            0,
            (0..records)
                .map(|i| Record::with_value(i32::try_from(i).expect("few"), "v"))
                .collect(),
        )
        .to_bytes()
        .to_vec()
    }

    #[test]
    fn records_are_counted_batch_by_batch_and_a_cut_batch_is_not() {
        let mut bytes = batch(3);
        bytes.extend(batch(2));
        assert_eq!(record_count(&bytes), 5);
        let cut = batch(4);
        bytes.extend_from_slice(&cut[..cut.len() - 1]);
        assert_eq!(record_count(&bytes), 5);
        assert_eq!(record_count(&[]), 0);
        assert_eq!(
            record_count(&[0xff; 70]),
            0,
            "a negative length stops the walk"
        );
    }

    #[test]
    fn a_snapshot_renders_with_kafka_names_and_labels() {
        let snapshot = MetricsSnapshot {
            stats: BrokerTopicStats {
                duplicates: 3,
                out_of_order_sequence: 2,
                ..BrokerTopicStats::default()
            },
            producer_id_count: 4,
            log_end_offsets: vec![("orders".to_string(), 1, 42)],
            group_members: vec![("g".to_string(), 2)],
            ..MetricsSnapshot::default()
        };
        let text = render(&snapshot).expect("renders");
        for line in [
            "idempo_duplicates_total 3",
            "kafka_server_replicamanager_produceridcount 4",
            "kafka_log_log_logendoffset{partition=\"1\",topic=\"orders\"} 42",
            "kafka_network_requestmetrics_errors_total{error=\"OUT_OF_ORDER_SEQUENCE_NUMBER\",request=\"Produce\"} 2",
            "idempo_group_members{group=\"g\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
