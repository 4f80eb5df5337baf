//! Where the broker's bytes live: a file interface, and a simulated disk that loses what was
//! never synced.
//!
//! # What Kafka does
//!
//! A Kafka broker writes each partition into a directory of files: log segments
//! (`00000000000000000000.log`, named by their first offset), their indexes, producer-state
//! snapshots (`<offset>.snapshot`) and a few checkpoint files. Appends go to the operating
//! system's page cache; `log.flush.interval.messages` and `log.flush.interval.ms` decide when
//! the broker calls `fsync` (by default never: Kafka counts on replication, not on the disk).
//! Whatever sits in the page cache when the power goes is lost, and the last page written may
//! reach the platter only in part. Checkpoint and snapshot files are written whole, to a
//! temporary file that is then renamed over the old one, so a reader sees the old version or
//! the new one, never a mixture.
//!
//! # What we do
//!
//! The broker core does no I/O. It writes through the [`Storage`] trait: files by name, with
//! append, sync, read, list, remove, truncate and an atomic whole-file write. [`SimDisk`] is
//! the implementation the tests and the simulator use: every file is held in memory as a
//! *durable* prefix and an *unsynced* tail.
//!
//! ```text
//! file partition-0/00000000000000000000.log
//!   |<-------- durable (synced) -------->|<---- unsynced tail ---->|
//!   |  batch 0  |  batch 1  |  batch 2   |  batch 3  |  batch 4    |
//!                                        ^ a crash cuts here, or (torn) a few bytes later
//! ```
//!
//! * [`Storage::sync`] makes a file's whole content durable (`fsync`).
//! * [`SimDisk::crash`] is a power loss: every unsynced byte is dropped, except that the caller
//!   may keep a prefix of each file's unsynced tail, chosen per file by a closure. Keeping part
//!   of the last write models a torn page; keeping whole writes models pages the kernel had
//!   already written back. The closure is called for the files with an unsynced tail in
//!   ascending name order, so a seeded simulator draws the same tears on every replay.
//! * [`Storage::write_atomic`] replaces a file's content as a whole (write a temporary file,
//!   rename it over the old one). The rename is **durable only after [`Storage::sync`]** of
//!   that file: a crash before it brings back the previous durable version, or no file at all.
//!   A crash never leaves a mixture, and tears never apply to it.
//! * Creating a file (by its first append), [`Storage::remove`] and [`Storage::truncate`] are
//!   durable at once, as on a journaling file system that commits metadata eagerly. This keeps
//!   the model small: the interesting losses are of data, not of directory entries.
//!
//! `SimDisk` keeps one copy of the data. Appends are copied into large shared buffers and
//! handed back, as [`Bytes`] slices of those buffers, by [`Storage::read`], so reading a
//! batch back costs a reference count, not a copy.
//!
//! # Differences from Kafka
//!
//! * [`FileStorage`](crate::FileStorage) is the file-backed implementation (`idempo-broker
//!   --data-dir`): `sync` is `fsync`, `write_atomic` is write-temp, `fsync`, rename, `fsync`
//!   of the directory.
//! * Metadata operations are durable at once (see above); on a real file system a crash may
//!   undo a file creation or a deletion that was not followed by a directory `fsync`.
//! * No offset or time index files: the broker keeps its index of batches in memory and
//!   rebuilds it by scanning the segments on recovery (Kafka rebuilds its indexes the same way
//!   after an unclean shutdown).

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

/// Why a storage operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The file does not exist.
    NotFound {
        /// The file asked for.
        file: String,
    },
    /// A read or truncate past the end of the file.
    OutOfRange {
        /// The file.
        file: String,
        /// Where the operation started.
        position: u64,
        /// How many bytes it wanted.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A name a real file system cannot hold safely (empty, absolute, a `.` or `..` part, a
    /// part starting with `.`, which [`FileStorage`](crate::FileStorage) keeps for itself).
    InvalidName {
        /// The name.
        file: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The operating system refused an operation ([`FileStorage`](crate::FileStorage)).
    Io {
        /// The file.
        file: String,
        /// What was being done (`"append"`, `"fsync"`, ...).
        operation: &'static str,
        /// The kind of error.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound { file } => write!(f, "file {file} does not exist"),
            StorageError::OutOfRange {
                file,
                position,
                len,
                file_len,
            } => write!(
                f,
                "{len} bytes at position {position} are beyond the end of {file} ({file_len} bytes)"
            ),
            StorageError::InvalidName { file, why } => {
                write!(f, "{file:?} is not a valid file name: {why}")
            }
            StorageError::Io {
                file,
                operation,
                message,
                ..
            } => write!(f, "{operation} of {file} failed: {message}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// The names in `files` that start with `prefix`, in ascending order: [`Storage::list`] of
/// every storage that keeps its file table in a `BTreeMap`.
pub(crate) fn names_with_prefix<V>(files: &BTreeMap<String, V>, prefix: &str) -> Vec<String> {
    names_from(
        files.range::<str, _>(from(prefix)).map(|(name, _)| name),
        prefix,
    )
}

/// The range of names at or after `prefix`.
fn from(prefix: &str) -> (Bound<&str>, Bound<&str>) {
    (Bound::Included(prefix), Bound::Unbounded)
}

/// The names, ascending from `prefix`, that start with it.
fn names_from<'a>(names: impl Iterator<Item = &'a String>, prefix: &str) -> Vec<String> {
    names
        .take_while(|name| name.starts_with(prefix))
        .cloned()
        .collect()
}

/// Files by name, as the broker sees its log directory. Names use `/` to group a partition's
/// files (`partition-0/00000000000000000000.log`); there are no directories to create.
pub trait Storage {
    /// Appends the concatenation of `parts` at the end of `file`, creating the file if it does
    /// not exist, and returns the position the first byte was written at. Not durable until
    /// [`sync`](Self::sync). Taking several parts lets the log write a patched header and the
    /// client's bytes with one copy (like `writev`).
    fn append_vectored(&mut self, file: &str, parts: &[&[u8]]) -> Result<u64, StorageError>;

    /// Appends `data` (see [`append_vectored`](Self::append_vectored)).
    fn append(&mut self, file: &str, data: &[u8]) -> Result<u64, StorageError> {
        self.append_vectored(file, &[data])
    }

    /// Makes everything written to `file` so far durable (`fsync`), including an atomic
    /// replacement by [`write_atomic`](Self::write_atomic).
    fn sync(&mut self, file: &str) -> Result<(), StorageError>;

    /// `len` bytes of `file` from `position`.
    fn read(&self, file: &str, position: u64, len: usize) -> Result<Bytes, StorageError>;

    /// The whole content of `file`.
    fn read_all(&self, file: &str) -> Result<Bytes, StorageError> {
        let len = self.file_len(file)?;
        let len = usize::try_from(len).map_err(|_| StorageError::OutOfRange {
            file: file.to_string(),
            position: 0,
            len,
            file_len: len,
        })?;
        self.read(file, 0, len)
    }

    /// The length of `file` in bytes, durable or not.
    fn file_len(&self, file: &str) -> Result<u64, StorageError>;

    /// The names of the files starting with `prefix`, in ascending order.
    fn list(&self, prefix: &str) -> Vec<String>;

    /// Deletes `file`.
    fn remove(&mut self, file: &str) -> Result<(), StorageError>;

    /// Cuts `file` to its first `len` bytes.
    fn truncate(&mut self, file: &str, len: u64) -> Result<(), StorageError>;

    /// Replaces the whole content of `file` (creating it if needed) as one atomic step: write a
    /// temporary file, rename it over `file`. Durable after [`sync`](Self::sync) of `file`.
    fn write_atomic(&mut self, file: &str, data: &[u8]) -> Result<(), StorageError>;
}

/// Size of the shared buffers appends are copied into. Large enough that a buffer holds many
/// batches (one allocation for all of them), small enough that a file's unused tail is cheap.
const CHUNK_BYTES: usize = 64 * 1024;

/// One simulated file: its content as frozen shared buffers plus one growing tail buffer, and
/// how much of it is durable. Appends copy into the tail (no allocation per write); a full
/// tail is frozen into a piece that reads can slice without copying.
#[derive(Clone, Default)]
struct SimFile {
    /// Frozen content: `(position, bytes)`, in order, contiguous from 0 up to `tail_start`.
    pieces: Vec<(u64, Bytes)>,
    /// The content after the frozen pieces, still growing.
    tail: BytesMut,
    /// Position of the tail's first byte.
    tail_start: u64,
    /// Content length.
    len: u64,
    /// The first `synced_len` bytes survive a crash.
    synced_len: u64,
    /// Set while a [`Storage::write_atomic`] replacement is not yet synced: what a crash
    /// restores (`None`: the file did not durably exist).
    before_replace: Option<Option<Bytes>>,
}

impl SimFile {
    fn append(&mut self, parts: &[&[u8]]) -> u64 {
        let position = self.len;
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if self.tail.capacity() - self.tail.len() < n {
            self.freeze_tail();
            self.tail = BytesMut::with_capacity(CHUNK_BYTES.max(n));
        }
        for part in parts {
            self.tail.extend_from_slice(part);
        }
        self.len += n as u64;
        position
    }

    /// Moves the tail's bytes into a frozen piece.
    fn freeze_tail(&mut self) {
        if !self.tail.is_empty() {
            let frozen = self.tail.split().freeze();
            self.pieces.push((self.tail_start, frozen));
        }
        self.tail_start = self.len;
    }

    fn read(&self, name: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        let end = position.checked_add(len as u64).filter(|e| *e <= self.len);
        let Some(end) = end else {
            return Err(StorageError::OutOfRange {
                file: name.to_string(),
                position,
                len: len as u64,
                file_len: self.len,
            });
        };
        if len == 0 {
            return Ok(Bytes::new());
        }
        if position >= self.tail_start {
            let from = (position - self.tail_start) as usize;
            return Ok(Bytes::copy_from_slice(&self.tail[from..from + len]));
        }
        // The piece holding `position`: the last one starting at or before it.
        let first = self.pieces.partition_point(|(start, _)| *start <= position) - 1;
        let (start, piece) = &self.pieces[first];
        let from = (position - start) as usize;
        if end <= start + piece.len() as u64 {
            return Ok(piece.slice(from..from + len));
        }
        // The range spans buffers (a recovery scan of a whole file): copy once.
        let mut out = BytesMut::with_capacity(len);
        for (start, piece) in &self.pieces[first..] {
            if *start >= end {
                break;
            }
            let lo = position.saturating_sub(*start) as usize;
            let hi = ((end - start) as usize).min(piece.len());
            out.extend_from_slice(&piece[lo..hi]);
        }
        if end > self.tail_start {
            let lo = position.saturating_sub(self.tail_start) as usize;
            out.extend_from_slice(&self.tail[lo..(end - self.tail_start) as usize]);
        }
        Ok(out.freeze())
    }

    fn truncate(&mut self, len: u64) {
        if len >= self.len {
            return;
        }
        if len >= self.tail_start {
            self.tail.truncate((len - self.tail_start) as usize);
        } else {
            let keep = self.pieces.partition_point(|(start, _)| *start < len);
            self.pieces.truncate(keep);
            if let Some((start, piece)) = self.pieces.last_mut() {
                piece.truncate((len - *start) as usize);
            }
            self.tail = BytesMut::new();
            self.tail_start = len;
        }
        self.len = len;
        self.synced_len = self.synced_len.min(len);
    }

    fn replace(&mut self, data: &[u8]) {
        self.pieces.clear();
        self.tail = BytesMut::new();
        self.tail_start = 0;
        self.len = 0;
        self.append(&[data]);
    }
}

/// What a [`SimDisk::crash`] did to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashedFile {
    /// The file.
    pub file: String,
    /// Its length before the crash.
    pub len_before: u64,
    /// Its length after (0 when it was removed).
    pub len_after: u64,
    /// Unsynced bytes the crash kept (a torn write, or writes already on the platter).
    pub unsynced_kept: u64,
    /// True when the file no longer exists (an unsynced atomic creation).
    pub removed: bool,
}

/// Keep this many bytes of one file's unsynced tail in a crash: a torn write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tear {
    /// The file.
    pub file: String,
    /// Bytes of its unsynced tail that survive (clamped to the tail's length).
    pub keep_bytes: u64,
}

impl Tear {
    /// A closure for [`SimDisk::crash`] that keeps what `tears` name and drops every other
    /// unsynced byte.
    pub fn keep_fn(tears: &[Tear]) -> impl FnMut(&str, u64) -> u64 + '_ {
        move |file, _unsynced| {
            tears
                .iter()
                .find(|t| t.file == file)
                .map_or(0, |t| t.keep_bytes)
        }
    }
}

/// An in-memory [`Storage`] with crash semantics (module docs): each file is a durable prefix
/// and an unsynced tail, and [`crash`](SimDisk::crash) drops the tails.
///
/// # Examples
///
/// ```
/// use idempo_broker::{SimDisk, Storage};
///
/// let mut disk = SimDisk::new();
/// disk.append("a.log", b"synced ").unwrap();
/// disk.sync("a.log").unwrap();
/// disk.append("a.log", b"lost").unwrap();
/// // Power loss; keep 2 bytes of the unsynced tail (a torn write).
/// disk.crash(|_file, _unsynced| 2);
/// assert_eq!(&disk.read_all("a.log").unwrap()[..], b"synced lo");
/// ```
#[derive(Clone, Default)]
pub struct SimDisk {
    /// The files by name: every append, sync and read looks one up, so a hash map.
    files: FxHashMap<String, SimFile>,
    /// The same names in ascending order, for listing and for a crash's fixed order.
    names: BTreeSet<String>,
    crashes: u64,
    /// Appends still to fail ([`SimDisk::fail_next_appends`]): a write error of the disk.
    failing_appends: u32,
}

impl fmt::Debug for SimDisk {
    /// File names with their total and durable lengths (not their bytes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, file) in self.names.iter().map(|n| (n, &self.files[n])) {
            m.entry(
                name,
                &format_args!("{} bytes, {} synced", file.len, file.synced_len),
            );
        }
        m.finish()
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Makes the next `n` appends fail with an I/O error (`EIO`, as a disk write error
    /// gives) and write nothing, for fault injection: the broker answers the produce whose
    /// append failed `KAFKA_STORAGE_ERROR` (56). Replaces any count still pending.
    pub fn fail_next_appends(&mut self, n: u32) {
        self.failing_appends = n;
    }

    /// Appends still set to fail.
    pub fn failing_appends(&self) -> u32 {
        self.failing_appends
    }

    fn file(&self, name: &str) -> Result<&SimFile, StorageError> {
        self.files.get(name).ok_or_else(|| StorageError::NotFound {
            file: name.to_string(),
        })
    }

    fn file_mut(&mut self, name: &str) -> Result<&mut SimFile, StorageError> {
        self.files
            .get_mut(name)
            .ok_or_else(|| StorageError::NotFound {
                file: name.to_string(),
            })
    }

    /// Files with bytes a crash would lose, and how many, in ascending name order (what a
    /// simulator chooses tears from). An unsynced atomic replacement counts as its whole
    /// length.
    pub fn unsynced(&self) -> Vec<(String, u64)> {
        self.names
            .iter()
            .map(|n| (n, &self.files[n]))
            .filter(|(_, f)| f.before_replace.is_some() || f.len > f.synced_len)
            .map(|(name, f)| (name.clone(), f.len - f.synced_len))
            .collect()
    }

    /// Total unsynced bytes over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        self.files.values().map(|f| f.len - f.synced_len).sum()
    }

    /// Bytes stored over all files (durable or not).
    pub fn size_bytes(&self) -> u64 {
        self.files.values().map(|f| f.len).sum()
    }

    /// Crashes so far.
    pub fn crashes(&self) -> u64 {
        self.crashes
    }

    /// A power loss. For every file with an unsynced tail, in ascending name order,
    /// `keep(file, unsynced_len)` says how many bytes of that tail survive (clamped to
    /// `unsynced_len`; 0 drops it all, as a crash without a torn write). Atomic replacements
    /// not yet synced are rolled back whole and `keep` is not asked about them. Afterwards
    /// every remaining byte is durable. Returns what happened to each file that changed.
    pub fn crash(&mut self, mut keep: impl FnMut(&str, u64) -> u64) -> Vec<CrashedFile> {
        self.crashes += 1;
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for name in &self.names {
            let file = self
                .files
                .get_mut(name)
                .expect("every listed name is a file");
            let len_before = file.len;
            if let Some(before) = file.before_replace.take() {
                let gone = before.is_none();
                match before {
                    None => removed.push(name.clone()),
                    Some(old) => {
                        file.replace(&old);
                        file.synced_len = file.len;
                    }
                }
                changed.push(CrashedFile {
                    file: name.clone(),
                    len_before,
                    len_after: if gone { 0 } else { file.len },
                    unsynced_kept: 0,
                    removed: gone,
                });
                continue;
            }
            let unsynced = file.len - file.synced_len;
            if unsynced == 0 {
                continue;
            }
            let kept = keep(name, unsynced).min(unsynced);
            file.truncate(file.synced_len + kept);
            file.synced_len = file.len;
            changed.push(CrashedFile {
                file: name.clone(),
                len_before,
                len_after: file.len,
                unsynced_kept: kept,
                removed: false,
            });
        }
        for name in removed {
            self.files.remove(&name);
            self.names.remove(&name);
        }
        changed
    }

    /// Flips every bit of the byte at `position` in `file`, durably: bit rot, or a test's way
    /// to corrupt a snapshot or a batch. The broker notices at its next recovery.
    pub fn corrupt(&mut self, file: &str, position: u64) -> Result<(), StorageError> {
        let f = self.file_mut(file)?;
        let mut content = BytesMut::from(&f.read(file, 0, f.len as usize)?[..]);
        let at = usize::try_from(position)
            .ok()
            .filter(|p| *p < content.len())
            .ok_or_else(|| StorageError::OutOfRange {
                file: file.to_string(),
                position,
                len: 1,
                file_len: f.len,
            })?;
        content[at] ^= 0xff;
        let synced = f.synced_len;
        f.replace(&content);
        f.synced_len = synced;
        Ok(())
    }
}

impl Storage for SimDisk {
    fn append_vectored(&mut self, file: &str, parts: &[&[u8]]) -> Result<u64, StorageError> {
        if self.failing_appends > 0 {
            self.failing_appends -= 1;
            return Err(StorageError::Io {
                file: file.to_string(),
                operation: "append",
                kind: std::io::ErrorKind::Other,
                message: "Input/output error (a write error injected by the simulator)".into(),
            });
        }
        // Look up before inserting: the hot path must not allocate a name per append.
        if let Some(f) = self.files.get_mut(file) {
            return Ok(f.append(parts));
        }
        self.names.insert(file.to_string());
        Ok(self
            .files
            .entry(file.to_string())
            .or_default()
            .append(parts))
    }

    fn sync(&mut self, file: &str) -> Result<(), StorageError> {
        let f = self.file_mut(file)?;
        f.synced_len = f.len;
        f.before_replace = None;
        Ok(())
    }

    fn read(&self, file: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        self.file(file)?.read(file, position, len)
    }

    fn file_len(&self, file: &str) -> Result<u64, StorageError> {
        Ok(self.file(file)?.len)
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        names_from(self.names.range::<str, _>(from(prefix)), prefix)
    }

    fn remove(&mut self, file: &str) -> Result<(), StorageError> {
        self.names.remove(file);
        self.files
            .remove(file)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound {
                file: file.to_string(),
            })
    }

    fn truncate(&mut self, file: &str, len: u64) -> Result<(), StorageError> {
        let f = self.file_mut(file)?;
        if len > f.len {
            return Err(StorageError::OutOfRange {
                file: file.to_string(),
                position: len,
                len: 0,
                file_len: f.len,
            });
        }
        f.truncate(len);
        Ok(())
    }

    fn write_atomic(&mut self, file: &str, data: &[u8]) -> Result<(), StorageError> {
        let existed = self.files.contains_key(file);
        if !existed {
            self.names.insert(file.to_string());
        }
        let f = self.files.entry(file.to_string()).or_default();
        if f.before_replace.is_none() {
            // Remember the durable version a crash goes back to (only the first time: two
            // unsynced replacements in a row still roll back to the last synced one).
            let durable = if !existed {
                None
            } else {
                let synced = f.synced_len as usize;
                Some(f.read(file, 0, synced)?)
            };
            f.before_replace = Some(durable);
        }
        f.replace(data);
        f.synced_len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_drops_the_unsynced_tail_and_keeps_the_synced_prefix() {
        let mut disk = SimDisk::new();
        disk.append("f", b"abc").unwrap();
        disk.sync("f").unwrap();
        disk.append("f", b"def").unwrap();
        disk.append("f", b"ghi").unwrap();
        assert_eq!(disk.unsynced(), vec![("f".to_string(), 6)]);
        disk.crash(|_, _| 0);
        assert_eq!(&disk.read_all("f").unwrap()[..], b"abc");
        assert_eq!(disk.unsynced_bytes(), 0);
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_unsynced_tail() {
        let mut disk = SimDisk::new();
        disk.append("f", b"abc").unwrap();
        disk.sync("f").unwrap();
        disk.append("f", b"def").unwrap();
        disk.append("f", b"ghi").unwrap();
        let report = disk.crash(Tear::keep_fn(&[Tear {
            file: "f".into(),
            keep_bytes: 4,
        }]));
        assert_eq!(&disk.read_all("f").unwrap()[..], b"abcdefg");
        assert_eq!(report[0].unsynced_kept, 4);
        // The next append goes after the torn byte.
        disk.append("f", b"X").unwrap();
        assert_eq!(&disk.read_all("f").unwrap()[..], b"abcdefgX");
    }

    #[test]
    fn reads_within_one_write_share_the_buffer_and_reads_across_writes_copy() {
        let mut disk = SimDisk::new();
        disk.append_vectored("f", &[b"ab", b"cd"]).unwrap();
        disk.append("f", b"ef").unwrap();
        assert_eq!(&disk.read("f", 1, 2).unwrap()[..], b"bc");
        assert_eq!(&disk.read("f", 3, 2).unwrap()[..], b"de");
        assert_eq!(&disk.read("f", 0, 6).unwrap()[..], b"abcdef");
        assert!(disk.read("f", 5, 2).is_err());
    }

    #[test]
    fn an_unsynced_atomic_write_rolls_back_whole() {
        let mut disk = SimDisk::new();
        disk.write_atomic("c", b"old").unwrap();
        disk.sync("c").unwrap();
        disk.write_atomic("c", b"newer").unwrap();
        disk.write_atomic("c", b"newest").unwrap();
        disk.write_atomic("fresh", b"x").unwrap();
        disk.crash(|_, _| 3);
        assert_eq!(&disk.read_all("c").unwrap()[..], b"old");
        assert!(disk.read_all("fresh").is_err(), "never synced: gone");
        disk.write_atomic("c", b"new").unwrap();
        disk.sync("c").unwrap();
        disk.crash(|_, _| 0);
        assert_eq!(&disk.read_all("c").unwrap()[..], b"new");
    }

    #[test]
    fn truncate_list_and_remove() {
        let mut disk = SimDisk::new();
        disk.append("p/1", b"hello").unwrap();
        disk.append("p/2", b"x").unwrap();
        disk.append("q", b"y").unwrap();
        disk.truncate("p/1", 2).unwrap();
        assert_eq!(&disk.read_all("p/1").unwrap()[..], b"he");
        assert_eq!(disk.list("p/"), vec!["p/1".to_string(), "p/2".to_string()]);
        disk.remove("p/2").unwrap();
        assert!(disk.remove("p/2").is_err());
        assert_eq!(disk.list("p/"), vec!["p/1".to_string()]);
    }

    #[test]
    fn corrupt_flips_a_byte_durably() {
        let mut disk = SimDisk::new();
        disk.append("f", &[0u8, 1]).unwrap();
        disk.sync("f").unwrap();
        disk.corrupt("f", 1).unwrap();
        disk.crash(|_, _| 0);
        assert_eq!(&disk.read_all("f").unwrap()[..], &[0u8, 0xfe]);
    }
}
