//! idempo's producer over TCP: `idempo_net::client` against idempo's broker served in-process
//! on 127.0.0.1:0, with a tiny TCP relay in between when a test needs a lost answer, and the
//! `idempo-producer` binary end to end against a spawned `idempo-broker`.

use idempo_net::client::{ClientConfig, DeliveryError, FailureReason, KafkaProducer, KafkaReader};
use idempo_net::{Advertised, ServerConfig};
use idempo_protocol::{Record, RecordBatch};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{Running, start};

const TOPIC: &str = "orders";
/// Kafka's api key of Produce.
const PRODUCE: i16 = 0;
/// Kafka's api key of Metadata.
const METADATA: i16 = 3;

fn server_config(partitions: i32, idempotence: bool) -> ServerConfig {
    let mut config = ServerConfig {
        default_partitions: partitions,
        ..ServerConfig::default()
    };
    config.broker.idempotence = idempotence;
    config
}

/// Client settings for tests: short timeouts so that failures show quickly.
fn client_config(addr: SocketAddr) -> ClientConfig {
    let mut config = ClientConfig::new(addr.to_string(), TOPIC);
    config.client_id = "client-test".to_string();
    config.producer.request_timeout_ms = 5_000;
    config.producer.delivery_timeout_ms = 10_000;
    config.producer.retry_backoff_ms = 10;
    config.metadata_timeout_ms = 5_000;
    config
}

/// Records `first..first + count`, each value its index (big-endian `u32`).
fn records(first: u32, count: u32) -> Vec<Record> {
    (first..first + count)
        .map(|i| Record::with_value(0, i.to_be_bytes().to_vec()))
        .collect()
}

/// `(offset, index)` of every record of `partition`, in log order.
async fn read_back(config: &ClientConfig, partition: i32) -> Vec<(i64, u32)> {
    let mut reader = KafkaReader::connect(config)
        .await
        .expect("the reader connects");
    let batches: Vec<RecordBatch> = reader.read_partition(partition).await.expect("reads");
    batches
        .iter()
        .flat_map(|b| {
            b.records.iter().map(move |r| {
                let value = r.value.as_deref().expect("a value");
                let index = u32::from_be_bytes(value.try_into().expect("4 bytes"));
                (b.base_offset + i64::from(r.offset_delta), index)
            })
        })
        .collect()
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} within 10 s"))
}

// ----- a tiny relay that loses one answer (Produce, Metadata) -----------------------------

/// What the relay does to the first answer(s) of the api it loses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Drop the answer and close both connections (a lost ack with a cut connection).
    CloseInstead,
    /// Drop the answer and every later one, keeping the connection open (the client must
    /// time the request out).
    GoSilent,
}

/// A relay in front of the broker, which advertises the relay so every client connection
/// goes through it.
struct Relayed {
    relay: SocketAddr,
    _broker: Running,
    answers_lost: Arc<AtomicUsize>,
}

/// The relay loses the first `answers_to_lose` answers to requests of `api_key`.
async fn start_relayed(
    config: ServerConfig,
    fault: Fault,
    api_key: i16,
    answers_to_lose: usize,
) -> Relayed {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
    let relay = listener.local_addr().expect("bound");
    let broker = start(ServerConfig {
        advertise: Some(Advertised {
            host: relay.ip().to_string(),
            port: relay.port(),
        }),
        ..config
    })
    .await;
    let upstream = broker.addr;
    let budget = Arc::new(AtomicUsize::new(answers_to_lose));
    let lost = Arc::new(AtomicUsize::new(0));
    let (budget_, lost_) = (Arc::clone(&budget), Arc::clone(&lost));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (budget, lost) = (Arc::clone(&budget_), Arc::clone(&lost_));
            tokio::spawn(relay_connection(
                client,
                upstream,
                (fault, api_key),
                budget,
                lost,
            ));
        }
    });
    Relayed {
        relay,
        _broker: broker,
        answers_lost: lost,
    }
}

async fn read_raw_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let len = r.read_i32().await.ok()?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.resize(4 + usize::try_from(len).ok()?, 0);
    r.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

/// Forwards frames both ways, remembering each request's api key so that it knows which
/// answer answers `lost_api` (answers come in request order).
async fn relay_connection(
    client: TcpStream,
    upstream: SocketAddr,
    (fault, lost_api): (Fault, i16),
    budget: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let api_keys = Arc::new(Mutex::new(VecDeque::new()));
    let requests = Arc::clone(&api_keys);
    let up = tokio::spawn(async move {
        while let Some(frame) = read_raw_frame(&mut client_read).await {
            let api_key = i16::from_be_bytes([frame[4], frame[5]]);
            requests.lock().expect("not poisoned").push_back(api_key);
            if server_write.write_all(&frame).await.is_err() {
                return;
            }
        }
        // The client is gone: dropping `server_write` closes the broker side too.
    });
    let mut silent = false;
    while let Some(frame) = read_raw_frame(&mut server_read).await {
        let api_key = api_keys.lock().expect("not poisoned").pop_front();
        let lose = api_key == Some(lost_api)
            && budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if lose {
            lost.fetch_add(1, Ordering::SeqCst);
            match fault {
                Fault::CloseInstead => {
                    up.abort();
                    return; // both connections close as their halves drop
                }
                Fault::GoSilent => silent = true,
            }
        }
        if silent {
            continue;
        }
        if client_write.write_all(&frame).await.is_err() {
            break;
        }
    }
    up.abort();
}

// ----- the client --------------------------------------------------------------------------

#[tokio::test]
async fn records_sent_idempotently_are_read_back_exactly_once_and_in_order() {
    let broker = start(server_config(3, true)).await;
    let config = client_config(broker.addr);
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    assert_eq!(producer.partitions(), 3, "from Metadata");
    let mut deliveries = Vec::new();
    for b in 0..30u32 {
        let partition = (b % 3) as i32;
        let delivery = producer
            .send(partition, records(b * 10, 10))
            .await
            .expect("queued");
        deliveries.push((partition, delivery));
    }
    within("flush", producer.flush()).await.expect("flushed");
    for (b, (partition, delivery)) in deliveries.into_iter().enumerate() {
        // Flushed: every report is already there.
        let report = tokio::time::timeout(Duration::from_millis(50), delivery)
            .await
            .expect("flush waited for this batch")
            .expect("a report");
        assert_eq!(report.partition, partition);
        let delivered = report.result.expect("delivered");
        assert_eq!(delivered.base_offset, (b as i64 / 3) * 10, "batch {b}");
        assert_eq!(delivered.attempts, 1);
    }
    let stats = within("close", producer.close()).await.expect("closed");
    assert_eq!((stats.retries, stats.batches_delivered), (0, 30));
    assert_eq!(stats.producer_ids_assigned, 1);
    for partition in 0..3u32 {
        let read = read_back(&config, partition as i32).await;
        let expected: Vec<(i64, u32)> = (0..10u32)
            .flat_map(|k| {
                let b = k * 3 + partition;
                (0..10).map(move |r| (i64::from(k * 10 + r), b * 10 + r))
            })
            .collect();
        assert_eq!(
            read, expected,
            "partition {partition}: each record once, in order"
        );
    }
}

#[tokio::test]
async fn an_acks_zero_producer_closed_at_once_still_writes_every_batch_it_counted_sent() {
    let broker = start(server_config(1, false)).await;
    let mut config = client_config(broker.addr);
    config.producer.idempotence = false;
    config.producer.acks = 0;
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let mut deliveries = Vec::new();
    for b in 0..30u32 {
        deliveries.push(producer.send(0, records(b * 10, 10)).await.expect("queued"));
    }
    // acks=0: a batch is delivered once it is on its way, so close may come at once; it must
    // not drop the frames still queued for the socket.
    let stats = within("close", producer.close()).await.expect("closed");
    assert_eq!(stats.batches_delivered, 30);
    for delivery in deliveries {
        delivery.await.expect("a report").result.expect("delivered");
    }
    let expected: Vec<u32> = (0..300).collect();
    within("every record in the log", async {
        loop {
            let read: Vec<u32> = read_back(&config, 0)
                .await
                .into_iter()
                .map(|r| r.1)
                .collect();
            if read.len() >= expected.len() {
                assert_eq!(read, expected, "each record once, in order");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_lost_ack_is_retried_and_acknowledged_with_the_original_offset() {
    let relayed = start_relayed(server_config(1, true), Fault::CloseInstead, PRODUCE, 1).await;
    let config = client_config(relayed.relay);
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let first = producer.send(0, records(0, 5)).await.expect("queued");
    let report = within("the first report", first).await.expect("a report");
    let delivered = report.result.expect("delivered after a retry");
    assert_eq!(relayed.answers_lost.load(Ordering::SeqCst), 1);
    assert_eq!(
        delivered.attempts, 2,
        "the answer was lost, so the batch went twice"
    );
    assert_eq!(
        delivered.base_offset, 0,
        "the broker's dedup answered the original offset"
    );
    let second = producer.send(0, records(5, 5)).await.expect("queued");
    let delivered = within("the second report", second).await.expect("a report");
    assert_eq!(delivered.result.expect("delivered").base_offset, 5);
    let stats = within("close", producer.close()).await.expect("closed");
    assert_eq!(stats.connection_failures, 1);
    let read = read_back(&config, 0).await;
    let expected: Vec<(i64, u32)> = (0..10).map(|i| (i64::from(i), i)).collect();
    assert_eq!(read, expected, "appended once");
}

#[tokio::test]
async fn without_broker_dedup_a_lost_ack_writes_the_batch_twice() {
    let relayed = start_relayed(server_config(1, false), Fault::CloseInstead, PRODUCE, 1).await;
    let config = client_config(relayed.relay);
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let first = producer.send(0, records(0, 5)).await.expect("queued");
    let delivered = within("the report", first).await.expect("a report");
    let delivered = delivered.result.expect("delivered");
    assert_eq!(
        (delivered.attempts, delivered.base_offset),
        (2, 5),
        "the retry was appended again, after the first copy"
    );
    within("close", producer.close()).await.expect("closed");
    let indexes: Vec<u32> = read_back(&config, 0)
        .await
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_request_timeout_closes_the_connection_and_the_retry_is_deduplicated() {
    let relayed = start_relayed(server_config(1, true), Fault::GoSilent, PRODUCE, 1).await;
    let mut config = client_config(relayed.relay);
    config.producer.request_timeout_ms = 300;
    let producer = KafkaProducer::connect(config.clone())
        .await
        .expect("connects");
    let first = producer.send(0, records(0, 3)).await.expect("queued");
    let report = within("the report", first).await.expect("a report");
    let delivered = report.result.expect("delivered after the timeout");
    assert_eq!((delivered.attempts, delivered.base_offset), (2, 0));
    let stats = within("close", producer.close()).await.expect("closed");
    assert_eq!(stats.request_timeouts, 1);
    let read = read_back(&config, 0).await;
    assert_eq!(read, [(0, 0), (1, 1), (2, 2)]);
}

#[tokio::test]
async fn a_batch_fails_at_its_delivery_timeout_when_the_broker_is_gone() {
    let broker = start(server_config(1, true)).await;
    let mut config = client_config(broker.addr);
    config.producer.request_timeout_ms = 200;
    config.producer.delivery_timeout_ms = 600;
    let producer = KafkaProducer::connect(config).await.expect("connects");
    drop(broker);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    let delivery = producer.send(0, records(0, 1)).await.expect("queued");
    let report = within("the report", delivery).await.expect("a report");
    let error = report.result.expect_err("no broker, no delivery");
    assert_eq!(error.reason(), FailureReason::DeliveryTimeout, "{error}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the timeout"
    );
    assert!(matches!(
        error,
        DeliveryError::Definite { .. } | DeliveryError::PossiblyPersisted { .. }
    ));
    within("close", producer.close()).await.expect("closed");
}

#[tokio::test]
async fn a_bootstrap_connection_cut_before_the_metadata_answer_is_opened_again() {
    // bench/client-matrix, idempo × cut: the proxy cut the connection instead of forwarding
    // the first Metadata answer, and connect() gave up ("the peer closed the connection").
    let relayed = start_relayed(server_config(1, true), Fault::CloseInstead, METADATA, 1).await;
    let config = client_config(relayed.relay);
    let producer = within("connect", KafkaProducer::connect(config.clone()))
        .await
        .expect("connects on a second bootstrap connection");
    assert_eq!(
        relayed.answers_lost.load(Ordering::SeqCst),
        1,
        "the cut happened"
    );
    let delivery = producer.send(0, records(0, 3)).await.expect("queued");
    let report = within("the report", delivery).await.expect("a report");
    assert_eq!(report.result.expect("delivered").base_offset, 0);
    within("close", producer.close()).await.expect("closed");
    assert_eq!(read_back(&config, 0).await, [(0, 0), (1, 1), (2, 2)]);
}

#[tokio::test]
async fn a_partition_outside_the_topic_is_refused() {
    let broker = start(server_config(2, true)).await;
    let producer = KafkaProducer::connect(client_config(broker.addr))
        .await
        .expect("connects");
    let refused = producer.send(2, records(0, 1)).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("outside the topic's 2 partitions")));
    within("close", producer.close()).await.expect("closed");
}

// ----- the binary --------------------------------------------------------------------------

/// `idempo-broker --partitions N` on one free port.
fn spawn_broker(partitions: u32) -> common::BrokerProcess {
    common::spawn_broker_process(1, &["--partitions", &partitions.to_string()])
}

fn run_producer(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_idempo-producer"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("idempo-producer runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn idempo_producer_verify_passes_against_idempo_broker() {
    let broker = spawn_broker(3);
    let bootstrap = broker.addrs[0].to_string();
    let (code, stdout, stderr) = run_producer(&[
        "--bootstrap",
        &bootstrap,
        "--topic",
        "perf",
        "--records",
        "20000",
        "--record-size",
        "64",
        "--batch-records",
        "50",
        "--reporting-interval-ms",
        "200",
        "--verify",
    ]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("(3 partitions"), "{stdout}");
    assert!(stdout.contains("20000 records sent, "), "{stdout}");
    assert!(stdout.contains("ms 99.9th."), "{stdout}");
    assert!(
        stdout.contains("verify: read 3 partitions: 20000 records"),
        "{stdout}"
    );
    assert!(stdout.contains("verify: verdict: PASS"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempo_producer_verify_reports_duplicates_when_the_broker_does_not_deduplicate() {
    let relayed = start_relayed(server_config(1, false), Fault::CloseInstead, PRODUCE, 1).await;
    let bootstrap = relayed.relay.to_string();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_producer(&[
            "--bootstrap",
            &bootstrap,
            "--records",
            "1000",
            "--batch-records",
            "100",
            "--verify",
        ])
    })
    .await
    .expect("the producer process");
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| {
                l.strip_prefix("verify:")
                    .is_some_and(|l| l.trim_start().starts_with(&format!("{name}.")))
            })
            .unwrap_or_else(|| panic!("no {name} line in\n{stdout}"))
            .to_string()
    };
    assert!(line("no duplicates").contains("VIOLATED"), "{stdout}");
    assert!(
        line("no lost acknowledged records").ends_with("ok"),
        "{stdout}"
    );
    assert!(stdout.contains("verify: verdict: FAIL"), "{stdout}");
}

#[test]
fn idempo_producer_refuses_bad_arguments_naming_the_flag() {
    for (args, flag) in [
        (&["--records", "many"][..], "--records"),
        (&["--record-size", "4"][..], "--record-size"),
        (&["--max-in-flight", "6"][..], "--max-in-flight"),
        (&["--acks", "1"][..], "--acks"),
        (&["--acks", "2"][..], "--acks"),
        (&["--idempotence", "maybe"][..], "--idempotence"),
        (&["--throughput", "0"][..], "--throughput"),
        (
            &["--delivery-timeout-ms", "10"][..],
            "--delivery-timeout-ms",
        ),
    ] {
        let (code, _, stderr) = run_producer(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}: {stderr}"
        );
    }
}
