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
//! # Every broker of a 3-broker cluster behind its own port (19092..19094), acks lost on
//! # broker 1 only, connections to broker 2 cut now and then:
//! idempo-broker --brokers 3 --listen 127.0.0.1:9092 --admin 127.0.0.1:8080
//! idempo-proxy --upstream 127.0.0.1:9092 --upstream 127.0.0.1:9093 --upstream 127.0.0.1:9094 \
//!     --ack-loss 0.3 --fault-brokers 1 --broker-faults 2:cut=0.01
//! ```
//!
//! A cluster is fronted by giving `--upstream` once per broker (broker N is the N-th,
//! counting from 0; list them in node id order and N is the node id); `--listen` once (broker
//! 0's port, the others on the next ports) or once per broker. The fault flags apply to every
//! broker unless `--fault-brokers` names some; `--broker-faults N:KEY=P,...` gives broker N
//! its own (KEY: `ack-loss`, `request-loss`, `duplicate`, `cut`; the keys not given keep the
//! proxy's values).
//!
//! The flags are named as `idempo-sim run` names the same faults (`--ack-loss`,
//! `--request-loss`, `--duplicate`); the frame-level names `--drop-produce-response`,
//! `--drop-produce-request` and `--duplicate-produce` are accepted as aliases. A bad value
//! exits 2 naming its flag. Logs (one line per fault) go to stderr; on Ctrl-C or SIGTERM the
//! fault counts are printed to stdout, one `name: count` per line.

use crate::proxy::{Delay, Fault, FaultSet, Proxy, ProxyConfig, Route};
use crate::server::Advertised;
use clap::{ArgAction, Args, ValueEnum};
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
    /// Address to listen on (loopback by default). In front of a cluster: broker 0's, the
    /// others on the next ports (port 0: any free port each), or once per --upstream.
    #[arg(long, default_value = "127.0.0.1:19092", value_name = "HOST:PORT", action = ArgAction::Append)]
    pub listen: Vec<SocketAddr>,
    /// The broker to relay to. Give it once per broker to front a cluster: broker N is the
    /// N-th --upstream (from 0), each behind its own --listen port, and Metadata points every
    /// broker at its own proxy port.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT", value_parser = resolve, action = ArgAction::Append)]
    pub upstream: Vec<SocketAddr>,
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
    /// The brokers (numbers of --upstream, from 0, comma-separated) whose connections suffer
    /// --ack-loss, --request-loss, --duplicate and --cut; the others are relayed faithfully
    /// (unless --broker-faults). Default: every broker.
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub fault_brokers: Option<Vec<usize>>,
    /// Broker N's own faults, e.g. `1:ack-loss=0.5,cut=0.01` (keys: ack-loss, request-loss,
    /// duplicate, cut; the keys not given keep the values of the flags). Repeatable.
    #[arg(long, value_name = "N:KEY=P,...", value_parser = broker_faults, action = ArgAction::Append)]
    pub broker_faults: Vec<BrokerFaults>,
    /// Close the connection right after a lost frame, as a broken TCP connection would
    /// (clients need it to notice a lost ack promptly).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub close_after_fault: Switch,
    /// Stop injecting after this many faults, over every broker (delays not counted).
    #[arg(long, value_name = "N")]
    pub max_faults: Option<u64>,
    /// Rewrite the broker addresses in Metadata (and FindCoordinator, DescribeCluster)
    /// answers to the proxy's own, each broker to its own proxy port, so that clients stay
    /// behind it (`--rewrite-metadata` alone means on).
    #[arg(long, value_enum, default_value_t = Switch::On, num_args = 0..=1, default_missing_value = "on")]
    pub rewrite_metadata: Switch,
    /// HOST:PORT written into rewritten answers (default: the address listened on); once,
    /// or once per --upstream.
    #[arg(long, value_name = "HOST:PORT", action = ArgAction::Append)]
    pub advertise: Vec<Advertised>,
}

/// One `--broker-faults N:KEY=P,...`.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerFaults {
    /// The broker (its --upstream's number, from 0).
    pub broker: usize,
    /// `ack-loss`, `request-loss`, `duplicate`, `cut` given, with their probabilities.
    pub settings: Vec<(FaultKey, f64)>,
}

/// A key of `--broker-faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKey {
    /// `ack-loss`: as --ack-loss.
    AckLoss,
    /// `request-loss`: as --request-loss.
    RequestLoss,
    /// `duplicate`: as --duplicate.
    Duplicate,
    /// `cut`: as --cut.
    Cut,
}

/// Parses `N:KEY=P,...` for `--broker-faults`.
fn broker_faults(text: &str) -> Result<BrokerFaults, String> {
    let (broker, settings) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not N:KEY=P,... (e.g. 1:ack-loss=0.5)"))?;
    let broker = broker
        .parse()
        .map_err(|_| format!("`{broker}` is not a broker number"))?;
    let settings = settings
        .split(',')
        .map(|setting| {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("`{setting}` is not KEY=P"))?;
            let key = match key {
                "ack-loss" => FaultKey::AckLoss,
                "request-loss" => FaultKey::RequestLoss,
                "duplicate" => FaultKey::Duplicate,
                "cut" => FaultKey::Cut,
                other => {
                    return Err(format!(
                        "`{other}` is not ack-loss, request-loss, duplicate or cut"
                    ));
                }
            };
            Ok((
                key,
                idempo_sim::flags::probability(value).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(BrokerFaults { broker, settings })
}

/// Flags that parse one by one but do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsError {
    /// The flag at fault.
    pub flag: &'static str,
    /// Why.
    pub why: String,
}

impl std::fmt::Display for FlagsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.flag, self.why)
    }
}

impl std::error::Error for FlagsError {}

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

    /// Each broker's listening address: the ones given, or the first and the next ports.
    fn listen_addrs(&self) -> Result<Vec<SocketAddr>, FlagsError> {
        let brokers = self.upstream.len();
        let error = |why: String| FlagsError {
            flag: "--listen",
            why,
        };
        match self.listen.as_slice() {
            given if given.len() == brokers => Ok(given.to_vec()),
            [first] => (0..brokers)
                .map(|b| {
                    let port = match first.port() {
                        0 => Some(0),
                        p => u16::try_from(b).ok().and_then(|b| p.checked_add(b)),
                    };
                    port.map(|port| SocketAddr::new(first.ip(), port))
                        .ok_or_else(|| error("the brokers' ports run past 65535".to_string()))
                })
                .collect(),
            given => Err(error(format!(
                "given {} times for {brokers} --upstream: give it once or once per --upstream",
                given.len()
            ))),
        }
    }

    /// The proxy's settings. The parsers checked each value; this checks that they fit
    /// together (as many --listen and --advertise as --upstream, brokers that exist).
    pub fn config(&self) -> Result<ProxyConfig, FlagsError> {
        let close = self.close_after_fault == Switch::On;
        let (delay, (min_ms, max_ms)) = self.delay();
        let brokers = self.upstream.len();
        let listen = self.listen_addrs()?;
        let advertise: Vec<Option<Advertised>> = match self.advertise.len() {
            0 => vec![None; brokers],
            n if n == brokers => self.advertise.iter().cloned().map(Some).collect(),
            n => {
                return Err(FlagsError {
                    flag: "--advertise",
                    why: format!(
                        "given {n} times for {brokers} --upstream: give it once per --upstream"
                    ),
                });
            }
        };
        let mut routes = listen.into_iter().zip(&self.upstream).zip(advertise).map(
            |((listen, &upstream), advertise)| Route {
                listen,
                upstream,
                advertise,
            },
        );
        let first = routes.next().expect("clap gives --upstream a default");
        let more_brokers: Vec<Route> = routes.collect();
        let mut config = ProxyConfig {
            listen: first.listen,
            upstream: first.upstream,
            advertise: first.advertise,
            more_brokers,
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
            ..ProxyConfig::default()
        };
        let unknown = |flag, broker| FlagsError {
            flag,
            why: format!(
                "no broker {broker}: the proxy fronts {brokers} (one per --upstream, from 0)"
            ),
        };
        if let Some(chosen) = &self.fault_brokers {
            if let Some(&b) = chosen.iter().find(|&&b| b >= brokers) {
                return Err(unknown("--fault-brokers", b));
            }
            for b in (0..brokers).filter(|b| !chosen.contains(b)) {
                config.broker_faults.insert(b, FaultSet::NONE);
            }
        }
        for given in &self.broker_faults {
            if given.broker >= brokers {
                return Err(unknown("--broker-faults", given.broker));
            }
            let mut set = config.faults();
            for &(key, p) in &given.settings {
                match key {
                    FaultKey::AckLoss => set.drop_produce_response = Fault::new(p, close),
                    FaultKey::RequestLoss => set.drop_produce_request = Fault::new(p, close),
                    FaultKey::Duplicate => set.duplicate_produce = Fault::new(p, false),
                    FaultKey::Cut => set.cut_probability = p,
                }
            }
            config.broker_faults.insert(given.broker, set);
        }
        Ok(config)
    }
}

/// Runs the proxy the flags describe until Ctrl-C or SIGTERM, then prints the fault counts.
/// Logs go to stderr (`RUST_LOG`). `name` is the command as the user typed it, for messages.
/// Exit status: 0 after a clean stop, 2 for settings refused or an address that cannot be
/// listened on (the message names `--listen`), 1 when the runtime cannot start.
pub fn main(name: &str, args: &ProxyArgs) -> ExitCode {
    crate::process::init_logging();
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
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
                let listen: Vec<String> = config.routes().iter().map(|r| r.listen.to_string()).collect();
                eprintln!("{name}: --listen {}: {e}", listen.join(" "));
                return ExitCode::from(2);
            }
        };
        let listening = proxy.local_addrs().unwrap_or_default();
        let (delay, (min_ms, max_ms)) = args.delay();
        for (b, (listen, route)) in listening.iter().zip(config.routes()).enumerate() {
            let f = config.faults_for(b);
            eprintln!(
                "{name}: broker {b}: {listen} -> {} (ack loss {}, request loss {}, duplicate {}, cut {})",
                route.upstream,
                f.drop_produce_response.probability,
                f.drop_produce_request.probability,
                f.duplicate_produce.probability,
                f.cut_probability
            );
        }
        eprintln!("{name}: delay {delay} of {min_ms}..{max_ms} ms; Ctrl-C to stop");
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
        assert_eq!(a.config().expect("fits"), b.config().expect("fits"));
    }

    #[test]
    fn a_delay_range_alone_delays_every_frame_and_a_probability_alone_uses_the_default_range() {
        let range_only = parse(&["--delay-ms", "5..50"])
            .expect("parses")
            .config()
            .expect("fits");
        let d = range_only.delay.expect("a delay");
        assert_eq!((d.probability_ppm, d.min_ms, d.max_ms), (1_000_000, 5, 50));
        let p_only = parse(&["--delay", "0.5"])
            .expect("parses")
            .config()
            .expect("fits");
        let d = p_only.delay.expect("a delay");
        assert_eq!((d.probability_ppm, d.min_ms, d.max_ms), (500_000, 10, 100));
        assert_eq!(
            parse(&[]).expect("parses").config().expect("fits").delay,
            None
        );
    }

    #[test]
    fn rewrite_metadata_is_on_unless_turned_off() {
        assert!(
            parse(&[])
                .expect("parses")
                .config()
                .expect("fits")
                .rewrite_metadata
        );
        assert!(
            parse(&["--rewrite-metadata"])
                .expect("parses")
                .config()
                .expect("fits")
                .rewrite_metadata
        );
        assert!(
            !parse(&["--rewrite-metadata", "off"])
                .expect("parses")
                .config()
                .expect("fits")
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

    #[test]
    fn one_upstream_per_broker_fronts_a_cluster_on_consecutive_ports() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:19092",
            "--upstream",
            "127.0.0.1:9092",
            "--upstream",
            "127.0.0.1:9093",
            "--upstream",
            "127.0.0.1:9094",
        ])
        .expect("parses")
        .config()
        .expect("fits");
        let routes: Vec<(u16, u16)> = config
            .routes()
            .iter()
            .map(|r| (r.listen.port(), r.upstream.port()))
            .collect();
        assert_eq!(routes, [(19092, 9092), (19093, 9093), (19094, 9094)]);
    }

    #[test]
    fn fault_brokers_keeps_the_faults_to_the_brokers_named_and_broker_faults_overrides() {
        let config = parse(&[
            "--upstream",
            "127.0.0.1:9092",
            "--upstream",
            "127.0.0.1:9093",
            "--upstream",
            "127.0.0.1:9094",
            "--ack-loss",
            "0.3",
            "--fault-brokers",
            "1",
            "--broker-faults",
            "2:cut=0.5,duplicate=0.25",
        ])
        .expect("parses")
        .config()
        .expect("fits");
        assert_eq!(config.faults_for(0), FaultSet::NONE);
        assert_eq!(config.faults_for(1).drop_produce_response.probability, 0.3);
        let two = config.faults_for(2);
        assert_eq!(
            (
                two.drop_produce_response.probability,
                two.cut_probability,
                two.duplicate_produce.probability
            ),
            (0.3, 0.5, 0.25),
            "keys not given keep the flags' values"
        );
    }

    #[test]
    fn flags_that_do_not_fit_the_brokers_are_refused_naming_the_flag() {
        let two = [
            "--upstream",
            "127.0.0.1:9092",
            "--upstream",
            "127.0.0.1:9093",
        ];
        for (extra, flag) in [
            (&["--fault-brokers", "2"][..], "--fault-brokers"),
            (&["--broker-faults", "5:cut=0.1"][..], "--broker-faults"),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--listen",
                    "127.0.0.1:2",
                    "--listen",
                    "127.0.0.1:3",
                ][..],
                "--listen",
            ),
            (
                &[
                    "--advertise",
                    "a:1",
                    "--advertise",
                    "b:2",
                    "--advertise",
                    "c:3",
                ][..],
                "--advertise",
            ),
        ] {
            let flags: Vec<&str> = two.iter().chain(extra).copied().collect();
            let e = parse(&flags)
                .expect("parses")
                .config()
                .expect_err("refused");
            assert_eq!(e.flag, flag, "{flags:?}: {e}");
        }
        let e = parse(&["--broker-faults", "1:loss=0.5"]).expect_err("an unknown key");
        assert!(e.to_string().contains("--broker-faults"), "{e}");
    }
}
