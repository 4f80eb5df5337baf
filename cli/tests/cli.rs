//! The `idempo-sim` binary as a user meets it: exit codes, messages, determinism.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idempo-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SMALL: &[&str] = &[
    "--producers",
    "2",
    "--partitions",
    "2",
    "--records",
    "300",
    "--ack-loss",
    "0.2",
];

/// A scratch directory of this test process, `idempo-NAME-PID` under the system's temp dir.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("idempo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `contents` to `file` in the scratch directory `dir` and returns its path.
fn scratch_file(dir: &str, file: &str, contents: &str) -> String {
    let path = scratch_dir(dir).join(file);
    std::fs::write(&path, contents).expect("write the file");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn same_seed_and_flags_print_byte_identical_output() {
    let args: Vec<&str> = ["run", "--seed", "7", "--trace"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect();
    let a = sim(&args);
    let b = sim(&args);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert!(
        stdout(&a).lines().count() > 100,
        "the trace has one line per event"
    );
    assert_eq!(a.stdout, b.stdout, "same seed, same bytes");
    let c = sim(&["run", "--seed", "8", "--trace"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect::<Vec<_>>());
    assert_ne!(a.stdout, c.stdout, "another seed, another run");
}

#[test]
fn run_with_ack_loss_passes_and_shows_duplicates_dropped() {
    let o = sim(&["run", "--seed", "3"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect::<Vec<_>>());
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.starts_with("idempo-sim run  seed=3\n"),
        "the seed comes first: {out}"
    );
    assert!(out.contains("verdict: PASS"));
    assert!(out.contains("replay: idempo-sim run --seed 3 "));
    let dropped: u64 = out
        .lines()
        .find_map(|l| l.split("duplicates dropped ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a duplicates dropped count");
    assert!(
        dropped > 0,
        "with 20% ack loss the broker drops retries: {out}"
    );
}

#[test]
fn idempotence_off_with_ack_loss_fails_with_exit_1() {
    let o = sim(&["run", "--seed", "3", "--idempotence", "off"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("verdict: FAIL"));
    assert!(stdout(&o).contains("no duplicates"));
}

#[test]
fn json_summary_has_the_documented_fields() {
    let o = sim(&["run", "--json", "--seed", "5"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in [
        "seed",
        "idempotence",
        "producers",
        "partitions",
        "records_sent",
        "records_acked",
        "records_failed",
        "log_records",
        "duplicates",
        "lost",
        "out_of_order",
        "retries",
        "duplicates_dropped",
        "gaps_rejected",
        "epoch_bumps",
        "faults",
        "verdict",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["seed"], 5);
}

#[test]
fn bad_arguments_exit_2_naming_the_flag() {
    for (args, flag) in [
        (vec!["run", "--ack-loss", "1.5"], "--ack-loss"),
        (vec!["run", "--latency-ms", "9..3"], "--latency-ms"),
        (vec!["run", "--producers", "0"], "--producers"),
        (vec!["run", "--max-in-flight", "6"], "--max-in-flight"),
        (vec!["run", "--frobnicate"], "--frobnicate"),
        (vec!["run", "--brokers", "0"], "--brokers"),
        (vec!["run", "--acks", "2"], "--acks"),
        (
            vec!["run", "--brokers", "2", "--replication-factor", "3"],
            "--replication-factor",
        ),
        (
            vec![
                "run",
                "--brokers",
                "3",
                "--replication-factor",
                "2",
                "--min-insync-replicas",
                "3",
            ],
            "--min-insync-replicas",
        ),
        (vec!["run", "--acks", "1"], "--acks"),
        (vec!["run", "--leader-kills", "1"], "--leader-kills"),
        (vec!["run", "--isolations", "2"], "--isolations"),
        (
            vec!["run", "--correlated-crashes", "1"],
            "--correlated-crashes",
        ),
        (
            vec!["run", "--inter-broker-loss", "2"],
            "--inter-broker-loss",
        ),
        (
            vec!["run", "--inter-broker-latency-ms", "9..1"],
            "--inter-broker-latency-ms",
        ),
        (
            vec!["run", "--replica-lag-time-max-ms", "0"],
            "--replica-lag-time-max-ms",
        ),
        (
            vec!["compare", "--variant", "min-insync-replicas=x"],
            "min-insync-replicas",
        ),
        (vec!["compare", "--variant", "colour=red"], "colour"),
        (vec!["proxy", "--ack-loss", "1.5"], "--ack-loss"),
        (vec!["proxy", "--delay-ms", "9..3"], "--delay-ms"),
    ] {
        let o = sim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn unsafe_max_in_flight_must_be_asked_for() {
    let o = sim(&[
        "run",
        "--max-in-flight",
        "6",
        "--unsafe-max-in-flight",
        "--records",
        "50",
    ]);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("unsafe"));
}

#[test]
fn compare_prints_both_settings_side_by_side() {
    let o = sim(&["compare", "--seed", "3", "--variant", "dedup-window=1"]
        .iter()
        .chain(SMALL)
        .copied()
        .collect::<Vec<_>>());
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("idempotence on")
            && out.contains("idempotence off")
            && out.contains("dedup-window=1")
    );
    let dup_row = out
        .lines()
        .find(|l| l.starts_with("duplicates "))
        .expect("a duplicates row");
    let cells: Vec<&str> = dup_row.split_whitespace().collect();
    assert_eq!(
        cells[1], "0",
        "idempotence on writes no duplicate: {dup_row}"
    );
    assert_ne!(
        cells[2], "0",
        "idempotence off does, on the same faults: {dup_row}"
    );
}

#[test]
fn explain_runs_every_shipped_example() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let o = sim(&["explain", path.to_str().expect("utf-8 path")]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                stderr(&o)
            );
            n += 1;
        }
    }
    assert!(n >= 6, "six teaching scripts ship");
}

#[test]
fn explain_lost_ack_example_shows_the_duplicate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/examples/lost-ack.txt");
    let out = stdout(&sim(&["explain", path]));
    assert!(
        out.contains("duplicate of the batch at offsets 0..2 (window: 0..2): nothing appended"),
        "{out}"
    );
    let off = stdout(&sim(&["explain", "--idempotence", "off", path]));
    assert!(
        off.contains("appended at offsets 3..5: idempotence is off"),
        "{off}"
    );
}

#[test]
fn malformed_script_exits_2_with_the_line_number_and_runs_nothing() {
    let file = scratch_file(
        "sim-test",
        "bad.txt",
        "init-producer\nproduce pid=1 epoch=0 seq=0 count=3\nproduce pid=1 seq=oops count=1\n",
    );
    let o = sim(&["explain", &file]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing is half-run");
    let missing = sim(&[
        "explain",
        scratch_dir("sim-test")
            .join("missing.txt")
            .to_str()
            .expect("utf-8 path"),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read script"));
}

#[test]
fn explain_json_lines_carry_the_documented_fields() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/examples/gap.txt");
    let out = stdout(&sim(&["explain", "--json", path]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let rejected = lines
        .iter()
        .find(|v| v["outcome"] == "rejected")
        .expect("the gap is rejected");
    assert_eq!(rejected["error"], "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(rejected["error_code"], 45);
    for key in [
        "line",
        "op",
        "partition",
        "producer_id",
        "producer_epoch",
        "first_sequence",
        "last_sequence",
        "base_offset",
        "last_offset",
        "reason",
    ] {
        assert!(rejected.get(key).is_some(), "missing {key}");
    }
    let init = &lines[0];
    assert_eq!(init["op"], "init-producer");
    assert_eq!(init["producer_id"], 1);
}

#[test]
fn a_failing_run_shrinks_to_a_replay_file_that_fails_again() {
    let file = scratch_dir("shrink").join("replay.txt");
    let file = file.to_str().expect("utf-8 path");
    let o = sim(&[
        "run",
        "--idempotence",
        "off",
        "--producers",
        "1",
        "--partitions",
        "1",
        "--records",
        "100",
        "--batch-records",
        "5",
        "--ack-loss",
        "0.3",
        "--shrink",
        file,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("shrunk: "), "{}", stdout(&o));
    let text = std::fs::read_to_string(file).expect("the replay file was written");
    assert!(text.starts_with("# idempo-sim replay file, version 1"));
    let faults = text
        .lines()
        .filter(|l| l.starts_with("ack-loss") || l.starts_with("request-loss"))
        .count();
    assert!(
        (1..=3).contains(&faults),
        "shrunk to a handful of faults:\n{text}"
    );
    let again = sim(&["replay", file]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "the replay fails again: {}",
        stdout(&again)
    );
    assert!(stdout(&again).contains("no duplicates"));
    assert!(stdout(&again).contains("VIOLATED"));
}

#[test]
fn check_determinism_compares_two_runs_of_the_seed() {
    let o = sim(&[
        "run",
        "--check-determinism",
        "--records",
        "200",
        "--duplicate",
        "0.1",
        "--spike",
        "0.05",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(": identical"), "{}", stdout(&o));
}

#[test]
fn a_malformed_replay_file_exits_2_naming_the_line() {
    let file = scratch_file(
        "badreplay",
        "bad.txt",
        "flags --seed 1\nack-loss producer=0 batch=x attempt=1\n",
    );
    let o = sim(&["replay", &file]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn swarm_prints_the_drawn_mix_so_the_replay_needs_no_swarm() {
    let o = sim(&["run", "--swarm", "--seed", "11", "--records", "200"]);
    let out = stdout(&o);
    let replay = out
        .lines()
        .find(|l| l.starts_with("replay: "))
        .expect("a replay line");
    assert!(!replay.contains("--swarm"), "{replay}");
}

#[test]
fn run_over_tcp_through_the_fault_proxy_is_exactly_once_with_idempotence() {
    let o = sim(&[
        "run",
        "--bootstrap",
        "embedded",
        "--records",
        "300",
        "--ack-loss",
        "0.2",
        "--producers",
        "2",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("over TCP: 2 producer(s) -> fault proxy -> embedded idempo-broker"),
        "{out}"
    );
    assert!(out.contains("verdict: PASS"));
    let dropped: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("dropped produce responses: "))
        .and_then(|n| n.parse().ok())
        .expect("the proxy reports its lost acks");
    assert!(dropped > 0, "the fault really happened: {out}");
    let off = sim(&[
        "run",
        "--bootstrap",
        "embedded",
        "--records",
        "300",
        "--ack-loss",
        "0.2",
        "--producers",
        "2",
        "--idempotence",
        "off",
    ]);
    assert_eq!(off.status.code(), Some(1), "{}", stdout(&off));
    assert!(stdout(&off).contains("no duplicates"));
}

/// The invariant names of a report, in order, with their dotted padding and status removed.
fn invariant_names(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| *l != "invariants")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().split("..").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn simulated_and_tcp_runs_print_the_same_named_invariants_in_the_same_order() {
    let simulated = stdout(&sim(&["run", "--records", "100", "--producers", "1"]));
    let tcp = stdout(&sim(&[
        "run",
        "--bootstrap",
        "--records",
        "100",
        "--producers",
        "1",
    ]));
    let names = invariant_names(&simulated);
    assert_eq!(names.len(), 7, "{simulated}");
    assert_eq!(names[0], "no duplicates");
    assert_eq!(names, invariant_names(&tcp), "{tcp}");
}

#[test]
fn run_over_tcp_refuses_what_it_cannot_do_naming_the_flag() {
    // A named cluster is whatever it is: --brokers starts one only with `embedded`.
    let o = sim(&["run", "--bootstrap", "127.0.0.1:1", "--brokers", "3"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--brokers") && err.contains("--bootstrap embedded"),
        "{err}"
    );
    // Correlated crashes are simulated only.
    let o = sim(&[
        "run",
        "--bootstrap",
        "--brokers",
        "3",
        "--correlated-crashes",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--correlated-crashes") && err.contains("not injected over TCP"),
        "{err}"
    );
}

#[test]
fn acks_zero_completes_every_batch_at_drain_and_the_run_finishes() {
    let o = sim(&[
        "run",
        "--acks",
        "0",
        "--idempotence",
        "off",
        "--records",
        "500",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("acked 1500  failed 0  unresolved 0"), "{out}");
    assert!(!out.contains("STOPPED"), "{out}");
}

/// A non-default value for every flag that changes a run (switches: the flag alone).
const NON_DEFAULT: &[(&str, &[&str])] = &[
    ("seed", &["--seed", "9"]),
    ("producers", &["--producers", "1"]),
    ("partitions", &["--partitions", "3"]),
    ("records", &["--records", "70"]),
    ("batch-records", &["--batch-records", "7"]),
    ("max-in-flight", &["--max-in-flight", "2"]),
    ("ack-loss", &["--ack-loss", "0.3"]),
    ("request-loss", &["--request-loss", "0.1"]),
    ("latency-ms", &["--latency-ms", "2..30"]),
    ("request-timeout-ms", &["--request-timeout-ms", "150"]),
    ("delivery-timeout-ms", &["--delivery-timeout-ms", "900"]),
    ("retries", &["--retries", "3"]),
    ("retry-backoff-ms", &["--retry-backoff-ms", "25"]),
    ("idempotence", &["--idempotence", "off"]),
    ("dedup-window", &["--dedup-window", "8"]),
    ("broker-profile", &["--broker-profile", "kafka-0.11"]),
    (
        "unsafe-max-in-flight",
        &["--unsafe-max-in-flight", "--max-in-flight", "7"],
    ),
    ("network", &["--network", "proxy"]),
    ("client-profile", &["--client-profile", "idempo"]),
    (
        "unknown-producer-resets-sequences",
        &["--unknown-producer-resets-sequences"],
    ),
    (
        "failed-batch-adjusts-sequences",
        &["--failed-batch-adjusts-sequences"],
    ),
    (
        "bump-skips-idle-partitions",
        &["--bump-skips-idle-partitions"],
    ),
    (
        "failed-batch-waits-for-in-flight",
        &["--failed-batch-waits-for-in-flight"],
    ),
    (
        "librdkafka-timeout-bump",
        &[
            "--client-profile",
            "librdkafka",
            "--librdkafka-timeout-bump",
            "off",
        ],
    ),
    (
        "librdkafka-possibly-persisted-ack",
        &[
            "--client-profile",
            "librdkafka",
            "--librdkafka-possibly-persisted-ack",
            "on",
        ],
    ),
    (
        "librdkafka-out-of-order-bump",
        &[
            "--client-profile",
            "librdkafka",
            "--librdkafka-out-of-order-bump",
            "off",
        ],
    ),
    ("first-batch-alone", &["--first-batch-alone"]),
    ("duplicate", &["--duplicate", "0.2"]),
    ("corrupt", &["--corrupt", "0.1"]),
    ("header-corrupt", &["--header-corrupt", "0.1"]),
    ("spike", &["--spike", "0.1"]),
    ("spike-ms", &["--spike", "0.1", "--spike-ms", "500"]),
    ("broker-crashes", &["--broker-crashes", "2"]),
    ("broker-restarts", &["--broker-restarts", "2"]),
    ("producer-restarts", &["--producer-restarts", "1"]),
    ("delete-records", &["--delete-records", "2"]),
    ("append-failure", &["--append-failure", "0.1"]),
    (
        "producer-state-before-append",
        &["--producer-state-before-append", "on"],
    ),
    (
        "out-of-order-sequence-fatal",
        &["--out-of-order-sequence-fatal", "on"],
    ),
    (
        "initial-producer-epoch",
        &["--initial-producer-epoch", "32766"],
    ),
    ("epoch-bump-wraps", &["--epoch-bump-wraps", "on"]),
    ("producer-per-batch", &["--producer-per-batch"]),
    (
        "max-producer-ids-per-partition",
        &[
            "--producer-per-batch",
            "--max-producer-ids-per-partition",
            "5",
        ],
    ),
    (
        "producer-state-budget",
        &["--producer-per-batch", "--producer-state-budget", "5"],
    ),
    (
        "producer-id-expiration-check-interval-ms",
        &[
            "--producer-id-expiration-check-interval-ms",
            "20",
            "--producer-id-expiration-ms",
            "100",
        ],
    ),
    (
        "producer-id-expiration-ms",
        &["--producer-id-expiration-ms", "100"],
    ),
    ("max-virtual-ms", &["--max-virtual-ms", "300"]),
    ("sync", &["--sync", "never", "--broker-crashes", "2"]),
    (
        "snapshot-mode",
        &["--snapshot-mode", "last-batch", "--broker-restarts", "2"],
    ),
    (
        "snapshot-interval-ms",
        &["--snapshot-interval-ms", "50", "--broker-crashes", "2"],
    ),
    ("brokers", &["--brokers", "3"]),
    (
        "replication-factor",
        &["--brokers", "3", "--replication-factor", "3"],
    ),
    (
        "min-insync-replicas",
        &[
            "--brokers",
            "3",
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
        ],
    ),
    (
        "acks",
        &[
            "--acks",
            "1",
            "--idempotence",
            "off",
            "--brokers",
            "2",
            "--replication-factor",
            "2",
        ],
    ),
    (
        "unclean-leader-election",
        &[
            "--unclean-leader-election",
            "--brokers",
            "3",
            "--replication-factor",
            "2",
            "--leader-kills",
            "1",
        ],
    ),
    (
        "truncation",
        &[
            "--truncation",
            "high-watermark",
            "--brokers",
            "3",
            "--replication-factor",
            "2",
            "--leader-kills",
            "1",
        ],
    ),
    (
        "replica-lag-time-max-ms",
        &[
            "--replica-lag-time-max-ms",
            "500",
            "--brokers",
            "3",
            "--replication-factor",
            "3",
        ],
    ),
    (
        "broker-session-timeout-ms",
        &[
            "--broker-session-timeout-ms",
            "1000",
            "--brokers",
            "3",
            "--replication-factor",
            "2",
            "--broker-crashes",
            "1",
        ],
    ),
    (
        "inter-broker-latency-ms",
        &[
            "--inter-broker-latency-ms",
            "3..9",
            "--brokers",
            "2",
            "--replication-factor",
            "2",
        ],
    ),
    (
        "inter-broker-loss",
        &[
            "--inter-broker-loss",
            "0.05",
            "--brokers",
            "2",
            "--replication-factor",
            "2",
        ],
    ),
    (
        "leader-kills",
        &[
            "--leader-kills",
            "1",
            "--brokers",
            "3",
            "--replication-factor",
            "3",
        ],
    ),
    (
        "isolations",
        &[
            "--isolations",
            "1",
            "--brokers",
            "3",
            "--replication-factor",
            "3",
        ],
    ),
    (
        "correlated-crashes",
        &[
            "--correlated-crashes",
            "1",
            "--brokers",
            "3",
            "--replication-factor",
            "3",
            "--sync",
            "never",
        ],
    ),
];

#[test]
fn the_printed_replay_command_reproduces_the_run_for_every_flag_that_changes_it() {
    let covered: Vec<&str> = NON_DEFAULT.iter().map(|(name, _)| *name).collect();
    let table: Vec<&str> = idempo_sim::flags::names().collect();
    assert_eq!(covered, table, "every run flag has a case here");
    for (name, flags) in NON_DEFAULT {
        let mut args = vec!["run"];
        for small in [["--records", "60"], ["--partitions", "2"]] {
            if !flags.contains(&small[0]) {
                args.extend_from_slice(&small);
            }
        }
        args.extend_from_slice(flags);
        let first = sim(&args);
        let out = stdout(&first);
        let replay = out
            .lines()
            .find_map(|l| l.strip_prefix("replay: idempo-sim "))
            .unwrap_or_else(|| panic!("--{name}: no replay line in\n{out}{}", stderr(&first)));
        let words: Vec<&str> = replay.split_whitespace().collect();
        let flag = format!("--{name}");
        assert!(
            words.contains(&flag.as_str()),
            "--{name} is not replayed: {replay}"
        );
        let again = sim(&words);
        assert_eq!(
            stdout(&again),
            out,
            "--{name}: the replay printed other bytes"
        );
        assert_eq!(again.status.code(), first.status.code(), "--{name}");
    }
}

#[test]
fn sweep_shards_merge_into_the_unsharded_sweeps_bytes() {
    let dir = scratch_dir("shards");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let grid = [
        "--seeds",
        "2",
        "--records",
        "100",
        "--ack-loss",
        "0,0.2",
        "--no-progress",
    ];
    let csv = path("sweep.csv");
    let whole = sim(&[&["sweep"][..], &grid, &["--csv", &csv]].concat());
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let whole_csv = std::fs::read(&csv).expect("the csv");
    let mut files = Vec::new();
    for k in 1..=3 {
        let file = path(&format!("shard-{k}.csv"));
        let shard = format!("{k}/3");
        let o = sim(&[&["sweep"][..], &grid, &["--shard", &shard, "--csv", &file]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).starts_with(&format!("sweep shard {k}/3: ")));
        files.push(file);
    }
    std::fs::remove_file(&csv).expect("removed");
    let merged = sim(&[
        &["merge", "--csv", &csv][..],
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat());
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    assert_eq!(
        stdout(&merged),
        stdout(&whole),
        "the same table, byte for byte"
    );
    assert_eq!(
        std::fs::read(&csv).expect("the csv"),
        whole_csv,
        "the same CSV"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_shard_exits_2_naming_the_flag() {
    for bad in ["0/4", "5/4", "two/4"] {
        let o = sim(&["sweep", "--shard", bad, "--csv", "/dev/null"]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains("--shard"), "{bad}: {}", stderr(&o));
    }
    let o = sim(&["sweep", "--shard", "1/2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--shard needs --csv"), "{}", stderr(&o));
    let o = sim(&["merge", "/nonexistent/shard.csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/shard.csv"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_cluster_run_adds_its_fields_to_json_and_a_one_broker_run_does_not() {
    let small = ["--records", "60", "--partitions", "2"];
    let one = sim(&[&["run", "--json"][..], &small].concat());
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(!stdout(&one).contains("\"brokers\""), "{}", stdout(&one));
    let cluster = sim(&[
        &[
            "run",
            "--json",
            "--brokers",
            "3",
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
        ][..],
        &small,
    ]
    .concat());
    let out = stdout(&cluster);
    assert_eq!(cluster.status.code(), Some(0), "{out}{}", stderr(&cluster));
    for field in [
        "\"brokers\":3",
        "\"replication_factor\":3",
        "\"acks\":\"all\"",
        "\"min_insync_replicas\":2",
        "\"leader_elections\":",
        "\"unclean_elections\":",
        "\"truncations\":",
        "\"isr_shrinks\":",
        "\"isr_expands\":",
        "\"not_enough_replicas\":",
        "\"lost_in_failover\":0",
    ] {
        assert!(out.contains(field), "{field} missing: {out}");
    }
}

#[test]
fn a_cluster_trace_shows_elections_with_their_epoch_and_fetches() {
    let o = sim(&[
        "run",
        "--trace",
        "--records",
        "100",
        "--partitions",
        "2",
        "--producers",
        "1",
        "--brokers",
        "3",
        "--replication-factor",
        "3",
        "--leader-kills",
        "1",
        "--broker-session-timeout-ms",
        "600",
        "--replica-lag-time-max-ms",
        "600",
    ]);
    let out = stdout(&o);
    assert!(out.contains("elected broker"), "{out}");
    assert!(out.contains("at leader epoch 1"), "{out}");
    assert!(out.contains("fetched"), "{out}");
    assert!(out.contains("Metadata #"), "{out}");
}
