//! The controller's rules (Kafka's `ReplicationControlManager` and `PartitionChangeBuilder`),
//! each as a behaviour. proptest failures are saved in
//! `broker/proptest-regressions/controller.txt`.

use idempo_broker::{
    AlterPartition, AlterPartitionError, BrokerId, Controller, ControllerConfig,
    ControllerConfigError, ControllerDecision, ElectLeaderError, ElectionType, LeaderAndIsr,
    NO_LEADER, assign_replicas,
};
use idempo_protocol::ErrorCode;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// A controller for `brokers` brokers, one partition per broker, every partition on every
/// broker up to `replication_factor`.
fn controller(brokers: i32, replication_factor: usize, unclean: bool) -> Controller {
    let config = ControllerConfig {
        brokers,
        partitions: brokers,
        replication_factor,
        unclean_leader_election: unclean,
        ..ControllerConfig::default()
    };
    Controller::new(config, 0).expect("a valid config")
}

/// The leader's proposal for `new_isr`, based on the partition's current epochs.
fn proposal(controller: &Controller, partition: i32, new_isr: Vec<BrokerId>) -> AlterPartition {
    let state = controller.partition(partition);
    AlterPartition {
        partition,
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        new_isr,
    }
}

fn leader_epoch_isr(state: &LeaderAndIsr) -> (BrokerId, i32, Vec<BrokerId>) {
    (state.leader, state.leader_epoch, state.isr.clone())
}

// ---------------------------------------------------------------------------------------
// Configuration and placement
// ---------------------------------------------------------------------------------------

#[test]
fn replication_factor_above_broker_count_is_refused() {
    let config = ControllerConfig {
        brokers: 3,
        replication_factor: 4,
        ..ControllerConfig::default()
    };
    let err = Controller::new(config, 0).expect_err("RF 4 on 3 brokers");
    assert_eq!(
        err,
        ControllerConfigError::ReplicationFactorTooLarge {
            replication_factor: 4,
            brokers: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "replication factor 4 larger than available brokers 3"
    );
}

#[test]
fn zero_replication_factor_no_brokers_no_partitions_and_no_session_are_refused() {
    let base = ControllerConfig {
        brokers: 3,
        partitions: 3,
        replication_factor: 3,
        ..ControllerConfig::default()
    };
    let cases = [
        (
            ControllerConfig {
                replication_factor: 0,
                ..base.clone()
            },
            ControllerConfigError::ReplicationFactorZero,
        ),
        (
            ControllerConfig {
                brokers: 0,
                ..base.clone()
            },
            ControllerConfigError::NoBrokers { brokers: 0 },
        ),
        (
            ControllerConfig {
                partitions: -1,
                ..base.clone()
            },
            ControllerConfigError::NoPartitions { partitions: -1 },
        ),
        (
            ControllerConfig {
                partitions: 0,
                ..base.clone()
            },
            ControllerConfigError::NoPartitions { partitions: 0 },
        ),
        (
            ControllerConfig {
                broker_session_timeout_ms: 0,
                ..base.clone()
            },
            ControllerConfigError::SessionTimeoutNotPositive {
                broker_session_timeout_ms: 0,
            },
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected));
    }
    assert_eq!(base.validate(), Ok(()));
    assert_eq!(ControllerConfig::default().validate(), Ok(()));
}

#[test]
fn assignment_matches_kafkas_rack_unaware_table() {
    // AdminUtils' javadoc table (5 brokers, 10 partitions, RF 3) with start index 0 and
    // replica shift 0: second replicas p4 on broker 0, p0 on 1, ...; and p5..p9 shifted once.
    let replicas = assign_replicas(5, 10, 3);
    let expected: Vec<Vec<BrokerId>> = vec![
        vec![0, 1, 2],
        vec![1, 2, 3],
        vec![2, 3, 4],
        vec![3, 4, 0],
        vec![4, 0, 1],
        vec![0, 2, 3],
        vec![1, 3, 4],
        vec![2, 4, 0],
        vec![3, 0, 1],
        vec![4, 1, 2],
    ];
    assert_eq!(replicas, expected);
}

#[test]
fn assignment_spreads_leaders_and_replicas_evenly_over_brokers() {
    let replicas = assign_replicas(3, 6, 2);
    let mut leaders = [0; 3];
    let mut hosted = [0; 3];
    for list in &replicas {
        leaders[list[0] as usize] += 1;
        for &broker in list {
            hosted[broker as usize] += 1;
        }
    }
    assert_eq!(leaders, [2, 2, 2], "each broker leads the same number");
    assert_eq!(hosted, [4, 4, 4], "each broker hosts the same number");
}

#[test]
fn assignment_shift_wraps_around_every_brokers_minus_one_partitions_rounds() {
    // Kafka's `replicaIndex`: replica j >= 1 is `first + 1 + (shift + j) % (brokers - 1)`.
    // With 3 brokers the step only takes the values 1 and 2, so the third round of
    // partitions (shift 2) repeats the first (shift 0), and no list names a broker twice.
    let replicas = assign_replicas(3, 9, 3);
    let expected: Vec<Vec<BrokerId>> = vec![
        vec![0, 1, 2],
        vec![1, 2, 0],
        vec![2, 0, 1],
        vec![0, 2, 1],
        vec![1, 0, 2],
        vec![2, 1, 0],
        vec![0, 1, 2],
        vec![1, 2, 0],
        vec![2, 0, 1],
    ];
    assert_eq!(replicas, expected);
}

#[test]
fn new_partitions_are_led_by_their_preferred_replica_with_every_replica_in_sync() {
    let c = controller(3, 3, false);
    for (partition, state) in c.partitions().iter().enumerate() {
        assert_eq!(state.partition, partition as i32);
        assert_eq!(
            state.leader, state.replicas[0],
            "the preferred leader leads"
        );
        assert_eq!(state.isr, state.replicas, "every replica starts in sync");
        assert_eq!((state.leader_epoch, state.partition_epoch), (0, 0));
    }
    assert_eq!(c.live_brokers(), vec![0, 1, 2]);
    assert_eq!(c.offline_partitions(), 0);
}

#[test]
fn one_broker_cluster_puts_everything_on_broker_zero() {
    let c = Controller::new(ControllerConfig::default(), 0).expect("the default is valid");
    assert_eq!(
        c.partitions(),
        &[LeaderAndIsr {
            partition: 0,
            leader: 0,
            leader_epoch: 0,
            isr: vec![0],
            replicas: vec![0],
            partition_epoch: 0,
        }]
    );
}

#[test]
fn config_errors_say_what_is_wrong_with_the_number_given() {
    let cases = [
        (
            ControllerConfigError::NoBrokers { brokers: 0 },
            "a cluster needs at least one broker, got 0",
        ),
        (
            ControllerConfigError::NoPartitions { partitions: -2 },
            "a topic needs at least one partition, got -2",
        ),
        (
            ControllerConfigError::ReplicationFactorZero,
            "replication factor must be larger than 0",
        ),
        (
            ControllerConfigError::SessionTimeoutNotPositive {
                broker_session_timeout_ms: -5,
            },
            "broker.session.timeout.ms must be positive, got -5",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn controller_keeps_the_config_it_was_built_with() {
    let config = ControllerConfig {
        brokers: 4,
        partitions: 6,
        replication_factor: 2,
        unclean_leader_election: true,
        broker_session_timeout_ms: 1_234,
    };
    let c = Controller::new(config.clone(), 0).expect("a valid config");
    assert_eq!(c.config(), &config);
    assert_eq!(c.partitions().len(), 6);
    assert_eq!(
        c.partition(5).replicas,
        vec![1, 3],
        "assign_replicas(4, 6, 2)"
    );
}

#[test]
#[should_panic(expected = "partition 3 is not in 0..3")]
fn asking_for_a_partition_outside_the_topic_is_a_caller_bug() {
    let c = controller(3, 3, false);
    let _ = c.partition(3);
}

#[test]
#[should_panic(expected = "broker 3 is not in 0..3")]
fn heartbeat_from_a_broker_outside_the_cluster_is_a_caller_bug() {
    let mut c = controller(3, 3, false);
    let _ = c.heartbeat(3, 0);
}

// ---------------------------------------------------------------------------------------
// Sessions and fencing
// ---------------------------------------------------------------------------------------

#[test]
fn broker_is_fenced_only_after_its_session_timeout_passes() {
    let mut c = controller(3, 3, false);
    for broker in [0, 1, 2] {
        let _ = c.heartbeat(broker, 1_000);
    }
    let _ = c.heartbeat(1, 10_000);
    let _ = c.heartbeat(2, 10_000);
    assert!(c.tick(10_000).is_empty(), "1000 + 9000 is not yet expired");
    assert!(!c.is_fenced(0));
    let decisions = c.tick(10_001);
    assert_eq!(decisions[0], ControllerDecision::BrokerFenced { broker: 0 });
    assert!(c.is_fenced(0));
    assert!(c.tick(10_002).is_empty(), "a fenced broker is fenced once");
    assert_eq!(c.counters().brokers_fenced, 1);
}

#[test]
fn fenced_follower_leaves_the_isr_without_a_leader_epoch_bump() {
    let mut c = controller(3, 3, false);
    // Partition 0 is [0, 1, 2], led by 0; fence follower 2.
    let decisions = c.fence_broker(2);
    let state = c.partition(0).clone();
    assert_eq!(leader_epoch_isr(&state), (0, 0, vec![0, 1]));
    assert_eq!(
        state.partition_epoch, 1,
        "every change bumps the partition epoch"
    );
    assert!(decisions.contains(&ControllerDecision::IsrChanged {
        partition: 0,
        isr: vec![0, 1],
        state,
    }));
    assert_eq!(c.counters().isr_shrinks, 3, "2 was in all three ISRs");
}

#[test]
fn next_session_expiry_is_the_first_instant_tick_fences_someone() {
    let mut c = controller(3, 3, false);
    let _ = c.heartbeat(0, 4_000);
    let _ = c.heartbeat(1, 2_000);
    let _ = c.heartbeat(2, 6_000);
    assert_eq!(
        c.next_session_expiry_ms(),
        Some(11_001),
        "broker 1: 2000 + 9000 + 1"
    );
    assert!(c.tick(11_000).is_empty());
    assert_eq!(
        c.tick(11_001)[0],
        ControllerDecision::BrokerFenced { broker: 1 }
    );
    assert_eq!(c.next_session_expiry_ms(), Some(13_001), "broker 0 next");
    let _ = c.fence_broker(0);
    let _ = c.fence_broker(2);
    assert_eq!(c.next_session_expiry_ms(), None, "nobody left to fence");
}

#[test]
fn late_heartbeat_does_not_move_a_session_back_in_time() {
    let mut c = controller(2, 2, false);
    let _ = c.heartbeat(0, 5_000);
    let _ = c.heartbeat(0, 1_000);
    let _ = c.heartbeat(1, 14_000);
    assert!(
        c.tick(14_000).is_empty(),
        "broker 0's session runs from 5000, not 1000"
    );
    assert_eq!(
        c.tick(14_001)[0],
        ControllerDecision::BrokerFenced { broker: 0 }
    );
}

#[test]
fn every_partition_decision_names_the_state_to_deliver_and_broker_decisions_none() {
    let mut c = controller(3, 3, false);
    let decisions = c.fence_broker(0);
    assert_eq!(decisions.len(), 4, "fenced, then one change per partition");
    assert_eq!(decisions[0].state(), None);
    for (decision, partition) in decisions[1..].iter().zip(0..) {
        assert_eq!(decision.state(), Some(c.partition(partition)));
    }
    let decisions = c.broker_registered(0, 20_000);
    assert_eq!(decisions[0].state(), None, "BrokerUnfenced");
    assert_eq!(c.counters().brokers_unfenced, 1);
}

// ---------------------------------------------------------------------------------------
// Elections
// ---------------------------------------------------------------------------------------

#[test]
fn clean_election_picks_the_first_live_isr_member_in_assignment_order() {
    let mut c = controller(3, 3, false);
    // Partition 0 is [0, 1, 2]. Drop 1 from its ISR, then fail the leader: 2 is the only
    // live ISR member, although 1 comes first in the assignment.
    let shrink = proposal(&c, 0, vec![0, 2]);
    c.alter_partition(&shrink).expect("a current proposal");
    let decisions = c.fence_broker(0);
    let state = c.partition(0).clone();
    assert_eq!(leader_epoch_isr(&state), (2, 1, vec![2]));
    assert!(decisions.contains(&ControllerDecision::Elected {
        partition: 0,
        leader: 2,
        leader_epoch: 1,
        clean: true,
        state,
    }));
    assert_eq!(c.counters().unclean_elections, 0);
}

#[test]
fn leader_failure_elects_the_next_replica_and_bumps_both_epochs() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(0);
    let state = c.partition(0);
    assert_eq!(leader_epoch_isr(state), (1, 1, vec![1, 2]));
    assert_eq!(state.partition_epoch, 1);
    // Partition 2 is [2, 0, 1]: its leader stays, 0 leaves its ISR.
    let state = c.partition(2);
    assert_eq!(leader_epoch_isr(state), (2, 0, vec![2, 1]));
    assert_eq!(c.counters().leader_elections, 1);
}

#[test]
fn last_isr_member_failing_leaves_the_partition_offline_with_that_member_listed() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(1);
    let _ = c.fence_broker(2);
    let decisions = c.fence_broker(0);
    let state = c.partition(0).clone();
    assert_eq!(leader_epoch_isr(&state), (NO_LEADER, 1, vec![0]));
    assert!(decisions.contains(&ControllerDecision::Offline {
        partition: 0,
        state: state.clone()
    }));
    assert_eq!(c.offline_partitions(), 3);
    assert_eq!(c.counters().partitions_gone_offline, 3);
    let metadata = c.metadata();
    assert_eq!(metadata.brokers, Vec::<BrokerId>::new());
    assert_eq!(metadata.controller_id, -1);
    assert_eq!(
        metadata.partitions[0].error_code,
        ErrorCode::LeaderNotAvailable
    );
    assert_eq!(metadata.partitions[0].leader_id, NO_LEADER);
}

#[test]
fn offline_partition_comes_back_only_with_its_last_isr_member() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(1);
    let _ = c.fence_broker(2);
    let _ = c.fence_broker(0);
    // Partition 0 is [0, 1, 2]; its last ISR member was 0. Broker 1 returning is not enough.
    let decisions = c.broker_registered(1, 20_000);
    assert_eq!(c.partition(0).leader, NO_LEADER, "1 is not in the ISR");
    assert!(decisions.contains(&ControllerDecision::BrokerUnfenced { broker: 1 }));
    let epoch_before = c.partition(0).leader_epoch;
    let decisions = c.broker_registered(0, 21_000);
    let state = c.partition(0).clone();
    assert_eq!(leader_epoch_isr(&state), (0, epoch_before + 1, vec![0]));
    assert!(decisions.contains(&ControllerDecision::Elected {
        partition: 0,
        leader: 0,
        leader_epoch: epoch_before + 1,
        clean: true,
        state,
    }));
    assert_eq!(c.counters().unclean_elections, 0);
}

#[test]
fn unclean_election_is_not_held_when_disabled() {
    let mut c = controller(2, 2, false);
    // Partition 0 is [0, 1]: the ISR shrinks to the leader, then the leader dies.
    let shrink = proposal(&c, 0, vec![0]);
    c.alter_partition(&shrink).expect("a current proposal");
    let _ = c.fence_broker(0);
    assert_eq!(
        c.partition(0).leader,
        NO_LEADER,
        "1 is live but out of sync"
    );
    assert_eq!(c.partition(0).isr, vec![0]);
}

#[test]
fn unclean_election_picks_a_live_out_of_sync_replica_when_enabled() {
    let mut c = controller(2, 2, true);
    let shrink = proposal(&c, 0, vec![0]);
    c.alter_partition(&shrink).expect("a current proposal");
    let decisions = c.fence_broker(0);
    let state = c.partition(0).clone();
    assert_eq!(leader_epoch_isr(&state), (1, 1, vec![1]));
    assert!(decisions.contains(&ControllerDecision::Elected {
        partition: 0,
        leader: 1,
        leader_epoch: 1,
        clean: false,
        state,
    }));
    assert_eq!(c.counters().unclean_elections, 1);
    assert_eq!(c.counters().leader_elections, 1);
}

#[test]
fn unclean_election_still_prefers_a_live_isr_member() {
    let mut c = controller(3, 3, true);
    let _ = c.fence_broker(0);
    assert_eq!(leader_epoch_isr(c.partition(0)), (1, 1, vec![1, 2]));
    assert_eq!(c.counters().unclean_elections, 0);
}

#[test]
fn unclean_election_waits_for_any_replica_to_return_when_all_are_down() {
    let mut c = controller(2, 2, true);
    let _ = c.fence_broker(1);
    let _ = c.fence_broker(0);
    // Partition 0 is [0, 1] with ISR [0]: offline. Broker 1 returns first and is elected
    // uncleanly, its ISR forced to itself.
    assert_eq!(c.partition(0).leader, NO_LEADER);
    let decisions = c.broker_registered(1, 30_000);
    assert_eq!(leader_epoch_isr(c.partition(0)), (1, 2, vec![1]));
    assert!(decisions.iter().any(|d| matches!(
        d,
        ControllerDecision::Elected {
            partition: 0,
            clean: false,
            ..
        }
    )));
}

#[test]
fn heartbeat_of_a_fenced_broker_unfences_it_and_elects_it_where_it_can_lead() {
    let mut c = controller(1, 1, false);
    let decisions = c.tick(9_001);
    assert_eq!(
        decisions,
        vec![
            ControllerDecision::BrokerFenced { broker: 0 },
            ControllerDecision::Offline {
                partition: 0,
                state: c.partition(0).clone()
            }
        ]
    );
    let decisions = c.heartbeat(0, 9_500);
    assert_eq!(
        decisions[0],
        ControllerDecision::BrokerUnfenced { broker: 0 }
    );
    assert_eq!(leader_epoch_isr(c.partition(0)), (0, 2, vec![0]));
    assert!(
        c.heartbeat(0, 9_600).is_empty(),
        "a live broker's heartbeat decides nothing"
    );
}

#[test]
fn restart_of_a_live_leader_fences_its_old_incarnation_first() {
    let mut c = controller(3, 3, false);
    // Broker 0 crashes and registers again before its session expired: its partitions must
    // not keep a leader that lost its unsynced tail.
    let decisions = c.broker_registered(0, 1_000);
    assert_eq!(decisions[0], ControllerDecision::BrokerFenced { broker: 0 });
    assert_eq!(
        decisions.last(),
        Some(&ControllerDecision::BrokerUnfenced { broker: 0 })
    );
    assert_eq!(leader_epoch_isr(c.partition(0)), (1, 1, vec![1, 2]));
    assert!(!c.is_fenced(0));
    assert!(
        !c.partition(2).isr.contains(&0),
        "it rejoins ISRs through its leaders, not by registering"
    );
}

#[test]
fn returning_broker_leads_nothing_that_has_a_leader() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(0);
    let decisions = c.broker_registered(0, 20_000);
    assert_eq!(
        decisions,
        vec![ControllerDecision::BrokerUnfenced { broker: 0 }]
    );
    assert_eq!(c.partition(0).leader, 1, "no preferred-leader rebalancing");
}

// ---------------------------------------------------------------------------------------
// Elections on request (ElectLeaders, KIP-460)
// ---------------------------------------------------------------------------------------

#[test]
fn preferred_election_gives_the_leadership_back_once_the_preferred_replica_is_in_sync() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(0);
    let _ = c.broker_registered(0, 20_000);
    assert_eq!(
        c.elect_leader(0, ElectionType::Preferred),
        Err(ElectLeaderError::PreferredLeaderNotAvailable { partition: 0 }),
        "0 has not rejoined the ISR"
    );
    // Broker 1, the leader now, adds 0 back once it caught up.
    let expand = proposal(&c, 0, vec![0, 1, 2]);
    c.alter_partition(&expand).expect("a current proposal");
    let decision = c
        .elect_leader(0, ElectionType::Preferred)
        .expect("0 is a live ISR member");
    assert_eq!(
        decision,
        ControllerDecision::Elected {
            partition: 0,
            leader: 0,
            leader_epoch: 2,
            clean: true,
            state: c.partition(0).clone(),
        }
    );
    assert_eq!(c.partition(0).isr, vec![0, 1, 2], "the ISR is unchanged");
    assert_eq!(
        c.elect_leader(0, ElectionType::Preferred),
        Err(ElectLeaderError::ElectionNotNeeded { partition: 0 })
    );
}

#[test]
fn preferred_election_moves_the_leadership_to_the_preferred_replica_or_nowhere() {
    let mut c = controller(3, 3, false);
    // Partition 0 [0, 1, 2]: 0 fails, then 1: 2 leads alone. Both come back, and 2 adds 1
    // (not 0) back to its ISR.
    let _ = c.fence_broker(0);
    let _ = c.fence_broker(1);
    let _ = c.broker_registered(0, 20_000);
    let _ = c.broker_registered(1, 20_000);
    assert_eq!(leader_epoch_isr(c.partition(0)), (2, 2, vec![2]));
    let expand = proposal(&c, 0, vec![1, 2]);
    c.alter_partition(&expand).expect("a current proposal");
    let before = c.partition(0).clone();
    assert_eq!(
        c.elect_leader(0, ElectionType::Preferred),
        Err(ElectLeaderError::PreferredLeaderNotAvailable { partition: 0 }),
        "1 is a live ISR member but not the preferred replica: 2 keeps leading"
    );
    assert_eq!(c.partition(0), &before, "nothing changes");
}

#[test]
fn unclean_election_on_request_revives_an_offline_partition_even_when_disabled() {
    let mut c = controller(2, 2, false);
    let shrink = proposal(&c, 0, vec![0]);
    c.alter_partition(&shrink).expect("a current proposal");
    let _ = c.fence_broker(0);
    assert_eq!(c.partition(0).leader, NO_LEADER);
    let decision = c
        .elect_leader(0, ElectionType::Unclean)
        .expect("broker 1 is live");
    assert!(matches!(
        decision,
        ControllerDecision::Elected {
            partition: 0,
            leader: 1,
            clean: false,
            ..
        }
    ));
    assert_eq!(c.partition(0).isr, vec![1]);
    assert_eq!(c.counters().unclean_elections, 1);
    assert_eq!(
        c.elect_leader(0, ElectionType::Unclean),
        Err(ElectLeaderError::ElectionNotNeeded { partition: 0 }),
        "it has a leader now"
    );
}

#[test]
fn unclean_election_on_request_fails_when_every_replica_is_fenced() {
    let mut c = controller(2, 2, false);
    let _ = c.fence_broker(1);
    let _ = c.fence_broker(0);
    let err = c
        .elect_leader(0, ElectionType::Unclean)
        .expect_err("no live replica");
    assert_eq!(
        err,
        ElectLeaderError::EligibleLeadersNotAvailable { partition: 0 }
    );
    assert_eq!(
        (err.code(), err.name()),
        (83, "ELIGIBLE_LEADERS_NOT_AVAILABLE")
    );
    assert_eq!(
        err.to_string(),
        "ELIGIBLE_LEADERS_NOT_AVAILABLE (83): no replica of partition 0 is live"
    );
    let err = c
        .elect_leader(5, ElectionType::Preferred)
        .expect_err("2 partitions");
    assert_eq!(
        err.to_string(),
        "UNKNOWN_TOPIC_OR_PARTITION (3): no partition 5"
    );
    assert_eq!(
        ElectLeaderError::ElectionNotNeeded { partition: 1 }.to_string(),
        "ELECTION_NOT_NEEDED (84): partition 1 needs no such election"
    );
    assert_eq!(
        ElectLeaderError::PreferredLeaderNotAvailable { partition: 1 }.to_string(),
        "PREFERRED_LEADER_NOT_AVAILABLE (80): the preferred replica of partition 1 is not a live in-sync replica"
    );
}

#[test]
fn preferred_election_keeps_a_valid_leader_when_the_preferred_replica_is_out_of_sync() {
    let mut c = controller(3, 3, false);
    // Partition 0 [0, 1, 2]: 0 fails, 1 leads; 0 is back but not in sync.
    let _ = c.fence_broker(0);
    let _ = c.broker_registered(0, 20_000);
    let before = c.partition(0).clone();
    let _ = c.elect_leader(0, ElectionType::Preferred);
    assert_eq!(c.partition(0), &before, "nothing changes");
}

// ---------------------------------------------------------------------------------------
// AlterPartition
// ---------------------------------------------------------------------------------------

#[test]
fn isr_expand_from_the_leader_is_applied_with_a_partition_epoch_bump() {
    let mut c = controller(3, 3, false);
    let shrink = proposal(&c, 0, vec![0, 1]);
    c.alter_partition(&shrink).expect("a current proposal");
    // Proposed out of order: the ISR is kept in assignment order.
    let expand = proposal(&c, 0, vec![2, 1, 0]);
    let state = c.alter_partition(&expand).expect("a current proposal");
    assert_eq!(leader_epoch_isr(&state), (0, 0, vec![0, 1, 2]));
    assert_eq!(state.partition_epoch, 2);
    assert_eq!(&state, c.partition(0));
    assert_eq!((c.counters().isr_shrinks, c.counters().isr_expands), (1, 1));
}

#[test]
fn unchanged_isr_is_acknowledged_without_an_epoch_bump() {
    let mut c = controller(3, 3, false);
    let same = proposal(&c, 0, vec![0, 1, 2]);
    let state = c.alter_partition(&same).expect("a current proposal");
    assert_eq!(state.partition_epoch, 0);
}

#[test]
fn stale_partition_epoch_is_invalid_update_version() {
    let mut c = controller(3, 3, false);
    let stale = proposal(&c, 0, vec![0, 1]);
    // The controller changes the ISR itself (fencing follower 2) before the proposal lands.
    let _ = c.fence_broker(2);
    let err = c
        .alter_partition(&stale)
        .expect_err("based on partition epoch 0");
    assert_eq!(
        err,
        AlterPartitionError::InvalidUpdateVersion {
            request_partition_epoch: 0,
            partition_epoch: 1
        }
    );
    assert_eq!((err.code(), err.name()), (95, "INVALID_UPDATE_VERSION"));
}

#[test]
fn deposed_leader_is_fenced_leader_epoch() {
    let mut c = controller(3, 3, false);
    let stale = proposal(&c, 0, vec![0, 1]);
    let _ = c.fence_broker(0);
    let _ = c.broker_registered(0, 20_000);
    let err = c
        .alter_partition(&stale)
        .expect_err("leader epoch 0 is over");
    assert_eq!(
        err,
        AlterPartitionError::FencedLeaderEpoch {
            request_leader_epoch: 0,
            leader_epoch: 1
        }
    );
    assert_eq!(err.code(), 74);
    assert_eq!(
        err.to_string(),
        "FENCED_LEADER_EPOCH (74): leader epoch 0 is older than the current 1"
    );
    assert_eq!(c.partition(0).isr, vec![1, 2], "nothing changed");
}

#[test]
fn proposal_from_a_follower_is_invalid_request() {
    let mut c = controller(3, 3, false);
    let mut request = proposal(&c, 0, vec![0, 1]);
    request.leader = 1;
    let err = c.alter_partition(&request).expect_err("1 does not lead");
    assert_eq!(
        err,
        AlterPartitionError::NotLeader {
            broker: 1,
            leader: 0
        }
    );
    assert_eq!((err.code(), err.name()), (42, "INVALID_REQUEST"));
}

#[test]
fn proposal_ahead_of_the_controller_is_not_controller() {
    let mut c = controller(3, 3, false);
    let mut request = proposal(&c, 0, vec![0, 1]);
    request.partition_epoch = 5;
    let err = c.alter_partition(&request).expect_err("ahead");
    assert_eq!(err.code(), 41);
    assert!(matches!(err, AlterPartitionError::NotController { .. }));
}

#[test]
fn isr_of_unassigned_duplicate_or_no_replicas_is_invalid_request() {
    let mut c = controller(3, 2, false);
    // Partition 0 is [0, 1].
    for new_isr in [vec![0, 2], vec![0, 0], vec![]] {
        let request = proposal(&c, 0, new_isr.clone());
        let err = c
            .alter_partition(&request)
            .expect_err("not a set of replicas");
        assert_eq!(err, AlterPartitionError::InvalidIsr { new_isr });
        assert_eq!(err.code(), 42);
    }
}

#[test]
fn isr_without_its_leader_is_invalid_request() {
    let mut c = controller(3, 3, false);
    let request = proposal(&c, 0, vec![1, 2]);
    let err = c
        .alter_partition(&request)
        .expect_err("leaves out leader 0");
    assert_eq!(
        err,
        AlterPartitionError::IsrWithoutLeader {
            new_isr: vec![1, 2]
        }
    );
}

#[test]
fn fenced_replica_in_the_new_isr_is_ineligible_replica() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(2);
    let request = proposal(&c, 0, vec![0, 1, 2]);
    let err = c.alter_partition(&request).expect_err("2 is fenced");
    assert_eq!(err, AlterPartitionError::IneligibleReplica { replica: 2 });
    assert_eq!((err.code(), err.name()), (107, "INELIGIBLE_REPLICA"));
}

#[test]
fn unknown_partition_is_unknown_topic_or_partition() {
    let mut c = controller(3, 3, false);
    let mut request = proposal(&c, 0, vec![0]);
    request.partition = 7;
    let err = c.alter_partition(&request).expect_err("3 partitions");
    assert_eq!(
        err,
        AlterPartitionError::UnknownTopicOrPartition { partition: 7 }
    );
    assert_eq!(err.code(), 3);
}

#[test]
fn every_refusal_carries_kafkas_name_and_code_in_its_message() {
    let cases = [
        (
            AlterPartitionError::UnknownTopicOrPartition { partition: 9 },
            "UNKNOWN_TOPIC_OR_PARTITION (3): no partition 9",
        ),
        (
            AlterPartitionError::NotController {
                request_leader_epoch: 4,
                request_partition_epoch: 7,
            },
            "NOT_CONTROLLER (41): leader epoch 4 / partition epoch 7 are ahead of the controller",
        ),
        (
            AlterPartitionError::NotLeader {
                broker: 2,
                leader: 1,
            },
            "INVALID_REQUEST (42): broker 2 is not the leader (the leader is 1)",
        ),
        (
            AlterPartitionError::InvalidUpdateVersion {
                request_partition_epoch: 1,
                partition_epoch: 2,
            },
            "INVALID_UPDATE_VERSION (95): partition epoch 1 is older than the current 2",
        ),
        (
            AlterPartitionError::InvalidIsr {
                new_isr: vec![0, 0],
            },
            "INVALID_REQUEST (42): ISR [0, 0] is not a set of assigned replicas",
        ),
        (
            AlterPartitionError::IsrWithoutLeader { new_isr: vec![1] },
            "INVALID_REQUEST (42): ISR [1] does not include the leader",
        ),
        (
            AlterPartitionError::IneligibleReplica { replica: 2 },
            "INELIGIBLE_REPLICA (107): replica 2 is fenced",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

// ---------------------------------------------------------------------------------------
// Metadata and producer ids
// ---------------------------------------------------------------------------------------

#[test]
fn metadata_shows_live_brokers_leaders_and_epochs() {
    let mut c = controller(3, 3, false);
    let _ = c.fence_broker(0);
    let metadata = c.metadata();
    assert_eq!(metadata.brokers, vec![1, 2]);
    assert_eq!(metadata.controller_id, 1);
    let p0 = &metadata.partitions[0];
    assert_eq!(p0.error_code, ErrorCode::None);
    assert_eq!((p0.partition, p0.leader_id, p0.leader_epoch), (0, 1, 1));
    assert_eq!(p0.replica_nodes, vec![0, 1, 2], "replicas are not filtered");
    assert_eq!(p0.isr_nodes, vec![1, 2]);
}

#[test]
fn producer_id_blocks_never_overlap_across_brokers() {
    let mut c = controller(3, 3, false);
    let a = c.allocate_producer_ids(0);
    let b = c.allocate_producer_ids(1);
    let a2 = c.allocate_producer_ids(0);
    assert_eq!(a, (1, 1000));
    assert_eq!(b, (1001, 1000));
    assert_eq!(a2, (2001, 1000));
}

// ---------------------------------------------------------------------------------------
// A restarted controller without a metadata log
// ---------------------------------------------------------------------------------------

#[test]
fn restored_leader_epoch_is_never_handed_out_again() {
    // A controller restarted with no metadata log starts every partition at epoch 0; the
    // replicas' logs already hold epoch 4. Restoring it raises both epochs to 4, so the next
    // election hands out 5, never an epoch a replica has seen.
    let mut c = controller(3, 3, false);
    let restored = c
        .restore_leader_epoch(1, 4)
        .expect("epoch 0 is below 4: the state changed");
    assert_eq!((restored.leader_epoch, restored.partition_epoch), (4, 4));
    assert_eq!(
        &restored,
        c.partition(1),
        "the state to deliver is the stored one"
    );
    assert_eq!(
        c.partition(0).leader_epoch,
        0,
        "other partitions are untouched"
    );
    let _ = c.fence_broker(c.partition(1).leader);
    assert_eq!(
        c.partition(1).leader_epoch,
        5,
        "the next election follows 4"
    );
}

#[test]
fn restoring_an_epoch_the_controller_already_has_changes_nothing() {
    let mut c = controller(3, 3, false);
    let _ = c.restore_leader_epoch(0, 3);
    assert_eq!(
        c.restore_leader_epoch(0, 3),
        None,
        "equal: nothing to deliver"
    );
    assert_eq!(
        c.restore_leader_epoch(0, 2),
        None,
        "lower: never moves back"
    );
    assert_eq!(c.partition(0).leader_epoch, 3);
}

#[test]
fn restoring_keeps_a_partition_epoch_already_above_the_leader_epoch() {
    // ISR changes bump the partition epoch alone; a restore raises the leader epoch without
    // lowering a partition epoch that is already higher.
    let mut c = controller(3, 3, false);
    for _ in 0..3 {
        let isr = c.partition(0).isr.clone();
        let shrunk: Vec<BrokerId> = isr[..isr.len() - 1].to_vec();
        let _ = c.alter_partition(&proposal(&c, 0, shrunk));
        let _ = c.alter_partition(&proposal(&c, 0, isr));
    }
    let before = c.partition(0).partition_epoch;
    assert!(
        before > 2,
        "the ISR changes bumped the partition epoch to {before}"
    );
    let restored = c
        .restore_leader_epoch(0, 2)
        .expect("leader epoch 0 is below 2");
    assert_eq!(
        (restored.leader_epoch, restored.partition_epoch),
        (2, before)
    );
}

#[test]
#[should_panic(expected = "partition 7 does not exist")]
fn restoring_a_partition_outside_the_topic_is_a_caller_bug() {
    let mut c = controller(3, 3, false);
    let _ = c.restore_leader_epoch(7, 1);
}

// ---------------------------------------------------------------------------------------
// Properties over random failure schedules
// ---------------------------------------------------------------------------------------

/// One step of a random schedule: fence, register or heartbeat a broker, or have a
/// partition's leader propose an ISR drawn from the replicas.
#[derive(Clone, Debug)]
enum Step {
    Fence(i32),
    Register(i32),
    Heartbeat(i32),
    Propose { partition: i32, keep: Vec<bool> },
    Elect { partition: i32, unclean: bool },
}

fn step(brokers: i32) -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..brokers).prop_map(Step::Fence),
        (0..brokers).prop_map(Step::Register),
        (0..brokers).prop_map(Step::Heartbeat),
        (0..brokers, proptest::collection::vec(any::<bool>(), 5))
            .prop_map(|(partition, keep)| Step::Propose { partition, keep }),
        (0..brokers, any::<bool>())
            .prop_map(|(partition, unclean)| Step::Elect { partition, unclean }),
    ]
}

fn run_step(c: &mut Controller, step: &Step, now_ms: i64) {
    match step {
        Step::Fence(b) => drop(c.fence_broker(*b)),
        Step::Register(b) => drop(c.broker_registered(*b, now_ms)),
        Step::Heartbeat(b) => drop(c.heartbeat(*b, now_ms)),
        Step::Propose { partition, keep } => {
            let state = c.partition(*partition).clone();
            let new_isr = state
                .replicas
                .iter()
                .zip(keep)
                .filter(|&(&r, &k)| k || r == state.leader)
                .map(|(&r, _)| r)
                .collect();
            let _ = c.alter_partition(&proposal(c, *partition, new_isr));
        }
        Step::Elect { partition, unclean } => {
            let election = if *unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            let _ = c.elect_leader(*partition, election);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: idempo_testkit::proptest_cases(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/controller.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// For any cluster shape, every partition `p` gets `replication_factor` distinct brokers
    /// of `0..brokers`, the first of them broker `p % brokers`.
    #[test]
    fn every_assignment_places_distinct_replicas_led_round_robin(
        brokers in 1..=7i32,
        partitions in 1..=40i32,
        rf_pick in 0..7usize,
    ) {
        let replication_factor = 1 + rf_pick % brokers as usize;
        let replicas = assign_replicas(brokers, partitions, replication_factor);
        prop_assert_eq!(replicas.len(), partitions as usize);
        for (list, partition) in replicas.iter().zip(0..) {
            prop_assert_eq!(list.len(), replication_factor);
            prop_assert_eq!(list[0], partition % brokers);
            prop_assert!(list.iter().all(|b| (0..brokers).contains(b)), "{list:?}");
            prop_assert!(
                list.iter().enumerate().all(|(i, b)| !list[..i].contains(b)),
                "partition {partition} names a broker twice: {list:?}"
            );
        }
    }

    /// Under any schedule of fencings, restarts, heartbeats, ISR proposals and elections on
    /// request, every partition keeps the controller's invariants: a non-empty ISR of
    /// distinct assigned replicas; with a leader, a leader in the ISR and only live brokers
    /// in it; without one, a single fenced last member (and, with unclean election, no live
    /// replica at all); epochs that never go back, every change bumping the partition epoch,
    /// every leader change the leader epoch and no AlterPartition the leader epoch; and a
    /// clean controller never counts an unclean election unless one was asked for.
    #[test]
    fn every_schedule_keeps_the_partition_invariants(
        brokers in 1..=5i32,
        rf_pick in 0..5usize,
        unclean in any::<bool>(),
        steps in proptest::collection::vec(step(5), 0..60),
    ) {
        let replication_factor = 1 + rf_pick % brokers as usize;
        let mut c = controller(brokers, replication_factor, unclean);
        let mut asked_unclean = false;
        for (i, s) in steps.iter().enumerate() {
            let s = match s {
                Step::Fence(b) => Step::Fence(b % brokers),
                Step::Register(b) => Step::Register(b % brokers),
                Step::Heartbeat(b) => Step::Heartbeat(b % brokers),
                Step::Propose { partition, keep } => Step::Propose { partition: partition % brokers, keep: keep.clone() },
                Step::Elect { partition, unclean } => Step::Elect { partition: partition % brokers, unclean: *unclean },
            };
            asked_unclean |= matches!(s, Step::Elect { unclean: true, .. });
            let before: Vec<LeaderAndIsr> = c.partitions().to_vec();
            run_step(&mut c, &s, i as i64);
            for (old, new) in before.iter().zip(c.partitions()) {
                prop_assert!(!new.isr.is_empty(), "ISR never empty: {new:?}");
                prop_assert!(new.isr.iter().all(|r| new.replicas.contains(r)));
                prop_assert!(new.isr.iter().enumerate().all(|(i, r)| !new.isr[..i].contains(r)));
                if new.leader == NO_LEADER {
                    prop_assert!(new.isr.len() == 1 && c.is_fenced(new.isr[0]), "offline keeps its last, fenced, ISR member: {new:?}");
                    if unclean {
                        prop_assert!(new.replicas.iter().all(|&r| c.is_fenced(r)), "unclean: offline with a live replica: {new:?}");
                    }
                } else {
                    prop_assert!(new.isr.contains(&new.leader), "leader outside the ISR: {new:?}");
                    prop_assert!(new.isr.iter().all(|&r| !c.is_fenced(r)), "fenced ISR member beside a leader: {new:?}");
                }
                prop_assert!(new.partition_epoch >= old.partition_epoch);
                prop_assert!(new.leader_epoch >= old.leader_epoch);
                if new.leader != old.leader {
                    prop_assert!(new.leader_epoch > old.leader_epoch, "a leader change without a leader epoch bump");
                }
                if matches!(s, Step::Propose { .. }) {
                    prop_assert_eq!(new.leader_epoch, old.leader_epoch, "an ISR change keeps the leader epoch");
                }
                if new != old {
                    prop_assert!(new.partition_epoch > old.partition_epoch, "a change without a partition epoch bump");
                }
            }
        }
        if !unclean && !asked_unclean {
            prop_assert_eq!(c.counters().unclean_elections, 0);
        }
    }

    /// With clean election only (and no unclean election asked for), a leader is always a
    /// replica that was in the ISR just before it was elected: no election ever picks an
    /// out-of-sync replica.
    #[test]
    fn clean_elections_only_pick_isr_members(
        brokers in 2..=5i32,
        steps in proptest::collection::vec(step(5), 0..60),
    ) {
        let mut c = controller(brokers, brokers as usize, false);
        for (i, s) in steps.iter().enumerate() {
            let s = match s {
                Step::Fence(b) => Step::Fence(b % brokers),
                Step::Register(b) => Step::Register(b % brokers),
                Step::Heartbeat(b) => Step::Heartbeat(b % brokers),
                Step::Propose { partition, keep } => Step::Propose { partition: partition % brokers, keep: keep.clone() },
                Step::Elect { partition, .. } => Step::Elect { partition: partition % brokers, unclean: false },
            };
            let before: Vec<LeaderAndIsr> = c.partitions().to_vec();
            run_step(&mut c, &s, i as i64);
            for (old, new) in before.iter().zip(c.partitions()) {
                if new.leader != old.leader && new.leader != NO_LEADER {
                    prop_assert!(old.isr.contains(&new.leader), "elected {} outside ISR {:?}", new.leader, old.isr);
                }
            }
        }
    }
}
