//! The fault proxy's command line, shared: `idempo-proxy` and `idempo-sim proxy` flatten the
//! same [`ProxyArgs`] and run the same [`main`], so the two can never disagree on a flag, a
//! default or what they print.
//!
//! ```text
//! # Lose 30 % of the produce acks after the append, closing the connection each time:
//! idempo-broker --listen 127.0.0.1:9092 --advertise 127.0.0.1:19092
//! idempo-proxy --listen 127.0.0.1:19092 --upstream 127.0.0.1:9092 --seed 7 --ack-loss 0.3
//! # The same through the simulator's command line, delaying a tenth of the frames:
//! idempo-sim proxy --upstream 127.0.0.1:9092 --ack-loss 0.3 --delay 0.1 --delay-ms 10..100
//! ```
//!
//! The flags are named as `idempo-sim run` names the same faults (`--ack-loss`,
//! `--request-loss`, `--duplicate`); the frame-level names `--drop-produce-response`,
//! `--drop-produce-request` and `--duplicate-produce` are accepted as aliases. A bad value
//! exits 2 naming its flag. Logs (one line per fault) go to stderr; on Ctrl-C or SIGTERM the
//! fault counts are printed to stdout, one `name: count` per line.

use crate::proxy::{Delay, Fault, Proxy, ProxyConfig};
use crate::server::Advertised;
use clap::{Args, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

/// On or off, for flags that take a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// The delay range used when `--delay` is given without `--delay-ms`.
pub const DEFAULT_DELAY_MS: (u64, u64) = (10, 100);

/// Flags of the fault proxy, for `idempo-proxy` and `idempo-sim proxy`.
#[derive(Args, Clone, Debug)]
pub struct ProxyArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:19092", value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// The broker to relay to.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT", value_parser = resolve)]
    pub upstream: SocketAddr,
    /// Seed of the proxy's choices: the same seed and the same traffic give the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Probability that a Produce response is dropped after the broker appended (a lost ack).
    #[arg(long, visible_alias = "drop-produce-response", default_value_t = 0.1, value_name = "P", value_parser = idempo_sim::flags::probability)]
    pub ack_loss: f64,
    /// Probability that a Produce request is dropped.
    #[arg(long, visible_alias = "drop-produce-request", default_value_t = 0.0, value_name = "P", value_parser = idempo_sim::flags::probability)]
    pub request_loss: f64,
    /// Probability that a Produce request is delivered twice (the second answer is swallowed).
    #[arg(long, visible_alias = "duplicate-produce", default_value_t = 0.0, value_name = "P", value_parser = idempo_sim::flags::probability)]
    pub duplicate: f64,
    /// Probability that a frame (either direction) is held back by --delay-ms (default: 1
    /// when --delay-ms is given, else 0).
    #[arg(long, value_name = "P", value_parser = idempo_sim::flags::probability)]
    pub delay: Option<f64>,
    /// Range of a delay, MIN..MAX milliseconds (default 10..100).
    #[arg(long, value_name = "MIN..MAX", value_parser = idempo_sim::flags::latency)]
    pub delay_ms: Option<(u64, u64)>,
    /// Probability that a frame (either direction) cuts the connection instead.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = idempo_sim::flags::probability)]
    pub cut: f64,
    /// Close the connection right after a lost frame, as a broken TCP connection would
    /// (clients need it to notice a lost ack promptly).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub close_after_fault: Switch,
    /// Stop injecting after this many faults (delays not counted).
    #[arg(long, value_name = "N")]
    pub max_faults: Option<u64>,
    /// Rewrite the broker addresses in Metadata answers to the proxy's own address, so that
    /// clients stay behind it (`--rewrite-metadata` alone means on).
    #[arg(long, value_enum, default_value_t = Switch::On, num_args = 0..=1, default_missing_value = "on")]
    pub rewrite_metadata: Switch,
    /// HOST:PORT written into rewritten Metadata (default: the address listened on).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<Advertised>,
}

/// Why `--upstream` cannot be used.
#[derive(Debug)]
pub enum AddressError {
    /// The name did not resolve.
    Unresolvable {
        /// The value given.
        text: String,
        /// The resolver's error.
        error: std::io::Error,
    },
    /// It resolved to no address.
    NoAddress(String),
}

impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressError::Unresolvable { text, error } => {
                write!(f, "`{text}` is not a reachable HOST:PORT: {error}")
            }
            AddressError::NoAddress(text) => write!(f, "`{text}` resolves to no address"),
        }
    }
}

impl std::error::Error for AddressError {}

/// Resolves `HOST:PORT` to its first address.
fn resolve(text: &str) -> Result<SocketAddr, AddressError> {
    text.to_socket_addrs()
        .map_err(|error| AddressError::Unresolvable {
            text: text.to_string(),
            error,
        })?
        .next()
        .ok_or_else(|| AddressError::NoAddress(text.to_string()))
}

impl ProxyArgs {
    /// The delay probability and range these flags ask for.
    pub fn delay(&self) -> (f64, (u64, u64)) {
        let p = self
            .delay
            .unwrap_or(if self.delay_ms.is_some() { 1.0 } else { 0.0 });
        (p, self.delay_ms.unwrap_or(DEFAULT_DELAY_MS))
    }

    /// The proxy's settings. The parsers already checked every value.
    pub fn config(&self) -> ProxyConfig {
        let close = self.close_after_fault == Switch::On;
        let (delay, (min_ms, max_ms)) = self.delay();
        ProxyConfig {
            listen: self.listen,
            upstream: self.upstream,
            seed: self.seed,
            drop_produce_response: Fault::new(self.ack_loss, close),
            drop_produce_request: Fault::new(self.request_loss, close),
            duplicate_produce: Fault::new(self.duplicate, false),
            delay: (delay > 0.0).then_some(Delay {
                // In 0..=1_000_000: `probability` checked the range.
                probability_ppm: (delay * 1_000_000.0).round() as u32,
                min_ms,
                max_ms,
            }),
            cut_probability: self.cut,
            max_faults: self.max_faults,
            rewrite_metadata: self.rewrite_metadata == Switch::On,
            advertise: self.advertise.clone(),
            ..ProxyConfig::default()
        }
    }
}

/// Runs the proxy the flags describe until Ctrl-C or SIGTERM, then prints the fault counts.
/// Logs go to stderr (`RUST_LOG`). `name` is the command as the user typed it, for messages.
/// Exit status: 0 after a clean stop, 2 for settings refused or an address that cannot be
/// listened on (the message names `--listen`), 1 when the runtime cannot start.
pub fn main(name: &str, args: &ProxyArgs) -> ExitCode {
    crate::process::init_logging();
    let config = args.config();
    if let Err(e) = config.validate() {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let proxy = match Proxy::bind(config.clone()).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{name}: --listen {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        };
        let listening = proxy
            .local_addr()
            .map_or_else(|_| args.listen.to_string(), |a| a.to_string());
        let (delay, (min_ms, max_ms)) = args.delay();
        eprintln!(
            "{name}: {listening} -> {} (ack loss {}, request loss {}, duplicate {}, delay {delay} of {min_ms}..{max_ms} ms, cut {}); Ctrl-C to stop",
            args.upstream, args.ack_loss, args.request_loss, args.duplicate, args.cut
        );
        let counts = proxy.counts();
        proxy.run(crate::process::shutdown_signal()).await;
        print!("{}", counts.tally());
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    fn parse(flags: &[&str]) -> Result<ProxyArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("proxy").chain(flags.iter().copied())).map(|c| c.proxy)
    }

    #[test]
    fn frame_level_names_are_aliases_of_the_fault_names() {
        let a = parse(&[
            "--drop-produce-response",
            "0.3",
            "--drop-produce-request",
            "0.2",
            "--duplicate-produce",
            "0.1",
        ])
        .expect("the aliases parse");
        let b = parse(&[
            "--ack-loss",
            "0.3",
            "--request-loss",
            "0.2",
            "--duplicate",
            "0.1",
        ])
        .expect("the names parse");
        assert_eq!(a.config(), b.config());
    }

    #[test]
    fn a_delay_range_alone_delays_every_frame_and_a_probability_alone_uses_the_default_range() {
        let range_only = parse(&["--delay-ms", "5..50"]).expect("parses").config();
        let d = range_only.delay.expect("a delay");
        assert_eq!((d.probability_ppm, d.min_ms, d.max_ms), (1_000_000, 5, 50));
        let p_only = parse(&["--delay", "0.5"]).expect("parses").config();
        let d = p_only.delay.expect("a delay");
        assert_eq!((d.probability_ppm, d.min_ms, d.max_ms), (500_000, 10, 100));
        assert_eq!(parse(&[]).expect("parses").config().delay, None);
    }

    #[test]
    fn rewrite_metadata_is_on_unless_turned_off() {
        assert!(parse(&[]).expect("parses").config().rewrite_metadata);
        assert!(
            parse(&["--rewrite-metadata"])
                .expect("parses")
                .config()
                .rewrite_metadata
        );
        assert!(
            !parse(&["--rewrite-metadata", "off"])
                .expect("parses")
                .config()
                .rewrite_metadata
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        for (flags, flag) in [
            (&["--ack-loss", "1.5"][..], "--ack-loss"),
            (&["--delay-ms", "9..3"][..], "--delay-ms"),
            (&["--upstream", "nowhere"][..], "--upstream"),
            (&["--listen", "x"][..], "--listen"),
        ] {
            let e = parse(flags).expect_err("refused");
            assert!(e.to_string().contains(flag), "{flags:?}: {e}");
        }
    }
}
