//! The wider fault vocabulary: duplicated and corrupted requests, latency spikes, broker and
//! producer restarts, producer-id expiry, swarm mixes, and the replay and determinism
//! machinery. Each property states what must hold for every seed.

use idempo_sim::plan::FaultPlan;
use idempo_sim::trace::Trace;
use idempo_sim::{RunReport, SimConfig, Simulation};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn run(config: &SimConfig) -> RunReport {
    idempo_sim::run(config).expect("a valid config")
}

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        producers: 2,
        partitions: 2,
        records: 200,
        batch_records: 5,
        ..SimConfig::default()
    }
}

fn summary(config: &SimConfig, r: &RunReport) -> String {
    format!("replay: {}\n{:?}", config.replay_command("run"), r.check)
}

proptest! {
    #![proptest_config(Config { cases: idempo_testkit::proptest_cases(64), ..Config::default() })]

    /// With idempotence on, duplicated requests, flipped bits (refused as CORRUPT_MESSAGE and
    /// retried), latency spikes longer than the request timeout and clean broker restarts
    /// never write a record twice, lose an acknowledged one or reorder a producer's records.
    ///
    /// With idempo's `first_batch_alone` guard: a first batch refused as CORRUPT_MESSAGE while
    /// the next one gets through opens the same KIP-360 hole as a dropped frame (see
    /// `corrupt_first_batch_opens_the_unknown_producer_hole_in_kafkas_client`).
    #[test]
    fn duplicates_corruption_spikes_and_broker_restarts_keep_exactly_once(
        seed in any::<u64>(),
        ack_loss in 0.0f64..0.3,
        duplicate in 0.0f64..0.3,
        corrupt in 0.0f64..0.2,
        spike in 0.0f64..0.1,
        broker_restarts in 0u32..3,
    ) {
        let config = SimConfig { ack_loss, duplicate, corrupt, spike, broker_restarts, first_batch_alone: true, ..small(seed) };
        let r = run(&config);
        prop_assert!(r.finished, "{}", summary(&config, &r));
        prop_assert!(r.check.passed(), "{}", summary(&config, &r));
    }

    /// Swarm mode: whatever fault mix a seed draws, exactly-once holds (with the first-batch
    /// guard, since swarm mixes include flipped bits).
    #[test]
    fn every_swarm_mix_keeps_exactly_once(seed in any::<u64>()) {
        let config = idempo_sim::swarm::swarm(&SimConfig { first_batch_alone: true, ..small(seed) });
        let r = run(&config);
        prop_assert!(r.check.passed(), "{}", summary(&config, &r));
    }

    /// A run's faults, replayed as a script, reproduce the run exactly: decisions are keyed
    /// by logical event, so the realised faults are a complete description of the run.
    #[test]
    fn replaying_a_runs_faults_reproduces_it_exactly(seed in any::<u64>(), ack_loss in 0.0f64..0.4) {
        let config = SimConfig { ack_loss, duplicate: 0.1, corrupt: 0.05, ..small(seed) };
        let (original, _) = Simulation::new(config.clone(), None).unwrap().run();
        let plan = FaultPlan::scripted(&config, &original.faults_happened);
        let (replayed, _) = Simulation::with_plan(config.clone(), plan, None).unwrap().run();
        prop_assert_eq!(idempo_sim::report::json(&config, &original), idempo_sim::report::json(&config, &replayed));
    }
}

#[test]
fn producer_restarts_write_duplicates_that_are_reported_apart_from_protocol_anomalies() {
    let mut across = 0;
    for seed in 1..=8 {
        let config = SimConfig {
            ack_loss: 0.2,
            producer_restarts: 2,
            ..small(seed)
        };
        let r = run(&config);
        assert_eq!(r.check.anomalies(), 0, "{}", summary(&config, &r));
        assert_eq!(r.faults.producer_restarts, 4);
        across += r.check.duplicates_across_sessions;
    }
    assert!(
        across > 0,
        "some restart re-sends a batch the old session had written"
    );
}

#[test]
fn producer_id_expiry_lets_a_late_retry_be_appended_twice() {
    let config = SimConfig {
        producers: 1,
        partitions: 2,
        records: 200,
        ack_loss: 0.3,
        request_timeout_ms: 500,
        producer_id_expiration_ms: 300,
        producer_id_expiration_check_interval_ms: 100,
        ..SimConfig::default()
    };
    let r = run(&config);
    assert!(r.broker.producers_expired > 0);
    assert!(
        r.check.after_expiry > 0,
        "a retry after expiry is accepted as a first batch: {}",
        summary(&config, &r)
    );
    assert_eq!(r.check.anomalies(), 0, "{}", summary(&config, &r));
    assert!(!r.check.passed());
}

#[test]
fn the_same_seed_gives_the_same_event_fingerprint() {
    let config = SimConfig {
        ack_loss: 0.2,
        duplicate: 0.1,
        spike: 0.05,
        ..small(3)
    };
    let print = |c: &SimConfig| {
        let (_, trace) = Simulation::new(c.clone(), Some(Trace::fingerprint_only()))
            .unwrap()
            .run();
        let trace = trace.unwrap();
        (trace.fingerprint(), trace.len())
    };
    let a = print(&config);
    assert_eq!(a, print(&config));
    assert!(a.1 > 100);
    assert_ne!(
        a.0,
        print(&SimConfig {
            seed: 4,
            ..config.clone()
        })
        .0
    );
}

/// Kafka's Java client, faithfully reproduced: when a producer's *first* batch to a partition is
/// refused (here CORRUPT_MESSAGE, from a flipped bit) while its second is accepted (a 2.5+
/// broker accepts any sequence from a producer it does not know), the first one's retry is
/// refused as OUT_OF_ORDER_SEQUENCE_NUMBER, the client bumps its epoch and re-stamps both,
/// and the second is written twice. This run shows it, and the guard closes it.
#[test]
fn corrupt_first_batch_opens_the_unknown_producer_hole_in_kafkas_client() {
    let config = SimConfig {
        seed: 2057209982064169939,
        ack_loss: 0.0,
        duplicate: 0.29,
        corrupt: 0.11,
        ..small(0)
    };
    let kafka = run(&config);
    assert!(kafka.check.duplicates > 0, "{}", summary(&config, &kafka));
    let guarded = SimConfig {
        first_batch_alone: true,
        ..config
    };
    let r = run(&guarded);
    assert!(r.check.passed(), "{}", summary(&guarded, &r));
}

proptest! {
    #![proptest_config(Config { cases: idempo_testkit::proptest_cases(32), ..Config::default() })]

    /// Broker crashes with every append synced before its ack: no acknowledged record is
    /// lost and nothing is duplicated, whatever the moment of the crash and however much of
    /// the last write is torn.
    #[test]
    fn crashes_with_sync_on_lose_nothing_acknowledged_and_duplicate_nothing(
        seed in any::<u64>(),
        ack_loss in 0.0f64..0.3,
        broker_crashes in 1u32..4,
    ) {
        let config = SimConfig { ack_loss, broker_crashes, ..small(seed) };
        let r = run(&config);
        prop_assert_eq!(r.faults.broker_crashes, u64::from(broker_crashes));
        prop_assert!(r.check.passed(), "{}", summary(&config, &r));
    }
}

#[test]
fn crashes_without_sync_lose_acknowledged_records_reported_apart_from_protocol_anomalies() {
    let config = SimConfig {
        broker_crashes: 3,
        sync: idempo_broker::SyncPolicy::Never,
        ..small(1)
    };
    let r = run(&config);
    assert!(r.check.lost_unsynced > 0, "{}", summary(&config, &r));
    assert_eq!(
        r.check.lost, 0,
        "every loss is explained by a crash before sync"
    );
    assert_eq!(r.check.anomalies(), 0, "{}", summary(&config, &r));
}

#[test]
fn kafka_style_last_batch_snapshots_let_a_retry_after_restart_be_written_twice() {
    let base = SimConfig {
        records: 500,
        ack_loss: 0.3,
        broker_restarts: 4,
        snapshot_interval_ms: 50,
        ..small(1)
    };
    let full = run(&base);
    assert!(
        full.check.passed(),
        "idempo's snapshots keep the whole window: {}",
        summary(&base, &full)
    );
    let kafka = SimConfig {
        snapshot_mode: idempo_broker::SnapshotMode::LastBatchOnly,
        ..base
    };
    let r = run(&kafka);
    assert!(
        r.check.duplicates_after_window_shrink > 0,
        "after a restart Kafka's window holds one batch, so an older retry is refused, the producer bumps its epoch and writes it again: {}",
        summary(&kafka, &r)
    );
    assert_eq!(
        r.check.anomalies(),
        0,
        "those copies are a limit of the guarantee, not a protocol anomaly: {}",
        summary(&kafka, &r)
    );
    assert!(!r.check.passed(), "a record was written twice all the same");
}
