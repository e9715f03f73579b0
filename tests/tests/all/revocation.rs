//! Revocation that takes effect at once: an admin lists and revokes a user's
//! sessions and disables the account; each counts on the user's very next
//! request in every process, while Redis is down too (no process accepts a
//! token from memory), and a sign-in racing a disable never leaves a session.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern::services::auth::secret::sha256_hex;
use lectern_tests::{OwnRedis, Resp, TestEnv, new_email, request, send};
use serde_json::json;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

async fn as_user(router: &Router, token: &str, method: Method, path: &str) -> Resp {
    send(router, request(Some(token), method, path, None)).await
}

/// Whether `token` is accepted by `router` (200 on the caller's own session).
async fn accepted(router: &Router, token: &str) -> bool {
    let r = as_user(router, token, Method::GET, "/v1/sessions/current").await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("unexpected {other}: {}", r.body),
    }
}

async fn durable_rows(env: &TestEnv, user: Uuid) -> i64 {
    env.sql()
        .await
        .query_one(
            "SELECT count(*) FROM auth_sessions WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0)
}

/// Whether Redis still holds anything under this token's hash.
async fn in_redis(env: &TestEnv, token: &str) -> bool {
    let hash = sha256_hex(token);
    env.redis_entries()
        .await
        .iter()
        .any(|(k, _)| k.contains(&hash))
}

#[tokio::test]
async fn an_org_admin_revokes_sessions_on_the_next_request_in_every_process() {
    let env = TestEnv::new().await;
    let other = env.twin();
    let (org_admin, admin_token) = env.member(env.org, "org_admin").await;
    let (student, phone) = env.user(Role::Student).await;
    let laptop = env.sign_in(student, Role::Student).await;
    // Both tokens are warm in the other process.
    assert!(accepted(&other, &phone).await && accepted(&other, &laptop).await);

    let path = format!("/v1/users/{student}/sessions");
    let list = as_user(&env.router, &admin_token, Method::GET, &path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", list.body);
    assert!(sessions.iter().all(|s| s["current"] == false));
    let text = list.body.to_string();
    assert!(!text.contains(&phone) && !text.contains(&sha256_hex(&phone)));
    let phone_id = as_user(&env.router, &phone, Method::GET, "/v1/sessions/current")
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let one = format!("{path}/{phone_id}");
    let r = as_user(&env.router, &admin_token, Method::DELETE, &one).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(
        !accepted(&other, &phone).await,
        "revoked, yet accepted elsewhere"
    );
    assert!(accepted(&other, &laptop).await);
    assert!(!in_redis(&env, &phone).await);
    assert_eq!(durable_rows(&env, student).await, 1);
    // Again: it is gone.
    as_user(&env.router, &admin_token, Method::DELETE, &one)
        .await
        .problem(404);

    let r = as_user(&env.router, &admin_token, Method::DELETE, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended"], 1);
    assert!(!accepted(&other, &laptop).await);
    assert_eq!(durable_rows(&env, student).await, 0);
    assert!(!in_redis(&env, &laptop).await);
    // The org admin's own session is untouched.
    assert!(accepted(&other, &admin_token).await);
    let _ = org_admin;
}

#[tokio::test]
async fn a_revocation_counts_while_redis_is_down_and_after_it_comes_back() {
    let mut redis = OwnRedis::start();
    let env = TestEnv::with_urls(&redis.url(), None).await;
    let other = env.twin();
    let (student, token) = env.user(Role::Student).await;
    let (_, kept) = env.user(Role::Student).await;
    let (_, stranger) = env.user(Role::Student).await;
    // The other process accepted both tokens moments ago.
    assert!(accepted(&other, &token).await && accepted(&other, &kept).await);

    let r = env
        .call(
            Method::DELETE,
            &format!("/v1/users/{student}/sessions"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    redis.kill();
    // Redis is down: PostgreSQL decides, in every process.
    assert!(
        !accepted(&other, &token).await,
        "revoked, yet accepted from memory"
    );
    assert!(accepted(&other, &kept).await);
    // A live token this process never saw is checked the same way.
    assert!(accepted(&other, &stranger).await);
    // A token no one issued is refused (401), not an outage.
    assert!(!accepted(&other, &"A".repeat(43)).await);

    // A revocation while Redis is down: PostgreSQL's half counts at once; the
    // request says 503 (Redis's half is missing), and a retry finishes it.
    let kept_user = env
        .sql()
        .await
        .query_one(
            "SELECT user_id FROM auth_sessions WHERE token_hash = $1",
            &[&sha256_hex(&kept)],
        )
        .await
        .unwrap()
        .get::<_, Uuid>(0);
    let path = format!("/v1/users/{kept_user}/sessions");
    env.call(Method::DELETE, &path, None).await.problem(503);
    assert!(!accepted(&other, &kept).await);

    redis.revive();
    // Health probes Redis itself, so the app sees the recovery at once.
    assert_eq!(env.get("/v1/health").await.body["status"], "ok");
    for t in [&token, &kept] {
        assert!(!accepted(&other, t).await, "a revoked session came back");
        assert!(!accepted(&env.router, t).await);
    }
    let r = env.call(Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(accepted(&other, &stranger).await);
}

#[tokio::test]
async fn with_redis_and_postgresql_down_no_token_is_accepted() {
    let mut redis = OwnRedis::start();
    let (_healthy, proxy, env) = TestEnv::behind_database_proxy_on(&redis.url()).await;
    let (_, token) = env.user(Role::Student).await;
    assert!(accepted(&env.router, &token).await);
    redis.kill();
    proxy.cut();
    let r = as_user(&env.router, &token, Method::GET, "/v1/sessions/current").await;
    r.problem(503);
    proxy.restore();
    assert!(accepted(&env.router, &token).await);
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_and_refuses_its_sign_ins() {
    let env = TestEnv::new().await;
    let other = env.twin();
    let (_, admin_token) = env.member(env.org, "org_admin").await;
    let email = new_email();
    let r = env
        .call_as(
            None,
            Method::POST,
            "/v1/users",
            Some(json!({ "email": email, "password": PASSWORD, "display_name": "Sam" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["disabled_at"].is_null(), "{}", r.body);
    let student: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    env.join(env.org, student, "student").await;
    let login = || {
        env.call_as(
            None,
            Method::POST,
            "/v1/sessions",
            Some(json!({ "email": email, "password": PASSWORD })),
        )
    };
    let r = login().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(accepted(&other, &token).await);
    // The profile is cached now; disabling must show through it.
    let profile = format!("/v1/users/{student}");
    assert!(env.get(&profile).await.body["disabled_at"].is_null());

    let r = as_user(
        &env.router,
        &admin_token,
        Method::POST,
        &format!("/v1/users/{student}/disable"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["disabled_at"].is_string(), "{}", r.body);
    assert!(!accepted(&other, &token).await);
    assert_eq!(durable_rows(&env, student).await, 0);
    assert!(env.get(&profile).await.body["disabled_at"].is_string());
    // The right password is told the account is disabled; a wrong one is not.
    let r = login().await;
    r.problem(403);
    assert_eq!(r.slug(), "account-disabled");
    let r = env
        .call_as(
            None,
            Method::POST,
            "/v1/sessions",
            Some(json!({ "email": email, "password": "not the password at all" })),
        )
        .await;
    r.problem(401);
    assert_eq!(r.slug(), "invalid-credentials");
    assert_eq!(durable_rows(&env, student).await, 0);
    // Disabling again changes nothing.
    let again = as_user(
        &env.router,
        &admin_token,
        Method::POST,
        &format!("/v1/users/{student}/disable"),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body["disabled_at"],
        r_disabled_at(&env, student).await
    );

    let r = as_user(
        &env.router,
        &admin_token,
        Method::POST,
        &format!("/v1/users/{student}/enable"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["disabled_at"].is_null());
    let r = login().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The old session stays ended.
    assert!(!accepted(&other, &token).await);
}

/// `disabled_at` as the API shows it.
async fn r_disabled_at(env: &TestEnv, user: Uuid) -> serde_json::Value {
    env.get(&format!("/v1/users/{user}")).await.body["disabled_at"].clone()
}

#[tokio::test]
async fn who_may_revoke_and_disable() {
    let env = TestEnv::new().await;
    let (_, org_admin) = env.member(env.org, "org_admin").await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (student, student_token) = env.user(Role::Student).await;
    let elsewhere = env.new_org().await;
    let (_, foreign_admin) = env.member(elsewhere, "org_admin").await;
    let call = |token: &str, method: Method, path: String| {
        let token = token.to_owned();
        let router = env.router.clone();
        async move { as_user(&router, &token, method, &path).await }
    };
    let sessions = format!("/v1/users/{student}/sessions");
    let disable = format!("/v1/users/{student}/disable");

    // Another organization's admin: no such user.
    for (m, p) in [
        (Method::GET, &sessions),
        (Method::DELETE, &sessions),
        (Method::POST, &disable),
    ] {
        call(&foreign_admin, m, p.clone()).await.problem(404);
    }
    // A teacher of the student's class, the student themselves: forbidden.
    for token in [&teacher, &student_token] {
        call(token, Method::GET, sessions.clone())
            .await
            .problem(403);
        call(token, Method::POST, disable.clone())
            .await
            .problem(403);
    }
    // An unknown user, a malformed id.
    call(
        &org_admin,
        Method::GET,
        format!("/v1/users/{}/sessions", Uuid::new_v4()),
    )
    .await
    .problem(404);
    call(&org_admin, Method::GET, "/v1/users/nope/sessions".into())
        .await
        .problem(404);
    // Nothing changed for the student.
    assert!(accepted(&env.router, &student_token).await);
    assert_eq!(durable_rows(&env, student).await, 1);

    // A student of two organizations: the admin of one may end their
    // sessions but not disable the account both share.
    env.join(elsewhere, student, "student").await;
    call(&org_admin, Method::POST, disable.clone())
        .await
        .problem(403);
    assert!(r_disabled_at(&env, student).await.is_null());
    let r = call(&org_admin, Method::DELETE, sessions.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!accepted(&env.router, &student_token).await);
    // A platform admin may.
    let r = env.call(Method::POST, &disable, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A platform admin who is a member of the organization is out of an org
    // admin's reach; nobody disables themselves.
    let (platform, platform_token) = env.user(Role::Admin).await;
    env.join(env.org, platform, "teacher").await;
    call(
        &org_admin,
        Method::DELETE,
        format!("/v1/users/{platform}/sessions"),
    )
    .await
    .problem(403);
    assert!(accepted(&env.router, &platform_token).await);
    let r = call(
        &platform_token,
        Method::POST,
        format!("/v1/users/{platform}/disable"),
    )
    .await;
    r.problem(422);
    assert!(r_disabled_at(&env, platform).await.is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_racing_a_disable_leaves_no_session() {
    let env = Arc::new(TestEnv::new().await);
    for round in 0..12 {
        let student = env.student().await;
        let signing_in: Vec<_> = (0..3)
            .map(|_| {
                let env = env.clone();
                tokio::spawn(async move {
                    lectern::services::auth::sessions::open(
                        &env.app,
                        student,
                        Role::Student,
                        "test".into(),
                        &Default::default(),
                    )
                    .await
                    .ok()
                    .map(|o| o.token)
                })
            })
            .collect();
        let r = env
            .call(Method::POST, &format!("/v1/users/{student}/disable"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.body);
        for task in signing_in {
            if let Some(token) = task.await.unwrap() {
                assert!(
                    !accepted(&env.router, &token).await,
                    "round {round}: a session outlived the disable"
                );
            }
        }
        assert_eq!(durable_rows(&env, student).await, 0, "round {round}");
    }
}
