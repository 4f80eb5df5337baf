//! `idempo-sim policies` as a user meets it: the matrix, JSON Lines, CSV, one cell's trace
//! and diagram, and exit status 2 naming the flag for bad values.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idempo-sim"))
        .arg("policies")
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

#[test]
fn the_matrix_has_a_row_per_policy_and_exits_0() {
    let o = sim(&["--seeds", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for policy in [
        "kafka-sequence",
        "idempotency-key",
        "ietf-idempotency-key",
        "client-token",
        "dedup-window",
        "pubsub",
        "consumer-dedup",
        "body-hash-key",
        "none",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{policy} "))),
            "a row for {policy}:\n{text}"
        );
    }
    assert!(text.contains("dedup-window × retry-after-window [memory-ttl]: duplicate"));
}

#[test]
fn json_prints_one_object_per_cell() {
    let o = sim(&[
        "--policy",
        "ietf-idempotency-key",
        "--policy",
        "kafka-sequence",
        "--scenario",
        "concurrent-retry",
        "--scenario",
        "key-reuse-different-params",
        "--seeds",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cells: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
    assert_eq!(cells.len(), 4);
    let ietf_409 = &cells[0];
    assert_eq!(ietf_409["policy"], "ietf-idempotency-key");
    assert_eq!(ietf_409["scenario"], "concurrent-retry");
    assert_eq!(ietf_409["store"], "memory-ttl");
    assert_eq!(ietf_409["verdict"], "refused");
    assert_eq!(ietf_409["error"], "409");
    assert_eq!(ietf_409["seeds"], 3);
    assert!(cells[2]["store"].is_null(), "kafka-sequence has no store");
}

#[test]
fn the_same_seeds_print_the_same_bytes() {
    let args = [
        "--store",
        "db-transactional",
        "--seeds",
        "3",
        "--seed",
        "11",
    ];
    assert_eq!(stdout(&sim(&args)), stdout(&sim(&args)));
}

#[test]
fn trace_replays_one_cell_and_svg_draws_it() {
    let svg = std::env::temp_dir().join(format!("idempo-policies-{}.svg", std::process::id()));
    let svg_path = svg.to_str().expect("a UTF-8 temp path");
    let o = sim(&[
        "--policy",
        "dedup-window",
        "--scenario",
        "retry-after-window",
        "--seed",
        "3",
        "--trace",
        "--svg",
        svg_path,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("300 001 ms after the first arrived"),
        "{text}"
    );
    assert!(text.contains("verdict: duplicate"), "{text}");
    let drawn = std::fs::read_to_string(&svg).expect("the diagram was written");
    assert!(drawn.starts_with("<svg") && drawn.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_file(&svg);
}

#[test]
fn trace_of_more_than_one_cell_is_refused() {
    let o = sim(&["--policy", "none", "--trace"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--trace"), "{}", stderr(&o));
}

#[test]
fn unknown_names_exit_2_naming_the_flag() {
    for (flag, value) in [
        ("--policy", "stripe"),
        ("--scenario", "lost"),
        ("--store", "redis"),
    ] {
        let o = sim(&[flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&o).contains(flag), "{flag}: {}", stderr(&o));
    }
}

#[test]
fn csv_writes_a_header_and_a_row_per_cell() {
    let csv = std::env::temp_dir().join(format!("idempo-policies-{}.csv", std::process::id()));
    let csv_path = csv.to_str().expect("a UTF-8 temp path");
    let o = sim(&["--policy", "none", "--seeds", "2", "--csv", csv_path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).expect("the CSV was written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "policy,scenario,store,verdict,error,seeds,seeds_total,seed,reason"
    );
    assert_eq!(lines.len(), 1 + 9);
    assert!(lines[1].starts_with("none,lost-response,,duplicate,,2,2,"));
    let _ = std::fs::remove_file(&csv);
}

#[test]
fn docs_policies_shows_the_matrix_the_binary_prints() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/POLICIES.md"))
        .expect("docs/POLICIES.md exists");
    for store in [
        "memory-ttl",
        "db-transactional",
        "db-check-then-insert",
        "replicated-cache",
    ] {
        let o = sim(&["--store", store]);
        let text = stdout(&o);
        let grid: Vec<&str> = text.lines().skip(2).take(10).collect();
        assert!(grid[0].starts_with("policy "), "{text}");
        assert!(
            docs.contains(&grid.join("\n")),
            "docs/POLICIES.md shows the --store {store} matrix as the binary prints it:\n{}",
            grid.join("\n")
        );
    }
}

#[test]
fn docs_slow_handler_svg_is_what_the_binary_draws() {
    let svg = std::env::temp_dir().join(format!("idempo-policies-slow-{}.svg", std::process::id()));
    let svg_path = svg.to_str().expect("a UTF-8 temp path");
    let args = [
        "--policy",
        "idempotency-key",
        "--scenario",
        "slow-handler",
        "--seed",
        "3",
    ];
    let o = sim(&[&args[..], &["--svg", svg_path]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let drawn = std::fs::read_to_string(&svg).expect("the diagram was written");
    let _ = std::fs::remove_file(&svg);
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/policies-slow-handler.svg"
    ))
    .expect("docs/policies-slow-handler.svg exists");
    assert!(
        drawn == docs,
        "docs/policies-slow-handler.svg is stale: redraw it with the command in docs/POLICIES.md"
    );
}
