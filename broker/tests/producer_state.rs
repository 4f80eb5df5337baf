//! Rules of the per-partition producer state that the broker-level tests in `rules.rs` do not
//! reach: how much the state keeps (the window is a setting, memory follows the data) and
//! what it reports about itself. One test per rule, through the public API of
//! `ProducerStateManager`. Written against the survivors of `cargo mutants -p idempo-broker`
//! (see bench/MUTANTS.md).

use idempo_broker::{BatchMetadata, ProducerStateEntry, ProducerStateManager};
use idempo_protocol::{BatchHeader, ProducerEpoch, ProducerId, Sequence};

/// The header of a client batch of `count` records from producer `pid`, epoch 0, starting at
/// `seq`.
fn header(pid: i64, seq: i32, count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 10,
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(0),
        base_sequence: Sequence(seq),
        records_count: count,
    }
}

/// Appends `batches` one-record batches for each of `producers` producers, offsets in order.
fn filled(window: usize, producers: i64, batches: i32) -> ProducerStateManager {
    let mut m = ProducerStateManager::new(window);
    let mut offset = 0;
    for seq in 0..batches {
        for pid in 0..producers {
            m.update(&header(pid, seq, 1), offset);
            offset += 1;
        }
    }
    m
}

#[test]
fn each_producer_retains_exactly_the_configured_window() {
    for window in [1, 3, 5, 8] {
        let m = filled(window, 2, 12);
        assert_eq!(
            m.window(),
            window,
            "the window reported is the one configured"
        );
        for pid in 0..2 {
            let entry = m.entry(ProducerId(pid)).expect("the producer appended");
            let kept: Vec<i32> = entry.batches().map(|b| b.last_sequence.0).collect();
            let newest: Vec<i32> = (12 - window as i32..12).collect();
            assert_eq!(
                kept, newest,
                "window {window}: the newest batches, oldest first"
            );
        }
    }
}

#[test]
fn the_manager_counts_the_producers_it_holds_state_for() {
    let mut m = ProducerStateManager::new(5);
    assert!(m.is_empty(), "a new manager holds no producer");
    assert_eq!(m.len(), 0);
    m.update(&header(7, 0, 1), 0);
    assert!(!m.is_empty(), "one producer appended");
    assert_eq!(m.len(), 1);
    m.update(&header(7, 1, 1), 1);
    m.update(&header(9, 0, 1), 2);
    assert_eq!(m.len(), 2, "producers are counted, not batches");
    assert_eq!(m.producer_ids(), vec![ProducerId(7), ProducerId(9)]);
    m.clear();
    assert!(m.is_empty(), "clear forgets every producer");
    assert_eq!(m.len(), 0);
}

/// The bytes a manager at least holds: each producer's key and entry, and its retained batches.
fn held_bytes(m: &ProducerStateManager) -> usize {
    m.entries()
        .iter()
        .map(|(_, e)| {
            std::mem::size_of::<(ProducerId, ProducerStateEntry)>()
                + e.batches().len() * std::mem::size_of::<BatchMetadata>()
        })
        .sum()
}

#[test]
fn memory_counts_at_least_every_producer_and_retained_batch() {
    for (producers, batches) in [(1, 1), (1, 5), (10, 3), (1000, 5)] {
        let m = filled(5, producers, batches);
        assert!(
            m.memory_bytes() >= std::mem::size_of::<ProducerStateManager>() + held_bytes(&m),
            "{producers} producers x {batches} batches: {} bytes reported, {} held",
            m.memory_bytes(),
            held_bytes(&m)
        );
    }
}

#[test]
fn a_producer_with_a_full_window_costs_at_most_256_bytes() {
    // Issue 8 §6: per producer-partition state stays at most 256 bytes with a full window.
    for producers in [1_000i64, 1_800, 4_000] {
        let m = filled(5, producers, 5);
        let per_producer =
            (m.memory_bytes() - std::mem::size_of::<ProducerStateManager>()) / producers as usize;
        assert!(
            per_producer <= 256,
            "{producers} producers: {per_producer} bytes each"
        );
    }
}

#[test]
fn a_full_window_costs_the_same_however_many_batches_follow() {
    let full = filled(5, 3, 5).memory_bytes();
    for batches in [6, 20, 100] {
        assert_eq!(
            filled(5, 3, batches).memory_bytes(),
            full,
            "{batches} batches: eviction reuses the window's room"
        );
    }
}
