//! Accounts, password sign-in, and the life of a session token: idle and
//! absolute timeouts, extension, logout, logout everywhere, throttling, and
//! what Redis holds (never a usable token).

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use lectern::services::auth::Role;
use lectern_tests::{Resp, TestEnv, new_email};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn register(env: &TestEnv, token: Option<&str>, body: Value) -> Resp {
    env.call_as(token, Method::POST, "/v1/users", Some(body))
        .await
}

async fn login(env: &TestEnv, email: &str, password: &str) -> Resp {
    env.call_as(
        None,
        Method::POST,
        "/v1/sessions",
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

/// A successful sign-in's token.
async fn signed_in(env: &TestEnv, email: &str) -> String {
    let r = login(env, email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

/// A registered student's email and a fresh token.
async fn student(env: &TestEnv) -> (String, String) {
    let email = new_email();
    let r = register(
        env,
        None,
        json!({ "email": email, "password": PASSWORD, "display_name": "Sam" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = signed_in(env, &email).await;
    (email, token)
}

async fn get(env: &TestEnv, token: &str, path: &str) -> Resp {
    env.call_as(Some(token), Method::GET, path, None).await
}

#[tokio::test]
async fn sign_up_normalises_hashes_and_refuses_bad_input_writing_nothing() {
    let env = TestEnv::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let r = register(
        &env,
        None,
        json!({ "email": format!("  Ada.{id}@Example.COM "), "password": PASSWORD, "display_name": " Ada " }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let email = format!("ada.{id}@example.com");
    assert_eq!(r.body["email"], email.as_str());
    assert_eq!(r.body["display_name"], "Ada");
    assert_eq!(r.body["role"], "student");
    assert!(r.body.get("password_hash").is_none() && !r.body.to_string().contains(PASSWORD));
    let stored: String = env
        .sql()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");

    let users = env.count("users").await;
    let cases = [
        (
            json!({ "email": email.to_uppercase(), "password": PASSWORD, "display_name": "x" }),
            409,
        ),
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "display_name": "x" }),
            422,
        ),
        (
            json!({ "email": new_email(), "password": "elevenchars", "display_name": "x" }),
            422,
        ),
        (
            json!({ "email": new_email(), "password": PASSWORD, "display_name": "  " }),
            422,
        ),
        (
            json!({ "email": new_email(), "password": PASSWORD, "display_name": "x", "role": "god" }),
            422,
        ),
        (json!({ "email": new_email(), "password": PASSWORD }), 422),
        (
            json!({ "email": new_email(), "password": PASSWORD, "display_name": "x", "extra": 1 }),
            422,
        ),
    ];
    for (body, status) in cases {
        let r = register(&env, None, body.clone()).await;
        r.problem(status);
        assert!(!r.body.to_string().contains(PASSWORD), "{}", r.body);
    }
    assert_eq!(env.count("users").await, users, "nothing written");
}

#[tokio::test]
async fn only_a_platform_admin_makes_platform_admins() {
    let env = TestEnv::new().await;
    let (_, student_token) = student(&env).await;
    let (_, teacher_token) = env.user(Role::Teacher).await;
    let org_admin = env.student().await;
    env.join(env.new_org().await, org_admin, "org_admin").await;
    let org_admin_token = env.sign_in(org_admin, Role::Student).await;
    let admin = env.admin_token();
    let users = env.count("users").await;
    let body =
        json!({ "email": new_email(), "password": PASSWORD, "display_name": "T", "role": "admin" });
    for token in [
        None,
        Some(&student_token),
        Some(&teacher_token),
        Some(&org_admin_token),
    ] {
        let r = register(&env, token.map(String::as_str), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "by {token:?}: {}", r.body);
    }
    // Teaching is a role in an organization, not an account kind: refused for
    // everyone, the platform admin included, with where to go instead.
    let teacher = json!({ "email": new_email(), "password": PASSWORD, "display_name": "T", "role": "teacher" });
    for token in [None, Some(&admin)] {
        let r = register(&env, token.map(String::as_str), teacher.clone()).await;
        assert!(r.problem(422).contains("member"), "{}", r.body);
    }
    assert_eq!(env.count("users").await, users, "nothing written");
    let r = register(&env, Some(&admin), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["role"], "admin");
    // A bad token on sign-up is refused rather than ignored.
    let r = register(
        &env,
        Some(&"x".repeat(43)),
        json!({ "email": new_email(), "password": PASSWORD, "display_name": "S" }),
    )
    .await;
    r.problem(401);
}

#[tokio::test]
async fn login_gives_an_opaque_token_and_redis_holds_only_its_hash() {
    let env = TestEnv::new().await;
    let (email, token) = student(&env).await;
    assert_eq!(token.len(), 43);
    let me = get(&env, &token, "/v1/sessions/current").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["current"], true);
    assert_eq!(me.body["method"], "password");
    assert!(me.body.get("token").is_none());

    // Nothing in Redis is the token, or lets one rebuild it.
    let entries = env.redis_entries().await;
    let hash = lectern::services::auth::secret::sha256_hex(&token);
    assert!(
        entries
            .iter()
            .any(|(k, _)| k == &format!("{}auth:session:{hash}", env.prefix))
    );
    for (k, v) in &entries {
        assert!(!k.contains(&token), "{k}");
        if let Some(v) = v {
            assert!(
                !v.windows(token.len()).any(|w| w == token.as_bytes()),
                "{k}"
            );
        }
    }
    // A "token" made from what a dump shows (the hash, or the key) is refused.
    for forged in [
        hash.clone(),
        hash[..43].to_owned(),
        format!("auth:session:{hash}"),
    ] {
        get(&env, &forged, "/v1/sessions/current")
            .await
            .problem(401);
    }
    // Two devices: two sessions, both listed, neither with a token.
    let second = signed_in(&env, &email).await;
    let list = get(&env, &second, "/v1/sessions").await;
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", list.body);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(!list.body.to_string().contains(&token) && !list.body.to_string().contains(&second));
    env.assert_redis_clean().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let env = TestEnv::new().await;
    let (email, _) = student(&env).await;
    let wrong = login(&env, &email, "not the password at all").await;
    let unknown = login(&env, &new_email(), "not the password at all").await;
    let malformed = login(&env, "not-an-email", "not the password at all").await;
    for r in [&wrong, &unknown, &malformed] {
        r.problem(401);
        assert_eq!(r.body, wrong.body, "same body, whatever the cause");
        assert!(r.headers.get(header::RETRY_AFTER).is_none());
    }
    // An account made through a provider has no password: the same answer again.
    let oidc_only = lectern::store::users::ensure(env.app.db(), &new_email(), "student")
        .await
        .unwrap();
    let email_of: String = env
        .sql()
        .await
        .query_one("SELECT email FROM users WHERE id = $1", &[&oidc_only])
        .await
        .unwrap()
        .get(0);
    let r = login(&env, &email_of, "").await;
    assert_eq!(r.body, wrong.body);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_address() {
    let env = TestEnv::with_vars(&[
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "3".into()),
        ("LOGIN_MAX_FAILURES_PER_IP", "100".into()),
        ("LOGIN_THROTTLE_WINDOW_SECS", "60".into()),
    ])
    .await;
    let (email, _) = student(&env).await;
    for _ in 0..3 {
        login(&env, &email, "wrong password!!").await.problem(401);
    }
    // The fourth try is refused before the password is looked at, even the right one.
    let r = login(&env, &email, PASSWORD).await;
    r.problem(429);
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The same for an unknown account: no way to tell which exist.
    let ghost = new_email();
    for _ in 0..3 {
        login(&env, &ghost, "wrong password!!").await.problem(401);
    }
    login(&env, &ghost, "wrong password!!").await.problem(429);

    // Per address: 5 failures over any accounts, then everything from it waits,
    // while another account from the same address still could not get past.
    let env = TestEnv::with_vars(&[
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "100".into()),
        ("LOGIN_MAX_FAILURES_PER_IP", "5".into()),
    ])
    .await;
    let (email, _) = student(&env).await;
    // Successful logins do not count against the address.
    for _ in 0..6 {
        let r = login(&env, &email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for _ in 0..5 {
        login(&env, &new_email(), "wrong password!!")
            .await
            .problem(401);
    }
    login(&env, &email, PASSWORD).await.problem(429);
    // Every throttle counter expires.
    env.assert_redis_clean().await;
}

#[tokio::test]
async fn idle_sessions_die_and_use_keeps_them_alive() {
    let env = TestEnv::with_vars(&[
        ("AUTH_IDLE_TIMEOUT_SECS", "2".into()),
        ("AUTH_ABSOLUTE_TIMEOUT_SECS", "60".into()),
        ("AUTH_TOUCH_INTERVAL_SECS", "0".into()),
    ])
    .await;
    let (_, used) = student(&env).await;
    let (_, idle) = student(&env).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = get(&env, &used, "/v1/sessions/current").await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a used session lives on: {}",
            r.body
        );
    }
    // 3.5 s without use against a 2 s idle timeout.
    get(&env, &idle, "/v1/sessions/current").await.problem(401);
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_a_busy_session_and_caps_extensions() {
    let env = TestEnv::with_vars(&[
        ("AUTH_IDLE_TIMEOUT_SECS", "2".into()),
        ("AUTH_ABSOLUTE_TIMEOUT_SECS", "3".into()),
        ("AUTH_TOUCH_INTERVAL_SECS", "0".into()),
    ])
    .await;
    let (_, token) = student(&env).await;
    let current = get(&env, &token, "/v1/sessions/current").await.body;
    let absolute = current["absolute_expires_at"].clone();
    let extend = |body: Option<Value>| {
        let token = token.clone();
        let env = &env;
        async move {
            env.call_as(
                Some(&token),
                Method::POST,
                "/v1/sessions/current/extend",
                body,
            )
            .await
        }
    };
    // Asking for more than the absolute timeout allows is refused...
    extend(Some(json!({ "seconds": 4 }))).await.problem(422);
    extend(Some(json!({ "seconds": 0 }))).await.problem(422);
    // ...asking within it is capped at the absolute deadline.
    let r = extend(Some(json!({ "seconds": 3 }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["capped"], true);
    assert_eq!(r.body["session"]["expires_at"], absolute);
    // Without a body: by the idle timeout, also capped.
    let r = extend(None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["session"]["expires_at"].as_str() <= absolute.as_str());
    let mut alive = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if get(&env, &token, "/v1/sessions/current").await.status == StatusCode::OK {
            alive += 1;
        } else {
            break;
        }
    }
    assert!(
        (4..=6).contains(&alive),
        "died at the 3 s absolute timeout: {alive}"
    );
    get(&env, &token, "/v1/sessions/current").await.problem(401);
}

#[tokio::test]
async fn use_is_written_at_most_once_per_touch_interval() {
    let env = TestEnv::new().await;
    let (_, token) = student(&env).await;
    let before = get(&env, &token, "/v1/sessions/current").await.body;
    let redis_before = env.app.io_counts();
    for _ in 0..5 {
        get(&env, &token, "/v1/sessions/current").await;
    }
    let spent = env.app.io_counts() - redis_before;
    // One GET per request; no write within the minute.
    assert_eq!(spent.redis_round_trips, 5);
    let after = get(&env, &token, "/v1/sessions/current").await.body;
    assert_eq!(before["last_accessed_at"], after["last_accessed_at"]);
    assert_eq!(before["expires_at"], after["expires_at"]);
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_everywhere_ends_them_all() {
    let env = TestEnv::new().await;
    let (email, phone) = student(&env).await;
    let laptop = signed_in(&env, &email).await;
    let tablet = signed_in(&env, &email).await;
    let (_, someone_else) = student(&env).await;

    let r = env
        .call_as(Some(&phone), Method::DELETE, "/v1/sessions/current", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    get(&env, &phone, "/v1/sessions/current").await.problem(401);
    let list = get(&env, &laptop, "/v1/sessions").await;
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 2);

    let r = env
        .call_as(Some(&laptop), Method::DELETE, "/v1/sessions", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended"], 2);
    for token in [&laptop, &tablet] {
        get(&env, token, "/v1/sessions/current").await.problem(401);
    }
    // Another user's session is untouched.
    let r = get(&env, &someone_else, "/v1/sessions/current").await;
    assert_eq!(r.status, StatusCode::OK);
    // Nothing of the ended sessions is left in Redis.
    for token in [&phone, &laptop, &tablet] {
        let hash = lectern::services::auth::secret::sha256_hex(token);
        assert!(
            env.redis_entries()
                .await
                .iter()
                .all(|(k, _)| !k.contains(&hash)),
            "{hash}"
        );
    }
}

#[tokio::test]
async fn session_stats_count_without_scanning() {
    let env = TestEnv::new().await;
    let base = env.get("/v1/admin/sessions/stats").await;
    assert_eq!(base.status, StatusCode::OK, "{}", base.body);
    // The admin's own session.
    assert_eq!(
        base.body,
        json!({ "total": 1, "active": 1, "unique_users": 1 })
    );
    let (email, _) = student(&env).await;
    login(&env, &email, PASSWORD).await;
    let (_, other) = student(&env).await;
    let stats = env.get("/v1/admin/sessions/stats").await.body;
    assert_eq!(stats, json!({ "total": 4, "active": 4, "unique_users": 3 }));
    env.call_as(Some(&other), Method::DELETE, "/v1/sessions", None)
        .await;
    let stats = env.get("/v1/admin/sessions/stats").await.body;
    assert_eq!(stats, json!({ "total": 3, "active": 3, "unique_users": 2 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_sign_ups_of_one_email_make_one_account() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let email = new_email();
    let users = env.count("users").await;
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (env, email) = (env.clone(), email.clone());
            tokio::spawn(async move {
                register(
                    &env,
                    None,
                    json!({ "email": email, "password": PASSWORD, "display_name": "Twin" }),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for run in runs {
        statuses.push(run.await.unwrap().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(env.count("users").await, users + 1);
}

#[tokio::test]
async fn the_first_admin_comes_from_the_command_not_an_endpoint() {
    let env = TestEnv::new().await;
    let email = new_email();
    let short =
        lectern::services::auth::accounts::create_admin(&env.app, &email, "Root", "short").await;
    assert!(short.is_err());
    let admin = lectern::services::auth::accounts::create_admin(&env.app, &email, "Root", PASSWORD)
        .await
        .unwrap();
    assert_eq!(admin.role, "admin");
    let again =
        lectern::services::auth::accounts::create_admin(&env.app, &email, "Root", PASSWORD).await;
    assert!(matches!(
        again,
        Err(lectern::services::auth::Error::EmailTaken)
    ));
    let token = signed_in(&env, &email).await;
    let stats = get(&env, &token, "/v1/admin/sessions/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
}

/// Deletes every key of this test from Redis: what FLUSHALL or a failover
/// without replicas does to it.
async fn lose_redis(env: &TestEnv) {
    let mut conn = env.redis().await;
    for key in lectern_tests::keys_under(&mut conn, &env.prefix)
        .await
        .unwrap()
    {
        let () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert!(env.redis_entries().await.is_empty());
}

async fn durable_sessions(env: &TestEnv, email: &str) -> i64 {
    env.sql()
        .await
        .query_one(
            "SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sessions_survive_losing_redis_but_revocations_survive_it_too() {
    let env = TestEnv::new().await;
    let (email, phone) = student(&env).await;
    let laptop = signed_in(&env, &email).await;
    let (_, other) = student(&env).await;
    assert_eq!(durable_sessions(&env, &email).await, 2);
    // PostgreSQL holds the token's hash only.
    let stored: Vec<String> = env
        .sql()
        .await
        .query("SELECT token_hash FROM auth_sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.contains(&lectern::services::auth::secret::sha256_hex(&laptop)));
    assert!(!stored.contains(&laptop));

    let r = env
        .call_as(Some(&phone), Method::DELETE, "/v1/sessions/current", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(durable_sessions(&env, &email).await, 1);
    let before = get(&env, &laptop, "/v1/sessions/current").await.body;

    lose_redis(&env).await;
    // Still signed in, as the same session; the one logged out stays out.
    let r = get(&env, &laptop, "/v1/sessions/current").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], before["id"]);
    assert_eq!(r.body["absolute_expires_at"], before["absolute_expires_at"]);
    get(&env, &phone, "/v1/sessions/current").await.problem(401);
    assert_eq!(
        get(&env, &other, "/v1/sessions/current").await.status,
        StatusCode::OK
    );
    // Rebuilt into Redis: the next request is served from there (one GET).
    let hash = lectern::services::auth::secret::sha256_hex(&laptop);
    assert!(
        env.redis_entries()
            .await
            .iter()
            .any(|(k, _)| k.contains(&hash))
    );
    let spent = env.app.io_counts();
    get(&env, &laptop, "/v1/sessions/current").await;
    assert_eq!((env.app.io_counts() - spent).redis_round_trips, 1);

    // Logging out everywhere reaches the sessions Redis lost as well.
    let tablet = signed_in(&env, &email).await;
    lose_redis(&env).await;
    let r = env
        .call_as(Some(&laptop), Method::DELETE, "/v1/sessions", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(durable_sessions(&env, &email).await, 0);
    lose_redis(&env).await;
    for token in [&laptop, &tablet] {
        get(&env, token, "/v1/sessions/current").await.problem(401);
    }
}

#[tokio::test]
async fn an_idle_session_is_not_rebuilt_and_the_sweeper_deletes_it() {
    let env = TestEnv::with_vars(&[
        ("AUTH_IDLE_TIMEOUT_SECS", "2".into()),
        ("AUTH_ABSOLUTE_TIMEOUT_SECS", "60".into()),
        ("AUTH_TOUCH_INTERVAL_SECS", "0".into()),
    ])
    .await;
    let (email, idle) = student(&env).await;
    let used = signed_in(&env, &email).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            get(&env, &used, "/v1/sessions/current").await.status,
            StatusCode::OK
        );
    }
    // `idle` died in Redis; PostgreSQL agrees, so it is not brought back.
    // `used` carried its idle deadline into PostgreSQL and is.
    lose_redis(&env).await;
    get(&env, &idle, "/v1/sessions/current").await.problem(401);
    assert_eq!(
        get(&env, &used, "/v1/sessions/current").await.status,
        StatusCode::OK
    );
    // Rows of dead sessions go with the sweep (idle ones a day late).
    env.sql()
        .await
        .execute(
            "UPDATE auth_sessions SET absolute_until = now() - interval '1 second',
                                     idle_until = now() - interval '1 second'
             WHERE token_hash = $1",
            &[&lectern::services::auth::secret::sha256_hex(&idle)],
        )
        .await
        .unwrap();
    let report = lectern::services::sweep::sweep(&env.app).await.unwrap();
    assert_eq!(report.sessions_deleted, 1);
    assert_eq!(durable_sessions(&env, &email).await, 1);
}

/// A rebuild racing a logout never brings the session back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_racing_a_rebuild_wins() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    for _ in 0..10 {
        let (user, token) = env.user(Role::Student).await;
        let other = env.sign_in(user, Role::Student).await;
        lose_redis(&env).await;
        let uses: Vec<_> = (0..4)
            .map(|_| {
                let (env, token) = (env.clone(), token.clone());
                tokio::spawn(async move { get(&env, &token, "/v1/sessions/current").await.status })
            })
            .collect();
        let logout = {
            let (env, other) = (env.clone(), other.clone());
            tokio::spawn(async move {
                env.call_as(Some(&other), Method::DELETE, "/v1/sessions", None)
                    .await
                    .status
            })
        };
        for u in uses {
            let status = u.await.unwrap();
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "{status}"
            );
        }
        assert_eq!(logout.await.unwrap(), StatusCode::OK);
        get(&env, &token, "/v1/sessions/current").await.problem(401);
        let hash = lectern::services::auth::secret::sha256_hex(&token);
        assert!(
            env.redis_entries()
                .await
                .iter()
                .all(|(k, _)| !k.contains(&hash)),
            "{hash}"
        );
        let left: i64 = env
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM auth_sessions WHERE user_id = $1",
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }
}

/// PostgreSQL first: with it unreachable, a sign-in is refused (503) and
/// leaves nothing in Redis, while a session Redis has keeps working.
#[tokio::test]
async fn without_postgresql_no_session_is_opened_but_open_ones_work() {
    let (_healthy, proxy, env) = TestEnv::behind_database_proxy().await;
    let (email, token) = student(&env).await;
    let sessions = async || {
        env.redis_entries()
            .await
            .into_iter()
            .filter(|(k, _)| k.contains("auth:session:"))
            .count()
    };
    let before = sessions().await;
    proxy.cut();
    login(&env, &email, PASSWORD).await.problem(503);
    assert_eq!(sessions().await, before);
    let r = get(&env, &token, "/v1/sessions/current").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    proxy.restore();
    assert_eq!(durable_sessions(&env, &email).await, 1);
}
