//! Scope across organizations, beyond the matrix's one request per caller:
//! the data before tenancy moves into the default organization; a student of
//! two organizations has a record in each that the other cannot see; shared
//! pools serve every organization and are changed by platform admins alone.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::{Resp, TestEnv, items_json, new_email};
use serde_json::{Value, json};
use uuid::Uuid;

const DEFAULT_ORG: &str = "00000000-0000-0000-0000-000000000001";

async fn call(env: &TestEnv, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
    env.call_as(Some(token), method, path, body).await
}

/// A pool of `org` (`None`: shared), made by the platform admin.
async fn pool_of(env: &TestEnv, org: Option<Uuid>, n: usize) -> Uuid {
    let mut body = json!({ "name": "p", "items": items_json(n, &Uuid::new_v4().to_string()) });
    match org {
        Some(org) => body["organization_id"] = json!(org),
        None => body["shared"] = json!(true),
    }
    let r = env.post("/v1/pools", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pool_id"].as_str().unwrap().parse().unwrap()
}

/// A test the student takes themselves on `pool` (in `org`, when named),
/// answering `right.len()` items and ending it: the start's body.
async fn take(env: &TestEnv, token: &str, pool: Uuid, org: Option<Uuid>, right: &[bool]) -> Value {
    let mut body = json!({ "pool_id": pool });
    if let Some(org) = org {
        body["organization_id"] = json!(org);
    }
    let started = start_as(env, token, body).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    for &r in right {
        let answered = env.answer_as(token, &id, &question, r).await;
        assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
        question = answered.body["next_question"].clone();
    }
    let ended = call(
        env,
        token,
        Method::POST,
        &format!("/v1/tests/{id}/end"),
        None,
    )
    .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    started.body
}

/// `POST /v1/tests` as the holder of `token`.
async fn start_as(env: &TestEnv, token: &str, body: Value) -> Resp {
    call(env, token, Method::POST, "/v1/tests", Some(body)).await
}

#[tokio::test]
async fn the_data_before_tenancy_moves_into_the_default_organization() {
    let env = TestEnv::new().await;
    let sql = env.sql().await;
    let schema = &env.schema;
    sql.batch_execute(&format!(
        "DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .await
    .unwrap();
    let url = lectern_tests::url_with_schema(&lectern_tests::database_url(), schema);
    let db = lectern::store::db::pool(&url, 1, std::time::Duration::from_secs(5)).unwrap();
    lectern::store::db::migrate_to(&db, Some(5)).await.unwrap();
    let client = db.get().await.unwrap();
    let (admin, teacher, student, pool) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    for (id, role) in [(admin, "admin"), (teacher, "teacher"), (student, "student")] {
        client
            .execute(
                "INSERT INTO users (id, email, role) VALUES ($1, $2, $3)",
                &[&id, &new_email(), &role],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO item_pools (id, name) VALUES ($1, 'old pool')",
            &[&pool],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO student_proficiencies (student_id, concept, theta, se, n)
             VALUES ($1, '', 0.5, 0.4, 7)",
            &[&student],
        )
        .await
        .unwrap();
    drop(client);
    let applied = lectern::store::db::migrate(&db).await.unwrap();
    assert!(applied.iter().any(|m| m.contains("tenancy")), "{applied:?}");

    let client = db.get().await.unwrap();
    let default: Uuid = DEFAULT_ORG.parse().unwrap();
    let role_of = async |user: Uuid| -> String {
        client
            .query_one(
                "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
                &[&default, &user],
            )
            .await
            .unwrap()
            .get(0)
    };
    // Every user is a member with the role they had; an admin stays a platform admin too.
    assert_eq!(role_of(admin).await, "org_admin");
    assert_eq!(role_of(teacher).await, "teacher");
    assert_eq!(role_of(student).await, "student");
    let platform: bool = client
        .query_one("SELECT role = 'admin' FROM users WHERE id = $1", &[&admin])
        .await
        .unwrap()
        .get(0);
    assert!(platform);
    let pool_org: Option<Uuid> = client
        .query_one("SELECT org_id FROM item_pools WHERE id = $1", &[&pool])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pool_org, Some(default));
    let proficiency_org: Option<Uuid> = client
        .query_one(
            "SELECT org_id FROM student_proficiencies WHERE student_id = $1",
            &[&student],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(proficiency_org, Some(default));
}

#[tokio::test]
async fn a_student_of_two_organizations_has_a_record_in_each_that_the_other_cannot_see() {
    let env = TestEnv::new().await;
    let (student, token) = env.user(Role::Student).await;
    let (org_a, org_b) = (env.org, env.new_org().await);
    env.join(org_b, student, "student").await;
    let class_b = env.new_class(org_b).await;
    env.enroll(class_b, student).await;
    let (_, teacher_a) = env.user(Role::Teacher).await;
    let (teacher_b_id, teacher_b) = env.member(org_b, "teacher").await;
    env.assign(class_b, teacher_b_id).await;
    let (_, admin_b) = env.member(org_b, "org_admin").await;
    let (pool_a, pool_b) = (
        pool_of(&env, Some(org_a), 40).await,
        pool_of(&env, Some(org_b), 40).await,
    );

    let in_a = take(&env, &token, pool_a, None, &[true, false, true]).await;
    let in_b = take(&env, &token, pool_b, None, &[true, true]).await;
    assert_eq!(in_a["organization_id"], json!(org_a), "{in_a}");
    assert_eq!(in_b["organization_id"], json!(org_b), "{in_b}");
    let (test_a, test_b) = (
        in_a["test_id"].as_str().unwrap(),
        in_b["test_id"].as_str().unwrap(),
    );

    // The student sees both; each organization's staff only their own.
    let history = |token: &str| {
        let token = token.to_owned();
        let env = &env;
        async move {
            let r = call(
                env,
                &token,
                Method::GET,
                &format!("/v1/students/{student}/tests"),
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["test_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(history(&token).await, [test_b, test_a]);
    assert_eq!(history(&teacher_a).await, [test_a]);
    assert_eq!(history(&teacher_b).await, [test_b]);
    assert_eq!(history(&admin_b).await, [test_b]);
    for (who, test, status) in [
        (&teacher_a, test_b, 404),
        (&teacher_b, test_a, 404),
        (&admin_b, test_a, 404),
        (&teacher_a, test_a, 200),
    ] {
        let r = call(&env, who, Method::GET, &format!("/v1/tests/{test}"), None).await;
        assert_eq!(r.status.as_u16(), status, "{}", r.body);
    }

    // Proficiency is kept per organization: one school's results are not another's.
    let proficiency = async |token: &str, query: &str| {
        call(
            &env,
            token,
            Method::GET,
            &format!("/v1/students/{student}/proficiency{query}"),
            None,
        )
        .await
    };
    let a = proficiency(&token, &format!("?organization_id={org_a}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["organization_id"], json!(org_a));
    assert_eq!(a.body["overall"]["n"], 3);
    let b = proficiency(&token, &format!("?organization_id={org_b}")).await;
    assert_eq!(b.body["overall"]["n"], 2);
    // Without a choice: where it changed last (B) for the student, the one in scope for a teacher.
    assert_eq!(
        proficiency(&token, "").await.body["organization_id"],
        json!(org_b)
    );
    let seen_by_a = proficiency(&teacher_a, "").await;
    assert_eq!(
        seen_by_a.body["organization_id"],
        json!(org_a),
        "{}",
        seen_by_a.body
    );
    assert_eq!(seen_by_a.body["overall"]["n"], 3);
    proficiency(&teacher_a, &format!("?organization_id={org_b}"))
        .await
        .problem(404);
    proficiency(&admin_b, &format!("?organization_id={org_a}"))
        .await
        .problem(404);
}

#[tokio::test]
async fn shared_pools_serve_every_organization_and_change_only_by_platform_admins() {
    let env = TestEnv::new().await;
    let shared = pool_of(&env, None, 30).await;
    let own = pool_of(&env, Some(env.org), 30).await;
    let org_b = env.new_org().await;
    let theirs = pool_of(&env, Some(org_b), 30).await;
    let (_, teacher) = env.user(Role::Teacher).await;

    let listed = call(&env, &teacher, Method::GET, "/v1/pools", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let mut ids: Vec<&str> = listed.body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pool_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = [shared.to_string(), own.to_string()];
    expected.sort();
    assert_eq!(ids, expected, "another organization's pool is not listed");
    let shown = call(
        &env,
        &teacher,
        Method::GET,
        &format!("/v1/pools/{shared}"),
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["shared"], true);
    assert_eq!(shown.body["organization_id"], Value::Null);
    call(
        &env,
        &teacher,
        Method::GET,
        &format!("/v1/pools/{theirs}"),
        None,
    )
    .await
    .problem(404);

    // Nobody but a platform admin adds to a shared pool, publishes one, or touches another organization's.
    let questions = env.count("questions").await;
    let item = || Some(json!({ "items": items_json(1, &Uuid::new_v4().to_string()) }));
    let path = |p: Uuid| format!("/v1/pools/{p}/items");
    assert!(
        call(&env, &teacher, Method::POST, &path(shared), item())
            .await
            .problem(403)
            .contains("shared")
    );
    call(&env, &teacher, Method::POST, &path(theirs), item())
        .await
        .problem(404);
    let publish = json!({ "name": "mine", "shared": true, "items": items_json(1, "x") });
    call(&env, &teacher, Method::POST, "/v1/pools", Some(publish))
        .await
        .problem(403);
    assert_eq!(env.count("questions").await, questions, "nothing written");
    let added = env.post(&path(shared), item().unwrap()).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);

    // A test on a shared pool belongs to the student's organization; with two, they say which.
    let (student, token) = env.user(Role::Student).await;
    let started = start_as(&env, &token, json!({ "pool_id": shared })).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["organization_id"], json!(env.org));
    env.join(org_b, student, "student").await;
    let tests = env.count("test_sessions").await;
    let ambiguous = start_as(&env, &token, json!({ "pool_id": shared })).await;
    assert!(ambiguous.problem(422).contains("organization_id"));
    let elsewhere = json!({ "pool_id": shared, "organization_id": Uuid::new_v4() });
    start_as(&env, &token, elsewhere).await.problem(404);
    let wrong = json!({ "pool_id": own, "organization_id": org_b });
    start_as(&env, &token, wrong).await.problem(422);
    assert_eq!(env.count("test_sessions").await, tests, "nothing written");
    let chosen = json!({ "pool_id": shared, "organization_id": org_b });
    let in_b = start_as(&env, &token, chosen).await;
    assert_eq!(in_b.status, StatusCode::CREATED, "{}", in_b.body);
    assert_eq!(in_b.body["organization_id"], json!(org_b));

    // Someone of no organization takes a personal test: theirs and the platform's alone.
    let loner = env.sign_in(env.account().await, Role::Student).await;
    let personal = start_as(&env, &loner, json!({ "pool_id": shared })).await;
    assert_eq!(personal.status, StatusCode::CREATED, "{}", personal.body);
    assert_eq!(personal.body["organization_id"], Value::Null);
    let report = format!("/v1/tests/{}", personal.body["test_id"].as_str().unwrap());
    let (_, org_admin) = env.member(env.org, "org_admin").await;
    call(&env, &org_admin, Method::GET, &report, None)
        .await
        .problem(404);
    assert_eq!(env.get(&report).await.status, StatusCode::OK);
}
