//! The policies without a key store: `pubsub` and `none`.
//!
//! Google Pub/Sub does not deduplicate publisher retries: each publish gets a new message id
//! ("these copies are considered distinct"). Its exactly-once delivery is on the other side:
//! a message is not redelivered to a subscriber after a successful acknowledgement, keyed by
//! the message id. So a network copy of one publish (the same message, delivered twice) is
//! suppressed here, and a client retry (a second publish) is not.
//!
//! `none` applies every request it handles.

use super::model::{Arrival, Ctx, Policy, Request, Response};
use std::collections::{HashMap, HashSet};

/// `pubsub`: new message ids for publisher retries, exactly-once delivery by message id.
#[derive(Debug, Default)]
pub struct Pubsub {
    /// The message id of each publish attempt (a network copy is the same message).
    message_ids: HashMap<(usize, u32), u64>,
    /// Messages delivered and acknowledged.
    acked: HashSet<u64>,
}

impl Policy for Pubsub {
    fn arrive(&mut self, _now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival {
        let next = self.message_ids.len() as u64 + 1;
        let id = *self
            .message_ids
            .entry((req.op, req.attempt))
            .or_insert(next);
        if req.copy {
            ctx.note(format!("message {id} delivered again to the subscriber"));
        } else {
            ctx.note(format!("published as message {id} (a new message id)"));
        }
        Arrival::Handle
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        let id = self
            .message_ids
            .get(&(req.op, req.attempt))
            .copied()
            .unwrap_or(0);
        if !self.acked.insert(id) {
            ctx.note(format!(
                "message {id} already acknowledged: exactly-once delivery drops the redelivery"
            ));
            return Response::ok("200", format!("messageId {id}"));
        }
        ctx.ledger
            .apply(now_ms, req, format!("message {id} processed"));
        ctx.note(format!("message {id} processed and acknowledged"));
        Response::ok("200", format!("messageId {id}"))
    }

    fn restart(&mut self, _now_ms: u64, ctx: &mut Ctx) {
        ctx.note("subscriber restarted (acknowledgements are kept by the service)");
    }

    fn window_ms(&self) -> Option<u64> {
        None
    }
}

/// `none`: no deduplication at all.
#[derive(Debug, Default)]
pub struct NoPolicy;

impl Policy for NoPolicy {
    fn arrive(&mut self, _now_ms: u64, _req: &Request, ctx: &mut Ctx) -> Arrival {
        ctx.note("no idempotency: handling");
        Arrival::Handle
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        let charge = format!("ch_{}", ctx.ledger.applied.len() + 1);
        ctx.ledger.apply(now_ms, req, &charge);
        ctx.note(format!("{charge} applied"));
        Response::ok("200", format!("charge {charge}"))
    }

    fn restart(&mut self, _now_ms: u64, _ctx: &mut Ctx) {}

    fn window_ms(&self) -> Option<u64> {
        None
    }
}
