//! KAFKA-5283: producer epoch exhaustion at `Short.MAX_VALUE`.
//!
//! The rule it explains: a producer epoch is an `i16` that only goes up, because the broker
//! fences every batch whose epoch is below the one it holds. An epoch cannot go past
//! `Short.MAX_VALUE` (32 767); incremented as a plain `short` it wraps to -32 768, below
//! every epoch the broker has seen, and the producer fences itself. Since KAFKA-5283
//! (Kafka 0.11.0.0) an exhausted epoch means a new producer id, whose epochs start again.
//!
//! No run bumps 32 767 times, so the entry starts the producer near the end:
//! `--initial-producer-epoch 32767` is idempo's simulation setting (InitProducerId hands out
//! that epoch with a new producer id), and the first epoch bump exhausts it.

use super::entry::Entry;

/// KAFKA-5283: an epoch bump at 32 767 wraps and the broker fences the producer.
pub static KAFKA_5283: Entry = Entry {
    id: "KAFKA-5283",
    reference: "KAFKA-5283 (Kafka 0.11.0.0)",
    component: "client epoch-bump-wraps",
    summary: "producer epoch exhaustion at Short.MAX_VALUE: the bump wraps to -32768 and the broker fences every batch; the fix takes a new producer id",
    story: "Before KAFKA-5283 (\"Handle producer epoch/sequence overflow\", Kafka 0.11.0.0) an \
            epoch was incremented as (producerEpoch + 1).toShort \
            (TransactionMetadata.prepareIncrementProducerEpoch, the transaction \
            coordinator's, for each InitProducerId of a transactional id): at Short.MAX_VALUE \
            it wraps to Short.MIN_VALUE. The broker refuses a batch whose epoch is below the \
            one it holds for the producer id, so every batch of the wrapped epoch is fenced \
            with INVALID_PRODUCER_EPOCH although it comes from the live producer. Here the \
            epoch bump is the Java client's own (KIP-360): InitProducerId hands out epoch \
            32767 (--initial-producer-epoch, a simulation setting so that the first bump \
            exhausts it). Batch 3's request is lost and so is its retry; at 400 ms \
            (delivery.timeout.ms here) it expires after it was sent, the partition's \
            sequences are unresolved, and the client bumps the epoch to start them again at \
            0. With --epoch-bump-wraps on the new epoch is -32768: the broker, holding 32767 \
            for the producer id, refuses every batch INVALID_PRODUCER_EPOCH; each refusal \
            fails its batch and bumps again (-32767, -32766, ...), still below 32767, so \
            the live producer has fenced itself and 270 of its 300 records fail (the three \
            batches before the gap were written). The \
            checker names it: a producer's epoch never goes backwards. KAFKA-5283 made an exhausted epoch \
            (TransactionMetadata.isProducerEpochExhausted) rotate to a new producer id \
            (prepareProducerIdRotation), and the Java client's bumpIdempotentProducerEpoch \
            does the same for an idempotent producer: at Short.MAX_VALUE it drops its producer \
            id and asks for a new one (--epoch-bump-wraps off): producer id 2 at epoch 32767 \
            re-sends the partition's batches from sequence 0, and only batch 3, whose \
            delivery timeout had passed, fails. The same commit made sequence numbers wrap at \
            Integer.MAX_VALUE, which idempo's sequences do too. The base keeps one request in \
            flight: with five, 3 of 10 000 seeds of the fixed side write a batch twice, \
            because Java's bumpIdempotentProducerEpoch re-stamps the batches in flight at once \
            under ProducerIdAndEpoch.NONE, and a batch whose answer was lost goes out again \
            without a producer id (idempo's restamp_after_producer_id_reset, in \
            --client-profile idempo, waits for the new id instead): another hole, not \
            KAFKA-5283's.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "300"),
        ("batch-records", "10"),
        ("max-in-flight", "1"),
        ("ack-loss", "0"),
        ("request-loss", "0.05"),
        ("delivery-timeout-ms", "400"),
        ("initial-producer-epoch", "32767"),
    ],
    bug: &[("epoch-bump-wraps", "on")],
    fix: &[("epoch-bump-wraps", "off")],
    faults: "request-loss producer=0 batch=3 attempt=1\nrequest-loss producer=0 batch=3 attempt=2\n",
    anomaly: "a producer's epoch never goes backwards",
};
