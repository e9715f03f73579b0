//! The audit trail: what is recorded (in the change's transaction: a refused
//! or rolled-back change records nothing), who may read which entries, and
//! the partitions' upkeep.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::{TestEnv, items_json, new_email};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

/// The trail as `token` reads it with this query string.
async fn trail(env: &TestEnv, token: &str, query: &str) -> (StatusCode, Value) {
    let r = env
        .call_as(
            Some(token),
            Method::GET,
            &format!("/v1/audit?{query}"),
            None,
        )
        .await;
    (r.status, r.body)
}

fn actions(body: &Value) -> Vec<&str> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn sign_ins_succeeded_and_failed_are_recorded_with_their_address_and_no_email() {
    let env = TestEnv::new().await;
    let email = new_email();
    let user = env.sign_up(&email, PASSWORD, "Kit").await.to_string();
    for password in ["not the password at all", PASSWORD] {
        env.sign_in_from(&email, password, "203.0.113.7:5555").await;
    }
    let (status, body) = trail(&env, &env.admin_token(), &format!("subject_id={user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        actions(&body),
        [
            "session.signed_in",
            "session.sign_in_failed",
            "account.created"
        ],
        "{body}"
    );
    let [signed_in, failed, _] = &body["entries"].as_array().unwrap()[..] else {
        panic!("{body}")
    };
    assert_eq!(signed_in["ip"], "203.0.113.7");
    assert_eq!(signed_in["actor_id"], user.as_str());
    assert_eq!(failed["ip"], "203.0.113.7");
    assert_eq!(failed["actor_id"], Value::Null);
    assert_eq!(failed["detail"]["reason"], "invalid_credentials");
    assert!(
        !body.to_string().contains(&email),
        "an email on the trail: {body}"
    );
    assert!(!body.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn a_staff_write_is_recorded_with_its_request_and_a_refused_one_is_not() {
    let env = TestEnv::new().await;
    let (teacher, token) = env.member(env.org, "teacher").await;
    let body = json!({ "name": "audited", "organization_id": env.org, "items": items_json(5, &env.prefix) });
    let r = env
        .call_as(Some(&token), Method::POST, "/v1/pools", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let pool = r.body["pool_id"].as_str().unwrap().to_owned();
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    // Refused (a student may not make pools), and invalid: nothing recorded.
    let (_, student) = env.user(Role::Student).await;
    let refused =
        json!({ "name": "no", "organization_id": env.org, "items": items_json(5, &env.prefix) });
    let r = env
        .call_as(Some(&student), Method::POST, "/v1/pools", Some(refused))
        .await;
    r.problem(403);
    let r = env
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/pools",
            Some(json!({ "name": "", "organization_id": env.org, "items": [] })),
        )
        .await;
    r.problem(422);

    let (status, body) = trail(
        &env,
        &env.admin_token(),
        &format!("organization_id={}&action=pool.", env.org),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["action"], "pool.created");
    assert_eq!(entries[0]["resource_id"], pool.as_str());
    assert_eq!(entries[0]["actor_id"], teacher.to_string());
    assert_eq!(entries[0]["organization_id"], env.org.to_string());
    assert_eq!(entries[0]["request_id"], request_id.as_str());
    assert_eq!(entries[0]["detail"]["items"], 5);
}

#[tokio::test]
async fn org_admins_read_their_organization_only_and_others_are_refused() {
    let env = TestEnv::new().await;
    let (_, admin_a) = env.member(env.org, "org_admin").await;
    let org_b = env.new_org().await;
    let (_, admin_b) = env.member(org_b, "org_admin").await;
    let (_, teacher) = env.member(env.org, "teacher").await;
    let (student, _) = env.user(Role::Student).await;
    let class_b = env.new_class(org_b).await;
    // One entry in each organization.
    let r = env
        .post(
            &format!("/v1/organizations/{}/classes", env.org),
            json!({ "name": "A's" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let (status, body) = trail(&env, &admin_a, &format!("organization_id={}", env.org)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mine = body.to_string();
    assert!(actions(&body).contains(&"class.created"), "{body}");
    assert!(
        !mine.contains(&class_b.to_string()),
        "B's class on A's trail: {body}"
    );
    // A member's sign-in (an entry of no organization) is on A's trail.
    assert!(
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.signed_in" && e["subject_id"] == student.to_string()),
        "{body}"
    );
    // B's admin: A does not exist for them; A's teacher: forbidden.
    let (status, body) = trail(&env, &admin_b, &format!("organization_id={}", env.org)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = trail(&env, &teacher, &format!("organization_id={}", env.org)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Only platform admins read the whole trail.
    let (status, body) = trail(&env, &admin_a, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = trail(&env, &env.admin_token(), "limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entries"].as_array().unwrap().len(), 1);
    // Paging: the next page starts below the cursor.
    let next = body["next"].as_i64().expect("a next page");
    let (_, page2) = trail(&env, &env.admin_token(), &format!("limit=1&before={next}")).await;
    assert!(
        page2["entries"][0]["id"].as_i64().unwrap() < next,
        "{page2}"
    );
    for bad in [
        "limit=0",
        "limit=201",
        "before=0",
        "since=yesterday",
        "organization_id=nope",
    ] {
        let (status, body) = trail(&env, &env.admin_token(), bad).await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
    }
}

#[tokio::test]
async fn a_teachers_read_of_a_students_records_is_recorded_and_the_students_own_is_not() {
    let env = TestEnv::new().await;
    let (student, student_token) = env.user(Role::Student).await;
    let (teacher, teacher_token) = env.user(Role::Teacher).await;
    let path = format!("/v1/students/{student}/tests");
    for token in [&student_token, &teacher_token] {
        let r = env.call_as(Some(token), Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let (_, body) = trail(
        &env,
        &env.admin_token(),
        &format!("subject_id={student}&action=student_data.read"),
    )
    .await;
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["actor_id"], teacher.to_string());
    assert_eq!(entries[0]["detail"]["route"], "GET /v1/students/{id}/tests");
}

#[tokio::test]
async fn partitions_are_made_ahead_rows_without_one_move_in_and_retention_drops_whole_months() {
    let env = TestEnv::new().await;
    let sql = env.sql().await;
    // A row for a month without a partition lands in the default one...
    sql.execute(
        "INSERT INTO audit_log (action, resource_type, at) VALUES ('test.probe', 'test', '2091-05-03Z')",
        &[],
    )
    .await
    .unwrap();
    let made: bool = sql
        .query_one("SELECT audit_ensure_partition('2091-05-20')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(made);
    // ... and moves into the month's partition when it is made.
    let home: String = sql
        .query_one(
            "SELECT tableoid::regclass::text FROM audit_log WHERE action = 'test.probe'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(home.ends_with("audit_log_p209105"), "{home}");
    // Upkeep: this month and the next three exist; nothing is dropped while in retention.
    let (_, dropped) = lectern::store::audit::maintain(
        env.app.db(),
        3,
        time::OffsetDateTime::now_utc() - time::Duration::days(400),
    )
    .await
    .unwrap();
    assert_eq!(dropped, 0);
    let partitions: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_log'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(partitions >= 6, "{partitions}"); // default, 4 months, 2091-05
    // Past retention: whole months go; the entries of later ones stay.
    // 2091-06-01T00:00:00Z
    let cutoff = time::OffsetDateTime::from_unix_timestamp(3_831_494_400).unwrap();
    let (_, dropped) = lectern::store::audit::maintain(env.app.db(), 0, cutoff)
        .await
        .unwrap();
    assert!(dropped >= 5, "{dropped}");
    assert_eq!(env.count("audit_log WHERE action = 'test.probe'").await, 0);
}
