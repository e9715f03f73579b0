//! The AI response cache against a loopback OpenAI-compatible server that
//! counts upstream calls, with Redis and PostgreSQL real.

use std::sync::Arc;
use std::time::Duration;

use lectern::App;
use lectern::ai::{ChatRequest, Error, Message, Params};
use lectern::cache::ai::{Completion, Operation, complete};
use lectern_tests::TestEnv;
use lectern_tests::fake_ai::FakeAi;
use serde_json::Value;

const EXPLAIN: Operation = Operation {
    name: "explain",
    template_version: 1,
    ttl: None,
};

fn request(question: &str) -> ChatRequest {
    let mut req = ChatRequest::new(vec![
        Message::system("You are a patient tutor."),
        Message::user(question),
    ]);
    req.params = Params {
        temperature: Some(0.0),
        max_tokens: Some(200),
        ..Params::default()
    };
    req
}

/// `complete` through the app's cache and AI client.
async fn ask(app: &App, op: &Operation, req: &ChatRequest) -> Result<Completion, Arc<Error>> {
    complete(app.cache(), app.ai(), op, req).await
}

async fn setup() -> (FakeAi, TestEnv) {
    let fake = FakeAi::start().await;
    let env = TestEnv::with_vars(&fake.vars()).await;
    (fake, env)
}

async fn ai_stats(env: &TestEnv) -> Value {
    let r = env.get("/v1/admin/cache/stats").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["ai"].clone()
}

/// The same prompt twice is one upstream call; any change in model,
/// parameters, messages or template version is a new one.
#[tokio::test]
async fn an_identical_request_is_answered_once() {
    let (fake, env) = setup().await;
    let first = ask(&env.app, &EXPLAIN, &request("Why is the sky blue?"))
        .await
        .unwrap();
    assert!(!first.cached);
    let again = ask(&env.app, &EXPLAIN, &request("Why is the sky blue?"))
        .await
        .unwrap();
    assert!(again.cached);
    assert_eq!(again.response, first.response);
    assert_eq!(fake.calls(), 1);

    let mut other_model = request("Why is the sky blue?");
    other_model.model = Some("fake-model-2".into());
    let mut warmer = request("Why is the sky blue?");
    warmer.params.temperature = Some(0.7);
    let mut shorter = request("Why is the sky blue?");
    shorter.params.max_tokens = Some(50);
    let reworded = request("Why is the sky blue at noon?");
    let mut longer = request("Why is the sky blue?");
    longer
        .messages
        .push(Message::assistant("Rayleigh scattering."));
    let newer_template = Operation {
        template_version: 2,
        ..EXPLAIN
    };
    let hint = Operation {
        name: "hint",
        ..EXPLAIN
    };
    let changed = [
        (EXPLAIN, other_model),
        (EXPLAIN, warmer),
        (EXPLAIN, shorter),
        (EXPLAIN, reworded),
        (EXPLAIN, longer),
        (newer_template, request("Why is the sky blue?")),
        (hint, request("Why is the sky blue?")),
    ];
    for (i, (op, req)) in changed.iter().enumerate() {
        let answer = ask(&env.app, op, req).await.unwrap();
        assert!(!answer.cached, "change {i} reused an answer");
        assert_eq!(fake.calls(), 2 + i, "change {i}");
    }
    // Each is cached in its own right.
    let mut saved = again.response.usage.total_tokens;
    for (op, req) in &changed {
        let answer = ask(&env.app, op, req).await.unwrap();
        assert!(answer.cached);
        saved += answer.response.usage.total_tokens;
    }
    assert_eq!(fake.calls(), 1 + changed.len());
    assert_eq!(fake.requests()[1]["model"], "fake-model-2");

    let s = ai_stats(&env).await;
    assert_eq!(s["upstream_calls"], 1 + changed.len() as u64);
    assert_eq!(s["cached_responses"], 1 + changed.len() as u64);
    assert_eq!(s["tokens_saved"], saved);
    // Every answer was served once from upstream and once from the cache.
    assert_eq!(s["tokens_used"], saved);
    env.assert_redis_clean().await;
}

/// Twenty identical requests at once: one upstream call, every caller the answer.
#[tokio::test]
async fn concurrent_identical_requests_share_one_call() {
    let (fake, env) = setup().await;
    fake.delay(Duration::from_millis(300));
    let twin = lectern::App::new(env.app.config().clone()).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = if i % 2 == 0 {
            env.app.clone()
        } else {
            twin.clone()
        };
        tasks.spawn(async move {
            ask(&app, &EXPLAIN, &request("What is a derivative?"))
                .await
                .unwrap()
        });
    }
    let answers = tasks.join_all().await;
    assert_eq!(fake.calls(), 1);
    assert_eq!(answers.iter().filter(|a| !a.cached).count(), 1);
    assert!(answers.iter().all(|a| a.response == answers[0].response));
}

/// Failures are not cached, retries are counted as calls, and an invalid
/// request never reaches the cache or upstream.
#[tokio::test]
async fn failures_are_not_cached() {
    let (fake, env) = setup().await;
    fake.fail_next(400, 1, None);
    let refused = ask(&env.app, &EXPLAIN, &request("Define a limit."))
        .await
        .unwrap_err();
    assert!(matches!(
        *refused,
        lectern::ai::Error::Upstream { status: 400, .. }
    ));
    fake.fail_next(503, 1, Some(0));
    let answer = ask(&env.app, &EXPLAIN, &request("Define a limit."))
        .await
        .unwrap();
    assert!(!answer.cached);
    assert_eq!(fake.calls(), 3, "the 400, then a 503 retried once");
    let mut invalid = request("Define a limit.");
    invalid.params.temperature = Some(3.0);
    let e = ask(&env.app, &EXPLAIN, &invalid).await.unwrap_err();
    assert!(matches!(*e, lectern::ai::Error::InvalidRequest(_)));
    assert_eq!(fake.calls(), 3);
    let s = ai_stats(&env).await;
    assert_eq!(s["upstream_calls"], 3);
    assert_eq!(s["cached_responses"], 0);
}
