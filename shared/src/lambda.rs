//! What every Lambda `main` does: logging, config, then serve one router.

use axum::Router;

use crate::{App, config::Config};

/// Builds the app from the environment and serves `router` on the Lambda
/// runtime. Bad configuration ends the process with one clear line.
pub async fn serve(router: fn(App) -> Router) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app = match app_from_env() {
        Ok(app) => app,
        Err(line) => {
            eprintln!("{line}");
            std::process::exit(1);
        }
    };
    lambda_http::run(router(app)).await
}

fn app_from_env() -> Result<App, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    App::new(config).map_err(|e| e.to_string())
}
