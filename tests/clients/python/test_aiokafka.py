"""aiokafka against idempo-broker through idempo-proxy, which loses Produce acks.

Properties, restated by name in each test:
- exactly once and in order: with idempotence on (producer and broker), every record is in
  the log once, in the order it was sent, though acks were lost and batches retried; each
  record's reported offset is its position;
- the fault really happened: the proxy reports lost acks, and with idempotence off
  (producer and broker) the same faults leave duplicates in the log;
- resumes from the commit: a `subscribe()` consumer of a group reads part of the topic,
  commits and stops; a new consumer of the same group reads the rest, no record twice and
  none skipped.

aiokafka is asyncio-only; each test runs its coroutine with asyncio.run (no pytest plugin).
"""

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

RECORDS = 30
PER_BATCH = 3  # ten round trips, so several acks can be lost
TIMEOUT_S = 20
SENT = [str(i) for i in range(RECORDS)]


async def produce(bootstrap: str, topic: str, idempotence: bool) -> list:
    """Sends SENT to partition 0, PER_BATCH records per request; returns the offsets."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=idempotence,
        acks="all",
        linger_ms=5,
        request_timeout_ms=5000,
        retry_backoff_ms=50,
    )
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(SENT):
            futures.append(await producer.send(topic, value=value.encode(), partition=0))
            if i % PER_BATCH == PER_BATCH - 1:
                await producer.flush()
        return [(await f).offset for f in futures]
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list:
    """Every value in partition 0, from offset 0 to the high watermark (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        high = (await consumer.end_offsets([partition]))[partition]
        values = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(values) < high:
                batches = await consumer.getmany(partition, timeout_ms=500)
                for records in batches.values():
                    values.extend(r.value.decode() for r in records)
        return values
    finally:
        await consumer.stop()


async def read_then_commit(bootstrap: str, topic: str, group: str, at_least: int) -> list:
    """A subscribe() consumer of `group`: reads at least `at_least` records, commits what it
    read, and stops."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    try:
        values = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(values) < at_least:
                # One at a time, so that the commit covers exactly what was read.
                values.append((await consumer.getone()).value.decode())
        await consumer.commit()
        return values
    finally:
        await consumer.stop()


def context(cluster) -> str:
    return f"{cluster.fault_counts()}\n{cluster.log_tail()}"


def test_aiokafka_idempotent_producer_writes_every_record_exactly_once_despite_lost_acks(
    lossy_cluster,
):
    cluster = lossy_cluster(idempotence=True)
    offsets = asyncio.run(produce(cluster.bootstrap, "orders", idempotence=True))
    values = asyncio.run(read_all(cluster.bootstrap, "orders"))
    counts = cluster.fault_counts()
    ctx = context(cluster)
    cluster.stop()
    assert counts["dropped produce responses"] >= 1, "the fault really happened\n" + ctx
    assert values == SENT, "exactly once and in order\n" + ctx
    assert sorted(offsets) == list(range(RECORDS)), "each retry got the original offset\n" + ctx


def test_aiokafka_without_idempotence_the_same_lost_acks_write_duplicates(lossy_cluster):
    cluster = lossy_cluster(idempotence=False)
    asyncio.run(produce(cluster.bootstrap, "orders", idempotence=False))
    values = asyncio.run(read_all(cluster.bootstrap, "orders"))
    counts = cluster.fault_counts()
    ctx = context(cluster)
    cluster.stop()
    assert counts["dropped produce responses"] >= 1, ctx
    assert set(values) == set(SENT), "nothing was lost\n" + ctx
    assert len(values) > RECORDS, "the retries of lost acks were appended again\n" + ctx


def test_aiokafka_group_consumer_resumes_from_the_committed_offsets(lossy_cluster):
    cluster = lossy_cluster(
        idempotence=True, partitions=1, broker_args=("--group-initial-rebalance-delay-ms", "100")
    )
    asyncio.run(produce(cluster.bootstrap, "orders", idempotence=True))
    first = asyncio.run(read_then_commit(cluster.bootstrap, "orders", "resume", RECORDS // 2))
    rest = asyncio.run(
        read_then_commit(cluster.bootstrap, "orders", "resume", RECORDS - len(first))
    )
    ctx = context(cluster)
    cluster.stop()
    assert len(first) == RECORDS // 2, f"the first consumer stopped halfway: {first}"
    assert first + rest == SENT, (
        f"resumes from the commit: in order, none twice, none skipped\nfirst={first}\n"
        f"rest={rest}\n" + ctx
    )
