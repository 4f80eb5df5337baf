//! The connection limits over real sockets: idle connections give their slots back, a
//! slow-loris connection is closed, one address cannot take every slot, and many large
//! announced frames cannot make the broker hold more than `queued_max_request_bytes`.

use idempo_net::ServerConfig;
use idempo_net::limits::LimitsConfig;
use kafka_protocol::messages::ApiVersionsRequest;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

mod common;
use common::{Client, Running, eventually, start};

const NONE: i16 = 0;

async fn start_with(limits: LimitsConfig) -> Running {
    start(ServerConfig {
        limits,
        ..ServerConfig::default()
    })
    .await
}

fn closed(server: &Running, reason: &str) -> u64 {
    let stats = server.limits.connection_stats();
    stats
        .closed_total
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

async fn served(client: &mut Client) -> bool {
    client
        .send(&ApiVersionsRequest::default(), 3)
        .await
        .error_code
        == NONE
}

#[tokio::test]
async fn idle_connections_holding_every_slot_are_closed_and_a_new_client_is_then_served() {
    let server = start_with(LimitsConfig {
        max_connections: 4,
        connections_max_idle_ms: 300,
        ..LimitsConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(Client::connect(server.addr).await);
    }
    eventually("four connections hold every slot", || {
        server.limits.connection_stats().open == 4
    })
    .await;
    // The normal client waits in the listen backlog until the idle ones are closed.
    let mut normal = Client::connect(server.addr).await;
    assert!(served(&mut normal).await, "served after the idle timeout");
    for mut client in idle {
        assert!(client.is_closed_by_server().await, "idle connection closed");
    }
    // The slot is given back just after the socket closes: wait for the count.
    eventually("four idle closes counted", || closed(&server, "idle") == 4).await;
    assert!(server.limits.connection_stats().acceptor_waits_total >= 1);
}

#[tokio::test]
async fn a_connection_that_keeps_sending_requests_is_not_idle() {
    let server = start_with(LimitsConfig {
        connections_max_idle_ms: 1_000,
        ..LimitsConfig::default()
    })
    .await;
    let mut busy = Client::connect(server.addr).await;
    // Six requests 250 ms apart span 1.5 s, longer than the idle timeout, each gap well
    // inside it.
    for _ in 0..6 {
        assert!(served(&mut busy).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(closed(&server, "idle"), 0);
}

#[tokio::test]
async fn a_slow_loris_connection_is_closed_after_the_read_timeout_while_others_are_served() {
    let server = start_with(LimitsConfig {
        request_read_timeout_ms: 300,
        ..LimitsConfig::default()
    })
    .await;
    let mut loris = Client::connect(server.addr).await;
    // A frame of 1000 bytes, sent one byte every 20 ms: every byte is activity, but the
    // frame would take 20 s to arrive.
    loris
        .stream
        .write_all(&1000i32.to_be_bytes())
        .await
        .expect("prefix");
    let (mut reader, mut writer) = loris.stream.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..1000 {
            if writer.write_all(&[0]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });
    let mut other = Client::connect(server.addr).await;
    assert!(
        served(&mut other).await,
        "another client is served meanwhile"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut rest),
    )
    .await
    .expect("closed within 10 s");
    assert!(read.is_err() || rest.is_empty(), "closed without an answer");
    assert!(drip.await.expect("drip task"), "the server stopped reading");
    eventually("counted as a read timeout", || {
        closed(&server, "read_timeout") == 1
    })
    .await;
}

#[tokio::test]
async fn a_request_that_stops_arriving_mid_frame_is_dropped_after_the_read_timeout() {
    let server = start_with(LimitsConfig {
        request_read_timeout_ms: 200,
        ..LimitsConfig::default()
    })
    .await;
    let mut stalled = Client::connect(server.addr).await;
    let mut half = 100i32.to_be_bytes().to_vec();
    half.extend_from_slice(&[0; 40]);
    stalled.stream.write_all(&half).await.expect("writes");
    assert!(stalled.is_closed_by_server().await);
    eventually("counted as a read timeout", || {
        closed(&server, "read_timeout") == 1
    })
    .await;
}

#[tokio::test]
async fn one_address_cannot_open_more_than_its_quota() {
    let server = start_with(LimitsConfig {
        max_connections_per_ip: 2,
        ..LimitsConfig::default()
    })
    .await;
    let mut first = Client::connect(server.addr).await;
    let mut second = Client::connect(server.addr).await;
    assert!(served(&mut first).await && served(&mut second).await);
    let mut third = Client::connect(server.addr).await;
    assert!(third.is_closed_by_server().await, "over the per-ip quota");
    let stats = server.limits.connection_stats();
    assert!(
        stats
            .rejected_total
            .contains(&("max_connections_per_ip", 1)),
        "{stats:?}"
    );
    drop(first);
    eventually("the first slot is given back", || {
        server.limits.connection_stats().open == 1
    })
    .await;
    let mut fourth = Client::connect(server.addr).await;
    assert!(served(&mut fourth).await, "a freed slot can be taken again");
}

/// The pool's property: many connections announcing large frames never make the broker
/// grant (and so buffer) more than `queued_max_request_bytes` in all; the others wait,
/// unread, and the broker goes on serving once they are gone.
#[tokio::test]
async fn many_large_announced_frames_never_take_more_than_the_request_memory_pool() {
    const POOL: usize = 64 * 1024;
    const ANNOUNCED: i32 = 60_000;
    let server = start(ServerConfig {
        max_frame_bytes: POOL,
        limits: LimitsConfig {
            queued_max_request_bytes: POOL,
            ..LimitsConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut hostile = Vec::new();
    for _ in 0..20 {
        let mut client = Client::connect(server.addr).await;
        let mut frame = ANNOUNCED.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0; 100]);
        client.stream.write_all(&frame).await.expect("writes");
        hostile.push(client);
    }
    eventually("one frame granted, nineteen waiting", || {
        let pool = server.limits.pool_stats();
        pool.waiting == 19 && pool.in_use_bytes == 60_000
    })
    .await;
    let pool = server.limits.pool_stats();
    assert!(pool.peak_in_use_bytes <= POOL, "{pool:?}");
    assert_eq!(pool.granted_total, 1, "{pool:?}");
    drop(hostile);
    eventually("every hostile frame given back", || {
        let pool = server.limits.pool_stats();
        pool.waiting == 0 && pool.in_use_bytes == 0
    })
    .await;
    assert!(server.limits.pool_stats().peak_in_use_bytes <= POOL);
    let mut normal = Client::connect(server.addr).await;
    assert!(served(&mut normal).await);
}
