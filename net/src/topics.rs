//! Kafka's topics on top of a core that only knows numbered partitions.
//!
//! The broker core ([`idempo_broker::Broker`]) holds partitions `0, 1, 2, ...` and nothing
//! called a topic. Kafka addresses a partition as *(topic, partition)*. The mapping here is a
//! **global partition numbering**: each topic, when created, takes the next block of core
//! partitions, and keeps it for the broker's lifetime.
//!
//! ```text
//! created     | topic   | partitions | core partitions
//! 1st         | orders  | 3          | 0, 1, 2
//! 2nd         | audit   | 1          | 3
//! 3rd         | clicks  | 2          | 4, 5
//! ```
//!
//! So `(clicks, 1)` is core partition 5. Why one core rather than one core per topic: a
//! single core hands out producer ids from one counter (InitProducerId is broker-wide in
//! Kafka too), keeps one clock, and runs producer-id expiry over every partition at once;
//! the per-partition producer state, which is what deduplicates, is per core partition
//! either way. The cost is that the core's `max_partitions` bounds the *total* partition
//! count over all topics.
//!
//! Topics are never deleted and never grow partitions (no CreatePartitions), so a block
//! never moves.

use idempo_broker::Broker;
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// One topic and where its partitions live in the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// The name.
    pub name: String,
    /// The id Metadata v10+ reports (stable for the broker's lifetime, never nil).
    pub topic_id: Uuid,
    /// Core partition of the topic's partition 0.
    pub first_core_partition: i32,
    /// Number of partitions.
    pub partition_count: i32,
}

impl Topic {
    /// The core partition holding this topic's `partition`, if it has one.
    pub fn core_partition(&self, partition: i32) -> Option<i32> {
        (0..self.partition_count)
            .contains(&partition)
            .then(|| self.first_core_partition + partition)
    }
}

/// Why a topic cannot be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Not a legal Kafka topic name (answered INVALID_TOPIC_EXCEPTION, 17).
    InvalidName(String),
    /// The core has no room for more partitions (answered INVALID_PARTITIONS, 37).
    NoRoom {
        /// Partitions asked for.
        wanted: i32,
        /// Partitions the core can still hold.
        left: i32,
    },
}

impl TopicError {
    /// The Kafka error code this is answered with.
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::ResponseError;
        match self {
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
            TopicError::NoRoom { .. } => ResponseError::InvalidPartitions.code(),
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
        }
    }
}

impl std::error::Error for TopicError {}

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

/// The topics, by name, with their blocks of core partitions.
#[derive(Clone, Debug, Default)]
pub struct TopicTable {
    by_name: BTreeMap<String, Topic>,
    next_core_partition: i32,
}

impl TopicTable {
    /// No topics.
    pub fn new() -> TopicTable {
        TopicTable::default()
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

    /// Creates `name` with `partition_count` partitions in `broker`, or returns it if it
    /// exists already (with the partitions it was created with).
    pub fn get_or_create(
        &mut self,
        broker: &mut Broker,
        name: &str,
        partition_count: i32,
    ) -> Result<&Topic, TopicError> {
        if self.by_name.contains_key(name) {
            return Ok(&self.by_name[name]);
        }
        validate_name(name)?;
        assert!(partition_count >= 1, "partition count checked at startup");
        let left = broker.config().max_partitions - self.next_core_partition;
        if partition_count > left {
            return Err(TopicError::NoRoom {
                wanted: partition_count,
                left,
            });
        }
        let first = self.next_core_partition;
        for core in first..first + partition_count {
            broker
                .create_partition(core)
                .expect("the partition number is below max_partitions, checked above");
        }
        self.next_core_partition += partition_count;
        let topic = Topic {
            name: name.to_string(),
            // "idempo" in the high bits, the creation order in the low: unique and not nil.
            topic_id: Uuid::from_u64_pair(0x6964_656d_706f_0000, self.by_name.len() as u64 + 1),
            first_core_partition: first,
            partition_count,
        };
        Ok(self.by_name.entry(name.to_string()).or_insert(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idempo_broker::BrokerConfig;

    #[test]
    fn topics_take_consecutive_blocks_of_core_partitions() {
        let mut broker = Broker::new(BrokerConfig::default()).expect("default config");
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
            topics.get_or_create(&mut broker, "b", 2),
            Err(TopicError::NoRoom { wanted: 2, left: 1 })
        );
    }
}
