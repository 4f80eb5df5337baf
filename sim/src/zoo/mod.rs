//! # The bug zoo: documented idempotence bugs, replayable
//!
//! Every rule of the sequence-dedup protocol is there because some released broker or client
//! lacked it and wrote a record twice, or lost one. The zoo keeps those bugs as runs: each
//! [`Entry`] names an upstream bug (a JIRA, a KIP, a GitHub issue), the component that had it,
//! the historical behaviour as a real named setting (a broker profile, a client switch), the
//! fixed behaviour, and the smallest fault schedule that shows the difference, as a replay
//! file (faults named by logical event, see [`crate::plan`]).
//!
//! `idempo-sim zoo run ID` runs the schedule twice: with the historical setting the checker
//! must name the entry's anomaly; with the fix it must pass. Nothing in the engine knows
//! which entry is running: the two runs differ only in their flags, which are the very flags
//! `run`, `compare` and `sweep` take, so every entry is also a one-line `idempo-sim replay`.
//!
//! ```text
//! entry                bug setting                       fix setting              anomaly named
//! redpanda-3039        --broker-profile redpanda-21.10   --broker-profile kafka   no duplicates
//! KAFKA-5494           --broker-profile kafka-0.11       --broker-profile kafka   no duplicates
//! kip-360-first-batch  --network proxy (java client)     --first-batch-alone      no duplicates
//! last-batch-snapshot  --snapshot-mode last-batch        --snapshot-mode full     written again after
//!                                                                                 a restart shrank ...
//! jepsen-kafka-2013    --unclean-leader-election,        unclean off,             lost by an unclean
//!                      min.insync.replicas 1             min.insync.replicas 2    leader election
//! KAFKA-10751          --unclean-leader-election         unclean off              lost by an unclean
//!                      (min.insync.replicas 2)                                    leader election
//! KIP-101              --truncation high-watermark       --truncation             no lost acknowledged
//!                                                        leader-epoch             records
//! KIP-854              --producer-per-batch, no bound    --max-producer-ids-      producer state within
//!                      (Kafka)                           per-partition 40         its memory budget
//! librdkafka-2163      --client-profile librdkafka,      --librdkafka-timeout-    no fatal producer
//!                      --librdkafka-timeout-bump off     bump on (1.0.0)          error
//! librdkafka-4438      --librdkafka-possibly-persisted-  ... off (2.3.0)          no fatal producer
//!                      ack on                                                     error
//! librdkafka-4953      --librdkafka-out-of-order-bump    ... off (Java's rule;    no duplicates
//!                      on (2.x, not fixed)               PR #4972 proposes it)
//! KAFKA-5793           --broker-profile kafka-0.11       --broker-profile         no fatal producer
//!                      (--delete-records, the 0.11       kafka-1.0 (1.0.0:        error
//!                      client's fatal OOOS)              UNKNOWN_PRODUCER_ID)
//! KAFKA-7190           --broker-profile kafka-1.0        --broker-profile         no duplicates
//!                      (evicts with the log head)        kafka-2.4 (keeps state)
//! KAFKA-6683           --producer-state-before-append    ... off (1.1.0)          no lost acknowledged
//!                      on (--append-failure)                                      records
//! KAFKA-5283           --epoch-bump-wraps on             ... off (0.11.0.0: a     a producer's epoch
//!                      (--initial-producer-epoch 32767)  new producer id)         never goes backwards
//! KAFKA-14034          --failed-batch-waits-for-         ... on (PR #13796's      no duplicates
//!                      in-flight off (Kafka today)       proposal, unmerged)
//! KAFKA-12152          --bump-skips-idle-partitions on   ... off (2.8.0)          a new epoch starts at
//!                      (2.5.0 to 2.7.x)                                           sequence 0
//! KIP-360              --client-profile java-2.4         --client-profile java    no duplicates
//!                      (adjustSequencesDueTo-            (2.5.0's epoch bump,
//!                      FailedBatch, datagram)            KAFKA-8805)
//! ```
//!
//! ## How an entry's schedule was found
//! [`search::find`] tries seeds with the entry's fault rates under the historical setting
//! until one fails with the entry's anomaly while the fix passes under the same faults, then
//! shrinks the faults with [`crate::shrink`] (ddmin) to a 1-minimal list that still shows
//! both. `idempo-sim zoo search ID` reruns that search; the schedules written in the entries
//! are its output.
//!
//! ## Layout
//! - [`entry`]: `Entry`, its two configs, its schedule, and the verdict of a replay.
//! - [`broker_window`]: the entries of a dedup window too small (redpanda-3039, KAFKA-5494).
//! - [`first_batch`]: kip-360-first-batch, today's Kafka through a frame-dropping proxy.
//! - [`snapshot`]: last-batch-snapshot, today's Kafka after a clean restart.
//! - [`replication`]: jepsen-kafka-2013 and KAFKA-10751, acknowledged writes lost to an
//!   election.
//! - [`truncation`]: KIP-101, a follower that truncates to its high watermark.
//! - [`producer_ids`]: KIP-854, producer state grown by a producer per batch, and idempo's
//!   bound on it.
//! - [`librdkafka`]: librdkafka-2163, -4438 and -4953, librdkafka's own rules
//!   (`--client-profile librdkafka`): two fatal desynchronisations and a bump's duplicates.
//! - [`log_start`]: KAFKA-5793 and KAFKA-7190, producer state evicted with the records
//!   DeleteRecords deleted (`--delete-records`).
//! - [`append_failure`]: KAFKA-6683, producer state updated before an append that failed
//!   (`--append-failure`).
//! - [`epoch`]: KAFKA-5283, an epoch bump that wraps at `Short.MAX_VALUE`
//!   (`--initial-producer-epoch`, `--epoch-bump-wraps`).
//! - [`java_client`]: KAFKA-14034, KAFKA-12152 and KIP-360, rules of the Java client that
//!   Kafka releases changed (`idempo_producer::JavaRules`, `--client-profile java-2.4`).
//! - [`cli`]: `idempo-sim zoo list|run|check|search`.
//! - [`search`]: seed search and shrinking of a schedule.
//! - [`report`]: the side-by-side text of `zoo run` and the table of `zoo check`.
//!
//! ## What the zoo leaves out, for now
//! The entries the simulator cannot show yet are not listed (no entry is faked):
//! - KAFKA-5793 and KAFKA-7190 run today's Java client against the historical brokers: its
//!   epoch bump after `UNKNOWN_PRODUCER_ID` restarts the batch at sequence 0 as the 1.0-2.4
//!   client's sequence reset did (without a bump; `--client-profile java-2.4` has that reset,
//!   and these entries were not re-run with it), and the 0.11 client's stop
//!   after `OUT_OF_ORDER_SEQUENCE_NUMBER` is the one switch `--out-of-order-sequence-fatal`.
//!
//! The librdkafka profile leaves out what its entries do not need
//! (`idempo_producer::profile_librdkafka` lists it): sequences taken from message ids at
//! `produce()` (so a batch that expires before it was ever sent leaves no gap here, where in
//! librdkafka it does), the epoch wrapping to 0, its `UNKNOWN_PRODUCER_ID` and InitProducerId
//! rules. librdkafka-4953's first refusal is `NOT_ENOUGH_REPLICAS`, not the
//! `NOT_LEADER_OR_FOLLOWER` of the issue: the simulated leader change refuses with the former
//! (neither writes anything, and the rule the entry explains is the same). `bench/client-matrix`
//! compares the profile with the real librdkafka (confluent-kafka, through idempo's 3-broker
//! cluster and proxy): in each of its seven fault classes the profile's simulated runs land in
//! the same outcome class as confluent-kafka's.

pub mod append_failure;
pub mod broker_window;
pub mod cli;
pub mod entry;
pub mod epoch;
pub mod first_batch;
pub mod java_client;
pub mod librdkafka;
pub mod log_start;
pub mod producer_ids;
pub mod replication;
pub mod report;
pub mod search;
pub mod snapshot;
pub mod truncation;

pub use entry::{Entry, EntryError, Outcome, Side};

/// Every entry, in catalogue order.
pub fn entries() -> Vec<&'static Entry> {
    vec![
        &broker_window::REDPANDA_3039,
        &broker_window::KAFKA_5494,
        &first_batch::KIP_360_FIRST_BATCH,
        &snapshot::LAST_BATCH_SNAPSHOT,
        &replication::JEPSEN_KAFKA_2013,
        &replication::KAFKA_10751,
        &truncation::KIP_101,
        &producer_ids::KIP_854,
        &librdkafka::LIBRDKAFKA_2163,
        &librdkafka::LIBRDKAFKA_4438,
        &librdkafka::LIBRDKAFKA_4953,
        &log_start::KAFKA_5793,
        &log_start::KAFKA_7190,
        &append_failure::KAFKA_6683,
        &epoch::KAFKA_5283,
        &java_client::KAFKA_14034,
        &java_client::KAFKA_12152,
        &java_client::KIP_360,
    ]
}

/// The entry named `id` (as `zoo list` prints it; case-sensitive, as upstream ids are).
pub fn find(id: &str) -> Option<&'static Entry> {
    entries().into_iter().find(|e| e.id == id)
}
