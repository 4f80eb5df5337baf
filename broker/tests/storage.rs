//! Rules of the simulated disk that hold whatever its buffer layout: a read returns exactly the
//! bytes appended at that position, in files far larger than one internal buffer, across
//! buffer boundaries, and after truncation. Written against the survivors of
//! `cargo mutants -p idempo-broker` (see bench/MUTANTS.md); `SimDisk`'s unit tests use small
//! files only.

use idempo_broker::{SimDisk, Storage, StorageError};

/// A deterministic sequence of numbers (a 64-bit LCG), so the test needs no randomness.
struct Numbers(u64);

impl Numbers {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Appends to `file` writes of varied sizes (some larger than a 64 KiB buffer), at least `more`
/// bytes in all, mirroring them into `model` (the file's expected content).
fn fill(disk: &mut SimDisk, file: &str, more: usize, numbers: &mut Numbers, model: &mut Vec<u8>) {
    let total = model.len() + more;
    while model.len() < total {
        let size = match numbers.next_below(10) {
            0 => 70_000 + numbers.next_below(10_000) as usize,
            1 => 1,
            _ => 1 + numbers.next_below(9_000) as usize,
        };
        let data: Vec<u8> = (0..size).map(|i| (model.len() + i) as u8 ^ 0x5a).collect();
        let position = disk.append(file, &data).expect("SimDisk does not fail");
        assert_eq!(position, model.len() as u64, "an append lands at the end");
        model.extend_from_slice(&data);
    }
}

/// Reads many ranges of `file` (single bytes, buffer-sized spans, the whole file) and checks
/// each against `model`.
fn reads_match(disk: &SimDisk, file: &str, model: &[u8], numbers: &mut Numbers) {
    let len = model.len() as u64;
    assert_eq!(disk.file_len(file).expect("exists"), len);
    assert_eq!(
        &disk.read_all(file).expect("exists")[..],
        model,
        "whole file"
    );
    for _ in 0..300 {
        let position = numbers.next_below(len);
        let max = (len - position).min(200_000);
        let n = match numbers.next_below(3) {
            0 => 1,
            _ => 1 + numbers.next_below(max),
        }
        .min(max) as usize;
        let got = disk.read(file, position, n).expect("in range");
        let at = position as usize;
        assert_eq!(&got[..], &model[at..at + n], "{n} bytes at {position}");
    }
}

#[test]
fn reads_return_the_appended_bytes_across_buffer_boundaries() {
    let mut numbers = Numbers(8);
    let mut disk = SimDisk::new();
    let mut model = Vec::new();
    fill(
        &mut disk,
        "partition-0/segment",
        600_000,
        &mut numbers,
        &mut model,
    );
    reads_match(&disk, "partition-0/segment", &model, &mut numbers);
}

#[test]
fn reads_after_a_truncation_return_the_kept_prefix_and_later_appends() {
    let mut numbers = Numbers(21);
    let mut disk = SimDisk::new();
    let file = "partition-0/segment";
    let mut model = Vec::new();
    fill(&mut disk, file, 400_000, &mut numbers, &mut model);
    // `None`: one byte off the end, inside the buffer still growing, behind full ones.
    for cut in [
        None,
        Some(350_000usize),
        Some(200_001),
        Some(65_536),
        Some(70_000),
        Some(3),
    ] {
        let cut = cut.unwrap_or(model.len() - 1).min(model.len());
        disk.truncate(file, cut as u64)
            .expect("SimDisk does not fail");
        model.truncate(cut);
        reads_match(&disk, file, &model, &mut numbers);
        fill(&mut disk, file, 150_000, &mut numbers, &mut model);
        reads_match(&disk, file, &model, &mut numbers);
    }
}

#[test]
fn a_read_past_the_end_names_the_file_the_range_and_its_length() {
    let mut disk = SimDisk::new();
    disk.append("f", &[1, 2, 3]).expect("SimDisk does not fail");
    let error = disk.read("f", 2, 5).expect_err("beyond the end");
    assert_eq!(
        error,
        StorageError::OutOfRange {
            file: "f".into(),
            position: 2,
            len: 5,
            file_len: 3,
        }
    );
    assert_eq!(
        error.to_string(),
        "5 bytes at position 2 are beyond the end of f (3 bytes)"
    );
    assert_eq!(
        disk.read("g", 0, 1).expect_err("no such file").to_string(),
        "file g does not exist"
    );
}

#[test]
fn the_disk_accounts_for_stored_unsynced_bytes_and_crashes() {
    let mut disk = SimDisk::new();
    assert_eq!(
        (disk.size_bytes(), disk.unsynced_bytes(), disk.crashes()),
        (0, 0, 0)
    );
    disk.append("a", &[0; 10]).expect("SimDisk does not fail");
    disk.sync("a").expect("exists");
    disk.append("a", &[0; 4]).expect("SimDisk does not fail");
    disk.append("b", &[0; 7]).expect("SimDisk does not fail");
    assert_eq!(disk.size_bytes(), 21, "durable or not");
    assert_eq!(disk.unsynced_bytes(), 11);
    assert_eq!(
        disk.unsynced(),
        vec![("a".to_string(), 4), ("b".to_string(), 7)],
        "the files a crash would cut, with their unsynced lengths"
    );
    disk.sync("b").expect("exists");
    assert_eq!(
        disk.unsynced(),
        vec![("a".to_string(), 4)],
        "a synced file has nothing to lose"
    );
    disk.crash(|_, _| 0);
    assert_eq!(disk.crashes(), 1);
    assert_eq!((disk.size_bytes(), disk.unsynced_bytes()), (17, 0));
    assert!(disk.unsynced().is_empty());
    disk.crash(|_, _| 0);
    disk.crash(|_, _| 0);
    assert_eq!(disk.crashes(), 3, "every crash is counted");
}

#[test]
fn truncating_to_the_length_is_allowed_and_past_it_is_out_of_range() {
    let mut disk = SimDisk::new();
    disk.append("f", &[1, 2, 3]).expect("SimDisk does not fail");
    disk.truncate("f", 3)
        .expect("truncating to the length changes nothing");
    assert_eq!(disk.file_len("f").expect("exists"), 3);
    assert_eq!(
        disk.truncate("f", 4),
        Err(StorageError::OutOfRange {
            file: "f".into(),
            position: 4,
            len: 0,
            file_len: 3,
        })
    );
    disk.truncate("f", 1).expect("shorter");
    assert_eq!(&disk.read_all("f").expect("exists")[..], &[1]);
}

#[test]
fn corrupting_flips_the_byte_and_refuses_a_position_past_the_end() {
    let mut disk = SimDisk::new();
    disk.append("f", &[0x0f, 0x00])
        .expect("SimDisk does not fail");
    disk.corrupt("f", 1).expect("the last byte");
    assert_eq!(&disk.read_all("f").expect("exists")[..], &[0x0f, 0xff]);
    assert_eq!(
        disk.corrupt("f", 2),
        Err(StorageError::OutOfRange {
            file: "f".into(),
            position: 2,
            len: 1,
            file_len: 2,
        })
    );
}

#[test]
fn the_disk_debug_view_lists_files_with_total_and_synced_lengths() {
    let mut disk = SimDisk::new();
    disk.append("seg", &[0; 5]).expect("SimDisk does not fail");
    disk.sync("seg").expect("exists");
    disk.append("seg", &[0; 2]).expect("SimDisk does not fail");
    assert_eq!(format!("{disk:?}"), r#"{"seg": 7 bytes, 5 synced}"#);
}
