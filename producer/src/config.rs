//! The producer's settings, with Kafka's defaults, and the checks Kafka's Java client makes
//! before it lets idempotence run (docs/KAFKA-RULES.md §2.1, `ProducerConfig`
//! `postProcessAndValidateIdempotenceConfigs`).
//!
//! Idempotence only works when three settings agree with it:
//!
//! - `acks = -1`: the broker must answer only once the batch is fully written, or a retry could
//!   race an append that is still replicating.
//! - `retries >= 1`: deduplication exists to make retries safe; without them it has nothing to do.
//! - `max_in_flight <= 5` ([`MAX_IN_FLIGHT_FOR_IDEMPOTENCE`]), whatever the broker's window: Kafka
//!   4.0's `ProducerConfig` refuses more (3.x warned and turned idempotence off).
//! - `max_in_flight <= broker_dedup_window` (5 in Kafka, `NUM_BATCHES_TO_RETAIN`): the broker
//!   remembers the last five batches of each producer on each partition. With one batch per
//!   partition per request and at most five requests in flight, any batch that is retried
//!   after it was in fact written is still among the last five the broker appended, so the
//!   broker recognises it and answers with its original offset. With six in flight a written
//!   batch can fall out of the window, and its retry gets `OUT_OF_ORDER_SEQUENCE_NUMBER`, or,
//!   after an epoch bump, is written twice.
//!
//! Kafka's Java client silently turns idempotence off on a conflict unless the user asked for
//! it explicitly. Here idempotence is always explicit, so a conflict is always a
//! [`ConfigError`]. The one escape hatch, [`ProducerConfig::allow_unsafe_max_in_flight`], exists
//! so that the simulator can show what goes wrong above the window.
//!
//! [`ProducerConfig::client_profile`] chooses between Kafka's Java client exactly
//! ([`ClientProfile::Java`], the default), idempo's improvements on it
//! ([`ClientProfile::Idempo`]), Kafka 2.4's Java client ([`ClientProfile::JavaTwoFour`], which
//! turns on [`JavaRules::KAFKA_2_4`]'s switches) and librdkafka's rules
//! ([`ClientProfile::Librdkafka`]); the crate documentation lists each difference.

pub use crate::java_rules::JavaRules;
pub use crate::profile_librdkafka::LibrdkafkaRules;
use std::fmt;
use std::str::FromStr;

/// Kafka's `MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE`: with idempotence on, Kafka
/// 4.0's `ProducerConfig` refuses `max.in.flight.requests.per.connection` above 5.
pub const MAX_IN_FLIGHT_FOR_IDEMPOTENCE: usize = 5;

/// Which client the producer behaves as where idempo departs from Kafka's Java client.
///
/// The table of differences, each with the Kafka source it departs from, is in the crate
/// documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientProfile {
    /// Kafka's Java client 3.9/4.x exactly: every idempo improvement off. The default, because
    /// users study Kafka.
    #[default]
    Java,
    /// Every idempo improvement on, `first_batch_alone` included.
    Idempo,
    /// Kafka's Java client as of 2.4, before KIP-360's safe epoch bump (2.5.0): Java's rules
    /// with the historical switches of that release on ([`JavaRules::KAFKA_2_4`], whatever
    /// [`ProducerConfig::java`] says; [`ClientProfile::java_rules`] gives them), every idempo
    /// improvement off.
    JavaTwoFour,
    /// librdkafka 2.x's idempotence rules where they differ from Java's (its fatal errors,
    /// its drained epoch bump, its `message.timeout.ms`), each a switch of
    /// [`ProducerConfig::librdkafka`] ([`LibrdkafkaRules`]); Java's rules for the rest, every
    /// idempo improvement off.
    Librdkafka,
}

impl ClientProfile {
    /// Every profile, in declaration order.
    pub const ALL: [ClientProfile; 4] = [
        ClientProfile::Java,
        ClientProfile::Idempo,
        ClientProfile::JavaTwoFour,
        ClientProfile::Librdkafka,
    ];

    /// The name used on command lines: `java`, `idempo`, `java-2.4` or `librdkafka`.
    pub fn name(self) -> &'static str {
        match self {
            ClientProfile::Java => "java",
            ClientProfile::Idempo => "idempo",
            ClientProfile::JavaTwoFour => "java-2.4",
            ClientProfile::Librdkafka => "librdkafka",
        }
    }

    /// The Java client's historical switches the profile turns on whatever
    /// [`ProducerConfig::java`] says: [`JavaRules::KAFKA_2_4`]'s for `java-2.4`, none
    /// ([`JavaRules::CURRENT`]) for the others.
    pub fn java_rules(self) -> JavaRules {
        match self {
            ClientProfile::JavaTwoFour => JavaRules::KAFKA_2_4,
            _ => JavaRules::CURRENT,
        }
    }
}

impl fmt::Display for ClientProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client profile name that is none of [`ClientProfile::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownClientProfile(pub String);

impl fmt::Display for UnknownClientProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown client profile {:?}: expected one of {}",
            self.0,
            ClientProfile::ALL.map(ClientProfile::name).join(", ")
        )
    }
}

impl std::error::Error for UnknownClientProfile {}

impl FromStr for ClientProfile {
    type Err = UnknownClientProfile;

    fn from_str(s: &str) -> Result<ClientProfile, UnknownClientProfile> {
        ClientProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownClientProfile(s.to_string()))
    }
}

/// The idempo improvements in force, one switch per difference from Kafka's Java client
/// (see the crate documentation's table). [`ProducerConfig::improvements`] derives them from
/// the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Improvements {
    /// Answers to an attempt made before an epoch bump rewrote the batch are recognised by
    /// the batch's generation: a stale error is not acted on, a stale acknowledgement
    /// delivers the batch and closes its sequence hole. Java feeds both to its ordinary rules.
    pub stale_answer_generations: bool,
    /// Any sent batch that expires makes its partition unresolved. Java requires the batch to
    /// have been retried (`ProducerBatch.inRetry()`).
    pub unresolve_on_any_expired_sent_batch: bool,
    /// A batch that expires while on the wire stays in its partition's in-flight set until
    /// its request ends. Java removes it at expiry.
    pub keep_expired_batches_in_flight: bool,
    /// After a producer id reset the asking partitions are re-stamped when the new id
    /// arrives. Java re-stamps them at once under no producer id.
    pub restamp_after_producer_id_reset: bool,
    /// A drain skips a partition that must not send and goes on with the others. Java's
    /// drain stops at it (and starts there next time).
    pub drain_past_blocked_partition: bool,
    /// See [`ProducerConfig::first_batch_alone`].
    pub first_batch_alone: bool,
    /// With [`ProducerConfig::cluster_routing`]: a partition's batches are drained to its
    /// leader only while none of its batches is on the wire to another node. Java drains a
    /// new batch to the new leader at once, while earlier ones may still be on their way to
    /// the old one, on another connection that keeps no order with the new one.
    pub one_leader_at_a_time: bool,
}

impl Improvements {
    /// The switches of a profile, with `first_batch_alone` also on when asked for alone.
    pub fn of(profile: ClientProfile, first_batch_alone: bool) -> Improvements {
        let on = profile == ClientProfile::Idempo;
        Improvements {
            stale_answer_generations: on,
            unresolve_on_any_expired_sent_batch: on,
            keep_expired_batches_in_flight: on,
            restamp_after_producer_id_reset: on,
            drain_past_blocked_partition: on,
            first_batch_alone: on || first_batch_alone,
            one_leader_at_a_time: on,
        }
    }
}

/// Settings of a [`Producer`](crate::Producer). Field names follow Kafka's configuration keys
/// (`max.in.flight.requests.per.connection` is `max_in_flight`); units come last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `enable.idempotence`: stamp batches with a producer id, epoch and sequence so that the
    /// broker can drop duplicates from retries. Default true, as in Kafka since 3.0.1.
    pub idempotence: bool,
    /// `max.in.flight.requests.per.connection`: requests awaiting an answer on one broker
    /// connection (the only one, or, with `cluster_routing`, each node's). Default 5. Counts
    /// every request, as Kafka's network client does.
    pub max_in_flight: usize,
    /// Allow `max_in_flight` above `broker_dedup_window` with idempotence on. Kafka refuses
    /// this; it exists only for experiments that show why. Default false.
    pub allow_unsafe_max_in_flight: bool,
    /// How many batches per producer and partition the broker remembers for deduplication
    /// (Kafka's `NUM_BATCHES_TO_RETAIN`, 5). Used only to validate `max_in_flight`.
    pub broker_dedup_window: usize,
    /// `request.timeout.ms`: how long to wait for an answer before giving the request up and
    /// retrying its batches. Default 30 000.
    pub request_timeout_ms: u64,
    /// `delivery.timeout.ms`: the upper bound, counted from `send()`, on reporting a batch's
    /// outcome. Default 120 000. Must be at least `request_timeout_ms`.
    pub delivery_timeout_ms: u64,
    /// `retries`: how many times a batch may be re-sent after its first attempt. Default
    /// `i32::MAX`, so in practice `delivery_timeout_ms` is the bound.
    pub retries: u32,
    /// `retry.backoff.ms`: the pause before a batch (or InitProducerId) is retried. Default 100.
    pub retry_backoff_ms: u64,
    /// `acks`: -1 (all), 1 (leader) or 0 (none, no response expected). Default -1, which
    /// idempotence requires.
    pub acks: i16,
    /// Not in Kafka's client (default off, as Kafka): keep a partition to one batch in flight
    /// until the broker has acknowledged a batch of this producer id on it.
    ///
    /// A 2.5+ broker accepts *any* sequence from a producer it does not know (KIP-360). If the
    /// first batch to a partition is lost and the second gets through, the broker appends the
    /// second with a gap in front of it; the first's retry is then refused, the producer bumps
    /// its epoch and re-stamps both, and the second is written twice. Sending the first batch
    /// alone costs one round trip per partition per producer id and closes that hole.
    ///
    /// [`ClientProfile::Idempo`] turns it on; under [`ClientProfile::Java`] this field turns
    /// it on alone.
    pub first_batch_alone: bool,
    /// Kafka's Java client exactly ([`ClientProfile::Java`], the default), with every idempo
    /// improvement ([`ClientProfile::Idempo`]), Kafka 2.4's client
    /// ([`ClientProfile::JavaTwoFour`]), or librdkafka's rules ([`ClientProfile::Librdkafka`]).
    pub client_profile: ClientProfile,
    /// The librdkafka switches in force under [`ClientProfile::Librdkafka`] (ignored under
    /// the other profiles). Default [`LibrdkafkaRules::V2`], librdkafka 2.x today.
    pub librdkafka: LibrdkafkaRules,
    /// Kafka 0.11.0's client: `OUT_OF_ORDER_SEQUENCE_NUMBER` is not retried (0.11.0's
    /// `Sender.canRetry` retried only a `RetriableException`) and the producer stops, as
    /// 0.11.0's `KafkaProducer` documentation told applications to do ("We can't recover
    /// from these exceptions, so our only option is to close the producer and exit"): every
    /// batch fails, as after any fatal error. Default false: today's Java client, which
    /// retries the batch or bumps the epoch (KIP-360). The zoo's KAFKA-5793 needs it: the
    /// 0.11 broker answered a producer whose state retention or DeleteRecords had removed
    /// with this error.
    pub out_of_order_sequence_fatal: bool,
    /// An epoch bump at `Short.MAX_VALUE` (32 767) wraps to `Short.MIN_VALUE`, as Kafka's
    /// epoch increment `(producerEpoch + 1).toShort` did before KAFKA-5283 (0.11.0.0; then in
    /// the transaction coordinator's `TransactionMetadata.prepareIncrementProducerEpoch`,
    /// here in the client's bump, where idempo's epochs are bumped): the broker, which holds
    /// the higher epoch, refuses every batch of the wrapped one as `INVALID_PRODUCER_EPOCH`.
    /// Default false: KAFKA-5283's rule, which Java's `bumpIdempotentProducerEpoch` keeps: an
    /// exhausted epoch drops the producer id and asks for a new one.
    pub epoch_bump_wraps: bool,
    /// The Java client's historical rules in force, one switch each (ignored under
    /// [`ClientProfile::Librdkafka`]). Default [`JavaRules::CURRENT`], today's client;
    /// [`ClientProfile::JavaTwoFour`] turns [`JavaRules::KAFKA_2_4`]'s switches on besides.
    pub java: JavaRules,
    /// Route each partition's batches to its leader in a cluster, from Metadata (see the
    /// `routing` section of the [`producer`](crate::producer) essay). Default false: the
    /// one-broker producer, which talks to node 0 only and sends no Metadata.
    pub cluster_routing: bool,
    /// `bootstrap.servers`, as node ids: the nodes asked for Metadata before any answer
    /// names the cluster's brokers. Used only with `cluster_routing`. Default `[0]`.
    pub bootstrap: Vec<i32>,
    /// `metadata.max.age.ms`: how old the metadata may grow before it is refreshed even
    /// though nothing asked for it. Used only with `cluster_routing`. Default 300 000.
    pub metadata_max_age_ms: u64,
    /// `reconnect.backoff.ms`: after a request to a node failed (its connection broke or a
    /// request timed out), how long the node is left alone. Used only with `cluster_routing`.
    /// Default 50 (Kafka backs off exponentially up to `reconnect.backoff.max.ms`, 1000).
    pub reconnect_backoff_ms: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            idempotence: true,
            max_in_flight: 5,
            allow_unsafe_max_in_flight: false,
            broker_dedup_window: 5,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            retries: i32::MAX as u32,
            retry_backoff_ms: 100,
            acks: -1,
            first_batch_alone: false,
            client_profile: ClientProfile::Java,
            librdkafka: LibrdkafkaRules::V2,
            out_of_order_sequence_fatal: false,
            epoch_bump_wraps: false,
            java: JavaRules::CURRENT,
            cluster_routing: false,
            bootstrap: vec![0],
            metadata_max_age_ms: 300_000,
            reconnect_backoff_ms: 50,
        }
    }
}

/// A setting, or a combination of settings, that the producer refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `max_in_flight` is above Kafka's limit of 5 for idempotence
    /// ([`MAX_IN_FLIGHT_FOR_IDEMPOTENCE`]), and `allow_unsafe_max_in_flight` is not set.
    MaxInFlightAboveIdempotenceLimit {
        /// The configured `max_in_flight`.
        max_in_flight: usize,
    },
    /// `max_in_flight` is above the broker's dedup window while idempotence is on, and
    /// `allow_unsafe_max_in_flight` is not set.
    MaxInFlightAboveDedupWindow {
        /// The configured `max_in_flight`.
        max_in_flight: usize,
        /// The configured `broker_dedup_window`.
        broker_dedup_window: usize,
    },
    /// Idempotence needs `acks = -1`.
    IdempotenceRequiresAcksAll {
        /// The configured `acks`.
        acks: i16,
    },
    /// Idempotence needs `retries >= 1`.
    IdempotenceRequiresRetries,
    /// `acks` must be -1, 0 or 1.
    InvalidAcks {
        /// The configured `acks`.
        acks: i16,
    },
    /// `max_in_flight` must be at least 1, or nothing could ever be sent.
    ZeroMaxInFlight,
    /// `broker_dedup_window` must be at least 1 with idempotence on.
    ZeroDedupWindow,
    /// `request_timeout_ms` must be at least 1.
    ZeroRequestTimeout,
    /// `delivery_timeout_ms` must be at least `request_timeout_ms` (Kafka requires
    /// `linger.ms + request.timeout.ms`; there is no linger here).
    DeliveryTimeoutBelowRequestTimeout {
        /// The configured `delivery_timeout_ms`.
        delivery_timeout_ms: u64,
        /// The configured `request_timeout_ms`.
        request_timeout_ms: u64,
    },
    /// `cluster_routing` with no bootstrap node: the first Metadata could go nowhere.
    EmptyBootstrap,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MaxInFlightAboveIdempotenceLimit { max_in_flight } => write!(
                f,
                "max_in_flight {max_in_flight} above {MAX_IN_FLIGHT_FOR_IDEMPOTENCE} with \
                 idempotence on: Kafka refuses it whatever the dedup window (set \
                 allow_unsafe_max_in_flight to experiment)"
            ),
            ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight,
                broker_dedup_window,
            } => write!(
                f,
                "max_in_flight {max_in_flight} above the broker's dedup window \
                 {broker_dedup_window} with idempotence on: a retried batch could fall out of \
                 the window and be written twice (set allow_unsafe_max_in_flight to experiment)"
            ),
            ConfigError::IdempotenceRequiresAcksAll { acks } => write!(
                f,
                "acks {acks} with idempotence on: idempotence requires acks -1 (all)"
            ),
            ConfigError::IdempotenceRequiresRetries => {
                write!(
                    f,
                    "retries 0 with idempotence on: idempotence requires retries >= 1"
                )
            }
            ConfigError::InvalidAcks { acks } => {
                write!(
                    f,
                    "acks {acks} is not one of -1 (all), 0 (none) or 1 (leader)"
                )
            }
            ConfigError::ZeroMaxInFlight => write!(f, "max_in_flight 0: nothing could be sent"),
            ConfigError::ZeroDedupWindow => {
                write!(
                    f,
                    "broker_dedup_window 0 with idempotence on: it must be at least 1"
                )
            }
            ConfigError::ZeroRequestTimeout => {
                write!(f, "request_timeout_ms 0: it must be at least 1")
            }
            ConfigError::DeliveryTimeoutBelowRequestTimeout {
                delivery_timeout_ms,
                request_timeout_ms,
            } => write!(
                f,
                "delivery_timeout_ms {delivery_timeout_ms} below request_timeout_ms \
                 {request_timeout_ms}: a batch would expire before its first request could time out"
            ),
            ConfigError::EmptyBootstrap => write!(
                f,
                "cluster_routing with no bootstrap node: the first Metadata request could go nowhere"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ProducerConfig {
    /// Checks the settings as Kafka's `ProducerConfig` does, with idempotence always explicit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(-1..=1).contains(&self.acks) {
            return Err(ConfigError::InvalidAcks { acks: self.acks });
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroMaxInFlight);
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::ZeroRequestTimeout);
        }
        if self.delivery_timeout_ms < self.request_timeout_ms {
            return Err(ConfigError::DeliveryTimeoutBelowRequestTimeout {
                delivery_timeout_ms: self.delivery_timeout_ms,
                request_timeout_ms: self.request_timeout_ms,
            });
        }
        if self.cluster_routing && self.bootstrap.is_empty() {
            return Err(ConfigError::EmptyBootstrap);
        }
        if !self.idempotence {
            return Ok(());
        }
        if self.acks != -1 {
            return Err(ConfigError::IdempotenceRequiresAcksAll { acks: self.acks });
        }
        if self.retries == 0 {
            return Err(ConfigError::IdempotenceRequiresRetries);
        }
        if self.broker_dedup_window == 0 {
            return Err(ConfigError::ZeroDedupWindow);
        }
        if self.allow_unsafe_max_in_flight {
            return Ok(());
        }
        if self.max_in_flight > self.broker_dedup_window {
            return Err(ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight: self.max_in_flight,
                broker_dedup_window: self.broker_dedup_window,
            });
        }
        if self.max_in_flight > MAX_IN_FLIGHT_FOR_IDEMPOTENCE {
            return Err(ConfigError::MaxInFlightAboveIdempotenceLimit {
                max_in_flight: self.max_in_flight,
            });
        }
        Ok(())
    }

    /// The idempo improvements in force under this configuration's profile.
    pub fn improvements(&self) -> Improvements {
        let mut improvements = Improvements::of(self.client_profile, self.first_batch_alone);
        if self.client_profile == ClientProfile::Librdkafka {
            // librdkafka's own rule, not an idempo improvement: see
            // LibrdkafkaRules::drain_on_leader_change.
            improvements.one_leader_at_a_time = self.librdkafka.drain_on_leader_change;
        }
        improvements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = ProducerConfig::default();
        assert!(c.idempotence);
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.retries, i32::MAX as u32);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn max_in_flight_above_window_is_refused_unless_opted_in() {
        let mut c = ProducerConfig {
            max_in_flight: 6,
            ..ProducerConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight: 6,
                broker_dedup_window: 5
            }
        );
        assert!(
            err.to_string()
                .contains("max_in_flight 6 above the broker's dedup window 5")
        );
        c.allow_unsafe_max_in_flight = true;
        assert_eq!(c.validate(), Ok(()));
        c.allow_unsafe_max_in_flight = false;
        c.idempotence = false;
        assert_eq!(
            c.validate(),
            Ok(()),
            "without idempotence any max_in_flight is allowed"
        );
    }

    #[test]
    fn more_than_five_in_flight_is_refused_whatever_the_dedup_window() {
        let mut c = ProducerConfig {
            max_in_flight: 6,
            broker_dedup_window: 10,
            ..ProducerConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::MaxInFlightAboveIdempotenceLimit { max_in_flight: 6 }
        );
        assert!(err.to_string().contains("max_in_flight 6 above 5"));
        c.max_in_flight = 5;
        assert_eq!(c.validate(), Ok(()), "5 is Kafka's limit, allowed");
        c.max_in_flight = 6;
        c.allow_unsafe_max_in_flight = true;
        assert_eq!(c.validate(), Ok(()), "the experiment flag still allows it");
        c.allow_unsafe_max_in_flight = false;
        c.idempotence = false;
        assert_eq!(c.validate(), Ok(()), "the limit is idempotence's only");
    }

    #[test]
    fn client_profile_names_round_trip_and_java_is_the_default() {
        assert_eq!(
            ProducerConfig::default().client_profile,
            ClientProfile::Java
        );
        for p in ClientProfile::ALL {
            assert_eq!(p.name().parse::<ClientProfile>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        let err = "kafka".parse::<ClientProfile>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown client profile \"kafka\": expected one of java, idempo, java-2.4, librdkafka"
        );
    }

    #[test]
    fn java_profile_turns_every_improvement_off_and_idempo_turns_them_on() {
        let java = ProducerConfig::default().improvements();
        assert_eq!(
            java,
            Improvements {
                stale_answer_generations: false,
                unresolve_on_any_expired_sent_batch: false,
                keep_expired_batches_in_flight: false,
                restamp_after_producer_id_reset: false,
                drain_past_blocked_partition: false,
                first_batch_alone: false,
                one_leader_at_a_time: false,
            }
        );
        let idempo = ProducerConfig {
            client_profile: ClientProfile::Idempo,
            ..ProducerConfig::default()
        }
        .improvements();
        assert_eq!(
            idempo,
            Improvements {
                stale_answer_generations: true,
                unresolve_on_any_expired_sent_batch: true,
                keep_expired_batches_in_flight: true,
                restamp_after_producer_id_reset: true,
                drain_past_blocked_partition: true,
                first_batch_alone: true,
                one_leader_at_a_time: true,
            }
        );
        let java_with_guard = ProducerConfig {
            first_batch_alone: true,
            ..ProducerConfig::default()
        }
        .improvements();
        assert_eq!(
            java_with_guard,
            Improvements {
                first_batch_alone: true,
                ..java
            },
            "first_batch_alone can be turned on alone"
        );
    }

    #[test]
    fn idempotence_requires_acks_all_and_retries() {
        let acks1 = ProducerConfig {
            acks: 1,
            ..ProducerConfig::default()
        };
        assert_eq!(
            acks1.validate(),
            Err(ConfigError::IdempotenceRequiresAcksAll { acks: 1 })
        );
        let no_retries = ProducerConfig {
            retries: 0,
            ..ProducerConfig::default()
        };
        assert_eq!(
            no_retries.validate(),
            Err(ConfigError::IdempotenceRequiresRetries)
        );
        let plain = ProducerConfig {
            idempotence: false,
            acks: 1,
            retries: 0,
            ..ProducerConfig::default()
        };
        assert_eq!(plain.validate(), Ok(()));
    }

    #[test]
    fn delivery_timeout_below_request_timeout_is_refused() {
        let c = ProducerConfig {
            delivery_timeout_ms: 10,
            request_timeout_ms: 20,
            ..ProducerConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("delivery_timeout_ms 10")
        );
    }
}
