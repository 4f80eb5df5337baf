//! The handle cache of `FileStorage` keeps at most `MAX_OPEN_FILES` files open, however many
//! files the broker writes (thousands of partitions stay under the process's file limit).
//!
//! Alone in its test binary: it counts the process's open file descriptors (`/proc/self/fd`),
//! which another test running at the same time would change.

use idempo_broker::file_storage::MAX_OPEN_FILES;
use idempo_broker::{FileStorage, Storage};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux lists a process's descriptors in /proc/self/fd")
        .count()
}

#[test]
fn writing_many_files_keeps_at_most_max_open_files_handles_open() {
    let dir =
        std::env::temp_dir().join(format!("idempo-tests-file-handles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let before = open_descriptors();
    {
        let mut files = FileStorage::open(&dir).expect("a fresh directory opens");
        for i in 0..2 * MAX_OPEN_FILES {
            let name = format!("partition-{i}/00000000000000000000.log");
            files.append(&name, b"batch").expect("append");
            files.sync(&name).expect("sync");
        }
        let during = open_descriptors();
        // The lock file, plus the cached handles.
        assert!(
            during <= before + 1 + MAX_OPEN_FILES,
            "{during} descriptors open, {before} before: more than {MAX_OPEN_FILES} cached"
        );
        for i in [0, MAX_OPEN_FILES, 2 * MAX_OPEN_FILES - 1] {
            let name = format!("partition-{i}/00000000000000000000.log");
            assert_eq!(&files.read_all(&name).expect("read")[..], b"batch");
        }
    }
    assert_eq!(
        open_descriptors(),
        before,
        "dropping the storage closes every handle"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
