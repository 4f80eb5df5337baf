//! Entries of the librdkafka client profile: librdkafka's own idempotence rules, which judge an
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` against the sequence the client expects to be acknowledged
//! next (`next_ack_seq`, see `idempo_producer::profile_librdkafka`).
//!
//! The rule they explain: a client must know which of its batches the broker may have
//! written. librdkafka makes a refusal of the batch it expected next fatal, so whatever moves
//! `next_ack_seq` wrongly (a message timeout that leaves a gap, a possibly persisted batch
//! counted as written) kills the producer; and its epoch bump re-sequences every partition,
//! so a bump taken for a harmless refusal writes possibly persisted batches twice.

use super::entry::Entry;

/// librdkafka-2163: a message timeout leaves a gap, the batches behind it go out.
pub static LIBRDKAFKA_2163: Entry = Entry {
    id: "librdkafka-2163",
    reference: "librdkafka #2163 (fixed in 1.0.0)",
    component: "client profile librdkafka",
    summary: "a hung broker, request timeouts and message.timeout.ms expiring one message while later ones are sent: a fatal OUT_OF_ORDER_SEQUENCE_NUMBER",
    story: "A broker that answers nothing looks the same to librdkafka whether it hangs or \
            lost the requests with their connection: each request times out after \
            request.timeout.ms. Here one request is in flight at a time: batch 8 is lost \
            with its connection, and when its request times out its message.timeout.ms \
            (400 ms here) has passed, so it is dropped and reported failed while batch 10 \
            goes out behind it (batch 9 expired in the queue before it was sent). The broker expected batch 8's \
            sequence and answers OUT_OF_ORDER_SEQUENCE_NUMBER. librdkafka judges that \
            refusal against the sequence it expects to be acknowledged next, and librdkafka \
            0.11.6 had moved it past every batch whose request timed out (in its own terms \
            the next error sequence; here --librdkafka-possibly-persisted-ack on, the same \
            rule as 2.2.0's): the refused batch is exactly the expected one, \"sequence \
            desynchronization\", a fatal error, and every message after it fails. \
            librdkafka 1.0.0 (\"Gracefully handle message timeouts in idempotent producer \
            (#2163)\") drains and bumps the epoch when a message times out in a queue, so \
            the batches behind the gap restart at sequence 0 under the new epoch: \
            --librdkafka-timeout-bump on. The first lost request only shifts the timing. The \
            base keeps one request in flight: with five, the fixed client's bump can re-send \
            a written batch that was still waiting for its answer, the hole librdkafka's \
            maintainers acknowledge in #4953.",
    base: &[
        ("seed", "3"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "600"),
        ("batch-records", "10"),
        ("max-in-flight", "1"),
        ("ack-loss", "0"),
        ("request-loss", "0.05"),
        ("delivery-timeout-ms", "400"),
        ("client-profile", "librdkafka"),
        ("librdkafka-possibly-persisted-ack", "on"),
    ],
    bug: &[("librdkafka-timeout-bump", "off")],
    fix: &[("librdkafka-timeout-bump", "on")],
    faults: "request-loss producer=0 batch=6 attempt=1\nrequest-loss producer=0 batch=8 attempt=1\n",
    anomaly: "no fatal producer error",
};

/// librdkafka-4438: a possibly persisted batch counted as persisted.
pub static LIBRDKAFKA_4438: Entry = Entry {
    id: "librdkafka-4438",
    reference: "librdkafka #4438 (fixed in 2.3.0)",
    component: "client profile librdkafka",
    summary: "a \"possibly persisted\" batch treated as persisted advanced the expected sequence: a fatal desynchronisation",
    story: "Five requests are in flight when the fifth is lost and the connection with it: \
            the four sent before it had not arrived and are lost too, unanswered until \
            request.timeout.ms, possibly persisted. Up to librdkafka 2.2.0 a retriable error \
            of unknown outcome moved next_ack_seq past the batch, on the hope that the next \
            answer would be a success (rd_kafka_handle_Produce_error, update_next_ack). None \
            of the five was written. After the partition drained, their retries go out \
            together; the first is refused without a write (CORRUPT_MESSAGE, a bit flipped \
            on the way) and the four behind it with OUT_OF_ORDER_SEQUENCE_NUMBER, whose \
            sequences are now below next_ack_seq: \"rewound sequence number\", fatal. \
            librdkafka 2.3.0 (#4438) leaves next_ack_seq alone on such an error, expecting \
            DUPLICATE_SEQUENCE_NUMBER if the batch was written and NO_ERROR if not; the \
            refusals are then behind the expected batch and are retried: \
            --librdkafka-possibly-persisted-ack off. The base turns first-batch-alone on and \
            librdkafka's bump for such refusals off (--librdkafka-out-of-order-bump off, \
            #4953's proposed fix), so that the seeds of the fixed side measure this rule \
            alone: without them some seeds show the KIP-360 first-batch hole (under librdkafka \
            a lost acknowledged record: the refused first batch is acknowledged with the \
            next one, which the broker took from a producer it had no state for) and \
            #4953's duplicates, each an entry of its own. The workload is six \
            batches; more would do as well: a written batch whose retries are refused while \
            later batches are written is acknowledged with the first of them \
            (rd_kafka_dr_implicit_ack), so it does not stay to fall out of the broker's \
            five-batch window.",
    base: &[
        ("seed", "14"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "60"),
        ("batch-records", "10"),
        ("ack-loss", "0"),
        ("request-loss", "0.1"),
        ("corrupt", "0.1"),
        ("latency-ms", "5..5"),
        ("client-profile", "librdkafka"),
        ("first-batch-alone", "on"),
        ("librdkafka-out-of-order-bump", "off"),
    ],
    bug: &[("librdkafka-possibly-persisted-ack", "on")],
    fix: &[("librdkafka-possibly-persisted-ack", "off")],
    faults: "request-loss producer=0 batch=5 attempt=1\ncorrupt producer=0 batch=1 attempt=2\n",
    anomaly: "no fatal producer error",
};

/// librdkafka-4953: a harmless refusal behind a leader change bumps the epoch.
pub static LIBRDKAFKA_4953: Entry = Entry {
    id: "librdkafka-4953",
    reference: "librdkafka #4953, not fixed (PR #4972 open)",
    component: "client profile librdkafka",
    summary: "a refusal that writes nothing on the first request during a leader change, then OUT_OF_ORDER_SEQUENCE_NUMBER on the next ones, an epoch bump and duplicates",
    story: "Three brokers, two partitions, min.insync.replicas 2. The leaders lose power \
            22 ms apart, broker 1 (partition 1) and then broker 0 (partition 0); the \
            controller moves both partitions to broker 2, whose ISR is then itself alone. \
            Partition 0's batches at sequences 60 and 70 and partition 1's at sequence 10 \
            were written on the old leaders and replicated to broker 2, but their answers \
            died with the old leaders: possibly persisted, retried. Broker 2 refuses every \
            retry with NOT_ENOUGH_REPLICAS (the ISR check comes before the dedup check; \
            nothing is written) until broker 0 returns and the ISRs grow. The requests sent \
            just before are still refused, but the last two arrive after partition 1's ISR \
            grew: partition 1's sequences 40 and 50 (broker 2 expects 20) and then \
            partition 0's sequence 100 (it expects 80) are refused with \
            OUT_OF_ORDER_SEQUENCE_NUMBER, behind the expected batch. librdkafka 2.x answers \
            it with a drained epoch bump (\"skipped sequence numbers\", \
            rd_kafka_idemp_drain_epoch_bump), and the bump re-sequences every partition from \
            its first unacknowledged message: partition 0's two replicated batches go out as \
            sequences 0 and 10 of the new epoch, partition 1's as sequence 0, and all three \
            are written a second time. #4953 reports these duplicates after \
            NOT_LEADER_OR_FOLLOWER on the first request (here NOT_ENOUGH_REPLICAS, the \
            refusal the simulated leader change gives; neither writes anything), on another \
            partition than the refused one (the drained bump re-sequences them all; \
            producer/tests/profile_librdkafka.rs shows that case). It is not fixed: PR #4972, \
            open, proposes to retry such a refusal without a bump, which is Java's rule \
            (TransactionManager.canRetry retries a batch that is not the next one unchanged) \
            and --librdkafka-out-of-order-bump off here: the retries are answered as \
            duplicates once the ISR is back. The two lost answers (a Metadata answer, and \
            the one to partition 0's sequence 80, which broke its connection) only shift the \
            timing. The base turns first-batch-alone on, so that the seeds of the fixed side \
            measure this rule alone: without it a seed shows the KIP-360 first-batch hole (a \
            partition's first batches refused, the next one accepted from a producer the new \
            leader has no state for, and the refused ones then acknowledged with it by \
            librdkafka's implicit acknowledgement, though not written), an entry of its own.",
    base: &[
        ("seed", "571"),
        ("producers", "1"),
        ("partitions", "2"),
        ("records", "300"),
        ("batch-records", "10"),
        ("ack-loss", "0.05"),
        ("request-loss", "0"),
        ("brokers", "3"),
        ("replication-factor", "3"),
        ("min-insync-replicas", "2"),
        ("leader-kills", "2"),
        ("broker-session-timeout-ms", "2000"),
        ("replica-lag-time-max-ms", "500"),
        ("client-profile", "librdkafka"),
        ("first-batch-alone", "on"),
    ],
    bug: &[("librdkafka-out-of-order-bump", "on")],
    fix: &[("librdkafka-out-of-order-bump", "off")],
    faults: "leader-kill after-appends=11 partition=1 tear-bytes=3 down-ms=3418\nleader-kill after-appends=15 partition=0 tear-bytes=30 down-ms=2518\nack-loss producer=0 batch=18446744073709551613 attempt=4\nack-loss producer=0 batch=16 attempt=10\n",
    anomaly: "no duplicates",
};
