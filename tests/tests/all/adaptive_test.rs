//! The adaptive-test loop end to end on real Redis and PostgreSQL.

use axum::http::StatusCode;
use lectern_tests::{Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

async fn start(env: &TestEnv, body: Value) -> Resp {
    env.post("/v1/tests", body).await
}

/// Starts a test (asserting 201); returns its id and the start response body.
async fn begin(env: &TestEnv, body: Value) -> (String, Value) {
    let started = start(env, body).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    (test, started.body)
}

async fn answer(env: &TestEnv, test: &str, question: &Value, right: bool) -> Resp {
    let qid = question["id"].as_str().unwrap();
    let key = env.key_of(qid).await;
    let response = if right {
        key
    } else {
        question["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .find(|o| *o != key)
            .unwrap()
            .into()
    };
    env.post(
        &format!("/v1/tests/{test}/responses"),
        json!({ "question_id": qid, "response": response }),
    )
    .await
}

#[tokio::test]
async fn a_whole_test_start_to_end() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await;
    let student = env.student().await;
    let started = start(
        &env,
        json!({ "pool_id": pool, "student_id": student, "config": { "max_items": 8, "min_items": 8, "se_target": null } }),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["status"], "active");
    assert_eq!(started.body["items_answered"], 0);
    assert_eq!(started.body["proficiency"]["theta"], 0.0);
    assert_eq!(started.body["proficiency"]["se"], 1.0);
    assert_eq!(started.body["config"]["estimator"], "eap");
    assert_eq!(started.body["question"]["position"], 1);
    assert!(started.body["question"].get("correct_answer").is_none());
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    assert_eq!(started.headers["location"], format!("/v1/tests/{test}"));

    // `next` is idempotent and serves the same question.
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(next.body, started.body["question"]);
    assert_eq!(
        env.get(&format!("/v1/tests/{test}/next")).await.body,
        next.body
    );

    let mut question = started.body["question"].clone();
    let mut last = Value::Null;
    let mut seen = std::collections::HashSet::new();
    for i in 0..8 {
        assert!(
            seen.insert(question["id"].as_str().unwrap().to_owned()),
            "an item was served twice"
        );
        let resp = answer(&env, &test, &question, i % 2 == 0).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        assert_eq!(resp.body["correct"], i % 2 == 0);
        assert_eq!(resp.body["items_answered"], i + 1);
        let p = &resp.body["proficiency"];
        assert!(p["se"].as_f64().unwrap() < 1.0);
        assert!(
            p["concepts"]
                .as_object()
                .unwrap()
                .values()
                .all(|c| c["n"].as_u64().unwrap() >= 1)
        );
        last = resp.body.clone();
        if i < 7 {
            assert_eq!(resp.body["status"], "active");
            question = resp.body["next_question"].clone();
            assert_eq!(question["position"], i + 2);
        }
    }
    assert_eq!(last["status"], "completed");
    assert_eq!(last["next_question"], Value::Null);
    env.get(&format!("/v1/tests/{test}/next"))
        .await
        .problem(409);

    // Every response is in PostgreSQL with θ and SE before and after.
    let sql = env.sql().await;
    let rows = sql
        .query(
            "SELECT seq, theta_before, theta_after, se_after FROM test_responses ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>("seq"), i as i32 + 1);
        if i > 0 {
            assert_eq!(
                r.get::<_, f64>("theta_before"),
                rows[i - 1].get::<_, f64>("theta_after")
            );
        }
    }
    let final_theta: f64 = rows[7].get("theta_after");
    assert!((last["proficiency"]["theta"].as_f64().unwrap() - final_theta).abs() < 1e-12);

    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["status"], "ended");
    assert_eq!(ended.body["total_questions"], 8);
    assert_eq!(ended.body["correct_responses"], 4);
    assert_eq!(ended.body["accuracy"], 0.5);
    assert!(ended.body["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(ended.body["proficiency"], last["proficiency"]);
    // Idempotent.
    assert_eq!(
        env.post(&format!("/v1/tests/{test}/end"), json!({}))
            .await
            .body,
        ended.body
    );

    // Redis state gone; final results and long-term proficiency in PostgreSQL.
    assert!(env.test_entries().await.is_empty());
    let row = sql
        .query_one(
            "SELECT status, ended_at IS NOT NULL, theta FROM test_sessions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ended");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, f64>(2), final_theta);
    let overall: f64 = sql
        .query_one(
            "SELECT theta FROM student_proficiencies WHERE student_id = $1 AND concept = ''",
            &[&student],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overall, final_theta);

    // The report matches, and a submit after end is refused and stores nothing.
    let report = env.get(&format!("/v1/tests/{test}")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.body["status"], "ended");
    assert_eq!(report.body["responses"].as_array().unwrap().len(), 8);
    assert_eq!(report.body["proficiency"], ended.body["proficiency"]);
    answer(&env, &test, &question, true).await.problem(409);
    assert_eq!(env.count("test_responses").await, 8);

    // The next test starts from the student's long-term ability.
    let again = start(&env, json!({ "pool_id": pool, "student_id": student })).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body["proficiency"]["theta"].as_f64().unwrap(),
        final_theta
    );
}

#[tokio::test]
async fn the_se_target_stops_the_test() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(80).await;
    let (test, started) = begin(
        &env,
        json!({ "pool_id": pool, "config": { "max_items": 40, "min_items": 2, "se_target": 0.6 } }),
    )
    .await;
    let mut question = started["question"].clone();
    for i in 0..40 {
        let resp = answer(&env, &test, &question, i % 3 != 0).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        if resp.body["status"] == "completed" {
            assert!(resp.body["proficiency"]["se"].as_f64().unwrap() <= 0.6);
            assert!(i + 1 < 40, "should stop on SE before max_items");
            return;
        }
        question = resp.body["next_question"].clone();
    }
    panic!("the SE target never stopped the test");
}

#[tokio::test]
async fn wrong_questions_and_options_are_refused_and_store_nothing() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (test, started) = begin(&env, json!({ "pool_id": pool })).await;
    let question = started["question"].clone();
    let qid = question["id"].as_str().unwrap();
    let path = format!("/v1/tests/{test}/responses");
    let before = env.test_entries().await;

    let other = env.get(&format!("/v1/pools/{pool}")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .find(|id| id != qid)
        .unwrap();
    let r = env
        .post(&path, json!({ "question_id": other, "response": "1" }))
        .await;
    r.problem(409);
    assert_eq!(r.slug(), "question-not-served");
    let r = env
        .post(
            &path,
            json!({ "question_id": "no-such-question", "response": "1" }),
        )
        .await;
    assert_eq!(r.slug(), "question-not-served");
    let r = env
        .post(
            &path,
            json!({ "question_id": qid, "response": "not an option" }),
        )
        .await;
    assert!(r.problem(422).contains("not one of the options"));
    env.post(&path, json!({ "question_id": qid }))
        .await
        .problem(422);
    env.post(&path, json!({ "question_id": qid, "response": 4 }))
        .await
        .problem(422);
    env.post(
        &format!("/v1/tests/{}/responses", Uuid::new_v4()),
        json!({ "question_id": qid, "response": "1" }),
    )
    .await
    .problem(404);
    env.post(
        "/v1/tests/xyz/responses",
        json!({ "question_id": qid, "response": "1" }),
    )
    .await
    .problem(404);

    assert_eq!(env.count("test_responses").await, 0);
    let row = env
        .sql()
        .await
        .query_one("SELECT items_answered FROM test_sessions", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 0);
    assert_eq!(
        env.test_entries().await,
        before,
        "Redis state must not change on refused input"
    );

    // Answering, then answering the same question again: a retry, which gets
    // the original result; a different response to it is refused.
    let ok = answer(&env, &test, &question, true).await;
    assert_eq!(ok.status, StatusCode::OK);
    let again = answer(&env, &test, &question, true).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, ok.body);
    let other = answer(&env, &test, &question, false).await;
    other.problem(409);
    assert_eq!(other.slug(), "already-answered");
    assert_eq!(env.count("test_responses").await, 1);
}

#[tokio::test]
async fn bad_start_requests_are_refused_and_store_nothing() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(10).await;
    start(&env, json!({ "pool_id": Uuid::new_v4() }))
        .await
        .problem(404);
    let r = start(
        &env,
        json!({ "pool_id": pool, "student_id": Uuid::new_v4() }),
    )
    .await;
    assert!(r.problem(422).contains("no user"));
    for config in [
        json!({ "max_items": 0 }),
        json!({ "max_items": 500 }),
        json!({ "max_items": 5, "min_items": 6 }),
        json!({ "se_target": 0.0 }),
        json!({ "estimator": "magic" }),
        json!({ "randomesque": 0 }),
        json!({ "content_balance": true }),
    ] {
        start(&env, json!({ "pool_id": pool, "config": config }))
            .await
            .problem(422);
    }
    start(&env, json!({ "pool_id": "nope" })).await.problem(422);
    start(&env, json!({})).await.problem(422);
    assert_eq!(env.count("test_sessions").await, 0);
    assert!(env.test_entries().await.is_empty());
}

#[tokio::test]
async fn every_estimator_and_randomesque_run_a_test() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(40).await;
    for config in [
        json!({ "estimator": "map", "max_items": 4 }),
        json!({ "estimator": "mle", "max_items": 4 }),
        json!({ "randomesque": 5, "max_items": 4 }),
    ] {
        let (test, started) = begin(&env, json!({ "pool_id": pool, "config": config })).await;
        let mut q = started["question"].clone();
        for i in 0..4 {
            let r = answer(&env, &test, &q, i != 1).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let theta = r.body["proficiency"]["theta"].as_f64().unwrap();
            assert!(theta.is_finite() && theta.abs() <= 6.0);
            q = r.body["next_question"].clone();
        }
        let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
        assert_eq!(ended.status, StatusCode::OK);
    }
}

/// Fifty submits of the same answer at once: exactly one is recorded; the
/// others get 409 `submit-in-progress` while it is, or the same result after
/// (a retry of a recorded answer); no 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_record_once() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(20).await;
    let (test, started) = begin(&env, json!({ "pool_id": pool })).await;
    let question = started["question"].clone();
    let key = env.key_of(question["id"].as_str().unwrap()).await;
    let body = json!({ "question_id": question["id"], "response": key });
    let path = format!("/v1/tests/{test}/responses");
    let env = std::sync::Arc::new(env);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (env, path, body) = (env.clone(), path.clone(), body.clone());
            tokio::spawn(async move { env.post(&path, body).await })
        })
        .collect();
    let (mut ok, mut conflicts) = (Vec::new(), 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok.push(r.body),
            409 => {
                conflicts += 1;
                assert_eq!(r.slug(), "submit-in-progress", "{}", r.body);
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(ok.len() + conflicts, 50);
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|b| *b == ok[0]), "{ok:?}");
    // The lock was released with the state write: nothing left but the state.
    let entries = env.test_entries().await;
    assert_eq!(
        entries.len(),
        1,
        "{:?}",
        entries.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    assert_eq!(env.count("test_responses").await, 1);
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.body["position"], 2);
}

#[tokio::test]
async fn ending_unknown_or_fresh_tests() {
    let env = TestEnv::new().await;
    env.post(&format!("/v1/tests/{}/end", Uuid::new_v4()), json!({}))
        .await
        .problem(404);
    env.get(&format!("/v1/tests/{}", Uuid::new_v4()))
        .await
        .problem(404);
    env.get(&format!("/v1/tests/{}/next", Uuid::new_v4()))
        .await
        .problem(404);
    let pool = env.demo_pool(10).await;
    let (test, _) = begin(&env, json!({ "pool_id": pool })).await;
    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK);
    assert_eq!(ended.body["total_questions"], 0);
    assert_eq!(ended.body["accuracy"], 0.0);
    env.get(&format!("/v1/tests/{test}/next"))
        .await
        .problem(409);
}

/// Redis never holds a key, and every key in it has a TTL; the live state is
/// compact (≤ 1 KB after 30 answers) and slides its TTL on every touch.
#[tokio::test]
async fn redis_holds_no_answers_every_key_has_a_ttl_and_states_are_small() {
    let env = TestEnv::new().await;
    let pool = env.token_pool(60).await;
    let config = json!({ "max_items": 30, "min_items": 30, "se_target": null,
                         "content_balance": { "algebra": 1, "fractions": 1, "geometry": 1 },
                         "randomesque": 3, "exposure_control": true });
    let (test, started) = begin(&env, json!({ "pool_id": pool, "config": config })).await;
    let mut question = started["question"].clone();
    for i in 0..30 {
        let r = answer(&env, &test, &question, i % 3 != 0).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        question = r.body["next_question"].clone();
    }
    assert!(question.is_null(), "30 of 30 items answered");
    let checked = env.assert_redis_clean().await;
    assert!(checked >= 3, "state, pool and questions cached: {checked}");

    let mut conn = env.redis().await;
    let key = state_key(&env, &test);
    let memory: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(memory <= 1024, "state uses {memory} bytes after 30 answers");
    eprintln!("MEMORY USAGE of the state after 30 answers: {memory} bytes");
    let ttl = pttl(&mut conn, &key).await;
    assert!(ttl > 29 * 60 * 1000 && ttl <= 30 * 60 * 1000, "ttl {ttl}");
    let report = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(report.status, StatusCode::OK);
}

/// A touch (`next`) slides the TTL back to 30 minutes; an extension is never cut short by one.
#[tokio::test]
async fn touches_slide_the_ttl_and_never_shorten_an_extension() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(20).await;
    let (test, _) = begin(&env, json!({ "pool_id": pool })).await;
    let key = state_key(&env, &test);
    let mut conn = env.redis().await;
    let () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl(&mut conn, &key).await <= 60_000);
    assert_eq!(
        env.get(&format!("/v1/tests/{test}/next")).await.status,
        StatusCode::OK
    );
    assert!(pttl(&mut conn, &key).await > 29 * 60 * 1000);

    let r = env
        .post(
            &format!("/v1/admin/tests/{test}/extend"),
            json!({ "seconds": 7200 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["ttl_s"].as_f64().unwrap() > 7190.0, "{}", r.body);
    assert_eq!(
        env.get(&format!("/v1/tests/{test}/next")).await.status,
        StatusCode::OK
    );
    assert!(
        pttl(&mut conn, &key).await > 7190 * 1000,
        "a touch kept the extension"
    );
}

async fn pttl(conn: &mut lectern::store::conn::Conn, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

fn state_key(env: &TestEnv, test: &str) -> String {
    format!("{}test:{{{test}}}:state", env.prefix)
}

async fn state_of(env: &TestEnv, test: &str) -> Option<Vec<u8>> {
    let mut conn = env.redis().await;
    redis::cmd("GET")
        .arg(state_key(env, test))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The live state lost (expired, evicted, flushed) while the test is active is
/// rebuilt from PostgreSQL: the same question, the same θ, byte for byte the same state.
#[tokio::test]
async fn a_lost_state_is_rebuilt_from_postgres() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    // Every engine setting must survive the trip through PostgreSQL.
    let config = json!({
        "randomesque": 4, "estimator": "wle", "exposure_control": true,
        "content_balance": { "algebra": 2, "fractions": 1 },
        "cut_score": 0.5, "confidence": 0.9, "start_theta": -0.5, "se_target": null,
    });
    let (test, started) = begin(&env, json!({ "pool_id": pool, "config": config })).await;
    let first = answer(&env, &test, &started["question"], true).await;
    let second = answer(&env, &test, &first.body["next_question"], false).await;
    let before = state_of(&env, &test).await.expect("state present");

    let mut conn = env.redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(state_key(&env, &test))
        .query_async(&mut conn)
        .await
        .unwrap();
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(next.body, second.body["next_question"]);
    assert_eq!(
        state_of(&env, &test).await.as_deref(),
        Some(before.as_slice())
    );

    // And it carries on from there.
    let third = answer(&env, &test, &next.body, true).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    assert_eq!(third.body["items_answered"], 3);
    assert_eq!(env.count("test_responses").await, 3);
}

/// Redis a step behind PostgreSQL (its write lost after a commit): the next
/// submit notices, rebuilds the state and goes through; a replay is still refused.
#[tokio::test]
async fn a_stale_state_heals_on_the_next_submit() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (test, started) = begin(&env, json!({ "pool_id": pool })).await;
    let stale = state_of(&env, &test).await.unwrap();
    let first = answer(&env, &test, &started["question"], true).await;
    assert_eq!(first.status, StatusCode::OK);
    let mut conn = env.redis().await;
    let () = redis::cmd("SET")
        .arg(state_key(&env, &test))
        .arg(&stale)
        .query_async(&mut conn)
        .await
        .unwrap();

    let second = answer(&env, &test, &first.body["next_question"], true).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["items_answered"], 2);
    let replay = answer(&env, &test, &started["question"], true).await;
    assert_eq!(replay.slug(), "already-answered");
    assert_eq!(env.count("test_responses").await, 2);
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.body, second.body["next_question"]);
}

/// Concepts of the questions a test serves, answering alternately right and wrong.
async fn run_test(env: &TestEnv, pool: &str, config: Value) -> (String, Vec<Value>, Value) {
    let (test, started) = begin(env, json!({ "pool_id": pool, "config": config })).await;
    let mut served = vec![started["question"].clone()];
    loop {
        let q = served.last().unwrap().clone();
        let r = answer(env, &test, &q, served.len() % 2 == 1).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["next_question"].is_null() {
            return (test, served, r.body);
        }
        served.push(r.body["next_question"].clone());
    }
}

#[tokio::test]
async fn content_balancing_serves_concepts_in_proportion() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await.to_string();
    let config = json!({
        "max_items": 8, "se_target": null,
        "content_balance": { "algebra": 3, "fractions": 1 },
    });
    let (_, served, last) = run_test(&env, &pool, config).await;
    assert_eq!(served.len(), 8);
    assert_eq!(last["stop_reason"], "max_items");
    let count = |c: &str| served.iter().filter(|q| q["concepts"][0] == c).count();
    assert_eq!((count("algebra"), count("fractions")), (6, 2), "{served:?}");
    // The effective configuration shows the shares, normalised.
    let (_, started) = begin(
        &env,
        json!({ "pool_id": pool, "config": { "content_balance": { "algebra": 3, "fractions": 1 } } }),
    )
    .await;
    assert_eq!(
        started["config"]["content_balance"],
        json!({ "algebra": 0.75, "fractions": 0.25 })
    );
}

#[tokio::test]
async fn classification_tests_stop_once_the_interval_clears_the_cut() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(40).await.to_string();
    let config = json!({
        "estimator": "wle", "min_items": 3, "max_items": 30, "se_target": null,
        "cut_score": -3.0, "confidence": 0.9,
    });
    let (test, served, last) = run_test(&env, &pool, config).await;
    // Mostly right answers put θ far above −3: the test ends well before 30 items.
    assert_eq!(last["stop_reason"], "classified_above", "{last}");
    assert!(served.len() >= 3 && served.len() < 30, "{}", served.len());
    let (theta, se) = (
        last["proficiency"]["theta"].as_f64().unwrap(),
        last["proficiency"]["se"].as_f64().unwrap(),
    );
    assert!(theta - 1.6448536 * se > -3.0, "{theta} ± {se}");
    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let verdict = json!({ "cut_score": -3.0, "confidence": 0.9, "decision": "above" });
    assert_eq!(ended.body["classification"], verdict);
    let report = env.get(&format!("/v1/tests/{test}")).await;
    assert_eq!(report.body["classification"], verdict);
    assert_eq!(report.body["config"]["estimator"], "wle");
    // Without a cut score there is no verdict.
    let (plain, _) = begin(&env, json!({ "pool_id": pool })).await;
    let ended = env.post(&format!("/v1/tests/{plain}/end"), json!({})).await;
    assert!(ended.body.get("classification").is_none(), "{}", ended.body);
}

#[tokio::test]
async fn a_fixed_start_theta_picks_the_first_item_there() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await.to_string();
    let mut firsts = Vec::new();
    for theta in [-2.5, 2.5] {
        let (_, started) = begin(
            &env,
            json!({ "pool_id": pool, "config": { "start_theta": theta } }),
        )
        .await;
        assert_eq!(started["proficiency"]["theta"], theta);
        assert_eq!(started["config"]["start_theta"], theta);
        firsts.push(started["question"]["id"].clone());
    }
    assert_ne!(firsts[0], firsts[1]);
}

#[tokio::test]
async fn sympson_hetter_holds_back_a_rarely_allowed_item() {
    let env = TestEnv::new().await;
    // The item a plain test starts with, looked up on a pool without control.
    let open = env.demo_pool(30).await.to_string();
    let (_, started) = begin(&env, json!({ "pool_id": open })).await;
    let favourite = started["question"]["content"].clone();
    // The same items again, the favourite almost never allowed.
    let mut items = lectern_tests::items_json(30, "sympson-hetter");
    for it in &mut items {
        if it["content"] == favourite {
            it["exposure"] = json!(1e-9);
        }
    }
    let r = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "controlled", "items": items }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let controlled = r.body["pool_id"].as_str().unwrap().to_owned();
    let detail = env.get(&format!("/v1/pools/{controlled}")).await;
    let shown: Vec<f64> = detail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["exposure"].as_f64().unwrap())
        .collect();
    assert_eq!(shown.iter().filter(|&&k| k < 1.0).count(), 1, "{shown:?}");
    for _ in 0..3 {
        let (_, with) = begin(
            &env,
            json!({ "pool_id": controlled, "config": { "exposure_control": true } }),
        )
        .await;
        assert_ne!(with["question"]["content"], favourite);
        let (_, without) = begin(&env, json!({ "pool_id": controlled })).await;
        assert_eq!(without["question"]["content"], favourite);
    }
}

#[tokio::test]
async fn bad_engine_settings_are_refused_and_store_nothing() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(10).await;
    for (config, says) in [
        (json!({ "content_balance": { "topology": 1 } }), "topology"),
        (
            json!({ "content_balance": { "algebra": 0 } }),
            "content_balance.algebra",
        ),
        (json!({ "content_balance": {} }), "content_balance"),
        (json!({ "cut_score": 9 }), "cut_score"),
        (json!({ "confidence": 0.9 }), "needs config.cut_score"),
        (json!({ "cut_score": 0, "confidence": 1.0 }), "confidence"),
        (json!({ "start_theta": -7 }), "start_theta"),
        (json!({ "estimator": "bayes" }), "estimator"),
        (json!({ "exposure_control": "yes" }), "exposure_control"),
    ] {
        let r = start(&env, json!({ "pool_id": pool, "config": config })).await;
        let detail = r.problem(422);
        assert!(detail.contains(says), "{config}: {detail}");
    }
    assert_eq!(env.count("test_sessions").await, 0);
    assert!(env.test_entries().await.is_empty());
    // Pools refuse exposure parameters outside (0, 1].
    for bad in [0.0, 1.5, -0.2] {
        let mut items = lectern_tests::items_json(2, &format!("exp{bad}"));
        items[1]["exposure"] = json!(bad);
        let r = env
            .post(
                "/v1/pools",
                json!({ "organization_id": env.org, "name": "x", "items": items }),
            )
            .await;
        assert!(r.problem(422).contains("items[1].exposure"), "{}", r.body);
    }
    assert_eq!(env.count("item_pools").await, 1);
}
