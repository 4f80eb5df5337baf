//! kip-360-first-batch: today's Kafka client and broker, the first batch to a partition lost
//! by a proxy that drops single frames.
//!
//! The rule it explains: since KIP-360 (Kafka 2.5) a broker accepts *any* sequence from a
//! producer it does not know, so that a producer whose state was removed can go on. The price
//! is that the broker cannot tell "a producer it forgot" from "a first batch that never
//! arrived". Not fixed upstream; idempo's `first_batch_alone` is the fix shown.

use super::entry::Entry;

/// kip-360-first-batch: the first batch lost, the second accepted from an unknown producer.
pub static KIP_360_FIRST_BATCH: Entry = Entry {
    id: "kip-360-first-batch",
    reference: "KIP-360 (2.5) hole, not fixed upstream",
    component: "client profile java",
    summary: "the first batch to a partition lost, the second accepted from an unknown producer: the epoch bump writes it twice",
    story: "Through a proxy that drops one frame and keeps the connection, the producer's first \
            request (sequence 0 of each partition) is lost and the four behind it arrive. \
            Since KIP-360 the broker accepts any sequence from a producer it does not know, so \
            it appends sequences 10..49 with a gap in front of them. The retry of sequence 0 is \
            then refused with OUT_OF_ORDER_SEQUENCE_NUMBER (the broker expects 50); the Java \
            client bumps its epoch and re-sends every batch in flight from sequence 0 under \
            the new epoch, and the four batches already appended are in the log twice. This is \
            today's Kafka and is not fixed upstream. idempo's first_batch_alone \
            (--first-batch-alone, on in --client-profile idempo) sends a partition's first \
            batch alone until the broker has acknowledged one under the producer id, so no \
            later batch can overtake it.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "2"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0.1"),
        ("request-loss", "0.1"),
        ("network", "proxy"),
    ],
    bug: &[("first-batch-alone", "off")],
    fix: &[("first-batch-alone", "on")],
    faults: "request-loss producer=0 batch=0 attempt=1\n",
    anomaly: "no duplicates",
};
