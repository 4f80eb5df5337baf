//! Where the keys live: four key stores with one interface, differing in exactly the two
//! things that decide the outcome of a retry: is "check the key" atomic with "claim the key",
//! and is "record the key" atomic with "apply the side effect"? And does the store survive a
//! restart?
//!
//! ```text
//! store                | check+claim          | record+side effect        | restart
//! memory-ttl           | atomic (SET NX)      | not atomic: apply, then SET | forgotten
//! db-transactional     | INSERT … ON CONFLICT | one transaction, UPDATE … WHERE owner | kept
//! db-check-then-insert | SELECT, no claim     | one transaction, no unique key | kept
//! replicated-cache     | GET on a replica     | apply, then SET on the primary | kept
//! ```
//!
//! Every entry has an expiry (`expires_ms`): an in-progress entry is a lock that expires
//! after the policy's lock TTL, a finished one after the policy's window. An expired entry is
//! treated as absent, and a new request may claim it.
//!
//! `db-transactional` and `db-check-then-insert` are real SQLite databases (through
//! `rusqlite`, SQLite compiled in), in memory so that a run depends on nothing but its seed.
//! The side effect is a row in their `charges` table, written in the same transaction as the
//! key; the ledger the checker reads is appended only after that transaction commits.

use super::StoreName;
use super::model::{Ledger, Request, Response, ms};
use crate::faults::{FaultKind, FaultOracle};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};

/// The replica of `replicated-cache` applies each write this many ms after the primary, at
/// least.
pub const REPLICA_LAG_MS_MIN: u64 = 1;
/// ... and at most (drawn per write from the seed).
pub const REPLICA_LAG_MS_MAX: u64 = 5_000;

/// Whether a key's first request is still being handled or has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Claimed, the handler is running (a lock).
    InProgress,
    /// Finished: the response is stored.
    Done,
}

impl EntryState {
    fn name(self) -> &'static str {
        match self {
            EntryState::InProgress => "in_progress",
            EntryState::Done => "done",
        }
    }
}

/// What a store keeps per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// In progress or done.
    pub state: EntryState,
    /// The endpoint and parameters of the request that stored it (compared on a retry).
    pub fingerprint: String,
    /// The stored response (done entries).
    pub response: Option<Response>,
    /// The attempt that claimed or finished it ([`Request::attempt_id`]).
    pub owner: u64,
    /// When it was written.
    pub stored_ms: u64,
    /// When it expires (a lock's TTL, or the window).
    pub expires_ms: u64,
}

/// The answer to "is this key known?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Known and not expired.
    Found(Entry),
    /// Not known, with the reason in words (`never stored`, `expired at 300 017 ms` ...).
    Missing(String),
}

/// The answer to "claim this key".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begun {
    /// Claimed.
    Claimed,
    /// Checked and absent, but not claimed: this store cannot claim (check-then-insert).
    Checked,
    /// Someone holds it.
    Held(Entry),
}

/// The answer to "record this key with the side effect".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The side effect was applied and the key recorded.
    Applied,
    /// Another request recorded the key first: the transaction rolled back, nothing applied.
    /// Holds what the other request left.
    Superseded(Option<Entry>),
}

/// A key store.
pub trait KeyStore {
    /// Which store this is.
    fn name(&self) -> StoreName;
    /// Is `key` known at `now_ms`?
    fn get(&mut self, now_ms: u64, key: &str) -> Lookup;
    /// Claims `key` with an in-progress `entry`, if no live entry holds it.
    fn begin(&mut self, now_ms: u64, key: &str, entry: Entry) -> Begun;
    /// Records `entry` (done) for `key` and applies `req`'s side effect `what` to the ledger
    /// (`None`: the handler failed and applied nothing, but its answer is saved), as
    /// atomically as this store can.
    fn commit(
        &mut self,
        now_ms: u64,
        key: &str,
        entry: Entry,
        req: &Request,
        what: Option<&str>,
        ledger: &mut Ledger,
    ) -> Committed;
    /// The server restarts.
    fn restart(&mut self, now_ms: u64);
    /// Rows in the database's `charges` table (`None`: the side effect is not in a database).
    fn charges(&self) -> Option<u64>;
}

/// The store named `name`, its replica lags drawn from `seed`.
pub fn open(name: StoreName, seed: u64) -> Box<dyn KeyStore> {
    match name {
        StoreName::MemoryTtl => Box::new(MemoryTtl::default()),
        StoreName::DbTransactional => Box::new(Sqlite::open(true)),
        StoreName::DbCheckThenInsert => Box::new(Sqlite::open(false)),
        StoreName::ReplicatedCache => Box::new(ReplicatedCache::new(seed)),
    }
}

fn expired_why(e: &Entry) -> String {
    format!(
        "{} entry stored at {} ms expired at {} ms",
        e.state.name().replace('_', "-"),
        ms(e.stored_ms),
        ms(e.expires_ms)
    )
}

/// `memory-ttl`: a Redis-like map in the server's memory, with a TTL per key.
#[derive(Debug, Default)]
pub struct MemoryTtl {
    entries: HashMap<String, Entry>,
    /// Keys the last restart forgot, and when (for the reasons).
    forgotten: HashSet<String>,
    restarted_ms: Option<u64>,
}

impl KeyStore for MemoryTtl {
    fn name(&self) -> StoreName {
        StoreName::MemoryTtl
    }

    fn get(&mut self, now_ms: u64, key: &str) -> Lookup {
        match self.entries.get(key) {
            Some(e) if e.expires_ms > now_ms => Lookup::Found(e.clone()),
            Some(e) => Lookup::Missing(expired_why(e)),
            None if self.forgotten.contains(key) => Lookup::Missing(format!(
                "forgotten by the restart at {} ms",
                ms(self.restarted_ms.unwrap_or(0))
            )),
            None => Lookup::Missing("never stored".to_string()),
        }
    }

    fn begin(&mut self, now_ms: u64, key: &str, entry: Entry) -> Begun {
        match self.get(now_ms, key) {
            Lookup::Found(e) => Begun::Held(e),
            Lookup::Missing(_) => {
                self.entries.insert(key.to_string(), entry);
                Begun::Claimed
            }
        }
    }

    fn commit(
        &mut self,
        now_ms: u64,
        key: &str,
        entry: Entry,
        req: &Request,
        what: Option<&str>,
        ledger: &mut Ledger,
    ) -> Committed {
        // The side effect lives elsewhere (the charges database); the key is SET after it.
        if let Some(what) = what {
            ledger.apply(now_ms, req, what);
        }
        self.entries.insert(key.to_string(), entry);
        Committed::Applied
    }

    fn restart(&mut self, now_ms: u64) {
        self.forgotten.extend(self.entries.drain().map(|(k, _)| k));
        self.restarted_ms = Some(now_ms);
    }

    fn charges(&self) -> Option<u64> {
        None
    }
}

/// `db-transactional` (`unique`: the key is the primary key, claimed with `INSERT … ON
/// CONFLICT DO NOTHING`, finished in the side effect's transaction) or `db-check-then-insert`
/// (no constraint: a `SELECT` at arrival, an `INSERT` with the result).
pub struct Sqlite {
    conn: Connection,
    unique: bool,
}

const SCHEMA_UNIQUE: &str = "CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status TEXT NOT NULL, owner INTEGER NOT NULL,
    response_ok INTEGER, response_code TEXT, response_detail TEXT,
    stored_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);";
const SCHEMA_PLAIN: &str = "CREATE TABLE idempotency_keys (
    key TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL, owner INTEGER NOT NULL,
    response_ok INTEGER, response_code TEXT, response_detail TEXT,
    stored_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);";
const SCHEMA_CHARGES: &str = "CREATE TABLE charges (
    id INTEGER PRIMARY KEY, op INTEGER NOT NULL, attempt INTEGER NOT NULL,
    what TEXT NOT NULL, at_ms INTEGER NOT NULL);";
const COLUMNS: &str = "status, fingerprint, response_ok, response_code, response_detail, owner, \
                       stored_ms, expires_ms";
const INSERT: &str = "INSERT INTO idempotency_keys (key, status, fingerprint, response_ok, \
                      response_code, response_detail, owner, stored_ms, expires_ms) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The in-memory database answers every statement of this fixed schema; a failure is a bug.
const SQL_OK: &str = "the in-memory SQLite database answers the fixed schema's statements";

fn row_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let state = if row.get::<_, String>(0)? == "done" {
        EntryState::Done
    } else {
        EntryState::InProgress
    };
    let ok: Option<bool> = row.get(2)?;
    let code: Option<String> = row.get(3)?;
    let detail: Option<String> = row.get(4)?;
    let response = match (ok, code, detail) {
        (Some(ok), Some(code), Some(detail)) => Some(Response { ok, code, detail }),
        _ => None,
    };
    Ok(Entry {
        state,
        fingerprint: row.get(1)?,
        response,
        owner: row.get::<_, i64>(5)? as u64,
        stored_ms: row.get::<_, i64>(6)? as u64,
        expires_ms: row.get::<_, i64>(7)? as u64,
    })
}

fn insert_entry(conn: &Connection, key: &str, e: &Entry, on_conflict: bool) -> usize {
    let sql = if on_conflict {
        format!("{INSERT} ON CONFLICT(key) DO NOTHING")
    } else {
        INSERT.to_string()
    };
    let r = e.response.as_ref();
    conn.execute(
        &sql,
        params![
            key,
            e.state.name(),
            e.fingerprint,
            r.map(|r| r.ok),
            r.map(|r| r.code.clone()),
            r.map(|r| r.detail.clone()),
            e.owner as i64,
            e.stored_ms as i64,
            e.expires_ms as i64
        ],
    )
    .expect(SQL_OK)
}

fn latest(conn: &Connection, key: &str) -> Option<Entry> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM idempotency_keys WHERE key = ?1 ORDER BY rowid DESC LIMIT 1"
        ),
        params![key],
        row_entry,
    )
    .optional()
    .expect(SQL_OK)
}

impl Sqlite {
    /// A fresh in-memory database with the schema.
    pub fn open(unique: bool) -> Sqlite {
        let conn = Connection::open_in_memory().expect(SQL_OK);
        let schema = if unique { SCHEMA_UNIQUE } else { SCHEMA_PLAIN };
        conn.execute_batch(schema).expect(SQL_OK);
        conn.execute_batch(SCHEMA_CHARGES).expect(SQL_OK);
        Sqlite { conn, unique }
    }
}

impl KeyStore for Sqlite {
    fn name(&self) -> StoreName {
        if self.unique {
            StoreName::DbTransactional
        } else {
            StoreName::DbCheckThenInsert
        }
    }

    fn get(&mut self, now_ms: u64, key: &str) -> Lookup {
        match latest(&self.conn, key) {
            Some(e) if e.expires_ms > now_ms => Lookup::Found(e),
            Some(e) => Lookup::Missing(expired_why(&e)),
            None => Lookup::Missing("no row".to_string()),
        }
    }

    fn begin(&mut self, now_ms: u64, key: &str, entry: Entry) -> Begun {
        if !self.unique {
            // Check-then-insert: the check is all there is until the result is inserted.
            return match self.get(now_ms, key) {
                Lookup::Found(e) => Begun::Held(e),
                Lookup::Missing(_) => Begun::Checked,
            };
        }
        let tx = self.conn.transaction().expect(SQL_OK);
        // An expired row (a lock past its TTL, a pruned key) may be taken over.
        tx.execute(
            "DELETE FROM idempotency_keys WHERE key = ?1 AND expires_ms <= ?2",
            params![key, now_ms as i64],
        )
        .expect(SQL_OK);
        let claimed = insert_entry(&tx, key, &entry, true) == 1;
        let held = (!claimed).then(|| latest(&tx, key)).flatten();
        tx.commit().expect(SQL_OK);
        match held {
            Some(e) => Begun::Held(e),
            None => Begun::Claimed,
        }
    }

    fn commit(
        &mut self,
        now_ms: u64,
        key: &str,
        entry: Entry,
        req: &Request,
        what: Option<&str>,
        ledger: &mut Ledger,
    ) -> Committed {
        let tx = self.conn.transaction().expect(SQL_OK);
        let recorded = if self.unique {
            let r = entry.response.as_ref();
            let mut n = tx
                .execute(
                    "UPDATE idempotency_keys SET status = 'done', response_ok = ?1, \
                     response_code = ?2, response_detail = ?3, stored_ms = ?4, expires_ms = ?5 \
                     WHERE key = ?6 AND status = 'in_progress' AND owner = ?7",
                    params![
                        r.map(|r| r.ok),
                        r.map(|r| r.code.clone()),
                        r.map(|r| r.detail.clone()),
                        entry.stored_ms as i64,
                        entry.expires_ms as i64,
                        key,
                        entry.owner as i64
                    ],
                )
                .expect(SQL_OK);
            if n == 0 {
                tx.execute(
                    "DELETE FROM idempotency_keys WHERE key = ?1 AND expires_ms <= ?2",
                    params![key, now_ms as i64],
                )
                .expect(SQL_OK);
                n = insert_entry(&tx, key, &entry, true);
            }
            n == 1
        } else {
            insert_entry(&tx, key, &entry, false) == 1
        };
        if !recorded {
            let other = latest(&tx, key);
            tx.rollback().expect(SQL_OK);
            return Committed::Superseded(other);
        }
        if let Some(what) = what {
            tx.execute(
                "INSERT INTO charges (op, attempt, what, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![req.op as i64, req.attempt, what, now_ms as i64],
            )
            .expect(SQL_OK);
        }
        tx.commit().expect(SQL_OK);
        if let Some(what) = what {
            ledger.apply(now_ms, req, what);
        }
        Committed::Applied
    }

    fn restart(&mut self, _now_ms: u64) {
        // The database is durable: a server restart keeps every committed row.
    }

    fn charges(&self) -> Option<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM charges", [], |row| row.get(0))
            .expect(SQL_OK);
        Some(n as u64)
    }
}

/// `replicated-cache`: writes go to a primary, reads come from a replica that applies each
/// write after a drawn lag, in order (one replication stream, as Redis replicates); it
/// survives a restart of the application server.
#[derive(Debug)]
pub struct ReplicatedCache {
    primary: HashMap<String, Entry>,
    replica: HashMap<String, Entry>,
    /// Writes on their way to the replica: (when it applies them, key, entry).
    pending: Vec<(u64, String, Entry)>,
    writes: u64,
    oracle: FaultOracle,
}

impl ReplicatedCache {
    /// An empty cache whose lags are drawn from `seed`.
    pub fn new(seed: u64) -> ReplicatedCache {
        ReplicatedCache {
            primary: HashMap::new(),
            replica: HashMap::new(),
            pending: Vec::new(),
            writes: 0,
            oracle: FaultOracle::new(seed),
        }
    }

    fn catch_up(&mut self, now_ms: u64) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(at, _, _)| *at <= now_ms);
        self.pending = later;
        for (_, key, entry) in due {
            self.replica.insert(key, entry);
        }
    }

    fn write(&mut self, now_ms: u64, key: &str, entry: Entry) {
        self.writes += 1;
        let lag = self.oracle.latency(
            REPLICA_LAG_MS_MIN,
            REPLICA_LAG_MS_MAX,
            FaultKind::ReplicaLag,
            0,
            self.writes,
            0,
        );
        // One replication stream: a write never overtakes an earlier one.
        let at = self
            .pending
            .last()
            .map_or(now_ms + lag, |(last, _, _)| (*last).max(now_ms + lag));
        self.primary.insert(key.to_string(), entry.clone());
        self.pending.push((at, key.to_string(), entry));
    }
}

impl KeyStore for ReplicatedCache {
    fn name(&self) -> StoreName {
        StoreName::ReplicatedCache
    }

    fn get(&mut self, now_ms: u64, key: &str) -> Lookup {
        self.catch_up(now_ms);
        match self.replica.get(key) {
            Some(e) if e.expires_ms > now_ms => return Lookup::Found(e.clone()),
            Some(e) => return Lookup::Missing(expired_why(e)),
            None => {}
        }
        match self.pending.iter().find(|(_, k, _)| k == key) {
            Some((at, _, e)) => Lookup::Missing(format!(
                "not on the replica yet: written to the primary at {} ms, reaches the replica at {} ms",
                ms(e.stored_ms),
                ms(*at)
            )),
            None => Lookup::Missing("never stored".to_string()),
        }
    }

    fn begin(&mut self, now_ms: u64, key: &str, entry: Entry) -> Begun {
        match self.get(now_ms, key) {
            Lookup::Found(e) => Begun::Held(e),
            Lookup::Missing(_) => {
                self.write(now_ms, key, entry);
                Begun::Claimed
            }
        }
    }

    fn commit(
        &mut self,
        now_ms: u64,
        key: &str,
        entry: Entry,
        req: &Request,
        what: Option<&str>,
        ledger: &mut Ledger,
    ) -> Committed {
        if let Some(what) = what {
            ledger.apply(now_ms, req, what);
        }
        self.write(now_ms, key, entry);
        Committed::Applied
    }

    fn restart(&mut self, _now_ms: u64) {
        // The cache is its own cluster: an application restart does not touch it.
    }

    fn charges(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: EntryState, owner: u64, now_ms: u64, ttl_ms: u64) -> Entry {
        Entry {
            state,
            fingerprint: "POST /v1/charges amount=1".to_string(),
            response: (state == EntryState::Done).then(|| Response::ok("200", "charge ch_1")),
            owner,
            stored_ms: now_ms,
            expires_ms: now_ms + ttl_ms,
        }
    }

    fn request(attempt: u32) -> Request {
        Request {
            op: 0,
            attempt,
            copy: false,
            key: Some("k1".to_string()),
            endpoint: "POST /v1/charges",
            body: "amount=1".to_string(),
            sequence: 0,
            first_sent_ms: 0,
        }
    }

    #[test]
    fn a_unique_key_is_claimed_once() {
        let mut db = Sqlite::open(true);
        let lock = entry(EntryState::InProgress, 1, 0, 60_000);
        assert_eq!(db.begin(0, "k1", lock.clone()), Begun::Claimed);
        assert_eq!(
            db.begin(5, "k1", entry(EntryState::InProgress, 2, 5, 60_000)),
            Begun::Held(lock)
        );
    }

    #[test]
    fn an_expired_lock_can_be_taken_and_the_old_owner_is_rolled_back() {
        let mut db = Sqlite::open(true);
        let mut ledger = Ledger::default();
        db.begin(0, "k1", entry(EntryState::InProgress, 1, 0, 60_000));
        assert_eq!(
            db.begin(
                60_000,
                "k1",
                entry(EntryState::InProgress, 2, 60_000, 60_000)
            ),
            Begun::Claimed,
            "a lock expires at its TTL"
        );
        let done_2 = entry(EntryState::Done, 2, 60_010, 86_400_000);
        assert_eq!(
            db.commit(60_010, "k1", done_2, &request(2), Some("ch_1"), &mut ledger),
            Committed::Applied
        );
        let done_1 = entry(EntryState::Done, 1, 70_000, 86_400_000);
        assert!(matches!(
            db.commit(70_000, "k1", done_1, &request(1), Some("ch_2"), &mut ledger),
            Committed::Superseded(Some(_))
        ));
        assert_eq!(ledger.applied.len(), 1);
        assert_eq!(db.charges(), Some(1), "the rolled-back charge left no row");
    }

    #[test]
    fn check_then_insert_lets_two_checks_pass() {
        let mut db = Sqlite::open(false);
        let mut ledger = Ledger::default();
        assert_eq!(
            db.begin(0, "k1", entry(EntryState::InProgress, 1, 0, 60_000)),
            Begun::Checked
        );
        assert_eq!(
            db.begin(5, "k1", entry(EntryState::InProgress, 2, 5, 60_000)),
            Begun::Checked
        );
        for (attempt, t) in [(1, 10), (2, 20)] {
            let done = entry(EntryState::Done, u64::from(attempt), t, 86_400_000);
            db.commit(t, "k1", done, &request(attempt), Some("ch"), &mut ledger);
        }
        assert_eq!(db.charges(), Some(2));
    }

    #[test]
    fn memory_ttl_forgets_on_restart_and_the_database_does_not() {
        let mut memory = MemoryTtl::default();
        let mut db = Sqlite::open(true);
        let mut ledger = Ledger::default();
        for s in [&mut memory as &mut dyn KeyStore, &mut db] {
            let done = entry(EntryState::Done, 1, 0, 86_400_000);
            s.commit(0, "k1", done, &request(1), Some("ch_1"), &mut ledger);
            s.restart(10);
        }
        assert!(matches!(memory.get(20, "k1"), Lookup::Missing(why) if why.contains("restart")));
        assert!(matches!(db.get(20, "k1"), Lookup::Found(_)));
    }

    #[test]
    fn a_replica_sees_a_write_only_after_its_lag() {
        let mut cache = ReplicatedCache::new(1);
        cache.begin(0, "k1", entry(EntryState::InProgress, 1, 0, 60_000));
        assert!(matches!(cache.get(0, "k1"), Lookup::Missing(why) if why.contains("replica")));
        assert!(matches!(
            cache.get(REPLICA_LAG_MS_MAX, "k1"),
            Lookup::Found(_)
        ));
    }
}
