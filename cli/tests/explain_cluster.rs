//! `idempo-sim explain` with a `cluster` line: the shipped replication scripts print the
//! decisions that teach their point.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idempo-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The text output of a shipped example script, which must exit 0.
fn explain(example: &str) -> String {
    let path = format!("{}/../sim/examples/{example}", env!("CARGO_MANIFEST_DIR"));
    let o = sim(&["explain", &path]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{example}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The explanation of script line `line`: its first line and its indented consequences.
fn line(out: &str, line: usize) -> String {
    let head = format!("{line:>4}  ");
    let mut lines = out.lines().skip_while(|l| !l.starts_with(&head));
    let mut text = lines.next().expect("the line is explained").to_string();
    for more in lines.take_while(|l| l.starts_with("        ")) {
        text.push('\n');
        text.push_str(more);
    }
    text
}

#[test]
fn acks_all_failover_keeps_exactly_once() {
    let out = explain("failover-acks-all.txt");
    let crash = line(&out, 11);
    assert!(
        crash.contains("the produce of line 9 gets no answer"),
        "{crash}"
    );
    assert!(
        crash.contains("p0 elects broker 1 at leader epoch 1, clean"),
        "{crash}"
    );
    let retry = line(&out, 12);
    assert!(
        retry.contains("duplicate of the batch at offsets 2..3"),
        "{retry}"
    );
    assert!(
        line(&out, 13).contains("line 12's produce (p0 pid=1 seq=2) answered NONE (0) by broker 1"),
        "{out}"
    );
    assert!(
        line(&out, 16).contains("0..1 pid=1 epoch=0 seq=0..1; 2..3 pid=1 epoch=0 seq=2..3;"),
        "each batch once: {out}"
    );
    assert!(!out.contains("LOST"), "{out}");
}

#[test]
fn acks_one_failover_loses_an_acknowledged_record() {
    let out = explain("acks-1-failover.txt");
    assert!(
        line(&out, 9).contains("NONE  appended at offset 1")
            && line(&out, 9).contains("acks=1: answered after the leader's own append"),
        "{out}"
    );
    assert!(
        line(&out, 10).contains(
            "LOST: line 9's acknowledged batch (p0 pid=1 seq=1) is not in the log of leader 1: acknowledged with acks=1, lost in a failover"
        ),
        "{out}"
    );
    assert!(
        line(&out, 13).contains("truncated 2 -> 1, removing 1..1 e0 pid=1 seq=1..1"),
        "{out}"
    );
    assert!(
        line(&out, 14).contains("0..0 pid=1 epoch=0 seq=0..0; a consumer"),
        "{out}"
    );
}

#[test]
fn diverging_epoch_truncates_with_a_producer_state_reload() {
    let out = explain("diverging-epoch.txt");
    let rejoin = line(&out, 17);
    assert!(
        rejoin.contains(
            "broker 0 fetches from leader 1 at offset 6 (last fetched epoch 0): diverging epoch: epoch 0 ends at 2 on the leader"
        ),
        "{rejoin}"
    );
    assert!(
        rejoin.contains("truncated 6 -> 2, removing 2..3 e0 pid=1 seq=2..3; 4..5 e0 pid=1 seq=4..5; producer state reloaded from the snapshot at 2 + 0 batch(es) replayed (truncateAndReload, §1.19)"),
        "{rejoin}"
    );
    assert!(line(&out, 18).contains("leader epochs [0@0, 1@2]"), "{out}");
    assert!(
        line(&out, 21).contains("duplicate of the batch at offsets 2..3"),
        "{out}"
    );
    assert!(line(&out, 22).contains("appended at offsets 4..5"), "{out}");
}

#[test]
fn acks_all_errors_example_shows_each_code() {
    let out = explain("acks-all-errors.txt");
    for want in [
        "answered NOT_ENOUGH_REPLICAS_AFTER_APPEND (20)",
        "rejected NOT_ENOUGH_REPLICAS: the ISR [0] is smaller than min.insync.replicas 2",
        "rejected NOT_LEADER_OR_FOLLOWER",
        "answered REQUEST_TIMED_OUT (7)",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
}

#[test]
fn unclean_election_example_loses_an_acknowledged_record() {
    let out = explain("unclean-election.txt");
    assert!(line(&out, 12).contains("p0 is OFFLINE"), "{out}");
    let back = line(&out, 14);
    assert!(back.contains("UNCLEAN"), "{back}");
    assert!(
        back.contains("LOST: line 11's acknowledged batch (p0 pid=1 seq=1)"),
        "{back}"
    );
}

#[test]
fn cluster_json_lines_carry_events() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sim/examples/failover-acks-all.txt"
    );
    let o = sim(&["explain", "--json", path]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines[0]["op"], "cluster");
    assert_eq!(lines[0]["replication_factor"], 3);
    let crash = lines
        .iter()
        .find(|v| v["op"] == "crash-broker")
        .expect("a crash");
    let events = crash["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["event"] == "controller"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("elects broker 1"))),
        "{crash}"
    );
    let retry = lines.iter().find(|v| v["line"] == 12).expect("the retry");
    assert_eq!(retry["outcome"], "duplicate");
    assert_eq!(retry["response"], "delayed");
    assert_eq!(retry["acks"], "all");
}

#[test]
fn a_cluster_operation_without_a_cluster_exits_2_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("idempo-explain-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.txt");
    std::fs::write(&file, "init-producer\ncrash-broker broker=0\n").expect("write");
    let o = sim(&["explain", file.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 2") && err.contains("needs a cluster"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing is half-run");
}

#[test]
fn correlated_power_loss_loses_an_acknowledged_record_only_without_sync() {
    let out = explain("correlated-power-loss.txt");
    assert!(
        line(&out, 10).contains("LOST: line 6's acknowledged batch (p0 pid=1 seq=0) is not in the log of leader 1: lost when every replica lost power before a sync"),
        "{out}"
    );
    let path = format!(
        "{}/../sim/examples/correlated-power-loss.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let synced = std::fs::read_to_string(path)
        .expect("the example ships")
        .replace("sync=never", "sync=every-append");
    let dir = std::env::temp_dir().join(format!("idempo-explain-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("synced.txt");
    std::fs::write(&file, synced).expect("write");
    let o = sim(&["explain", file.to_str().expect("utf-8 path")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("LOST"), "{out}");
    assert!(
        line(&out, 13).contains("0..0 pid=1 epoch=0 seq=0..0"),
        "{out}"
    );
}

/// The controller learns of a crash as in Kafka: the broker's heartbeats stop, and it is
/// fenced when its session expires (`broker.session.timeout.ms`, 9 000 ms). What is due
/// before that happens first: here an acks=all produce waiting for the crashed follower
/// times out after its 5 000 ms, before the fencing would have let the HW pass it.
#[test]
fn a_crashed_broker_is_fenced_when_its_session_expires_and_earlier_timers_fire_first() {
    let dir = std::env::temp_dir().join(format!("idempo-sim9-fence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = dir.join("fence.txt");
    std::fs::write(
        &script,
        "cluster brokers=2 replication-factor=2 min-insync-replicas=1\n\
         produce pid=1 epoch=0 seq=0 count=1 acks=all timeout-ms=5000\n\
         crash-broker broker=1\n\
         advance ms=1000\n",
    )
    .expect("write the script");
    let o = sim(&["explain", script.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let crash = line(&out, 3);
    assert!(
        crash.contains(
            "controller fences it when its session expires (broker.session.timeout.ms), at 9001 ms"
        ),
        "{crash}"
    );
    let timed_out = crash
        .find("answered REQUEST_TIMED_OUT (7) by broker 0")
        .expect("the produce's timeout comes first");
    let fenced = crash
        .find("controller: broker 1 fenced")
        .expect("then the fencing");
    assert!(timed_out < fenced, "{crash}");
    assert!(
        line(&out, 4).contains("clock of every live broker at 10001 ms"),
        "the script's clock moved on by the wait: {out}"
    );
}
