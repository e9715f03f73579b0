//! Who may call what: each route's [`Access`] (in [`super::ROUTES`]) is
//! enforced by one layer before any handler runs, so a route cannot forget it.
//! The layer authenticates the bearer token and checks the role; handlers then
//! take the [`Caller`] and check ownership of what they touch.

use std::net::SocketAddr;

use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, OptionalFromRequestParts, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use super::{ApiError, ROUTES};
use crate::app::App;
use crate::services::auth::sessions::{self, Meta};
use crate::services::auth::{Caller, Error, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token is not even looked at.
    Public,
    /// Anyone; a token, when sent, must be valid and identifies the caller
    /// (sign-up: an admin may create staff accounts).
    Open,
    /// Anyone signed in, on their own things (their sessions, the pool list, a new test).
    Signed,
    /// Something a student owns that they act on (answer, end): the owner or an
    /// admin; a teacher is refused (403), another student told it does not exist (404).
    Owner,
    /// Something a student owns, read: the owner, teachers and admins; another student gets 404.
    OwnerOrStaff,
    /// Teachers and admins (403 for students).
    Staff,
    /// Admins only (403 for everyone else).
    Admin,
}

impl Access {
    /// Whether `role` passes the role check (ownership is the handler's).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Staff => role.is_staff(),
            Access::Admin => role == Role::Admin,
            _ => true,
        }
    }
}

/// The access rule of `method path` (`path` as routed, e.g. `/v1/tests/{id}`).
pub fn access_of(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.access)
}

/// The layer: authenticates and checks the role of every routed request.
pub async fn guard(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let access = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| access_of(req.method().as_str(), m.as_str()))
        // A route missing from the table is closed to all but admins.
        .unwrap_or(Access::Admin);
    let caller = match (bearer(req.headers()), access) {
        (_, Access::Public) | (None, Access::Open) => None,
        (None, _) => return ApiError::from(Error::Unauthenticated).into_response(),
        (Some(token), _) => match sessions::authenticate(&app, token).await {
            Ok(caller) => Some(caller),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if let Some(caller) = caller {
        if !access.admits(caller.role) {
            let need = if access == Access::Admin {
                "admins"
            } else {
                "teachers and admins"
            };
            return ApiError::from(Error::Forbidden(format!("only {need} may do this")))
                .into_response();
        }
        req.extensions_mut().insert(caller);
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` header; an empty string
/// (never a valid token) when the header is there but is not that.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = value.to_str().unwrap_or("");
    Some(match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Error::Unauthenticated.into())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ApiError> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// Where a request comes from: the client address as API Gateway saw it (or
/// the socket's peer locally; headers such as `X-Forwarded-For` are not
/// trusted), and the `User-Agent`.
pub struct ClientMeta(pub Meta);

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let from_gateway = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
            _ => None,
        };
        let ip = from_gateway.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
        });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(ClientMeta(Meta { ip, user_agent }))
    }
}
