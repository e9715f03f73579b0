//! The test lifecycle beyond one answer: the hot path's I/O budget, pool
//! versions under a running test, and the operators' endpoints.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern::store::IoCounts;
use lectern_tests::{Resp, TestEnv, items_json};
use serde_json::{Value, json};

async fn start(env: &TestEnv, body: Value) -> (String, Value) {
    let r = env.post("/v1/tests", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.body["test_id"].as_str().unwrap().to_owned(), r.body)
}

/// What one request cost in Redis round trips and PostgreSQL checkouts.
async fn cost(env: &TestEnv, request: impl AsyncFnOnce() -> Resp) -> (Resp, IoCounts) {
    let before = env.app.io_counts();
    let r = request().await;
    (r, env.app.io_counts() - before)
}

/// On a warm process a student's own submit costs 4 Redis round trips (one
/// is the session lookup, one the invalidation of the student's cached
/// history, sent alongside the state write) and 1 PostgreSQL transaction, a
/// start at most 4 + 2, a `next` 2 + 0: the owner is known from the state
/// the request reads anyway. Anyone else acting on the test (an org admin)
/// pays one indexed statement more, to learn where they stand.
#[tokio::test]
async fn the_hot_path_keeps_its_io_budget() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await;
    let (_, token) = env.user(Role::Student).await;
    let as_student = async |method: Method, path: &str, body: Option<Value>| {
        env.call_as(Some(&token), method, path, body).await
    };
    // Warm the process: the pool version is loaded once, then served from memory.
    let (warm, first) = start(&env, json!({ "pool_id": pool })).await;
    env.answer(&warm, &first["question"], true).await;

    // An attempt at an exam with a blueprint, enemies and a deadline.
    let items = items_json(2, &env.prefix);
    let design = json!({
        "organization_id": env.org, "name": "budget", "pool_id": pool, "mode": "exam",
        "config": { "max_items": 12, "min_items": 12, "se_target": null, "randomesque": 3 },
        "blueprint": { "fractions": { "min": 2, "max": 4 } },
        "enemies": [[items[0]["id"], items[1]["id"]]],
        "time_limit_s": 3600,
        "levels": [{ "label": "below" }, { "label": "above", "from": 0.0 }],
    });
    let made = env.post("/v1/assessments", design).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let closes = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let given = env
        .post(
            "/v1/assignments",
            json!({ "assessment_id": made.body["id"], "class_id": env.class, "closes_at": closes }),
        )
        .await;
    assert_eq!(given.status, StatusCode::CREATED, "{}", given.body);
    let body = json!({ "assignment_id": given.body["id"] });
    let (started, c) = cost(&env, async || {
        as_student(Method::POST, "/v1/tests", Some(body)).await
    })
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert!(started.body["deadline"].is_string(), "{}", started.body);
    // The assignment, window, attempts and prior in one read; the attempt in one insert.
    assert!(
        c.redis_round_trips <= 4 && c.pg_checkouts <= 2,
        "start cost {c:?}"
    );
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    for i in 0..10 {
        let (r, c) = cost(&env, async || {
            env.answer_as(&token, &test, &question, i % 2 == 0).await
        })
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // The key lookup in `answer_as` reads PostgreSQL on a connection of its own, not the app's.
        assert_eq!(
            c,
            IoCounts {
                redis_round_trips: 4,
                pg_checkouts: 1
            },
            "submit {i}"
        );
        question = r.body["next_question"].clone();
    }
    let path = format!("/v1/tests/{test}/next");
    let (next, c) = cost(&env, async || as_student(Method::GET, &path, None).await).await;
    assert_eq!(next.body, question);
    assert_eq!(
        c,
        IoCounts {
            redis_round_trips: 2,
            pg_checkouts: 0
        }
    );
    // A platform admin acting on the student's test: one statement more.
    let (next, c) = cost(&env, async || env.get(&path).await).await;
    assert_eq!(next.body, question);
    assert_eq!(
        c,
        IoCounts {
            redis_round_trips: 2,
            pg_checkouts: 1
        }
    );
}

/// A running test keeps the pool version it started on; a new test gets the new one.
#[tokio::test]
async fn a_running_test_keeps_its_pool_version() {
    let env = TestEnv::new().await;
    let items = items_json(40, &env.prefix);
    let created = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "v", "items": items[..10] }),
        )
        .await;
    let pool = created.body["pool_id"].as_str().unwrap().to_owned();
    let config = json!({ "max_items": 10, "min_items": 10, "se_target": null });
    let (old, first) = start(&env, json!({ "pool_id": pool, "config": config })).await;
    let added = env
        .post(
            &format!("/v1/pools/{pool}/items"),
            json!({ "items": items[10..] }),
        )
        .await;
    assert_eq!(added.body["version"], 2);
    let originals: Vec<&str> = items[..10]
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let mut question = first["question"].clone();
    for _ in 0..10 {
        assert!(
            originals.contains(&question["id"].as_str().unwrap()),
            "{question}"
        );
        let r = env.answer(&old, &question, true).await;
        question = r.body["next_question"].clone();
    }
    assert!(question.is_null(), "the 10 items of version 1, then done");
    let report = env.get(&format!("/v1/tests/{old}")).await;
    assert_eq!(report.body["pool_version"], 1);
    let (new, _) = start(&env, json!({ "pool_id": pool })).await;
    assert_eq!(
        env.get(&format!("/v1/tests/{new}")).await.body["pool_version"],
        2
    );
}

/// The admin view: active tests from Redis, Redis and PostgreSQL side by side,
/// divergence flagged and repaired by sync, extension recorded in PostgreSQL.
#[tokio::test]
async fn operators_see_compare_sync_and_extend_tests() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let student = env.student().await;
    let (a, a0) = start(&env, json!({ "pool_id": pool, "student_id": student })).await;
    let (b, _) = start(&env, json!({ "pool_id": pool })).await;
    let a1 = env.answer(&a, &a0["question"], true).await;

    let page = env.get("/v1/admin/tests/active?limit=1000").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let tests = page.body["tests"].as_array().unwrap();
    let listed: Vec<&str> = tests
        .iter()
        .map(|t| t["test_id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&a.as_str()) && listed.contains(&b.as_str()));
    let row = tests.iter().find(|t| t["test_id"] == a.as_str()).unwrap();
    assert_eq!(row["student_id"], student.to_string());
    assert_eq!(row["items_answered"], 1);
    assert_eq!(row["theta"], a1.body["proficiency"]["theta"]);
    assert!(row["ttl_s"].as_f64().unwrap() > 1700.0);
    env.get("/v1/admin/tests/active?limit=0").await.problem(422);
    env.get("/v1/admin/tests/active?cursor=abc")
        .await
        .problem(422);

    let seen = env.get(&format!("/v1/admin/tests/{a}")).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.body["divergent"], false, "{}", seen.body);
    assert_eq!(seen.body["redis"]["items_answered"], 1);
    assert_eq!(seen.body["postgres"]["status"], "active");
    assert_eq!(
        seen.body["redis"]["answered"],
        json!([a0["question"]["id"]])
    );

    // Roll Redis back to the start state: the comparison says so, sync repairs it.
    let key = format!("{}test:{{{a}}}:state", env.prefix);
    let mut conn = env.redis().await;
    let now: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut rewound = now.clone();
    rewound[..4].copy_from_slice(&0u32.to_be_bytes());
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&rewound)
        .query_async(&mut conn)
        .await
        .unwrap();
    let diverged = env.get(&format!("/v1/admin/tests/{a}")).await;
    assert_eq!(diverged.body["divergent"], true, "{}", diverged.body);
    let differences = diverged.body["differences"].to_string();
    assert!(differences.contains("items_answered"), "{differences}");
    let synced = env
        .post(&format!("/v1/admin/tests/{a}/sync"), json!({}))
        .await;
    assert_eq!(synced.status, StatusCode::OK, "{}", synced.body);
    assert_eq!(synced.body["divergent"], false, "{}", synced.body);
    let after: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, now, "rebuilt byte for byte");

    // Extend: bounded, recorded in PostgreSQL, refused for an ended test.
    let r = env
        .post(
            &format!("/v1/admin/tests/{b}/extend"),
            json!({ "seconds": 0 }),
        )
        .await;
    assert!(r.problem(422).contains("seconds"));
    env.post(
        &format!("/v1/admin/tests/{b}/extend"),
        json!({ "seconds": 4 * 3600 + 1 }),
    )
    .await
    .problem(422);
    // Extending a test whose state is gone brings the state back, extended.
    let b_key = format!("{}test:{{{b}}}:state", env.prefix);
    let () = redis::cmd("DEL")
        .arg(&b_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let extended = env
        .post(
            &format!("/v1/admin/tests/{b}/extend"),
            json!({ "seconds": 3 * 3600 }),
        )
        .await;
    assert_eq!(extended.status, StatusCode::OK, "{}", extended.body);
    assert!(
        extended.body["ttl_s"].as_f64().unwrap() > 3.0 * 3600.0 - 10.0,
        "{}",
        extended.body
    );
    let kept: bool = env
        .sql()
        .await
        .query_one(
            "SELECT keep_until > now() + interval '2 hours' FROM test_sessions WHERE id = $1",
            &[&b.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(kept);
    env.post(&format!("/v1/tests/{b}/end"), json!({})).await;
    let r = env
        .post(
            &format!("/v1/admin/tests/{b}/extend"),
            json!({ "seconds": 60 }),
        )
        .await;
    assert_eq!(
        r.problem(409),
        "the test is ended; it takes no more answers"
    );
    env.get(&format!("/v1/admin/tests/{}", uuid::Uuid::new_v4()))
        .await
        .problem(404);

    let stats = env.get("/v1/admin/redis/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["keys"]["test_state"], 1, "{}", stats.body);
    assert_eq!(stats.body["keys"]["pool"], 1);
    assert_eq!(stats.body["keys"]["question"], 30);
    assert_eq!(stats.body["keys"]["complete"], true);
    assert!(stats.body["used_memory_bytes"].as_u64().unwrap() > 0);
}
