//! `idempo-sim compare`: the same seed and fault schedule under several settings, side by side.
//!
//! Because fault decisions are keyed by the logical event ([`crate::faults`]), the runs face
//! the same network: the same batches lose the same acks on the same attempts. What differs is
//! only what the protocol makes of it. The first two columns are always idempotence on and off;
//! `--variant KEY=VALUE` adds columns with one setting changed from the first (for example
//! `dedup-window=1` or `max-in-flight=1`). The keys are the run flags of [`crate::flags`],
//! the same table the command line and the replay line come from.

use crate::config::{Acks, ConfigError, SimConfig};
use crate::engine::RunReport;
use crate::flags::{self, FlagError};
use std::fmt::{self, Write as _};

/// One column: its label, config and result.
pub struct Column {
    /// The column's heading.
    pub label: String,
    /// The config it ran with.
    pub config: SimConfig,
    /// The result.
    pub report: RunReport,
}

/// A `--variant` (or `sweep --set`) the simulator refuses.
#[derive(Clone, Debug, PartialEq)]
pub enum VariantError {
    /// A setting without `=`.
    NotKeyValue {
        /// The whole variant.
        variant: String,
    },
    /// An unknown key or a refused value.
    Flag {
        /// The whole variant.
        variant: String,
        /// What is wrong with the setting.
        error: FlagError,
    },
    /// The settings together make a config the simulator refuses.
    Config {
        /// The whole variant.
        variant: String,
        /// Why.
        error: ConfigError,
    },
}

impl VariantError {
    /// What is wrong, without the `--variant` prefix (for `sweep --set`, which names its own
    /// flag).
    pub fn reason(&self) -> String {
        match self {
            VariantError::NotKeyValue { .. } => {
                "expected KEY=VALUE, e.g. dedup-window=1".to_string()
            }
            VariantError::Flag { error, .. } => error.to_string(),
            VariantError::Config { error, .. } => error.to_string(),
        }
    }

    /// The variant as given.
    pub fn variant(&self) -> &str {
        match self {
            VariantError::NotKeyValue { variant }
            | VariantError::Flag { variant, .. }
            | VariantError::Config { variant, .. } => variant,
        }
    }
}

impl fmt::Display for VariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--variant `{}`: {}", self.variant(), self.reason())
    }
}

impl std::error::Error for VariantError {}

/// Applies one `KEY=VALUE` variant to `base`. Keys are the `run` flags without dashes (the
/// table of [`crate::flags`]); switches take `on` or `off`. A `max-in-flight` above the dedup
/// window opts into the unsafe experiment, since asking for it is the point of the variant.
///
/// An `acks` other than `all` turns idempotence off unless the variant sets `idempotence`
/// itself, as Kafka's producer does when idempotence is not configured explicitly.
///
/// Several settings may be changed at once, separated by commas:
/// `network=proxy,first-batch-alone=on`.
pub fn apply_variant(base: &SimConfig, variant: &str) -> Result<SimConfig, VariantError> {
    let mut c = base.clone();
    for setting in variant.split(',') {
        let (key, value) =
            setting
                .trim()
                .split_once('=')
                .ok_or_else(|| VariantError::NotKeyValue {
                    variant: variant.to_string(),
                })?;
        flags::set(&mut c, key.trim(), value.trim()).map_err(|error| VariantError::Flag {
            variant: variant.to_string(),
            error,
        })?;
    }
    if c.idempotence && c.max_in_flight > c.dedup_window {
        c.unsafe_max_in_flight = true;
    }
    // Kafka's producer turns idempotence off by itself when `acks` is not `all` and
    // idempotence was not asked for explicitly: `acks=1` is a variant of that producer.
    if c.acks != crate::config::Acks::All && !variant.contains("idempotence") {
        c.idempotence = false;
    }
    c.validate().map_err(|error| VariantError::Config {
        variant: variant.to_string(),
        error,
    })?;
    Ok(c)
}

/// The configs to compare: idempotence on, off, then each variant of the first.
pub fn columns(
    base: &SimConfig,
    variants: &[String],
) -> Result<Vec<(String, SimConfig)>, VariantError> {
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

/// One row of the table: how a run's report gives its cell.
type Cell = Box<dyn Fn(&RunReport) -> String>;

/// The rows of the side-by-side table, in order.
fn rows() -> Vec<(&'static str, Cell)> {
    vec![
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
    ]
}

/// The rows a replicated run adds, before the verdict.
fn cluster_rows() -> Vec<(&'static str, Cell)> {
    let counts = |f: fn(&crate::engine::ClusterCounts) -> u64| -> Cell {
        Box::new(move |r| r.cluster.as_ref().map_or(0, f).to_string())
    };
    let check = |f: fn(&crate::replication_check::ReplicationCheck) -> u64| -> Cell {
        Box::new(move |r| r.check.replication.as_ref().map_or(0, f).to_string())
    };
    vec![
        ("leader elections", counts(|c| c.leader_elections)),
        ("unclean elections", counts(|c| c.unclean_elections)),
        ("truncations", counts(|c| c.truncations)),
        ("ISR shrinks", counts(|c| c.isr_shrinks)),
        ("NOT_ENOUGH_REPLICAS", counts(|c| c.not_enough_replicas)),
        ("lost, acks=1 failover", check(|c| c.lost_acks_one_failover)),
        ("lost, unclean election", check(|c| c.lost_unclean_election)),
        ("lost, power loss", check(|c| c.lost_power_loss)),
    ]
}

/// The row an `acks=0` column adds before the verdict: records the producer counted
/// written once sent that are not in the log, the known limit of `acks=0` (not an anomaly).
fn acks_zero_row() -> (&'static str, Cell) {
    (
        "lost, acks=0 (never acked)",
        Box::new(|r| r.check.lost_acks_zero.to_string()),
    )
}

/// The side-by-side table. Replicated runs add the cluster's rows before the verdict, and a
/// column with `acks=0` the row of that limit.
pub fn table(columns: &[Column]) -> String {
    let mut rows = rows();
    let verdict = rows.pop();
    if columns.iter().any(|c| c.config.is_cluster()) {
        rows.extend(cluster_rows());
    }
    if columns.iter().any(|c| c.config.acks == Acks::None) {
        rows.push(acks_zero_row());
    }
    rows.extend(verdict);
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
        let c = apply_variant(&base, "dedup-window=1").expect("a valid variant");
        assert_eq!(c.dedup_window, 1);
        assert!(
            c.unsafe_max_in_flight,
            "max in flight 5 above window 1 is the experiment asked for"
        );
        let error = |v: &str| {
            apply_variant(&base, v)
                .expect_err("a refused variant")
                .to_string()
        };
        assert!(error("colour=red").contains("unknown setting `colour`"));
        assert!(error("max-in-flight=x").contains("not a valid value"));
        assert!(error("ack-loss=2").contains("--ack-loss"));
        assert!(error("nokey").contains("KEY=VALUE"));
    }

    fn table_of(base: &SimConfig, variants: &[&str]) -> String {
        let variants: Vec<String> = variants.iter().map(|v| v.to_string()).collect();
        let columns = columns(base, &variants)
            .expect("valid variants")
            .into_iter()
            .map(|(label, config)| Column {
                label,
                report: crate::Simulation::new(config.clone(), None)
                    .expect("a valid config")
                    .run()
                    .0,
                config,
            })
            .collect::<Vec<_>>();
        table(&columns)
    }

    #[test]
    fn an_acks_zero_column_adds_the_row_of_its_limit_before_the_verdict() {
        let base = SimConfig {
            records: 40,
            request_loss: 0.2,
            ..SimConfig::default()
        };
        let plain = table_of(&base, &[]);
        assert!(!plain.contains("acks=0"), "{plain}");
        let with = table_of(&base, &["idempotence=off,acks=0"]);
        let lines: Vec<&str> = with.lines().collect();
        let row = lines
            .iter()
            .position(|l| l.starts_with("lost, acks=0 (never acked)"))
            .expect("the acks=0 row");
        assert!(lines[row + 1].starts_with("verdict"), "{with}");
        let last_cell: u64 = lines[row]
            .split_whitespace()
            .last()
            .and_then(|c| c.parse().ok())
            .expect("a count");
        assert!(
            last_cell > 0,
            "requests lost with acks=0 are counted: {with}"
        );
    }

    #[test]
    fn every_run_flag_is_a_variant_key() {
        let base = SimConfig::default();
        let c = apply_variant(
            &base,
            "snapshot-mode=last-batch,sync=never,first-batch-alone=on",
        )
        .expect("valid settings");
        assert_eq!(c.snapshot_mode, idempo_broker::SnapshotMode::LastBatchOnly);
        assert_eq!(c.sync, idempo_broker::SyncPolicy::Never);
        assert!(c.first_batch_alone);
    }
}
