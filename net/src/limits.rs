//! Connection limits: how many connections, from where, for how long, and how many request
//! bytes may be in memory at once. The decisions only: no sockets, no clock (every call is
//! told the time in milliseconds); the server ([`crate::server`]) applies them at the edge.
//!
//! A broker that users point real applications at meets clients that misbehave: a pool that
//! opens a thousand sockets and never uses them, a peer that sends half a request and stops,
//! many peers that each announce a 100 MiB frame. Kafka has one setting against each, and so
//! do we, under the same names:
//!
//! | Kafka setting              | flag                           | default    | what it bounds |
//! |----------------------------|--------------------------------|------------|----------------|
//! | `max.connections`          | `--max-connections`            | 1 024      | open connections; the acceptor *waits* for a free slot |
//! | `max.connections.per.ip`   | `--max-connections-per-ip`     | unlimited  | open connections from one address; more are closed at once |
//! | `connections.max.idle.ms`  | `--connections-max-idle-ms`    | 600 000    | time between requests; an idle connection is closed and frees its slot |
//! | (none)                     | `--request-read-timeout-ms`    | 30 000     | time from a frame's first byte to its last |
//! | `queued.max.request.bytes` | `--queued-max-request-bytes`   | 200 MiB    | announced bytes of the requests being read, all connections together |
//!
//! What each piece decides:
//!
//! - [`ConnectionQuotas`] is Kafka's `ConnectionQuotas`: a slot is taken when a connection is
//!   accepted and given back when it closes. When every slot is taken the acceptor stops
//!   accepting until one frees (Kafka's `waitForConnectionSlot`: new clients queue in the
//!   listen backlog instead of being turned away), so idle connections are what must be
//!   bounded, by the idle timeout. A connection from an address that already has
//!   `max_connections_per_ip` is closed as soon as it is accepted
//!   (`TooManyConnectionsException`).
//! - [`ReadClock`] says when a connection's read gives up: `connections_max_idle_ms` after
//!   its last activity while no frame has begun, `request_read_timeout_ms` after the first
//!   byte of a frame once one has (a slow-loris connection that dribbles a frame byte by byte
//!   is closed by the second, though every byte is activity).
//! - [`RequestMemoryPool`] is Kafka's `MemoryPool` for requests: once a frame's 4-byte length
//!   prefix has arrived, the connection asks the pool for the announced size *before* it
//!   reads (and so before it buffers) the rest. When the pool has not that much left the
//!   connection stops reading until another request's bytes are given back: backpressure
//!   through TCP, not an allocation. Many connections announcing large frames therefore
//!   hold at most `queued_max_request_bytes` between them, whatever they announce.
//!
//! ## Differences from Kafka
//! - Kafka's pool is not strict: it grants a request whenever *any* memory is left, so it
//!   can overshoot by one request. Ours never exceeds its capacity, which must therefore be
//!   at least the largest frame accepted (`--max-frame-bytes`), or such a frame could never
//!   be read. Kafka's default is no pool at all (`-1`); ours is 200 MiB (two frames of
//!   Kafka's largest default size).
//! - Kafka has no read timeout: its idle timer counts any byte as activity. The read timeout
//!   is ours, and starts again once the pool grants the frame (a wait the broker imposed is
//!   not the client's fault).
//! - No `max.connections.per.ip.overrides`, no connection-creation rate quotas
//!   (`max.connection.creation.rate`), no per-listener limits: there is one listener.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// Default `connections.max.idle.ms`: Kafka's 10 minutes.
pub const DEFAULT_CONNECTIONS_MAX_IDLE_MS: u64 = 600_000;

/// Default read timeout of one request frame: a client's own `request.timeout.ms` default
/// (30 s), after which it has given up on the request anyway.
pub const DEFAULT_REQUEST_READ_TIMEOUT_MS: u64 = 30_000;

/// Default `queued.max.request.bytes`: 200 MiB, two frames of the largest default size.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 200 * 1024 * 1024;

/// The limits, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Open connections at most (Kafka's `max.connections`).
    pub max_connections: usize,
    /// Open connections from one address at most (Kafka's `max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Close a connection this long after its last activity when no frame has begun
    /// (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Close a connection this long after the first byte of a frame that is not complete.
    pub request_read_timeout_ms: u64,
    /// Announced bytes of requests being read, all connections together (Kafka's
    /// `queued.max.request.bytes`).
    pub queued_max_request_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_connections: crate::server::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: usize::MAX,
            connections_max_idle_ms: DEFAULT_CONNECTIONS_MAX_IDLE_MS,
            request_read_timeout_ms: DEFAULT_REQUEST_READ_TIMEOUT_MS,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
        }
    }
}

/// Why a set of limits cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// A count or duration that must be positive is 0.
    Zero(&'static str),
    /// The pool is smaller than the largest frame accepted, which could never be read.
    PoolBelowFrame {
        /// `queued_max_request_bytes`.
        pool_bytes: usize,
        /// `max_frame_bytes`.
        max_frame_bytes: usize,
    },
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::Zero(what) => write!(f, "{what} must be at least 1"),
            LimitsError::PoolBelowFrame {
                pool_bytes,
                max_frame_bytes,
            } => write!(
                f,
                "queued max request bytes ({pool_bytes}) must be at least the max frame bytes \
                 ({max_frame_bytes}), or a frame of that size could never be read"
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

impl LimitsConfig {
    /// Checks that the limits can all be met with frames of up to `max_frame_bytes`.
    pub fn check(&self, max_frame_bytes: usize) -> Result<(), LimitsError> {
        let positive = [
            (self.max_connections as u64, "max connections"),
            (self.max_connections_per_ip as u64, "max connections per ip"),
            (self.connections_max_idle_ms, "connections max idle ms"),
            (self.request_read_timeout_ms, "request read timeout ms"),
            (
                self.queued_max_request_bytes as u64,
                "queued max request bytes",
            ),
        ];
        if let Some((_, what)) = positive.iter().find(|(n, _)| *n == 0) {
            return Err(LimitsError::Zero(what));
        }
        if self.queued_max_request_bytes < max_frame_bytes {
            return Err(LimitsError::PoolBelowFrame {
                pool_bytes: self.queued_max_request_bytes,
                max_frame_bytes,
            });
        }
        Ok(())
    }
}

/// Why a connection was closed, for the counters and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed it (between frames or inside one).
    ClientClosed,
    /// No frame began within `connections_max_idle_ms` of the last activity.
    Idle,
    /// A frame began but was not complete within `request_read_timeout_ms`.
    ReadTimeout,
    /// The length prefix announced more than `max_frame_bytes`, or a negative size.
    FrameTooLarge,
    /// A frame that could not be decoded or is not served.
    BadRequest,
    /// A failed `acks=0` produce (Kafka closes so that the client notices).
    AcksZeroFailure,
    /// Reading or writing the socket failed, or an answer could not be encoded.
    Io,
    /// The broker is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order the counters list them.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::ClientClosed,
        CloseReason::Idle,
        CloseReason::ReadTimeout,
        CloseReason::FrameTooLarge,
        CloseReason::BadRequest,
        CloseReason::AcksZeroFailure,
        CloseReason::Io,
        CloseReason::Shutdown,
    ];

    /// The label value in metrics: `client_closed`, `idle`, ...
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Idle => "idle",
            CloseReason::ReadTimeout => "read_timeout",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::BadRequest => "bad_request",
            CloseReason::AcksZeroFailure => "acks_zero_failure",
            CloseReason::Io => "io",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// A connection turned away on accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Its address already has `max_connections_per_ip` open.
    MaxConnectionsPerIp {
        /// The limit.
        limit: usize,
    },
    /// Every slot was taken (the acceptor should have waited: see [`ConnectionQuotas`]).
    MaxConnections {
        /// The limit.
        limit: usize,
    },
}

impl Rejected {
    /// The label value in metrics: `max_connections_per_ip` or `max_connections`.
    pub fn name(self) -> &'static str {
        match self {
            Rejected::MaxConnectionsPerIp { .. } => "max_connections_per_ip",
            Rejected::MaxConnections { .. } => "max_connections",
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::MaxConnectionsPerIp { limit } => {
                write!(f, "the address already has {limit} connections open")
            }
            Rejected::MaxConnections { limit } => {
                write!(f, "{limit} connections are open, the limit")
            }
        }
    }
}

/// What the connection counters say, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted and admitted since start.
    pub opened_total: u64,
    /// Connections closed at once on accept, by reason (`Rejected::name`).
    pub rejected_total: Vec<(&'static str, u64)>,
    /// Times the acceptor found every slot taken and waited for one.
    pub acceptor_waits_total: u64,
    /// Connections closed, by reason (`CloseReason::name`).
    pub closed_total: Vec<(&'static str, u64)>,
}

/// Kafka's `ConnectionQuotas`: slots under `max_connections`, and connections per address.
#[derive(Clone, Debug)]
pub struct ConnectionQuotas {
    max_connections: usize,
    max_connections_per_ip: usize,
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    opened_total: u64,
    rejected_per_ip_total: u64,
    rejected_total: u64,
    acceptor_waits_total: u64,
    closed_total: HashMap<CloseReason, u64>,
}

impl ConnectionQuotas {
    /// Quotas with nothing open.
    pub fn new(config: &LimitsConfig) -> ConnectionQuotas {
        ConnectionQuotas {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            open: 0,
            per_ip: HashMap::new(),
            opened_total: 0,
            rejected_per_ip_total: 0,
            rejected_total: 0,
            acceptor_waits_total: 0,
            closed_total: HashMap::new(),
        }
    }

    /// True when a slot is free: the acceptor may accept one more connection.
    pub fn slot_available(&self) -> bool {
        self.open < self.max_connections
    }

    /// Counts one wait of the acceptor for a free slot.
    pub fn acceptor_waited(&mut self) {
        self.acceptor_waits_total += 1;
    }

    /// Takes a slot for a connection accepted from `ip`, or says why it must be closed.
    pub fn open(&mut self, ip: IpAddr) -> Result<(), Rejected> {
        if !self.slot_available() {
            self.rejected_total += 1;
            return Err(Rejected::MaxConnections {
                limit: self.max_connections,
            });
        }
        let from_ip = self.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_connections_per_ip {
            self.rejected_per_ip_total += 1;
            return Err(Rejected::MaxConnectionsPerIp {
                limit: self.max_connections_per_ip,
            });
        }
        *from_ip += 1;
        self.open += 1;
        self.opened_total += 1;
        Ok(())
    }

    /// Gives back the slot of a connection from `ip` that [`open`](Self::open) admitted.
    pub fn close(&mut self, ip: IpAddr, reason: CloseReason) {
        let from_ip = self
            .per_ip
            .get_mut(&ip)
            .expect("close is called once per admitted connection");
        assert!(*from_ip > 0 && self.open > 0, "a slot is given back twice");
        *from_ip -= 1;
        if *from_ip == 0 {
            self.per_ip.remove(&ip);
        }
        self.open -= 1;
        *self.closed_total.entry(reason).or_insert(0) += 1;
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// The counters.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: self.open,
            opened_total: self.opened_total,
            rejected_total: vec![
                (
                    Rejected::MaxConnectionsPerIp { limit: 0 }.name(),
                    self.rejected_per_ip_total,
                ),
                (
                    Rejected::MaxConnections { limit: 0 }.name(),
                    self.rejected_total,
                ),
            ],
            acceptor_waits_total: self.acceptor_waits_total,
            closed_total: CloseReason::ALL
                .iter()
                .map(|r| (r.name(), self.closed_total.get(r).copied().unwrap_or(0)))
                .collect(),
        }
    }
}

/// What the request memory pool's counters say, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's size (`queued_max_request_bytes`).
    pub capacity_bytes: usize,
    /// Bytes granted to frames being read or served now.
    pub in_use_bytes: usize,
    /// The most ever in use at once: never above `capacity_bytes`.
    pub peak_in_use_bytes: usize,
    /// Frames granted since start.
    pub granted_total: u64,
    /// Times a frame found too little left and had to wait.
    pub waits_total: u64,
    /// Frames waiting for bytes now.
    pub waiting: usize,
}

/// Kafka's `MemoryPool` for requests, strict: bytes are granted to a frame before it is read,
/// never more than the capacity in all.
#[derive(Clone, Debug)]
pub struct RequestMemoryPool {
    capacity_bytes: usize,
    in_use_bytes: usize,
    peak_in_use_bytes: usize,
    granted_total: u64,
    waits_total: u64,
    waiting: usize,
}

impl RequestMemoryPool {
    /// An empty pool of `capacity_bytes`.
    pub fn new(capacity_bytes: usize) -> RequestMemoryPool {
        RequestMemoryPool {
            capacity_bytes,
            in_use_bytes: 0,
            peak_in_use_bytes: 0,
            granted_total: 0,
            waits_total: 0,
            waiting: 0,
        }
    }

    /// Grants `bytes` if that much is left; otherwise grants nothing (the caller waits for a
    /// [`release`](Self::release) and asks again). `bytes` above the capacity can never be
    /// granted: the server refuses such frames first (its `max_frame_bytes` is at most the
    /// capacity, see [`LimitsConfig::check`]).
    pub fn try_allocate(&mut self, bytes: usize) -> bool {
        if bytes > self.capacity_bytes - self.in_use_bytes {
            return false;
        }
        self.in_use_bytes += bytes;
        self.peak_in_use_bytes = self.peak_in_use_bytes.max(self.in_use_bytes);
        self.granted_total += 1;
        true
    }

    /// Gives back `bytes` of an earlier grant.
    pub fn release(&mut self, bytes: usize) {
        assert!(
            bytes <= self.in_use_bytes,
            "released {bytes} bytes with only {} in use",
            self.in_use_bytes
        );
        self.in_use_bytes -= bytes;
    }

    /// Counts a frame that starts waiting for bytes.
    pub fn wait_started(&mut self) {
        self.waits_total += 1;
        self.waiting += 1;
    }

    /// Counts a frame that stops waiting (granted, or its connection closed).
    pub fn wait_ended(&mut self) {
        assert!(self.waiting > 0, "a wait ended that never started");
        self.waiting -= 1;
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            capacity_bytes: self.capacity_bytes,
            in_use_bytes: self.in_use_bytes,
            peak_in_use_bytes: self.peak_in_use_bytes,
            granted_total: self.granted_total,
            waits_total: self.waits_total,
            waiting: self.waiting,
        }
    }
}

/// Which timeout a connection's read is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No frame has begun: `connections_max_idle_ms` after the last activity.
    Idle,
    /// A frame has begun: `request_read_timeout_ms` after its first byte (or its grant).
    ReadTimeout,
}

impl Expiry {
    /// Why a connection whose deadline passed is closed.
    pub fn close_reason(self) -> CloseReason {
        match self {
            Expiry::Idle => CloseReason::Idle,
            Expiry::ReadTimeout => CloseReason::ReadTimeout,
        }
    }
}

/// When one connection's read gives up, told the time in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadClock {
    connections_max_idle_ms: u64,
    request_read_timeout_ms: u64,
    last_activity_ms: u64,
    frame_started_ms: Option<u64>,
}

impl ReadClock {
    /// A connection accepted at `now_ms`, with no frame begun.
    pub fn new(config: &LimitsConfig, now_ms: u64) -> ReadClock {
        ReadClock {
            connections_max_idle_ms: config.connections_max_idle_ms,
            request_read_timeout_ms: config.request_read_timeout_ms,
            last_activity_ms: now_ms,
            frame_started_ms: None,
        }
    }

    /// Bytes arrived at `now_ms`; `frame_begun` when the buffer now holds part of a frame.
    /// The first such bytes start the read timeout.
    pub fn bytes_arrived(&mut self, now_ms: u64, frame_begun: bool) {
        self.last_activity_ms = now_ms;
        if frame_begun && self.frame_started_ms.is_none() {
            self.frame_started_ms = Some(now_ms);
        }
    }

    /// The pool granted the frame at `now_ms`: the read timeout starts again from here.
    pub fn granted(&mut self, now_ms: u64) {
        self.frame_started_ms = Some(now_ms);
    }

    /// A frame is complete, or its answer was written, at `now_ms`: idle from here, unless
    /// the buffer already holds part of the next frame (`next_frame_begun`).
    pub fn frame_done(&mut self, now_ms: u64, next_frame_begun: bool) {
        self.last_activity_ms = now_ms;
        self.frame_started_ms = next_frame_begun.then_some(now_ms);
    }

    /// When the read gives up, and under which timeout.
    pub fn deadline_ms(&self) -> (u64, Expiry) {
        match self.frame_started_ms {
            Some(started) => (
                started.saturating_add(self.request_read_timeout_ms),
                Expiry::ReadTimeout,
            ),
            None => (
                self.last_activity_ms
                    .saturating_add(self.connections_max_idle_ms),
                Expiry::Idle,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LimitsConfig {
        LimitsConfig {
            max_connections: 2,
            max_connections_per_ip: 1,
            connections_max_idle_ms: 1_000,
            request_read_timeout_ms: 100,
            queued_max_request_bytes: 1_000,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_second_connection_from_one_address_is_rejected_and_counted() {
        let mut quotas = ConnectionQuotas::new(&config());
        assert_eq!(quotas.open(A), Ok(()));
        assert_eq!(
            quotas.open(A),
            Err(Rejected::MaxConnectionsPerIp { limit: 1 })
        );
        assert_eq!(quotas.open(B), Ok(()));
        let stats = quotas.stats();
        assert_eq!(stats.open, 2);
        assert_eq!(stats.rejected_total[0], ("max_connections_per_ip", 1));
    }

    #[test]
    fn a_closed_connection_gives_its_slot_back() {
        let mut quotas = ConnectionQuotas::new(&LimitsConfig {
            max_connections_per_ip: 5,
            ..config()
        });
        quotas.open(A).expect("first");
        quotas.open(A).expect("second");
        assert!(!quotas.slot_available(), "two slots, two connections");
        quotas.close(A, CloseReason::Idle);
        assert!(quotas.slot_available());
        assert_eq!(quotas.open_from(A), 1);
        let stats = quotas.stats();
        assert!(stats.closed_total.contains(&("idle", 1)), "{stats:?}");
        assert_eq!(stats.opened_total, 2);
    }

    #[test]
    fn with_every_slot_taken_open_refuses_rather_than_overshoot() {
        let mut quotas = ConnectionQuotas::new(&LimitsConfig {
            max_connections_per_ip: 5,
            ..config()
        });
        quotas.open(A).expect("first");
        quotas.open(B).expect("second");
        assert_eq!(quotas.open(B), Err(Rejected::MaxConnections { limit: 2 }));
        assert_eq!(quotas.stats().open, 2);
    }

    #[test]
    #[should_panic(expected = "once per admitted connection")]
    fn closing_a_connection_never_opened_is_a_bug() {
        ConnectionQuotas::new(&config()).close(A, CloseReason::Io);
    }

    #[test]
    fn the_pool_never_grants_past_its_capacity() {
        let mut pool = RequestMemoryPool::new(1_000);
        assert!(pool.try_allocate(600));
        assert!(!pool.try_allocate(600), "600 + 600 > 1000");
        assert!(pool.try_allocate(400));
        assert!(!pool.try_allocate(1));
        pool.release(600);
        assert!(pool.try_allocate(600));
        let stats = pool.stats();
        assert_eq!(stats.in_use_bytes, 1_000);
        assert_eq!(stats.peak_in_use_bytes, 1_000);
        assert_eq!(stats.granted_total, 3);
    }

    #[test]
    fn an_empty_frame_is_granted_even_from_a_full_pool() {
        let mut pool = RequestMemoryPool::new(10);
        assert!(pool.try_allocate(10));
        assert!(pool.try_allocate(0));
    }

    #[test]
    fn waits_are_counted_while_they_last() {
        let mut pool = RequestMemoryPool::new(10);
        pool.wait_started();
        pool.wait_started();
        pool.wait_ended();
        let stats = pool.stats();
        assert_eq!((stats.waits_total, stats.waiting), (2, 1));
    }

    #[test]
    #[should_panic(expected = "released 5 bytes with only 0 in use")]
    fn releasing_more_than_granted_is_a_bug() {
        RequestMemoryPool::new(10).release(5);
    }

    #[test]
    fn an_idle_connection_expires_after_the_idle_timeout_from_its_last_activity() {
        let mut clock = ReadClock::new(&config(), 0);
        assert_eq!(clock.deadline_ms(), (1_000, Expiry::Idle));
        clock.frame_done(500, false);
        assert_eq!(clock.deadline_ms(), (1_500, Expiry::Idle));
    }

    #[test]
    fn a_begun_frame_expires_after_the_read_timeout_from_its_first_byte() {
        let mut clock = ReadClock::new(&config(), 0);
        clock.bytes_arrived(10, true);
        assert_eq!(clock.deadline_ms(), (110, Expiry::ReadTimeout));
        // A dribble of bytes does not move the deadline: slow-loris is closed at 110.
        clock.bytes_arrived(50, true);
        clock.bytes_arrived(90, true);
        assert_eq!(clock.deadline_ms(), (110, Expiry::ReadTimeout));
        assert_eq!(Expiry::ReadTimeout.close_reason(), CloseReason::ReadTimeout);
    }

    #[test]
    fn a_grant_restarts_the_read_timeout_and_a_done_frame_makes_the_connection_idle() {
        let mut clock = ReadClock::new(&config(), 0);
        clock.bytes_arrived(10, true);
        clock.granted(400);
        assert_eq!(clock.deadline_ms(), (500, Expiry::ReadTimeout));
        clock.frame_done(450, false);
        assert_eq!(clock.deadline_ms(), (1_450, Expiry::Idle));
        clock.frame_done(460, true);
        assert_eq!(clock.deadline_ms(), (560, Expiry::ReadTimeout));
    }

    #[test]
    fn limits_that_cannot_work_are_refused_by_name() {
        assert_eq!(config().check(1_000), Ok(()));
        assert_eq!(
            config().check(1_001),
            Err(LimitsError::PoolBelowFrame {
                pool_bytes: 1_000,
                max_frame_bytes: 1_001
            })
        );
        let zero_idle = LimitsConfig {
            connections_max_idle_ms: 0,
            ..config()
        };
        assert_eq!(
            zero_idle.check(10),
            Err(LimitsError::Zero("connections max idle ms"))
        );
        assert!(
            LimitsError::Zero("max connections")
                .to_string()
                .contains("max connections")
        );
    }
}
