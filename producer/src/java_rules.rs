//! Historical rules of Kafka's Java client, one switch each ([`JavaRules`]), for the client
//! profiles `java` (today's rules, every switch off) and `java-2.4` (Kafka 2.4.1's
//! `TransactionManager`, before KIP-360's safe epoch bump), and for single switches under
//! either (a zoo entry turns one on to show the bug it caused).
//!
//! Each switch names the Kafka version and JIRA that changed it, read from
//! `clients/src/main/java/org/apache/kafka/clients/producer/internals/TransactionManager.java`
//! and `RecordAccumulator.java` at the release tags:
//!
//! ```text
//! switch                            historical rule                         today (Kafka 2.8+ / 4.x)
//! unknown_producer_resets_sequences UNKNOWN_PRODUCER_ID when the last       bump the epoch and retry
//!                                   acknowledged offset is below the log    (KIP-360, KAFKA-8710 and
//!                                   start: restart the partition's          KAFKA-8805, 2.5.0)
//!                                   sequences at 0 under the SAME epoch
//!                                   and retry; otherwise the batch fails
//!                                   (Kafka 2.4.1 and before)
//! failed_batch_adjusts_sequences    a batch that fails for good with        bump the epoch and restart
//!                                   retries left moves the partition's      the partition's batches at
//!                                   later in-flight batches down by its     0 (KAFKA-8805, KIP-360,
//!                                   record count under the SAME epoch       2.5.0)
//!                                   (adjustSequencesDueToFailedBatch,
//!                                   Kafka 2.4.1 and before)
//! bump_skips_idle_partitions        an epoch bump restarts the sequences    a partition adopts the new
//!                                   of the asking partitions and of those   epoch at sequence 0 when
//!                                   whose last old-epoch batch is           its next batch is drained
//!                                   acknowledged; a partition idle at the   and nothing of the old
//!                                   bump, or whose last batch failed, keeps epoch is in flight
//!                                   its sequence under the new epoch and is (KAFKA-12152, 2.8.0)
//!                                   refused (2.5.0 to 2.7.x)
//! failed_batch_waits_for_in_flight  (the fix proposed for KAFKA-14034, PR   a batch failed for good
//!                                   #13796, not merged): a batch failed for asks for a bump at once,
//!                                   good marks its partition unresolved;    which re-stamps earlier
//!                                   the bump waits until nothing of the     batches still being
//!                                   partition is in flight                  retried (2.5.0 to today)
//! ```
//!
//! ## What `java-2.4` leaves out
//!
//! Kafka 2.4 had no epoch bump for the idempotent producer: where 2.5 bumps the epoch (a real
//! sequence gap, an `UNKNOWN_PRODUCER_ID` it cannot explain, a partition left unresolved) 2.4
//! failed the batch and reset the producer id (`resetProducerId`: a new id from
//! InitProducerId, every partition's sequences forgotten). The `java-2.4` profile keeps the
//! bump there: for the partition that asked, both restart the sequences under an id or epoch
//! the broker fences the old one with. They differ for the batches already stamped: 2.4 sent
//! them again under the old id and failed them on any error ("the producer id changed"), the
//! bump re-stamps them under the new epoch.

/// Historical rules of the Java client, one switch per rule that a Kafka release changed. Read
/// under every profile but `librdkafka` (which has its own, [`LibrdkafkaRules`]); the default,
/// [`JavaRules::CURRENT`], is today's client. [`ClientProfile::JavaTwoFour`](crate::ClientProfile::JavaTwoFour)
/// (`--client-profile java-2.4`) turns on [`JavaRules::KAFKA_2_4`]'s switches besides these
/// ([`ClientProfile::java_rules`]).
///
/// [`LibrdkafkaRules`]: crate::LibrdkafkaRules
/// [`ClientProfile::java_rules`]: crate::ClientProfile::java_rules
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct JavaRules {
    /// Kafka 2.4.1 and before (`TransactionManager.canRetry`): `UNKNOWN_PRODUCER_ID`, with a
    /// known log start offset, for a batch whose sequence was not reset already, restarts the
    /// partition's in-flight batches at sequence 0 under the *same* producer id and epoch
    /// (`startSequencesAtBeginning`) and retries, when the partition's last acknowledged
    /// offset is below the log start (the broker presumably lost the producer to retention);
    /// otherwise the batch fails. KIP-360 (Kafka 2.5.0) bumps the epoch instead: a sequence
    /// restarted under the same epoch can be taken for a retry of a batch already written, or
    /// refused by a broker that still knows the producer.
    pub unknown_producer_resets_sequences: bool,
    /// Kafka 2.4.1 and before (`TransactionManager.adjustSequencesDueToFailedBatch`, called
    /// from `handleFailedBatch` when `Sender.completeBatch` fails a batch with a non-retriable
    /// error before its retries ran out): the failed batch is taken as not written, so the
    /// partition's later in-flight batches move down by its record count under the *same*
    /// producer id and epoch, and so does the next sequence. A later batch whose earlier
    /// attempt is still on its way is moved too: if that attempt lands after the moved copy,
    /// the broker finds it in sequence and writes the batch twice. Kafka 2.5.0 (KAFKA-8805,
    /// part of KIP-360) bumps the epoch instead for an idempotent producer, which fences the
    /// late attempt.
    pub failed_batch_adjusts_sequences: bool,
    /// Kafka 2.5.0 to 2.7.x (KAFKA-12152, fixed in 2.8.0): an epoch bump restarts the
    /// sequences of the partitions that asked for it; another partition restarts only when
    /// its last batch of the old epoch is acknowledged (`handleCompletedBatch`). A partition
    /// with nothing in flight at the bump, or whose last old-epoch batch failed, keeps its
    /// next sequence and stamps it under the new epoch; the broker refuses it (a new epoch
    /// must start at sequence 0), which asks for another bump. Off: Kafka 2.8's
    /// `maybeUpdateProducerIdAndEpoch`, which restarts such a partition at 0 when its next
    /// batch is drained.
    pub bump_skips_idle_partitions: bool,
    /// Not in Kafka (the fix proposed for KAFKA-14034 in PR #13796, closed unmerged): a batch
    /// that fails with a non-retriable error marks its partition unresolved
    /// (`markSequenceUnresolved`) instead of asking for an epoch bump at once, so that no new
    /// batch is drained and the bump waits until the partition's in-flight batches have
    /// completed (`maybeResolveSequences`). Off: Kafka 2.5.0 to today
    /// (`handleFailedBatch`: `requestEpochBumpForPartition`), whose bump re-stamps the earlier
    /// batches still being retried; a retry of one that was already written is then written
    /// again under the new epoch.
    pub failed_batch_waits_for_in_flight: bool,
}

impl JavaRules {
    /// Today's Java client (Kafka 2.8 and later, up to 4.x): every historical rule off.
    pub const CURRENT: JavaRules = JavaRules {
        unknown_producer_resets_sequences: false,
        failed_batch_adjusts_sequences: false,
        bump_skips_idle_partitions: false,
        failed_batch_waits_for_in_flight: false,
    };

    /// Kafka 2.4's client where the switches reach it: the pre-KIP-360 sequence reset on
    /// `UNKNOWN_PRODUCER_ID` and the move of later batches after a failed one. KAFKA-12152
    /// came with 2.5's epoch bump (2.4 reset the producer id and every partition's sequences
    /// instead), so it is off.
    pub const KAFKA_2_4: JavaRules = JavaRules {
        unknown_producer_resets_sequences: true,
        failed_batch_adjusts_sequences: true,
        bump_skips_idle_partitions: false,
        failed_batch_waits_for_in_flight: false,
    };

    /// These rules with every switch of `forced` on as well (a profile's rules, which its
    /// switches cannot turn off).
    pub fn with(self, forced: JavaRules) -> JavaRules {
        JavaRules {
            unknown_producer_resets_sequences: self.unknown_producer_resets_sequences
                || forced.unknown_producer_resets_sequences,
            failed_batch_adjusts_sequences: self.failed_batch_adjusts_sequences
                || forced.failed_batch_adjusts_sequences,
            bump_skips_idle_partitions: self.bump_skips_idle_partitions
                || forced.bump_skips_idle_partitions,
            failed_batch_waits_for_in_flight: self.failed_batch_waits_for_in_flight
                || forced.failed_batch_waits_for_in_flight,
        }
    }

    /// Whether Kafka 2.4's `canRetry` restarts the sequences for an `UNKNOWN_PRODUCER_ID`
    /// answer: the partition's last acknowledged offset (-1 for none) below the log start
    /// offset the broker reported.
    pub fn resets_for_unknown_producer(
        self,
        last_acked_offset: i64,
        log_start_offset: i64,
    ) -> bool {
        self.unknown_producer_resets_sequences && last_acked_offset < log_start_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_2_4_resets_only_when_the_log_start_passed_the_last_acknowledged_offset() {
        let rules = JavaRules::KAFKA_2_4;
        assert!(
            rules.resets_for_unknown_producer(-1, 0),
            "nothing acknowledged yet"
        );
        assert!(
            rules.resets_for_unknown_producer(9, 10),
            "retention passed it"
        );
        assert!(
            !rules.resets_for_unknown_producer(10, 10),
            "the last acknowledged record is still in the log: the batch fails"
        );
        assert!(
            !JavaRules::CURRENT.resets_for_unknown_producer(-1, 0),
            "today's client bumps instead"
        );
    }

    #[test]
    fn a_switch_on_in_the_rules_or_in_the_forced_ones_is_on() {
        let one = |i: usize| {
            let on = |k: usize| k == i;
            JavaRules {
                unknown_producer_resets_sequences: on(0),
                failed_batch_adjusts_sequences: on(1),
                bump_skips_idle_partitions: on(2),
                failed_batch_waits_for_in_flight: on(3),
            }
        };
        for i in 0..4 {
            assert_eq!(
                one(i).with(JavaRules::CURRENT),
                one(i),
                "switch {i} on in the rules"
            );
            assert_eq!(
                JavaRules::CURRENT.with(one(i)),
                one(i),
                "switch {i} forced on"
            );
            assert_eq!(one(i).with(one(i)), one(i), "switch {i} on in both");
        }
        assert_eq!(
            JavaRules::CURRENT.with(JavaRules::CURRENT),
            JavaRules::CURRENT
        );
    }
}
