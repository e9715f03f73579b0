//! Tutoring sessions through the HTTP API, on real Redis and PostgreSQL:
//! scripted conversations, concurrency, TTLs, recovery, outages, AI answers,
//! validation and the admin statistics.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern_tests::fake_ai::FakeAi;
use lectern_tests::{OwnRedis, Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// A student with a session token, talking to one environment.
struct Student<'e> {
    env: &'e TestEnv,
    id: Uuid,
    token: String,
}

impl<'e> Student<'e> {
    async fn new(env: &'e TestEnv) -> Self {
        let (id, token) = env.user(Role::Student).await;
        Self { env, id, token }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.env
            .call_as(Some(&self.token), method, path, body)
            .await
    }

    /// A new session of `segments` segments; its id.
    async fn start(&self, segments: u32) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/teaching/sessions",
                Some(self.env.lesson(segments as usize).await),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.body["session_id"].as_str().unwrap().to_owned();
        assert_eq!(
            r.headers["location"],
            format!("/v1/teaching/sessions/{id}").as_str()
        );
        id
    }

    async fn say(&self, session: &str, text: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/v1/teaching/sessions/{session}/input"),
            Some(json!({ "text": text })),
        )
        .await
    }

    /// Says `text` and expects a 200.
    async fn ok(&self, session: &str, text: &str) -> Value {
        let r = self.say(session, text).await;
        assert_eq!(r.status, StatusCode::OK, "{text:?}: {}", r.body);
        r.body
    }

    async fn view(&self, session: &str) -> Resp {
        self.call(
            Method::GET,
            &format!("/v1/teaching/sessions/{session}"),
            None,
        )
        .await
    }

    async fn end(&self, session: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/v1/teaching/sessions/{session}/end"),
            None,
        )
        .await
    }
}

/// The session's transitions in PostgreSQL: (seq, intent, from, to, action).
async fn transitions(
    env: &TestEnv,
    session: &str,
) -> Vec<(i32, Option<String>, Option<String>, String, String)> {
    let id: Uuid = session.parse().unwrap();
    env.sql()
        .await
        .query(
            "SELECT seq, intent, from_state, to_state, action FROM teaching_transitions
             WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The three Redis keys of a session.
fn session_keys(env: &TestEnv, session: &str) -> [String; 3] {
    let tag = format!("{}teaching:session:{{{session}}}", env.prefix);
    [
        format!("{tag}:context"),
        format!("{tag}:history"),
        format!("{tag}:metrics"),
    ]
}

/// Every intent, every action, through the API; each transition recorded in
/// PostgreSQL in order; the summary counts what happened; Redis forgets the
/// session at its end, and PostgreSQL still shows it.
#[tokio::test]
async fn a_scripted_conversation_covers_every_intent_and_is_recorded() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(4).await;
    // (input, intent, action, state after, segment after)
    let script = [
        ("next", "continue", "teach_segment", "teaching", 1),
        (
            "What is a fraction?",
            "question",
            "answer_question",
            "answering_question",
            1,
        ),
        (
            "I don't understand",
            "confused",
            "answer_question",
            "answering_question",
            1,
        ),
        ("ok", "continue", "resume", "teaching", 1),
        (
            "can you repeat that?",
            "repeat",
            "repeat_segment",
            "teaching",
            1,
        ),
        ("hold on", "pause", "pause", "paused", 1),
        ("I'm back", "resume", "resume", "teaching", 1),
        ("skip", "skip", "teach_segment", "teaching", 2),
        ("my cat likes this", "other", "acknowledge", "teaching", 2),
        ("huh", "confused", "repeat_segment", "teaching", 2),
        ("got it", "continue", "teach_segment", "teaching", 3),
        ("next", "continue", "summarize", "completed", 3),
    ];
    for (i, (text, intent, action, state, segment)) in script.iter().enumerate() {
        let r = s.ok(&session, text).await;
        assert_eq!(r["intent"], *intent, "{text:?}: {r}");
        assert_eq!(r["action"]["type"], *action, "{text:?}: {r}");
        assert_eq!(r["context"]["state"], *state, "{text:?}: {r}");
        assert_eq!(
            r["action"]["segment"]["segment_index"], *segment,
            "{text:?}"
        );
        assert_eq!(r["context"]["seq"], i + 1);
    }
    // Without an AI provider, a question comes back with the prompt to send a
    // model, grounded in the segment being taught and its neighbours (not in
    // the session's earlier questions: the answer may serve another student).
    let asked = s.ok(&session, "why is 1/2 = 2/4?").await;
    assert!(asked.get("answer").is_none());
    let prompt = asked["prompt"].as_array().unwrap();
    assert_eq!(prompt[1]["content"], "why is 1/2 = 2/4?");
    let system = prompt[0]["content"].as_str().unwrap();
    let at = asked["context"]["segment_index"].as_u64().unwrap() + 1;
    assert!(
        system.contains(&format!(
            "The segment being taught: Part 1.1.{at}\n<<<\nFact 1.1.{at}:"
        )),
        "{system}"
    );
    assert!(system.contains("The segment before: Part 1.1."), "{system}");
    assert!(!system.contains("What is a fraction?"), "{system}");
    assert_eq!(
        asked["action"]["recent_questions"],
        json!(["What is a fraction?", "why is 1/2 = 2/4?"])
    );

    let bye = s.ok(&session, "bye").await;
    assert_eq!(bye["intent"], "end");
    assert_eq!(bye["action"]["type"], "end_session");
    let summary = &bye["summary"];
    assert_eq!(summary["segments_done"], 4);
    assert_eq!(summary["total_segments"], 4);
    assert_eq!(summary["questions_asked"], 2);
    assert_eq!(summary["inputs"], 14);
    // question, repeat, pause, confusion ("huh") while teaching.
    assert_eq!(summary["interruptions"], 4);
    assert_eq!(summary["interruption_rate"], 4.0 / 14.0);
    assert_eq!(summary["skips"], 1);
    assert_eq!(summary["repeats"], 1);
    assert_eq!(summary["confusions"], 2);
    assert_eq!(summary["pauses"], 1);
    assert!(summary["duration_s"].as_f64().unwrap() >= 0.0);

    let rows = transitions(&env, &session).await;
    assert_eq!(rows.len(), 15);
    assert_eq!(
        rows[0],
        (0, None, None, "teaching".into(), "teach_segment".into())
    );
    for (i, (text, intent, action, state, _)) in script.iter().enumerate() {
        let row = &rows[i + 1];
        assert_eq!(row.0 as usize, i + 1);
        assert_eq!(row.1.as_deref(), Some(*intent), "{text:?}");
        assert_eq!(row.3, *state);
        assert_eq!(row.4, *action);
    }
    assert_eq!(rows[14].3, "ended");
    let sql = env.sql().await;
    let id: Uuid = session.parse().unwrap();
    let questions: Vec<String> = sql
        .query(
            "SELECT question FROM teaching_questions WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(questions, ["What is a fraction?", "why is 1/2 = 2/4?"]);
    let row = sql
        .query_one(
            "SELECT state, inputs, questions_asked, ended_at IS NOT NULL FROM teaching_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "ended");
    assert_eq!(row.get::<_, i32>(1), 14);
    assert_eq!(row.get::<_, i32>(2), 2);
    assert!(row.get::<_, bool>(3));

    // Redis forgets an ended session; PostgreSQL shows it, with its summary.
    let teaching_keys: Vec<_> = env
        .redis_entries()
        .await
        .into_iter()
        .filter(|(k, _)| k.contains(&session))
        .collect();
    assert!(teaching_keys.is_empty(), "{teaching_keys:?}");
    let v = s.view(&session).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(v.body["live"], false);
    assert_eq!(v.body["context"]["state"], "ended");
    assert_eq!(v.body["summary"], *summary);
    assert_eq!(v.body["transitions"].as_array().unwrap().len(), 15);
    assert_eq!(v.body["transitions"][0]["seq"], 14);
    let again = s.say(&session, "next").await;
    assert_eq!(
        again.problem(409),
        format!("teaching session {session} has ended; it takes no more input")
    );
    assert_eq!(again.slug(), "session-ended");
    let end = s.end(&session).await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);
    assert_eq!(end.body, *summary, "end is idempotent");
    assert_eq!(transitions(&env, &session).await.len(), 15);
    env.assert_redis_clean().await;
}

/// The live view: context, counters and the last 20 transitions, newest first.
#[tokio::test]
async fn the_view_shows_the_last_twenty_transitions_and_the_metrics() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(3).await;
    for i in 0..24 {
        s.ok(&session, &format!("question {i}?")).await;
    }
    let v = s.view(&session).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(v.body["live"], true);
    let seqs: Vec<u64> = v.body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (5..=24).rev().collect::<Vec<_>>());
    assert_eq!(v.body["transitions"][0]["input"], "question 23?");
    assert_eq!(v.body["transitions"][0]["intent"], "question");
    assert_eq!(v.body["metrics"]["questions_asked"], 24);
    assert_eq!(v.body["metrics"]["inputs"], 24);
    assert_eq!(v.body["metrics"]["interruptions"], 1);
    assert_eq!(v.body["metrics"]["interruption_rate"], 1.0 / 24.0);
    assert_eq!(
        v.body["context"]["recent_questions"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let history_len: i64 = redis::cmd("LLEN")
        .arg(&session_keys(&env, &session)[1])
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    assert_eq!(history_len, 20);
}

/// Two inputs at once on one session (and a burst of ten, across two
/// containers): every one applied, one after the other, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inputs_are_all_applied_in_order() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(50).await;
    let (a, b) = tokio::join!(s.say(&session, "next"), s.say(&session, "next"));
    assert_eq!(
        (a.status, b.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.body,
        b.body
    );
    let mut seqs = [
        a.body["context"]["seq"].as_u64(),
        b.body["context"]["seq"].as_u64(),
    ];
    seqs.sort();
    assert_eq!(seqs, [Some(1), Some(2)]);
    let mut segments = [
        a.body["action"]["segment"]["segment_index"]
            .as_u64()
            .unwrap(),
        b.body["action"]["segment"]["segment_index"]
            .as_u64()
            .unwrap(),
    ];
    segments.sort();
    assert_eq!(segments, [1, 2], "each decided on the other's result");

    // A burst of ten, half of them through another container.
    let twin = env.twin();
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..10 {
        let router = if i % 2 == 0 {
            env.router.clone()
        } else {
            twin.clone()
        };
        let request = lectern_tests::request(
            Some(&s.token),
            Method::POST,
            &format!("/v1/teaching/sessions/{session}/input"),
            Some(json!({ "text": "next" })),
        );
        burst.spawn(async move { lectern_tests::send(&router, request).await });
    }
    let mut seqs: Vec<u64> = burst
        .join_all()
        .await
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["context"]["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, (3..=12).collect::<Vec<_>>());

    let rows = transitions(&env, &session).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..=12).collect::<Vec<_>>()
    );
    let v = s.view(&session).await;
    assert_eq!(v.body["context"]["segment_index"], 12);
    assert_eq!(v.body["context"]["seq"], 12);
    assert_eq!(v.body["metrics"]["inputs"], 12);
    let history: Vec<u64> = v.body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        history,
        (0..=12).rev().collect::<Vec<_>>(),
        "Redis history in order"
    );
}

/// An input on a warm process: the session lookup, one round trip for the
/// context (with the live-index update), one for the `ADVANCE` script, and
/// one PostgreSQL statement.
#[tokio::test]
async fn an_input_keeps_its_io_budget() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(6).await;
    s.ok(&session, "next").await;
    for text in ["next", "What is a ratio?", "ok", "repeat"] {
        let before = env.app.io_counts();
        s.ok(&session, text).await;
        let used = env.app.io_counts() - before;
        assert_eq!(used.redis_round_trips, 3, "{text:?}");
        assert_eq!(used.pg_checkouts, 1, "{text:?}");
    }
    // A view is the session lookup and one pipeline; nothing from PostgreSQL.
    let before = env.app.io_counts();
    assert_eq!(s.view(&session).await.body["live"], true);
    let used = env.app.io_counts() - before;
    assert_eq!((used.redis_round_trips, used.pg_checkouts), (2, 0));
}

/// What a busy session costs Redis: its three keys after 25 inputs (the
/// history holds 20) stay small.
#[tokio::test]
async fn a_session_costs_redis_a_few_kilobytes() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(30).await;
    for i in 0..25 {
        let text = if i % 3 == 0 {
            format!("why does step {i} work like that?")
        } else {
            "next".into()
        };
        s.ok(&session, &text).await;
    }
    let mut conn = env.redis().await;
    let mut total = 0;
    for key in session_keys(&env, &session) {
        let bytes: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        println!("{key}: {bytes} bytes");
        total += bytes;
    }
    println!("total: {total} bytes");
    assert!(total <= 8 * 1024, "{total} bytes");
}

/// Every input and every view refreshes the TTL of the context, history and
/// metrics together (30 minutes).
#[tokio::test]
async fn every_use_refreshes_the_ttl_of_all_three_keys() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(3).await;
    let keys = session_keys(&env, &session);
    for key in &keys {
        let ttl = env.pttl(key).await;
        assert!((1_790_000..=1_800_000).contains(&ttl), "{key}: {ttl}");
    }
    let mut conn = env.redis().await;
    let shorten = |conn: &mut lectern::store::conn::Conn| {
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("PEXPIRE").arg(key).arg(5_000).ignore();
        }
        let conn = conn.clone();
        async move {
            let mut conn = conn;
            pipe.query_async::<()>(&mut conn).await.unwrap();
        }
    };
    shorten(&mut conn).await;
    s.ok(&session, "next").await;
    for key in &keys {
        assert!(
            env.pttl(key).await > 1_790_000,
            "{key} refreshed by an input"
        );
    }
    shorten(&mut conn).await;
    assert_eq!(s.view(&session).await.body["live"], true);
    for key in &keys {
        assert!(env.pttl(key).await > 1_790_000, "{key} refreshed by a view");
    }
    env.assert_redis_clean().await;
}

/// Redis lost the keys (expired, evicted, flushed): the view and the next
/// input rebuild context and history from PostgreSQL, exactly as they were.
#[tokio::test]
async fn a_session_lost_from_redis_is_rebuilt_from_postgresql() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(5).await;
    for text in ["next", "why?", "I'm confused", "ok", "skip"] {
        s.ok(&session, text).await;
    }
    let before = s.view(&session).await.body;
    assert_eq!(before["live"], true);
    let mut conn = env.redis().await;
    let keys = session_keys(&env, &session);
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();

    let rebuilt = s.view(&session).await.body;
    assert_eq!(rebuilt["live"], false);
    for field in ["context", "metrics", "transitions"] {
        assert_eq!(rebuilt[field], before[field], "{field} rebuilt as it was");
    }
    assert_eq!(
        s.view(&session).await.body["live"],
        true,
        "and put back in Redis"
    );

    // Gone again: the next input decides on PostgreSQL's copy and Redis gets it all back.
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = s.ok(&session, "next").await;
    assert_eq!(r["context"]["seq"], 6);
    assert_eq!(r["action"]["segment"]["segment_index"], 3);
    let after = s.view(&session).await.body;
    assert_eq!(after["live"], true);
    assert_eq!(after["transitions"].as_array().unwrap().len(), 7);
    assert_eq!(after["metrics"]["inputs"], 6);

    // Only a part lost (the history evicted): the copy is rebuilt whole.
    let _: i64 = redis::cmd("DEL")
        .arg(&keys[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    s.ok(&session, "repeat").await;
    let after = s.view(&session).await.body;
    assert_eq!(after["transitions"].as_array().unwrap().len(), 8);
    assert_eq!(after["transitions"][0]["action"], "repeat_segment");
}

/// A Redis copy left behind (a write that never arrived) is never decided on
/// for good: PostgreSQL refuses the stale seq, the input is decided again on
/// PostgreSQL's copy, and Redis is caught up.
#[tokio::test]
async fn a_copy_left_behind_in_redis_is_caught_up() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(6).await;
    s.ok(&session, "next").await;
    let keys = session_keys(&env, &session);
    let mut conn = env.redis().await;
    let old: Vec<Vec<u8>> = redis::pipe()
        .cmd("GET")
        .arg(&keys[0])
        .query_async::<Vec<Vec<u8>>>(&mut conn)
        .await
        .unwrap();
    s.ok(&session, "next").await;
    // Put the older context back, as if the second write had been lost.
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(&old[0])
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = s.ok(&session, "next").await;
    assert_eq!(r["context"]["seq"], 3);
    assert_eq!(r["action"]["segment"]["segment_index"], 3);
    let v = s.view(&session).await.body;
    assert_eq!(v["context"]["seq"], 3);
    assert_eq!(v["metrics"]["inputs"], 3);
    assert_eq!(transitions(&env, &session).await.len(), 4);
}

/// Only the student acts on their session; teachers read it; anyone else is
/// told it does not exist. Nothing changes on a refusal.
#[tokio::test]
async fn only_the_owner_takes_part_and_staff_may_read() {
    let env = TestEnv::new().await;
    let owner = Student::new(&env).await;
    let other = Student::new(&env).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let session = owner.start(3).await;
    let path = format!("/v1/teaching/sessions/{session}");
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (
            Method::POST,
            format!("{path}/input"),
            Some(json!({ "text": "next" })),
        ),
        (Method::POST, format!("{path}/end"), None),
    ] {
        let r = other.call(method, &p, body).await;
        assert_eq!(
            r.problem(404),
            format!("no teaching session with id {session}")
        );
    }
    let read = env.call_as(Some(&teacher), Method::GET, &path, None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let act = env
        .call_as(
            Some(&teacher),
            Method::POST,
            &format!("{path}/input"),
            Some(json!({ "text": "next" })),
        )
        .await;
    act.problem(403);
    assert_eq!(
        transitions(&env, &session).await.len(),
        1,
        "refusals changed nothing"
    );
    // An admin may act on it.
    let r = env
        .post(&format!("{path}/input"), json!({ "text": "next" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A session is always the caller's own.
    let mine = env.post("/v1/teaching/sessions", env.lesson(2).await).await;
    assert_eq!(mine.status, StatusCode::CREATED);
    assert_eq!(mine.body["context"]["user_id"], env.admin.to_string());
    assert_eq!(
        owner.id.to_string(),
        owner.view(&session).await.body["context"]["user_id"]
    );
}

/// Bad bodies get a problem+json 4xx and write nothing, to PostgreSQL or Redis.
#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let session = s.start(3).await;
    let footprint = || async {
        (
            env.count("teaching_sessions").await,
            env.count("teaching_transitions").await,
            env.redis_entries().await,
        )
    };
    let before = footprint().await;
    let course = env.course(3).await;
    let elsewhere = env.new_org().await;
    for (body, status) in [
        (json!({ "course_id": "" }), 422),
        (json!({ "course_id": "algebra-1" }), 422),
        (json!({ "course_id": Uuid::new_v4() }), 404),
        // Position: both indexes or neither; inside the course.
        (json!({ "course_id": course, "module_index": 0 }), 422),
        (json!({ "course_id": course, "segment_index": 1 }), 422),
        (
            json!({ "course_id": course, "module_index": -1, "sub_topic_index": 0 }),
            422,
        ),
        (
            json!({ "course_id": course, "module_index": 2, "sub_topic_index": 0 }),
            422,
        ),
        (
            json!({ "course_id": course, "module_index": 0, "sub_topic_index": 2 }),
            422,
        ),
        (
            json!({ "course_id": course, "module_index": 0, "sub_topic_index": 0, "segment_index": 3 }),
            422,
        ),
        // The client no longer says how many segments there are.
        (json!({ "course_id": course, "total_segments": 3 }), 422),
        (
            json!({ "course_id": course, "organization_id": elsewhere }),
            404,
        ),
        (json!({ "course_id": course, "x": 1 }), 422),
    ] {
        let r = s
            .call(Method::POST, "/v1/teaching/sessions", Some(body.clone()))
            .await;
        r.problem(status);
        assert!(!r.body["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let input = format!("/v1/teaching/sessions/{session}/input");
    for body in [
        json!({ "text": "" }),
        json!({ "text": "  \n " }),
        json!({ "text": "x".repeat(1001) }),
        json!({ "text": 3 }),
        json!({}),
        json!({ "text": "next", "session_id": session }),
    ] {
        s.call(Method::POST, &input, Some(body)).await.problem(422);
    }
    let raw = lectern_tests::request(Some(&s.token), Method::POST, &input, None);
    let mut raw = raw;
    *raw.body_mut() = axum::body::Body::from("{not json");
    raw.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    env.send(raw).await.problem(400);
    s.call(
        Method::POST,
        "/v1/teaching/sessions/not-a-uuid/input",
        Some(json!({ "text": "next" })),
    )
    .await
    .problem(404);
    s.call(
        Method::POST,
        &format!("/v1/teaching/sessions/{}/input", Uuid::new_v4()),
        Some(json!({ "text": "next" })),
    )
    .await
    .problem(404);
    assert_eq!(footprint().await, before);
}

/// With an AI provider, a question's answer is generated through the AI
/// cache (the same question in the same place is one upstream call) and kept
/// in PostgreSQL next to the question.
#[tokio::test]
async fn questions_are_answered_through_the_cached_ai_client() {
    let fake = FakeAi::start().await;
    let env = TestEnv::with_vars(&fake.vars()).await;
    let a = Student::new(&env).await;
    let b = Student::new(&env).await;
    let first = a.start(3).await;
    let second = b.start(3).await;
    let r = a.ok(&first, "What is a fraction?").await;
    let answer = &r["answer"];
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("What is a fraction?"),
        "{r}"
    );
    assert_eq!(answer["model"], lectern_tests::fake_ai::MODEL);
    assert_eq!(answer["cached"], false);
    assert!(r.get("prompt").is_none());
    let same = b.ok(&second, "What is a fraction?").await;
    assert_eq!(same["answer"]["text"], answer["text"]);
    assert_eq!(same["answer"]["cached"], true);
    assert_eq!(fake.calls(), 1);
    // Confusion while answering asks again, more simply: a new prompt, a new call.
    let again = a.ok(&first, "I'm lost").await;
    assert_eq!(again["action"]["type"], "answer_question");
    assert_eq!(again["answer"]["cached"], false);
    assert_eq!(fake.calls(), 2);
    let sent = fake.requests();
    let system = sent.last().unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(system.contains("confusion (level 1 of 3)"), "{system}");

    let row = env
        .sql()
        .await
        .query_one(
            "SELECT answer, model, cached FROM teaching_questions WHERE session_id = $1",
            &[&first.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), answer["text"].as_str());
    assert_eq!(
        row.get::<_, Option<&str>>(1),
        Some(lectern_tests::fake_ai::MODEL)
    );
    assert_eq!(row.get::<_, Option<bool>>(2), Some(false));

    // The provider failing: the transition stands, the caller gets the prompt and why.
    // Three failed attempts of the embedding (the semantic cache is then
    // skipped), three of the chat call.
    fake.fail_next(500, 6, None);
    let failed = a.ok(&first, "And what is a decimal?").await;
    assert!(failed.get("answer").is_none());
    assert!(
        failed["answer_error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert_eq!(failed["prompt"][1]["content"], "And what is a decimal?");
    assert_eq!(transitions(&env, &first).await.len(), 4);
}

/// `GET /v1/admin/teaching/stats`: live sessions from the Redis index (never
/// KEYS), questions per session and the interruption rate from PostgreSQL.
#[tokio::test]
async fn admin_stats_count_live_sessions_questions_and_interruptions() {
    let env = TestEnv::new().await;
    let s = Student::new(&env).await;
    let one = s.start(3).await;
    let two = s.start(3).await;
    for text in ["why?", "ok", "next", "repeat"] {
        s.ok(&one, text).await;
    }
    for text in ["next", "what is x?", "how about y?", "ok"] {
        s.ok(&two, text).await;
    }
    let stats = env.get("/v1/admin/teaching/stats").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["active_sessions"], 2);
    assert_eq!(stats.body["sessions"], 2);
    assert_eq!(stats.body["ended"], 0);
    assert_eq!(stats.body["avg_questions_per_session"], 1.5);
    // one: question + repeat while teaching; two: the first question.
    assert_eq!(stats.body["interruption_rate"], 3.0 / 8.0);
    assert_eq!(stats.body["window_hours"], 24);
    // Redis's own view: three keys a live session.
    let redis = env.get("/v1/admin/redis/stats").await;
    assert_eq!(redis.body["keys"]["teaching_session"], 6, "{}", redis.body);
    s.end(&one).await;
    let redis = env.get("/v1/admin/redis/stats").await;
    assert_eq!(redis.body["keys"]["teaching_session"], 3, "{}", redis.body);
    let stats = env.get("/v1/admin/teaching/stats?hours=1").await;
    assert_eq!(stats.body["active_sessions"], 1);
    assert_eq!(stats.body["ended"], 1);
    for bad in ["hours=0", "hours=721", "hours=x", "other=1"] {
        let r = env.get(&format!("/v1/admin/teaching/stats?{bad}")).await;
        assert!(r.status.is_client_error(), "{bad}: {}", r.status);
    }
    let r = env
        .call_as(
            Some(&s.token),
            Method::GET,
            "/v1/admin/teaching/stats",
            None,
        )
        .await;
    r.problem(403);
}

/// Redis stopped mid-session: inputs go on from PostgreSQL alone (the token
/// is accepted from this process's recent checks); Redis back, the copy is
/// rebuilt with every transition made meanwhile.
#[tokio::test]
async fn redis_stopped_mid_session_goes_on_from_postgresql() {
    let mut redis = OwnRedis::start();
    let env = TestEnv::with_urls(&redis.url(), None).await;
    let s = Student::new(&env).await;
    let session = s.start(6).await;
    s.ok(&session, "next").await;
    redis.kill();
    for (i, text) in ["next", "why?", "ok"].iter().enumerate() {
        let r = s.ok(&session, text).await;
        assert_eq!(r["context"]["seq"], i + 2);
    }
    let v = s.view(&session).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(v.body["live"], false);
    assert_eq!(v.body["metrics"]["inputs"], 4);
    redis.revive();
    // The circuit breaker skips Redis for a second after a failure.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Sessions went with Redis's data: sign in again.
    let (token, id) = (env.sign_in(s.id, Role::Student).await, s.id);
    let s = Student {
        env: &env,
        id,
        token,
    };
    let r = s.ok(&session, "next").await;
    assert_eq!(r["context"]["seq"], 5);
    let v = s.view(&session).await.body;
    assert_eq!(v["live"], true);
    assert_eq!(v["transitions"].as_array().unwrap().len(), 6);
    assert_eq!(v["metrics"]["inputs"], 5);
}

/// PostgreSQL unreachable: an input is refused (503) and Redis is untouched;
/// back, the same input goes through.
#[tokio::test]
async fn postgresql_down_refuses_input_and_leaves_redis_alone() {
    let (_healthy, proxy, env) = TestEnv::behind_database_proxy().await;
    let s = Student::new(&env).await;
    let session = s.start(4).await;
    s.ok(&session, "next").await;
    let before = env.redis_entries().await;
    proxy.cut();
    let r = s.say(&session, "next").await;
    assert!(r.problem(503).contains("PostgreSQL"), "{}", r.body);
    assert_eq!(env.redis_entries().await, before, "Redis unchanged");
    proxy.restore();
    let r = s.ok(&session, "next").await;
    assert_eq!(r["context"]["seq"], 2);
    assert_eq!(r["action"]["segment"]["segment_index"], 2);
}
