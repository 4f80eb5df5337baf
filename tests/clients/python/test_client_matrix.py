"""bench/client-matrix: its classification and tables (no cluster), and one real cell per
kind of fault (proxy, admin endpoint) whose run must prove that its fault happened."""

import importlib.machinery
import importlib.util
import json
import subprocess
import sys

from conftest import REPO, binary

MATRIX = REPO / "bench/client-matrix"


def load_matrix():
    loader = importlib.machinery.SourceFileLoader("client_matrix", str(MATRIX))
    spec = importlib.util.spec_from_loader("client_matrix", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_classify_names_duplicates_and_losses():
    m = load_matrix()
    assert m.classify("kafkajs", [b"0", b"1", b"2"], 3) == ("once", "")
    assert m.classify("kafkajs", [b"0", b"1", b"1", b"2"], 3)[0] == "dup"
    assert m.classify("kafkajs", [b"0", b"2", b"2"], 3)[0] == "loss"
    idempo = [bytes([0, 0, 0, 0, 0, 0, 0, i]) for i in (0, 1, 2)]
    assert m.classify("idempo", idempo, 3) == ("once", "")


def run(client, fault, seed, outcome, proof=None):
    return {"kind": "client", "client": client, "fault": fault, "seed": seed,
            "outcome": outcome, "detail": "", "proof": proof or {}, "seconds": 1.0,
            "command": f"bench/client-matrix --clients {client} --faults {fault} --seed {seed}"}


def test_render_counts_complete_seeds_only_and_names_no_fault_runs(capsys):
    m = load_matrix()
    runs = [
        run("confluent-kafka", "ack-loss", 1, "once", {"dropped produce responses": 2}),
        run("confluent-kafka", "cut", 1, "no-fault", {"cuts": 0, "not_done": "no cuts"}),
        run("confluent-kafka", "ack-loss", 2, "dup", {"dropped produce responses": 1}),
    ]
    m.render(runs, "test")
    out = capsys.readouterr().out
    assert "seeds 1 complete (1 per cell; incomplete: 2)" in out
    assert "| confluent-kafka | 1 once / 0 dup / 0 loss / 0 fatal | " \
           "0 once / 0 dup / 0 loss / 0 fatal / 1 no-fault |" in out
    assert "| confluent-kafka | 2 acks dropped | 0 cuts |" in out
    assert "cut seed 1: no-fault" in out
    assert "seed 2" not in out


def test_render_names_a_class_where_the_simulator_differs(capsys):
    m = load_matrix()
    sim = {"kind": "sim", "client": "sim", "fault": "ack-loss", "seed": 1, "outcome": "fatal",
           "detail": "1 fatal error(s)", "proof": {"ack_lost": 3}, "command": "idempo-sim run"}
    m.render([run("confluent-kafka", "ack-loss", 1, "once"), sim], "test")
    out = capsys.readouterr().out
    assert "| ack-loss | 1 once / 0 dup / 0 loss / 0 fatal | " \
           "0 once / 0 dup / 0 loss / 1 fatal | **differ**: once vs fatal |" in out


def test_a_real_cell_proves_its_fault(tmp_path):
    """confluent-kafka under lost acks (the proxy's count) and a leader kill (the admin
    endpoint's answer): both exactly once, each with its proof. 200 records at 100/s: the
    records of the client's first half second (before it has a producer id) go out as one
    batch, so 50 records made one or two Produce requests and, at ack-loss 0.3, often no
    lost ack; 200 make about 30."""
    binary("IDEMPO_BROKER", "target/debug/idempo-broker")
    binary("IDEMPO_PROXY", "target/debug/idempo-proxy")
    results = tmp_path / "runs.jsonl"
    done = subprocess.run(
        [sys.executable, str(MATRIX), "--seed", "1", "--clients", "confluent-kafka",
         "--faults", "ack-loss,leader-kill", "--no-sim", "--records", "200",
         "--results", str(results)],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = {r["fault"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert runs["ack-loss"]["outcome"] == "once", runs["ack-loss"]
    assert runs["ack-loss"]["proof"]["dropped produce responses"] > 0
    kill = runs["leader-kill"]
    assert kill["outcome"] == "once", kill
    assert kill["proof"]["answer"]["state"] == "down"
    assert kill["proof"]["new_leader"]["leader_epoch"] > kill["proof"]["leader_epoch"]
    assert "| confluent-kafka | 1 once / 0 dup / 0 loss / 0 fatal | " in done.stdout
