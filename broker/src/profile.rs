//! Broker profiles: which broker's historical rules the broker follows, as a set of single
//! behaviour switches over [`BrokerConfig`].
//!
//! A profile never adds a code path of its own: it sets the switches that already exist
//! (`dedup_window`, `snapshot_mode`), each of which is a rule that some released broker had.
//! The simulator's `--broker-profile` flag and the bug zoo (`idempo-sim zoo`) use them to
//! switch a historical behaviour on by name.
//!
//! ```text
//! profile          dedup window (batches)          snapshot keeps     upstream
//! kafka            5 (NUM_BATCHES_TO_RETAIN)        the run's setting  Kafka 1.0+ (KAFKA-5494)
//! kafka-2.4        5                                the last batch     Kafka 2.4 (ProducerSnapshot)
//! kafka-0.11       1 (the last batch only)          the last batch     Kafka 0.11.0, KAFKA-5494
//! redpanda-21.10   1 (the tail batch only)          the run's setting  Redpanda #3039, PR 3077
//! ```
//!
//! `kafka`, the default, changes nothing: it is today's broker (with idempo's full-window
//! snapshots unless `snapshot_mode` says otherwise). `kafka-0.11` is the first idempotent
//! broker: its `ProducerIdEntry` kept the metadata of the last batch only, so a retry of any
//! older batch in flight was not recognised and got `OUT_OF_ORDER_SEQUENCE_NUMBER`; Kafka 1.0
//! (KAFKA-5494) kept the last five. `redpanda-21.10` kept the sequence and offset of the tail
//! batch per producer and nothing else until PR 3077 cached the last five batches.
//!
//! # Differences from the brokers named
//! The 0.11 and 2.4 brokers also answered a batch from an unknown producer at a sequence other
//! than 0 with `UNKNOWN_PRODUCER_ID` (or `OUT_OF_ORDER_SEQUENCE_NUMBER`), and let
//! DeleteRecords and retention evict producer state (KAFKA-5793, KAFKA-7190). Those rules
//! have no switch here yet; under every profile an unknown producer may start at any
//! sequence and DeleteRecords keeps producer state, as in Kafka 2.5+.

use crate::broker::BrokerConfig;
use crate::snapshot::SnapshotMode;
use std::fmt;
use std::str::FromStr;

/// A broker whose deduplication rules the broker follows (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BrokerProfile {
    /// Today's Kafka broker: the run's settings unchanged (the default).
    #[default]
    Kafka,
    /// Kafka 2.4: five batches retained, snapshots of the last batch only.
    Kafka24,
    /// Kafka 0.11.0: the last batch only, in memory and in snapshots (KAFKA-5494).
    Kafka011,
    /// Redpanda 21.10 before PR 3077: the tail batch only (redpanda #3039).
    Redpanda2110,
}

impl BrokerProfile {
    /// Every profile, in declaration order.
    pub const ALL: [BrokerProfile; 4] = [
        BrokerProfile::Kafka,
        BrokerProfile::Kafka24,
        BrokerProfile::Kafka011,
        BrokerProfile::Redpanda2110,
    ];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            BrokerProfile::Kafka => "kafka",
            BrokerProfile::Kafka24 => "kafka-2.4",
            BrokerProfile::Kafka011 => "kafka-0.11",
            BrokerProfile::Redpanda2110 => "redpanda-21.10",
        }
    }

    /// The most batches per producer and partition this broker remembered, when it
    /// remembered fewer than a run may ask for (`None`: the run's `dedup_window`).
    pub fn dedup_window_max(self) -> Option<usize> {
        match self {
            BrokerProfile::Kafka | BrokerProfile::Kafka24 => None,
            BrokerProfile::Kafka011 | BrokerProfile::Redpanda2110 => Some(1),
        }
    }

    /// What this broker's producer-state snapshots kept, when the profile decides it.
    pub fn snapshot_mode(self) -> Option<SnapshotMode> {
        match self {
            BrokerProfile::Kafka | BrokerProfile::Redpanda2110 => None,
            BrokerProfile::Kafka24 | BrokerProfile::Kafka011 => Some(SnapshotMode::LastBatchOnly),
        }
    }

    /// Sets the profile's switches on `config`, leaving every other setting alone.
    pub fn apply(self, config: &mut BrokerConfig) {
        if let Some(window) = self.dedup_window_max() {
            config.dedup_window = config.dedup_window.min(window);
        }
        if let Some(mode) = self.snapshot_mode() {
            config.snapshot_mode = mode;
        }
    }
}

impl fmt::Display for BrokerProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broker profile name that none of [`BrokerProfile::ALL`] has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBrokerProfile(pub String);

impl fmt::Display for UnknownBrokerProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown broker profile {:?}: expected kafka, kafka-2.4, kafka-0.11 or redpanda-21.10",
            self.0
        )
    }
}

impl std::error::Error for UnknownBrokerProfile {}

impl FromStr for BrokerProfile {
    type Err = UnknownBrokerProfile;

    fn from_str(s: &str) -> Result<BrokerProfile, UnknownBrokerProfile> {
        BrokerProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownBrokerProfile(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_profile_names_round_trip_and_kafka_is_the_default() {
        assert_eq!(BrokerProfile::default(), BrokerProfile::Kafka);
        for p in BrokerProfile::ALL {
            assert_eq!(p.name().parse::<BrokerProfile>(), Ok(p));
        }
        assert!("kafka-0.10".parse::<BrokerProfile>().is_err());
    }

    #[test]
    fn kafka_profile_changes_nothing() {
        let mut config = BrokerConfig::default();
        BrokerProfile::Kafka.apply(&mut config);
        assert_eq!(config, BrokerConfig::default());
    }

    #[test]
    fn kafka_0_11_and_redpanda_21_10_remember_one_batch() {
        for p in [BrokerProfile::Kafka011, BrokerProfile::Redpanda2110] {
            let mut config = BrokerConfig::default();
            p.apply(&mut config);
            assert_eq!(config.dedup_window, 1, "{p}");
        }
        let mut config = BrokerConfig::default();
        BrokerProfile::Kafka24.apply(&mut config);
        assert_eq!(config.dedup_window, 5);
        assert_eq!(config.snapshot_mode, SnapshotMode::LastBatchOnly);
    }
}
