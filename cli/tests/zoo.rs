//! `idempo-sim zoo` as a user meets it: the list, a run's side-by-side verdicts and exit
//! codes, the replay files it writes.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idempo-sim"))
        .args(args)
        .output()
        .expect("the idempo-sim binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn zoo_list_prints_one_line_per_entry_with_its_reference() {
    let o = sim(&["zoo", "list"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), idempo_sim::zoo::entries().len(), "{out}");
    assert!(out.contains("redpanda #3039"), "{out}");
    assert!(out.contains("KAFKA-5494 (Kafka 1.0.0)"), "{out}");
}

#[test]
fn zoo_run_shows_the_bug_and_the_fix_side_by_side_and_exits_0() {
    let o = sim(&["zoo", "run", "redpanda-3039"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let verdict = out
        .lines()
        .find(|l| l.starts_with("verdict"))
        .expect("a verdict row");
    let words: Vec<&str> = verdict.split_whitespace().collect();
    assert_eq!(words[1..], ["FAIL", "PASS"], "{out}");
    assert!(out.contains("reproduces yes"), "{out}");
    assert!(out.contains("PR 3077"), "the story is printed: {out}");
}

#[test]
fn zoo_run_of_an_unknown_id_exits_2_naming_the_entries() {
    let o = sim(&["zoo", "run", "KAFKA-0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown zoo entry `KAFKA-0`") && err.contains("redpanda-3039"),
        "{err}"
    );
}

#[test]
fn zoo_write_replay_files_replay_to_the_same_verdicts() {
    let dir = std::env::temp_dir().join(format!("idempo-zoo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    let dir_text = dir.to_str().expect("a UTF-8 path");
    let o = sim(&["zoo", "run", "KAFKA-5494", "--write-replay", dir_text]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    for (side, code) in [("bug", 1), ("fix", 0)] {
        let file = dir.join(format!("KAFKA-5494.{side}.replay"));
        let o = sim(&["replay", file.to_str().expect("UTF-8")]);
        assert_eq!(o.status.code(), Some(code), "{side}: {}", stdout(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
