//! `assessments`: assessments and their versions, assignments, extra time,
//! release of results and the gradebook (see `services::assessments`). An
//! attempt is started by `start` (POST /v1/tests with `assignment_id`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, IdUserPath, Json, Page, Query, QueryInt, wants_csv};
use crate::app::App;
use crate::services::assessments::{
    self, AccommodationInput, AccommodationView, AssessmentInput, AssessmentPage, AssessmentView,
    AssignmentInput, AssignmentPage, AssignmentView, GradePage, MyAssignmentPage, Released,
};
use crate::services::auth::Caller;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish_creating(
        routes(),
        app,
        &[
            super::idempotency::ASSESSMENTS,
            super::idempotency::ASSIGNMENTS,
        ],
    )
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/assessments", post(create))
        .route("/v1/assessments/{id}", get(assessment).put(revise))
        .route("/v1/organizations/{id}/assessments", get(of_organization))
        .route("/v1/assignments", post(assign).get(mine))
        .route("/v1/assignments/{id}", get(assignment))
        .route("/v1/assignments/{id}/release", post(release))
        .route(
            "/v1/assignments/{id}/accommodations/{user_id}",
            put(accommodate),
        )
        .route("/v1/assignments/{id}/gradebook", get(gradebook))
        .route("/v1/classes/{id}/assignments", get(of_class))
        .route("/v1/classes/{id}/gradebook", get(class_gradebook))
}

/// Entries per page: 50 unless asked, at most 500.
type ListPage = Page<50, 500>;

type Reply<T> = Result<axum::Json<T>, ApiError>;

async fn create(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<AssessmentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let created = assessments::create(&app, caller.user_id, body).await?;
    let location = format!("/v1/assessments/{}", created.id());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    version: Option<QueryInt<i32>>,
}

async fn assessment(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Query(q): Query<VersionQuery>,
) -> Reply<AssessmentView> {
    let version = q.version.map(|v| v.get("version")).transpose()?;
    if version.is_some_and(|v| v < 1) {
        return Err(ApiError::invalid("version must be at least 1"));
    }
    Ok(axum::Json(
        assessments::get(&app, caller.user_id, id, version).await?,
    ))
}

async fn revise(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<AssessmentInput>,
) -> Reply<AssessmentView> {
    Ok(axum::Json(
        assessments::revise(&app, caller.user_id, id, body).await?,
    ))
}

async fn of_organization(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<AssessmentPage> {
    Ok(axum::Json(
        assessments::list(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn assign(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<AssignmentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let created = assessments::assign(&app, caller.user_id, body).await?;
    let location = format!("/v1/assignments/{}", created.id());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    ))
}

async fn mine(State(app): State<App>, caller: Caller, page: ListPage) -> Reply<MyAssignmentPage> {
    Ok(axum::Json(
        assessments::mine(&app, caller.user_id, page.limit, page.offset).await?,
    ))
}

async fn assignment(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Reply<AssignmentView> {
    Ok(axum::Json(
        assessments::assignment(&app, caller.user_id, id).await?,
    ))
}

async fn release(State(app): State<App>, caller: Caller, IdPath(id): IdPath) -> Reply<Released> {
    Ok(axum::Json(
        assessments::release(&app, caller.user_id, id).await?,
    ))
}

async fn accommodate(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(id, user): IdUserPath,
    Json(body): Json<AccommodationInput>,
) -> Reply<AccommodationView> {
    Ok(axum::Json(
        assessments::accommodate(&app, caller.user_id, id, user, body).await?,
    ))
}

async fn of_class(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<AssignmentPage> {
    Ok(axum::Json(
        assessments::of_class(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn gradebook(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    page: ListPage,
) -> Result<Response, ApiError> {
    let grades =
        assessments::gradebook(&app, caller.user_id, Ok(id), page.limit, page.offset).await?;
    Ok(grades_as_asked(&headers, grades))
}

async fn class_gradebook(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    page: ListPage,
) -> Result<Response, ApiError> {
    let grades =
        assessments::gradebook(&app, caller.user_id, Err(id), page.limit, page.offset).await?;
    Ok(grades_as_asked(&headers, grades))
}

/// CSV when the client accepts `text/csv` (and not JSON first), else JSON.
fn grades_as_asked(headers: &HeaderMap, grades: GradePage) -> Response {
    if wants_csv(headers, "application/json") {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            grades.to_csv(),
        )
            .into_response()
    } else {
        axum::Json(grades).into_response()
    }
}
