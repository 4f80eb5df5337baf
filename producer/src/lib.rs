//! # idempo-producer: Kafka's idempotent producer as a state machine
//!
//! A producer that retries can write a batch twice: the broker appends it, the
//! acknowledgement is lost, the producer sends it again. Kafka's idempotent producer makes
//! such a retry harmless. It asks the broker for a **producer id** once, and stamps every batch
//! with that id, an **epoch**, and a per-partition **sequence** number counting records. The
//! broker remembers the last five batches of every producer on every partition. A retry carries
//! the same id, epoch and sequence as the original, so the broker recognises it and answers
//! with the original offset instead of appending again. A batch that arrives with a gap before
//! it is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`, so batches cannot be reordered either.
//!
//! This crate is that producer as plain synchronous code, following Kafka's Java client
//! (`Sender`, `RecordAccumulator`, `TransactionManager`, `TxnPartitionEntry`) rule by rule and
//! citing `docs/KAFKA-RULES.md` §2 for each. It does no I/O and reads no clock: it is handed
//! batches, responses and the time, and hands back requests, delivery reports and events. The
//! simulator drives it deterministically; a TCP client could drive the same code.
//!
//! ## How a lost acknowledgement becomes exactly one write
//!
//! Within one producer session (one producer id) the guarantee is: per partition, every
//! batch is written at most once and in the order sent. Here two batches go to partition 0,
//! with two requests in flight, and the first acknowledgement is lost:
//!
//! ```text
//! step  producer                             broker (partition 0)            producer learns
//! 1     InitProducerId                       allocates id 7, epoch 0         id 7, epoch 0
//! 2     drain A: id 7, epoch 0, seq 0..=2    appends A at offsets 0..=2      (ack lost)
//! 3     drain B: id 7, epoch 0, seq 3..=4    appends B at 3..=4, expected 3  B delivered, offset 3
//! 4     A's request times out                -                               A re-queued, same seq
//! 5     retry A: id 7, epoch 0, seq 0..=2    A is among the last 5 batches:  A delivered, offset 0
//!                                            answers offset 0, appends nothing
//! ```
//!
//! Step 2 stamps the sequence when the batch is first drained, not at `send()`. Step 5 re-sends
//! the very same bytes: a retry never changes id, epoch or sequence. With more than five
//! requests in flight, A could have left the broker's window by step 5, and the broker would
//! answer `OUT_OF_ORDER_SEQUENCE_NUMBER` instead. That is why `max_in_flight` above
//! `broker_dedup_window`, or above Kafka's limit of 5, is refused.
//!
//! When sequences can no longer be trusted (a real gap, a batch that failed for good, a
//! retried batch that expired), the producer bumps its epoch locally (KIP-360) and
//! restarts that partition's sequences at 0. The broker accepts sequence 0 from a higher
//! epoch and fences the old one. The rules, the drain gates and the handling of answers that
//! arrive after such a bump are the essay of the [`producer`] module.
//!
//! The guarantee has holes that belong to Kafka, not to this model, and the crate keeps them
//! so that the simulator can show them: a bump re-stamps batches whose earlier attempt may
//! have been written, and a 2.5+ broker accepts a gap from a producer it does not know yet.
//! Both are described at the end of the [`producer`] essay.
//!
//! ## Layout
//! - [`config`]: `ProducerConfig` with Kafka's defaults, `ClientProfile`, and `ConfigError`.
//! - [`java_rules`]: the Java client's historical rules (`JavaRules`), the `java-2.4` profile.
//! - [`profile_librdkafka`]: the librdkafka profile's switches (`LibrdkafkaRules`) and state.
//! - `batch`: `ProducerBatch` (a `send()` and its wire bytes) and [`DeliveryHandle`].
//! - `batch_table`: the batches without an outcome, in a window of slots indexed by handle.
//! - `deadlines`: their delivery deadlines, soonest first.
//! - `sequencer`: the per-partition sequence state (`TxnPartitionEntry`).
//! - `accumulator`: the per-partition queues and `insertInSequenceOrder`, in a `PartitionTable`.
//! - `in_flight`: requests awaiting an answer, by correlation id.
//! - [`delivery`]: `DeliveryReport`, `Delivered`, `DeliveryError` (definite or possibly
//!   persisted).
//! - [`event`]: `ProducerEvent`, the past-tense trace.
//! - [`stats`]: `ProducerStats` counters.
//! - [`metadata`]: the cluster view for routing (Kafka's `Metadata`): leaders, leader
//!   epochs, when to refresh; `PartitionLeader`, `LeaderChange`.
//! - [`producer`]: `Producer`, the state machine (`Sender` and the idempotence rules), and
//!   its `routing` half (`Outgoing`, `leastLoadedNode`, the drain by node).
//!
//! ## Differences from Kafka's Java client
//!
//! - **One topic; one broker unless asked.** Partitions are numbers. By default the producer
//!   talks to one broker over one connection and sends no Metadata, as before clusters
//!   existed here. With [`ProducerConfig::cluster_routing`] it routes each partition to its
//!   leader from Metadata, one connection per node, as Java does (the `producer` essay's
//!   routing section); connections are the caller's, so connection setup, `connections.max.
//!   idle.ms` and the random start of `leastLoadedNode` are left out, and Produce answers
//!   carry no `CurrentLeader` hint (KIP-951's other half): the new leader comes from Metadata.
//! - There is no `linger.ms`, `batch.size` or `max.request.size`. One `send()` is one
//!   batch, so batch splitting after `MESSAGE_TOO_LARGE` does not exist (that error fails the
//!   batch). A Produce request takes one ready batch from every partition (of its node).
//! - **Fixed retry backoff.** Kafka 3.7+ backs off exponentially up to `retry.backoff.max.ms`
//!   (and between Metadata refreshes, and `reconnect.backoff.ms` up to its max).
//! - **Definite versus possibly persisted** is tracked per batch, as librdkafka's
//!   `NOT_PERSISTED` / `POSSIBLY_PERSISTED`; Java reports only the exception.
//! - **acks = 0** completes batches as soon as they are drained, with offset -1.
//! - No transactions: the transactional branches of every rule are left out.
//!
//! ## Client profiles
//!
//! [`ProducerConfig::client_profile`] chooses the client. [`ClientProfile::Java`], the
//! default, is Kafka's Java client 3.9/4.x exactly: every idempo improvement off, because users
//! study Kafka. [`ClientProfile::Idempo`] turns every improvement on. Each difference has its
//! switch in [`Improvements`] and its pair of behaviour tests in `producer/tests/profiles.rs`
//! (docs/KAFKA-RULES.md Part 2 describes Java's rules):
//!
//! ```text
//! difference            java (Kafka source)                        idempo
//! stale answers after   an answer to an attempt made before the    recognised by the batch's
//! an epoch bump         bump goes to the ordinary rules:           generation: a stale error
//!                       Sender.completeBatch -> canRetry (a stale  is not acted on; a stale
//!                       INVALID_PRODUCER_EPOCH fails the batch),   ack delivers the batch and
//!                       a stale ack completes it and leaves a      moves the later batches
//!                       sequence hole (handleCompletedBatch)       down into its slot
//! unresolved partition  only for an expired batch that was         for any expired batch that
//!                       retried: Sender.sendProducerData,          was sent
//!                       `expiredBatch.inRetry()`
//! expired batch on the  removed from the in-flight set at expiry   kept in the set until its
//! wire                  (TransactionManager.handleFailedBatch ->   request ends, so its own
//!                       removeInFlightBatch); a late ack still     late ack can resolve the
//!                       moves lastAckedSequence, whatever its      partition; learnt from
//!                       epoch (Sender.completeBatch ->             only under the partition's
//!                       handleCompletedBatch)                      epoch
//! producer id reset at  the asking partitions are re-stamped at    re-stamped under the new
//! epoch i16::MAX        once under ProducerIdAndEpoch.NONE         producer id when it
//!                       (TransactionManager.                       arrives
//!                       bumpIdempotentProducerEpoch): their
//!                       retries go out with no producer id
//! blocked partition in  the drain stops at it, and the next drain  skipped; the drain goes on
//! a drain               starts there (RecordAccumulator.           with the other partitions,
//!                       drainBatchesForOneNode: `break`,           from the lowest each time
//!                       nodesDrainIndex)
//! first batch alone     not in Kafka: a partition's second batch   a partition sends one batch
//!                       goes out before the first is acknowledged  until the broker has
//!                                                                  acknowledged one under the
//!                                                                  producer id
//! one leader at a time  a new batch goes to the new leader at      it waits until none of its
//! (cluster routing)     once (drainBatchesForOneNode), while an    partition's batches is on
//!                       older one may still be on the wire to the  the wire to another node
//!                       old leader on another connection
//! ```
//!
//! `first_batch_alone` can also be turned on alone under the java profile
//! ([`ProducerConfig::first_batch_alone`]).
//!
//! Under both profiles sequences are compared wrap-aware at `i32::MAX` (the broker's rule);
//! Java's client compares raw `int`s there (`maybeUpdateLastAckedSequence`, `isNextSequence`),
//! which only matters after 2^31 records on one partition and one epoch.
//!
//! ## Kafka 2.4 and single historical rules of the Java client
//!
//! [`ClientProfile::JavaTwoFour`] is Java's client before KIP-360's safe epoch bump (2.5.0):
//! an `UNKNOWN_PRODUCER_ID` it blames on retention restarts the partition's sequences at 0
//! under the same epoch, and a batch refused for good moves the later ones down into its
//! sequences under the same epoch. Those and the later rules that Kafka releases changed are
//! switches of [`JavaRules`] ([`ProducerConfig::java`]; the [`java_rules`] module has the
//! table, with the versions and JIRAs): `unknown_producer_resets_sequences` and
//! `failed_batch_adjusts_sequences` (up to 2.4.1), `bump_skips_idle_partitions` (2.5.0 to 2.7.x, KAFKA-12152) and
//! `failed_batch_waits_for_in_flight` (KAFKA-14034's proposed fix, not in Kafka).
//!
//! ## librdkafka
//!
//! [`ClientProfile::Librdkafka`] follows librdkafka 2.x where it differs from Java
//! (docs/KAFKA-RULES.md §2.9), each difference a switch of [`LibrdkafkaRules`]
//! ([`ProducerConfig::librdkafka`]; the [`profile_librdkafka`] module has the table, with the
//! librdkafka functions each follows):
//!
//! - `OUT_OF_ORDER_SEQUENCE_NUMBER` for the batch librdkafka expected to be acknowledged next
//!   (or one below it) is a *fatal* error ("sequence desynchronization"); for a batch behind
//!   it, librdkafka drains and bumps the epoch. Java bumps for a real gap and retries a batch
//!   behind it unchanged.
//! - librdkafka's `DRAIN_BUMP` sends nothing while a bump is pending, bumps once no request is
//!   in flight, and then restarts *every* partition's sequences from its first unacknowledged
//!   batch, retries included; Java bumps at once and re-stamps the asking partitions only.
//! - `message.timeout.ms` expires batches in the queues only, and an expiry drains and bumps
//!   the epoch (since 1.0.0, #2163); a retriable error drains the partition before its retries.
//! - Up to 2.2.0 a retriable error of unknown outcome moved `next_ack_seq` past the batch
//!   (#4438, a switch).
//!
//! Not modelled: librdkafka assigns sequences at `produce()` time from a per-partition message
//! id (Java, and this crate, when the batch is first drained); it wraps the epoch to 0 after
//! 32767 (`rd_kafka_pid_bump`; Java, and this crate, ask for a new producer id); its rules for
//! `UNKNOWN_PRODUCER_ID` and InitProducerId errors (Java's apply).
//!
//! Queues are not bounded here (Kafka bounds them with `buffer.memory`): how many batches a
//! caller keeps outstanding is the caller's concern. The event buffer is bounded.

pub mod config;
pub mod delivery;
pub mod event;
pub mod java_rules;
pub mod metadata;
pub mod producer;
pub mod profile_librdkafka;
pub mod stats;

mod accumulator;
mod batch;
mod batch_table;
mod deadlines;
mod in_flight;
mod sequencer;

pub use batch::DeliveryHandle;
pub use config::{
    ClientProfile, ConfigError, Improvements, MAX_IN_FLIGHT_FOR_IDEMPOTENCE, ProducerConfig,
    UnknownClientProfile,
};
pub use delivery::{Delivered, DeliveryError, DeliveryReport, FailureReason};
pub use event::{BumpReason, EVENTS_MAX, MetadataRefreshReason, ProducerEvent};
pub use in_flight::InFlightBatch;
pub use java_rules::JavaRules;
pub use metadata::{LeaderChange, PartitionLeader};
pub use producer::{Outgoing, Producer};
pub use profile_librdkafka::{LibrdkafkaRules, OutOfOrder};
pub use stats::{ProducerStats, RoutingStats};
