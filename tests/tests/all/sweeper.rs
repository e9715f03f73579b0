//! The sweeper on real Redis and PostgreSQL: it abandons exactly the active
//! tests left idle past the limit whose live state is gone, and nothing when
//! Redis cannot be asked.

use std::time::Duration;

use axum::http::StatusCode;
use lectern::services::sweep::{self, SweepReport};
use lectern_tests::{DEAD_REDIS_URL, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// Starts a test (at most `max_items` items); returns its id and first question.
async fn start(env: &TestEnv, pool: Uuid, max_items: u32) -> (Uuid, Value) {
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool,
                    "config": { "max_items": max_items, "min_items": max_items, "se_target": null } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.body["test_id"].as_str().unwrap().parse().unwrap();
    (id, started.body["question"].clone())
}

/// Makes tests look untouched for `minutes`.
async fn age(env: &TestEnv, tests: &[Uuid], minutes: i32) {
    let updated = env
        .sql()
        .await
        .execute(
            "UPDATE test_sessions SET updated_at = now() - make_interval(mins => $2)
             WHERE id = ANY($1)",
            &[&tests, &minutes],
        )
        .await
        .unwrap();
    assert_eq!(updated, tests.len() as u64);
}

/// Sets an administrator's keep-alive `minutes` from now (in the past when negative).
async fn keep(env: &TestEnv, test: Uuid, minutes: i32) {
    env.sql()
        .await
        .execute(
            "UPDATE test_sessions SET keep_until = now() + make_interval(mins => $2) WHERE id = $1",
            &[&test, &minutes],
        )
        .await
        .unwrap();
}

fn state_key(env: &TestEnv, test: Uuid) -> String {
    env.app.redis().keys().test_state(test)
}

/// Deletes a test's live state, as an expired TTL or an eviction would.
async fn drop_state(env: &TestEnv, test: Uuid) {
    let deleted: i64 = redis::cmd("DEL")
        .arg(state_key(env, test))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "test {test} had a live state");
}

async fn has_state(env: &TestEnv, test: Uuid) -> bool {
    redis::cmd("EXISTS")
        .arg(state_key(env, test))
        .query_async(&mut env.redis().await)
        .await
        .unwrap()
}

async fn status(env: &TestEnv, test: Uuid) -> String {
    env.sql()
        .await
        .query_one("SELECT status FROM test_sessions WHERE id = $1", &[&test])
        .await
        .unwrap()
        .get(0)
}

/// Seconds since the test's row last changed.
async fn idle_secs(env: &TestEnv, test: Uuid) -> f64 {
    env.sql()
        .await
        .query_one(
            "SELECT extract(epoch FROM now() - updated_at)::float8 FROM test_sessions WHERE id = $1",
            &[&test],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn abandons_exactly_the_idle_tests_whose_state_is_gone() {
    let env = TestEnv::new().await;
    assert_eq!(env.app.config().test_idle_limit, Duration::from_secs(1800));
    let pool = env.demo_pool(40).await;

    // Idle for 2 hours, state gone: abandoned, with or without answers.
    let (answered, question) = start(&env, pool, 5).await;
    let resp = env.answer(&answered.to_string(), &question, true).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let answered_next = resp.body["next_question"].clone();
    let (unanswered, _) = start(&env, pool, 5).await;
    // A keep-alive that has run out protects nothing.
    let (keep_expired, _) = start(&env, pool, 5).await;
    keep(&env, keep_expired, -1).await;
    // Left alone: state still in Redis; kept by an administrator; idle for less than the limit.
    let (live, live_question) = start(&env, pool, 5).await;
    let (kept, _) = start(&env, pool, 5).await;
    keep(&env, kept, 60).await;
    let (almost, _) = start(&env, pool, 5).await;
    let (recent, _) = start(&env, pool, 5).await;
    // Not active: never the sweeper's.
    let (completed, question) = start(&env, pool, 1).await;
    let done = env.answer(&completed.to_string(), &question, false).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let (ended, _) = start(&env, pool, 5).await;
    let end = env.post(&format!("/v1/tests/{ended}/end"), json!({})).await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);

    age(
        &env,
        &[
            answered,
            unanswered,
            keep_expired,
            live,
            kept,
            completed,
            ended,
        ],
        120,
    )
    .await;
    age(&env, &[almost], 29).await;
    for test in [
        answered,
        unanswered,
        keep_expired,
        kept,
        almost,
        recent,
        completed,
    ] {
        if has_state(&env, test).await {
            drop_state(&env, test).await;
        }
    }
    assert!(has_state(&env, live).await);

    let report = sweep::sweep(&env.app).await.expect("sweep");
    // Candidates: the four active tests idle past the limit and not kept; `live` still has its state.
    assert_eq!(
        report,
        SweepReport {
            checked: 4,
            abandoned: 3,
            batches: 1,
            timed_out: 0,
            sessions_deleted: 0,
            audit_partitions_made: 0,
            audit_partitions_dropped: 0,
            erasures_finished: 0,
            tutoring_abandoned: 0
        }
    );
    for test in [answered, unanswered, keep_expired] {
        assert_eq!(status(&env, test).await, "abandoned", "{test}");
        assert!(
            idle_secs(&env, test).await < 60.0,
            "abandoning touches updated_at"
        );
    }
    for test in [live, kept, almost, recent] {
        assert_eq!(status(&env, test).await, "active", "{test}");
    }
    assert_eq!(status(&env, completed).await, "completed");
    assert_eq!(status(&env, ended).await, "ended");
    assert!(
        idle_secs(&env, completed).await > 7000.0,
        "completed untouched"
    );
    assert!(idle_secs(&env, ended).await > 7000.0, "ended untouched");

    // A second sweep finds only the live one again, and changes nothing.
    assert_eq!(
        sweep::sweep(&env.app).await.unwrap(),
        SweepReport {
            checked: 1,
            abandoned: 0,
            batches: 1,
            timed_out: 0,
            sessions_deleted: 0,
            audit_partitions_made: 0,
            audit_partitions_dropped: 0,
            erasures_finished: 0,
            tutoring_abandoned: 0
        }
    );

    // An abandoned test takes no more answers, serves no question and cannot be ended.
    let submit = env
        .answer(&answered.to_string(), &answered_next, true)
        .await;
    submit.problem(409);
    assert_eq!(submit.slug(), "test-not-active", "{}", submit.body);
    let next = env.get(&format!("/v1/tests/{answered}/next")).await;
    next.problem(409);
    assert_eq!(next.slug(), "test-not-active");
    let end = env
        .post(&format!("/v1/tests/{unanswered}/end"), json!({}))
        .await;
    end.problem(409);
    assert_eq!(end.slug(), "test-not-active");
    let report = env.get(&format!("/v1/tests/{answered}")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.body["status"], "abandoned");
    assert_eq!(report.body["items_answered"], 1);
    assert_eq!(status(&env, answered).await, "abandoned");
    assert!(!has_state(&env, answered).await, "no state came back");

    // The test left alone carries on.
    let resp = env.answer(&live.to_string(), &live_question, true).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["items_answered"], 1);
}

#[tokio::test]
async fn batches_page_through_every_idle_test() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(20).await;
    let mut stateless = Vec::new();
    let mut live = Vec::new();
    for i in 0..7 {
        let (test, _) = start(&env, pool, 5).await;
        if i % 3 == 1 {
            live.push(test);
        } else {
            drop_state(&env, test).await;
            stateless.push(test);
        }
    }
    age(&env, &[stateless.clone(), live.clone()].concat(), 60 * 24).await;

    let report = sweep::sweep_in_batches(&env.app, 2).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            checked: 7,
            abandoned: 5,
            batches: 4,
            timed_out: 0,
            sessions_deleted: 0,
            audit_partitions_made: 0,
            audit_partitions_dropped: 0,
            erasures_finished: 0,
            tutoring_abandoned: 0
        }
    );
    for &test in &stateless {
        assert_eq!(status(&env, test).await, "abandoned");
    }
    for &test in &live {
        assert_eq!(status(&env, test).await, "active");
    }
    // Exactly divisible: the empty query after the last full batch is not a batch.
    assert_eq!(
        sweep::sweep_in_batches(&env.app, 1).await.unwrap(),
        SweepReport {
            checked: 2,
            abandoned: 0,
            batches: 2,
            timed_out: 0,
            sessions_deleted: 0,
            audit_partitions_made: 0,
            audit_partitions_dropped: 0,
            erasures_finished: 0,
            tutoring_abandoned: 0
        }
    );
}

/// The UPDATE re-checks idleness, so a test touched after it was picked (a
/// submit landing meanwhile) is not abandoned.
#[tokio::test]
async fn a_test_touched_after_the_check_is_not_abandoned() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(10).await;
    let (idle, _) = start(&env, pool, 5).await;
    let (touched, _) = start(&env, pool, 5).await;
    age(&env, &[idle], 120).await;
    let limit = env.app.config().test_idle_limit;
    let marked = lectern::store::sweep::abandon(env.app.db(), &[idle, touched], limit)
        .await
        .unwrap();
    assert_eq!(marked, [(idle, Some(env.admin))]);
    assert_eq!(status(&env, touched).await, "active");
    assert_eq!(status(&env, idle).await, "abandoned");
    // Nothing to do is no statement at all.
    assert!(
        lectern::store::sweep::abandon(env.app.db(), &[], limit)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn redis_unreachable_abandons_nothing() {
    let healthy = TestEnv::new().await;
    let pool = healthy.demo_pool(10).await;
    let mut tests = Vec::new();
    for _ in 0..3 {
        let (test, _) = start(&healthy, pool, 5).await;
        drop_state(&healthy, test).await;
        tests.push(test);
    }
    age(&healthy, &tests, 120).await;

    // The same database, but a Redis that is not there.
    let cut_off = TestEnv::with_urls(DEAD_REDIS_URL, Some(&healthy.database_url)).await;
    let err = sweep::sweep(&cut_off.app)
        .await
        .expect_err("a sweep without Redis fails");
    assert!(err.to_string().starts_with("redis"), "{err}");
    for &test in &tests {
        assert_eq!(status(&healthy, test).await, "active");
    }

    // They were eligible: with Redis back, the same sweep abandons them.
    assert_eq!(
        sweep::sweep(&healthy.app).await.unwrap(),
        SweepReport {
            checked: 3,
            abandoned: 3,
            batches: 1,
            timed_out: 0,
            sessions_deleted: 0,
            audit_partitions_made: 0,
            audit_partitions_dropped: 0,
            erasures_finished: 0,
            tutoring_abandoned: 0
        }
    );
}
