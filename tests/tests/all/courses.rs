//! Courses as data through the HTTP API, on real Redis and PostgreSQL: import
//! and versions, validation that names the field, who may write and read,
//! sessions that teach the version they started on with its content, progress
//! across sessions (exactly once under concurrent inputs), and the sweeper
//! ending idle sessions while keeping progress.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern::services::sweep;
use lectern_tests::{Resp, TestEnv, course_doc};
use serde_json::{Value, json};
use uuid::Uuid;

async fn import(env: &TestEnv, token: &str, doc: &Value) -> Resp {
    env.call_as(
        Some(token),
        Method::POST,
        "/v1/courses",
        Some(json!({ "organization_id": env.org, "course": doc })),
    )
    .await
}

async fn start(env: &TestEnv, token: &str, body: Value) -> Value {
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            "/v1/teaching/sessions",
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn say(env: &TestEnv, token: &str, session: &Value, text: &str) -> Value {
    let id = session["session_id"].as_str().unwrap();
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            &format!("/v1/teaching/sessions/{id}/input"),
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{text}: {}", r.body);
    r.body
}

async fn progress(env: &TestEnv, token: &str, student: Uuid) -> Value {
    let r = env
        .call_as(
            Some(token),
            Method::GET,
            &format!("/v1/students/{student}/progress"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn versions(env: &TestEnv) -> i64 {
    env.count("course_versions").await
}

/// Create, re-import unchanged, re-import changed, read any version, list,
/// revise with and without the version the writer started from.
#[tokio::test]
async fn a_course_is_imported_versioned_and_read() {
    let env = TestEnv::new().await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, student) = env.user(Role::Student).await;
    let doc = course_doc(2);
    let created = import(&env, &teacher, &doc).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["outcome"], "created");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["segments"], 8);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/v1/courses/{id}").as_str()
    );
    // Keys were filled in where the file left them out.
    assert_eq!(
        created.body["modules"][1]["sub_topics"][0]["segments"][1]["key"],
        "2.1.2"
    );

    let again = import(&env, &teacher, &doc).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["outcome"], "unchanged");
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(versions(&env).await, 1);

    let mut changed = doc.clone();
    changed["modules"][0]["sub_topics"][0]["segments"][0]["text"] = json!("Rewritten.");
    let v2 = import(&env, &teacher, &changed).await;
    assert_eq!(v2.status, StatusCode::OK, "{}", v2.body);
    assert_eq!(
        (v2.body["outcome"].as_str(), v2.body["version"].as_i64()),
        (Some("versioned"), Some(2))
    );

    // Any member reads any version; the latest unless asked.
    let read = |q: &'static str| {
        let path = format!("/v1/courses/{id}{q}");
        let env = &env;
        let student = student.clone();
        async move { env.call_as(Some(&student), Method::GET, &path, None).await }
    };
    let latest = read("").await;
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.body);
    assert_eq!(latest.body["version"], 2);
    assert_eq!(
        latest.body["modules"][0]["sub_topics"][0]["segments"][0]["text"],
        "Rewritten."
    );
    let first = read("?version=1").await;
    assert!(
        first.body["modules"][0]["sub_topics"][0]["segments"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Fact 1.1.1")
    );
    assert_eq!(first.body["latest_version"], 2);
    read("?version=3").await.problem(404);
    read("?version=0").await.problem(422);
    let list = env
        .call_as(
            Some(&student),
            Method::GET,
            &format!("/v1/organizations/{}/courses", env.org),
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["courses"][0]["key"], "test-2");
    assert_eq!(list.body["courses"][0]["version"], 2);

    // Revise: on top of the version the writer read, or 409.
    let put = |body: Value| {
        let env = &env;
        let teacher = teacher.clone();
        let path = format!("/v1/courses/{id}");
        async move {
            env.call_as(Some(&teacher), Method::PUT, &path, Some(body))
                .await
        }
    };
    let mut edited = changed.clone();
    edited["title"] = json!("Edited");
    let stale = put(json!({ "expected_version": 1, "course": edited })).await;
    assert_eq!(stale.problem(409), stale.body["detail"].as_str().unwrap());
    assert_eq!(stale.slug(), "stale-version");
    assert_eq!(versions(&env).await, 2);
    let ok = put(json!({ "expected_version": 2, "course": edited })).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        (ok.body["version"].as_i64(), ok.body["title"].as_str()),
        (Some(3), Some("Edited"))
    );
    // Two editors on top of version 3 at once: one writes version 4, the other is told.
    let mut e1 = edited.clone();
    e1["title"] = json!("Editor one");
    let mut e2 = edited.clone();
    e2["title"] = json!("Editor two");
    let (r1, r2) = tokio::join!(
        put(json!({ "expected_version": 3, "course": e1 })),
        put(json!({ "expected_version": 3, "course": e2 }))
    );
    let mut statuses = [r1.status.as_u16(), r2.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} {}", r1.body, r2.body);
    assert_eq!(versions(&env).await, 4);
    let mut rekeyed = edited.clone();
    rekeyed["key"] = json!("another-key");
    assert!(
        put(json!({ "course": rekeyed }))
            .await
            .problem(422)
            .starts_with("key:")
    );
    assert_eq!(versions(&env).await, 4);
}

/// Bad documents get 422 naming the field, and write nothing; students may
/// read but not write; outside the organization a course does not exist.
#[tokio::test]
async fn bad_documents_and_the_wrong_callers_are_refused() {
    let env = TestEnv::new().await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, student) = env.user(Role::Student).await;
    let elsewhere = env.new_org().await;
    let (_, outsider) = env.member(elsewhere, "org_admin").await;
    let pool = env.demo_pool(3).await;
    let with = |path: &[&str], value: Value| {
        let mut doc = course_doc(2);
        let mut at = &mut doc;
        for p in path {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        *at = value;
        doc
    };
    let seg = ["modules", "0", "sub_topics", "1", "segments", "1"];
    let cases = [
        (with(&["key"], json!("Not A Key")), "key:"),
        (with(&["title"], json!("  ")), "title:"),
        (with(&["modules"], json!([])), "modules:"),
        (
            with(&[&seg[..], &["text"]].concat(), json!("")),
            "modules[0].sub_topics[1].segments[1].text:",
        ),
        (
            with(&[&seg[..], &["text"]].concat(), json!("x".repeat(20_001))),
            "modules[0].sub_topics[1].segments[1].text:",
        ),
        (
            with(&[&seg[..], &["key"]].concat(), json!("1.2.1")),
            "modules[0].sub_topics[1].segments[1].key:",
        ),
        (
            with(
                &[&seg[..], &["check_questions"]].concat(),
                json!([{ "text": "Which?", "item": { "pool_id": pool, "item_id": "no-such-item" } }]),
            ),
            "modules[0].sub_topics[1].segments[1].check_questions[0].item:",
        ),
        (
            with(
                &[&seg[..], &["check_questions"]].concat(),
                json!([{ "text": "Which?", "item": { "pool_id": Uuid::new_v4(), "item_id": "x" } }]),
            ),
            "modules[0].sub_topics[1].segments[1].check_questions[0].item:",
        ),
    ];
    for (doc, field) in cases {
        let r = import(&env, &teacher, &doc).await;
        let detail = r.problem(422);
        assert!(detail.starts_with(field), "{field}: {detail}");
    }
    // Unknown fields and wrong types are 422 too.
    import(&env, &teacher, &with(&["colour"], json!("red")))
        .await
        .problem(422);
    import(&env, &teacher, &with(&["modules"], json!("none")))
        .await
        .problem(422);
    assert_eq!(env.count("courses").await, 0);
    assert_eq!(versions(&env).await, 0);

    // An item of the organization's pool is a valid check question.
    let item = env
        .sql()
        .await
        .query_one(
            "SELECT id FROM questions WHERE pool_id = $1 LIMIT 1",
            &[&pool],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    let doc = with(
        &[&seg[..], &["check_questions"]].concat(),
        json!([{ "text": "Try this one.", "item": { "pool_id": pool, "item_id": item } }]),
    );
    let ok = import(&env, &teacher, &doc).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let id = ok.body["id"].as_str().unwrap().to_owned();

    // A student reads but does not write; another organization's admin sees nothing.
    import(&env, &student, &course_doc(3)).await.problem(403);
    let put = json!({ "course": doc });
    env.call_as(
        Some(&student),
        Method::PUT,
        &format!("/v1/courses/{id}"),
        Some(put.clone()),
    )
    .await
    .problem(403);
    env.call_as(
        Some(&outsider),
        Method::PUT,
        &format!("/v1/courses/{id}"),
        Some(put),
    )
    .await
    .problem(404);
    env.call_as(
        Some(&outsider),
        Method::GET,
        &format!("/v1/courses/{id}"),
        None,
    )
    .await
    .problem(404);
    import(&env, &outsider, &course_doc(3)).await.problem(404);
    let body = json!({ "course_id": id });
    env.call_as(
        Some(&outsider),
        Method::POST,
        "/v1/teaching/sessions",
        Some(body),
    )
    .await
    .problem(404);
    assert_eq!(env.count("courses").await, 1);
    assert_eq!(env.count("teaching_sessions").await, 0);
}

/// Concurrent imports of one key: the first creates, the identical second
/// writes nothing; two different documents at once are two versions.
#[tokio::test]
async fn concurrent_imports_of_one_key_write_one_version_each() {
    let env = TestEnv::new().await;
    let token = env.admin_token();
    let doc = course_doc(2);
    let (a, b) = tokio::join!(import(&env, &token, &doc), import(&env, &token, &doc));
    let mut outcomes = [
        a.body["outcome"].as_str().unwrap(),
        b.body["outcome"].as_str().unwrap(),
    ];
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["created", "unchanged"], "{} {}", a.body, b.body);
    assert_eq!(a.body["id"], b.body["id"]);
    let mut one = doc.clone();
    one["title"] = json!("One");
    let mut two = doc.clone();
    two["title"] = json!("Two");
    let (a, b) = tokio::join!(import(&env, &token, &one), import(&env, &token, &two));
    let version = |r: &Resp| {
        r.body["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{}", r.body))
    };
    let mut made = [version(&a), version(&b)];
    made.sort_unstable();
    assert_eq!(made, [2, 3]);
    assert_eq!(versions(&env).await, 3);
    assert_eq!(env.count("courses").await, 1);
}

/// Every action carries its material from the version the session started
/// on, even after the course moves on; a new session takes the new version.
#[tokio::test]
async fn a_session_teaches_the_version_it_started_on() {
    let env = TestEnv::new().await;
    let (_, token) = env.user(Role::Student).await;
    let course = env.course(3).await;
    let body = json!({ "course_id": course, "module_index": 1, "sub_topic_index": 0 });
    let s = start(&env, &token, body.clone()).await;
    assert_eq!(s["context"]["course_version"], 1);
    assert_eq!(s["context"]["total_segments"], 3);
    let content = &s["action"]["content"];
    assert_eq!(
        (
            content["key"].as_str(),
            content["module_title"].as_str(),
            content["title"].as_str()
        ),
        (Some("2.1.1"), Some("Module 2"), Some("Part 2.1.1"))
    );
    assert!(content["text"].as_str().unwrap().starts_with("Fact 2.1.1:"));

    let mut doc = course_doc(3);
    doc["modules"][1]["sub_topics"][0]["segments"][1]["text"] = json!("Version two's text.");
    let v2 = env
        .post(
            "/v1/courses",
            json!({ "organization_id": env.org, "course": doc }),
        )
        .await;
    assert_eq!(v2.body["version"], 2, "{}", v2.body);

    let next = say(&env, &token, &s, "next").await;
    assert_eq!(next["action"]["type"], "teach_segment");
    assert!(
        next["action"]["content"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Fact 2.1.2:")
    );
    let repeat = say(&env, &token, &s, "repeat that please").await;
    assert_eq!(repeat["action"]["type"], "repeat_segment");
    assert_eq!(repeat["action"]["content"]["key"], "2.1.2");
    // Remarks carry no material.
    let ack = say(&env, &token, &s, "my cat is asleep on the keyboard").await;
    assert!(ack["action"].get("content").is_none(), "{ack}");
    say(&env, &token, &s, "next").await;
    let done = say(&env, &token, &s, "next").await;
    assert_eq!(done["action"]["type"], "summarize");
    let summary = &done["action"]["content"];
    assert_eq!(summary["sub_topic_title"], "Sub-topic 2.1");
    let keys: Vec<&str> = summary["covered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["2.1.1", "2.1.2", "2.1.3"]);
    assert!(
        summary["text"]
            .as_str()
            .unwrap()
            .contains("**Part 2.1.2**: Fact 2.1.2:")
    );

    let fresh = start(&env, &token, body).await;
    assert_eq!(fresh["context"]["course_version"], 2);
    let fresh = say(&env, &token, &fresh, "next").await;
    assert_eq!(fresh["action"]["content"]["text"], "Version two's text.");
}

/// Progress moves with the transitions, survives across sessions (a new one
/// resumes where the last left off, unless asked elsewhere), and is read by
/// the student, their teachers and org admins only.
#[tokio::test]
async fn progress_survives_across_sessions() {
    let env = TestEnv::new().await;
    let (student, token) = env.user(Role::Student).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let course = env.course(3).await;
    let s1 = start(&env, &token, json!({ "course_id": course })).await;
    assert_eq!(
        s1["context"]["segment_index"], 0,
        "the first session starts at the beginning"
    );
    say(&env, &token, &s1, "next").await;
    say(&env, &token, &s1, "why are facts numbered?").await;
    // Back to the lesson after the answer, then past the second segment.
    assert_eq!(
        say(&env, &token, &s1, "go on").await["action"]["type"],
        "resume"
    );
    say(&env, &token, &s1, "next").await;
    let id = s1["session_id"].as_str().unwrap();
    let end = env
        .call_as(
            Some(&token),
            Method::POST,
            &format!("/v1/teaching/sessions/{id}/end"),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);

    let p = progress(&env, &token, student).await;
    let c = &p["courses"][0];
    assert_eq!(c["course_id"], course.to_string());
    assert_eq!(c["completed"], json!(["1.1.1", "1.1.2"]));
    assert_eq!(
        (c["sessions"].as_i64(), c["questions_asked"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            c["module_index"].as_i64(),
            c["sub_topic_index"].as_i64(),
            c["segment_index"].as_i64()
        ),
        (Some(0), Some(0), Some(2))
    );
    assert_eq!(c["total_segments"], 12);
    assert!((c["fraction_completed"].as_f64().unwrap() - 2.0 / 12.0).abs() < 1e-9);
    assert!(c["time_spent_s"].as_f64().unwrap() >= 0.0);

    // The next session resumes at segment 3 of the sub-topic.
    let s2 = start(&env, &token, json!({ "course_id": course })).await;
    assert_eq!(s2["context"]["segment_index"], 2);
    assert_eq!(s2["action"]["content"]["key"], "1.1.3");
    let done = say(&env, &token, &s2, "next").await;
    assert_eq!(done["action"]["type"], "summarize");
    // Then the next sub-topic.
    let s3 = start(&env, &token, json!({ "course_id": course })).await;
    assert_eq!(
        (
            s3["context"]["sub_topic_index"].as_i64(),
            s3["context"]["segment_index"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(s3["action"]["content"]["key"], "1.2.1");
    // Unless the student asks for another place.
    let s4 = start(
        &env,
        &token,
        json!({ "course_id": course, "module_index": 1, "sub_topic_index": 1, "segment_index": 2 }),
    )
    .await;
    assert_eq!(s4["action"]["content"]["key"], "2.2.3");
    let p = progress(&env, &token, student).await;
    assert_eq!(
        p["courses"][0]["completed"],
        json!(["1.1.1", "1.1.2", "1.1.3"])
    );
    assert_eq!(p["courses"][0]["sessions"], 4);

    // Their teacher reads it, and the class's progress; another org's admin does not.
    assert_eq!(progress(&env, &teacher, student).await, p);
    let class = env
        .call_as(
            Some(&teacher),
            Method::GET,
            &format!("/v1/classes/{}/progress?course_id={course}", env.class),
            None,
        )
        .await;
    assert_eq!(class.status, StatusCode::OK, "{}", class.body);
    let me = class.body["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["student_id"] == student.to_string())
        .unwrap()
        .clone();
    assert_eq!(me["segments_completed"], 3);
    env.call_as(
        Some(&token),
        Method::GET,
        &format!("/v1/classes/{}/progress?course_id={course}", env.class),
        None,
    )
    .await
    .problem(403);
    env.call_as(
        Some(&teacher),
        Method::GET,
        &format!(
            "/v1/classes/{}/progress?course_id={}",
            env.class,
            Uuid::new_v4()
        ),
        None,
    )
    .await
    .problem(422);
    let (_, outsider) = env.member(env.new_org().await, "org_admin").await;
    env.call_as(
        Some(&outsider),
        Method::GET,
        &format!("/v1/students/{student}/progress"),
        None,
    )
    .await
    .problem(404);
}

/// Inputs racing on one session move progress exactly as often as they are
/// recorded: every "next" completes one segment once, every question counts once.
#[tokio::test]
async fn progress_counts_concurrent_inputs_exactly_once() {
    let env = TestEnv::new().await;
    let (student, token) = env.user(Role::Student).await;
    let course = env.course(12).await;
    let s = start(&env, &token, json!({ "course_id": course })).await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    let inputs = (0..16).map(|i| {
        let text = if i % 2 == 0 {
            "next".to_owned()
        } else {
            format!("why is fact {i} true?")
        };
        let (env, token, id) = (&env, token.clone(), id.clone());
        async move {
            let r = env
                .call_as(
                    Some(&token),
                    Method::POST,
                    &format!("/v1/teaching/sessions/{id}/input"),
                    Some(json!({ "text": text })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    });
    futures_util::future::join_all(inputs).await;
    let sql = env.sql().await;
    let session: Uuid = id.parse().unwrap();
    let (continues, questions): (i64, i64) = {
        let r = sql
            .query_one(
                "SELECT count(*) FILTER (WHERE intent = 'continue' AND action IN ('teach_segment', 'summarize')
                                         AND from_state = 'teaching'),
                        count(*) FILTER (WHERE intent = 'question')
                 FROM teaching_transitions WHERE session_id = $1",
                &[&session],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let p = progress(&env, &token, student).await;
    let c = &p["courses"][0];
    let completed = c["completed"].as_array().unwrap();
    let mut unique: Vec<&str> = completed.iter().map(|k| k.as_str().unwrap()).collect();
    unique.dedup();
    assert_eq!(
        unique.len(),
        completed.len(),
        "no segment completed twice: {completed:?}"
    );
    assert_eq!(completed.len() as i64, continues, "{p}");
    assert_eq!(c["questions_asked"].as_i64(), Some(questions));
    assert_eq!(questions, 8);
}

/// The sweeper ends a tutoring session whose Redis state expired and that
/// saw no step for the idle limit; the student's progress stays, and a late
/// input is told the session ended. A session still live in Redis is left alone.
#[tokio::test]
async fn the_sweeper_ends_idle_tutoring_sessions_and_keeps_progress() {
    let env = TestEnv::new().await;
    let (student, token) = env.user(Role::Student).await;
    let course = env.course(3).await;
    let idle = start(&env, &token, json!({ "course_id": course })).await;
    say(&env, &token, &idle, "next").await;
    let live = start(
        &env,
        &token,
        json!({ "course_id": course, "module_index": 1, "sub_topic_index": 0 }),
    )
    .await;
    let before = progress(&env, &token, student).await;
    let ids: Vec<Uuid> = [&idle, &live]
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().parse().unwrap())
        .collect();
    let sql = env.sql().await;
    sql.execute(
        "UPDATE teaching_sessions SET updated_at = now() - interval '2 hours' WHERE id = ANY($1)",
        &[&ids],
    )
    .await
    .unwrap();
    // The idle one's Redis state has expired; the live one's has not.
    let mut redis = env.redis().await;
    let key = format!("{}teaching:session:{{{}}}:context", env.prefix, ids[0]);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();

    let report = sweep::sweep(&env.app).await.unwrap();
    assert_eq!(report.tutoring_abandoned, 1);
    let row = sql
        .query_one(
            "SELECT state, ended_at IS NOT NULL, abandoned_at IS NOT NULL, context->>'state' FROM teaching_sessions WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2),
            row.get::<_, String>(3)
        ),
        ("ended".into(), true, true, "ended".into())
    );
    let last: (i32, String, String) = {
        let r = sql
            .query_one(
                "SELECT seq, to_state, action FROM teaching_transitions WHERE session_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&ids[0]],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(last, (2, "ended".into(), "end_session".into()));
    let state: String = sql
        .query_one(
            "SELECT state FROM teaching_sessions WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "teaching", "a session live in Redis is left alone");
    assert_eq!(progress(&env, &token, student).await, before);
    // A late input on what Redis still had: the session has ended.
    let r = env
        .call_as(
            Some(&token),
            Method::POST,
            &format!("/v1/teaching/sessions/{}/input", ids[0]),
            Some(json!({ "text": "next" })),
        )
        .await;
    assert_eq!(r.problem(409), r.body["detail"].as_str().unwrap());
    assert_eq!(sweep::sweep(&env.app).await.unwrap().tutoring_abandoned, 0);
}

/// `lectern-admin import-course`: the example YAML course goes through a
/// running server; a re-import is unchanged; a bad file is refused before
/// anything is sent, naming the field; a student's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_importer_sends_a_yaml_file_through_the_api() {
    let env = TestEnv::new().await;
    let (addr, server) = super::load::serve(&env).await;
    let api = format!("http://{addr}");
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, student) = env.user(Role::Student).await;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/courses/exponents.yaml");
    let org = env.org;
    let run = |token: String, path: std::path::PathBuf| {
        let api = api.clone();
        tokio::task::spawn_blocking(move || lectern_admin::import_course(&api, &token, org, &path))
    };
    let line = run(teacher.clone(), example.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("created course \"exponents\""), "{line}");
    assert!(line.ends_with("version 1, 8 segments"), "{line}");
    let again = run(teacher.clone(), example.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(again.ends_with("unchanged, still version 1"), "{again}");
    let refused = run(student, example.clone()).await.unwrap().unwrap_err();
    assert!(refused.contains("answered 403"), "{refused}");

    let dir = std::env::temp_dir().join(format!("lectern-import-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(&example).unwrap().replacen(
        "key: power-rule",
        "key: product-rule",
        1,
    );
    std::fs::write(&bad, text).unwrap();
    let before = versions(&env).await;
    let error = run(teacher, bad).await.unwrap().unwrap_err();
    assert!(
        error.contains("modules[0].sub_topics[1].segments[2].key:"),
        "{error}"
    );
    assert_eq!(versions(&env).await, before);
    std::fs::remove_dir_all(&dir).unwrap();
    server.abort();

    // The example course teaches: its first segment's text in the first action.
    let course: Uuid = env
        .sql()
        .await
        .query_one("SELECT id FROM courses WHERE key = 'exponents'", &[])
        .await
        .unwrap()
        .get(0);
    let (_, token) = env.user(Role::Student).await;
    let s = start(&env, &token, json!({ "course_id": course })).await;
    assert_eq!(s["action"]["content"]["key"], "exponent-basics");
    assert!(
        s["action"]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("is the *base*")
    );
    assert_eq!(
        s["action"]["content"]["check_questions"][1]["text"],
        "What is 3 squared?"
    );
}
