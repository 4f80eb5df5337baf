//! The bug zoo: every entry reproduces under its schedule (the checker names its anomaly with
//! the historical setting, the fixed setting is clean), and the fixed setting stays clean over
//! a fixed set of seeds under the entry's fault rates.

use idempo_sim::zoo::{self, Side};

/// Seeds per entry for the fixed-behaviour property (more with `idempo-sim zoo check --seeds N`).
const SEEDS: u64 = 8;

fn reproduces(id: &str) {
    let entry = zoo::find(id).expect("the entry is listed");
    let outcome = entry.run().expect("the entry's flags and faults are valid");
    assert!(
        outcome.anomaly_count > 0,
        "{id}: the historical run does not show `{}`; replay: {}",
        entry.anomaly,
        outcome.bug_config.replay_command("run")
    );
    assert!(
        outcome.fix.check.passed(),
        "{id}: the fixed run is not clean; replay: {}",
        outcome.fix_config.replay_command("run")
    );
}

/// The fixed behaviour passes the checker for every seed of a fixed set, faults drawn from
/// each seed at the entry's rates.
fn fix_is_clean_over_seeds(id: &str) {
    let entry = zoo::find(id).expect("the entry is listed");
    let first = entry.config(Side::Fix).expect("valid flags").seed;
    for seed in first..first + SEEDS {
        let mut config = entry.config(Side::Fix).expect("valid flags");
        config.seed = seed;
        let report = idempo_sim::run(&config).expect("valid settings");
        assert!(
            report.check.passed(),
            "{id}: the fix fails at seed {seed}; replay: {}",
            config.replay_command("run")
        );
    }
}

#[test]
fn redpanda_3039_a_broker_without_a_five_batch_cache_writes_a_retry_twice() {
    reproduces("redpanda-3039");
    fix_is_clean_over_seeds("redpanda-3039");
}

#[test]
fn kafka_5494_a_last_batch_only_broker_refuses_the_retry_of_an_older_batch() {
    reproduces("KAFKA-5494");
    fix_is_clean_over_seeds("KAFKA-5494");
}

#[test]
fn kip_360_first_batch_lost_then_the_epoch_bump_writes_the_second_twice() {
    reproduces("kip-360-first-batch");
    fix_is_clean_over_seeds("kip-360-first-batch");
}

#[test]
fn last_batch_snapshot_a_clean_restart_shrinks_the_window_and_writes_retries_twice() {
    reproduces("last-batch-snapshot");
    fix_is_clean_over_seeds("last-batch-snapshot");
}

#[test]
fn jepsen_kafka_2013_an_isr_of_the_leader_alone_loses_acknowledged_writes() {
    reproduces("jepsen-kafka-2013");
    fix_is_clean_over_seeds("jepsen-kafka-2013");
}

#[test]
fn kafka_10751_an_unclean_election_loses_acknowledged_writes_with_min_isr_two() {
    reproduces("KAFKA-10751");
    fix_is_clean_over_seeds("KAFKA-10751");
}

#[test]
fn kip_101_truncation_to_the_high_watermark_loses_acknowledged_writes() {
    reproduces("KIP-101");
    fix_is_clean_over_seeds("KIP-101");
}

#[test]
fn kip_854_a_producer_per_batch_outgrows_the_memory_budget_and_the_bound_keeps_it() {
    reproduces("KIP-854");
    fix_is_clean_over_seeds("KIP-854");
    let entry = zoo::find("KIP-854").expect("the entry is listed");
    let outcome = entry.run().expect("valid");
    // Kafka's rule keeps one producer id per batch sent (4 producers x 25 batches).
    assert_eq!(outcome.bug.broker.producer_ids_peak, 100);
    assert!(outcome.fix.broker.producer_ids_peak <= 40);
    assert!(outcome.fix.broker.producer_ids_evicted >= 60);
    assert!(
        outcome.fix.broker.producer_state_bytes_peak < outcome.bug.broker.producer_state_bytes_peak,
        "the bound keeps the bytes down too"
    );
}

/// The bound leaves live producers' deduplication alone: under the entry's ack and request
/// loss, fixed runs retry, the broker answers retries as duplicates, and nothing is written
/// twice.
#[test]
fn kip_854_the_bound_still_deduplicates_retries_of_live_producers() {
    let entry = zoo::find("KIP-854").expect("the entry is listed");
    let mut dropped = 0;
    for seed in 1..=SEEDS {
        let mut config = entry.config(Side::Fix).expect("valid flags");
        config.seed = seed;
        let report = idempo_sim::run(&config).expect("valid settings");
        assert!(report.check.passed(), "seed {seed}");
        dropped += report.broker.duplicates_dropped;
    }
    assert!(dropped > 0, "retries of appended batches were deduplicated");
}

/// `producer.id.expiration.ms` bounds the state by time: shorter, fewer ids are held; but
/// shorter than a retry's reach, a live producer's retry is written again.
#[test]
fn kip_854_a_shorter_producer_id_expiration_holds_fewer_ids_until_it_breaks_dedup() {
    let entry = zoo::find("KIP-854").expect("the entry is listed");
    let run = |expiration_ms: &str| {
        let mut config = entry.config(Side::Bug).expect("valid flags");
        for (flag, value) in [
            ("producer-id-expiration-ms", expiration_ms),
            ("producer-id-expiration-check-interval-ms", "100"),
        ] {
            idempo_sim::flags::set(&mut config, flag, value).expect("valid");
        }
        idempo_sim::run(&config).expect("valid settings")
    };
    let (day, two_s, tenth) = (run("86400000"), run("2000"), run("200"));
    assert!(day.broker.producer_ids_peak > two_s.broker.producer_ids_peak);
    assert!(two_s.check.passed(), "2 s is beyond every retry here");
    let after_expiry = |r: &idempo_sim::RunReport| {
        zoo::entry::named_count(r, "written again or out of order after producer-id expiry")
    };
    assert!(
        after_expiry(&tenth) > 0,
        "200 ms expires producers still retrying"
    );
}

#[test]
fn librdkafka_2163_a_message_timeout_leaves_a_gap_and_the_next_refusal_is_fatal() {
    reproduces("librdkafka-2163");
    fix_is_clean_over_seeds("librdkafka-2163");
}

#[test]
fn librdkafka_4438_a_possibly_persisted_batch_counted_as_written_makes_a_refusal_fatal() {
    reproduces("librdkafka-4438");
    fix_is_clean_over_seeds("librdkafka-4438");
}

#[test]
fn librdkafka_4953_a_bump_for_a_refusal_behind_a_leader_change_writes_batches_twice() {
    reproduces("librdkafka-4953");
    fix_is_clean_over_seeds("librdkafka-4953");
}

#[test]
fn the_librdkafka_entries_fail_the_way_their_issues_say() {
    // (id, fatal errors with the bug, epoch bumps with the bug, epoch bumps with the fix)
    let expected = [
        ("librdkafka-2163", 1, 0, 1),
        ("librdkafka-4438", 1, 0, 0),
        ("librdkafka-4953", 0, 1, 0),
    ];
    for (id, fatal, bug_bumps, fix_bumps) in expected {
        let outcome = zoo::find(id)
            .expect("listed")
            .run()
            .expect("valid settings");
        assert_eq!(
            (
                outcome.bug.check.fatal_errors,
                outcome.bug.epoch_bumps,
                outcome.fix.epoch_bumps
            ),
            (fatal, bug_bumps, fix_bumps),
            "{id}: the fatal error or the bump that makes the anomaly"
        );
    }
}

#[test]
fn kafka_5793_delete_records_evicts_the_producer_and_the_0_11_broker_answers_out_of_order() {
    reproduces("KAFKA-5793");
    fix_is_clean_over_seeds("KAFKA-5793");
    let outcome = zoo::find("KAFKA-5793")
        .expect("listed")
        .run()
        .expect("valid settings");
    assert_eq!(outcome.bug.faults.delete_records, 1);
    // The bug: one refusal as out of order, fatal; nothing was lost or written twice.
    assert_eq!(outcome.bug.broker.gaps_rejected, 1);
    assert_eq!(outcome.bug.check.fatal_errors, 1);
    assert_eq!(outcome.bug.check.lost + outcome.bug.check.duplicates, 0);
    // The fix: UNKNOWN_PRODUCER_ID, one epoch bump, every record delivered; the deleted
    // records are not counted lost.
    assert_eq!(outcome.fix.epoch_bumps, 1);
    assert_eq!(outcome.fix.check.records_acked, 200);
    assert!(outcome.fix.check.log_records >= 200);
}

#[test]
fn kafka_7190_an_evicted_producer_restarts_at_sequence_0_and_writes_a_deleted_batch_again() {
    reproduces("KAFKA-7190");
    fix_is_clean_over_seeds("KAFKA-7190");
    let outcome = zoo::find("KAFKA-7190")
        .expect("listed")
        .run()
        .expect("valid settings");
    assert!(
        outcome.bug.epoch_bumps >= 1,
        "the reset after UNKNOWN_PRODUCER_ID"
    );
    assert_eq!(outcome.fix.epoch_bumps, 0, "the kept state needs no reset");
    assert!(
        outcome.fix.broker.duplicates_dropped > 0,
        "the retry is recognised although its batch was deleted"
    );
}

/// Deleted records are not lost: DeleteRecords at every drawn moment, Kafka's broker today,
/// and the checker passes, although the final log lacks what was deleted.
#[test]
fn records_deleted_by_delete_records_are_not_lost() {
    for seed in 1..=SEEDS {
        let mut config = idempo_sim::SimConfig {
            seed,
            producers: 2,
            partitions: 2,
            records: 200,
            delete_records: 3,
            ..idempo_sim::SimConfig::default()
        };
        config.ack_loss = 0.2;
        let report = idempo_sim::run(&config).expect("valid settings");
        assert!(report.check.passed(), "seed {seed}: {:?}", report.check);
        assert!(report.faults.delete_records > 0, "seed {seed}");
    }
}

#[test]
fn kafka_6683_a_failed_append_leaves_the_state_ahead_and_the_retry_is_acked_unwritten() {
    reproduces("KAFKA-6683");
    fix_is_clean_over_seeds("KAFKA-6683");
    let outcome = zoo::find("KAFKA-6683")
        .expect("listed")
        .run()
        .expect("valid settings");
    assert_eq!(
        outcome.bug.broker.other_rejected, 1,
        "the KAFKA_STORAGE_ERROR"
    );
    assert!(
        outcome.bug.broker.duplicates_dropped >= 1,
        "the phantom duplicate"
    );
    assert_eq!(outcome.fix.check.lost, 0);
}

#[test]
fn kafka_5283_an_epoch_bump_that_wraps_fences_the_producer_a_new_id_does_not() {
    reproduces("KAFKA-5283");
    fix_is_clean_over_seeds("KAFKA-5283");
    let outcome = zoo::find("KAFKA-5283")
        .expect("listed")
        .run()
        .expect("valid settings");
    assert!(outcome.bug.broker.stale_epoch_rejected > 0);
    assert_eq!(outcome.bug.producer_id_resets, 0, "the bug wraps instead");
    assert!(
        outcome.fix.producer_id_resets >= 1,
        "the fix takes a new producer id"
    );
}

#[test]
fn every_entry_is_tested_and_ids_are_unique() {
    let ids: Vec<&str> = zoo::entries().iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [
            "redpanda-3039",
            "KAFKA-5494",
            "kip-360-first-batch",
            "last-batch-snapshot",
            "jepsen-kafka-2013",
            "KAFKA-10751",
            "KIP-101",
            "KIP-854",
            "librdkafka-2163",
            "librdkafka-4438",
            "librdkafka-4953",
            "KAFKA-5793",
            "KAFKA-7190",
            "KAFKA-6683",
            "KAFKA-5283",
            "KAFKA-14034",
            "KAFKA-12152",
            "KIP-360",
        ],
        "a new entry needs its test above"
    );
}

#[test]
fn the_historical_setting_is_an_ordinary_run_flag() {
    for entry in zoo::entries() {
        for (name, _) in entry.bug.iter().chain(entry.fix) {
            assert!(
                idempo_sim::flags::find(name).is_some(),
                "{}: `{name}` is not a run flag, so run/compare/sweep cannot use it",
                entry.id
            );
        }
    }
}

#[test]
fn each_schedule_is_one_minimal_removing_any_fault_loses_the_entry() {
    for entry in zoo::entries() {
        let faults = entry.schedule().expect("valid faults");
        for skip in 0..faults.len() {
            let fewer: Vec<_> = faults
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, f)| *f)
                .collect();
            let outcome = entry.run_with(&fewer).expect("valid settings");
            assert!(
                !outcome.reproduces(),
                "{}: the schedule still reproduces without `{}`",
                entry.id,
                faults[skip]
            );
        }
    }
}

#[test]
fn the_replay_files_of_an_entry_run_its_two_sides() {
    let entry = zoo::find("redpanda-3039").expect("listed");
    let text = entry.replay_file(Side::Bug).expect("valid");
    let parsed = idempo_sim::plan::parse_replay(&text).expect("a replay file");
    assert_eq!(parsed.faults, entry.schedule().expect("valid"));
    assert!(
        parsed
            .flags
            .windows(2)
            .any(|w| w == ["--broker-profile", "redpanda-21.10"]),
        "{:?}",
        parsed.flags
    );
}

#[test]
fn the_check_table_reports_every_entry_ok() {
    let rows: Vec<_> = zoo::entries()
        .into_iter()
        .map(|e| zoo::report::check(e, 2).expect("valid"))
        .collect();
    let table = zoo::report::check_table(&rows);
    assert!(rows.iter().all(zoo::report::CheckRow::ok), "{table}");
    assert_eq!(table.lines().count(), rows.len() + 1, "{table}");
}

#[test]
fn kafka_14034_a_failed_batch_bumps_and_writes_a_retried_batch_again() {
    reproduces("KAFKA-14034");
    fix_is_clean_over_seeds("KAFKA-14034");
    let entry = zoo::find("KAFKA-14034").expect("the entry is listed");
    let outcome = entry.run().expect("valid");
    assert_eq!(outcome.bug.epoch_bumps, 1, "today's rule bumps at once");
    assert_eq!(
        outcome.fix.epoch_bumps, 0,
        "waiting for the retry lets the partition resolve without a bump"
    );
}

#[test]
fn kafka_12152_an_idle_partition_keeps_its_sequence_under_the_new_epoch_bump_after_bump() {
    reproduces("KAFKA-12152");
    fix_is_clean_over_seeds("KAFKA-12152");
    let entry = zoo::find("KAFKA-12152").expect("the entry is listed");
    let outcome = entry.run().expect("valid");
    assert!(
        outcome.bug.epoch_bumps > outcome.fix.epoch_bumps + 1,
        "each refusal of a stale sequence asks for one more bump: {} against {}",
        outcome.bug.epoch_bumps,
        outcome.fix.epoch_bumps
    );
}

#[test]
fn kip_360_later_batches_moved_into_a_failed_batchs_sequences_write_a_timed_out_batch_twice() {
    reproduces("KIP-360");
    fix_is_clean_over_seeds("KIP-360");
    let entry = zoo::find("KIP-360").expect("the entry is listed");
    let outcome = entry.run().expect("valid");
    assert_eq!(
        outcome.bug.check.duplicates, 10,
        "one batch of ten records, its moved retry and its late first attempt both appended"
    );
    assert_eq!(
        outcome.fix.check.duplicates, 0,
        "the bump fences the late attempt"
    );
}
