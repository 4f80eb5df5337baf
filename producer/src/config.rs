//! The producer's settings, with Kafka's defaults, and the checks Kafka's Java client makes
//! before it lets idempotence run (docs/KAFKA-RULES.md §2.1, `ProducerConfig`
//! `postProcessAndValidateIdempotenceConfigs`).
//!
//! Idempotence only works when three settings agree with it:
//!
//! - `acks = -1`: the broker must answer only once the batch is fully written, or a retry could
//!   race an append that is still replicating.
//! - `retries >= 1`: deduplication exists to make retries safe; without them it has nothing to do.
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

use std::fmt;

/// Settings of a [`Producer`](crate::Producer). Field names follow Kafka's configuration keys
/// (`max.in.flight.requests.per.connection` is `max_in_flight`); units come last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `enable.idempotence`: stamp batches with a producer id, epoch and sequence so that the
    /// broker can drop duplicates from retries. Default true, as in Kafka since 3.0.1.
    pub idempotence: bool,
    /// `max.in.flight.requests.per.connection`: requests awaiting an answer on the one broker
    /// connection. Default 5. Counts every request, as Kafka's network client does.
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
    pub first_batch_alone: bool,
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
        }
    }
}

/// A setting, or a combination of settings, that the producer refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
        if self.max_in_flight > self.broker_dedup_window && !self.allow_unsafe_max_in_flight {
            return Err(ConfigError::MaxInFlightAboveDedupWindow {
                max_in_flight: self.max_in_flight,
                broker_dedup_window: self.broker_dedup_window,
            });
        }
        Ok(())
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
