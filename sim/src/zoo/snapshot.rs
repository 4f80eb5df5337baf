//! last-batch-snapshot: today's Kafka after a clean restart.
//!
//! The rule it explains: what survives a restart must be the whole dedup window, not only
//! what the log replay after the snapshot rebuilds. Kafka's `ProducerStateManager` snapshot
//! keeps one batch per producer (`ProducerSnapshot`), so after a clean shutdown, whose last
//! snapshot is at the log end, the window holds one batch until new ones arrive.

use super::entry::Entry;

/// last-batch-snapshot: the restart shrinks the window to one batch.
pub static LAST_BATCH_SNAPSHOT: Entry = Entry {
    id: "last-batch-snapshot",
    reference: "Kafka ProducerSnapshot, not fixed upstream",
    component: "broker snapshot-mode last-batch",
    summary: "after a clean restart the snapshot keeps one batch per producer: a retry of the 2nd-5th newest batch is refused and written twice",
    story: "A clean shutdown writes a producer-state snapshot at the log end, and Kafka's \
            snapshot keeps only the last batch of each producer. The restart breaks the \
            producer's connection with up to five batches in flight whose answers are lost; \
            the producer retries them all. The retry of the newest is recognised, but the \
            retries of the older ones are below the one remembered batch: the broker answers \
            OUT_OF_ORDER_SEQUENCE_NUMBER, the client bumps its epoch and re-sends them, and \
            they are written twice. The checker names it as a limit: written again after a \
            restart shrank the dedup window. Kafka has not changed this; idempo's full-window \
            snapshot (--snapshot-mode full, the default) keeps all five batches.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "400"),
        ("batch-records", "10"),
        ("ack-loss", "0.2"),
        ("request-loss", "0"),
        ("broker-restarts", "2"),
    ],
    bug: &[("snapshot-mode", "last-batch")],
    fix: &[("snapshot-mode", "full")],
    faults: "broker-restart after-appends=16\n",
    anomaly: "written again after a restart shrank the dedup window",
};
