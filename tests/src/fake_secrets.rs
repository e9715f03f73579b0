//! The AWS Parameters and Secrets Lambda Extension's stand-in on loopback:
//! `GET /secretsmanager/get?secretId=<arn>` answers `{"SecretString": ...}` for
//! the secrets a test put in, to callers showing the session token, 404 for
//! others (as the extension relays Secrets Manager's ResourceNotFound).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, String>,
    calls: usize,
}

/// The stand-in; stops when dropped.
pub struct FakeSecrets {
    url: String,
    token: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeSecrets {
    /// Starts one on a free loopback port, with a session token of its own.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = format!("session-{}", uuid::Uuid::new_v4().simple());
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = axum::Router::new()
            .route("/secretsmanager/get", axum::routing::get(get_secret))
            .with_state((inner.clone(), token.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            token,
            inner,
            server,
        }
    }

    /// Stores (or replaces) the secret string of `arn`.
    pub fn put(&self, arn: &str, secret: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.secrets.insert(arn.into(), secret.into());
    }

    /// Lookups so far (refused ones included).
    pub fn calls(&self) -> usize {
        self.inner.lock().unwrap().calls
    }

    /// `SECRETS_ENDPOINT` and `AWS_SESSION_TOKEN` pointing at it.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SECRETS_ENDPOINT", self.url.clone()),
            ("AWS_SESSION_TOKEN", self.token.clone()),
        ]
    }
}

impl Drop for FakeSecrets {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn get_secret(
    State((inner, token)): State<(Arc<Mutex<Inner>>, String)>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.calls += 1;
    let shown = headers
        .get("x-aws-parameters-secrets-token")
        .and_then(|v| v.to_str().ok());
    if shown != Some(token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = query.get("secretId").cloned().unwrap_or_default();
    match inner.secrets.get(&id) {
        Some(secret) => axum::Json(json!({ "ARN": id, "SecretString": secret })).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
