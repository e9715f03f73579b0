//! The authorization matrix: every route of `ROUTES` × nine callers (anonymous,
//! the student who owns the resource, a classmate, a student of another
//! organization, the class's teacher, a teacher of another class of the same
//! organization, the org admin, the org admin of another organization, a
//! platform admin) gets the status its access rule promises, and a refused
//! request changes nothing. The expectations come from the route table; a route
//! without a request below fails the test, so a new route cannot be left out.

use axum::http::{Method, StatusCode};
use lectern::api::{Access, ROUTES, Route};
use lectern::services::auth::Role;
use lectern::services::auth::secret::{random_token, sha256_hex};
use lectern_tests::oidc::{FakeOidc, FakeUser};
use lectern_tests::{TestEnv, items_json, new_email};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// Owns the test, session or records the route touches; in org A, class 1.
    Student,
    /// Another student of class 1.
    Classmate,
    /// A student of organization B.
    Outsider,
    /// Teaches class 1.
    Teacher,
    /// Teaches class 2 of organization A.
    OtherTeacher,
    /// Org admin of A.
    OrgAdmin,
    /// Org admin of B.
    OtherOrgAdmin,
    /// Platform admin, member of no organization.
    Platform,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::Student,
    Who::Classmate,
    Who::Outsider,
    Who::Teacher,
    Who::OtherTeacher,
    Who::OrgAdmin,
    Who::OtherOrgAdmin,
    Who::Platform,
];

const OWNER_PASSWORD: &str = "the owner's password";

struct World {
    env: TestEnv,
    idp: FakeOidc,
    /// Organization A (the environment's) and its class 1.
    org: Uuid,
    class: Uuid,
    pool: Uuid,
    owner: Uuid,
    owner_email: String,
    classmate: Uuid,
    outsider: Uuid,
    teacher: Uuid,
    other_teacher: Uuid,
    org_admin: Uuid,
    other_org_admin: Uuid,
    /// An assessment of A, assigned to class 1 (open now).
    assessment: Uuid,
    assignment: Uuid,
}

impl World {
    async fn new() -> Self {
        let idp = FakeOidc::start().await;
        let env = TestEnv::with_vars(&[idp.setting("corp")]).await;
        let (org, class) = (env.org, env.class);
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
        env.join(org, owner, "student").await;
        env.enroll(class, owner).await;
        let (classmate, _) = env.user(Role::Student).await;
        let (teacher, _) = env.user(Role::Teacher).await;
        let other_teacher = env.account().await;
        env.join(org, other_teacher, "teacher").await;
        let class2 = env.new_class(org).await;
        env.assign(class2, other_teacher).await;
        let org_admin = env.account().await;
        env.join(org, org_admin, "org_admin").await;
        let org_b = env.new_org().await;
        let outsider = env.account().await;
        env.join(org_b, outsider, "student").await;
        let class_b = env.new_class(org_b).await;
        env.enroll(class_b, outsider).await;
        let other_org_admin = env.account().await;
        env.join(org_b, other_org_admin, "org_admin").await;
        let made = env
            .post(
                "/v1/assessments",
                json!({ "organization_id": org, "name": "Matrix exam", "pool_id": pool, "mode": "exam" }),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let assessment: Uuid = made.body["id"].as_str().unwrap().parse().unwrap();
        let given = env
            .post(
                "/v1/assignments",
                json!({ "assessment_id": assessment, "class_id": class, "closes_at": in_a_day() }),
            )
            .await;
        assert_eq!(given.status, StatusCode::CREATED, "{}", given.body);
        let assignment = given.body["id"].as_str().unwrap().parse().unwrap();
        Self {
            env,
            idp,
            org,
            class,
            pool,
            owner,
            owner_email,
            classmate,
            outsider,
            teacher,
            other_teacher,
            org_admin,
            other_org_admin,
            assessment,
            assignment,
        }
    }

    /// A fresh session of `who` (so logging out in one case spoils no other).
    async fn token(&self, who: Who) -> Option<String> {
        let id = match who {
            Who::Anonymous => return None,
            Who::Student => self.owner,
            Who::Classmate => self.classmate,
            Who::Outsider => self.outsider,
            Who::Teacher => self.teacher,
            Who::OtherTeacher => self.other_teacher,
            Who::OrgAdmin => self.org_admin,
            Who::OtherOrgAdmin => self.other_org_admin,
            Who::Platform => self.env.admin,
        };
        let role = if who == Who::Platform {
            Role::Admin
        } else {
            Role::Student
        };
        Some(self.env.sign_in(id, role).await)
    }

    /// A new student of organization A with one live session: the student's
    /// id and that session's id (for the admin's account routes, which must
    /// not disable or sign out anyone the matrix signs in as).
    async fn subject(&self) -> (Uuid, String) {
        let (student, token) = self.env.user(Role::Student).await;
        let r = self
            .env
            .call_as(Some(&token), Method::GET, "/v1/sessions/current", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (student, r.body["id"].as_str().unwrap().to_owned())
    }

    /// A new test of the owner's: its id and the question it serves.
    async fn owned_test(&self) -> (String, Value) {
        let token = self.token(Who::Student).await;
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

    /// A new tutoring session of the owner's (in organization A): its id.
    async fn owned_session(&self) -> String {
        let token = self.token(Who::Student).await;
        let r = self
            .env
            .call_as(
                token.as_deref(),
                Method::POST,
                "/v1/teaching/sessions",
                Some(self.env.lesson(3).await),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["session_id"].as_str().unwrap().to_owned()
    }

    /// A new account that is a member of A with `role` (`None`: of nothing).
    async fn member(&self, role: Option<&str>) -> Uuid {
        let id = self.env.account().await;
        if let Some(role) = role {
            self.env.join(self.org, id, role).await;
        }
        id
    }

    /// A new pool of A with one pretest item, `matrix-pretest-…` (ids unique to it).
    async fn fresh_pool(&self) -> Uuid {
        let salt = Uuid::new_v4().to_string();
        let mut items = items_json(3, &salt);
        items.push(
            json!({ "id": format!("matrix-pretest-{}", Uuid::new_v4().simple()),
                           "content": "New", "options": ["a", "b"], "correct_answer": "a",
                           "concepts": ["x"], "pretest": true }),
        );
        let r = self
            .env
            .post(
                "/v1/pools",
                json!({ "name": "matrix calibration", "organization_id": self.org, "items": items }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["pool_id"].as_str().unwrap().parse().unwrap()
    }

    /// A succeeded calibration of a fresh pool of A that estimated its
    /// pretest item: (calibration, item).
    async fn calibration(&self) -> (Uuid, String) {
        let pool = self.fresh_pool().await;
        let sql = self.env.sql().await;
        let item: String = sql
            .query_one(
                "SELECT id FROM questions WHERE pool_id = $1 AND pretest",
                &[&pool],
            )
            .await
            .unwrap()
            .get(0);
        let id = Uuid::new_v4();
        let summary = json!({ "iterations": 12, "converged": true, "log_likelihood": -1234.5,
                              "persons": 500, "responses": 2000, "latent_mean": 0.1,
                              "latent_sd": 1.0, "anchor_items": 3 });
        let results = json!([{ "status": "estimated", "id": item, "model": "2pl",
                               "a": 1.1, "b": 0.2, "se": { "a": 0.1, "b": 0.1 }, "responses": 500 }]);
        sql.execute(
            "INSERT INTO calibrations (id, pool_id, pool_version, min_responses, status, summary, results)
             VALUES ($1, $2, 1, 1, 'succeeded', $4, $3)",
            &[&id, &pool, &results, &summary],
        )
        .await
        .unwrap();
        (id, item)
    }

    /// What changes when a request does something.
    async fn footprint(&self) -> Vec<i64> {
        let sql = self.env.sql().await;
        let mut counts = Vec::new();
        for query in [
            "SELECT count(*) FROM users",
            "SELECT count(*) FROM users WHERE disabled_at IS NOT NULL",
            "SELECT count(*) FROM auth_sessions",
            "SELECT count(*) FROM audit_log",
            "SELECT count(*) FROM erasures",
            "SELECT count(*) FROM item_pools",
            "SELECT count(*) FROM questions",
            "SELECT count(*) FROM test_sessions",
            "SELECT count(*) FROM test_sessions WHERE status = 'ended'",
            "SELECT count(*) FROM test_responses",
            "SELECT coalesce(sum(version), 0)::bigint FROM item_pools",
            "SELECT count(*) FROM test_sessions WHERE keep_until IS NOT NULL",
            "SELECT count(*) FROM teaching_sessions",
            "SELECT count(*) FROM teaching_transitions",
            "SELECT count(*) FROM courses",
            "SELECT count(*) FROM course_versions",
            "SELECT count(*) FROM course_progress",
            "SELECT count(*) FROM organizations",
            "SELECT count(*) FROM memberships",
            "SELECT count(*) FROM memberships WHERE role = 'teacher'",
            // Who has which role where: any change of role moves this sum.
            "SELECT coalesce(sum(hashtext(org_id::text || user_id::text || role)), 0)::bigint FROM memberships",
            "SELECT count(*) FROM student_proficiencies",
            "SELECT count(*) FROM classes",
            "SELECT count(*) FROM class_teachers",
            "SELECT count(*) FROM class_students",
            "SELECT count(*) FROM invitations",
            "SELECT coalesce(sum(uses), 0)::bigint FROM invitations",
            "SELECT count(*) FROM assessments",
            "SELECT count(*) FROM assessment_versions",
            "SELECT count(*) FROM assignments",
            "SELECT count(*) FROM assignments WHERE released_at IS NOT NULL",
            "SELECT count(*) FROM assignment_students",
            "SELECT coalesce(sum(extra_time_s), 0)::bigint FROM accommodations",
            "SELECT count(*) FROM calibrations",
            "SELECT count(*) FROM questions WHERE promoted_in IS NOT NULL",
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

/// A day from now, as RFC 3339.
fn in_a_day() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The request `route` gets in the matrix, and the status it answers when allowed.
async fn request(w: &World, route: &Route) -> (String, Option<Value>, u16) {
    let at = |id: &dyn std::fmt::Display| route.path.replace("{id}", &id.to_string());
    let at2 =
        |id: &dyn std::fmt::Display, user: Uuid| at(id).replace("{user_id}", &user.to_string());
    match (route.method, route.path) {
        ("POST", "/v1/tests") => (route.path.into(), Some(json!({ "pool_id": w.pool })), 201),
        ("POST", "/v1/tests/{id}/responses") => {
            let (test, question) = w.owned_test().await;
            let key = w.env.key_of(question["id"].as_str().unwrap()).await;
            let body = json!({ "question_id": question["id"], "response": key });
            (at(&test), Some(body), 200)
        }
        ("GET", "/v1/tests/{id}/next") | ("GET", "/v1/tests/{id}") => {
            (at(&w.owned_test().await.0), None, 200)
        }
        ("POST", "/v1/tests/{id}/end") | ("POST", "/v1/admin/tests/{id}/sync") => {
            (at(&w.owned_test().await.0), Some(json!({})), 200)
        }
        ("GET", "/v1/admin/tests/{id}") => (at(&w.owned_test().await.0), None, 200),
        ("POST", "/v1/admin/tests/{id}/extend") => (
            at(&w.owned_test().await.0),
            Some(json!({ "seconds": 3600 })),
            200,
        ),
        ("GET", "/v1/students/{id}/tests")
        | ("GET", "/v1/students/{id}/proficiency")
        | ("GET", "/v1/users/{id}")
        | ("POST", "/v1/admin/cache/invalidate/user/{id}") => (at(&w.owner), None, 200),
        ("POST", "/v1/admin/cache/invalidate/pool/{id}")
        | ("GET", "/v1/pools/{id}")
        | ("GET", "/v1/pools/{id}/responses")
        | ("GET", "/v1/pools/{id}/stats") => (at(&w.pool), None, 200),
        // A fresh pool each time: one calibration per pool may be queued or running.
        ("POST", "/v1/pools/{id}/calibrations") => {
            (at(&w.fresh_pool().await), Some(json!({})), 202)
        }
        ("GET", "/v1/calibrations/{id}") => (at(&w.calibration().await.0), None, 200),
        ("POST", "/v1/calibrations/{id}/promote") => {
            let (calibration, item) = w.calibration().await;
            (at(&calibration), Some(json!({ "items": [item] })), 200)
        }
        ("POST", "/v1/pools") => (
            route.path.into(),
            Some(json!({
                "name": "matrix",
                "organization_id": w.org,
                "items": items_json(3, &Uuid::new_v4().to_string()),
            })),
            201,
        ),
        ("POST", "/v1/pools/{id}/items") => (
            at(&w.pool),
            Some(json!({ "items": items_json(1, &Uuid::new_v4().to_string()) })),
            200,
        ),
        ("POST", "/v1/teaching/sessions") => (route.path.into(), Some(w.env.lesson(3).await), 201),
        // A new key each time: a new course.
        ("POST", "/v1/courses") => {
            let mut doc = lectern_tests::course_doc(2);
            doc["key"] = json!(format!("matrix-{}", Uuid::new_v4().simple()));
            let body = json!({ "organization_id": w.org, "course": doc });
            (route.path.into(), Some(body), 201)
        }
        ("GET", "/v1/courses/{id}") => (at(&w.env.course(3).await), None, 200),
        ("PUT", "/v1/courses/{id}") => {
            let mut doc = lectern_tests::course_doc(3);
            doc["title"] = json!(format!("Revised {}", Uuid::new_v4().simple()));
            let body = json!({ "course": doc });
            (at(&w.env.course(3).await), Some(body), 200)
        }
        ("GET", "/v1/organizations/{id}/courses") => (at(&w.org), None, 200),
        ("GET", "/v1/students/{id}/progress") => (at(&w.owner), None, 200),
        ("GET", "/v1/classes/{id}/progress") => {
            let course = w.env.course(3).await;
            (format!("{}?course_id={course}", at(&w.class)), None, 200)
        }
        ("GET", "/v1/teaching/sessions/{id}") => (at(&w.owned_session().await), None, 200),
        ("POST", "/v1/teaching/sessions/{id}/input") => (
            at(&w.owned_session().await),
            Some(json!({ "text": "next" })),
            200,
        ),
        ("POST", "/v1/teaching/sessions/{id}/end") => (at(&w.owned_session().await), None, 200),
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
        ("GET", "/v1/pools")
        | ("GET", "/v1/health")
        | ("GET", "/v1/sessions")
        | ("GET", "/v1/sessions/current")
        | ("DELETE", "/v1/sessions")
        | ("POST", "/v1/sessions/current/extend")
        | ("GET", "/v1/admin/tests/active")
        | ("GET", "/v1/admin/redis/stats")
        | ("GET", "/v1/admin/sessions/stats")
        | ("GET", "/v1/admin/cache/stats")
        | ("GET", "/v1/admin/teaching/stats")
        | ("POST", "/v1/admin/cache/cleanup")
        | ("GET", "/v1/organizations")
        | ("GET", "/v1/assignments") => (route.path.into(), None, 200),
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
        // Tenancy.
        ("POST", "/v1/organizations") => {
            let slug = format!("m-{}", Uuid::new_v4().simple());
            (
                route.path.into(),
                Some(json!({ "name": "Matrix school", "slug": slug })),
                201,
            )
        }
        ("GET", "/v1/organizations/{id}")
        | ("GET", "/v1/organizations/{id}/members")
        | ("GET", "/v1/organizations/{id}/classes")
        | ("GET", "/v1/organizations/{id}/stats")
        | ("GET", "/v1/organizations/{id}/assessments")
        | ("GET", "/v1/organizations/{id}/tests/active") => (at(&w.org), None, 200),
        ("POST", "/v1/organizations/{id}/members") => {
            let user = w.member(None).await;
            (
                at(&w.org),
                Some(json!({ "user_id": user, "role": "student" })),
                201,
            )
        }
        ("PATCH", "/v1/organizations/{id}/members/{user_id}") => {
            let user = w.member(Some("student")).await;
            (at2(&w.org, user), Some(json!({ "role": "teacher" })), 200)
        }
        ("DELETE", "/v1/organizations/{id}/members/{user_id}") => {
            let user = w.member(Some("student")).await;
            (at2(&w.org, user), None, 204)
        }
        ("POST", "/v1/organizations/{id}/classes") => {
            (at(&w.org), Some(json!({ "name": "Matrix class" })), 201)
        }
        ("GET", "/v1/classes/{id}")
        | ("GET", "/v1/classes/{id}/teachers")
        | ("GET", "/v1/classes/{id}/students")
        | ("GET", "/v1/classes/{id}/invitations")
        | ("GET", "/v1/classes/{id}/assignments")
        | ("GET", "/v1/classes/{id}/gradebook") => (at(&w.class), None, 200),
        ("POST", "/v1/classes/{id}/teachers") => {
            let user = w.member(Some("teacher")).await;
            (at(&w.class), Some(json!({ "user_id": user })), 201)
        }
        ("DELETE", "/v1/classes/{id}/teachers/{user_id}") => {
            let user = w.member(Some("teacher")).await;
            w.env.assign(w.class, user).await;
            (at2(&w.class, user), None, 204)
        }
        ("POST", "/v1/classes/{id}/students") => {
            let user = w.member(Some("student")).await;
            (at(&w.class), Some(json!({ "user_id": user })), 201)
        }
        ("DELETE", "/v1/classes/{id}/students/{user_id}") => {
            let user = w.member(Some("student")).await;
            w.env.enroll(w.class, user).await;
            (at2(&w.class, user), None, 204)
        }
        ("POST", "/v1/classes/{id}/invitations") => {
            (at(&w.class), Some(json!({ "max_uses": 5 })), 201)
        }
        ("POST", "/v1/invitations/accept") => {
            // A class of an organization of its own nobody is in, so every caller
            // may join it and no caller's standing in A or B changes.
            let org = w.env.new_org().await;
            let class = w.env.new_class(org).await;
            let code = random_token();
            w.env
                .sql()
                .await
                .execute(
                    "INSERT INTO invitations (id, org_id, class_id, code_hash, max_uses, expires_at)
                     VALUES ($1, $2, $3, $4, 1, now() + interval '1 hour')",
                    &[&Uuid::new_v4(), &org, &class, &sha256_hex(&code)],
                )
                .await
                .unwrap();
            (route.path.into(), Some(json!({ "code": code })), 200)
        }
        // Assessments.
        ("POST", "/v1/assessments") => (
            route.path.into(),
            Some(json!({ "organization_id": w.org, "name": "Matrix quiz", "pool_id": w.pool })),
            201,
        ),
        ("GET", "/v1/assessments/{id}") => (at(&w.assessment), None, 200),
        ("PUT", "/v1/assessments/{id}") => (
            at(&w.assessment),
            Some(json!({ "name": "Matrix exam", "pool_id": w.pool, "mode": "exam" })),
            200,
        ),
        ("POST", "/v1/assignments") => (
            route.path.into(),
            Some(
                json!({ "assessment_id": w.assessment, "class_id": w.class, "closes_at": in_a_day() }),
            ),
            201,
        ),
        ("GET", "/v1/assignments/{id}")
        | ("GET", "/v1/assignments/{id}/gradebook")
        | ("POST", "/v1/assignments/{id}/release") => (at(&w.assignment), None, 200),
        ("PUT", "/v1/assignments/{id}/accommodations/{user_id}") => (
            at2(&w.assignment, w.owner),
            Some(json!({ "extra_time_s": 600 })),
            200,
        ),
        ("GET", "/v1/audit") => (format!("/v1/audit?organization_id={}", w.org), None, 200),
        ("GET", "/v1/users/{id}/sessions")
        | ("POST", "/v1/users/{id}/disable")
        | ("POST", "/v1/users/{id}/enable") => (at(&w.subject().await.0), None, 200),
        ("DELETE", "/v1/users/{id}/sessions") => (at(&w.subject().await.0), None, 200),
        ("GET", "/v1/users/{id}/export") => (at(&w.owner), None, 200),
        ("POST", "/v1/users/{id}/erase") => (at(&w.subject().await.0), None, 200),
        ("DELETE", "/v1/users/{id}/sessions/{session_id}") => {
            let (student, session) = w.subject().await;
            (at(&student).replace("{session_id}", &session), None, 204)
        }
        (method, path) => {
            panic!("no matrix request for {method} {path}: add one to tests/tests/all/access.rs")
        }
    }
}

/// What `who` gets from a route with `access` that answers `success` when
/// allowed: outside the resource's organization it does not exist (404);
/// inside it, without the role it needs, it is forbidden (403).
fn expected(access: Access, who: Who, success: u16) -> u16 {
    use Access as A;
    use Who as W;
    let allowed = match (access, who) {
        (A::Public | A::Open, _) => return success,
        (_, W::Anonymous) => return 401,
        (A::Signed, _) | (_, W::Platform) => true,
        (A::Owner | A::OwnerOrOrgAdmin, W::Student | W::OrgAdmin) => true,
        (A::Owner, W::Teacher) => return 403,
        (A::OwnerOrStaff, W::Student | W::Teacher | W::OrgAdmin) => true,
        (A::Owner | A::OwnerOrStaff, _) => return 404,
        (A::Platform, _) => return 403,
        (A::Member, W::Outsider | W::OtherOrgAdmin) => return 404,
        (A::Member, _) => true,
        (A::OrgStaff, W::Teacher | W::OtherTeacher | W::OrgAdmin) => true,
        (A::ClassStaff, W::Teacher | W::OrgAdmin) => true,
        (A::OrgAdmin, W::OrgAdmin) => true,
        // The rest: organization-level rules for someone without the role.
        (_, W::Outsider | W::OtherOrgAdmin) => return 404,
        (_, _) => return 403,
    };
    if allowed { success } else { 403 }
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
                let after = w.footprint().await;
                if after != before {
                    failures.push(format!(
                        "{} {} as {who:?} changed something: {before:?} -> {after:?}",
                        route.method, route.path
                    ));
                }
                if want == 404 && !r.body["detail"].as_str().unwrap().starts_with("no ") {
                    // Exactly what a resource that does not exist gets.
                    failures.push(format!(
                        "{} {} as {who:?}: 404 that does not read as missing: {}",
                        route.method, route.path, r.body
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_student_starts_tests_only_for_themselves() {
    let w = World::new().await;
    let owner = w.token(Who::Student).await;
    let body = json!({ "pool_id": w.pool, "student_id": w.classmate });
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
    // A teacher of another class may not name them: for that teacher, no such student.
    let other_teacher = w.token(Who::OtherTeacher).await;
    let before = w.footprint().await;
    let r = w
        .env
        .call_as(
            other_teacher.as_deref(),
            Method::POST,
            "/v1/tests",
            Some(body.clone()),
        )
        .await;
    r.problem(422);
    assert_eq!(w.footprint().await, before);
    // Their teacher may; the test is then the student's to take.
    let teacher = w.token(Who::Teacher).await;
    let r = w
        .env
        .call_as(teacher.as_deref(), Method::POST, "/v1/tests", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let test = r.body["test_id"].as_str().unwrap();
    let question = r.body["question"].clone();
    let other = w.token(Who::Classmate).await.unwrap();
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
    assert_eq!(report.body["student_id"], w.classmate.to_string());
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
    let owner = w.token(Who::Student).await;
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
    let other = w.token(Who::Classmate).await;
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
