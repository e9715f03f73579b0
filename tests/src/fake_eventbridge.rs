//! A stand-in for Amazon EventBridge's `PutEvents` on loopback (axum on
//! 127.0.0.1:0): records every call and the entries it accepted, and can be
//! told to refuse some entries (`FailedEntryCount`), to fail whole calls, or
//! to take a call's entries and never answer (the publisher crashing while
//! EventBridge already has them).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One `PutEvents` call as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    /// `X-Amz-Target`.
    pub target: String,
    /// `Content-Type`.
    pub content_type: String,
    /// `Host`.
    pub host: String,
    /// `Authorization`.
    pub authorization: String,
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`.
    pub security_token: Option<String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Call {
    /// The body's `Entries`.
    pub fn entries(&self) -> Vec<Value> {
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        body["Entries"].as_array().cloned().unwrap_or_default()
    }
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Each accepted entry's `Detail`, parsed, in the order accepted.
    delivered: Vec<Value>,
    /// Event ids whose entries are refused.
    refuse: HashSet<String>,
    /// Calls still to fail as a whole (500).
    fail_calls: usize,
    /// The call (1-based) that is accepted and never answered.
    hang_on_call: Option<usize>,
}

/// The fake; clones share its state.
#[derive(Clone, Default)]
pub struct FakeEventBridge {
    inner: Arc<Mutex<Inner>>,
    hung: Arc<tokio::sync::Notify>,
}

impl FakeEventBridge {
    /// Serves on a loopback port; returns `http://127.0.0.1:<port>`.
    pub async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/", axum::routing::post(Self::put_events))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// The settings a `TestEnv` needs to publish here (bus `lectern-test`).
    pub fn vars(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("EVENT_BUS_NAME", "lectern-test".into()),
            ("EVENTS_ENDPOINT", endpoint.into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKIDLECTERNTEST".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "not-a-real-secret-key-for-tests-only".into(),
            ),
            ("AWS_SESSION_TOKEN", "fake-session-token".into()),
        ]
    }

    async fn put_events(State(fake): State<Self>, headers: HeaderMap, body: Bytes) -> Response {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let call = Call {
            target: header("x-amz-target").unwrap_or_default(),
            content_type: header("content-type").unwrap_or_default(),
            host: header("host").unwrap_or_default(),
            authorization: header("authorization").unwrap_or_default(),
            amz_date: header("x-amz-date").unwrap_or_default(),
            security_token: header("x-amz-security-token"),
            body: body.to_vec(),
        };
        let entries = call.entries();
        let (answer, hang) = {
            let mut inner = fake.inner.lock().unwrap();
            inner.calls.push(call);
            let number = inner.calls.len();
            if inner.fail_calls > 0 {
                inner.fail_calls -= 1;
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"__type":"InternalException"}"#,
                )
                    .into_response();
            }
            let mut results = Vec::new();
            let mut failed = 0;
            for entry in &entries {
                let detail: Value =
                    serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
                let id = detail["event_id"].as_str().unwrap_or_default().to_owned();
                if inner.refuse.contains(&id) {
                    failed += 1;
                    results.push(json!({ "ErrorCode": "InternalFailure",
                                         "ErrorMessage": "refused by the test" }));
                } else {
                    inner.delivered.push(detail);
                    results.push(json!({ "EventId": uuid::Uuid::new_v4() }));
                }
            }
            (
                json!({ "FailedEntryCount": failed, "Entries": results }),
                inner.hang_on_call == Some(number),
            )
        };
        if hang {
            fake.hung.notify_one();
            std::future::pending::<()>().await;
        }
        (
            [("content-type", "application/x-amz-json-1.1")],
            answer.to_string(),
        )
            .into_response()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Every accepted event (its `Detail`), in the order accepted.
    pub fn delivered(&self) -> Vec<Value> {
        self.inner.lock().unwrap().delivered.clone()
    }

    /// Refuses the entries of these events from now on (until [`FakeEventBridge::accept_all`]).
    pub fn refuse(&self, event_ids: &[String]) {
        self.inner
            .lock()
            .unwrap()
            .refuse
            .extend(event_ids.iter().cloned());
    }

    /// Accepts every entry again.
    pub fn accept_all(&self) {
        self.inner.lock().unwrap().refuse.clear();
    }

    /// Fails the next `n` calls as a whole (500, nothing accepted).
    pub fn fail_next_calls(&self, n: usize) {
        self.inner.lock().unwrap().fail_calls = n;
    }

    /// Accepts the entries of the `n`th call from now (1-based) and never answers it.
    pub fn hang_on_call(&self, n: usize) {
        let mut inner = self.inner.lock().unwrap();
        inner.hang_on_call = Some(inner.calls.len() + n);
    }

    /// Waits until the call told to hang has arrived.
    pub async fn hung(&self) {
        self.hung.notified().await;
    }
}
