//! The key families: a key the client sends with every attempt (or, the misconception, a key
//! derived from the body), a store that remembers the first request's fingerprint and
//! response, and the answer a retry gets.
//!
//! ```text
//! policy               | key                 | stored                     | retry gets     | same key, other params | while in progress
//! idempotency-key      | Idempotency-Key     | status and body, 24 h      | the saved response | 400 idempotency_error | 409
//! ietf-idempotency-key | Idempotency-Key     | the response, 24 h (ours)  | the saved response | 422                   | 409 (400: no key)
//! client-token         | ClientToken         | the result, 24 h           | the same result    | IdempotentParameterMismatch | the same result (pending)
//! body-hash-key        | SHA-256 of the body | status and body, 24 h      | the saved response | (a new key)           | 409
//! ```
//!
//! Stripe (API v1) "saves the status code and body of the first request made with a given
//! idempotency key", replays it (500s included) for at least 24 hours, compares the
//! parameters and the endpoint of a reused key and refuses a mismatch with an
//! `idempotency_error` (400), and answers 409 to a request that conflicts with one still
//! executing. The IETF draft `draft-ietf-httpapi-idempotency-key-header` answers 400 when the
//! key is missing, 409 while the first request is in progress and 422 when a key is reused
//! with a different payload; it leaves the expiry to the server, which publishes it (we use
//! 24 h). AWS client tokens (EC2's `ClientToken`) return the original result to a retry with
//! the same parameters, "the result might contain updated information, such as the current
//! creation status", and `IdempotentParameterMismatch` when a parameter changed; a token is
//! valid "for at least 24 hours". `body-hash-key` is Stripe's semantics with the key computed
//! from the request body, the mistake that makes two intentional identical charges one.
//!
//! An in-progress entry is a lock with a TTL ([`LOCK_TTL_MS`]); how a store honours it is
//! the store's business ([`super::store`]).

use super::PolicyName;
use super::model::{Arrival, Ctx, Policy, Request, Response, ms};
use super::store::{Begun, Committed, Entry, EntryState, KeyStore, Lookup};
use sha2::{Digest, Sha256};

/// How long an in-progress entry (the lock) lives in the store before another request may
/// claim the key: 60 s.
pub const LOCK_TTL_MS: u64 = 60_000;

/// Stripe's window: keys "may be pruned once they are at least 24 hours old".
pub const STRIPE_WINDOW_MS: u64 = 86_400_000;

/// The expiry our IETF server publishes (the draft leaves it to the server).
pub const IETF_WINDOW_MS: u64 = 86_400_000;

/// An AWS client token is valid "for at least 24 hours".
pub const CLIENT_TOKEN_WINDOW_MS: u64 = 86_400_000;

/// Which key-family policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Stripe v1 idempotency keys.
    Stripe,
    /// The IETF `Idempotency-Key` header.
    Ietf,
    /// AWS client tokens.
    ClientToken,
    /// A key derived from the request body.
    BodyHash,
}

/// A key-family server over a key store.
pub struct Keyed {
    flavour: Flavour,
    store: Box<dyn KeyStore>,
    /// The next handler run fails with a 500 and applies nothing (see [`Keyed::failing_once`]).
    fail_next: bool,
}

/// The first 16 hex digits of the SHA-256 of `body`.
pub fn body_hash(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(req: &Request) -> String {
    format!("{} {}", req.endpoint, req.body)
}

impl Keyed {
    /// The policy `flavour` over `store`.
    pub fn new(flavour: Flavour, store: Box<dyn KeyStore>) -> Keyed {
        Keyed {
            flavour,
            store,
            fail_next: false,
        }
    }

    /// The same policy whose first handler run fails with a 500 (and applies nothing): Stripe
    /// saves that response too and replays it to every retry of the key.
    pub fn failing_once(mut self) -> Keyed {
        self.fail_next = true;
        self
    }

    /// The policy's name.
    pub fn name(&self) -> PolicyName {
        match self.flavour {
            Flavour::Stripe => PolicyName::IdempotencyKey,
            Flavour::Ietf => PolicyName::IetfIdempotencyKey,
            Flavour::ClientToken => PolicyName::ClientToken,
            Flavour::BodyHash => PolicyName::BodyHashKey,
        }
    }

    fn key_of(&self, req: &Request) -> Option<String> {
        match self.flavour {
            Flavour::BodyHash => Some(format!("sha256:{}", body_hash(&req.body))),
            _ => req.key.clone(),
        }
    }

    fn window(&self) -> u64 {
        match self.flavour {
            Flavour::Ietf => IETF_WINDOW_MS,
            Flavour::ClientToken => CLIENT_TOKEN_WINDOW_MS,
            Flavour::Stripe | Flavour::BodyHash => STRIPE_WINDOW_MS,
        }
    }

    /// A lock lives [`LOCK_TTL_MS`]; an AWS token records the result at once, for the window.
    fn lock_ttl(&self) -> u64 {
        match self.flavour {
            Flavour::ClientToken => CLIENT_TOKEN_WINDOW_MS,
            _ => LOCK_TTL_MS,
        }
    }

    fn mismatch(&self) -> Response {
        match self.flavour {
            Flavour::Ietf => Response::error("422", "key reused with a different payload"),
            Flavour::ClientToken => Response::error(
                "IdempotentParameterMismatch",
                "client token reused with other parameters",
            ),
            Flavour::Stripe | Flavour::BodyHash => Response::error(
                "400",
                "idempotency_error: keys can only be used with the same parameters",
            ),
        }
    }

    /// What a request gets when its key is held by `e`.
    fn known(&self, ctx: &mut Ctx, key: &str, e: &Entry, req: &Request) -> Arrival {
        let since = format!("stored at {} ms", ms(e.stored_ms));
        if e.fingerprint != fingerprint(req) {
            let r = self.mismatch();
            ctx.note(format!(
                "{} {key} found ({since}) with other parameters: {}",
                self.noun(),
                r.code
            ));
            return Arrival::Answer(r);
        }
        match (e.state, self.flavour) {
            (EntryState::InProgress, Flavour::ClientToken) => {
                ctx.note(format!(
                    "token {key} found ({since}), still in progress: the same result, pending"
                ));
                Arrival::Answer(Response::ok("200", "the original's result, state pending"))
            }
            (EntryState::InProgress, _) => {
                ctx.note(format!(
                    "key {key} locked by the first request (claimed at {} ms, lock until {} ms): 409",
                    ms(e.stored_ms),
                    ms(e.expires_ms)
                ));
                Arrival::Answer(Response::error(
                    "409",
                    "a request with this key is in progress",
                ))
            }
            (EntryState::Done, _) => {
                let saved = e
                    .response
                    .clone()
                    .unwrap_or_else(|| Response::ok("200", "(no saved body)"));
                ctx.note(format!(
                    "{} {key} found ({since}, kept until {} ms): {} replayed",
                    self.noun(),
                    ms(e.expires_ms),
                    saved.code
                ));
                Arrival::Answer(Response {
                    detail: format!("replayed {}", saved.detail),
                    ..saved
                })
            }
        }
    }

    fn noun(&self) -> &'static str {
        match self.flavour {
            Flavour::ClientToken => "token",
            _ => "key",
        }
    }

    fn success(&self, charge: &str) -> Response {
        match self.flavour {
            Flavour::Ietf => Response::ok("201", format!("charge {charge}")),
            _ => Response::ok("200", format!("charge {charge}")),
        }
    }
}

impl Policy for Keyed {
    fn arrive(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival {
        let Some(key) = self.key_of(req) else {
            if self.flavour == Flavour::Ietf {
                ctx.note("no Idempotency-Key header: 400");
                return Arrival::Answer(Response::error("400", "Idempotency-Key is required"));
            }
            ctx.note("no key: handled without idempotency");
            return Arrival::Handle;
        };
        let why = match self.store.get(now_ms, &key) {
            Lookup::Found(e) => return self.known(ctx, &key, &e, req),
            Lookup::Missing(why) => why,
        };
        let lock = Entry {
            state: EntryState::InProgress,
            fingerprint: fingerprint(req),
            response: None,
            owner: req.attempt_id(),
            stored_ms: now_ms,
            expires_ms: now_ms + self.lock_ttl(),
        };
        match self.store.begin(now_ms, &key, lock) {
            Begun::Claimed => {
                ctx.note(format!(
                    "{} {key} not found ({why}): claimed until {} ms, handling",
                    self.noun(),
                    ms(now_ms + self.lock_ttl())
                ));
                Arrival::Handle
            }
            Begun::Checked => {
                ctx.note(format!(
                    "{} {key} not found ({why}): nothing claimed (the key is inserted with the result), handling",
                    self.noun()
                ));
                Arrival::Handle
            }
            Begun::Held(e) => self.known(ctx, &key, &e, req),
        }
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        let charge = format!("ch_{}", ctx.ledger.applied.len() + 1);
        let failed = std::mem::take(&mut self.fail_next);
        let (response, effect) = if failed {
            (Response::error("500", "api_error"), None)
        } else {
            (self.success(&charge), Some(charge.as_str()))
        };
        let Some(key) = self.key_of(req) else {
            if failed {
                return response;
            }
            ctx.ledger.apply(now_ms, req, &charge);
            ctx.note(format!("{charge} applied (no key)"));
            return response;
        };
        let done = Entry {
            state: EntryState::Done,
            fingerprint: fingerprint(req),
            response: Some(response.clone()),
            owner: req.attempt_id(),
            stored_ms: now_ms,
            expires_ms: now_ms + self.window(),
        };
        let store = self.store.name().name();
        match self
            .store
            .commit(now_ms, &key, done, req, effect, &mut ctx.ledger)
        {
            Committed::Applied if failed => {
                ctx.note(format!(
                    "the handler failed: 500 saved for {} {key} until {} ms, nothing applied",
                    self.noun(),
                    ms(now_ms + self.window())
                ));
                response
            }
            Committed::Applied => {
                ctx.note(format!(
                    "{charge} applied; {} {key} saved in {store} until {} ms",
                    self.noun(),
                    ms(now_ms + self.window())
                ));
                response
            }
            Committed::Superseded(Some(e)) if e.state == EntryState::Done => {
                ctx.note(format!(
                    "key {key} was finished by another attempt: transaction rolled back, nothing applied"
                ));
                let saved = e.response.unwrap_or(response);
                Response {
                    detail: format!("replayed {}", saved.detail),
                    ..saved
                }
            }
            Committed::Superseded(_) => {
                ctx.note(format!(
                    "key {key} was claimed by another attempt: transaction rolled back, nothing applied"
                ));
                Response::error("409", "a request with this key is in progress")
            }
        }
    }

    fn restart(&mut self, now_ms: u64, _ctx: &mut Ctx) {
        self.store.restart(now_ms);
    }

    fn window_ms(&self) -> Option<u64> {
        Some(self.window())
    }

    fn charges(&self) -> Option<u64> {
        self.store.charges()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::StoreName;
    use crate::policies::model::ENDPOINT;
    use crate::policies::store;

    fn request(key: Option<&str>, endpoint: &'static str, body: &str) -> Request {
        Request {
            op: 0,
            attempt: 1,
            copy: false,
            key: key.map(str::to_string),
            endpoint,
            body: body.to_string(),
            sequence: 0,
            first_sent_ms: 0,
        }
    }

    fn finished(flavour: Flavour, req: &Request) -> (Keyed, Ctx) {
        let mut p = Keyed::new(flavour, store::open(StoreName::DbTransactional, 1));
        let mut ctx = Ctx::default();
        assert_eq!(p.arrive(10, req, &mut ctx), Arrival::Handle);
        assert!(p.complete(20, req, &mut ctx).ok);
        (p, ctx)
    }

    #[test]
    fn stripe_binds_a_key_to_its_endpoint() {
        let first = request(Some("k1"), ENDPOINT, "amount=1");
        let (mut p, mut ctx) = finished(Flavour::Stripe, &first);
        let elsewhere = request(Some("k1"), "POST /v1/refunds", "amount=1");
        match p.arrive(30, &elsewhere, &mut ctx) {
            Arrival::Answer(r) => assert_eq!(r.code, "400", "{r}"),
            Arrival::Handle => panic!("a key reused on another endpoint must be refused"),
        }
    }

    #[test]
    fn ietf_requires_the_header() {
        let mut p = Keyed::new(Flavour::Ietf, store::open(StoreName::MemoryTtl, 1));
        let mut ctx = Ctx::default();
        match p.arrive(0, &request(None, ENDPOINT, "amount=1"), &mut ctx) {
            Arrival::Answer(r) => assert_eq!(r.code, "400", "{r}"),
            Arrival::Handle => panic!("a request without Idempotency-Key must be refused"),
        }
    }

    #[test]
    fn stripe_without_a_key_handles_every_request() {
        let req = request(None, ENDPOINT, "amount=1");
        let (mut p, mut ctx) = finished(Flavour::Stripe, &req);
        assert_eq!(p.arrive(30, &req, &mut ctx), Arrival::Handle);
        p.complete(40, &req, &mut ctx);
        assert_eq!(ctx.ledger.count(0), 2, "no key, no idempotency");
    }

    #[test]
    fn a_retry_gets_the_saved_response_not_a_new_one() {
        let req = request(Some("k1"), ENDPOINT, "amount=1");
        let (mut p, mut ctx) = finished(Flavour::Stripe, &req);
        match p.arrive(30, &req, &mut ctx) {
            Arrival::Answer(r) => assert_eq!(r.detail, "replayed charge ch_1"),
            Arrival::Handle => panic!("a finished key is replayed"),
        }
        assert_eq!(ctx.ledger.count(0), 1);
    }

    #[test]
    fn stripe_replays_a_saved_500_to_a_retry() {
        let req = request(Some("k1"), ENDPOINT, "amount=1");
        let store = store::open(StoreName::MemoryTtl, 1);
        let mut p = Keyed::new(Flavour::Stripe, store).failing_once();
        let mut ctx = Ctx::default();
        assert_eq!(p.arrive(10, &req, &mut ctx), Arrival::Handle);
        assert_eq!(p.complete(20, &req, &mut ctx).code, "500");
        match p.arrive(30_000, &req, &mut ctx) {
            Arrival::Answer(r) => assert_eq!((r.ok, r.code.as_str()), (false, "500"), "{r}"),
            Arrival::Handle => panic!("a saved 500 is replayed, not retried"),
        }
        assert_eq!(ctx.ledger.count(0), 0, "nothing was charged");
    }

    #[test]
    fn the_body_hash_is_the_same_for_the_same_body() {
        assert_eq!(body_hash("amount=1"), body_hash("amount=1"));
        assert_ne!(body_hash("amount=1"), body_hash("amount=2"));
        assert_eq!(body_hash("").len(), 16);
    }
}
