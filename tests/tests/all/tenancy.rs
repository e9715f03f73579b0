//! Tenancy management (the orgs function): organizations, members and roles,
//! classes with their teachers and students, invitation codes. Every refusal
//! answers its status and problem type and writes nothing; the last org admin
//! and a code's uses hold when requests race; a role change counts from the
//! caller's next request.

use axum::http::{Method, StatusCode};
use lectern::services::auth::Role;
use lectern::services::auth::secret::sha256_hex;
use lectern_tests::{Resp, TestEnv, new_email};
use serde_json::{Value, json};
use uuid::Uuid;

/// A new account with a session, member of nothing: (id, token).
async fn signed(env: &TestEnv) -> (Uuid, String) {
    let id = env.account().await;
    (id, env.sign_in(id, Role::Student).await)
}

/// What the management routes write: to show a refused request wrote nothing.
async fn footprint(env: &TestEnv) -> Vec<i64> {
    let sql = env.sql().await;
    let mut counts = Vec::new();
    for query in [
        "SELECT count(*) FROM organizations",
        "SELECT count(*) FROM memberships",
        "SELECT count(*) FROM memberships WHERE role = 'org_admin'",
        "SELECT count(*) FROM memberships WHERE role = 'teacher'",
        "SELECT count(*) FROM classes",
        "SELECT count(*) FROM class_teachers",
        "SELECT count(*) FROM class_students",
        "SELECT count(*) FROM invitations",
        "SELECT coalesce(sum(uses), 0)::bigint FROM invitations",
        "SELECT count(*) FROM users",
    ] {
        counts.push(sql.query_one(query, &[]).await.unwrap().get(0));
    }
    counts
}

async fn call(env: &TestEnv, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
    env.call_as(Some(token), method, path, body).await
}

async fn get(env: &TestEnv, token: &str, path: &str) -> Resp {
    call(env, token, Method::GET, path, None).await
}

async fn post(env: &TestEnv, token: &str, path: &str, body: Value) -> Resp {
    call(env, token, Method::POST, path, Some(body)).await
}

/// Sends the request and asserts it is refused with `status` and `slug`,
/// writing nothing; returns the problem's detail.
async fn refused(
    env: &TestEnv,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    slug: &str,
) -> String {
    let before = footprint(env).await;
    let r = call(env, token, method.clone(), path, body.clone()).await;
    let detail = r.problem(status);
    assert_eq!(r.slug(), slug, "{method} {path} {body:?}: {}", r.body);
    assert_eq!(
        footprint(env).await,
        before,
        "{method} {path} {body:?} wrote something"
    );
    detail
}

fn id_of(r: &Resp, field: &str) -> Uuid {
    r.body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {}", r.body))
        .parse()
        .unwrap()
}

async fn role_in(env: &TestEnv, org: Uuid, user: Uuid) -> Option<String> {
    env.sql()
        .await
        .query_opt(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            &[&org, &user],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn platform_admins_create_organizations_and_members_see_theirs() {
    let env = TestEnv::new().await;
    let admin = env.admin_token();
    let slug = format!("north-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let r = post(
        &env,
        &admin,
        "/v1/organizations",
        json!({ "name": "  North High  ", "slug": slug }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let north = id_of(&r, "id");
    assert_eq!(r.headers["location"], format!("/v1/organizations/{north}"));
    assert_eq!(r.body["name"], "North High");
    assert_eq!(r.body["slug"], slug.as_str());
    assert_eq!(r.body["role"], Value::Null);

    // The slug is checked, and a taken one is refused; nothing is written.
    for bad in [
        "N",
        "a",
        "Upper",
        "-lead",
        "trail-",
        "dou--ble",
        "under_score",
        "sp ace",
    ] {
        refused(
            &env,
            &admin,
            Method::POST,
            "/v1/organizations",
            Some(json!({ "name": "x", "slug": bad })),
            422,
            "validation-failed",
        )
        .await;
    }
    let long = "a".repeat(64);
    for body in [
        json!({ "name": "x", "slug": long }),
        json!({ "name": "   ", "slug": "blank-name" }),
        json!({ "name": "x".repeat(201), "slug": "long-name" }),
        json!({ "name": "x" }),
        json!({ "name": "x", "slug": "extra", "x": 1 }),
    ] {
        refused(
            &env,
            &admin,
            Method::POST,
            "/v1/organizations",
            Some(body),
            422,
            "validation-failed",
        )
        .await;
    }
    let detail = refused(
        &env,
        &admin,
        Method::POST,
        "/v1/organizations",
        Some(json!({ "name": "Another", "slug": slug })),
        409,
        "slug-taken",
    )
    .await;
    assert!(detail.contains(&slug), "{detail}");
    // Only platform admins create organizations.
    let (_, school_admin) = env.member(env.org, "org_admin").await;
    refused(
        &env,
        &school_admin,
        Method::POST,
        "/v1/organizations",
        Some(json!({ "name": "Mine", "slug": "mine-1" })),
        403,
        "forbidden",
    )
    .await;

    // A platform admin lists every organization (the default one, the
    // environment's, North); a member lists theirs, with their role.
    let all = get(&env, &admin, "/v1/organizations").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["total"], 3, "{}", all.body);
    let (member, token) = signed(&env).await;
    env.join(north, member, "teacher").await;
    env.join(env.org, member, "student").await;
    let mine = get(&env, &token, "/v1/organizations?limit=1").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["total"], 2);
    assert_eq!(mine.body["limit"], 1);
    let first = &mine.body["organizations"][0];
    assert_eq!(first["id"], north.to_string(), "by name: North before Test");
    assert_eq!(first["role"], "teacher");
    let rest = get(&env, &token, "/v1/organizations?limit=1&offset=1").await;
    assert_eq!(rest.body["organizations"][0]["id"], env.org.to_string());
    assert_eq!(rest.body["organizations"][0]["role"], "student");
    let (_, nobody) = signed(&env).await;
    let none = get(&env, &nobody, "/v1/organizations").await;
    assert_eq!(none.body["organizations"], json!([]));
    assert_eq!(none.body["total"], 0);
    get(&env, &token, "/v1/organizations?limit=201")
        .await
        .problem(422);

    // One organization: its members and platform admins read it; to anyone
    // else it is exactly what an unknown id is.
    let one = get(&env, &token, &format!("/v1/organizations/{north}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["role"], "teacher");
    assert_eq!(one.body["slug"], slug.as_str());
    let r = get(&env, &admin, &format!("/v1/organizations/{north}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let hidden = get(&env, &nobody, &format!("/v1/organizations/{north}")).await;
    hidden.problem(404);
    assert_eq!(hidden.slug(), "organization-not-found");
    let missing = Uuid::new_v4();
    let unknown = get(&env, &admin, &format!("/v1/organizations/{missing}")).await;
    unknown.problem(404);
    assert_eq!(unknown.slug(), "organization-not-found");
    assert_eq!(
        hidden.body["detail"]
            .as_str()
            .unwrap()
            .replace(&north.to_string(), "ID"),
        unknown.body["detail"]
            .as_str()
            .unwrap()
            .replace(&missing.to_string(), "ID"),
    );
}

#[tokio::test]
async fn org_admins_add_members_change_roles_and_remove_them() {
    let env = TestEnv::new().await;
    let org = env.org;
    let (_, admin) = env.member(org, "org_admin").await;
    let members = format!("/v1/organizations/{org}/members");

    // By id and by email (matched trimmed and in lower case).
    let by_id = env.account().await;
    let r = post(
        &env,
        &admin,
        &members,
        json!({ "user_id": by_id, "role": "teacher" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user_id"], by_id.to_string());
    assert_eq!(r.body["role"], "teacher");
    let email = new_email();
    let by_email = lectern::store::users::ensure(env.app.db(), &email, "student")
        .await
        .unwrap();
    let shouted = format!("  {}  ", email.to_uppercase());
    let r = post(
        &env,
        &admin,
        &members,
        json!({ "email": shouted, "role": "student" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user_id"], by_email.to_string());
    assert_eq!(r.body["email"], email.as_str());
    assert_eq!(
        role_in(&env, org, by_email).await.as_deref(),
        Some("student")
    );

    // Refusals, each writing nothing.
    let detail = refused(
        &env,
        &admin,
        Method::POST,
        &members,
        Some(json!({ "user_id": by_id, "role": "student" })),
        409,
        "already-member",
    )
    .await;
    assert!(detail.contains(&by_id.to_string()), "{detail}");
    assert_eq!(role_in(&env, org, by_id).await.as_deref(), Some("teacher"));
    let ghost = Uuid::new_v4();
    let detail = refused(
        &env,
        &admin,
        Method::POST,
        &members,
        Some(json!({ "user_id": ghost, "role": "student" })),
        422,
        "unknown-user",
    )
    .await;
    assert!(detail.contains(&ghost.to_string()), "{detail}");
    let detail = refused(
        &env,
        &admin,
        Method::POST,
        &members,
        Some(json!({ "email": "nobody@example.test", "role": "student" })),
        422,
        "unknown-user",
    )
    .await;
    assert!(detail.contains("nobody@example.test"), "{detail}");
    let someone = env.account().await;
    for body in [
        json!({ "role": "student" }),
        json!({ "user_id": someone, "email": email, "role": "student" }),
        json!({ "user_id": someone, "role": "admin" }),
        json!({ "user_id": someone }),
        json!({ "user_id": "not-a-uuid", "role": "student" }),
        json!({ "email": "not an email", "role": "student" }),
        json!({ "user_id": someone, "role": "student", "x": 1 }),
        json!({ "user_id": null, "email": email, "role": "student" }),
    ] {
        refused(
            &env,
            &admin,
            Method::POST,
            &members,
            Some(body),
            422,
            "validation-failed",
        )
        .await;
    }

    // The list, paged by email.
    let page = get(&env, &admin, &format!("{members}?limit=2")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The harness's admin is no member; this org admin and the two added are.
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["members"].as_array().unwrap().len(), 2);
    let rest = get(&env, &admin, &format!("{members}?limit=2&offset=2")).await;
    assert_eq!(rest.body["members"].as_array().unwrap().len(), 1);

    // A teacher made a student stops teaching the organization's classes.
    env.assign(env.class, by_id).await;
    let other_class = env.new_class(org).await;
    env.assign(other_class, by_id).await;
    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &format!("{members}/{by_id}"),
        Some(json!({ "role": "student" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "student");
    let teaching: i64 = env
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM class_teachers WHERE user_id = $1",
            &[&by_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(teaching, 0);
    // Promoted again, they teach nothing until assigned.
    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &format!("{members}/{by_id}"),
        Some(json!({ "role": "org_admin" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        role_in(&env, org, by_id).await.as_deref(),
        Some("org_admin")
    );
    for (body, status, slug) in [
        (json!({ "role": "admin" }), 422, "validation-failed"),
        (json!({}), 422, "validation-failed"),
        (
            json!({ "role": "student", "x": 1 }),
            422,
            "validation-failed",
        ),
    ] {
        refused(
            &env,
            &admin,
            Method::PATCH,
            &format!("{members}/{by_id}"),
            Some(body),
            status,
            slug,
        )
        .await;
    }
    let stranger = env.account().await;
    refused(
        &env,
        &admin,
        Method::PATCH,
        &format!("{members}/{stranger}"),
        Some(json!({ "role": "teacher" })),
        404,
        "member-not-found",
    )
    .await;
    refused(
        &env,
        &admin,
        Method::DELETE,
        &format!("{members}/{stranger}"),
        None,
        404,
        "member-not-found",
    )
    .await;
    refused(
        &env,
        &admin,
        Method::DELETE,
        &format!("{members}/not-a-uuid"),
        None,
        404,
        "not-found",
    )
    .await;

    // Removed, they leave the organization's classes too.
    env.enroll(env.class, by_email).await;
    let r = call(
        &env,
        &admin,
        Method::DELETE,
        &format!("{members}/{by_email}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(role_in(&env, org, by_email).await, None);
    let enrolled: i64 = env
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM class_students WHERE user_id = $1",
            &[&by_email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(enrolled, 0);

    // A teacher of the organization manages nothing of it; an outsider does
    // not see it; an unknown organization is the same 404.
    let (_, teacher) = env.user(Role::Teacher).await;
    refused(
        &env,
        &teacher,
        Method::POST,
        &members,
        Some(json!({ "user_id": stranger, "role": "student" })),
        403,
        "forbidden",
    )
    .await;
    let (_, outsider) = signed(&env).await;
    refused(
        &env,
        &outsider,
        Method::POST,
        &members,
        Some(json!({ "user_id": stranger, "role": "student" })),
        404,
        "organization-not-found",
    )
    .await;
    refused(
        &env,
        &env.admin_token(),
        Method::POST,
        &format!("/v1/organizations/{}/members", Uuid::new_v4()),
        Some(json!({ "user_id": stranger, "role": "student" })),
        404,
        "organization-not-found",
    )
    .await;
}

#[tokio::test]
async fn the_last_org_admin_is_neither_demoted_nor_removed() {
    let env = TestEnv::new().await;
    let org = env.new_org().await;
    let (only, admin) = env.member(org, "org_admin").await;
    let path = format!("/v1/organizations/{org}/members/{only}");
    for role in ["teacher", "student"] {
        let detail = refused(
            &env,
            &admin,
            Method::PATCH,
            &path,
            Some(json!({ "role": role })),
            409,
            "last-org-admin",
        )
        .await;
        assert!(detail.contains(&only.to_string()), "{detail}");
    }
    refused(
        &env,
        &admin,
        Method::DELETE,
        &path,
        None,
        409,
        "last-org-admin",
    )
    .await;
    // Staying org admin is no change of that kind.
    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({ "role": "org_admin" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // With a second org admin, either may go.
    let (second, _) = env.member(org, "org_admin").await;
    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({ "role": "teacher" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The demoted caller's next request is a teacher's.
    refused(
        &env,
        &admin,
        Method::DELETE,
        &format!("/v1/organizations/{org}/members/{second}"),
        None,
        403,
        "forbidden",
    )
    .await;
    refused(
        &env,
        &env.admin_token(),
        Method::DELETE,
        &format!("/v1/organizations/{org}/members/{second}"),
        None,
        409,
        "last-org-admin",
    )
    .await;
}

/// Two org admins demote each other (and, another round, remove each other)
/// at once: exactly one succeeds, the organization keeps one org admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_demotions_of_the_last_two_org_admins_leave_one() {
    let env = TestEnv::new().await;
    for round in 0..6 {
        let org = env.new_org().await;
        let (a, a_token) = env.member(org, "org_admin").await;
        let (b, b_token) = env.member(org, "org_admin").await;
        let at = |user: Uuid| format!("/v1/organizations/{org}/members/{user}");
        let (method, body) = if round % 2 == 0 {
            (Method::PATCH, Some(json!({ "role": "student" })))
        } else {
            (Method::DELETE, None)
        };
        let (to_b, to_a) = (at(b), at(a));
        let (first, second) = tokio::join!(
            call(&env, &a_token, method.clone(), &to_b, body.clone()),
            call(&env, &b_token, method.clone(), &to_a, body.clone()),
        );
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort_unstable();
        let ok = if method == Method::PATCH { 200 } else { 204 };
        // The loser is refused as the last org admin, or (having lost the
        // role already) as no org admin at all: 403 once demoted, 404 once
        // removed (outside the organization, it does not exist).
        let lost = if method == Method::PATCH { 403 } else { 404 };
        assert!(
            statuses == [ok, 409] || statuses == [ok, lost],
            "round {round}: {statuses:?}: {} / {}",
            first.body,
            second.body
        );
        let admins: i64 = env
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'org_admin'",
                &[&org],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(admins, 1, "round {round}");
    }
    // A platform admin demoting both at once: one goes, the last stays.
    for round in 0..4 {
        let org = env.new_org().await;
        let (a, _) = env.member(org, "org_admin").await;
        let (b, _) = env.member(org, "org_admin").await;
        let platform = env.admin_token();
        let body = Some(json!({ "role": "teacher" }));
        let (to_a, to_b) = (
            format!("/v1/organizations/{org}/members/{a}"),
            format!("/v1/organizations/{org}/members/{b}"),
        );
        let (first, second) = tokio::join!(
            call(&env, &platform, Method::PATCH, &to_a, body.clone()),
            call(&env, &platform, Method::PATCH, &to_b, body.clone()),
        );
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let refused = if first.status.as_u16() == 409 {
            &first
        } else {
            &second
        };
        assert_eq!(refused.slug(), "last-org-admin");
        let roles: Vec<String> = env
            .sql()
            .await
            .query(
                "SELECT role FROM memberships WHERE org_id = $1 ORDER BY role",
                &[&org],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(roles, ["org_admin", "teacher"], "round {round}");
    }
}

#[tokio::test]
async fn classes_their_teachers_and_students() {
    let env = TestEnv::new().await;
    let org = env.org;
    let (_, admin) = env.member(org, "org_admin").await;
    let r = post(
        &env,
        &admin,
        &format!("/v1/organizations/{org}/classes"),
        json!({ "name": " Algebra " }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let algebra = id_of(&r, "id");
    assert_eq!(r.headers["location"], format!("/v1/classes/{algebra}"));
    assert_eq!(r.body["name"], "Algebra");
    assert_eq!(r.body["organization_id"], org.to_string());
    assert_eq!(
        (r.body["teachers"].clone(), r.body["students"].clone()),
        (json!(0), json!(0))
    );
    for body in [json!({ "name": "" }), json!({ "name": " \t" }), json!({})] {
        refused(
            &env,
            &admin,
            Method::POST,
            &format!("/v1/organizations/{org}/classes"),
            Some(body),
            422,
            "validation-failed",
        )
        .await;
    }

    // Teachers: members who are teachers or org admins.
    let teachers = format!("/v1/classes/{algebra}/teachers");
    let (teacher, teacher_token) = signed(&env).await;
    env.join(org, teacher, "teacher").await;
    let r = post(&env, &admin, &teachers, json!({ "user_id": teacher })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user_id"], teacher.to_string());
    assert_eq!(r.body["role"], "teacher");
    refused(
        &env,
        &admin,
        Method::POST,
        &teachers,
        Some(json!({ "user_id": teacher })),
        409,
        "already-teacher",
    )
    .await;
    let (student, student_token) = env.user(Role::Student).await;
    refused(
        &env,
        &admin,
        Method::POST,
        &teachers,
        Some(json!({ "user_id": student })),
        422,
        "not-staff",
    )
    .await;
    let other_org = env.new_org().await;
    let foreign_teacher = env.account().await;
    env.join(other_org, foreign_teacher, "teacher").await;
    for user in [foreign_teacher, env.account().await, Uuid::new_v4()] {
        refused(
            &env,
            &admin,
            Method::POST,
            &teachers,
            Some(json!({ "user_id": user })),
            422,
            "not-a-member",
        )
        .await;
    }
    // Assigning teachers is the org admins' (a teacher is refused, even of the class).
    let colleague = env.account().await;
    env.join(org, colleague, "teacher").await;
    refused(
        &env,
        &teacher_token,
        Method::POST,
        &teachers,
        Some(json!({ "user_id": colleague })),
        403,
        "forbidden",
    )
    .await;
    let list = get(&env, &admin, &teachers).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["teachers"][0]["user_id"], teacher.to_string());

    // Students: the class's teacher enrolls members of the organization.
    let students = format!("/v1/classes/{algebra}/students");
    let r = post(
        &env,
        &teacher_token,
        &students,
        json!({ "user_id": student }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["role"], "student");
    refused(
        &env,
        &teacher_token,
        Method::POST,
        &students,
        Some(json!({ "user_id": student })),
        409,
        "already-enrolled",
    )
    .await;
    let foreign_student = env.account().await;
    env.join(other_org, foreign_student, "student").await;
    for user in [foreign_student, env.account().await] {
        let detail = refused(
            &env,
            &teacher_token,
            Method::POST,
            &students,
            Some(json!({ "user_id": user })),
            422,
            "not-a-member",
        )
        .await;
        assert!(detail.contains(&user.to_string()), "{detail}");
    }
    // A teacher of another class of the organization: forbidden; a student too.
    let (_, other_teacher) = env.user(Role::Teacher).await;
    let newcomer = env.account().await;
    env.join(org, newcomer, "student").await;
    for token in [&other_teacher, &student_token] {
        refused(
            &env,
            token,
            Method::POST,
            &students,
            Some(json!({ "user_id": newcomer })),
            403,
            "forbidden",
        )
        .await;
    }

    // Reads: the class to its teachers and the org admins; the list of classes
    // to org admins (every one) and teachers (theirs).
    let class = get(&env, &teacher_token, &format!("/v1/classes/{algebra}")).await;
    assert_eq!(class.status, StatusCode::OK, "{}", class.body);
    assert_eq!(
        (
            class.body["teachers"].clone(),
            class.body["students"].clone()
        ),
        (json!(1), json!(1))
    );
    get(&env, &other_teacher, &format!("/v1/classes/{algebra}"))
        .await
        .problem(403);
    let (_, outsider) = env.member(other_org, "org_admin").await;
    let r = get(&env, &outsider, &format!("/v1/classes/{algebra}")).await;
    r.problem(404);
    assert_eq!(r.slug(), "class-not-found");
    let r = get(&env, &admin, &format!("/v1/classes/{}", Uuid::new_v4())).await;
    r.problem(404);
    assert_eq!(r.slug(), "class-not-found");
    let every = get(&env, &admin, &format!("/v1/organizations/{org}/classes")).await;
    assert_eq!(every.status, StatusCode::OK, "{}", every.body);
    assert_eq!(
        every.body["total"], 2,
        "the environment's class and Algebra"
    );
    assert_eq!(
        every.body["classes"][0]["id"],
        algebra.to_string(),
        "by name"
    );
    let theirs = get(
        &env,
        &teacher_token,
        &format!("/v1/organizations/{org}/classes"),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    assert_eq!(theirs.body["total"], 1);
    assert_eq!(theirs.body["classes"][0]["id"], algebra.to_string());
    let r = get(
        &env,
        &student_token,
        &format!("/v1/organizations/{org}/classes"),
    )
    .await;
    r.problem(403);
    let enrolled = get(&env, &teacher_token, &students).await;
    assert_eq!(enrolled.body["total"], 1);
    assert_eq!(enrolled.body["students"][0]["user_id"], student.to_string());

    // Withdrawing and unassigning: once; then there is no such member.
    let r = call(
        &env,
        &teacher_token,
        Method::DELETE,
        &format!("{students}/{student}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    refused(
        &env,
        &teacher_token,
        Method::DELETE,
        &format!("{students}/{student}"),
        None,
        404,
        "member-not-found",
    )
    .await;
    refused(
        &env,
        &teacher_token,
        Method::DELETE,
        &format!("{teachers}/{teacher}"),
        None,
        403,
        "forbidden",
    )
    .await;
    let r = call(
        &env,
        &admin,
        Method::DELETE,
        &format!("{teachers}/{teacher}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // No longer its teacher, they no longer see the class.
    get(&env, &teacher_token, &format!("/v1/classes/{algebra}"))
        .await
        .problem(403);
    refused(
        &env,
        &admin,
        Method::DELETE,
        &format!("{teachers}/{teacher}"),
        None,
        404,
        "member-not-found",
    )
    .await;
    assert_eq!(
        role_in(&env, org, teacher).await.as_deref(),
        Some("teacher")
    );
}

#[tokio::test]
async fn invitation_codes_enroll_whoever_holds_them() {
    let env = TestEnv::new().await;
    let org = env.org;
    let (_, admin) = env.member(org, "org_admin").await;
    let class = env.new_class(org).await;
    let invitations = format!("/v1/classes/{class}/invitations");

    let r = post(&env, &admin, &invitations, json!({ "max_uses": 2 })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let code = r.body["code"].as_str().unwrap().to_owned();
    assert!(code.len() >= 43, "{code}");
    assert_eq!(r.body["max_uses"], 2);
    assert_eq!(r.body["uses"], 0);
    assert_eq!(r.body["class_id"], class.to_string());
    assert_eq!(r.body["organization_id"], org.to_string());
    let expires = time::OffsetDateTime::parse(
        r.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_a_week = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    assert!(
        (expires - in_a_week).abs() < time::Duration::minutes(5),
        "{expires}"
    );
    // Only the code's hash is stored.
    let row = env
        .sql()
        .await
        .query_one("SELECT to_jsonb(i)::text FROM invitations i", &[])
        .await
        .unwrap();
    let stored: String = row.get(0);
    assert!(!stored.contains(&code), "{stored}");
    assert!(stored.contains(&sha256_hex(&code)), "{stored}");
    // Issuing is the org admins'; the values are bounded.
    let (_, teacher) = env.user(Role::Teacher).await;
    refused(
        &env,
        &teacher,
        Method::POST,
        &format!("/v1/classes/{}/invitations", env.class),
        Some(json!({})),
        403,
        "forbidden",
    )
    .await;
    for body in [
        json!({ "max_uses": 0 }),
        json!({ "max_uses": 1001 }),
        json!({ "max_uses": -1 }),
        json!({ "max_uses": 1.5 }),
        json!({ "max_uses": null }),
        json!({ "expires_in_secs": 59 }),
        json!({ "expires_in_secs": 90 * 24 * 3600 + 1 }),
        json!({ "code": "chosen" }),
    ] {
        refused(
            &env,
            &admin,
            Method::POST,
            &invitations,
            Some(body),
            422,
            "validation-failed",
        )
        .await;
    }

    // A newcomer joins as a student and is enrolled; a teacher keeps their role.
    let accept = "/v1/invitations/accept";
    let (newcomer, newcomer_token) = signed(&env).await;
    let r = post(&env, &newcomer_token, accept, json!({ "code": code })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "organization_id": org, "class_id": class, "role": "student" })
    );
    assert_eq!(
        role_in(&env, org, newcomer).await.as_deref(),
        Some("student")
    );
    // Enrolled already: refused, and no use is taken.
    refused_post(
        &env,
        &newcomer_token,
        accept,
        json!({ "code": code }),
        409,
        "already-enrolled",
    )
    .await;
    let (teacher_id, teacher_token) = env.user(Role::Teacher).await;
    let r = post(
        &env,
        &teacher_token,
        accept,
        json!({ "code": format!(" {code} ") }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "teacher");
    assert_eq!(
        role_in(&env, org, teacher_id).await.as_deref(),
        Some("teacher")
    );
    let list = get(&env, &admin, &invitations).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["total"], 1);
    let listed = &list.body["invitations"][0];
    assert_eq!(
        (listed["uses"].clone(), listed["max_uses"].clone()),
        (json!(2), json!(2))
    );
    assert!(listed.get("code").is_none(), "{listed}");
    assert!(!list.body.to_string().contains(&code));
    let class_students = get(&env, &admin, &format!("/v1/classes/{class}/students")).await;
    assert_eq!(class_students.body["total"], 2);

    // Used up, expired, unknown, malformed: refused, writing nothing.
    let (_, late) = signed(&env).await;
    refused_post(
        &env,
        &late,
        accept,
        json!({ "code": code }),
        410,
        "invitation-used-up",
    )
    .await;
    let r = post(
        &env,
        &admin,
        &invitations,
        json!({ "max_uses": 5, "expires_in_secs": 60 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let stale = r.body["code"].as_str().unwrap().to_owned();
    env.sql()
        .await
        .execute(
            "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[&id_of(&r, "id")],
        )
        .await
        .unwrap();
    refused_post(
        &env,
        &late,
        accept,
        json!({ "code": stale }),
        410,
        "invitation-expired",
    )
    .await;
    refused_post(
        &env,
        &late,
        accept,
        json!({ "code": "no-such-code" }),
        404,
        "invitation-not-found",
    )
    .await;
    for body in [
        json!({ "code": "" }),
        json!({ "code": "   " }),
        json!({ "code": "x".repeat(257) }),
        json!({}),
        json!({ "code": code, "class_id": class }),
    ] {
        refused_post(&env, &late, accept, body, 422, "validation-failed").await;
    }
    // Anonymous callers are not let in.
    let r = env
        .call_as(None, Method::POST, accept, Some(json!({ "code": code })))
        .await;
    r.problem(401);
}

/// `refused` for a POST.
async fn refused_post(
    env: &TestEnv,
    token: &str,
    path: &str,
    body: Value,
    status: u16,
    slug: &str,
) -> String {
    refused(env, token, Method::POST, path, Some(body), status, slug).await
}

/// Two users accept a single-use code at once: exactly one is enrolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_use_code_accepted_twice_at_once_admits_one() {
    let env = TestEnv::new().await;
    let (_, admin) = env.member(env.org, "org_admin").await;
    for round in 0..8 {
        let class = env.new_class(env.org).await;
        let r = post(
            &env,
            &admin,
            &format!("/v1/classes/{class}/invitations"),
            json!({}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["max_uses"], 1);
        let body = json!({ "code": r.body["code"] });
        let (_, a) = signed(&env).await;
        let (_, b) = signed(&env).await;
        let (first, second) = tokio::join!(
            post(&env, &a, "/v1/invitations/accept", body.clone()),
            post(&env, &b, "/v1/invitations/accept", body.clone()),
        );
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 410],
            "round {round}: {} / {}",
            first.body,
            second.body
        );
        let loser = if first.status == StatusCode::OK {
            &second
        } else {
            &first
        };
        assert_eq!(loser.slug(), "invitation-used-up");
        let row = env
            .sql()
            .await
            .query_one(
                "SELECT (SELECT uses FROM invitations WHERE class_id = $1),
                        (SELECT count(*) FROM class_students WHERE class_id = $1)",
                &[&class],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, i32>(0), row.get::<_, i64>(1)),
            (1, 1),
            "round {round}"
        );
    }
    // The same user twice at once with a code of two uses: enrolled once, one use taken.
    let class = env.new_class(env.org).await;
    let r = post(
        &env,
        &admin,
        &format!("/v1/classes/{class}/invitations"),
        json!({ "max_uses": 2 }),
    )
    .await;
    let body = json!({ "code": r.body["code"] });
    let (_, a) = signed(&env).await;
    let (first, second) = tokio::join!(
        post(&env, &a, "/v1/invitations/accept", body.clone()),
        post(&env, &a, "/v1/invitations/accept", body.clone()),
    );
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", first.body, second.body);
    let uses: i32 = env
        .sql()
        .await
        .query_one(
            "SELECT uses FROM invitations WHERE class_id = $1",
            &[&class],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(uses, 1);
}

/// A teacher demoted to student loses their classes at once: their next read
/// of a student of the class answers as if the student did not exist.
#[tokio::test]
async fn a_role_change_counts_from_the_next_request() {
    let env = TestEnv::new().await;
    let (_, admin) = env.member(env.org, "org_admin").await;
    let (teacher, teacher_token) = env.user(Role::Teacher).await;
    let (student, _) = env.user(Role::Student).await;
    let history = format!("/v1/students/{student}/tests");
    let r = get(&env, &teacher_token, &history).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let class = get(&env, &teacher_token, &format!("/v1/classes/{}", env.class)).await;
    assert_eq!(class.status, StatusCode::OK, "{}", class.body);

    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &format!("/v1/organizations/{}/members/{teacher}", env.org),
        Some(json!({ "role": "student" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Same token, next request.
    get(&env, &teacher_token, &history).await.problem(404);
    get(&env, &teacher_token, &format!("/v1/classes/{}", env.class))
        .await
        .problem(403);
    get(
        &env,
        &teacher_token,
        &format!("/v1/organizations/{}/classes", env.org),
    )
    .await
    .problem(403);

    // Made org admin, they see every student of the organization.
    let r = call(
        &env,
        &admin,
        Method::PATCH,
        &format!("/v1/organizations/{}/members/{teacher}", env.org),
        Some(json!({ "role": "org_admin" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = get(&env, &teacher_token, &history).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Removed, the organization is gone for them.
    let r = call(
        &env,
        &admin,
        Method::DELETE,
        &format!("/v1/organizations/{}/members/{teacher}", env.org),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    get(&env, &teacher_token, &history).await.problem(404);
    get(
        &env,
        &teacher_token,
        &format!("/v1/organizations/{}", env.org),
    )
    .await
    .problem(404);
}

#[tokio::test]
async fn an_organizations_stats_count_what_it_holds() {
    let env = TestEnv::new().await;
    let org = env.org;
    let (_, admin) = env.member(org, "org_admin").await;
    env.user(Role::Teacher).await;
    let (_, student_token) = env.user(Role::Student).await;
    env.user(Role::Student).await;
    env.new_class(org).await;
    let pool = env.demo_pool(12).await;
    // Two tests of the student's, one of them ended; a tutoring session.
    let mut tests = Vec::new();
    for _ in 0..2 {
        let r = post(
            &env,
            &student_token,
            "/v1/tests",
            json!({ "pool_id": pool }),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        tests.push(r.body["test_id"].as_str().unwrap().to_owned());
    }
    let r = post(
        &env,
        &student_token,
        &format!("/v1/tests/{}/end", tests[0]),
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(
        &env,
        &student_token,
        "/v1/teaching/sessions",
        env.lesson(3).await,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let r = get(&env, &admin, &format!("/v1/organizations/{org}/stats")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "organization_id": org,
            "members": { "org_admin": 1, "teacher": 1, "student": 2, "total": 4 },
            "classes": 2,
            "pools": 1,
            "tests": { "running": 1, "ended": 1, "abandoned": 0 },
            "teaching_sessions": { "total": 1, "live": 1 },
        })
    );
    get(
        &env,
        &student_token,
        &format!("/v1/organizations/{org}/stats"),
    )
    .await
    .problem(403);
}
