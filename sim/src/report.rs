//! How a run is told: the VOPR-style header, the summary with the ack ledger and the named
//! invariants, the verdict with the command that replays it, and the `--json` object.

use crate::checker::CheckReport;
use crate::config::SimConfig;
use crate::engine::RunReport;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The header: the seed and every parameter, before anything runs. A cluster run (more than
/// one broker) adds a `cluster` line; a one-broker run prints what it always printed.
pub fn header(config: &SimConfig) -> String {
    let mut s = standalone_header(config);
    if config.is_cluster() {
        s.push_str(&cluster_header(config));
    }
    s
}

/// The `cluster` and `cluster faults` lines of the header.
fn cluster_header(c: &SimConfig) -> String {
    format!(
        "\x20 cluster    brokers={} replication_factor={} min_insync_replicas={} acks={} unclean_leader_election={} replica_lag_time_max_ms={} broker_session_timeout_ms={} inter_broker_latency_ms={}..{} inter_broker_loss={}\n\
         \x20 cluster faults  leader_kills={} isolations={} correlated_crashes={}\n",
        c.brokers,
        c.replication_factor,
        c.min_insync_replicas,
        c.acks.name(),
        if c.unclean_leader_election {
            "on"
        } else {
            "off"
        },
        c.replica_lag_time_max_ms,
        c.broker_session_timeout_ms,
        c.inter_broker_latency_min_ms,
        c.inter_broker_latency_max_ms,
        c.inter_broker_loss,
        c.leader_kills,
        c.isolations,
        c.correlated_crashes,
    )
}

/// The header of earlier versions, unchanged.
fn standalone_header(config: &SimConfig) -> String {
    let c = config;
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "idempo-sim run  seed={}\n\
         \x20 workload   producers={} partitions={} records={} (per producer) batch_records={}\n\
         \x20 producer   client_profile={} idempotence={} max_in_flight={}{} request_timeout_ms={} delivery_timeout_ms={} retries={} retry_backoff_ms={}{}\n\
         \x20 broker     idempotence={} dedup_window={} producer_id_expiration_ms={} sync={} snapshot_mode={}\n\
         \x20 network    ack_loss={} request_loss={} duplicate={} corrupt={} spike={}@{}ms latency_ms={}..{} network={}\n\
         \x20 processes  broker_crashes={} broker_restarts={} producer_restarts={}\n",
        c.seed,
        c.producers,
        c.partitions,
        c.records,
        c.batch_records,
        c.client_profile.name(),
        on(c.idempotence),
        c.max_in_flight,
        if c.unsafe_max_in_flight {
            " (unsafe: above the dedup window)"
        } else {
            ""
        },
        c.request_timeout_ms,
        c.delivery_timeout_ms,
        c.retries,
        c.retry_backoff_ms,
        if c.first_batch_alone && c.client_profile == idempo_producer::ClientProfile::Java {
            " first_batch_alone=on"
        } else {
            ""
        },
        on(c.idempotence),
        c.dedup_window,
        c.producer_id_expiration_ms,
        crate::config::sync_name(c.sync),
        crate::config::snapshot_mode_name(c.snapshot_mode),
        c.ack_loss,
        c.request_loss,
        c.duplicate,
        c.corrupt,
        c.spike,
        c.spike_ms,
        c.latency_min_ms,
        c.latency_max_ms,
        c.network.name(),
        c.broker_crashes,
        c.broker_restarts,
        c.producer_restarts,
    )
}

/// The summary, invariants, verdict and replay command.
pub fn summary(config: &SimConfig, r: &RunReport) -> String {
    let k = &r.check;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "summary  (virtual time {} ms, {} events{})",
        r.virtual_ms,
        r.events,
        if r.finished {
            ""
        } else {
            ", STOPPED at the time limit"
        }
    );
    let _ = writeln!(
        s,
        "  records   sent {}  acked {}  failed {}  unresolved {}  in the log {}",
        r.records_sent, k.records_acked, k.records_failed, k.records_unresolved, k.log_records
    );
    let _ = writeln!(
        s,
        "  network   requests {}  retries {}  requests lost {}  acks lost {}  lost with a broken connection {}  disconnects {}",
        r.requests,
        r.retries,
        r.faults.request_lost,
        r.faults.ack_lost,
        r.faults.lost_with_connection,
        r.faults.disconnects
    );
    let _ = writeln!(
        s,
        "  broker    appended {}  duplicates dropped {}  gaps rejected {} (OUT_OF_ORDER_SEQUENCE_NUMBER)  stale epoch {}  other errors {}",
        r.broker.appended,
        r.broker.duplicates_dropped,
        r.broker.gaps_rejected,
        r.broker.stale_epoch_rejected,
        r.broker.other_rejected
    );
    if let Some(c) = &r.cluster {
        let _ = writeln!(
            s,
            "  cluster   leader elections {} (unclean {})  offline {}  truncations {}  ISR shrinks {}  expands {}  NOT_ENOUGH_REPLICAS {}  NOT_LEADER_OR_FOLLOWER {}  produce timeouts {}",
            c.leader_elections,
            c.unclean_elections,
            c.offline,
            c.truncations,
            c.isr_shrinks,
            c.isr_expands,
            c.not_enough_replicas,
            c.not_leader,
            c.produce_timeouts
        );
        let _ = writeln!(
            s,
            "  replicas  fetches {}  inter-broker messages lost {}  leader kills {}  isolations {}  correlated crashes {}  most brokers down at once {}",
            c.fetches,
            c.inter_broker_lost,
            c.leader_kills,
            c.isolations,
            c.correlated_crashes,
            c.most_down_at_once
        );
    }
    s.push_str(&events(config, r));
    s.push_str(&check_sections(k));
    let _ = writeln!(s, "replay: {}", config.replay_command("run"));
    s
}

/// The summary's lines on injected faults, expiry, the producer, latency and the window.
fn events(config: &SimConfig, r: &RunReport) -> String {
    let mut s = String::new();
    let f = &r.faults;
    if f.duplicated
        + f.corrupted
        + f.header_corrupted
        + f.spikes
        + f.broker_crashes
        + f.broker_restarts
        + f.producer_restarts
        > 0
    {
        let _ = writeln!(
            s,
            "  faults    duplicated {}  corrupted {} (CORRUPT_MESSAGE answers {})  header-corrupted {}  spikes {}  broker crashes {}  broker restarts {}  producer restarts {}",
            f.duplicated,
            f.corrupted,
            r.broker.corrupt_rejected,
            f.header_corrupted,
            f.spikes,
            f.broker_crashes,
            f.broker_restarts,
            f.producer_restarts
        );
    }
    if r.broker.producers_expired > 0 {
        let _ = writeln!(
            s,
            "  expiry    producer states the broker expired {}",
            r.broker.producers_expired
        );
    }
    if config.producer_per_batch
        || config.producer_state_budget.is_some()
        || config.max_producer_ids_per_partition.is_some()
    {
        let _ = writeln!(
            s,
            "  state     producer ids held at most {} ({} bytes); evicted by the bound {}",
            r.broker.producer_ids_peak,
            r.broker.producer_state_bytes_peak,
            r.broker.producer_ids_evicted
        );
    }
    let _ = writeln!(
        s,
        "  producer  epoch bumps {}  new producer ids {}",
        r.epoch_bumps, r.producer_id_resets
    );
    let _ = writeln!(
        s,
        "  latency   handed over to acknowledged: p50 {} ms  p99 {} ms (virtual time)",
        r.latency_p50_ms, r.latency_p99_ms
    );
    if r.broker.retries_outside_window > 0 {
        let _ = writeln!(
            s,
            "  note      {} retries of batches already in the log fell outside the dedup window ({}) and were refused",
            r.broker.retries_outside_window, config.dedup_window
        );
    }
    s
}

/// The checker's findings as every checked run prints them (`idempo-sim run`, `run
/// --bootstrap`, `idempo-producer --verify`): the ack ledger, the named invariants, the
/// limits of the guarantee and the verdict, one per line.
pub fn check_sections(k: &CheckReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ack ledger (batches)");
    for (name, n) in k.ledger.categories() {
        let _ = writeln!(s, "  {name:.<56} {n}");
    }
    let _ = writeln!(s, "invariants");
    for (name, n) in k.invariants() {
        let status = if n == 0 {
            "ok".to_string()
        } else {
            format!("VIOLATED ({n})")
        };
        let _ = writeln!(s, "  {name:.<56} {status}");
    }
    let _ = writeln!(s, "limits of the guarantee (not protocol bugs)");
    for (name, n) in k.limits() {
        let _ = writeln!(s, "  {name:.<56} {n}");
    }
    if k.passed() {
        let _ = writeln!(s, "verdict: PASS");
    } else {
        let _ = writeln!(
            s,
            "verdict: FAIL ({} protocol anomalies, {} beyond the guarantee)",
            k.anomalies(),
            k.guarantee_limits()
        );
    }
    s
}

/// The `--json` summary object. A replicated run adds the cluster's fields (see
/// [`cluster_json`]), an `acks=0` run its `lost_acks_zero`; a one-broker `acks=all` run
/// prints what it always printed.
pub fn json(config: &SimConfig, r: &RunReport) -> Value {
    let mut value = standalone_json(config, r);
    if let (Value::Object(map), Value::Object(cluster)) = (&mut value, cluster_json(config, r)) {
        map.extend(cluster);
    }
    if let (Value::Object(map), true) = (&mut value, r.check.acks_zero) {
        map.insert("lost_acks_zero".into(), json!(r.check.lost_acks_zero));
    }
    value
}

/// The fields of a replicated run: the cluster's settings, what it did, and the losses the
/// named limits explain (`lost_in_failover`, apart from `lost`, the unexplained ones).
pub fn cluster_json(config: &SimConfig, r: &RunReport) -> Value {
    let (Some(c), true) = (&r.cluster, config.is_cluster()) else {
        return json!({});
    };
    let k = r.check.replication.clone().unwrap_or_default();
    json!({
        "brokers": config.brokers,
        "replication_factor": config.replication_factor,
        "acks": config.acks.name(),
        "min_insync_replicas": config.min_insync_replicas,
        "unclean_leader_election": config.unclean_leader_election,
        "leader_elections": c.leader_elections,
        "unclean_elections": c.unclean_elections,
        "offline_partitions": c.offline,
        "truncations": c.truncations,
        "isr_shrinks": c.isr_shrinks,
        "isr_expands": c.isr_expands,
        "not_enough_replicas": c.not_enough_replicas,
        "not_leader_or_follower": c.not_leader,
        "produce_timeouts": c.produce_timeouts,
        "fetches": c.fetches,
        "inter_broker_lost": c.inter_broker_lost,
        "most_brokers_down_at_once": c.most_down_at_once,
        "lost_in_failover": k.lost_in_failover(),
        "lost_acks_one_failover": k.lost_acks_one_failover,
        "lost_unclean_election": k.lost_unclean_election,
        "lost_power_loss": k.lost_power_loss,
        "read_then_lost": k.read_then_lost,
        "read_then_lost_explained": k.read_then_lost_explained,
        "replicas_diverged": k.replicas_diverged,
        "guaranteed": k.guaranteed,
    })
}

/// The `--json` object of earlier versions, unchanged.
fn standalone_json(config: &SimConfig, r: &RunReport) -> Value {
    let k = &r.check;
    json!({
        "seed": config.seed,
        "idempotence": config.idempotence,
        "client_profile": config.client_profile.name(),
        "producers": config.producers,
        "partitions": config.partitions,
        "records_per_producer": config.records,
        "batch_records": config.batch_records,
        "max_in_flight": config.max_in_flight,
        "dedup_window": config.dedup_window,
        "ack_loss": config.ack_loss,
        "request_loss": config.request_loss,
        "records_sent": r.records_sent,
        "records_acked": k.records_acked,
        "records_failed": k.records_failed,
        "records_unresolved": k.records_unresolved,
        "log_records": k.log_records,
        "duplicates": k.duplicates,
        "lost": k.lost,
        "out_of_order": k.out_of_order,
        "failed_but_written": k.failed_but_written,
        "sequence_gaps": k.sequence_gaps,
        "lost_unsynced": k.lost_unsynced,
        "duplicates_across_sessions": k.duplicates_across_sessions,
        "after_expiry": k.after_expiry,
        "duplicates_after_window_shrink": k.duplicates_after_window_shrink,
        "wrong_offsets": k.wrong_offsets,
        "fatal_errors": k.fatal_errors,
        "epochs_not_from_zero": k.epochs_not_from_zero,
        "producers_expired": r.broker.producers_expired,
        "latency_p50_ms": r.latency_p50_ms,
        "latency_p99_ms": r.latency_p99_ms,
        "corrupt_rejected": r.broker.corrupt_rejected,
        "misplaced": k.misplaced,
        "requests": r.requests,
        "retries": r.retries,
        "duplicates_dropped": r.broker.duplicates_dropped,
        "gaps_rejected": r.broker.gaps_rejected,
        "stale_epoch_rejected": r.broker.stale_epoch_rejected,
        "appended": r.broker.appended,
        "retries_outside_window": r.broker.retries_outside_window,
        "epoch_bumps": r.epoch_bumps,
        "producer_id_resets": r.producer_id_resets,
        "faults": r.faults,
        "ack_ledger": k.ledger,
        "virtual_ms": r.virtual_ms,
        "events": r.events,
        "finished": r.finished,
        "verdict": if k.passed() { "pass" } else { "fail" },
        "replay": config.replay_command("run"),
    })
}
