//! # idempo-sim: see Kafka's idempotence work, and fail without it
//!
//! The simulator and study tools of idempo. They drive the same synchronous broker and
//! producer cores that a real deployment would, with no I/O of their own, so every run is a
//! pure function of its parameters: the same seed and flags print the same bytes.
//!
//! `idempo-sim run` puts P producers and one broker on a network that loses requests, loses
//! acknowledgements and reorders messages, then checks the final logs for exactly-once:
//! no duplicates, no lost acknowledged records, per-producer order, no sequence gaps.
//! With `--brokers N` it runs a replicated cluster instead: every broker its own disk, a
//! controller electing leaders, followers fetching from leaders, `acks` and
//! `min.insync.replicas`, leader kills, isolations and correlated power loss; the checker
//! then reads each partition from its final leader below the high watermark and names every
//! loss by the limit of Kafka's guarantee that explains it ([`replication_check`]). With one
//! broker (the default) a run prints exactly what it printed before clusters existed.
//! `idempo-sim compare` runs the same fault schedule with idempotence on and off side by side.
//! `idempo-sim explain` runs a script of broker operations and explains each decision.
//!
//! This crate is the library; the `idempo-sim` binary lives in `cli/` (package `idempo-cli`,
//! `cargo run --release --bin idempo-sim -- run ...`). The library knows no sockets and no
//! tokio: the TCP edge (`run --bootstrap`, `proxy`) is `idempo-net`, which depends on this
//! crate for the workload and the [`checker`], never the other way round.
//!
//! ## Layout
//! - [`bench`](mod@bench): the `--bench` figures and their yardstick.
//! - [`config`]: `SimConfig`, every parameter of a run, and its replay command.
//! - [`flags`]: the one table of run flags: the command line, the replay line, the variants.
//! - [`faults`]: fault decisions keyed by the logical event, so settings can be compared.
//! - [`plan`]: the fault plan of a run (random or from a replay file), replay files.
//! - [`events`]: what happened, as structured events.
//! - [`engine`]: the discrete-event loop driving producers, network and brokers; its
//!   `cluster` half drives replication, the controller and the cluster faults.
//! - [`network`]: the simulated network (tcp, proxy, datagram): latency, loss, connections.
//! - [`policies`]: idempotency beyond Kafka: Stripe keys, the IETF header, AWS tokens, SQS
//!   windows, Pub/Sub, webhook dedup and their key stores, as a policy × scenario matrix.
//! - [`checker`]: the exactly-once checker and the ack ledger.
//! - [`replication_check`]: the checker's invariants and named limits for a replicated run.
//! - [`report`]: the text and JSON output of a run.
//! - [`trace`]: `--trace` lines, kept events and the determinism fingerprint.
//! - [`diagram`]: the Lamport diagram of a small run (`--svg`, `--html`).
//! - [`record_trace`]: following one record through a run (`trace --record`).
//! - [`compare`]: the side-by-side table.
//! - [`shrink`]: reducing a failing run's faults to a minimal replay file.
//! - [`swarm`]: a per-seed fault mix.
//! - [`sweep`]: many seeds over a grid of fault rates and settings, with confidence intervals.
//! - [`zoo`]: the bug zoo, documented idempotence bugs as replayable pairs of runs.
//! - [`script`] and [`explain`]: the study tool (`explain_cluster`: its cluster operations).

#![recursion_limit = "256"]

pub mod bench;
pub mod checker;
pub mod compare;
pub mod config;
pub mod diagram;
pub mod engine;
pub mod events;
pub mod explain;
mod explain_cluster;
pub mod faults;
pub mod flags;
pub mod network;
pub mod plan;
pub mod policies;
pub mod record_trace;
pub mod replication_check;
pub mod report;
pub mod script;
pub mod shrink;
pub mod swarm;
pub mod sweep;
pub mod trace;
pub mod zoo;

pub use config::SimConfig;
pub use engine::{RunReport, SimError, Simulation};

/// Runs one simulation to the end without tracing.
pub fn run(config: &SimConfig) -> Result<RunReport, SimError> {
    Ok(Simulation::new(config.clone(), None)?.run().0)
}
