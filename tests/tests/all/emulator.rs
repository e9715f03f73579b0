//! Every function's real binary, each in its own process under the Lambda
//! Runtime API emulator (`lambda_emulator`), fed the events AWS sends
//! it (fixtures in `tests/fixtures/`): API Gateway HTTP API v2.0 requests, a
//! CloudFormation custom resource, an EventBridge schedule and WebSocket API
//! events. Checked: what the caller gets back, and what is stored.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use lambda_emulator::{FUNCTIONS, Failure, Function, Invocation, Launch, Outcome};
use lectern::services::auth::Role;
use lectern_tests::emulator::{HttpInvocation, lambda_env};
use lectern_tests::{DEAD_DATABASE_URL, Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// The id the fixtures carry wherever a test puts a real one.
const PLACEHOLDER: &str = "00000000-0000-0000-0000-000000000000";

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An HTTP API event from a fixture: `id` for the placeholder (path, path
/// parameters, body), `token` as the bearer, `body` (JSON text, as API
/// Gateway passes a JSON body) instead of the fixture's.
fn http_event(name: &str, id: Option<&str>, token: Option<&str>, body: Option<Value>) -> Value {
    let mut text = fixture(name).to_string();
    if let Some(id) = id {
        text = text.replace(PLACEHOLDER, id);
    }
    let mut event: Value = serde_json::from_str(&text).unwrap();
    if let Some(token) = token {
        event["headers"]["authorization"] = format!("Bearer {token}").into();
    }
    if let Some(body) = body {
        let body = body.to_string();
        event["headers"]["content-type"] = "application/json".into();
        event["headers"]["content-length"] = body.len().to_string().into();
        event["body"] = body.into();
        event["isBase64Encoded"] = false.into();
    }
    event
}

/// An HTTP function's answer: this status, a JSON content type, a text body.
fn reply(invocation: &Invocation, status: u16) -> Resp {
    let raw = invocation.response();
    assert_eq!(raw["isBase64Encoded"], false, "{raw}");
    let resp = invocation.http();
    assert_eq!(resp.status.as_u16(), status, "{raw}");
    assert_eq!(
        resp.headers[header::CONTENT_TYPE],
        "application/json",
        "{raw}"
    );
    resp
}

async fn start(name: &str, env: &TestEnv) -> Function {
    Function::start(name, &lambda_env(env)).await
}

/// The functions are exactly the packages of `functions/`, each named
/// `lectern-<dir>`: what the emulator tests and the cold-start table cover.
#[test]
fn the_function_list_is_the_workspace() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("name = \"lectern-{name}\"")),
            "functions/{name} is not package lectern-{name}"
        );
        found.insert(name);
    }
    assert_eq!(
        found,
        FUNCTIONS.iter().map(|f| f.to_string()).collect(),
        "lambda_emulator::FUNCTIONS must list functions/"
    );
    // And each one is fed its events by a test of this file.
    let tests = include_str!("emulator.rs");
    for f in FUNCTIONS {
        assert!(
            tests.contains(&format!("start(\"{f}\""))
                || tests.contains(&format!("Launch::function(\"{f}\")")),
            "no test here starts {f}"
        );
    }
}

#[tokio::test]
async fn health_answers_from_its_own_process() {
    let env = TestEnv::new().await;
    let health = start("health", &env).await;
    let event = fixture("apigw-v2-get-health.json");
    let first = health.invoke(event.clone()).await;
    let resp = reply(&first, 200);
    assert_eq!(resp.body["status"], "ok", "{}", resp.body);
    assert!(health.init_duration().is_some());
    // A warm environment serves the next event too, from the same process.
    let second = health.invoke(event).await;
    assert_eq!(reply(&second, 200).body["status"], "ok");
    assert_ne!(first.request_id, second.request_id);
    assert!(health.polls() >= 2, "it asks for each event");
    assert!(health.violations().is_empty(), "{:?}", health.violations());
    // On Lambda every line on stdout is a JSON record CloudWatch can parse;
    // nothing goes to stderr.
    // Two requests: an access line and an EMF record each.
    let logs = logs_until(&health, |logs| logs.len() >= 4).await;
    let stdout = health.stdout();
    assert_eq!(logs.len(), stdout.len(), "{stdout:#?}");
    assert!(health.stderr().is_empty(), "{}", health.output());
}

/// The function's log lines once `done` says they are all in (or after 2 s):
/// they are written before the answer is posted, but reach us through a pipe
/// read on another thread.
async fn logs_until(function: &Function, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut logs = function.logs();
    for _ in 0..100 {
        if done(&logs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        logs = function.logs();
    }
    logs
}

/// The log lines and the EMF record one invocation left: exactly one
/// `request` line in its span, and one metrics record, both checked against
/// the route and status; returns the record.
async fn observed(function: &Function, invocation: &Invocation, route: &str, status: u16) -> Value {
    let mine = |v: &&Value| {
        v["span"]["request_id"] == invocation.request_id.as_str()
            || v["RequestId"] == invocation.request_id.as_str()
    };
    let logs = logs_until(function, |logs| logs.iter().filter(mine).count() >= 2).await;
    let lines: Vec<&Value> = logs
        .iter()
        .filter(mine)
        .filter(|v| v["fields"]["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 1, "one access line: {logs:#?}");
    let span = &lines[0]["span"];
    assert_eq!(
        span["function"],
        format!("lectern-test-{}", function.name())
    );
    assert_eq!(span["route"], route);
    assert_eq!(lines[0]["fields"]["status"], status);
    let records: Vec<&Value> = logs
        .iter()
        .filter(mine)
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(records.len(), 1, "one EMF record: {logs:#?}");
    let record = records[0].clone();
    let declared = &record["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(declared["Namespace"], "Lectern");
    assert_eq!(declared["Dimensions"], json!([["Function", "Route"]]));
    let names: Vec<&str> = declared["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Requests",
            "Latency",
            "Errors",
            "ClientErrors",
            "CacheHits",
            "CacheMisses"
        ]
    );
    assert!(record["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(record["Function"], span["function"]);
    assert_eq!(record["Route"], route);
    assert_eq!(record["Requests"], 1.0);
    assert!(record["Latency"].as_f64().unwrap() > 0.0);
    assert_eq!(record["Status"], status);
    assert_eq!(record["Errors"], if status >= 500 { 1.0 } else { 0.0 });
    assert_eq!(
        record["ClientErrors"],
        if (400..500).contains(&status) {
            1.0
        } else {
            0.0
        }
    );
    record
}

/// Every request leaves one JSON access line in its invocation's span
/// (request id, function, route) and one EMF record with its figures,
/// cache hits and misses included.
#[tokio::test]
async fn every_request_logs_its_span_and_one_metrics_record() {
    let env = TestEnv::new().await;
    let pools = start("pools", &env).await;
    let mut event = fixture("apigw-v2-post-pools.json");
    let refused = pools.invoke(event.clone()).await;
    observed(&pools, &refused, "POST /v1/pools", 401).await;
    // A teacher of one organization: the pool goes to it.
    let (_, teacher) = env.user(Role::Teacher).await;
    event["headers"]["authorization"] = format!("Bearer {teacher}").into();
    let created = pools.invoke(event.clone()).await;
    observed(&pools, &created, "POST /v1/pools", 201).await;
    let id = created.http().body["pool_id"].as_str().unwrap().to_owned();

    // The same pool read twice: loaded from PostgreSQL, then found in Redis.
    let path = format!("/v1/pools/{id}");
    event["routeKey"] = "GET /v1/pools/{id}".into();
    event["rawPath"] = path.clone().into();
    event["requestContext"]["routeKey"] = "GET /v1/pools/{id}".into();
    event["requestContext"]["http"]["method"] = "GET".into();
    event["requestContext"]["http"]["path"] = path.into();
    event["pathParameters"] = json!({ "id": id });
    event.as_object_mut().unwrap().remove("body");
    event["isBase64Encoded"] = false.into();
    let first = pools.invoke(event.clone()).await;
    let cold = observed(&pools, &first, "GET /v1/pools/{id}", 200).await;
    let second = pools.invoke(event).await;
    let warm = observed(&pools, &second, "GET /v1/pools/{id}", 200).await;
    assert!(cold["CacheMisses"].as_f64().unwrap() >= 1.0, "{cold}");
    assert_eq!(warm["CacheMisses"], 0.0, "{warm}");
    assert!(warm["CacheHits"].as_f64().unwrap() >= 1.0, "{warm}");
}

#[tokio::test]
async fn pools_creates_a_pool_for_staff_and_refuses_anonymous_callers() {
    let env = TestEnv::new().await;
    let pools = start("pools", &env).await;
    let event = fixture("apigw-v2-post-pools.json");
    pools.invoke(event.clone()).await.http().problem(401);
    assert_eq!(env.count("item_pools").await, 0);

    // The fixture's body is base64, as API Gateway may send it.
    // A teacher of one organization: the pool goes to it.
    let (_, teacher) = env.user(Role::Teacher).await;
    let mut signed = event;
    signed["headers"]["authorization"] = format!("Bearer {teacher}").into();
    let created = reply(&pools.invoke(signed).await, 201);
    assert_eq!(created.body["name"], "Lambda pool", "{}", created.body);
    let id: Uuid = created.body["pool_id"].as_str().unwrap().parse().unwrap();
    let row = env
        .sql()
        .await
        .query_one("SELECT name FROM item_pools WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Lambda pool");
    let key: String = env
        .sql()
        .await
        .query_one("SELECT correct_answer FROM questions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, "4");
}

/// orgs in its own process: an org admin adds a member (by email, as the
/// fixture does) and a teacher is refused; the membership is stored once.
#[tokio::test]
async fn orgs_adds_a_member_for_org_admins_and_refuses_others() {
    let env = TestEnv::new().await;
    let orgs = start("orgs", &env).await;
    let org = env.org.to_string();
    let admin = lectern::store::users::ensure(env.app.db(), &lectern_tests::new_email(), "student")
        .await
        .unwrap();
    env.join(env.org, admin, "org_admin").await;
    let admin_token = env.sign_in(admin, Role::Student).await;
    let email = lectern_tests::new_email();
    let user = lectern::store::users::ensure(env.app.db(), &email, "student")
        .await
        .unwrap();
    let body = json!({ "email": email, "role": "teacher" });
    let event = |token: Option<&str>| {
        http_event(
            "apigw-v2-post-organization-members.json",
            Some(&org),
            token,
            Some(body.clone()),
        )
    };
    orgs.invoke(event(None)).await.http().problem(401);
    let (_, teacher) = env.user(Role::Teacher).await;
    let refused = orgs.invoke(event(Some(&teacher))).await.http();
    refused.problem(403);
    let added = reply(&orgs.invoke(event(Some(&admin_token))).await, 201);
    assert_eq!(added.body["user_id"], user.to_string(), "{}", added.body);
    assert_eq!(added.body["role"], "teacher");
    let again = orgs.invoke(event(Some(&admin_token))).await.http();
    again.problem(409);
    assert_eq!(again.slug(), "already-member");
    let role: String = env
        .sql()
        .await
        .query_one(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            &[&env.org, &user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "teacher");
}

/// assessments in its own process: a teacher assigns an assessment to their
/// class; a student of the class is refused; the assignment is stored once.
#[tokio::test]
async fn assessments_assigns_for_class_staff_and_refuses_students() {
    let env = TestEnv::new().await;
    let assessments = start("assessments", &env).await;
    let pool = env.demo_pool(20).await;
    let made = env
        .post(
            "/v1/assessments",
            json!({ "organization_id": env.org, "name": "Quiz", "pool_id": pool }),
        )
        .await;
    assert_eq!(made.status.as_u16(), 201, "{}", made.body);
    let closes = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body =
        json!({ "assessment_id": made.body["id"], "class_id": env.class, "closes_at": closes });
    let event = |token: Option<&str>| {
        http_event(
            "apigw-v2-post-assignments.json",
            None,
            token,
            Some(body.clone()),
        )
    };
    assessments.invoke(event(None)).await.http().problem(401);
    let (_, student) = env.user(Role::Student).await;
    assessments
        .invoke(event(Some(&student)))
        .await
        .http()
        .problem(403);
    assert_eq!(env.count("assignments").await, 0);
    let (_, teacher) = env.user(Role::Teacher).await;
    let given = reply(&assessments.invoke(event(Some(&teacher))).await, 201);
    assert_eq!(
        given.body["class_id"],
        env.class.to_string(),
        "{}",
        given.body
    );
    assert_eq!(env.count("assignments").await, 1);
}

/// start → next → submit … → end → session: five functions, five processes,
/// one test, as a student takes it through API Gateway.
#[tokio::test]
async fn a_test_runs_start_to_end_through_five_functions() {
    let env = TestEnv::new().await;
    // Long unique options, so that a key in Redis can be searched for byte by byte.
    let pool = env.token_pool(30).await.to_string();
    let (student, token) = env.user(Role::Student).await;
    let vars = lambda_env(&env);
    let (start, next, submit, end, session) = tokio::join!(
        Function::start("start", &vars),
        Function::start("next", &vars),
        Function::start("submit", &vars),
        Function::start("end", &vars),
        Function::start("reports", &vars),
    );

    // Staff choose a short design (a student may not send one); the student takes it.
    let admin = env.admin_token();
    let short = json!({ "pool_id": pool, "student_id": student, "config": { "max_items": 3, "min_items": 3 } });
    let started = start
        .invoke(http_event(
            "apigw-v2-post-tests.json",
            Some(&pool),
            Some(&admin),
            Some(short),
        ))
        .await;
    let started = reply(&started, 201);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    assert_eq!(started.headers["location"], format!("/v1/tests/{test}"));
    assert_eq!(started.body["status"], "active");
    assert_eq!(started.body["config"]["max_items"], 3);
    assert!(
        !started.body.to_string().contains("correct_answer"),
        "{}",
        started.body
    );
    let mut question = started.body["question"].clone();
    assert!(question["id"].is_string(), "{}", started.body);
    let owner: Uuid = env
        .sql()
        .await
        .query_one(
            "SELECT student_id FROM test_sessions WHERE id = $1::text::uuid",
            &[&test],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, student);

    for i in 0..3 {
        // Never the key, in any field, wherever a question is shown.
        let key = env.key_of(question["id"].as_str().unwrap()).await;
        assert!(
            !question.to_string().contains("correct_answer"),
            "{question}"
        );
        let served = reply(
            &next
                .invoke(http_event(
                    "apigw-v2-get-test-next.json",
                    Some(&test),
                    Some(&token),
                    None,
                ))
                .await,
            200,
        );
        assert_eq!(
            served.body, question,
            "next serves the question of the test"
        );

        let right = i != 1;
        let response = if right {
            key.clone()
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
        let answered = submit
            .invoke(http_event(
                "apigw-v2-post-test-responses.json",
                Some(&test),
                Some(&token),
                Some(json!({ "question_id": question["id"], "response": response })),
            ))
            .await;
        let answered = reply(&answered, 200);
        assert_eq!(answered.body["correct"], right, "{}", answered.body);
        assert_eq!(answered.body["items_answered"], i + 1);
        let stored = env
            .sql()
            .await
            .query_one(
                "SELECT question_id, response, correct FROM test_responses
                 WHERE session_id = $1::text::uuid AND seq = $2",
                &[&test, &(i + 1)],
            )
            .await
            .unwrap();
        assert_eq!(stored.get::<_, String>(0), question["id"].as_str().unwrap());
        assert_eq!(stored.get::<_, String>(1), response);
        assert_eq!(stored.get::<_, bool>(2), right);
        question = answered.body["next_question"].clone();
        if i < 2 {
            assert_eq!(answered.body["status"], "active");
        } else {
            assert_eq!(answered.body["status"], "completed");
            assert_eq!(question, Value::Null);
        }
    }

    let ended = end
        .invoke(http_event(
            "apigw-v2-post-test-end.json",
            Some(&test),
            Some(&token),
            None,
        ))
        .await;
    let ended = reply(&ended, 200);
    assert_eq!(ended.body["status"], "ended", "{}", ended.body);
    assert_eq!(ended.body["total_questions"], 3);
    assert_eq!(ended.body["correct_responses"], 2);
    let status: String = env
        .sql()
        .await
        .query_one(
            "SELECT status FROM test_sessions WHERE id = $1::text::uuid",
            &[&test],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "ended");
    let overall: f64 = env
        .sql()
        .await
        .query_one(
            "SELECT theta FROM student_proficiencies WHERE student_id = $1 AND concept = ''",
            &[&student],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(json!(overall), ended.body["proficiency"]["theta"]);
    assert!(env.test_entries().await.is_empty(), "live state removed");

    let report = session
        .invoke(http_event(
            "apigw-v2-get-test.json",
            Some(&test),
            Some(&token),
            None,
        ))
        .await;
    let report = reply(&report, 200);
    assert_eq!(report.body["status"], "ended");
    assert_eq!(report.body["responses"].as_array().unwrap().len(), 3);
    // Another student's token: the test does not exist for them.
    let (_, other) = env.user(Role::Student).await;
    session
        .invoke(http_event(
            "apigw-v2-get-test.json",
            Some(&test),
            Some(&other),
            None,
        ))
        .await
        .http()
        .problem(404);
    env.assert_redis_clean().await;
}

#[tokio::test]
async fn auth_signs_up_signs_in_and_records_the_device() {
    let env = TestEnv::new().await;
    let auth = start("auth", &env).await;
    let created = reply(
        &auth
            .invoke(http_event("apigw-v2-post-users.json", None, None, None))
            .await,
        201,
    );
    assert_eq!(created.body["email"], "ada@example.com", "{}", created.body);
    assert_eq!(created.body["role"], "student");
    assert!(!created.body.to_string().contains("correct horse battery"));
    let hash: String = env
        .sql()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'ada@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    // The sign-in fixture's body is base64; its user agent and source IP are the device.
    let signed_in = reply(
        &auth
            .invoke(http_event("apigw-v2-post-sessions.json", None, None, None))
            .await,
        201,
    );
    let token = signed_in.body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "{}", signed_in.body);
    let me = reply(
        &auth
            .invoke(http_event(
                "apigw-v2-get-sessions-current.json",
                None,
                Some(&token),
                None,
            ))
            .await,
        200,
    );
    assert_eq!(me.body["current"], true, "{}", me.body);
    assert_eq!(me.body["ip"], "203.0.113.10");
    assert!(
        me.body["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("Mozilla/5.0"),
        "{}",
        me.body
    );

    let wrong = http_event(
        "apigw-v2-post-sessions.json",
        None,
        None,
        Some(json!({ "email": "ada@example.com", "password": "not the password" })),
    );
    let refused = auth.invoke(wrong).await.http();
    refused.problem(401);
    assert_eq!(refused.slug(), "invalid-credentials");
}

#[tokio::test]
async fn cache_admin_answers_admins_only() {
    let env = TestEnv::new().await;
    let admin = start("cache-admin", &env).await;
    let event = |token: &str| {
        http_event(
            "apigw-v2-get-admin-cache-stats.json",
            None,
            Some(token),
            None,
        )
    };
    let stats = reply(&admin.invoke(event(&env.admin_token())).await, 200);
    assert!(stats.body.is_object(), "{}", stats.body);
    let (_, student) = env.user(Role::Student).await;
    admin.invoke(event(&student)).await.http().problem(403);
}

#[tokio::test]
async fn teach_starts_a_session_and_answers_an_input() {
    let env = TestEnv::new().await;
    let teach = start("teach", &env).await;
    let (student, token) = env.user(Role::Student).await;
    // The fixture's course id is the placeholder: this environment's course.
    let course = env.course(3).await.to_string();
    let started = reply(
        &teach
            .invoke(http_event(
                "apigw-v2-post-teaching-sessions.json",
                Some(&course),
                Some(&token),
                None,
            ))
            .await,
        201,
    );
    assert_eq!(
        started.body["action"]["type"], "teach_segment",
        "{}",
        started.body
    );
    let session = started.body["session_id"].as_str().unwrap().to_owned();
    let said = reply(
        &teach
            .invoke(http_event(
                "apigw-v2-post-teaching-input.json",
                Some(&session),
                Some(&token),
                None,
            ))
            .await,
        200,
    );
    assert_eq!(said.body["intent"], "question", "{}", said.body);
    assert_eq!(said.body["action"]["type"], "answer_question");
    assert_eq!(said.body["action"]["question"], "What is a fraction?");
    let sql = env.sql().await;
    let owner: Uuid = sql
        .query_one(
            "SELECT user_id FROM teaching_sessions WHERE id = $1::text::uuid",
            &[&session],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, student);
    let asked: String = sql
        .query_one(
            "SELECT question FROM teaching_questions WHERE session_id = $1::text::uuid",
            &[&session],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(asked, "What is a fraction?");
    assert_eq!(env.count("teaching_transitions").await, 2);
}

// ---- migrate ----------------------------------------------------------------

/// One request a stand-in HTTP endpoint received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A loopback HTTP server that answers 200 to anything and records it: the
/// pre-signed S3 URL CloudFormation hands a custom resource, or the API
/// Gateway Management API.
#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    async fn start(&self) -> SocketAddr {
        async fn record(
            State(sink): State<Sink>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            sink.received.lock().unwrap().push(Received {
                method,
                path: uri.path().to_owned(),
                headers,
                body: body.to_vec(),
            });
            StatusCode::OK
        }
        let app = axum::Router::new()
            .fallback(record)
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

fn custom_resource(kind: &str, response_url: &str) -> Value {
    let mut event = fixture("cfn-create.json");
    event["RequestType"] = kind.into();
    event["ResponseURL"] = response_url.into();
    if kind != "Create" {
        event["PhysicalResourceId"] = "lectern-schema".into();
    }
    event
}

/// The one answer CloudFormation got, PUT as the pre-signed S3 URL wants it;
/// the invocation's own result is the same document.
fn told(sink: &Sink, invocation: &Invocation) -> Value {
    let received = sink.take();
    let [put] = received.as_slice() else {
        panic!("one answer to CloudFormation: {received:?}")
    };
    assert_eq!(put.method, Method::PUT);
    assert_eq!(put.path, "/cloudformation-custom-resource-response");
    assert!(
        put.header("content-type").unwrap_or("").is_empty(),
        "S3 signed an empty content type"
    );
    let body = put.json();
    assert_eq!(&body, invocation.response());
    assert_eq!(body["RequestId"], "6f5a1c1e-1f0e-4c6e-9f62-7d9d7c1e2a3b");
    assert_eq!(body["LogicalResourceId"], "Migrations");
    assert_eq!(
        body["StackId"],
        "arn:aws:cloudformation:us-east-1:123456789012:stack/lectern-dev/5b6f1a20-8a3b-11ef-a1b2-0a1b2c3d4e5f"
    );
    assert_eq!(body["PhysicalResourceId"], "lectern-schema");
    body
}

async fn tables(env: &TestEnv) -> i64 {
    env.sql()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&env.schema],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrate_builds_the_schema_on_create_and_leaves_it_on_delete() {
    let env = TestEnv::new().await;
    // An empty schema, as on the first deploy.
    env.sql()
        .await
        .batch_execute(&format!(
            "DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}",
            env.schema
        ))
        .await
        .unwrap();
    let sink = Sink::default();
    let url = format!(
        "http://{}/cloudformation-custom-resource-response",
        sink.start().await
    );
    let migrate = start("migrate", &env).await;

    // Delete never touches the schema (the data outlives the stack).
    let deleted = migrate.invoke(custom_resource("Delete", &url)).await;
    let body = told(&sink, &deleted);
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(tables(&env).await, 0);

    let created = migrate.invoke(custom_resource("Create", &url)).await;
    let body = told(&sink, &created);
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    let mut migrations: Vec<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    migrations.sort();
    let applied = body["Data"]["Applied"].as_str().unwrap();
    for file in &migrations {
        let name = file.trim_end_matches(".sql");
        assert!(applied.contains(name), "{name} not in {applied:?}");
    }
    assert!(tables(&env).await > 0);
    assert_eq!(env.count("test_responses").await, 0);
    let history = env.count("refinery_schema_history").await;
    assert_eq!(history, migrations.len() as i64);

    // An Update applies what is new: nothing.
    let updated = migrate.invoke(custom_resource("Update", &url)).await;
    let body = told(&sink, &updated);
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["Data"]["Applied"], "");
    assert_eq!(env.count("refinery_schema_history").await, history);
}

#[tokio::test]
async fn migrate_reports_failed_to_cloudformation_when_the_database_is_down() {
    let sink = Sink::default();
    let url = format!(
        "http://{}/cloudformation-custom-resource-response",
        sink.start().await
    );
    let migrate = Function::start(
        "migrate",
        &[("DATABASE_URL".into(), DEAD_DATABASE_URL.into())],
    )
    .await;
    // The invocation completes (the stack must not wait an hour): FAILED, with why.
    let failed = migrate.invoke(custom_resource("Create", &url)).await;
    let body = told(&sink, &failed);
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        !body["Reason"].as_str().unwrap().is_empty(),
        "a reason for the stack events"
    );
    let failure =
        |l: &Value| l["level"] == "ERROR" && l["fields"]["message"] == "migrations failed";
    let logs = logs_until(&migrate, |logs| logs.iter().any(failure)).await;
    assert!(logs.iter().any(failure), "{}", migrate.output());
    // Delete still succeeds: it never needs the database.
    let deleted = migrate.invoke(custom_resource("Delete", &url)).await;
    assert_eq!(told(&sink, &deleted)["Status"], "SUCCESS");
}

#[tokio::test]
async fn migrate_fails_the_invocation_when_cloudformation_cannot_be_answered() {
    let env = TestEnv::new().await;
    let migrate = start("migrate", &env).await;
    // Nothing listens there: the answer cannot be delivered, so the invocation
    // fails (and Lambda retries the asynchronous event) rather than succeeding silently.
    let invocation = migrate
        .invoke(custom_resource(
            "Update",
            "http://127.0.0.1:1/cloudformation-custom-resource-response",
        ))
        .await;
    let error = invocation.error();
    assert!(error["errorMessage"].is_string(), "{error}");
    // The environment is still alive and serves the next event.
    let sink = Sink::default();
    let url = format!(
        "http://{}/cloudformation-custom-resource-response",
        sink.start().await
    );
    let again = migrate.invoke(custom_resource("Update", &url)).await;
    assert_eq!(told(&sink, &again)["Status"], "SUCCESS");
}

// ---- sweeper ----------------------------------------------------------------

#[tokio::test]
async fn the_sweeper_abandons_idle_tests_and_answers_with_its_report() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(20).await;
    let mut tests = Vec::new();
    for _ in 0..2 {
        let r = env.post("/v1/tests", json!({ "pool_id": pool })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        tests.push(r.body["test_id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let (gone, live) = (tests[0], tests[1]);
    // Both idle for two hours; only the first lost its live state.
    env.sql()
        .await
        .execute(
            "UPDATE test_sessions SET updated_at = now() - interval '2 hours' WHERE id = ANY($1)",
            &[&tests],
        )
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(env.app.redis().keys().test_state(gone))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();

    let sweeper = start("sweeper", &env).await;
    let report = sweeper.invoke(fixture("eventbridge-scheduled.json")).await;
    assert_eq!(
        report.response(),
        &json!({ "checked": 2, "abandoned": 1, "batches": 1, "timed_out": 0, "sessions_deleted": 0,
                "audit_partitions_made": 0, "audit_partitions_dropped": 0, "erasures_finished": 0,
                "tutoring_abandoned": 0 })
    );
    let status = |id: Uuid| {
        let env = &env;
        async move {
            env.sql()
                .await
                .query_one("SELECT status FROM test_sessions WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(status(gone).await, "abandoned");
    assert_eq!(status(live).await, "active");
    // A manual `aws lambda invoke` with `{}` sweeps too; nothing is left to abandon.
    let again = sweeper.invoke(json!({})).await;
    assert_eq!(again.response()["abandoned"], 0);
    // Each sweep writes one EMF record: the tests still active, and those abandoned.
    let emf = |v: &Value| v.get("_aws").is_some();
    let logs = logs_until(&sweeper, |logs| logs.iter().filter(|v| emf(v)).count() >= 2).await;
    let records: Vec<Value> = logs.into_iter().filter(emf).collect();
    assert_eq!(records.len(), 2, "{records:#?}");
    for (record, abandoned) in records.iter().zip([1.0, 0.0]) {
        assert_eq!(
            record["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(record["Function"], "lectern-test-sweeper");
        assert_eq!(record["ActiveTests"], 1.0, "{record}");
        assert_eq!(record["TestsAbandoned"], abandoned, "{record}");
    }
}

// ---- events -----------------------------------------------------------------

/// The events function, as Lambda runs it: a scheduled event (or a writer's
/// `{"trigger":"after-write"}`) drains the outbox to the bus and answers
/// with its report; one EMF record per drain with the backlog left.
#[tokio::test]
async fn events_drains_the_outbox_to_the_bus_and_answers_with_its_report() {
    let env = TestEnv::new().await;
    let fake = lectern_tests::fake_eventbridge::FakeEventBridge::default();
    let endpoint = fake.start().await;
    let user = Uuid::new_v4();
    {
        let mut client = env.app.db().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        lectern::store::outbox::user_erased(&tx, user)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut vars = lambda_env(&env);
    vars.push(("EVENT_BUS_NAME".into(), "lectern-test".into()));
    vars.push(("EVENTS_ENDPOINT".into(), endpoint));
    let events = Function::start("events", &vars).await;
    let report = events.invoke(fixture("eventbridge-scheduled.json")).await;
    assert_eq!(
        report.response(),
        &json!({ "published": 1, "refused": 0, "calls": 1, "busy": false, "purged": 0 })
    );
    let delivered = fake.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["data"], json!({ "user_id": user }));
    let again = events.invoke(json!({ "trigger": "after-write" })).await;
    assert_eq!(again.response()["published"], 0);
    let emf = |v: &Value| v.get("_aws").is_some();
    let logs = logs_until(&events, |logs| logs.iter().filter(|v| emf(v)).count() >= 2).await;
    let records: Vec<Value> = logs.into_iter().filter(emf).collect();
    for (record, published) in records.iter().zip([1.0, 0.0]) {
        assert_eq!(record["Function"], "lectern-test-events");
        assert_eq!(record["EventsPublished"], published, "{record}");
        assert_eq!(record["EventsBacklog"], 0.0, "{record}");
    }
}

// ---- calibrate --------------------------------------------------------------

/// The calibrate function, as Lambda runs it: the asynchronous event
/// `{"calibration_id"}` runs that calibration and reports its status; the
/// same event again (a retry) finds it run and does nothing.
#[tokio::test]
async fn calibrate_runs_the_queued_calibration_of_its_event() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(5).await;
    let id = Uuid::new_v4();
    env.sql()
        .await
        .execute(
            "INSERT INTO calibrations (id, pool_id, pool_version, min_responses) VALUES ($1, $2, 1, 10)",
            &[&id, &pool],
        )
        .await
        .unwrap();
    let calibrate = start("calibrate", &env).await;
    let done = calibrate.invoke(json!({ "calibration_id": id })).await;
    assert_eq!(
        done.response(),
        &json!({ "calibration_id": id, "status": "succeeded" })
    );
    let again = calibrate.invoke(json!({ "calibration_id": id })).await;
    assert_eq!(again.response()["status"], "not_queued");
    let status: String = env
        .sql()
        .await
        .query_one("SELECT status FROM calibrations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
}

// ---- teach-ws ---------------------------------------------------------------

fn ws_event(name: &str, connection: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut event = fixture(name);
    event["requestContext"]["connectionId"] = connection.into();
    edit(&mut event);
    event
}

fn connect_event(connection: &str, token: &str) -> Value {
    ws_event("apigw-ws-connect.json", connection, |v| {
        v["headers"]["Authorization"] = format!("Bearer {token}").into();
        v["multiValueHeaders"]["Authorization"] = json!([format!("Bearer {token}")]);
    })
}

async fn connection_record(env: &TestEnv, connection: &str) -> Option<Value> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("{}teaching:ws:{connection}", env.prefix))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

/// The push was SigV4-signed for execute-api with the function's credentials,
/// over exactly what arrived.
fn assert_signed(push: &Received, region: &str) {
    let authorization = push
        .header("authorization")
        .expect("an Authorization header");
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={}/",
            lambda_emulator::ACCESS_KEY_ID
        )),
        "{authorization}"
    );
    assert!(
        authorization.contains(&format!("/{region}/execute-api/aws4_request, ")),
        "{authorization}"
    );
    assert_eq!(
        push.header("x-amz-security-token"),
        Some(lambda_emulator::SESSION_TOKEN)
    );
    let format =
        time::format_description::parse("[year][month][day]T[hour][minute][second]Z").unwrap();
    let at = time::PrimitiveDateTime::parse(push.header("x-amz-date").unwrap(), &format)
        .unwrap()
        .assume_utc();
    let again = lectern::aws::sigv4::sign(
        &lectern::aws::Credentials {
            access_key_id: lambda_emulator::ACCESS_KEY_ID.into(),
            secret_access_key: lambda_emulator::SECRET_ACCESS_KEY.into(),
            session_token: Some(lambda_emulator::SESSION_TOKEN.into()),
        },
        region,
        "execute-api",
        at,
        &lectern::aws::sigv4::Request {
            method: "POST",
            host: push.header("host").unwrap(),
            path: &push.path,
            headers: &[],
            body: &push.body,
        },
    );
    assert_eq!(
        again.authorization, authorization,
        "the signature covers what was sent"
    );
}

#[tokio::test]
async fn teach_ws_connects_pushes_the_reply_and_disconnects() {
    let env = TestEnv::new().await;
    let management = Sink::default();
    let endpoint = format!("http://{}", management.start().await);
    // The WebSocket fixtures come from an API in eu-west-1.
    let region = "eu-west-1";
    let ws = Launch::function("teach-ws")
        .envs(&lambda_env(&env))
        .env("WS_MANAGEMENT_ENDPOINT", endpoint)
        .env("AWS_REGION", region)
        .start()
        .await;
    let (student, token) = env.user(Role::Student).await;
    let started = env
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/teaching/sessions",
            Some(env.lesson(3).await),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let session = started.body["session_id"].as_str().unwrap().to_owned();
    let connection = "TWegAcC4EowCHnA=";

    // No valid token, no connection, nothing stored.
    let refused = ws.invoke(connect_event(connection, &"x".repeat(43))).await;
    refused.http().problem(401);
    assert_eq!(connection_record(&env, connection).await, None);

    let connected = ws.invoke(connect_event(connection, &token)).await;
    assert_eq!(
        connected.http().status,
        StatusCode::OK,
        "{:?}",
        connected.outcome
    );
    let record = connection_record(&env, connection)
        .await
        .expect("a connection record");
    assert_eq!(record["user_id"], student.to_string());

    let message = ws_event("apigw-ws-default.json", connection, |v| {
        v["body"] = json!({ "session_id": session, "text": "next" })
            .to_string()
            .into();
    });
    let answered = ws.invoke(message).await;
    assert_eq!(answered.http().status, StatusCode::OK);
    let pushes = management.take();
    let [push] = pushes.as_slice() else {
        panic!("one push: {pushes:?}")
    };
    assert_eq!(push.method, Method::POST);
    assert_eq!(push.path, "/@connections/TWegAcC4EowCHnA%3D");
    assert_signed(push, region);
    let frame = push.json();
    assert_eq!(frame["intent"], "continue", "{frame}");
    assert_eq!(frame["action"]["type"], "teach_segment");
    assert_eq!(frame["context"]["segment_index"], 1);
    assert_eq!(env.count("teaching_transitions").await, 2);

    let gone = ws
        .invoke(ws_event("apigw-ws-disconnect.json", connection, |_| {}))
        .await;
    assert_eq!(gone.http().status, StatusCode::OK);
    assert_eq!(connection_record(&env, connection).await, None);
    assert!(management.take().is_empty());
}

// ---- configuration, start-up, processes ---------------------------------------

/// A missing variable stops every function at start with one line naming it
/// on stderr and exit status 1; the Runtime API hears nothing (no poll, no
/// `/init/error`), so Lambda reports `Runtime.ExitError` with that line in the log.
#[tokio::test]
async fn bad_configuration_stops_each_function_with_one_line() {
    let env = TestEnv::new().await;
    let mut cases: Vec<(&str, &str, &str)> = FUNCTIONS
        .iter()
        .map(|&f| {
            // migrate reads DATABASE_URL alone.
            if f == "migrate" {
                (
                    f,
                    "DATABASE_URL",
                    "configuration error: DATABASE_URL: is required but not set",
                )
            } else {
                (
                    f,
                    "REDIS_URL",
                    "configuration error: REDIS_URL: is required but not set",
                )
            }
        })
        .collect();
    cases.push((
        "teach-ws",
        "AWS_REGION",
        "configuration error: AWS_REGION is not set",
    ));
    for (function, missing, line) in cases {
        let vars: Vec<(String, String)> = lambda_env(&env)
            .into_iter()
            .filter(|(k, _)| k != missing)
            .collect();
        let f = Launch::function(function)
            .envs(&vars)
            .unset(missing)
            .timeout(Duration::from_secs(20))
            .start()
            .await;
        let status = f
            .exited()
            .await
            .unwrap_or_else(|e| panic!("{function} without {missing}: {e}\n{}", f.output()));
        assert_eq!(status.code(), Some(1), "{function}: {}", f.output());
        assert_eq!(f.stderr(), [line], "{function} without {missing}");
        assert_eq!(f.polls(), 0, "{function} polled");
        assert_eq!(f.init_error(), None);
        match f.try_invoke(json!({})).await {
            Err(Failure::Exited(_)) => {}
            other => panic!("{function}: {other:?}"),
        }
    }
}

/// Counts the connections a loopback port accepts (and closes them).
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, count)
}

/// A cold start costs no connection: every function reaches its first poll
/// without touching Redis or PostgreSQL (which may be slow to reach from a
/// new environment), and stays up; the first request is what connects.
#[tokio::test]
async fn every_function_starts_without_connecting_anywhere() {
    let (redis, redis_hits) = counting_listener().await;
    let (postgres, postgres_hits) = counting_listener().await;
    let vars = [
        ("REDIS_URL".to_owned(), format!("redis://{redis}")),
        (
            "DATABASE_URL".to_owned(),
            format!("postgres://x@{postgres}/x"),
        ),
    ];
    for &name in FUNCTIONS {
        let f = Function::start(name, &vars).await;
        let init = f
            .ready()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", f.output()));
        assert!(init < Duration::from_secs(20), "{name}: {init:?}");
        // Anything connecting in the background at start would do so by now.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(f.exit_status(), None, "{name} exited\n{}", f.output());
        assert_eq!(
            (
                redis_hits.load(Ordering::SeqCst),
                postgres_hits.load(Ordering::SeqCst)
            ),
            (0, 0),
            "{name} connected at start"
        );
        assert!(f.stderr().is_empty(), "{name}: {:?}", f.stderr());
    }
    // The listeners do see connections: a request through health makes both.
    let health = Function::start("health", &vars).await;
    let invocation = health.invoke(fixture("apigw-v2-get-health.json")).await;
    let resp = invocation.http();
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.body
    );
    assert!(redis_hits.load(Ordering::SeqCst) > 0);
    assert!(postgres_hits.load(Ordering::SeqCst) > 0);
    // Each store's failure is a JSON warning CloudWatch can parse, tied to
    // the invocation's request and trace ids (the EMF record is written last).
    let logs = logs_until(&health, |logs| logs.iter().any(|v| v.get("_aws").is_some())).await;
    let stdout = health.stdout();
    assert_eq!(logs.len(), stdout.len(), "not all JSON: {stdout:#?}");
    let warnings: Vec<&Value> = logs
        .iter()
        .filter(|l| l["fields"]["message"] == "health check failed")
        .collect();
    assert_eq!(warnings.len(), 2, "one per unreachable store: {stdout:#?}");
    for log in warnings {
        assert_eq!(log["level"], "WARN", "{log}");
        let text = log.to_string();
        assert!(text.contains(&invocation.request_id), "{log}");
        assert!(text.contains(&invocation.trace_id), "{log}");
    }
}

#[tokio::test]
async fn a_dropped_function_leaves_no_process_behind() {
    let f = Function::start(
        "health",
        &[
            ("REDIS_URL".into(), lectern_tests::DEAD_REDIS_URL.into()),
            ("DATABASE_URL".into(), DEAD_DATABASE_URL.into()),
        ],
    )
    .await;
    f.ready().await.unwrap();
    let proc = std::path::PathBuf::from(format!("/proc/{}", f.pid()));
    assert!(proc.exists());
    drop(f);
    // Killed and reaped: not even a zombie keeps the pid.
    assert!(!proc.exists(), "{} still exists", proc.display());
}

/// An event the function cannot read is reported through `…/error`, and the
/// environment goes on serving.
#[tokio::test]
async fn an_unreadable_event_is_an_invocation_error() {
    let env = TestEnv::new().await;
    let migrate = start("migrate", &env).await;
    let invocation = migrate.invoke(json!({ "not": "a custom resource" })).await;
    let Outcome::Error(error) = &invocation.outcome else {
        panic!("{:?}", invocation.outcome)
    };
    assert!(error["errorType"].is_string(), "{error}");
    assert!(error["errorMessage"].is_string(), "{error}");
    let sink = Sink::default();
    let url = format!(
        "http://{}/cloudformation-custom-resource-response",
        sink.start().await
    );
    let again = migrate.invoke(custom_resource("Delete", &url)).await;
    assert_eq!(told(&sink, &again)["Status"], "SUCCESS");
}

/// What the emulator does with `POST /runtime/init/error`. lectern's own
/// start-up never posts one (bad configuration exits, see above), but the
/// runtime does when its SnapStart restore step fails: asked to restore, it
/// calls `/restore/next`, which an on-demand environment does not serve.
#[tokio::test]
async fn an_init_error_reaches_the_emulator() {
    let f = Launch::function("health")
        .env("REDIS_URL", lectern_tests::DEAD_REDIS_URL)
        .env("DATABASE_URL", DEAD_DATABASE_URL)
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
        .start()
        .await;
    let Err(Failure::InitError(error)) = f.ready().await else {
        panic!("no init error\n{}", f.output())
    };
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("/restore/next"),
        "{error}"
    );
    assert_eq!(
        f.violations(),
        ["GET /2018-06-01/runtime/restore/next"],
        "the one request off the on-demand protocol"
    );
    assert_eq!(f.exited().await.unwrap().code(), Some(1));
    match f.try_invoke(json!({})).await {
        Err(Failure::InitError(_)) => {}
        other => panic!("{other:?}"),
    }
}
