//! Real files: the [`Storage`] of `idempo-broker --data-dir`, next to the simulated disk.
//!
//! # What Kafka does
//!
//! A Kafka broker's `log.dirs` holds one directory per partition with its segments and
//! snapshots, plus a few checkpoint files; a `.lock` file in each log directory stops a second
//! broker process from opening it (`LogManager.lockLogDirs`). Appends are `write`s into the
//! page cache; `fsync` happens when `log.flush.interval.*` says (by default never).
//! Checkpoints are written to a `.tmp` file, `fsync`ed, renamed over the old one, and the
//! directory is `fsync`ed (`Utils.atomicMoveWithFallback`).
//!
//! # What we do
//!
//! [`FileStorage`] maps the broker's file names onto a directory: every `/` in a name is a
//! subdirectory (`partition-0/00000000000000000000.log` is the file `00000000000000000000.log`
//! in the directory `partition-0`). The broker core cannot tell it from [`SimDisk`]: the
//! same segment scan, torn-tail truncation, snapshot choice and replay run on it, because
//! recovery only ever talks to the [`Storage`] trait.
//!
//! | `Storage` call | on the file system |
//! |----------------|--------------------|
//! | `append`       | one `write(2)` (vectored) at the end; on failure the file is cut back |
//! | `sync`         | `fsync` of the file, and of its directory if the file is new |
//! | `write_atomic` | write `.NAME.tmp`, `fsync` it, rename over `NAME`, `fsync` the directory |
//! | `truncate`     | `ftruncate`, then `fsync` (durable at once, as the trait says) |
//! | `remove`       | `unlink`, `fsync` of the directory, empty parent directories removed |
//! | `list`, `file_len` | an in-memory index of names and lengths, built by one walk at open |
//!
//! What survives what:
//!
//! ```text
//! kill -9 of the broker     everything written (the page cache belongs to the kernel)
//! power loss / kernel crash what was fsynced: --sync every-append loses nothing acknowledged,
//!                           interval:MS at most MS of appends, never everything since start-up
//!                           (torn tails are truncated by recovery)
//! ```
//!
//! Nothing is buffered in user space, so a `kill -9` loses nothing that an `append` returned
//! for. Open handles are cached (at most [`MAX_OPEN_FILES`]); reads use positional reads on a
//! cached handle or a fresh one.
//!
//! The directory is locked at open with an advisory lock on `.lock` (holding the pid of the
//! owner), as Kafka locks `log.dirs`: a second broker on the same directory is refused with
//! [`FileStorageError::Locked`]. The lock ends with the process, so a `kill -9` never leaves a
//! stale one. Names whose parts start with `.` are the storage's own (the lock, temporary
//! files) and refused as broker file names; leftover temporary files of a crash are deleted
//! at open.
//!
//! # Differences from Kafka
//!
//! * One directory (Kafka's `log.dirs` may list several).
//! * No memory-mapped index files; the broker's index is rebuilt by scanning at every open.
//! * Files are created durably on their first `sync` (their directory is `fsync`ed then), not
//!   at creation: a power loss before it may lose the new, empty or unsynced, file, which is
//!   what `SimDisk` would lose of it too.

use crate::storage::{SimDisk, Storage, StorageError, names_with_prefix};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the lock file at the root of the directory.
pub const LOCK_FILE: &str = ".lock";

/// Suffix of the temporary file of an atomic write (`.NAME.tmp`, next to `NAME`).
const TEMP_SUFFIX: &str = ".tmp";

/// Most file handles kept open at once; past it every cached handle is closed (they reopen
/// on demand), so thousands of partitions stay under the process's file limit.
pub const MAX_OPEN_FILES: usize = 256;

/// Why a directory could not be opened as storage.
#[derive(Debug)]
pub enum FileStorageError {
    /// Another process holds the directory's lock (a second broker on the same `--data-dir`).
    Locked {
        /// The directory.
        dir: PathBuf,
        /// What the lock file says about its holder (`pid 1234`), if readable.
        holder: Option<String>,
    },
    /// The directory could not be created, locked or read.
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error.
        error: io::Error,
    },
}

impl fmt::Display for FileStorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileStorageError::Locked { dir, holder } => {
                write!(f, "{} is in use by another broker process", dir.display())?;
                if let Some(holder) = holder {
                    write!(f, " ({holder})")?;
                }
                write!(f, "; stop it first, or use another --data-dir")
            }
            FileStorageError::Io {
                path,
                operation,
                error,
            } => write!(f, "cannot {operation} {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for FileStorageError {}

/// What the storage knows of one file without asking the file system.
#[derive(Debug, Default)]
struct FileEntry {
    /// Content length, as written (durable or not).
    len: u64,
    /// A handle opened for reading and appending, when cached.
    handle: Option<File>,
    /// Bytes written since the last `fsync`.
    unsynced: bool,
    /// Created since its directory was last `fsync`ed.
    new_in_dir: bool,
}

/// A [`Storage`] on a real directory (module docs): files by name, `/` as subdirectories,
/// `fsync` for [`Storage::sync`], write-temp-and-rename for [`Storage::write_atomic`], locked
/// against a second process.
///
/// # Examples
///
/// ```
/// use idempo_broker::{FileStorage, Storage};
///
/// let dir = std::env::temp_dir().join(format!("idempo-doc-{}", std::process::id()));
/// {
///     let mut files = FileStorage::open(&dir).unwrap();
///     files.append("partition-0/a.log", b"hello").unwrap();
///     files.sync("partition-0/a.log").unwrap();
///     // A second storage on the same directory is refused while this one is open.
///     assert!(FileStorage::open(&dir).is_err());
/// }
/// let files = FileStorage::open(&dir).unwrap();
/// assert_eq!(&files.read_all("partition-0/a.log").unwrap()[..], b"hello");
/// assert_eq!(files.list("partition-"), vec!["partition-0/a.log".to_string()]);
/// # drop(files);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct FileStorage {
    root: PathBuf,
    files: BTreeMap<String, FileEntry>,
    open_handles: usize,
    /// Held for the storage's lifetime: the advisory lock on [`LOCK_FILE`].
    _lock: File,
}

impl FileStorage {
    /// Opens (creating it if needed) `dir` as storage: takes its lock, deletes temporary files
    /// left by a crash, and indexes every file. The broker's recovery then reads what it needs
    /// through the [`Storage`] trait ([`crate::Broker::open`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStorage, FileStorageError> {
        let root = dir.as_ref().to_path_buf();
        let io = |path: &Path, operation| {
            let path = path.to_path_buf();
            move |error| FileStorageError::Io {
                path,
                operation,
                error,
            }
        };
        fs::create_dir_all(&root).map_err(io(&root, "create directory"))?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path, "open lock file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let holder = lock
                    .read_to_string(&mut holder)
                    .ok()
                    .map(|_| holder.trim().to_string())
                    .filter(|h| !h.is_empty());
                return Err(FileStorageError::Locked { dir: root, holder });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path, "lock")(e)),
        }
        let pid = format!("pid {}\n", std::process::id());
        lock.set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| lock.write_all(pid.as_bytes()))
            .map_err(io(&lock_path, "write lock file"))?;
        let mut files = BTreeMap::new();
        index_dir(&root, "", &mut files)?;
        Ok(FileStorage {
            root,
            files,
            open_handles: 0,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `file` lives on the file system (after checking the name).
    pub fn path_of(&self, file: &str) -> Result<PathBuf, StorageError> {
        check_name(file)?;
        Ok(self.root.join(file))
    }

    fn entry(&self, file: &str) -> Result<&FileEntry, StorageError> {
        self.files.get(file).ok_or_else(|| not_found(file))
    }

    /// The cached handle of an existing `file`, opened if needed.
    fn handle(&mut self, file: &str) -> Result<&File, StorageError> {
        let path = self.path_of(file)?;
        let cached = self.entry(file)?.handle.is_some();
        if !cached {
            if self.open_handles >= MAX_OPEN_FILES {
                for entry in self.files.values_mut() {
                    entry.handle = None;
                }
                self.open_handles = 0;
            }
            let handle = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_error(file, "open"))?;
            self.open_handles += 1;
            self.files
                .get_mut(file)
                .expect("the entry was looked up above")
                .handle = Some(handle);
        }
        Ok(self.files[file]
            .handle
            .as_ref()
            .expect("the handle was cached above"))
    }

    /// Creates `file` (and its directories) if it is not in the index yet.
    fn create_if_missing(&mut self, file: &str) -> Result<(), StorageError> {
        if self.files.contains_key(file) {
            return Ok(());
        }
        let path = self.path_of(file)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error(file, "create directory"))?;
        }
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(file, "create"))?;
        self.files.insert(
            file.to_string(),
            FileEntry {
                new_in_dir: true,
                ..FileEntry::default()
            },
        );
        Ok(())
    }

    fn sync_dir_of(&self, file: &str) -> Result<(), StorageError> {
        let path = self.path_of(file)?;
        let dir = path.parent().unwrap_or(&self.root);
        sync_dir(dir).map_err(io_error(file, "fsync the directory of"))
    }

    /// Removes the empty directories between `file` and the root (best effort: a directory
    /// that is not empty stays).
    fn remove_empty_parents(&self, file: &str) {
        let mut dir = self.root.join(file);
        while dir.pop() && dir != self.root && dir.starts_with(&self.root) {
            if fs::remove_dir(&dir).is_err() {
                break;
            }
        }
    }
}

impl Storage for FileStorage {
    fn append_vectored(&mut self, file: &str, parts: &[&[u8]]) -> Result<u64, StorageError> {
        self.create_if_missing(file)?;
        let position = self.entry(file)?.len;
        let n: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let handle = self.handle(file)?;
        if let Err(e) = write_all_vectored(handle, parts) {
            // Cut a partial write back, so that the next append does not land after garbage
            // in the middle of the log (best effort: the failure is reported either way).
            let _ = handle.set_len(position);
            return Err(io_error(file, "append to")(e));
        }
        let entry = self.files.get_mut(file).expect("created above");
        entry.len = position + n;
        entry.unsynced = true;
        Ok(position)
    }

    fn sync(&mut self, file: &str) -> Result<(), StorageError> {
        let entry = self.entry(file)?;
        let (unsynced, new_in_dir) = (entry.unsynced, entry.new_in_dir);
        if unsynced {
            self.handle(file)?
                .sync_data()
                .map_err(io_error(file, "fsync"))?;
        }
        if new_in_dir {
            self.sync_dir_of(file)?;
        }
        let entry = self.files.get_mut(file).expect("looked up above");
        entry.unsynced = false;
        entry.new_in_dir = false;
        Ok(())
    }

    fn read(&self, file: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        let entry = self.entry(file)?;
        let in_range = position
            .checked_add(len as u64)
            .is_some_and(|end| end <= entry.len);
        if !in_range {
            return Err(StorageError::OutOfRange {
                file: file.to_string(),
                position,
                len: len as u64,
                file_len: entry.len,
            });
        }
        let mut buf = vec![0; len];
        if len > 0 {
            let opened;
            let handle = match &entry.handle {
                Some(handle) => handle,
                None => {
                    opened = File::open(self.path_of(file)?).map_err(io_error(file, "open"))?;
                    &opened
                }
            };
            handle
                .read_exact_at(&mut buf, position)
                .map_err(io_error(file, "read"))?;
        }
        Ok(Bytes::from(buf))
    }

    fn file_len(&self, file: &str) -> Result<u64, StorageError> {
        Ok(self.entry(file)?.len)
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        names_with_prefix(&self.files, prefix)
    }

    fn remove(&mut self, file: &str) -> Result<(), StorageError> {
        let path = self.path_of(file)?;
        let entry = self.files.remove(file).ok_or_else(|| not_found(file))?;
        if entry.handle.is_some() {
            self.open_handles -= 1;
        }
        drop(entry);
        fs::remove_file(&path).map_err(io_error(file, "remove"))?;
        self.sync_dir_of(file)?;
        self.remove_empty_parents(file);
        Ok(())
    }

    fn truncate(&mut self, file: &str, len: u64) -> Result<(), StorageError> {
        let file_len = self.entry(file)?.len;
        if len > file_len {
            return Err(StorageError::OutOfRange {
                file: file.to_string(),
                position: len,
                len: 0,
                file_len,
            });
        }
        let handle = self.handle(file)?;
        handle
            .set_len(len)
            .and_then(|()| handle.sync_all())
            .map_err(io_error(file, "truncate"))?;
        let entry = self.files.get_mut(file).expect("looked up above");
        entry.len = len;
        entry.unsynced = false;
        Ok(())
    }

    fn write_atomic(&mut self, file: &str, data: &[u8]) -> Result<(), StorageError> {
        let path = self.path_of(file)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or(StorageError::InvalidName {
                file: file.to_string(),
                why: "no file name",
            })?;
        let temp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
        fs::create_dir_all(&dir).map_err(io_error(file, "create directory"))?;
        let written = File::create(&temp)
            .and_then(|mut t| t.write_all(data).and_then(|()| t.sync_all()))
            .and_then(|()| fs::rename(&temp, &path))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(file, "write")(e));
        }
        // A cached handle points at the replaced file: drop it.
        let old = self.files.insert(
            file.to_string(),
            FileEntry {
                len: data.len() as u64,
                ..FileEntry::default()
            },
        );
        if old.is_some_and(|e| e.handle.is_some()) {
            self.open_handles -= 1;
        }
        Ok(())
    }
}

/// Walks `dir` (the name prefix `prefix`), adding every file to `files`; deletes temporary
/// files of interrupted atomic writes and skips the storage's own dot files.
fn index_dir(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, FileEntry>,
) -> Result<(), FileStorageError> {
    let io = |operation| {
        let path = dir.to_path_buf();
        move |error| FileStorageError::Io {
            path,
            operation,
            error,
        }
    };
    for item in fs::read_dir(dir).map_err(io("read directory"))? {
        let item = item.map_err(io("read directory"))?;
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue; // not a name the broker wrote
        };
        let kind = item.file_type().map_err(io("read directory"))?;
        if name.starts_with('.') {
            if kind.is_file() && name.ends_with(TEMP_SUFFIX) {
                fs::remove_file(item.path()).map_err(io("remove a leftover temporary file in"))?;
            }
            continue;
        }
        let full = format!("{prefix}{name}");
        if kind.is_dir() {
            index_dir(&item.path(), &format!("{full}/"), files)?;
        } else if kind.is_file() {
            let len = item.metadata().map_err(io("read directory"))?.len();
            files.insert(
                full,
                FileEntry {
                    len,
                    ..FileEntry::default()
                },
            );
        }
    }
    Ok(())
}

/// Refuses names that could escape the directory or collide with the storage's own files.
fn check_name(file: &str) -> Result<(), StorageError> {
    let invalid = |why| {
        Err(StorageError::InvalidName {
            file: file.to_string(),
            why,
        })
    };
    if file.is_empty() || file.starts_with('/') {
        return invalid("empty or absolute");
    }
    if file.contains('\0') || file.contains('\\') {
        return invalid("contains NUL or a backslash");
    }
    for part in file.split('/') {
        if part.is_empty() {
            return invalid("an empty path component");
        }
        if part.starts_with('.') {
            return invalid("a path component starting with '.'");
        }
    }
    Ok(())
}

fn not_found(file: &str) -> StorageError {
    StorageError::NotFound {
        file: file.to_string(),
    }
}

fn io_error(file: &str, operation: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let file = file.to_string();
    move |e| StorageError::Io {
        file,
        operation,
        kind: e.kind(),
        message: e.to_string(),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `write_all` for several buffers, as few `writev` calls as the kernel allows.
fn write_all_vectored(mut file: &File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The storage of a broker process: the simulated disk (data in memory only, the default of
/// `idempo-broker`) or real files (`--data-dir`). One type, so the front end holds one
/// `Broker<NodeStorage>` either way.
#[derive(Debug)]
pub enum NodeStorage {
    /// In memory only: everything is lost when the process ends.
    Memory(SimDisk),
    /// Files under a directory, surviving restarts.
    Files(FileStorage),
}

impl NodeStorage {
    /// True for real files.
    pub fn is_durable(&self) -> bool {
        matches!(self, NodeStorage::Files(_))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            NodeStorage::Memory($s) => $call,
            NodeStorage::Files($s) => $call,
        }
    };
}

impl Storage for NodeStorage {
    fn append_vectored(&mut self, file: &str, parts: &[&[u8]]) -> Result<u64, StorageError> {
        delegate!(self, s => s.append_vectored(file, parts))
    }

    fn sync(&mut self, file: &str) -> Result<(), StorageError> {
        delegate!(self, s => s.sync(file))
    }

    fn read(&self, file: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        delegate!(self, s => s.read(file, position, len))
    }

    fn file_len(&self, file: &str) -> Result<u64, StorageError> {
        delegate!(self, s => s.file_len(file))
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        delegate!(self, s => s.list(prefix))
    }

    fn remove(&mut self, file: &str) -> Result<(), StorageError> {
        delegate!(self, s => s.remove(file))
    }

    fn truncate(&mut self, file: &str, len: u64) -> Result<(), StorageError> {
        delegate!(self, s => s.truncate(file, len))
    }

    fn write_atomic(&mut self, file: &str, data: &[u8]) -> Result<(), StorageError> {
        delegate!(self, s => s.write_atomic(file, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Broker, BrokerConfig};
    use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "idempo-file-storage-{name}-{}-{n}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn appends_reads_and_lists_survive_reopening() {
        let dir = TempDir::new("reopen");
        {
            let mut s = FileStorage::open(&dir.0).unwrap();
            assert_eq!(s.append("partition-0/a.log", b"abc").unwrap(), 0);
            assert_eq!(
                s.append_vectored("partition-0/a.log", &[b"de", b"f"])
                    .unwrap(),
                3
            );
            s.append("partition-1/b.log", b"x").unwrap();
            s.append("topics/t", b"y").unwrap();
            s.sync("partition-0/a.log").unwrap();
            assert_eq!(&s.read("partition-0/a.log", 2, 3).unwrap()[..], b"cde");
        }
        let s = FileStorage::open(&dir.0).unwrap();
        assert_eq!(&s.read_all("partition-0/a.log").unwrap()[..], b"abcdef");
        assert_eq!(
            s.list("partition-"),
            vec!["partition-0/a.log".to_string(), "partition-1/b.log".into()]
        );
        assert_eq!(s.list("topics/"), vec!["topics/t".to_string()]);
        assert!(s.list("").iter().all(|f| !f.contains(LOCK_FILE)));
        assert!(matches!(
            s.read("partition-0/a.log", 4, 3),
            Err(StorageError::OutOfRange { file_len: 6, .. })
        ));
        assert!(matches!(
            s.read_all("nope"),
            Err(StorageError::NotFound { .. })
        ));
    }

    #[test]
    fn a_second_storage_on_a_locked_directory_is_refused() {
        let dir = TempDir::new("lock");
        let first = FileStorage::open(&dir.0).unwrap();
        let second = FileStorage::open(&dir.0).expect_err("the directory is locked");
        let text = second.to_string();
        assert!(matches!(second, FileStorageError::Locked { .. }), "{text}");
        assert!(
            text.contains("in use by another broker process")
                && text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        FileStorage::open(&dir.0).expect("the lock ends with its holder");
    }

    #[test]
    fn write_atomic_replaces_whole_and_leftover_temp_files_are_deleted() {
        let dir = TempDir::new("atomic");
        {
            let mut s = FileStorage::open(&dir.0).unwrap();
            s.write_atomic("groups/g", b"old").unwrap();
            s.append("groups/g", b"+").unwrap();
            s.write_atomic("groups/g", b"new").unwrap();
            s.sync("groups/g").unwrap();
            assert_eq!(&s.read_all("groups/g").unwrap()[..], b"new");
        }
        // A crash between writing the temporary file and the rename leaves it behind.
        fs::write(dir.0.join("groups/.g.tmp"), b"half").unwrap();
        let s = FileStorage::open(&dir.0).unwrap();
        assert_eq!(&s.read_all("groups/g").unwrap()[..], b"new");
        assert!(!dir.0.join("groups/.g.tmp").exists());
        assert_eq!(s.list("groups/"), vec!["groups/g".to_string()]);
    }

    #[test]
    fn truncate_and_remove_change_the_files_and_remove_empty_directories() {
        let dir = TempDir::new("truncate");
        let mut s = FileStorage::open(&dir.0).unwrap();
        s.append("partition-3/s.log", b"hello").unwrap();
        s.truncate("partition-3/s.log", 2).unwrap();
        assert!(s.truncate("partition-3/s.log", 3).is_err());
        s.append("partition-3/s.log", b"y").unwrap();
        assert_eq!(&s.read_all("partition-3/s.log").unwrap()[..], b"hey");
        assert_eq!(fs::read(dir.0.join("partition-3/s.log")).unwrap(), b"hey");
        s.remove("partition-3/s.log").unwrap();
        assert!(s.remove("partition-3/s.log").is_err());
        assert!(!dir.0.join("partition-3").exists(), "empty directory left");
        assert!(s.list("partition-").is_empty());
    }

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        let dir = TempDir::new("names");
        let mut s = FileStorage::open(&dir.0).unwrap();
        for name in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            ".lock",
            "a/.b.tmp",
        ] {
            assert!(
                matches!(s.append(name, b"x"), Err(StorageError::InvalidName { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn more_files_than_the_handle_cache_holds_stay_readable() {
        let dir = TempDir::new("handles");
        let mut s = FileStorage::open(&dir.0).unwrap();
        let n = MAX_OPEN_FILES + 10;
        for i in 0..n {
            s.append(&format!("f/{i}"), i.to_string().as_bytes())
                .unwrap();
        }
        for i in 0..n {
            s.append(&format!("f/{i}"), b"!").unwrap();
            s.sync(&format!("f/{i}")).unwrap();
        }
        assert!(s.open_handles <= MAX_OPEN_FILES);
        for i in [0, n / 2, n - 1] {
            assert_eq!(
                &s.read_all(&format!("f/{i}")).unwrap()[..],
                format!("{i}!").as_bytes()
            );
        }
    }

    fn batch(producer_id: ProducerId, sequence: i32, value: &str) -> Bytes {
        RecordBatch::idempotent(
            producer_id,
            ProducerEpoch(0),
            Sequence(sequence),
            1_000,
            vec![Record::with_value(0, value.to_string())],
        )
        .to_bytes()
    }

    /// The issue's torn-tail test: a crash between `write` and `fsync` leaves part of the last
    /// batch in the segment file. Reopening the broker on the files runs the simulator's
    /// recovery (segment scan, truncation, snapshot, replay), which cuts the torn tail and
    /// keeps every complete batch and the producer's dedup window.
    #[test]
    fn recovery_on_files_truncates_a_torn_tail_and_keeps_complete_batches_and_windows() {
        let dir = TempDir::new("torn");
        let config = BrokerConfig::default();
        let (producer_id, segment, valid_len) = {
            let files = FileStorage::open(&dir.0).unwrap();
            let (mut broker, _) = Broker::open(config.clone(), files).unwrap();
            broker.create_partition(0).unwrap();
            let producer_id = broker.init_producer_id().producer_id;
            for sequence in 0..4 {
                let value = format!("v{sequence}");
                let appended = broker.produce(0, &batch(producer_id, sequence, &value));
                assert!(appended.is_appended(), "{appended}");
            }
            let segment = broker.storage().list("partition-0/")[0].clone();
            assert!(segment.ends_with(".log"), "{segment}");
            let len = broker.storage().file_len(&segment).unwrap();
            (producer_id, segment, len)
            // Dropped without shutdown: no snapshot, as after a kill -9.
        };
        // The torn write: the first 40 bytes of the next batch reached the file, not the rest.
        let torn = batch(producer_id, 4, "torn");
        let path = dir.0.join(&segment);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..40]).unwrap();
        drop(f);
        assert_eq!(fs::metadata(&path).unwrap().len(), valid_len + 40);

        let files = FileStorage::open(&dir.0).unwrap();
        let (mut broker, report) = Broker::open(config, files).unwrap();
        let recovered = &report.partitions[0].recovery;
        assert_eq!(recovered.log.truncated_bytes, 40, "{report:?}");
        assert_eq!(recovered.log_end_offset, 4, "every complete batch kept");
        assert_eq!(fs::metadata(&path).unwrap().len(), valid_len, "cut on disk");
        // The window survived: a retry of the last batch is a duplicate at its offset, the
        // torn batch's sequence is the next one accepted.
        let retry = broker.produce(0, &batch(producer_id, 3, "v3"));
        assert!(retry.is_duplicate(), "{retry}");
        assert_eq!(retry.response.base_offset, 3);
        let next = broker.produce(0, &batch(producer_id, 4, "torn"));
        assert!(next.is_appended(), "{next}");
        assert_eq!(next.response.base_offset, 4);
        assert!(
            broker.init_producer_id().producer_id > producer_id,
            "the producer-id block survived: ids never repeat"
        );
    }
}
