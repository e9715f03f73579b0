//! The authorization matrix: every route of `ROUTES` × {anonymous, another
//! student, the owner, a teacher, an admin} gets the status its access rule
//! promises, and a refused request changes nothing. The expectations come from
//! the route table; a route without a request below fails the test, so a new
//! route cannot be left out.

use axum::http::{Method, StatusCode};
use lectern::api::{Access, ROUTES, Route};
use lectern::services::auth::Role;
use lectern_tests::oidc::{FakeOidc, FakeUser};
use lectern_tests::{TestEnv, items_json, new_email};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    AnotherStudent,
    Owner,
    Teacher,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::AnotherStudent,
    Who::Owner,
    Who::Teacher,
    Who::Admin,
];

const OWNER_PASSWORD: &str = "the owner's password";

struct World {
    env: TestEnv,
    idp: FakeOidc,
    pool: Uuid,
    owner: Uuid,
    owner_email: String,
    other: Uuid,
    teacher: Uuid,
}

impl World {
    async fn new() -> Self {
        let idp = FakeOidc::start().await;
        let env = TestEnv::with_vars(&[idp.setting("corp")]).await;
        let pool = env.demo_pool(40).await;
        let owner_email = new_email();
        let r = env
            .call_as(
                None,
                Method::POST,
                "/v1/users",
                Some(json!({ "email": owner_email, "password": OWNER_PASSWORD, "display_name": "Owner" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let owner = r.body["id"].as_str().unwrap().parse().unwrap();
        let (other, _) = env.user(Role::Student).await;
        let (teacher, _) = env.user(Role::Teacher).await;
        Self {
            env,
            idp,
            pool,
            owner,
            owner_email,
            other,
            teacher,
        }
    }

    /// A fresh session of `who` (so logging out in one case spoils no other).
    async fn token(&self, who: Who) -> Option<String> {
        let (id, role) = match who {
            Who::Anonymous => return None,
            Who::AnotherStudent => (self.other, Role::Student),
            Who::Owner => (self.owner, Role::Student),
            Who::Teacher => (self.teacher, Role::Teacher),
            Who::Admin => (self.env.admin, Role::Admin),
        };
        Some(self.env.sign_in(id, role).await)
    }

    /// A new test of the owner's: its id and the question it serves.
    async fn owned_test(&self) -> (String, Value) {
        let token = self.token(Who::Owner).await;
        let r = self
            .env
            .call_as(
                token.as_deref(),
                Method::POST,
                "/v1/tests",
                Some(json!({ "pool_id": self.pool })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["test_id"].as_str().unwrap().to_owned(),
            r.body["question"].clone(),
        )
    }

    /// A new tutoring session of the owner's: its id.
    async fn owned_session(&self) -> String {
        let token = self.token(Who::Owner).await;
        let body = json!({ "course_id": "c", "module_index": 0, "sub_topic_index": 0, "total_segments": 3 });
        let r = self
            .env
            .call_as(
                token.as_deref(),
                Method::POST,
                "/v1/teaching/sessions",
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["session_id"].as_str().unwrap().to_owned()
    }

    /// What changes when a request does something.
    async fn footprint(&self) -> Vec<i64> {
        let sql = self.env.sql().await;
        let mut counts = Vec::new();
        for query in [
            "SELECT count(*) FROM users",
            "SELECT count(*) FROM item_pools",
            "SELECT count(*) FROM questions",
            "SELECT count(*) FROM test_sessions",
            "SELECT count(*) FROM test_sessions WHERE status = 'ended'",
            "SELECT count(*) FROM test_responses",
            "SELECT coalesce(sum(version), 0)::bigint FROM item_pools",
            "SELECT count(*) FROM test_sessions WHERE keep_until IS NOT NULL",
            "SELECT count(*) FROM teaching_sessions",
            "SELECT count(*) FROM teaching_transitions",
        ] {
            counts.push(sql.query_one(query, &[]).await.unwrap().get(0));
        }
        // Straight from the library: an admin case may have logged the harness's admin out.
        let stats = lectern::services::auth::sessions::stats(&self.env.app)
            .await
            .unwrap();
        counts.push(stats.total as i64);
        counts
    }
}

/// The request `route` gets in the matrix, and the status it answers when allowed.
async fn request(w: &World, route: &Route) -> (String, Option<Value>, u16) {
    let test_path = |test: &str| route.path.replace("{id}", test);
    match (route.method, route.path) {
        ("POST", "/v1/tests") => (route.path.into(), Some(json!({ "pool_id": w.pool })), 201),
        ("POST", "/v1/tests/{id}/responses") => {
            let (test, question) = w.owned_test().await;
            let key = w.env.key_of(question["id"].as_str().unwrap()).await;
            let body = json!({ "question_id": question["id"], "response": key });
            (test_path(&test), Some(body), 200)
        }
        ("GET", "/v1/tests/{id}/next") | ("GET", "/v1/tests/{id}") => {
            (test_path(&w.owned_test().await.0), None, 200)
        }
        ("POST", "/v1/tests/{id}/end") | ("POST", "/v1/admin/tests/{id}/sync") => {
            (test_path(&w.owned_test().await.0), Some(json!({})), 200)
        }
        ("GET", "/v1/admin/tests/{id}") => (test_path(&w.owned_test().await.0), None, 200),
        ("POST", "/v1/admin/tests/{id}/extend") => (
            test_path(&w.owned_test().await.0),
            Some(json!({ "seconds": 3600 })),
            200,
        ),
        ("GET", "/v1/students/{id}/tests")
        | ("GET", "/v1/students/{id}/proficiency")
        | ("GET", "/v1/users/{id}")
        | ("POST", "/v1/admin/cache/invalidate/user/{id}") => {
            (test_path(&w.owner.to_string()), None, 200)
        }
        ("POST", "/v1/admin/cache/invalidate/pool/{id}") => {
            (test_path(&w.pool.to_string()), None, 200)
        }
        ("POST", "/v1/pools") => (
            route.path.into(),
            Some(json!({ "name": "matrix", "items": items_json(3, &Uuid::new_v4().to_string()) })),
            201,
        ),
        ("GET", "/v1/pools") | ("GET", "/v1/health") => (route.path.into(), None, 200),
        ("POST", "/v1/teaching/sessions") => (
            route.path.into(),
            Some(
                json!({ "course_id": "c", "module_index": 0, "sub_topic_index": 0, "total_segments": 3 }),
            ),
            201,
        ),
        ("GET", "/v1/teaching/sessions/{id}") => (test_path(&w.owned_session().await), None, 200),
        ("POST", "/v1/teaching/sessions/{id}/input") => (
            test_path(&w.owned_session().await),
            Some(json!({ "text": "next" })),
            200,
        ),
        ("POST", "/v1/teaching/sessions/{id}/end") => {
            (test_path(&w.owned_session().await), None, 200)
        }
        ("GET", "/v1/admin/teaching/stats") => (route.path.into(), None, 200),
        ("GET", "/v1/pools/{id}") => (test_path(&w.pool.to_string()), None, 200),
        ("POST", "/v1/pools/{id}/items") => (
            test_path(&w.pool.to_string()),
            Some(json!({ "items": items_json(1, &Uuid::new_v4().to_string()) })),
            200,
        ),
        ("POST", "/v1/users") => (
            route.path.into(),
            Some(
                json!({ "email": new_email(), "password": "a long enough password", "display_name": "New" }),
            ),
            201,
        ),
        ("POST", "/v1/sessions") => (
            route.path.into(),
            Some(json!({ "email": w.owner_email, "password": OWNER_PASSWORD })),
            201,
        ),
        ("GET", "/v1/sessions")
        | ("GET", "/v1/sessions/current")
        | ("DELETE", "/v1/sessions")
        | ("GET", "/v1/admin/tests/active")
        | ("GET", "/v1/admin/redis/stats")
        | ("GET", "/v1/admin/sessions/stats")
        | ("GET", "/v1/admin/cache/stats")
        | ("POST", "/v1/admin/cache/cleanup") => (route.path.into(), None, 200),
        ("POST", "/v1/sessions/current/extend") => (route.path.into(), None, 200),
        ("DELETE", "/v1/sessions/current") => (route.path.into(), None, 204),
        ("GET", "/v1/oauth/{provider}/authorize") => {
            (route.path.replace("{provider}", "corp"), None, 302)
        }
        ("GET", "/v1/oauth/{provider}/callback") => {
            let query = w
                .idp
                .browser_sign_in(&w.env, "corp", &FakeUser::new())
                .await;
            (format!("/v1/oauth/corp/callback?{query}"), None, 201)
        }
        (method, path) => {
            panic!("no matrix request for {method} {path}: add one to tests/tests/all/access.rs")
        }
    }
}

/// What `who` gets from a route with `access` that answers `success` when allowed.
fn expected(access: Access, who: Who, success: u16) -> u16 {
    use Access as A;
    use Who as W;
    match (access, who) {
        (A::Public | A::Open, _) => success,
        (_, W::Anonymous) => 401,
        (A::Signed, _) => success,
        (A::Owner | A::OwnerOrStaff, W::AnotherStudent) => 404,
        (A::Owner, W::Teacher) => 403,
        (A::Owner | A::OwnerOrStaff, _) => success,
        (A::Staff, W::AnotherStudent | W::Owner) => 403,
        (A::Staff, _) => success,
        (A::Admin, W::Admin) => success,
        (A::Admin, _) => 403,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_caller_as_its_access_rule_says() {
    let w = World::new().await;
    let mut failures = Vec::new();
    for route in ROUTES {
        for who in EVERYONE {
            let (path, body, success) = request(&w, route).await;
            let want = expected(route.access, who, success);
            let token = w.token(who).await;
            let before = w.footprint().await;
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let r = w.env.call_as(token.as_deref(), method, &path, body).await;
            let got = r.status.as_u16();
            if got != want {
                failures.push(format!(
                    "{} {} as {who:?}: {got}, expected {want} ({})",
                    route.method, route.path, r.body
                ));
                continue;
            }
            if want >= 400 {
                r.problem(want);
                assert_eq!(
                    w.footprint().await,
                    before,
                    "{} {} as {who:?} changed something",
                    route.method,
                    route.path
                );
                if want == 404 {
                    // Exactly what a test or student that does not exist gets.
                    assert!(
                        r.body["detail"].as_str().unwrap().starts_with("no "),
                        "{}",
                        r.body
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_student_starts_tests_only_for_themselves() {
    let w = World::new().await;
    let owner = w.token(Who::Owner).await;
    let body = json!({ "pool_id": w.pool, "student_id": w.other });
    let before = w.footprint().await;
    let r = w
        .env
        .call_as(
            owner.as_deref(),
            Method::POST,
            "/v1/tests",
            Some(body.clone()),
        )
        .await;
    r.problem(403);
    assert_eq!(w.footprint().await, before);
    // A teacher may name the student; the test is then the student's to take.
    let teacher = w.token(Who::Teacher).await;
    let r = w
        .env
        .call_as(teacher.as_deref(), Method::POST, "/v1/tests", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let test = r.body["test_id"].as_str().unwrap();
    let question = r.body["question"].clone();
    let other = w.token(Who::AnotherStudent).await.unwrap();
    let answered = w.env.answer_as(&other, test, &question, true).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let report = w
        .env
        .call_as(
            teacher.as_deref(),
            Method::GET,
            &format!("/v1/tests/{test}"),
            None,
        )
        .await;
    assert_eq!(report.body["student_id"], w.other.to_string());
    assert_eq!(report.body["items_answered"], 1);
    // Without a student_id the test is the caller's own.
    let (mine, _) = w.owned_test().await;
    let report = w
        .env
        .call_as(
            teacher.as_deref(),
            Method::GET,
            &format!("/v1/tests/{mine}"),
            None,
        )
        .await;
    assert_eq!(report.body["student_id"], w.owner.to_string());
}

#[tokio::test]
async fn another_students_ended_test_looks_like_no_test() {
    let w = World::new().await;
    let (test, _) = w.owned_test().await;
    let owner = w.token(Who::Owner).await;
    let ended = w
        .env
        .call_as(
            owner.as_deref(),
            Method::POST,
            &format!("/v1/tests/{test}/end"),
            Some(json!({})),
        )
        .await;
    assert_eq!(ended.status, StatusCode::OK);
    let other = w.token(Who::AnotherStudent).await;
    let missing = Uuid::new_v4();
    for (method, suffix) in [
        (Method::GET, "/next"),
        (Method::POST, "/end"),
        (Method::GET, ""),
    ] {
        let theirs = w
            .env
            .call_as(
                other.as_deref(),
                method.clone(),
                &format!("/v1/tests/{test}{suffix}"),
                None,
            )
            .await;
        let none = w
            .env
            .call_as(
                other.as_deref(),
                method,
                &format!("/v1/tests/{missing}{suffix}"),
                None,
            )
            .await;
        theirs.problem(404);
        assert_eq!(
            theirs.body["detail"].as_str().unwrap().replace(&test, "ID"),
            none.body["detail"]
                .as_str()
                .unwrap()
                .replace(&missing.to_string(), "ID"),
        );
    }
}
