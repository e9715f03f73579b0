//! `start`: POST /v1/tests.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Deserialize;
use uuid::Uuid;

use super::ApiError;
use super::extract::Json;
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::cat::{self, StartRequest, TestConfig, TestConfigInput};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish_creating(routes(), app, &[super::idempotency::TESTS])
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/tests", post(start))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default, deserialize_with = "crate::wire::some")]
    pool_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    assignment_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    student_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    organization_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some_object")]
    config: Option<TestConfigInput>,
}

/// An attempt at an assignment (`assignment_id`: the design is the
/// assessment's), or an ad-hoc test on a pool (`pool_id`): the caller's own,
/// or, for staff, a student's they teach or administer, with a `config` of
/// their choosing.
async fn start(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<Body>,
) -> Result<impl IntoResponse, ApiError> {
    let started = match (body.assignment_id, body.pool_id) {
        (Some(assignment), None) => {
            if body.student_id.is_some() || body.organization_id.is_some() || body.config.is_some()
            {
                return Err(ApiError::invalid(
                    "an attempt at an assignment takes only assignment_id: its design, student and organization are the assignment's",
                ));
            }
            cat::start_attempt(&app, &caller, assignment).await?
        }
        (None, Some(pool_id)) => {
            let config = body.config.map(TestConfig::resolve).transpose()?;
            cat::start(
                &app,
                &caller,
                StartRequest {
                    pool_id,
                    student_id: body.student_id,
                    organization_id: body.organization_id,
                    config,
                },
            )
            .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "give either pool_id (an ad-hoc test) or assignment_id (an attempt at an assignment)",
            ));
        }
    };
    let location = format!("/v1/tests/{}", started.test_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(started),
    ))
}
