//! `cache-admin`: what operators see of Redis, the cache, the running tests and
//! the auth sessions, and the repairs they may make. Admins only (see `ROUTES`).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, Json, Query, QueryInt};
use crate::App;
use crate::auth::sessions;
use crate::cache::Namespace;
use crate::cache::admin::{self as cache_admin, CacheStats, CleanupReport};
use crate::cat::admin::{self, ActivePage, Extended, Inspection};
use crate::store::auth::SessionCounts;
use crate::store::redis::RedisStats;
use crate::store::{pools, users};
use crate::teach;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/admin/tests/active", get(active))
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

/// Live tutoring sessions, and what the sessions of the last `hours` (default 24, at most 720) did.
async fn teaching_stats(
    State(app): State<App>,
    Query(window): Query<Window>,
) -> Result<axum::Json<teach::Stats>, ApiError> {
    let hours = window
        .hours
        .map(|h| h.get("hours"))
        .transpose()?
        .unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid("hours must be from 1 to 720"));
    }
    Ok(axum::Json(teach::stats(&app, hours).await?))
}

/// Most keys one cache scan looks at (stats, or one cleanup call).
const CACHE_SCAN_LIMIT: u64 = 1_000_000;

async fn cache_stats(State(app): State<App>) -> Result<axum::Json<CacheStats>, ApiError> {
    Ok(axum::Json(
        cache_admin::stats(&app, CACHE_SCAN_LIMIT).await?,
    ))
}

async fn cache_cleanup(State(app): State<App>) -> Result<axum::Json<CleanupReport>, ApiError> {
    Ok(axum::Json(
        cache_admin::cleanup(&app, CACHE_SCAN_LIMIT).await?,
    ))
}

/// What an invalidation bumped.
#[derive(serde::Serialize)]
struct Invalidated {
    namespaces: Vec<String>,
}

async fn invalidate(
    app: &App,
    namespaces: &[Namespace],
) -> Result<axum::Json<Invalidated>, ApiError> {
    if !app.cache().invalidate(namespaces).await {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Redis is unavailable; the invalidation is queued in this container and retried with its next cache access",
        ));
    }
    Ok(axum::Json(Invalidated {
        namespaces: namespaces.iter().filter_map(Namespace::name).collect(),
    }))
}

async fn invalidate_user(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Invalidated>, ApiError> {
    if users::get(app.db(), id).await?.is_none() {
        return Err(ApiError::not_found(format!("no user with id {id}")));
    }
    invalidate(&app, &Namespace::all_of_user(id)).await
}

async fn invalidate_pool(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Invalidated>, ApiError> {
    if pools::summary_of(app.db(), id).await?.is_none() {
        return Err(ApiError::not_found(format!("no pool with id {id}")));
    }
    invalidate(&app, &[Namespace::Pool(id), Namespace::Pools]).await
}

async fn session_stats(State(app): State<App>) -> Result<axum::Json<SessionCounts>, ApiError> {
    Ok(axum::Json(sessions::stats(&app).await?))
}

/// Most keys `redis/stats` looks at.
const STATS_SCAN_LIMIT: usize = 100_000;

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
    let limit = q.limit.map(|l| l.get("limit")).transpose()?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be from 1 to 1000 (got {limit})"
        )));
    }
    let cursor = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            ApiError::invalid(format!(
                "cursor must be a next_cursor of an earlier page (got {c:?})"
            ))
        })?,
    };
    Ok(axum::Json(admin::active(&app, cursor, limit).await?))
}

async fn inspect(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Inspection>, ApiError> {
    Ok(axum::Json(admin::inspect(&app, id).await?))
}

async fn sync(
    State(app): State<App>,
    IdPath(id): IdPath,
) -> Result<axum::Json<Inspection>, ApiError> {
    Ok(axum::Json(admin::sync(&app, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    #[serde(deserialize_with = "crate::wire::integer")]
    seconds: u32,
}

async fn extend(
    State(app): State<App>,
    IdPath(id): IdPath,
    Json(req): Json<ExtendRequest>,
) -> Result<axum::Json<Extended>, ApiError> {
    Ok(axum::Json(admin::extend(&app, id, req.seconds).await?))
}

async fn redis_stats(State(app): State<App>) -> Result<axum::Json<RedisStats>, ApiError> {
    Ok(axum::Json(app.redis().stats(STATS_SCAN_LIMIT).await?))
}
