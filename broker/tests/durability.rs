//! Durability: what a crash keeps, what recovery rebuilds, and what snapshots change.
//!
//! Properties, each a test below:
//! - **every crash point recovers the synced prefix**: for every prefix of a recorded run,
//!   a crash leaves exactly the batches synced so far, and producer state equal to replaying
//!   them (`every_crash_point_of_a_recorded_run_recovers_exactly_the_synced_prefix`);
//! - **a torn write is cut, not trusted** (`a_torn_last_write_is_truncated_and_everything_before_it_kept`);
//! - **snapshots are a shortcut, never an answer**: a corrupt or out-of-range snapshot falls
//!   back to an older one or to a full replay, with the same state;
//! - **EveryAppend loses no acknowledged batch**;
//! - **producer ids never repeat across crashes**;
//! - all of these at once over random operations, crash points and tears
//!   (`random_runs_with_random_crashes_keep_the_durability_invariants`).
//!
//! proptest failures are saved in `broker/proptest-regressions/durability.txt`.

use bytes::Bytes;
use idempo_broker::{
    Broker, BrokerConfig, ProducerStateManager, SimDisk, SnapshotMode, SnapshotRejection, Storage,
    SyncPolicy, Tear,
};
use idempo_protocol::{
    ErrorCode, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence, record_batch,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn batch(producer_id: i64, epoch: i16, base_sequence: i32, count: i32, ts: i64) -> Bytes {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("p{producer_id} s{}", base_sequence + i)))
        .collect();
    RecordBatch::idempotent(
        ProducerId(producer_id),
        ProducerEpoch(epoch),
        Sequence(base_sequence),
        ts,
        records,
    )
    .to_bytes()
}

fn broker(sync_policy: SyncPolicy, snapshot_mode: SnapshotMode) -> Broker {
    Broker::new(BrokerConfig {
        sync_policy,
        snapshot_mode,
        producer_id_expiration_ms: i64::MAX,
        ..BrokerConfig::default()
    })
    .expect("a valid configuration")
}

/// The stored bytes of every retained batch of `partition`, oldest first.
fn log_of(b: &Broker, partition: i32) -> Vec<Bytes> {
    b.log(partition)
        .map(|l| l.batches().map(|s| s.bytes).collect())
        .unwrap_or_default()
}

/// The producer state obtained by replaying the whole retained log from scratch.
fn replayed(b: &Broker, partition: i32) -> ProducerStateManager {
    let mut state = ProducerStateManager::new(b.config().dedup_window);
    if let Some(log) = b.log(partition) {
        for stored in log.batches() {
            state.update(&stored.header, stored.base_offset());
        }
    }
    state
}

fn state_of(b: &Broker, partition: i32) -> ProducerStateManager {
    b.producer_state(partition)
        .cloned()
        .unwrap_or_else(|| ProducerStateManager::new(b.config().dedup_window))
}

// ------------------------------------------------------------------------------------------
// A recorded run, crashed at every point
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Step {
    Produce {
        partition: i32,
        producer_id: i64,
        sequence: i32,
        count: i32,
    },
    Flush,
    Snapshot,
}

fn recorded_run() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut next = [[0i32; 3]; 2];
    for i in 0..30 {
        let partition = i % 2;
        let producer_id = (i % 3) as i64 + 1;
        let count = (i % 4) + 1;
        let slot = &mut next[partition as usize][(producer_id - 1) as usize];
        steps.push(Step::Produce {
            partition,
            producer_id,
            sequence: *slot,
            count,
        });
        *slot += count;
        if i % 5 == 4 {
            steps.push(Step::Flush);
        }
        if i % 11 == 10 {
            steps.push(Step::Snapshot);
        }
    }
    steps
}

/// Runs `steps` on a fresh broker that syncs only when told to; returns the broker and, per
/// partition, how many batches were synced.
fn run(steps: &[Step], mode: SnapshotMode) -> (Broker, [usize; 2]) {
    let mut b = broker(SyncPolicy::Never, mode);
    let mut synced = [0usize; 2];
    for step in steps {
        match *step {
            Step::Produce {
                partition,
                producer_id,
                sequence,
                count,
            } => {
                let o = b.produce(partition, &batch(producer_id, 0, sequence, count, 1));
                assert!(o.is_appended(), "{o}");
            }
            Step::Flush => {
                b.flush().expect("SimDisk does not fail");
                for p in 0..2 {
                    synced[p as usize] = log_of(&b, p).len();
                }
            }
            Step::Snapshot => {
                b.take_snapshots().expect("SimDisk does not fail");
            }
        }
    }
    (b, synced)
}

/// **Every crash point recovers the synced prefix**: for every prefix of a recorded run of
/// produces, syncs and snapshots on two partitions, a crash that drops every unsynced byte
/// leaves exactly the batches synced by then (byte for byte), reports the others as lost,
/// and rebuilds producer state equal to replaying the recovered log from scratch.
#[test]
fn every_crash_point_of_a_recorded_run_recovers_exactly_the_synced_prefix() {
    let steps = recorded_run();
    for mode in [SnapshotMode::FullWindow, SnapshotMode::LastBatchOnly] {
        for k in 0..=steps.len() {
            let (mut b, synced) = run(&steps[..k], mode);
            let before: Vec<Vec<Bytes>> = (0..2).map(|p| log_of(&b, p)).collect();
            let report = b.crash(|_, _| 0);
            for p in 0..2 {
                let after = log_of(&b, p);
                let want = &before[p as usize][..synced[p as usize]];
                assert_eq!(after, want, "prefix {k}, partition {p}");
                if mode == SnapshotMode::FullWindow {
                    assert_eq!(
                        state_of(&b, p),
                        replayed(&b, p),
                        "prefix {k}, partition {p}"
                    );
                }
                if let Some(r) = report.partitions.iter().find(|r| r.partition == p) {
                    let lost: Vec<Bytes> = r.lost_batches.iter().map(|s| s.bytes.clone()).collect();
                    assert_eq!(lost, before[p as usize][synced[p as usize]..], "prefix {k}");
                    assert_eq!(r.truncated_bytes(), 0, "nothing torn");
                }
            }
        }
    }
}

/// For every prefix of the recorded run, a crash that keeps all of the unsynced tail loses
/// nothing, and one that keeps all but its last byte loses exactly the last batch written.
#[test]
fn every_crash_point_with_a_tear_keeps_the_whole_batches_that_reached_the_disk() {
    let steps = recorded_run();
    for k in 0..=steps.len() {
        let (mut whole, _) = run(&steps[..k], SnapshotMode::FullWindow);
        let before: Vec<Vec<Bytes>> = (0..2).map(|p| log_of(&whole, p)).collect();
        whole.crash(|_, unsynced| unsynced);
        for p in 0..2 {
            assert_eq!(log_of(&whole, p), before[p as usize], "prefix {k}");
            assert_eq!(state_of(&whole, p), replayed(&whole, p));
        }
        let (mut torn, synced) = run(&steps[..k], SnapshotMode::FullWindow);
        let report = torn.crash(|_, unsynced| unsynced.saturating_sub(1));
        for p in 0..2 {
            let mut want = before[p as usize].clone();
            if want.len() > synced[p as usize] {
                let last = want.pop().expect("an unsynced batch");
                let r = report.partitions.iter().find(|r| r.partition == p);
                let r = r.expect("the partition was recovered");
                assert_eq!(r.truncated_bytes(), last.len() as u64 - 1, "prefix {k}");
                assert_eq!(r.lost_batches.len(), 1);
            }
            assert_eq!(log_of(&torn, p), want, "prefix {k}, partition {p}");
            assert_eq!(state_of(&torn, p), replayed(&torn, p));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Torn writes, corrupt and stale snapshots
// ------------------------------------------------------------------------------------------

#[test]
fn a_torn_last_write_is_truncated_and_everything_before_it_kept() {
    let mut b = broker(SyncPolicy::Never, SnapshotMode::FullWindow);
    b.produce(0, &batch(1, 0, 0, 3, 1));
    b.produce(0, &batch(1, 0, 3, 3, 1));
    let third = batch(1, 0, 6, 3, 1);
    b.produce(0, &third);
    let before = log_of(&b, 0);
    // Keep the first two batches and 20 bytes of the third: a torn page.
    let keep = (before[0].len() + before[1].len() + 20) as u64;
    let report = b.crash(Tear::keep_fn(&[Tear {
        file: "partition-0/00000000000000000000.log".into(),
        keep_bytes: keep,
    }]));
    let r = &report.partitions[0];
    assert_eq!(log_of(&b, 0), before[..2].to_vec());
    assert_eq!(r.log_end_offset_before, 9);
    assert_eq!(r.log_end_offset_after(), 6);
    assert_eq!(r.truncated_bytes(), 20);
    assert_eq!(r.lost_batches.len(), 1);
    assert_eq!(r.lost_batches[0].bytes, before[2]);
    let corruption = r.recovery.log.corruption.as_ref().expect("the torn batch");
    assert!(corruption.reason.contains("torn"), "{}", corruption.reason);
    assert_eq!(report.files[0].unsynced_kept, keep);
    // The producer continues after its last surviving batch.
    assert!(b.produce(0, &third).is_appended());
}

#[test]
fn a_corrupt_batch_in_a_synced_segment_cuts_the_log_there() {
    let mut b = broker(SyncPolicy::EveryAppend, SnapshotMode::FullWindow);
    for seq in [0, 2, 4] {
        b.produce(0, &batch(1, 0, seq, 2, 1));
    }
    let first = log_of(&b, 0)[0].len() as u64;
    // Flip a byte inside the second batch's records: its CRC no longer matches.
    b.storage_mut()
        .corrupt("partition-0/00000000000000000000.log", first + 70)
        .unwrap();
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0];
    assert_eq!(r.log_end_offset_after(), 2);
    assert!(r.truncated_bytes() > 0);
    assert!(
        r.recovery
            .log
            .corruption
            .as_ref()
            .is_some_and(|c| c.position == first)
    );
}

fn snapshots(b: &Broker) -> Vec<String> {
    b.storage()
        .list("partition-0/")
        .into_iter()
        .filter(|f| f.ends_with(".snapshot"))
        .collect()
}

/// Produces batches of 2 records to partition 0 for producer 1, taking a snapshot after
/// batches 2 and 4 (at offsets 4 and 8), then two more batches (log end 12).
fn broker_with_two_snapshots() -> Broker {
    let mut b = broker(SyncPolicy::EveryAppend, SnapshotMode::FullWindow);
    for i in 0..6 {
        assert!(b.produce(0, &batch(1, 0, i * 2, 2, 1)).is_appended());
        if i == 1 || i == 3 {
            b.take_snapshots().expect("SimDisk does not fail");
        }
    }
    assert_eq!(
        snapshots(&b),
        vec![
            "partition-0/00000000000000000004.snapshot",
            "partition-0/00000000000000000008.snapshot",
        ]
    );
    b
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let mut b = broker_with_two_snapshots();
    let state = state_of(&b, 0);
    b.storage_mut()
        .corrupt("partition-0/00000000000000000008.snapshot", 30)
        .unwrap();
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert!(r.fell_back());
    assert_eq!(r.snapshots_rejected[0].offset, 8);
    assert!(matches!(
        r.snapshots_rejected[0].reason,
        SnapshotRejection::Corrupt(_)
    ));
    assert_eq!(r.snapshot_loaded, Some(4));
    assert_eq!(r.replayed_batches, 4);
    assert_eq!(
        state_of(&b, 0),
        state,
        "the older snapshot plus replay gives the same state"
    );
    assert!(b.produce(0, &batch(1, 0, 2, 2, 1)).is_duplicate());
}

#[test]
fn with_no_valid_snapshot_recovery_replays_the_whole_log() {
    let mut b = broker_with_two_snapshots();
    let state = state_of(&b, 0);
    for f in snapshots(&b) {
        b.storage_mut().corrupt(&f, 0).unwrap(); // the version field
    }
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(r.snapshots_rejected.len(), 2);
    assert_eq!(r.snapshot_loaded, None);
    assert_eq!(r.replayed_batches, 6);
    assert_eq!(
        r.snapshot_written,
        Some(12),
        "Kafka snapshots after a rebuild"
    );
    assert_eq!(state_of(&b, 0), state);
}

#[test]
fn a_snapshot_beyond_the_recovered_log_end_is_discarded() {
    let mut b = broker(SyncPolicy::Never, SnapshotMode::FullWindow);
    b.produce(0, &batch(1, 0, 0, 2, 1));
    b.flush().unwrap();
    b.produce(0, &batch(1, 0, 2, 2, 1));
    // The snapshot is written and synced, the log behind it is not.
    assert_eq!(b.take_snapshots().unwrap(), vec![(0, 4)]);
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(r.log_end_offset, 2);
    assert_eq!(
        r.snapshots_rejected[0].reason,
        SnapshotRejection::BeyondLogEnd { log_end_offset: 2 }
    );
    assert_eq!(state_of(&b, 0), replayed(&b, 0));
    assert_eq!(
        state_of(&b, 0)
            .entry(ProducerId(1))
            .map(|e| e.last_sequence()),
        Some(Sequence(1)),
        "the state is the log's, not the lost snapshot's"
    );
}

#[test]
fn expired_producers_are_dropped_when_a_snapshot_is_loaded() {
    let mut b = Broker::new(BrokerConfig {
        producer_id_expiration_ms: 1_000,
        ..BrokerConfig::default()
    })
    .unwrap();
    b.produce(0, &batch(1, 0, 0, 1, 0)); // last timestamp 0
    b.produce(0, &batch(2, 0, 0, 1, 5_000)); // last timestamp 5000
    b.take_snapshots().unwrap();
    b.advance_time(5_500); // before any expiry check: producer 1 is still in memory
    assert_eq!(state_of(&b, 0).len(), 2);
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(r.snapshot_loaded, Some(2));
    assert_eq!(r.producers_expired_on_load, 1);
    assert_eq!(state_of(&b, 0).producer_ids(), vec![ProducerId(2)]);
}

// ------------------------------------------------------------------------------------------
// Snapshot modes
// ------------------------------------------------------------------------------------------

/// Three batches from producer 1 (sequences 0..2, 3..5, 6..8), a clean restart, then a retry
/// of the second-newest batch.
fn retry_second_newest_after_clean_restart(mode: SnapshotMode) -> idempo_broker::ProduceOutcome {
    let mut b = broker(SyncPolicy::EveryAppend, mode);
    for seq in [0, 3, 6] {
        assert!(b.produce(0, &batch(1, 0, seq, 3, 1)).is_appended());
    }
    let report = b.restart_clean().expect("SimDisk does not fail");
    assert_eq!(report.partitions[0].recovery.snapshot_loaded, Some(9));
    assert!(report.partitions[0].lost_batches.is_empty());
    b.produce(0, &batch(1, 0, 3, 3, 1))
}

#[test]
fn after_a_restart_full_window_snapshots_answer_a_retry_of_the_second_newest_batch_as_a_duplicate()
{
    let o = retry_second_newest_after_clean_restart(SnapshotMode::FullWindow);
    assert!(o.is_duplicate(), "{o}");
    assert_eq!(o.response.base_offset, 3);
}

#[test]
fn after_a_restart_last_batch_only_snapshots_answer_a_retry_of_the_second_newest_batch_out_of_order()
 {
    let o = retry_second_newest_after_clean_restart(SnapshotMode::LastBatchOnly);
    assert_eq!(
        o.response.error_code,
        ErrorCode::OutOfOrderSequenceNumber,
        "{o}"
    );
}

#[test]
fn a_clean_restart_keeps_every_batch_and_the_producer_state() {
    let mut b = broker(SyncPolicy::Never, SnapshotMode::FullWindow);
    for seq in 0..7 {
        b.produce(seq % 2, &batch(1, 0, seq / 2, 1, 1));
    }
    let logs: Vec<_> = (0..2).map(|p| log_of(&b, p)).collect();
    let states: Vec<_> = (0..2).map(|p| state_of(&b, p)).collect();
    let report = b.restart_clean().unwrap();
    assert!(report.partitions.iter().all(|r| r.lost_batches.is_empty()));
    for p in 0..2 {
        assert_eq!(log_of(&b, p), logs[p as usize]);
        assert_eq!(state_of(&b, p), states[p as usize]);
    }
}

// ------------------------------------------------------------------------------------------
// Sync policies, segments, DeleteRecords, producer ids
// ------------------------------------------------------------------------------------------

#[test]
fn with_every_append_sync_no_acknowledged_batch_is_lost_by_a_crash() {
    let mut b = broker(SyncPolicy::EveryAppend, SnapshotMode::FullWindow);
    for seq in 0..20 {
        assert!(
            b.produce(seq % 3, &batch(1, 0, seq / 3, 1, 1))
                .is_appended()
        );
    }
    let logs: Vec<_> = (0..3).map(|p| log_of(&b, p)).collect();
    let report = b.crash(|_, unsynced| unsynced / 2);
    for r in &report.partitions {
        assert!(r.lost_batches.is_empty());
        assert_eq!(r.log_end_offset_after(), r.log_end_offset_before);
        assert_eq!(log_of(&b, r.partition), logs[r.partition as usize]);
    }
}

#[test]
fn interval_sync_makes_appends_durable_when_the_broker_is_told_the_time() {
    let mut b = broker(SyncPolicy::IntervalMs(100), SnapshotMode::FullWindow);
    b.produce(0, &batch(1, 0, 0, 1, 1));
    b.advance_time(99);
    assert_eq!(b.log(0).unwrap().durable_end_offset(), 0);
    b.advance_time(100);
    assert_eq!(b.log(0).unwrap().durable_end_offset(), 1);
    b.produce(0, &batch(1, 0, 1, 1, 1));
    let report = b.crash(|_, _| 0);
    assert_eq!(report.partitions[0].log_end_offset_after(), 1);
    assert_eq!(report.partitions[0].lost_batches.len(), 1);
}

#[test]
fn periodic_snapshots_are_taken_when_the_broker_is_told_the_time() {
    let mut b = broker(SyncPolicy::EveryAppend, SnapshotMode::FullWindow);
    b.produce(0, &batch(1, 0, 0, 1, 1));
    b.advance_time(59_999);
    assert!(snapshots(&b).is_empty());
    b.advance_time(60_000);
    assert_eq!(
        snapshots(&b),
        vec!["partition-0/00000000000000000001.snapshot"]
    );
    b.advance_time(120_000);
    assert_eq!(
        snapshots(&b).len(),
        1,
        "unchanged log end: skipped, as in Kafka"
    );
    for i in 1..4 {
        b.produce(0, &batch(1, 0, i, 1, 1));
        b.advance_time(60_000 * (i64::from(i) + 2));
    }
    assert_eq!(
        snapshots(&b),
        vec![
            "partition-0/00000000000000000003.snapshot",
            "partition-0/00000000000000000004.snapshot",
        ],
        "two retained"
    );
}

#[test]
fn a_lost_tail_of_an_older_segment_deletes_every_later_segment() {
    let one = batch(1, 0, 0, 1, 1).len() as u32;
    let mut b = Broker::new(BrokerConfig {
        sync_policy: SyncPolicy::Never,
        segment_bytes: 2 * one,
        ..BrokerConfig::default()
    })
    .unwrap();
    for seq in 0..6 {
        b.produce(0, &batch(1, 0, seq, 1, 1));
    }
    assert_eq!(b.log(0).unwrap().index().segment_count(), 3);
    // The kernel wrote back the newest segments but not the first one's last batch.
    let report = b.crash(|file, unsynced| {
        if file.ends_with("00000000000000000000.log") {
            u64::from(one)
        } else {
            unsynced
        }
    });
    let r = &report.partitions[0];
    assert_eq!(r.log_end_offset_after(), 1);
    assert_eq!(r.recovery.log.segments_removed, 2);
    assert_eq!(r.truncated_bytes(), 4 * u64::from(one));
    assert_eq!(r.lost_batches.len(), 5);
}

#[test]
fn an_older_segment_that_lost_every_batch_cuts_every_later_segment() {
    let one = batch(1, 0, 0, 1, 1).len() as u32;
    let mut b = Broker::new(BrokerConfig {
        sync_policy: SyncPolicy::Never,
        segment_bytes: 2 * one,
        ..BrokerConfig::default()
    })
    .unwrap();
    for seq in 0..6 {
        b.produce(0, &batch(1, 0, seq, 1, 1));
    }
    // The first segment lost everything; the later ones reached the disk whole. Keeping them
    // would leave a hole at offsets 0..2: recovery must cut them too.
    let report = b.crash(|file, unsynced| {
        if file.ends_with("00000000000000000000.log") {
            0
        } else {
            unsynced
        }
    });
    let r = &report.partitions[0];
    assert_eq!(r.log_end_offset_after(), 0);
    assert_eq!(r.lost_batches.len(), 6);
    assert_eq!(b.log(0).unwrap().batches().len(), 0);
}

#[test]
fn delete_records_survives_a_crash() {
    let one = batch(1, 0, 0, 1, 1).len() as u32;
    let mut b = Broker::new(BrokerConfig {
        sync_policy: SyncPolicy::Never,
        segment_bytes: 2 * one,
        ..BrokerConfig::default()
    })
    .unwrap();
    for seq in 0..6 {
        b.produce(0, &batch(1, 0, seq, 1, 1));
    }
    assert_eq!(b.delete_records(0, 3), Ok(3));
    assert!(
        !b.storage()
            .list("partition-0/")
            .contains(&"partition-0/00000000000000000000.log".to_string()),
        "the segment below the new start was deleted"
    );
    b.produce(0, &batch(1, 0, 6, 1, 1)); // unsynced
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0];
    assert_eq!(r.recovery.log_start_offset, 3, "checkpointed");
    assert_eq!(r.log_end_offset_after(), 6, "DeleteRecords synced the log");
    assert_eq!(log_of(&b, 0).len(), 3);
}

#[test]
fn producer_ids_never_repeat_across_crashes() {
    let mut b = broker(SyncPolicy::Never, SnapshotMode::FullWindow);
    let mut seen = Vec::new();
    for round in 0..5 {
        for _ in 0..(round * 700) {
            seen.push(b.init_producer_id().producer_id);
        }
        let report = b.crash(|_, unsynced| unsynced);
        assert!(
            seen.last()
                .is_none_or(|last| report.next_producer_id > *last)
        );
        if round == 2 {
            b.restart_clean().unwrap();
        }
    }
    seen.push(b.init_producer_id().producer_id);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
}

#[test]
fn a_partition_created_before_any_batch_survives_a_crash() {
    let mut b = broker(SyncPolicy::Never, SnapshotMode::FullWindow);
    b.create_partition(4).unwrap();
    let report = b.crash(|_, _| 0);
    assert_eq!(b.partition_ids(), vec![4]);
    assert_eq!(report.partitions[0].log_end_offset_after(), 0);
}

#[test]
fn a_broker_opened_on_a_crashed_disk_recovers_it() {
    let mut b = broker(SyncPolicy::EveryAppend, SnapshotMode::FullWindow);
    b.produce(0, &batch(1, 0, 0, 2, 1));
    let mut disk: SimDisk = b.storage().clone();
    disk.crash(|_, _| 0);
    let (opened, report) = Broker::open(b.config().clone(), disk).unwrap();
    assert_eq!(opened.log_end_offset(0), Some(2));
    assert_eq!(report.partitions[0].recovery.replayed_batches, 1);
    assert!(
        record_batch::verify_crc(&opened.log(0).unwrap().batches().next().unwrap().bytes).is_ok()
    );
}

// ------------------------------------------------------------------------------------------
// Random runs
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Producer `producer` sends its next batch of `count` records to `partition`.
    Next {
        partition: i32,
        producer: i64,
        count: i32,
    },
    /// Producer `producer` resends one of its last batches (`back` from the newest).
    Retry {
        partition: i32,
        producer: i64,
        back: usize,
    },
    /// Producer `producer` bumps its epoch and starts again at sequence 0.
    BumpEpoch {
        partition: i32,
        producer: i64,
    },
    /// The clock moves (periodic syncs and snapshots may run).
    AdvanceTime {
        by_ms: i64,
    },
    InitProducerId,
    Flush,
    Snapshot,
    /// A power loss; `seed` decides how much of each unsynced tail survives.
    Crash {
        seed: u64,
    },
    CleanRestart,
}

fn op() -> impl Strategy<Value = Op> {
    let partition = 0..2i32;
    let producer = 1..4i64;
    prop_oneof![
        6 => (partition.clone(), producer.clone(), 1..4i32)
            .prop_map(|(partition, producer, count)| Op::Next { partition, producer, count }),
        2 => (partition.clone(), producer.clone(), 0..6usize)
            .prop_map(|(partition, producer, back)| Op::Retry { partition, producer, back }),
        1 => (partition, producer).prop_map(|(partition, producer)| Op::BumpEpoch { partition, producer }),
        2 => (1..40_000i64).prop_map(|by_ms| Op::AdvanceTime { by_ms }),
        1 => Just(Op::InitProducerId),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => Just(Op::CleanRestart),
    ]
}

fn policy() -> impl Strategy<Value = SyncPolicy> {
    prop_oneof![
        Just(SyncPolicy::EveryAppend),
        (1..30_000i64).prop_map(SyncPolicy::IntervalMs),
        Just(SyncPolicy::Never),
    ]
}

/// The tear a seed draws for one file (SplitMix64's mix, the workspace's one mixer).
fn mix(seed: u64, salt: u64) -> u64 {
    use idempo_testkit::splitmix::{GOLDEN_GAMMA, mix};
    mix(seed ^ salt.wrapping_mul(GOLDEN_GAMMA))
}

/// A client's view of one producer on one partition.
#[derive(Clone, Debug, Default)]
struct Client {
    epoch: i16,
    next_sequence: i32,
    sent: Vec<Bytes>,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: idempo_testkit::proptest_cases(128),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/durability.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// **Durability invariants under random crashes**: for any sync policy, segment size and
    /// sequence of produces (fresh, retried, new epoch), clock moves, flushes, snapshots,
    /// InitProducerIds, clean restarts and crashes with random tears:
    /// after each crash every partition's log is a prefix of its log before the crash, at
    /// least as long as what was synced, and the report's lost batches are exactly the rest;
    /// producer state equals replaying the recovered log from scratch (FullWindow, nothing
    /// expired or deleted); with EveryAppend nothing is lost; a clean restart changes neither
    /// log nor state; and producer ids strictly increase over the whole run.
    #[test]
    fn random_runs_with_random_crashes_keep_the_durability_invariants(
        sync_policy in policy(),
        segment_bytes in prop_oneof![Just(300u32), Just(1_000u32), Just(1 << 20)],
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut b = Broker::new(BrokerConfig {
            sync_policy,
            segment_bytes,
            producer_id_expiration_ms: i64::MAX,
            ..BrokerConfig::default()
        }).expect("a valid configuration");
        let mut clients: std::collections::BTreeMap<(i32, i64), Client> = Default::default();
        let mut last_id = ProducerId::NONE;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Next { partition, producer, count } => {
                    let c = clients.entry((*partition, *producer)).or_default();
                    let bytes = batch(*producer, c.epoch, c.next_sequence, *count, b.now_ms());
                    c.next_sequence += count;
                    c.sent.push(bytes.clone());
                    b.produce(*partition, &bytes);
                }
                Op::Retry { partition, producer, back } => {
                    if let Some(c) = clients.get(&(*partition, *producer))
                        && let Some(bytes) = c.sent.iter().rev().nth(*back)
                    {
                        b.produce(*partition, bytes);
                    }
                }
                Op::BumpEpoch { partition, producer } => {
                    let c = clients.entry((*partition, *producer)).or_default();
                    c.epoch += 1;
                    c.next_sequence = 0;
                }
                Op::AdvanceTime { by_ms } => {
                    b.advance_time(b.now_ms() + by_ms);
                }
                Op::InitProducerId => {
                    let id = b.init_producer_id().producer_id;
                    prop_assert!(id > last_id, "op {}: id {:?} after {:?}", i, id, last_id);
                    last_id = id;
                }
                Op::Flush => b.flush().expect("SimDisk does not fail"),
                Op::Snapshot => {
                    b.take_snapshots().expect("SimDisk does not fail");
                }
                Op::Crash { seed } => {
                    let before: Vec<(i32, Vec<Bytes>, i64)> = b
                        .partition_ids()
                        .into_iter()
                        .map(|p| {
                            let log = b.log(p).expect("listed");
                            (p, log.batches().map(|s| s.bytes).collect(), log.durable_end_offset())
                        })
                        .collect();
                    let mut salt = 0;
                    let report = b.crash(|_, unsynced| {
                        salt += 1;
                        match mix(*seed, salt) % 3 {
                            0 => 0,
                            1 => unsynced,
                            _ => mix(*seed, salt + 1000) % (unsynced + 1),
                        }
                    });
                    prop_assert!(report.next_producer_id > last_id);
                    for (p, old, durable) in before {
                        let new = log_of(&b, p);
                        prop_assert!(new.len() <= old.len(), "op {}: p{} grew", i, p);
                        prop_assert_eq!(&old[..new.len()], &new[..], "op {}: p{} not a prefix", i, p);
                        let end = b.log_end_offset(p).expect("recovered");
                        prop_assert!(end >= durable, "op {}: p{} lost synced data", i, p);
                        let r = report.partitions.iter().find(|r| r.partition == p).expect("reported");
                        let lost: Vec<Bytes> = r.lost_batches.iter().map(|s| s.bytes.clone()).collect();
                        prop_assert_eq!(&lost[..], &old[new.len()..], "op {}: p{} lost list", i, p);
                        if sync_policy == SyncPolicy::EveryAppend {
                            prop_assert!(lost.is_empty(), "op {}: EveryAppend lost a batch", i);
                        }
                        prop_assert_eq!(state_of(&b, p), replayed(&b, p), "op {}: p{} state", i, p);
                    }
                    // Clients learn where they stand, as after a reconnect.
                    for ((p, pid), c) in clients.iter_mut() {
                        if let Some(e) = b.producer_state(*p).and_then(|s| s.entry(ProducerId(*pid))) {
                            c.epoch = c.epoch.max(e.producer_epoch.0);
                        }
                    }
                }
                Op::CleanRestart => {
                    let ids = b.partition_ids();
                    let logs: Vec<_> = ids.iter().map(|p| log_of(&b, *p)).collect();
                    let states: Vec<_> = ids.iter().map(|p| state_of(&b, *p)).collect();
                    b.restart_clean().expect("SimDisk does not fail");
                    prop_assert_eq!(b.partition_ids(), ids.clone());
                    for (k, p) in ids.iter().enumerate() {
                        prop_assert_eq!(&log_of(&b, *p), &logs[k], "op {}: clean restart log", i);
                        prop_assert_eq!(&state_of(&b, *p), &states[k], "op {}: clean restart state", i);
                    }
                }
            }
        }
    }
}
