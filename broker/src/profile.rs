//! Broker profiles: which broker's historical rules the broker follows, as a set of single
//! behaviour switches over [`BrokerConfig`].
//!
//! A profile never adds a code path of its own: it sets the switches that already exist
//! (`dedup_window`, `snapshot_mode`, `unknown_producer`, `evict_producers_below_log_start`),
//! each of which is a rule that some released broker had. The simulator's `--broker-profile`
//! flag and the bug zoo (`idempo-sim zoo`) use them to switch a historical behaviour on by
//! name.
//!
//! ```text
//! profile          dedup window    snapshot keeps     unknown producer,   DeleteRecords /
//!                  (batches)                          sequence > 0        retention
//! kafka            5               the run's setting  accepted (2.5+)     keeps its state
//! kafka-2.4        5               the last batch     UNKNOWN_PRODUCER_ID keeps its state
//! kafka-1.0        5               the last batch     UNKNOWN_PRODUCER_ID evicts it
//! kafka-0.11       1 (last only)   the last batch     OUT_OF_ORDER_SEQ.   evicts it
//! redpanda-21.10   1 (tail only)   the run's setting  accepted            keeps its state
//! ```
//!
//! `kafka`, the default, changes nothing: it is today's broker (with idempo's full-window
//! snapshots unless `snapshot_mode` says otherwise). `kafka-0.11` is the first idempotent
//! broker: its `ProducerIdEntry` kept the metadata of the last batch only, so a retry of any
//! older batch in flight was not recognised and got `OUT_OF_ORDER_SEQUENCE_NUMBER`; Kafka 1.0
//! (KAFKA-5494) kept the last five. `redpanda-21.10` kept the sequence and offset of the tail
//! batch per producer and nothing else until PR 3077 cached the last five batches.
//!
//! The rules for a producer the partition has no state for, by version (read from Kafka's
//! `ProducerStateManager` at the tags; [`UnknownProducerRule`]):
//!
//! * 0.11.0: a batch not at sequence 0 is `OUT_OF_ORDER_SEQUENCE_NUMBER`, fatal for the
//!   client of the day; and when retention or DeleteRecords moved the log start past a
//!   producer's last batch, `truncateHead` removed its state. Together: a quiet producer
//!   whose records were deleted got a spurious fatal error on its next batch (KAFKA-5793).
//! * 1.0.0 (KAFKA-5793): that answer became `UNKNOWN_PRODUCER_ID`, on which the client reset
//!   its sequence when the log start was past its last acknowledged offset. Producer state
//!   was still evicted with the log head.
//! * 2.4.0 (KAFKA-7190, PR 7388, part of KIP-360): producer state is kept when the log start
//!   moves, until `producer.id.expiration.ms`; the unknown-producer answer is still
//!   `UNKNOWN_PRODUCER_ID`.
//! * 2.5.0 (KIP-360): a producer with no state is accepted at any sequence.
//!
//! So `kafka-0.11` evicts with the log head and answers out of order, `kafka-1.0` (Kafka 1.0.0
//! to 2.3.x) evicts and answers `UNKNOWN_PRODUCER_ID`, `kafka-2.4` keeps the state and
//! answers `UNKNOWN_PRODUCER_ID`. The zoo's KAFKA-5793 is `kafka-0.11` against `kafka-1.0`,
//! its KAFKA-7190 `kafka-1.0` against `kafka-2.4`.
//!
//! # Differences from the brokers named
//! Only the rules above are switched: everything else (KIP-360's epoch bump on the broker,
//! transactions, the leader-epoch rules) is today's Kafka under every profile. The simulator
//! moves the log start with its DeleteRecords fault (`idempo-sim run --delete-records N`,
//! whose checker reads the deleted batches as the head of the log, so that deleted records
//! are not lost); `idempo-sim explain` scripts and the broker's own API (`delete_records`)
//! show the eviction too.

use crate::broker::BrokerConfig;
use crate::producer_state::UnknownProducerRule;
use crate::snapshot::SnapshotMode;
use std::fmt;
use std::str::FromStr;

/// A broker whose deduplication rules the broker follows (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BrokerProfile {
    /// Today's Kafka broker: the run's settings unchanged (the default).
    #[default]
    Kafka,
    /// Kafka 2.4: five batches retained, snapshots of the last batch only,
    /// `UNKNOWN_PRODUCER_ID` for a producer with no state.
    Kafka24,
    /// Kafka 1.0.0 to 2.3.x: five batches retained (KAFKA-5494), snapshots of the last batch,
    /// `UNKNOWN_PRODUCER_ID` for a producer with no state (KAFKA-5793), and that state
    /// removed once DeleteRecords or retention moved the log start past its last batch
    /// (until KAFKA-7190, 2.4.0).
    Kafka10,
    /// Kafka 0.11.0: the last batch only, in memory and in snapshots (KAFKA-5494);
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` for a producer with no state, whose state the log
    /// head's deletion removed (KAFKA-5793).
    Kafka011,
    /// Redpanda 21.10 before PR 3077: the tail batch only (redpanda #3039).
    Redpanda2110,
}

impl BrokerProfile {
    /// Every profile, in declaration order.
    pub const ALL: [BrokerProfile; 5] = [
        BrokerProfile::Kafka,
        BrokerProfile::Kafka24,
        BrokerProfile::Kafka10,
        BrokerProfile::Kafka011,
        BrokerProfile::Redpanda2110,
    ];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            BrokerProfile::Kafka => "kafka",
            BrokerProfile::Kafka24 => "kafka-2.4",
            BrokerProfile::Kafka10 => "kafka-1.0",
            BrokerProfile::Kafka011 => "kafka-0.11",
            BrokerProfile::Redpanda2110 => "redpanda-21.10",
        }
    }

    /// The most batches per producer and partition this broker remembered, when it
    /// remembered fewer than a run may ask for (`None`: the run's `dedup_window`).
    pub fn dedup_window_max(self) -> Option<usize> {
        match self {
            BrokerProfile::Kafka | BrokerProfile::Kafka24 | BrokerProfile::Kafka10 => None,
            BrokerProfile::Kafka011 | BrokerProfile::Redpanda2110 => Some(1),
        }
    }

    /// What this broker's producer-state snapshots kept, when the profile decides it.
    pub fn snapshot_mode(self) -> Option<SnapshotMode> {
        match self {
            BrokerProfile::Kafka | BrokerProfile::Redpanda2110 => None,
            BrokerProfile::Kafka24 | BrokerProfile::Kafka10 | BrokerProfile::Kafka011 => {
                Some(SnapshotMode::LastBatchOnly)
            }
        }
    }

    /// What this broker answered a producer with no state at a sequence other than 0, when
    /// the profile decides it (`None`: the run's setting).
    pub fn unknown_producer_rule(self) -> Option<UnknownProducerRule> {
        match self {
            BrokerProfile::Kafka | BrokerProfile::Redpanda2110 => None,
            BrokerProfile::Kafka24 | BrokerProfile::Kafka10 => {
                Some(UnknownProducerRule::UnknownProducerId)
            }
            BrokerProfile::Kafka011 => Some(UnknownProducerRule::OutOfOrder),
        }
    }

    /// Whether this broker removed producer state when DeleteRecords or retention moved the
    /// log start past a producer's last batch (Kafka before 2.4.0, KAFKA-7190).
    pub fn evicts_producers_below_log_start(self) -> bool {
        matches!(self, BrokerProfile::Kafka011 | BrokerProfile::Kafka10)
    }

    /// Sets the profile's switches on `config`, leaving every other setting alone.
    pub fn apply(self, config: &mut BrokerConfig) {
        if let Some(rule) = self.unknown_producer_rule() {
            config.unknown_producer = rule;
        }
        if self.evicts_producers_below_log_start() {
            config.evict_producers_below_log_start = true;
        }
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
            "unknown broker profile {:?}: expected kafka, kafka-2.4, kafka-1.0, kafka-0.11 or redpanda-21.10",
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

    #[test]
    fn kafka_0_11_answers_an_unknown_producer_out_of_order_and_evicts_with_the_log_head() {
        let mut config = BrokerConfig::default();
        BrokerProfile::Kafka011.apply(&mut config);
        assert_eq!(config.unknown_producer, UnknownProducerRule::OutOfOrder);
        assert!(config.evict_producers_below_log_start);
    }

    #[test]
    fn kafka_1_0_answers_unknown_producer_id_and_still_evicts_with_the_log_head() {
        let mut config = BrokerConfig::default();
        BrokerProfile::Kafka10.apply(&mut config);
        assert_eq!(
            config.unknown_producer,
            UnknownProducerRule::UnknownProducerId
        );
        assert!(config.evict_producers_below_log_start);
        assert_eq!(config.dedup_window, 5);
        assert_eq!(config.snapshot_mode, SnapshotMode::LastBatchOnly);
    }

    #[test]
    fn kafka_2_4_answers_unknown_producer_id_and_keeps_state_past_the_log_start() {
        let mut config = BrokerConfig::default();
        BrokerProfile::Kafka24.apply(&mut config);
        assert_eq!(
            config.unknown_producer,
            UnknownProducerRule::UnknownProducerId
        );
        assert!(!config.evict_producers_below_log_start);
        for p in [BrokerProfile::Kafka, BrokerProfile::Redpanda2110] {
            let mut config = BrokerConfig::default();
            p.apply(&mut config);
            assert_eq!(
                config.unknown_producer,
                UnknownProducerRule::AnySequence,
                "{p}"
            );
            assert!(!config.evict_producers_below_log_start, "{p}");
        }
    }
}
