//! `--acks 0` in the simulator: the broker never answers, the producer counts a batch written
//! once sent, and yet its produce requests are real produce requests: the fault plan can drop
//! them, the trace shows them as produce requests with their batches, the ledger counts their
//! sends, and a record they lose is a named limit of the guarantee, not a protocol anomaly.

use idempo_sim::config::Acks;
use idempo_sim::events::SimEvent;
use idempo_sim::plan::{Fault, MessageFault};
use idempo_sim::trace::Trace;
use idempo_sim::{RunReport, SimConfig, Simulation};

/// An acks=0 run (idempotence off, as Kafka's producer requires) that loses requests.
fn acks_zero(brokers: u32) -> SimConfig {
    SimConfig {
        seed: 5,
        producers: 2,
        partitions: 2,
        records: 200,
        batch_records: 5,
        acks: Acks::None,
        idempotence: false,
        request_loss: 0.3,
        brokers,
        replication_factor: brokers,
        ..SimConfig::default()
    }
}

fn run(config: &SimConfig) -> (RunReport, Vec<idempo_sim::events::Timed>) {
    let (report, trace) = Simulation::new(config.clone(), Some(Trace::collecting()))
        .expect("a valid config")
        .run();
    (report, trace.expect("a trace was given").events().to_vec())
}

/// The records the run sent that are not in the final log.
fn missing(r: &RunReport) -> u64 {
    r.records_sent - r.check.log_records
}

#[test]
fn request_loss_drops_acks_zero_produce_requests_and_the_losses_are_a_named_limit() {
    for brokers in [1, 3] {
        let config = acks_zero(brokers);
        let (r, _) = run(&config);
        let text = idempo_sim::report::summary(&config, &r);
        let dropped = r
            .faults_happened
            .iter()
            .filter(|f| {
                matches!(f, Fault::Message { kind: MessageFault::RequestLoss, batch, .. } if *batch != u64::MAX)
            })
            .count();
        assert!(
            dropped > 0,
            "brokers {brokers}: the plan drops produce requests:\n{text}"
        );
        assert!(r.finished, "{text}");
        assert_eq!(
            r.check.records_acked, r.records_sent,
            "acks=0: all counted written"
        );
        assert!(
            missing(&r) > 0,
            "brokers {brokers}: some records are lost:\n{text}"
        );
        assert_eq!(r.check.lost, 0, "not a protocol anomaly:\n{text}");
        assert_eq!(r.check.anomalies(), 0, "{text}");
        assert_eq!(
            r.check.lost_acks_zero,
            missing(&r),
            "brokers {brokers}: every missing record is in the acks=0 bucket:\n{text}"
        );
        if let Some(c) = &r.check.replication {
            assert_eq!(
                c.lost_acks_one_failover, 0,
                "not the acks=1 bucket:\n{text}"
            );
        }
        assert!(
            text.contains("sent with acks=0 (never acknowledged), lost"),
            "{text}"
        );
        assert!(
            !r.check.passed(),
            "a loss beyond the guarantee fails the run"
        );
        let json = idempo_sim::report::json(&config, &r);
        assert_eq!(json["lost_acks_zero"], r.check.lost_acks_zero, "{json}");
    }
}

#[test]
fn a_run_with_acks_all_lists_no_acks_zero_limit() {
    let config = SimConfig {
        request_loss: 0.3,
        ..SimConfig::default()
    };
    let (r, _) = Simulation::new(config.clone(), None).expect("valid").run();
    let text = idempo_sim::report::summary(&config, &r);
    assert!(!text.contains("acks=0"), "{text}");
    let json = idempo_sim::report::json(&config, &r);
    assert!(json.get("lost_acks_zero").is_none(), "{json}");
}

#[test]
fn the_trace_shows_acks_zero_requests_as_produce_requests_with_their_batches() {
    for brokers in [1, 3] {
        let (_, events) = run(&acks_zero(brokers));
        let mut produce = 0;
        for e in &events {
            let SimEvent::RequestSent {
                batches, metadata, ..
            } = &e.event
            else {
                continue;
            };
            if *metadata {
                continue;
            }
            let line = e.event.to_string();
            assert!(!batches.is_empty(), "brokers {brokers}: {line}");
            assert!(line.starts_with("produce #"), "brokers {brokers}: {line}");
            assert!(!line.contains("InitProducerId"), "{line}");
            produce += 1;
        }
        assert!(produce > 0);
    }
}

#[test]
fn the_ledger_counts_every_acks_zero_batch_send() {
    for brokers in [1, 3] {
        let config = acks_zero(brokers);
        let (r, events) = run(&config);
        let carried: u64 = events
            .iter()
            .map(|e| match &e.event {
                SimEvent::RequestSent { batches, .. } => batches.len() as u64,
                _ => 0,
            })
            .sum();
        let batches = config.batches_per_producer() * u64::from(config.producers);
        assert_eq!(r.batch_sends, carried, "brokers {brokers}");
        assert!(
            r.batch_sends >= batches,
            "brokers {brokers}: every batch was sent at least once: {} < {batches}",
            r.batch_sends
        );
        let ledger = r.check.ledger;
        let categorised: u64 = ledger.categories().iter().map(|(_, n)| n).sum();
        assert_eq!(categorised, batches, "brokers {brokers}");
        assert!(
            ledger.acked_not_written > 0,
            "brokers {brokers}: {ledger:?}"
        );
    }
}
