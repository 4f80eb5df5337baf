//! `idempo-proxy`: a Kafka-aware TCP proxy that loses acks, loses or duplicates Produce
//! requests, delays frames and cuts connections, from a seed. The flags and the behaviour are
//! those of `idempo-sim proxy` ([`idempo_net::proxy_cli`]).
//!
//! ```text
//! # Lose 30 % of the produce acks after the append, closing the connection each time:
//! idempo-broker --listen 127.0.0.1:9092 --advertise 127.0.0.1:19092
//! idempo-proxy --listen 127.0.0.1:19092 --upstream 127.0.0.1:9092 --seed 7 \
//!     --ack-loss 0.3 --close-after-fault on
//! # Duplicate half of the Produce requests and lose no ack:
//! idempo-proxy --upstream 127.0.0.1:9092 --ack-loss 0 --duplicate 0.5
//! ```
//!
//! Logs (one line per fault) go to stderr; on Ctrl-C or SIGTERM the fault counts are
//! printed to stdout, one `name: count` per line.

use clap::Parser;
use idempo_net::proxy_cli::{self, ProxyArgs};
use std::process::ExitCode;

/// Relay Kafka's wire protocol to one broker, injecting seeded faults: lost Produce
/// responses (lost acks), lost or duplicated Produce requests, delays and cuts.
#[derive(Parser, Debug)]
#[command(name = "idempo-proxy", version)]
struct Cli {
    #[command(flatten)]
    proxy: ProxyArgs,
}

fn main() -> ExitCode {
    proxy_cli::main("idempo-proxy", &Cli::parse().proxy)
}
