//! What every Lambda `main` does: logging, config, then serve one router (or,
//! for the scheduled sweeper and the WebSocket API, one event handler).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::Router;
use lambda_runtime::{LambdaEvent, service_fn};

use crate::api::ws::gateway::{self, Gateway};
use crate::store::StoreError;
use crate::sweep::{self, SweepReport};
use crate::{App, config::Config};

/// Builds the app from the environment and serves `router` on the Lambda
/// runtime. Bad configuration ends the process with one clear line.
pub async fn serve(router: fn(App) -> Router) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    lambda_http::run(router(app_or_exit())).await
}

/// Builds the app from the environment and sweeps on every event the
/// EventBridge schedule sends, answering with the [`SweepReport`].
pub async fn serve_sweeper() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    let app = &app_or_exit();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            on_schedule(app, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

/// One scheduled event: a sweep. The event's content does not matter (any JSON
/// is accepted), so a manual `aws lambda invoke` with `{}` sweeps too. A failed
/// sweep fails the invocation, so it shows in the function's error metrics.
pub async fn on_schedule(app: &App, _event: serde_json::Value) -> Result<SweepReport, StoreError> {
    sweep::sweep(app).await
}

/// Builds the app and the Management API client from the environment and
/// answers the WebSocket API's `$connect`, `$disconnect` and `$default`
/// events (see [`crate::api::ws::gateway`]).
pub async fn serve_ws() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    let app = &app_or_exit();
    let gateway = &Gateway::from_env().unwrap_or_else(|line| {
        eprintln!("{line}");
        std::process::exit(1);
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(gateway::handle(app, gateway, event.payload).await)
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
