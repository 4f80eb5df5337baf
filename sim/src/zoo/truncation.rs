//! KIP-101: a follower that truncates to its high watermark instead of by leader epoch.
//!
//! The rule it explains: a follower's high watermark is not a safe place to cut its log.
//! It learns the HW one fetch late, so records the leader already acknowledged with
//! `acks=all` can sit above it; and after a crash the new leader may hold other records
//! below it. Since Kafka 0.11 (KIP-101) a follower asks where its leader's epochs end and
//! truncates there, which keeps every acknowledged record and makes the logs agree.

use super::entry::Entry;

/// KIP-101: truncation to the high watermark after two quick leader changes.
pub static KIP_101: Entry = Entry {
    id: "KIP-101",
    reference: "KIP-101 (Kafka 0.11.0)",
    component: "broker truncation high-watermark",
    summary: "a follower that truncates to its high watermark on a leader change loses or diverges acknowledged data after two quick failovers",
    story: "Before Kafka 0.11 a replica that became the follower of a new leader cut its log \
            at its own high watermark (ReplicaManager.makeFollowers) and fetched from there, \
            with no epoch in the fetch. A follower learns the high watermark one fetch after \
            the leader moved it, so batches the leader had already acknowledged to an acks=all \
            producer were above the follower's mark and were cut. If the leader then fails \
            before the follower has fetched them again, the controller may elect that \
            follower, in sync and clean, and the acknowledged batches are gone (KIP-101's \
            first scenario); after a crash that lost unsynced records, the mark can also be \
            above what the new leader holds, and the replicas keep different records at the \
            same offsets (its second). KIP-101 stamped each batch with its leader epoch and \
            had the follower truncate where its leader's epochs diverge from its own: \
            --truncation leader-epoch, the default.",
    base: &[
        ("seed", "1"),
        ("producers", "1"),
        ("partitions", "1"),
        ("records", "300"),
        ("batch-records", "10"),
        ("ack-loss", "0"),
        ("request-loss", "0"),
        ("brokers", "3"),
        ("replication-factor", "3"),
        ("min-insync-replicas", "2"),
        ("leader-kills", "6"),
        ("isolations", "1"),
        ("broker-session-timeout-ms", "2000"),
        ("replica-lag-time-max-ms", "500"),
        ("inter-broker-latency-ms", "2..30"),
        ("inter-broker-loss", "0.05"),
    ],
    bug: &[("truncation", "high-watermark")],
    fix: &[("truncation", "leader-epoch")],
    faults: "inter-broker-loss from=0 to=2 message=16
leader-kill after-appends=11 partition=0 tear-bytes=42 down-ms=2479
isolation after-appends=11 broker=1 duration-ms=3109
",
    anomaly: "no lost acknowledged records",
};
