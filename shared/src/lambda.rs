//! The Lambda runtime glue every `main` uses: logging, the state built from
//! the environment, then one router (HTTP functions) or one event handler
//! (`sweeper`, `migrate`, `teach-ws`: see `api::<function>`), each invocation
//! in its own log span; every HTTP request is followed by one EMF record.
//!
//! Nothing here connects: the app connects to Redis and PostgreSQL when the
//! first request needs them, so a cold start is process start plus parsing
//! the configuration.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::telemetry::{self, Unit};

/// Builds the app from the environment and serves `router` on the Lambda
/// runtime. Bad configuration ends the process with one clear line.
pub async fn serve(router: fn(App) -> Router) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let app = or_exit(App::from_env());
    lambda_http::run(observed(router(app.clone()), app)).await
}

/// Builds the function's state with `state` (bad configuration ends the
/// process with one clear line), then hands it every event to `handler`.
pub async fn serve_events<S, E, R>(
    state: fn() -> Result<S, String>,
    handler: impl AsyncFn(&S, LambdaEvent<E>) -> Result<R, lambda_runtime::Error>,
) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned,
    R: Serialize,
{
    telemetry::init();
    let state = &or_exit(state());
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event| handler(state, event))).await
}

fn or_exit<S>(state: Result<S, String>) -> S {
    state.unwrap_or_else(|line| {
        eprintln!("{line}");
        std::process::exit(1);
    })
}

/// `router` with every request observed (see [`observe`]).
pub fn observed(router: Router, app: App) -> Router {
    router.layer(axum::middleware::from_fn_with_state(app, observe))
}

/// Runs one request inside its invocation span, then logs one access line and
/// writes one EMF record: requests, latency, 5xx and 4xx, and the cache hits
/// and misses of this request (a Lambda container serves one request at a
/// time, so the process's counters moved for this request only).
async fn observe(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = request.lambda_context_ref();
    let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
    let route = route_of(&request);
    let span = telemetry::invocation(context, &route);
    let (hits, misses) = app.cache().hit_counts();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let (hits_after, misses_after) = app.cache().hit_counts();
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "request"));
    let namespace = &app.config().metrics_namespace;
    telemetry::request_record(namespace, route, latency_ms, status >= 500)
        .metric(
            "ClientErrors",
            Unit::Count,
            f64::from(u8::from((400..500).contains(&status))),
        )
        .metric("CacheHits", Unit::Count, (hits_after - hits) as f64)
        .metric("CacheMisses", Unit::Count, (misses_after - misses) as f64)
        .property("RequestId", request_id)
        .property("Status", status)
        .emit();
    response
}

/// The route as API Gateway matched it (`POST /v1/tests/{id}/responses`), so
/// metrics have one series per route, not per test id.
fn route_of(request: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = request.request_context_ref()
        && let Some(route) = ctx.route_key.as_deref()
        && route != "$default"
    {
        return route.to_owned();
    }
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    format!("{} {path}", request.method())
}
