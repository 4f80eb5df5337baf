//! Deduplication by message id: SQS FIFO's deduplication window, and the webhook consumer's
//! store of processed event ids.
//!
//! ```text
//! policy         | key                                   | stored            | a repeat gets                        | fails when
//! dedup-window   | MessageDeduplicationId (or SHA-256)   | the id, 5 minutes | 200, "accepted but not delivered"    | the repeat comes after 5 min
//! consumer-dedup | the event id                          | the id, 24 h      | 200, skipped                         | the check races the handler
//! ```
//!
//! SQS FIFO: a message sent with a `MessageDeduplicationId` already sent within the 5-minute
//! deduplication interval is "accepted successfully but not delivered"; with
//! `ContentBasedDeduplication` the id is the SHA-256 of the body (not the attributes), and an
//! explicit id overrides it. SQS does not compare the bodies of two messages with one id: the
//! second is dropped whatever it says. The window runs from the first message's acceptance.
//!
//! The webhook consumer receives at-least-once deliveries and keeps the ids it processed:
//! check at arrival, process, record the id. Without a transaction around "record the id" and
//! the side effect, two deliveries that both pass the check are both processed.

use super::keyed::body_hash;
use super::model::{Arrival, Ctx, Policy, Request, Response, ms};
use super::store::{Begun, Committed, Entry, EntryState, KeyStore, Lookup};
use std::collections::HashMap;

/// SQS FIFO's deduplication interval: 5 minutes.
pub const SQS_DEDUP_WINDOW_MS: u64 = 300_000;

/// How long our webhook consumer keeps a processed event id.
pub const CONSUMER_DEDUP_TTL_MS: u64 = 86_400_000;

/// `dedup-window`: SQS FIFO deduplication.
pub struct DedupWindow {
    store: Box<dyn KeyStore>,
    /// `ContentBasedDeduplication`: the id is the SHA-256 of the body unless one is given.
    content_based: bool,
    /// When each attempt was accepted (the window runs from there).
    accepted_ms: HashMap<u64, u64>,
    messages: u64,
}

impl DedupWindow {
    /// Deduplication over `store`; `content_based` hashes the body when no id is given.
    pub fn new(store: Box<dyn KeyStore>, content_based: bool) -> DedupWindow {
        DedupWindow {
            store,
            content_based,
            accepted_ms: HashMap::new(),
            messages: 0,
        }
    }

    fn id_of(&self, req: &Request) -> Option<String> {
        match (&req.key, self.content_based) {
            (Some(k), _) => Some(k.clone()),
            (None, true) => Some(format!("sha256:{}", body_hash(&req.body))),
            (None, false) => None,
        }
    }

    fn dropped(ctx: &mut Ctx, id: &str, e: &Entry) -> Arrival {
        ctx.note(format!(
            "MessageDeduplicationId {id} seen at {} ms (window until {} ms): accepted, not delivered",
            ms(e.stored_ms),
            ms(e.expires_ms)
        ));
        Arrival::Answer(Response::ok(
            "200",
            "accepted (duplicate id: not delivered)",
        ))
    }
}

impl Policy for DedupWindow {
    fn arrive(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival {
        let Some(id) = self.id_of(req) else {
            ctx.note("no MessageDeduplicationId and no content-based deduplication");
            return Arrival::Answer(Response::error(
                "InvalidParameterValue",
                "MessageDeduplicationId is required",
            ));
        };
        let why = match self.store.get(now_ms, &id) {
            Lookup::Found(e) => return DedupWindow::dropped(ctx, &id, &e),
            Lookup::Missing(why) => why,
        };
        let entry = Entry {
            state: EntryState::InProgress,
            fingerprint: String::new(),
            response: None,
            owner: req.attempt_id(),
            stored_ms: now_ms,
            expires_ms: now_ms + SQS_DEDUP_WINDOW_MS,
        };
        match self.store.begin(now_ms, &id, entry) {
            Begun::Claimed => {
                self.accepted_ms.insert(req.attempt_id(), now_ms);
                ctx.note(format!(
                    "MessageDeduplicationId {id} not seen ({why}): accepted, deduplicated until {} ms",
                    ms(now_ms + SQS_DEDUP_WINDOW_MS)
                ));
                Arrival::Handle
            }
            Begun::Checked => {
                self.accepted_ms.insert(req.attempt_id(), now_ms);
                ctx.note(format!(
                    "MessageDeduplicationId {id} not seen ({why}): accepted, the id is recorded on delivery"
                ));
                Arrival::Handle
            }
            Begun::Held(e) => DedupWindow::dropped(ctx, &id, &e),
        }
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        self.messages += 1;
        let message = format!("m-{}", self.messages);
        let Some(id) = self.id_of(req) else {
            return Response::error(
                "InvalidParameterValue",
                "MessageDeduplicationId is required",
            );
        };
        let accepted = self
            .accepted_ms
            .get(&req.attempt_id())
            .copied()
            .unwrap_or(now_ms);
        let response = Response::ok("200", format!("MessageId {message}"));
        let done = Entry {
            state: EntryState::Done,
            fingerprint: String::new(),
            response: Some(response.clone()),
            owner: req.attempt_id(),
            stored_ms: accepted,
            expires_ms: accepted + SQS_DEDUP_WINDOW_MS,
        };
        let what = format!("message {message} delivered");
        match self
            .store
            .commit(now_ms, &id, done, req, Some(&what), &mut ctx.ledger)
        {
            Committed::Applied => {
                ctx.note(what);
                response
            }
            Committed::Superseded(_) => {
                ctx.note(format!("id {id} recorded by another send: not delivered"));
                Response::ok("200", "accepted (duplicate id: not delivered)")
            }
        }
    }

    fn restart(&mut self, now_ms: u64, _ctx: &mut Ctx) {
        self.store.restart(now_ms);
    }

    fn window_ms(&self) -> Option<u64> {
        Some(SQS_DEDUP_WINDOW_MS)
    }

    fn window_from_handling(&self) -> bool {
        false
    }

    fn charges(&self) -> Option<u64> {
        self.store.charges()
    }
}

/// `consumer-dedup`: a webhook consumer with a store of processed event ids.
pub struct ConsumerDedup {
    store: Box<dyn KeyStore>,
}

impl ConsumerDedup {
    /// A consumer over `store`.
    pub fn new(store: Box<dyn KeyStore>) -> ConsumerDedup {
        ConsumerDedup { store }
    }
}

impl Policy for ConsumerDedup {
    fn arrive(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival {
        let Some(id) = &req.key else {
            ctx.note("no event id: processed");
            return Arrival::Handle;
        };
        match self.store.get(now_ms, id) {
            Lookup::Found(e) => {
                ctx.note(format!(
                    "event {id} processed at {} ms (kept until {} ms): 200, skipped",
                    ms(e.stored_ms),
                    ms(e.expires_ms)
                ));
                Arrival::Answer(Response::ok("200", "already processed"))
            }
            Lookup::Missing(why) => {
                ctx.note(format!("event {id} not processed yet ({why}): processing"));
                Arrival::Handle
            }
        }
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        let what = format!("event processed: ch_{}", ctx.ledger.applied.len() + 1);
        let Some(id) = req.key.clone() else {
            ctx.ledger.apply(now_ms, req, &what);
            return Response::ok("200", "processed");
        };
        let response = Response::ok("200", "processed");
        let done = Entry {
            state: EntryState::Done,
            fingerprint: String::new(),
            response: Some(response.clone()),
            owner: req.attempt_id(),
            stored_ms: now_ms,
            expires_ms: now_ms + CONSUMER_DEDUP_TTL_MS,
        };
        let store = self.store.name().name();
        match self
            .store
            .commit(now_ms, &id, done, req, Some(&what), &mut ctx.ledger)
        {
            Committed::Applied => {
                ctx.note(format!(
                    "{what}; event {id} recorded in {store} until {} ms",
                    ms(now_ms + CONSUMER_DEDUP_TTL_MS)
                ));
                response
            }
            Committed::Superseded(_) => {
                ctx.note(format!(
                    "event {id} already recorded: transaction rolled back, nothing applied"
                ));
                Response::ok("200", "already processed")
            }
        }
    }

    fn restart(&mut self, now_ms: u64, _ctx: &mut Ctx) {
        self.store.restart(now_ms);
    }

    fn window_ms(&self) -> Option<u64> {
        Some(CONSUMER_DEDUP_TTL_MS)
    }

    fn charges(&self) -> Option<u64> {
        self.store.charges()
    }
}
