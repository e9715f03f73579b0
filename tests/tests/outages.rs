//! Redis or PostgreSQL unreachable: health says so, requests fail with 503
//! problem+json, and nothing half-done is left behind.

use axum::http::StatusCode;
use lectern_tests::{DEAD_DATABASE_URL, DEAD_REDIS_URL, TestEnv, redis_url};
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

    let no_redis = TestEnv::with_urls(DEAD_REDIS_URL, None).await;
    let r = no_redis.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["checks"]["redis"]["status"], "error");
    assert_eq!(r.body["checks"]["postgres"]["status"], "ok");

    let no_db = TestEnv::with_urls(&redis_url(), Some(DEAD_DATABASE_URL)).await;
    let r = no_db.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
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
            json!({ "name": "p", "items": lectern_tests::items_json(2, &env.prefix) }),
        )
        .await;
    assert!(r.problem(503).contains("PostgreSQL"));
    let r = env
        .post("/v1/tests", json!({ "pool_id": uuid::Uuid::new_v4() }))
        .await;
    r.problem(503);
    assert!(env.redis_entries().await.is_empty());
}

/// Redis down: a test cannot be started (503) and no test row is left active without state.
#[tokio::test]
async fn redis_down_gives_503_on_the_test_loop() {
    let healthy = TestEnv::new().await;
    let pool = healthy.demo_pool(10).await;
    let started = healthy.post("/v1/tests", json!({ "pool_id": pool })).await;
    let test = started.body["test_id"].as_str().unwrap().to_owned();

    // A second app on the same schema whose Redis is unreachable.
    let broken = TestEnv::with_urls(DEAD_REDIS_URL, Some(&healthy.database_url)).await;
    let q = &started.body["question"];
    let r = broken
        .post(
            &format!("/v1/tests/{test}/responses"),
            json!({ "question_id": q["id"], "response": "1" }),
        )
        .await;
    assert!(r.problem(503).contains("Redis"));
    broken
        .get(&format!("/v1/tests/{test}/next"))
        .await
        .problem(503);
    assert_eq!(healthy.count("test_responses").await, 0);

    // The healthy app carries on as if nothing happened.
    let next = healthy.get(&format!("/v1/tests/{test}/next")).await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(next.body, *q);
}
