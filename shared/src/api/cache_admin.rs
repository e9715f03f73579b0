//! `cache-admin`: what operators see of Redis, the cache, the running tests and
//! the auth sessions, and the repairs they may make: the deployment's to
//! platform admins, an organization's running tests to its org admins (see `ROUTES`).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, Json, Page, Query, QueryInt};
use crate::app::App;
use crate::cache::admin::{CacheStats, CleanupReport};
use crate::services::auth::Caller;
use crate::services::auth::sessions;
use crate::services::cache_admin;
use crate::services::cat::admin::{self, ActivePage, Extended, Inspection, RunningPage};
use crate::services::teach;
use crate::store::auth::SessionCounts;
use crate::store::redis_stats::RedisStats;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/admin/tests/active", get(active))
        .route("/v1/organizations/{id}/tests/active", get(running_in))
        .route("/v1/admin/tests/{id}", get(inspect))
        .route("/v1/admin/tests/{id}/sync", post(sync))
        .route("/v1/admin/tests/{id}/extend", post(extend))
        .route("/v1/admin/redis/stats", get(redis_stats))
        .route("/v1/admin/sessions/stats", get(session_stats))
        .route("/v1/admin/cache/stats", get(cache_stats))
        .route(
            "/v1/admin/cache/invalidate/user/{id}",
            post(invalidate_user),
        )
        .route(
            "/v1/admin/cache/invalidate/pool/{id}",
            post(invalidate_pool),
        )
        .route("/v1/admin/cache/cleanup", post(cache_cleanup))
        .route("/v1/admin/teaching/stats", get(teaching_stats))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    hours: Option<QueryInt<u32>>,
}

/// Live tutoring sessions, and what the sessions of the last `hours` did.
async fn teaching_stats(
    State(app): State<App>,
    Query(window): Query<Window>,
) -> Result<axum::Json<teach::Stats>, ApiError> {
    let hours = window.hours.map(|h| h.get("hours")).transpose()?;
    Ok(axum::Json(teach::stats(&app, hours).await?))
}

async fn cache_stats(State(app): State<App>) -> Result<axum::Json<CacheStats>, ApiError> {
    Ok(axum::Json(cache_admin::cache_stats(&app).await?))
}

async fn cache_cleanup(State(app): State<App>) -> Result<axum::Json<CleanupReport>, ApiError> {
    Ok(axum::Json(cache_admin::cleanup(&app).await?))
}

/// What an invalidation bumped.
#[derive(serde::Serialize)]
struct Invalidated {
    namespaces: Vec<String>,
}

async fn invalidate_user(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Invalidated>, ApiError> {
    let namespaces = cache_admin::invalidate_user(&app, id).await?;
    Ok(axum::Json(Invalidated { namespaces }))
}

async fn invalidate_pool(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Invalidated>, ApiError> {
    let namespaces = cache_admin::invalidate_pool(&app, id).await?;
    Ok(axum::Json(Invalidated { namespaces }))
}

async fn session_stats(State(app): State<App>) -> Result<axum::Json<SessionCounts>, ApiError> {
    Ok(axum::Json(sessions::stats(&app).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveQuery {
    cursor: Option<String>,
    limit: Option<QueryInt<usize>>,
}

async fn active(
    State(app): State<App>,
    Query(q): Query<ActiveQuery>,
) -> Result<axum::Json<ActivePage>, ApiError> {
    let limit = q.limit.map(|l| l.get("limit")).transpose()?;
    Ok(axum::Json(
        admin::active(&app, q.cursor.as_deref(), limit).await?,
    ))
}

/// Running tests per page: 50 unless asked, at most 200.
type RunningPageQuery = Page<50, 200>;

async fn running_in(
    State(app): State<App>,
    caller: Caller,
    IdPath(org): IdPath,
    page: RunningPageQuery,
) -> Result<axum::Json<RunningPage>, ApiError> {
    Ok(axum::Json(
        admin::running_in(&app, &caller, org, page.limit, page.offset).await?,
    ))
}

async fn inspect(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Inspection>, ApiError> {
    Ok(axum::Json(admin::inspect(&app, &caller, id).await?))
}

async fn sync(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<Inspection>, ApiError> {
    Ok(axum::Json(admin::sync(&app, &caller, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    #[serde(deserialize_with = "crate::wire::integer")]
    seconds: u32,
}

async fn extend(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(req): Json<ExtendRequest>,
) -> Result<axum::Json<Extended>, ApiError> {
    Ok(axum::Json(
        admin::extend(&app, &caller, id, req.seconds).await?,
    ))
}

async fn redis_stats(State(app): State<App>) -> Result<axum::Json<RedisStats>, ApiError> {
    Ok(axum::Json(cache_admin::redis_stats(&app).await?))
}
