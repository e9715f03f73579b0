//! `Idempotency-Key` on the creating POSTs (start, sign-up, pools,
//! assessments, assignments): a retry with the same key and body replays the
//! first response (`Idempotent-Replayed: true`) and creates nothing; another
//! body is 422; a bad key is 422; concurrent requests with one key make one
//! row; and when Redis forgot, the row's UNIQUE key still finds the first one.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::{Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// POST `body` to `path` with `Idempotency-Key: key` as `token` (`None`:
/// the admin; `Some(None)`: anonymous).
async fn keyed(
    env: &TestEnv,
    token: Option<Option<&str>>,
    path: &str,
    key: &[u8],
    body: &Value,
) -> Resp {
    let anonymous = matches!(token, Some(None));
    let mut req = lectern_tests::request(token.flatten(), Method::POST, path, Some(body.clone()));
    req.headers_mut()
        .insert("idempotency-key", HeaderValue::from_bytes(key).unwrap());
    if anonymous {
        // `send` signs anonymous requests in as the admin: go around it.
        return lectern_tests::send(&env.twin(), req).await;
    }
    env.send(req).await
}

/// Rows of `table` carrying an idempotency key that ends with `/<key>`.
async fn keyed_rows(env: &TestEnv, table: &str, key: &str) -> i64 {
    env.sql()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE idempotency_key LIKE '%/' || $1"),
            &[&key],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every idempotency record of this environment in Redis, as text.
async fn idem_records(env: &TestEnv) -> Vec<(String, String)> {
    env.redis_entries()
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{}idem:", env.prefix)))
        .map(|(k, v)| (k, String::from_utf8(v.unwrap_or_default()).unwrap()))
        .collect()
}

async fn forget_records(env: &TestEnv) {
    let mut conn = env.redis().await;
    for (key, _) in idem_records(env).await {
        let () = redis::cmd("DEL")
            .arg(&key)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .unwrap();
    }
    assert!(idem_records(env).await.is_empty());
}

fn assert_replay(first: &Resp, again: &Resp) {
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(again.status, first.status, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.headers.get("location"), first.headers.get("location"));
}

fn closes_tomorrow() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Each creating route, in turn: the retry replays, one row, and Redis keeps
/// no answer key, no email, no password.
#[tokio::test]
async fn a_keyed_retry_replays_the_first_response_and_creates_one_row() {
    let env = TestEnv::new().await;
    let items = lectern_tests::items_json(6, &env.prefix);
    let pool_body = json!({ "name": "keyed pool", "organization_id": env.org, "items": items });
    let first = keyed(&env, None, "/v1/pools", b"pool-1", &pool_body).await;
    let again = keyed(&env, None, "/v1/pools", b"pool-1", &pool_body).await;
    assert_replay(&first, &again);
    assert_eq!(keyed_rows(&env, "item_pools", "pool-1").await, 1);
    assert_eq!(env.count("item_pools").await, 1);
    let pool = first.body["pool_id"].as_str().unwrap().to_owned();

    let test_body = json!({ "pool_id": pool });
    let first = keyed(&env, None, "/v1/tests", b"start-1", &test_body).await;
    let again = keyed(&env, None, "/v1/tests", b"start-1", &test_body).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("test_sessions").await, 1);

    let design = json!({ "organization_id": env.org, "name": "keyed", "pool_id": pool });
    let first = keyed(&env, None, "/v1/assessments", b"a-1", &design).await;
    let again = keyed(&env, None, "/v1/assessments", b"a-1", &design).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("assessments").await, 1);

    let assignment = json!({ "assessment_id": first.body["id"], "class_id": env.class,
                             "closes_at": closes_tomorrow() });
    let first = keyed(&env, None, "/v1/assignments", b"g-1", &assignment).await;
    let again = keyed(&env, None, "/v1/assignments", b"g-1", &assignment).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("assignments").await, 1);

    let email = lectern_tests::new_email();
    let sign_up = json!({ "email": email, "password": "correct horse battery",
                          "display_name": "Keyed Student" });
    let users_before = env.count("users").await;
    let first = keyed(&env, Some(None), "/v1/users", b"signup-1", &sign_up).await;
    let again = keyed(&env, Some(None), "/v1/users", b"signup-1", &sign_up).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("users").await, users_before + 1);
    // The same key and account with another password is not the same request.
    let mut other = sign_up.clone();
    other["password"] = json!("another long password");
    let r = keyed(&env, Some(None), "/v1/users", b"signup-1", &other).await;
    assert_eq!(
        (r.status.as_u16(), r.slug()),
        (422, "idempotency-key-reused")
    );

    // What Redis keeps: five records with a 24 h TTL, none with an answer
    // key, an option score, an email or a password.
    let records = idem_records(&env).await;
    assert_eq!(records.len(), 5, "{records:?}");
    for (name, value) in &records {
        let ttl = env.pttl(name).await;
        assert!(
            ttl > 23 * 3600 * 1000 && ttl <= 24 * 3600 * 1000,
            "{name}: {ttl}"
        );
        assert!(!value.contains(&email), "{value}");
        assert!(!value.contains("correct horse"), "{value}");
        // Served questions carry their options, never which one is right.
        assert!(
            !value.contains("correct_answer") && !value.contains("option_scores"),
            "{value}"
        );
    }
    // The retries wrote nothing more.
    assert_eq!(env.count("item_pools").await, 1);
    assert_eq!(env.count("test_sessions").await, 1);
}

/// The same key with another body: 422 `idempotency-key-reused`, nothing
/// created; the first response is still what a true retry gets.
#[tokio::test]
async fn a_reused_key_with_another_body_is_422_and_writes_nothing() {
    let env = TestEnv::new().await;
    let items = lectern_tests::items_json(4, &env.prefix);
    let body = json!({ "name": "first", "organization_id": env.org, "items": items });
    let first = keyed(&env, None, "/v1/pools", b"k", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let mut other = body.clone();
    other["name"] = json!("second");
    let r = keyed(&env, None, "/v1/pools", b"k", &other).await;
    assert!(r.problem(422).contains("different request"));
    assert_eq!(r.slug(), "idempotency-key-reused");
    assert_eq!(env.count("item_pools").await, 1);
    // Also when Redis forgot: the row's hash says it was another request.
    forget_records(&env).await;
    let r = keyed(&env, None, "/v1/pools", b"k", &other).await;
    assert_eq!(
        (r.status.as_u16(), r.slug()),
        (422, "idempotency-key-reused")
    );
    assert_eq!(env.count("item_pools").await, 1);
    let again = keyed(&env, None, "/v1/pools", b"k", &body).await;
    assert_replay(&first, &again);
    // Another caller's same key is another key.
    let (_, teacher) = env.user(Role::Teacher).await;
    let mut theirs = other.clone();
    theirs["items"] = json!(lectern_tests::items_json(4, &format!("{}t", env.prefix)));
    let theirs = keyed(&env, Some(Some(&teacher)), "/v1/pools", b"k", &theirs).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_eq!(env.count("item_pools").await, 2);
}

/// Keys that are empty, too long or not printable ASCII: 422, nothing written.
#[tokio::test]
async fn bad_keys_are_422_and_write_nothing() {
    let env = TestEnv::new().await;
    let items = lectern_tests::items_json(4, &env.prefix);
    let body = json!({ "name": "p", "organization_id": env.org, "items": items });
    let long = vec![b'a'; 256];
    for key in [&b""[..], &long[..], b"tab\there", "caf\u{e9}".as_bytes()] {
        let r = keyed(&env, None, "/v1/pools", key, &body).await;
        assert_eq!(
            (r.status.as_u16(), r.slug()),
            (422, "invalid-idempotency-key"),
            "{key:?}: {}",
            r.body
        );
    }
    assert_eq!(env.count("item_pools").await, 0);
    assert!(idem_records(&env).await.is_empty());
    // 255 characters is fine.
    let ok = keyed(&env, None, "/v1/pools", &long[..255], &body).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

/// Ten requests with one key at once: one row; the others 409
/// `idempotency-in-progress` or the replay of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_create_one_row() {
    let env = Arc::new(TestEnv::new().await);
    let pool = env.demo_pool(10).await;
    let body = json!({ "pool_id": pool });
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (env, body) = (env.clone(), body.clone());
            tokio::spawn(async move { keyed(&env, None, "/v1/tests", b"same", &body).await })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            201 => created.push(r.body),
            409 => assert_eq!(r.slug(), "idempotency-in-progress", "{}", r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(!created.is_empty());
    assert!(created.iter().all(|b| *b == created[0]));
    assert_eq!(env.count("test_sessions").await, 1);
    // Once done, a retry replays it.
    let r = keyed(&env, None, "/v1/tests", b"same", &body).await;
    assert_eq!(r.body, created[0]);
}

/// A first request still running (its claim in Redis, no response yet): 409.
#[tokio::test]
async fn a_retry_while_the_first_runs_is_409() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(10).await;
    let body = json!({ "pool_id": pool });
    let first = keyed(&env, None, "/v1/tests", b"slow", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // Put the record back to "being processed".
    let (name, value) = idem_records(&env).await.pop().unwrap();
    let mut record: Value = serde_json::from_str(&value).unwrap();
    record["done"] = Value::Null;
    let () = redis::cmd("SET")
        .arg(&name)
        .arg(record.to_string())
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    let r = keyed(&env, None, "/v1/tests", b"slow", &body).await;
    assert_eq!(
        (r.status.as_u16(), r.slug()),
        (409, "idempotency-in-progress")
    );
    assert_eq!(env.count("test_sessions").await, 1);
}

/// Redis flushed between the first request and its retry: each route finds
/// the row its first request created (the UNIQUE key) and replays from it.
#[tokio::test]
async fn after_redis_forgot_the_row_is_found_and_replayed() {
    let env = TestEnv::new().await;
    let items = lectern_tests::items_json(6, &env.prefix);
    let pool_body = json!({ "name": "flushed", "organization_id": env.org, "items": items });
    let first = keyed(&env, None, "/v1/pools", b"p", &pool_body).await;
    forget_records(&env).await;
    let again = keyed(&env, None, "/v1/pools", b"p", &pool_body).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("item_pools").await, 1);
    let pool = first.body["pool_id"].clone();

    let (student, token) = env.user(Role::Student).await;
    let test_body = json!({ "pool_id": pool });
    let first = keyed(&env, Some(Some(&token)), "/v1/tests", b"t", &test_body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    forget_records(&env).await;
    let again = keyed(&env, Some(Some(&token)), "/v1/tests", b"t", &test_body).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("test_sessions").await, 1);
    let test: Uuid = first.body["test_id"].as_str().unwrap().parse().unwrap();
    let owner: Option<Uuid> = env
        .sql()
        .await
        .query_one(
            "SELECT student_id FROM test_sessions WHERE id = $1",
            &[&test],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, Some(student));

    let design = json!({ "organization_id": env.org, "name": "flushed", "pool_id": pool });
    let first = keyed(&env, None, "/v1/assessments", b"a", &design).await;
    forget_records(&env).await;
    let again = keyed(&env, None, "/v1/assessments", b"a", &design).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("assessments").await, 1);

    let assignment = json!({ "assessment_id": first.body["id"], "class_id": env.class,
                             "closes_at": closes_tomorrow() });
    let first = keyed(&env, None, "/v1/assignments", b"g", &assignment).await;
    forget_records(&env).await;
    let again = keyed(&env, None, "/v1/assignments", b"g", &assignment).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("assignments").await, 1);

    let sign_up = json!({ "email": lectern_tests::new_email(),
                          "password": "correct horse battery", "display_name": "Flushed" });
    let users = env.count("users").await;
    let first = keyed(&env, Some(None), "/v1/users", b"u", &sign_up).await;
    forget_records(&env).await;
    let again = keyed(&env, Some(None), "/v1/users", b"u", &sign_up).await;
    assert_replay(&first, &again);
    assert_eq!(env.count("users").await, users + 1);
    // The replay put the record back in Redis.
    assert_eq!(idem_records(&env).await.len(), 1);
}

/// Redis stopped: no record anywhere but PostgreSQL. Concurrent
/// requests with one key still make one row (the UNIQUE key refuses the
/// second INSERT; its request replays the winner's row), and a retry replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_the_unique_key_alone_keeps_one_row() {
    let mut redis = lectern_tests::OwnRedis::start();
    let env = Arc::new(TestEnv::with_urls(&redis.url(), None).await);
    // Signed in while Redis answered: the grace cache keeps the admin in.
    assert_eq!(env.get("/v1/pools").await.status, StatusCode::OK);
    redis.kill();
    let items = lectern_tests::items_json(4, &env.prefix);
    let body = json!({ "name": "no redis", "organization_id": env.org, "items": items });
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (env, body) = (env.clone(), body.clone());
            tokio::spawn(async move { keyed(&env, None, "/v1/pools", b"dark", &body).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        bodies.push(r.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(env.count("item_pools").await, 1);
    let again = keyed(&env, None, "/v1/pools", b"dark", &body).await;
    assert_eq!(again.body, bodies[0]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(keyed_rows(&env, "item_pools", "dark").await, 1);
}

/// The guarantee under it all: each of the five tables refuses a second row
/// with a scoped key already used.
#[tokio::test]
async fn the_created_rows_keys_are_unique() {
    let env = TestEnv::new().await;
    let sql = env.sql().await;
    let mut unique: Vec<String> = sql
        .query(
            "SELECT c.conrelid::regclass::text FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE c.contype = 'u' AND n.nspname = current_schema()
               AND pg_get_constraintdef(c.oid) = 'UNIQUE (idempotency_key)'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    unique.sort();
    assert_eq!(
        unique,
        [
            "assessments",
            "assignments",
            "item_pools",
            "test_sessions",
            "users"
        ]
    );
    let items = lectern_tests::items_json(2, &env.prefix);
    let body = json!({ "name": "once", "organization_id": env.org, "items": items });
    let first = keyed(&env, None, "/v1/pools", b"once", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let err = sql
        .execute(
            "INSERT INTO item_pools (id, name, item_count, idempotency_key)
             SELECT gen_random_uuid(), 'twice', 0, idempotency_key FROM item_pools",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    assert_eq!(env.count("item_pools").await, 1);
}

/// A teacher's start of a student's test, replayed from its row after Redis
/// forgot: the teacher may not answer it, but gets their start response back.
#[tokio::test]
async fn a_teachers_start_for_a_student_replays_from_its_row() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(10).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (student, _) = env.user(Role::Student).await;
    let body = json!({ "pool_id": pool, "student_id": student });
    let first = keyed(
        &env,
        Some(Some(&teacher)),
        "/v1/tests",
        b"for-student",
        &body,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    forget_records(&env).await;
    let again = keyed(
        &env,
        Some(Some(&teacher)),
        "/v1/tests",
        b"for-student",
        &body,
    )
    .await;
    assert_replay(&first, &again);
    assert_eq!(env.count("test_sessions").await, 1);
}

/// Each Lambda function's own router (what `sam deploy` runs, not the local
/// server's) takes the key on its creating routes, and only there.
#[tokio::test]
async fn each_functions_router_takes_the_key_on_its_own_routes() {
    let env = TestEnv::new().await;
    let app = env.app.clone();
    let token = env.admin_token();
    let post = |path: &str, body: &Value| {
        let mut req = lectern_tests::request(Some(&token), Method::POST, path, Some(body.clone()));
        req.headers_mut()
            .insert("idempotency-key", HeaderValue::from_static("fn-1"));
        req
    };
    let pools = lectern::api::pools::router(app.clone());
    let items = lectern_tests::items_json(6, &env.prefix);
    let body = json!({ "name": "fn pool", "organization_id": env.org, "items": items });
    let first = lectern_tests::send(&pools, post("/v1/pools", &body)).await;
    let again = lectern_tests::send(&pools, post("/v1/pools", &body)).await;
    assert_replay(&first, &again);
    let pool = first.body["pool_id"].clone();

    let start = lectern::api::start::router(app.clone());
    let body = json!({ "pool_id": pool });
    let first = lectern_tests::send(&start, post("/v1/tests", &body)).await;
    let again = lectern_tests::send(&start, post("/v1/tests", &body)).await;
    assert_replay(&first, &again);

    let assessments = lectern::api::assessments::router(app.clone());
    let body = json!({ "organization_id": env.org, "name": "fn", "pool_id": pool });
    let first = lectern_tests::send(&assessments, post("/v1/assessments", &body)).await;
    let again = lectern_tests::send(&assessments, post("/v1/assessments", &body)).await;
    assert_replay(&first, &again);

    let auth = lectern::api::auth::router(app.clone());
    let body = json!({ "email": lectern_tests::new_email(), "password": "correct horse battery",
                       "display_name": "Fn" });
    let first = lectern_tests::send(&auth, post("/v1/users", &body)).await;
    let again = lectern_tests::send(&auth, post("/v1/users", &body)).await;
    assert_replay(&first, &again);

    // A function without creating routes passes the header through untouched.
    let orgs = lectern::api::orgs::router(app);
    let body = json!({ "name": "Keyed school", "slug": format!("k{}", &env.prefix[13..21]) });
    let first = lectern_tests::send(&orgs, post("/v1/organizations", &body)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = lectern_tests::send(&orgs, post("/v1/organizations", &body)).await;
    assert!(again.headers.get("idempotent-replayed").is_none());
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(env.count("item_pools").await, 1);
    assert_eq!(env.count("assessments").await, 1);
}
