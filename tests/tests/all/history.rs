//! A student's history: their tests, paged newest first, and their long-term
//! proficiency, on real Redis and PostgreSQL.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use lectern_tests::{Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// A test taken through the API, with what the API answered along the way.
struct Taken {
    id: String,
    /// The last submit's response body.
    last: Value,
    /// The end response body, when the test was ended.
    ended: Option<Value>,
}

/// Starts a test for `student` that stops after `answers.len()` items, answers
/// each question right or wrong as `answers` says, then ends it when `end`.
async fn take(env: &TestEnv, pool: Uuid, student: Uuid, answers: &[bool], end: bool) -> Taken {
    let n = answers.len().max(1);
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student,
                    "config": { "max_items": n, "min_items": n, "se_target": null } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    let mut last = Value::Null;
    for (i, right) in answers.iter().enumerate() {
        let resp = env.answer(&id, &question, *right).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        assert_eq!(resp.body["correct"], *right);
        assert_eq!(resp.body["items_answered"], i + 1);
        question = resp.body["next_question"].clone();
        last = resp.body;
    }
    let ended = if end {
        let resp = env.post(&format!("/v1/tests/{id}/end"), json!({})).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        Some(resp.body)
    } else {
        None
    };
    Taken { id, last, ended }
}

async fn history(env: &TestEnv, student: Uuid, query: &str) -> Resp {
    env.get(&format!("/v1/students/{student}/tests{query}"))
        .await
}

fn ids(body: &Value) -> Vec<&str> {
    body["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests list in {body}"))
        .iter()
        .map(|t| t["test_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tests_are_listed_newest_first_with_their_results() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await;
    let student = env.student().await;
    let other = env.student().await;

    let empty = history(&env, student, "").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(
        empty.body,
        json!({ "tests": [], "limit": 20, "offset": 0, "total": 0 })
    );

    let a = take(&env, pool, student, &[true, true, true], true).await;
    let b = take(&env, pool, student, &[false, true, false, true], true).await;
    let c = take(&env, pool, student, &[true, false], false).await;
    // Someone else's test and an anonymous one are not this student's.
    take(&env, pool, other, &[true], true).await;
    let anonymous = env.post("/v1/tests", json!({ "pool_id": pool })).await;
    assert_eq!(anonymous.status, StatusCode::CREATED);

    let listed = history(&env, student, "").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(ids(&listed.body), [&c.id, &b.id, &a.id]);
    assert_eq!(listed.body["limit"], 20);
    assert_eq!(listed.body["offset"], 0);
    assert_eq!(listed.body["total"], 3);

    let tests = listed.body["tests"].as_array().unwrap();
    for (row, taken, answered, correct) in [(&tests[1], &b, 4, 2), (&tests[2], &a, 3, 3)] {
        let ended = taken.ended.as_ref().unwrap();
        let report = env.get(&format!("/v1/tests/{}", taken.id)).await;
        assert_eq!(report.status, StatusCode::OK);
        assert_eq!(
            row,
            &json!({
                "test_id": taken.id,
                "organization_id": env.org,
                "pool_id": pool,
                "pool_version": 1,
                "status": "ended",
                "items_answered": answered,
                "correct_responses": correct,
                "theta": ended["proficiency"]["theta"],
                "se": ended["proficiency"]["se"],
                "started_at": report.body["started_at"],
                "ended_at": report.body["ended_at"],
            })
        );
        assert!(row["ended_at"].is_string());
    }
    assert_eq!(
        tests[1]["correct_responses"],
        b.ended.as_ref().unwrap()["correct_responses"]
    );

    // The active test shows its latest estimate and no end time.
    let report = env.get(&format!("/v1/tests/{}", c.id)).await;
    assert_eq!(
        tests[0],
        json!({
            "test_id": c.id,
            "organization_id": env.org,
            "pool_id": pool,
            "pool_version": 1,
            "status": "completed",
            "items_answered": 2,
            "correct_responses": 1,
            "theta": c.last["proficiency"]["theta"],
            "se": c.last["proficiency"]["se"],
            "started_at": report.body["started_at"],
            "ended_at": null,
        })
    );
}

#[tokio::test]
async fn an_active_test_is_listed_as_active() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let student = env.student().await;
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student, "config": { "max_items": 5 } }),
        )
        .await;
    let id = started.body["test_id"].as_str().unwrap();
    let answered = env.answer(id, &started.body["question"], false).await;
    assert_eq!(answered.body["status"], "active");
    let listed = history(&env, student, "").await;
    let row = &listed.body["tests"][0];
    assert_eq!(row["test_id"], id);
    assert_eq!(row["status"], "active");
    assert_eq!(row["items_answered"], 1);
    assert_eq!(row["correct_responses"], 0);
    assert_eq!(row["theta"], answered.body["proficiency"]["theta"]);
    assert_eq!(row["ended_at"], Value::Null);
}

#[tokio::test]
async fn pages_follow_limit_and_offset() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(40).await;
    let student = env.student().await;
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(take(&env, pool, student, &[true], true).await.id);
    }
    let (a, b, c) = (&taken[0], &taken[1], &taken[2]);

    let second = history(&env, student, "?limit=1&offset=1").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(ids(&second.body), [b]);
    assert_eq!(second.body["limit"], 1);
    assert_eq!(second.body["offset"], 1);
    assert_eq!(second.body["total"], 3);

    assert_eq!(ids(&history(&env, student, "?limit=1").await.body), [c]);
    assert_eq!(
        ids(&history(&env, student, "?limit=2&offset=1").await.body),
        [b, a]
    );
    assert_eq!(ids(&history(&env, student, "?offset=2").await.body), [a]);
    assert_eq!(
        ids(&history(&env, student, "?limit=100").await.body),
        [c, b, a]
    );
    let past_the_end = history(&env, student, "?offset=3").await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert_eq!(ids(&past_the_end.body), Vec::<&str>::new());
    assert_eq!(past_the_end.body["total"], 3);
}

#[tokio::test]
async fn unknown_students_and_bad_pages_are_refused() {
    let env = TestEnv::new().await;
    let student = env.student().await;
    let unknown = Uuid::new_v4();
    for path in [
        format!("/v1/students/{unknown}/tests"),
        format!("/v1/students/{unknown}/proficiency"),
        "/v1/students/not-a-uuid/tests".to_owned(),
        "/v1/students/not-a-uuid/proficiency".to_owned(),
    ] {
        let resp = env.get(&path).await;
        resp.problem(404);
        assert_eq!(resp.slug(), "not-found", "{path}");
    }
    let detail = history(&env, unknown, "").await.problem(404);
    assert!(detail.contains(&unknown.to_string()), "{detail}");

    for query in ["?limit=0", "?limit=101", "?offset=-1", "?limit=-5&offset=0"] {
        let resp = history(&env, student, query).await;
        let detail = resp.problem(422);
        assert_eq!(resp.slug(), "validation-failed", "{query}");
        assert!(detail.contains("from 1 to 100"), "{query}: {detail}");
    }
    for query in ["?limit=abc", "?offset=1.5", "?page=2"] {
        let resp = history(&env, student, query).await;
        resp.problem(400);
        assert_eq!(resp.slug(), "bad-request", "{query}");
    }
    // The bounds are the student list's own; the pools list keeps its 200.
    assert_eq!(env.get("/v1/pools?limit=200").await.status, StatusCode::OK);
    env.get("/v1/pools?limit=201").await.problem(422);
}

/// Concept name → (theta, se, n) of an end response's proficiency.
fn concepts_of(ended: &Value) -> BTreeMap<String, (f64, f64, i64)> {
    ended["proficiency"]["concepts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                (
                    c["theta"].as_f64().unwrap(),
                    c["se"].as_f64().unwrap(),
                    c["n"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn proficiency_accumulates_over_ended_tests() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await;
    let student = env.student().await;
    let url = format!("/v1/students/{student}/proficiency");

    let none = env.get(&url).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert_eq!(
        none.body,
        json!({ "student_id": student, "organization_id": null, "overall": null, "concepts": {} })
    );
    // A test ended without answers leaves no proficiency.
    take(&env, pool, student, &[], true).await;
    assert_eq!(env.get(&url).await.body, none.body);

    let a = take(&env, pool, student, &[true, false, true, true, false], true).await;
    let b = take(
        &env,
        pool,
        student,
        &[false, false, true, false, true, true],
        true,
    )
    .await;
    // Neither an unfinished test nor another student's counts.
    take(&env, pool, student, &[true, true], false).await;
    let other = env.student().await;
    take(&env, pool, other, &[true, true, true], true).await;

    let resp = env.get(&url).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let body = &resp.body;
    assert_eq!(body["student_id"], student.to_string());
    assert_eq!(body["organization_id"], env.org.to_string());
    let (a_end, b_end) = (a.ended.unwrap(), b.ended.unwrap());
    let overall = &body["overall"];
    // The latest test's estimate stands; n counts the answers of both.
    assert_eq!(overall["theta"], b_end["proficiency"]["theta"]);
    assert_eq!(overall["se"], b_end["proficiency"]["se"]);
    assert_eq!(overall["n"], 5 + 6);
    assert!(overall["updated_at"].as_str().unwrap().ends_with('Z'));

    let (from_a, from_b) = (concepts_of(&a_end), concepts_of(&b_end));
    let concepts = body["concepts"].as_object().unwrap();
    let names: Vec<&String> = concepts.keys().collect();
    let expected: Vec<&String> = from_a
        .keys()
        .chain(from_b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, expected);
    assert!(!names.is_empty());
    let mut n_total = 0;
    for (name, got) in concepts {
        let n_a = from_a.get(name).map_or(0, |c| c.2);
        let n_b = from_b.get(name).map_or(0, |c| c.2);
        assert_eq!(got["n"], n_a + n_b, "{name}");
        let (theta, se, _) = from_b.get(name).or(from_a.get(name)).unwrap();
        assert_eq!(got["theta"].as_f64().unwrap(), *theta, "{name}");
        assert_eq!(got["se"].as_f64().unwrap(), *se, "{name}");
        assert!(got["updated_at"].is_string());
        n_total += got["n"].as_i64().unwrap();
    }
    // Every demo item has exactly one concept, so the concepts' counts add up to the overall one.
    assert_eq!(n_total, 11);
}
