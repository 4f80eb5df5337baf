//! What the broker decided for one partition's batch, and why.
//!
//! Every produce result carries a [`ProduceOutcome`]: the wire answer, the [`Verdict`]
//! naming the rule that decided it (typed values: `AcceptRule`, `SequenceRejection`,
//! `InvalidBatch`), and the producer state the rule saw ([`StateSeen`]). Its `Display` is the
//! one-line explanation `idempo-sim explain` prints, for example
//! `duplicate of the batch at offsets 6..8 (window: 2, 3, 4, 5, 6..8): nothing appended`.
//!
//! Explaining costs nothing until someone asks. The outcome keeps only small values (the
//! verdict, the batch's identity, the stored epoch and expected sequence); the text is
//! written only by `Display`; and the copy of the producer's window, the one part that is
//! not small, is taken only while the broker records windows
//! ([`Broker::set_record_windows`](crate::Broker::set_record_windows)), which `explain` and a
//! traced simulation turn on. Without it the explanation simply leaves the window out.

use crate::cluster::BrokerId;
use crate::producer_state::{AcceptRule, BatchMetadata, SequenceRejection, StateSeen, WindowView};
use crate::storage::StorageError;
use idempo_protocol::{
    DecodeError, ErrorCode, PartitionProduceResponse, ProducerEpoch, ProducerId, Sequence,
};
use std::fmt;

/// Why a batch was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendReason {
    /// The broker runs with idempotence off: everything valid is appended.
    IdempotenceOff,
    /// The batch carries no producer id (`-1`): not idempotent, nothing to check.
    NoProducerId,
    /// The sequence rule accepted it.
    Sequence(AcceptRule),
}

/// Why a batch was refused before the sequence rule (shape and integrity checks, Kafka's
/// `analyzeAndValidateRecords` and `LogValidator`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidBatch {
    /// The partition does not exist and auto-creation is off.
    UnknownPartition,
    /// The produce request's `acks` is not -1, 0 or 1.
    InvalidRequiredAcks(i16),
    /// The bytes are not exactly one well-formed RecordBatch v2: the decoder's error, naming
    /// the field.
    Malformed(DecodeError),
    /// The CRC-32C does not match.
    Corrupt {
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the batch.
        actual: u32,
    },
    /// The batch is larger than `max_message_bytes`.
    TooLarge {
        /// Batch size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The records of a compressed batch expand past `max_message_bytes`
    /// (`MESSAGE_TOO_LARGE`): a decompression bomb, refused at the bound.
    DecompressedTooLarge {
        /// The codec id (attributes bits 0-2).
        codec: u8,
        /// The limit on the decompressed records.
        max: usize,
    },
    /// A client batch must have base offset 0.
    NonZeroBaseOffset(i64),
    /// The offset range holds no record (`lastOffsetDelta + 1 <= 0`; an empty batch has
    /// `lastOffsetDelta` -1): Kafka's "invalid offset range".
    InvalidOffsetRange {
        /// lastOffsetDelta.
        last_offset_delta: i32,
    },
    /// `recordsCount` is 0 or negative: Kafka's "invalid reported count".
    InvalidRecordCount(i32),
    /// `recordsCount` disagrees with `lastOffsetDelta + 1`.
    CountMismatch {
        /// recordsCount.
        records_count: i32,
        /// lastOffsetDelta.
        last_offset_delta: i32,
    },
    /// A batch with a producer id must have a base sequence >= 0.
    NegativeSequence(Sequence),
    /// Clients may not write control batches.
    ControlBatch,
    /// Transactions are not modelled.
    Transactional,
    /// The compression codec id is not one Kafka defines (5-7).
    Compressed(u8),
    /// A record is stamped more than `message.timestamp.before.max.ms` behind or
    /// `message.timestamp.after.max.ms` ahead of the broker clock (`INVALID_TIMESTAMP`).
    InvalidTimestamp {
        /// The record timestamp out of range (the oldest when it is too old, else the newest).
        timestamp: i64,
        /// The broker clock.
        now_ms: i64,
        /// `message.timestamp.before.max.ms` of the partition (or the broker's).
        before_max_ms: i64,
        /// `message.timestamp.after.max.ms` of the partition (or the broker's).
        after_max_ms: i64,
    },
    /// The log could not write the batch (`KAFKA_STORAGE_ERROR`); nothing was appended and
    /// the producer state is unchanged.
    StorageFailed(StorageError),
    /// This broker does not lead the replicated partition (`NOT_LEADER_OR_FOLLOWER`): the
    /// producer refreshes its metadata and retries with the same sequence.
    NotLeaderOrFollower {
        /// The leader this broker knows of ([`NO_LEADER`](crate::cluster::NO_LEADER) if none).
        leader: BrokerId,
        /// The leader epoch it knows of.
        leader_epoch: i32,
    },
    /// `acks=all` and the ISR is smaller than `min.insync.replicas` (`NOT_ENOUGH_REPLICAS`,
    /// checked before appending, as Kafka's `appendRecordsToLeader` does).
    NotEnoughReplicas {
        /// The ISR.
        isr: Vec<BrokerId>,
        /// The effective `min.insync.replicas`.
        min_insync_replicas: usize,
    },
}

impl InvalidBatch {
    /// The Kafka error this answers with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            InvalidBatch::UnknownPartition => ErrorCode::UnknownTopicOrPartition,
            InvalidBatch::InvalidRequiredAcks(_) => ErrorCode::InvalidRequiredAcks,
            InvalidBatch::Corrupt { .. } => ErrorCode::CorruptMessage,
            InvalidBatch::TooLarge { .. } | InvalidBatch::DecompressedTooLarge { .. } => {
                ErrorCode::MessageTooLarge
            }
            InvalidBatch::Transactional => ErrorCode::InvalidTxnState,
            InvalidBatch::Compressed(_) => ErrorCode::UnsupportedCompressionType,
            InvalidBatch::StorageFailed(_) => ErrorCode::KafkaStorageError,
            InvalidBatch::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
            InvalidBatch::NotLeaderOrFollower { .. } => ErrorCode::NotLeaderOrFollower,
            InvalidBatch::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
            InvalidBatch::Malformed(_)
            | InvalidBatch::NonZeroBaseOffset(_)
            | InvalidBatch::InvalidOffsetRange { .. }
            | InvalidBatch::InvalidRecordCount(_)
            | InvalidBatch::CountMismatch { .. }
            | InvalidBatch::NegativeSequence(_)
            | InvalidBatch::ControlBatch => ErrorCode::InvalidRecord,
        }
    }
}

impl fmt::Display for InvalidBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBatch::UnknownPartition => write!(f, "the partition does not exist"),
            InvalidBatch::InvalidRequiredAcks(a) => write!(f, "acks={a} is not -1, 0 or 1"),
            InvalidBatch::Malformed(why) => write!(f, "not one well-formed record batch: {why}"),
            InvalidBatch::Corrupt { expected, actual } => write!(
                f,
                "CRC-32C {actual:#010x} does not match the header's {expected:#010x}: damaged in transit"
            ),
            InvalidBatch::TooLarge { size, max } => {
                write!(f, "batch of {size} bytes exceeds max.message.bytes {max}")
            }
            InvalidBatch::NonZeroBaseOffset(o) => {
                write!(f, "a client batch must have base offset 0, not {o}")
            }
            InvalidBatch::InvalidOffsetRange { last_offset_delta } => write!(
                f,
                "lastOffsetDelta {last_offset_delta} gives an offset range with no record"
            ),
            InvalidBatch::InvalidRecordCount(n) => {
                write!(f, "recordsCount {n} is not a positive count")
            }
            InvalidBatch::CountMismatch {
                records_count,
                last_offset_delta,
            } => write!(
                f,
                "recordsCount {records_count} does not match lastOffsetDelta {last_offset_delta} + 1"
            ),
            InvalidBatch::NegativeSequence(s) => {
                write!(
                    f,
                    "a batch with a producer id needs a base sequence >= 0, not {s}"
                )
            }
            InvalidBatch::ControlBatch => write!(f, "clients may not write control batches"),
            InvalidBatch::Transactional => write!(f, "transactional batches are not modelled"),
            InvalidBatch::Compressed(c) => write!(f, "compression codec {c} is not defined"),
            InvalidBatch::DecompressedTooLarge { codec, max } => write!(
                f,
                "records compressed with codec {codec} expand past message.max.bytes {max}"
            ),
            InvalidBatch::InvalidTimestamp {
                timestamp,
                now_ms,
                before_max_ms,
                after_max_ms,
            } => write!(
                f,
                "timestamp {timestamp} is out of range: it should be within [{}, {}] \
                 (broker clock {now_ms}, message.timestamp.before.max.ms {before_max_ms}, \
                 message.timestamp.after.max.ms {after_max_ms})",
                now_ms.saturating_sub(*before_max_ms),
                now_ms.saturating_add(*after_max_ms),
            ),
            InvalidBatch::StorageFailed(why) => write!(f, "the log could not write it: {why}"),
            InvalidBatch::NotLeaderOrFollower {
                leader,
                leader_epoch,
            } => write!(
                f,
                "this broker does not lead the partition (leader {leader} at epoch {leader_epoch})"
            ),
            InvalidBatch::NotEnoughReplicas {
                isr,
                min_insync_replicas,
            } => write!(
                f,
                "the ISR {isr:?} is smaller than min.insync.replicas {min_insync_replicas}"
            ),
        }
    }
}

/// The decision for one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Written to the log.
    Appended {
        /// Offset of the first record.
        base_offset: i64,
        /// Offset of the last record.
        last_offset: i64,
        /// The rule that let it in.
        reason: AppendReason,
    },
    /// An exact retry of a retained batch: answered `NONE` with the original offsets.
    Duplicate {
        /// The retained batch it matched.
        original: BatchMetadata,
    },
    /// Refused by the sequence rules.
    Rejected(SequenceRejection),
    /// Refused before the sequence rules.
    Invalid(InvalidBatch),
}

/// The result of producing one batch to one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceOutcome {
    /// What goes back on the wire.
    pub response: PartitionProduceResponse,
    /// The decision.
    pub verdict: Verdict,
    /// Producer id of the batch (`-1` if it had none or could not be parsed).
    pub producer_id: ProducerId,
    /// Producer epoch of the batch.
    pub producer_epoch: ProducerEpoch,
    /// First sequence of the batch.
    pub first_sequence: Sequence,
    /// Last sequence of the batch (wrap-aware).
    pub last_sequence: Sequence,
    /// Records in the batch.
    pub record_count: i32,
    /// The producer state the sequence rule consulted (`None` for an unknown producer, a
    /// batch without producer id, idempotence off, or a batch refused before the rule).
    pub seen: Option<StateSeen>,
}

impl ProduceOutcome {
    /// The error code answered.
    pub fn error_code(&self) -> ErrorCode {
        self.response.error_code
    }

    /// True when the batch was written to the log by this request.
    pub fn is_appended(&self) -> bool {
        matches!(self.verdict, Verdict::Appended { .. })
    }

    /// True when the batch was recognised as a retry of a retained batch.
    pub fn is_duplicate(&self) -> bool {
        matches!(self.verdict, Verdict::Duplicate { .. })
    }

    /// `appended` | `duplicate` | `rejected`.
    pub fn outcome_name(&self) -> &'static str {
        match self.verdict {
            Verdict::Appended { .. } => "appended",
            Verdict::Duplicate { .. } => "duplicate",
            Verdict::Rejected(_) | Verdict::Invalid(_) => "rejected",
        }
    }

    /// Offsets the answer refers to: the new ones, or the original batch's for a duplicate.
    pub fn offsets(&self) -> Option<(i64, i64)> {
        match &self.verdict {
            Verdict::Appended {
                base_offset,
                last_offset,
                ..
            } => Some((*base_offset, *last_offset)),
            Verdict::Duplicate { original } => {
                Some((original.first_offset(), original.last_offset))
            }
            _ => None,
        }
    }

    /// The window the rule saw, when the broker recorded it.
    fn window(&self) -> Option<&WindowView> {
        self.seen.as_ref().and_then(StateSeen::window)
    }

    /// ` (window: 2, 3, 4)`, or nothing when the window was not recorded.
    fn write_window(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window() {
            Some(window) => write!(f, " (window: {window})"),
            None => Ok(()),
        }
    }
}

fn offsets(f: &mut fmt::Formatter<'_>, first: i64, last: i64) -> fmt::Result {
    if first == last {
        write!(f, "offset {first}")
    } else {
        write!(f, "offsets {first}..{last}")
    }
}

impl fmt::Display for ProduceOutcome {
    /// The one-line explanation of the decision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let epoch = self.producer_epoch;
        let base = self.first_sequence;
        match &self.verdict {
            Verdict::Appended {
                base_offset,
                last_offset,
                reason,
            } => {
                write!(f, "appended at ")?;
                offsets(f, *base_offset, *last_offset)?;
                match reason {
                    AppendReason::IdempotenceOff => {
                        write!(f, ": idempotence is off, nothing is checked")
                    }
                    AppendReason::NoProducerId => {
                        write!(f, ": no producer id, so not deduplicated")
                    }
                    AppendReason::Sequence(AcceptRule::UnknownProducer) => write!(
                        f,
                        ": producer {} has no state on this partition, so any sequence is accepted",
                        self.producer_id
                    ),
                    AppendReason::Sequence(AcceptRule::NextInSequence) => {
                        write!(f, ": sequence {base} is the next expected")?;
                        self.write_window(f)
                    }
                    AppendReason::Sequence(AcceptRule::NewEpochFromZero { previous_epoch }) => {
                        write!(
                            f,
                            ": epoch {epoch} is newer than {previous_epoch} and starts at sequence 0; old window"
                        )?;
                        if let Some(window) = self.window() {
                            write!(f, " ({window})")?;
                        }
                        write!(f, " dropped")
                    }
                }
            }
            Verdict::Duplicate { original } => {
                write!(f, "duplicate of the batch at ")?;
                offsets(f, original.first_offset(), original.last_offset)?;
                self.write_window(f)?;
                write!(f, ": nothing appended")
            }
            Verdict::Rejected(rejection) => {
                write!(f, "rejected {}: ", rejection.error_code().name())?;
                match rejection {
                    SequenceRejection::StaleEpoch { current } => {
                        write!(f, "epoch {epoch} is older than the current epoch {current}")
                    }
                    SequenceRejection::NewEpochNotFromZero { current } => write!(
                        f,
                        "new epoch {epoch} (was {current}) must start at sequence 0, not {base}"
                    ),
                    SequenceRejection::OutOfOrder { expected } => {
                        write!(f, "expected sequence {expected}, got {base}")?;
                        self.write_gap(f, *expected)
                    }
                    SequenceRejection::UnknownProducer { rule } => write!(
                        f,
                        "no state for the producer and sequence {base} is not 0 ({rule:?}, a pre-2.5 rule)"
                    ),
                }
            }
            Verdict::Invalid(why) => write!(f, "rejected {}: {why}", why.error_code().name()),
        }
    }
}

impl ProduceOutcome {
    /// How far an out-of-order batch is from the expected sequence, and the window.
    fn write_gap(&self, f: &mut fmt::Formatter<'_>, expected: Sequence) -> fmt::Result {
        let base = self.first_sequence;
        if let Some(ahead) = expected.ahead_by(base) {
            let plural = if ahead == 1 { "" } else { "s" };
            write!(f, " ({ahead} record{plural} missing before it)")?;
        } else {
            write!(
                f,
                " (behind: a retry older than the window or a partial overlap, not an exact duplicate)"
            )?;
        }
        self.write_window(f)
    }
}
