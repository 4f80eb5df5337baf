//! `idempo-proxy`: a Kafka-aware TCP proxy that loses acks, loses or duplicates Produce
//! requests, delays frames and cuts connections, from a seed.
//!
//! ```text
//! # Lose 30 % of the produce acks after the append, closing the connection each time:
//! idempo-broker --listen 127.0.0.1:9092 --advertise 127.0.0.1:19092
//! idempo-proxy --listen 127.0.0.1:19092 --upstream 127.0.0.1:9092 --seed 7 \
//!     --drop-produce-response 0.3 --close-after-fault on
//! # A broker that cannot advertise the proxy: rewrite Metadata instead.
//! idempo-proxy --upstream 127.0.0.1:9092 --rewrite-metadata --duplicate-produce 0.5
//! ```
//!
//! Logs (one line per fault) go to stderr; on Ctrl-C or SIGTERM the fault counts are
//! printed to stdout, one `name: count` per line.

use clap::{Parser, ValueEnum};
use idempo_net::Advertised;
use idempo_net::proxy::{Delay, Fault, Proxy, ProxyConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use tracing::info;

/// Relay Kafka's wire protocol to one broker, injecting seeded faults: lost Produce
/// responses (lost acks), lost or duplicated Produce requests, delays and cuts.
#[derive(Parser, Debug)]
#[command(name = "idempo-proxy", version)]
struct Args {
    /// Address to listen on. Loopback by default.
    #[arg(long, default_value = "127.0.0.1:19092")]
    listen: SocketAddr,
    /// The broker to relay to.
    #[arg(long, default_value = "127.0.0.1:9092")]
    upstream: SocketAddr,
    /// Seed of the faults: the same seed and the same traffic give the same faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Chance that a Produce answer is swallowed after the broker appended (a lost ack).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    drop_produce_response: f64,
    /// Chance that a Produce request is not forwarded.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    drop_produce_request: f64,
    /// Chance that a Produce request is forwarded twice (the second answer is swallowed).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    duplicate_produce: f64,
    /// Delay frames by a random time in this range of milliseconds, e.g. 5..50.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_range)]
    delay_ms: Option<(u64, u64)>,
    /// Chance that a frame is delayed (with --delay-ms).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    delay: f64,
    /// Chance that a frame closes the connection instead of being forwarded.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    cut: f64,
    /// After a lost or duplicated frame, close both sides of the connection (what a real
    /// client needs to notice at once) or keep it open.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    close_after_fault: Switch,
    /// Stop injecting after this many faults (delays not counted).
    #[arg(long, value_name = "N")]
    max_faults: Option<u64>,
    /// Rewrite the broker addresses in Metadata answers to the proxy's own address.
    #[arg(long)]
    rewrite_metadata: bool,
    /// HOST:PORT written into rewritten Metadata (default: the address listened on).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<Advertised>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (min, max) = s.split_once("..").unwrap_or((s, s));
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{v:?} is not a number of milliseconds"))
    };
    let (min, max) = (parse(min)?, parse(max)?);
    if min > max {
        return Err(format!("{s}: the minimum exceeds the maximum"));
    }
    Ok((min, max))
}

impl Args {
    fn config(&self) -> Result<ProxyConfig, String> {
        if !(0.0..=1.0).contains(&self.delay) {
            return Err(format!("--delay must lie in 0..=1, not {}", self.delay));
        }
        let close_after = self.close_after_fault == Switch::On;
        Ok(ProxyConfig {
            listen: self.listen,
            upstream: self.upstream,
            seed: self.seed,
            drop_produce_response: Fault::new(self.drop_produce_response, close_after),
            drop_produce_request: Fault::new(self.drop_produce_request, close_after),
            duplicate_produce: Fault::new(self.duplicate_produce, close_after),
            delay: self.delay_ms.map(|(min_ms, max_ms)| Delay {
                // In 0..=1_000_000, checked above.
                probability_ppm: (self.delay * 1_000_000.0).round() as u32,
                min_ms,
                max_ms,
            }),
            cut_probability: self.cut,
            max_faults: self.max_faults,
            rewrite_metadata: self.rewrite_metadata,
            advertise: self.advertise.clone(),
            ..ProxyConfig::default()
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    idempo_net::process::init_logging();
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(why) => {
            eprintln!("idempo-proxy: {why}");
            return ExitCode::from(2);
        }
    };
    let proxy = match Proxy::bind(config.clone()).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("idempo-proxy: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listening = proxy
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    info!(
        listening,
        upstream = %config.upstream,
        seed = config.seed,
        drop_produce_response = config.drop_produce_response.probability,
        drop_produce_request = config.drop_produce_request.probability,
        duplicate_produce = config.duplicate_produce.probability,
        delay = ?config.delay,
        cut = config.cut_probability,
        close_after_fault = args.close_after_fault == Switch::On,
        max_faults = ?config.max_faults,
        rewrite_metadata = config.rewrite_metadata,
        "idempo-proxy ready"
    );
    let counts = proxy.counts();
    proxy.run(idempo_net::process::shutdown_signal()).await;
    print!("{}", counts.tally());
    ExitCode::SUCCESS
}
