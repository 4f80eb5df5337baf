//! The `explain` script language: one broker operation a line.
//!
//! ```text
//! init-producer                                   # allocate a producer id (epoch 0)
//! produce pid=1 epoch=0 seq=0 count=3 partition=0 ts=1000
//! advance ms=90000000                             # move the broker clock; runs expiration
//! delete-records partition=0 before=5             # move the log start offset
//! restart                                         # rebuild producer state from the log
//! restart mode=clean                              # clean shutdown (snapshot) and restart
//! restart mode=crash                              # power loss, recovery from the disk
//! fetch partition=0 offset=0                      # read the log back
//! ```
//!
//! `#` starts a comment; blank lines are skipped. Arguments are `key=value`. `produce` needs
//! `pid`, `epoch`, `seq` and `count`; `partition` defaults to 0 and `ts` to the broker clock.
//! `produce` also takes `corrupt=true` (flip one bit after the CRC was computed, as a bad
//! network would); `count=0` sends an empty batch (`recordsCount` 0, `lastOffsetDelta` -1),
//! which the broker refuses.
//!
//! `restart` has three modes. Bare `restart` rebuilds producer state by replaying the retained
//! log, without a snapshot (Kafka after losing its snapshot files): a producer whose batches
//! were all deleted is forgotten. `restart mode=clean` is Kafka's clean shutdown: logs synced,
//! a snapshot of every in-memory producer written (even one whose batches were all deleted),
//! then recovery loads it and replays the rest. `restart mode=crash` is a power loss: the disk
//! keeps what was synced, and recovery rebuilds from the latest snapshot at or below the log
//! end, then replays the log after it. The whole script is parsed before anything runs: a malformed line is an
//! error naming its line number, and nothing is half-run.

use std::fmt;

/// One parsed operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Ask for a producer id.
    InitProducer,
    /// Send one batch.
    Produce {
        /// Producer id.
        pid: i64,
        /// Producer epoch.
        epoch: i16,
        /// Base sequence.
        seq: i32,
        /// Records in the batch (0..=10000; 0 is an empty batch).
        count: i32,
        /// Target partition.
        partition: i32,
        /// Record timestamp; `None` means the broker clock.
        ts: Option<i64>,
        /// Flip a bit after the CRC was computed.
        corrupt: bool,
    },
    /// Move the broker clock forward by `ms`.
    Advance {
        /// Milliseconds to add.
        ms: i64,
    },
    /// Move a partition's log start offset.
    DeleteRecords {
        /// The partition.
        partition: i32,
        /// New log start offset.
        before: i64,
    },
    /// Restart the broker.
    Restart {
        /// How (see the module docs).
        mode: RestartMode,
    },
    /// Read a partition back.
    Fetch {
        /// The partition.
        partition: i32,
        /// First offset.
        offset: i64,
    },
}

/// The three restarts `explain` can script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartMode {
    /// Bare `restart`: producer state rebuilt from the retained log alone, no snapshot.
    FromLog,
    /// `mode=clean`: Kafka's clean shutdown (sync, snapshot), then recovery from the disk.
    Clean,
    /// `mode=crash`: a power loss (unsynced bytes dropped), then recovery from the latest
    /// snapshot at or below the log end plus replay.
    Crash,
}

impl Op {
    /// The operation's name as written in scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Op::InitProducer => "init-producer",
            Op::Produce { .. } => "produce",
            Op::Advance { .. } => "advance",
            Op::DeleteRecords { .. } => "delete-records",
            Op::Restart { .. } => "restart",
            Op::Fetch { .. } => "fetch",
        }
    }
}

/// An operation with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// The operation.
    pub op: Op,
}

/// A malformed script line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ScriptError {}

/// Largest record count one scripted batch may have.
pub const MAX_SCRIPT_RECORDS: i32 = 10_000;

struct Args<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn parse(words: &[&'a str], allowed: &[&str]) -> Result<Args<'a>, String> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, found `{word}`"))?;
            if !allowed.contains(&key) {
                return Err(if allowed.is_empty() {
                    format!("takes no arguments, found `{key}`")
                } else {
                    format!(
                        "unknown argument `{key}` (expected one of: {})",
                        allowed.join(", ")
                    )
                });
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(format!("argument `{key}` given twice"));
            }
            pairs.push((key, value));
        }
        Ok(Args { pairs })
    }

    fn get<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        match self.pairs.iter().find(|(k, _)| *k == key) {
            None => Ok(None),
            Some((_, v)) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("`{key}={v}` is not a valid {}", std::any::type_name::<T>())),
        }
    }

    fn required<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        self.get(key)?
            .ok_or_else(|| format!("missing required argument `{key}=`"))
    }
}

fn parse_produce(rest: &[&str]) -> Result<Op, String> {
    let a = Args::parse(
        rest,
        &["pid", "epoch", "seq", "count", "partition", "ts", "corrupt"],
    )?;
    let count: i32 = a.required("count")?;
    if !(0..=MAX_SCRIPT_RECORDS).contains(&count) {
        return Err(format!(
            "`count={count}` must be between 0 and {MAX_SCRIPT_RECORDS}"
        ));
    }
    let partition = a.get("partition")?.unwrap_or(0);
    if partition < 0 {
        return Err(format!("`partition={partition}` must not be negative"));
    }
    Ok(Op::Produce {
        pid: a.required("pid")?,
        epoch: a.required("epoch")?,
        seq: a.required("seq")?,
        count,
        partition,
        ts: a.get("ts")?,
        corrupt: a.get("corrupt")?.unwrap_or(false),
    })
}

fn parse_restart(rest: &[&str]) -> Result<Op, String> {
    let a = Args::parse(rest, &["mode"])?;
    let mode = match a.get::<String>("mode")?.as_deref() {
        None => RestartMode::FromLog,
        Some("clean") => RestartMode::Clean,
        Some("crash") => RestartMode::Crash,
        Some(other) => {
            return Err(format!(
                "`mode={other}` is not a restart mode (expected clean or crash)"
            ));
        }
    };
    Ok(Op::Restart { mode })
}

fn parse_line(text: &str) -> Result<Option<Op>, String> {
    let code = text.split('#').next().unwrap_or("");
    let words: Vec<&str> = code.split_whitespace().collect();
    let Some((name, rest)) = words.split_first() else {
        return Ok(None);
    };
    let op = match *name {
        "init-producer" => {
            Args::parse(rest, &[])?;
            Op::InitProducer
        }
        "produce" => parse_produce(rest)?,
        "advance" => {
            let a = Args::parse(rest, &["ms"])?;
            let ms: i64 = a.required("ms")?;
            if ms < 0 {
                return Err(format!(
                    "`ms={ms}` must not be negative: time only moves forward"
                ));
            }
            Op::Advance { ms }
        }
        "delete-records" => {
            let a = Args::parse(rest, &["partition", "before"])?;
            Op::DeleteRecords {
                partition: a.get("partition")?.unwrap_or(0),
                before: a.required("before")?,
            }
        }
        "restart" => parse_restart(rest)?,
        "fetch" => {
            let a = Args::parse(rest, &["partition", "offset"])?;
            Op::Fetch {
                partition: a.get("partition")?.unwrap_or(0),
                offset: a.get("offset")?.unwrap_or(0),
            }
        }
        other => {
            return Err(format!(
                "unknown operation `{other}` (expected init-producer, produce, advance, delete-records, restart or fetch)"
            ));
        }
    };
    Ok(Some(op))
}

/// Parses a whole script. The first malformed line is the error.
pub fn parse(text: &str) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        match parse_line(raw) {
            Ok(Some(op)) => steps.push(Step { line, op }),
            Ok(None) => {}
            Err(message) => return Err(ScriptError { line, message }),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operation_with_defaults() {
        let steps = parse(
            "# comment\n\ninit-producer\nproduce pid=1 epoch=0 seq=0 count=3 # trailing\nadvance ms=5\n\
             delete-records before=2\nrestart\nfetch partition=1\nrestart mode=clean\nrestart mode=crash\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 8);
        assert_eq!(
            steps[4].op,
            Op::Restart {
                mode: RestartMode::FromLog
            }
        );
        assert_eq!(
            steps[6].op,
            Op::Restart {
                mode: RestartMode::Clean
            }
        );
        assert_eq!(
            steps[7].op,
            Op::Restart {
                mode: RestartMode::Crash
            }
        );
        assert_eq!(steps[0].line, 3);
        assert_eq!(
            steps[1].op,
            Op::Produce {
                pid: 1,
                epoch: 0,
                seq: 0,
                count: 3,
                partition: 0,
                ts: None,
                corrupt: false
            }
        );
        assert_eq!(
            steps[5].op,
            Op::Fetch {
                partition: 1,
                offset: 0
            }
        );
    }

    #[test]
    fn malformed_lines_name_their_line_and_problem() {
        let cases = [
            ("frobnicate", "unknown operation `frobnicate`"),
            (
                "produce pid=1 epoch=0 seq=0",
                "missing required argument `count=`",
            ),
            (
                "produce pid=x epoch=0 seq=0 count=1",
                "`pid=x` is not a valid i64",
            ),
            ("produce pid=1 epoch=0 seq=0 count=-1", "must be between 0"),
            ("restart mode=warm", "not a restart mode"),
            ("produce pid=1 pid=2 epoch=0 seq=0 count=1", "given twice"),
            (
                "produce pid=1 epoch=0 seq=0 count=1 colour=red",
                "unknown argument `colour`",
            ),
            ("advance ms=-1", "must not be negative"),
            ("restart now", "expected key=value"),
            ("restart force=1", "unknown argument `force`"),
            ("init-producer x=1", "takes no arguments"),
            ("produce pid=1 epoch=99999 seq=0 count=1", "not a valid i16"),
        ];
        for (text, want) in cases {
            let err = parse(&format!("init-producer\n{text}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(err.message.contains(want), "{text}: {}", err.message);
        }
    }
}
