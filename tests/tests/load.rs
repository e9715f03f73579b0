//! A load run through real HTTP against the whole API: every student signs up
//! and logs in, no errors, every answer recorded once, and Redis left as the
//! design says (every key with a TTL, no key of any question in it).

use std::time::Duration;

use lectern_loadtest::{EMAIL_DOMAIN, Endpoint, LoadConfig, Stop};
use lectern_tests::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_leaves_only_expiring_keys_and_no_answers_in_redis() {
    let env = TestEnv::new().await;
    let pool = env.token_pool(80).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = env.router.clone();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let config = LoadConfig {
        url: format!("http://{addr}"),
        students: 8,
        stop: Stop::Tests(24),
        pool: Some(pool),
        max_items: 10,
        warmup: Duration::ZERO,
        with_next: true,
        ..LoadConfig::default()
    };
    let report = lectern_loadtest::run(&config, |_| {}).await.unwrap();
    server.abort();
    assert_eq!(report.error_count, 0, "{report}");
    assert!(report.tests_completed >= 24, "{report}");

    // Each student signed up as a user of its own.
    let sql = env.sql().await;
    let users: i64 = sql
        .query_one(
            "SELECT count(*) FROM users WHERE email LIKE $1",
            &[&format!("%@{EMAIL_DOMAIN}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users as usize, config.students);

    // Every submit the tool counted is one row, and every test it completed is ended.
    let submits = report.endpoints[&Endpoint::Submit].count;
    assert_eq!(env.count("test_responses").await as u64, submits);
    let ended: i64 = sql
        .query_one(
            "SELECT count(*) FROM test_sessions WHERE status = 'ended'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Tests cut short when the run stopped are ended too, unmeasured.
    assert!(ended as u64 >= report.tests_completed, "{ended}");
    let checked = env.assert_redis_clean().await;
    assert!(
        checked > 80,
        "pool, questions and nothing of the ended tests: {checked}"
    );
}
