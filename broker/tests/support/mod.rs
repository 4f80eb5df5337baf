//! Helpers shared by the broker's integration tests. Each test binary uses a part of them.
#![allow(dead_code)]

use std::cell::Cell;

use bytes::Bytes;
use idempo_broker::{SimDisk, Storage, StorageError};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// Producer 1's batch at epoch 0 and sequence `seq`: one record whose value is the sequence.
pub fn batch(seq: i32) -> bytes::Bytes {
    RecordBatch::idempotent(
        ProducerId(1),
        ProducerEpoch(0),
        Sequence(seq),
        1_000,
        vec![Record::with_value(0, format!("{seq}"))],
    )
    .to_bytes()
}

/// A storage operation a [`TestDisk`] can be told to refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Append,
    Sync,
    Read,
    Remove,
    Truncate,
    WriteAtomic,
}

impl Op {
    /// Every operation that changes the disk (what a read-only device refuses).
    pub const WRITES: [Op; 5] = [
        Op::Append,
        Op::Sync,
        Op::Remove,
        Op::Truncate,
        Op::WriteAtomic,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Append => "append to",
            Op::Sync => "sync",
            Op::Read => "read",
            Op::Remove => "remove",
            Op::Truncate => "truncate",
            Op::WriteAtomic => "write",
        }
    }
}

/// A [`SimDisk`] that refuses the operations it is told to (a full, failing or read-only
/// device) and counts the reads made of it. The one test disk of the broker's tests.
#[derive(Debug, Default)]
pub struct TestDisk {
    pub disk: SimDisk,
    /// The operations refused, each on the files whose name ends with its suffix ("" for
    /// every file).
    pub refused: Vec<(Op, &'static str)>,
    /// Reads made so far.
    pub reads: Cell<u64>,
}

impl TestDisk {
    /// Refuses `op` on every file from now on.
    pub fn refuse(&mut self, op: Op) {
        self.refused.push((op, ""));
    }

    /// Refuses `op` on the files whose name ends with `suffix` from now on.
    pub fn refuse_on(&mut self, op: Op, suffix: &'static str) {
        self.refused.push((op, suffix));
    }

    /// Refuses every write from now on.
    pub fn read_only(&mut self) {
        for op in Op::WRITES {
            self.refuse(op);
        }
    }

    /// Refuses nothing any more.
    pub fn heal(&mut self) {
        self.refused.clear();
    }

    fn check(&self, op: Op, file: &str) -> Result<(), StorageError> {
        if self
            .refused
            .iter()
            .any(|&(o, suffix)| o == op && file.ends_with(suffix))
        {
            return Err(StorageError::Io {
                file: file.into(),
                operation: op.name(),
                kind: std::io::ErrorKind::Other,
                message: "refused by the test disk".into(),
            });
        }
        Ok(())
    }
}

impl Storage for TestDisk {
    fn append_vectored(&mut self, file: &str, parts: &[&[u8]]) -> Result<u64, StorageError> {
        self.check(Op::Append, file)?;
        self.disk.append_vectored(file, parts)
    }
    fn sync(&mut self, file: &str) -> Result<(), StorageError> {
        self.check(Op::Sync, file)?;
        self.disk.sync(file)
    }
    fn read(&self, file: &str, position: u64, len: usize) -> Result<Bytes, StorageError> {
        self.check(Op::Read, file)?;
        self.reads.set(self.reads.get() + 1);
        self.disk.read(file, position, len)
    }
    fn file_len(&self, file: &str) -> Result<u64, StorageError> {
        self.disk.file_len(file)
    }
    fn list(&self, prefix: &str) -> Vec<String> {
        self.disk.list(prefix)
    }
    fn remove(&mut self, file: &str) -> Result<(), StorageError> {
        self.check(Op::Remove, file)?;
        self.disk.remove(file)
    }
    fn truncate(&mut self, file: &str, len: u64) -> Result<(), StorageError> {
        self.check(Op::Truncate, file)?;
        self.disk.truncate(file, len)
    }
    fn write_atomic(&mut self, file: &str, data: &[u8]) -> Result<(), StorageError> {
        self.check(Op::WriteAtomic, file)?;
        self.disk.write_atomic(file, data)
    }
}
