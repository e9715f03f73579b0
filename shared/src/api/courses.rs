//! Courses and progress (served by the `teach` function): POST /v1/courses
//! (import: create, or a new version of the course with that key), GET and
//! PUT /v1/courses/{id}, GET /v1/organizations/{id}/courses, GET
//! /v1/students/{id}/progress, GET /v1/classes/{id}/progress.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiError;
use super::extract::{IdPath, Json, Page, Query, QueryInt};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::courses::{
    self, ClassProgress, CourseDoc, CoursePage, CourseView, StudentProgress,
};
use crate::store::courses::Imported;

/// Largest course document accepted, in bytes (other bodies: [`super::MAX_BODY_BYTES`]).
pub const MAX_COURSE_BYTES: usize = 2 * 1024 * 1024;

/// The routes, before the shared layers.
pub fn routes() -> Router<App> {
    let big = || DefaultBodyLimit::max(MAX_COURSE_BYTES);
    Router::new()
        .route("/v1/courses", post(import).layer(big()))
        .route("/v1/courses/{id}", get(course).put(revise).layer(big()))
        .route("/v1/organizations/{id}/courses", get(of_organization))
        .route("/v1/students/{id}/progress", get(student_progress))
        .route("/v1/classes/{id}/progress", get(class_progress))
}

type Reply<T> = Result<axum::Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Import {
    organization_id: Uuid,
    course: CourseDoc,
}

/// What an import answers: the course's latest version and what was done.
#[derive(Serialize)]
struct ImportReply {
    /// `created`, `versioned` or `unchanged`.
    outcome: &'static str,
    #[serde(flatten)]
    course: CourseView,
}

async fn import(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<Import>,
) -> Result<impl IntoResponse, ApiError> {
    let written = courses::import(&app, caller.user_id, body.organization_id, body.course).await?;
    let (status, outcome) = match written.outcome {
        Imported::Created => (StatusCode::CREATED, "created"),
        Imported::Versioned => (StatusCode::OK, "versioned"),
        Imported::Unchanged => (StatusCode::OK, "unchanged"),
    };
    let location = format!("/v1/courses/{}", written.course.id);
    Ok((
        status,
        [(header::LOCATION, location)],
        axum::Json(ImportReply {
            outcome,
            course: written.course,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    version: Option<QueryInt<i32>>,
}

async fn course(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Query(q): Query<VersionQuery>,
) -> Reply<CourseView> {
    let version = q.version.map(|v| v.get("version")).transpose()?;
    if version.is_some_and(|v| v < 1) {
        return Err(ApiError::invalid("version must be at least 1"));
    }
    Ok(axum::Json(
        courses::get(&app, caller.user_id, id, version).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revision {
    /// The version the writer started from: 409 if the course moved on.
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    expected_version: Option<i32>,
    course: CourseDoc,
}

async fn revise(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<Revision>,
) -> Reply<CourseView> {
    if body.expected_version.is_some_and(|v| v < 1) {
        return Err(ApiError::invalid("expected_version must be at least 1"));
    }
    Ok(axum::Json(
        courses::revise(&app, caller.user_id, id, body.expected_version, body.course).await?,
    ))
}

async fn of_organization(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: Page<50, 500>,
) -> Reply<CoursePage> {
    Ok(axum::Json(
        courses::list(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn student_progress(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Reply<StudentProgress> {
    Ok(axum::Json(
        courses::student_progress(&app, &caller, id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseQuery {
    course_id: Uuid,
}

async fn class_progress(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Query(q): Query<CourseQuery>,
) -> Reply<ClassProgress> {
    Ok(axum::Json(
        courses::class_progress(&app, caller.user_id, id, q.course_id).await?,
    ))
}
