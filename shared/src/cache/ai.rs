//! The AI response cache: a request identical to one answered within its
//! operation's TTL (same model, parameters, prompt-template version and
//! messages) is answered from Redis, and concurrent identical requests share
//! one upstream call (the cache's single flight, with a lease as long as the
//! AI timeout allows).
//!
//! The key is the SHA-256 of the request in canonical JSON (object keys
//! sorted, no whitespace, numbers as serde_json prints them), under
//! `ai:<op>:<model>:<sha256>` (unlike LangChain's md5 of a prompt string, no
//! parameter is left out and no two requests can share a key by accident).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::admin::{AI_CALLS, AI_TOKENS_SAVED, AI_TOKENS_USED};
use super::{Cache, Namespace};
use crate::ai::{ChatRequest, ChatResponse, Client, Error};
use crate::digest::sha256_hex;

/// One kind of AI request: its name (in keys and logs), the version of its
/// prompt template (bump it when the template changes, so old answers are not
/// reused) and how long its answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// Name, as `explain` or `hint`.
    pub name: &'static str,
    /// Version of the prompt template that built the messages.
    pub template_version: u32,
    /// How long answers are kept; `None`: the AI class (`CACHE_TTL_AI_SECS`).
    pub ttl: Option<Duration>,
}

/// An answer, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The response.
    pub response: Arc<ChatResponse>,
    /// True when no upstream call was made for this request.
    pub cached: bool,
}

/// The hex SHA-256 of the canonical JSON of everything that shapes an answer.
pub fn request_key(model: &str, op: &Operation, req: &ChatRequest) -> String {
    let shape = serde_json::json!({
        "model": model,
        "template_version": op.template_version,
        "messages": req.messages,
        "params": req.params,
    });
    sha256_hex(&canonical(&shape))
}

/// JSON with every object's keys in order: equal values give equal text
/// whatever order their fields were built in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Answers `req` for `op`: from the cache when an identical request was
/// answered within the TTL, else from upstream (and cached). Invalid requests
/// and an unconfigured client fail before the cache is asked.
pub async fn complete(
    cache: &Cache,
    client: &Client,
    op: &Operation,
    req: &ChatRequest,
) -> Result<Completion, Arc<Error>> {
    if !client.is_configured() {
        return Err(Arc::new(Error::NotConfigured));
    }
    req.validate().map_err(Arc::new)?;
    let model = req.model.as_deref().unwrap_or(client.model()).to_owned();
    let key = request_key(&model, op, req);
    let ns = Namespace::Ai {
        op: op.name.into(),
        model,
    };
    let ttl = op.ttl.unwrap_or(cache.config().ai_ttl);
    let called = AtomicBool::new(false);
    let response = cache
        .get_or_load_with(
            &ns,
            &key,
            |_| Some(ttl),
            || async {
                called.store(true, Ordering::Relaxed);
                let mut attempts = 0;
                let answer = client.chat_counting(req, &mut attempts).await;
                let tokens = answer.as_ref().map_or(0, |r| r.usage.total_tokens);
                cache
                    .count(&[(AI_CALLS, attempts as i64), (AI_TOKENS_USED, tokens as i64)])
                    .await;
                answer
            },
        )
        .await?;
    let cached = !called.load(Ordering::Relaxed);
    if cached {
        cache
            .count(&[(AI_TOKENS_SAVED, response.usage.total_tokens as i64)])
            .await;
    }
    Ok(Completion { response, cached })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::{Message, Params};

    const OP: Operation = Operation {
        name: "explain",
        template_version: 1,
        ttl: None,
    };

    fn request() -> ChatRequest {
        let mut req = ChatRequest::new(vec![Message::system("Be brief."), Message::user("Why?")]);
        req.params = Params {
            temperature: Some(0.2),
            ..Params::default()
        };
        req
    }

    #[test]
    fn the_key_changes_with_everything_that_shapes_the_answer() {
        let base = request_key("m", &OP, &request());
        assert_eq!(base.len(), 64);
        assert_eq!(base, request_key("m", &OP, &request()));
        assert_ne!(base, request_key("n", &OP, &request()));
        let newer = Operation {
            template_version: 2,
            ..OP
        };
        assert_ne!(base, request_key("m", &newer, &request()));
        let mut warmer = request();
        warmer.params.temperature = Some(0.3);
        assert_ne!(base, request_key("m", &OP, &warmer));
        let mut longer = request();
        longer.messages.push(Message::user("And?"));
        assert_ne!(base, request_key("m", &OP, &longer));
        let mut reworded = request();
        reworded.messages[1].content = "Why? ".into();
        assert_ne!(base, request_key("m", &OP, &reworded));
    }

    #[test]
    fn canonical_json_ignores_field_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": null, "y": [1, 2]}, "b": 1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":{"x":null,"y":[1,2]},"b":1}"#);
        assert_eq!(canonical(&Value::String("é\"".into())), r#""é\"""#);
    }
}
