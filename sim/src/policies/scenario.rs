//! The scenarios: what the client sends, when, and what the network and the server do to it.
//!
//! Every time is drawn from the seed through the simulator's [`FaultOracle`], keyed by the
//! logical event (operation, attempt, purpose), so a scenario is the same script for every
//! policy and the same bytes for the same seed. What is drawn:
//!
//! ```text
//! request and response latency  1..=20 ms each way
//! handler time                  5..=50 ms (concurrent-retry: 35 000..=50 000 ms;
//!                               slow-handler: 95 000..=120 000 ms)
//! network copy                  100..=2 000 ms after the original (duplicate-delivery)
//! gap between two operations    1 000..=5 000 ms
//! restart                       1..=1 000 ms after the first attempt is handled
//! ```
//!
//! The client waits [`REQUEST_TIMEOUT_MS`] for an answer (slow-handler:
//! [`SLOW_CLIENT_TIMEOUT_MS`]), abandons the attempt, and retries after [`RETRY_BACKOFF_MS`]
//! with the same key; an answer to an abandoned attempt is discarded, as Kafka's
//! `NetworkClient` discards responses on a connection it closed.

use super::ScenarioName;
use crate::faults::{FaultKind, FaultOracle};

/// How long a client waits for an answer before it retries (Kafka's `request.timeout.ms`).
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// The client of `slow-handler` waits longer than the key store's lock lives.
pub const SLOW_CLIENT_TIMEOUT_MS: u64 = 90_000;
/// The pause before a retry (Kafka's `retry.backoff.ms`).
pub const RETRY_BACKOFF_MS: u64 = 100;

const LATENCY_MS: (u64, u64) = (1, 20);
const HANDLER_MS: (u64, u64) = (5, 50);
const CONCURRENT_HANDLER_MS: (u64, u64) = (35_000, 50_000);
const SLOW_HANDLER_MS: (u64, u64) = (95_000, 120_000);
const COPY_AFTER_MS: (u64, u64) = (100, 2_000);
const GAP_MS: (u64, u64) = (1_000, 5_000);
const RESTART_AFTER_MS: (u64, u64) = (1, 1_000);

/// The body of the scenarios' charges.
pub const BODY: &str = "amount=1000&currency=eur&customer=cus_1";
/// The body of `key-reuse-different-params`' second operation.
pub const OTHER_BODY: &str = "amount=2500&currency=eur&customer=cus_1";

/// One intended operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The key the client sends with it.
    pub key: Option<String>,
    /// Its parameters.
    pub body: String,
}

/// One attempt the client sends, and the faults that meet it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// Which operation.
    pub op: usize,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// `request`, `retry`, `second operation`.
    pub label: &'static str,
    /// When the client sends it.
    pub send_ms: u64,
    /// Its way to the server.
    pub request_latency_ms: u64,
    /// The answer's way back.
    pub response_latency_ms: u64,
    /// How long the handler runs, if the server runs it.
    pub handler_ms: u64,
    /// How long the client waits for the answer.
    pub timeout_ms: u64,
    /// The network loses the request.
    pub request_lost: bool,
    /// The network loses the answer.
    pub response_lost: bool,
    /// The network delivers a second copy this long after the first.
    pub copy_after_ms: Option<u64>,
}

impl Send {
    /// When it reaches the server (if it is not lost).
    pub fn arrive_ms(&self) -> u64 {
        self.send_ms + self.request_latency_ms
    }
}

/// A scenario for one seed: operations, attempts and a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The intended operations.
    pub ops: Vec<Operation>,
    /// The attempts, in the order the client sends them.
    pub sends: Vec<Send>,
    /// When the server restarts, if it does.
    pub restart_at_ms: Option<u64>,
}

/// The seeded draws of a scenario.
struct Draws {
    oracle: FaultOracle,
}

impl Draws {
    fn range(
        &self,
        (min, max): (u64, u64),
        kind: FaultKind,
        op: usize,
        purpose: u64,
        attempt: u32,
    ) -> u64 {
        self.oracle
            .latency(min, max, kind, op as u32, purpose, attempt)
    }

    fn send(&self, op: usize, attempt: u32, label: &'static str, send_ms: u64) -> Send {
        Send {
            op,
            attempt,
            label,
            send_ms,
            request_latency_ms: self.range(LATENCY_MS, FaultKind::RequestLatency, op, 0, attempt),
            response_latency_ms: self.range(LATENCY_MS, FaultKind::ResponseLatency, op, 0, attempt),
            handler_ms: self.range(HANDLER_MS, FaultKind::HandlerTime, op, 0, attempt),
            timeout_ms: REQUEST_TIMEOUT_MS,
            request_lost: false,
            response_lost: false,
            copy_after_ms: None,
        }
    }
}

fn op(key: &str, body: &str) -> Operation {
    Operation {
        key: Some(key.to_string()),
        body: body.to_string(),
    }
}

/// When a policy's memory of the first request ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// How long it remembers.
    pub window_ms: u64,
    /// From the end of the first request's handling (`true`) or from its arrival.
    pub from_handling: bool,
}

/// The script of `scenario` for `seed`, against a policy whose memory is `window`
/// (`retry-after-window` retries 1 ms after it ends).
pub fn script(scenario: ScenarioName, seed: u64, window: Window) -> Script {
    let d = Draws {
        oracle: FaultOracle::new(seed),
    };
    let retry_ms = REQUEST_TIMEOUT_MS + RETRY_BACKOFF_MS;
    let mut ops = vec![op("k1", BODY)];
    let mut first = d.send(0, 1, "request", 0);
    let mut restart_at_ms = None;
    let mut sends = Vec::new();
    match scenario {
        ScenarioName::LostResponse => {
            first.response_lost = true;
            sends = vec![first, d.send(0, 2, "retry", retry_ms)];
        }
        ScenarioName::LostRequest => {
            first.request_lost = true;
            sends = vec![first, d.send(0, 2, "retry", retry_ms)];
        }
        ScenarioName::DuplicateDelivery => {
            first.copy_after_ms =
                Some(d.range(COPY_AFTER_MS, FaultKind::DuplicateLatency, 0, 0, 1));
            sends.push(first);
        }
        ScenarioName::RetryAfterWindow => {
            first.response_lost = true;
            let mut retry = d.send(0, 2, "retry", 0);
            // The retry arrives exactly 1 ms after the window ends.
            let start = first.arrive_ms()
                + if window.from_handling {
                    first.handler_ms
                } else {
                    0
                };
            retry.send_ms = (start + window.window_ms + 1).saturating_sub(retry.request_latency_ms);
            sends = vec![first, retry];
        }
        ScenarioName::ConcurrentRetry => {
            first.handler_ms = d.range(CONCURRENT_HANDLER_MS, FaultKind::HandlerTime, 0, 0, 1);
            sends = vec![first, d.send(0, 2, "retry", retry_ms)];
        }
        ScenarioName::ServerRestart => {
            first.response_lost = true;
            let after = d.range(RESTART_AFTER_MS, FaultKind::BrokerRestart, 0, 0, 1);
            restart_at_ms = Some(first.arrive_ms() + first.handler_ms + after);
            sends = vec![first, d.send(0, 2, "retry", retry_ms)];
        }
        ScenarioName::SlowHandler => {
            first.handler_ms = d.range(SLOW_HANDLER_MS, FaultKind::HandlerTime, 0, 0, 1);
            first.timeout_ms = SLOW_CLIENT_TIMEOUT_MS;
            let mut retry = d.send(0, 2, "retry", SLOW_CLIENT_TIMEOUT_MS + RETRY_BACKOFF_MS);
            retry.timeout_ms = SLOW_CLIENT_TIMEOUT_MS;
            sends = vec![first, retry];
        }
        ScenarioName::TwoIntentionalIdentical | ScenarioName::KeyReuseDifferentParams => {
            let reuse = scenario == ScenarioName::KeyReuseDifferentParams;
            ops.push(if reuse {
                op("k1", OTHER_BODY)
            } else {
                op("k2", BODY)
            });
            let gap = d.range(GAP_MS, FaultKind::HandlerTime, 1, 1, 1);
            sends = vec![first, d.send(1, 1, "second operation", gap)];
        }
    }
    Script {
        ops,
        sends,
        restart_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_after_the_window_arrives_one_ms_after_it() {
        for seed in 0..20 {
            let window = Window {
                window_ms: 300_000,
                from_handling: false,
            };
            let s = script(ScenarioName::RetryAfterWindow, seed, window);
            assert_eq!(s.sends[1].arrive_ms(), s.sends[0].arrive_ms() + 300_001);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_script() {
        for scenario in ScenarioName::ALL {
            let window = Window {
                window_ms: 1_000,
                from_handling: true,
            };
            assert_eq!(script(scenario, 7, window), script(scenario, 7, window));
        }
    }
}
