//! The AI client against a fake OpenAI-compatible API on loopback: answers,
//! retries (429 with `Retry-After`, 5xx, timeouts, a dead port), refusals that
//! are not retried, the key read once through the secrets extension, and the
//! key kept out of every error. Needs neither Redis nor PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lectern::ai::{AiConfig, ChatRequest, Client, Error, Message, Params};
use lectern_tests::fake_ai::{FakeAi, MODEL};

/// A client built from `vars`, later entries winning; retries wait at most 1 ms.
fn client(vars: &[(&'static str, String)], extra: &[(&'static str, &str)]) -> Client {
    let mut map: HashMap<&str, String> = HashMap::from([("AI_RETRY_BASE_MS", "1".to_owned())]);
    map.extend(vars.iter().cloned());
    map.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Client::new(AiConfig::from_lookup(&|k| map.get(k).cloned()).expect("AI config"))
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You are terse."),
        Message::user("Hello there"),
    ])
}

#[tokio::test]
async fn a_call_returns_content_and_usage() {
    let ai = FakeAi::start().await;
    let client = client(&ai.vars(), &[]);
    assert!(client.is_configured());
    assert_eq!(client.model(), MODEL);
    let mut req = hello();
    req.params = Params {
        temperature: Some(0.5),
        seed: Some(42),
        ..Params::default()
    };
    let r = client.chat(&req).await.unwrap();
    assert_eq!(r.content, "echo 1: Hello there");
    assert_eq!(r.model, MODEL);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        (
            r.usage.prompt_tokens,
            r.usage.completion_tokens,
            r.usage.total_tokens
        ),
        (5, 4, 9)
    );
    assert_eq!((client.upstream_calls(), ai.calls()), (1, 1));
    // The body is the API's: default model filled in, unset parameters left out.
    let sent = &ai.requests()[0];
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["messages"][1]["content"], "Hello there");
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["seed"], 42);
    assert!(sent.get("top_p").is_none() && sent.get("stop").is_none());

    // A request may name its own model.
    req.model = Some("other-model".into());
    let r = client.chat(&req).await.unwrap();
    assert_eq!(
        (r.model.as_str(), r.content.as_str()),
        ("other-model", "echo 2: Hello there")
    );
    assert_eq!(ai.requests()[1]["model"], "other-model");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried() {
    let ai = FakeAi::start().await;
    let client = client(&ai.vars(), &[]);
    ai.fail_next(429, 1, Some(0));
    let r = client.chat(&hello()).await.unwrap();
    assert_eq!(r.content, "echo 2: Hello there");
    assert_eq!((client.upstream_calls(), ai.calls()), (2, 2));
}

#[tokio::test]
async fn server_errors_until_the_retries_run_out_fails_with_the_last_status() {
    let ai = FakeAi::start().await;
    let client = client(&ai.vars(), &[("AI_MAX_RETRIES", "2")]);
    ai.fail_next(503, 3, None);
    match client.chat(&hello()).await {
        Err(Error::Upstream { status, message }) => {
            assert_eq!(status, 503);
            assert!(message.contains("scripted failure 3"), "{message}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert_eq!((client.upstream_calls(), ai.calls()), (3, 3));
    // The next call starts afresh.
    ai.fail_next(500, 1, None);
    ai.fail_next(502, 1, None);
    assert!(client.chat(&hello()).await.is_ok());
    assert_eq!(ai.calls(), 6);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let ai = FakeAi::start().await;
    let client = client(&ai.vars(), &[]);
    ai.fail_next(400, 1, None);
    let e = client.chat(&hello()).await.unwrap_err();
    assert!(matches!(e, Error::Upstream { status: 400, .. }), "{e:?}");
    assert_eq!((client.upstream_calls(), ai.calls()), (1, 1));
}

#[tokio::test]
async fn a_wrong_key_fails_at_once_and_no_error_shows_it() {
    let ai = FakeAi::start().await;
    let wrong = "sk-wrong-key-0123456789abcdef";
    let client = client(&ai.vars(), &[("AI_API_KEY", wrong)]);
    let e = client.chat(&hello()).await.unwrap_err();
    assert!(matches!(e, Error::Upstream { status: 401, .. }), "{e:?}");
    // The fake echoes the key it was sent; the client takes it out.
    let shown = format!("{e} {e:?} {client:?}");
    assert!(shown.contains("Incorrect API key provided"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(ai.api_key()), "{shown}");
    assert_eq!((client.upstream_calls(), ai.calls()), (1, 1));
}

#[tokio::test]
async fn the_key_is_read_once_through_the_secrets_extension() {
    for as_json in [true, false] {
        let ai = FakeAi::start().await;
        ai.secret_as_json(as_json);
        let client = client(&ai.secret_vars(), &[]);
        assert_eq!(client.config().api_key, None);
        assert_eq!(
            client.chat(&hello()).await.unwrap().content,
            "echo 1: Hello there"
        );
        assert_eq!(
            client.chat(&hello()).await.unwrap().content,
            "echo 2: Hello there"
        );
        assert_eq!((ai.secret_calls(), ai.calls()), (1, 2), "json: {as_json}");
        assert!(!format!("{client:?}").contains(ai.api_key()));
    }
}

#[tokio::test]
async fn a_refused_secret_lookup_sends_nothing_and_is_tried_again() {
    let ai = FakeAi::start().await;
    let client = client(&ai.secret_vars(), &[("AWS_SESSION_TOKEN", "not-the-token")]);
    for _ in 0..2 {
        let e = client.chat(&hello()).await.unwrap_err();
        assert!(matches!(e, Error::Secret(_)), "{e:?}");
        assert!(e.to_string().contains("401"), "{e}");
        assert!(!e.to_string().contains("not-the-token"), "{e}");
    }
    assert_eq!(
        (ai.secret_calls(), ai.calls(), client.upstream_calls()),
        (2, 0, 0)
    );
}

#[tokio::test]
async fn an_invalid_request_costs_no_call() {
    let ai = FakeAi::start().await;
    let client = client(&ai.vars(), &[]);
    let mut req = hello();
    req.params.temperature = Some(3.0);
    let e = client.chat(&req).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("temperature"), "{e}");
    let e = client.chat(&ChatRequest::new(vec![])).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert_eq!((client.upstream_calls(), ai.calls()), (0, 0));
}

#[tokio::test]
async fn a_slow_reply_times_out() {
    let ai = FakeAi::start().await;
    ai.delay(Duration::from_secs(3));
    let client = client(
        &ai.vars(),
        &[("AI_TIMEOUT_MS", "200"), ("AI_MAX_RETRIES", "0")],
    );
    let start = Instant::now();
    let e = client.chat(&hello()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.upstream_calls(), 1);

    // Timeouts are retried like 5xx.
    let client = self::client(
        &ai.vars(),
        &[("AI_TIMEOUT_MS", "100"), ("AI_MAX_RETRIES", "1")],
    );
    assert!(matches!(client.chat(&hello()).await, Err(Error::Timeout)));
    assert_eq!(client.upstream_calls(), 2);
}

#[tokio::test]
async fn an_unreachable_api_is_retried_then_reported() {
    let client = client(
        &[
            ("AI_BASE_URL", "http://127.0.0.1:1/v1".into()),
            ("AI_API_KEY", "sk-unused-key".into()),
        ],
        &[("AI_MAX_RETRIES", "1")],
    );
    let e = client.chat(&hello()).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(!e.to_string().contains("sk-unused-key"), "{e}");
    assert_eq!(client.upstream_calls(), 2);
}

#[tokio::test]
async fn calls_run_concurrently() {
    let ai = FakeAi::start().await;
    ai.delay(Duration::from_millis(300));
    let client = std::sync::Arc::new(client(&ai.vars(), &[]));
    let start = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.chat(&hello()).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        let content = t.await.unwrap().unwrap().content;
        numbers.push(content.split(':').next().unwrap().to_owned());
    }
    assert!(
        start.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        start.elapsed()
    );
    numbers.sort();
    assert_eq!(numbers, ["echo 1", "echo 2", "echo 3", "echo 4"]);
    assert_eq!((client.upstream_calls(), ai.calls()), (4, 4));
}

#[tokio::test]
async fn an_unconfigured_client_says_so() {
    let client = client(&[], &[]);
    assert!(!client.is_configured());
    assert!(matches!(
        client.chat(&hello()).await,
        Err(Error::NotConfigured)
    ));
}
