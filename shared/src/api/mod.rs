//! Handlers, one module per Lambda function (`functions/<f>` ↔ `api::<f>`,
//! the event-driven `sweeper`, `events`, `migrate`, `calibrate` and `teach_ws` included), and the
//! route table that template.yaml and openapi.yaml must agree with.

pub mod access;
pub mod assessments;
pub mod auth;
pub mod cache_admin;
pub mod calibrate;
pub mod courses;
pub mod end;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod migrate;
pub mod next;
pub mod orgs;
pub mod pools;
pub mod reports;
pub mod start;
pub mod submit;
pub mod sweeper;
pub mod teach;
pub mod teach_ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};

pub use access::Access;
pub use error::ApiError;

use crate::app::App;
use crate::services::CachedJson;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One route: which function serves `method path`, and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path as API Gateway and axum write it (`{id}` for a parameter).
    pub path: &'static str,
    /// The Lambda function (`functions/<function>`).
    pub function: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: &'static str,
    access: Access,
) -> Route {
    Route {
        method,
        path,
        function,
        access,
    }
}

use Access::{
    ClassStaff, Member, Open, OrgAdmin, OrgStaff, Owner, OwnerOrOrgAdmin, OwnerOrStaff, Platform,
    Public, Signed,
};

/// Every HTTP route, the single source the template, the OpenAPI file and the
/// access checks are held to.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/tests", "start", Member),
    route("POST", "/v1/tests/{id}/responses", "submit", Owner),
    route("GET", "/v1/tests/{id}/next", "next", Owner),
    route("POST", "/v1/tests/{id}/end", "end", Owner),
    route("GET", "/v1/tests/{id}", "reports", OwnerOrStaff),
    route("GET", "/v1/students/{id}/tests", "reports", OwnerOrStaff),
    route(
        "GET",
        "/v1/students/{id}/proficiency",
        "reports",
        OwnerOrStaff,
    ),
    route("POST", "/v1/pools", "pools", OrgStaff),
    route("GET", "/v1/pools", "pools", Signed),
    route("GET", "/v1/pools/{id}", "pools", OrgStaff),
    route("POST", "/v1/pools/{id}/items", "pools", OrgStaff),
    route("GET", "/v1/pools/{id}/responses", "pools", OrgStaff),
    route("GET", "/v1/pools/{id}/stats", "pools", OrgStaff),
    route("POST", "/v1/pools/{id}/calibrations", "pools", OrgStaff),
    route("GET", "/v1/calibrations/{id}", "pools", OrgStaff),
    route("POST", "/v1/calibrations/{id}/promote", "pools", OrgStaff),
    route("POST", "/v1/teaching/sessions", "teach", Member),
    route("GET", "/v1/teaching/sessions/{id}", "teach", OwnerOrStaff),
    route("POST", "/v1/teaching/sessions/{id}/input", "teach", Owner),
    route("POST", "/v1/teaching/sessions/{id}/end", "teach", Owner),
    route("POST", "/v1/courses", "teach", OrgStaff),
    route("GET", "/v1/courses/{id}", "teach", Member),
    route("PUT", "/v1/courses/{id}", "teach", OrgStaff),
    route("GET", "/v1/organizations/{id}/courses", "teach", Member),
    route("GET", "/v1/students/{id}/progress", "teach", OwnerOrStaff),
    route("GET", "/v1/classes/{id}/progress", "teach", ClassStaff),
    route("GET", "/v1/health", "health", Public),
    route("POST", "/v1/users", "auth", Open),
    route("GET", "/v1/users/{id}", "auth", OwnerOrStaff),
    route("GET", "/v1/users/{id}/sessions", "auth", OrgAdmin),
    route("GET", "/v1/audit", "orgs", OrgAdmin),
    route("DELETE", "/v1/users/{id}/sessions", "auth", OrgAdmin),
    route(
        "DELETE",
        "/v1/users/{id}/sessions/{session_id}",
        "auth",
        OrgAdmin,
    ),
    route("POST", "/v1/users/{id}/disable", "auth", OrgAdmin),
    route("POST", "/v1/users/{id}/enable", "auth", OrgAdmin),
    route("GET", "/v1/users/{id}/export", "auth", OwnerOrOrgAdmin),
    route("POST", "/v1/users/{id}/erase", "auth", OrgAdmin),
    route("POST", "/v1/sessions", "auth", Public),
    route("GET", "/v1/sessions", "auth", Signed),
    route("GET", "/v1/sessions/current", "auth", Signed),
    route("POST", "/v1/sessions/current/extend", "auth", Signed),
    route("DELETE", "/v1/sessions/current", "auth", Signed),
    route("DELETE", "/v1/sessions", "auth", Signed),
    route("GET", "/v1/oauth/{provider}/authorize", "auth", Public),
    route("GET", "/v1/oauth/{provider}/callback", "auth", Public),
    route("GET", "/v1/admin/tests/active", "cache-admin", Platform),
    route(
        "GET",
        "/v1/organizations/{id}/tests/active",
        "cache-admin",
        OrgAdmin,
    ),
    route("GET", "/v1/admin/tests/{id}", "cache-admin", OrgAdmin),
    route("POST", "/v1/admin/tests/{id}/sync", "cache-admin", OrgAdmin),
    route(
        "POST",
        "/v1/admin/tests/{id}/extend",
        "cache-admin",
        OrgAdmin,
    ),
    route("GET", "/v1/admin/redis/stats", "cache-admin", Platform),
    route("GET", "/v1/admin/sessions/stats", "cache-admin", Platform),
    route("GET", "/v1/admin/cache/stats", "cache-admin", Platform),
    route(
        "POST",
        "/v1/admin/cache/invalidate/user/{id}",
        "cache-admin",
        Platform,
    ),
    route(
        "POST",
        "/v1/admin/cache/invalidate/pool/{id}",
        "cache-admin",
        Platform,
    ),
    route("POST", "/v1/admin/cache/cleanup", "cache-admin", Platform),
    route("GET", "/v1/admin/teaching/stats", "cache-admin", Platform),
    route("POST", "/v1/organizations", "orgs", Platform),
    route("GET", "/v1/organizations", "orgs", Signed),
    route("GET", "/v1/organizations/{id}", "orgs", Member),
    route("GET", "/v1/organizations/{id}/members", "orgs", OrgAdmin),
    route("POST", "/v1/organizations/{id}/members", "orgs", OrgAdmin),
    route(
        "PATCH",
        "/v1/organizations/{id}/members/{user_id}",
        "orgs",
        OrgAdmin,
    ),
    route(
        "DELETE",
        "/v1/organizations/{id}/members/{user_id}",
        "orgs",
        OrgAdmin,
    ),
    route("POST", "/v1/organizations/{id}/classes", "orgs", OrgAdmin),
    route("GET", "/v1/organizations/{id}/classes", "orgs", OrgStaff),
    route("GET", "/v1/organizations/{id}/stats", "orgs", OrgAdmin),
    route("GET", "/v1/classes/{id}", "orgs", ClassStaff),
    route("GET", "/v1/classes/{id}/teachers", "orgs", OrgAdmin),
    route("POST", "/v1/classes/{id}/teachers", "orgs", OrgAdmin),
    route(
        "DELETE",
        "/v1/classes/{id}/teachers/{user_id}",
        "orgs",
        OrgAdmin,
    ),
    route("GET", "/v1/classes/{id}/students", "orgs", ClassStaff),
    route("POST", "/v1/classes/{id}/students", "orgs", ClassStaff),
    route(
        "DELETE",
        "/v1/classes/{id}/students/{user_id}",
        "orgs",
        ClassStaff,
    ),
    route("POST", "/v1/classes/{id}/invitations", "orgs", OrgAdmin),
    route("GET", "/v1/classes/{id}/invitations", "orgs", OrgAdmin),
    route("POST", "/v1/invitations/accept", "orgs", Signed),
    route("POST", "/v1/assessments", "assessments", OrgStaff),
    route("GET", "/v1/assessments/{id}", "assessments", OrgStaff),
    route("PUT", "/v1/assessments/{id}", "assessments", OrgStaff),
    route(
        "GET",
        "/v1/organizations/{id}/assessments",
        "assessments",
        OrgStaff,
    ),
    route("POST", "/v1/assignments", "assessments", ClassStaff),
    route("GET", "/v1/assignments", "assessments", Signed),
    route("GET", "/v1/assignments/{id}", "assessments", ClassStaff),
    route(
        "POST",
        "/v1/assignments/{id}/release",
        "assessments",
        ClassStaff,
    ),
    route(
        "PUT",
        "/v1/assignments/{id}/accommodations/{user_id}",
        "assessments",
        ClassStaff,
    ),
    route(
        "GET",
        "/v1/assignments/{id}/gradebook",
        "assessments",
        ClassStaff,
    ),
    route(
        "GET",
        "/v1/classes/{id}/assignments",
        "assessments",
        ClassStaff,
    ),
    route(
        "GET",
        "/v1/classes/{id}/gradebook",
        "assessments",
        ClassStaff,
    ),
];

/// Builds one function's routes (before the shared layers).
pub type Routes = fn() -> Router<App>;

/// Each function's routes, by function name.
pub const FUNCTIONS: &[(&str, Routes)] = &[
    ("start", start::routes),
    ("submit", submit::routes),
    ("next", next::routes),
    ("end", end::routes),
    ("reports", reports::routes),
    ("pools", pools::routes),
    ("teach", teach::routes),
    ("health", health::routes),
    ("auth", auth::routes),
    ("cache-admin", cache_admin::routes),
    ("orgs", orgs::routes),
    ("assessments", assessments::routes),
];

/// Every route in one router: the local server.
pub fn router(app: App) -> Router {
    finish_creating(
        FUNCTIONS
            .iter()
            .fold(Router::new(), |all, (_, routes)| all.merge(routes())),
        app,
        idempotency::ALL,
    )
}

/// What the local server serves: [`router`] and the WebSocket endpoint
/// ([`ws`], which authenticates itself; API Gateway's WebSocket API in AWS).
pub fn local_router(app: App) -> Router {
    router(app.clone()).merge(teach_ws::local::router(app))
}

/// The layers every function shares: access checks, body limit, problem+json
/// fallbacks, state.
pub fn finish(routes: Router<App>, app: App) -> Router {
    finish_creating(routes, app, &[])
}

/// [`finish`] for a function with routes that create, which take an
/// `Idempotency-Key` ([`idempotency`]).
pub fn finish_creating(
    routes: Router<App>,
    app: App,
    creating: &'static [idempotency::Creating],
) -> Router {
    let routes = if creating.is_empty() {
        routes
    } else {
        // Inside authentication: the key's scope is the caller.
        routes.route_layer(middleware::from_fn_with_state(
            (app.clone(), creating),
            idempotency::guard,
        ))
    };
    routes
        .route_layer(middleware::from_fn_with_state(app.clone(), access::guard))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// A cached JSON body goes out as stored.
impl IntoResponse for CachedJson {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.as_str().to_owned(),
        )
            .into_response()
    }
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
