//! `idempo-sim run --bootstrap embedded --brokers 3`: the simulator's workload and checker
//! against a three-broker cluster over TCP, with leader kills and isolations drawn from the
//! seed and injected through the cluster's admin endpoint.

use idempo_sim::SimConfig;
use idempo_sim::flags;
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idempo-sim"))
        .args(args)
        .output()
        .expect("idempo-sim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The scheduled faults a TCP report lists, without what became of them.
fn schedule_lines(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("cluster faults ("))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            l.trim()
                .split("  -> ")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The invariants section: every line must end in `ok`.
fn invariants(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| *l != "invariants")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::to_string)
        .collect()
}

/// The config the same flags give (what the run's report is checked against).
fn config_of(args: &[(&str, &str)]) -> SimConfig {
    let mut config = SimConfig::default();
    for (flag, value) in args {
        flags::set(&mut config, flag, value).expect("a valid flag");
    }
    config
}

#[test]
fn a_three_broker_run_with_two_leader_kills_and_an_isolation_exits_0_exactly_once() {
    let o = sim(&[
        "run",
        "--bootstrap",
        "embedded",
        "--brokers",
        "3",
        "--leader-kills",
        "2",
        "--isolations",
        "1",
    ]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("brokers=3 replication_factor=3 min_insync_replicas=2"),
        "an embedded cluster defaults to RF 3, min.insync.replicas 2: {out}"
    );
    assert!(out.contains("embedded cluster of 3 brokers"), "{out}");
    let invariants = invariants(&out);
    assert_eq!(invariants.len(), 7, "{out}");
    assert!(invariants.iter().all(|l| l.ends_with(" ok")), "{out}");
    assert!(out.contains("records  sent 6000  acked 6000"), "{out}");
    let config = config_of(&[
        ("brokers", "3"),
        ("replication-factor", "3"),
        ("min-insync-replicas", "2"),
        ("leader-kills", "2"),
        ("isolations", "1"),
    ]);
    let seeds: Vec<String> = idempo_net::cluster_faults::schedule(&config)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(seeds.len(), 3);
    assert_eq!(schedule_lines(&out), seeds, "the seed's schedule: {out}");
    assert!(
        out.lines().any(|l| l.starts_with("replay: idempo-sim run --bootstrap embedded ")
            && l.contains("--brokers 3 --replication-factor 3 --min-insync-replicas 2 --leader-kills 2 --isolations 1")),
        "{out}"
    );
}

#[test]
fn the_fault_schedule_of_a_cluster_run_over_tcp_comes_from_the_seed() {
    let run = |seed: &str| {
        let o = sim(&[
            "run",
            "--bootstrap",
            "embedded",
            "--seed",
            seed,
            "--brokers",
            "3",
            "--leader-kills",
            "2",
            "--isolations",
            "1",
            "--records",
            "500",
            "--broker-session-timeout-ms",
            "500",
            "--replica-lag-time-max-ms",
            "1000",
        ]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "seed {seed}: {out}");
        schedule_lines(&out)
    };
    let first = run("5");
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(run("5"), first, "the same seed, the same schedule");
    assert_ne!(run("6"), first, "another seed, another schedule");
}
