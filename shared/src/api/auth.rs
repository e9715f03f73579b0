//! `auth`: accounts, sign-in, the caller's sessions, OpenID Connect sign-in.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::access::ClientMeta;
use super::extract::{IdPath, IdUserPath, Json, Query};
use crate::app::App;
use crate::services::CachedJson;
use crate::services::auth::accounts::{self, Login, Registration};
use crate::services::auth::admin;
use crate::services::auth::oidc::{self, Callback};
use crate::services::auth::sessions::{self, Extended, SessionView};
use crate::services::auth::{Caller, Session, User};
use crate::services::data_rights;

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish_creating(routes(), app, &[super::idempotency::USERS])
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/users", post(register))
        .route("/v1/users/{id}", get(profile))
        .route(
            "/v1/users/{id}/sessions",
            get(user_sessions).delete(revoke_user_sessions),
        )
        .route(
            "/v1/users/{id}/sessions/{session_id}",
            delete(revoke_user_session),
        )
        .route("/v1/users/{id}/disable", post(disable))
        .route("/v1/users/{id}/enable", post(enable))
        .route("/v1/users/{id}/export", get(export))
        .route("/v1/users/{id}/erase", post(erase))
        .route(
            "/v1/sessions",
            post(login).get(list).delete(logout_everywhere),
        )
        .route("/v1/sessions/current", get(current).delete(logout))
        .route("/v1/sessions/current/extend", post(extend))
        .route("/v1/oauth/{provider}/authorize", get(authorize))
        .route("/v1/oauth/{provider}/callback", get(callback))
}

async fn register(
    State(app): State<App>,
    caller: Option<Caller>,
    Json(body): Json<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    let user = accounts::register(&app, body, caller.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/users/{}", user.id))],
        axum::Json(user),
    ))
}

async fn login(
    State(app): State<App>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let opened = accounts::login(&app, body, &meta).await?;
    Ok(created(opened))
}

/// 201 with the token; never cached anywhere on the way.
fn created(body: impl serde::Serialize) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
}

async fn list(
    State(app): State<App>,
    caller: Caller,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let sessions = sessions::list(&app, &caller).await?;
    Ok(axum::Json(json!({ "sessions": sessions })))
}

/// A user's profile (see `accounts::profile`).
async fn profile(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<CachedJson, ApiError> {
    Ok(accounts::profile(&app, &caller, id).await?)
}

/// An admin's view of a user's live sessions.
async fn user_sessions(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let sessions = admin::sessions_of(&app, &caller, user).await?;
    Ok(axum::Json(json!({ "sessions": sessions })))
}

async fn revoke_user_sessions(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let ended = admin::revoke_all(&app, &caller, user).await?;
    Ok(axum::Json(json!({ "ended": ended })))
}

async fn revoke_user_session(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(user, session): IdUserPath,
) -> Result<StatusCode, ApiError> {
    if admin::revoke(&app, &caller, user, session).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "user {user} has no live session with id {session}"
        )))
    }
}

async fn disable(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(admin::disable(&app, &caller, user).await?))
}

/// Everything lectern holds of a person, as one document (their own, or an admin's for them).
async fn export(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(data_rights::export(&app, &caller, user).await?))
}

/// Erases a student (an admin's request).
async fn erase(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(data_rights::erase(&app, &caller, user).await?))
}

async fn enable(
    State(app): State<App>,
    caller: Caller,
    IdPath(user): IdPath,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(admin::enable(&app, &caller, user).await?))
}

async fn current(caller: Caller) -> axum::Json<SessionView> {
    axum::Json(Session::view(&caller.session, true))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    seconds: Option<u64>,
}

/// The body is optional: without a `Content-Type`, none is read (extend by the idle timeout).
async fn extend(
    State(app): State<App>,
    caller: Caller,
    req: Request,
) -> Result<axum::Json<Extended>, ApiError> {
    let body = if req.headers().contains_key(header::CONTENT_TYPE) {
        Json::<ExtendBody>::from_request(req, &()).await?.0
    } else {
        ExtendBody::default()
    };
    let by = body.seconds.map(Duration::from_secs);
    Ok(axum::Json(sessions::extend(&app, &caller, by).await?))
}

async fn logout(State(app): State<App>, caller: Caller) -> Result<StatusCode, ApiError> {
    sessions::end(&app, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_everywhere(
    State(app): State<App>,
    caller: Caller,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let ended = sessions::end_all(&app, caller.user_id, "account.signed_out_everywhere").await?;
    Ok(axum::Json(json!({ "ended": ended })))
}

/// 302 to the provider's sign-in page.
async fn authorize(
    State(app): State<App>,
    Path(provider): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let location = oidc::authorize(&app, &provider).await?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    ))
}

async fn callback(
    State(app): State<App>,
    Path(provider): Path<String>,
    ClientMeta(meta): ClientMeta,
    Query(cb): Query<Callback>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(created(oidc::callback(&app, &provider, cb, &meta).await?))
}
