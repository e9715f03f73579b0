//! HTTP handlers, one module per Lambda function, and the route table that
//! template.yaml and openapi.yaml must agree with.

pub mod admin;
pub mod end;
pub mod error;
pub mod extract;
pub mod health;
pub mod next;
pub mod pools;
pub mod session;
pub mod start;
pub mod submit;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};

pub use error::ApiError;

use crate::App;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One route: which function serves `method path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path as API Gateway and axum write it (`{id}` for a parameter).
    pub path: &'static str,
    /// The Lambda function (`functions/<function>`).
    pub function: &'static str,
}

const fn route(method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route {
        method,
        path,
        function,
    }
}

/// Every HTTP route, the single source the template and the OpenAPI file are checked against.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/tests", "start"),
    route("POST", "/v1/tests/{id}/responses", "submit"),
    route("GET", "/v1/tests/{id}/next", "next"),
    route("POST", "/v1/tests/{id}/end", "end"),
    route("GET", "/v1/tests/{id}", "session"),
    route("GET", "/v1/students/{id}/tests", "session"),
    route("GET", "/v1/students/{id}/proficiency", "session"),
    route("POST", "/v1/pools", "pools"),
    route("GET", "/v1/pools", "pools"),
    route("GET", "/v1/pools/{id}", "pools"),
    route("POST", "/v1/pools/{id}/items", "pools"),
    route("GET", "/v1/health", "health"),
    route("GET", "/v1/admin/tests/active", "cache-admin"),
    route("GET", "/v1/admin/tests/{id}", "cache-admin"),
    route("POST", "/v1/admin/tests/{id}/sync", "cache-admin"),
    route("POST", "/v1/admin/tests/{id}/extend", "cache-admin"),
    route("GET", "/v1/admin/redis/stats", "cache-admin"),
];

/// Builds one function's routes (before the shared layers).
pub type Routes = fn() -> Router<App>;

/// Each function's routes, by function name.
pub const FUNCTIONS: &[(&str, Routes)] = &[
    ("start", start::routes),
    ("submit", submit::routes),
    ("next", next::routes),
    ("end", end::routes),
    ("session", session::routes),
    ("pools", pools::routes),
    ("health", health::routes),
    ("cache-admin", admin::routes),
];

/// Every route in one router: the local server.
pub fn router(app: App) -> Router {
    finish(
        FUNCTIONS
            .iter()
            .fold(Router::new(), |all, (_, routes)| all.merge(routes())),
        app,
    )
}

/// The layers every function shares: body limit, problem+json fallbacks, state.
pub fn finish(routes: Router<App>, app: App) -> Router {
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no-route",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
