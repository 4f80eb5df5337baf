//! The partition log's index, seen through the broker: every offset finds its batch in
//! whichever segment holds it, segments roll only when the next batch would not fit, the
//! counts and byte sizes follow appends and DeleteRecords, and the index's memory estimate
//! follows what it holds.

mod support;

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig, DEFAULT_SEGMENT_BYTES};
use idempo_protocol::{
    ErrorCode, FetchRequest, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence,
    decode_batches,
};

/// The `n`-th two-record batch of producer 1 (sequences `2n`, `2n + 1`), values of `value_len`
/// bytes.
fn batch(n: i32, value_len: usize) -> Bytes {
    let value = "v".repeat(value_len);
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(2 * n),
        1,
        vec![
            Record::with_value(0, value.clone()),
            Record::with_value(1, value),
        ],
    )
    .to_bytes()
}

fn broker(segment_bytes: u32) -> Broker {
    Broker::new(BrokerConfig {
        segment_bytes,
        ..BrokerConfig::default()
    })
    .expect("a valid config")
}

#[test]
fn every_offset_finds_its_batch_in_whichever_segment_holds_it() {
    let size = batch(0, 8).len();
    let mut b = broker(size as u32); // one batch per segment
    for n in 0..6 {
        assert!(b.produce(0, &batch(n, 8)).is_appended());
    }
    let log = b.log(0).expect("partition 0");
    assert_eq!(log.index().segment_count(), 6);
    assert_eq!(log.index().batch_count(), 6);
    assert_eq!(log.size_bytes(), 6 * size);
    assert_eq!(log.index().size_bytes(), 6 * size);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 12));
    for offset in 0..12i64 {
        let base = offset / 2 * 2;
        let mut from = log.batches_from(offset);
        assert_eq!(
            from.len(),
            6 - offset as usize / 2,
            "batches from offset {offset}"
        );
        let first = from
            .next()
            .expect("a batch holds every offset below the log end");
        assert_eq!((first.base_offset(), first.last_offset()), (base, base + 1));
        let fetched = b.fetch(&FetchRequest::consumer(0, offset, 1));
        assert_eq!(fetched.error_code, ErrorCode::None);
        let batches = decode_batches(fetched.records).expect("whole batches");
        assert_eq!(batches[0].base_offset, base, "fetch at {offset}");
    }
    assert_eq!(log.batches_from(12).len(), 0);
    let read = log.read(4, 1 << 20).expect("readable").expect("in range");
    let batches = decode_batches(read).expect("whole batches");
    assert_eq!(batches.len(), 4, "the view reads from offset 4 to the end");
    assert_eq!(batches[0].base_offset, 4);
    assert_eq!(
        log.read(13, 1 << 20).expect("readable"),
        None,
        "past the log end"
    );
}

#[test]
fn a_segment_rolls_only_when_the_next_batch_would_not_fit() {
    let size = batch(0, 8).len();
    let mut b = broker(2 * size as u32);
    b.produce(0, &batch(0, 8));
    b.produce(0, &batch(1, 8));
    assert_eq!(
        b.log(0).expect("partition 0").index().segment_count(),
        1,
        "two batches fill the segment exactly: no roll"
    );
    b.produce(0, &batch(2, 8));
    assert_eq!(b.log(0).expect("partition 0").index().segment_count(), 2);
}

#[test]
fn the_default_segment_holds_a_mebibyte() {
    assert_eq!(DEFAULT_SEGMENT_BYTES, 1 << 20);
    let mut b = Broker::new(BrokerConfig::default()).expect("defaults");
    let size = batch(0, 1000).len();
    let fit = (1 << 20) / size;
    for n in 0..fit {
        b.produce(0, &batch(n as i32, 1000));
    }
    assert_eq!(b.log(0).expect("partition 0").index().segment_count(), 1);
    b.produce(0, &batch(fit as i32, 1000));
    assert_eq!(b.log(0).expect("partition 0").index().segment_count(), 2);
}

#[test]
fn delete_records_releases_exactly_the_batches_it_deletes() {
    let size = batch(0, 8).len();
    let mut b = broker(3 * size as u32);
    for n in 0..6 {
        b.produce(0, &batch(n, 8));
    }
    assert_eq!(b.delete_records(0, 4), Ok(4));
    let log = b.log(0).expect("partition 0");
    assert_eq!(log.index().batch_count(), 4);
    assert_eq!(log.size_bytes(), 4 * size);
    assert_eq!(log.batches().next().map(|s| s.base_offset()), Some(4));
}

#[test]
fn the_index_memory_estimate_follows_what_it_holds() {
    let empty = broker(1 << 20);
    let mut b = broker(1 << 20);
    b.produce(0, &batch(0, 8));
    let one_segment = b.log(0).expect("partition 0").index().memory_bytes();
    for n in 1..200 {
        b.produce(0, &batch(n, 8));
    }
    let log = b.log(0).expect("partition 0");
    assert_eq!(log.index().segment_count(), 1);
    let many = log.index().memory_bytes();
    // An index entry is four 4-byte fields; 200 of them sit in one segment.
    assert!(many >= one_segment + 199 * 16, "{many} vs {one_segment}");
    assert!(
        many < one_segment + 200 * 64,
        "an estimate, not a multiple: {many}"
    );
    assert!(empty.log(0).is_none());
    assert!(
        one_segment > std::mem::size_of::<usize>() * 4,
        "{one_segment}"
    );
    assert!(
        one_segment < 4096,
        "one segment with one entry: {one_segment}"
    );
}

#[test]
fn a_fetch_returns_whole_batches_up_to_max_bytes_and_always_one() {
    let size = batch(0, 8).len();
    let mut b = broker(1 << 20);
    for n in 0..4 {
        b.produce(0, &batch(n, 8));
    }
    let count = |max_bytes: usize| {
        let r = b.fetch(&FetchRequest::consumer(0, 0, max_bytes as i32));
        decode_batches(r.records).expect("whole batches").len()
    };
    assert_eq!(count(2 * size), 2, "two batches fit exactly");
    assert_eq!(count(2 * size - 1), 1);
    assert_eq!(count(3 * size + 1), 3);
    assert_eq!(count(1), 1, "at least one batch, as Kafka returns");
    assert_eq!(count(100 * size), 4);
}

/// The log-start checkpoint file: `version i16 | crc u32 | log_start_offset i64`.
fn checkpoint(version: i16, log_start_offset: i64) -> Vec<u8> {
    let body = log_start_offset.to_be_bytes();
    let mut data = version.to_be_bytes().to_vec();
    data.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    data.extend_from_slice(&body);
    data
}

/// A disk holding six one-batch segments of partition 0 (offsets 0..12) and a log-start
/// checkpoint written as `checkpoint` says, as if a crash came between writing the checkpoint
/// and deleting the segments below it.
fn disk_with_checkpoint(data: &[u8]) -> idempo_broker::SimDisk {
    use idempo_broker::Storage;
    let size = batch(0, 8).len();
    let mut b = broker(size as u32);
    for n in 0..6 {
        b.produce(0, &batch(n, 8));
    }
    b.flush().expect("sync");
    let mut disk = b.storage().clone();
    let file = "partition-0/log-start-offset.checkpoint";
    disk.write_atomic(file, data).expect("write");
    disk.sync(file).expect("sync");
    disk
}

#[test]
fn recovery_deletes_the_segments_below_a_checkpointed_log_start() {
    let disk = disk_with_checkpoint(&checkpoint(1, 4));
    let (b, report) = Broker::open(BrokerConfig::default(), disk).expect("opens");
    let p = &report.partitions[0].recovery;
    assert_eq!(p.log_start_offset, 4);
    assert_eq!(
        p.log.segments_removed, 2,
        "the segments at 0 and 2 hold only offsets below 4"
    );
    assert_eq!(b.log(0).expect("partition 0").index().segment_count(), 4);
}

#[test]
fn a_log_start_checkpoint_is_trusted_only_with_its_version_and_checksum() {
    let mut bad_crc = checkpoint(1, 4);
    bad_crc[5] ^= 1;
    for (why, data) in [("version 2", checkpoint(2, 4)), ("bad crc", bad_crc)] {
        let (b, report) =
            Broker::open(BrokerConfig::default(), disk_with_checkpoint(&data)).expect("opens");
        assert_eq!(
            report.partitions[0].recovery.log_start_offset, 0,
            "{why}: ignored"
        );
        assert_eq!(
            b.log(0).expect("partition 0").index().batch_count(),
            6,
            "{why}"
        );
    }
}

/// Six one-batch segments of partition 0 (offsets 0..12), synced, and the broker's disk.
fn six_segments() -> idempo_broker::SimDisk {
    let size = batch(0, 8).len();
    let mut b = broker(size as u32);
    for n in 0..6 {
        b.produce(0, &batch(n, 8));
    }
    b.flush().expect("sync");
    b.storage().clone()
}

fn segment(base: i64) -> String {
    format!("partition-0/{base:020}.log")
}

/// Rewrites `file` with `change` applied to its bytes, durably.
fn rewrite(disk: &mut idempo_broker::SimDisk, file: &str, change: impl FnOnce(&mut Vec<u8>)) {
    use idempo_broker::Storage;
    let mut bytes = disk.read_all(file).expect("exists").to_vec();
    change(&mut bytes);
    disk.remove(file).expect("exists");
    disk.append(file, &bytes).expect("append");
    disk.sync(file).expect("sync");
}

fn reopen(disk: idempo_broker::SimDisk) -> (Broker, idempo_broker::PartitionRecovery) {
    let (b, report) = Broker::open(BrokerConfig::default(), disk).expect("opens");
    let recovery = report.partitions[0].recovery.clone();
    (b, recovery)
}

#[test]
fn a_clean_log_recovers_every_batch_and_reports_no_damage() {
    let (b, r) = reopen(six_segments());
    assert_eq!(r.log.corruption, None);
    assert_eq!(r.log.truncated_bytes, 0);
    assert_eq!(r.log.segments_removed, 0);
    assert_eq!(r.log.valid_batches, 6);
    assert_eq!(r.log_end_offset, 12);
    let log = b.log(0).expect("partition 0");
    let mut all = log.batches();
    assert_eq!(all.len(), 6);
    all.next();
    all.next();
    assert_eq!(all.len(), 4, "the iterator counts down as it yields");
}

#[test]
fn recovery_cuts_at_a_batch_that_is_not_a_v2_header_or_sits_at_the_wrong_offset() {
    use idempo_broker::Storage;
    type Damage = fn(&mut Vec<u8>);
    let cases: [(&str, Damage, &str); 3] = [
        ("wrong magic", |b| b[16] = 1, "not a RecordBatch v2 header"),
        (
            "length below a header",
            |b| b[8..12].copy_from_slice(&10i32.to_be_bytes()),
            "not a RecordBatch v2 header",
        ),
        (
            "wrong base offset",
            |b| b[0..8].copy_from_slice(&9i64.to_be_bytes()),
            "batch at offset 9 where 6 was expected",
        ),
    ];
    for (why, damage, reason) in cases {
        let mut disk = six_segments();
        rewrite(&mut disk, &segment(6), damage);
        let len = disk.file_len(&segment(6)).expect("exists");
        let (b, r) = reopen(disk);
        let corruption = r.log.corruption.expect(why);
        assert_eq!(corruption.file, segment(6), "{why}");
        assert_eq!(corruption.position, 0, "{why}");
        assert!(
            corruption.reason.contains(reason),
            "{why}: {}",
            corruption.reason
        );
        assert_eq!(r.log_end_offset, 6, "{why}: the log ends before the damage");
        assert_eq!(r.log.valid_batches, 3, "{why}");
        assert_eq!(
            r.log.segments_removed, 3,
            "{why}: the emptied segment and the two after it"
        );
        assert_eq!(r.log.truncated_bytes, 3 * len, "{why}");
        assert_eq!(b.log(0).expect("partition 0").index().segment_count(), 3);
    }
}

#[test]
fn a_segment_that_does_not_start_where_the_last_one_ended_is_cut_and_named() {
    use idempo_broker::Storage;
    let mut disk = six_segments();
    disk.remove(&segment(4)).expect("exists");
    let (_, r) = reopen(disk);
    let corruption = r.log.corruption.expect("a hole at offset 4");
    assert_eq!(corruption.file, segment(6));
    assert_eq!(corruption.reason, "segment starts at offset 6, not at 4");
    assert_eq!(r.log_end_offset, 4);
    assert_eq!(
        r.log.segments_removed, 3,
        "every segment after the hole: 6, 8 and 10"
    );

    let mut disk = six_segments();
    rewrite(&mut disk, &segment(2), |b| b[16] = 1);
    disk.remove(&segment(4)).expect("exists");
    let (_, r) = reopen(disk);
    let first = r.log.corruption.expect("damage at offset 2");
    assert_eq!(
        first.file,
        segment(2),
        "the first damage is the one reported"
    );
}

#[test]
fn a_checkpoint_beyond_the_log_end_moves_the_end_up_to_it_and_a_bad_one_is_rewritten() {
    use idempo_broker::Storage;
    let (b, r) = reopen(disk_with_checkpoint(&checkpoint(1, 20)));
    assert_eq!((r.log_start_offset, r.log_end_offset), (20, 20));
    assert_eq!(b.log_end_offset(0), Some(20));

    let (b, r) = reopen(disk_with_checkpoint(&checkpoint(2, 4)));
    assert_eq!(r.log_start_offset, 0);
    let file = "partition-0/log-start-offset.checkpoint";
    assert_eq!(
        b.storage().read_all(file).expect("exists").to_vec(),
        checkpoint(1, 0),
        "the refused checkpoint is replaced by a valid one"
    );
}

#[test]
fn the_memory_estimate_counts_the_leader_epoch_cache() {
    use idempo_broker::LeaderAndIsr;
    let mut one_epoch = broker(1 << 20);
    let mut many_epochs = broker(1 << 20);
    many_epochs.create_partition(0).expect("partition 0");
    for n in 0..50 {
        one_epoch.produce(0, &batch(n, 8));
        many_epochs.apply_leader_and_isr(&LeaderAndIsr {
            partition: 0,
            leader: 0,
            leader_epoch: n,
            isr: vec![0],
            replicas: vec![0],
            partition_epoch: n,
        });
        assert!(many_epochs.produce(0, &batch(n, 8)).is_appended());
    }
    let epochs = many_epochs
        .log(0)
        .expect("partition 0")
        .leader_epoch_cache()
        .entries()
        .len();
    assert_eq!(epochs, 50, "one epoch-cache entry per leader epoch");
    let (one, many) = (
        one_epoch
            .log(0)
            .expect("partition 0")
            .index()
            .memory_bytes(),
        many_epochs
            .log(0)
            .expect("partition 0")
            .index()
            .memory_bytes(),
    );
    assert!(
        many >= one + 49 * 12,
        "50 epoch entries ({many}) vs 1 ({one})"
    );
}

#[test]
fn a_tear_inside_the_next_batch_is_a_torn_batch_however_much_of_it_was_written() {
    use idempo_broker::Storage;
    for kept in [10u64, 60, 61, 62] {
        let mut disk = six_segments();
        let len = disk.file_len(&segment(10)).expect("exists");
        disk.truncate(&segment(10), kept).expect("shorter");
        let (_, r) = reopen(disk);
        let reason = r.log.corruption.expect("a torn write").reason;
        let expected = if kept < 61 {
            format!("torn header: {kept} bytes left")
        } else {
            format!("torn batch: {len} bytes announced, {kept} left")
        };
        assert_eq!(reason, expected, "{kept} bytes of the last batch written");
        assert_eq!(r.log_end_offset, 10);
    }
}

#[test]
fn back_to_back_batches_are_read_back_64_to_a_storage_read() {
    let (mut b, _) =
        Broker::open(BrokerConfig::default(), support::TestDisk::default()).expect("an empty disk");
    for n in 0..130 {
        assert!(b.produce(0, &batch(n, 8)).is_appended());
    }
    b.storage().reads.set(0);
    let log = b.log(0).expect("partition 0");
    let sequences: Vec<i32> = log.batches().map(|s| s.header.base_sequence.0).collect();
    assert_eq!(sequences, (0..130).map(|n| 2 * n).collect::<Vec<_>>());
    assert_eq!(
        b.storage().reads.get(),
        3,
        "130 batches in one segment: blocks of 64, 64 and 2"
    );
    b.storage().reads.set(0);
    let from_middle = log.batches_from(2 * 100).count();
    assert_eq!(
        from_middle, 30,
        "offsets 200.. are batches 100..=129 (two records each)"
    );
    assert_eq!(
        b.storage().reads.get(),
        1,
        "30 batches from the middle: one read"
    );
    b.storage().reads.set(0);
    let fetched = b.fetch(&FetchRequest::consumer(0, 0, 1 << 20));
    assert_eq!(
        decode_batches(fetched.records)
            .expect("whole batches")
            .len(),
        130
    );
    assert_eq!(
        b.storage().reads.get(),
        1,
        "a fetch reads its back-to-back batches at once"
    );
}

#[test]
fn a_refused_follower_append_says_why_with_kafkas_error_name() {
    use idempo_broker::{FollowerAppendError, StorageError};
    use idempo_protocol::DecodeError;
    for (error, words) in [
        (
            FollowerAppendError::UnexpectedOffset {
                base_offset: 7,
                log_end_offset: 5,
            },
            &["offset 7", "log end 5"][..],
        ),
        (
            FollowerAppendError::LengthMismatch {
                announced: 80,
                bytes: 70,
            },
            &["CORRUPT_MESSAGE", "70 bytes", "80"],
        ),
        (
            FollowerAppendError::Corrupt(DecodeError::CorruptMessage {
                expected: 1,
                actual: 2,
            }),
            &["CORRUPT_MESSAGE"],
        ),
        (
            FollowerAppendError::Storage(StorageError::NotFound {
                file: "0/00000000000000000000.log".into(),
            }),
            &["KAFKA_STORAGE_ERROR", "0/00000000000000000000.log"],
        ),
    ] {
        let text = error.to_string();
        for word in words {
            assert!(text.contains(word), "{error:?} reads {text:?}");
        }
    }
}
