//! Replication entries: acknowledged writes lost when a replica that lacks them is elected.
//!
//! The rule they explain: `acks=all` means "every replica in the ISR has it", so it is only
//! as strong as the ISR is large (`min.insync.replicas`) and as the election is clean
//! (`unclean.leader.election.enable=false`, Kafka's default since 0.11). Idempotence does not
//! help here: the batches are gone from the new leader's log and its producer state, so there
//! is nothing to deduplicate against.

use super::entry::Entry;

/// The cluster both entries run: three brokers, one partition, leader kills and an isolation.
macro_rules! cluster_base {
    ($seed:literal, $min_isr:literal) => {
        &[
            ("seed", $seed),
            ("producers", "1"),
            ("partitions", "1"),
            ("records", "300"),
            ("batch-records", "10"),
            ("ack-loss", "0"),
            ("request-loss", "0"),
            ("brokers", "3"),
            ("replication-factor", "3"),
            ("min-insync-replicas", $min_isr),
            ("leader-kills", "3"),
            ("isolations", "1"),
            ("broker-session-timeout-ms", "2000"),
            ("replica-lag-time-max-ms", "500"),
            ("inter-broker-loss", "0.05"),
        ]
    };
}

/// jepsen-kafka-2013: the ISR shrinks to the leader, which then fails.
pub static JEPSEN_KAFKA_2013: Entry = Entry {
    id: "jepsen-kafka-2013",
    reference: "aphyr.com Jepsen: Kafka (2013)",
    component: "broker min.insync.replicas=1",
    summary: "the ISR shrinks to the leader, then it fails: acknowledged writes lost with min.insync.replicas=1",
    story: "With min.insync.replicas=1 a leader whose followers fell behind shrinks the ISR to \
            itself and goes on acknowledging acks=all writes alone. When it then fails, the \
            controller (with unclean election on, as Kafka 0.8 had it) elects a follower that \
            never had those writes, and the old leader truncates to it when it returns: the \
            acknowledged batches are gone. Jepsen's 2013 analysis found exactly this. The fix \
            is configuration, and Kafka's defaults since 0.11: unclean.leader.election.enable \
            false, and min.insync.replicas=2 with replication.factor=3, so that an \
            acknowledged write is on two replicas and only an in-sync one can lead.",
    base: cluster_base!("7", "1"),
    bug: &[("unclean-leader-election", "on")],
    fix: &[
        ("unclean-leader-election", "off"),
        ("min-insync-replicas", "2"),
    ],
    faults: "isolation after-appends=5 broker=1 duration-ms=1359
leader-kill after-appends=17 partition=0 tear-bytes=28 down-ms=3040
leader-kill after-appends=24 partition=0 tear-bytes=117 down-ms=3028
inter-broker-loss from=1 to=0 message=50
leader-kill after-appends=26 partition=0 tear-bytes=10 down-ms=315
",
    anomaly: "lost by an unclean leader election",
};

/// KAFKA-10751: unclean election loses acknowledged writes even with min.insync.replicas=2.
pub static KAFKA_10751: Entry = Entry {
    id: "KAFKA-10751",
    reference: "KAFKA-10751",
    component: "controller unclean election",
    summary: "an unclean leader election loses acknowledged writes even with acks=all and min.insync.replicas=2",
    story: "min.insync.replicas=2 puts every acknowledged batch on two replicas, but when both \
            are down and unclean election is on, the controller elects the third, out-of-sync \
            replica: it lacks the last acknowledged batches and the producer state that goes \
            with them, and the others truncate to it. KAFKA-10751 works this case (acks=all, \
            min ISR 2, unclean election: the client loses messages). Kafka's rule is to keep \
            unclean.leader.election.enable false (the default since 0.11): the partition is \
            then unavailable until an in-sync replica returns, and nothing acknowledged is \
            lost.",
    base: cluster_base!("62", "2"),
    bug: &[("unclean-leader-election", "on")],
    fix: &[("unclean-leader-election", "off")],
    faults: "leader-kill after-appends=10 partition=0 tear-bytes=42 down-ms=2466
leader-kill after-appends=19 partition=0 tear-bytes=18 down-ms=3905
leader-kill after-appends=30 partition=0 tear-bytes=38 down-ms=671
isolation after-appends=30 broker=0 duration-ms=2905
",
    anomaly: "lost by an unclean leader election",
};
