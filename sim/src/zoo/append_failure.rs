//! KAFKA-6683: producer state changed before the append succeeded.
//!
//! The rule it explains: the producer state is a summary of the log, so it may learn a batch
//! only once the log holds it. If the state runs ahead (it learns a batch whose append then
//! fails), the broker "remembers" a batch that is not in the log: the retry of that batch is
//! answered as a duplicate, acknowledged with offsets of nothing, and the record is lost
//! although the client was told it was written.
//!
//! The fault is `--append-failure P`: the broker's disk fails the append of a produce
//! request's batch (a write error), nothing is written and the broker answers
//! `KAFKA_STORAGE_ERROR` (56), which the client retries.

use super::entry::Entry;

/// KAFKA-6683: a failed append leaves the producer state ahead of the log.
pub static KAFKA_6683: Entry = Entry {
    id: "KAFKA-6683",
    reference: "KAFKA-6683 (Kafka 1.1.0, PR 4755)",
    component: "broker producer-state-before-append",
    summary: "producer state changed before the append succeeded: after a failed append the retry was answered as a duplicate of a batch the log never held",
    story: "Up to Kafka 1.0.x, Log.analyzeAndValidateProducerState built each batch's \
            ProducerAppendInfo on the cached entry's own queue of batch metadata, so \
            validating a batch already added it to the live producer state, before the \
            append to the log (KAFKA-6683, \"Ensure producer state not mutated prior to \
            append\": \"This could have several bad consequences if the append ultimately \
            failed or was truncated\"; the reporter's was a snapshot holding state above its \
            own offset). Here the disk fails the append of one batch (a write error: \
            KAFKA_STORAGE_ERROR, retriable). The state already lists it \
            (--producer-state-before-append on), so the next batch in flight is in sequence \
            and is appended where the failed one should have been; when the failed batch \
            is retried, the broker finds its sequence among the last five and answers it as \
            a duplicate, with the offset it was to take. The producer reports it written; the \
            log never held it. Kafka 1.1.0 (PR 4755) copies the entry before validation and \
            updates the state only after the append: the retry is then in sequence again, \
            the batches behind it, refused as out of order meanwhile, follow, and nothing is \
            lost. The simulated broker goes on serving after the write error; Kafka takes the \
            log directory offline (KafkaStorageException), and the leadership moves to \
            another replica, whose state never held the batch.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0"),
        ("request-loss", "0"),
        ("append-failure", "0.05"),
    ],
    bug: &[("producer-state-before-append", "on")],
    fix: &[("producer-state-before-append", "off")],
    faults: "append-failure producer=0 batch=3 attempt=1\n",
    anomaly: "no lost acknowledged records",
};
