//! Kafka's topics on top of a core that only knows numbered partitions, kept durably.
//!
//! The broker core ([`idempo_broker::Broker`]) holds partitions `0, 1, 2, ...` and nothing
//! called a topic. Kafka addresses a partition as *(topic, partition)*. The mapping here is a
//! **global partition numbering**: each topic, when created, takes the lowest core partition
//! numbers no other topic holds, one per partition, and keeps them until it is deleted.
//!
//! ```text
//! created     | topic   | partitions | core partitions
//! 1st         | orders  | 3          | 0, 1, 2
//! 2nd         | audit   | 1          | 3
//! 3rd         | clicks  | 2          | 4, 5
//! audit deleted, then orders grows to 5 (CreatePartitions)
//!             | orders  | 5          | 0, 1, 2, 3, 6
//! ```
//!
//! So `(clicks, 1)` is core partition 5. Why one core rather than one core per topic: a
//! single core hands out producer ids from one counter (InitProducerId is broker-wide in
//! Kafka too), keeps one clock, and runs producer-id expiry over every partition at once;
//! the per-partition producer state, which is what deduplicates, is per core partition
//! either way. The cost is that the core's `max_partitions` bounds the *total* partition
//! count over all topics.
//!
//! # Durability
//!
//! The table (names, ids, core partitions, topic configs and the dynamic broker configs) is
//! one JSON file, [`TOPIC_TABLE_FILE`], written through the core's [`Storage`] with
//! `write_atomic` and `sync` after every change, so that with `--data-dir` it survives a
//! restart like the logs do (and stays in memory like them without). The order of writes
//! makes every crash point recoverable:
//!
//! * create: the table is written first, then the core partitions are created; a crash in
//!   between leaves a topic without partition files, which [`TopicTable::load`] creates;
//! * delete: the table is written first, then the core partitions' files are removed; a crash
//!   in between leaves files no topic owns, which [`TopicTable::load`] deletes.
//!
//! The core's recovery has already rebuilt every partition on disk (segments, snapshots,
//! producer state) by the time [`TopicTable::load`] runs; the table only says which topic
//! each belongs to.
//!
//! # Differences from Kafka
//! - Kafka keeps topics in the controller's metadata log (KRaft); here one file is rewritten
//!   whole at each change (topics change rarely).
//! - Topic ids are `6964656d-706f-0000-....`: "idempo" and a creation counter that never
//!   repeats within one data directory, not random.

use idempo_broker::{Broker, Storage, StorageError};
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// The file the topic table is kept in, under the `topics/` prefix.
pub const TOPIC_TABLE_FILE: &str = "topics/table.json";

/// Version of the table file's layout.
const TABLE_VERSION: u32 = 1;

/// One topic and where its partitions live in the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// The name.
    pub name: String,
    /// The id Metadata v10+ reports (stable across restarts, never nil).
    pub topic_id: Uuid,
    /// Number of partitions (the length of `core_partitions`).
    pub partition_count: i32,
    /// Core partition of each of the topic's partitions, by partition index.
    pub core_partitions: Vec<i32>,
    /// Topic-level configs set explicitly (CreateTopics, IncrementalAlterConfigs), by name;
    /// every other config is the broker's default.
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    /// The core partition holding this topic's `partition`, if it has one.
    pub fn core_partition(&self, partition: i32) -> Option<i32> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.core_partitions.get(i))
            .copied()
    }
}

/// Why a topic operation failed, each answered with Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Not a legal Kafka topic name (INVALID_TOPIC_EXCEPTION, 17).
    InvalidName(String),
    /// The core has no room for more partitions (INVALID_PARTITIONS, 37).
    NoRoom {
        /// Partitions asked for.
        wanted: i32,
        /// Partitions the core can still hold.
        left: i32,
    },
    /// A partition count that cannot be (INVALID_PARTITIONS, 37).
    InvalidPartitions(String),
    /// CreateTopics of a name in use (TOPIC_ALREADY_EXISTS, 36).
    AlreadyExists(String),
    /// No topic of that name (UNKNOWN_TOPIC_OR_PARTITION, 3).
    Unknown(String),
    /// A config the broker does not honour, or a value it cannot take (INVALID_CONFIG, 40).
    InvalidConfig(String),
    /// A replication factor this one broker cannot give (INVALID_REPLICATION_FACTOR, 38).
    InvalidReplicationFactor(String),
    /// A manual assignment naming another broker (INVALID_REPLICA_ASSIGNMENT, 39).
    InvalidReplicaAssignment(String),
    /// A request that makes no sense here, e.g. an unknown resource type (INVALID_REQUEST, 42).
    InvalidRequest(String),
    /// The table could not be written (KAFKA_STORAGE_ERROR, 56); nothing changed.
    Storage(StorageError),
}

impl TopicError {
    /// The Kafka error code this is answered with.
    pub fn error_code(&self) -> i16 {
        match self {
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
            TopicError::NoRoom { .. } | TopicError::InvalidPartitions(_) => {
                ResponseError::InvalidPartitions.code()
            }
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            TopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor.code()
            }
            TopicError::InvalidReplicaAssignment(_) => {
                ResponseError::InvalidReplicaAssignment.code()
            }
            TopicError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
            TopicError::Storage(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::InvalidName(why) => write!(f, "invalid topic name: {why}"),
            TopicError::NoRoom { wanted, left } => write!(
                f,
                "{wanted} partitions wanted but the broker can hold only {left} more"
            ),
            TopicError::InvalidPartitions(why) => write!(f, "{why}"),
            TopicError::AlreadyExists(name) => write!(f, "topic '{name}' already exists"),
            TopicError::Unknown(name) => write!(f, "topic '{name}' does not exist"),
            TopicError::InvalidConfig(why)
            | TopicError::InvalidReplicationFactor(why)
            | TopicError::InvalidReplicaAssignment(why)
            | TopicError::InvalidRequest(why) => write!(f, "{why}"),
            TopicError::Storage(e) => write!(f, "cannot write the topic table: {e}"),
        }
    }
}

impl std::error::Error for TopicError {}

/// Why the topic table could not be loaded at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicTableError {
    /// The storage failed.
    Storage(StorageError),
    /// [`TOPIC_TABLE_FILE`] is not a table this version can read.
    Corrupt(String),
}

impl fmt::Display for TopicTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicTableError::Storage(e) => write!(f, "cannot load the topic table: {e}"),
            TopicTableError::Corrupt(why) => {
                write!(f, "the topic table {TOPIC_TABLE_FILE} is damaged: {why}")
            }
        }
    }
}

impl std::error::Error for TopicTableError {}

/// Checks a topic name as Kafka's `Topic.validate` does: 1 to 249 characters from
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let invalid = |why: &str| Err(TopicError::InvalidName(why.to_string()));
    if name.is_empty() {
        return invalid("the name is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return invalid("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The topics, by name, with their core partitions and configs, and the dynamic broker
/// configs (module docs).
#[derive(Clone, Debug, Default)]
pub struct TopicTable {
    by_name: BTreeMap<String, Topic>,
    /// Creation counter for topic ids: never reused, even after a delete.
    next_topic_seq: u64,
    /// Broker-level configs set by IncrementalAlterConfigs, by name.
    broker_configs: BTreeMap<String, String>,
}

/// The table file's layout (JSON: readable by a person looking into `--data-dir`).
#[derive(Serialize, Deserialize)]
struct TableFile {
    version: u32,
    next_topic_seq: u64,
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
    topics: Vec<TopicFile>,
}

#[derive(Serialize, Deserialize)]
struct TopicFile {
    name: String,
    topic_id: String,
    core_partitions: Vec<i32>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

impl TopicTable {
    /// No topics.
    pub fn new() -> TopicTable {
        TopicTable::default()
    }

    /// Loads the table from `broker`'s storage (empty when there is none) and reconciles the
    /// core with it: missing core partitions are created, partitions no topic owns are
    /// deleted, topic and broker configs are applied (module docs).
    pub fn load<S: Storage>(broker: &mut Broker<S>) -> Result<TopicTable, TopicTableError> {
        let table = match broker.storage().read_all(TOPIC_TABLE_FILE) {
            Ok(bytes) => TopicTable::decode(&bytes)?,
            Err(StorageError::NotFound { .. }) => TopicTable::new(),
            Err(e) => return Err(TopicTableError::Storage(e)),
        };
        let owned: BTreeSet<i32> = table.used_core_partitions();
        for core in broker.partition_ids() {
            if !owned.contains(&core) {
                broker
                    .delete_partition(core)
                    .map_err(TopicTableError::Storage)?;
            }
        }
        for topic in table.by_name.values() {
            for &core in &topic.core_partitions {
                broker.create_partition(core).map_err(|code| {
                    TopicTableError::Corrupt(format!(
                        "core partition {core} of topic '{}' cannot be created ({code:?})",
                        topic.name
                    ))
                })?;
            }
            let config = crate::admin::partition_config(&topic.configs)
                .map_err(|e| TopicTableError::Corrupt(e.to_string()))?;
            for &core in &topic.core_partitions {
                broker.set_partition_config(core, config);
            }
        }
        crate::admin::apply_broker_configs(broker, &table.broker_configs)
            .map_err(|e| TopicTableError::Corrupt(e.to_string()))?;
        Ok(table)
    }

    fn decode(bytes: &[u8]) -> Result<TopicTable, TopicTableError> {
        let corrupt = |why: String| TopicTableError::Corrupt(why);
        let file: TableFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != TABLE_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        let mut table = TopicTable {
            by_name: BTreeMap::new(),
            next_topic_seq: file.next_topic_seq,
            broker_configs: file.broker_configs,
        };
        let mut used = BTreeSet::new();
        for t in file.topics {
            let topic_id = Uuid::parse_str(&t.topic_id).map_err(|e| corrupt(e.to_string()))?;
            if t.core_partitions.is_empty() || !t.core_partitions.iter().all(|&c| used.insert(c)) {
                return Err(corrupt(format!(
                    "topic '{}' has no or shared partitions",
                    t.name
                )));
            }
            let topic = Topic {
                partition_count: i32::try_from(t.core_partitions.len())
                    .map_err(|e| corrupt(e.to_string()))?,
                name: t.name.clone(),
                topic_id,
                core_partitions: t.core_partitions,
                configs: t.configs,
            };
            table.by_name.insert(t.name, topic);
        }
        Ok(table)
    }

    fn encode(&self) -> Vec<u8> {
        let file = TableFile {
            version: TABLE_VERSION,
            next_topic_seq: self.next_topic_seq,
            broker_configs: self.broker_configs.clone(),
            topics: self
                .by_name
                .values()
                .map(|t| TopicFile {
                    name: t.name.clone(),
                    topic_id: t.topic_id.to_string(),
                    core_partitions: t.core_partitions.clone(),
                    configs: t.configs.clone(),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).expect("strings and numbers always serialize")
    }

    /// Writes the table durably (write_atomic, then sync).
    fn save<S: Storage>(&self, storage: &mut S) -> Result<(), TopicError> {
        storage
            .write_atomic(TOPIC_TABLE_FILE, &self.encode())
            .and_then(|()| storage.sync(TOPIC_TABLE_FILE))
            .map_err(TopicError::Storage)
    }

    /// Applies `change` to a copy of the table and saves it; the table changes only if the
    /// save succeeded.
    fn commit<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        change: impl FnOnce(&mut TopicTable),
    ) -> Result<(), TopicError> {
        let mut next = self.clone();
        change(&mut next);
        next.save(broker.storage_mut())?;
        *self = next;
        Ok(())
    }

    /// The topic called `name`.
    pub fn get(&self, name: &str) -> Option<&Topic> {
        self.by_name.get(name)
    }

    /// The topic with id `topic_id`.
    pub fn by_id(&self, topic_id: Uuid) -> Option<&Topic> {
        self.by_name.values().find(|t| t.topic_id == topic_id)
    }

    /// All topics, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.by_name.values()
    }

    /// The broker-level configs set dynamically, by name.
    pub fn broker_configs(&self) -> &BTreeMap<String, String> {
        &self.broker_configs
    }

    fn used_core_partitions(&self) -> BTreeSet<i32> {
        self.by_name
            .values()
            .flat_map(|t| t.core_partitions.iter().copied())
            .collect()
    }

    /// The lowest `count` core partition numbers no topic holds, below `max_partitions`.
    fn free_core_partitions(
        &self,
        count: i32,
        max_partitions: i32,
    ) -> Result<Vec<i32>, TopicError> {
        let used = self.used_core_partitions();
        let left = max_partitions - i32::try_from(used.len()).unwrap_or(i32::MAX);
        if count > left {
            return Err(TopicError::NoRoom {
                wanted: count,
                left: left.max(0),
            });
        }
        let wanted = usize::try_from(count).unwrap_or(0);
        Ok((0..max_partitions)
            .filter(|c| !used.contains(c))
            .take(wanted)
            .collect())
    }

    /// Creates `name` with `partition_count` partitions in `broker` (topic auto-creation), or
    /// returns it if it exists already (with the partitions it has).
    pub fn get_or_create<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        name: &str,
        partition_count: i32,
    ) -> Result<&Topic, TopicError> {
        if !self.by_name.contains_key(name) {
            self.create(broker, name, partition_count, BTreeMap::new(), false)?;
        }
        Ok(&self.by_name[name])
    }

    /// Creates `name` (CreateTopics): checks the name, the count and the configs, takes free
    /// core partitions, writes the table, then creates the partitions with the topic's
    /// configs. With `validate_only` nothing changes. Returns the topic.
    pub fn create<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        name: &str,
        partition_count: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Topic, TopicError> {
        validate_name(name)?;
        if self.by_name.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        if partition_count < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be larger than 0, not {partition_count}"
            )));
        }
        let config = crate::admin::partition_config(&configs)?;
        let cores = self.free_core_partitions(partition_count, broker.config().max_partitions)?;
        let topic = Topic {
            name: name.to_string(),
            // "idempo" in the high bits, the creation counter in the low: unique and not nil.
            topic_id: Uuid::from_u64_pair(0x6964_656d_706f_0000, self.next_topic_seq + 1),
            partition_count,
            core_partitions: cores,
            configs,
        };
        if validate_only {
            return Ok(topic);
        }
        let created = topic.clone();
        self.commit(broker, |t| {
            t.next_topic_seq += 1;
            t.by_name.insert(created.name.clone(), created);
        })?;
        create_core_partitions(broker, &topic.core_partitions, config)?;
        Ok(topic)
    }

    /// The topic named `name`, or [`TopicError::Unknown`].
    fn known(&self, name: &str) -> Result<Topic, TopicError> {
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    /// Deletes `name` (DeleteTopics): the table is written without it, then its core
    /// partitions and their files are removed. Returns the deleted topic.
    pub fn delete<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        name: &str,
    ) -> Result<Topic, TopicError> {
        let topic = self.known(name)?;
        self.commit(broker, |t| {
            t.by_name.remove(name);
        })?;
        for &core in &topic.core_partitions {
            broker.delete_partition(core).map_err(TopicError::Storage)?;
        }
        Ok(topic)
    }

    /// Grows `name` to `total` partitions (CreatePartitions). Kafka refuses a count that is
    /// not larger than the current one with INVALID_PARTITIONS. With `validate_only` nothing
    /// changes.
    pub fn add_partitions<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<Topic, TopicError> {
        let topic = self.known(name)?;
        if total <= topic.partition_count {
            return Err(TopicError::InvalidPartitions(format!(
                "topic '{name}' has {} partitions; the new count must be larger, not {total}",
                topic.partition_count
            )));
        }
        let added = self.free_core_partitions(
            total - topic.partition_count,
            broker.config().max_partitions,
        )?;
        let mut grown = topic;
        grown.core_partitions.extend(&added);
        grown.partition_count = total;
        if validate_only {
            return Ok(grown);
        }
        let config = crate::admin::partition_config(&grown.configs)?;
        let saved = grown.clone();
        self.commit(broker, |t| {
            t.by_name.insert(saved.name.clone(), saved);
        })?;
        create_core_partitions(broker, &added, config)?;
        Ok(grown)
    }

    /// Replaces the explicit configs of `name` (IncrementalAlterConfigs computes them), after
    /// checking them, and applies them to its core partitions.
    pub fn set_configs<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let topic = self.known(name)?;
        let config = crate::admin::partition_config(&configs)?;
        self.commit(broker, |t| {
            if let Some(topic) = t.by_name.get_mut(name) {
                topic.configs = configs;
            }
        })?;
        for core in topic.core_partitions {
            broker.set_partition_config(core, config);
        }
        Ok(())
    }

    /// Replaces the dynamic broker configs, after checking them, and applies them.
    pub fn set_broker_configs<S: Storage>(
        &mut self,
        broker: &mut Broker<S>,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        crate::admin::check_broker_configs(&configs)?;
        let saved = configs.clone();
        self.commit(broker, |t| t.broker_configs = saved)?;
        crate::admin::apply_broker_configs(broker, &configs)
    }
}

fn storage_failed(core: i32) -> StorageError {
    StorageError::Io {
        file: idempo_broker::partition_log::partition_dir(core),
        operation: "create partition",
        kind: std::io::ErrorKind::Other,
        message: "the core could not create the partition's log".to_string(),
    }
}

/// Creates the core partitions `cores` of a topic and gives each the topic's `config`.
fn create_core_partitions<S: Storage>(
    broker: &mut Broker<S>,
    cores: &[i32],
    config: idempo_broker::PartitionConfig,
) -> Result<(), TopicError> {
    for &core in cores {
        broker
            .create_partition(core)
            .map_err(|_| TopicError::Storage(storage_failed(core)))?;
        broker.set_partition_config(core, config);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_broker::BrokerConfig;

    fn broker() -> Broker {
        Broker::new(BrokerConfig {
            auto_create_partitions: false,
            ..BrokerConfig::default()
        })
        .expect("default config")
    }

    #[test]
    fn topics_take_the_lowest_free_core_partitions() {
        let mut broker = broker();
        let mut topics = TopicTable::new();
        topics.get_or_create(&mut broker, "orders", 3).expect("ok");
        topics.get_or_create(&mut broker, "audit", 1).expect("ok");
        let clicks = topics
            .get_or_create(&mut broker, "clicks", 2)
            .expect("ok")
            .clone();
        assert_eq!(clicks.core_partition(1), Some(5));
        assert_eq!(clicks.core_partition(2), None);
        assert_eq!(broker.log_end_offset(5), Some(0));
        // Asking again with another count changes nothing.
        let again = topics.get_or_create(&mut broker, "orders", 7).expect("ok");
        assert_eq!(again.partition_count, 3);
        // A deleted topic's numbers are reused, and growing takes the lowest free ones.
        topics.delete(&mut broker, "audit").expect("ok");
        assert_eq!(broker.log_end_offset(3), None);
        let grown = topics
            .add_partitions(&mut broker, "orders", 5, false)
            .expect("ok");
        assert_eq!(grown.core_partitions, vec![0, 1, 2, 3, 6]);
    }

    #[test]
    fn illegal_names_are_refused() {
        for name in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
        assert!(validate_name("a.B_c-9").is_ok());
    }

    #[test]
    fn the_core_bounds_the_total_partition_count() {
        let config = BrokerConfig {
            max_partitions: 4,
            ..BrokerConfig::default()
        };
        let mut broker = Broker::new(config).expect("valid config");
        let mut topics = TopicTable::new();
        topics.get_or_create(&mut broker, "a", 3).expect("ok");
        assert_eq!(
            topics.get_or_create(&mut broker, "b", 2).cloned(),
            Err(TopicError::NoRoom { wanted: 2, left: 1 })
        );
    }

    #[test]
    fn create_refuses_an_existing_name_a_bad_count_and_an_unknown_config() {
        let mut broker = broker();
        let mut topics = TopicTable::new();
        topics
            .create(&mut broker, "t", 2, BTreeMap::new(), false)
            .expect("ok");
        let code = |r: Result<Topic, TopicError>| r.expect_err("refused").error_code();
        assert_eq!(
            code(topics.create(&mut broker, "t", 2, BTreeMap::new(), false)),
            36
        );
        assert_eq!(
            code(topics.create(&mut broker, "u", 0, BTreeMap::new(), false)),
            37
        );
        let bad = BTreeMap::from([("no.such.config".to_string(), "1".to_string())]);
        assert_eq!(code(topics.create(&mut broker, "u", 1, bad, false)), 40);
        assert_eq!(code(topics.add_partitions(&mut broker, "t", 2, false)), 37);
        let checked = topics
            .create(&mut broker, "v", 1, BTreeMap::new(), true)
            .expect("valid");
        assert_eq!(checked.name, "v");
        assert!(topics.get("v").is_none(), "validate_only creates nothing");
    }

    #[test]
    fn the_table_reloads_from_storage_and_reconciles_the_core() {
        let mut broker = broker();
        let mut topics = TopicTable::new();
        let configs = BTreeMap::from([("max.message.bytes".to_string(), "2000".to_string())]);
        topics
            .create(&mut broker, "kept", 2, configs.clone(), false)
            .expect("ok");
        topics.get_or_create(&mut broker, "gone", 1).expect("ok");
        topics.delete(&mut broker, "gone").expect("ok");
        // A partition nobody owns (a crash between the table write and the file removal).
        broker.create_partition(7).expect("ok");
        let kept_id = topics.get("kept").expect("exists").topic_id;

        let mut reloaded_broker = broker;
        let reloaded = TopicTable::load(&mut reloaded_broker).expect("loads");
        let kept = reloaded.get("kept").expect("survived");
        assert_eq!(kept.topic_id, kept_id);
        assert_eq!(kept.core_partitions, vec![0, 1]);
        assert_eq!(kept.configs, configs);
        assert!(reloaded.get("gone").is_none());
        assert_eq!(reloaded_broker.log_end_offset(7), None, "orphan deleted");
        assert_eq!(
            reloaded_broker.partition_config(1).max_message_bytes,
            Some(2000)
        );
    }

    #[test]
    fn a_damaged_table_is_refused_at_load() {
        let mut broker = broker();
        broker
            .storage_mut()
            .write_atomic(TOPIC_TABLE_FILE, b"{not json")
            .expect("ok");
        assert!(matches!(
            TopicTable::load(&mut broker),
            Err(TopicTableError::Corrupt(_))
        ));
    }
}
