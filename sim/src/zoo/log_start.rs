//! Entries of a log start that moves: DeleteRecords (or retention) deletes a producer's
//! batches, and with them, on the brokers of the day, its producer state.
//!
//! The rule they explain: producer state is not derived from the retained log only. A
//! producer whose batches were all deleted is still alive, may still retry, and its next
//! sequence still follows its last one; so the broker keeps its state until
//! `producer.id.expiration.ms` (Kafka 2.4.0, KAFKA-7190), and a broker that has none for a
//! producer answers `UNKNOWN_PRODUCER_ID`, not the "data loss" of
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` (Kafka 1.0.0, KAFKA-5793).
//!
//! The fault is `--delete-records N`: N DeleteRecords requests at moments drawn from the
//! seed, each moving one partition's log start offset to its high watermark (Kafka's
//! DeleteRecords with offset -1, what Kafka Streams does to its repartition topics). The
//! checker reads the deleted batches as the head of the log, so deleted records are not
//! counted lost, and a batch written again after its first copy was deleted still counts as
//! a duplicate.

use super::entry::Entry;

/// KAFKA-5793: the 0.11 broker answers a producer whose state went with its deleted batches
/// with a spurious OUT_OF_ORDER_SEQUENCE_NUMBER, which stopped the 0.11 client.
pub static KAFKA_5793: Entry = Entry {
    id: "KAFKA-5793",
    reference: "KAFKA-5793 (Kafka 1.0.0)",
    component: "broker profile kafka-0.11",
    summary: "producer state evicted by DeleteRecords/retention made the next batch a spurious fatal OUT_OF_ORDER_SEQUENCE_NUMBER; the fix split out UNKNOWN_PRODUCER_ID",
    story: "Kafka 0.11.0 removed a producer's state once retention or DeleteRecords had moved \
            the log start offset past its last batch (ProducerStateManager.truncateHead, \
            called from Log.maybeIncrementLogStartOffset). Here a DeleteRecords request \
            moves the partition's log start to its high watermark after the 5th append: \
            every batch of the one producer is gone, and so is its state. Its next batch, \
            at sequence 50, comes from a producer the broker no longer knows, and 0.11.0's \
            ProducerAppendInfo refused a batch of an unknown producer that does not start at \
            sequence 0 with OUT_OF_ORDER_SEQUENCE_NUMBER. The 0.11 client did not retry that \
            error (Sender.canRetry retried a RetriableException only), logged that it \
            \"indicates data loss on the broker\", and the KafkaProducer documentation of \
            the day told the application it could not recover and had to close the producer \
            (--out-of-order-sequence-fatal on): nothing was lost, yet the producer is dead. \
            KAFKA-5793 (Kafka 1.0.0, \"Tighten up the semantics of the \
            OutOfOrderSequenceException\") gave the broker UNKNOWN_PRODUCER_ID for a \
            producer it has no state for, with the log start offset in the answer, and the \
            client a way out: when its last acknowledged offset is below the log start, its \
            state was deleted with its records, so it restarts the partition's sequences at 0 \
            (here today's Java client, which bumps the epoch for it, KIP-360; either way the \
            batch goes out again at sequence 0 and the broker accepts it). \
            --broker-profile kafka-1.0 is that broker: it still evicts the state (until \
            KAFKA-7190, 2.4.0) but answers UNKNOWN_PRODUCER_ID.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("max-in-flight", "1"),
        ("ack-loss", "0"),
        ("request-loss", "0"),
        ("delete-records", "1"),
        ("out-of-order-sequence-fatal", "on"),
    ],
    bug: &[("broker-profile", "kafka-0.11")],
    fix: &[("broker-profile", "kafka-1.0")],
    faults: "delete-records after-appends=5 partition=0\n",
    anomaly: "no fatal producer error",
};

/// KAFKA-7190: DeleteRecords evicts a live producer's state; its retry of a batch already
/// written restarts at sequence 0 and is written again.
pub static KAFKA_7190: Entry = Entry {
    id: "KAFKA-7190",
    reference: "KAFKA-7190 (Kafka 2.4.0, PR 7388)",
    component: "broker profile kafka-1.0",
    summary: "DeleteRecords on a quiet topic evicted producer state; the client's reset after UNKNOWN_PRODUCER_ID re-wrote a retry that was already written; fixed by keeping the state until expiry",
    story: "From Kafka 1.0 to 2.3 the broker still removed a producer's state when the log \
            start moved past its last batch, and answered the producer's next batch \
            UNKNOWN_PRODUCER_ID (KAFKA-5793). The client then reset: its last acknowledged \
            offset was below the log start, so it took the state to be deleted with the \
            records and restarted the partition's sequences at 0 (1.0 to 2.4: \
            TransactionManager.startSequencesAtBeginning under the same epoch; today's \
            Java client bumps the epoch first, KIP-360, as here). The heuristic is unsafe \
            when the batch it re-sends may already be in the log. Here the answer to batch \
            12 is lost and the connection with it, so batch 11's answer is lost too: both \
            are written, both will be retried. Before the retries arrive a DeleteRecords \
            request (as Kafka Streams sends for its repartition topics, KAFKA-7190's \
            setting) moves the log start to the high watermark, 130, deleting both batches \
            with the producer's state. The retry of batch 11 (sequence 110) is refused \
            UNKNOWN_PRODUCER_ID with log start offset 130, above the client's last \
            acknowledged offset 109; the client restarts the partition at sequence 0 (here: \
            epoch 1, the five batches in flight re-stamped from 0), and the broker, knowing \
            nothing of the producer, appends batches 11 and 12 a second time: a consumer \
            that read the first copies before the deletion reads them twice. KAFKA-7190 \
            (Kafka 2.4.0, PR 7388 \"Retain producer state until transactionalIdExpiration \
            time passes\", part of KIP-360) stopped evicting: the state outlives the \
            deleted batches until producer.id.expiration.ms, the retry is recognised as a \
            duplicate, and the quiet producer's next batch is in sequence \
            (--broker-profile kafka-2.4).",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0.2"),
        ("request-loss", "0"),
        ("delete-records", "2"),
    ],
    bug: &[("broker-profile", "kafka-1.0")],
    fix: &[("broker-profile", "kafka-2.4")],
    faults: "ack-loss producer=0 batch=12 attempt=1\ndelete-records after-appends=13 partition=0\n",
    anomaly: "no duplicates",
};
