"""Real clients through leader failovers on a 3-broker cluster (RF 3, min.insync.replicas=2).

confluent-kafka (librdkafka), idempotent, acks=all, produces while the test crashes the
partition's leader through the admin endpoint (POST /brokers/{id}/crash), waits for the
controller to elect another leader from the ISR, starts the crashed broker again
(POST /brokers/{id}/start), waits for it to rejoin the ISR and moves the leadership back
to it with a preferred election (POST /partitions/{topic}/0/elect), records in flight each
time: a few times per test. Then every record is read back.

Properties, restated by name in each test:
- exactly once: every record sent is in the log once, each delivery report is a success;
- in order: the records of each phase are in the log in the order they were sent;
- the fault really happened: GET /cluster shows a new leader, at a higher leader epoch,
  after each crash and each preferred election; through the proxy, the proxy reports lost acks, and with idempotence
  off (producer and broker) the same run leaves duplicates in the log.
"""

from collections import Counter

import pytest
from confluent_kafka import Producer

from conftest import confluent_read, wait_until

TOPIC = "failover"
CRASHES = 2
PER_PHASE = 40
FLUSH_TIMEOUT_S = 20

# The multi-broker proxy: acks lost on every broker (the leader moves), the connection closed
# after each loss, at most three losses per run (--seed makes them the same every run).
LOSSY_PROXY = ("--seed", "3", "--ack-loss", "0.6", "--close-after-fault", "on",
               "--max-faults", "3")


def run_through_leader_crashes(cluster, *, idempotence: bool):
    """Produces PER_PHASE records, then CRASHES times: produce and at once crash the leader
    (requests in flight), produce while it is down, wait for a new leader, start the old one,
    wait for it in the ISR, a preferred election with a phase in flight, produce. Returns
    (sent, delivered, failures, the leaders and epochs seen)."""
    producer = Producer({
        "bootstrap.servers": cluster.bootstrap,
        "enable.idempotence": idempotence,
        "acks": "all",
        "linger.ms": 5,
        "retry.backoff.ms": 50,
        "topic.metadata.refresh.interval.ms": 500,
        "message.timeout.ms": 30000,
        # Without idempotence: retry as the idempotent producer does, so that a lost ack is
        # retried (and written twice) instead of failing the record.
        **({} if idempotence else {"retries": 1000000, "max.in.flight": 5}),
    })
    sent, delivered, failures = [], [], []

    def report(error, message):
        if error is not None:
            failures.append(str(error))
        else:
            delivered.append(message.value().decode())

    def phase(name):
        values = [f"{name}-{i}" for i in range(PER_PHASE)]
        for v in values:
            producer.produce(TOPIC, value=v.encode(), partition=0, on_delivery=report)
            producer.poll(0)
        sent.extend(values)

    phase("start")
    assert producer.flush(FLUSH_TIMEOUT_S) == 0, "the first phase was delivered"
    wait_until("every replica in the ISR", lambda: len(cluster.partition(TOPIC)["isr"]) == 3)
    first = cluster.partition(TOPIC)
    seen = [(first["leader"], first["leader_epoch"])]
    for crash in range(CRASHES):
        old = seen[-1][0]
        phase(f"inflight{crash}")  # not flushed: some of it is in flight at the crash
        cluster.admin("POST", f"/brokers/{old}/crash")
        phase(f"down{crash}")
        wait_until("a new leader from the ISR",
                   lambda: cluster.partition(TOPIC)["leader"] not in (-1, old))
        now = cluster.partition(TOPIC)
        seen.append((now["leader"], now["leader_epoch"]))
        assert producer.flush(FLUSH_TIMEOUT_S) == 0, "delivered to the new leader"
        cluster.admin("POST", f"/brokers/{old}/start")
        wait_until(f"broker {old} back in the ISR", lambda: old in cluster.partition(TOPIC)["isr"])
        # A preferred election gives the partition back to its first replica while a phase
        # is in flight to the current leader, which answers NOT_LEADER_OR_FOLLOWER: the
        # first step of librdkafka #4953.
        phase(f"elect{crash}")
        elected = cluster.admin("POST", f"/partitions/{TOPIC}/0/elect")
        seen.append((elected["leader"], elected["leader_epoch"]))
        phase(f"up{crash}")
        assert producer.flush(FLUSH_TIMEOUT_S) == 0
    return sent, delivered, failures, seen


def assert_the_leader_moved_at_each_crash(seen):
    leaders = [leader for leader, _ in seen]
    epochs = [epoch for _, epoch in seen]
    assert all(a != b for a, b in zip(leaders, leaders[1:])), f"a new leader each time: {seen}"
    assert epochs == sorted(set(epochs)), f"each at a higher leader epoch: {seen}"


def assert_exactly_once_in_order(sent, delivered, failures, values, context):
    duplicates = {v: n for v, n in Counter(values).items() if n > 1}
    assert failures == [], f"no delivery failed: {failures}\n{context}"
    assert sorted(delivered) == sorted(sent), "every record was reported delivered once"
    assert duplicates == {}, f"exactly once: duplicates in the log {duplicates}\n{context}"
    assert sorted(values) == sorted(sent), f"exactly once: nothing lost\n{context}"
    for name in {v.rsplit("-", 1)[0] for v in sent}:
        in_log = [v for v in values if v.rsplit("-", 1)[0] == name]
        assert in_log == [v for v in sent if v.rsplit("-", 1)[0] == name], f"in order: {name}"


def test_confluent_idempotent_producer_writes_exactly_once_through_leader_crashes_and_restarts(
    three_brokers_factory,
):
    cluster = three_brokers_factory()
    sent, delivered, failures, seen = run_through_leader_crashes(cluster, idempotence=True)
    values = confluent_read(cluster.bootstrap, TOPIC)
    assert_the_leader_moved_at_each_crash(seen)
    assert_exactly_once_in_order(sent, delivered, failures, values, cluster.log_tail())


def test_confluent_idempotent_producer_writes_exactly_once_through_lost_acks_and_leader_crashes(
    three_brokers_factory,
):
    cluster = three_brokers_factory(proxy_args=LOSSY_PROXY)
    sent, delivered, failures, seen = run_through_leader_crashes(cluster, idempotence=True)
    values = confluent_read(cluster.bootstrap, TOPIC)
    counts = cluster.fault_counts()
    context = f"{counts}\n{cluster.log_tail()}"
    assert counts["dropped produce responses"] >= 1, f"the fault really happened\n{context}"
    assert_the_leader_moved_at_each_crash(seen)
    assert_exactly_once_in_order(sent, delivered, failures, values, context)


def test_without_idempotence_the_same_lost_acks_and_leader_crashes_write_duplicates(
    three_brokers_factory,
):
    cluster = three_brokers_factory(extra=("--idempotence", "off"), proxy_args=LOSSY_PROXY)
    sent, _, failures, seen = run_through_leader_crashes(cluster, idempotence=False)
    values = confluent_read(cluster.bootstrap, TOPIC)
    counts = cluster.fault_counts()
    context = f"{counts}\n{cluster.log_tail()}"
    assert counts["dropped produce responses"] >= 1, context
    assert_the_leader_moved_at_each_crash(seen)
    assert failures == [], failures
    assert set(values) == set(sent), f"nothing was lost\n{context}"
    assert len(values) > len(sent), f"the retries of lost acks were appended again\n{context}"
