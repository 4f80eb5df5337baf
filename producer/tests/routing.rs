//! Cluster routing (`ProducerConfig::cluster_routing`): Metadata first, each partition's
//! batches to its leader, one connection per node with its own `max_in_flight`, and the
//! answers that mean the leader moved (Kafka's `Sender`, `RecordAccumulator.drain`,
//! `NetworkClient`, `Metadata`).

// Helpers outside #[test] functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use idempo_producer::{
    MetadataRefreshReason, PartitionLeader, Producer, ProducerConfig, ProducerEvent,
};
use idempo_protocol::{
    ErrorCode, ProduceRequest, ProducerEpoch, Record, Request, RequestFrame, Response,
    ResponseFrame, Sequence,
};

fn partitions(sent: &[Sent]) -> Vec<i32> {
    sent.iter().map(|s| s.partition).collect()
}

#[test]
fn without_cluster_routing_every_request_goes_to_node_0_and_no_metadata_is_sent() {
    let mut p = Producer::new(ProducerConfig::default()).unwrap();
    p.send(3, records(1), 0);
    let init = p.poll_outgoing(0).unwrap();
    assert_eq!(init.node, 0);
    assert!(matches!(init.frame.request, Request::InitProducerId(_)));
    p.on_response(init_ok(init.frame.correlation_id, PID, ProducerEpoch(0)), 0);
    let (node, _, sent) = poll_routed(&mut p, 0).unwrap();
    assert_eq!((node, partitions(&sent)), (0, vec![3]));
    assert_eq!(p.routing_stats().metadata_requests_sent, 0);
    assert_eq!(p.partition_leader(3), None, "no metadata without routing");
}

#[test]
fn metadata_goes_first_then_init_producer_id_to_the_least_loaded_node() {
    let mut p = Producer::new(ProducerConfig {
        bootstrap: vec![2],
        ..routed()
    })
    .unwrap();
    p.send(0, records(1), 0);
    let (m, node) = poll_metadata(&mut p, 0);
    assert_eq!(node, 2, "the bootstrap node");
    // One Metadata at a time; InitProducerId may go meanwhile, to the least loaded node.
    let init = p.poll_outgoing(0).unwrap();
    assert!(matches!(init.frame.request, Request::InitProducerId(_)));
    assert_eq!(init.node, 2, "only the bootstrap node is known yet");
    assert!(p.poll_outgoing(0).is_none(), "no producer id, no Produce");
    p.on_response(metadata(m, &[(0, 1, 0)]), 1);
    assert_eq!(
        p.partition_leader(0),
        Some(PartitionLeader {
            leader: Some(1),
            leader_epoch: 0
        })
    );
    p.on_response(init_ok(init.frame.correlation_id, PID, ProducerEpoch(0)), 2);
    let (node, _, sent) = poll_routed(&mut p, 2).unwrap();
    assert_eq!(node, 1, "partition 0's leader");
    assert_eq!(sent[0].base_sequence, Sequence(0));
}

#[test]
fn batches_are_routed_to_their_leaders_in_one_request_per_node() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (1, 2, 0), (2, 1, 0)]);
    for partition in 0..3 {
        p.send(partition, records(1), 0);
    }
    let (first_node, _, first) = poll_routed(&mut p, 0).unwrap();
    let (second_node, _, second) = poll_routed(&mut p, 0).unwrap();
    assert_eq!((first_node, partitions(&first)), (1, vec![0, 2]));
    assert_eq!((second_node, partitions(&second)), (2, vec![1]));
    assert!(p.poll_outgoing(0).is_none());
}

#[test]
fn max_in_flight_is_per_node_connection() {
    let mut p = ready_routed(
        ProducerConfig {
            max_in_flight: 2,
            ..routed()
        },
        &[(0, 1, 0), (1, 2, 0)],
    );
    for _ in 0..3 {
        p.send(0, records(1), 0);
        p.send(1, records(1), 0);
    }
    let nodes: Vec<i32> =
        std::iter::from_fn(|| poll_routed(&mut p, 0).map(|(n, _, _)| n)).collect();
    let to = |node| nodes.iter().filter(|&&n| n == node).count();
    assert_eq!(
        (to(1), to(2)),
        (2, 2),
        "two in flight on each connection: {nodes:?}"
    );
    assert_eq!(p.in_flight_requests(), 4);
}

#[test]
fn not_leader_refreshes_metadata_and_retries_the_same_sequence_at_the_new_leader() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.send(0, records(2), 0);
    let (node, c, sent) = poll_routed(&mut p, 0).unwrap();
    assert_eq!(node, 1);
    p.on_response(answer(c, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 200);
    assert!(
        events(&mut p).contains(&ProducerEvent::MetadataUpdateRequested {
            reason: MetadataRefreshReason::ProduceError {
                partition: 0,
                error: ErrorCode::NotLeaderOrFollower
            }
        }),
        "NOT_LEADER_OR_FOLLOWER asks for fresh metadata"
    );
    let (m, _) = poll_metadata(&mut p, 200);
    assert!(
        p.poll_outgoing(200).is_none(),
        "the retry backs off on the old leader"
    );
    p.on_response(metadata(m, &[(0, 2, 1)]), 210);
    // The leader changed since the last attempt: no backoff (KIP-951).
    let (node, c, retry) = poll_routed(&mut p, 210).unwrap();
    assert_eq!(node, 2, "the new leader");
    assert_eq!(retry, sent, "same producer id, epoch and sequence");
    assert_eq!(p.routing_stats().backoffs_skipped_for_new_leader, 1);
    p.on_response(answer(c, &[(0, ErrorCode::None, 40)]), 220);
    let report = p.poll_delivery().unwrap();
    assert_eq!(report.result.unwrap().base_offset, 40);
    assert_eq!(p.routing_stats().not_leader_responses, 1);
}

#[test]
fn not_leader_for_several_batches_retries_them_at_the_new_leader_one_at_a_time_in_order() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    for _ in 0..3 {
        p.send(0, records(1), 0);
    }
    let first: Vec<(i32, i32, Vec<Sent>)> = std::iter::from_fn(|| poll_routed(&mut p, 0)).collect();
    assert_eq!(first.len(), 3);
    for (_, c, _) in &first {
        p.on_response(answer(*c, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 200);
    }
    let (m, _) = poll_metadata(&mut p, 200);
    p.on_response(metadata(m, &[(0, 2, 1)]), 210);
    let mut retried = Vec::new();
    for offset in 0..3 {
        let (node, c, sent) = poll_routed(&mut p, 210).expect("the lowest sequence retries");
        assert_eq!(node, 2);
        assert!(
            p.poll_outgoing(210).is_none(),
            "only the lowest in-flight sequence is re-sent (rule 4)"
        );
        retried.push(sent[0].base_sequence);
        p.on_response(answer(c, &[(0, ErrorCode::None, offset)]), 210);
    }
    assert_eq!(retried, [Sequence(0), Sequence(1), Sequence(2)]);
    let offsets: Vec<i64> = deliveries(&mut p)
        .iter()
        .map(|r| r.result.unwrap().base_offset)
        .collect();
    assert_eq!(offsets, [0, 1, 2], "delivered in order");
}

#[test]
fn a_retry_to_an_unchanged_leader_waits_for_its_backoff() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.send(0, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_response(answer(c, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 200);
    let (m, _) = poll_metadata(&mut p, 200);
    p.on_response(metadata(m, &[(0, 1, 0)]), 210);
    assert!(
        p.poll_outgoing(210).is_none(),
        "same leader, same epoch: back off"
    );
    assert_eq!(p.next_wakeup_ms(), Some(300));
    let (node, _, _) = poll_routed(&mut p, 300).unwrap();
    assert_eq!(node, 1);
}

#[test]
fn fenced_leader_epoch_refreshes_but_unknown_leader_epoch_only_retries() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (1, 1, 0)]);
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_response(
        answer(
            c,
            &[
                (0, ErrorCode::UnknownLeaderEpoch, -1),
                (1, ErrorCode::FencedLeaderEpoch, -1),
            ],
        ),
        200,
    );
    let requested: Vec<_> = events(&mut p)
        .into_iter()
        .filter_map(|e| match e {
            ProducerEvent::MetadataUpdateRequested { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        requested,
        vec![MetadataRefreshReason::ProduceError {
            partition: 1,
            error: ErrorCode::FencedLeaderEpoch
        }],
        "UnknownLeaderEpochException is no InvalidMetadataException"
    );
    poll_metadata(&mut p, 200);
}

#[test]
fn an_offline_partition_waits_for_a_leader_while_the_others_go_on() {
    let mut p = ready_routed(routed(), &[(0, -1, 0), (1, 2, 0)]);
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (node, c, sent) = poll_routed(&mut p, 0).unwrap();
    assert_eq!((node, partitions(&sent)), (2, vec![1]));
    p.on_response(answer(c, &[(1, ErrorCode::None, 0)]), 10);
    assert!(p.poll_outgoing(10).is_none(), "partition 0 has no leader");
    // LEADER_NOT_AVAILABLE asked for another refresh, due retry.backoff.ms after the last.
    assert_eq!(p.next_wakeup_ms(), Some(100));
    let (m, _) = poll_metadata(&mut p, 100);
    p.on_response(metadata(m, &[(0, -1, 0), (1, 2, 0)]), 110);
    assert!(p.poll_outgoing(110).is_none(), "still offline");
    let (m, _) = poll_metadata(&mut p, 210);
    p.on_response(metadata(m, &[(0, 0, 1), (1, 2, 0)]), 220);
    let (node, _, sent) = poll_routed(&mut p, 220).unwrap();
    assert_eq!(
        (node, partitions(&sent)),
        (0, vec![0]),
        "elected: sent at once"
    );
    assert_eq!(sent[0].base_sequence, Sequence(0));
}

#[test]
fn not_enough_replicas_is_retried_and_after_append_the_retry_is_answered_as_a_duplicate() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (1, 1, 0)]);
    let mut broker = FakeBroker::new(5);
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let out = p.poll_outgoing(0).unwrap();
    // Partition 0 is refused before the append; partition 1 is appended, then its ISR
    // shrank below min.insync.replicas while the request waited.
    broker.handle(&out.frame);
    broker.partitions.remove(&0);
    let c = out.frame.correlation_id;
    p.on_response(
        answer(
            c,
            &[
                (0, ErrorCode::NotEnoughReplicas, -1),
                (1, ErrorCode::NotEnoughReplicasAfterAppend, -1),
            ],
        ),
        10,
    );
    assert!(deliveries(&mut p).is_empty(), "both retriable");
    let retry = p.poll_outgoing(110).unwrap();
    let response = broker.handle(&retry.frame).unwrap();
    p.on_response(response, 120);
    let reports = deliveries(&mut p);
    assert_eq!(reports.len(), 2);
    let offsets: Vec<i64> = reports
        .iter()
        .map(|r| r.result.unwrap().base_offset)
        .collect();
    assert_eq!(
        offsets,
        vec![0, 0],
        "partition 1's retry gets its original offset"
    );
    assert_eq!(broker.partitions[&1].log.len(), 1, "written once");
    assert_eq!(p.routing_stats().not_enough_replicas_responses, 2);
    assert_eq!(
        p.routing_stats().metadata_updates_requested,
        0,
        "no refresh for these"
    );
}

#[test]
fn failover_mid_flight_keeps_order_and_sequences() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    let mut new_leader = FakeBroker::new(5);
    for _ in 0..3 {
        p.send(0, records(2), 0);
    }
    let first: Vec<(i32, i32, Vec<Sent>)> = std::iter::from_fn(|| poll_routed(&mut p, 0)).collect();
    assert_eq!(first.len(), 3, "three requests in flight to node 1");
    // Node 1 dies: its connection breaks and every request on it fails.
    for (_, c, _) in &first {
        p.on_request_failed(*c, 50);
    }
    assert!(
        p.poll_outgoing(50).is_none(),
        "the refresh waits for retry.backoff.ms after the last one, at 0"
    );
    let (m, node) = poll_metadata(&mut p, 100);
    assert_ne!(node, 1, "the failed node is left alone");
    p.on_response(metadata(m, &[(0, 2, 1)]), 110);
    let mut resent = Vec::new();
    let mut now = 110;
    while !p.is_idle() {
        while let Some(out) = p.poll_outgoing(now) {
            assert_eq!(out.node, 2);
            resent.extend(parse(&out.frame));
            let response = new_leader.handle(&out.frame).unwrap();
            p.on_response(response, now);
        }
        now = p.next_wakeup_ms().unwrap_or(now + 1).max(now + 1);
    }
    let sequences: Vec<Sequence> = resent.iter().map(|s| s.base_sequence).collect();
    let sent_first: Vec<Sequence> = first.iter().map(|(_, _, s)| s[0].base_sequence).collect();
    assert_eq!(
        sequences, sent_first,
        "the same sequences, in order, once each"
    );
    assert_eq!(
        new_leader.partitions[&0].log,
        ["r0", "r1", "r0", "r1", "r0", "r1"],
        "every batch once"
    );
    assert!(deliveries(&mut p).iter().all(|r| r.result.is_ok()));
}

#[test]
fn a_request_timeout_closes_only_that_nodes_connection() {
    let mut p = ready_routed(
        ProducerConfig {
            request_timeout_ms: 1_000,
            ..routed()
        },
        &[(0, 1, 0), (1, 2, 0)],
    );
    p.send(0, records(1), 0);
    let (_, c1, _) = poll_routed(&mut p, 0).unwrap();
    p.send(0, records(1), 10);
    let (_, c1b, _) = poll_routed(&mut p, 10).unwrap();
    p.send(1, records(1), 500);
    let (node, c2, _) = poll_routed(&mut p, 500).unwrap();
    assert_eq!(node, 2);
    p.on_timeout(1_000);
    let evs = events(&mut p);
    assert!(evs.contains(&ProducerEvent::RequestTimedOut { correlation_id: c1 }));
    assert!(
        evs.contains(&ProducerEvent::RequestFailed {
            correlation_id: c1b
        }),
        "node 1's other request fails with its connection"
    );
    assert_eq!(
        p.in_flight_requests(),
        1,
        "node 2's request is still awaited"
    );
    p.on_response(answer(c2, &[(1, ErrorCode::None, 0)]), 1_001);
    assert!(p.poll_delivery().unwrap().result.is_ok());
}

#[test]
fn a_failed_node_is_left_alone_for_the_reconnect_backoff() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.send(0, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_request_failed(c, 100);
    let (m, node) = poll_metadata(&mut p, 100);
    assert_eq!(
        node, 0,
        "least loaded among the live nodes, node 1 excluded"
    );
    p.on_response(metadata(m, &[(0, 1, 0)]), 120);
    assert!(
        p.poll_outgoing(149).is_none(),
        "node 1 backs off until 150, the batch until 200"
    );
    let (node, _, _) = poll_routed(&mut p, 200).unwrap();
    assert_eq!(node, 1);
}

#[test]
fn metadata_is_refreshed_after_its_max_age() {
    let mut p = ready_routed(
        ProducerConfig {
            metadata_max_age_ms: 1_000,
            ..routed()
        },
        &[(0, 1, 0)],
    );
    assert_eq!(p.next_wakeup_ms(), Some(1_000));
    assert!(p.poll_outgoing(999).is_none());
    poll_metadata(&mut p, 1_000);
}

#[test]
fn an_older_leader_epoch_in_metadata_is_ignored() {
    let mut p = ready_routed(routed(), &[(0, 2, 5)]);
    p.send(0, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_response(answer(c, &[(0, ErrorCode::NotLeaderOrFollower, -1)]), 200);
    let (m, _) = poll_metadata(&mut p, 200);
    // A broker that has not heard of epoch 5 yet still names the old leader.
    p.on_response(metadata(m, &[(0, 1, 4)]), 210);
    assert!(
        events(&mut p).contains(&ProducerEvent::OlderLeaderEpochIgnored {
            partition: 0,
            leader_epoch: 4,
            known_leader_epoch: 5
        })
    );
    assert_eq!(p.partition_leader(0).unwrap().leader, Some(2));
    let (node, _, _) = poll_routed(&mut p, 300).unwrap();
    assert_eq!(node, 2);
}

#[test]
fn cluster_routing_needs_a_bootstrap_node() {
    let err = Producer::new(ProducerConfig {
        bootstrap: Vec::new(),
        ..routed()
    })
    .unwrap_err();
    assert!(err.to_string().contains("no bootstrap node"));
}

#[test]
fn a_disconnected_node_fails_only_its_own_requests() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (1, 2, 0)]);
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (n1, c1, _) = poll_routed(&mut p, 0).unwrap();
    let (n2, c2, _) = poll_routed(&mut p, 0).unwrap();
    assert_eq!((n1, n2), (1, 2));
    p.on_node_disconnected(1, 5);
    assert!(events(&mut p).contains(&ProducerEvent::RequestFailed { correlation_id: c1 }));
    assert_eq!(p.in_flight_requests_to(1), 0);
    assert_eq!(
        p.in_flight_requests_to(2),
        1,
        "node 2's connection is another one"
    );
    p.on_response(answer(c2, &[(1, ErrorCode::None, 0)]), 6);
    assert_eq!(p.poll_delivery().unwrap().partition, 1);
    assert!(
        p.poll_delivery().is_none(),
        "partition 0 is retried, not failed"
    );
}

// ----- a cluster in miniature ------------------------------------------------------------

/// Three nodes in front of one log per partition (replication taken as perfect: whatever a
/// leader appended, the next leader holds), each node with its own FIFO connection.
struct Cluster {
    broker: FakeBroker,
    /// Leader and leader epoch of partitions 0 and 1.
    leaders: [(i32, i32); 2],
    wire: [std::collections::VecDeque<RequestFrame>; 3],
}

impl Cluster {
    fn new() -> Cluster {
        let mut broker = FakeBroker::new(5);
        // A broker that accepts a gap from an unknown producer can write a batch twice
        // whatever the client does (the crate essay); this property is about routing.
        broker.accept_unknown_producer_at_any_sequence = false;
        Cluster {
            broker,
            leaders: [(1, 0), (2, 0)],
            wire: Default::default(),
        }
    }

    fn metadata(&self, correlation_id: i32) -> ResponseFrame {
        let leaders: Vec<(i32, i32, i32)> = (0..2)
            .map(|p| (p, self.leaders[p as usize].0, self.leaders[p as usize].1))
            .collect();
        metadata(correlation_id, &leaders)
    }

    /// Node `node` handles `frame`: partitions it does not lead are NOT_LEADER_OR_FOLLOWER.
    fn handle(&mut self, node: i32, frame: &RequestFrame) -> ResponseFrame {
        let Request::Produce(request) = &frame.request else {
            if matches!(frame.request, Request::Metadata(_)) {
                return self.metadata(frame.correlation_id);
            }
            return self.broker.handle(frame).unwrap();
        };
        let mut results = Vec::new();
        for data in &request.partitions {
            if self.leaders[data.partition as usize].0 != node {
                results.push((data.partition, ErrorCode::NotLeaderOrFollower, -1));
                continue;
            }
            let one = RequestFrame {
                correlation_id: frame.correlation_id,
                request: Request::Produce(ProduceRequest {
                    partitions: vec![data.clone()],
                    ..request.clone()
                }),
            };
            let Some(ResponseFrame {
                response: Response::Produce(r),
                ..
            }) = self.broker.handle(&one)
            else {
                panic!("acks=all is answered");
            };
            let p = &r.partitions[0];
            results.push((p.partition, p.error_code, p.base_offset));
        }
        answer(frame.correlation_id, &results)
    }
}

/// One step of the schedule.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The oldest request on a node's connection is handled and answered.
    Answer(i32),
    /// A node's connection breaks; each request on it was handled first (its answer lost)
    /// or not, as the flags say.
    Disconnect(i32, [bool; 5]),
    /// A partition's leadership moves to the next node, with a new leader epoch.
    MoveLeader(i32),
    /// Time passes.
    Tick,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..3i32).prop_map(Step::Answer),
        1 => ((0..3i32), any::<[bool; 5]>()).prop_map(|(n, f)| Step::Disconnect(n, f)),
        1 => (0..2i32).prop_map(Step::MoveLeader),
        2 => Just(Step::Tick),
    ]
}

fn pump(p: &mut Producer, cluster: &mut Cluster, now_ms: u64) {
    while let Some(out) = p.poll_outgoing(now_ms) {
        cluster.wire[out.node as usize].push_back(out.frame);
    }
}

fn run_step(p: &mut Producer, cluster: &mut Cluster, step: Step, now_ms: &mut u64) {
    match step {
        Step::Answer(node) => {
            if let Some(frame) = cluster.wire[node as usize].pop_front() {
                let response = cluster.handle(node, &frame);
                p.on_response(response, *now_ms);
            }
        }
        Step::Disconnect(node, handled) => {
            let lost: Vec<_> = cluster.wire[node as usize].drain(..).collect();
            for (frame, handled) in lost.iter().zip(handled.iter().cycle()) {
                if *handled && matches!(frame.request, Request::Produce(_)) {
                    cluster.handle(node, frame);
                }
            }
            p.on_node_disconnected(node, *now_ms);
        }
        Step::MoveLeader(partition) => {
            let (leader, epoch) = cluster.leaders[partition as usize];
            cluster.leaders[partition as usize] = ((leader + 1) % 3, epoch + 1);
        }
        Step::Tick => *now_ms += 50,
    }
    pump(p, cluster, *now_ms);
}

fn exactly_once_in_order_across_leader_moves(config: ProducerConfig, steps: &[Step]) {
    let mut p = Producer::new(ProducerConfig {
        request_timeout_ms: 1 << 40,
        delivery_timeout_ms: 1 << 41,
        ..routed_with(config)
    })
    .unwrap();
    let mut cluster = Cluster::new();
    let mut expected: [Vec<String>; 2] = Default::default();
    for b in 0..4 {
        for partition in 0..2 {
            let value = format!("p{partition}b{b}");
            expected[partition as usize].push(value.clone());
            p.send(partition, vec![Record::with_value(0, value)], 0);
        }
    }
    let mut now_ms = 0;
    pump(&mut p, &mut cluster, now_ms);
    for &s in steps {
        run_step(&mut p, &mut cluster, s, &mut now_ms);
    }
    // No more faults: answer everything until the producer is done.
    for _ in 0..10_000 {
        if p.is_idle() {
            break;
        }
        for node in 0..3 {
            run_step(&mut p, &mut cluster, Step::Answer(node), &mut now_ms);
        }
        run_step(&mut p, &mut cluster, Step::Tick, &mut now_ms);
    }
    assert!(p.is_idle(), "every batch reached an outcome");
    let reports = deliveries(&mut p);
    assert_eq!(reports.len(), 8);
    assert!(reports.iter().all(|r| r.result.is_ok()), "{reports:?}");
    for partition in 0..2 {
        let log = cluster
            .broker
            .partitions
            .get(&partition)
            .map(|part| part.log.clone())
            .unwrap_or_default();
        assert_eq!(log, expected[partition as usize], "partition {partition}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Property (java profile): whatever the order of answers, broken connections (with or
    /// without the request handled first) and leader moves, every batch is delivered and
    /// every partition's log holds each batch exactly once, in send order: retries keep
    /// their sequence and go to the new leader in order.
    #[test]
    fn java_routing_writes_every_batch_once_in_order_across_leader_moves(
        steps in proptest::collection::vec(step(), 0..120)
    ) {
        exactly_once_in_order_across_leader_moves(ProducerConfig::default(), &steps);
    }

    /// Property (idempo profile): the same, with every idempo improvement on.
    #[test]
    fn idempo_routing_writes_every_batch_once_in_order_across_leader_moves(
        steps in proptest::collection::vec(step(), 0..120)
    ) {
        exactly_once_in_order_across_leader_moves(idempo(), &steps);
    }
}

// ----- routing rules, one test each ------------------------------------------------------

/// The reasons of the metadata refreshes the producer asked for, from its events.
fn metadata_requested(p: &mut Producer) -> Vec<MetadataRefreshReason> {
    events(p)
        .into_iter()
        .filter_map(|e| match e {
            ProducerEvent::MetadataUpdateRequested { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn metadata_requests_and_answers_are_counted() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (1, 2, 0)]);
    assert_eq!(p.routing_stats().metadata_requests_sent, 1);
    assert_eq!(p.routing_stats().metadata_updates, 1);
    assert_eq!(
        p.routing_stats().leader_changes,
        2,
        "both partitions appeared"
    );
    p.send(0, records(1), 0);
    poll_routed(&mut p, 0).unwrap();
    assert_eq!(
        p.stats().requests_sent,
        3,
        "Metadata, InitProducerId and Produce are requests"
    );
    p.on_timeout(300_000);
    let (m, _) = poll_metadata(&mut p, 300_000);
    // The same leaders again: an update, no change.
    p.on_response(metadata(m, &[(0, 1, 0), (1, 2, 0)]), 300_000);
    let stats = p.routing_stats();
    assert_eq!(
        (
            stats.metadata_requests_sent,
            stats.metadata_updates,
            stats.leader_changes
        ),
        (2, 2, 2)
    );
    assert_eq!(p.stats().requests_sent, 4);
}

#[test]
fn a_leader_that_is_not_a_live_broker_is_no_leader_and_asks_again() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.on_timeout(300_000);
    let (m, _) = poll_metadata(&mut p, 300_000);
    // Partition 1's leader, node 5, is not among the answer's brokers; its error is NONE.
    p.on_response(metadata(m, &[(0, 1, 0), (1, 5, 0)]), 300_000);
    assert_eq!(
        p.partition_leader(1),
        Some(PartitionLeader {
            leader: None,
            leader_epoch: 0
        })
    );
    assert_eq!(
        metadata_requested(&mut p),
        vec![MetadataRefreshReason::LeaderNotAvailable { partition: 1 }],
        "the partition without a leader asks for another refresh"
    );
    assert_eq!(p.routing_stats().metadata_updates_requested, 1);
    assert_eq!(p.next_wakeup_ms(), Some(300_100), "after retry.backoff.ms");
    poll_metadata(&mut p, 300_100);
}

#[test]
fn a_partition_with_batches_and_no_known_leader_asks_for_metadata() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.send(3, records(1), 0);
    assert!(p.poll_outgoing(0).is_none(), "partition 3 has no leader");
    assert_eq!(
        metadata_requested(&mut p),
        vec![MetadataRefreshReason::UnknownLeader { partition: 3 }]
    );
    assert_eq!(p.routing_stats().metadata_updates_requested, 1);
    let (m, _) = poll_metadata(&mut p, 100);
    p.on_response(metadata(m, &[(0, 1, 0), (3, 2, 0)]), 100);
    let (node, _, sent) = poll_routed(&mut p, 100).unwrap();
    assert_eq!((node, partitions(&sent)), (2, vec![3]));
}

#[test]
fn a_failed_node_takes_no_request_until_its_backoff_ends() {
    let mut p = ready_routed(
        ProducerConfig {
            retry_backoff_ms: 50,
            ..routed()
        },
        &[(0, 0, 0)],
    );
    p.send(0, records(1), 0);
    let (node, c, _) = poll_routed(&mut p, 0).unwrap();
    assert_eq!(node, 0);
    p.on_request_failed(c, 100);
    let (m, node) = poll_metadata(&mut p, 100);
    assert_eq!(node, 1, "node 0 backs off until 150");
    p.on_response(metadata(m, &[(0, 0, 0)]), 100);
    assert!(p.poll_outgoing(149).is_none());
    let (node, _, _) = poll_routed(&mut p, 150).expect("the backoff ended at 150");
    assert_eq!(node, 0);
}

#[test]
fn metadata_goes_to_the_node_with_the_fewest_requests_in_flight() {
    let mut p = ready_routed(
        ProducerConfig {
            metadata_max_age_ms: 1_000,
            ..routed()
        },
        &[(0, 0, 0), (1, 1, 0), (2, 2, 0)],
    );
    // Two requests in flight to node 0, one each to nodes 1 and 2.
    for partition in [0, 0, 1, 2] {
        p.send(partition, records(1), 0);
        poll_routed(&mut p, 0).unwrap();
    }
    assert_eq!(
        (0..3)
            .map(|n| p.in_flight_requests_to(n))
            .collect::<Vec<_>>(),
        [2, 1, 1]
    );
    let (_, node) = poll_metadata(&mut p, 1_000);
    assert_eq!(node, 1, "the first of the least loaded");
    // With a node that has nothing in flight, that node.
    let mut p = ready_routed(
        ProducerConfig {
            metadata_max_age_ms: 1_000,
            ..routed()
        },
        &[(0, 0, 0)],
    );
    p.send(0, records(1), 0);
    poll_routed(&mut p, 0).unwrap();
    let (_, node) = poll_metadata(&mut p, 1_000);
    assert_eq!(node, 1, "node 1 has nothing in flight");
}

#[test]
fn a_due_refresh_with_no_node_to_send_to_wakes_the_producer_at_the_node_backoffs_end() {
    let mut p = Producer::new(ProducerConfig {
        reconnect_backoff_ms: 1_000,
        ..routed()
    })
    .unwrap();
    let (m, node) = poll_metadata(&mut p, 0);
    assert_eq!(node, 0);
    p.on_request_failed(m, 0);
    assert_eq!(
        p.next_wakeup_ms(),
        Some(100),
        "the refresh's retry.backoff.ms ends first"
    );
    p.on_timeout(100);
    assert_eq!(
        p.next_wakeup_ms(),
        Some(1_000),
        "due, but its only node backs off until 1000"
    );
    assert!(p.poll_outgoing(100).is_none());
    poll_metadata(&mut p, 1_000);
}

#[test]
fn a_node_backoff_is_a_wakeup_until_it_ends() {
    let mut p = Producer::new(ProducerConfig {
        bootstrap: vec![0, 1],
        ..routed()
    })
    .unwrap();
    let (_, node) = poll_metadata(&mut p, 0);
    assert_eq!(node, 0);
    p.on_node_disconnected(1, 0);
    assert_eq!(p.next_wakeup_ms(), Some(50), "node 1 backs off until 50");
    p.on_timeout(50);
    assert_eq!(
        p.next_wakeup_ms(),
        Some(30_000),
        "the backoff ended: only the Metadata request's timeout is left"
    );
}

#[test]
fn a_first_attempt_skips_no_retry_backoff() {
    let mut p = ready_routed(routed(), &[(0, 1, 0)]);
    p.send(0, records(1), 0);
    let (_, c, _) = poll_routed(&mut p, 0).unwrap();
    p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), 5);
    p.send(0, records(1), 5);
    poll_routed(&mut p, 5).unwrap();
    assert_eq!(p.routing_stats().backoffs_skipped_for_new_leader, 0);
}

/// Two partitions led by node 1; partition 0's second batch waits for a retry behind its
/// first, still in flight, so that partition 0 is blocked; partition 1 has a new batch.
fn blocked_partition_0_on_node_1(config: ProducerConfig) -> Producer {
    let mut p = ready_routed(config, &[(0, 1, 0), (1, 1, 0)]);
    p.send(0, records(1), 0);
    poll_routed(&mut p, 0).unwrap();
    p.send(0, records(1), 0);
    let (_, second, sent) = poll_routed(&mut p, 0).unwrap();
    assert_eq!(sent[0].base_sequence, Sequence(1));
    p.on_response(answer(second, &[(0, ErrorCode::NotEnoughReplicas, -1)]), 10);
    p.send(1, records(1), 10);
    p
}

#[test]
fn java_drain_of_a_node_stops_at_a_blocked_partition() {
    let mut p = blocked_partition_0_on_node_1(routed());
    assert!(
        p.poll_outgoing(110).is_none(),
        "partition 0's retry waits for sequence 0, and the drain stops there"
    );
}

#[test]
fn idempo_drain_of_a_node_skips_a_blocked_partition() {
    let mut p = ready_routed(routed_with(idempo()), &[(0, 1, 0), (1, 1, 0)]);
    p.send(0, records(1), 0);
    poll_routed(&mut p, 0).unwrap();
    // first_batch_alone: partition 0's second batch waits for its first's answer.
    p.send(0, records(1), 0);
    p.send(1, records(1), 0);
    let (node, _, sent) = poll_routed(&mut p, 0).expect("partition 1 goes past partition 0");
    assert_eq!((node, partitions(&sent)), (1, vec![1]));
}

#[test]
fn every_partition_id_a_metadata_answer_names_keeps_its_leader_dense_or_not() {
    // Ids below 65 536 are looked up by index, the others in the map; a broker may name any.
    let ids = [0, 1, 65_534, 65_535, 65_536, 65_537, 70_000, i32::MAX];
    let leaders: Vec<(i32, i32, i32)> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, (i % 3) as i32, i as i32))
        .collect();
    let p = ready_routed(routed(), &leaders);
    for &(id, leader, epoch) in &leaders {
        assert_eq!(
            p.partition_leader(id),
            Some(PartitionLeader {
                leader: Some(leader),
                leader_epoch: epoch
            }),
            "partition {id}"
        );
    }
    for id in [2, 65_533, 65_538, i32::MAX - 1, -1] {
        assert_eq!(p.partition_leader(id), None, "partition {id} was not named");
    }
}

#[test]
fn a_partition_beyond_the_dense_index_is_produced_to_its_leader() {
    let mut p = ready_routed(routed(), &[(0, 1, 0), (65_536, 2, 0), (70_000, 2, 0)]);
    p.send(65_536, records(1), 0);
    p.send(70_000, records(1), 0);
    let (node, _, sent) = poll_routed(&mut p, 0).expect("a Produce to partition 65 536's leader");
    assert_eq!((node, partitions(&sent)), (2, vec![65_536, 70_000]));
}
