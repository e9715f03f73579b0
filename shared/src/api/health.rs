//! `health`: GET /v1/health: can this function reach Redis and PostgreSQL?
//! `ok` with both, `degraded` without Redis (tests are served from PostgreSQL),
//! `error` (503) without PostgreSQL.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use crate::app::App;
use crate::store::{StoreError, db};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new().route("/v1/health", get(health))
}

#[derive(Serialize)]
struct Check {
    status: &'static str,
    latency_ms: f64,
}

#[derive(Serialize)]
struct Checks {
    redis: Check,
    postgres: Check,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    checks: Checks,
}

fn check(result: Result<Duration, StoreError>, started: std::time::Instant) -> Check {
    match result {
        Ok(latency) => Check {
            status: "ok",
            latency_ms: latency.as_secs_f64() * 1e3,
        },
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            Check {
                status: "error",
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
            }
        }
    }
}

async fn health(State(app): State<App>) -> (StatusCode, axum::Json<Health>) {
    let started = std::time::Instant::now();
    let (redis, postgres) = tokio::join!(app.redis().ping(), db::ping(app.db()));
    let checks = Checks {
        redis: check(redis, started),
        postgres: check(postgres, started),
    };
    // Without Redis, tests are still served from PostgreSQL (slower): degraded, not down.
    let (code, status) = match (checks.redis.status, checks.postgres.status) {
        ("ok", "ok") => (StatusCode::OK, "ok"),
        (_, "ok") => (StatusCode::OK, "degraded"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "error"),
    };
    (code, axum::Json(Health { status, checks }))
}
