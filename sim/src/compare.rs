//! `idempo-sim compare`: the same seed and fault schedule under several settings, side by side.
//!
//! Because fault decisions are keyed by the logical event ([`crate::faults`]), the runs face
//! the same network: the same batches lose the same acks on the same attempts. What differs is
//! only what the protocol makes of it. The first two columns are always idempotence on and off;
//! `--variant KEY=VALUE` adds columns with one setting changed from the first (for example
//! `dedup-window=1` or `max-in-flight=1`).

use crate::config::SimConfig;
use crate::engine::RunReport;
use std::fmt::Write as _;

/// One column: its label, config and result.
pub struct Column {
    /// The column's heading.
    pub label: String,
    /// The config it ran with.
    pub config: SimConfig,
    /// The result.
    pub report: RunReport,
}

/// Applies one `KEY=VALUE` variant to `base`. Keys are the `run` flags without dashes.
/// A `max-in-flight` above the dedup window opts into the unsafe experiment, since asking for
/// it is the point of the variant.
///
/// Several settings may be changed at once, separated by commas:
/// `network=proxy,first-batch-alone=on`.
pub fn apply_variant(base: &SimConfig, variant: &str) -> Result<SimConfig, String> {
    let mut c = base.clone();
    for setting in variant.split(',') {
        c = apply_setting(&c, variant, setting.trim())?;
    }
    if c.idempotence && c.max_in_flight > c.dedup_window {
        c.unsafe_max_in_flight = true;
    }
    c.validate()
        .map_err(|e| format!("--variant `{variant}`: {e}"))?;
    Ok(c)
}

fn apply_setting(base: &SimConfig, variant: &str, setting: &str) -> Result<SimConfig, String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("--variant `{variant}`: expected KEY=VALUE, e.g. dedup-window=1"))?;
    let bad = || format!("--variant `{variant}`: `{value}` is not a valid value for {key}");
    let mut c = base.clone();
    match key {
        "dedup-window" => c.dedup_window = value.parse().map_err(|_| bad())?,
        "max-in-flight" => c.max_in_flight = value.parse().map_err(|_| bad())?,
        "idempotence" => {
            c.idempotence = match value {
                "on" => true,
                "off" => false,
                _ => return Err(bad()),
            }
        }
        "ack-loss" => c.ack_loss = value.parse().map_err(|_| bad())?,
        "request-loss" => c.request_loss = value.parse().map_err(|_| bad())?,
        "retries" => c.retries = value.parse().map_err(|_| bad())?,
        "request-timeout-ms" => c.request_timeout_ms = value.parse().map_err(|_| bad())?,
        "delivery-timeout-ms" => c.delivery_timeout_ms = value.parse().map_err(|_| bad())?,
        "retry-backoff-ms" => c.retry_backoff_ms = value.parse().map_err(|_| bad())?,
        "first-batch-alone" => {
            c.first_batch_alone = match value {
                "on" => true,
                "off" => false,
                _ => return Err(bad()),
            }
        }
        "network" => c.network = crate::config::Network::parse(value).map_err(|_| bad())?,
        "latency-ms" => {
            let (min, max) = crate::config::parse_range(value).map_err(|_| bad())?;
            c.latency_min_ms = min;
            c.latency_max_ms = max;
        }
        other => {
            return Err(format!(
                "--variant `{variant}`: unknown setting `{other}` (expected one of: dedup-window, max-in-flight, \
                 idempotence, ack-loss, request-loss, retries, request-timeout-ms, delivery-timeout-ms, \
                 retry-backoff-ms, latency-ms, network, first-batch-alone)"
            ));
        }
    }
    if c.idempotence && c.max_in_flight > c.dedup_window {
        c.unsafe_max_in_flight = true;
    }
    c.validate()
        .map_err(|e| format!("--variant `{variant}`: {e}"))?;
    Ok(c)
}

/// The configs to compare: idempotence on, off, then each variant of the first.
pub fn columns(base: &SimConfig, variants: &[String]) -> Result<Vec<(String, SimConfig)>, String> {
    let on = SimConfig {
        idempotence: true,
        ..base.clone()
    };
    let off = SimConfig {
        idempotence: false,
        ..base.clone()
    };
    let mut out = vec![
        ("idempotence on".to_string(), on.clone()),
        ("idempotence off".to_string(), off),
    ];
    for v in variants {
        out.push((v.clone(), apply_variant(&on, v)?));
    }
    Ok(out)
}

/// The side-by-side table.
pub fn table(columns: &[Column]) -> String {
    type Cell = Box<dyn Fn(&RunReport) -> String>;
    let rows: Vec<(&str, Cell)> = vec![
        ("records sent", Box::new(|r| r.records_sent.to_string())),
        (
            "records acked",
            Box::new(|r| r.check.records_acked.to_string()),
        ),
        (
            "records failed",
            Box::new(|r| r.check.records_failed.to_string()),
        ),
        (
            "records in the log",
            Box::new(|r| r.check.log_records.to_string()),
        ),
        ("duplicates", Box::new(|r| r.check.duplicates.to_string())),
        (
            "lost (acked, not in log)",
            Box::new(|r| r.check.lost.to_string()),
        ),
        (
            "out of order",
            Box::new(|r| r.check.out_of_order.to_string()),
        ),
        (
            "failed but written",
            Box::new(|r| r.check.failed_but_written.to_string()),
        ),
        (
            "sequence gaps",
            Box::new(|r| r.check.sequence_gaps.to_string()),
        ),
        ("requests", Box::new(|r| r.requests.to_string())),
        ("retries", Box::new(|r| r.retries.to_string())),
        (
            "acks lost (fault)",
            Box::new(|r| r.faults.ack_lost.to_string()),
        ),
        (
            "requests lost (fault)",
            Box::new(|r| r.faults.request_lost.to_string()),
        ),
        (
            "duplicates dropped by broker",
            Box::new(|r| r.broker.duplicates_dropped.to_string()),
        ),
        (
            "gaps rejected (OOOS)",
            Box::new(|r| r.broker.gaps_rejected.to_string()),
        ),
        ("epoch bumps", Box::new(|r| r.epoch_bumps.to_string())),
        (
            "verdict",
            Box::new(|r| {
                if r.check.passed() {
                    "PASS".into()
                } else {
                    "FAIL".into()
                }
            }),
        ),
    ];
    let width = columns
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(0)
        .max(10)
        + 2;
    let mut s = String::new();
    let _ = write!(s, "{:<30}", "");
    for c in columns {
        let _ = write!(s, "{:>width$}", c.label);
    }
    s.push('\n');
    for (name, f) in &rows {
        let _ = write!(s, "{name:<30}");
        for c in columns {
            let _ = write!(s, "{:>width$}", f(&c.report));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_change_one_setting_and_name_bad_input() {
        let base = SimConfig::default();
        let c = apply_variant(&base, "dedup-window=1").unwrap();
        assert_eq!(c.dedup_window, 1);
        assert!(
            c.unsafe_max_in_flight,
            "max in flight 5 above window 1 is the experiment asked for"
        );
        assert!(
            apply_variant(&base, "colour=red")
                .unwrap_err()
                .contains("unknown setting `colour`")
        );
        assert!(
            apply_variant(&base, "max-in-flight=x")
                .unwrap_err()
                .contains("not a valid value")
        );
        assert!(
            apply_variant(&base, "ack-loss=2")
                .unwrap_err()
                .contains("--ack-loss")
        );
        assert!(
            apply_variant(&base, "nokey")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
    }
}
