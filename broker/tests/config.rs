//! The broker's settings and its clock: which settings it refuses (each at the edge of its
//! range), how the refusals read, how `log.message.timestamp.after.max.ms` is parsed, and what
//! telling the broker the time schedules (snapshots, syncs, the count of failed storage work).

mod support;

use bytes::Bytes;
use idempo_broker::{
    Broker, BrokerConfig, ConfigError, MAX_DEDUP_WINDOW, PartitionConfig, SnapshotMode, Storage,
    SyncPolicy, TimestampAfterMaxError, parse_timestamp_after_max_ms,
};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// A setting's name, a change that sets it at an edge of its range, a change that sets it one
/// beyond, and the refusal expected for that.
type Edge = (
    &'static str,
    fn(&mut BrokerConfig),
    fn(&mut BrokerConfig),
    ConfigError,
);

fn with(change: impl FnOnce(&mut BrokerConfig)) -> Result<Broker, ConfigError> {
    let mut config = BrokerConfig::default();
    change(&mut config);
    Broker::new(config)
}

fn batch(sequence: i32) -> Bytes {
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(sequence),
        1,
        vec![Record::with_value(0, "x")],
    )
    .to_bytes()
}

#[test]
fn every_setting_is_accepted_at_the_edges_of_its_range_and_refused_just_beyond() {
    let edges: [Edge; 15] = [
        (
            "dedup_window low",
            |c| c.dedup_window = 1,
            |c| c.dedup_window = 0,
            ConfigError::DedupWindow(0),
        ),
        (
            "dedup_window high",
            |c| c.dedup_window = MAX_DEDUP_WINDOW,
            |c| c.dedup_window = MAX_DEDUP_WINDOW + 1,
            ConfigError::DedupWindow(MAX_DEDUP_WINDOW + 1),
        ),
        (
            "producer_id_expiration_ms",
            |c| c.producer_id_expiration_ms = 1,
            |c| c.producer_id_expiration_ms = 0,
            ConfigError::Expiration(0),
        ),
        (
            "producer_id_expiration_check_interval_ms",
            |c| c.producer_id_expiration_check_interval_ms = 1,
            |c| c.producer_id_expiration_check_interval_ms = 0,
            ConfigError::Expiration(0),
        ),
        (
            "max_partitions",
            |c| c.max_partitions = 1,
            |c| c.max_partitions = 0,
            ConfigError::MaxPartitions(0),
        ),
        (
            "segment_bytes low",
            |c| c.segment_bytes = 61,
            |c| c.segment_bytes = 60,
            ConfigError::SegmentBytes(60),
        ),
        (
            "segment_bytes high",
            |c| c.segment_bytes = i32::MAX as u32,
            |c| c.segment_bytes = i32::MAX as u32 + 1,
            ConfigError::SegmentBytes(i32::MAX as u32 + 1),
        ),
        (
            "snapshot_interval_ms",
            |c| c.snapshot_interval_ms = 1,
            |c| c.snapshot_interval_ms = 0,
            ConfigError::Interval(0),
        ),
        (
            "sync interval",
            |c| c.sync_policy = SyncPolicy::IntervalMs(1),
            |c| c.sync_policy = SyncPolicy::IntervalMs(0),
            ConfigError::Interval(0),
        ),
        (
            "log_message_timestamp_after_max_ms",
            |c| c.log_message_timestamp_after_max_ms = 0,
            |c| c.log_message_timestamp_after_max_ms = -1,
            ConfigError::TimestampAfterMax(-1),
        ),
        (
            "log_message_timestamp_before_max_ms",
            |c| c.log_message_timestamp_before_max_ms = 0,
            |c| c.log_message_timestamp_before_max_ms = -1,
            ConfigError::TimestampBeforeMax(-1),
        ),
        (
            "min_insync_replicas",
            |c| c.min_insync_replicas = 1,
            |c| c.min_insync_replicas = 0,
            ConfigError::MinInsyncReplicas,
        ),
        (
            "replica_lag_time_max_ms",
            |c| c.replica_lag_time_max_ms = 1,
            |c| c.replica_lag_time_max_ms = 0,
            ConfigError::ReplicaLagTimeMax(0),
        ),
        (
            "broker_id",
            |c| c.broker_id = 0,
            |c| c.broker_id = -1,
            ConfigError::BrokerId(-1),
        ),
        (
            "initial_producer_epoch",
            |c| c.initial_producer_epoch = 0,
            |c| c.initial_producer_epoch = -1,
            ConfigError::InitialProducerEpoch(-1),
        ),
    ];
    for (setting, accepted, refused, error) in edges {
        assert!(with(accepted).is_ok(), "{setting}: the edge is accepted");
        assert_eq!(
            with(refused).err(),
            Some(error),
            "{setting}: one beyond is refused"
        );
    }
    assert!(
        with(|c| c.initial_producer_epoch = i16::MAX).is_ok(),
        "a first epoch at Short.MAX_VALUE is a setting (KAFKA-5283's exhaustion)"
    );
    assert!(with(|c| c.snapshots_retained = 1).is_ok());
    assert_eq!(
        with(|c| c.snapshots_retained = 0).err(),
        Some(ConfigError::SnapshotsRetained)
    );
}

#[test]
fn producer_id_expiration_set_at_run_time_has_the_same_bound_as_at_start() {
    let mut b = Broker::new(BrokerConfig::default()).expect("the defaults");
    assert_eq!(
        b.set_producer_id_expiration_ms(1),
        Ok(()),
        "1 ms is the least"
    );
    assert_eq!(b.config().producer_id_expiration_ms, 1);
    assert_eq!(
        b.set_producer_id_expiration_ms(0),
        Err(ConfigError::Expiration(0))
    );
    assert_eq!(
        b.config().producer_id_expiration_ms,
        1,
        "a refused value leaves the setting as it was"
    );
}

#[test]
fn a_refused_setting_says_which_setting_and_what_value() {
    for (error, words) in [
        (ConfigError::DedupWindow(0), &["dedup window 0", "1024"][..]),
        (ConfigError::Expiration(-5), &["expiration", "-5"]),
        (ConfigError::MaxPartitions(0), &["max partitions 0"]),
        (ConfigError::SegmentBytes(7), &["segment size 7", "61"]),
        (ConfigError::Interval(0), &["interval", "not 0"]),
        (ConfigError::SnapshotsRetained, &["snapshot"]),
        (
            ConfigError::TimestampAfterMax(-2),
            &["log.message.timestamp.after.max.ms", "-2"],
        ),
    ] {
        let text = error.to_string();
        for word in words {
            assert!(text.contains(word), "{error:?} reads {text:?}");
        }
    }
}

#[test]
fn timestamp_after_max_is_milliseconds_from_zero_or_off() {
    assert_eq!(parse_timestamp_after_max_ms("0"), Ok(0));
    assert_eq!(parse_timestamp_after_max_ms("5"), Ok(5));
    assert_eq!(parse_timestamp_after_max_ms("off"), Ok(i64::MAX));
    for bad in ["-1", "soon", "", "1.5"] {
        let e = parse_timestamp_after_max_ms(bad).expect_err("refused");
        assert_eq!(e, TimestampAfterMaxError(bad.to_string()));
        assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
    }
}

#[test]
fn the_clock_only_moves_forward_and_the_config_is_the_one_given() {
    let config = BrokerConfig {
        dedup_window: 3,
        ..BrokerConfig::default()
    };
    let mut b = Broker::new(config.clone()).unwrap();
    assert_eq!(b.config(), &config);
    assert_eq!(b.now_ms(), 0);
    b.advance_time(5);
    assert_eq!(b.now_ms(), 5);
    b.advance_time(3);
    assert_eq!(b.now_ms(), 5, "an earlier time is ignored");
}

fn snapshot_count(b: &Broker) -> usize {
    b.storage()
        .list("partition-0/")
        .iter()
        .filter(|f| f.ends_with(".snapshot"))
        .count()
}

#[test]
fn snapshots_are_taken_once_per_interval_not_at_every_tick() {
    let mut b = Broker::new(BrokerConfig {
        snapshots_retained: 100,
        ..BrokerConfig::default()
    })
    .unwrap();
    b.produce(0, &batch(0));
    b.advance_time(60_000);
    assert_eq!(snapshot_count(&b), 1);
    for (i, now) in [60_001, 90_000, 119_999].into_iter().enumerate() {
        b.produce(0, &batch(i as i32 + 1));
        b.advance_time(now);
        assert_eq!(
            snapshot_count(&b),
            1,
            "no snapshot before 120 000 (at {now})"
        );
    }
    b.advance_time(120_000);
    assert_eq!(snapshot_count(&b), 2, "the next multiple of the interval");
    b.produce(0, &batch(4));
    b.advance_time(400_000);
    assert_eq!(snapshot_count(&b), 3, "late ticks take one snapshot");
    b.produce(0, &batch(5));
    b.advance_time(419_999);
    assert_eq!(
        snapshot_count(&b),
        3,
        "the schedule is on multiples: next at 420 000"
    );
    b.advance_time(420_000);
    assert_eq!(snapshot_count(&b), 4);
}

#[test]
fn failed_periodic_syncs_and_snapshots_are_counted_one_per_failure() {
    let config = BrokerConfig {
        sync_policy: SyncPolicy::IntervalMs(100),
        snapshot_mode: SnapshotMode::FullWindow,
        ..BrokerConfig::default()
    };
    let (mut b, _) = Broker::open(config, support::TestDisk::default()).unwrap();
    b.produce(0, &batch(0));
    assert_eq!(b.storage_failures(), 0);
    b.storage_mut().refuse(support::Op::Sync);
    b.storage_mut().refuse(support::Op::WriteAtomic);
    b.advance_time(100);
    assert_eq!(b.storage_failures(), 1, "one failed sync");
    b.advance_time(200);
    assert_eq!(b.storage_failures(), 2, "retried next period, failed again");
    b.advance_time(60_000);
    assert_eq!(
        b.storage_failures(),
        4,
        "a failed sync and a failed snapshot"
    );
    b.storage_mut().heal();
    b.advance_time(60_100);
    assert_eq!(
        b.storage_failures(),
        4,
        "working again: nothing more counted"
    );
}

#[test]
fn max_message_bytes_admits_a_batch_of_exactly_that_size() {
    let exact = batch(0);
    let mut b = with(|c| c.max_message_bytes = exact.len()).unwrap();
    assert!(
        b.produce(0, &exact).is_appended(),
        "exactly max.message.bytes"
    );
    let mut b = with(|c| c.max_message_bytes = exact.len() - 1).unwrap();
    let refused = b.produce(0, &exact);
    assert_eq!(
        refused.response.error_code,
        idempo_protocol::ErrorCode::MessageTooLarge,
        "one byte over"
    );
}

#[test]
fn a_retention_the_disk_refuses_is_counted_as_a_storage_failure_and_done_once_it_heals() {
    let (mut b, _) = Broker::open(BrokerConfig::default(), support::TestDisk::default()).unwrap();
    for sequence in 0..3 {
        assert!(b.produce(0, &batch(sequence)).is_appended()); // stamped 1
    }
    b.set_partition_config(
        0,
        PartitionConfig {
            retention_ms: Some(5_000),
            ..PartitionConfig::default()
        },
    );
    b.advance_time(10_000); // before the first snapshot time, which also runs retention
    b.storage_mut().read_only();
    assert_eq!(b.enforce_retention(), vec![], "nothing deleted");
    assert_eq!(b.storage_failures(), 1, "the refused deletion");
    let fetched = b.fetch(&idempo_protocol::FetchRequest::consumer(0, 0, 0));
    assert_eq!(fetched.log_start_offset, 0, "the log start did not move");
    b.storage_mut().heal();
    assert_eq!(
        b.enforce_retention(),
        vec![(0, 3)],
        "retried: every batch is old"
    );
    assert_eq!(b.storage_failures(), 1, "the retry did not fail");
}

#[test]
fn a_standalone_partition_refuses_acks_all_only_when_its_min_insync_replicas_is_above_one() {
    let mut b = Broker::new(BrokerConfig::default()).unwrap();
    for (partition, min_insync_replicas) in [(0, 1), (1, 2)] {
        let config = PartitionConfig {
            min_insync_replicas: Some(min_insync_replicas),
            ..PartitionConfig::default()
        };
        b.set_partition_config(partition, config);
    }
    // `Broker::produce` is acks=all.
    assert!(
        b.produce(0, &batch(0)).is_appended(),
        "an ISR of one holds min.insync.replicas 1"
    );
    let refused = b.produce(1, &batch(0));
    assert_eq!(refused.response.error_code.name(), "NOT_ENOUGH_REPLICAS");
    assert_eq!(b.log_end_offset(1), Some(0), "refused before the append");
}
