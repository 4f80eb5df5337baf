//! The broker: partitions, producer ids, and the produce path in Kafka's order.
//!
//! [`Broker`] is a synchronous state machine with no I/O and no clock of its own. It is told
//! the time ([`Broker::advance_time`]) and handed requests ([`Broker::handle`]); the
//! simulator, the `explain` tool and (later) a TCP server all drive this same code.
//!
//! The produce path for one partition's batch, in Kafka's order (reference §1.2, §1.4):
//!
//! 1. partition exists (or is auto-created), else `UNKNOWN_TOPIC_OR_PARTITION`;
//! 2. exactly one RecordBatch v2 with base offset 0, else `INVALID_RECORD`;
//! 3. size within `max_message_bytes`, else `MESSAGE_TOO_LARGE`;
//! 4. CRC-32C matches, else `CORRUPT_MESSAGE`;
//! 5. records well formed, count = lastOffsetDelta + 1, sequence >= 0 with a producer id,
//!    no control batch, else `INVALID_RECORD`;
//! 6. the sequence rule (`producer_state`): duplicate, stale epoch, in sequence;
//! 7. append, then (only then) update the producer state.

use crate::partition_log::{DeleteRecordsError, PartitionLog};
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::verdict::{AppendReason, InvalidBatch, ProduceOutcome, Verdict};
use bytes::Bytes;
use idempo_protocol::{
    BatchHeader, DecodeError, ErrorCode, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, PartitionProduceResponse, ProduceRequest, ProduceResponse,
    ProducerEpoch, ProducerId, Request, RequestFrame, Response, ResponseFrame, Sequence,
    record_batch,
};
use std::fmt;

/// Broker settings. The defaults are Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Deduplicate by producer id and sequence (`true`), or append every valid batch
    /// (`false`, to show what breaks without it).
    pub idempotence: bool,
    /// Batches retained per producer per partition (Kafka: 5, `NUM_BATCHES_TO_RETAIN`).
    pub dedup_window: usize,
    /// `producer.id.expiration.ms`: a producer whose last batch timestamp is this old loses
    /// its state (default one day).
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`: how often expiry runs (default 10 min).
    pub producer_id_expiration_check_interval_ms: i64,
    /// `max.message.bytes`: the largest batch accepted (default 1 048 588).
    pub max_message_bytes: usize,
    /// Create a partition on first produce, as `auto.create.topics.enable` does for topics.
    pub auto_create_partitions: bool,
    /// Highest partition number that may exist (bounds memory against hostile requests).
    pub max_partitions: i32,
    /// First producer id handed out by InitProducerId.
    pub first_producer_id: i64,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            idempotence: true,
            dedup_window: 5,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            max_message_bytes: 1_048_588,
            auto_create_partitions: true,
            max_partitions: 10_000,
            first_producer_id: 1,
        }
    }
}

/// Largest dedup window accepted (experiments beyond this say nothing new).
pub const MAX_DEDUP_WINDOW: usize = 1024;

/// A setting the broker cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `dedup_window` outside `1..=MAX_DEDUP_WINDOW`.
    DedupWindow(usize),
    /// `producer_id_expiration_ms` or the check interval below 1.
    Expiration(i64),
    /// `max_partitions` below 1.
    MaxPartitions(i32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::DedupWindow(n) => {
                write!(
                    f,
                    "dedup window {n} must be between 1 and {MAX_DEDUP_WINDOW} batches"
                )
            }
            ConfigError::Expiration(ms) => {
                write!(
                    f,
                    "producer id expiration settings must be at least 1 ms, not {ms}"
                )
            }
            ConfigError::MaxPartitions(n) => write!(f, "max partitions {n} must be at least 1"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A producer whose state was dropped because it was idle too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredProducer {
    /// The partition it was dropped from.
    pub partition: i32,
    /// The producer.
    pub producer_id: ProducerId,
}

/// What one request did: the response and, for produce, one outcome per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The response frame to send back.
    pub response: ResponseFrame,
    /// Per-partition produce outcomes, in request order (empty for other requests).
    pub outcomes: Vec<ProduceOutcome>,
}

#[derive(Clone, Debug)]
struct Partition {
    log: PartitionLog,
    producers: ProducerStateManager,
}

/// The broker core.
///
/// # Examples
///
/// ```
/// use idempo_broker::{Broker, BrokerConfig};
/// use idempo_protocol::{ErrorCode, Record, RecordBatch, Sequence};
///
/// let mut broker = Broker::new(BrokerConfig::default()).unwrap();
/// let id = broker.init_producer_id();
/// let batch = RecordBatch::idempotent(
///     id.producer_id, id.producer_epoch, Sequence(0), 1_000,
///     vec![Record::with_value(0, "a"), Record::with_value(1, "b")],
/// ).to_bytes();
///
/// let first = broker.produce(0, &batch);
/// assert!(first.is_appended());
/// // The ack is lost; the producer retries the very same batch.
/// let retry = broker.produce(0, &batch);
/// assert!(retry.is_duplicate());
/// assert_eq!(retry.response.error_code, ErrorCode::None);
/// assert_eq!(retry.response.base_offset, first.response.base_offset);
/// assert_eq!(broker.log_end_offset(0), Some(2));
/// println!("{retry}"); // duplicate of the batch at offsets 0..1 (window: 0..1): nothing appended
/// ```
#[derive(Clone, Debug)]
pub struct Broker {
    config: BrokerConfig,
    partitions: Vec<Option<Partition>>,
    next_producer_id: i64,
    now_ms: i64,
    next_expiration_check_ms: i64,
}

impl Broker {
    /// A broker with no partitions, its clock at 0.
    pub fn new(config: BrokerConfig) -> Result<Broker, ConfigError> {
        if config.dedup_window == 0 || config.dedup_window > MAX_DEDUP_WINDOW {
            return Err(ConfigError::DedupWindow(config.dedup_window));
        }
        for ms in [
            config.producer_id_expiration_ms,
            config.producer_id_expiration_check_interval_ms,
        ] {
            if ms < 1 {
                return Err(ConfigError::Expiration(ms));
            }
        }
        if config.max_partitions < 1 {
            return Err(ConfigError::MaxPartitions(config.max_partitions));
        }
        Ok(Broker {
            next_producer_id: config.first_producer_id,
            next_expiration_check_ms: config.producer_id_expiration_check_interval_ms,
            config,
            partitions: Vec::new(),
            now_ms: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The broker's idea of the time.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Tells the broker the time. Time never moves backwards (an earlier `now_ms` is ignored).
    /// Whenever a multiple of the expiration check interval has passed, producers idle for
    /// `producer_id_expiration_ms` lose their state, judged against their last batch's max
    /// timestamp as Kafka does. Returns the producers expired, by partition and id.
    pub fn advance_time(&mut self, now_ms: i64) -> Vec<ExpiredProducer> {
        if now_ms <= self.now_ms {
            return Vec::new();
        }
        self.now_ms = now_ms;
        if now_ms < self.next_expiration_check_ms {
            return Vec::new();
        }
        let interval = self.config.producer_id_expiration_check_interval_ms;
        self.next_expiration_check_ms = (now_ms / interval + 1).saturating_mul(interval);
        self.remove_expired_producers()
    }

    fn remove_expired_producers(&mut self) -> Vec<ExpiredProducer> {
        let (now, expiration) = (self.now_ms, self.config.producer_id_expiration_ms);
        let mut expired = Vec::new();
        for (index, partition) in self.partitions.iter_mut().enumerate() {
            if let Some(p) = partition {
                for producer_id in p.producers.remove_expired(now, expiration) {
                    expired.push(ExpiredProducer {
                        partition: index as i32,
                        producer_id,
                    });
                }
            }
        }
        expired
    }

    /// Creates `partition` if it does not exist. Fails for numbers outside
    /// `0..max_partitions`.
    pub fn create_partition(&mut self, partition: i32) -> Result<(), ErrorCode> {
        let index = usize::try_from(partition).map_err(|_| ErrorCode::UnknownTopicOrPartition)?;
        if partition >= self.config.max_partitions {
            return Err(ErrorCode::UnknownTopicOrPartition);
        }
        if self.partitions.len() <= index {
            self.partitions.resize_with(index + 1, || None);
        }
        let window = self.config.dedup_window;
        self.partitions[index].get_or_insert_with(|| Partition {
            log: PartitionLog::new(),
            producers: ProducerStateManager::new(window),
        });
        Ok(())
    }

    fn partition(&self, partition: i32) -> Option<&Partition> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    fn partition_mut(&mut self, partition: i32) -> Option<&mut Partition> {
        let index = usize::try_from(partition).ok()?;
        self.partitions.get_mut(index).and_then(Option::as_mut)
    }

    /// Partition numbers that exist, ascending.
    pub fn partition_ids(&self) -> Vec<i32> {
        (0..self.partitions.len() as i32)
            .filter(|p| self.partition(*p).is_some())
            .collect()
    }

    /// A partition's log.
    pub fn log(&self, partition: i32) -> Option<&PartitionLog> {
        self.partition(partition).map(|p| &p.log)
    }

    /// A partition's log end offset.
    pub fn log_end_offset(&self, partition: i32) -> Option<i64> {
        self.log(partition).map(PartitionLog::log_end_offset)
    }

    /// A partition's producer state.
    pub fn producer_state(&self, partition: i32) -> Option<&ProducerStateManager> {
        self.partition(partition).map(|p| &p.producers)
    }

    /// Serves one request frame.
    pub fn handle(&mut self, frame: &RequestFrame) -> Handled {
        let (response, outcomes) = match &frame.request {
            Request::InitProducerId(r) => (
                Response::InitProducerId(self.init_producer_id_with(r)),
                Vec::new(),
            ),
            Request::Produce(r) => {
                let outcomes = self.produce_request(r);
                let partitions = outcomes.iter().map(|o| o.response).collect();
                (Response::Produce(ProduceResponse { partitions }), outcomes)
            }
            Request::Fetch(r) => (Response::Fetch(self.fetch(r)), Vec::new()),
        };
        Handled {
            response: ResponseFrame {
                correlation_id: frame.correlation_id,
                response,
            },
            outcomes,
        }
    }

    /// Allocates a fresh producer id at epoch 0 (an idempotent producer's InitProducerId).
    pub fn init_producer_id(&mut self) -> InitProducerIdResponse {
        self.init_producer_id_with(&InitProducerIdRequest {
            transaction_timeout_ms: i32::MAX,
        })
    }

    fn init_producer_id_with(
        &mut self,
        _request: &InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let producer_id = ProducerId(self.next_producer_id);
        self.next_producer_id += 1;
        InitProducerIdResponse {
            error_code: ErrorCode::None,
            producer_id,
            producer_epoch: ProducerEpoch(0),
        }
    }

    /// Serves a produce request: one outcome per partition, in request order.
    pub fn produce_request(&mut self, request: &ProduceRequest) -> Vec<ProduceOutcome> {
        if !matches!(request.acks, -1..=1) {
            let why = InvalidBatch::InvalidRequiredAcks(request.acks);
            return request
                .partitions
                .iter()
                .map(|p| self.invalid(p.partition, None, why.clone()))
                .collect();
        }
        request
            .partitions
            .iter()
            .map(|p| self.produce(p.partition, &p.records))
            .collect()
    }

    /// Produces one client batch to one partition: validation, the sequence rule, the append.
    pub fn produce(&mut self, partition: i32, records: &Bytes) -> ProduceOutcome {
        if self.partition(partition).is_none()
            && !(self.config.auto_create_partitions && self.create_partition(partition).is_ok())
        {
            let header = BatchHeader::parse(records).ok();
            return self.invalid(partition, header, InvalidBatch::UnknownPartition);
        }
        let header = match self.validate(records) {
            Ok(header) => header,
            Err((header, why)) => return self.invalid(partition, header, why),
        };
        let idempotence = self.config.idempotence;
        let p = self
            .partition_mut(partition)
            .expect("the partition was created above");
        let mut seen = None;
        let reason = if !idempotence {
            AppendReason::IdempotenceOff
        } else if !header.producer_id.is_some() {
            AppendReason::NoProducerId
        } else {
            let (check, state) = p.producers.check_and_see(&header);
            seen = state;
            match check {
                SequenceCheck::Accept(rule) => AppendReason::Sequence(rule),
                SequenceCheck::Duplicate(original) => {
                    let response = PartitionProduceResponse {
                        partition,
                        error_code: ErrorCode::None,
                        base_offset: original.first_offset(),
                        log_append_time_ms: original.timestamp,
                        log_start_offset: p.log.log_start_offset(),
                    };
                    return outcome(response, Verdict::Duplicate { original }, &header, seen);
                }
                SequenceCheck::Reject(rejection) => {
                    let code = match rejection {
                        crate::producer_state::SequenceRejection::StaleEpoch { .. } => {
                            ErrorCode::InvalidProducerEpoch
                        }
                        _ => ErrorCode::OutOfOrderSequenceNumber,
                    };
                    let response = failed(partition, code, p.log.log_start_offset());
                    return outcome(response, Verdict::Rejected(rejection), &header, seen);
                }
            }
        };
        let base_offset = p.log.append(&header, records);
        if idempotence && header.producer_id.is_some() {
            p.producers.update(&header, base_offset);
        }
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        let response = PartitionProduceResponse {
            partition,
            error_code: ErrorCode::None,
            base_offset,
            log_append_time_ms: -1,
            log_start_offset: p.log.log_start_offset(),
        };
        outcome(
            response,
            Verdict::Appended {
                base_offset,
                last_offset,
                reason,
            },
            &header,
            seen,
        )
    }

    /// Shape and integrity checks in Kafka's order. On failure returns the header too, when it
    /// could be parsed, so the explanation can still name the producer.
    fn validate(
        &self,
        records: &Bytes,
    ) -> Result<BatchHeader, (Option<BatchHeader>, InvalidBatch)> {
        let header = BatchHeader::parse(records)
            .map_err(|e| (None, InvalidBatch::Malformed(e.to_string())))?;
        let fail = |why| Err((Some(header), why));
        if header.total_size() != records.len() as i64 {
            return fail(InvalidBatch::Malformed(format!(
                "batchLength {} announces {} bytes but the request holds {}",
                header.batch_length,
                header.total_size(),
                records.len()
            )));
        }
        if header.magic != record_batch::MAGIC_V2 {
            return fail(InvalidBatch::Malformed(
                DecodeError::UnsupportedMagic(header.magic).to_string(),
            ));
        }
        if header.base_offset != 0 {
            return fail(InvalidBatch::NonZeroBaseOffset(header.base_offset));
        }
        if records.len() > self.config.max_message_bytes {
            return fail(InvalidBatch::TooLarge {
                size: records.len(),
                max: self.config.max_message_bytes,
            });
        }
        match record_batch::validate(records) {
            Ok(_) => {}
            Err(DecodeError::CorruptMessage { expected, actual }) => {
                return fail(InvalidBatch::Corrupt { expected, actual });
            }
            Err(DecodeError::UnsupportedCompression(c)) => {
                return fail(InvalidBatch::Compressed(c));
            }
            Err(e) => return fail(InvalidBatch::Malformed(e.to_string())),
        }
        if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
            return fail(InvalidBatch::CountMismatch {
                records_count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        if header.is_control() {
            return fail(InvalidBatch::ControlBatch);
        }
        if header.is_transactional() {
            return fail(InvalidBatch::Transactional);
        }
        if header.producer_id.is_some() && header.base_sequence.0 < 0 {
            return fail(InvalidBatch::NegativeSequence(header.base_sequence));
        }
        Ok(header)
    }

    fn invalid(
        &self,
        partition: i32,
        header: Option<BatchHeader>,
        why: InvalidBatch,
    ) -> ProduceOutcome {
        let log_start = self
            .partition(partition)
            .map_or(-1, |p| p.log.log_start_offset());
        let response = failed(partition, why.error_code(), log_start);
        match header {
            Some(h) => outcome(response, Verdict::Invalid(why), &h, None),
            None => ProduceOutcome {
                response,
                verdict: Verdict::Invalid(why),
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
                first_sequence: Sequence::NONE,
                last_sequence: Sequence::NONE,
                record_count: 0,
                seen: None,
            },
        }
    }

    /// Reads a partition from an offset.
    pub fn fetch(&self, request: &FetchRequest) -> FetchResponse {
        let Some(p) = self.partition(request.partition) else {
            return FetchResponse {
                partition: request.partition,
                error_code: ErrorCode::UnknownTopicOrPartition,
                high_watermark: -1,
                log_start_offset: -1,
                records: Bytes::new(),
            };
        };
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        let (error_code, records) = match p.log.read(request.fetch_offset, max_bytes) {
            Some(records) => (ErrorCode::None, records),
            None => (ErrorCode::OffsetOutOfRange, Bytes::new()),
        };
        FetchResponse {
            partition: request.partition,
            error_code,
            high_watermark: p.log.log_end_offset(),
            log_start_offset: p.log.log_start_offset(),
            records,
        }
    }

    /// Moves a partition's log start offset to `offset` (DeleteRecords). Producer state is
    /// kept, as in Kafka 2.5+.
    pub fn delete_records(
        &mut self,
        partition: i32,
        offset: i64,
    ) -> Result<i64, DeleteRecordsFailure> {
        let p = self
            .partition_mut(partition)
            .ok_or(DeleteRecordsFailure::UnknownPartition(partition))?;
        p.log
            .delete_records_before(offset)
            .map_err(DeleteRecordsFailure::OutOfRange)
    }

    /// Restarts the broker: the in-memory producer state is lost and rebuilt by replaying every
    /// retained batch from the log start offset, without validation (Kafka's recovery with no
    /// snapshot). Producers whose batches were all deleted are forgotten. Returns, per
    /// partition, how many producers were rebuilt.
    pub fn restart(&mut self) -> Vec<(i32, usize)> {
        let mut rebuilt = Vec::new();
        for (index, partition) in self.partitions.iter_mut().enumerate() {
            let Some(p) = partition else { continue };
            p.producers.clear();
            if self.config.idempotence {
                for batch in p.log.batches() {
                    if batch.header.producer_id.is_some() {
                        p.producers.update(&batch.header, batch.header.base_offset);
                    }
                }
            }
            rebuilt.push((index as i32, p.producers.len()));
        }
        rebuilt
    }
}

/// Why DeleteRecords failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteRecordsFailure {
    /// No such partition.
    UnknownPartition(i32),
    /// The offset is outside the log.
    OutOfRange(DeleteRecordsError),
}

impl fmt::Display for DeleteRecordsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteRecordsFailure::UnknownPartition(p) => {
                write!(
                    f,
                    "UNKNOWN_TOPIC_OR_PARTITION: partition {p} does not exist"
                )
            }
            DeleteRecordsFailure::OutOfRange(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DeleteRecordsFailure {}

fn failed(
    partition: i32,
    error_code: ErrorCode,
    log_start_offset: i64,
) -> PartitionProduceResponse {
    PartitionProduceResponse {
        partition,
        error_code,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset,
    }
}

fn outcome(
    response: PartitionProduceResponse,
    verdict: Verdict,
    header: &BatchHeader,
    seen: Option<crate::producer_state::StateSeen>,
) -> ProduceOutcome {
    ProduceOutcome {
        response,
        verdict,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        first_sequence: header.base_sequence,
        last_sequence: header.last_sequence(),
        record_count: header.records_count,
        seen,
    }
}
