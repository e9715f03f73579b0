//! What every Lambda `main` does: logging, config, then serve one router (or,
//! for the scheduled sweeper and the WebSocket API, one event handler), each
//! invocation in its own log span and followed by one EMF metrics record.
//!
//! Nothing here connects: the app connects to Redis and PostgreSQL when the
//! first request needs them, so a cold start is process start plus parsing
//! the configuration.

use std::time::Instant;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use lambda_runtime::{LambdaEvent, service_fn};
use tracing::Instrument;

use crate::api::ws::gateway::{self, Gateway};
use crate::services::sweep::{self, SweepReport};
use crate::store::StoreError;
use crate::telemetry::{self, Emf, Unit};
use crate::{App, config::Config};

/// Builds the app from the environment and serves `router` on the Lambda
/// runtime. Bad configuration ends the process with one clear line.
pub async fn serve(router: fn(App) -> Router) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let app = app_or_exit();
    lambda_http::run(observed(router(app.clone()), app)).await
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
    let response = next.run(request).instrument(span.clone()).await;
    let (hits_after, misses_after) = app.cache().hit_counts();
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "request"));
    request_record(&app, route, latency_ms, status >= 500)
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

/// The EMF record every request or message starts with: `Requests`,
/// `Latency` and `Errors`, by function and route.
fn request_record(app: &App, route: String, latency_ms: f64, failed: bool) -> Emf {
    Emf::new(&app.config().metrics_namespace)
        .dimension("Function", telemetry::function_name())
        .dimension("Route", route)
        .metric("Requests", Unit::Count, 1.0)
        .metric("Latency", Unit::Milliseconds, latency_ms)
        .metric("Errors", Unit::Count, f64::from(u8::from(failed)))
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

/// Builds the app from the environment and sweeps on every event the
/// EventBridge schedule sends, answering with the [`SweepReport`].
pub async fn serve_sweeper() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let app = &app_or_exit();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            on_schedule(app, event.payload)
                .instrument(telemetry::invocation(Some(&event.context), "schedule"))
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

/// One scheduled event: a sweep, then an EMF record of it with `ActiveTests`
/// (tests still active afterwards). The event's content does not matter (any
/// JSON is accepted), so a manual `aws lambda invoke` with `{}` sweeps too. A
/// failed sweep fails the invocation, so it shows in the function's error metrics.
pub async fn on_schedule(app: &App, _event: serde_json::Value) -> Result<SweepReport, StoreError> {
    let report = sweep::sweep(app).await?;
    let active = crate::store::sweep::active_tests(app.db()).await?;
    Emf::new(&app.config().metrics_namespace)
        .dimension("Function", telemetry::function_name())
        .metric("ActiveTests", Unit::Count, active as f64)
        .metric("TestsAbandoned", Unit::Count, report.abandoned as f64)
        .emit();
    Ok(report)
}

/// Builds the app and the Management API client from the environment and
/// answers the WebSocket API's `$connect`, `$disconnect` and `$default`
/// events (see [`crate::api::ws::gateway`]).
pub async fn serve_ws() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let app = &app_or_exit();
    let gateway = &Gateway::from_env().unwrap_or_else(|line| {
        eprintln!("{line}");
        std::process::exit(1);
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let started = Instant::now();
            let route = event
                .payload
                .request_context
                .route_key
                .clone()
                .unwrap_or_else(|| "$default".into());
            let span = telemetry::invocation(Some(&event.context), &route);
            let response = gateway::handle(app, gateway, event.payload)
                .instrument(span.clone())
                .await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            span.in_scope(|| tracing::info!(status = response.status_code, latency_ms, "message"));
            request_record(app, route, latency_ms, response.status_code >= 500)
                .property("RequestId", event.context.request_id)
                .emit();
            Ok::<_, lambda_runtime::Error>(response)
        },
    ))
    .await
}

fn app_or_exit() -> App {
    match app_from_env() {
        Ok(app) => app,
        Err(line) => {
            eprintln!("{line}");
            std::process::exit(1);
        }
    }
}

fn app_from_env() -> Result<App, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    App::new(config).map_err(|e| e.to_string())
}
