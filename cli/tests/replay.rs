//! `idempo-sim replay` of a replicated run: the replay file lists the run's lost messages
//! between brokers (`--inter-broker-loss`), and replaying it prints the run byte for byte.

use idempo_sim::plan::{self, Fault};
use idempo_sim::{SimConfig, Simulation};
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

/// A small replicated run whose brokers lose some of their messages to each other.
fn lossy_cluster(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        producers: 1,
        partitions: 2,
        records: 200,
        batch_records: 5,
        brokers: 3,
        replication_factor: 3,
        min_insync_replicas: 2,
        replica_lag_time_max_ms: 1_000,
        broker_session_timeout_ms: 1_500,
        inter_broker_loss: 0.2,
        leader_kills: 1,
        ..SimConfig::default()
    }
}

/// The lines after the first `skip` (the header: the settings, and for a replay the count
/// of faults listed), up to the replay command: what the run did.
fn body(text: &str, skip: usize) -> String {
    text.lines()
        .skip(skip)
        .take_while(|l| !l.starts_with("replay: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_replicated_run_with_inter_broker_losses_replays_byte_for_byte_from_its_file() {
    let config = lossy_cluster(3);
    let (report, _) = Simulation::new(config.clone(), None)
        .expect("a valid config")
        .run();
    let lost: Vec<&Fault> = report
        .faults_happened
        .iter()
        .filter(|f| matches!(f, Fault::InterBrokerLoss { .. }))
        .collect();
    let counted = report.cluster.as_ref().map_or(0, |c| c.inter_broker_lost);
    assert!(counted > 0, "the run loses messages between brokers");
    assert_eq!(
        lost.len() as u64,
        counted,
        "every lost inter-broker message is a listed fault"
    );
    let text = plan::replay_file(&config, &report.faults_happened);
    assert!(
        text.lines()
            .any(|l| l.starts_with("inter-broker-loss from=")),
        "{text}"
    );
    let dir = std::env::temp_dir().join(format!("idempo-sim9-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("replay.txt");
    std::fs::write(&file, &text).expect("write the replay file");
    let file = file.to_str().expect("utf-8 path");

    let flags = config.to_string();
    let mut args = vec!["run", "--trace"];
    args.extend(flags.split_whitespace());
    let run = sim(&args);
    let replay = sim(&["replay", file, "--trace"]);
    assert_eq!(replay.status.code(), run.status.code());
    let (run, replay) = (stdout(&run), stdout(&replay));
    let header = idempo_sim::report::header(&config).lines().count();
    assert!(replay.contains(&format!(
        "faults     {} listed in {file}",
        report.faults_happened.len()
    )));
    assert!(
        body(&run, header).contains("fetch") && body(&run, header).contains("verdict: "),
        "the body is the trace and the summary: {run}"
    );
    assert_eq!(
        body(&replay, header + 1),
        body(&run, header),
        "the replay prints the run's trace and summary byte for byte"
    );
    assert!(
        replay.contains(&format!("replay: idempo-sim replay {file}\n")),
        "the command that replays a replayed run is the replay of its file: {replay}"
    );

    // Without its inter-broker lines the file describes another run: the lines are what
    // reproduce those losses (the rate in `flags` no longer draws them).
    let without: Vec<Fault> = report
        .faults_happened
        .iter()
        .copied()
        .filter(|f| !matches!(f, Fault::InterBrokerLoss { .. }))
        .collect();
    let stripped = dir.join("stripped.txt");
    std::fs::write(&stripped, plan::replay_file(&config, &without)).expect("write");
    let other = sim(&["replay", stripped.to_str().expect("utf-8"), "--trace"]);
    assert!(
        stdout(&other).contains("inter-broker messages lost 0"),
        "{}",
        stdout(&other)
    );
    assert_ne!(body(&stdout(&other), header + 1), body(&run, header));
}
