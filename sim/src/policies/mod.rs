//! # Idempotency beyond Kafka: keys, tokens, windows and stores under the same faults
//!
//! Kafka's producer ids and sequences are one answer to "a client retried: was it done
//! already?". This module puts the other answers people use every day beside it, as small
//! synchronous servers told the simulated time, driven by one seeded script per scenario
//! (the simulator's [`FaultOracle`](crate::faults::FaultOracle) draws every latency, handler
//! time and replica lag), and judged by one checker that reads the *ledger* of side effects:
//!
//! ```text
//! exactly-once  each intended operation applied once
//! duplicate     an operation applied twice
//! lost          an intended operation not applied, and the client told success (or it gave up)
//! refused       the client got an error it must handle: 409, 422, 400, IdempotentParameterMismatch
//! ```
//!
//! ## The policies
//!
//! ```text
//! policy               | the key                      | remembered        | a retry gets                 | fails when
//! kafka-sequence       | producer id, epoch, sequence | 5 batches, 1 day  | the original offset          | the producer id expired
//! idempotency-key      | Idempotency-Key (Stripe v1)  | 24 h              | the saved status and body    | the store forgets; 409 in progress
//! ietf-idempotency-key | Idempotency-Key (IETF draft) | 24 h (published)  | the saved response           | 400 no key, 409, 422
//! client-token         | ClientToken (AWS)            | 24 h              | the original result          | IdempotentParameterMismatch
//! dedup-window         | MessageDeduplicationId (SQS) | 5 min             | 200, not delivered           | a repeat after 5 min
//! pubsub               | none for publishers          | acks, by message id | a new message              | every publisher retry
//! consumer-dedup       | the event id (webhooks)      | 24 h              | 200, skipped                 | check-then-process races
//! body-hash-key        | SHA-256 of the body          | 24 h              | the saved response           | two identical charges
//! none                 | nothing                      | nothing           | a second charge              | every retry
//! ```
//!
//! The key families are in [`keyed`], the id windows in [`dedup`], Kafka's sequences (the
//! real broker core) in [`kafka`], Pub/Sub and the no-policy baseline in [`plain`].
//!
//! ## The stores
//!
//! Where the keys live matters as much as the policy ([`store`]): `memory-ttl` (Redis-like,
//! forgotten on restart), `db-transactional` (a real SQLite table with a unique key,
//! `INSERT … ON CONFLICT`, finished in the side effect's transaction), `db-check-then-insert`
//! (a `SELECT` then an `INSERT` with no constraint: the race) and `replicated-cache` (reads
//! from a replica that lags by a drawn delay).
//!
//! ## The scenarios
//!
//! ```text
//! lost-response              done, the response lost, retried after the timeout
//! lost-request               the request lost, retried
//! duplicate-delivery         the network delivers the request twice
//! retry-after-window         the retry comes 1 ms after the policy's window
//! concurrent-retry           the retry arrives while the first is still being handled
//! server-restart             the server restarts between the first attempt and the retry
//! slow-handler               handling outlasts the lock (the client waits 90 s, the lock lives 60 s)
//! two-intentional-identical  two distinct operations with identical bodies
//! key-reuse-different-params one key reused for an operation with other parameters
//! ```
//!
//! ([`scenario`] has the exact draws.) [`run`] drives one script against one policy and
//! checks it; [`matrix`] runs every cell over many seeds; [`cli`] is `idempo-sim policies`;
//! [`diagram`] draws one run with the simulator's Lamport-diagram primitives.
//!
//! ## What a reader should see happen
//!
//! ```text
//! dedup-window × retry-after-window            duplicate  (retry 300 001 ms after the first: delivered twice)
//! idempotency-key × lost-response              exactly-once (the saved response replayed)
//! body-hash-key × two-intentional-identical    lost       (the second charge gets the first's response)
//! idempotency-key × server-restart, memory-ttl duplicate  (the restart forgot the key)
//! ... with db-transactional                    exactly-once
//! idempotency-key × concurrent-retry, db-check-then-insert  duplicate (both checked before either inserted)
//! ietf-idempotency-key × concurrent-retry      refused 409
//! ietf-idempotency-key × key-reuse-different-params  refused 422
//! ```
//!
//! ## Differences from the real services
//!
//! Stripe replays a saved 500 ([`keyed::Keyed::failing_once`] shows it), but no scenario
//! makes one, and validation failures are not modelled. SQS's own store is durable; `--store`
//! lets the dedup window live in any of the four. Pub/Sub's exactly-once delivery is modelled
//! as "a message acknowledged is not processed again", not with ack deadlines. The IETF draft
//! leaves the expiry to the server: ours publishes 24 h. The lock TTL (60 s) is ours. Every
//! scenario is one client with one or two operations and one retry at most: the point is the
//! rule that decides a cell. `docs/POLICIES.md` compares the designs point by point, each claim
//! backed by a cell and its test.

pub mod cli;
pub mod dedup;
pub mod diagram;
pub mod kafka;
pub mod keyed;
pub mod matrix;
pub mod model;
pub mod plain;
pub mod run;
pub mod scenario;
pub mod store;

use clap::ValueEnum;
pub use model::{Arrival, Ctx, Ledger, Policy, Request, Response};
pub use run::{RunResult, Verdict};

/// The policies, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum PolicyName {
    /// Kafka's producer id and sequences: today's broker.
    KafkaSequence,
    /// Stripe v1 idempotency keys.
    IdempotencyKey,
    /// The IETF draft's `Idempotency-Key` header.
    IetfIdempotencyKey,
    /// AWS client tokens.
    ClientToken,
    /// SQS FIFO's deduplication window, the client naming each message's
    /// `MessageDeduplicationId`.
    DedupWindow,
    /// SQS FIFO's deduplication window on a queue with `ContentBasedDeduplication`, the client
    /// sending no id: the SHA-256 of the body is the id. Not in the default matrix (pick it
    /// with `--policy dedup-window-content-based`).
    DedupWindowContentBased,
    /// Google Pub/Sub.
    Pubsub,
    /// A webhook consumer with a processed-id store.
    ConsumerDedup,
    /// A key derived from the body (the misconception).
    BodyHashKey,
    /// No deduplication.
    None,
}

impl PolicyName {
    /// Every policy, in the matrix's order.
    pub const ALL: [PolicyName; 9] = [
        PolicyName::KafkaSequence,
        PolicyName::IdempotencyKey,
        PolicyName::IetfIdempotencyKey,
        PolicyName::ClientToken,
        PolicyName::DedupWindow,
        PolicyName::Pubsub,
        PolicyName::ConsumerDedup,
        PolicyName::BodyHashKey,
        PolicyName::None,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyName::KafkaSequence => "kafka-sequence",
            PolicyName::IdempotencyKey => "idempotency-key",
            PolicyName::IetfIdempotencyKey => "ietf-idempotency-key",
            PolicyName::ClientToken => "client-token",
            PolicyName::DedupWindow => "dedup-window",
            PolicyName::DedupWindowContentBased => "dedup-window-content-based",
            PolicyName::Pubsub => "pubsub",
            PolicyName::ConsumerDedup => "consumer-dedup",
            PolicyName::BodyHashKey => "body-hash-key",
            PolicyName::None => "none",
        }
    }

    /// Whether the policy keeps its keys in a selectable store.
    pub fn has_store(self) -> bool {
        !matches!(
            self,
            PolicyName::KafkaSequence | PolicyName::Pubsub | PolicyName::None
        )
    }

    /// The server model, its keys in `store` (if it has any), its draws from `seed`.
    pub fn build(self, store: StoreName, seed: u64) -> Box<dyn Policy> {
        use keyed::{Flavour, Keyed};
        let s = || store::open(store, seed);
        match self {
            PolicyName::KafkaSequence => Box::new(kafka::KafkaSequence::new()),
            PolicyName::IdempotencyKey => Box::new(Keyed::new(Flavour::Stripe, s())),
            PolicyName::IetfIdempotencyKey => Box::new(Keyed::new(Flavour::Ietf, s())),
            PolicyName::ClientToken => Box::new(Keyed::new(Flavour::ClientToken, s())),
            PolicyName::DedupWindow => Box::new(dedup::DedupWindow::new(s(), false)),
            PolicyName::DedupWindowContentBased => Box::new(dedup::DedupWindow::new(s(), true)),
            PolicyName::Pubsub => Box::new(plain::Pubsub::default()),
            PolicyName::ConsumerDedup => Box::new(dedup::ConsumerDedup::new(s())),
            PolicyName::BodyHashKey => Box::new(Keyed::new(Flavour::BodyHash, s())),
            PolicyName::None => Box::new(plain::NoPolicy),
        }
    }
}

/// The scenarios, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum ScenarioName {
    /// Done, the response lost, retried.
    LostResponse,
    /// The request lost, retried.
    LostRequest,
    /// The network delivers the request twice.
    DuplicateDelivery,
    /// The retry comes after the TTL or window.
    RetryAfterWindow,
    /// The retry arrives while the first is still being handled.
    ConcurrentRetry,
    /// The server restarts between the first attempt and the retry.
    ServerRestart,
    /// Handling outlasts the lock.
    SlowHandler,
    /// Two distinct operations with identical bodies.
    TwoIntentionalIdentical,
    /// A key reused with other parameters.
    KeyReuseDifferentParams,
}

impl ScenarioName {
    /// Every scenario, in the matrix's order.
    pub const ALL: [ScenarioName; 9] = [
        ScenarioName::LostResponse,
        ScenarioName::LostRequest,
        ScenarioName::DuplicateDelivery,
        ScenarioName::RetryAfterWindow,
        ScenarioName::ConcurrentRetry,
        ScenarioName::ServerRestart,
        ScenarioName::SlowHandler,
        ScenarioName::TwoIntentionalIdentical,
        ScenarioName::KeyReuseDifferentParams,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioName::LostResponse => "lost-response",
            ScenarioName::LostRequest => "lost-request",
            ScenarioName::DuplicateDelivery => "duplicate-delivery",
            ScenarioName::RetryAfterWindow => "retry-after-window",
            ScenarioName::ConcurrentRetry => "concurrent-retry",
            ScenarioName::ServerRestart => "server-restart",
            ScenarioName::SlowHandler => "slow-handler",
            ScenarioName::TwoIntentionalIdentical => "two-intentional-identical",
            ScenarioName::KeyReuseDifferentParams => "key-reuse-different-params",
        }
    }
}

/// The key stores, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum StoreName {
    /// In memory with a TTL (Redis-like): forgotten on restart.
    MemoryTtl,
    /// SQLite, a unique key, written in the side effect's transaction.
    DbTransactional,
    /// SQLite, a check then an insert, no constraint.
    DbCheckThenInsert,
    /// A cache whose replica lags its primary.
    ReplicatedCache,
}

impl StoreName {
    /// Every store.
    pub const ALL: [StoreName; 4] = [
        StoreName::MemoryTtl,
        StoreName::DbTransactional,
        StoreName::DbCheckThenInsert,
        StoreName::ReplicatedCache,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            StoreName::MemoryTtl => "memory-ttl",
            StoreName::DbTransactional => "db-transactional",
            StoreName::DbCheckThenInsert => "db-check-then-insert",
            StoreName::ReplicatedCache => "replicated-cache",
        }
    }
}

/// Runs one cell for one seed: `scenario` against `policy` with its keys in `store`.
///
/// # Examples
///
/// ```
/// use idempo_sim::policies::{self, PolicyName, ScenarioName, StoreName};
///
/// let r = policies::run_one(PolicyName::DedupWindow, ScenarioName::RetryAfterWindow,
///                           StoreName::MemoryTtl, 3);
/// assert_eq!(r.verdict.word(), "duplicate");
/// ```
pub fn run_one(
    policy: PolicyName,
    scenario: ScenarioName,
    store: StoreName,
    seed: u64,
) -> RunResult {
    let mut server = policy.build(store, seed);
    let window = scenario::Window {
        window_ms: server.window_ms().unwrap_or(keyed::STRIPE_WINDOW_MS),
        from_handling: server.window_from_handling(),
    };
    let mut script = scenario::script(scenario, seed, window);
    if policy == PolicyName::DedupWindowContentBased {
        // The client names no MessageDeduplicationId: the queue hashes the body.
        for op in &mut script.ops {
            op.key = None;
        }
    }
    run::run(&script, server.as_mut())
}
