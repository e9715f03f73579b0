//! Assessments: staff design a test (exam mode, blueprint, enemies, levels,
//! scale, time limit), assign it to a class with a window and attempts;
//! students take attempts and learn nothing about their answers until staff
//! release the results; deadlines hold on the server; the gradebook.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use lectern::services::auth::Role;
use lectern_tests::{OwnRedis, Resp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn from_now(secs: i64) -> String {
    rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// An exam with four levels, a scale, a blueprint and an enemy pair.
fn exam_design(env: &TestEnv, pool: Uuid) -> Value {
    let tag = lectern_tests::items_json(2, &env.prefix);
    json!({
        "organization_id": env.org,
        "name": "Unit 3 exam",
        "pool_id": pool,
        "mode": "exam",
        "config": { "max_items": 10, "min_items": 10, "se_target": null },
        "blueprint": { "fractions": { "min": 2, "max": 3.0 }, "algebra": { "min": 1, "max": 4 } },
        "enemies": [[tag[0]["id"], tag[1]["id"]]],
        "time_limit_s": 1800,
        "levels": [
            { "label": "Beginning" },
            { "label": "Developing", "from": -1.0 },
            { "label": "Proficient", "from": 0.0 },
            { "label": "Advanced", "from": 1.0 }
        ],
        "scale": { "slope": 50, "intercept": 500, "decimals": 0, "min": 200, "max": 800 }
    })
}

struct Class {
    env: TestEnv,
    pool: Uuid,
    teacher: String,
    student: (Uuid, String),
}

async fn class() -> Class {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(60).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let student = env.user(Role::Student).await;
    Class {
        env,
        pool,
        teacher,
        student,
    }
}

impl Class {
    async fn as_teacher(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.env
            .call_as(Some(&self.teacher), method, path, body)
            .await
    }

    async fn as_student(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.env
            .call_as(Some(&self.student.1), method, path, body)
            .await
    }

    async fn assessment(&self, design: Value) -> Uuid {
        let r = self
            .as_teacher(Method::POST, "/v1/assessments", Some(design))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().parse().unwrap()
    }

    async fn assign(&self, assessment: Uuid, extra: Value) -> Uuid {
        let mut body = json!({ "assessment_id": assessment, "class_id": self.env.class,
                               "closes_at": from_now(86_400) });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self
            .as_teacher(Method::POST, "/v1/assignments", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().parse().unwrap()
    }

    async fn attempt(&self, assignment: Uuid) -> Resp {
        self.attempt_as(&self.student.1, assignment).await
    }

    async fn attempt_as(&self, token: &str, assignment: Uuid) -> Resp {
        self.env
            .call_as(
                Some(token),
                Method::POST,
                "/v1/tests",
                Some(json!({ "assignment_id": assignment })),
            )
            .await
    }

    /// A gradebook page as CSV.
    async fn csv(&self, path: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.teacher))
            .header(header::ACCEPT, "text/csv")
            .body(Body::empty())
            .unwrap();
        let r = self.env.send(request).await;
        let content_type = r.headers[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        (
            r.status,
            content_type,
            r.body.as_str().unwrap_or("").to_owned(),
        )
    }
}

/// The README walkthrough: a teacher builds an exam, assigns it; the student
/// takes it and sees no correctness, θ or results; the teacher reads the
/// gradebook and releases; then the student sees their results.
#[tokio::test]
async fn an_exam_tells_the_student_nothing_until_released() {
    let c = class().await;
    let design = exam_design(&c.env, c.pool);
    let assessment = c.assessment(design).await;
    let shown = c
        .as_teacher(Method::GET, &format!("/v1/assessments/{assessment}"), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["mode"], "exam");
    assert_eq!(shown.body["version"], 1);
    assert_eq!(shown.body["config"]["max_items"], 10);
    assert_eq!(shown.body["levels"].as_array().unwrap().len(), 4);
    let assignment = c.assign(assessment, json!({})).await;

    let mine = c.as_student(Method::GET, "/v1/assignments", None).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["total"], 1);
    assert_eq!(mine.body["assignments"][0]["id"], assignment.to_string());
    assert_eq!(mine.body["assignments"][0]["attempts_used"], 0);
    assert_eq!(mine.body["assignments"][0]["mode"], "exam");

    let started = c.attempt(assignment).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert!(
        started.body.get("proficiency").is_none(),
        "{}",
        started.body
    );
    assert_eq!(started.body["attempt"], 1);
    assert_eq!(started.body["assignment_id"], assignment.to_string());
    assert!(started.body["deadline"].is_string());
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    let mut n = 0;
    while !question.is_null() {
        let r = c
            .env
            .answer_as(&c.student.1, &test, &question, n % 2 == 0)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for hidden in ["correct", "proficiency", "stop_reason"] {
            assert!(r.body.get(hidden).is_none(), "{hidden} in {}", r.body);
        }
        question = r.body["next_question"].clone();
        n += 1;
    }
    assert_eq!(n, 10);
    let report = c
        .as_student(Method::GET, &format!("/v1/tests/{test}"), None)
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    for r in report.body["responses"].as_array().unwrap() {
        assert!(
            r.get("correct").is_none() && r.get("theta").is_none(),
            "{r}"
        );
        assert!(r["served_at"].is_string(), "{r}");
    }
    assert!(report.body.get("proficiency").is_none());
    assert!(report.body.get("correct_responses").is_none());
    let ended = c
        .as_student(Method::POST, &format!("/v1/tests/{test}/end"), None)
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["status"], "ended");
    assert_eq!(ended.body["released"], false);
    for hidden in [
        "proficiency",
        "correct_responses",
        "accuracy",
        "level",
        "scale_score",
    ] {
        assert!(
            ended.body.get(hidden).is_none(),
            "{hidden} in {}",
            ended.body
        );
    }
    let history = c
        .as_student(
            Method::GET,
            &format!("/v1/students/{}/tests", c.student.0),
            None,
        )
        .await;
    assert_eq!(
        history.body["tests"][0]["status"], "ended",
        "{}",
        history.body
    );
    assert!(
        history.body["tests"][0].get("theta").is_none(),
        "{}",
        history.body
    );
    // The exam has not reached the student's long-term proficiency.
    let proficiencies = format!("student_proficiencies WHERE student_id = '{}'", c.student.0);
    assert_eq!(c.env.count(&proficiencies).await, 0);

    // Staff see everything.
    let full = c
        .as_teacher(Method::GET, &format!("/v1/tests/{test}"), None)
        .await;
    assert!(
        full.body["proficiency"]["theta"].is_number(),
        "{}",
        full.body
    );
    assert!(full.body["responses"][0]["correct"].is_boolean());
    assert!(full.body["level"].is_string());
    let book = c
        .as_teacher(
            Method::GET,
            &format!("/v1/assignments/{assignment}/gradebook"),
            None,
        )
        .await;
    assert_eq!(book.status, StatusCode::OK, "{}", book.body);
    assert_eq!(book.body["total"], 1);
    let row = &book.body["grades"][0];
    assert_eq!(row["student_id"], c.student.0.to_string());
    assert_eq!(row["status"], "ended");
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["items_answered"], 10);
    let theta = row["theta"].as_f64().unwrap();
    assert_eq!(row["theta"], full.body["proficiency"]["theta"]);
    let expected_level = match theta {
        t if t >= 1.0 => "Advanced",
        t if t >= 0.0 => "Proficient",
        t if t >= -1.0 => "Developing",
        _ => "Beginning",
    };
    assert_eq!(row["level"], expected_level);
    let scale = (500.0 + 50.0 * theta).round().clamp(200.0, 800.0);
    assert_eq!(row["scale_score"]["score"].as_f64().unwrap(), scale);
    assert!(row["time_used_s"].as_f64().unwrap() >= 0.0);
    let (status, content_type, csv) = c
        .csv(&format!("/v1/assignments/{assignment}/gradebook"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("assignment_id,student_id,email"));
    assert!(lines[1].contains(&c.student.0.to_string()) && lines[1].contains(expected_level));
    let past_the_end = c
        .as_teacher(
            Method::GET,
            &format!("/v1/assignments/{assignment}/gradebook?offset=5"),
            None,
        )
        .await;
    assert_eq!(past_the_end.body["grades"], json!([]));
    assert_eq!(past_the_end.body["total"], 1);
    let by_class = c
        .as_teacher(
            Method::GET,
            &format!("/v1/classes/{}/gradebook", c.env.class),
            None,
        )
        .await;
    assert_eq!(by_class.body["grades"][0]["test_id"], test);

    let released = c
        .as_teacher(
            Method::POST,
            &format!("/v1/assignments/{assignment}/release"),
            None,
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    assert!(c.env.count(&proficiencies).await >= 3, "overall + concepts");
    let again = c
        .as_teacher(
            Method::POST,
            &format!("/v1/assignments/{assignment}/release"),
            None,
        )
        .await;
    assert_eq!(again.body["released_at"], released.body["released_at"]);
    let n_after: i32 = c
        .env
        .sql()
        .await
        .query_one(
            "SELECT n FROM student_proficiencies WHERE student_id = $1 AND concept = ''",
            &[&c.student.0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n_after, 10, "a second release applies nothing twice");
    let history = c
        .as_student(
            Method::GET,
            &format!("/v1/students/{}/tests", c.student.0),
            None,
        )
        .await;
    assert_eq!(
        history.body["tests"][0]["theta"],
        full.body["proficiency"]["theta"]
    );
    let report = c
        .as_student(Method::GET, &format!("/v1/tests/{test}"), None)
        .await;
    assert_eq!(report.body["proficiency"], full.body["proficiency"]);
    assert!(report.body["responses"][0]["correct"].is_boolean());
    assert_eq!(report.body["level"], expected_level);
}

/// Each test of an exam honours its blueprint and enemy sets.
#[tokio::test]
async fn selection_honours_the_blueprint_and_enemies() {
    let c = class().await;
    let design = exam_design(&c.env, c.pool);
    let enemies: Vec<String> = design["enemies"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let assessment = c.assessment(design).await;
    let assignment = c.assign(assessment, json!({ "max_attempts": 5 })).await;
    for attempt in 0..5 {
        let started = c.attempt(assignment).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let test = started.body["test_id"].as_str().unwrap().to_owned();
        let mut question = started.body["question"].clone();
        let mut concepts: Vec<String> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        let mut i = 0;
        while !question.is_null() {
            ids.push(question["id"].as_str().unwrap().to_owned());
            concepts.extend(
                question["concepts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned()),
            );
            let r = c
                .env
                .answer_as(&c.student.1, &test, &question, (i + attempt) % 3 != 0)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            question = r.body["next_question"].clone();
            i += 1;
        }
        let count = |name: &str| concepts.iter().filter(|c| *c == name).count();
        assert!((2..=3).contains(&count("fractions")), "{concepts:?}");
        assert!((1..=4).contains(&count("algebra")), "{concepts:?}");
        assert!(
            enemies.iter().filter(|e| ids.contains(e)).count() <= 1,
            "{ids:?}"
        );
        let ended = c
            .as_student(Method::POST, &format!("/v1/tests/{test}/end"), None)
            .await;
        assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    }
    let sixth = c.attempt(assignment).await;
    sixth.problem(409);
    assert_eq!(sixth.slug(), "no-attempts-left");
}

/// 20 concurrent starts of a one-attempt assignment: one test, 19 clear 409s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_give_exactly_one_attempt() {
    let c = Arc::new(class().await);
    let assessment = c.assessment(exam_design(&c.env, c.pool)).await;
    let assignment = c.assign(assessment, json!({ "max_attempts": 1 })).await;
    let before = c.env.count("test_sessions").await;
    let starts: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.attempt(assignment).await })
        })
        .collect();
    let mut created = 0;
    let mut slugs = Vec::new();
    for start in starts {
        let r = start.await.unwrap();
        if r.status == StatusCode::CREATED {
            created += 1;
        } else {
            r.problem(409);
            slugs.push(r.slug().to_owned());
        }
    }
    assert_eq!(created, 1, "{slugs:?}");
    assert_eq!(slugs.len(), 19);
    assert!(
        slugs.iter().all(|s| matches!(
            s.as_str(),
            "attempt-taken" | "attempt-in-progress" | "no-attempts-left"
        )),
        "{slugs:?}"
    );
    assert_eq!(c.env.count("test_sessions").await, before + 1);
}

/// Outside its window an assignment starts nothing: 409 naming the window.
#[tokio::test]
async fn starting_outside_the_window_is_409_with_the_window() {
    let c = class().await;
    let assessment = c.assessment(exam_design(&c.env, c.pool)).await;
    let later = c
        .assign(
            assessment,
            json!({ "opens_at": from_now(3600), "closes_at": from_now(7200) }),
        )
        .await;
    let before = c.env.count("test_sessions").await;
    let r = c.attempt(later).await;
    let detail = r.problem(409);
    assert_eq!(r.slug(), "outside-window");
    assert!(detail.contains("is open from"), "{detail}");
    // Closed: move the window into the past by SQL (the API refuses such a window).
    c.env
        .sql()
        .await
        .execute(
            "UPDATE assignments SET opens_at = now() - interval '2 hours', closes_at = now() - interval '1 hour' WHERE id = $1",
            &[&later],
        )
        .await
        .unwrap();
    let r = c.attempt(later).await;
    r.problem(409);
    assert_eq!(r.slug(), "outside-window");
    assert_eq!(c.env.count("test_sessions").await, before);
}

/// Who may start an attempt: only the assignment's students.
#[tokio::test]
async fn only_assigned_students_start_attempts() {
    let c = class().await;
    let assessment = c.assessment(exam_design(&c.env, c.pool)).await;
    let chosen = c.env.user(Role::Student).await;
    let just_one = c
        .assign(assessment, json!({ "student_ids": [chosen.0] }))
        .await;
    let r = c.attempt(just_one).await;
    r.problem(403);
    assert_eq!(r.slug(), "not-assigned");
    let outsider_org = c.env.new_org().await;
    let (_, outsider) = c.env.member(outsider_org, "student").await;
    let r = c.attempt_as(&outsider, just_one).await;
    r.problem(404);
    let r = c.attempt_as(&chosen.1, just_one).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A running attempt is taken up again, not doubled.
    let again = c.attempt_as(&chosen.1, just_one).await;
    let detail = again.problem(409);
    assert_eq!(again.slug(), "attempt-in-progress");
    assert!(
        detail.contains(r.body["test_id"].as_str().unwrap()),
        "{detail}"
    );
}

/// A student cannot choose any part of a test's design.
#[tokio::test]
async fn a_student_cannot_send_a_config() {
    let c = class().await;
    let before = c.env.count("test_sessions").await;
    let r = c
        .as_student(
            Method::POST,
            "/v1/tests",
            Some(json!({ "pool_id": c.pool, "config": { "max_items": 1, "min_items": 1 } })),
        )
        .await;
    r.problem(403);
    assert_eq!(r.slug(), "design-is-staffs");
    let r = c
        .as_student(
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": Uuid::new_v4(), "config": { "max_items": 1 } })),
        )
        .await;
    r.problem(422);
    assert_eq!(c.env.count("test_sessions").await, before);
    // Staff still may.
    let r = c
        .as_teacher(
            Method::POST,
            "/v1/tests",
            Some(json!({ "pool_id": c.pool, "config": { "max_items": 3 } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Every bad design or assignment is a 422 naming the field, and writes nothing.
#[tokio::test]
async fn bad_designs_and_assignments_are_422_and_write_nothing() {
    let c = class().await;
    let good = exam_design(&c.env, c.pool);
    let with = |field: &str, value: Value| {
        let mut d = good.clone();
        d[field] = value;
        d
    };
    let cases = [
        (
            with(
                "blueprint",
                json!({ "fractions": { "min": 30, "max": 30 } }),
            ),
            "blueprint",
        ),
        (
            with("blueprint", json!({ "astronomy": { "min": 1, "max": 2 } })),
            "blueprint.astronomy",
        ),
        (
            with("blueprint", json!({ "algebra": { "min": 3, "max": 2 } })),
            "blueprint.algebra",
        ),
        (
            with(
                "levels",
                json!([{ "label": "Low" }, { "label": "High", "from": 1.0 }, { "label": "Mid", "from": 0.0 }]),
            ),
            "levels",
        ),
        (with("time_limit_s", json!(0)), "time_limit_s"),
        (with("time_limit_s", json!(-5)), "time_limit_s"),
        (
            with("enemies", json!([["no-such-item", "nor-this"]])),
            "enemies[0]",
        ),
        (
            with("config", json!({ "max_items": 0 })),
            "config.max_items",
        ),
        (
            with("config", json!({ "se_target": 7 })),
            "config.se_target",
        ),
        (with("name", json!("   ")), "name"),
    ];
    let before = (
        c.env.count("assessments").await,
        c.env.count("assessment_versions").await,
    );
    for (body, field) in cases {
        let r = c
            .as_teacher(Method::POST, "/v1/assessments", Some(body.clone()))
            .await;
        let detail = r.problem(422);
        assert!(detail.contains(field), "{field}: {detail}");
    }
    assert_eq!(
        (
            c.env.count("assessments").await,
            c.env.count("assessment_versions").await
        ),
        before
    );
    let assessment = c.assessment(good.clone()).await;
    // A new version with a bad design writes no version either.
    let mut bad = with("time_limit_s", json!(0));
    bad.as_object_mut().unwrap().remove("organization_id");
    let r = c
        .as_teacher(
            Method::PUT,
            &format!("/v1/assessments/{assessment}"),
            Some(bad),
        )
        .await;
    r.problem(422);
    assert_eq!(c.env.count("assessment_versions").await, before.1 + 1);

    let assignments = c.env.count("assignments").await;
    let bad_assignments = [
        (
            json!({ "assessment_id": assessment, "class_id": c.env.class,
                    "opens_at": from_now(7200), "closes_at": from_now(3600) }),
            "closes_at",
        ),
        (
            json!({ "assessment_id": assessment, "class_id": c.env.class,
                    "closes_at": from_now(3600), "max_attempts": 0 }),
            "max_attempts",
        ),
        (
            json!({ "assessment_id": Uuid::new_v4(), "class_id": c.env.class,
                    "closes_at": from_now(3600) }),
            "assessment_id",
        ),
        (
            json!({ "assessment_id": assessment, "class_id": c.env.class,
                    "closes_at": from_now(3600), "student_ids": [Uuid::new_v4()] }),
            "student_ids",
        ),
    ];
    for (body, field) in bad_assignments {
        let r = c
            .as_teacher(Method::POST, "/v1/assignments", Some(body))
            .await;
        let detail = r.problem(422);
        assert!(detail.contains(field), "{field}: {detail}");
    }
    assert_eq!(c.env.count("assignments").await, assignments);
}

/// Versions are immutable: an edit is a new version; an assignment keeps its own.
#[tokio::test]
async fn an_edit_is_a_new_version_and_assignments_keep_theirs() {
    let c = class().await;
    let design = exam_design(&c.env, c.pool);
    let assessment = c.assessment(design.clone()).await;
    let assignment = c.assign(assessment, json!({})).await;
    let mut edited = design.clone();
    edited.as_object_mut().unwrap().remove("organization_id");
    edited["name"] = json!("Unit 3 exam (short)");
    edited["config"] = json!({ "max_items": 6, "min_items": 6, "se_target": null });
    let r = c
        .as_teacher(
            Method::PUT,
            &format!("/v1/assessments/{assessment}"),
            Some(edited),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    let v1 = c
        .as_teacher(
            Method::GET,
            &format!("/v1/assessments/{assessment}?version=1"),
            None,
        )
        .await;
    assert_eq!(v1.body["config"]["max_items"], 10);
    assert_eq!(v1.body["latest_version"], 2);
    let list = c
        .as_teacher(
            Method::GET,
            &format!("/v1/organizations/{}/assessments", c.env.org),
            None,
        )
        .await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["assessments"][0]["version"], 2);
    let started = c.attempt(assignment).await;
    assert_eq!(started.body["config"]["max_items"], 10, "{}", started.body);
    let shown = c
        .as_teacher(Method::GET, &format!("/v1/assignments/{assignment}"), None)
        .await;
    assert_eq!(shown.body["assessment_version"], 1);
    let of_class = c
        .as_teacher(
            Method::GET,
            &format!("/v1/classes/{}/assignments", c.env.class),
            None,
        )
        .await;
    assert_eq!(of_class.body["total"], 1);
}

/// The deadline is the server's: an answer after it records nothing and ends
/// the test as timed out; extra time granted moves the deadline of the next
/// attempt; the sweeper times out tests nobody touches.
#[tokio::test]
async fn the_deadline_holds_and_extra_time_counts() {
    let c = class().await;
    let mut design = exam_design(&c.env, c.pool);
    design["time_limit_s"] = json!(60);
    let assessment = c.assessment(design).await;
    let assignment = c.assign(assessment, json!({ "max_attempts": 3 })).await;
    let student = c.student.0;
    let grant = c
        .as_teacher(
            Method::PUT,
            &format!("/v1/assignments/{assignment}/accommodations/{student}"),
            Some(json!({ "extra_time_s": 600 })),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let started = c.attempt(assignment).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let id: Uuid = test.parse().unwrap();
    let sql = c.env.sql().await;
    let span: f64 = sql
        .query_one(
            "SELECT extract(epoch FROM deadline - started_at)::float8 FROM test_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!((span - 660.0).abs() < 2.0, "deadline {span} s after start");
    let granted_by: Option<Uuid> = sql
        .query_one(
            "SELECT granted_by FROM accommodations WHERE assignment_id = $1",
            &[&assignment],
        )
        .await
        .unwrap()
        .get(0);
    assert!(granted_by.is_some());
    let question = started.body["question"].clone();
    let r = c.env.answer_as(&c.student.1, &test, &question, true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The deadline passes. Redis still holds the one fixed at start: PostgreSQL's refuses.
    sql.execute(
        "UPDATE test_sessions SET deadline = now() - interval '1 second' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let late = c
        .env
        .answer_as(&c.student.1, &test, &r.body["next_question"], true)
        .await;
    late.problem(409);
    assert_eq!(late.slug(), "deadline-passed");
    let row = sql
        .query_one(
            "SELECT status, items_answered, (SELECT count(*) FROM test_responses WHERE session_id = $1) AS n
             FROM test_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>("status"), "timed_out");
    assert_eq!(row.get::<_, i32>("items_answered"), 1);
    assert_eq!(row.get::<_, i64>("n"), 1);
    let report = c
        .as_student(Method::GET, &format!("/v1/tests/{test}"), None)
        .await;
    assert_eq!(report.body["status"], "timed_out");

    // The next attempt: left alone past its deadline, the sweeper closes it.
    let second = c.attempt(assignment).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let id2: Uuid = second.body["test_id"].as_str().unwrap().parse().unwrap();
    sql.execute(
        "UPDATE test_sessions SET deadline = now() - interval '1 second' WHERE id = $1",
        &[&id2],
    )
    .await
    .unwrap();
    let swept = lectern::services::sweep::sweep(&c.env.app).await.unwrap();
    assert_eq!(swept.timed_out, 1);
    let status: String = sql
        .query_one("SELECT status FROM test_sessions WHERE id = $1", &[&id2])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "timed_out");
    let book = c
        .as_teacher(
            Method::GET,
            &format!("/v1/assignments/{assignment}/gradebook"),
            None,
        )
        .await;
    assert_eq!(book.body["grades"][0]["status"], "timed_out");
    assert_eq!(book.body["grades"][0]["attempts"], 2);
}

/// FLUSHALL in the middle of an exam with a blueprint, enemies and a deadline:
/// every trajectory is the one the engine computes from the seed and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushall_mid_exam_changes_no_trajectory() {
    let redis = OwnRedis::start();
    let env = Arc::new(TestEnv::with_urls(&redis.url(), None).await);
    let pool = env.demo_pool(80).await;
    let made = env.post("/v1/assessments", exam_design(&env, pool)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let given = env
        .post(
            "/v1/assignments",
            json!({ "assessment_id": made.body["id"], "class_id": env.class, "closes_at": from_now(3600) }),
        )
        .await;
    assert_eq!(given.status, StatusCode::CREATED, "{}", given.body);
    let assignment = given.body["id"].as_str().unwrap().to_owned();
    let mut students = Vec::new();
    for _ in 0..6 {
        students.push(env.user(Role::Student).await);
    }
    let mut tests = Vec::new();
    let mut questions = Vec::new();
    for (_, token) in &students {
        let r = env
            .call_as(
                Some(token),
                Method::POST,
                "/v1/tests",
                Some(json!({ "assignment_id": assignment })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        tests.push(r.body["test_id"].as_str().unwrap().to_owned());
        questions.push(r.body["question"].clone());
    }
    for i in 0..10 {
        if i == 5 {
            let () = redis::cmd("FLUSHALL")
                .query_async(&mut redis.conn().await)
                .await
                .unwrap();
            // The students keep their tokens: the sessions come back from
            // PostgreSQL on their next use.
        }
        for (n, (test, question)) in tests.iter().zip(questions.iter_mut()).enumerate() {
            let r = env
                .answer_as(&students[n].1, test, question, (i + n) % 3 != 0)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            *question = r.body["next_question"].clone();
        }
    }
    for test in &tests {
        let recorded = super::outages::recorded(&env, test).await;
        assert_eq!(recorded.len(), 10);
        assert_eq!(recorded, super::outages::replay(&env, test).await, "{test}");
    }
}

/// A deadline the live state in Redis carries: once past, the question is no
/// longer served and the test ends as timed out, without PostgreSQL's help.
#[tokio::test]
async fn past_its_deadline_a_test_serves_no_question() {
    let c = class().await;
    let mut design = exam_design(&c.env, c.pool);
    design["time_limit_s"] = json!(1);
    let assessment = c.assessment(design).await;
    let assignment = c.assign(assessment, json!({})).await;
    let started = c.attempt(assignment).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let next = c
        .as_student(Method::GET, &format!("/v1/tests/{test}/next"), None)
        .await;
    next.problem(409);
    assert_eq!(next.slug(), "deadline-passed");
    let late = c
        .env
        .answer_as(&c.student.1, &test, &started.body["question"], true)
        .await;
    late.problem(409);
    assert_eq!(c.env.count("test_responses").await, 0);
    let report = c
        .as_teacher(Method::GET, &format!("/v1/tests/{test}"), None)
        .await;
    assert_eq!(report.body["status"], "timed_out");
    assert_eq!(report.body["items_answered"], 0);
}

/// PostgreSQL down at the start of an attempt: 503, no attempt used; once it
/// is back the same start gets attempt 1.
#[tokio::test]
async fn an_attempt_started_while_postgresql_is_down_is_not_counted() {
    let (_healthy, proxy, env) = TestEnv::behind_database_proxy().await;
    let pool = env.demo_pool(40).await;
    let made = env.post("/v1/assessments", exam_design(&env, pool)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let given = env
        .post(
            "/v1/assignments",
            json!({ "assessment_id": made.body["id"], "class_id": env.class,
                    "closes_at": from_now(3600), "max_attempts": 1 }),
        )
        .await;
    assert_eq!(given.status, StatusCode::CREATED, "{}", given.body);
    let (_, student) = env.user(Role::Student).await;
    let body = json!({ "assignment_id": given.body["id"] });
    proxy.cut();
    let down = env
        .call_as(
            Some(&student),
            Method::POST,
            "/v1/tests",
            Some(body.clone()),
        )
        .await;
    assert!(down.problem(503).contains("PostgreSQL"), "{}", down.body);
    proxy.restore();
    let up = env
        .call_as(Some(&student), Method::POST, "/v1/tests", Some(body))
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    assert_eq!(up.body["attempt"], 1);
    assert_eq!(env.count("test_sessions").await, 1);
}
