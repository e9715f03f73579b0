//! Data rights: a person's export (all of their data, no secrets, an exam's
//! results only once released), and a student's erasure by an org admin
//! (nothing of them left in Redis or in any PostgreSQL column holding
//! personal data; their responses kept, pseudonymised; on the trail and on
//! the bus; safe to retry; finished after a Redis outage).

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern::services::sweep;
use lectern_tests::{OwnRedis, TestEnv, new_email};
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "a long enough password";

/// A student of the environment's organization and class, signed up and
/// signed in through the API from a known address: (id, email, token).
async fn student(env: &TestEnv) -> (Uuid, String, String) {
    let email = new_email();
    let id = env.sign_up(&email, PASSWORD, "Robin Example").await;
    env.join(env.org, id, "student").await;
    env.enroll(env.class, id).await;
    let signed_in = env
        .sign_in_from(&email, PASSWORD, "198.51.100.23:4444")
        .await;
    assert_eq!(signed_in.status, StatusCode::CREATED, "{}", signed_in.body);
    let token = signed_in.body["token"].as_str().unwrap().to_owned();
    (id, email, token)
}

/// Gives the student `id` (signed in with `token`) an ended practice test
/// of 3 items (given, answered and ended by the admin), an active one they answered
/// once, and a tutoring session with a question; returns (ended, active).
async fn history(env: &TestEnv, id: Uuid, token: &str) -> (String, String) {
    let pool = env.demo_pool(10).await;
    let finished = env.take_test(pool, id, 3).await.to_string();
    let ended = env
        .post(&format!("/v1/tests/{finished}/end"), json!({}))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let started = env
        .call_as(
            Some(token),
            Method::POST,
            "/v1/tests",
            Some(json!({ "pool_id": pool })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let active = started.body["test_id"].as_str().unwrap().to_owned();
    let r = env
        .answer_as(token, &active, &started.body["question"], true)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let session = env
        .call_as(
            Some(token),
            Method::POST,
            "/v1/teaching/sessions",
            Some(env.lesson(4).await),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let id = session.body["session_id"].as_str().unwrap();
    let asked = env
        .call_as(
            Some(token),
            Method::POST,
            &format!("/v1/teaching/sessions/{id}/input"),
            Some(json!({ "text": "why is 1/2 = 2/4?" })),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    (finished, active)
}

async fn export(env: &TestEnv, token: &str, user: Uuid) -> (StatusCode, Value) {
    let r = env
        .call_as(
            Some(token),
            Method::GET,
            &format!("/v1/users/{user}/export"),
            None,
        )
        .await;
    (r.status, r.body)
}

async fn erase(env: &TestEnv, token: &str, user: Uuid) -> (StatusCode, Value) {
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            &format!("/v1/users/{user}/erase"),
            None,
        )
        .await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_student_exports_all_of_their_data_and_no_secret() {
    let env = TestEnv::new().await;
    let (id, email, token) = student(&env).await;
    let (finished, active) = history(&env, id, &token).await;

    let (status, doc) = export(&env, &token, id).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["format"], "lectern.export/1");
    assert_eq!(doc["account"]["id"], id.to_string());
    assert_eq!(doc["account"]["email"], email.as_str());
    assert_eq!(doc["account"]["display_name"], "Robin Example");
    assert_eq!(
        doc["memberships"][0]["organization_id"],
        env.org.to_string()
    );
    assert_eq!(doc["classes"][0]["class_id"], env.class.to_string());
    // Their tests, oldest first, with every response.
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{doc}");
    assert_eq!(tests[0]["test_id"], finished.as_str());
    assert_eq!(tests[0]["responses"].as_array().unwrap().len(), 3);
    assert!(
        tests[0]["responses"][0]["correct"].is_boolean(),
        "practice: feedback shown"
    );
    assert_eq!(tests[1]["test_id"], active.as_str());
    assert_eq!(tests[1]["status"], "active");
    // Proficiency from the finished practice test.
    assert!(
        !doc["proficiency"].as_array().unwrap().is_empty(),
        "{}",
        doc["proficiency"]
    );
    // The tutoring session with what they asked, and where they are.
    let tutoring = &doc["tutoring_sessions"][0];
    assert_eq!(tutoring["course_id"], env.course(4).await.to_string());
    assert_eq!(tutoring["questions"][0]["question"], "why is 1/2 = 2/4?");
    assert_eq!(tutoring["progress"]["total_segments"], 4);
    // Their session, with its address; never a token nor its hash.
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{doc}");
    assert_eq!(sessions[0]["ip"], "198.51.100.23");
    let text = doc.to_string();
    assert!(!text.contains(&token), "the token in an export");
    assert!(!text.contains(&lectern::digest::sha256_hex(&token)));
    assert!(
        !text.contains(PASSWORD) && !text.contains("$argon2"),
        "{text}"
    );

    // An org admin of their organization may export it for them (on the trail);
    // their teacher may not; another organization's admin does not see them.
    let (_, admin) = env.member(env.org, "org_admin").await;
    let (status, by_admin) = export(&env, &admin, id).await;
    assert_eq!(status, StatusCode::OK, "{by_admin}");
    assert_eq!(by_admin["tests"], doc["tests"]);
    let (_, teacher) = env.user(Role::Teacher).await;
    assert_eq!(export(&env, &teacher, id).await.0, StatusCode::FORBIDDEN);
    let other = env.new_org().await;
    let (_, other_admin) = env.member(other, "org_admin").await;
    assert_eq!(
        export(&env, &other_admin, id).await.0,
        StatusCode::NOT_FOUND
    );
    let entries = env
        .call(
            Method::GET,
            &format!("/v1/audit?subject_id={id}&action=student_data.exported"),
            None,
        )
        .await;
    assert_eq!(
        entries.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        entries.body
    );
}

#[tokio::test]
async fn an_exams_results_are_not_in_its_students_export_before_release() {
    let env = TestEnv::new().await;
    let (id, _, token) = student(&env).await;
    let pool = env.demo_pool(10).await;
    let design = json!({
        "organization_id": env.org, "name": "exported", "pool_id": pool, "mode": "exam",
        "config": { "max_items": 2, "min_items": 2, "se_target": null },
    });
    let made = env.post("/v1/assessments", design).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let given = env
        .post(
            "/v1/assignments",
            json!({ "assessment_id": made.body["id"], "class_id": env.class,
                    "closes_at": (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                        .format(&time::format_description::well_known::Rfc3339).unwrap() }),
        )
        .await;
    assert_eq!(given.status, StatusCode::CREATED, "{}", given.body);
    let started = env
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": given.body["id"] })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    for right in [true, false] {
        let r = env.answer_as(&token, &test, &question, right).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        question = r.body["next_question"].clone();
    }
    for who in [token.clone(), env.admin_token()] {
        let (status, doc) = export(&env, &who, id).await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        let report = &doc["tests"][0];
        assert_eq!(report["responses"].as_array().unwrap().len(), 2, "{doc}");
        for field in ["correct", "score", "theta"] {
            assert!(
                report["responses"][0].get(field).is_none_or(Value::is_null),
                "{field} of an unreleased exam: {report}"
            );
        }
        assert!(
            report.get("proficiency").is_none_or(Value::is_null),
            "{report}"
        );
    }
}

/// Every (table, column) of the test's schema whose text holds `needle`.
async fn columns_holding(env: &TestEnv, needle: &str) -> Vec<String> {
    let sql = env.sql().await;
    let columns = sql
        .query(
            "SELECT c.table_name, c.column_name
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type NOT IN ('bytea')
               AND c.table_name NOT LIKE 'audit_log_%'",
            &[],
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for row in columns {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        let n: i64 = sql
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{table}\" WHERE \"{column}\"::text LIKE '%' || $1 || '%'"
                ),
                &[&needle],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn an_org_admin_erases_a_student_and_nothing_of_them_remains_but_pseudonymous_responses() {
    let env = TestEnv::new().await;
    let (id, email, token) = student(&env).await;
    let (finished, active) = history(&env, id, &token).await;
    let responses_before = env.count("test_responses").await;
    let (_, admin) = env.member(env.org, "org_admin").await;

    let (status, report) = erase(&env, &admin, id).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["user_id"], id.to_string());
    assert_eq!(report["tests_pseudonymised"], 2);
    assert_eq!(report["tutoring_sessions_deleted"], 1);
    assert_eq!(report["sessions_revoked"], 1);

    // The responses stay for calibration, under tests that name no one; the
    // active test is abandoned.
    assert_eq!(env.count("test_responses").await, responses_before);
    let sql = env.sql().await;
    for (test, status) in [(&finished, "ended"), (&active, "abandoned")] {
        let row = sql
            .query_one(
                "SELECT student_id, status, idempotency_key FROM test_sessions WHERE id = $1::text::uuid",
                &[test],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<Uuid>>(0), None);
        assert_eq!(row.get::<_, &str>(1), status);
        assert_eq!(row.get::<_, Option<String>>(2), None);
    }
    // PostgreSQL: the email, name and address nowhere; the id only where
    // it names no one (the trail, the erasure, the `user.erased` event).
    assert_eq!(columns_holding(&env, &email).await, Vec::<String>::new());
    assert_eq!(
        columns_holding(&env, "Robin Example").await,
        Vec::<String>::new()
    );
    assert_eq!(
        columns_holding(&env, "198.51.100.23").await,
        Vec::<String>::new()
    );
    assert_eq!(
        columns_holding(&env, "1/2 = 2/4").await,
        Vec::<String>::new()
    );
    assert_eq!(
        columns_holding(&env, &id.to_string()).await,
        [
            "audit_log.actor_id",
            "audit_log.detail",
            "audit_log.resource_id",
            "audit_log.subject_id",
            "erasures.report",
            "erasures.user_id",
            "outbox.detail",
            "outbox.resource_id",
        ]
    );
    assert_eq!(
        env.count(&format!(
            "audit_log WHERE ip IS NOT NULL AND (actor_id = '{id}' OR subject_id = '{id}')"
        ))
        .await,
        0
    );
    assert_eq!(
        env.count(&format!(
            "outbox WHERE detail_type = 'user.erased' AND resource_id = '{id}'"
        ))
        .await,
        1
    );
    // Redis: no key names them, no value holds their id, email or token.
    let needles: [Vec<u8>; 4] = [
        id.to_string().into_bytes(),
        id.as_bytes().to_vec(),
        email.clone().into_bytes(),
        lectern::digest::sha256_hex(&token).into_bytes(),
    ];
    for (key, value) in env.redis_entries().await {
        for needle in &needles {
            assert!(
                !key.as_bytes().windows(needle.len()).any(|w| w == needle),
                "{key} names the erased student"
            );
            if let Some(value) = &value {
                assert!(
                    !value.windows(needle.len()).any(|w| w == needle),
                    "{key} holds the erased student's data"
                );
            }
        }
    }
    for test in [&finished, &active] {
        let key = env.app.redis().keys().test_state(test.parse().unwrap());
        assert_eq!(env.pttl(&key).await, -2, "{key}");
    }
    // Signed out at once; the account is gone (asking for it caches that it is
    // gone: a key naming an id that names no one).
    let me = env
        .call_as(Some(&token), Method::GET, "/v1/sessions/current", None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
    assert_eq!(
        env.get(&format!("/v1/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // On the trail, for the organization's admins.
    let trail = env
        .call_as(
            Some(&admin),
            Method::GET,
            &format!(
                "/v1/audit?organization_id={}&action=account.erased",
                env.org
            ),
            None,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.body);
    assert_eq!(
        trail.body["entries"][0]["subject_id"],
        id.to_string(),
        "{}",
        trail.body
    );
    // A retry answers the first report; the export is gone with the account.
    let (status, again) = erase(&env, &admin, id).await;
    assert_eq!((status, &again), (StatusCode::OK, &report));
    assert_eq!(export(&env, &admin, id).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn who_may_erase_and_what_is_refused_changes_nothing() {
    let env = TestEnv::new().await;
    let (id, _, token) = student(&env).await;
    let (_, admin) = env.member(env.org, "org_admin").await;
    let (teacher_id, teacher) = env.user(Role::Teacher).await;
    let other = env.new_org().await;
    let (_, other_admin) = env.member(other, "org_admin").await;
    let before = env.count("users").await;

    assert_eq!(
        erase(&env, &token, id).await.0,
        StatusCode::FORBIDDEN,
        "not themselves"
    );
    assert_eq!(
        erase(&env, &teacher, id).await.0,
        StatusCode::FORBIDDEN,
        "not their teacher"
    );
    assert_eq!(erase(&env, &other_admin, id).await.0, StatusCode::NOT_FOUND);
    let (status, body) = erase(&env, &admin, teacher_id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "staff: {body}");
    // A student of two organizations: only an admin of both, or of the platform.
    env.join(other, id, "student").await;
    assert_eq!(erase(&env, &admin, id).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        erase(&env, &admin, Uuid::new_v4()).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.count("users").await, before);
    assert_eq!(env.count("erasures").await, 0);
    assert_eq!(
        env.count("audit_log WHERE action = 'account.erased'").await,
        0
    );

    // The platform admin may; the erasure is then on both organizations' trails,
    // and a retry by someone who could not see it is still told nothing.
    let (status, report) = erase(&env, &env.admin_token(), id).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        env.count("audit_log WHERE action = 'account.erased'").await,
        2
    );
    let (_, stranger) = env.member(env.new_org().await, "org_admin").await;
    assert_eq!(erase(&env, &stranger, id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        erase(&env, &other_admin, id).await,
        (StatusCode::OK, report)
    );
}

#[tokio::test]
async fn two_erasures_at_once_erase_once() {
    let env = TestEnv::new().await;
    let (id, _, token) = student(&env).await;
    history(&env, id, &token).await;
    let (_, admin) = env.member(env.org, "org_admin").await;
    let platform = env.admin_token();
    let (a, b) = tokio::join!(erase(&env, &admin, id), erase(&env, &platform, id));
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(b.0, StatusCode::OK, "{}", b.1);
    assert_eq!(a.1, b.1);
    assert_eq!(env.count("erasures").await, 1);
    assert_eq!(
        env.count("outbox WHERE detail_type = 'user.erased'").await,
        1
    );
    assert_eq!(
        env.count("audit_log WHERE action = 'account.erased'").await,
        1
    );
}

#[tokio::test]
async fn an_erasure_during_a_redis_outage_is_finished_by_the_sweeper_or_a_retry() {
    let mut redis = OwnRedis::start();
    let env = TestEnv::with_urls(&redis.url(), None).await;
    let (id, _, token) = student(&env).await;
    let (finished, _) = history(&env, id, &token).await;
    let (_, admin) = env.member(env.org, "org_admin").await;

    redis.kill();
    // PostgreSQL's half commits; the request says 503 for Redis's.
    let (status, body) = erase(&env, &admin, id).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(env.count(&format!("users WHERE id = '{id}'")).await, 0);
    assert_eq!(
        env.count("erasures WHERE redis_cleared_at IS NULL").await,
        1
    );
    // Redis down: PostgreSQL decides, and the session is gone from it.
    let me = env
        .call_as(Some(&token), Method::GET, "/v1/sessions/current", None)
        .await;
    assert_ne!(me.status, StatusCode::OK, "{}", me.body);

    redis.revive();
    // Health probes Redis itself, so the app sees the recovery at once.
    assert_eq!(env.get("/v1/health").await.body["status"], "ok");
    // OwnRedis keeps nothing on disk: put back a state as if it had survived.
    let state_key = env.app.redis().keys().test_state(finished.parse().unwrap());
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg(&state_key)
        .arg("left over")
        .query_async(&mut conn)
        .await
        .unwrap();
    let report = sweep::sweep(&env.app).await.unwrap();
    assert_eq!(report.erasures_finished, 1);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&state_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    assert_eq!(
        env.count("erasures WHERE redis_cleared_at IS NULL").await,
        0
    );
    // The retry answers the report, the sweeper has nothing more to do.
    let (status, again) = erase(&env, &admin, id).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["sessions_revoked"], 1);
    assert_eq!(sweep::sweep(&env.app).await.unwrap().erasures_finished, 0);
}
