//! A walk over a request body that refuses impossible array counts before decoding.
//!
//! Kafka arrays are sent as an element count followed by the elements. `kafka-protocol`
//! 0.18 reads the count and calls `Vec::with_capacity(count)` *before* decoding a single
//! element, so a 12-byte Metadata request that announces 2³¹ − 1 topics asks the allocator
//! for well over a hundred gigabytes. An allocation failure aborts the process: it is not a
//! panic that could be caught. One hostile or corrupt frame would take the broker down.
//! (Upstream pull requests propose the same bound; none is released at the time of writing.)
//!
//! Every array element takes at least one byte on the wire, so a count larger than the bytes
//! left in the frame cannot be honest. [`check`] walks the body of each request we serve,
//! field by field as the Kafka schema lays it out for that version, and refuses such a count;
//! only then does `kafka-protocol` decode the body. The walk allocates nothing, and every
//! loop in it is bounded by the frame length.
//!
//! The walk checks only what can hurt: lengths and counts. Field contents (UTF-8, enum
//! values) are left to the decoder, which reports them as ordinary errors.
//!
//! The walk must stay where the decoder is. Tagged fields are where the two could part: the
//! walk skips a tagged field by its declared size, but `kafka-protocol` decodes a tag it
//! knows by its type and ignores the size. A Fetch v18 partition that declares its
//! `HighWatermark` (tag 1, an int64) 0 bytes long is read 8 bytes further by the decoder
//! than by a walk that trusts the size, and the decoder then takes the following bytes as
//! an array count the walk never saw (found by the fuzzer: a 25 GB allocation for
//! `ForgottenTopicsData`). So where the decoder knows a tag, the walk refuses any size but
//! the one its type takes ([`ShapeError::TaggedFieldSize`]).

use kafka_protocol::messages::ApiKey;
use std::fmt;

/// Why a body was refused before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// A field runs past the end of the frame.
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the frame.
        remaining: usize,
    },
    /// An array announces more elements than there are bytes left.
    ArrayTooLong {
        /// The announced count.
        count: i64,
        /// Bytes left in the frame.
        remaining: usize,
    },
    /// A length or count that no encoder writes (below -1).
    NegativeLength(i64),
    /// An unsigned varint longer than five bytes.
    VarintTooLong,
    /// A tagged field the decoder reads by its type, declared with another size.
    TaggedFieldSize {
        /// The tag.
        tag: u32,
        /// The size the field declares.
        declared: usize,
        /// The size its type takes.
        expected: usize,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Truncated { needed, remaining } => write!(
                f,
                "a field needs {needed} bytes but only {remaining} are left in the frame"
            ),
            ShapeError::ArrayTooLong { count, remaining } => write!(
                f,
                "an array announces {count} elements but only {remaining} bytes are left in the frame"
            ),
            ShapeError::NegativeLength(n) => write!(f, "length {n} is below -1"),
            ShapeError::VarintTooLong => write!(f, "an unsigned varint runs past 5 bytes"),
            ShapeError::TaggedFieldSize {
                tag,
                declared,
                expected,
            } => write!(
                f,
                "tagged field {tag} declares {declared} bytes but its type takes {expected}"
            ),
        }
    }
}

impl std::error::Error for ShapeError {}

/// Walks the body of `api` at `version` and refuses impossible lengths and array counts.
/// APIs not listed in [`SUPPORTED_APIS`](crate::kafka_codec::SUPPORTED_APIS) pass unchecked
/// (they are refused before decoding anyway).
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    walk(api, version, body).map(|_unread| ())
}

/// [`check`]'s walk; the bytes it left unread (0 for a body it laid out exactly).
fn walk(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, ShapeError> {
    let flexible = api.request_header_version(version) >= 2;
    let mut w = Walk {
        buf: body,
        flexible,
    };
    let v = version;
    match api {
        ApiKey::ApiVersions if v >= 3 => {
            w.string()?; // client_software_name
            w.string()?; // client_software_version
        }
        ApiKey::Metadata => {
            w.array(|w| {
                if v >= 10 {
                    w.skip(16)?; // topic_id
                }
                w.string()?; // name
                w.tagged_fields()
            })?;
            let flags =
                usize::from(v >= 4) + usize::from((8..=10).contains(&v)) + usize::from(v >= 8);
            w.skip(flags)?; // allow_auto_topic_creation, include_*_authorized_operations
        }
        ApiKey::InitProducerId => {
            w.string()?; // transactional_id
            w.skip(4)?; // transaction_timeout_ms
            if v >= 3 {
                w.skip(8 + 2)?; // producer_id, producer_epoch
            }
        }
        ApiKey::Produce => {
            w.string()?; // transactional_id
            w.skip(2 + 4)?; // acks, timeout_ms
            w.array(|w| {
                topic_name_or_id(w, v <= 12)?;
                w.array(|w| {
                    w.skip(4)?; // index
                    w.bytes()?; // records
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
        }
        ApiKey::Fetch => fetch(&mut w, v)?,
        ApiKey::ListOffsets => {
            w.skip(4 + usize::from(v >= 2))?; // replica_id, isolation_level
            w.array(|w| {
                w.string()?; // name
                w.array(|w| {
                    w.skip(4 + if v >= 4 { 4 } else { 0 } + 8)?; // index, leader epoch, timestamp
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
            if v >= 10 {
                w.skip(4)?; // timeout_ms
            }
        }
        ApiKey::FindCoordinator
        | ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::LeaveGroup
        | ApiKey::OffsetCommit
        | ApiKey::OffsetFetch
        | ApiKey::ListGroups
        | ApiKey::DescribeGroups
        | ApiKey::DeleteGroups => group_request(&mut w, api, v)?,
        ApiKey::CreateTopics
        | ApiKey::DeleteTopics
        | ApiKey::CreatePartitions
        | ApiKey::DescribeConfigs
        | ApiKey::IncrementalAlterConfigs
        | ApiKey::DeleteRecords
        | ApiKey::ElectLeaders => admin_request(&mut w, api, v)?,
        _ => return Ok(0),
    }
    w.tagged_fields()?;
    Ok(w.buf.len())
}

/// The consumer-group requests ([`crate::groups`]). Heartbeat has no array and needs no walk.
fn group_request(w: &mut Walk<'_>, api: ApiKey, v: i16) -> Result<(), ShapeError> {
    match api {
        ApiKey::FindCoordinator if v >= 4 => {
            w.skip(1)?; // key_type
            w.array(|w| w.string())?; // coordinator_keys
        }
        ApiKey::FindCoordinator => {
            w.string()?; // key
            w.skip(usize::from(v >= 1))?; // key_type
        }
        ApiKey::JoinGroup => {
            w.string()?; // group_id
            w.skip(4 + if v >= 1 { 4 } else { 0 })?; // session and rebalance timeouts
            w.string()?; // member_id
            if v >= 5 {
                w.string()?; // group_instance_id
            }
            w.string()?; // protocol_type
            w.array(|w| {
                w.string()?; // name
                w.bytes()?; // metadata
                w.tagged_fields()
            })?;
            if v >= 8 {
                w.string()?; // reason
            }
        }
        ApiKey::SyncGroup => {
            w.string()?; // group_id
            w.skip(4)?; // generation_id
            w.string()?; // member_id
            if v >= 3 {
                w.string()?; // group_instance_id
            }
            if v >= 5 {
                w.string()?; // protocol_type
                w.string()?; // protocol_name
            }
            w.array(|w| {
                w.string()?; // member_id
                w.bytes()?; // assignment
                w.tagged_fields()
            })?;
        }
        ApiKey::LeaveGroup if v >= 3 => {
            w.string()?; // group_id
            w.array(|w| {
                w.string()?; // member_id
                w.string()?; // group_instance_id
                if v >= 5 {
                    w.string()?; // reason
                }
                w.tagged_fields()
            })?;
        }
        ApiKey::OffsetCommit => offset_commit(w, v)?,
        ApiKey::OffsetFetch => offset_fetch(w, v)?,
        ApiKey::ListGroups => {
            if v >= 4 {
                w.array(|w| w.string())?; // states_filter
            }
            if v >= 5 {
                w.array(|w| w.string())?; // types_filter
            }
        }
        ApiKey::DescribeGroups | ApiKey::DeleteGroups => {
            w.array(|w| w.string())?; // group ids
        }
        _ => {}
    }
    Ok(())
}

/// The topic-admin requests ([`crate::admin`]), as Kafka's message schemas lay them out.
fn admin_request(w: &mut Walk<'_>, api: ApiKey, v: i16) -> Result<(), ShapeError> {
    match api {
        ApiKey::CreateTopics => create_topics(w, v)?,
        ApiKey::DeleteTopics if v >= 6 => {
            w.array(|w| {
                w.string()?; // name
                w.skip(16)?; // topic_id
                w.tagged_fields()
            })?;
            w.skip(4)?; // timeout_ms
        }
        ApiKey::DeleteTopics => {
            w.array(|w| w.string())?; // topic_names
            w.skip(4)?; // timeout_ms
        }
        ApiKey::CreatePartitions => {
            w.array(|w| {
                w.string()?; // name
                w.skip(4)?; // count
                w.array(|w| {
                    w.array(|w| w.skip(4))?; // broker_ids
                    w.tagged_fields()
                })?; // assignments (nullable)
                w.tagged_fields()
            })?;
            w.skip(4 + 1)?; // timeout_ms, validate_only
        }
        ApiKey::DescribeConfigs => {
            w.array(|w| {
                w.skip(1)?; // resource_type
                w.string()?; // resource_name
                w.array(|w| w.string())?; // configuration_keys (nullable)
                w.tagged_fields()
            })?;
            w.skip(usize::from(v >= 1) + usize::from(v >= 3))?; // include_synonyms, _documentation
        }
        ApiKey::IncrementalAlterConfigs => {
            w.array(|w| {
                w.skip(1)?; // resource_type
                w.string()?; // resource_name
                w.array(|w| {
                    w.string()?; // name
                    w.skip(1)?; // config_operation
                    w.string()?; // value
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
            w.skip(1)?; // validate_only
        }
        ApiKey::DeleteRecords => {
            w.array(|w| {
                w.string()?; // name
                w.array(|w| {
                    w.skip(4 + 8)?; // partition_index, offset
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
            w.skip(4)?; // timeout_ms
        }
        // KIP-460's ElectLeadersRequest: election_type from v1, then the topic partitions
        // (null for all of them), then timeout_ms.
        ApiKey::ElectLeaders => {
            if v >= 1 {
                w.skip(1)?; // election_type
            }
            w.array(|w| {
                w.string()?; // topic
                w.array(|w| w.skip(4))?; // partitions
                w.tagged_fields()
            })?; // topic_partitions (nullable)
            w.skip(4)?; // timeout_ms
        }
        _ => {}
    }
    Ok(())
}

fn create_topics(w: &mut Walk<'_>, v: i16) -> Result<(), ShapeError> {
    w.array(|w| {
        w.string()?; // name
        w.skip(4 + 2)?; // num_partitions, replication_factor
        w.array(|w| {
            w.skip(4)?; // partition_index
            w.array(|w| w.skip(4))?; // broker_ids
            w.tagged_fields()
        })?;
        w.array(|w| {
            w.string()?; // name
            w.string()?; // value
            w.tagged_fields()
        })?;
        w.tagged_fields()
    })?;
    w.skip(4 + usize::from(v >= 1)) // timeout_ms, validate_only
}

fn offset_commit(w: &mut Walk<'_>, v: i16) -> Result<(), ShapeError> {
    w.string()?; // group_id
    w.skip(4)?; // generation_id_or_member_epoch
    w.string()?; // member_id
    if v >= 7 {
        w.string()?; // group_instance_id
    }
    if (2..=4).contains(&v) {
        w.skip(8)?; // retention_time_ms
    }
    w.array(|w| {
        topic_name_or_id(w, v <= 9)?;
        w.array(|w| {
            w.skip(4 + 8 + if v >= 6 { 4 } else { 0 })?; // index, offset, leader epoch
            w.string()?; // metadata
            w.tagged_fields()
        })?;
        w.tagged_fields()
    })
}

fn offset_fetch(w: &mut Walk<'_>, v: i16) -> Result<(), ShapeError> {
    let topics = |w: &mut Walk<'_>| {
        w.array(|w| {
            w.string()?; // name
            w.array(|w| w.skip(4))?; // partition indexes
            w.tagged_fields()
        })
    };
    if v >= 8 {
        w.array(|w| {
            w.string()?; // group_id
            if v >= 9 {
                w.string()?; // member_id
                w.skip(4)?; // member_epoch
            }
            topics(w)?;
            w.tagged_fields()
        })?;
    } else {
        w.string()?; // group_id
        topics(w)?;
    }
    w.skip(usize::from(v >= 7)) // require_stable
}

fn fetch(w: &mut Walk<'_>, v: i16) -> Result<(), ShapeError> {
    let replica_id = if v <= 14 { 4 } else { 0 };
    // max_wait_ms, min_bytes, max_bytes, isolation_level; then session id and epoch.
    w.skip(replica_id + 4 + 4 + 4 + 1 + if v >= 7 { 8 } else { 0 })?;
    w.array(|w| {
        topic_name_or_id(w, v <= 12)?;
        w.array(|w| {
            let leader_epoch = if v >= 9 { 4 } else { 0 };
            let last_fetched_epoch = if v >= 12 { 4 } else { 0 };
            let log_start_offset = if v >= 5 { 8 } else { 0 };
            // partition, current_leader_epoch, fetch_offset, last_fetched_epoch,
            // log_start_offset, partition_max_bytes
            w.skip(4 + leader_epoch + 8 + last_fetched_epoch + log_start_offset + 4)?;
            // ReplicaDirectoryId (a uuid, v17+) and HighWatermark (an int64, v18+).
            let known: &[(u32, usize)] = match v {
                ..=16 => &[],
                17 => &[(0, 16)],
                18.. => &[(0, 16), (1, 8)],
            };
            w.tagged_fields_known(known)
        })?;
        w.tagged_fields()
    })?;
    if v >= 7 {
        w.array(|w| {
            topic_name_or_id(w, v <= 12)?;
            w.array(|w| w.skip(4))?;
            w.tagged_fields()
        })?;
    }
    if v >= 11 {
        w.string()?; // rack_id
    }
    Ok(())
}

fn topic_name_or_id(w: &mut Walk<'_>, by_name: bool) -> Result<(), ShapeError> {
    if by_name { w.string() } else { w.skip(16) }
}

/// A cursor over the body. `flexible` selects the compact encodings (varint lengths, tagged
/// fields) of the versions Kafka calls flexible.
struct Walk<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl Walk<'_> {
    fn skip(&mut self, n: usize) -> Result<(), ShapeError> {
        if n > self.buf.len() {
            return Err(ShapeError::Truncated {
                needed: n,
                remaining: self.buf.len(),
            });
        }
        self.buf = &self.buf[n..];
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ShapeError> {
        let Some(bytes) = self.buf.first_chunk::<N>() else {
            return Err(ShapeError::Truncated {
                needed: N,
                remaining: self.buf.len(),
            });
        };
        let bytes = *bytes;
        self.buf = &self.buf[N..];
        Ok(bytes)
    }

    fn unsigned_varint(&mut self) -> Result<u32, ShapeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.fixed::<1>()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ShapeError::VarintTooLong)
    }

    /// A length: i16 (strings) or i32 (bytes, arrays) when not flexible, else an unsigned
    /// varint holding length + 1. -1 means null.
    fn length(&mut self, wide: bool) -> Result<i64, ShapeError> {
        let n = if self.flexible {
            i64::from(self.unsigned_varint()?) - 1
        } else if wide {
            i64::from(i32::from_be_bytes(self.fixed()?))
        } else {
            i64::from(i16::from_be_bytes(self.fixed()?))
        };
        if n < -1 {
            return Err(ShapeError::NegativeLength(n));
        }
        Ok(n)
    }

    fn skip_length(&mut self, n: i64) -> Result<(), ShapeError> {
        // -1 (null) skips nothing; `n` fits in usize since it came from at most 32 bits.
        self.skip(usize::try_from(n).unwrap_or(0))
    }

    fn string(&mut self) -> Result<(), ShapeError> {
        let n = self.length(false)?;
        self.skip_length(n)
    }

    fn bytes(&mut self) -> Result<(), ShapeError> {
        let n = self.length(true)?;
        self.skip_length(n)
    }

    fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), ShapeError>,
    ) -> Result<(), ShapeError> {
        let count = self.length(true)?;
        if count > self.buf.len() as i64 {
            return Err(ShapeError::ArrayTooLong {
                count,
                remaining: self.buf.len(),
            });
        }
        for _ in 0..count {
            element(self)?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self) -> Result<(), ShapeError> {
        self.tagged_fields_known(&[])
    }

    /// Tagged fields where the decoder reads the tags in `known` (tag, size of its
    /// fixed-size type) by their type: each must declare exactly that size.
    fn tagged_fields_known(&mut self, known: &[(u32, usize)]) -> Result<(), ShapeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint()?;
        if i64::from(count) > self.buf.len() as i64 {
            return Err(ShapeError::ArrayTooLong {
                count: i64::from(count),
                remaining: self.buf.len(),
            });
        }
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            if let Some(&(_, expected)) = known.iter().find(|&&(t, _)| t == tag)
                && size != expected
            {
                return Err(ShapeError::TaggedFieldSize {
                    tag,
                    declared: size,
                    expected,
                });
            }
            self.skip(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{
        FetchRequest, MetadataRequest, ProduceRequest, TopicName,
        fetch_request::{FetchPartition, FetchTopic},
        metadata_request::MetadataRequestTopic,
        produce_request::{PartitionProduceData, TopicProduceData},
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(body: &impl Encodable, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version).expect("encodable");
        buf.to_vec()
    }

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    #[test]
    fn well_formed_requests_pass_at_every_served_version() {
        let metadata = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("t"))),
        ]));
        for v in 0..=12 {
            check(ApiKey::Metadata, v, &encoded(&metadata, v)).expect("metadata");
        }
        let produce = ProduceRequest::default().with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("t"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_records(Some(bytes::Bytes::from_static(b"abc"))),
                ]),
        ]);
        for v in 3..=11 {
            check(ApiKey::Produce, v, &encoded(&produce, v)).expect("produce");
        }
        let fetch = FetchRequest::default().with_topics(vec![
            FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![FetchPartition::default()]),
        ]);
        for v in 4..=12 {
            check(ApiKey::Fetch, v, &encoded(&fetch, v)).expect("fetch");
        }
    }

    #[test]
    fn fetch_partitions_tagged_fields_pass_when_sized_as_their_types() {
        // ReplicaDirectoryId (v17+) and HighWatermark (v18+) set, so that the encoder writes
        // them as tagged fields.
        let fetch = |v: i16| {
            let partition = FetchPartition::default()
                .with_replica_directory_id(uuid::Uuid::from_u128(9))
                .with_high_watermark(5);
            let topic = FetchTopic::default().with_partitions(vec![partition]);
            let topic = if v <= 12 {
                topic.with_topic(name("t"))
            } else {
                topic.with_topic_id(uuid::Uuid::from_u128(7))
            };
            FetchRequest::default().with_topics(vec![topic])
        };
        for v in 4..=18 {
            check(ApiKey::Fetch, v, &encoded(&fetch(v), v)).expect("fetch");
        }
    }

    #[test]
    fn a_known_tagged_field_declared_with_another_size_is_refused() {
        // Fetch v18, one partition whose HighWatermark (tag 1, an int64) declares 0 bytes:
        // the decoder would read its 8 bytes anyway and lose step with this walk.
        let partition = FetchPartition::default().with_high_watermark(0x0102_0304_0506_0708);
        let fetch = FetchRequest::default().with_topics(vec![
            FetchTopic::default()
                .with_topic_id(uuid::Uuid::from_u128(7))
                .with_partitions(vec![partition]),
        ]);
        let mut body = encoded(&fetch, 18);
        let field = [1u8, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8]; // one field: tag 1, 8 bytes
        let at = body
            .windows(field.len())
            .position(|w| w == field)
            .expect("the partition's tagged field");
        body[at + 2] = 0;
        assert_eq!(
            check(ApiKey::Fetch, 18, &body),
            Err(ShapeError::TaggedFieldSize {
                tag: 1,
                declared: 0,
                expected: 8
            })
        );
    }

    #[test]
    fn an_array_longer_than_the_frame_is_refused() {
        // Metadata v0: topics count 0x7fffffff, then nothing.
        let body = [0x7f, 0xff, 0xff, 0xff];
        assert_eq!(
            check(ApiKey::Metadata, 0, &body),
            Err(ShapeError::ArrayTooLong {
                count: i64::from(i32::MAX),
                remaining: 0
            })
        );
        // Metadata v9 (flexible): varint count.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            check(ApiKey::Metadata, 9, &body),
            Err(ShapeError::ArrayTooLong { .. })
        ));
    }

    /// A request body, encoded at a version.
    type Encoder = Box<dyn Fn(i16) -> Vec<u8>>;

    /// One request of each admin API, every array holding an element, so that a walk
    /// that lays a field out wrongly loses its place.
    fn admin_requests() -> Vec<(ApiKey, Encoder)> {
        use kafka_protocol::messages::*;
        let s = |t: &str| StrBytes::from_string(t.to_string());
        let create_topics = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                ])
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1"))),
                ]),
        ]);
        // v6 names topics as (name, id) pairs, earlier versions by name only.
        let delete_topics = |v: i16| {
            let request = DeleteTopicsRequest::default();
            let request = if v >= 6 {
                request.with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(name("t"))),
                ])
            } else {
                request.with_topic_names(vec![name("t")])
            };
            encoded(&request, v)
        };
        let create_partitions = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("t"))
                .with_assignments(Some(vec![
                    create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(vec![BrokerId(1)]),
                ])),
        ]);
        let describe_configs = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_name(s("t"))
                .with_configuration_keys(Some(vec![s("retention.ms")])),
        ]);
        let alter_configs = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_name(s("t"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1"))),
                ]),
        ]);
        let delete_records = DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_offset(5),
                ]),
        ]);
        vec![
            (
                ApiKey::CreateTopics,
                Box::new(move |v| encoded(&create_topics, v)),
            ),
            (ApiKey::DeleteTopics, Box::new(delete_topics)),
            (
                ApiKey::CreatePartitions,
                Box::new(move |v| encoded(&create_partitions, v)),
            ),
            (
                ApiKey::DescribeConfigs,
                Box::new(move |v| encoded(&describe_configs, v)),
            ),
            (
                ApiKey::IncrementalAlterConfigs,
                Box::new(move |v| encoded(&alter_configs, v)),
            ),
            (
                ApiKey::DeleteRecords,
                Box::new(move |v| encoded(&delete_records, v)),
            ),
        ]
    }

    fn served(api: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (min, max) = crate::kafka_codec::supported_versions(api).expect("served");
        min..=max
    }

    #[test]
    fn admin_requests_are_walked_to_their_last_byte_at_every_served_version() {
        for (api, body) in admin_requests() {
            for v in served(api) {
                assert_eq!(walk(api, v, &body(v)), Ok(0), "{api:?} v{v}");
            }
        }
    }

    #[test]
    fn an_admin_request_announcing_more_elements_than_bytes_is_refused() {
        for (api, _) in admin_requests() {
            for v in served(api) {
                let flexible = api.request_header_version(v) >= 2;
                // The top-level array's count, and nothing after it.
                let body: &[u8] = if flexible {
                    &[0xff, 0xff, 0xff, 0xff, 0x0f]
                } else {
                    &[0x7f, 0xff, 0xff, 0xff]
                };
                assert!(
                    matches!(check(api, v, body), Err(ShapeError::ArrayTooLong { .. })),
                    "{api:?} v{v}"
                );
            }
        }
        // Nested: CreateTopics v2, one topic "t" whose assignments announce 2^31 - 1.
        let mut body = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 1];
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            check(ApiKey::CreateTopics, 2, &body),
            Err(ShapeError::ArrayTooLong {
                count: i64::from(i32::MAX),
                remaining: 0
            })
        );
    }

    #[test]
    fn elect_leaders_is_walked_and_an_impossible_partition_count_refused() {
        use kafka_protocol::messages::*;
        let request = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(name("t"))
                .with_partitions(vec![0, 1]),
        ]));
        for v in served(ApiKey::ElectLeaders) {
            assert_eq!(
                walk(ApiKey::ElectLeaders, v, &encoded(&request, v)),
                Ok(0),
                "v{v}"
            );
            let null = ElectLeadersRequest::default().with_topic_partitions(None);
            assert_eq!(
                walk(ApiKey::ElectLeaders, v, &encoded(&null, v)),
                Ok(0),
                "null v{v}"
            );
        }
        // v0, one topic "t" whose partitions announce 2^31 - 1 (kafka-protocol would reserve
        // gigabytes before reading one; the fuzzer found a v2 request doing this).
        let mut body = vec![0, 0, 0, 1, 0, 1, b't'];
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            check(ApiKey::ElectLeaders, 0, &body),
            Err(ShapeError::ArrayTooLong {
                count: i64::from(i32::MAX),
                remaining: 0
            })
        );
    }

    #[test]
    fn truncated_bodies_are_refused() {
        assert!(check(ApiKey::Produce, 3, &[0xff, 0xff, 0, 1]).is_err());
        assert!(check(ApiKey::InitProducerId, 4, &[]).is_err());
    }
}
