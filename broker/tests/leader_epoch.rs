//! Leader-epoch cache rules (Kafka's `LeaderEpochFileCache`), one behaviour per test:
//! `assign`'s monotonicity, `endOffsetFor`, `truncateFromEnd`, `truncateFromStart` and
//! `epochForOffset`, each at its edges.

use idempo_broker::{EpochEntry, LeaderEpochCache};
use idempo_protocol::{EpochEndOffset, NO_LEADER_EPOCH};

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut c = LeaderEpochCache::new();
    for (epoch, start) in entries {
        assert!(c.assign(*epoch, *start), "assign({epoch}, {start})");
    }
    c
}

fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
    c.entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn end(epoch: i32, end_offset: i64) -> EpochEndOffset {
    EpochEndOffset { epoch, end_offset }
}

#[test]
fn an_empty_cache_knows_no_epoch() {
    let c = LeaderEpochCache::new();
    assert!(c.entries().is_empty());
    assert_eq!(c.latest_entry(), None);
    assert_eq!(c.latest_epoch(), None);
    assert_eq!(c.epoch_for_offset(0), None);
    assert_eq!(c.end_offset_for(0, 10), end(NO_LEADER_EPOCH, -1));
}

#[test]
fn the_latest_entry_is_the_newest_assigned() {
    let c = cache(&[(0, 0), (1, 4)]);
    assert_eq!(
        c.latest_entry(),
        Some(EpochEntry {
            epoch: 1,
            start_offset: 4
        })
    );
    assert_eq!(c.latest_epoch(), Some(1));
    let c = cache(&[(3, 0)]);
    assert_eq!(c.latest_epoch(), Some(3));
}

#[test]
fn epoch_zero_at_offset_zero_is_assigned_but_negative_epochs_and_offsets_are_ignored() {
    let mut c = LeaderEpochCache::new();
    assert!(!c.assign(-1, 0), "a batch written without a leader epoch");
    assert!(!c.assign(1, -1), "a negative start offset");
    assert!(!c.assign(-1, 5));
    assert!(c.entries().is_empty());
    assert!(c.assign(0, 0), "epoch 0 from offset 0 is a real entry");
    assert_eq!(pairs(&c), [(0, 0)]);
}

#[test]
fn reassigning_the_latest_epoch_at_the_same_or_a_higher_offset_changes_nothing() {
    let mut c = cache(&[(0, 0), (2, 5)]);
    assert!(!c.assign(2, 5), "same epoch, same offset");
    assert!(!c.assign(2, 9), "same epoch, higher offset");
    assert_eq!(pairs(&c), [(0, 0), (2, 5)]);
}

#[test]
fn reassigning_the_latest_epoch_at_a_lower_offset_moves_its_start() {
    let mut c = cache(&[(0, 0), (2, 5)]);
    assert!(c.assign(2, 3));
    assert_eq!(pairs(&c), [(0, 0), (2, 3)]);
}

#[test]
fn assigning_an_older_epoch_replaces_it_and_drops_every_later_one() {
    let mut c = cache(&[(1, 0), (2, 5), (3, 8)]);
    assert!(c.assign(2, 6), "epoch 2 again, after epoch 3");
    assert_eq!(
        pairs(&c),
        [(1, 0), (2, 6)],
        "no epoch appears twice, epoch 3 is gone"
    );
}

#[test]
fn a_new_epoch_at_the_start_offset_of_the_latest_replaces_it() {
    let mut c = cache(&[(1, 0), (2, 5)]);
    assert!(c.assign(3, 5), "epoch 2 wrote nothing before epoch 3 began");
    assert_eq!(
        pairs(&c),
        [(1, 0), (3, 5)],
        "start offsets stay strictly increasing"
    );
}

#[test]
fn a_new_epoch_above_the_latest_is_appended() {
    let mut c = cache(&[(1, 0)]);
    assert!(c.assign(4, 3));
    assert_eq!(pairs(&c), [(1, 0), (4, 3)]);
}

#[test]
fn end_offset_for_the_latest_epoch_is_the_log_end_even_with_one_entry() {
    let c = cache(&[(5, 2)]);
    assert_eq!(c.end_offset_for(5, 7), end(5, 7));
    assert_eq!(c.end_offset_for(6, 7), end(NO_LEADER_EPOCH, -1));
    assert_eq!(c.end_offset_for(4, 7), end(4, 2), "below every entry");
}

#[test]
fn end_offset_for_a_middle_epoch_is_the_start_of_the_next() {
    let c = cache(&[(0, 0), (2, 5), (3, 9), (7, 11)]);
    assert_eq!(c.end_offset_for(2, 20), end(2, 9));
    assert_eq!(c.end_offset_for(3, 20), end(3, 11));
    assert_eq!(c.end_offset_for(5, 20), end(3, 11), "the floor of 5 is 3");
    assert_eq!(c.end_offset_for(7, 20), end(7, 20));
    assert_eq!(
        c.end_offset_for(NO_LEADER_EPOCH, 20),
        end(NO_LEADER_EPOCH, -1)
    );
}

#[test]
fn truncation_from_end_at_zero_empties_the_cache_and_a_negative_offset_keeps_it() {
    let mut c = cache(&[(0, 0), (2, 5)]);
    c.truncate_from_end(-1);
    assert_eq!(pairs(&c), [(0, 0), (2, 5)], "a negative end is ignored");
    c.truncate_from_end(5);
    assert_eq!(pairs(&c), [(0, 0)], "epoch 2 started at the new end");
    c.truncate_from_end(0);
    assert!(c.entries().is_empty());
}

#[test]
fn truncation_from_end_keeps_epochs_starting_below_the_offset() {
    let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
    c.truncate_from_end(10);
    assert_eq!(pairs(&c), [(0, 0), (2, 5), (3, 9)]);
}

#[test]
fn truncation_from_start_exactly_at_an_epoch_start_keeps_that_epoch_first() {
    let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
    c.truncate_from_start(5);
    assert_eq!(pairs(&c), [(2, 5), (3, 9)]);
}

#[test]
fn truncation_from_start_below_every_entry_changes_nothing() {
    let mut c = cache(&[(3, 7), (4, 9)]);
    c.truncate_from_start(2);
    assert_eq!(pairs(&c), [(3, 7), (4, 9)]);
}

#[test]
fn truncation_from_start_past_every_entry_keeps_the_latest_at_the_new_start() {
    let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
    c.truncate_from_start(12);
    assert_eq!(pairs(&c), [(3, 12)]);
}

#[test]
fn the_epoch_for_an_offset_is_the_latest_that_started_at_or_before_it() {
    let c = cache(&[(0, 2), (2, 5), (3, 9)]);
    assert_eq!(c.epoch_for_offset(1), None, "before the first start");
    assert_eq!(c.epoch_for_offset(2), Some(0));
    assert_eq!(c.epoch_for_offset(4), Some(0));
    assert_eq!(c.epoch_for_offset(5), Some(2), "exactly at a start");
    assert_eq!(c.epoch_for_offset(9), Some(3));
    assert_eq!(c.epoch_for_offset(100), Some(3));
}
