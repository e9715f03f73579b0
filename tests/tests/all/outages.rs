//! Redis or PostgreSQL unreachable: health says so, requests fail with 503
//! problem+json, and nothing half-done is left behind.

use axum::http::{Method, StatusCode};
use lectern_tests::{DEAD_DATABASE_URL, DEAD_REDIS_URL, OwnRedis, TestEnv, redis_url};
use serde_json::json;

#[tokio::test]
async fn health_reports_both_services() {
    let env = TestEnv::new().await;
    let ok = env.get("/v1/health").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["status"], "ok");
    assert_eq!(ok.body["checks"]["redis"]["status"], "ok");
    assert_eq!(ok.body["checks"]["postgres"]["status"], "ok");
    assert!(
        ok.body["checks"]["postgres"]["latency_ms"]
            .as_f64()
            .unwrap()
            >= 0.0
    );

    // Tests are still served without Redis, from PostgreSQL: degraded, not down.
    let no_redis = TestEnv::with_urls(DEAD_REDIS_URL, None).await;
    let r = no_redis.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "degraded");
    assert_eq!(r.body["checks"]["redis"]["status"], "error");
    assert_eq!(r.body["checks"]["postgres"]["status"], "ok");

    let no_db = TestEnv::with_urls(&redis_url(), Some(DEAD_DATABASE_URL)).await;
    let r = no_db.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["checks"]["redis"]["status"], "ok");
    assert_eq!(r.body["checks"]["postgres"]["status"], "error");
    assert!(
        !r.body.to_string().contains("127.0.0.1:1"),
        "addresses must not leak: {}",
        r.body
    );
}

#[tokio::test]
async fn postgres_down_gives_503_and_writes_nothing_to_redis() {
    let env = TestEnv::with_urls(&redis_url(), Some(DEAD_DATABASE_URL)).await;
    let r = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "p", "items": lectern_tests::items_json(2, &env.prefix) }),
        )
        .await;
    assert!(r.problem(503).contains("PostgreSQL"));
    let r = env
        .post("/v1/tests", json!({ "pool_id": uuid::Uuid::new_v4() }))
        .await;
    r.problem(503);
    // Where a caller stands is read from PostgreSQL: without it, nobody is
    // let in or out of an organization, and nobody is guessed into one.
    for (path, body) in [
        (
            "/v1/organizations".to_owned(),
            json!({ "name": "n", "slug": "nn" }),
        ),
        (
            format!("/v1/organizations/{}/members", env.org),
            json!({ "user_id": env.admin, "role": "teacher" }),
        ),
        (
            "/v1/invitations/accept".to_owned(),
            json!({ "code": "x".repeat(43) }),
        ),
    ] {
        assert!(
            env.post(&path, body)
                .await
                .problem(503)
                .contains("PostgreSQL"),
            "{path}"
        );
    }
    assert!(
        env.get(&format!("/v1/students/{}/tests", env.admin))
            .await
            .problem(503)
            .contains("PostgreSQL")
    );
    assert!(env.test_entries().await.is_empty());
}

/// Redis unreachable from the start (a cold process): no token can be checked,
/// so every route that needs one answers 503, sign-in too, and nothing is
/// written; health still answers (degraded), and a request without a token is
/// 401 as ever.
#[tokio::test]
async fn without_redis_from_the_start_tokens_are_checked_in_postgresql() {
    let healthy = TestEnv::new().await;
    let pool = healthy.demo_pool(30).await.to_string();
    let broken = TestEnv::with_urls(DEAD_REDIS_URL, Some(&healthy.database_url)).await;
    let start = |token: Option<String>| {
        let pool = pool.clone();
        let broken = &broken;
        async move {
            broken
                .call_as(
                    token.as_deref(),
                    Method::POST,
                    "/v1/tests",
                    Some(json!({ "pool_id": pool })),
                )
                .await
        }
    };
    // A token no one issued, and none: refused, and nothing written.
    start(Some("A".repeat(43))).await.problem(401);
    start(None).await.problem(401);
    assert_eq!(healthy.count("test_sessions").await, 0);
    // A live session is found in PostgreSQL: the test runs from there.
    let r = start(Some(healthy.admin_token())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(healthy.count("test_sessions").await, 1);
    // Sign-in counts attempts in Redis: it waits for Redis.
    let login = json!({ "email": "nobody@example.test", "password": "long enough password" });
    let r = broken
        .call_as(None, Method::POST, "/v1/sessions", Some(login))
        .await;
    r.problem(503);
    let health = broken.call_as(None, Method::GET, "/v1/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "degraded");
}

/// Redis stopped mid-test: the caller's token is checked in PostgreSQL; the test goes on from PostgreSQL
/// alone, each answer recorded once, and health says `degraded`. Redis back
/// (empty): sessions went with it, so the caller signs in again; the test
/// state re-warms and the test goes on to its end.
#[tokio::test]
async fn redis_stopped_mid_test_degrades_then_rewarms() {
    let mut redis = OwnRedis::start();
    let env = TestEnv::with_urls(&redis.url(), None).await;
    let pool = env.demo_pool(30).await;
    let config = json!({ "max_items": 8, "min_items": 8, "se_target": null });
    let started = env
        .post("/v1/tests", json!({ "pool_id": pool, "config": config }))
        .await;
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let first = env.answer(&test, &started.body["question"], true).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);

    redis.kill();
    let mut question = first.body["next_question"].clone();
    for i in 0..3 {
        let r = env.answer(&test, &question, i % 2 == 1).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "answer {i} without Redis: {}",
            r.body
        );
        question = r.body["next_question"].clone();
    }
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.body, question);
    // A replayed answer is refused by PostgreSQL alone.
    let first_id = started.body["question"]["id"].as_str().unwrap();
    let again = env
        .post(
            &format!("/v1/tests/{test}/responses"),
            json!({ "question_id": first_id, "response": env.key_of(first_id).await }),
        )
        .await;
    again.problem(409);
    assert_eq!(env.count("test_responses").await, 4);
    // A token no one issued is refused: PostgreSQL has no such session.
    let stranger = "A".repeat(43);
    let r = env
        .call_as(
            Some(&stranger),
            Method::GET,
            &format!("/v1/tests/{test}/next"),
            None,
        )
        .await;
    r.problem(401);
    let health = env.get("/v1/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "degraded", "{}", health.body);
    assert_eq!(health.body["checks"]["redis"]["status"], "error");

    redis.revive();
    // Health probes Redis itself, so it sees the recovery at once.
    let health = env.get("/v1/health").await;
    assert_eq!(health.body["status"], "ok", "{}", health.body);
    // The new Redis is empty, but the admin's session is rebuilt from
    // PostgreSQL on its first use: nobody is signed out.
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(next.body, question);
    let state: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{}test:{{{test}}}:state", env.prefix))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let state = state.expect("the state re-warmed into the new Redis");
    assert_eq!(&state[..4], &4u32.to_be_bytes(), "at seq 4");
    let r = env.answer(&test, &question, true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["items_answered"], 5);
    assert_eq!(env.count("test_responses").await, 5);
    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["total_questions"], 5);
}

/// PostgreSQL unreachable mid-test (a proxy the test cuts): a submit gets 503
/// problem+json and the Redis state does not move; PostgreSQL back, the same
/// submit goes through and the test carries on.
#[tokio::test]
async fn postgres_cut_mid_test_leaves_redis_alone_and_resumes() {
    let (_healthy, proxy, env) = TestEnv::behind_database_proxy().await;
    let pool = env.demo_pool(30).await;
    let started = env.post("/v1/tests", json!({ "pool_id": pool })).await;
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let first = env.answer(&test, &started.body["question"], true).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let question = first.body["next_question"].clone();
    let key = env.key_of(question["id"].as_str().unwrap()).await;
    let before = env.test_entries().await;

    proxy.cut();
    let body = json!({ "question_id": question["id"], "response": key });
    let path = format!("/v1/tests/{test}/responses");
    let r = env.post(&path, body.clone()).await;
    assert!(r.problem(503).contains("PostgreSQL"), "{}", r.body);
    assert_eq!(
        env.test_entries().await,
        before,
        "Redis state and locks unchanged"
    );
    // The served question still comes from Redis.
    let next = env.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.body, question);

    proxy.restore();
    let r = env.post(&path, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["items_answered"], 2);
    assert_eq!(env.count("test_responses").await, 2);
}

/// FLUSHALL while 20 tests run: every test finishes, and each one's questions
/// and θ trajectory are exactly those the engine computes from its seed and
/// answers, as a run without the flush would have them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushall_mid_run_changes_no_trajectory() {
    let redis = OwnRedis::start();
    let env = std::sync::Arc::new(TestEnv::with_urls(&redis.url(), None).await);
    let pool = env.demo_pool(120).await.to_string();
    let halfway = std::sync::Arc::new(tokio::sync::Barrier::new(21));
    let flushed = std::sync::Arc::new(tokio::sync::Barrier::new(21));
    let runs: Vec<_> = (0..20)
        .map(|n| {
            let (env, pool) = (env.clone(), pool.clone());
            let (halfway, flushed) = (halfway.clone(), flushed.clone());
            tokio::spawn(async move {
                let config = json!({ "max_items": 12, "min_items": 12, "se_target": null,
                                     "randomesque": 3, "estimator": if n % 2 == 0 { "eap" } else { "wle" } });
                let started = env
                    .post("/v1/tests", json!({ "pool_id": pool, "config": config }))
                    .await;
                assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
                let test = started.body["test_id"].as_str().unwrap().to_owned();
                let mut question = started.body["question"].clone();
                for i in 0..12 {
                    if i == 6 {
                        halfway.wait().await;
                        flushed.wait().await;
                    }
                    let r = env.answer(&test, &question, (i + n) % 3 != 0).await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                    question = r.body["next_question"].clone();
                }
                assert!(question.is_null());
                test
            })
        })
        .collect();
    halfway.wait().await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    // The flush took the sessions, and PostgreSQL gives them back.
    let pools = env.get("/v1/pools").await;
    assert_eq!(pools.status, StatusCode::OK, "{}", pools.body);
    flushed.wait().await;
    let mut tests = Vec::new();
    for run in runs {
        tests.push(run.await.unwrap());
    }
    for test in tests {
        let replayed = replay(&env, &test).await;
        let recorded = recorded(&env, &test).await;
        assert_eq!(recorded.len(), 12);
        assert_eq!(recorded, replayed, "test {test}");
    }
}

/// Each question a test served and the estimate after each answer, as its
/// report (read by the admin) has them.
pub(super) async fn recorded(env: &TestEnv, test: &str) -> Vec<(String, f64, f64)> {
    let report = env.get(&format!("/v1/tests/{test}")).await.body;
    report["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["question_id"].as_str().unwrap().to_owned(),
                r["theta"].as_f64().unwrap(),
                r["se"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// What the engine alone makes of a test's seed, prior, configuration and
/// answers: each question served and the estimate after each answer.
pub(super) async fn replay(env: &TestEnv, test: &str) -> Vec<(String, f64, f64)> {
    let (sql, id) = (env.sql().await, test.parse::<uuid::Uuid>().unwrap());
    let row = sql
        .query_one(
            "SELECT pool_id, pool_version, seed, prior_mean, prior_sd, config FROM test_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let config: lectern::services::cat::TestConfig =
        serde_json::from_value(row.get("config")).unwrap();
    let bank =
        lectern::services::pools::bank(&env.app, row.get("pool_id"), row.get("pool_version"))
            .await
            .unwrap();
    let prior = lectern::engine::NormalPrior {
        mean: row.get("prior_mean"),
        sd: row.get("prior_sd"),
    };
    let seed = row.get::<_, i64>("seed") as u64;
    let cat = config.engine(prior, &bank);
    let answers: Vec<u8> = sql
        .query(
            "SELECT correct FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| u8::from(r.get::<_, bool>(0)))
        .collect();
    let (mut items, mut out) = (Vec::new(), Vec::new());
    let mut next = cat.step(&bank.bank, &[], &[], seed).next;
    for k in 0..answers.len() {
        let item = next.expect("the engine serves a question");
        items.push(item);
        let step = cat.step(&bank.bank, &items, &answers[..=k], seed);
        out.push((
            bank.ids[item].clone(),
            step.estimate.theta,
            step.estimate.se,
        ));
        next = step.next;
    }
    out
}
