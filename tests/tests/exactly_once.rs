//! Exactly-once append, as properties of whole simulated runs (producer, network, broker and
//! checker together). Each property states what must hold for *every* seed and fault mix;
//! proptest searches for a counterexample and shrinks it to a small one.

use idempo_sim::config::Network;
use idempo_sim::{RunReport, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

/// A small but busy run: a few producers and partitions, up to 300 records each.
fn config_strategy(idempotence: bool) -> impl Strategy<Value = SimConfig> {
    (
        any::<u64>(),
        1u32..=3,
        1u32..=3,
        20u64..=300,
        1u32..=8,
        1usize..=5,
        0.0f64..=0.5,
        0.0f64..=0.3,
        (0u64..=10, 0u64..=40),
        prop_oneof![Just(50u64), Just(200), Just(1_000)],
    )
        .prop_map(
            move |(
                seed,
                producers,
                partitions,
                records,
                batch_records,
                max_in_flight,
                ack_loss,
                request_loss,
                (lmin, lspan),
                request_timeout_ms,
            )| SimConfig {
                seed,
                producers,
                partitions,
                records,
                batch_records,
                max_in_flight,
                ack_loss,
                request_loss,
                latency_min_ms: lmin,
                latency_max_ms: lmin + lspan,
                request_timeout_ms,
                idempotence,
                ..SimConfig::default()
            },
        )
}

fn run(config: &SimConfig) -> RunReport {
    idempo_sim::run(config).expect("the generated config is valid")
}

fn describe(config: &SimConfig, r: &RunReport) -> String {
    format!(
        "replay: {}\n  duplicates {} lost {} out_of_order {} failed_but_written {} sequence_gaps {} retries_outside_window {}",
        config.replay_command("run"),
        r.check.duplicates,
        r.check.lost,
        r.check.out_of_order,
        r.check.failed_but_written,
        r.check.sequence_gaps,
        r.broker.retries_outside_window
    )
}

proptest! {
    #![proptest_config(Config { cases: idempo_testkit::proptest_cases(128), ..Config::default() })]

    /// With idempotence on and at most as many requests in flight as the broker's window,
    /// for any seed and any rates of lost acks, lost requests and reordering: no record is
    /// written twice, no acknowledged record is lost, each producer's records stay in send
    /// order on each partition, no batch is written that was reported definitely failed, and
    /// within one producer id and epoch the log's sequences have no gaps.
    #[test]
    fn idempotence_gives_exactly_once_under_any_faults(config in config_strategy(true)) {
        let r = run(&config);
        prop_assert!(r.finished, "the run resolves every batch: {}", describe(&config, &r));
        prop_assert!(r.check.passed(), "{}", describe(&config, &r));
        prop_assert_eq!(r.broker.retries_outside_window, 0, "{}", describe(&config, &r));
        prop_assert_eq!(r.check.records_unresolved, 0);
    }

    /// Through a proxy that drops single frames (gaps reach the broker, which refuses them
    /// with OUT_OF_ORDER_SEQUENCE_NUMBER), idempo's producer with `first_batch_alone` still
    /// writes every record at most once and in order, for any seed and fault rates.
    #[test]
    fn first_batch_alone_gives_exactly_once_through_a_frame_dropping_proxy(config in config_strategy(true)) {
        let config = SimConfig { network: Network::Proxy, first_batch_alone: true, ..config };
        let r = run(&config);
        prop_assert!(r.finished, "{}", describe(&config, &r));
        prop_assert!(r.check.passed(), "{}", describe(&config, &r));
    }

    /// The checker is not blind: without idempotence, the same kind of faults (here at least
    /// 20% of acks lost over at least 100 batches) always writes duplicates.
    #[test]
    fn without_idempotence_lost_acks_write_duplicates(
        config in config_strategy(false),
        ack_loss in 0.2f64..=0.5,
    ) {
        let config = SimConfig { ack_loss, records: 1_000, batch_records: 5, ..config };
        let r = run(&config);
        prop_assert!(r.faults.ack_lost > 0);
        prop_assert!(r.check.duplicates > 0, "{}", describe(&config, &r));
        prop_assert!(!r.check.passed());
    }
}

/// Kafka caps `max.in.flight.requests.per.connection` at 5 because the broker remembers only
/// 5 batches. This test lets proptest search runs with more requests in flight than the
/// broker's window and asserts that it finds one where a retry of a batch already in the log
/// falls outside the window (the broker no longer recognises it), then prints the shrunk
/// counterexample with its replay command.
#[test]
fn max_in_flight_above_the_window_lets_a_retry_fall_outside_it() {
    let strategy =
        (config_strategy(true), 2usize..=10, 1usize..=3).prop_map(|(config, extra, window)| {
            SimConfig {
                dedup_window: window,
                max_in_flight: window + extra,
                unsafe_max_in_flight: true,
                partitions: 1,
                ..config
            }
        });
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |config| {
        let r = run(&config);
        prop_assert_eq!(
            r.broker.retries_outside_window,
            0,
            "{}",
            describe(&config, &r)
        );
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, config)) => {
            println!(
                "counterexample (max_in_flight {} > dedup_window {}):\n{reason}",
                config.max_in_flight, config.dedup_window
            );
            assert!(config.max_in_flight > config.dedup_window);
        }
        other => panic!("expected proptest to find a retry outside the window, got {other:?}"),
    }
}

/// Kafka's Java client (and idempo's producer by default) has a hole that a frame-dropping
/// proxy exposes: a 2.5+ broker accepts any sequence from a producer it does not know
/// (KIP-360), so when the first batch to a partition is dropped and the second gets through,
/// the first's retry is refused, the producer bumps its epoch, re-stamps both, and the second
/// is written twice. This test asserts that proptest finds such a run and prints it.
#[test]
fn proxy_frame_drops_expose_the_unknown_producer_hole_without_the_guard() {
    let strategy = config_strategy(true).prop_map(|config| SimConfig {
        network: Network::Proxy,
        ..config
    });
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |config| {
        let r = run(&config);
        prop_assert_eq!(r.check.duplicates, 0, "{}", describe(&config, &r));
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, config)) => {
            println!("counterexample through a frame-dropping proxy:\n{reason}");
            assert_eq!(config.network, Network::Proxy);
        }
        other => panic!("expected proptest to find a duplicate through the proxy, got {other:?}"),
    }
}
