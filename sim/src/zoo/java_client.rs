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

/// KIP-360: Kafka 2.4's client restarts sequences under the same epoch on
/// `UNKNOWN_PRODUCER_ID`.
pub static KIP_360: Entry = Entry {
    id: "KIP-360",
    reference: "KIP-360 (Kafka 2.5.0, KAFKA-8710)",
    component: "client profile java-2.4",
    summary: "a client that restarts sequences under the same epoch after a retry of unknown outcome: a late first attempt takes sequence 0 and the restarted batch is acknowledged as its duplicate, never written; fixed by the safe epoch bump",
    story: "One partition, retries 2, a broker with Kafka 2.4's rules (an unknown producer \
            must start at sequence 0, else UNKNOWN_PRODUCER_ID). The first request, sequence \
            0, is delayed by 640 ms on the way; its two retries are lost. Batches at \
            sequences 10 to 40 arrive first and are refused with UNKNOWN_PRODUCER_ID, log \
            start offset 0. Kafka 2.4's client (TransactionManager.canRetry) compares the \
            partition's last acknowledged offset (-1: nothing acknowledged yet) with the log \
            start, concludes that retention removed its producer, and restarts the \
            partition's sequences at 0 under the same epoch (startSequencesAtBeginning). At \
            first the batch at sequence 0 is still in flight, so nothing moves. After its \
            third attempt it fails, possibly persisted: its first attempt is still on the way. \
            The next batch is refused again, and this time the restart makes it sequence 0 of \
            epoch 0. The delayed first attempt lands and is appended at offsets 0..9; the \
            retry of the second batch, epoch 0 and sequence 0 too, is then taken for a retry of \
            it and answered with offset 0: the client reports it acknowledged, and its records \
            were never written. KIP-360's first point: a sequence restart is safe only if the \
            request cannot have been written, and after a retry nothing says so. Kafka 2.5 \
            (KIP-360, KAFKA-8710, KAFKA-8805) bumps the epoch instead: the second batch goes \
            out as sequence 0 of a new epoch, which the broker cannot confuse with the late \
            write of the old one (here both are appended; had the new epoch landed first, the \
            old one would be fenced with INVALID_PRODUCER_EPOCH). The schedule was written \
            from that mechanism, not found by seed search: it needs a first attempt that \
            outlives the batch's last retry and lands between two refusals, which the entry's \
            fault rates seldom draw.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("retries", "2"),
        ("ack-loss", "0"),
        ("request-loss", "0.1"),
        ("network", "datagram"),
        ("spike", "0.01"),
        ("spike-ms", "640"),
        ("broker-profile", "kafka-2.4"),
    ],
    bug: &[("client-profile", "java-2.4")],
    fix: &[("client-profile", "java")],
    faults: "spike producer=0 batch=0 attempt=1\nrequest-loss producer=0 batch=0 attempt=2\nrequest-loss producer=0 batch=0 attempt=3\n",
    anomaly: "no lost acknowledged records",
};
