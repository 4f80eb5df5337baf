//! A Kafka-aware TCP proxy that injects the faults idempotence exists for.
//!
//! The simulator (`idempo-sim`) loses acknowledgements inside one process. This module does
//! the same to *real* clients over *real* sockets: it sits between a Kafka client and a
//! broker (idempo's, or any other single Kafka-compatible broker), relays Kafka frames, and,
//! from a seed, loses, duplicates, delays or cuts some of them. Pointed at `idempo-broker`
//! it shows librdkafka, kafka-python or kafkajs retrying a batch whose ack was lost and the
//! broker answering the retry with the original offset; with idempotence off, the same
//! faults write duplicates.
//!
//! ## How the proxy reads the stream
//!
//! Every Kafka request and response is a frame: a 4-byte big-endian length, then the bytes
//! ([`crate::kafka_codec`]). The proxy reads whole frames (check-then-parse), and from each
//! request it reads only the header: api key, api version and correlation id, plus `acks`
//! for a Produce request (an `acks=0` Produce gets no answer, so no answer may be waited
//! for). A response header carries nothing but the correlation id, so the proxy keeps, per
//! connection, a queue of the requests in flight with their api key and with the *fate*
//! decided for their answer when the request went by. Kafka answers the requests of one
//! connection in the order they were sent, so the answer at the front of the queue is the
//! next to arrive; its correlation id is checked against it.
//!
//! ## The faults, and what each means to a Kafka client
//!
//! | fault | what the proxy does | what the broker saw | what an idempotent client does |
//! |---|---|---|---|
//! | drop Produce response (lost ack) | forwards the request, swallows its answer | the batch, appended | times out or sees the connection close, retries the batch with the same producer id, epoch and sequence; Kafka answers the retry with the original offset and appends nothing |
//! | drop Produce request | does not forward it | nothing | retries after the timeout or close; if a later batch of the same producer went by in the meantime, the broker answers it OUT_OF_ORDER_SEQUENCE_NUMBER and the client retries both, in order |
//! | duplicate Produce request | forwards it twice, swallows the second answer | the batch twice | nothing: the client sees one answer; the broker recognised the copy by its sequence and appended once |
//! | delay | holds a frame for a while; frames behind it wait (TCP is FIFO, so order is kept) | the same stream, later | may hit `request.timeout.ms`, then behaves as for a lost ack |
//! | cut | closes both sides instead of forwarding a frame | whatever came before | every request in flight fails; the client reconnects and retries them all |
//!
//! Without idempotence the first and third rows write the batch twice: that is the
//! duplicate Kafka's idempotent producer exists to prevent, and the reason the proxy's
//! tests also run against a broker with idempotence off (a test that sees no duplicates
//! there did not inject its fault).
//!
//! ## Why "then close the connection" matters
//!
//! A real network does not lose one frame out of a TCP stream: TCP retransmits, or the
//! connection breaks. A proxy that silently swallows one answer and keeps the connection
//! open creates a stream no network produces, and clients react to it in their own ways:
//! librdkafka and kafka-python wait for `request.timeout.ms` (30 s by default) before they
//! give up on the request, close the connection and retry, and the Java client checks that
//! answers arrive in correlation order and fails when the next answer is not the one it
//! expects. Closing both sides right after the fault is what a broken connection looks like:
//! every client notices at once, fails every request in flight on that connection, reconnects
//! and retries. So each loss fault can be followed by a close ([`Fault::close_after`]), and
//! the real-client tests turn it on; with it off, the proxy shows what the broker does with a
//! gap (the `--network proxy` model of the simulator), at the price of slow tests.
//!
//! ## Determinism
//!
//! Every connection gets its own dice, seeded from the proxy's seed, the connection's number
//! (in accept order) and the direction. The requests of a connection are judged in order by
//! one die and the responses by the other, so the same seed and the same frames give the same
//! faults, whatever the timing of the other direction. An optional budget
//! ([`ProxyConfig::max_faults`]) bounds the faults over the whole proxy, so a test can say
//! "lose exactly the first ack". Delays do not count against the budget.
//!
//! ## Metadata, and a cluster behind the proxy
//!
//! A client learns the brokers' addresses from Metadata and connects there, past the proxy,
//! unless the brokers advertise the proxy's addresses (`idempo-broker --advertise`, tansu's
//! `--advertised-listener-url`, Kafka's `advertised.listeners`) or the proxy rewrites the
//! answers ([`ProxyConfig::rewrite_metadata`]).
//!
//! The proxy fronts one broker or every broker of a cluster: one listener per broker
//! (`listen` → `upstream` for broker 0, [`ProxyConfig::more_brokers`] for the others), each
//! relaying to its own broker. Rewriting gives each broker address in Metadata (and in
//! FindCoordinator and DescribeCluster answers, where a client learns addresses too) the
//! proxy's listener *for that broker*: the broker is recognised by its advertised
//! `host:port`, which must be the address given as its upstream (an IP address, or
//! `localhost`). So a client that follows a leader from broker 0 to broker 2 moves from the
//! proxy's first listener to its third and stays behind the proxy. A single-broker proxy
//! gives every broker in the answer its one address, as it always has.
//!
//! Faults are per broker: [`ProxyConfig::broker_faults`] replaces the proxy's faults for the
//! connections of one broker (with [`FaultSet::NONE`] a broker is relayed faithfully), so a
//! test can lose acks on the leader only. Each broker's connections are numbered and seeded
//! apart ([`broker_seed`]), and the fault budget is shared by all.
//!
//! ## What we deliberately leave out
//! - Brokers are fixed at start: a broker that appears later in Metadata and matches no
//!   upstream is passed on unchanged (with a warning), and clients told it leave the proxy.
//! - No TLS or SASL: the proxy reads frame headers, so it needs plaintext.
//! - Faults are per frame, not per byte: the proxy never tears a frame in half.

use crate::frames::{ReadEnd, read_frame};
use crate::kafka_codec::{self, LENGTH_PREFIX_BYTES};
use crate::server::Advertised;
use bytes::{Buf, Bytes, BytesMut};
use idempo_testkit::splitmix::SplitMix64;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse, ProduceResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, Level, debug, info, info_span, warn};

/// Requests in flight on one connection at most; a client with more is cut off. Kafka
/// clients keep at most five Produce requests in flight per connection, plus a few others.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 1024;

/// One kind of loss or duplication: how often, and whether the connection is closed after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// Chance, from 0 to 1, that an eligible frame suffers the fault.
    pub probability: f64,
    /// Close both sides of the connection right after the fault, as a broken TCP connection
    /// would (see the module doc for why real clients need this).
    pub close_after: bool,
}

impl Fault {
    /// A fault that never happens.
    pub const NEVER: Fault = Fault {
        probability: 0.0,
        close_after: false,
    };

    /// A fault with `probability`, followed by closing the connection or not.
    pub fn new(probability: f64, close_after: bool) -> Fault {
        Fault {
            probability,
            close_after,
        }
    }
}

/// Holding frames back for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    /// Chance, in millionths, that a frame is delayed.
    pub probability_ppm: u32,
    /// Shortest delay.
    pub min_ms: u64,
    /// Longest delay (inclusive).
    pub max_ms: u64,
}

/// The faults of one broker's connections: the proxy's defaults
/// ([`ProxyConfig::faults`]), or a broker's own ([`ProxyConfig::broker_faults`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultSet {
    /// Lose the answer to a Produce request after the broker has appended (a lost ack).
    pub drop_produce_response: Fault,
    /// Lose a Produce request before the broker sees it.
    pub drop_produce_request: Fault,
    /// Send a Produce request to the broker twice and hide the second answer.
    pub duplicate_produce: Fault,
    /// Chance, from 0 to 1, that a frame (either direction) closes the connection instead of
    /// being forwarded.
    pub cut_probability: f64,
}

impl FaultSet {
    /// No fault at all: the broker's connections are relayed faithfully.
    pub const NONE: FaultSet = FaultSet {
        drop_produce_response: Fault::NEVER,
        drop_produce_request: Fault::NEVER,
        duplicate_produce: Fault::NEVER,
        cut_probability: 0.0,
    };
}

/// One more broker of a cluster behind the proxy: its own listener, relayed to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Address the proxy listens on for this broker.
    pub listen: SocketAddr,
    /// The broker.
    pub upstream: SocketAddr,
    /// Address written into rewritten answers for this broker; `None` is the address bound.
    pub advertise: Option<Advertised>,
}

/// Everything the proxy needs to start.
///
/// `listen`, `upstream` and `advertise` describe broker 0 (the only one of a single-broker
/// proxy); [`ProxyConfig::more_brokers`] the others of a cluster, broker `i` at
/// `more_brokers[i - 1]`. A broker here is numbered by its place in this list, which for
/// `idempo-broker --brokers N` (listed in node id order) is its node id.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Address to listen on for broker 0 (loopback unless asked otherwise).
    pub listen: SocketAddr,
    /// Broker 0: every connection accepted on `listen` is relayed to it.
    pub upstream: SocketAddr,
    /// Brokers 1, 2, ... of a cluster, each behind its own listener.
    pub more_brokers: Vec<Route>,
    /// Seed of every connection's dice (see "Determinism" in the module doc).
    pub seed: u64,
    /// Lose the answer to a Produce request after the broker has appended (a lost ack).
    pub drop_produce_response: Fault,
    /// Lose a Produce request before the broker sees it.
    pub drop_produce_request: Fault,
    /// Send a Produce request to the broker twice and hide the second answer.
    pub duplicate_produce: Fault,
    /// Hold frames (either direction) back.
    pub delay: Option<Delay>,
    /// Chance, from 0 to 1, that a frame (either direction) closes the connection instead of
    /// being forwarded.
    pub cut_probability: f64,
    /// Per broker (by its number, see above), faults that replace the four above for that
    /// broker's connections; [`FaultSet::NONE`] relays a broker faithfully.
    pub broker_faults: BTreeMap<usize, FaultSet>,
    /// Injected faults over the whole proxy at most (delays not counted); `None` is no limit.
    pub max_faults: Option<u64>,
    /// Rewrite the broker addresses in Metadata, FindCoordinator and DescribeCluster answers
    /// to the proxy's own listeners, for brokers that cannot be told to advertise the proxy
    /// (see "Metadata" in the module doc).
    pub rewrite_metadata: bool,
    /// Broker 0's address written into rewritten answers; `None` is the address bound.
    pub advertise: Option<Advertised>,
    /// Largest frame relayed in either direction; a larger one closes the connection.
    pub max_frame_bytes: usize,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 19092)),
            upstream: SocketAddr::from(([127, 0, 0, 1], 9092)),
            more_brokers: Vec::new(),
            seed: 0,
            drop_produce_response: Fault::NEVER,
            drop_produce_request: Fault::NEVER,
            duplicate_produce: Fault::NEVER,
            delay: None,
            cut_probability: 0.0,
            broker_faults: BTreeMap::new(),
            max_faults: None,
            rewrite_metadata: false,
            advertise: None,
            max_frame_bytes: kafka_codec::DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl ProxyConfig {
    /// The faults every broker suffers unless [`ProxyConfig::broker_faults`] says otherwise.
    pub fn faults(&self) -> FaultSet {
        FaultSet {
            drop_produce_response: self.drop_produce_response,
            drop_produce_request: self.drop_produce_request,
            duplicate_produce: self.duplicate_produce,
            cut_probability: self.cut_probability,
        }
    }

    /// The faults of broker `broker`'s connections.
    pub fn faults_for(&self, broker: usize) -> FaultSet {
        self.broker_faults
            .get(&broker)
            .copied()
            .unwrap_or_else(|| self.faults())
    }

    /// Every broker's route, broker 0 first.
    pub fn routes(&self) -> Vec<Route> {
        std::iter::once(Route {
            listen: self.listen,
            upstream: self.upstream,
            advertise: self.advertise.clone(),
        })
        .chain(self.more_brokers.iter().cloned())
        .collect()
    }

    /// Checks that probabilities lie in 0..=1, delays are ordered and per-broker faults name
    /// a broker behind the proxy.
    pub fn validate(&self) -> Result<(), ProxyConfigError> {
        let brokers = 1 + self.more_brokers.len();
        if let Some((&broker, _)) = self.broker_faults.range(brokers..).next() {
            return Err(ProxyConfigError::UnknownBroker { broker, brokers });
        }
        let sets = std::iter::once(self.faults()).chain(self.broker_faults.values().copied());
        for set in sets {
            let probabilities = [
                (
                    "drop_produce_response",
                    set.drop_produce_response.probability,
                ),
                ("drop_produce_request", set.drop_produce_request.probability),
                ("duplicate_produce", set.duplicate_produce.probability),
                ("cut_probability", set.cut_probability),
            ];
            for (setting, p) in probabilities {
                if !(0.0..=1.0).contains(&p) {
                    return Err(ProxyConfigError::Probability { setting, value: p });
                }
            }
        }
        if let Some(delay) = self.delay {
            if delay.min_ms > delay.max_ms {
                return Err(ProxyConfigError::DelayRange {
                    min_ms: delay.min_ms,
                    max_ms: delay.max_ms,
                });
            }
            if delay.probability_ppm > 1_000_000 {
                return Err(ProxyConfigError::DelayProbability(delay.probability_ppm));
            }
        }
        Ok(())
    }
}

/// A [`ProxyConfig`] the proxy cannot run with.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyConfigError {
    /// A probability outside 0..=1.
    Probability {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A delay range whose minimum exceeds its maximum.
    DelayRange {
        /// The minimum, ms.
        min_ms: u64,
        /// The maximum, ms.
        max_ms: u64,
    },
    /// A delay probability above 1 000 000 parts per million.
    DelayProbability(u32),
    /// Per-broker faults for a broker the proxy does not front.
    UnknownBroker {
        /// The broker named.
        broker: usize,
        /// Brokers behind the proxy (numbered from 0).
        brokers: usize,
    },
}

impl fmt::Display for ProxyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyConfigError::Probability { setting, value } => {
                write!(f, "{setting} must lie in 0..=1, not {value}")
            }
            ProxyConfigError::DelayRange { min_ms, max_ms } => {
                write!(
                    f,
                    "delay {min_ms}..{max_ms} ms: the minimum exceeds the maximum"
                )
            }
            ProxyConfigError::DelayProbability(ppm) => write!(
                f,
                "the delay probability must lie in 0..=1, not {ppm} parts per million"
            ),
            ProxyConfigError::UnknownBroker { broker, brokers } => write!(
                f,
                "faults for broker {broker}, but the proxy fronts {brokers} broker(s), numbered from 0"
            ),
        }
    }
}

impl std::error::Error for ProxyConfigError {}

/// Live counters of what the proxy did, shared by all connections.
#[derive(Debug, Default)]
pub struct FaultCounts {
    connections: AtomicU64,
    requests_relayed: AtomicU64,
    responses_relayed: AtomicU64,
    dropped_produce_responses: AtomicU64,
    dropped_produce_requests: AtomicU64,
    duplicated_produce_requests: AtomicU64,
    delayed_frames: AtomicU64,
    cuts: AtomicU64,
    closes_after_fault: AtomicU64,
    rewritten_metadata: AtomicU64,
}

/// A snapshot of [`FaultCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultTally {
    /// Client connections accepted.
    pub connections: u64,
    /// Requests forwarded to the broker (a duplicate counts twice).
    pub requests_relayed: u64,
    /// Responses forwarded to the client.
    pub responses_relayed: u64,
    /// Produce answers swallowed after the broker appended (lost acks).
    pub dropped_produce_responses: u64,
    /// Produce requests never forwarded.
    pub dropped_produce_requests: u64,
    /// Produce requests forwarded twice.
    pub duplicated_produce_requests: u64,
    /// Frames held back.
    pub delayed_frames: u64,
    /// Connections cut instead of forwarding a frame.
    pub cuts: u64,
    /// Connections closed right after a loss or duplicate.
    pub closes_after_fault: u64,
    /// Metadata answers whose broker addresses were rewritten.
    pub rewritten_metadata: u64,
}

impl FaultCounts {
    /// The counters now.
    pub fn tally(&self) -> FaultTally {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultTally {
            connections: get(&self.connections),
            requests_relayed: get(&self.requests_relayed),
            responses_relayed: get(&self.responses_relayed),
            dropped_produce_responses: get(&self.dropped_produce_responses),
            dropped_produce_requests: get(&self.dropped_produce_requests),
            duplicated_produce_requests: get(&self.duplicated_produce_requests),
            delayed_frames: get(&self.delayed_frames),
            cuts: get(&self.cuts),
            closes_after_fault: get(&self.closes_after_fault),
            rewritten_metadata: get(&self.rewritten_metadata),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl fmt::Display for FaultTally {
    /// One `name: count` per line, for people and for scripts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = [
            ("connections", self.connections),
            ("requests relayed", self.requests_relayed),
            ("responses relayed", self.responses_relayed),
            ("dropped produce responses", self.dropped_produce_responses),
            ("dropped produce requests", self.dropped_produce_requests),
            (
                "duplicated produce requests",
                self.duplicated_produce_requests,
            ),
            ("delayed frames", self.delayed_frames),
            ("cuts", self.cuts),
            ("closes after fault", self.closes_after_fault),
            ("rewritten metadata", self.rewritten_metadata),
        ];
        for (name, count) in rows {
            writeln!(f, "{name}: {count}")?;
        }
        Ok(())
    }
}

/// A small seeded random source (the workspace's one SplitMix64,
/// [`idempo_testkit::splitmix`]): the same seed gives the same rolls on every machine.
#[derive(Clone, Debug)]
pub struct Dice {
    stream: SplitMix64,
}

impl Dice {
    /// The dice of one direction (`0` requests, `1` responses) of connection `connection`.
    pub fn for_connection(seed: u64, connection: u64, direction: u64) -> Dice {
        let mut mixer = SplitMix64::new(seed ^ connection.wrapping_mul(0xA076_1D64_78BD_642F));
        let state = mixer.next_u64() ^ direction.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        Dice {
            stream: SplitMix64::new(state),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.stream.next_u64()
    }

    /// True with chance `probability` (always draws, so later rolls do not depend on it).
    pub fn chance(&mut self, probability: f64) -> bool {
        // 53 random bits make a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < probability
    }

    /// A number in `min..=max` (always draws).
    pub fn between(&mut self, min: u64, max: u64) -> u64 {
        let draw = self.next_u64();
        match (max - min).checked_add(1) {
            Some(span) => min + draw % span,
            None => draw,
        }
    }
}

/// The seed of broker `broker`'s connections: the proxy's seed for broker 0 (so a
/// single-broker proxy rolls as it always did), mixed with the broker's number for the others.
/// Connections are numbered per broker, in accept order, so the faults of one broker's
/// connections do not depend on how the accepts of the others interleave.
pub fn broker_seed(seed: u64, broker: usize) -> u64 {
    seed ^ (broker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The bounded, shared count of faults still allowed.
#[derive(Debug)]
struct Budget {
    left: Option<AtomicU64>,
}

impl Budget {
    /// Takes one fault from the budget; false when it is spent.
    fn take(&self) -> bool {
        match &self.left {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// What a request frame's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Raw api key (also keys `kafka-protocol` does not know are relayed).
    pub api_key: i16,
    /// Api version.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// For Produce: the `acks` field (0 means no answer will come); `None` otherwise or when
    /// unreadable.
    pub acks: Option<i16>,
}

impl RequestInfo {
    /// Whether this is a Produce request.
    pub fn is_produce(&self) -> bool {
        self.api_key == ApiKey::Produce as i16
    }

    /// Whether the broker will answer (everything but an `acks=0` Produce).
    pub fn expects_response(&self) -> bool {
        !(self.is_produce() && self.acks == Some(0))
    }
}

/// Reads the header of a request frame (without its length prefix); `None` when it is
/// shorter than the fixed 8 bytes.
pub fn read_request_info(frame: &Bytes) -> Option<RequestInfo> {
    let fixed = frame.first_chunk::<8>()?;
    let api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let acks = if api_key == ApiKey::Produce as i16 {
        produce_acks(frame, api_version)
    } else {
        None
    };
    Some(RequestInfo {
        api_key,
        api_version,
        correlation_id,
        acks,
    })
}

/// The `acks` of a Produce request: after the header comes the transactional id (a compact
/// string from v9 on), then `acks`.
fn produce_acks(frame: &Bytes, api_version: i16) -> Option<i16> {
    let mut buf = frame.clone();
    let header_version = ApiKey::Produce.request_header_version(api_version);
    RequestHeader::decode(&mut buf, header_version).ok()?;
    let skip = if api_version >= 9 {
        // Compact nullable string: unsigned varint length + 1 (0 is null).
        let mut length_plus_one: u64 = 0;
        let mut shift = 0;
        loop {
            if !buf.has_remaining() || shift > 28 {
                return None;
            }
            let byte = buf.get_u8();
            length_plus_one |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        usize::try_from(length_plus_one.saturating_sub(1)).ok()?
    } else {
        if buf.remaining() < 2 {
            return None;
        }
        usize::try_from(buf.get_i16()).unwrap_or(0) // -1 is null: nothing to skip
    };
    if buf.remaining() < skip + 2 {
        return None;
    }
    buf.advance(skip);
    Some(buf.get_i16())
}

/// What becomes of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFate {
    /// Forward it; its answer goes back to the client.
    Forward,
    /// Forward it and swallow its answer (a lost ack).
    DropResponse {
        /// Close the connection once the answer has arrived.
        close_after: bool,
    },
    /// Do not forward it.
    DropRequest {
        /// Close the connection at once.
        close_after: bool,
    },
    /// Forward it twice; swallow the second answer.
    Duplicate {
        /// Close the connection once the second answer has arrived.
        close_after: bool,
    },
    /// Close the connection instead of forwarding it.
    Cut,
}

/// Decides, for each request of one connection in order, its fate and its delay. Plain
/// synchronous code over the dice, so its choices can be tested without sockets.
#[derive(Debug)]
pub struct RequestJudge {
    dice: Dice,
}

impl RequestJudge {
    /// The judge of connection `connection` under `seed` (for a broker other than broker
    /// 0, `seed` is [`broker_seed`]'s).
    pub fn new(seed: u64, connection: u64) -> RequestJudge {
        RequestJudge {
            dice: Dice::for_connection(seed, connection, 0),
        }
    }

    /// The fate of the next request. Rolls the same dice whatever the outcome, so one
    /// request's fate never shifts the next one's rolls. At most one fault per request;
    /// `take_budget` is asked only when a fault is about to happen.
    pub fn judge(
        &mut self,
        config: &FaultSet,
        request: &RequestInfo,
        take_budget: impl FnOnce() -> bool,
    ) -> RequestFate {
        let cut = self.dice.chance(config.cut_probability);
        let drop_request = self.dice.chance(config.drop_produce_request.probability);
        let duplicate = self.dice.chance(config.duplicate_produce.probability);
        let drop_response = self.dice.chance(config.drop_produce_response.probability);
        let fate = if cut {
            RequestFate::Cut
        } else if !request.is_produce() {
            RequestFate::Forward
        } else if drop_request {
            RequestFate::DropRequest {
                close_after: config.drop_produce_request.close_after,
            }
        } else if duplicate {
            RequestFate::Duplicate {
                close_after: config.duplicate_produce.close_after,
            }
        } else if drop_response && request.expects_response() {
            RequestFate::DropResponse {
                close_after: config.drop_produce_response.close_after,
            }
        } else {
            RequestFate::Forward
        };
        if fate == RequestFate::Forward || take_budget() {
            fate
        } else {
            RequestFate::Forward
        }
    }

    /// How long to hold the next request back (rolled apart from its fate).
    pub fn delay(&mut self, config: &ProxyConfig) -> Option<Duration> {
        roll_delay(&mut self.dice, config)
    }
}

fn roll_delay(dice: &mut Dice, config: &ProxyConfig) -> Option<Duration> {
    let delay = config.delay?;
    let hit = dice.next_u64() % 1_000_000 < u64::from(delay.probability_ppm);
    let ms = dice.between(delay.min_ms, delay.max_ms);
    hit.then(|| Duration::from_millis(ms))
}

/// An answer the proxy waits for.
#[derive(Clone, Copy, Debug)]
struct Pending {
    correlation_id: i32,
    api_key: i16,
    api_version: i16,
    /// What to do with the answer.
    answer: Answer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Forward,
    /// Swallow it: a lost ack, or the second answer to a duplicated request.
    Swallow {
        close_after: bool,
        lost_ack: bool,
    },
}

/// A bound, not yet running, proxy.
#[derive(Debug)]
pub struct Proxy {
    /// One per broker, broker 0 first.
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ProxyConfig,
    /// Per broker: where to relay, what to advertise, which faults.
    brokers: Vec<Fronted>,
    counts: Arc<FaultCounts>,
    budget: Budget,
}

/// One broker behind the proxy.
#[derive(Debug)]
struct Fronted {
    upstream: SocketAddr,
    /// The proxy's address for this broker, written into rewritten answers.
    advertised: Advertised,
    faults: FaultSet,
    /// Seed of this broker's connections ([`broker_seed`]).
    seed: u64,
}

impl Proxy {
    /// Checks the settings and binds one listener per broker.
    pub async fn bind(config: ProxyConfig) -> io::Result<Proxy> {
        config
            .validate()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let mut listeners = Vec::new();
        let mut brokers = Vec::new();
        for (b, route) in config.routes().into_iter().enumerate() {
            let listener = TcpListener::bind(route.listen).await?;
            let bound = listener.local_addr()?;
            brokers.push(Fronted {
                upstream: route.upstream,
                advertised: route.advertise.unwrap_or(Advertised {
                    host: bound.ip().to_string(),
                    port: bound.port(),
                }),
                faults: config.faults_for(b),
                seed: broker_seed(config.seed, b),
            });
            listeners.push(listener);
        }
        let budget = Budget {
            left: config.max_faults.map(AtomicU64::new),
        };
        let shared = Arc::new(Shared {
            config,
            brokers,
            counts: Arc::default(),
            budget,
        });
        Ok(Proxy { listeners, shared })
    }

    /// Broker 0's address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// Every broker's address actually bound, broker 0 first.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.listeners.iter().map(TcpListener::local_addr).collect()
    }

    /// The live counters; they stay readable after [`Proxy::run`] returns.
    pub fn counts(&self) -> Arc<FaultCounts> {
        self.shared.counts.clone()
    }

    /// Relays connections until `shutdown` completes, then closes every connection.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut acceptors = tokio::task::JoinSet::new();
        for (broker, listener) in self.listeners.into_iter().enumerate() {
            let shared = self.shared.clone();
            let mut stopped = stopped.clone();
            acceptors.spawn(async move {
                let mut accepted_count: u64 = 0;
                let mut connections = crate::process::accept_until(
                    &listener,
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                    "proxy",
                    |client, peer, connections| {
                        let connection = accepted_count;
                        accepted_count += 1;
                        bump(&shared.counts.connections);
                        let span = info_span!("proxy_connection", broker, connection, %peer);
                        connections.spawn(
                            relay(client, broker, connection, shared.clone()).instrument(span),
                        );
                    },
                )
                .await;
                info!(broker, open = connections.len(), "proxy shutting down");
                connections.shutdown().await;
            });
        }
        shutdown.await;
        let _ = stop.send(true);
        while acceptors.join_next().await.is_some() {}
    }
}

impl ProxyConfig {
    /// A proxy in front of every broker of `upstreams` (broker `i` is `upstreams[i]`), each
    /// behind its own listener on `listen_ip` (any free port each), rewriting Metadata, with
    /// no fault yet: set the fault fields afterwards. `upstreams` must not be empty.
    pub fn for_brokers(upstreams: &[SocketAddr], listen_ip: std::net::IpAddr) -> ProxyConfig {
        assert!(!upstreams.is_empty(), "a proxy fronts at least one broker");
        let any = SocketAddr::new(listen_ip, 0);
        ProxyConfig {
            listen: any,
            upstream: upstreams[0],
            more_brokers: upstreams[1..]
                .iter()
                .map(|&upstream| Route {
                    listen: any,
                    upstream,
                    advertise: None,
                })
                .collect(),
            rewrite_metadata: true,
            ..ProxyConfig::default()
        }
    }
}

/// Longest [`discover_brokers`] waits for the bootstrap broker.
pub const DISCOVER_TIMEOUT_MS: u64 = 10_000;

/// The brokers of the cluster `bootstrap` belongs to, in node id order, as its Metadata
/// answer (v1, no topics) lists them, each address resolved: the upstreams of a proxy that
/// fronts a cluster it was given one address of ([`ProxyConfig::for_brokers`]).
pub async fn discover_brokers(bootstrap: SocketAddr) -> io::Result<Vec<SocketAddr>> {
    const METADATA_VERSION: i16 = 1;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let exchange = async {
        let mut stream = TcpStream::connect(bootstrap).await?;
        let mut request = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(METADATA_VERSION)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("idempo-proxy")))
            .encode(
                &mut request,
                ApiKey::Metadata.request_header_version(METADATA_VERSION),
            )
            .map_err(|e| invalid(e.to_string()))?;
        kafka_protocol::messages::MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .encode(&mut request, METADATA_VERSION)
            .map_err(|e| invalid(e.to_string()))?;
        let length = u32::try_from(request.len()).map_err(|e| invalid(e.to_string()))?;
        stream.write_all(&length.to_be_bytes()).await?;
        stream.write_all(&request).await?;
        let mut buf = BytesMut::new();
        read_frame(&mut stream, &mut buf, kafka_codec::DEFAULT_MAX_FRAME_BYTES)
            .await
            .map_err(|end| invalid(format!("no Metadata answer: {}", End::from(end))))
    };
    let frame = tokio::time::timeout(Duration::from_millis(DISCOVER_TIMEOUT_MS), exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no Metadata answer in time"))??;
    let mut body = frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..);
    let mut brokers = ResponseHeader::decode(
        &mut body,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )
    .and_then(|_| MetadataResponse::decode(&mut body, METADATA_VERSION))
    .map_err(|e| invalid(format!("a Metadata answer that does not decode: {e}")))?
    .brokers;
    if brokers.is_empty() {
        return Err(invalid("Metadata lists no broker".to_string()));
    }
    brokers.sort_by_key(|b| b.node_id.0);
    let mut addrs = Vec::with_capacity(brokers.len());
    for broker in &brokers {
        let port = u16::try_from(broker.port)
            .map_err(|_| invalid(format!("broker port {}", broker.port)))?;
        let host = broker.host.as_str();
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| invalid(format!("{host}:{port} resolves to nothing")))?;
        addrs.push(addr);
    }
    Ok(addrs)
}

/// Why a relayed connection ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    UpstreamClosed,
    ClosedMidFrame,
    TooLarge(i32),
    Io(io::Error),
    /// A fault closed it (the log line was written when it happened).
    Fault,
    /// More requests in flight than [`MAX_IN_FLIGHT_PER_CONNECTION`].
    TooManyInFlight,
    /// An answer whose correlation id matches no request in flight.
    UnexpectedAnswer(i32),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::ClientClosed => write!(f, "the client closed the connection"),
            End::UpstreamClosed => write!(f, "the broker closed the connection"),
            End::ClosedMidFrame => write!(f, "a peer closed inside a frame"),
            End::TooLarge(announced) => write!(f, "a {announced}-byte frame exceeds the limit"),
            End::Io(e) => write!(f, "socket error: {e}"),
            End::Fault => write!(f, "a fault closed it"),
            End::TooManyInFlight => write!(
                f,
                "more than {MAX_IN_FLIGHT_PER_CONNECTION} requests in flight"
            ),
            End::UnexpectedAnswer(id) => {
                write!(f, "an answer with correlation id {id} matches no request")
            }
        }
    }
}

/// Relays one client connection to broker `broker` until either side ends it, then closes
/// both.
async fn relay(client: TcpStream, broker: usize, connection: u64, shared: Arc<Shared>) {
    let target = shared.brokers[broker].upstream;
    let upstream = match TcpStream::connect(target).await {
        Ok(upstream) => upstream,
        Err(e) => {
            warn!(upstream = %target, error = %e, "closed connection: cannot reach the upstream broker");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    debug!("opened upstream connection");
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let in_flight = Mutex::new(VecDeque::new());
    let side = Side {
        shared: &shared,
        broker,
        connection,
    };
    let requests = relay_requests(client_read, upstream_write, side, &in_flight);
    let responses = relay_responses(upstream_read, client_write, side, &in_flight);
    // Whichever direction ends first ends both: dropping the other drops its socket halves.
    let end = tokio::select! {
        end = requests => end,
        end = responses => end,
    };
    match end {
        End::ClientClosed => debug!("client closed the connection"),
        End::UpstreamClosed => info!("broker closed the connection; closed the client's"),
        End::Fault => {}
        other => warn!("closed connection: {other}"),
    }
}

/// What both directions of one relayed connection know.
#[derive(Clone, Copy)]
struct Side<'a> {
    shared: &'a Shared,
    broker: usize,
    connection: u64,
}

impl Side<'_> {
    fn fronted(&self) -> &Fronted {
        &self.shared.brokers[self.broker]
    }
}

/// Client → broker: judge each request, remember what to do with its answer, forward it.
async fn relay_requests(
    mut client: OwnedReadHalf,
    mut upstream: OwnedWriteHalf,
    side: Side<'_>,
    in_flight: &Mutex<VecDeque<Pending>>,
) -> End {
    let shared = side.shared;
    let config = &shared.config;
    let counts = &shared.counts;
    let faults = side.fronted().faults;
    let mut judge = RequestJudge::new(side.fronted().seed, side.connection);
    let mut buf = BytesMut::new();
    loop {
        let frame = match read_frame(&mut client, &mut buf, config.max_frame_bytes).await {
            Ok(frame) => frame,
            Err(ReadEnd::Closed) => return End::ClientClosed,
            Err(other) => return other.into(),
        };
        let Some(request) = read_request_info(&frame.slice(LENGTH_PREFIX_BYTES..)) else {
            warn!("closed connection: a request shorter than its header");
            return End::ClosedMidFrame;
        };
        let fate = judge.judge(&faults, &request, || shared.budget.take());
        if let Some(delay) = judge.delay(config) {
            bump(&counts.delayed_frames);
            info!(
                correlation_id = request.correlation_id,
                api = request.api_key,
                delay_ms = delay.as_millis() as u64,
                "delayed request"
            );
            tokio::time::sleep(delay).await;
        }
        let copies = match plan_request(fate, &request, counts) {
            Plan::Send { copies, answers } => {
                let mut queue = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.len() + answers.len() > MAX_IN_FLIGHT_PER_CONNECTION {
                    return End::TooManyInFlight;
                }
                queue.extend(answers);
                copies
            }
            Plan::Skip => continue,
            Plan::Close => return End::Fault,
        };
        for _ in 0..copies {
            if let Err(e) = upstream.write_all(&frame).await {
                return End::Io(e);
            }
            bump(&counts.requests_relayed);
        }
    }
}

/// What the request relay does with one request.
enum Plan {
    Send {
        copies: usize,
        answers: Vec<Pending>,
    },
    Skip,
    Close,
}

/// Turns a fate into copies to send and answers to expect; logs and counts faults.
fn plan_request(fate: RequestFate, request: &RequestInfo, counts: &FaultCounts) -> Plan {
    let pending = |answer| Pending {
        correlation_id: request.correlation_id,
        api_key: request.api_key,
        api_version: request.api_version,
        answer,
    };
    let answered = request.expects_response();
    let correlation_id = request.correlation_id;
    match fate {
        RequestFate::Forward => Plan::Send {
            copies: 1,
            answers: answered
                .then(|| pending(Answer::Forward))
                .into_iter()
                .collect(),
        },
        RequestFate::Cut => {
            bump(&counts.cuts);
            info!(
                correlation_id,
                api = request.api_key,
                "cut the connection instead of forwarding a request"
            );
            Plan::Close
        }
        RequestFate::DropRequest { close_after } => {
            bump(&counts.dropped_produce_requests);
            info!(correlation_id, close_after, "dropped produce request");
            if close_after {
                bump(&counts.closes_after_fault);
                Plan::Close
            } else {
                Plan::Skip
            }
        }
        RequestFate::DropResponse { close_after } => {
            info!(
                correlation_id,
                close_after, "will drop the produce response once the broker answers"
            );
            Plan::Send {
                copies: 1,
                answers: vec![pending(Answer::Swallow {
                    close_after,
                    lost_ack: true,
                })],
            }
        }
        RequestFate::Duplicate { close_after } => {
            bump(&counts.duplicated_produce_requests);
            info!(correlation_id, close_after, "duplicated produce request");
            let answers = if answered {
                vec![
                    pending(Answer::Forward),
                    pending(Answer::Swallow {
                        close_after,
                        lost_ack: false,
                    }),
                ]
            } else {
                Vec::new()
            };
            Plan::Send { copies: 2, answers }
        }
    }
}

/// Broker → client: match each answer to its request, then forward, rewrite or swallow it.
async fn relay_responses(
    mut upstream: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    side: Side<'_>,
    in_flight: &Mutex<VecDeque<Pending>>,
) -> End {
    let shared = side.shared;
    let config = &shared.config;
    let counts = &shared.counts;
    let cut_probability = side.fronted().faults.cut_probability;
    let mut dice = Dice::for_connection(side.fronted().seed, side.connection, 1);
    let mut buf = BytesMut::new();
    loop {
        let frame = match read_frame(&mut upstream, &mut buf, config.max_frame_bytes).await {
            Ok(frame) => frame,
            Err(ReadEnd::Closed) => return End::UpstreamClosed,
            Err(other) => return other.into(),
        };
        let Some(correlation_id) = frame
            .get(LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return End::ClosedMidFrame;
        };
        let Some(pending) = take_pending(in_flight, correlation_id) else {
            return End::UnexpectedAnswer(correlation_id);
        };
        let cut = dice.chance(cut_probability);
        let delay = roll_delay(&mut dice, config);
        if let Answer::Swallow { close_after, .. } = pending.answer {
            swallow(&pending, &frame, counts);
            if close_after {
                bump(&counts.closes_after_fault);
                info!(correlation_id, "closed the connection after the fault");
                return End::Fault;
            }
            continue;
        }
        if cut && shared.budget.take() {
            bump(&counts.cuts);
            info!(
                correlation_id,
                api = pending.api_key,
                "cut the connection instead of forwarding a response"
            );
            return End::Fault;
        }
        if let Some(delay) = delay {
            bump(&counts.delayed_frames);
            info!(
                correlation_id,
                delay_ms = delay.as_millis() as u64,
                "delayed response"
            );
            tokio::time::sleep(delay).await;
        }
        let frame = if config.rewrite_metadata {
            rewrite_addresses(frame, &pending, shared)
        } else {
            frame
        };
        if pending.api_key == ApiKey::Produce as i16 && tracing::enabled!(Level::DEBUG) {
            let answer = describe_produce_answer(&frame, pending.api_version);
            debug!(correlation_id, answer, "forwarded produce response");
        }
        if let Err(e) = client.write_all(&frame).await {
            return End::Io(e);
        }
        bump(&counts.responses_relayed);
    }
}

/// Counts and logs a swallowed answer: a lost ack (with what the client will never see), or
/// the second answer to a duplicated request.
fn swallow(pending: &Pending, frame: &Bytes, counts: &FaultCounts) {
    let correlation_id = pending.correlation_id;
    let answer = describe_produce_answer(frame, pending.api_version);
    match pending.answer {
        Answer::Swallow {
            lost_ack: true,
            close_after,
        } => {
            bump(&counts.dropped_produce_responses);
            info!(
                correlation_id,
                close_after, answer, "dropped produce response (lost ack)"
            );
        }
        _ => debug!(
            correlation_id,
            answer, "swallowed the answer to the duplicate"
        ),
    }
}

/// A Produce answer in a few words for the log: `topic[partition]: error E, base offset O`
/// per partition (error 46 is DUPLICATE_SEQUENCE_NUMBER, 45 OUT_OF_ORDER_SEQUENCE_NUMBER).
pub fn describe_produce_answer(frame: &Bytes, api_version: i16) -> String {
    let mut body = frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..);
    let header_version = ApiKey::Produce.response_header_version(api_version);
    let decoded = ResponseHeader::decode(&mut body, header_version)
        .and_then(|_| ProduceResponse::decode(&mut body, api_version));
    let Ok(response) = decoded else {
        return "undecodable".to_string();
    };
    let mut parts = Vec::new();
    for topic in &response.responses {
        for p in &topic.partition_responses {
            parts.push(format!(
                "{}[{}]: error {}, base offset {}",
                topic.name.as_str(),
                p.index,
                p.error_code,
                p.base_offset
            ));
        }
    }
    parts.join("; ")
}

/// Removes the request `correlation_id` answers. Normally the front of the queue (Kafka
/// answers in order); a stray id is looked for further back, with a warning.
fn take_pending(in_flight: &Mutex<VecDeque<Pending>>, correlation_id: i32) -> Option<Pending> {
    let mut queue = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
    if queue
        .front()
        .is_some_and(|p| p.correlation_id == correlation_id)
    {
        return queue.pop_front();
    }
    let position = queue
        .iter()
        .position(|p| p.correlation_id == correlation_id)?;
    warn!(correlation_id, position, "answer out of request order");
    queue.remove(position)
}

/// The proxy's address for the broker that advertises `host:port`: the listener of the
/// broker whose upstream address that is. A single-broker proxy gives every broker its one
/// address (whatever the broker calls itself, every connection goes to the one upstream). In
/// front of a cluster, an address that is already one of the proxy's is kept, and one that
/// matches no upstream is kept with a warning: a client told it would leave the proxy.
fn proxy_address_of<'a>(shared: &'a Shared, host: &str, port: i32) -> Option<&'a Advertised> {
    if let [only] = shared.brokers.as_slice() {
        return Some(&only.advertised);
    }
    let port = u16::try_from(port).ok()?;
    let ip = match host {
        "localhost" => Some(std::net::IpAddr::from([127, 0, 0, 1])),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok(),
    };
    let is_upstream = |b: &Fronted| ip.is_some_and(|ip| b.upstream == SocketAddr::new(ip, port));
    if let Some(b) = shared.brokers.iter().find(|b| is_upstream(b)) {
        return Some(&b.advertised);
    }
    let is_ours = shared
        .brokers
        .iter()
        .any(|b| b.advertised.port == port && b.advertised.host == host);
    if !is_ours {
        warn!(
            host,
            port,
            "kept a broker address that matches no --upstream: clients told it leave the proxy"
        );
    }
    None
}

/// Rewrites `host` and `port` to the proxy's address for that broker; true if they changed.
fn rewrite_one(shared: &Shared, host: &mut StrBytes, port: &mut i32) -> bool {
    match proxy_address_of(shared, host.as_str(), *port) {
        Some(ours) => {
            let changed = host.as_str() != ours.host || *port != i32::from(ours.port);
            *host = StrBytes::from_string(ours.host.clone());
            *port = i32::from(ours.port);
            changed
        }
        None => false,
    }
}

/// Gives every broker address in a Metadata, FindCoordinator or DescribeCluster answer the
/// proxy's address for that broker ([`proxy_address_of`]); other answers pass unchanged. An
/// answer that does not decode or re-encode is forwarded unchanged, with a warning.
fn rewrite_addresses(frame: Bytes, pending: &Pending, shared: &Shared) -> Bytes {
    let version = pending.api_version;
    let rewritten = match ApiKey::try_from(pending.api_key) {
        Ok(ApiKey::Metadata) => rewrite_answer(
            &frame,
            ApiKey::Metadata,
            version,
            |r: &mut MetadataResponse| {
                for broker in &mut r.brokers {
                    rewrite_one(shared, &mut broker.host, &mut broker.port);
                }
            },
        ),
        Ok(ApiKey::FindCoordinator) => rewrite_answer(
            &frame,
            ApiKey::FindCoordinator,
            version,
            |r: &mut FindCoordinatorResponse| {
                if version < 4 {
                    if r.error_code == 0 {
                        rewrite_one(shared, &mut r.host, &mut r.port);
                    }
                } else {
                    for c in r.coordinators.iter_mut().filter(|c| c.error_code == 0) {
                        rewrite_one(shared, &mut c.host, &mut c.port);
                    }
                }
            },
        ),
        Ok(ApiKey::DescribeCluster) => rewrite_answer(
            &frame,
            ApiKey::DescribeCluster,
            version,
            |r: &mut DescribeClusterResponse| {
                for broker in &mut r.brokers {
                    rewrite_one(shared, &mut broker.host, &mut broker.port);
                }
            },
        ),
        _ => return frame,
    };
    match rewritten {
        Ok(rewritten) => {
            bump(&shared.counts.rewritten_metadata);
            debug!(api = pending.api_key, "rewrote broker addresses");
            rewritten
        }
        Err(why) => {
            warn!(
                api = pending.api_key,
                version, "forwarded an answer unchanged: {why}"
            );
            frame
        }
    }
}

/// Decodes an answer frame, lets `change` edit its body, encodes it again.
fn rewrite_answer<R: Decodable + Encodable>(
    frame: &Bytes,
    api_key: ApiKey,
    api_version: i16,
    change: impl FnOnce(&mut R),
) -> Result<Bytes, String> {
    let mut body = frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..);
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| format!("it does not decode: {e}"))?;
    let mut response =
        R::decode(&mut body, api_version).map_err(|e| format!("it does not decode: {e}"))?;
    change(&mut response);
    kafka_codec::encode_response(api_key, api_version, header.correlation_id, &response)
        .map_err(|e| format!("it does not re-encode: {e}"))
}

impl From<ReadEnd> for End {
    fn from(end: ReadEnd) -> End {
        match end {
            ReadEnd::Closed => End::ClientClosed,
            ReadEnd::ClosedMidFrame { .. } => End::ClosedMidFrame,
            ReadEnd::TooLarge { announced } => End::TooLarge(announced),
            ReadEnd::Io(e) => End::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce_info(correlation_id: i32) -> RequestInfo {
        RequestInfo {
            api_key: ApiKey::Produce as i16,
            api_version: 9,
            correlation_id,
            acks: Some(-1),
        }
    }

    fn fates(config: &ProxyConfig, connection: u64) -> Vec<RequestFate> {
        let mut judge = RequestJudge::new(config.seed, connection);
        (0..200)
            .map(|i| judge.judge(&config.faults(), &produce_info(i), || true))
            .collect()
    }

    #[test]
    fn the_same_seed_judges_the_same_requests_the_same_way() {
        let config = ProxyConfig {
            seed: 42,
            drop_produce_response: Fault::new(0.2, true),
            duplicate_produce: Fault::new(0.1, false),
            cut_probability: 0.05,
            ..ProxyConfig::default()
        };
        assert_eq!(fates(&config, 3), fates(&config, 3));
        assert_ne!(fates(&config, 3), fates(&config, 4), "connections differ");
        let other_seed = ProxyConfig {
            seed: 43,
            ..config.clone()
        };
        assert_ne!(fates(&config, 3), fates(&other_seed, 3), "seeds differ");
        let drops = fates(&config, 3)
            .iter()
            .filter(|f| matches!(f, RequestFate::DropResponse { .. }))
            .count();
        assert!(
            (10..=70).contains(&drops),
            "about 20 % of 200 minus others: {drops}"
        );
    }

    #[test]
    fn only_produce_requests_are_lost_or_duplicated() {
        let config = ProxyConfig {
            drop_produce_response: Fault::new(1.0, true),
            ..ProxyConfig::default()
        };
        let mut judge = RequestJudge::new(0, 0);
        let metadata = RequestInfo {
            api_key: ApiKey::Metadata as i16,
            acks: None,
            ..produce_info(1)
        };
        assert_eq!(
            judge.judge(&config.faults(), &metadata, || true),
            RequestFate::Forward
        );
        let acks_zero = RequestInfo {
            acks: Some(0),
            ..produce_info(2)
        };
        assert_eq!(
            judge.judge(&config.faults(), &acks_zero, || true),
            RequestFate::Forward,
            "an acks=0 produce has no answer to lose"
        );
    }

    #[test]
    fn a_spent_budget_forwards_faithfully() {
        let config = ProxyConfig {
            drop_produce_request: Fault::new(1.0, false),
            max_faults: Some(1),
            ..ProxyConfig::default()
        };
        let budget = Budget {
            left: Some(AtomicU64::new(1)),
        };
        let mut judge = RequestJudge::new(0, 0);
        let first = judge.judge(&config.faults(), &produce_info(1), || budget.take());
        let second = judge.judge(&config.faults(), &produce_info(2), || budget.take());
        assert_eq!(first, RequestFate::DropRequest { close_after: false });
        assert_eq!(second, RequestFate::Forward);
    }

    #[test]
    fn produce_acks_are_read_in_every_header_format() {
        use bytes::BufMut;
        use kafka_protocol::messages::ProduceRequest;
        use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
        for version in [3, 8, 9, 11] {
            for acks in [0, 1, -1] {
                let mut buf = BytesMut::new();
                RequestHeader::default()
                    .with_request_api_key(ApiKey::Produce as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(7)
                    .with_client_id(Some(StrBytes::from_static_str("judge")))
                    .encode(&mut buf, ProduceRequest::header_version(version))
                    .expect("header encodes");
                ProduceRequest::default()
                    .with_transactional_id(Some(StrBytes::from_static_str("tx").into()))
                    .with_acks(acks)
                    .encode(&mut buf, version)
                    .expect("body encodes");
                buf.put_u8(0);
                let info = read_request_info(&buf.freeze()).expect("a header");
                assert_eq!(info.correlation_id, 7);
                assert_eq!(info.acks, Some(acks), "Produce v{version}");
            }
        }
    }

    #[test]
    fn dice_stay_in_range() {
        let mut dice = Dice::for_connection(1, 2, 3);
        for _ in 0..1000 {
            let n = dice.between(5, 9);
            assert!((5..=9).contains(&n));
        }
        let mut same = Dice::for_connection(1, 2, 3);
        let mut again = Dice::for_connection(1, 2, 3);
        assert_eq!(same.between(0, u64::MAX), again.between(0, u64::MAX));
    }
}
