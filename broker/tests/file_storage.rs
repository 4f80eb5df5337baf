//! Rules of the real-file storage seen through the `Storage` trait: it answers every call as
//! the simulated disk does (the broker core cannot tell them apart), `NodeStorage` passes each
//! call to the storage it holds, and names a real file system could misread are refused.
//! Written against the survivors of `cargo mutants -p idempo-broker -f
//! broker/src/file_storage.rs` (bench/MUTANTS.md); `FileStorage`'s unit tests cover reopening,
//! locking and recovery.

use idempo_broker::{FileStorage, NodeStorage, SimDisk, Storage, StorageError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "idempo-tests-file-storage-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The answer of one storage call, comparable across storages (errors by kind and fields).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Position(u64),
    Done,
    Bytes(Vec<u8>),
    Len(u64),
    Names(Vec<String>),
    NotFound(String),
    OutOfRange {
        position: u64,
        len: u64,
        file_len: u64,
    },
    Other(String),
}

fn answer<T>(result: Result<T, StorageError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(value) => ok(value),
        Err(StorageError::NotFound { file }) => Answer::NotFound(file),
        Err(StorageError::OutOfRange {
            position,
            len,
            file_len,
            ..
        }) => Answer::OutOfRange {
            position,
            len,
            file_len,
        },
        Err(other) => Answer::Other(other.to_string()),
    }
}

/// Every `Storage` call, on existing and missing files, at and past the ends: the answers in
/// order.
fn script(s: &mut impl Storage) -> Vec<Answer> {
    let a = "partition-0/00000000000000000000.log";
    let b = "partition-0/00000000000000000000.snapshot";
    let c = "topics";
    vec![
        answer(s.append(a, b"hello"), Answer::Position),
        answer(s.append_vectored(a, &[b" ", b"world"]), Answer::Position),
        answer(s.append(c, b"t"), Answer::Position),
        answer(s.sync(a), |()| Answer::Done),
        answer(s.read(a, 4, 3), |b| Answer::Bytes(b.to_vec())),
        answer(s.read(a, 11, 0), |b| Answer::Bytes(b.to_vec())),
        answer(s.read(a, 9, 3), |b| Answer::Bytes(b.to_vec())),
        answer(s.read(a, u64::MAX, 2), |b| Answer::Bytes(b.to_vec())),
        answer(s.file_len(a), Answer::Len),
        answer(s.file_len(c), Answer::Len),
        answer(s.write_atomic(b, b"snap"), |()| Answer::Done),
        answer(s.sync(b), |()| Answer::Done),
        answer(s.read_all(b), |b| Answer::Bytes(b.to_vec())),
        answer(s.write_atomic(b, b"snapshot 2"), |()| Answer::Done),
        answer(s.file_len(b), Answer::Len),
        Answer::Names(s.list("partition-0/")),
        Answer::Names(s.list("")),
        Answer::Names(s.list("nothing")),
        // Truncating to the file's own length is allowed and changes nothing; past it, not.
        answer(s.truncate(a, 11), |()| Answer::Done),
        answer(s.truncate(a, 12), |()| Answer::Done),
        answer(s.truncate(a, 5), |()| Answer::Done),
        answer(s.read_all(a), |b| Answer::Bytes(b.to_vec())),
        answer(s.append(a, b"!"), Answer::Position),
        answer(s.read_all(a), |b| Answer::Bytes(b.to_vec())),
        answer(s.remove(b), |()| Answer::Done),
        answer(s.remove(b), |()| Answer::Done),
        // Calls on a file that does not exist are NOT_FOUND, never a silent success.
        answer(s.sync("missing"), |()| Answer::Done),
        answer(s.truncate("missing", 0), |()| Answer::Done),
        answer(s.file_len("missing"), Answer::Len),
        answer(s.read("missing", 0, 0), |b| Answer::Bytes(b.to_vec())),
        Answer::Names(s.list("")),
    ]
}

/// What the script must answer, whatever the storage.
fn expected() -> Vec<Answer> {
    let a = "partition-0/00000000000000000000.log".to_string();
    let b = "partition-0/00000000000000000000.snapshot".to_string();
    let missing = Answer::NotFound("missing".into());
    vec![
        Answer::Position(0),
        Answer::Position(5),
        Answer::Position(0),
        Answer::Done,
        Answer::Bytes(b"o w".to_vec()),
        Answer::Bytes(Vec::new()),
        Answer::OutOfRange {
            position: 9,
            len: 3,
            file_len: 11,
        },
        Answer::OutOfRange {
            position: u64::MAX,
            len: 2,
            file_len: 11,
        },
        Answer::Len(11),
        Answer::Len(1),
        Answer::Done,
        Answer::Done,
        Answer::Bytes(b"snap".to_vec()),
        Answer::Done,
        Answer::Len(10),
        Answer::Names(vec![a.clone(), b.clone()]),
        Answer::Names(vec![a.clone(), b.clone(), "topics".into()]),
        Answer::Names(Vec::new()),
        Answer::Done,
        Answer::OutOfRange {
            position: 12,
            len: 0,
            file_len: 11,
        },
        Answer::Done,
        Answer::Bytes(b"hello".to_vec()),
        Answer::Position(5),
        Answer::Bytes(b"hello!".to_vec()),
        Answer::Done,
        Answer::NotFound(b),
        missing.clone(),
        missing.clone(),
        missing.clone(),
        missing,
        Answer::Names(vec![a, "topics".into()]),
    ]
}

#[test]
fn file_storage_answers_every_storage_call_as_the_simulated_disk_does() {
    assert_eq!(script(&mut SimDisk::new()), expected(), "SimDisk");
    let dir = TempDir::new("contract");
    let mut files = FileStorage::open(&dir.0).expect("a fresh directory opens");
    assert_eq!(files.root(), dir.0.as_path());
    assert_eq!(script(&mut files), expected(), "FileStorage");
}

#[test]
fn node_storage_passes_every_call_to_the_storage_it_holds() {
    let mut memory = NodeStorage::Memory(SimDisk::new());
    assert!(!memory.is_durable(), "the simulated disk loses everything");
    assert_eq!(script(&mut memory), expected(), "NodeStorage::Memory");
    let dir = TempDir::new("node");
    let mut files = NodeStorage::Files(FileStorage::open(&dir.0).expect("opens"));
    assert!(files.is_durable(), "real files survive the process");
    assert_eq!(script(&mut files), expected(), "NodeStorage::Files");
    drop(files);
    // What NodeStorage::Files did went to the directory.
    let reopened = FileStorage::open(&dir.0).expect("the lock ended with its holder");
    assert_eq!(
        &reopened
            .read_all("partition-0/00000000000000000000.log")
            .expect("written through NodeStorage")[..],
        b"hello!"
    );
}

#[test]
fn names_with_a_nul_or_a_backslash_are_refused() {
    let dir = TempDir::new("names");
    let mut files = FileStorage::open(&dir.0).expect("opens");
    for name in ["a\0b", "partition-0\\x.log", "\\", "\0"] {
        assert!(
            matches!(
                files.append(name, b"x"),
                Err(StorageError::InvalidName { .. })
            ),
            "{name:?} was accepted"
        );
    }
    assert!(files.list("").is_empty(), "a refused name creates no file");
}

#[test]
fn an_empty_or_absolute_name_is_refused_as_such() {
    let dir = TempDir::new("absolute");
    let mut files = FileStorage::open(&dir.0).expect("opens");
    for name in ["", "/etc/passwd", "/"] {
        match files.append(name, b"x") {
            Err(StorageError::InvalidName { why, .. }) => {
                assert_eq!(why, "empty or absolute", "{name:?}")
            }
            other => panic!("{name:?} answered {other:?}"),
        }
    }
}

#[test]
fn the_first_sync_of_a_new_file_syncs_its_directory_and_reports_when_it_cannot() {
    let dir = TempDir::new("dirsync");
    let mut files = FileStorage::open(&dir.0).expect("opens");
    let (old, new) = ("partition-0/a.log", "partition-0/b.log");
    files.append(old, b"x").expect("append");
    files
        .sync(old)
        .expect("the first sync of a.log, with its directory");
    files.append(old, b"y").expect("append");
    files.append(new, b"z").expect("append");
    // The directory disappears behind the storage's back (the cached handles stay usable).
    std::fs::remove_file(dir.0.join(old)).expect("unlink");
    std::fs::remove_file(dir.0.join(new)).expect("unlink");
    std::fs::remove_dir(dir.0.join("partition-0")).expect("rmdir");
    // a.log's directory entry was made durable already: only its data is synced.
    files.sync(old).expect("a later sync needs only the file");
    // b.log is new in its directory: the directory must be synced, and it is gone.
    match files.sync(new) {
        Err(StorageError::Io { operation, .. }) => {
            assert_eq!(operation, "fsync the directory of")
        }
        other => panic!("the sync of a new file whose directory is gone answered {other:?}"),
    }
}
