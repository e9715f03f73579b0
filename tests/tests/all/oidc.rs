//! OpenID Connect sign-in against a provider the test runs on loopback: the
//! whole code flow with PKCE, and every way it can go wrong (replayed, expired
//! or forged state, the user refusing, the provider refusing or failing, a bad
//! ID token), none of which leaves a session or an account behind.

use axum::http::{Method, StatusCode, header};
use lectern_tests::oidc::{FakeOidc, FakeUser, callback};
use lectern_tests::{TestEnv, new_email};
use serde_json::json;

async fn setup() -> (FakeOidc, TestEnv) {
    let idp = FakeOidc::start().await;
    let env = TestEnv::with_vars(&[idp.setting("corp")]).await;
    (idp, env)
}

/// Users and sessions (besides the harness's admin) that exist now.
async fn footprint(env: &TestEnv) -> (i64, u64) {
    let stats = env.get("/v1/admin/sessions/stats").await.body;
    (env.count("users").await, stats["total"].as_u64().unwrap())
}

#[tokio::test]
async fn a_new_user_signs_in_and_gets_a_student_account_and_a_session() {
    let (idp, env) = setup().await;
    let start = env
        .call_as(None, Method::GET, "/v1/oauth/corp/authorize", None)
        .await;
    assert_eq!(start.status, StatusCode::FOUND);
    let location = start.headers[header::LOCATION].to_str().unwrap();
    for part in [
        "response_type=code",
        "client_id=lectern-test",
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "scope=openid+email+profile",
    ] {
        assert!(location.contains(part), "{part} in {location}");
    }
    // The pending sign-in is kept ten minutes, and holds no secret of the client.
    let state = location
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let key = format!("{}oauth:state:{state}", env.prefix);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    assert!((590_000..=600_000).contains(&ttl), "{ttl}");

    let user = FakeUser::new();
    let r = idp.sign_in(&env, "corp", &user).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(r.body["created"], true);
    assert_eq!(
        r.body["user"]["email"],
        user.email.clone().unwrap().as_str()
    );
    assert_eq!(r.body["user"]["role"], "student");
    assert_eq!(r.body["user"]["display_name"], "Ada Lovelace");
    assert_eq!(r.body["session"]["method"], "oidc:corp");
    let token = r.body["token"].as_str().unwrap();
    let me = env
        .call_as(Some(token), Method::GET, "/v1/sessions/current", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    // Signing in again finds the same account.
    let again = idp.sign_in(&env, "corp", &user).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["user"]["id"], r.body["user"]["id"]);
    // The two sign-ins used their states up; only the first, never used, is left.
    let states: Vec<String> = env
        .redis_entries()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("oauth:state"))
        .collect();
    assert_eq!(states, [key]);
    env.assert_redis_clean().await;
}

#[tokio::test]
async fn a_verified_email_links_to_the_existing_account_and_an_unverified_one_does_not() {
    let (idp, env) = setup().await;
    let email = new_email();
    let r = env
        .call_as(
            None,
            Method::POST,
            "/v1/users",
            Some(json!({ "email": email, "password": "a long enough password", "display_name": "Existing" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let existing = r.body["id"].clone();

    let mut unverified = FakeUser::new();
    unverified.email = Some(email.to_uppercase());
    unverified.email_verified = false;
    let before = footprint(&env).await;
    let r = idp.sign_in(&env, "corp", &unverified).await;
    r.problem(409);
    assert_eq!(footprint(&env).await, before, "no account, no session");

    let mut verified = FakeUser::new();
    verified.email = Some(email.clone());
    let r = idp.sign_in(&env, "corp", &verified).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user"]["id"], existing);
    assert_eq!(r.body["created"], false);
}

#[tokio::test]
async fn the_email_may_come_from_userinfo() {
    let (idp, env) = setup().await;
    let mut user = FakeUser::new();
    user.email_via_userinfo = true;
    let r = idp.sign_in(&env, "corp", &user).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user"]["email"], user.email.unwrap().as_str());
}

#[tokio::test]
async fn a_state_works_once_and_only_for_its_provider() {
    let (idp, env) = setup().await;
    let query = idp.browser_sign_in(&env, "corp", &FakeUser::new()).await;
    let first = callback(&env, "corp", &query).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let before = footprint(&env).await;
    let calls = idp.token_calls();

    // Replayed.
    let replay = callback(&env, "corp", &query).await;
    assert_eq!(replay.slug(), "invalid-oauth-state");
    replay.problem(400);
    // Forged, missing, absurd.
    for bad in [
        "code=abc&state=never-issued".to_owned(),
        "code=abc".to_owned(),
        format!("code=abc&state={}", "x".repeat(5000)),
    ] {
        let r = callback(&env, "corp", &bad).await;
        r.problem(400);
        assert_eq!(r.slug(), "invalid-oauth-state", "{bad:.40}");
    }
    // Unknown provider.
    callback(&env, "nope", &query).await.problem(404);
    env.call_as(None, Method::GET, "/v1/oauth/nope/authorize", None)
        .await
        .problem(404);
    assert_eq!(idp.token_calls(), calls, "no code was exchanged");
    assert_eq!(footprint(&env).await, before);
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let (idp, env) = setup().await;
    let query = idp.browser_sign_in(&env, "corp", &FakeUser::new()).await;
    let state = query.split("state=").nth(1).unwrap();
    // Ten minutes pass (the key's TTL runs out).
    let key = format!("{}oauth:state:{state}", env.prefix);
    let () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1)
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = callback(&env, "corp", &query).await;
    r.problem(400);
    assert_eq!(r.slug(), "invalid-oauth-state");
    assert_eq!(idp.token_calls(), 0);
}

#[tokio::test]
async fn refusals_and_provider_failures_open_nothing() {
    let (idp, env) = setup().await;
    let before = footprint(&env).await;

    // The user said no at the provider: the state is spent, nothing exchanged.
    let query = idp.browser_sign_in(&env, "corp", &FakeUser::new()).await;
    let state = query.split("state=").nth(1).unwrap();
    let r = callback(&env, "corp", &format!("error=access_denied&state={state}")).await;
    r.problem(400);
    assert_eq!(r.slug(), "oauth-refused");
    assert!(r.body["detail"].as_str().unwrap().contains("access_denied"));
    callback(&env, "corp", &query).await.problem(400);

    // The provider refuses the code.
    idp.fail_token_requests(StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }));
    let r = idp.sign_in(&env, "corp", &FakeUser::new()).await;
    r.problem(400);
    assert!(r.body["detail"].as_str().unwrap().contains("invalid_grant"));

    // The provider breaks.
    idp.fail_token_requests(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    let r = idp.sign_in(&env, "corp", &FakeUser::new()).await;
    r.problem(502);
    assert_eq!(r.slug(), "oauth-provider-failed");
    assert_eq!(footprint(&env).await, before);
}

#[tokio::test]
async fn an_id_token_with_the_wrong_nonce_is_refused() {
    let (idp, env) = setup().await;
    let before = footprint(&env).await;
    idp.send_wrong_nonce();
    let r = idp.sign_in(&env, "corp", &FakeUser::new()).await;
    r.problem(502);
    assert!(
        r.body["detail"].as_str().unwrap().contains("nonce"),
        "{}",
        r.body
    );
    assert_eq!(footprint(&env).await, before);
}

#[tokio::test]
async fn a_provider_out_of_reach_is_a_502() {
    let idp = FakeOidc::start().await;
    let (name, mut setting) = idp.setting("corp");
    // Token endpoint on a closed port.
    setting = setting.replace(&format!("{}/token", idp.url), "http://127.0.0.1:1/token");
    let env = TestEnv::with_vars(&[(name, setting)]).await;
    let r = idp.sign_in(&env, "corp", &FakeUser::new()).await;
    r.problem(502);
    assert_eq!(r.slug(), "oauth-provider-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_callbacks_with_one_state_open_one_session() {
    let (idp, env) = setup().await;
    let query = idp.browser_sign_in(&env, "corp", &FakeUser::new()).await;
    let env = std::sync::Arc::new(env);
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let (env, query) = (env.clone(), query.clone());
            tokio::spawn(async move { callback(&env, "corp", &query).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for run in runs {
        statuses.push(run.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 400, 400, 400, 400, 400]);
    assert_eq!(idp.token_calls(), 1);
}
