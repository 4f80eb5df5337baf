//! Delivery reports: what the producer tells its caller about each `send()`.
//!
//! Every [`DeliveryHandle`] gets exactly one [`DeliveryReport`]. A success carries the
//! coordinates the batch was written under. A failure says how sure the producer is that
//! nothing was written, because that is what a caller needs to decide whether re-sending is
//! safe:
//!
//! - [`DeliveryError::Definite`]: every attempt was refused by the broker with an answer that
//!   means "not appended" (for example `INVALID_RECORD`), or the batch was never sent. The
//!   records are not in the log.
//! - [`DeliveryError::PossiblyPersisted`]: at least one attempt ended without a definite
//!   answer (a lost response, a request timeout, a cut connection, or a broker answer such as
//!   `NOT_ENOUGH_REPLICAS_AFTER_APPEND` that is sent after the local append). The records may be
//!   in the log. Re-sending them from the application can write them twice: idempotence does
//!   not cross `send()` calls (docs/KAFKA-RULES.md §2.10).
//!
//! Kafka's Java client reports a `TimeoutException` or the broker's exception and leaves this
//! distinction to the reader; librdkafka makes it explicit with its `PERSISTED`,
//! `POSSIBLY_PERSISTED` and `NOT_PERSISTED` message statuses, which this follows.

use crate::batch::DeliveryHandle;
use idempo_protocol::{ErrorCode, ProducerEpoch, ProducerId, Sequence};
use std::fmt;

/// The outcome of one `send()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The handle `send()` returned.
    pub handle: DeliveryHandle,
    /// The partition the batch was sent to.
    pub partition: i32,
    /// How many records the batch held.
    pub record_count: usize,
    /// Where the batch was written, or why it was not.
    pub result: Result<Delivered, DeliveryError>,
}

/// A batch the broker acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Offset of the batch's first record, or -1 when the broker did not say
    /// (`DUPLICATE_SEQUENCE_NUMBER` from 1.0-era brokers, or `acks = 0`).
    pub base_offset: i64,
    /// The producer id the acknowledged attempt carried (`ProducerId::NONE` without
    /// idempotence).
    pub producer_id: ProducerId,
    /// The epoch the acknowledged attempt carried.
    pub producer_epoch: ProducerEpoch,
    /// The base sequence the acknowledged attempt carried (`Sequence::NONE` without
    /// idempotence).
    pub base_sequence: Sequence,
    /// How many times the batch was put on the wire, the acknowledged attempt included.
    pub attempts: u32,
}

/// Why an attempt, or a whole batch, did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The broker answered with this error code.
    Broker(ErrorCode),
    /// No answer within `request_timeout_ms`.
    RequestTimeout,
    /// The caller reported the connection failed (`on_request_failed`).
    ConnectionFailure,
    /// The response did not mention the batch's partition, or was of the wrong kind.
    MalformedResponse,
    /// `delivery_timeout_ms` passed since `send()`.
    DeliveryTimeout,
    /// The producer hit a fatal error (for example `CLUSTER_AUTHORIZATION_FAILED`) and fails
    /// everything, as Kafka's producer does after `transitionToFatalError`.
    Fatal(ErrorCode),
    /// The batch was empty; Kafka never builds an empty batch.
    EmptyBatch,
}

impl FailureReason {
    /// True when an attempt that ended this way may nevertheless have been appended: the
    /// answer was lost, or the broker answered after its local append.
    pub fn outcome_is_unknown(self) -> bool {
        match self {
            FailureReason::Broker(code) => matches!(
                code,
                ErrorCode::RequestTimedOut
                    | ErrorCode::NetworkException
                    | ErrorCode::NotEnoughReplicasAfterAppend
                    | ErrorCode::KafkaStorageError
                    | ErrorCode::UnknownServerError
            ),
            FailureReason::RequestTimeout
            | FailureReason::ConnectionFailure
            | FailureReason::MalformedResponse => true,
            FailureReason::DeliveryTimeout
            | FailureReason::Fatal(_)
            | FailureReason::EmptyBatch => false,
        }
    }

    /// The error code Kafka's client would see for this reason, used by the retry rules.
    pub fn error_code(self) -> ErrorCode {
        match self {
            FailureReason::Broker(code) | FailureReason::Fatal(code) => code,
            FailureReason::RequestTimeout => ErrorCode::RequestTimedOut,
            FailureReason::ConnectionFailure | FailureReason::MalformedResponse => {
                ErrorCode::NetworkException
            }
            FailureReason::DeliveryTimeout => ErrorCode::RequestTimedOut,
            FailureReason::EmptyBatch => ErrorCode::InvalidRecord,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Broker(code) => write!(f, "broker answered {code}"),
            FailureReason::RequestTimeout => write!(f, "request timed out"),
            FailureReason::ConnectionFailure => write!(f, "connection failed"),
            FailureReason::MalformedResponse => write!(f, "malformed response"),
            FailureReason::DeliveryTimeout => write!(f, "delivery timeout"),
            FailureReason::Fatal(code) => write!(f, "producer failed fatally with {code}"),
            FailureReason::EmptyBatch => write!(f, "empty batch"),
        }
    }
}

/// Why a batch was not delivered, and whether its records may be in the log anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The records were not written: the batch was never sent, or every attempt was refused
    /// with an answer that means "not appended".
    Definite {
        /// The reason of the last attempt (or of the failure).
        reason: FailureReason,
        /// How many times the batch was put on the wire.
        attempts: u32,
    },
    /// The batch was sent at least once and at least one attempt's outcome is unknown.
    PossiblyPersisted {
        /// The reason the producer gave up.
        reason: FailureReason,
        /// How many times the batch was put on the wire.
        attempts: u32,
    },
}

impl DeliveryError {
    /// True when the records may be in the log.
    pub fn is_possibly_persisted(&self) -> bool {
        matches!(self, DeliveryError::PossiblyPersisted { .. })
    }

    /// The reason the producer gave up.
    pub fn reason(&self) -> FailureReason {
        match *self {
            DeliveryError::Definite { reason, .. }
            | DeliveryError::PossiblyPersisted { reason, .. } => reason,
        }
    }

    /// How many times the batch was put on the wire.
    pub fn attempts(&self) -> u32 {
        match *self {
            DeliveryError::Definite { attempts, .. }
            | DeliveryError::PossiblyPersisted { attempts, .. } => attempts,
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Definite { reason, attempts } => {
                write!(f, "not written ({reason}) after {attempts} attempt(s)")
            }
            DeliveryError::PossiblyPersisted { reason, attempts } => write!(
                f,
                "possibly persisted ({reason}) after {attempts} attempt(s); outcome unknown"
            ),
        }
    }
}

impl std::error::Error for DeliveryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_says_whether_records_may_be_in_the_log() {
        let definite = DeliveryError::Definite {
            reason: FailureReason::Broker(ErrorCode::InvalidRecord),
            attempts: 1,
        };
        assert!(!definite.is_possibly_persisted());
        assert_eq!(definite.attempts(), 1);
        assert_eq!(
            definite.reason(),
            FailureReason::Broker(ErrorCode::InvalidRecord)
        );
        assert_eq!(
            definite.to_string(),
            "not written (broker answered INVALID_RECORD (87)) after 1 attempt(s)"
        );
        let maybe = DeliveryError::PossiblyPersisted {
            reason: FailureReason::DeliveryTimeout,
            attempts: 2,
        };
        assert!(maybe.is_possibly_persisted());
        assert_eq!(maybe.attempts(), 2);
        assert_eq!(maybe.reason(), FailureReason::DeliveryTimeout);
        assert!(
            maybe
                .to_string()
                .starts_with("possibly persisted (delivery timeout)")
        );
    }
}
