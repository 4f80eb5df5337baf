//! idempo's bound on producer ids per partition (beyond Kafka; KIP-854's problem): the
//! producer whose last batch is oldest loses its state, a recent one keeps it.

use idempo_broker::{Broker, BrokerConfig, ConfigError, LeaderAndIsr};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

fn broker(max: Option<usize>) -> Broker {
    Broker::new(BrokerConfig {
        max_producer_ids_per_partition: max,
        ..BrokerConfig::default()
    })
    .expect("a valid config")
}

/// One batch of one record from producer `pid`, stamped `timestamp`.
fn batch(pid: i64, timestamp: i64) -> bytes::Bytes {
    RecordBatch::idempotent(
        ProducerId(pid),
        ProducerEpoch(0),
        Sequence(0),
        timestamp,
        vec![Record::with_value(0, format!("{pid}"))],
    )
    .to_bytes()
}

#[test]
fn kafka_keeps_every_producer_id_until_it_expires() {
    let mut b = broker(None);
    for pid in 1..=5 {
        assert!(b.produce(0, &batch(pid, pid * 10)).is_appended());
    }
    assert_eq!(b.producer_id_count(), 5);
    assert_eq!(b.producer_ids_evicted(), 0);
}

#[test]
fn the_bound_evicts_the_least_recent_producer_and_keeps_deduplicating_the_others() {
    let mut b = broker(Some(2));
    let bytes_one = {
        let mut one = broker(Some(2));
        one.produce(0, &batch(1, 10));
        one.producer_state_bytes()
    };
    for pid in 1..=3 {
        assert!(b.produce(0, &batch(pid, pid * 10)).is_appended());
    }
    assert_eq!(b.producer_id_count(), 2, "held at the bound");
    assert_eq!(b.producer_ids_evicted(), 1);
    let state = b.producer_state(0).expect("partition 0 exists");
    assert_eq!(state.producer_ids(), vec![ProducerId(2), ProducerId(3)]);
    assert!(b.producer_state_bytes() >= bytes_one);
    // The producers still held answer a retry as a duplicate.
    for pid in [2, 3] {
        assert!(b.produce(0, &batch(pid, pid * 10)).is_duplicate(), "{pid}");
    }
    assert_eq!(b.log_end_offset(0), Some(3));
}

#[test]
fn a_bound_of_zero_producer_ids_is_refused() {
    let e = Broker::new(BrokerConfig {
        max_producer_ids_per_partition: Some(0),
        ..BrokerConfig::default()
    })
    .unwrap_err();
    assert_eq!(e, ConfigError::MaxProducerIds);
    assert!(e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn a_follower_keeps_the_leaders_bound_so_a_new_leader_holds_the_same_producers() {
    let [mut leader, mut follower] = [0, 1].map(|id| {
        let mut b = Broker::new(BrokerConfig {
            broker_id: id,
            max_producer_ids_per_partition: Some(2),
            ..BrokerConfig::default()
        })
        .expect("a valid config");
        b.apply_leader_and_isr(&LeaderAndIsr {
            partition: 0,
            leader: 0,
            leader_epoch: 1,
            isr: vec![0, 1],
            replicas: vec![0, 1],
            partition_epoch: 1,
        });
        b
    });
    for pid in 1..=3 {
        assert!(leader.produce(0, &batch(pid, pid * 10)).is_appended());
    }
    let request = follower
        .follower_fetch_request(0)
        .expect("broker 1 follows broker 0");
    let response = leader.replica_fetch(&request);
    follower.on_follower_fetch_response(&request, &response);
    assert_eq!(
        follower.log_end_offset(0),
        Some(3),
        "every batch replicated"
    );
    assert_eq!(
        follower.producer_ids_evicted(),
        1,
        "producer 1, as on the leader"
    );
    let held = |b: &Broker| b.producer_state(0).expect("partition 0").producer_ids();
    assert_eq!(held(&follower), held(&leader));
    assert_eq!(held(&follower), vec![ProducerId(2), ProducerId(3)]);
}

#[test]
fn the_brokers_producer_state_bytes_are_the_sum_over_its_partitions() {
    let mut b = broker(None);
    assert!(b.produce(0, &batch(1, 10)).is_appended());
    let one = b.producer_state_bytes();
    assert!(one > 0, "one producer's state takes memory");
    for pid in 2..=40 {
        assert!(b.produce(pid as i32 % 3, &batch(pid, 10)).is_appended());
    }
    let per_partition: usize = (0..3)
        .map(|p| b.producer_state(p).expect("created").memory_bytes())
        .sum();
    assert_eq!(b.producer_state_bytes(), per_partition);
    assert!(
        b.producer_state_bytes() > one,
        "40 producers take more than one"
    );
}
