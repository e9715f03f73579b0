//! An OpenAI-compatible chat-completions API on loopback, for the AI tests:
//! `POST /v1/chat/completions` checks the bearer key and answers
//! deterministically (`echo {n}: {last user message}`, token counts from word
//! counts), `POST /v1/embeddings` checks it too and answers with [`embed`]
//! (a hashed bag of words, not a neural model), and `GET
//! /secretsmanager/get` plays the Lambda Parameters and Secrets extension,
//! handing out the key to whoever shows the session token.
//!
//! A test can make the next calls fail ([`FakeAi::fail_next`]) or every reply
//! slow ([`FakeAi::delay`]), and reads back what came in.

mod embedder;

pub use embedder::{DIMENSIONS as EMBEDDING_DIMENSIONS, embed, tokens};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The model [`FakeAi::vars`] configures.
pub const MODEL: &str = "fake-model-1";
/// The embedding model [`FakeAi::vars`] configures.
pub const EMBEDDING_MODEL: &str = "fake-embedding-1";
/// The secret [`FakeAi::secret_vars`] points at.
pub const SECRET_ARN: &str =
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lectern/ai-AbCdEf";
/// Most request bodies kept for [`FakeAi::requests`].
const KEPT_REQUESTS: usize = 100;

struct Inner {
    api_key: String,
    calls: usize,
    embedding_calls: usize,
    requests: VecDeque<Value>,
    /// Status and `Retry-After` of the next failures, one entry per call.
    failures: VecDeque<(u16, Option<u64>)>,
    delay: Duration,
    session_token: String,
    secret_calls: usize,
    /// The secret as stored: the key as JSON `{"api_key"}` or plain.
    secret_as_json: bool,
}

/// The API; stops when dropped.
pub struct FakeAi {
    url: String,
    api_key: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeAi {
    /// Starts one on a free loopback port, with a key of its own.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let api_key = format!("sk-fake-{}", uuid::Uuid::new_v4().simple());
        let inner = Arc::new(Mutex::new(Inner {
            api_key: api_key.clone(),
            calls: 0,
            embedding_calls: 0,
            requests: VecDeque::new(),
            failures: VecDeque::new(),
            delay: Duration::ZERO,
            session_token: format!("session-{}", uuid::Uuid::new_v4().simple()),
            secret_calls: 0,
            secret_as_json: true,
        }));
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/secretsmanager/get", get(secret))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            api_key,
            inner,
            server,
        }
    }

    /// `AI_BASE_URL` for it.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// `AI_SECRETS_ENDPOINT` for it (the extension's stand-in).
    pub fn secrets_endpoint(&self) -> String {
        self.url.clone()
    }

    /// The key it accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The `AWS_SESSION_TOKEN` its secrets endpoint wants.
    pub fn session_token(&self) -> String {
        self.inner.lock().unwrap().session_token.clone()
    }

    /// Makes its secrets endpoint want this session token.
    pub fn set_session_token(&self, token: &str) {
        self.inner.lock().unwrap().session_token = token.into();
    }

    /// Stores the key in the secret as plain text (`false`) or as `{"api_key": ...}` (`true`, the default).
    pub fn secret_as_json(&self, json: bool) {
        self.inner.lock().unwrap().secret_as_json = json;
    }

    /// Settings for a client with the key given directly.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AI_BASE_URL", self.base_url()),
            ("AI_API_KEY", self.api_key.clone()),
            ("AI_MODEL", MODEL.into()),
            ("AI_EMBEDDING_MODEL", EMBEDDING_MODEL.into()),
        ]
    }

    /// Settings for a client that reads the key from [`SECRET_ARN`] through
    /// this server's secrets endpoint.
    pub fn secret_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AI_BASE_URL", self.base_url()),
            ("AI_API_KEY_SECRET_ARN", SECRET_ARN.into()),
            ("AI_SECRETS_ENDPOINT", self.secrets_endpoint()),
            ("AWS_SESSION_TOKEN", self.session_token()),
            ("AI_MODEL", MODEL.into()),
            ("AI_EMBEDDING_MODEL", EMBEDDING_MODEL.into()),
        ]
    }

    /// The next `n` calls with the right key, chat or embeddings alike (one
    /// queue, in the order they come), answer `status` with an OpenAI-style
    /// error body (and `Retry-After: retry_after` when given).
    pub fn fail_next(&self, status: u16, n: usize, retry_after: Option<u64>) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .failures
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Every reply from now on waits this long first.
    pub fn delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Chat calls that came in (refused ones included; embeddings not).
    pub fn calls(&self) -> usize {
        self.inner.lock().unwrap().calls
    }

    /// Embedding calls that came in (refused ones included).
    pub fn embedding_calls(&self) -> usize {
        self.inner.lock().unwrap().embedding_calls
    }

    /// Calls to the secrets endpoint.
    pub fn secret_calls(&self) -> usize {
        self.inner.lock().unwrap().secret_calls
    }

    /// The bodies of the last chat calls (up to 100), oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for FakeAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

/// An error as OpenAI words it.
fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    (status, axum::Json(body)).into_response()
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// What every call goes through: counts it, waits the delay, checks the key
/// and plays a scripted failure. `Err`: the answer already; `Ok(n)`: the
/// call's number (chat or embeddings, each counted apart), to answer.
async fn admit(
    inner: &Mutex<Inner>,
    headers: &HeaderMap,
    chat: Option<&Value>,
) -> Result<usize, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let (n, delay, authorized, failure) = {
        let mut inner = inner.lock().unwrap();
        let n = match chat {
            Some(request) => {
                inner.calls += 1;
                if inner.requests.len() == KEPT_REQUESTS {
                    inner.requests.pop_front();
                }
                inner.requests.push_back(request.clone());
                inner.calls
            }
            None => {
                inner.embedding_calls += 1;
                inner.embedding_calls
            }
        };
        let authorized = presented == inner.api_key;
        // A refused key does not use up a scripted failure.
        let failure = if authorized {
            inner.failures.pop_front()
        } else {
            None
        };
        (n, inner.delay, authorized, failure)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !authorized {
        // Worse than OpenAI, which masks most of it: the key comes back whole.
        return Err(error(
            401,
            &format!(
                "Incorrect API key provided: {presented}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        ));
    }
    if let Some((status, retry_after)) = failure {
        let kind = if status == 429 {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let mut response = error(
            status,
            &format!("scripted failure {n} ({status})"),
            kind,
            None,
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
        }
        return Err(response);
    }
    Ok(n)
}

async fn completions(State(inner): Shared, headers: HeaderMap, body: String) -> Response {
    let request = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
    let n = match admit(&inner, &headers, Some(&request)).await {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let (Some(model), Some(messages)) = (request["model"].as_str(), request["messages"].as_array())
    else {
        return error(
            400,
            "'model' and 'messages' are required",
            "invalid_request_error",
            None,
        );
    };
    let text = |m: &Value| m["content"].as_str().unwrap_or_default().to_owned();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text)
        .unwrap_or_default();
    let content = format!("echo {n}: {last_user}");
    let prompt_tokens: u64 = messages.iter().map(|m| words(&text(m))).sum();
    let completion_tokens = words(&content);
    axum::Json(json!({
        "id": format!("chatcmpl-fake-{n}"),
        "object": "chat.completion",
        "created": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

/// `input` is a string or an array of strings (as OpenAI takes it); one
/// embedding each, from [`embed`].
async fn embeddings(State(inner): Shared, headers: HeaderMap, body: String) -> Response {
    if let Err(answer) = admit(&inner, &headers, None).await {
        return answer;
    }
    let request = serde_json::from_str::<Value>(&body).unwrap_or_default();
    let inputs: Option<Vec<&str>> = match &request["input"] {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    };
    let (Some(model), Some(inputs)) = (request["model"].as_str(), inputs) else {
        return error(
            400,
            "'model' and 'input' (a string or an array of strings) are required",
            "invalid_request_error",
            None,
        );
    };
    if inputs.is_empty() || inputs.iter().any(|s| s.is_empty()) {
        return error(
            400,
            "'input' cannot be an empty string",
            "invalid_request_error",
            None,
        );
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({ "object": "embedding", "index": index, "embedding": embed(text) }))
        .collect();
    let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
    .into_response()
}

async fn secret(
    State(inner): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.secret_calls += 1;
    let token = headers
        .get("x-aws-parameters-secrets-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(inner.session_token.as_str()) {
        return (StatusCode::UNAUTHORIZED, "missing or invalid session token").into_response();
    }
    if q.get("secretId").map(String::as_str) != Some(SECRET_ARN) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "__type": "ResourceNotFoundException",
                "message": "Secrets Manager can't find the specified secret.",
            })),
        )
            .into_response();
    }
    let secret_string = if inner.secret_as_json {
        json!({ "api_key": inner.api_key }).to_string()
    } else {
        inner.api_key.clone()
    };
    axum::Json(json!({
        "ARN": SECRET_ARN,
        "Name": "lectern/ai",
        "VersionId": "00000000-0000-0000-0000-000000000001",
        "SecretString": secret_string,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": "2025-01-01T00:00:00Z",
    }))
    .into_response()
}
