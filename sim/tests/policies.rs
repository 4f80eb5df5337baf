//! The cells of the policy × scenario matrix that docs/POLICIES.md claims, one test each,
//! named as the behaviour. Each runs the cell over ten seeds; a failure names the cell, the
//! seed and the reason (replay: `idempo-sim policies --policy P --scenario S --store T
//! --seed N --trace`).

use idempo_sim::policies::matrix::{self, Cell};
use idempo_sim::policies::{
    PolicyName as P, ScenarioName as S, StoreName as T, dedup, run, run_one, scenario, store,
};

const SEEDS: u64 = 10;

fn cell(p: P, s: S, t: T) -> Cell {
    matrix::cell(p, s, t, 1, SEEDS)
}

/// Every seed of the cell gives `word` (and `error`, for refused).
fn assert_always(p: P, s: S, t: T, word: &str, error: Option<&str>) -> Cell {
    let c = cell(p, s, t);
    assert_eq!(
        (c.verdict.word(), c.verdict.error(), c.seeds),
        (word, error, SEEDS),
        "{} × {} [{}]: {:?}; seed {}: {}",
        p.name(),
        s.name(),
        t.name(),
        c.tally,
        c.seed,
        c.reason
    );
    c
}

#[test]
fn dedup_window_delivers_a_retry_after_the_window_twice() {
    let c = assert_always(
        P::DedupWindow,
        S::RetryAfterWindow,
        T::MemoryTtl,
        "duplicate",
        None,
    );
    assert!(
        c.reason.contains("300 001 ms after the first arrived"),
        "the reason gives the exact time: {}",
        c.reason
    );
}

#[test]
fn dedup_window_drops_a_retry_inside_the_window() {
    assert_always(
        P::DedupWindow,
        S::LostResponse,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
}

#[test]
fn dedup_window_loses_a_second_message_that_reuses_an_id() {
    assert_always(
        P::DedupWindow,
        S::KeyReuseDifferentParams,
        T::MemoryTtl,
        "lost",
        None,
    );
}

#[test]
fn content_based_deduplication_loses_the_second_of_two_identical_messages() {
    for seed in 1..=SEEDS {
        let mut script = scenario::script(
            S::TwoIntentionalIdentical,
            seed,
            scenario::Window {
                window_ms: dedup::SQS_DEDUP_WINDOW_MS,
                from_handling: false,
            },
        );
        for op in &mut script.ops {
            op.key = None; // no MessageDeduplicationId: the SHA-256 of the body is the id
        }
        let mut server = dedup::DedupWindow::new(store::open(T::MemoryTtl, seed), true);
        let r = run::run(&script, &mut server);
        assert_eq!(r.verdict.word(), "lost", "seed {seed}: {}", r.reason);
    }
}

#[test]
fn content_based_deduplication_from_the_command_line_swaps_the_two_losses() {
    assert_always(
        P::DedupWindowContentBased,
        S::TwoIntentionalIdentical,
        T::MemoryTtl,
        "lost",
        None,
    );
    assert_always(
        P::DedupWindowContentBased,
        S::KeyReuseDifferentParams,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
    for seed in 1..=SEEDS {
        let r = run_one(
            P::DedupWindowContentBased,
            S::TwoIntentionalIdentical,
            T::MemoryTtl,
            seed,
        );
        assert!(
            r.reason.contains("sha256:"),
            "seed {seed}: the id is the body's hash: {}",
            r.reason
        );
    }
}

#[test]
fn idempotency_key_replays_the_saved_response_after_a_lost_response() {
    let c = assert_always(
        P::IdempotencyKey,
        S::LostResponse,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
    assert!(c.reason.contains("replayed"), "{}", c.reason);
}

#[test]
fn idempotency_key_charges_again_after_the_24_hour_window() {
    assert_always(
        P::IdempotencyKey,
        S::RetryAfterWindow,
        T::MemoryTtl,
        "duplicate",
        None,
    );
}

#[test]
fn idempotency_key_refuses_a_concurrent_retry_with_409() {
    assert_always(
        P::IdempotencyKey,
        S::ConcurrentRetry,
        T::MemoryTtl,
        "refused",
        Some("409"),
    );
}

#[test]
fn idempotency_key_refuses_a_reused_key_with_other_parameters_with_400() {
    assert_always(
        P::IdempotencyKey,
        S::KeyReuseDifferentParams,
        T::MemoryTtl,
        "refused",
        Some("400"),
    );
}

#[test]
fn body_hash_key_loses_the_second_of_two_intentional_identical_charges() {
    let c = assert_always(
        P::BodyHashKey,
        S::TwoIntentionalIdentical,
        T::MemoryTtl,
        "lost",
        None,
    );
    assert!(
        c.reason.contains("operation 2 never applied"),
        "{}",
        c.reason
    );
}

#[test]
fn distinct_keys_keep_two_intentional_identical_charges() {
    assert_always(
        P::IdempotencyKey,
        S::TwoIntentionalIdentical,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
}

#[test]
fn memory_ttl_forgets_the_key_on_restart_and_charges_twice() {
    let c = assert_always(
        P::IdempotencyKey,
        S::ServerRestart,
        T::MemoryTtl,
        "duplicate",
        None,
    );
    assert!(
        c.reason.contains("forgotten by the restart"),
        "{}",
        c.reason
    );
}

#[test]
fn db_transactional_keeps_the_key_across_a_restart() {
    assert_always(
        P::IdempotencyKey,
        S::ServerRestart,
        T::DbTransactional,
        "exactly-once",
        None,
    );
}

#[test]
fn db_check_then_insert_races_a_concurrent_retry_into_a_second_charge() {
    assert_always(
        P::IdempotencyKey,
        S::ConcurrentRetry,
        T::DbCheckThenInsert,
        "duplicate",
        None,
    );
}

#[test]
fn a_lock_that_expires_under_a_slow_handler_lets_the_retry_charge_again() {
    assert_always(
        P::IdempotencyKey,
        S::SlowHandler,
        T::MemoryTtl,
        "duplicate",
        None,
    );
}

#[test]
fn db_transactional_rolls_back_the_slow_first_attempt_after_its_lock_was_taken() {
    let r = run_one(P::IdempotencyKey, S::SlowHandler, T::DbTransactional, 1);
    assert_eq!(r.verdict.word(), "exactly-once", "{}", r.reason);
    assert!(
        r.lines
            .iter()
            .any(|l| l.text.contains("transaction rolled back")),
        "the first attempt's transaction is the one rolled back"
    );
    assert_eq!(r.charges, Some(1), "the charges table holds one row");
}

#[test]
fn ietf_idempotency_key_refuses_a_concurrent_retry_with_409() {
    assert_always(
        P::IetfIdempotencyKey,
        S::ConcurrentRetry,
        T::MemoryTtl,
        "refused",
        Some("409"),
    );
}

#[test]
fn ietf_idempotency_key_refuses_a_reused_key_with_a_different_payload_with_422() {
    assert_always(
        P::IetfIdempotencyKey,
        S::KeyReuseDifferentParams,
        T::MemoryTtl,
        "refused",
        Some("422"),
    );
}

#[test]
fn client_token_refuses_other_parameters_with_idempotent_parameter_mismatch() {
    assert_always(
        P::ClientToken,
        S::KeyReuseDifferentParams,
        T::MemoryTtl,
        "refused",
        Some("IdempotentParameterMismatch"),
    );
}

#[test]
fn client_token_answers_a_concurrent_retry_with_the_original_result() {
    assert_always(
        P::ClientToken,
        S::ConcurrentRetry,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
}

#[test]
fn kafka_sequence_recognises_a_retry_after_a_lost_response() {
    let c = assert_always(
        P::KafkaSequence,
        S::LostResponse,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
    assert!(
        c.reason
            .contains("a duplicate, answered NONE with its offset 0"),
        "a retry in the window is answered NONE with the original offset, as Kafka does: {}",
        c.reason
    );
    assert_eq!(c.store, None, "kafka-sequence has no key store");
}

#[test]
fn kafka_sequence_survives_a_broker_restart() {
    assert_always(
        P::KafkaSequence,
        S::ServerRestart,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
}

#[test]
fn kafka_sequence_appends_a_retry_after_the_producer_id_expired() {
    let c = assert_always(
        P::KafkaSequence,
        S::RetryAfterWindow,
        T::MemoryTtl,
        "duplicate",
        None,
    );
    assert!(c.reason.contains("expired"), "{}", c.reason);
}

#[test]
fn pubsub_publishes_a_retry_as_a_new_message() {
    assert_always(P::Pubsub, S::LostResponse, T::MemoryTtl, "duplicate", None);
}

#[test]
fn pubsub_exactly_once_delivery_drops_a_redelivery() {
    assert_always(
        P::Pubsub,
        S::DuplicateDelivery,
        T::MemoryTtl,
        "exactly-once",
        None,
    );
}

#[test]
fn consumer_dedup_processes_a_concurrent_redelivery_twice_in_memory() {
    assert_always(
        P::ConsumerDedup,
        S::ConcurrentRetry,
        T::MemoryTtl,
        "duplicate",
        None,
    );
}

#[test]
fn consumer_dedup_in_the_side_effects_transaction_processes_once() {
    assert_always(
        P::ConsumerDedup,
        S::ConcurrentRetry,
        T::DbTransactional,
        "exactly-once",
        None,
    );
}

#[test]
fn a_replica_that_lags_misses_a_quick_duplicate_for_some_seeds() {
    let c = cell(P::IdempotencyKey, S::DuplicateDelivery, T::ReplicatedCache);
    assert_eq!(c.verdict.word(), "duplicate", "{:?}", c.tally);
    assert!(c.reason.contains("not on the replica yet"), "{}", c.reason);
}

#[test]
fn no_policy_charges_a_retry_twice() {
    assert_always(P::None, S::LostResponse, T::MemoryTtl, "duplicate", None);
}

#[test]
fn a_lost_request_is_applied_once_by_every_policy() {
    for p in P::ALL {
        assert_always(p, S::LostRequest, T::MemoryTtl, "exactly-once", None);
    }
}

#[test]
fn the_matrix_is_the_same_for_the_same_seeds() {
    for t in [T::MemoryTtl, T::DbTransactional, T::ReplicatedCache] {
        let once: Vec<String> = matrix::cells(&P::ALL, &S::ALL, t, 5, 3)
            .iter()
            .map(|c| c.json().to_string())
            .collect();
        let twice: Vec<String> = matrix::cells(&P::ALL, &S::ALL, t, 5, 3)
            .iter()
            .map(|c| c.json().to_string())
            .collect();
        assert_eq!(once, twice, "store {}", t.name());
    }
    let a = run_one(P::IdempotencyKey, S::SlowHandler, T::DbCheckThenInsert, 9);
    let b = run_one(P::IdempotencyKey, S::SlowHandler, T::DbCheckThenInsert, 9);
    assert_eq!(a.lines, b.lines, "the SQLite store replays event by event");
}

#[test]
fn a_cell_json_object_has_the_named_fields() {
    let c = cell(
        P::IetfIdempotencyKey,
        S::KeyReuseDifferentParams,
        T::DbTransactional,
    )
    .json();
    assert_eq!(c["policy"], "ietf-idempotency-key");
    assert_eq!(c["scenario"], "key-reuse-different-params");
    assert_eq!(c["store"], "db-transactional");
    assert_eq!(c["verdict"], "refused");
    assert_eq!(c["error"], "422");
    assert_eq!(c["seeds"], SEEDS);
    assert!(c["reason"].as_str().is_some_and(|r| r.contains(" ms")));
    let k = cell(P::KafkaSequence, S::LostResponse, T::DbTransactional).json();
    assert!(k["store"].is_null() && k["error"].is_null());
}
