//! KIP-854: producer-id explosion, clients that create a producer per message.
//!
//! The rule it explains: a broker keeps a producer's state until `producer.id.expiration.ms`
//! after its last batch (a day by default, KIP-854 in Kafka 3.4, KAFKA-14097; before it,
//! `transactional.id.expiration.ms`, a week), because a retry may come from it at any time
//! until then. Kafka bounds that state by time only, so a client that creates a new
//! producer for every message leaves one entry per message behind: the broker's producer
//! state grows with the message rate times the expiration, until memory runs out. idempo's
//! `--max-producer-ids-per-partition` (beyond Kafka) bounds the count and evicts the producer
//! whose last batch is the oldest (an expired one first), which is never a live one while the
//! bound is above the producer ids created within a retry's reach.

use super::entry::Entry;

/// KIP-854: producer state grows with the producers created until the memory budget runs out.
pub static KIP_854: Entry = Entry {
    id: "KIP-854",
    reference: "KIP-854 (Kafka 3.4), idempo bound beyond Kafka",
    component: "broker max-producer-ids-per-partition",
    summary: "clients creating a producer per message grow the broker's producer state until memory runs out; a bound on producer ids keeps it flat",
    story: "Every idempotent producer gets a producer id from InitProducerId, and every \
            partition it writes keeps an entry for that id (its epoch and last five batches) \
            until producer.id.expiration.ms after its last batch, a day by default. A client \
            that creates a producer for each message never reuses one: each message leaves \
            one more entry, so the broker holds as many producer ids as messages sent in the \
            last day, times the partitions each wrote to. KIP-854 (KAFKA-14097, Kafka 3.4) \
            names this risk of running brokers out of memory and answered with a separate \
            producer.id.expiration.ms (a day, where transactional.id.expiration.ms had kept \
            it a week); KIP-847 added the ProducerIdCount metric to watch it, and KIP-936, \
            a quota on new producer ids, is still under discussion. Time bounds the state, \
            not memory. Here the run gives the broker room for 60 \
            producer ids; 100 producers, one batch each, overflow it with Kafka's rule. \
            idempo's --max-producer-ids-per-partition 40 (beyond Kafka) keeps at most 40 \
            per partition and evicts the one whose last batch is oldest: expired producers \
            go first, and a live producer, whose last batch is recent, keeps its state, so \
            its retries are still deduplicated. The bound must exceed the producer ids \
            created within a retry's reach: at 10 here, a producer whose ack was lost was \
            evicted by the ids created behind it before its retry came, and the retry was \
            written again (on 7 of 100 seeds).",
    base: &[
        ("seed", "1"),
        ("producers", "4"),
        ("partitions", "1"),
        ("records", "250"),
        ("batch-records", "10"),
        ("ack-loss", "0.1"),
        ("request-loss", "0.1"),
        ("producer-per-batch", "on"),
        ("producer-state-budget", "60"),
    ],
    bug: &[("max-producer-ids-per-partition", "off")],
    fix: &[("max-producer-ids-per-partition", "40")],
    faults: "",
    anomaly: "producer state within its memory budget",
};
