//! Safe retries: a repeated submit of an answer already recorded gets the
//! original result (200, the same body), a different response to it stays
//! 409 and writes nothing, and a duplicate racing the first is recorded once.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::{Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// Starts a practice test of `max_items` fixed length as the admin: (id, first question).
async fn begin(env: &TestEnv, pool: Uuid, max_items: usize) -> (String, Value) {
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool,
                    "config": { "max_items": max_items, "min_items": max_items, "se_target": null } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    (
        started.body["test_id"].as_str().unwrap().to_owned(),
        started.body["question"].clone(),
    )
}

/// The submit body answering `question` right or wrong.
async fn body_for(env: &TestEnv, question: &Value, right: bool) -> Value {
    let id = question["id"].as_str().unwrap();
    let key = env.key_of(id).await;
    let response = if right {
        key
    } else {
        question["options"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|o| *o != key)
            .unwrap()
            .to_owned()
    };
    json!({ "question_id": id, "response": response })
}

/// Every recorded response of `test`: (seq, question, response).
async fn rows(env: &TestEnv, test: &str) -> Vec<(i32, String, String)> {
    let id: Uuid = test.parse().unwrap();
    env.sql()
        .await
        .query(
            "SELECT seq, question_id, response FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn items_answered(env: &TestEnv, test: &str) -> i32 {
    let id: Uuid = test.parse().unwrap();
    env.sql()
        .await
        .query_one(
            "SELECT items_answered FROM test_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// A retry after success answers 200 with the very body of the first submit
/// (θ/SE, correctness, the next question), writes nothing, and the test goes
/// on from there; a different response to the answered question is 409.
#[tokio::test]
async fn a_repeated_submit_gets_the_original_result() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (test, question) = begin(&env, pool, 5).await;
    let path = format!("/v1/tests/{test}/responses");
    let body = body_for(&env, &question, false).await;
    let first = env.post(&path, body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["correct"], false);
    assert!(first.body["proficiency"]["theta"].is_number());
    assert!(first.body["next_question"]["id"].is_string());
    let state = env.test_entries().await;

    let again = env.post(&path, body.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);
    // Nothing written: one row, the same count, the same Redis state.
    assert_eq!(rows(&env, &test).await.len(), 1);
    assert_eq!(items_answered(&env, &test).await, 1);
    assert_eq!(env.test_entries().await, state);

    // A different response to the answered question: 409, nothing written.
    let other = body_for(&env, &question, true).await;
    assert_ne!(other["response"], body["response"]);
    let refused = env.post(&path, other).await;
    refused.problem(409);
    assert_eq!(refused.slug(), "already-answered");
    let recorded = rows(&env, &test).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].2, body["response"].as_str().unwrap());
    assert_eq!(env.test_entries().await, state);

    // The test goes on from the question the replay named.
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.body, first.body["next_question"]);
    let second_body = body_for(&env, &first.body["next_question"], true).await;
    let second = env.post(&path, second_body).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["items_answered"], 2);
    // Once a later answer is recorded, the first is no longer a retry.
    let late = env.post(&path, body).await;
    assert_eq!(
        (late.status.as_u16(), late.slug()),
        (409, "already-answered")
    );
    assert_eq!(rows(&env, &test).await.len(), 2);
}

/// The answer that completed the test, repeated: the same final body with its
/// stop reason; still so when Redis lost the state (rebuilt from PostgreSQL);
/// refused once the test is ended.
#[tokio::test]
async fn repeating_the_last_answer_of_a_test_and_after_a_flush() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (test, mut question) = begin(&env, pool, 3).await;
    let path = format!("/v1/tests/{test}/responses");
    let mut last = (Value::Null, Value::Null);
    for i in 0..3 {
        let body = body_for(&env, &question, i % 2 == 0).await;
        let r = env.post(&path, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        question = r.body["next_question"].clone();
        last = (body, r.body);
    }
    assert_eq!(last.1["status"], "completed");
    assert_eq!(last.1["stop_reason"], "max_items");
    let again = env.post(&path, last.0.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, last.1);

    // Redis loses everything of the test: PostgreSQL alone gives the same answer.
    let mut conn = env.redis().await;
    for (key, _) in env.test_entries().await {
        let () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let again = env.post(&path, last.0.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, last.1);
    assert_eq!(rows(&env, &test).await.len(), 3);

    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let after_end = env.post(&path, last.0).await;
    assert_eq!(
        (after_end.status.as_u16(), after_end.slug()),
        (409, "test-not-active")
    );
    assert_eq!(rows(&env, &test).await.len(), 3);
}

/// In an exam the replay shows what the first response showed: no
/// correctness, score, θ or stop reason.
#[tokio::test]
async fn an_exam_replay_reveals_nothing_more() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (_, student) = env.user(Role::Student).await;
    let assessment = env
        .post(
            "/v1/assessments",
            json!({ "organization_id": env.org, "name": "Retry exam", "pool_id": pool, "mode": "exam",
                    "config": { "max_items": 2, "min_items": 2, "se_target": null } }),
        )
        .await;
    assert_eq!(
        assessment.status,
        StatusCode::CREATED,
        "{}",
        assessment.body
    );
    let closes = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let assignment = env
        .post(
            "/v1/assignments",
            json!({ "assessment_id": assessment.body["id"], "class_id": env.class, "closes_at": closes }),
        )
        .await;
    assert_eq!(
        assignment.status,
        StatusCode::CREATED,
        "{}",
        assignment.body
    );
    let started = env
        .call_as(
            Some(&student),
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": assignment.body["id"] })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/tests/{test}/responses");
    let mut question = started.body["question"].clone();
    for _ in 0..2 {
        let body = body_for(&env, &question, true).await;
        let as_student = |b: Value| env.call_as(Some(&student), Method::POST, &path, Some(b));
        let first: Resp = as_student(body.clone()).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let again = as_student(body).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body, first.body);
        for hidden in ["correct", "score", "proficiency", "stop_reason"] {
            assert!(
                again.body.get(hidden).is_none(),
                "{hidden} in {}",
                again.body
            );
        }
        question = first.body["next_question"].clone();
    }
    assert!(question.is_null());
    assert_eq!(rows(&env, &test).await.len(), 2);
}

/// Two identical submits at once: exactly one row; each answer is either the
/// recorded result or 409 `submit-in-progress` (the client retries: then 200,
/// the same body).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_pair_is_recorded_once() {
    let env = Arc::new(TestEnv::new().await);
    let pool = env.demo_pool(30).await;
    for _ in 0..5 {
        let (test, question) = begin(&env, pool, 5).await;
        let path = format!("/v1/tests/{test}/responses");
        let body = body_for(&env, &question, true).await;
        let (a, b) = tokio::join!(env.post(&path, body.clone()), env.post(&path, body.clone()));
        let mut bodies = Vec::new();
        for r in [a, b] {
            match r.status.as_u16() {
                200 => bodies.push(r.body),
                409 => assert_eq!(r.slug(), "submit-in-progress", "{}", r.body),
                other => panic!("unexpected {other}: {}", r.body),
            }
        }
        assert!(!bodies.is_empty(), "neither submit went through");
        let retried = env.post(&path, body).await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
        for b in &bodies {
            assert_eq!(*b, retried.body);
        }
        assert_eq!(rows(&env, &test).await.len(), 1);
        assert_eq!(items_answered(&env, &test).await, 1);
    }
}
