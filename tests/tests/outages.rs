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

/// A redis-server of the test's own on a free loopback port, so killing it
/// leaves the shared one alone. It keeps nothing on disk.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start_on(port: u16) -> Self {
        let own = Self {
            port,
            child: std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server on PATH (infra/local.sh installs it)"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return own;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {port}"); // `own` is killed and reaped on drop
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (everything in it is lost) and starts a new one on the same port.
    fn restart(mut self) -> Self {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        Self::start_on(self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis killed and restarted empty mid-test: at most a retryable 503 while the
/// connection is re-made, then the test carries on from PostgreSQL, with every
/// answer recorded exactly once.
#[tokio::test]
async fn redis_restarted_mid_test_loses_nothing() {
    let redis = OwnRedis::start();
    let env = TestEnv::with_urls(&redis.url(), None).await;
    let pool = env.demo_pool(20).await;
    let started = env.post("/v1/tests", json!({ "pool_id": pool })).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let q1 = &started.body["question"];
    let body = json!({ "question_id": q1["id"], "response": env.key_of(q1["id"].as_str().unwrap()).await });
    let first = env.post(&format!("/v1/tests/{test}/responses"), body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);

    let _redis = redis.restart();
    let mut next = env.get(&format!("/v1/tests/{test}/next")).await;
    for _ in 0..5 {
        if next.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        next = env.get(&format!("/v1/tests/{test}/next")).await;
    }
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(next.body, first.body["next_question"]);

    let q2 = &next.body;
    let body = json!({ "question_id": q2["id"], "response": env.key_of(q2["id"].as_str().unwrap()).await });
    let second = env.post(&format!("/v1/tests/{test}/responses"), body).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["items_answered"], 2);
    assert_eq!(env.count("test_responses").await, 2);
}
