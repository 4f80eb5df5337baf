//! Recovery and snapshot rules that `durability.rs` does not pin down: when a fallback is
//! reported, when a snapshot is written, what a snapshot file must agree with, and what a
//! snapshot records. One test per rule, through the public API. Written against the survivors
//! of `cargo mutants -p idempo-broker` (see bench/MUTANTS.md).

use bytes::Bytes;
use idempo_broker::snapshot::{delete_snapshots_before, list_snapshots, write_snapshot};
use idempo_broker::{
    Broker, BrokerConfig, ProducerSnapshot, ProducerStateManager, SimDisk, SnapshotError,
    SnapshotMode, SnapshotRejection, Storage, SyncPolicy,
};
use idempo_protocol::{BatchHeader, ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

fn batch(base_sequence: i32, count: i32) -> Bytes {
    let records = (0..count)
        .map(|i| Record::with_value(i, format!("s{}", base_sequence + i)))
        .collect();
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(base_sequence),
        1,
        records,
    )
    .to_bytes()
}

/// A broker that syncs every append, with `batches` batches of 2 records from producer 1 on
/// partition 0.
fn broker_with(batches: i32) -> Broker {
    let mut b = Broker::new(BrokerConfig {
        sync_policy: SyncPolicy::EveryAppend,
        producer_id_expiration_ms: i64::MAX,
        ..BrokerConfig::default()
    })
    .expect("a valid configuration");
    for i in 0..batches {
        assert!(b.produce(0, &batch(i * 2, 2)).is_appended());
    }
    b
}

fn snapshot_name(offset: i64) -> String {
    format!("partition-0/{offset:020}.snapshot")
}

#[test]
fn a_recovery_that_loads_the_newest_snapshot_did_not_fall_back() {
    let mut b = broker_with(2);
    assert_eq!(
        b.take_snapshots().expect("SimDisk does not fail"),
        vec![(0, 4)]
    );
    b.produce(0, &batch(4, 2));
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(r.snapshot_loaded, Some(4));
    assert!(r.snapshots_rejected.is_empty());
    assert!(!r.fell_back(), "nothing was rejected, so nothing fell back");
}

#[test]
fn recovery_writes_a_snapshot_only_when_it_replayed_batches() {
    let mut b = broker_with(2);
    b.take_snapshots().expect("SimDisk does not fail");
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(
        r.snapshot_loaded,
        Some(4),
        "the snapshot covers the whole log"
    );
    assert_eq!(r.replayed_batches, 0);
    assert_eq!(
        r.snapshot_written, None,
        "with nothing replayed the loaded snapshot is already current"
    );

    b.produce(0, &batch(4, 2));
    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(r.replayed_batches, 1);
    assert_eq!(
        r.snapshot_written,
        Some(6),
        "one batch replayed: snapshot at the log end"
    );
}

#[test]
fn a_snapshot_whose_offset_differs_from_its_file_name_is_corrupt() {
    let mut b = broker_with(2);
    b.take_snapshots().expect("SimDisk does not fail");
    b.produce(0, &batch(4, 2));
    b.produce(0, &batch(6, 2));
    // Move the snapshot taken at offset 4 to the name of offset 8, which is inside the log.
    let bytes = b
        .storage()
        .read_all(&snapshot_name(4))
        .expect("written above");
    let storage = b.storage_mut();
    storage.remove(&snapshot_name(4)).expect("exists");
    storage
        .write_atomic(&snapshot_name(8), &bytes)
        .expect("SimDisk does not fail");
    storage
        .sync(&snapshot_name(8))
        .expect("SimDisk does not fail");

    let report = b.crash(|_, _| 0);
    let r = &report.partitions[0].recovery;
    assert_eq!(
        r.snapshot_loaded, None,
        "a misnamed snapshot is not trusted"
    );
    assert_eq!(r.snapshots_rejected.len(), 1);
    assert_eq!(r.snapshots_rejected[0].offset, 8);
    assert_eq!(
        r.snapshots_rejected[0].reason,
        SnapshotRejection::Corrupt(SnapshotError::InvalidValue {
            field: "snapshot offset (differs from the file name)",
            value: 4,
        })
    );
    assert_eq!(r.replayed_batches, 4, "the whole log is replayed instead");
}

#[test]
fn a_rejected_snapshot_says_why_with_the_offset_it_was_judged_against() {
    assert_eq!(
        SnapshotRejection::BeyondLogEnd { log_end_offset: 12 }.to_string(),
        "beyond the log end offset 12"
    );
    assert_eq!(
        SnapshotRejection::AtOrBelowLogStart {
            log_start_offset: 3
        }
        .to_string(),
        "at or below the log start offset 3"
    );
    let corrupt = SnapshotError::InvalidValue {
        field: "mode",
        value: 9,
    };
    assert_eq!(
        SnapshotRejection::Corrupt(corrupt.clone()).to_string(),
        corrupt.to_string(),
        "a corrupt snapshot is explained by its decoding error"
    );
}

#[test]
fn a_snapshot_records_which_batches_it_kept() {
    let mut state = ProducerStateManager::new(5);
    for seq in 0..3 {
        state.update(
            &BatchHeader {
                base_offset: 0,
                batch_length: 0,
                partition_leader_epoch: -1,
                magic: 2,
                crc: 0,
                attributes: 0,
                last_offset_delta: 0,
                base_timestamp: 0,
                max_timestamp: 10,
                producer_id: ProducerId(1),
                producer_epoch: ProducerEpoch(0),
                base_sequence: Sequence(seq),
                records_count: 1,
            },
            i64::from(seq),
        );
    }
    for (mode, kept) in [
        (SnapshotMode::FullWindow, 3),
        (SnapshotMode::LastBatchOnly, 1),
    ] {
        let decoded = ProducerSnapshot::decode(&ProducerSnapshot::encode_state(&state, 3, mode))
            .expect("a snapshot just encoded");
        assert_eq!(decoded.mode, mode, "the mode is part of the snapshot");
        assert_eq!(decoded.offset, 3);
        assert_eq!(decoded.entries.len(), 1);
        assert_eq!(decoded.entries[0].batches.len(), kept, "{mode:?}");
    }
}

#[test]
fn a_snapshot_at_a_negative_offset_is_corrupt() {
    for offset in [-1, -5, i64::MIN] {
        let bytes = ProducerSnapshot {
            offset,
            mode: SnapshotMode::FullWindow,
            entries: vec![],
        }
        .encode();
        assert_eq!(
            ProducerSnapshot::decode(&bytes),
            Err(SnapshotError::InvalidValue {
                field: "snapshot offset",
                value: offset,
            })
        );
    }
    let at_zero = ProducerSnapshot {
        offset: 0,
        mode: SnapshotMode::LastBatchOnly,
        entries: vec![],
    };
    assert_eq!(
        ProducerSnapshot::decode(&at_zero.encode()),
        Ok(at_zero),
        "offset 0 (an empty log) is a valid snapshot"
    );
}

#[test]
fn a_snapshot_error_says_the_snapshot_is_corrupt_and_what_was_wrong() {
    let cases = [
        (
            SnapshotError::Truncated {
                field: "crc",
                needed: 4,
                remaining: 1,
            },
            "corrupt snapshot: crc needs 4 bytes, 1 left",
        ),
        (
            SnapshotError::UnsupportedVersion(7),
            "corrupt snapshot: version 7, expected 1",
        ),
        (
            SnapshotError::CrcMismatch {
                stored: 0xdead_beef,
                computed: 1,
            },
            "corrupt snapshot: CRC 0xdeadbeef stored, 0x00000001 computed",
        ),
        (
            SnapshotError::InvalidValue {
                field: "mode",
                value: 9,
            },
            "corrupt snapshot: mode = 9",
        ),
        (
            SnapshotError::TrailingBytes(3),
            "corrupt snapshot: 3 bytes after the last entry",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn bytes_after_the_last_snapshot_entry_are_counted_as_trailing() {
    let mut bytes = ProducerSnapshot {
        offset: 4,
        mode: SnapshotMode::FullWindow,
        entries: vec![],
    }
    .encode();
    bytes.extend_from_slice(&[0, 0, 0]);
    // Re-stamp the CRC-32C (bytes 2..6, over bytes 6..) so that only the length is wrong.
    let crc = crc32c::crc32c(&bytes[6..]);
    bytes[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        ProducerSnapshot::decode(&bytes),
        Err(SnapshotError::TrailingBytes(3))
    );
}

#[test]
fn deleting_snapshots_before_an_offset_keeps_the_one_at_it_and_later() {
    let mut disk = SimDisk::new();
    let state = ProducerStateManager::new(5);
    let dir = "partition-0/";
    for offset in [4, 8, 12] {
        write_snapshot(&mut disk, dir, &state, offset, SnapshotMode::FullWindow, 10)
            .expect("SimDisk does not fail");
    }
    assert_eq!(list_snapshots(&disk, dir), vec![4, 8, 12]);
    delete_snapshots_before(&mut disk, dir, 8).expect("SimDisk does not fail");
    assert_eq!(
        list_snapshots(&disk, dir),
        vec![8, 12],
        "Kafka's deleteSnapshotsBefore: strictly below the new log start offset"
    );
    delete_snapshots_before(&mut disk, dir, 13).expect("SimDisk does not fail");
    assert_eq!(list_snapshots(&disk, dir), Vec::<i64>::new());
}

#[test]
fn a_snapshot_count_larger_than_the_bytes_left_is_refused_before_reading_entries() {
    let mut bytes = ProducerSnapshot {
        offset: 4,
        mode: SnapshotMode::FullWindow,
        entries: vec![],
    }
    .encode();
    // The entry count (bytes 15..19) says one entry; none follows.
    bytes[15..19].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[6..]);
    bytes[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        ProducerSnapshot::decode(&bytes),
        Err(SnapshotError::InvalidValue {
            field: "entry count",
            value: 1,
        })
    );
}
