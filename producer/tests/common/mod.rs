//! Helpers for driving a `Producer` by hand: a handshake, request inspection, hand-made
//! answers, and a tiny fake broker that deduplicates as a modern Kafka broker does
//! (docs/KAFKA-RULES.md §1.4).

#![allow(dead_code, clippy::unwrap_used)]

use idempo_producer::{
    ClientProfile, DeliveryReport, Outgoing, Producer, ProducerConfig, ProducerEvent,
};
use idempo_protocol::{
    BatchHeader, ErrorCode, InitProducerIdResponse, MetadataResponse, PartitionMetadata,
    PartitionProduceResponse, ProduceResponse, ProducerEpoch, ProducerId, Record, RecordBatch,
    Request, RequestFrame, Response, ResponseFrame, Sequence,
};
use std::collections::{BTreeMap, VecDeque};

pub const PID: ProducerId = ProducerId(7);

pub fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::with_value(0, format!("r{i}")))
        .collect()
}

/// Every idempo improvement on (`first_batch_alone` included).
pub fn idempo() -> ProducerConfig {
    ProducerConfig {
        client_profile: ClientProfile::Idempo,
        ..ProducerConfig::default()
    }
}

/// A producer under the idempo profile that holds producer id 7, epoch 0, and whose first
/// batch to partition 0 (sequence 0, one record) was acknowledged, so that `first_batch_alone`
/// lets partition 0 have several batches in flight. Its report and events are consumed.
pub fn ready_idempo_acked(config: ProducerConfig) -> Producer {
    let mut p = ready(config);
    p.send(0, records(1), 0);
    let (c, _) = poll_produce(&mut p, 0).expect("the first batch goes out");
    p.on_response(answer(c, &[(0, ErrorCode::None, 0)]), 0);
    assert!(p.poll_delivery().expect("delivered").result.is_ok());
    events(&mut p);
    p
}

/// A producer that already holds producer id 7, epoch 0.
pub fn ready(config: ProducerConfig) -> Producer {
    let mut p = Producer::new(config).expect("valid config");
    let init = p.poll_request(0).expect("InitProducerId first");
    assert!(matches!(init.request, Request::InitProducerId(_)));
    p.on_response(init_ok(init.correlation_id, PID, ProducerEpoch(0)), 0);
    p
}

pub fn init_ok(
    correlation_id: i32,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
) -> ResponseFrame {
    ResponseFrame {
        correlation_id,
        response: Response::InitProducerId(InitProducerIdResponse {
            error_code: ErrorCode::None,
            producer_id,
            producer_epoch: epoch,
        }),
    }
}

/// One batch of a Produce request, as the broker would parse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub partition: i32,
    pub producer_id: ProducerId,
    pub epoch: ProducerEpoch,
    pub base_sequence: Sequence,
    pub last_sequence: Sequence,
    pub records: i32,
}

/// Polls one Produce request and parses its batch headers.
pub fn poll_produce(p: &mut Producer, now_ms: u64) -> Option<(i32, Vec<Sent>)> {
    let frame = p.poll_request(now_ms)?;
    Some((frame.correlation_id, parse(&frame)))
}

pub fn parse(frame: &RequestFrame) -> Vec<Sent> {
    let Request::Produce(request) = &frame.request else {
        panic!("expected Produce, got {:?}", frame.request)
    };
    request
        .partitions
        .iter()
        .map(|d| {
            let h = BatchHeader::parse(&d.records).expect("a whole batch header");
            Sent {
                partition: d.partition,
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
                last_sequence: h.last_sequence(),
                records: h.records_count,
            }
        })
        .collect()
}

/// A hand-made Produce answer: `(partition, error, base_offset)` per batch.
pub fn answer(correlation_id: i32, results: &[(i32, ErrorCode, i64)]) -> ResponseFrame {
    ResponseFrame {
        correlation_id,
        response: Response::Produce(ProduceResponse {
            partitions: results
                .iter()
                .map(
                    |&(partition, error_code, base_offset)| PartitionProduceResponse {
                        partition,
                        error_code,
                        base_offset,
                        log_append_time_ms: -1,
                        log_start_offset: 0,
                    },
                )
                .collect(),
        }),
    }
}

/// A Produce answer refusing partition 0's batch with `UNKNOWN_PRODUCER_ID`, carrying the
/// broker's log start offset (which Kafka 2.4's client compares with its last acknowledged
/// offset).
pub fn unknown_producer_id(correlation_id: i32, log_start_offset: i64) -> ResponseFrame {
    ResponseFrame {
        correlation_id,
        response: Response::Produce(ProduceResponse {
            partitions: vec![PartitionProduceResponse {
                partition: 0,
                error_code: ErrorCode::UnknownProducerId,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset,
            }],
        }),
    }
}

pub fn deliveries(p: &mut Producer) -> Vec<DeliveryReport> {
    std::iter::from_fn(|| p.poll_delivery()).collect()
}

pub fn events(p: &mut Producer) -> Vec<ProducerEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

// ----- cluster routing -------------------------------------------------------------------

/// `config` with cluster routing on.
pub fn routed_with(config: ProducerConfig) -> ProducerConfig {
    ProducerConfig {
        cluster_routing: true,
        ..config
    }
}

/// The default configuration with cluster routing on.
pub fn routed() -> ProducerConfig {
    routed_with(ProducerConfig::default())
}

/// The brokers of the cluster that [`metadata`] describes.
pub const BROKERS: [i32; 3] = [0, 1, 2];

/// A Metadata answer from a three-broker cluster: `(partition, leader, leader_epoch)`, with
/// leader -1 meaning `LEADER_NOT_AVAILABLE`.
pub fn metadata(correlation_id: i32, leaders: &[(i32, i32, i32)]) -> ResponseFrame {
    let partitions = leaders
        .iter()
        .map(|&(partition, leader_id, leader_epoch)| {
            PartitionMetadata::new(
                partition,
                leader_id,
                leader_epoch,
                BROKERS.to_vec(),
                BROKERS.to_vec(),
            )
        })
        .collect();
    ResponseFrame {
        correlation_id,
        response: Response::Metadata(MetadataResponse {
            brokers: BROKERS.to_vec(),
            controller_id: 0,
            partitions,
        }),
    }
}

/// Polls the next request, which must be Metadata, and returns its correlation id and node.
pub fn poll_metadata(p: &mut Producer, now_ms: u64) -> (i32, i32) {
    let Outgoing { node, frame } = p.poll_outgoing(now_ms).expect("a Metadata request");
    assert!(
        matches!(frame.request, Request::Metadata(_)),
        "expected Metadata, got {:?}",
        frame.request
    );
    (frame.correlation_id, node)
}

/// Polls the next request, which must be Produce: `(node, correlation_id, batches)`.
pub fn poll_routed(p: &mut Producer, now_ms: u64) -> Option<(i32, i32, Vec<Sent>)> {
    let Outgoing { node, frame } = p.poll_outgoing(now_ms)?;
    Some((node, frame.correlation_id, parse(&frame)))
}

/// A routing producer that learnt `leaders` and holds producer id 7, epoch 0; its events
/// are consumed.
pub fn ready_routed(config: ProducerConfig, leaders: &[(i32, i32, i32)]) -> Producer {
    let mut p = Producer::new(config).expect("valid config");
    let (m, node) = poll_metadata(&mut p, 0);
    assert_eq!(node, 0, "the first Metadata goes to the bootstrap node");
    p.on_response(metadata(m, leaders), 0);
    let init = p.poll_outgoing(0).expect("InitProducerId");
    assert!(matches!(init.frame.request, Request::InitProducerId(_)));
    p.on_response(init_ok(init.frame.correlation_id, PID, ProducerEpoch(0)), 0);
    events(&mut p);
    p
}

// ----- fake broker -----------------------------------------------------------------------

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    /// (first_seq, last_seq, base_offset), at most `window`.
    batches: VecDeque<(i32, i32, i64)>,
}

#[derive(Debug, Default)]
pub struct FakePartition {
    /// Record values in log order.
    pub log: Vec<String>,
    producers: BTreeMap<i64, ProducerEntry>,
}

/// A one-node broker with Kafka's dedup rules and a dedup window of `window` batches.
#[derive(Debug)]
pub struct FakeBroker {
    pub window: usize,
    /// Kafka 2.5+ (KIP-360) accepts the first batch of a producer it does not know at any
    /// sequence. When false, the broker insists on sequence 0 and answers
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` otherwise, as 0.11 did.
    pub accept_unknown_producer_at_any_sequence: bool,
    next_producer_id: i64,
    pub partitions: BTreeMap<i32, FakePartition>,
}

impl FakeBroker {
    pub fn new(window: usize) -> FakeBroker {
        FakeBroker {
            window,
            accept_unknown_producer_at_any_sequence: true,
            next_producer_id: 1000,
            partitions: BTreeMap::new(),
        }
    }

    pub fn handle(&mut self, frame: &RequestFrame) -> Option<ResponseFrame> {
        let response = match &frame.request {
            Request::InitProducerId(_) => {
                self.next_producer_id += 1;
                Response::InitProducerId(InitProducerIdResponse {
                    error_code: ErrorCode::None,
                    producer_id: ProducerId(self.next_producer_id),
                    producer_epoch: ProducerEpoch(0),
                })
            }
            Request::Produce(request) => {
                if request.acks == 0 {
                    for d in &request.partitions {
                        self.append(d.partition, &d.records);
                    }
                    return None;
                }
                Response::Produce(ProduceResponse {
                    partitions: request
                        .partitions
                        .iter()
                        .map(|d| {
                            let (error_code, base_offset) = self.append(d.partition, &d.records);
                            PartitionProduceResponse {
                                partition: d.partition,
                                error_code,
                                base_offset,
                                log_append_time_ms: -1,
                                log_start_offset: 0,
                            }
                        })
                        .collect(),
                })
            }
            Request::Fetch(_) => panic!("the producer never fetches"),
            Request::Metadata(_) => panic!("these tests run the one-broker producer"),
        };
        Some(ResponseFrame {
            correlation_id: frame.correlation_id,
            response,
        })
    }

    fn append(&mut self, partition: i32, bytes: &bytes::Bytes) -> (ErrorCode, i64) {
        let batch = RecordBatch::decode(bytes.clone()).expect("the producer encodes valid batches");
        let window = self.window;
        let strict = !self.accept_unknown_producer_at_any_sequence;
        let part = self.partitions.entry(partition).or_default();
        let base_offset = part.log.len() as i64;
        let values = batch.records.iter().map(|r| {
            String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).expect("utf-8")
        });
        if !batch.producer_id.is_some() {
            part.log.extend(values);
            return (ErrorCode::None, base_offset);
        }
        let (first, last) = (batch.base_sequence.0, batch.last_sequence().0);
        let epoch = batch.producer_epoch.0;
        if let Some(entry) = part.producers.get(&batch.producer_id.0) {
            if entry.epoch == epoch
                && let Some(&(_, _, offset)) = entry
                    .batches
                    .iter()
                    .find(|&&(f, l, _)| f == first && l == last)
            {
                return (ErrorCode::None, offset);
            }
            if epoch < entry.epoch {
                return (ErrorCode::InvalidProducerEpoch, -1);
            }
            let in_sequence = if epoch > entry.epoch {
                first == 0
            } else {
                let last_seq = entry.batches.back().map_or(-1, |&(_, l, _)| l);
                Sequence(first).follows(Sequence(last_seq))
            };
            if !in_sequence {
                return (ErrorCode::OutOfOrderSequenceNumber, -1);
            }
        } else if strict && first != 0 {
            return (ErrorCode::OutOfOrderSequenceNumber, -1);
        }
        let entry = part.producers.entry(batch.producer_id.0).or_default();
        if entry.epoch != epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.batches.push_back((first, last, base_offset));
        if entry.batches.len() > window {
            entry.batches.pop_front();
        }
        part.log.extend(values);
        (ErrorCode::None, base_offset)
    }
}

/// How many delivery reports waiting in `p` are failures (the reports are consumed).
pub fn failed_reports(p: &mut Producer) -> usize {
    deliveries(p).iter().filter(|d| d.result.is_err()).count()
}
