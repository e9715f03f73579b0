//! Who may call what: each route's [`Access`] (in [`super::ROUTES`]) is
//! enforced by one layer before any handler runs, so a route cannot forget it.
//! The layer authenticates the bearer token; the services then decide from
//! the resource each request touches whether the [`Caller`] may.

use std::net::SocketAddr;

use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, OptionalFromRequestParts, Request, State,
};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use super::{ApiError, ROUTES};
use crate::app::App;
use crate::services::auth::sessions::{self, Meta};
use crate::services::auth::{Caller, Error};
use crate::services::scope;
use crate::store::audit;
use uuid::Uuid;

/// Who may call a route. The layer authenticates and settles `Platform`;
/// the rest are decided by the service from the resource itself
/// ([`crate::services::scope`]): outside the resource's organization it does
/// not exist (404), inside it without the role it needs it is forbidden (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token is not even looked at.
    Public,
    /// Anyone; a token, when sent, must be valid and identifies the caller
    /// (sign-up: a platform admin may create platform admins).
    Open,
    /// Anyone signed in, on their own things (their sessions, the pool list, a new test).
    Signed,
    /// A student's test or tutoring session, acted on (answer, end): the
    /// student, the organization's org admins, platform admins; the student's
    /// teachers are refused (403); anyone else is told it does not exist (404).
    Owner,
    /// A student's records, read: also the teachers of the student's classes
    /// (in the resource's organization); anyone else gets 404.
    OwnerOrStaff,
    /// A person's whole account (their data export): the person, org admins
    /// of every organization they belong to, platform admins; other members
    /// of their organizations are refused (403); anyone else gets 404.
    OwnerOrOrgAdmin,
    /// A resource members of its organization use (a pool to take a test on).
    Member,
    /// A resource of the organization's teachers and org admins (its pools);
    /// its students are refused (403).
    OrgStaff,
    /// A class: its teachers and the organization's org admins.
    ClassStaff,
    /// The organization's management: its org admins.
    OrgAdmin,
    /// The deployment: platform admins only (403 for everyone else).
    Platform,
}

/// The access rule of `method path` (`path` as routed, e.g. `/v1/tests/{id}`).
pub fn access_of(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.access)
}

/// The layer: authenticates every routed request, and admits only platform
/// admins to `Platform` routes (read now, so a demotion counts at once).
pub async fn guard(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let route = format!("{} {}", req.method(), route.unwrap_or(""));
    let access = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| access_of(req.method().as_str(), m.as_str()))
        // A route missing from the table is closed to all but platform admins.
        .unwrap_or(Access::Platform);
    let caller = match (bearer(req.headers()), access) {
        (_, Access::Public) | (None, Access::Open) => None,
        (None, _) => return ApiError::from(Error::Unauthenticated).into_response(),
        (Some(token), _) => match sessions::authenticate(&app, token).await {
            Ok(caller) => Some(caller),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if let Some(caller) = &caller {
        if access == Access::Platform {
            match scope::is_platform_admin(&app, caller.user_id).await {
                Ok(true) => {}
                Ok(false) => {
                    return ApiError::from(Error::Forbidden(
                        "only platform admins may do this".into(),
                    ))
                    .into_response();
                }
                Err(e) => return ApiError::from(Error::from(e)).into_response(),
            }
        }
    }
    let context = audit::Context {
        actor: caller.as_ref().map(|c| c.user_id),
        ip: client_ip(req.extensions()),
        request_id: request_id(req.extensions()),
        route,
    };
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    let request_id = HeaderValue::from_str(&context.request_id).ok();
    let mut response = audit::with_context(context, next.run(req)).await;
    if let Some(id) = request_id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// API Gateway's id of the request (a new UUID locally): what the audit
/// trail records and the `X-Request-Id` response header carries.
fn request_id(extensions: &Extensions) -> String {
    match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The client address as API Gateway saw it, or the socket's peer locally
/// (headers such as `X-Forwarded-For` are not trusted).
fn client_ip(extensions: &Extensions) -> Option<String> {
    let from_gateway = match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    };
    from_gateway.or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
    })
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
        let ip = client_ip(&parts.extensions);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(ClientMeta(Meta { ip, user_agent }))
    }
}
