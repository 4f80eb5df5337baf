//! What every policy server shares: the request a client sends, the answer it gets, the
//! [`Policy`] trait the run loop drives, and the [`Ledger`] of side effects the checker reads.
//!
//! A policy is a small synchronous server, told the time: a request *arrives*
//! ([`Policy::arrive`]), and is either answered at once (a replayed response, a 409) or
//! handled, in which case the run loop *completes* it ([`Policy::complete`]) after the drawn
//! handler time. The side effect (a charge, a delivered message) is applied to the ledger at
//! completion, by the policy or its key store, and nowhere else.

use std::fmt;

/// The endpoint every operation of the scenarios is sent to (Stripe binds a key to it).
pub const ENDPOINT: &str = "POST /v1/charges";

/// One request as the client sent it (an attempt of an operation, or a network copy of one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The intended operation this attempt carries (the checker's view: a server that keys
    /// on it would be cheating, and none does).
    pub op: usize,
    /// Which attempt of the operation, from 1.
    pub attempt: u32,
    /// True for the second copy of a request the network delivered twice.
    pub copy: bool,
    /// The key the client chose: the idempotency key, the client token, the
    /// `MessageDeduplicationId` or the webhook's event id (`None`: the client sent none).
    pub key: Option<String>,
    /// The endpoint (method and path).
    pub endpoint: &'static str,
    /// The request body: the parameters of the operation.
    pub body: String,
    /// The sequence the Kafka producer assigned to the operation's batch (its index among
    /// the client's operations: the producer numbers batches, the application does not).
    pub sequence: i32,
    /// When the operation was first sent (the batch's timestamp for Kafka).
    pub first_sent_ms: u64,
}

impl Request {
    /// A number unique to this attempt (and copy), used as a lock's owner.
    pub fn attempt_id(&self) -> u64 {
        (self.op as u64) * 1_000 + u64::from(self.attempt) * 2 + u64::from(self.copy)
    }
}

/// What a client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// True for a success (2xx, Kafka's `NONE`), false for an error the client must handle.
    pub ok: bool,
    /// The status or error the client sees: `201`, `200`, `409`, `422`, `400`,
    /// `IdempotentParameterMismatch`, `NONE` ...
    pub code: String,
    /// What it says, briefly (`charge ch_1`, `replayed charge ch_1`, `offset 0`).
    pub detail: String,
}

impl Response {
    /// A success.
    pub fn ok(code: &str, detail: impl Into<String>) -> Response {
        Response {
            ok: true,
            code: code.to_string(),
            detail: detail.into(),
        }
    }

    /// An error.
    pub fn error(code: &str, detail: impl Into<String>) -> Response {
        Response {
            ok: false,
            code: code.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.detail)
    }
}

/// What becomes of a request when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Answered at once, without running the handler.
    Answer(Response),
    /// The handler runs; the run loop calls [`Policy::complete`] when it is done.
    Handle,
}

/// One application of a side effect: the thing exactly-once is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The intended operation it applied.
    pub op: usize,
    /// The attempt (and copy) that applied it.
    pub attempt: u32,
    /// Whether it was the network's second copy.
    pub copy: bool,
    /// When.
    pub at_ms: u64,
    /// What was applied (`charge ch_1`, `message 2`, `offset 0`).
    pub what: String,
}

/// The side effects, in the order they were applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Every application.
    pub applied: Vec<Applied>,
}

impl Ledger {
    /// Applies `req`'s operation at `now_ms`.
    pub fn apply(&mut self, now_ms: u64, req: &Request, what: impl Into<String>) {
        self.applied.push(Applied {
            op: req.op,
            attempt: req.attempt,
            copy: req.copy,
            at_ms: now_ms,
            what: what.into(),
        });
    }

    /// How often operation `op` was applied.
    pub fn count(&self, op: usize) -> usize {
        self.applied.iter().filter(|a| a.op == op).count()
    }
}

/// What a policy writes while it decides: the ledger and one note per decision, which the
/// trace prints and the checker quotes in a cell's reason.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The side effects.
    pub ledger: Ledger,
    /// The notes of the request being handled now, in order.
    pub notes: Vec<String>,
}

impl Ctx {
    /// Notes a decision about the request being handled.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// A server model: one answer to "a client retried: was it done already?".
pub trait Policy {
    /// A request arrives at `now_ms`.
    fn arrive(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival;
    /// The handler of a request that arrived earlier finishes at `now_ms`: this is where the
    /// side effect is applied, or not.
    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response;
    /// The server restarts at `now_ms` (nothing is being handled): what it keeps in memory
    /// is gone, what it keeps in a database or a replicated cache is not.
    fn restart(&mut self, now_ms: u64, ctx: &mut Ctx);
    /// How long the policy remembers a key or a sequence (`None`: it remembers nothing).
    fn window_ms(&self) -> Option<u64>;
    /// Whether the window runs from the end of the first request's handling (a saved
    /// response) rather than from its arrival (SQS's deduplication interval).
    fn window_from_handling(&self) -> bool {
        true
    }
    /// Rows in the policy's database `charges` table, when its key store is a database (the
    /// checker compares them with the ledger).
    fn charges(&self) -> Option<u64> {
        None
    }
}

/// `300 001` for 300001: simulated times in reasons and traces, grouped by thousands.
pub fn ms(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_grouped_by_thousands() {
        assert_eq!(ms(0), "0");
        assert_eq!(ms(999), "999");
        assert_eq!(ms(300_001), "300 001");
        assert_eq!(ms(86_400_000), "86 400 000");
    }
}
