//! Calibration runs from the API: a pool's pretest items, served in live
//! tests, are calibrated from the recorded responses (fixed-item, against
//! the operational items), promoted into a new version and used
//! operationally there, while tests on the old version keep them as pretest
//! items; access, bad bodies, one run per pool at a time, promotion rules,
//! the asynchronous Lambda invocation, failures, and a run claimed twice.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::{Resp, TestEnv, openapi};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// True parameters of the pretest items (2PL): the responses are simulated from them.
const PRETEST: [(&str, f64, f64); 3] = [
    ("pre-a", 1.3, -0.4),
    ("pre-b", 0.9, 0.7),
    ("pre-c", 1.6, 0.1),
];
/// Operational items in the pool.
const OPERATIONAL: usize = 40;

/// A small deterministic generator (splitmix64): uniforms and normals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn p2pl(a: f64, b: f64, theta: f64) -> f64 {
    1.0 / (1.0 + (-a * (theta - b)).exp())
}

/// (a, b) of operational item i.
fn op_params(i: usize) -> (f64, f64) {
    (0.8 + (i % 5) as f64 * 0.3, (i as f64 - 19.5) / 8.0)
}

fn op_id(i: usize) -> String {
    format!("op-{i:02}")
}

/// The pool: 40 operational 2PL items and 3 right/wrong pretest items without parameters.
fn pool_items() -> Vec<Value> {
    let mut items: Vec<Value> = (0..OPERATIONAL)
        .map(|i| {
            let (a, b) = op_params(i);
            json!({ "id": op_id(i), "content": format!("Question {i}"),
                    "options": ["right", "wrong 1", "wrong 2"], "correct_answer": "right",
                    "concepts": ["algebra"], "a": a, "b": b })
        })
        .collect();
    for (k, (id, _, _)) in PRETEST.iter().enumerate() {
        items.insert(
            5 + 10 * k,
            json!({ "id": id, "content": format!("New question {k}"),
                    "options": ["yes", "no"], "correct_answer": "yes",
                    "concepts": ["algebra"], "pretest": true }),
        );
    }
    items
}

async fn create_pool(env: &TestEnv) -> Uuid {
    let body = json!({ "organization_id": env.org, "name": "Calibrated", "items": pool_items() });
    let r = env.post("/v1/pools", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pool_id"].as_str().unwrap().parse().unwrap()
}

/// The true probability of a right answer to `id` at θ.
fn truth(id: &str, theta: f64) -> f64 {
    if let Some((_, a, b)) = PRETEST.iter().find(|(p, _, _)| *p == id) {
        return p2pl(*a, *b, theta);
    }
    let i: usize = id.trim_start_matches("op-").parse().unwrap();
    let (a, b) = op_params(i);
    p2pl(a, b, theta)
}

/// Starts a test on the pool with these design settings (as the admin).
async fn start(env: &TestEnv, pool: Uuid, config: Value) -> (String, Value) {
    let r = env
        .post("/v1/tests", json!({ "pool_id": pool, "config": config }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["test_id"].as_str().unwrap().to_owned(),
        r.body["question"].clone(),
    )
}

/// Answers `question` of `test` as an examinee at θ would (drawn from `rng`).
async fn answer(env: &TestEnv, rng: &mut Rng, theta: f64, test: &str, question: &Value) -> Resp {
    let id = question["id"].as_str().unwrap();
    let right = rng.uniform() < truth(id, theta);
    let r = env.answer(test, question, right).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r
}

/// Runs one examinee at θ through a whole test on the API.
async fn take_test(env: &TestEnv, rng: &mut Rng, pool: Uuid, theta: f64, config: Value) {
    let (test, mut question) = start(env, pool, config).await;
    loop {
        let r = answer(env, rng, theta, &test, &question).await;
        if r.body["next_question"].is_null() {
            break;
        }
        question = r.body["next_question"].clone();
    }
}

/// Seeds `n` finished tests on version 1 straight into PostgreSQL, in the
/// shape the API writes them: each examinee answered 12 operational items
/// (a random block) and every pretest item (flagged `pretest`), scored by
/// the true model.
async fn seed_tests(env: &TestEnv, pool: Uuid, n: usize, rng: &mut Rng) {
    let sql = env.sql().await;
    let (mut tests, mut thetas) = (Vec::new(), Vec::new());
    let (mut sessions, mut seqs, mut questions, mut responses, mut corrects, mut pretests) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let id = Uuid::new_v4();
        let theta = rng.normal();
        let first = (rng.next() % OPERATIONAL as u64) as usize;
        let mut items: Vec<(String, bool)> = (0..12)
            .map(|k| (op_id((first + k * 3) % OPERATIONAL), false))
            .collect();
        for (k, (p, _, _)) in PRETEST.iter().enumerate() {
            items.insert(2 + 3 * k, (p.to_string(), true));
        }
        for (seq, (q, pretest)) in items.into_iter().enumerate() {
            let right = rng.uniform() < truth(&q, theta);
            sessions.push(id);
            seqs.push(seq as i32 + 1);
            responses.push(if right { "right" } else { "wrong" }.to_owned());
            questions.push(q);
            corrects.push(right);
            pretests.push(pretest);
        }
        tests.push(id);
        thetas.push(theta);
    }
    sql.execute(
        "INSERT INTO test_sessions (id, pool_id, pool_version, status, config, seed, prior_mean,
                                    prior_sd, theta, se, items_answered, pretest_answered, org_id)
         SELECT t, $2, 1, 'completed', '{}', 0, 0, 1, th, 0.3, 15, 3, $3
         FROM unnest($1::uuid[], $4::float8[]) AS x(t, th)",
        &[&tests, &pool, &env.org, &thetas],
    )
    .await
    .unwrap();
    sql.execute(
        "INSERT INTO test_responses (session_id, seq, question_id, response, correct, score, pretest,
                                     theta_before, se_before, theta_after, se_after)
         SELECT s, q, i, r, c, c::int, p, 0, 1, 0, 1
         FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::bool[], $6::bool[])
              AS x(s, q, i, r, c, p)",
        &[&sessions, &seqs, &questions, &responses, &corrects, &pretests],
    )
    .await
    .unwrap();
}

/// Polls the calibration until it is no longer queued or running.
async fn wait_for(env: &TestEnv, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = env.get(&format!("/v1/calibrations/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let status = r.body["status"].as_str().unwrap();
        if status != "queued" && status != "running" {
            return r.body;
        }
        assert!(Instant::now() < deadline, "still {status}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_calibration(env: &TestEnv, pool: Uuid, body: Value) -> Resp {
    let path = format!("/v1/pools/{pool}/calibrations");
    assert_eq!(openapi::request_violation("POST", &path, &body), None);
    env.post(&path, body).await
}

async fn count(env: &TestEnv, query: &str, id: &str) -> i64 {
    env.sql()
        .await
        .query_one(query, &[&id])
        .await
        .unwrap()
        .get(0)
}

/// Each response of a test as recorded: (question, flagged pretest).
async fn recorded_flags(env: &TestEnv, test: &str) -> Vec<(String, bool)> {
    let test: Uuid = test.parse().unwrap();
    env.sql()
        .await
        .query(
            "SELECT question_id, pretest FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&test],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The done-when of the feature: pretest items seeded into live tests,
/// calibrated from the recorded responses through the API, promoted into a
/// new version and used operationally there; tests on the old version keep
/// them as pretest items, and the old version's bank is unchanged.
///
/// 40 examinees take whole tests through the API (3 pretest items each); 900
/// more are seeded by SQL in the same shape (the API would take minutes for
/// them on a shared test machine), so each pretest item has about 940
/// responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretest_items_are_calibrated_promoted_and_served_operationally() {
    let env = TestEnv::new().await;
    let pool = create_pool(&env).await;
    let mut rng = Rng(20_240_611);
    let live = json!({ "max_items": 8, "min_items": 8, "se_target": null, "pretest_items": 3 });
    for _ in 0..40 {
        let theta = rng.normal();
        take_test(&env, &mut rng, pool, theta, live.clone()).await;
    }
    let served_live = count(
        &env,
        "SELECT count(*) FROM test_responses WHERE question_id = $1 AND pretest",
        "pre-a",
    )
    .await;
    assert_eq!(served_live, 40, "every live test served every pretest item");
    seed_tests(&env, pool, 900, &mut rng).await;

    // A test running on version 1 while the items are calibrated and promoted.
    let (old_test, old_first) = start(&env, pool, live.clone()).await;
    let old_theta = 0.3;
    let r = answer(&env, &mut rng, old_theta, &old_test, &old_first).await;
    let mut old_question = r.body["next_question"].clone();
    let bank_v1 = lectern::services::pools::bank(&env.app, pool, 1)
        .await
        .unwrap()
        .encode();

    let r = post_calibration(&env, pool, json!({ "min_responses": 100 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["pool_version"], 1);
    let id = r.body["calibration_id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["location"], format!("/v1/calibrations/{id}"));
    let done = wait_for(&env, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["anchor_items"], OPERATIONAL);
    // 40 + 900 tests, and the one running (its first answer recorded).
    assert_eq!(done["summary"]["persons"], 941);
    assert!(done["summary"]["converged"].as_bool().unwrap(), "{done}");
    let results = done["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    // Tolerances: with ~940 responses the SEs are about 0.1 (b) and 0.12 (a).
    for ((id, a, b), result) in PRETEST.iter().zip(results) {
        assert_eq!(result["id"], *id);
        assert_eq!(result["status"], "estimated", "{result}");
        assert_eq!(result["model"], "2pl");
        let (ea, eb) = (result["a"].as_f64().unwrap(), result["b"].as_f64().unwrap());
        assert!((ea - a).abs() < 0.35, "{id}: a {ea} vs {a}");
        assert!((eb - b).abs() < 0.3, "{id}: b {eb} vs {b}");
        let (sa, sb) = (
            result["se"]["a"].as_f64().unwrap(),
            result["se"]["b"].as_f64().unwrap(),
        );
        assert!(sa > 0.0 && sa < 0.3 && sb > 0.0 && sb < 0.3, "{result}");
        let recorded = count(
            &env,
            "SELECT count(*) FROM test_responses WHERE question_id = $1",
            id,
        )
        .await;
        assert_eq!(result["responses"], recorded, "{id}");
    }

    // Promote two: a new version, in one go.
    let body = json!({ "items": ["pre-a", "pre-c"] });
    let path = format!("/v1/calibrations/{id}/promote");
    assert_eq!(openapi::request_violation("POST", &path, &body), None);
    let promoted = env.post(&path, body).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(promoted.body["version"], 2);
    assert_eq!(promoted.body["item_count"], OPERATIONAL + 3);
    // Promoting one of them again: 422 naming it, nothing written.
    let again = env
        .post(&path, json!({ "items": ["pre-b", "pre-a"] }))
        .await;
    let detail = again.problem(422);
    assert!(
        detail.starts_with("items[1]: \"pre-a\" was promoted already"),
        "{detail}"
    );
    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    assert_eq!(shown.body["version"], 2);
    let items = shown.body["items"].as_array().unwrap();
    let item = |id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    let a = item("pre-a");
    assert!(a.get("pretest").is_none() && a["exposure"] == 1.0, "{a}");
    assert_eq!(a["a"], results[0]["a"]);
    assert_eq!(a["b"], results[0]["b"]);
    assert_eq!(item("pre-b")["pretest"], true);

    // Version 1 is what it was (fresh from PostgreSQL too); version 2 serves them operationally.
    let v1 = lectern::services::pools::bank(&env.app, pool, 1)
        .await
        .unwrap();
    assert_eq!(v1.encode(), bank_v1);
    let fresh = lectern::store::pools::load_version(env.app.db(), pool, 1)
        .await
        .unwrap();
    assert_eq!(fresh.bank.encode(), bank_v1);
    assert_eq!(fresh.keys.pretest.len(), 3);
    let v2 = lectern::services::pools::bank(&env.app, pool, 2)
        .await
        .unwrap();
    assert_eq!(v2.bank.len(), OPERATIONAL + 2);
    assert!(v2.index_of("pre-a").is_some() && v2.index_of("pre-c").is_some());
    assert_eq!(v2.pretest_ids, ["pre-b"]);

    // The test running on version 1 still serves them as pretest items, unscored.
    loop {
        let before = old_question.clone();
        let r = answer(&env, &mut rng, old_theta, &old_test, &before).await;
        if r.body["next_question"].is_null() {
            break;
        }
        old_question = r.body["next_question"].clone();
    }
    let report = env.get(&format!("/v1/tests/{old_test}")).await;
    assert_eq!(report.body["pool_version"], 1, "{}", report.body);
    // As recorded (the admin owns these tests, so its view is the examinee's, without flags).
    let recorded = recorded_flags(&env, &old_test).await;
    for (question, pretest) in &recorded {
        assert_eq!(*pretest, question.starts_with("pre-"), "{question}");
    }
    assert_eq!(recorded.iter().filter(|(_, p)| *p).count(), 3);

    // A test started now is on version 2: a promoted item is served and scored.
    let (new_test, mut question) = start(
        &env,
        pool,
        json!({ "max_items": 42, "min_items": 42, "se_target": null }),
    )
    .await;
    let mut theta_before = None::<f64>;
    let mut promoted_moved = 0;
    loop {
        let id = question["id"].as_str().unwrap().to_owned();
        let r = answer(&env, &mut rng, 0.0, &new_test, &question).await;
        let theta = r.body["proficiency"]["theta"].as_f64().unwrap();
        if id == "pre-a" || id == "pre-c" {
            let before = theta_before.expect("a promoted item never comes first here");
            assert_ne!(theta, before, "{id} moved θ");
            promoted_moved += 1;
        }
        assert_ne!(id, "pre-b", "a pretest item without pretest_items");
        theta_before = Some(theta);
        if r.body["next_question"].is_null() {
            break;
        }
        question = r.body["next_question"].clone();
    }
    assert_eq!(
        promoted_moved, 2,
        "42 items of 42: both promoted items were served"
    );
    let report = env.get(&format!("/v1/tests/{new_test}")).await;
    assert_eq!(report.body["pool_version"], 2);
    let recorded = recorded_flags(&env, &new_test).await;
    assert_eq!(recorded.len(), 42);
    assert!(recorded.iter().all(|(_, pretest)| !pretest), "{recorded:?}");
    env.assert_redis_clean().await;
}

/// Who may: the pool's staff; its students are refused (403), outsiders
/// told there is no such pool or calibration (404); bad bodies are 422 with
/// nothing written; a second run while one is queued or running is 409;
/// promotion waits for success (409) and takes only estimated items (422).
#[tokio::test]
async fn calibrations_are_for_the_pools_staff_one_at_a_time() {
    let env = TestEnv::new().await;
    let pool = create_pool(&env).await;
    let (_, student) = env.user(Role::Student).await;
    let outsider_org = env.new_org().await;
    let (_, outsider) = env.member(outsider_org, "teacher").await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let path = format!("/v1/pools/{pool}/calibrations");
    let as_ = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let token = token.to_owned();
        let path = path.to_owned();
        let env = &env;
        async move { env.call_as(Some(&token), method, &path, body).await }
    };
    as_(&student, Method::POST, &path, Some(json!({})))
        .await
        .problem(403);
    let detail = as_(&outsider, Method::POST, &path, Some(json!({})))
        .await
        .problem(404);
    assert_eq!(detail, format!("no pool with id {pool}"));
    for (body, want) in [
        (
            json!({ "min_responses": 0 }),
            "min_responses must be from 1 to 1000000 (got 0)",
        ),
        (
            json!({ "min_responses": 1_000_001 }),
            "min_responses must be from 1 to 1000000 (got 1000001)",
        ),
        (json!({ "min_responses": -3 }), ""),
        (json!({ "min_responses": 2.5 }), ""),
        (json!({ "min_reponses": 10 }), ""),
    ] {
        let r = env.post(&path, body.clone()).await;
        let detail = r.problem(422);
        assert!(detail.contains(want), "{body}: {detail}");
    }
    assert_eq!(env.count("calibrations").await, 0);

    // Hold the pool's one run slot with a queued run nobody works on.
    let held = Uuid::new_v4();
    env.sql()
        .await
        .execute(
            "INSERT INTO calibrations (id, pool_id, pool_version, min_responses) VALUES ($1, $2, 1, 5)",
            &[&held, &pool],
        )
        .await
        .unwrap();
    let r = as_(&teacher, Method::POST, &path, Some(json!({}))).await;
    let detail = r.problem(409);
    assert!(detail.contains("queued or running already"), "{detail}");
    assert_eq!(env.count("calibrations").await, 1);
    // Promotion before it succeeded: 409.
    let promote = format!("/v1/calibrations/{held}/promote");
    let r = env.post(&promote, json!({ "items": ["pre-a"] })).await;
    assert!(r.problem(409).contains("is queued"));
    // Reading it: staff yes, student 403, outsider 404 as if it did not exist.
    let show = format!("/v1/calibrations/{held}");
    let r = as_(&teacher, Method::GET, &show, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    as_(&student, Method::GET, &show, None).await.problem(403);
    let detail = as_(&outsider, Method::GET, &show, None).await.problem(404);
    assert_eq!(detail, format!("no calibration with id {held}"));
    let detail = as_(
        &outsider,
        Method::POST,
        &promote,
        Some(json!({ "items": ["pre-a"] })),
    )
    .await
    .problem(404);
    assert_eq!(detail, format!("no calibration with id {held}"));

    // Let it run here (this process is its worker): no responses, so every item is skipped.
    let report = lectern::services::calibrations::run(&env.app, held)
        .await
        .unwrap();
    assert_eq!(report.status, "succeeded");
    let done = env.get(&show).await.body;
    assert_eq!(done["results"].as_array().unwrap().len(), 3);
    for r in done["results"].as_array().unwrap() {
        assert_eq!(
            (&r["status"], &r["reason"], &r["responses"]),
            (
                &json!("skipped"),
                &json!("fewer than 5 responses"),
                &json!(0)
            ),
            "{r}"
        );
    }
    assert_eq!(done["summary"]["persons"], 0);
    // Claimed twice: it ran once.
    let again = lectern::services::calibrations::run(&env.app, held)
        .await
        .unwrap();
    assert_eq!(again.status, "not_queued");
    // Skipped, unknown, twice named, or none: 422 naming the item, nothing written.
    for (items, want) in [
        (
            json!(["pre-b"]),
            "items[0]: \"pre-b\" was not estimated (fewer than 5 responses)",
        ),
        (
            json!(["op-01"]),
            &*format!("items[0]: \"op-01\" is not a pretest item of calibration {held}"),
        ),
        (
            json!(["nope"]),
            &*format!("items[0]: \"nope\" is not a pretest item of calibration {held}"),
        ),
        (json!([]), "items must have 1 to 1000 entries (got 0)"),
    ] {
        let r = env.post(&promote, json!({ "items": items })).await;
        assert_eq!(r.problem(422), want);
    }
    let version: i32 = env
        .sql()
        .await
        .query_one("SELECT version FROM item_pools WHERE id = $1", &[&pool])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 1);
    // The slot is free again: a new run is queued (and runs in the background).
    let r = as_(&teacher, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["min_responses"], 200);
    let id = r.body["calibration_id"].as_str().unwrap().to_owned();
    assert_eq!(wait_for(&env, &id).await["status"], "succeeded");
}

/// Data the engine cannot take fails the run with a clear error, and frees
/// the pool for the next one.
#[tokio::test]
async fn a_run_on_unusable_data_fails_with_its_reason() {
    let env = TestEnv::new().await;
    let pool = create_pool(&env).await;
    let mut rng = Rng(7);
    seed_tests(&env, pool, 30, &mut rng).await;
    // A score a right/wrong item cannot have (a foreign writer's, say).
    env.sql()
        .await
        .execute(
            "UPDATE test_responses SET score = 3
             WHERE id = (SELECT min(id) FROM test_responses WHERE question_id = 'pre-b')",
            &[],
        )
        .await
        .unwrap();
    let r = post_calibration(&env, pool, json!({ "min_responses": 10 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let done = wait_for(&env, r.body["calibration_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("the responses: item"), "{error}");
    assert!(
        error.contains("score 3 above its highest score 1"),
        "{error}"
    );
    assert!(done.get("results").is_none());
    let r = post_calibration(&env, pool, json!({ "min_responses": 10 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

/// One request a fake Lambda API received.
struct Invocation {
    head: String,
    body: String,
}

/// A fake Lambda API on loopback: answers 202 to each request and hands it over.
async fn fake_lambda() -> (String, tokio::sync::mpsc::Receiver<Invocation>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break (head, text[end + 4..end + 4 + length].to_owned());
                        }
                    }
                    if n == 0 {
                        panic!("connection closed early");
                    }
                };
                socket
                    .write_all(
                        b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
                tx.send(Invocation { head, body }).await.unwrap();
            });
        }
    });
    (format!("http://{addr}"), rx)
}

/// With `CALIBRATE_FUNCTION` set, the run is handed to that function by an
/// asynchronous, SigV4-signed Invoke carrying its id, and nothing runs in
/// the process; the function's handler then runs it (once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_aws_the_run_is_handed_to_the_calibrate_function() {
    let (endpoint, mut invocations) = fake_lambda().await;
    let function = "arn:aws:lambda:eu-west-1:123456789012:function:lectern-calibrate";
    let env = TestEnv::with_vars(&[
        ("CALIBRATE_FUNCTION", function.into()),
        ("CALIBRATE_ENDPOINT", endpoint),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY", "secret".into()),
        ("AWS_SESSION_TOKEN", "session-token".into()),
    ])
    .await;
    let pool = create_pool(&env).await;
    let mut rng = Rng(11);
    seed_tests(&env, pool, 300, &mut rng).await;
    let r = post_calibration(&env, pool, json!({ "min_responses": 50 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id: Uuid = r.body["calibration_id"].as_str().unwrap().parse().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), invocations.recv())
        .await
        .expect("an invocation")
        .unwrap();
    let head = got.head.to_ascii_lowercase();
    assert!(
        got.head.starts_with(
            "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Alectern-calibrate/invocations "
        ),
        "{}",
        got.head
    );
    assert!(head.contains("x-amz-invocation-type: event"), "{head}");
    assert!(
        head.contains("x-amz-security-token: session-token"),
        "{head}"
    );
    assert!(
        head.contains("authorization: aws4-hmac-sha256 credential=akidexample/")
            && head.contains("/eu-west-1/lambda/aws4_request")
            && head.contains(
                "signedheaders=host;x-amz-date;x-amz-invocation-type;x-amz-security-token"
            ),
        "{head}"
    );
    let payload: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(payload, json!({ "calibration_id": id }));
    // Nothing ran here.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.get(&format!("/v1/calibrations/{id}")).await.body["status"],
        "queued"
    );
    // The function's handler, given that event, runs it; a retried event does nothing.
    let event: lectern::api::calibrate::CalibrateEvent = serde_json::from_value(payload).unwrap();
    let context = lambda_runtime::Context::default();
    let report = lectern::api::calibrate::on_event(
        &env.app,
        lambda_runtime::LambdaEvent::new(event, context.clone()),
    )
    .await
    .unwrap();
    assert_eq!(report.status, "succeeded");
    let done = env.get(&format!("/v1/calibrations/{id}")).await.body;
    assert_eq!(done["status"], "succeeded");
    assert!(
        done["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "estimated")
    );
    let retried = lectern::api::calibrate::on_event(
        &env.app,
        lambda_runtime::LambdaEvent::new(
            lectern::api::calibrate::CalibrateEvent { calibration_id: id },
            context,
        ),
    )
    .await
    .unwrap();
    assert_eq!(retried.status, "not_queued");
}
