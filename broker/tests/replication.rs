//! Replication rules, one behaviour per test: roles, the high watermark, the ISR, acks and
//! min.insync.replicas, delayed produce, leader epochs, truncation with producer-state
//! reload, and appendAsFollower (see the `replication` module essay).

mod support;

use bytes::Bytes;
use idempo_broker::{
    Broker, BrokerConfig, IsrChange, LeaderAndIsr, LeaderAndIsrOutcome, ReplicaRole,
    ReplicationEvent, SyncPolicy,
};
use idempo_protocol::{
    EpochEndOffset, ErrorCode, FetchRequest, PartitionProduceData, ProduceRequest, ProducerEpoch,
    ProducerId, Record, RecordBatch, Request, RequestFrame, Response, Sequence, decode_batches,
};

const LAG_MS: i64 = 30_000;

fn broker(id: i32, min_insync_replicas: usize) -> Broker {
    Broker::new(BrokerConfig {
        broker_id: id,
        min_insync_replicas,
        replica_lag_time_max_ms: LAG_MS,
        ..BrokerConfig::default()
    })
    .expect("a valid config")
}

fn state(leader: i32, leader_epoch: i32, isr: &[i32], partition_epoch: i32) -> LeaderAndIsr {
    LeaderAndIsr {
        partition: 0,
        leader,
        leader_epoch,
        isr: isr.to_vec(),
        replicas: vec![0, 1, 2],
        partition_epoch,
    }
}

fn batch(pid: i64, seq: i32, count: i32) -> Bytes {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("{pid}-{seq}-{i}")))
        .collect();
    RecordBatch::idempotent(
        ProducerId(pid),
        ProducerEpoch(0),
        Sequence(seq),
        1_000,
        records,
    )
    .to_bytes()
}

fn produce(acks: i16, timeout_ms: i32, records: Bytes, correlation_id: i32) -> RequestFrame {
    RequestFrame {
        correlation_id,
        request: Request::Produce(ProduceRequest {
            acks,
            timeout_ms,
            partitions: vec![PartitionProduceData {
                partition: 0,
                records,
            }],
        }),
    }
}

fn produce_error(response: &Response) -> ErrorCode {
    match response {
        Response::Produce(r) => r.partitions[0].error_code,
        other => panic!("not a produce response: {other:?}"),
    }
}

/// One fetch round of `follower` from `leader`; returns the error code the follower saw.
fn fetch_once(follower: &mut Broker, leader: &mut Broker) -> ErrorCode {
    let request = follower
        .follower_fetch_request(0)
        .expect("the follower has a leader");
    let response = leader.replica_fetch(&request);
    follower
        .on_follower_fetch_response(&request, &response)
        .error_code
}

/// Fetch rounds until two in a row move neither the follower's log end nor the leader's HW
/// (bounded).
fn replicate(follower: &mut Broker, leader: &mut Broker) {
    let mut quiet = 0;
    for _ in 0..32 {
        let before = (follower.log_end_offset(0), leader.high_watermark(0));
        fetch_once(follower, leader);
        let moved = (follower.log_end_offset(0), leader.high_watermark(0)) != before;
        quiet = if moved { 0 } else { quiet + 1 };
        if quiet == 2 {
            return;
        }
    }
    panic!("replication did not settle in 32 rounds");
}

/// Broker 0 leads at epoch 1 with ISR `isr`; brokers 1 and 2 follow.
fn cluster(min_insync_replicas: usize, isr: &[i32]) -> (Broker, Broker, Broker) {
    let mut b = [0, 1, 2].map(|id| broker(id, min_insync_replicas));
    for x in &mut b {
        x.apply_leader_and_isr(&state(0, 1, isr, 1));
    }
    let [b0, b1, b2] = b;
    (b0, b1, b2)
}

#[test]
fn standalone_broker_answers_acks_all_at_once_with_the_high_watermark_at_the_log_end() {
    let mut b = broker(0, 2);
    let handled = b.handle(&produce(-1, 30_000, batch(1, 0, 3), 7));
    let response = handled.response.expect("standalone answers at once");
    assert_eq!(produce_error(&response.response), ErrorCode::None);
    assert_eq!(b.high_watermark(0), Some(3));
    assert!(b.replication(0).is_none());
    assert!(b.take_completed().is_empty());
    assert!(b.take_replication_events().is_empty());
    let fetched = b.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(fetched.high_watermark, 3);
    assert_eq!(
        b.log(0)
            .unwrap()
            .batches()
            .next()
            .unwrap()
            .header
            .partition_leader_epoch,
        0
    );
}

#[test]
fn a_fetch_frame_is_a_consumer_fetch_unless_a_follower_sent_it() {
    let (mut b0, b1, _b2) = cluster(2, &[0, 1, 2]);
    b0.handle(&produce(-1, 30_000, batch(1, 0, 3), 1));
    let fetch = |request| RequestFrame {
        correlation_id: 5,
        request: Request::Fetch(request),
    };
    let answer = |b: &mut Broker, request| match b.handle(&fetch(request)).response {
        Some(frame) => match frame.response {
            Response::Fetch(r) => r,
            other => panic!("not a fetch response: {other:?}"),
        },
        None => panic!("a fetch is answered at once"),
    };
    let consumer = answer(&mut b0, FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(consumer.error_code, ErrorCode::None);
    assert_eq!(consumer.high_watermark, 0, "nothing is replicated yet");
    assert!(
        consumer.records.is_empty(),
        "a consumer reads up to the high watermark only"
    );
    let request = b1.follower_fetch_request(0).expect("broker 1 follows");
    let replica = answer(&mut b0, request);
    assert_eq!(replica.error_code, ErrorCode::None);
    assert_eq!(
        decode_batches(replica.records.clone())
            .expect("the leader's batch")
            .len(),
        1,
        "a follower reads up to the log end"
    );
}

#[test]
fn follower_refuses_produce_with_not_leader_or_follower() {
    let (_, mut b1, _) = cluster(1, &[0, 1, 2]);
    let handled = b1.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    assert_eq!(
        produce_error(&handled.response.unwrap().response),
        ErrorCode::NotLeaderOrFollower
    );
    assert_eq!(b1.log_end_offset(0), Some(0), "nothing appended");
}

#[test]
fn acks_all_with_isr_below_min_insync_replicas_is_refused_before_appending() {
    let (mut b0, _, _) = cluster(2, &[0]);
    let handled = b0.handle(&produce(-1, 30_000, batch(1, 0, 1), 1));
    assert_eq!(
        produce_error(&handled.response.unwrap().response),
        ErrorCode::NotEnoughReplicas
    );
    assert_eq!(b0.log_end_offset(0), Some(0));
    let acks_one = b0.handle(&produce(1, 30_000, batch(1, 0, 1), 2));
    assert_eq!(
        produce_error(&acks_one.response.unwrap().response),
        ErrorCode::None,
        "acks=1 ignores min.insync.replicas"
    );
}

#[test]
fn acks_all_is_answered_when_the_high_watermark_passes_the_batch() {
    let (mut b0, mut b1, mut b2) = cluster(2, &[0, 1, 2]);
    let handled = b0.handle_from(42, &produce(-1, 30_000, batch(1, 0, 2), 9));
    assert!(handled.response.is_none(), "waits for the ISR");
    assert!(handled.outcomes[0].is_appended());
    assert_eq!(b0.high_watermark(0), Some(0));
    fetch_once(&mut b1, &mut b0); // b1 gets the records
    fetch_once(&mut b1, &mut b0); // and tells the leader it has them
    assert!(
        b0.take_completed().is_empty(),
        "broker 2 is in the ISR and has nothing"
    );
    replicate(&mut b2, &mut b0);
    assert_eq!(b0.high_watermark(0), Some(2));
    let completed = b0.take_completed();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].client, 42);
    assert_eq!(completed[0].response.correlation_id, 9);
    assert_eq!(
        produce_error(&completed[0].response.response),
        ErrorCode::None
    );
}

#[test]
fn acks_one_is_answered_after_the_leader_append_and_acks_zero_never() {
    let (mut b0, _, _) = cluster(2, &[0, 1, 2]);
    let one = b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    assert_eq!(
        produce_error(&one.response.unwrap().response),
        ErrorCode::None
    );
    let zero = b0.handle(&produce(0, 30_000, batch(1, 1, 1), 2));
    assert!(zero.response.is_none());
    assert!(zero.outcomes[0].is_appended());
    assert_eq!(b0.high_watermark(0), Some(0), "no follower has fetched");
    assert!(b0.take_completed().is_empty());
}

#[test]
fn delayed_produce_times_out_with_request_timed_out() {
    let (mut b0, _, _) = cluster(2, &[0, 1]);
    assert!(
        b0.handle(&produce(-1, 500, batch(1, 0, 1), 3))
            .response
            .is_none()
    );
    b0.advance_time(499);
    assert!(b0.take_completed().is_empty());
    b0.advance_time(500);
    let completed = b0.take_completed();
    assert_eq!(
        produce_error(&completed[0].response.response),
        ErrorCode::RequestTimedOut
    );
    assert_eq!(b0.delayed_produce_count(), 0);
}

#[test]
fn isr_shrinks_after_replica_lag_time_max_ms_without_catching_up() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1, 2]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    b0.advance_time(LAG_MS);
    replicate(&mut b1, &mut b0);
    assert!(
        b0.take_alter_partitions(LAG_MS).is_empty(),
        "not yet lagging"
    );
    let alters = b0.take_alter_partitions(LAG_MS + 1);
    assert_eq!(alters.len(), 1);
    assert_eq!(alters[0].new_isr, vec![0, 1], "broker 2 never fetched");
    assert_eq!((alters[0].leader_epoch, alters[0].partition_epoch), (1, 1));
    assert!(
        b0.take_alter_partitions(LAG_MS + 2).is_empty(),
        "one change in flight"
    );
    assert!(b0.take_replication_events().iter().any(|e| matches!(
        e,
        ReplicationEvent::IsrChangeProposed {
            change: IsrChange::Shrink,
            ..
        }
    )));
    b0.apply_leader_and_isr(&state(0, 1, &[0, 1], 2));
    assert_eq!(b0.replication(0).unwrap().isr(), &[0, 1]);
    assert!(b0.replication(0).unwrap().pending_isr().is_none());
}

#[test]
fn a_follower_that_caught_up_at_the_log_end_is_never_out_of_sync() {
    let (mut b0, mut b1, mut b2) = cluster(1, &[0, 1, 2]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    replicate(&mut b1, &mut b0);
    replicate(&mut b2, &mut b0);
    b0.advance_time(10 * LAG_MS);
    assert!(
        b0.take_alter_partitions(10 * LAG_MS).is_empty(),
        "idle followers at the leader's log end stay in sync"
    );
    b0.handle(&produce(1, 30_000, batch(1, 1, 1), 2));
    replicate(&mut b1, &mut b0);
    let alters = b0.take_alter_partitions(10 * LAG_MS);
    assert_eq!(
        alters[0].new_isr,
        vec![0, 1],
        "broker 2 stopped fetching; broker 1 did not"
    );
}

#[test]
fn isr_expands_when_a_follower_reaches_the_high_watermark_in_the_current_epoch() {
    let (mut b0, mut b1, _) = cluster(1, &[0]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    assert_eq!(b0.high_watermark(0), Some(2), "an ISR of one");
    fetch_once(&mut b1, &mut b0);
    assert!(
        b0.take_alter_partitions(0).is_empty(),
        "offset 0 is below the HW"
    );
    fetch_once(&mut b1, &mut b0);
    let alters = b0.take_alter_partitions(0);
    assert_eq!(alters.len(), 1);
    assert_eq!(alters[0].new_isr, vec![0, 1]);
    assert_eq!(
        b0.replication(0).unwrap().pending_isr(),
        Some((IsrChange::Expand, &[0, 1][..]))
    );
}

#[test]
fn isr_expansion_waits_for_the_current_leader_epoch() {
    let (mut b0, mut b1, mut b2) = cluster(1, &[0, 1, 2]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    b0.handle(&produce(1, 30_000, batch(1, 1, 1), 2));
    fetch_once(&mut b1, &mut b0);
    let mut one_batch = b2.follower_fetch_request(0).unwrap();
    one_batch.max_bytes = 1;
    let response = b0.replica_fetch(&one_batch);
    b2.on_follower_fetch_response(&one_batch, &response);
    assert_eq!(b2.log_end_offset(0), Some(1));
    // Broker 1 leads at epoch 2 from offset 2; broker 0 (in the ISR) is gone, so the HW is 0.
    b1.apply_leader_and_isr(&state(1, 2, &[0, 1], 2));
    b2.apply_leader_and_isr(&state(1, 2, &[0, 1], 2));
    assert_eq!(b1.high_watermark(0), Some(0));
    assert_eq!(fetch_once(&mut b2, &mut b1), ErrorCode::None);
    assert!(
        b1.take_alter_partitions(0).is_empty(),
        "offset 1 is at or above the HW but before epoch 2 began"
    );
    fetch_once(&mut b2, &mut b1);
    assert_eq!(b1.take_alter_partitions(0)[0].new_isr, vec![0, 1, 2]);
}

#[test]
fn isr_shrink_below_min_insync_while_waiting_answers_not_enough_replicas_after_append() {
    let (mut b0, _, _) = cluster(2, &[0, 1]);
    assert!(
        b0.handle(&produce(-1, 120_000, batch(1, 0, 1), 5))
            .response
            .is_none()
    );
    let alters = b0.take_alter_partitions(LAG_MS + 1);
    assert_eq!(alters[0].new_isr, vec![0]);
    assert!(
        b0.take_completed().is_empty(),
        "a pending shrink keeps the old ISR for the HW"
    );
    b0.apply_leader_and_isr(&state(0, 1, &[0], 2));
    let completed = b0.take_completed();
    assert_eq!(
        produce_error(&completed[0].response.response),
        ErrorCode::NotEnoughReplicasAfterAppend,
        "appended, and the HW passed it with an ISR below min.insync.replicas"
    );
    assert_eq!(b0.high_watermark(0), Some(1));
}

#[test]
fn becoming_follower_answers_delayed_produces_not_leader_or_follower() {
    let (mut b0, _, _) = cluster(2, &[0, 1]);
    assert!(
        b0.handle(&produce(-1, 30_000, batch(1, 0, 1), 5))
            .response
            .is_none()
    );
    let outcome = b0.apply_leader_and_isr(&state(1, 2, &[1], 2));
    assert_eq!(
        outcome,
        LeaderAndIsrOutcome::Follower {
            new_leader_epoch: true
        }
    );
    let completed = b0.take_completed();
    assert_eq!(
        produce_error(&completed[0].response.response),
        ErrorCode::NotLeaderOrFollower
    );
}

#[test]
fn an_older_leader_epoch_is_ignored() {
    let (mut b0, _, _) = cluster(1, &[0, 1, 2]);
    b0.apply_leader_and_isr(&state(1, 3, &[1], 4));
    assert_eq!(
        b0.apply_leader_and_isr(&state(0, 2, &[0], 5)),
        LeaderAndIsrOutcome::Ignored
    );
    assert_eq!(b0.replication(0).unwrap().role(), ReplicaRole::Follower);
    assert_eq!(b0.replication(0).unwrap().leader_epoch(), 3);
}

#[test]
fn consumers_read_only_below_the_high_watermark_and_only_from_the_leader() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    let fetched = b0.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(fetched.high_watermark, 0);
    assert!(fetched.records.is_empty(), "nothing is committed yet");
    replicate(&mut b1, &mut b0);
    let fetched = b0.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(fetched.high_watermark, 2);
    assert_eq!(decode_batches(fetched.records).unwrap().len(), 1);
    let from_follower = b1.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(from_follower.error_code, ErrorCode::NotLeaderOrFollower);
    assert_eq!(
        b1.high_watermark(0),
        Some(2),
        "min(leader's HW, own log end)"
    );
}

#[test]
fn a_stale_leader_epoch_is_fenced_and_a_future_one_unknown() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    let mut request = b1.follower_fetch_request(0).unwrap();
    request.current_leader_epoch = 0;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::FencedLeaderEpoch
    );
    request.current_leader_epoch = 2;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::UnknownLeaderEpoch
    );
    request.current_leader_epoch = 1;
    assert_eq!(
        b1.replica_fetch(&request).error_code,
        ErrorCode::NotLeaderOrFollower
    );
    assert_eq!(fetch_once(&mut b1, &mut b0), ErrorCode::None);
    // A consumer's fetch is held to the same epochs (Kafka's getLocalLog with fetchOnlyLeader).
    let mut consumer = FetchRequest::consumer(0, 0, 1 << 20);
    for (epoch, error) in [
        (0, ErrorCode::FencedLeaderEpoch),
        (2, ErrorCode::UnknownLeaderEpoch),
        (1, ErrorCode::None),
        (idempo_protocol::NO_LEADER_EPOCH, ErrorCode::None),
    ] {
        consumer.current_leader_epoch = epoch;
        assert_eq!(
            b0.fetch(&consumer).error_code,
            error,
            "consumer at epoch {epoch}"
        );
    }
    consumer.current_leader_epoch = 1;
    assert_eq!(
        b1.fetch(&consumer).error_code,
        ErrorCode::NotLeaderOrFollower,
        "a follower serves no consumer"
    );
}

#[test]
fn the_leader_stamps_its_epoch_into_every_batch_and_the_follower_keeps_it() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.apply_leader_and_isr(&state(0, 4, &[0, 1], 2));
    b1.apply_leader_and_isr(&state(0, 4, &[0, 1], 2));
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    replicate(&mut b1, &mut b0);
    for b in [&b0, &b1] {
        let log = b.log(0).unwrap();
        assert_eq!(
            log.batches().next().unwrap().header.partition_leader_epoch,
            4
        );
        assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(4));
    }
}

/// A leader A (broker 0) replicates one batch to B (broker 1), then appends two more with
/// acks=1 and dies. B leads at epoch 2 and takes the producer's retry of sequence 2. A comes
/// back as follower: its fetch diverges at the end of epoch 1 on B, it truncates, reloads its
/// producer state, and replicates B's batch.
fn diverged_cluster(snapshots: bool) -> (Broker, Broker, idempo_broker::Truncation) {
    let (mut a, mut b, _) = cluster(1, &[0, 1]);
    a.handle(&produce(1, 30_000, batch(7, 0, 2), 1));
    replicate(&mut b, &mut a);
    if snapshots {
        assert_eq!(a.take_snapshots().expect("SimDisk"), vec![(0, 2)]);
    }
    a.handle(&produce(1, 30_000, batch(7, 2, 2), 2));
    a.handle(&produce(1, 30_000, batch(7, 4, 2), 3));
    if snapshots {
        assert_eq!(a.take_snapshots().expect("SimDisk"), vec![(0, 6)]);
    }
    b.apply_leader_and_isr(&state(1, 2, &[1], 2));
    let retry = b.handle(&produce(-1, 30_000, batch(7, 2, 2), 4));
    assert_eq!(
        produce_error(&retry.response.expect("acks=all, ISR of one").response),
        ErrorCode::None
    );
    a.apply_leader_and_isr(&state(1, 2, &[1], 2));
    let request = a.follower_fetch_request(0).expect("A follows B");
    assert_eq!((request.fetch_offset, request.last_fetched_epoch), (6, 1));
    let response = b.replica_fetch(&request);
    assert_eq!(
        response.diverging_epoch,
        Some(EpochEndOffset {
            epoch: 1,
            end_offset: 2
        })
    );
    let fetched = a.on_follower_fetch_response(&request, &response);
    let truncation = fetched.truncation.expect("the logs diverged");
    replicate(&mut a, &mut b);
    (a, b, truncation)
}

#[test]
fn diverging_epoch_truncates_the_follower_to_the_end_of_that_epoch() {
    let (a, b, truncation) = diverged_cluster(false);
    assert_eq!((truncation.from, truncation.to), (6, 2));
    assert_eq!(truncation.snapshot_loaded, None);
    assert_eq!(truncation.batches_replayed, 1, "rebuilt from the log start");
    let epochs = |x: &Broker| {
        x.log(0)
            .unwrap()
            .batches()
            .map(|s| (s.base_offset(), s.header.partition_leader_epoch))
            .collect::<Vec<_>>()
    };
    assert_eq!(epochs(&a), vec![(0, 1), (2, 2)]);
    assert_eq!(epochs(&a), epochs(&b), "the logs match");
    for x in [&a, &b] {
        let log = x.log(0).unwrap();
        let stored: usize = log.batches().map(|s| s.bytes.len()).sum();
        assert_eq!(log.size_bytes(), stored, "the size counts the batches kept");
        assert_eq!(log.index().batch_count(), 2);
    }
}

#[test]
fn truncation_reloads_the_newest_snapshot_at_or_below_the_new_log_end() {
    let (a, _, truncation) = diverged_cluster(true);
    assert_eq!(
        truncation.snapshot_loaded,
        Some(2),
        "the snapshot at 6 was deleted"
    );
    assert_eq!(truncation.batches_replayed, 0);
    let snapshots: Vec<String> = a
        .storage()
        .unsynced()
        .into_iter()
        .map(|(f, _)| f)
        .chain(idempo_broker::Storage::list(a.storage(), "partition-0/"))
        .filter(|f| f.ends_with(".snapshot"))
        .collect();
    assert!(
        snapshots
            .iter()
            .all(|f| !f.contains("00000000000000000006")),
        "{snapshots:?}"
    );
}

#[test]
fn a_new_leader_deduplicates_exactly_the_batches_it_holds() {
    let (mut a, _, _) = diverged_cluster(false);
    a.apply_leader_and_isr(&state(0, 3, &[0], 3));
    let dup = a.handle(&produce(1, 30_000, batch(7, 2, 2), 5));
    assert!(
        dup.outcomes[0].is_duplicate(),
        "sequence 2 is held (replicated from B)"
    );
    assert_eq!(dup.outcomes[0].response.base_offset, 2);
    let lost = a.handle(&produce(1, 30_000, batch(7, 4, 2), 6));
    assert!(
        lost.outcomes[0].is_appended(),
        "sequence 4 was truncated away, so its retry is new"
    );
    assert_eq!(lost.outcomes[0].response.base_offset, 4);
}

#[test]
fn follower_append_moves_the_five_batch_window() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    for seq in 0..7 {
        b0.handle(&produce(1, 30_000, batch(3, seq, 1), seq));
    }
    replicate(&mut b1, &mut b0);
    let entry = b1.producer_state(0).unwrap().entry(ProducerId(3)).unwrap();
    assert_eq!(entry.batches().len(), 5);
    assert_eq!(entry.last_sequence(), Sequence(6));
    assert_eq!(
        b1.producer_state(0).unwrap(),
        b0.producer_state(0).unwrap(),
        "the follower's producer state is the leader's"
    );
}

#[test]
fn an_answer_to_a_stale_fetch_is_dropped() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    let request = b1.follower_fetch_request(0).unwrap();
    let response = b0.replica_fetch(&request);
    b1.apply_leader_and_isr(&state(2, 2, &[2], 2));
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert!(fetched.stale);
    assert_eq!(b1.log_end_offset(0), Some(0));
}

#[test]
fn after_a_crash_a_replica_is_a_follower_of_no_known_leader_with_its_epoch_cache() {
    let mut b0 = Broker::new(BrokerConfig {
        sync_policy: SyncPolicy::EveryAppend,
        ..BrokerConfig::default()
    })
    .unwrap();
    b0.apply_leader_and_isr(&state(0, 5, &[0], 1));
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    b0.crash(|_, _| 0);
    let r = b0.replication(0).unwrap();
    assert_eq!(r.role(), ReplicaRole::Follower);
    assert_eq!(r.leader(), idempo_broker::NO_LEADER);
    assert_eq!(r.leader_epoch(), 5);
    assert!(b0.follower_fetch_request(0).is_none());
    let cache = b0.log(0).unwrap().leader_epoch_cache().entries().to_vec();
    assert_eq!(
        cache,
        vec![idempo_broker::EpochEntry {
            epoch: 5,
            start_offset: 0
        }]
    );
    assert!(matches!(
        b0.apply_leader_and_isr(&state(0, 5, &[0], 1)),
        LeaderAndIsrOutcome::Leader {
            new_leader: true,
            new_leader_epoch: false
        }
    ));
}

#[test]
fn granted_producer_id_blocks_are_used_until_exhausted() {
    let mut b = broker(1, 1);
    b.grant_producer_id_block(5_000, 2);
    assert_eq!(b.producer_ids_remaining(), 2);
    assert_eq!(b.init_producer_id().producer_id, ProducerId(5_000));
    assert_eq!(b.producer_ids_remaining(), 1);
    assert_eq!(b.init_producer_id().producer_id, ProducerId(5_001));
    assert_eq!(b.producer_ids_remaining(), 0);
    assert_eq!(
        b.init_producer_id().error_code,
        ErrorCode::CoordinatorLoadInProgress
    );
    b.grant_producer_id_block(9_000, 1_000);
    assert_eq!(b.init_producer_id().producer_id, ProducerId(9_000));
}

#[test]
fn a_cluster_broker_does_not_auto_create_partitions_it_was_not_told_about() {
    let (mut b0, _, _) = cluster(1, &[0]);
    let mut frame = produce(1, 30_000, batch(1, 0, 1), 1);
    if let Request::Produce(r) = &mut frame.request {
        r.partitions[0].partition = 3;
    }
    let handled = b0.handle(&frame);
    assert_eq!(
        produce_error(&handled.response.unwrap().response),
        ErrorCode::NotLeaderOrFollower
    );
    assert!(b0.log(3).is_none());
}

/// One step of a random replication schedule on three brokers.
#[derive(Clone, Debug)]
enum Step {
    /// The producer sends its next batch of `n` records to the current leader (acks=1).
    Produce(i32),
    /// Broker `i` (if a follower) fetches once from the leader.
    Fetch(usize),
    /// The controller elects broker `i` at the next leader epoch (clean or not: any replica).
    Elect(usize),
    /// Broker `i` takes a producer-state snapshot.
    Snapshot(usize),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (1..4i32).prop_map(Step::Produce),
        4 => (0..3usize).prop_map(Step::Fetch),
        1 => (0..3usize).prop_map(Step::Elect),
        1 => (0..3usize).prop_map(Step::Snapshot),
    ]
}

fn stored(b: &Broker) -> Vec<(i64, i32, Bytes)> {
    b.log(0)
        .expect("every replica holds the partition")
        .batches()
        .map(|s| (s.base_offset(), s.header.partition_leader_epoch, s.bytes))
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: idempo_testkit::proptest_cases(64),
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/replication.txt",
        ))),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// **Log matching and dedup follow the data**: for any schedule of produces to the
    /// current leader, follower fetches, elections of any replica (unclean ones included) and
    /// snapshots, once every follower has replicated from the final leader all three logs are
    /// identical batch for batch (offsets, epochs, bytes), every replica's producer state
    /// equals the leader's, and the leader answers a retry of every batch of the last five it
    /// holds as a duplicate at its original offset.
    #[test]
    fn replicas_converge_to_the_final_leader_with_its_producer_state(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut b = [0, 1, 2].map(|id| broker(id, 1));
        let (mut leader, mut epoch) = (0usize, 1);
        for x in &mut b {
            x.apply_leader_and_isr(&state(0, epoch, &[0], epoch));
        }
        let mut correlation = 0;
        for s in steps {
            match s {
                Step::Produce(n) => {
                    let next = b[leader]
                        .producer_state(0)
                        .and_then(|m| m.entry(ProducerId(9)))
                        .map_or(0, |e| e.last_sequence().0 + 1);
                    correlation += 1;
                    let handled = b[leader].handle(&produce(1, 30_000, batch(9, next, n), correlation));
                    proptest::prop_assert!(handled.outcomes[0].is_appended());
                }
                Step::Fetch(i) if i != leader => {
                    let [x, y] = b.get_disjoint_mut([i, leader]).expect("distinct brokers");
                    fetch_once(x, y);
                }
                Step::Fetch(_) => {}
                Step::Elect(i) => {
                    epoch += 1;
                    leader = i;
                    for x in &mut b {
                        x.apply_leader_and_isr(&state(i as i32, epoch, &[i as i32], epoch));
                    }
                }
                Step::Snapshot(i) => {
                    b[i].take_snapshots().expect("SimDisk");
                }
            }
        }
        for i in (0..3).filter(|i| *i != leader) {
            let [x, y] = b.get_disjoint_mut([i, leader]).expect("distinct brokers");
            replicate(x, y);
        }
        for i in 0..3 {
            proptest::prop_assert_eq!(stored(&b[i]), stored(&b[leader]), "replica {}", i);
            proptest::prop_assert_eq!(b[i].producer_state(0), b[leader].producer_state(0));
        }
        let held: Vec<(i64, Bytes)> = b[leader]
            .log(0)
            .expect("the leader holds the partition")
            .batches()
            .map(|s| (s.base_offset(), s.bytes))
            .collect();
        for (base_offset, bytes) in held.iter().rev().take(5) {
            // The client's copy: base offset 0, no epoch (both outside the CRC).
            let mut client = bytes.to_vec();
            idempo_protocol::record_batch::set_base_offset(&mut client, 0);
            idempo_protocol::record_batch::set_partition_leader_epoch(&mut client, -1);
            let retry = b[leader].produce(0, &Bytes::from(client));
            proptest::prop_assert!(retry.is_duplicate(), "{}", retry);
            proptest::prop_assert_eq!(retry.response.base_offset, *base_offset);
        }
    }
}

/// Delivers every partition state the controller decided to the brokers in `live`.
fn deliver(
    brokers: &mut [Broker],
    live: &[usize],
    decisions: &[idempo_broker::ControllerDecision],
) {
    for state in decisions.iter().filter_map(|d| d.state()) {
        for i in live {
            brokers[*i].apply_leader_and_isr(state);
        }
    }
}

#[test]
fn a_leader_kill_with_acks_all_and_min_insync_two_loses_and_duplicates_nothing() {
    use idempo_broker::{Controller, ControllerConfig};
    let config = ControllerConfig {
        brokers: 3,
        partitions: 1,
        replication_factor: 3,
        ..ControllerConfig::default()
    };
    let mut controller = Controller::new(config, 0).expect("a valid cluster");
    let mut b: Vec<Broker> = (0..3).map(|id| broker(id, 2)).collect();
    for x in &mut b {
        x.apply_leader_and_isr(controller.partition(0));
    }
    let leader = controller.partition(0).leader as usize;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Batch A is acknowledged; batch B reaches one follower only, and its ack is lost with
    // the leader.
    assert!(
        b[leader]
            .handle(&produce(-1, 30_000, batch(5, 0, 2), 1))
            .response
            .is_none()
    );
    for f in &followers {
        let [x, y] = b.get_disjoint_mut([*f, leader]).expect("distinct");
        replicate(x, y);
    }
    assert_eq!(b[leader].take_completed().len(), 1, "A acknowledged");
    assert!(
        b[leader]
            .handle(&produce(-1, 30_000, batch(5, 2, 2), 2))
            .response
            .is_none()
    );
    let [x, y] = b
        .get_disjoint_mut([followers[0], leader])
        .expect("distinct");
    fetch_once(x, y);
    // The leader dies; the controller elects a follower from the ISR.
    let decisions = controller.fence_broker(leader as i32);
    deliver(&mut b, &followers, &decisions);
    let new_leader = controller.partition(0).leader as usize;
    assert_ne!(new_leader, leader);
    let other = followers
        .iter()
        .copied()
        .find(|f| *f != new_leader)
        .expect("RF 3");
    let [x, y] = b.get_disjoint_mut([other, new_leader]).expect("distinct");
    replicate(x, y);
    // The producer retries B with the same sequence at the new leader.
    let retry = b[new_leader].handle(&produce(-1, 30_000, batch(5, 2, 2), 3));
    let [x, y] = b.get_disjoint_mut([other, new_leader]).expect("distinct");
    replicate(x, y);
    let answered = retry
        .response
        .map(|r| r.response)
        .or_else(|| {
            b[new_leader]
                .take_completed()
                .pop()
                .map(|c| c.response.response)
        })
        .expect("the retry is answered once the ISR has it");
    assert_eq!(produce_error(&answered), ErrorCode::None);
    // The old leader returns, follows and converges.
    let decisions = controller.broker_registered(leader as i32, 1);
    deliver(&mut b, &[0, 1, 2], &decisions);
    b[leader].apply_leader_and_isr(controller.partition(0));
    let [x, y] = b.get_disjoint_mut([leader, new_leader]).expect("distinct");
    replicate(x, y);
    let records: Vec<(i64, Sequence)> = b[new_leader]
        .log(0)
        .expect("held")
        .batches()
        .map(|s| (s.base_offset(), s.header.base_sequence))
        .collect();
    assert_eq!(
        records,
        vec![(0, Sequence(0)), (2, Sequence(2))],
        "A and B once each"
    );
    for x in &b {
        assert_eq!(
            stored(x),
            stored(&b[new_leader]),
            "every replica holds the same log"
        );
    }
}

// ---- Rules pinned by mutation testing (bench/MUTANTS.md) ----

/// A fetch answer for `follower`'s live fetch request, as a leader would send it.
fn answer(follower: &Broker) -> (FetchRequest, idempo_protocol::FetchResponse) {
    let request = follower.follower_fetch_request(0).expect("a follower");
    let response = idempo_protocol::FetchResponse {
        partition: 0,
        error_code: ErrorCode::None,
        high_watermark: 0,
        log_start_offset: 0,
        diverging_epoch: None,
        records: Bytes::new(),
    };
    (request, response)
}

#[test]
fn a_follower_fetching_from_the_leaders_previous_log_end_was_caught_up_at_that_fetch() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    b0.advance_time(20_000);
    fetch_once(&mut b1, &mut b0); // from 0, the leader's log end 1
    b0.handle(&produce(1, 30_000, batch(1, 1, 1), 2));
    b0.advance_time(40_000);
    fetch_once(&mut b1, &mut b0); // from 1, the log end at its previous fetch
    assert!(
        b0.take_alter_partitions(50_000).is_empty(),
        "caught up as of its fetch at 20 000"
    );
    let alters = b0.take_alter_partitions(50_001);
    assert_eq!(alters[0].new_isr, vec![0], "30 000 ms after 20 000");
}

#[test]
fn a_caught_up_follower_holds_back_the_high_watermark_in_or_out_of_the_isr() {
    let (mut b0, mut b1, _) = cluster(1, &[0]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    assert_eq!(b0.high_watermark(0), Some(2), "an ISR of one");
    fetch_once(&mut b1, &mut b0);
    fetch_once(&mut b1, &mut b0);
    assert_eq!(
        b0.replication(0).unwrap().pending_isr(),
        Some((IsrChange::Expand, &[0, 1][..]))
    );
    assert_eq!(b0.replication(0).unwrap().maximal_isr_len(), 2);
    b0.handle(&produce(1, 30_000, batch(1, 2, 1), 2));
    assert_eq!(
        b0.high_watermark(0),
        Some(2),
        "broker 1 is in the maximal ISR"
    );
    b0.alter_partition_rejected(0);
    assert!(b0.replication(0).unwrap().pending_isr().is_none());
    assert_eq!(b0.replication(0).unwrap().maximal_isr_len(), 1);
    b0.handle(&produce(1, 30_000, batch(1, 3, 1), 3));
    assert_eq!(
        b0.high_watermark(0),
        Some(2),
        "outside the ISR, broker 1 is still caught up"
    );
    b0.advance_time(LAG_MS + 1);
    b0.handle(&produce(1, 30_000, batch(1, 4, 1), 4));
    assert_eq!(
        b0.high_watermark(0),
        Some(5),
        "no longer caught up, out of the ISR: not waited for"
    );
    fetch_once(&mut b1, &mut b0);
    fetch_once(&mut b1, &mut b0);
    assert_eq!(
        b0.replication(0).unwrap().pending_isr(),
        Some((IsrChange::Expand, &[0, 1][..])),
        "proposed again once at the HW"
    );
    b0.advance_time(3 * LAG_MS);
    b0.handle(&produce(1, 30_000, batch(1, 5, 1), 5));
    assert_eq!(
        b0.high_watermark(0),
        Some(5),
        "long not caught up, but in the maximal ISR: waited for"
    );
    assert_eq!(b0.replication(0).unwrap().high_watermark(), 5);
}

#[test]
fn the_high_watermark_moves_on_the_fetch_that_moves_the_followers_log_end() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    assert!(
        b0.follower_fetch_request(0).is_none(),
        "a leader does not fetch"
    );
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    fetch_once(&mut b1, &mut b0);
    assert_eq!(b0.high_watermark(0), Some(0), "broker 1 fetched from 0");
    fetch_once(&mut b1, &mut b0);
    assert_eq!(b0.high_watermark(0), Some(1), "broker 1 fetched from 1");
    assert!(
        b0.take_replication_events()
            .contains(&ReplicationEvent::HighWatermarkMoved {
                partition: 0,
                from: 0,
                to: 1
            })
    );
}

/// Kafka's `maybeIncrementLeaderHW` reports a move only when the high watermark goes up: a
/// follower's fetch that moves its own log end while another ISR member lags moves nothing.
#[test]
fn a_fetch_that_leaves_the_high_watermark_where_it_was_records_no_move() {
    let (mut b0, mut b1, mut b2) = cluster(1, &[0, 1, 2]);
    fetch_once(&mut b2, &mut b0);
    b0.handle(&produce(1, 30_000, batch(1, 0, 3), 1));
    fetch_once(&mut b1, &mut b0);
    fetch_once(&mut b1, &mut b0);
    assert_eq!(b1.log_end_offset(0), Some(3), "broker 1 caught up");
    assert_eq!(
        b0.high_watermark(0),
        Some(0),
        "broker 2, in the ISR, is still at 0"
    );
    let moves: Vec<_> = b0
        .take_replication_events()
        .into_iter()
        .filter(|e| matches!(e, ReplicationEvent::HighWatermarkMoved { .. }))
        .collect();
    assert_eq!(moves, vec![], "no high-watermark move was recorded");
}

#[test]
fn a_rejected_isr_change_is_proposed_again() {
    let (mut b0, _, _) = cluster(1, &[0, 1]);
    assert_eq!(b0.take_alter_partitions(LAG_MS + 1).len(), 1);
    assert!(b0.take_alter_partitions(LAG_MS + 2).is_empty(), "in flight");
    b0.alter_partition_rejected(0);
    let again = b0.take_alter_partitions(LAG_MS + 3);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new_isr, vec![0]);
}

#[test]
fn a_fetch_from_a_broker_that_is_not_a_follower_is_refused() {
    let (mut b0, b1, _) = cluster(1, &[0, 1]);
    let mut request = b1.follower_fetch_request(0).unwrap();
    request.replica_id = 7;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::UnknownLeaderEpoch,
        "its leader epoch may be newer than ours"
    );
    request.current_leader_epoch = idempo_protocol::NO_LEADER_EPOCH;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::NotLeaderOrFollower
    );
    request.replica_id = 1;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::None,
        "no leader epoch: the epoch check is skipped"
    );
    request.partition = 5;
    assert_eq!(
        b0.replica_fetch(&request).error_code,
        ErrorCode::UnknownTopicOrPartition
    );
    let mut standalone = broker(0, 1);
    standalone.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    request.partition = 0;
    let refused = standalone.replica_fetch(&request);
    assert_eq!(refused.error_code, ErrorCode::NotLeaderOrFollower);
    assert_eq!(refused.high_watermark, 1);
}

#[test]
fn a_fetch_past_the_leaders_log_end_is_out_of_range() {
    let (mut b0, b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    let mut request = b1.follower_fetch_request(0).unwrap();
    request.fetch_offset = 3;
    let response = b0.replica_fetch(&request);
    assert_eq!(response.error_code, ErrorCode::OffsetOutOfRange);
    assert!(response.records.is_empty());
    request.fetch_offset = 2;
    request.max_bytes = -1;
    let response = b0.replica_fetch(&request);
    assert_eq!(response.error_code, ErrorCode::None, "at the log end");
    assert!(response.records.is_empty());
}

/// Broker 0 leads epoch 1 (offsets 0..4) then epoch 3 (4..8), one record per batch; broker 1
/// replicated all of it, then one more batch of epoch 3, so it holds 9 offsets with a HW of 8.
fn two_epoch_follower() -> (Broker, Broker) {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    for seq in 0..4 {
        b0.handle(&produce(1, 30_000, batch(1, seq, 1), seq));
    }
    replicate(&mut b1, &mut b0);
    b0.apply_leader_and_isr(&state(0, 3, &[0, 1], 2));
    b1.apply_leader_and_isr(&state(0, 3, &[0, 1], 2));
    for seq in 4..8 {
        b0.handle(&produce(1, 30_000, batch(1, seq, 1), seq));
    }
    replicate(&mut b1, &mut b0);
    b0.handle(&produce(1, 30_000, batch(1, 8, 1), 8));
    fetch_once(&mut b1, &mut b0);
    assert_eq!(
        (b1.log_end_offset(0), b1.high_watermark(0)),
        (Some(9), Some(8))
    );
    (b0, b1)
}

/// Where broker 1 of [`two_epoch_follower`] truncates to when the leader says its last
/// fetched epoch diverges at `leader`.
fn truncated_to(leader: EpochEndOffset) -> Option<i64> {
    let (_, mut b1) = two_epoch_follower();
    let (request, mut response) = answer(&b1);
    response.high_watermark = 100;
    response.diverging_epoch = Some(leader);
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert!(!fetched.stale);
    fetched.truncation.map(|t| {
        assert_eq!(t.diverging_epoch, Some(leader));
        assert_eq!(b1.log_end_offset(0), Some(t.to));
        t.to
    })
}

#[test]
fn a_diverging_epoch_truncates_as_kafkas_get_offset_truncation_state() {
    let e = |epoch, end_offset| EpochEndOffset { epoch, end_offset };
    assert_eq!(
        truncated_to(e(3, 6)),
        Some(6),
        "same epoch: the smaller of both ends"
    );
    assert_eq!(
        truncated_to(e(2, 6)),
        Some(4),
        "an epoch this replica does not have: the end of its floor epoch 1"
    );
    assert_eq!(
        truncated_to(e(5, 7)),
        Some(7),
        "an epoch above every one it has: the leader's end"
    );
    assert_eq!(
        truncated_to(e(3, -1)),
        Some(8),
        "the leader knows no end: the high watermark"
    );
    assert_eq!(
        truncated_to(e(3, 20)),
        None,
        "nothing past the log end to cut"
    );
}

#[test]
fn out_of_range_truncates_the_follower_to_the_leaders_high_watermark_when_longer() {
    let (_, mut b1) = two_epoch_follower();
    let (request, mut response) = answer(&b1);
    response.error_code = ErrorCode::OffsetOutOfRange;
    response.high_watermark = 9;
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert_eq!(fetched.truncation, None, "a HW at the log end cuts nothing");
    assert_eq!(b1.high_watermark(0), Some(8), "an error answer moves no HW");
    response.high_watermark = 5;
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert_eq!(fetched.truncation.map(|t| (t.from, t.to)), Some((9, 5)));
    assert_eq!(fetched.log_end_offset, 5);
    assert_eq!(b1.high_watermark(0), Some(5));
}

#[test]
fn an_answer_for_another_partition_is_dropped() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    let request = b1.follower_fetch_request(0).unwrap();
    let mut response = b0.replica_fetch(&request);
    response.partition = 1;
    assert!(b1.on_follower_fetch_response(&request, &response).stale);
    assert_eq!(b1.log_end_offset(0), Some(0));
    let mut moved = request;
    moved.fetch_offset = 1;
    let response = b0.replica_fetch(&request);
    assert!(
        b1.on_follower_fetch_response(&moved, &response).stale,
        "a fetch from an offset the follower no longer fetches from"
    );
}

#[test]
fn a_follower_appends_only_the_batches_past_its_log_end() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    for seq in 0..2 {
        b0.handle(&produce(1, 30_000, batch(1, seq, 1), seq));
    }
    replicate(&mut b1, &mut b0);
    for seq in 2..4 {
        b0.handle(&produce(1, 30_000, batch(1, seq, 1), seq));
    }
    let mut from_start = b1.follower_fetch_request(0).unwrap();
    from_start.fetch_offset = 0;
    from_start.last_fetched_epoch = idempo_protocol::NO_LEADER_EPOCH;
    let all = b0.replica_fetch(&from_start).records;
    let (request, mut response) = answer(&b1);
    response.records = all;
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert_eq!(fetched.error_code, ErrorCode::None);
    assert_eq!(fetched.batches_appended, 2, "offsets 0 and 1 are held");
    assert_eq!(b1.log_end_offset(0), Some(4));
}

#[test]
fn a_follower_refuses_bytes_that_are_not_whole_batches_and_keeps_those_before() {
    let (_, mut b1, _) = cluster(1, &[0, 1]);
    let (request, mut response) = answer(&b1);
    response.records = Bytes::from_static(&[0, 1, 2]);
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert_eq!(fetched.error_code, ErrorCode::CorruptMessage);
    assert_eq!(fetched.batches_appended, 0);
    let whole = batch(1, 0, 1);
    let mut bytes = whole.to_vec();
    bytes.extend_from_slice(&whole[..whole.len() - 1]);
    response.records = Bytes::from(bytes);
    let fetched = b1.on_follower_fetch_response(&request, &response);
    assert_eq!(
        fetched.error_code,
        ErrorCode::CorruptMessage,
        "a batch cut short"
    );
    assert_eq!(fetched.log_end_offset, 1, "the whole batch before it stays");
    assert_eq!(
        fetched.batches_appended, 1,
        "the batch appended before the failure is reported"
    );
    assert_eq!(b1.log_end_offset(0), Some(1));
    let mut empty_length = whole.to_vec();
    empty_length[8..12].copy_from_slice(&(-12i32).to_be_bytes());
    let (request, mut response) = answer(&b1);
    response.records = Bytes::from(empty_length);
    assert_eq!(
        b1.on_follower_fetch_response(&request, &response)
            .error_code,
        ErrorCode::CorruptMessage,
        "a batch length announcing zero bytes in all"
    );
}

#[test]
fn a_follower_with_sync_every_append_keeps_what_it_replicated_through_a_crash() {
    for (policy, kept) in [(SyncPolicy::EveryAppend, 2), (SyncPolicy::Never, 0)] {
        let (mut b0, _, _) = cluster(1, &[0, 1]);
        let mut b1 = Broker::new(BrokerConfig {
            broker_id: 1,
            sync_policy: policy,
            ..BrokerConfig::default()
        })
        .unwrap();
        b1.apply_leader_and_isr(&state(0, 1, &[0, 1], 1));
        b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
        replicate(&mut b1, &mut b0);
        b1.crash(|_, _| 0);
        assert_eq!(b1.log_end_offset(0), Some(kept), "{policy:?}");
    }
}

#[test]
fn min_insync_replicas_is_capped_at_the_replication_factor() {
    let mut b = broker(0, 3);
    b.apply_leader_and_isr(&LeaderAndIsr {
        replicas: vec![0, 1],
        ..state(0, 1, &[0, 1], 1)
    });
    assert_eq!(b.replication(0).unwrap().effective_min_isr(3), 2);
    assert_eq!(b.replication(0).unwrap().effective_min_isr(1), 1);
    assert!(
        b.handle(&produce(-1, 30_000, batch(1, 0, 1), 1))
            .response
            .is_none(),
        "an ISR of two meets min.insync.replicas=3 on two replicas"
    );
    assert_eq!(b.delayed_produce_count(), 1);
}

#[test]
fn a_reelected_leader_keeps_its_followers_log_ends_and_a_new_one_knows_none() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    replicate(&mut b1, &mut b0);
    let before = b0.replication(0).unwrap().followers().to_vec();
    b0.advance_time(5_000);
    b0.apply_leader_and_isr(&state(0, 1, &[0, 1], 2));
    assert_eq!(
        b0.replication(0).unwrap().followers(),
        &before[..],
        "same leader epoch: nothing reset"
    );
    b0.handle(&produce(1, 30_000, batch(1, 1, 1), 2));
    b0.apply_leader_and_isr(&state(0, 2, &[0, 1], 3));
    let f = b0.replication(0).unwrap().followers();
    assert_eq!(f[0].broker, 1);
    assert_eq!(f[0].log_end_offset, 1, "kept");
    assert_eq!(f[0].last_fetch_leader_log_end_offset, 2);
    assert_eq!(f[0].last_fetch_time_ms, Some(5_000));
    assert_eq!(f[0].last_caught_up_time_ms, Some(5_000));
    assert_eq!(
        (f[1].broker, f[1].log_end_offset, f[1].last_fetch_time_ms),
        (2, -1, None),
        "broker 2, out of the ISR, never fetched"
    );
    assert_eq!(f[1].last_caught_up_time_ms, None);
    b1.apply_leader_and_isr(&state(1, 3, &[0, 1], 4));
    let f = b1.replication(0).unwrap().followers();
    assert_eq!(
        f.iter()
            .map(|f| (f.broker, f.log_end_offset))
            .collect::<Vec<_>>(),
        vec![(0, -1), (2, -1)],
        "a new leader knows nothing of its followers"
    );
}

#[test]
fn a_delayed_produce_is_counted_until_answered() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    assert_eq!(b0.delayed_produce_count(), 0);
    b0.handle(&produce(-1, 30_000, batch(1, 0, 1), 1));
    assert_eq!(b0.delayed_produce_count(), 1);
    replicate(&mut b1, &mut b0);
    assert_eq!(b0.delayed_produce_count(), 0);
    assert_eq!(b0.take_completed().len(), 1);
    assert!(b0.take_completed().is_empty(), "drained");
}

#[test]
fn a_leaders_fetch_of_its_last_fetched_epoch_checks_where_that_epoch_ends() {
    let (mut b0, b1) = two_epoch_follower();
    let (mut request, _) = answer(&b1);
    assert_eq!(request.last_fetched_epoch, 3);
    request.last_fetched_epoch = 2;
    request.fetch_offset = 4;
    let response = b0.replica_fetch(&request);
    assert_eq!(
        response.diverging_epoch,
        Some(EpochEndOffset {
            epoch: 1,
            end_offset: 4
        }),
        "the leader has no epoch 2: its floor epoch 1 ends at 4"
    );
    assert_eq!(response.high_watermark, 8);
    request.last_fetched_epoch = 1;
    request.fetch_offset = 5;
    assert_eq!(
        b0.replica_fetch(&request).diverging_epoch,
        Some(EpochEndOffset {
            epoch: 1,
            end_offset: 4
        }),
        "epoch 1 ends before offset 5"
    );
    request.fetch_offset = 4;
    let response = b0.replica_fetch(&request);
    assert_eq!(response.diverging_epoch, None, "epoch 1 ends exactly at 4");
    assert_eq!(response.error_code, ErrorCode::None);
    request.last_fetched_epoch = 4;
    let response = b0.replica_fetch(&request);
    assert_eq!(
        response.error_code,
        ErrorCode::OffsetOutOfRange,
        "an epoch above the leader's latest"
    );
}

#[test]
fn fetch_errors_carry_no_offsets_for_an_unknown_partition_and_no_log_end_for_a_stale_answer() {
    let (mut b0, b1, _) = cluster(1, &[0, 1]);
    let mut request = b1.follower_fetch_request(0).unwrap();
    request.partition = 5;
    let response = b0.replica_fetch(&request);
    assert_eq!(response.error_code, ErrorCode::UnknownTopicOrPartition);
    assert_eq!(
        (response.high_watermark, response.log_start_offset),
        (-1, -1)
    );
    let mut stranger = broker(9, 1);
    let fetched = stranger.on_follower_fetch_response(&request, &response);
    assert!(fetched.stale);
    assert_eq!(fetched.log_end_offset, -1, "no such partition here");
}

#[test]
fn a_state_with_an_older_partition_epoch_at_the_same_leader_epoch_is_ignored() {
    let (mut b0, _, _) = cluster(1, &[0, 1, 2]);
    b0.apply_leader_and_isr(&state(0, 1, &[0, 1], 3));
    assert_eq!(
        b0.apply_leader_and_isr(&state(0, 1, &[0, 1, 2], 2)),
        LeaderAndIsrOutcome::Ignored
    );
    assert_eq!(b0.replication(0).unwrap().isr(), &[0, 1]);
    assert_eq!(b0.replication(0).unwrap().partition_epoch(), 3);
    assert_eq!(b0.replication(0).unwrap().replicas(), &[0, 1, 2]);
    assert_eq!(
        b0.apply_leader_and_isr(&state(0, 1, &[0], 3)),
        LeaderAndIsrOutcome::Leader {
            new_leader: false,
            new_leader_epoch: false
        },
        "the same epochs again are applied"
    );
    assert_eq!(b0.replication(0).unwrap().isr(), &[0]);
    assert_eq!(
        b0.apply_leader_and_isr(&state(0, 2, &[0], 1)),
        LeaderAndIsrOutcome::Leader {
            new_leader: false,
            new_leader_epoch: true
        },
        "a newer leader epoch wins whatever its partition epoch"
    );
    assert_eq!(b0.replication(0).unwrap().leader_epoch(), 2);
    assert_eq!(b0.replication(0).unwrap().leader(), 0);
}

#[test]
fn a_reelected_leader_expands_the_isr_only_with_followers_past_its_new_epoch_start() {
    let (mut b0, _, mut b2) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    b0.handle(&produce(1, 30_000, batch(1, 1, 1), 2));
    assert_eq!(b0.high_watermark(0), Some(0), "broker 1 fetched nothing");
    b0.apply_leader_and_isr(&state(0, 2, &[0, 1], 2));
    b2.apply_leader_and_isr(&state(0, 2, &[0, 1], 2));
    let mut one_batch = b2.follower_fetch_request(0).unwrap();
    one_batch.max_bytes = 1;
    let response = b0.replica_fetch(&one_batch);
    b2.on_follower_fetch_response(&one_batch, &response);
    assert_eq!(b2.log_end_offset(0), Some(1));
    assert!(
        b0.take_alter_partitions(0).is_empty(),
        "offset 1 is at or above the HW but before epoch 2 began at 2"
    );
    fetch_once(&mut b2, &mut b0);
    fetch_once(&mut b2, &mut b0);
    assert_eq!(b0.take_alter_partitions(0)[0].new_isr, vec![0, 1, 2]);
}

#[test]
fn a_leader_answers_a_fetch_from_its_log_start_with_a_last_fetched_epoch() {
    let (mut b0, b1) = two_epoch_follower();
    let (mut request, _) = answer(&b1);
    request.last_fetched_epoch = 1;
    request.fetch_offset = 0;
    let response = b0.replica_fetch(&request);
    assert_eq!(response.error_code, ErrorCode::None);
    assert_eq!(response.diverging_epoch, None);
    assert!(!response.records.is_empty());
}

/// Broker 1 on a [`TestDisk`](support::TestDisk), following broker 0, holding offsets 0..3 with a
/// producer-state snapshot at 1.
fn follower_on_failing_disk() -> Broker<support::TestDisk> {
    let (mut b0, _, _) = cluster(1, &[0, 1]);
    let config = BrokerConfig {
        broker_id: 1,
        ..BrokerConfig::default()
    };
    let (mut b1, _) = Broker::open(config, support::TestDisk::default()).expect("a valid config");
    b1.apply_leader_and_isr(&state(0, 1, &[0, 1], 1));
    for seq in 0..3 {
        b0.handle(&produce(1, 30_000, batch(1, seq, 1), seq));
    }
    for max_bytes in [1, idempo_broker::replication::REPLICA_FETCH_MAX_BYTES] {
        let mut request = b1.follower_fetch_request(0).expect("a follower");
        request.max_bytes = max_bytes;
        let response = b0.replica_fetch(&request);
        b1.on_follower_fetch_response(&request, &response);
        if max_bytes == 1 {
            assert_eq!(b1.take_snapshots().expect("a working disk"), vec![(0, 1)]);
        }
    }
    assert_eq!(b1.log_end_offset(0), Some(3));
    b1
}

/// Answers broker `b`'s fetch `OFFSET_OUT_OF_RANGE` with a leader HW of 2 (so it cuts to 2).
fn out_of_range_to_two(b: &mut Broker<support::TestDisk>) -> idempo_broker::FollowerFetched {
    let request = b.follower_fetch_request(0).expect("a follower");
    let response = idempo_protocol::FetchResponse {
        partition: 0,
        error_code: ErrorCode::OffsetOutOfRange,
        high_watermark: 2,
        log_start_offset: 0,
        diverging_epoch: None,
        records: Bytes::new(),
    };
    b.on_follower_fetch_response(&request, &response)
}

#[test]
fn a_truncation_the_disk_fails_is_counted_and_reports_nothing_cut() {
    let mut b1 = follower_on_failing_disk();
    b1.storage_mut().refuse(support::Op::Remove);
    b1.storage_mut().refuse(support::Op::Truncate);
    assert_eq!(out_of_range_to_two(&mut b1).truncation, None);
    assert_eq!(b1.storage_failures(), 1, "the failed truncation");

    let mut b1 = follower_on_failing_disk();
    b1.storage_mut().refuse_on(support::Op::Read, ".snapshot");
    assert_eq!(out_of_range_to_two(&mut b1).truncation, None);
    assert_eq!(
        b1.storage_failures(),
        1,
        "cut, but the snapshot to reload producer state from was unreadable"
    );
    assert_eq!(b1.log_end_offset(0), Some(2));
}

#[test]
fn a_follower_syncing_every_append_syncs_only_when_it_appended() {
    let (mut b0, _, _) = cluster(1, &[0, 1]);
    let config = BrokerConfig {
        broker_id: 1,
        sync_policy: SyncPolicy::EveryAppend,
        ..BrokerConfig::default()
    };
    let (mut b1, _) = Broker::open(config, support::TestDisk::default()).unwrap();
    b1.apply_leader_and_isr(&state(0, 1, &[0, 1], 1));
    b1.storage_mut().refuse(support::Op::Sync);
    b0.handle(&produce(1, 30_000, batch(1, 0, 1), 1));
    let request = b1.follower_fetch_request(0).unwrap();
    let response = b0.replica_fetch(&request);
    assert_eq!(
        b1.on_follower_fetch_response(&request, &response)
            .error_code,
        ErrorCode::KafkaStorageError,
        "the append's sync failed"
    );
    let request = b1.follower_fetch_request(0).unwrap();
    let empty = b0.replica_fetch(&request);
    assert!(empty.records.is_empty());
    assert_eq!(
        b1.on_follower_fetch_response(&request, &empty).error_code,
        ErrorCode::None,
        "nothing appended, nothing synced (the unsynced batch waits for the next append)"
    );
}

#[test]
fn an_out_of_range_answer_at_the_followers_log_end_changes_nothing() {
    let (mut b0, mut b1, _) = cluster(1, &[0, 1]);
    b0.handle(&produce(1, 30_000, batch(1, 0, 2), 1));
    replicate(&mut b1, &mut b0);
    b0.apply_leader_and_isr(&state(0, 2, &[0, 1], 2));
    b0.apply_leader_and_isr(&state(1, 3, &[0, 1], 3));
    let (request, mut response) = answer(&b0);
    assert_eq!(
        request.last_fetched_epoch, 2,
        "epoch 2 was assigned at the log end"
    );
    response.error_code = ErrorCode::OffsetOutOfRange;
    response.high_watermark = 2;
    let fetched = b0.on_follower_fetch_response(&request, &response);
    assert_eq!(fetched.truncation, None);
    assert_eq!(
        b0.follower_fetch_request(0).unwrap().last_fetched_epoch,
        2,
        "the epoch cache is untouched"
    );
}

/// Brokers 0, 1, 2 with `truncation`; broker 0 leads at epoch 1 with ISR {0, 1}. Batch A
/// (offsets 0..3) and batch B (3..6, acks=all) are written; broker 1 fetches both and the
/// leader acknowledges B, but the answer that would tell broker 1 the new high watermark is
/// lost: broker 1 holds 0..6 with its high watermark at 3.
fn acknowledged_above_the_followers_mark(
    truncation: idempo_broker::TruncationMode,
) -> (Broker, Broker) {
    let config = |id| BrokerConfig {
        broker_id: id,
        replica_lag_time_max_ms: LAG_MS,
        truncation,
        ..BrokerConfig::default()
    };
    let mut b0 = Broker::new(config(0)).expect("a valid config");
    let mut b1 = Broker::new(config(1)).expect("a valid config");
    for b in [&mut b0, &mut b1] {
        b.apply_leader_and_isr(&state(0, 1, &[0, 1], 1));
    }
    b0.handle(&produce(1, 30_000, batch(1, 0, 3), 1));
    fetch_once(&mut b1, &mut b0);
    fetch_once(&mut b1, &mut b0);
    b0.handle(&produce(-1, 30_000, batch(1, 3, 3), 2));
    fetch_once(&mut b1, &mut b0);
    let request = b1.follower_fetch_request(0).expect("b1 follows b0");
    let _lost = b0.replica_fetch(&request);
    assert_eq!(b0.high_watermark(0), Some(6));
    let acked = b0.take_completed();
    assert_eq!(acked.len(), 1, "B is acknowledged to its acks=all producer");
    assert_eq!(
        (b1.log_end_offset(0), b1.high_watermark(0)),
        (Some(6), Some(3))
    );
    (b0, b1)
}

#[test]
fn high_watermark_truncation_cuts_acknowledged_batches_above_the_followers_mark() {
    use idempo_broker::TruncationMode;
    let (_, mut b1) = acknowledged_above_the_followers_mark(TruncationMode::HighWatermark);
    let request = b1.follower_fetch_request(0).expect("b1 follows b0");
    assert_eq!(
        request.last_fetched_epoch,
        idempo_protocol::NO_LEADER_EPOCH,
        "before KIP-101 a fetch carries no epoch"
    );
    b1.take_replication_events();
    // Broker 2 becomes the leader: broker 1 follows a new leader and cuts at its mark.
    b1.apply_leader_and_isr(&state(2, 2, &[1, 2], 2));
    assert_eq!(
        b1.log_end_offset(0),
        Some(3),
        "acknowledged batch B is gone"
    );
    let truncated = b1
        .take_replication_events()
        .into_iter()
        .any(|e| matches!(e, ReplicationEvent::Truncated(t) if (t.from, t.to) == (6, 3)));
    assert!(truncated, "the truncation is reported");
    // The same leader again at a new epoch is no leader change: nothing more is cut.
    b1.apply_leader_and_isr(&state(2, 3, &[1, 2], 3));
    assert_eq!(b1.log_end_offset(0), Some(3));
}

#[test]
fn leader_epoch_truncation_keeps_what_the_follower_holds_on_a_leader_change() {
    use idempo_broker::TruncationMode;
    let (_, mut b1) = acknowledged_above_the_followers_mark(TruncationMode::LeaderEpoch);
    assert_eq!(
        b1.follower_fetch_request(0).map(|r| r.last_fetched_epoch),
        Some(1),
        "the fetch carries the epoch of the last batch"
    );
    b1.apply_leader_and_isr(&state(2, 2, &[1, 2], 2));
    assert_eq!(
        b1.log_end_offset(0),
        Some(6),
        "only a diverging epoch from the leader cuts the log"
    );
}

#[test]
fn truncation_mode_names_round_trip() {
    use idempo_broker::TruncationMode;
    for m in TruncationMode::ALL {
        assert_eq!(m.name().parse::<TruncationMode>(), Ok(m));
        assert_eq!(
            m.to_string().parse::<TruncationMode>(),
            Ok(m),
            "printed as its name"
        );
    }
    assert_eq!(TruncationMode::default(), TruncationMode::LeaderEpoch);
    let refused = "hw".parse::<TruncationMode>().expect_err("not a mode");
    let text = refused.to_string();
    for word in ["\"hw\"", "leader-epoch", "high-watermark"] {
        assert!(text.contains(word), "{text:?} names {word}");
    }
}
