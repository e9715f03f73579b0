//! A client for an OpenAI-compatible API: chat completions (`POST
//! {AI_BASE_URL}/chat/completions`) and embeddings (`POST
//! {AI_BASE_URL}/embeddings`), without any caching of its own.
//!
//! [`Client::chat`] and [`Client::embed`] check the request, send it with the
//! key as a bearer token, and retry 429s, 5xx (500, 502, 503, 504), timeouts
//! and connection errors up to `AI_MAX_RETRIES` times: they wait for the
//! reply's `Retry-After` (seconds, at most [`MAX_RETRY_WAIT`]) when there is
//! one, and otherwise a random time up to `AI_RETRY_BASE_MS * 2^retry` (full
//! jitter). Other answers fail at once. Every HTTP attempt is counted, per
//! endpoint ([`Client::upstream_calls`], [`Client::embedding_calls`]).
//!
//! The key comes from `AI_API_KEY`, or from the Secrets Manager secret
//! `AI_API_KEY_SECRET_ARN` read once, at first use, through the Lambda
//! Parameters and Secrets extension. It is never logged, never put in an
//! error (not even when the API echoes it back) and never shown by `Debug`.
//!
//! HTTP goes through ureq (blocking) on tokio's blocking pool; the waits
//! between retries are tokio sleeps.

mod secrets;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use crate::config::ai::{AiConfig, DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL};

/// The longest wait between two attempts, whatever `Retry-After` or the backoff say.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);

/// Most characters of an upstream error message kept in [`Error::Upstream`].
pub const MAX_ERROR_MESSAGE: usize = 500;

/// Most tokens a request may ask for (`max_tokens`).
pub const MAX_TOKENS: u32 = 128_000;

/// Most characters [`Client::embed`] accepts (well under the 8,191 tokens
/// OpenAI's embedding models take, whatever the tokenizer).
pub const MAX_EMBEDDING_INPUT: usize = 8_000;

/// One message of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Sampling parameters; those left `None` are not sent (the API's defaults apply).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Params {
    /// 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// 1 to [`MAX_TOKENS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Asks for deterministic sampling (best effort upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Up to 4 non-empty sequences where generation stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// E.g. `{"type": "json_object"}`; must be a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
}

/// One chat completion to ask for. Serialises like the API's own request body
/// (the parameters flattened in), which makes it a natural cache key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatRequest {
    /// The model; `None`: the configured default ([`Client::model`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far (at least one message).
    pub messages: Vec<Message>,
    /// Sampling parameters.
    #[serde(flatten)]
    pub params: Params,
}

impl ChatRequest {
    /// A request for these messages, with the default model and parameters.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            model: None,
            messages,
            params: Params::default(),
        }
    }

    /// Checks the request as the API would, so a bad one costs no call.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidRequest(m));
        if let Some(model) = &self.model
            && (model.trim().is_empty() || model.chars().any(char::is_whitespace))
        {
            return bad("model must be a name without spaces".into());
        }
        if self.messages.is_empty() {
            return bad("at least one message is required".into());
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !["system", "user", "assistant"].contains(&m.role.as_str()) {
                return bad(format!(
                    "messages[{i}].role must be system, user or assistant (got {:?})",
                    truncate(&m.role, 40)
                ));
            }
        }
        let p = &self.params;
        if let Some(t) = p.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return bad(format!("temperature must be from 0 to 2 (got {t})"));
        }
        if let Some(t) = p.top_p
            && !(0.0..=1.0).contains(&t)
        {
            return bad(format!("top_p must be from 0 to 1 (got {t})"));
        }
        if let Some(n) = p.max_tokens
            && !(1..=MAX_TOKENS).contains(&n)
        {
            return bad(format!(
                "max_tokens must be from 1 to {MAX_TOKENS} (got {n})"
            ));
        }
        if let Some(stop) = &p.stop
            && (stop.len() > 4 || stop.iter().any(String::is_empty))
        {
            return bad("stop must be at most 4 non-empty sequences".into());
        }
        if let Some(format) = &p.response_format
            && !format.is_object()
        {
            return bad("response_format must be a JSON object".into());
        }
        Ok(())
    }
}

/// The answer to a [`ChatRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatResponse {
    /// The model that answered, as the API names it.
    pub model: String,
    /// The first choice's text.
    pub content: String,
    /// Why generation stopped (`stop`, `length`, ...).
    pub finish_reason: Option<String>,
    /// Tokens used (zeros when the API does not say).
    pub usage: Usage,
}

/// Tokens used by one completion.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Usage {
    /// Tokens of the request's messages.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
}

/// An embedding of one text, as [`Client::embed`] returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Embedding {
    /// The vector, as the API sent it (OpenAI's are unit length; see
    /// [`crate::semantic::normalize`] for other providers).
    pub vector: Vec<f32>,
    /// The model that embedded, as the API names it.
    pub model: String,
    /// Tokens used (0 when the API does not say).
    pub tokens: u64,
}

/// Why a chat completion or an embedding failed. No variant ever holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `AI_BASE_URL` is unset: AI is off.
    #[error("AI is not configured (AI_BASE_URL is unset)")]
    NotConfigured,
    /// The request is malformed; nothing was sent.
    #[error("invalid AI request: {0}")]
    InvalidRequest(String),
    /// The API refused (a 4xx other than 429, at once), or still answered 429
    /// or 5xx after every retry. `message` is the API's `error.message`
    /// (at most [`MAX_ERROR_MESSAGE`] characters).
    #[error("AI upstream answered {status}: {message}")]
    Upstream {
        /// HTTP status of the last answer.
        status: u16,
        /// What the API said.
        message: String,
    },
    /// The last attempt took longer than `AI_TIMEOUT_MS`.
    #[error("AI upstream timed out")]
    Timeout,
    /// The last attempt could not reach the API.
    #[error("AI upstream unreachable: {0}")]
    Transport(String),
    /// The API answered 2xx with something that is not a chat completion (or
    /// not an embedding).
    #[error("AI upstream sent a bad response: {0}")]
    BadResponse(String),
    /// The key could not be read from Secrets Manager.
    #[error("AI API key unavailable: {0}")]
    Secret(String),
}

/// A client of the chat-completions and embeddings API. Share it (e.g. in an
/// `Arc`): it keeps the key once read and counts upstream calls.
pub struct Client {
    config: AiConfig,
    agent: ureq::Agent,
    key: tokio::sync::OnceCell<String>,
    upstream_calls: AtomicU64,
    embedding_calls: AtomicU64,
}

impl std::fmt::Debug for Client {
    // The config's Debug hides the key; the cached one is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("key_cached", &self.key.initialized())
            .field("upstream_calls", &self.upstream_calls())
            .field("embedding_calls", &self.embedding_calls())
            .finish_non_exhaustive()
    }
}

/// The part of a chat completion we read.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The part of an embeddings reply we read.
#[derive(Deserialize)]
struct EmbeddingList {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    data: Vec<EmbeddingData>,
    #[serde(default)]
    usage: Option<EmbeddingUsage>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct EmbeddingUsage {
    #[serde(default)]
    total_tokens: u64,
}

/// The body sent to the embeddings endpoint.
#[derive(Serialize)]
struct EmbeddingBody<'a> {
    model: &'a str,
    input: &'a str,
}

/// The endpoints called; each counts its own attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    /// The path under the base URL.
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// The body sent upstream: the request with its model filled in.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(flatten)]
    params: &'a Params,
}

/// How one attempt went, when it did not succeed.
struct Failure {
    error: Error,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Client {
    /// A client for `config` (no I/O until the first call).
    pub fn new(config: AiConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            // An API does not redirect; following one could carry the key elsewhere.
            .max_redirects(0)
            .user_agent(concat!("lectern/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            config,
            agent,
            key: tokio::sync::OnceCell::new(),
            upstream_calls: AtomicU64::new(0),
            embedding_calls: AtomicU64::new(0),
        }
    }

    /// The model used when a request names none.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The model [`Client::embed`] asks for (`AI_EMBEDDING_MODEL`).
    pub fn embedding_model(&self) -> &str {
        &self.config.embedding_model
    }

    /// Whether an API is configured (`AI_BASE_URL` is set).
    pub fn is_configured(&self) -> bool {
        self.config.is_enabled()
    }

    /// The settings this client runs with.
    pub fn config(&self) -> &AiConfig {
        &self.config
    }

    /// HTTP attempts made to the chat-completions endpoint so far (retries
    /// included; key lookups and embeddings not).
    pub fn upstream_calls(&self) -> u64 {
        self.upstream_calls.load(Ordering::Relaxed)
    }

    /// HTTP attempts made to the embeddings endpoint so far (retries included).
    pub fn embedding_calls(&self) -> u64 {
        self.embedding_calls.load(Ordering::Relaxed)
    }

    /// One chat completion from upstream (no caching), with retries.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, Error> {
        let mut attempts = 0;
        self.chat_counting(req, &mut attempts).await
    }

    /// [`Client::chat`], adding each upstream request it makes (retries included) to `attempts`.
    pub async fn chat_counting(
        &self,
        req: &ChatRequest,
        attempts: &mut u64,
    ) -> Result<ChatResponse, Error> {
        if !self.is_configured() {
            return Err(Error::NotConfigured);
        }
        req.validate()?;
        let model = req.model.as_deref().unwrap_or(&self.config.model);
        let body = serde_json::to_string(&Body {
            model,
            messages: &req.messages,
            params: &req.params,
        })
        .map_err(|e| Error::InvalidRequest(format!("does not serialise ({e})")))?;
        let reply = self.post(Endpoint::Chat, &body, attempts).await?;
        parse_completion(&reply, model)
    }

    /// The embedding of `input` (1 to [`MAX_EMBEDDING_INPUT`] characters,
    /// not only spaces) by [`Client::embedding_model`], from upstream (no
    /// caching), with retries.
    pub async fn embed(&self, input: &str) -> Result<Embedding, Error> {
        if !self.is_configured() {
            return Err(Error::NotConfigured);
        }
        if input.trim().is_empty() {
            return Err(Error::InvalidRequest("input must not be empty".into()));
        }
        let chars = input.chars().count();
        if chars > MAX_EMBEDDING_INPUT {
            return Err(Error::InvalidRequest(format!(
                "input must be at most {MAX_EMBEDDING_INPUT} characters (got {chars})"
            )));
        }
        let model = self.config.embedding_model.as_str();
        let body = serde_json::to_string(&EmbeddingBody { model, input })
            .map_err(|e| Error::InvalidRequest(format!("does not serialise ({e})")))?;
        let mut attempts = 0;
        let reply = self
            .post(Endpoint::Embeddings, &body, &mut attempts)
            .await?;
        parse_embedding(&reply, model)
    }

    /// POSTs the JSON `body` to `endpoint` with the key, retrying as the
    /// module says; the reply's body on 2xx. Adds each attempt to `attempts`.
    async fn post(
        &self,
        endpoint: Endpoint,
        body: &str,
        attempts: &mut u64,
    ) -> Result<String, Error> {
        let Some(base) = &self.config.base_url else {
            return Err(Error::NotConfigured);
        };
        let key = self.key().await?;
        let url = format!("{base}/{}", endpoint.path());
        let mut retry = 0;
        loop {
            *attempts += 1;
            let failure = match self.attempt(endpoint, &url, key, body).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            if !failure.retryable || retry >= self.config.max_retries {
                return Err(failure.error);
            }
            let delay = failure
                .retry_after
                .unwrap_or_else(|| backoff(self.config.retry_base, retry))
                .min(MAX_RETRY_WAIT);
            let status = match &failure.error {
                Error::Upstream { status, .. } => status.to_string(),
                Error::Timeout => "timeout".into(),
                _ => "transport".into(),
            };
            retry += 1;
            tracing::warn!(
                endpoint = endpoint.path(),
                status,
                attempt = retry,
                max_retries = self.config.max_retries,
                delay_ms = delay.as_millis() as u64,
                "AI upstream call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// The API key: configured, or read once from Secrets Manager.
    async fn key(&self) -> Result<Option<&str>, Error> {
        if let Some(key) = &self.config.api_key {
            return Ok(Some(key));
        }
        let Some(arn) = &self.config.api_key_secret_arn else {
            return Ok(None);
        };
        let key = self
            .key
            .get_or_try_init(|| async {
                let secret = self
                    .config
                    .secrets
                    .secret_string(arn)
                    .await
                    .map_err(Error::Secret)?;
                secrets::parse_secret(&secret)
            })
            .await?;
        Ok(Some(key))
    }

    /// One HTTP attempt, counted for `endpoint`: the reply's body on 2xx.
    async fn attempt(
        &self,
        endpoint: Endpoint,
        url: &str,
        key: Option<&str>,
        body: &str,
    ) -> Result<String, Failure> {
        let counter = match endpoint {
            Endpoint::Chat => &self.upstream_calls,
            Endpoint::Embeddings => &self.embedding_calls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let agent = self.agent.clone();
        let (url, body) = (url.to_owned(), body.to_owned());
        let bearer = key.map(|k| format!("Bearer {k}"));
        let answer = tokio::task::spawn_blocking(move || {
            let mut request = agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json");
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            let mut response = request.send(body)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let text = response.body_mut().read_to_string()?;
            Ok::<_, ureq::Error>((status, retry_after, text))
        })
        .await;
        let (status, retry_after, text) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(transport_failure(e, key)),
            Err(e) => {
                return Err(Failure {
                    error: Error::Transport(format!("the call did not finish ({e})")),
                    retryable: false,
                    retry_after: None,
                });
            }
        };
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(Failure {
            error: Error::Upstream {
                status,
                message: error_message(&text, key),
            },
            retryable: matches!(status, 429 | 500 | 502 | 503 | 504),
            retry_after,
        })
    }
}

/// A failed exchange (no status): timeouts and connection trouble are worth a retry.
fn transport_failure(e: ureq::Error, key: Option<&str>) -> Failure {
    let timed_out = matches!(&e, ureq::Error::Timeout(_))
        || matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut);
    if timed_out {
        return Failure {
            error: Error::Timeout,
            retryable: true,
            retry_after: None,
        };
    }
    let retryable = matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    );
    Failure {
        error: Error::Transport(scrub(&e.to_string(), key)),
        retryable,
        retry_after: None,
    }
}

/// Reads a 2xx reply.
fn parse_completion(body: &str, requested_model: &str) -> Result<ChatResponse, Error> {
    let bad = |m: &str| Error::BadResponse(m.into());
    let completion: Completion =
        serde_json::from_str(body).map_err(|_| bad("not a chat completion (JSON expected)"))?;
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| bad("no choices"))?;
    let content = choice
        .message
        .and_then(|m| m.content)
        .ok_or_else(|| bad("the first choice has no text content"))?;
    Ok(ChatResponse {
        model: completion
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_owned()),
        content,
        finish_reason: choice.finish_reason,
        usage: completion.usage.unwrap_or_default(),
    })
}

/// Reads a 2xx reply of the embeddings endpoint.
fn parse_embedding(body: &str, requested_model: &str) -> Result<Embedding, Error> {
    let bad = |m: &str| Error::BadResponse(m.into());
    let list: EmbeddingList =
        serde_json::from_str(body).map_err(|_| bad("not an embedding list (JSON expected)"))?;
    let first = list
        .data
        .into_iter()
        .next()
        .ok_or_else(|| bad("no embedding"))?;
    if first.embedding.is_empty() {
        return Err(bad("the embedding is empty"));
    }
    Ok(Embedding {
        vector: first.embedding,
        model: list
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_owned()),
        tokens: list.usage.map_or(0, |u| u.total_tokens),
    })
}

/// The API's `error.message` (or the body itself when it is not OpenAI-style
/// JSON), without the key, at most [`MAX_ERROR_MESSAGE`] characters.
fn error_message(body: &str, key: Option<&str>) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| match &v["error"] {
            serde_json::Value::String(s) => Some(s.clone()),
            e => e["message"].as_str().map(str::to_owned),
        });
    let message = from_json.unwrap_or_else(|| body.trim().to_owned());
    let message = scrub(&message, key);
    if message.is_empty() {
        return "(no message)".into();
    }
    truncate(&message, MAX_ERROR_MESSAGE)
}

/// `text` with every occurrence of the key replaced.
fn scrub(text: &str, key: Option<&str>) -> String {
    match key {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    }
}

/// At most `max` characters of `s` (an ellipsis marks a cut).
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// `Retry-After` in seconds (whole or decimal), at most [`MAX_RETRY_WAIT`];
/// `None` for anything else (an HTTP date included: the backoff applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_WAIT.as_secs_f64()),
    ))
}

/// A random wait from 0 to `base * 2^retry` (full jitter), at most [`MAX_RETRY_WAIT`].
fn backoff(base: Duration, retry: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(MAX_RETRY_WAIT);
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChatRequest {
        ChatRequest::new(vec![
            Message::system("You are terse."),
            Message::user("Hello"),
        ])
    }

    #[test]
    fn valid_requests_pass_and_serialise_like_the_api() {
        let mut r = request();
        r.validate().unwrap();
        r.params = Params {
            temperature: Some(2.0),
            top_p: Some(0.0),
            max_tokens: Some(MAX_TOKENS),
            seed: Some(-7),
            stop: Some(vec!["\n".into(); 4]),
            response_format: Some(serde_json::json!({"type": "json_object"})),
        };
        r.validate().unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["temperature"], 2.0);
        assert_eq!(json["seed"], -7);
        assert!(json.get("model").is_none());
        let back: ChatRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        // Unset parameters are not sent.
        let body = serde_json::to_value(Body {
            model: "m",
            messages: &request().messages,
            params: &Params::default(),
        })
        .unwrap();
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["messages", "model"]
        );
    }

    #[test]
    fn invalid_requests_are_refused() {
        type Spoil = fn(&mut ChatRequest);
        let cases: Vec<(&str, Spoil)> = vec![
            ("no messages", |r| r.messages.clear()),
            ("bad role", |r| r.messages[0].role = "tool".into()),
            ("empty model", |r| r.model = Some(" ".into())),
            ("hot", |r| r.params.temperature = Some(2.01)),
            ("cold", |r| r.params.temperature = Some(-0.1)),
            ("nan", |r| r.params.temperature = Some(f64::NAN)),
            ("top_p", |r| r.params.top_p = Some(1.5)),
            ("zero tokens", |r| r.params.max_tokens = Some(0)),
            ("many tokens", |r| {
                r.params.max_tokens = Some(MAX_TOKENS + 1)
            }),
            ("stops", |r| r.params.stop = Some(vec!["a".into(); 5])),
            ("empty stop", |r| r.params.stop = Some(vec![String::new()])),
            ("format", |r| r.params.response_format = Some("json".into())),
        ];
        for (name, spoil) in cases {
            let mut r = request();
            spoil(&mut r);
            assert!(
                matches!(r.validate(), Err(Error::InvalidRequest(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn retry_after_is_seconds_capped() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("3600"), Some(MAX_RETRY_WAIT));
        for bad in [
            "",
            "-1",
            "soon",
            "NaN",
            "inf",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        let base = Duration::from_millis(100);
        for retry in 0..5 {
            let ceiling = base * 2u32.pow(retry);
            let waits: Vec<Duration> = (0..200).map(|_| backoff(base, retry)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "{retry}: {waits:?}");
            // Full jitter: spread over the whole range, not stuck at one end.
            assert!(waits.iter().any(|w| *w < ceiling / 2), "{retry}");
            assert!(waits.iter().any(|w| *w > ceiling / 2), "{retry}");
        }
        for retry in [10, 31, 32, 1000] {
            assert!(backoff(Duration::from_secs(60), retry) <= MAX_RETRY_WAIT);
        }
        assert_eq!(backoff(Duration::from_millis(0), 3), Duration::ZERO);
    }

    #[test]
    fn error_messages_come_from_the_api_without_the_key() {
        let key = Some("sk-secret-123");
        let body = r#"{"error": {"message": "Incorrect API key provided: sk-secret-123.", "type": "invalid_request_error"}}"#;
        assert_eq!(
            error_message(body, key),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(error_message(r#"{"error": "plain"}"#, key), "plain");
        assert_eq!(
            error_message("<html>bad gateway</html>", key),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message("  ", key), "(no message)");
        let long = format!(r#"{{"error": {{"message": "{}"}}}}"#, "é".repeat(900));
        let cut = error_message(&long, key);
        assert_eq!(cut.chars().count(), MAX_ERROR_MESSAGE + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn completions_parse_leniently_but_need_content() {
        let ok = r#"{"id": "x", "object": "chat.completion", "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
            "total_tokens": 4}}"#;
        let r = parse_completion(ok, "gpt-4o-mini").unwrap();
        assert_eq!(r.content, "Hi");
        assert_eq!(r.model, "gpt-4o-mini-2024");
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage.total_tokens, 4);
        let bare = r#"{"choices": [{"message": {"content": "Hi"}}]}"#;
        let r = parse_completion(bare, "m").unwrap();
        assert_eq!((r.model.as_str(), r.usage), ("m", Usage::default()));
        for bad in [
            "",
            "null",
            r#"{"choices": []}"#,
            r#"{"choices": [{"message": {"content": null}}]}"#,
        ] {
            assert!(
                matches!(parse_completion(bad, "m"), Err(Error::BadResponse(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn embeddings_parse_leniently_but_need_a_vector() {
        let ok = r#"{"object": "list", "data": [{"object": "embedding", "index": 0,
            "embedding": [0.5, -0.25, 1e-3]}], "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 7, "total_tokens": 7}}"#;
        let e = parse_embedding(ok, "m").unwrap();
        assert_eq!(e.vector, vec![0.5, -0.25, 0.001]);
        assert_eq!((e.model.as_str(), e.tokens), ("text-embedding-3-small", 7));
        let bare = r#"{"data": [{"embedding": [1, 0]}]}"#;
        let e = parse_embedding(bare, "m").unwrap();
        assert_eq!(
            (e.vector, e.model.as_str(), e.tokens),
            (vec![1.0, 0.0], "m", 0)
        );
        for bad in [
            "",
            "null",
            r#"{"data": []}"#,
            r#"{"data": [{"embedding": []}]}"#,
            r#"{"data": [{"embedding": "AAAA"}]}"#,
            r#"{"data": [{"embedding": [1, null]}]}"#,
            r#"{"data": [{}]}"#,
        ] {
            assert!(
                matches!(parse_embedding(bad, "m"), Err(Error::BadResponse(_))),
                "{bad}"
            );
        }
        // The body sent is the API's.
        let body = serde_json::to_value(EmbeddingBody {
            model: "m",
            input: "why is x^0 = 1?",
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "m", "input": "why is x^0 = 1?"})
        );
    }

    #[tokio::test]
    async fn bad_embedding_input_makes_no_call() {
        let config = AiConfig {
            // Nothing listens on the discard port; a call would fail as transport.
            base_url: Some("http://127.0.0.1:9/v1".into()),
            api_key: Some("sk-test".into()),
            max_retries: 0,
            ..AiConfig::default()
        };
        let client = Client::new(config);
        assert_eq!(client.embedding_model(), DEFAULT_EMBEDDING_MODEL);
        let long = "é".repeat(MAX_EMBEDDING_INPUT + 1);
        for bad in ["", "  \n\t", long.as_str()] {
            assert!(
                matches!(client.embed(bad).await, Err(Error::InvalidRequest(_))),
                "{:?}",
                truncate(bad, 10)
            );
        }
        assert_eq!((client.embedding_calls(), client.upstream_calls()), (0, 0));
        // At the limit the input is sent (and fails upstream, counted as an embedding call).
        let at_limit = "é".repeat(MAX_EMBEDDING_INPUT);
        assert!(!matches!(
            client.embed(&at_limit).await,
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!((client.embedding_calls(), client.upstream_calls()), (1, 0));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let config = AiConfig {
            base_url: Some("https://api.example.com/v1".into()),
            api_key: Some("sk-do-not-print".into()),
            secrets: crate::aws::secrets::Extension {
                session_token: Some("token-do-not-print".into()),
                ..Default::default()
            },
            ..AiConfig::default()
        };
        let client = Client::new(config);
        let shown = format!("{client:?} {client:#?}");
        assert!(!shown.contains("do-not-print"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[tokio::test]
    async fn an_unconfigured_client_makes_no_call() {
        let client = Client::new(AiConfig::default());
        assert!(!client.is_configured());
        assert_eq!(client.model(), DEFAULT_MODEL);
        assert!(matches!(
            client.chat(&request()).await,
            Err(Error::NotConfigured)
        ));
        assert!(matches!(
            client.embed("hello").await,
            Err(Error::NotConfigured)
        ));
        assert_eq!((client.upstream_calls(), client.embedding_calls()), (0, 0));
    }
}
