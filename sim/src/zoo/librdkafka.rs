//! Entries of the librdkafka client profile: librdkafka's own idempotence rules, which judge an
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` against the sequence the client expects to be acknowledged
//! next (`next_ack_seq`, see `idempo_producer::profile_librdkafka`).
//!
//! The rule they explain: a client must know which of its batches the broker may have
//! written. librdkafka makes a refusal of the batch it expected next fatal, so whatever moves
//! `next_ack_seq` wrongly (a message timeout that leaves a gap, a possibly persisted batch
//! counted as written) kills the producer; and its epoch bump re-sequences every partition,
//! so a bump taken for a harmless refusal writes possibly persisted batches twice.

use super::entry::Entry;

/// librdkafka-2163: a message timeout leaves a gap, the batches behind it go out.
pub static LIBRDKAFKA_2163: Entry = Entry {
    id: "librdkafka-2163",
    reference: "librdkafka #2163 (fixed in 1.0.0)",
    component: "client profile librdkafka, librdkafka-timeout-bump",
    summary: "a hung broker, request timeouts and message.timeout.ms expiring one message while later ones are sent: a fatal OUT_OF_ORDER_SEQUENCE_NUMBER",
    story: "STORY",
    base: &[
        ("seed", "3"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "600"),
        ("batch-records", "10"),
        ("max-in-flight", "1"),
        ("ack-loss", "0"),
        ("request-loss", "0.05"),
        ("delivery-timeout-ms", "400"),
        ("client-profile", "librdkafka"),
        ("librdkafka-possibly-persisted-ack", "on"),
    ],
    bug: &[("librdkafka-timeout-bump", "off")],
    fix: &[("librdkafka-timeout-bump", "on")],
    faults: "request-loss producer=0 batch=6 attempt=1\nrequest-loss producer=0 batch=8 attempt=1\n",
    anomaly: "no fatal producer error",
};

/// librdkafka-4438: a possibly persisted batch counted as persisted.
pub static LIBRDKAFKA_4438: Entry = Entry {
    id: "librdkafka-4438",
    reference: "librdkafka #4438 (fixed in 2.3.0)",
    component: "client profile librdkafka, librdkafka-possibly-persisted-ack",
    summary: "a \"possibly persisted\" batch treated as persisted advanced the expected sequence: a fatal desynchronisation",
    story: "STORY",
    base: &[
        ("seed", "14"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "200"),
        ("batch-records", "10"),
        ("ack-loss", "0"),
        ("request-loss", "0.1"),
        ("corrupt", "0.1"),
        ("latency-ms", "5..5"),
        ("client-profile", "librdkafka"),
        ("first-batch-alone", "on"),
        ("librdkafka-out-of-order-bump", "off"),
    ],
    bug: &[("librdkafka-possibly-persisted-ack", "on")],
    fix: &[("librdkafka-possibly-persisted-ack", "off")],
    faults: "request-loss producer=0 batch=5 attempt=1\ncorrupt producer=0 batch=1 attempt=2\n",
    anomaly: "no fatal producer error",
};

/// librdkafka-4953: a harmless refusal behind a leader change bumps the epoch.
pub static LIBRDKAFKA_4953: Entry = Entry {
    id: "librdkafka-4953",
    reference: "librdkafka #4953 (open; PR #4972 proposes the fix)",
    component: "client profile librdkafka, librdkafka-out-of-order-bump",
    summary: "NOT_LEADER_OR_FOLLOWER on the first request during a leader change, then OUT_OF_ORDER_SEQUENCE_NUMBER on the next ones, an epoch bump and duplicates",
    story: "STORY",
    base: &[
        ("seed", "61"),
        ("producers", "1"),
        ("partitions", "2"),
        ("records", "300"),
        ("batch-records", "10"),
        ("ack-loss", "0.05"),
        ("request-loss", "0"),
        ("brokers", "3"),
        ("replication-factor", "3"),
        ("min-insync-replicas", "2"),
        ("leader-kills", "2"),
        ("broker-session-timeout-ms", "2000"),
        ("replica-lag-time-max-ms", "500"),
        ("client-profile", "librdkafka"),
    ],
    bug: &[("librdkafka-out-of-order-bump", "on")],
    fix: &[("librdkafka-out-of-order-bump", "off")],
    faults: "leader-kill after-appends=12 partition=1 tear-bytes=68 down-ms=2629\nleader-kill after-appends=16 partition=0 tear-bytes=21 down-ms=2610\nack-loss producer=0 batch=17 attempt=14\n",
    anomaly: "no duplicates",
};
