//! A small OpenID Connect provider on loopback, for the sign-in tests: an
//! authorization endpoint that signs in whoever the test says, a token endpoint
//! that checks the client's credentials, the code (once), the redirect URI and
//! the PKCE verifier, and a userinfo endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Resp, TestEnv, send};

/// Our client at the provider.
pub const CLIENT_ID: &str = "lectern-test";
/// Our client secret at the provider.
pub const CLIENT_SECRET: &str = "s3cret: with/odd chars";

/// Who signs in at the provider next.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// Stable id at the provider.
    pub sub: String,
    /// Email, if shared.
    pub email: Option<String>,
    /// Whether the provider vouches for it.
    pub email_verified: bool,
    /// Name.
    pub name: String,
    /// Whether the email comes only from userinfo (not in the ID token).
    pub email_via_userinfo: bool,
}

impl FakeUser {
    /// A user with a verified email of their own.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            sub: format!("sub-{id}"),
            email: Some(format!("{id}@idp.example.test")),
            email_verified: true,
            name: "Ada Lovelace".into(),
            email_via_userinfo: false,
        }
    }
}

impl Default for FakeUser {
    fn default() -> Self {
        Self::new()
    }
}

struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
    user: FakeUser,
}

#[derive(Default)]
struct Inner {
    next_user: Option<FakeUser>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, FakeUser>,
    /// What the token endpoint answers instead, when set.
    token_failure: Option<(StatusCode, Value)>,
    /// A nonce put in ID tokens instead of the one asked for.
    wrong_nonce: bool,
    token_calls: usize,
}

/// The provider; stops when dropped.
pub struct FakeOidc {
    /// Its base URL (also the issuer).
    pub url: String,
    router: Router,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOidc {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state((inner.clone(), url.clone()));
        let served = router.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, served).await;
        });
        Self {
            url,
            router,
            inner,
            server,
        }
    }

    /// The `OAUTH_PROVIDERS` setting naming this provider `name`.
    pub fn setting(&self, name: &str) -> (&'static str, String) {
        let url = &self.url;
        let provider = json!({
            "issuer": url,
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "userinfo_endpoint": format!("{url}/userinfo"),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": "http://127.0.0.1:3000/v1/oauth/callback-page",
        });
        ("OAUTH_PROVIDERS", json!({ name: provider }).to_string())
    }

    /// Makes the token endpoint answer `status` with `body` from now on.
    pub fn fail_token_requests(&self, status: StatusCode, body: Value) {
        self.inner.lock().unwrap().token_failure = Some((status, body));
    }

    /// Puts a nonce other than the one asked for in ID tokens from now on.
    pub fn send_wrong_nonce(&self) {
        self.inner.lock().unwrap().wrong_nonce = true;
    }

    /// How many token requests came in.
    pub fn token_calls(&self) -> usize {
        self.inner.lock().unwrap().token_calls
    }

    /// The browser's part: follows our authorize redirect to the provider, where
    /// `user` signs in; returns the callback query the provider redirects back with.
    pub async fn browser_sign_in(&self, env: &TestEnv, provider: &str, user: &FakeUser) -> String {
        let start = env
            .call_as(
                None,
                Method::GET,
                &format!("/v1/oauth/{provider}/authorize"),
                None,
            )
            .await;
        assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
        let location = start.headers[header::LOCATION].to_str().unwrap().to_owned();
        let at_provider = location
            .strip_prefix(&self.url)
            .expect("redirected to the provider");
        self.inner.lock().unwrap().next_user = Some(user.clone());
        let back = send(
            &self.router,
            Request::get(at_provider).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
        let back = back.headers[header::LOCATION].to_str().unwrap();
        back.split_once('?').unwrap().1.to_owned()
    }

    /// A whole sign-in of `user` through provider `provider`: our callback's answer.
    pub async fn sign_in(&self, env: &TestEnv, provider: &str, user: &FakeUser) -> Resp {
        let query = self.browser_sign_in(env, provider, user).await;
        callback(env, provider, &query).await
    }
}

/// Calls our callback with `query`, anonymously.
pub async fn callback(env: &TestEnv, provider: &str, query: &str) -> Resp {
    env.call_as(
        None,
        Method::GET,
        &format!("/v1/oauth/{provider}/callback?{query}"),
        None,
    )
    .await
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<(Arc<Mutex<Inner>>, String)>;

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn authorize(
    State((inner, _)): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    if !ok {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let redirect_uri = q["redirect_uri"].clone();
    let mut inner = inner.lock().unwrap();
    let user = inner.next_user.take().unwrap_or_default();
    let code = random();
    inner.codes.insert(
        code.clone(),
        Grant {
            challenge: q["code_challenge"].clone(),
            nonce: q["nonce"].clone(),
            redirect_uri: redirect_uri.clone(),
            user,
        },
    );
    let query =
        serde_urlencoded::to_string([("code", code.as_str()), ("state", &q["state"])]).unwrap();
    redirect(format!("{redirect_uri}?{query}"))
}

fn token_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn token(State((inner, issuer)): Shared, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let mut inner = inner.lock().unwrap();
    inner.token_calls += 1;
    if let Some((status, body)) = inner.token_failure.clone() {
        return (status, axum::Json(body)).into_response();
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(CLIENT_ID), enc(CLIENT_SECRET)))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    let Some(grant) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
        return token_error("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return token_error("invalid_grant");
    }
    let user = grant.user;
    let mut claims = json!({
        "iss": issuer,
        "sub": user.sub,
        "aud": CLIENT_ID,
        "exp": time_now() + 300,
        "iat": time_now(),
        "nonce": if inner.wrong_nonce { "not-the-nonce".to_owned() } else { grant.nonce },
        "name": user.name,
    });
    if !user.email_via_userinfo
        && let Some(email) = &user.email
    {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(user.email_verified);
    }
    let access = random();
    inner.access.insert(access.clone(), user);
    let id_token = format!(
        "{}.{}.signature",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    axum::Json(json!({ "access_token": access, "token_type": "Bearer", "id_token": id_token, "expires_in": 300 }))
        .into_response()
}

async fn userinfo(State((inner, _)): Shared, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let inner = inner.lock().unwrap();
    match inner.access.get(bearer) {
        Some(user) => axum::Json(json!({
            "sub": user.sub, "email": user.email, "email_verified": user.email_verified,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

fn enc(v: &str) -> String {
    serde_urlencoded::to_string([("", v)]).unwrap()[1..].to_owned()
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
