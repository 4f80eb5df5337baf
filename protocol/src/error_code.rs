//! Kafka's error codes, with Kafka's names and wire numbers.
//!
//! The codes that the produce, fetch and InitProducerId paths of an idempotent,
//! non-transactional producer can meet are listed by name. Any other number is kept as
//! [`ErrorCode::Unknown`], so a client never loses what a broker said: it round-trips the
//! number, prints it, and is never treated as retriable (Kafka's Java client turns a code it
//! does not know into a non-retriable `UnknownServerException`, but keeps the number in the
//! log). Numbers come from Kafka's `Errors.java`.

use std::fmt;

/// Declares the known codes once: the enum variants, their numbers and their names.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal => $name:literal, )*) => {
        /// Errors the broker returns, with Kafka's names and wire codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[doc = concat!("`", $name, "` (", stringify!($code), ").")] $variant, )*
            /// A code this crate does not list, kept as its wire number.
            Unknown(i16),
        }

        impl ErrorCode {
            /// Every code this crate knows by name, in wire-number order.
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$variant, )*];

            /// The wire number.
            pub fn code(self) -> i16 {
                match self {
                    $( ErrorCode::$variant => $code, )*
                    ErrorCode::Unknown(code) => code,
                }
            }

            /// The code for a wire number: a named one when this crate lists it, else
            /// [`ErrorCode::Unknown`] with the number.
            pub fn from_code(code: i16) -> ErrorCode {
                match code {
                    $( $code => ErrorCode::$variant, )*
                    other => ErrorCode::Unknown(other),
                }
            }

            /// Kafka's name, as `Errors.java` spells it (`OUT_OF_ORDER_SEQUENCE_NUMBER`);
            /// `UNKNOWN` for a code this crate does not list (Display adds the number).
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $name, )*
                    ErrorCode::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

error_codes! {
    UnknownServerError = -1 => "UNKNOWN_SERVER_ERROR",
    None = 0 => "NONE",
    OffsetOutOfRange = 1 => "OFFSET_OUT_OF_RANGE",
    CorruptMessage = 2 => "CORRUPT_MESSAGE",
    UnknownTopicOrPartition = 3 => "UNKNOWN_TOPIC_OR_PARTITION",
    InvalidFetchSize = 4 => "INVALID_FETCH_SIZE",
    LeaderNotAvailable = 5 => "LEADER_NOT_AVAILABLE",
    NotLeaderOrFollower = 6 => "NOT_LEADER_OR_FOLLOWER",
    RequestTimedOut = 7 => "REQUEST_TIMED_OUT",
    MessageTooLarge = 10 => "MESSAGE_TOO_LARGE",
    NetworkException = 13 => "NETWORK_EXCEPTION",
    CoordinatorLoadInProgress = 14 => "COORDINATOR_LOAD_IN_PROGRESS",
    CoordinatorNotAvailable = 15 => "COORDINATOR_NOT_AVAILABLE",
    NotCoordinator = 16 => "NOT_COORDINATOR",
    RecordListTooLarge = 18 => "RECORD_LIST_TOO_LARGE",
    NotEnoughReplicas = 19 => "NOT_ENOUGH_REPLICAS",
    NotEnoughReplicasAfterAppend = 20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    InvalidRequiredAcks = 21 => "INVALID_REQUIRED_ACKS",
    TopicAuthorizationFailed = 29 => "TOPIC_AUTHORIZATION_FAILED",
    ClusterAuthorizationFailed = 31 => "CLUSTER_AUTHORIZATION_FAILED",
    InvalidTimestamp = 32 => "INVALID_TIMESTAMP",
    UnsupportedVersion = 35 => "UNSUPPORTED_VERSION",
    InvalidRequest = 42 => "INVALID_REQUEST",
    UnsupportedForMessageFormat = 43 => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    OutOfOrderSequenceNumber = 45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
    DuplicateSequenceNumber = 46 => "DUPLICATE_SEQUENCE_NUMBER",
    InvalidProducerEpoch = 47 => "INVALID_PRODUCER_EPOCH",
    InvalidTxnState = 48 => "INVALID_TXN_STATE",
    TransactionalIdAuthorizationFailed = 53 => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    KafkaStorageError = 56 => "KAFKA_STORAGE_ERROR",
    UnknownProducerId = 59 => "UNKNOWN_PRODUCER_ID",
    FencedLeaderEpoch = 74 => "FENCED_LEADER_EPOCH",
    UnknownLeaderEpoch = 75 => "UNKNOWN_LEADER_EPOCH",
    UnsupportedCompressionType = 76 => "UNSUPPORTED_COMPRESSION_TYPE",
    InvalidRecord = 87 => "INVALID_RECORD",
    ThrottlingQuotaExceeded = 89 => "THROTTLING_QUOTA_EXCEEDED",
    ProducerFenced = 90 => "PRODUCER_FENCED",
}

impl ErrorCode {
    /// Whether Kafka's client treats the error as retriable (its exception class extends
    /// `RetriableException`). `OUT_OF_ORDER_SEQUENCE_NUMBER` and `UNKNOWN_PRODUCER_ID` are *not*
    /// retriable in this sense: the idempotent producer handles them with its own rules. An
    /// [`ErrorCode::Unknown`] code is never retriable.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::CorruptMessage
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::NetworkException
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::KafkaStorageError
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::ThrottlingQuotaExceeded
        )
    }

    /// True for `NONE`.
    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }
}

impl fmt::Display for ErrorCode {
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER (45)`; `UNKNOWN (9999)` for a code not listed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_kafka_numbers() {
        for &e in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(e.code()), e);
        }
        assert_eq!(ErrorCode::OutOfOrderSequenceNumber.code(), 45);
        assert_eq!(ErrorCode::DuplicateSequenceNumber.code(), 46);
        assert_eq!(ErrorCode::InvalidProducerEpoch.code(), 47);
        assert_eq!(ErrorCode::UnknownProducerId.code(), 59);
        assert_eq!(ErrorCode::InvalidTimestamp.code(), 32);
        assert_eq!(ErrorCode::InvalidRecord.code(), 87);
    }

    #[test]
    fn an_unknown_code_keeps_its_number_and_is_not_retriable() {
        for code in [9999, -7, 8, i16::MAX, i16::MIN] {
            let e = ErrorCode::from_code(code);
            assert_eq!(e, ErrorCode::Unknown(code));
            assert_eq!(e.code(), code, "the number round-trips");
            assert!(!e.is_retriable());
            assert!(!e.is_ok());
            assert_eq!(e.to_string(), format!("UNKNOWN ({code})"));
        }
    }

    #[test]
    fn sequence_errors_are_not_plain_retriable() {
        assert!(!ErrorCode::OutOfOrderSequenceNumber.is_retriable());
        assert!(!ErrorCode::InvalidProducerEpoch.is_retriable());
        assert!(ErrorCode::CorruptMessage.is_retriable());
        assert!(ErrorCode::RequestTimedOut.is_retriable());
    }

    #[test]
    fn display_shows_name_and_number() {
        assert_eq!(
            ErrorCode::OutOfOrderSequenceNumber.to_string(),
            "OUT_OF_ORDER_SEQUENCE_NUMBER (45)"
        );
    }
}
