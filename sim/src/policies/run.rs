//! One run: a scenario's script against one policy, event by event, and the checker's
//! verdict on the ledger.
//!
//! The loop is the simulator's in miniature: a queue of timed events (a request arriving, a
//! handler finishing, an answer reaching the client, the client's timeout, a restart),
//! handled in time order, ties in the order they were scheduled. Nothing reads a clock.
//!
//! The checker then reads the ledger and what the client was finally told (the answer to
//! the latest attempt of each operation that was answered in time):
//!
//! ```text
//! duplicate     an operation was applied twice
//! lost          an operation was never applied, and the client was told success or gave up
//! refused       the client got an error (409, 422, IdempotentParameterMismatch ...)
//! exactly-once  every operation applied once, and the client told so
//! ```
//!
//! in that order of precedence.

use super::model::{Applied, Arrival, Ctx, ENDPOINT, Policy, Request, Response, ms};
use super::scenario::{Script, Send};
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

/// The checker's verdict on one run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// An operation was applied twice.
    Duplicate,
    /// An operation was never applied and the client was told success, or gave up.
    Lost,
    /// The client got an error: the code it saw.
    Refused(String),
    /// Every operation applied once.
    ExactlyOnce,
}

impl Verdict {
    /// `exactly-once`, `duplicate`, `lost` or `refused`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Duplicate => "duplicate",
            Verdict::Lost => "lost",
            Verdict::Refused(_) => "refused",
            Verdict::ExactlyOnce => "exactly-once",
        }
    }

    /// The error a refused client saw.
    pub fn error(&self) -> Option<&str> {
        match self {
            Verdict::Refused(code) => Some(code),
            _ => None,
        }
    }

    /// Worse verdicts first: duplicate, lost, refused, exactly-once.
    pub fn severity(&self) -> u8 {
        match self {
            Verdict::Duplicate => 3,
            Verdict::Lost => 2,
            Verdict::Refused(_) => 1,
            Verdict::ExactlyOnce => 0,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Refused(code) => write!(f, "refused {code}"),
            v => f.write_str(v.word()),
        }
    }
}

/// Who a trace line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// The client.
    Client,
    /// The server (the policy and its store).
    Server,
}

/// A message on the wire, for the diagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// A request (client to server) or an answer.
    pub request: bool,
    /// When it left.
    pub sent_ms: u64,
    /// When it arrived (`None`: lost).
    pub arrived_ms: Option<u64>,
    /// Its label.
    pub label: String,
    /// Discarded on arrival (the client had given up, or already had its answer).
    pub discarded: bool,
}

/// One line of `--trace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When.
    pub at_ms: u64,
    /// Whose.
    pub lane: Lane,
    /// What happened.
    pub text: String,
}

/// What one run did.
#[derive(Debug)]
pub struct RunResult {
    /// The checker's verdict.
    pub verdict: Verdict,
    /// The one-line reason, with exact simulated times.
    pub reason: String,
    /// The side effects.
    pub ctx: Ctx,
    /// The trace, in time order.
    pub lines: Vec<Line>,
    /// The messages, for the diagram.
    pub messages: Vec<Message>,
    /// Rows in the store's database `charges` table, if it has one.
    pub charges: Option<u64>,
}

#[derive(Clone, Debug)]
enum Ev {
    Arrive {
        send: usize,
        copy: bool,
    },
    Complete {
        send: usize,
        copy: bool,
    },
    Answer {
        send: usize,
        response: Response,
        message: usize,
    },
    Timeout {
        send: usize,
    },
    Restart,
}

/// What happened to each request, for the checker's reason.
#[derive(Clone, Debug, Default)]
struct Seen {
    arrived_ms: Option<u64>,
    notes: Vec<String>,
}

struct Loop<'a> {
    script: &'a Script,
    policy: &'a mut dyn Policy,
    ctx: Ctx,
    queue: BTreeMap<(u64, u64), Ev>,
    next: u64,
    lines: Vec<Line>,
    messages: Vec<Message>,
    /// The answer each send got in time.
    answers: Vec<Option<Response>>,
    /// Per (send, copy).
    seen: BTreeMap<(usize, bool), Seen>,
}

impl Loop<'_> {
    fn at(&mut self, time_ms: u64, ev: Ev) {
        self.queue.insert((time_ms, self.next), ev);
        self.next += 1;
    }

    fn line(&mut self, at_ms: u64, lane: Lane, text: impl Into<String>) {
        self.lines.push(Line {
            at_ms,
            lane,
            text: text.into(),
        });
    }

    fn request(&self, s: &Send, copy: bool) -> Request {
        let op = &self.script.ops[s.op];
        let first_sent_ms = self
            .script
            .sends
            .iter()
            .find(|x| x.op == s.op)
            .map_or(s.send_ms, |x| x.send_ms);
        Request {
            op: s.op,
            attempt: s.attempt,
            copy,
            key: op.key.clone(),
            endpoint: ENDPOINT,
            body: op.body.clone(),
            sequence: s.op as i32,
            first_sent_ms,
        }
    }

    fn start(&mut self) {
        for (i, s) in self.script.sends.iter().enumerate() {
            let key = self.script.ops[s.op].key.as_deref().unwrap_or("none");
            let label = format!(
                "{} op {} attempt {} key {key}: {}",
                s.label,
                s.op + 1,
                s.attempt,
                self.script.ops[s.op].body
            );
            self.line(s.send_ms, Lane::Client, format!("sent {label}"));
            let arrived = (!s.request_lost).then(|| s.arrive_ms());
            self.messages.push(Message {
                request: true,
                sent_ms: s.send_ms,
                arrived_ms: arrived,
                label: format!("{} (attempt {})", s.label, s.attempt),
                discarded: false,
            });
            if s.request_lost {
                self.line(s.send_ms, Lane::Client, "the network lost the request");
            } else {
                self.at(
                    s.arrive_ms(),
                    Ev::Arrive {
                        send: i,
                        copy: false,
                    },
                );
            }
            if let Some(after) = s.copy_after_ms {
                self.messages.push(Message {
                    request: true,
                    sent_ms: s.send_ms,
                    arrived_ms: Some(s.arrive_ms() + after),
                    label: "network copy".to_string(),
                    discarded: false,
                });
                self.at(
                    s.arrive_ms() + after,
                    Ev::Arrive {
                        send: i,
                        copy: true,
                    },
                );
            }
            self.at(s.send_ms + s.timeout_ms, Ev::Timeout { send: i });
        }
        if let Some(t) = self.script.restart_at_ms {
            self.at(t, Ev::Restart);
        }
    }

    fn take_notes(&mut self, now_ms: u64, send: usize, copy: bool) {
        let notes = std::mem::take(&mut self.ctx.notes);
        for n in &notes {
            self.line(now_ms, Lane::Server, n.clone());
        }
        self.seen
            .entry((send, copy))
            .or_default()
            .notes
            .extend(notes);
    }

    fn respond(&mut self, now_ms: u64, send: usize, copy: bool, response: Response) {
        let s = &self.script.sends[send];
        let lost = s.response_lost && !copy;
        let arrive = now_ms + s.response_latency_ms;
        self.messages.push(Message {
            request: false,
            sent_ms: now_ms,
            arrived_ms: (!lost).then_some(arrive),
            label: response.to_string(),
            discarded: false,
        });
        if lost {
            self.line(
                now_ms,
                Lane::Server,
                format!("answered {response}: the network lost it"),
            );
            return;
        }
        self.line(now_ms, Lane::Server, format!("answered {response}"));
        let message = self.messages.len() - 1;
        self.at(
            arrive,
            Ev::Answer {
                send,
                response,
                message,
            },
        );
    }

    fn step(&mut self, now_ms: u64, ev: Ev) {
        match ev {
            Ev::Arrive { send, copy } => self.arrive(now_ms, send, copy),
            Ev::Complete { send, copy } => {
                let req = self.request(&self.script.sends[send], copy);
                let r = self.policy.complete(now_ms, &req, &mut self.ctx);
                self.take_notes(now_ms, send, copy);
                self.respond(now_ms, send, copy, r);
            }
            Ev::Answer {
                send,
                response,
                message,
            } => self.answered(now_ms, send, response, message),
            Ev::Timeout { send } => {
                if self.answers[send].is_none() {
                    let s = &self.script.sends[send];
                    let text = format!(
                        "no answer to {} attempt {} after {} ms: gave up on it",
                        s.label,
                        s.attempt,
                        ms(s.timeout_ms)
                    );
                    self.line(now_ms, Lane::Client, text);
                }
            }
            Ev::Restart => {
                self.line(now_ms, Lane::Server, "server restarted");
                self.policy.restart(now_ms, &mut self.ctx);
                let notes = std::mem::take(&mut self.ctx.notes);
                for n in notes {
                    self.line(now_ms, Lane::Server, n);
                }
            }
        }
    }

    /// A request (or its network copy) reaches the server.
    fn arrive(&mut self, now_ms: u64, send: usize, copy: bool) {
        let s = &self.script.sends[send];
        let req = self.request(s, copy);
        let what = if copy { "network copy of" } else { "arrived:" };
        let text = format!("{what} {} attempt {}", s.label, req.attempt);
        let handler_ms = s.handler_ms;
        self.line(now_ms, Lane::Server, text);
        self.seen.entry((send, copy)).or_default().arrived_ms = Some(now_ms);
        let arrival = self.policy.arrive(now_ms, &req, &mut self.ctx);
        self.take_notes(now_ms, send, copy);
        match arrival {
            Arrival::Answer(r) => self.respond(now_ms, send, copy, r),
            Arrival::Handle => self.at(now_ms + handler_ms, Ev::Complete { send, copy }),
        }
    }

    /// An answer reaches the client: kept, unless the client gave up on that attempt or
    /// already has its answer.
    fn answered(&mut self, now_ms: u64, send: usize, response: Response, message: usize) {
        let s = &self.script.sends[send];
        let why = if now_ms > s.send_ms + s.timeout_ms {
            Some("the client had given up on that attempt")
        } else if self.answers[send].is_some() {
            Some("the client already had its answer")
        } else {
            None
        };
        match why {
            Some(why) => {
                self.messages[message].discarded = true;
                self.line(now_ms, Lane::Client, format!("discarded {response}: {why}"));
            }
            None => {
                self.line(now_ms, Lane::Client, format!("got {response}"));
                self.answers[send] = Some(response);
            }
        }
    }
}

/// Runs `script` against `policy`.
pub fn run(script: &Script, policy: &mut dyn Policy) -> RunResult {
    let mut l = Loop {
        script,
        policy,
        ctx: Ctx::default(),
        queue: BTreeMap::new(),
        next: 0,
        lines: Vec::new(),
        messages: Vec::new(),
        answers: vec![None; script.sends.len()],
        seen: BTreeMap::new(),
    };
    l.start();
    // Bounded: each send schedules at most two arrivals, two completions, two answers and a
    // timeout.
    let bound = 8 * script.sends.len() + 2;
    for _ in 0..bound {
        let Some(((t, _), ev)) = l.queue.pop_first() else {
            break;
        };
        l.step(t, ev);
    }
    assert!(l.queue.is_empty(), "a run ends within {bound} events");
    l.lines.sort_by_key(|line| line.at_ms);
    let (verdict, reason) = check(script, &l);
    let charges = l.policy.charges();
    if let Some(rows) = charges {
        assert_eq!(
            rows as usize,
            l.ctx.ledger.applied.len(),
            "the charges table and the ledger agree"
        );
    }
    RunResult {
        verdict,
        reason,
        ctx: l.ctx,
        lines: l.lines,
        messages: l.messages,
        charges,
    }
}

/// What the client was finally told about `op`: the answer to its latest answered attempt.
fn told(script: &Script, answers: &[Option<Response>], op: usize) -> Option<(usize, Response)> {
    script
        .sends
        .iter()
        .enumerate()
        .filter(|(_, s)| s.op == op)
        .filter_map(|(i, _)| answers[i].clone().map(|r| (i, r)))
        .next_back()
}

fn check(script: &Script, l: &Loop<'_>) -> (Verdict, String) {
    let ops = 0..script.ops.len();
    if let Some(reason) = ops.clone().find_map(|op| duplicated(script, l, op)) {
        return (Verdict::Duplicate, reason);
    }
    if let Some(reason) = ops.clone().find_map(|op| lost(script, l, op)) {
        return (Verdict::Lost, reason);
    }
    for op in ops {
        if let Some((send, r)) = told(script, &l.answers, op)
            && !r.ok
        {
            let applied = match l.ctx.ledger.applied.iter().find(|a| a.op == op) {
                Some(a) => format!("operation {} applied once, at {} ms", op + 1, ms(a.at_ms)),
                None => format!("operation {} not applied", op + 1),
            };
            let reason = format!(
                "{}: the client got {}; {applied}",
                about(script, l, (send, false)),
                r.code
            );
            return (Verdict::Refused(r.code), reason);
        }
    }
    (Verdict::ExactlyOnce, once(script, l))
}

fn times(applied: &[&Applied]) -> String {
    let times: Vec<_> = applied
        .iter()
        .map(|a| format!("{} ms", ms(a.at_ms)))
        .collect();
    times.join(" and ")
}

/// The reason `op` is a duplicate, if it was applied twice.
fn duplicated(script: &Script, l: &Loop<'_>, op: usize) -> Option<String> {
    let applied: Vec<_> = l.ctx.ledger.applied.iter().filter(|a| a.op == op).collect();
    if applied.len() < 2 {
        return None;
    }
    let send_of = |attempt: u32| {
        script
            .sends
            .iter()
            .position(|s| s.op == op && s.attempt == attempt)
            .unwrap_or(0)
    };
    // The decisive request is the later-arriving of those that applied it.
    let decisive = applied
        .iter()
        .map(|a| (send_of(a.attempt), a.copy))
        .max_by_key(|k| l.seen.get(k).and_then(|s| s.arrived_ms))
        .unwrap_or((0, false));
    let count = match applied.len() {
        2 => "twice".to_string(),
        n => format!("{n} times"),
    };
    Some(format!(
        "{}: applied {count}, at {}",
        about(script, l, decisive),
        times(&applied)
    ))
}

/// The reason `op` is lost, if it was never applied and the client was not told an error.
fn lost(script: &Script, l: &Loop<'_>, op: usize) -> Option<String> {
    if l.ctx.ledger.count(op) > 0 {
        return None;
    }
    match told(script, &l.answers, op) {
        Some((_, r)) if !r.ok => None,
        Some((send, r)) => Some(format!(
            "{}: operation {} never applied, the client was told {}",
            about(script, l, (send, false)),
            op + 1,
            r.code
        )),
        None => {
            let send = script.sends.iter().rposition(|s| s.op == op).unwrap_or(0);
            Some(format!(
                "{}: operation {} never applied and never answered",
                about(script, l, (send, false)),
                op + 1
            ))
        }
    }
}

/// The reason of an exactly-once run: the last request to arrive, and a rolled-back
/// transaction if one is why a second application did not happen.
fn once(script: &Script, l: &Loop<'_>) -> String {
    let last = l
        .seen
        .iter()
        .max_by_key(|(_, s)| s.arrived_ms)
        .map_or((0, false), |(k, _)| *k);
    let applied: Vec<_> = l.ctx.ledger.applied.iter().collect();
    let each = if script.ops.len() == 1 {
        "applied once"
    } else {
        "each operation applied once"
    };
    let mut reason = format!("{}: {each}, at {}", about(script, l, last), times(&applied));
    let rolled_back = l
        .seen
        .iter()
        .filter(|(k, _)| **k != last)
        .find_map(|(k, s)| {
            s.notes
                .iter()
                .rfind(|n| n.contains("rolled back"))
                .map(|n| (*k, n))
        });
    if let Some(((send, copy), note)) = rolled_back {
        let label = if copy {
            "network copy"
        } else {
            script.sends[send].label
        };
        let _ = write!(
            reason,
            "; the {label} (attempt {}) completed later: {note}",
            script.sends[send].attempt
        );
    }
    reason
}

/// `retry at 30 117 ms (30 101 ms after the first): key k1 found (...): 200 replayed`.
fn about(script: &Script, l: &Loop<'_>, (send, copy): (usize, bool)) -> String {
    let s = &script.sends[send];
    let seen = l.seen.get(&(send, copy)).cloned().unwrap_or_default();
    let Some(at) = seen.arrived_ms else {
        return format!("{} sent at {} ms, lost on the way", s.label, ms(s.send_ms));
    };
    let label = if copy { "network copy" } else { s.label };
    let first = script
        .sends
        .first()
        .filter(|f| !f.request_lost)
        .map(Send::arrive_ms);
    let after = match first {
        Some(f) if send > 0 || copy => {
            format!(" ({} ms after the first arrived)", ms(at.saturating_sub(f)))
        }
        _ => String::new(),
    };
    format!("{label} at {} ms{after}: {}", ms(at), seen.notes.join("; "))
}
