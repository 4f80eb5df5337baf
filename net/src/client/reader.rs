//! [`KafkaReader`]: a topic read back with ListOffsets and Fetch, each partition from its
//! leader, for verification (`idempo-sim run --bootstrap`, `idempo-producer --verify`).
//!
//! Metadata at the start names every partition's leader and every broker's address; the
//! reader keeps one connection per broker it reads from and sends one request at a time.
//! When the leader it asked is not the leader any more, or cannot be reached, it asks any
//! broker for fresh Metadata and tries the new leader, as Kafka's consumer does
//! (`Fetcher`, `OffsetFetcher`: these errors make it request a metadata update):
//!
//! ```text
//! answer or event                                   reader
//! NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,      refresh Metadata (from any broker that
//!   UNKNOWN_LEADER_EPOCH, LEADER_NOT_AVAILABLE,     answers), pause METADATA_RETRY_MS, ask
//!   UNKNOWN_TOPIC_OR_PARTITION                      the partition's leader again
//! connection refused or broken, request timeout     the same, and the connection is dropped
//! anything else                                     the error is returned
//! ```
//!
//! Refreshes are bounded by `metadata_timeout_ms` per operation. A partition is read up to
//! the high watermark its leader reported at the start of the read: what every in-sync
//! replica holds, which is what a consumer sees.

use super::{
    ClientConfig, ClientError, Conn, FETCH_MAX_BYTES, FETCH_MAX_BYTES_MAX, LEADER_NOT_AVAILABLE,
    Layout, METADATA_RETRY_MS, MetadataWait, UNKNOWN_TOPIC_OR_PARTITION, layout_of,
    metadata_request, open_bootstrap,
};
use super::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use bytes::Bytes;
use idempo_protocol::RecordBatch;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, ListOffsetsRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

/// Kafka's `NOT_LEADER_OR_FOLLOWER`.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Kafka's `FENCED_LEADER_EPOCH`.
const FENCED_LEADER_EPOCH: i16 = 74;
/// Kafka's `UNKNOWN_LEADER_EPOCH`.
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// Reads a topic's partitions back with ListOffsets and Fetch, for verification: each
/// partition from its leader, one connection per broker, one request at a time, no consumer
/// group (see the [module documentation](self)).
///
/// # Examples
///
/// ```no_run
/// use idempo_net::client::{ClientConfig, KafkaReader};
///
/// # async fn demo() -> Result<(), idempo_net::client::ClientError> {
/// let mut reader = KafkaReader::connect(&ClientConfig::new("127.0.0.1:9092", "orders")).await?;
/// for partition in 0..reader.partitions() {
///     let batches = reader.read_partition(partition).await?;
///     println!("partition {partition}: {} batches", batches.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KafkaReader {
    config: ClientConfig,
    topic: TopicName,
    layout: Layout,
    /// Open connections, by node id.
    conns: BTreeMap<i32, Conn>,
    /// Metadata refreshes made.
    refreshes: u64,
}

impl KafkaReader {
    /// Bootstraps as the producer does and learns every partition's leader. The topic is
    /// created on first use only if `config.allow_auto_topic_creation`.
    pub async fn connect(config: &ClientConfig) -> Result<KafkaReader, ClientError> {
        let (bootstrap, layout) = super::bootstrap_topic(config).await?;
        bootstrap
            .versions
            .need(ApiKey::Fetch, &bootstrap.broker_apis)?;
        bootstrap
            .versions
            .need(ApiKey::ListOffsets, &bootstrap.broker_apis)?;
        let mut conns = BTreeMap::new();
        if let Some((&node, _)) = layout
            .brokers
            .iter()
            .find(|(_, addr)| **addr == bootstrap.addr)
        {
            conns.insert(node, bootstrap);
        }
        Ok(KafkaReader {
            config: config.clone(),
            topic: TopicName(StrBytes::from_string(config.topic.clone())),
            layout,
            conns,
            refreshes: 0,
        })
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> i32 {
        self.layout.partitions
    }

    /// The node id of `partition`'s leader, as the reader knows it now.
    pub fn leader_of(&self, partition: i32) -> Option<i32> {
        self.layout.leaders.get(&partition).copied()
    }

    /// Metadata refreshes the reader made after a leader moved or could not be reached.
    pub fn metadata_refreshes(&self) -> u64 {
        self.refreshes
    }

    /// ListOffsets for one partition, at its leader: [`EARLIEST_TIMESTAMP`] gives the log
    /// start offset, [`LATEST_TIMESTAMP`] the log end offset (the high watermark), any
    /// other timestamp the first offset at or after it.
    pub async fn list_offset(
        &mut self,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let deadline = self.deadline();
        loop {
            match self.list_offset_once(partition, timestamp).await {
                Err(e) if self.worth_a_refresh(&e, deadline) => self.refresh(partition, &e).await?,
                done => return done,
            }
        }
    }

    /// Every batch of `partition` from the log start offset up to the high watermark read
    /// at the start, in offset order, with the offsets the broker assigned.
    pub async fn read_partition(
        &mut self,
        partition: i32,
    ) -> Result<Vec<RecordBatch>, ClientError> {
        let mut offset = self.list_offset(partition, EARLIEST_TIMESTAMP).await?;
        let end = self.list_offset(partition, LATEST_TIMESTAMP).await?;
        let mut batches = Vec::new();
        let mut max_bytes = FETCH_MAX_BYTES;
        while offset < end {
            let records = self.fetch(partition, offset, max_bytes).await?;
            let fetched = idempo_protocol::decode_batches(records).map_err(|e| {
                ClientError::Protocol(format!("partition {partition} at offset {offset}: {e}"))
            })?;
            let before = offset;
            for batch in fetched {
                let last = batch.base_offset + i64::from(batch.last_offset_delta);
                if last < offset {
                    continue; // Kafka may start an answer with the batch holding `offset`
                }
                offset = last + 1;
                batches.push(batch);
            }
            if offset == before {
                // Not one whole batch fitted: ask for more, up to a bound.
                if max_bytes >= FETCH_MAX_BYTES_MAX {
                    return Err(ClientError::Protocol(format!(
                        "partition {partition}: no whole batch at offset {offset} in \
                         {FETCH_MAX_BYTES_MAX} bytes, though the high watermark is {end}"
                    )));
                }
                max_bytes = max_bytes.saturating_mul(2);
            }
        }
        Ok(batches)
    }

    /// One Fetch of one partition from `offset`, at its leader: the record bytes.
    async fn fetch(
        &mut self,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> Result<Bytes, ClientError> {
        let deadline = self.deadline();
        loop {
            match self.fetch_once(partition, offset, max_bytes).await {
                Err(e) if self.worth_a_refresh(&e, deadline) => self.refresh(partition, &e).await?,
                done => return done,
            }
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.config.metadata_timeout_ms)
    }

    /// Whether `e` means the partition's leader moved or cannot be reached, and there is
    /// time left to find the new one.
    fn worth_a_refresh(&self, e: &ClientError, deadline: Instant) -> bool {
        let leader_moved = match e {
            ClientError::Io { .. } | ClientError::Timeout { .. } => true,
            ClientError::Broker { error_code, .. } => matches!(
                *error_code,
                NOT_LEADER_OR_FOLLOWER
                    | FENCED_LEADER_EPOCH
                    | UNKNOWN_LEADER_EPOCH
                    | LEADER_NOT_AVAILABLE
                    | UNKNOWN_TOPIC_OR_PARTITION
            ),
            _ => false,
        };
        leader_moved && Instant::now() < deadline
    }

    /// After `e` from `partition`'s leader: drops that connection if it broke, pauses, and
    /// asks the first broker that answers (the bootstrap list last) for fresh Metadata.
    async fn refresh(&mut self, partition: i32, e: &ClientError) -> Result<(), ClientError> {
        self.refreshes += 1;
        if let (ClientError::Io { .. } | ClientError::Timeout { .. }, Some(node)) =
            (e, self.leader_of(partition))
        {
            self.conns.remove(&node);
        }
        debug!(partition, error = %e, "asking for fresh metadata");
        tokio::time::sleep(Duration::from_millis(METADATA_RETRY_MS)).await;
        let request = metadata_request(&self.topic, false);
        let nodes: Vec<i32> = self.layout.brokers.keys().copied().collect();
        for node in nodes {
            let Ok(conn) = self.conn(node).await else {
                continue;
            };
            let Ok(response) = conn.call(ApiKey::Metadata, &request).await else {
                self.conns.remove(&node);
                continue;
            };
            match layout_of(&response, &self.topic) {
                Ok(layout) => {
                    self.layout = layout;
                    return Ok(());
                }
                // A partition without a leader yet: the next attempt asks again.
                Err(MetadataWait::Retry(_)) => return Ok(()),
                Err(MetadataWait::Fail(e)) => return Err(e),
            }
        }
        let mut bootstrap = open_bootstrap(&self.config).await?;
        if let Ok(response) = bootstrap.call(ApiKey::Metadata, &request).await {
            match layout_of(&response, &self.topic) {
                Ok(layout) => self.layout = layout,
                Err(MetadataWait::Fail(e)) => return Err(e),
                Err(MetadataWait::Retry(_)) => {}
            }
        }
        Ok(())
    }

    /// The open connection to `node`, made if needed.
    async fn conn(&mut self, node: i32) -> Result<&mut Conn, ClientError> {
        if !self.conns.contains_key(&node) {
            let addr = self.layout.brokers.get(&node).ok_or_else(|| {
                ClientError::Protocol(format!("broker {node} is not in the Metadata answer"))
            })?;
            let conn = Conn::open(addr, &self.config).await?;
            conn.versions.need(ApiKey::Fetch, &conn.broker_apis)?;
            conn.versions.need(ApiKey::ListOffsets, &conn.broker_apis)?;
            self.conns.insert(node, conn);
        }
        Ok(self
            .conns
            .get_mut(&node)
            .expect("the connection was inserted above"))
    }

    /// The connection to `partition`'s leader.
    async fn leader_conn(&mut self, partition: i32) -> Result<&mut Conn, ClientError> {
        let node = self
            .leader_of(partition)
            .ok_or_else(|| ClientError::Broker {
                what: format!("partition {partition} has no known leader"),
                error_code: LEADER_NOT_AVAILABLE,
            })?;
        self.conn(node).await
    }

    async fn list_offset_once(
        &mut self,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(self.topic.clone())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let topic = self.topic.clone();
        let response = self
            .leader_conn(partition)
            .await?
            .call(ApiKey::ListOffsets, &request)
            .await?;
        let answer = response
            .topics
            .iter()
            .filter(|t| t.name == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "ListOffsets answered without partition {partition}"
                ))
            })?;
        if answer.error_code != 0 {
            return Err(ClientError::Broker {
                what: format!("ListOffsets for partition {partition}"),
                error_code: answer.error_code,
            });
        }
        Ok(answer.offset)
    }

    async fn fetch_once(
        &mut self,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> Result<Bytes, ClientError> {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(self.topic.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(max_bytes),
                    ]),
            ]);
        let topic = self.topic.clone();
        let response = self
            .leader_conn(partition)
            .await?
            .call(ApiKey::Fetch, &request)
            .await?;
        if response.error_code != 0 {
            return Err(ClientError::Broker {
                what: "Fetch".to_string(),
                error_code: response.error_code,
            });
        }
        let answer = response
            .responses
            .iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                ClientError::Protocol(format!("Fetch answered without partition {partition}"))
            })?;
        if answer.error_code != 0 {
            return Err(ClientError::Broker {
                what: format!("Fetch of partition {partition} at offset {offset}"),
                error_code: answer.error_code,
            });
        }
        Ok(answer.records.clone().unwrap_or_default())
    }
}
