//! Entries of a broker whose dedup window is smaller than the client's requests in flight.
//!
//! The rule they explain: the broker must remember at least as many batches per producer and
//! partition as the client may have in flight (`NUM_BATCHES_TO_RETAIN` = 5 =
//! `max.in.flight.requests.per.connection` for idempotence). A batch whose ack is lost is
//! retried after the batches sent behind it were appended; with a window of one, the retry is
//! no longer recognised, is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`, and today's client
//! bumps its epoch and writes it again.

use super::entry::Entry;

/// redpanda #3039: no 5-batch cache.
pub static REDPANDA_3039: Entry = Entry {
    id: "redpanda-3039",
    reference: "redpanda #3039 (fixed by PR 3077, 21.10.x)",
    component: "broker profile redpanda-21.10",
    summary: "a broker without a 5-batch dedup cache answers a retry with OUT_OF_ORDER_SEQUENCE_NUMBER; the client bumps its epoch and writes it twice",
    story: "Redpanda 21.10 remembered the sequence and offset of a producer's tail batch only. \
            When the ack of a batch is lost while four more are in flight, its retry arrives \
            after the later batches were appended: it is neither the tail nor the next \
            sequence, so the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER. A modern client \
            takes that as a sign that the broker lost state, bumps its epoch, restarts the \
            partition's sequences at 0 and sends the batch again, which the broker appends a \
            second time (Jepsen's Redpanda 21.10.1 analysis found these duplicates). PR 3077 \
            cached the offsets of the last five batches, five being the most a client may \
            have in flight; --broker-profile kafka is that rule.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0.2"),
        ("request-loss", "0"),
    ],
    bug: &[("broker-profile", "redpanda-21.10")],
    fix: &[("broker-profile", "kafka")],
    faults: "ack-loss producer=0 batch=12 attempt=1\n",
    anomaly: "no duplicates",
};

/// KAFKA-5494: the 0.11 broker kept the last batch only.
pub static KAFKA_5494: Entry = Entry {
    id: "KAFKA-5494",
    reference: "KAFKA-5494 (Kafka 1.0.0)",
    component: "broker profile kafka-0.11",
    summary: "the 0.11 broker kept only the last batch; with 5 requests in flight a retry of an older batch is refused",
    story: "Kafka 0.11.0's ProducerIdEntry held the metadata of a producer's last batch only, \
            so the broker could recognise a retry of the last batch and nothing older. With \
            max.in.flight.requests.per.connection above 1, a lost ack makes the client retry \
            a batch that is no longer the last: the broker answers \
            OUT_OF_ORDER_SEQUENCE_NUMBER. The 0.11 client made that fatal; today's client \
            bumps the epoch and writes the batch again, which is the anomaly the checker names \
            here (the 0.11 client's fatal error is not modelled). KAFKA-5494 (1.0.0) kept the \
            last five batches (NUM_BATCHES_TO_RETAIN) and let the client keep five requests \
            in flight with idempotence.",
    base: &[
        ("seed", "3"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0.2"),
        ("request-loss", "0"),
    ],
    bug: &[("broker-profile", "kafka-0.11")],
    fix: &[("broker-profile", "kafka")],
    faults: "ack-loss producer=0 batch=5 attempt=1\nack-loss producer=0 batch=10 attempt=1\n",
    anomaly: "no duplicates",
};
