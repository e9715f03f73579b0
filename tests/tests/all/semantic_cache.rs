//! The semantic answer cache through the API, against the loopback
//! OpenAI-compatible server (its embeddings make paraphrases near and other
//! questions far): a second student's paraphrase about the same segment is
//! answered with one embedding call and no chat call; a near miss, another
//! style or another segment is not; the counters say so; the set is bounded.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::fake_ai::FakeAi;
use lectern_tests::{OwnRedis, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// A student of the environment with a session at the first segment of the
/// 3-segment test course: (token, session id).
async fn student_at(env: &TestEnv, course: Uuid) -> (String, String) {
    let (_, token) = env.user(Role::Student).await;
    let r = env
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/teaching/sessions",
            Some(json!({ "course_id": course, "module_index": 0, "sub_topic_index": 0 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (token, r.body["session_id"].as_str().unwrap().to_owned())
}

async fn ask(env: &TestEnv, (token, session): &(String, String), text: &str) -> Value {
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            &format!("/v1/teaching/sessions/{session}/input"),
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{text}: {}", r.body);
    r.body
}

#[tokio::test]
async fn a_paraphrase_is_answered_from_the_semantic_cache() {
    let fake = FakeAi::start().await;
    let env = TestEnv::with_vars(&fake.vars()).await;
    let course = env.course(3).await;
    let a = student_at(&env, course).await;
    let b = student_at(&env, course).await;
    let c = student_at(&env, course).await;

    let first = ask(&env, &a, "How do I multiply powers with the same base?").await;
    let answer = &first["answer"];
    assert_eq!(answer["cached"], false, "{first}");
    assert!(answer.get("similarity").is_none());
    assert_eq!((fake.calls(), fake.embedding_calls()), (1, 1));
    // The chat call was grounded in the segment.
    let system = fake.requests().last().unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("The segment being taught: Part 1.1.1"),
        "{system}"
    );
    assert_eq!(env.count("answer_vectors").await, 1);

    // Another student's paraphrase: one embedding, no chat call, the same answer.
    let second = ask(&env, &b, "whats the rule for multiplying same base powers").await;
    assert_eq!(second["answer"]["text"], answer["text"], "{second}");
    assert_eq!(second["answer"]["cached"], true);
    let similarity = second["answer"]["similarity"].as_f64().unwrap();
    assert!((0.9..=1.0).contains(&similarity), "{similarity}");
    assert_eq!((fake.calls(), fake.embedding_calls()), (1, 2));
    // Recorded as that student's answer, from a cache.
    let cached: bool = env
        .sql()
        .await
        .query_one(
            "SELECT cached FROM teaching_questions WHERE session_id = $1",
            &[&b.1.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cached);

    // A near miss (same words, another question) is answered upstream.
    let near = ask(&env, &c, "How do I multiply powers with the same exponent?").await;
    assert_eq!(near["answer"]["cached"], false, "{near}");
    assert_ne!(near["answer"]["text"], answer["text"]);
    assert_eq!((fake.calls(), fake.embedding_calls()), (2, 3));

    // A confused student gets an answer pitched for them: not the plain one.
    let d = student_at(&env, course).await;
    ask(&env, &d, "I'm confused").await;
    let plain = ask(&env, &d, "whats the rule for multiplying same base powers").await;
    assert_eq!(plain["answer"]["cached"], false, "{plain}");
    assert_eq!(fake.calls(), 3);
    // The same text again is embedded once: its embedding is cached by hash.
    assert_eq!(fake.embedding_calls(), 3);
    // The question's text is not kept with the answer (only its embedding;
    // the fake's answers echo it, a real answer may quote it too).
    let stored: Vec<String> = env
        .sql()
        .await
        .query("SELECT to_jsonb(a)::text FROM answer_vectors a", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(
        stored.iter().all(|row| !row.contains("\"question\"")),
        "{stored:?}"
    );

    let stats = env.get("/v1/admin/cache/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let semantic = &stats.body["semantic"];
    assert_eq!(
        (semantic["hits"].as_u64(), semantic["misses"].as_u64()),
        (Some(1), Some(3)),
        "{semantic}"
    );
    assert_eq!(semantic["embedding_calls"], 3);
    assert!(semantic["tokens_saved"].as_u64().unwrap() > 0, "{semantic}");
}

/// Answers are shared within one segment of one course version; each
/// segment keeps at most `SEMANTIC_CACHE_CAP` of them, the least used evicted.
#[tokio::test]
async fn answers_are_shared_per_segment_and_the_set_is_bounded() {
    let fake = FakeAi::start().await;
    let mut vars = fake.vars();
    vars.push(("SEMANTIC_CACHE_CAP", "10".into()));
    let env = TestEnv::with_vars(&vars).await;
    let course = env.course(3).await;
    let a = student_at(&env, course).await;
    ask(&env, &a, "How do I multiply powers with the same base?").await;
    // The same question one segment on: another set, a chat call.
    let b = student_at(&env, course).await;
    ask(&env, &b, "next").await;
    let other = ask(&env, &b, "How do I multiply powers with the same base?").await;
    assert_eq!(other["answer"]["cached"], false, "{other}");
    assert_eq!(fake.calls(), 2);

    // Twelve different questions about one segment: at most ten kept, the
    // least used go first (the one reused stays).
    let reused = student_at(&env, course).await;
    let hit = ask(
        &env,
        &reused,
        "whats the rule for multiplying same base powers",
    )
    .await;
    assert_eq!(hit["answer"]["cached"], true, "{hit}");
    for i in 0..12 {
        let s = student_at(&env, course).await;
        // Words of their own: far from every other question.
        let q = format!(
            "what is {} {} ({i})?",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        );
        ask(&env, &s, &q).await;
    }
    let sql = env.sql().await;
    let kept: i64 = sql
        .query_one(
            "SELECT count(*) FROM answer_vectors WHERE course_id = $1 AND segment_key = '1.1.1'",
            &[&course],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 10);
    let uses: i32 = sql
        .query_one(
            "SELECT max(uses) FROM answer_vectors WHERE segment_key = '1.1.1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(uses, 1, "the answer reused is kept");
    // Every process learns of new answers through the set's generation in Redis.
    let mut redis = env.redis().await;
    let key = format!("{}semantic:{{{course}:1:1.1.1}}:generation", env.prefix);
    let generation: u64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(generation, 13);
}

/// Redis stopped: the question is embedded upstream (no cached embedding to
/// read), the segment's answers are read from PostgreSQL, and a paraphrase is
/// still answered from the cache; Redis back (empty), it goes on.
#[tokio::test]
async fn without_redis_a_paraphrase_is_still_answered_from_postgresql() {
    let mut redis = OwnRedis::start();
    let fake = FakeAi::start().await;
    let env = TestEnv::with_redis_and_vars(&redis.url(), &fake.vars()).await;
    let course = env.course(3).await;
    let a = student_at(&env, course).await;
    let b = student_at(&env, course).await;
    let first = ask(&env, &a, "How do I multiply powers with the same base?").await;
    assert_eq!(first["answer"]["cached"], false, "{first}");

    redis.kill();
    let second = ask(&env, &b, "whats the rule for multiplying same base powers").await;
    assert_eq!(second["answer"]["cached"], true, "{second}");
    assert_eq!(second["answer"]["text"], first["answer"]["text"]);
    assert_eq!((fake.calls(), fake.embedding_calls()), (1, 2));

    redis.revive();
    // The circuit breaker skips Redis for a second after a failure.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let c = student_at(&env, course).await;
    let third = ask(
        &env,
        &c,
        "how to multiply exponents when the base is the same",
    )
    .await;
    assert_eq!(third["answer"]["cached"], true, "{third}");
    assert_eq!((fake.calls(), fake.embedding_calls()), (1, 3));
}
