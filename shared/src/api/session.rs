//! `session`: GET /v1/tests/{id}, and a student's history: GET
//! /v1/students/{id}/tests and GET /v1/students/{id}/proficiency.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ApiError;
use super::extract::{IdPath, Page};
use crate::App;
use crate::auth::{Caller, Use};
use crate::cache::Namespace;
use crate::cat::{self, Report};
use crate::store::StoreError;
use crate::store::students::{self, Ability, TestSummary};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/tests/{id}", get(report))
        .route("/v1/students/{id}/tests", get(tests))
        .route("/v1/students/{id}/proficiency", get(proficiency))
}

async fn report(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Report>, ApiError> {
    Ok(axum::Json(cat::report(&app, id, &caller).await?))
}

/// A student's records are theirs, their teachers' and the admins'; to anyone
/// else the student does not exist.
fn may_read(caller: &Caller, student: Uuid) -> Result<(), ApiError> {
    caller
        .may(Some(student), Use::Read)
        .map_err(|_| no_student(student))
}

/// A student's tests per page: 20 unless asked, at most 100.
type TestsPage = Page<20, 100>;

/// One test in a student's history.
#[derive(Serialize)]
pub struct TestSummaryView {
    test_id: Uuid,
    pool_id: Uuid,
    pool_version: i32,
    status: &'static str,
    items_answered: i32,
    correct_responses: i32,
    theta: f64,
    se: f64,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    ended_at: Option<OffsetDateTime>,
}

impl From<TestSummary> for TestSummaryView {
    fn from(t: TestSummary) -> Self {
        Self {
            test_id: t.id,
            pool_id: t.pool_id,
            pool_version: t.pool_version,
            status: t.status.as_str(),
            items_answered: t.items_answered,
            correct_responses: t.correct_count,
            theta: t.theta,
            se: t.se,
            started_at: t.started_at,
            ended_at: t.ended_at,
        }
    }
}

/// One page of a student's tests.
#[derive(Serialize)]
pub struct TestHistory {
    tests: Vec<TestSummaryView>,
    limit: i64,
    offset: i64,
    total: i64,
}

async fn tests(
    State(app): State<App>,
    caller: Caller,
    IdPath(student): IdPath,
    page: TestsPage,
) -> Result<Response, ApiError> {
    may_read(&caller, student)?;
    let key = format!("tests:{}:{}", page.limit, page.offset);
    let load = || async {
        let found = students::tests(app.db(), student, page.limit, page.offset).await?;
        Ok(found.map(|found| TestHistory {
            tests: found.tests.into_iter().map(Into::into).collect(),
            limit: page.limit,
            offset: page.offset,
            total: found.total,
        }))
    };
    let missing = || no_student(student);
    super::cached_json(&app, &Namespace::History(student), &key, load, missing).await
}

/// One long-term ability.
#[derive(Serialize)]
pub struct AbilityView {
    theta: f64,
    se: f64,
    n: i32,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A student's long-term proficiency, overall and by concept.
#[derive(Serialize)]
pub struct StudentProficiency {
    student_id: Uuid,
    overall: Option<AbilityView>,
    concepts: BTreeMap<String, AbilityView>,
}

async fn proficiency(
    State(app): State<App>,
    caller: Caller,
    IdPath(student): IdPath,
) -> Result<Response, ApiError> {
    may_read(&caller, student)?;
    let load = || proficiency_of(&app, student);
    let missing = || no_student(student);
    super::cached_json(
        &app,
        &Namespace::Proficiency(student),
        "proficiency",
        load,
        missing,
    )
    .await
}

/// A student's long-term proficiency from PostgreSQL; `None` when no such user.
async fn proficiency_of(
    app: &App,
    student: Uuid,
) -> Result<Option<StudentProficiency>, StoreError> {
    let Some(abilities) = students::proficiency(app.db(), student).await? else {
        return Ok(None);
    };
    let mut body = StudentProficiency {
        student_id: student,
        overall: None,
        concepts: BTreeMap::new(),
    };
    for Ability {
        concept,
        theta,
        se,
        n,
        updated_at,
    } in abilities
    {
        let view = AbilityView {
            theta,
            se,
            n,
            updated_at,
        };
        // The store keeps the overall ability under the empty concept name.
        if concept.is_empty() {
            body.overall = Some(view);
        } else {
            body.concepts.insert(concept, view);
        }
    }
    Ok(Some(body))
}

fn no_student(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no student with id {id}"))
}
