//! `GET /v1/teaching/ws`: the local server's stand-in for the API Gateway
//! WebSocket API ([`super::gateway`] in AWS). Same logic, same frames: each
//! text frame is a `$default` message; replies and pushes come back as text
//! frames.
//!
//! Not in [`crate::api::ROUTES`] (that table mirrors the HTTP API), and merged
//! after the access layer: it authenticates itself, with an `Authorization:
//! Bearer` header or, for browsers (which cannot set headers on a
//! WebSocket), an `access_token` query parameter. No valid token: 401, before
//! any upgrade.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::hub::Hub;
use crate::api::{ApiError, MAX_BODY_BYTES};
use crate::app::App;
use crate::services::auth::{self, sessions};

/// The endpoint's path.
pub const PATH: &str = "/v1/teaching/ws";

#[derive(Clone)]
struct Ws {
    app: App,
    hub: Hub,
}

/// The WebSocket route with its own state (a [`Hub`] of this router's sockets).
pub fn router(app: App) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state(Ws {
        app,
        hub: Hub::new(),
    })
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

async fn upgrade(
    State(Ws { app, hub }): State<Ws>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let token = bearer(&headers)
        .or(query.access_token.as_deref())
        .unwrap_or("");
    let caller = sessions::authenticate(&app, token).await?;
    let upgrade = upgrade
        .map_err(|r| ApiError::new(r.status(), "websocket-upgrade-required", r.body_text()))?;
    let id = Hub::new_id();
    super::register(&app, &id, &caller)
        .await
        .map_err(auth::Error::from)?;
    let (failed_app, failed_id) = (app.clone(), id.clone());
    Ok(upgrade
        .max_message_size(MAX_BODY_BYTES)
        .on_failed_upgrade(move |e| {
            tracing::warn!(error = %e, "WebSocket upgrade failed");
            tokio::spawn(async move { forget(&failed_app, &failed_id).await });
        })
        .on_upgrade(move |socket| serve(app, hub, id, socket))
        .into_response())
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// One socket until it closes: its messages in order, and whatever is pushed
/// to it (its own replies included) out as text frames.
async fn serve(app: App, hub: Hub, id: String, mut socket: WebSocket) {
    let mut outgoing = hub.open(&id);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // The outcome (an error included) has been pushed to this socket.
                    let _ = super::message(&app, &hub, &id, text.as_bytes()).await;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = super::message(&app, &hub, &id, &bytes).await;
                }
                // Pings are answered by axum; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            frame = outgoing.recv() => match frame {
                Some(frame) => {
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    hub.close(&id);
    forget(&app, &id).await;
}

async fn forget(app: &App, id: &str) {
    if let Err(e) = super::disconnect(app, id).await {
        tracing::warn!(connection = id, error = %e, "connection record left until its TTL");
    }
}
