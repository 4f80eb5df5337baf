//! Entries of the Java client's own history: rules that Kafka releases of the Java producer
//! changed (`idempo_producer::JavaRules`), each switched on by its flag or by the client
//! profile `java-2.4`.
//!
//! The rule they explain: an epoch bump, or a sequence restart, must never give a batch whose
//! earlier attempt may be in the log a new identity, and must restart *every* partition that
//! will send under the new epoch at sequence 0.

use super::entry::Entry;

/// KAFKA-14034: a failed batch's bump re-stamps an earlier batch still being retried.
pub static KAFKA_14034: Entry = Entry {
    id: "KAFKA-14034",
    reference: "KAFKA-14034, not fixed (PR #13796 closed unmerged)",
    component: "client profile java",
    summary: "a non-retriable error while other batches of the partition were being retried bumped the epoch and re-stamped them; a retry already written was written again",
    story: "Two requests in flight on one connection through a proxy that drops single \
            frames. Batches 16 (sequences 160..169) and 17 (170..179) are both appended; the \
            proxy drops batch 16's answer, and when batch 17's answer comes first the client, \
            which reads answers in order, closes the connection and retries both, their \
            outcome unknown. Batch 16's retry is damaged on the way (a bit of its magic byte, \
            outside the CRC) and the broker refuses it with INVALID_RECORD, which the client \
            does not retry: the batch fails, possibly persisted. Since Kafka 2.5 (KAFKA-8805) \
            a batch failed for good while retries remained asks for an epoch bump \
            (TransactionManager.handleFailedBatch, requestEpochBumpForPartition), and the \
            bump re-stamps every batch of the partition that has no outcome yet: batch 17, \
            waiting for its retry, goes out as sequence 0 of epoch 1 and is appended a second \
            time. KAFKA-14034 reports it (the re-stamped batches' earlier attempts may be in \
            the log, \"effectively granting those messages a new identity\"). PR #13796 \
            proposed to mark the partition unresolved instead (markSequenceUnresolved), so \
            that no new batch is drained and the bump waits until the partition's in-flight \
            batches have completed; it was closed unmerged, and today's client still bumps at \
            once. --failed-batch-waits-for-in-flight is that proposal: batch 17's retry keeps \
            epoch 0 and sequence 170, the broker answers it as a duplicate, and the partition \
            resolves without a bump (its next sequence follows the last one acknowledged). \
            The base keeps two requests in flight: with more, the refusal of the batch right \
            behind the failed one still asks for a bump at once (canRetry's rule for the \
            sequence after an unresolved one), which PR #13796 did not change. The base \
            turns first-batch-alone on, so that the seeds of the fixed side measure this rule \
            alone: without it a few seeds show the KIP-360 first-batch hole, an entry of its \
            own.",
    base: &[
        ("seed", "31"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("max-in-flight", "2"),
        ("network", "proxy"),
        ("ack-loss", "0.1"),
        ("request-loss", "0"),
        ("header-corrupt", "0.05"),
        ("first-batch-alone", "on"),
    ],
    bug: &[("failed-batch-waits-for-in-flight", "off")],
    fix: &[("failed-batch-waits-for-in-flight", "on")],
    faults: "ack-loss producer=0 batch=16 attempt=1\nheader-corrupt producer=0 batch=16 attempt=2\n",
    anomaly: "no duplicates",
};

/// KAFKA-12152: a partition idle at the bump keeps its old sequence under the new epoch.
pub static KAFKA_12152: Entry = Entry {
    id: "KAFKA-12152",
    reference: "KAFKA-12152 (Kafka 2.5.0 to 2.7.x, fixed in 2.8.0)",
    component: "client switch bump-skips-idle-partitions",
    summary: "an epoch bump re-sequenced only the partitions that asked or had batches in flight; an idle one kept its old sequence under the new epoch and was refused, bump after bump",
    story: "One request in flight, two partitions. A request carries a batch of each; \
            partition 1's, at sequence 50, is damaged on the way (its magic byte) and refused \
            with INVALID_RECORD, partition 0's is appended. The failed batch makes the \
            producer bump its epoch to 1 and restart partition 1 at sequence 0; partition 0, \
            its batch acknowledged, has nothing in flight at the bump. Kafka 2.5 to 2.7 restarted a \
            partition's sequences only when it asked for the bump or when its last batch of \
            the old epoch was acknowledged (TransactionManager.handleCompletedBatch), so \
            partition 0 keeps its next sequence and sends it under the new epoch: epoch 1, \
            sequence 60. The broker refuses it (a new epoch must start at sequence 0) with \
            OUT_OF_ORDER_SEQUENCE_NUMBER; for the client that is a gap right after its last \
            acknowledged sequence, so it bumps again, to epoch 2, restarting partition 0; and \
            now partition 1, idle in its turn, carries sequence 10 into epoch 2 and is refused, \
            and the producer bumps to epoch 3. The refusals go on, bump after bump, until both \
            partitions happen to have a batch in flight at a bump. The checker names it: under \
            epoch 1 on partition 0 and epoch 2 on partition 1 the producer sent batches and \
            none at sequence 0. Kafka 2.8.0 (KAFKA-12152) keeps the producer id and epoch per \
            partition and restarts a partition at 0 when its next batch is drained after the \
            bump with nothing of the old epoch in flight (maybeUpdateProducerIdAndEpoch): \
            --bump-skips-idle-partitions off, one bump.",
    base: &[
        ("seed", "3"),
        ("producers", "1"),
        ("partitions", "2"),
        ("records", "200"),
        ("batch-records", "10"),
        ("max-in-flight", "1"),
        ("ack-loss", "0"),
        ("request-loss", "0"),
        ("header-corrupt", "0.05"),
    ],
    bug: &[("bump-skips-idle-partitions", "on")],
    fix: &[("bump-skips-idle-partitions", "off")],
    faults: "header-corrupt producer=0 batch=11 attempt=1\n",
    anomaly: "a new epoch starts at sequence 0",
};

/// KIP-360: Kafka 2.4's client moves later batches into a failed batch's sequences under the
/// same epoch, a retry of unknown outcome among them.
pub static KIP_360: Entry = Entry {
    id: "KIP-360",
    reference: "KIP-360 (Kafka 2.5.0, KAFKA-8805)",
    component: "client profile java-2.4",
    summary: "a client that moved later batches into a failed batch's sequences under the same epoch re-sent a batch whose first attempt was still on its way; the late attempt was in sequence again and the batch was written twice; fixed by the safe epoch bump",
    story: "Two requests in flight, one partition, through a network that delivers each \
            request on its own (a delayed request can land after a later one). Batch 10 \
            (sequences 100..109) is damaged on the way (a bit of its magic byte) and refused \
            with INVALID_RECORD, a non-retriable error; batch 11's first attempt (110..119) \
            is delayed by 230 ms, past request.timeout.ms. Kafka 2.4's client took a batch \
            refused before its retries ran out as not written, and moved the partition's \
            later batches down into its sequences under the same producer id and epoch \
            (TransactionManager.adjustSequencesDueToFailedBatch, from handleFailedBatch): \
            batch 11 becomes sequences 100..109 of epoch 0 while its first attempt, at 110, \
            is still on the way, and batch 12 is stamped 110..119. Batch 11's request times \
            out and its retry at 100 is appended at offsets 100..109; then the delayed \
            attempt lands, sequence 110 is the next one the broker expects, and batch 11 is \
            appended a second time at offsets 110..119. Batch 12's retry at 110 is taken for \
            a retry of it: acknowledged at offset 110, its records never written. KIP-360's \
            first point: re-using a sequence is safe only if the request cannot have been \
            written, and after a timeout nothing says so. Kafka 2.5 (KAFKA-8805, part of \
            KIP-360) bumps the epoch instead, which restarts batch 11 at sequence 0 of epoch 1 \
            and leaves the late attempt under epoch 0, which the broker refuses: written \
            once. The base turns on first-batch-alone and PR #13796's proposal for KAFKA-14034 \
            (--failed-batch-waits-for-in-flight), so that the seeds of the fixed side measure \
            this rule alone: without the first, 16 of 10 000 seeds of today's client show the \
            KIP-360 first-batch hole; without the second, 2 716 fail, 27 of them with \
            KAFKA-14034's duplicates, most of the others on \"a new epoch starts at \
            sequence 0\". With it the fixed client waits for batch 11, whose retry at 110 and late \
            attempt are refused with OUT_OF_ORDER_SEQUENCE_NUMBER (the broker expects 100), \
            and then bumps. Without it today's client bumps at \
            once and the late attempt is fenced with INVALID_PRODUCER_EPOCH. Later in the \
            historical run a reordered request is refused as a real gap and the profile \
            bumps the epoch, where 2.4 reset the producer id (java-2.4's approximation, after \
            the duplicate). Kafka 2.4's other restart under the same epoch, at sequence 0 on \
            UNKNOWN_PRODUCER_ID (startSequencesAtBeginning, also in java-2.4), is the same \
            mistake; it needs a partition's first attempt to outlive its retries, which these \
            rates (first-batch-alone on) never draw.",
    base: &[
        ("seed", "49"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("max-in-flight", "2"),
        ("ack-loss", "0"),
        ("request-loss", "0"),
        ("network", "datagram"),
        ("spike", "0.03"),
        ("spike-ms", "230"),
        ("header-corrupt", "0.05"),
        ("broker-profile", "kafka-2.4"),
        ("first-batch-alone", "on"),
        ("failed-batch-waits-for-in-flight", "on"),
    ],
    bug: &[("client-profile", "java-2.4")],
    fix: &[("client-profile", "java")],
    faults: "header-corrupt producer=0 batch=10 attempt=1
spike producer=0 batch=11 attempt=1
",
    anomaly: "no duplicates",
};
