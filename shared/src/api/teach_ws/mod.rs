//! Tutoring over WebSockets, whatever carries them: API Gateway's WebSocket
//! API ([`gateway`], the `teach-ws` function) or the local server's endpoint
//! ([`hub`], [`local`]).
//!
//! - **connect** with a bearer token: Redis keeps `teaching:ws:<connection>`
//!   = who it is (user, the token's SHA-256 — never the token) and the
//!   session it follows, for 2 h, API Gateway's longest connection.
//! - **message** `{"session_id", "text"}`: authenticated again from the stored
//!   hash (a log-out ends the connection's access at its next message), then
//!   one input to the session (`teach::input`, which shows another student's
//!   session as missing). The connection then follows the session
//!   (`teaching:session:{<id>}:connections`, the session state's TTL), and the
//!   reply goes to every connection following it, the sender included: a
//!   second tab sees it too. A connection reported gone leaves the set.
//!   Errors go to the sender alone, as `{"error": <problem+json>}`.
//! - **disconnect**: the mapping goes, and the connection leaves its session's set.

pub mod gateway;
pub mod hub;
pub mod local;

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::ApiError;
use crate::app::App;
use crate::services::auth::{self, Caller, sessions};
use crate::store::StoreError;
use crate::store::connections::{self, Connection};

/// How long a connection's record lives: API Gateway closes a WebSocket after 2 h.
pub const CONNECTION_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// One message from a client: an input to a session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// The session.
    pub session_id: Uuid,
    /// The input, as `POST /v1/teaching/sessions/{id}/input` takes it.
    pub text: String,
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the connection.
    Sent,
    /// The connection is no more.
    Gone,
}

/// A push that failed for another reason than the connection being gone.
#[derive(Debug, thiserror::Error)]
#[error("push failed: {0}")]
pub struct PushError(pub String);

/// Sends a frame to a connection.
pub trait Pusher: Sync {
    /// Sends `payload` (JSON text) to `connection_id`.
    fn push(
        &self,
        connection_id: &str,
        payload: &str,
    ) -> impl Future<Output = Result<Delivery, PushError>> + Send;
}

/// Where a reply went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Connections that got it.
    pub sent: usize,
    /// Connections gone (removed from the session's set).
    pub gone: usize,
    /// Connections the push failed for otherwise (kept: they may be back).
    pub failed: usize,
}

/// Signs a connection in with `token` and records it.
pub async fn connect(app: &App, connection_id: &str, token: &str) -> Result<Caller, auth::Error> {
    let caller = sessions::authenticate(app, token).await?;
    register(app, connection_id, &caller).await?;
    Ok(caller)
}

/// Records a connection of a caller already authenticated.
pub async fn register(app: &App, connection_id: &str, caller: &Caller) -> Result<(), StoreError> {
    let record = Connection {
        user_id: caller.user_id,
        token_hash: caller.token_hash.clone(),
        session_id: None,
    };
    connections::save(app.redis(), connection_id, &record, CONNECTION_TTL).await
}

/// Forgets a connection: its record, and its place in its session's set.
pub async fn disconnect(app: &App, connection_id: &str) -> Result<(), StoreError> {
    connections::remove(app.redis(), connection_id).await
}

/// One message from `connection_id`: the input's reply is pushed to every
/// connection following the session. On error, `{"error": <problem>}` has
/// been pushed to the sender alone, and the error is returned too.
pub async fn message<P: Pusher>(
    app: &App,
    pusher: &P,
    connection_id: &str,
    body: &[u8],
) -> Result<Delivered, ApiError> {
    match deliver(app, pusher, connection_id, body).await {
        Ok(delivered) => Ok(delivered),
        Err(e) => {
            let frame = serde_json::json!({ "error": e.problem() }).to_string();
            if let Err(push) = pusher.push(connection_id, &frame).await {
                tracing::warn!(connection = connection_id, error = %push, "error frame not delivered");
            }
            Err(e)
        }
    }
}

async fn deliver<P: Pusher>(
    app: &App,
    pusher: &P,
    connection_id: &str,
    body: &[u8],
) -> Result<Delivered, ApiError> {
    let frame = parse(body)?;
    let store = app.redis();
    let Some(record) = connections::load(store, connection_id).await? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this connection is not signed in (never, or no longer): connect again with a token",
        ));
    };
    let caller = match sessions::authenticate_hash(app, &record.token_hash).await {
        Ok(caller) if caller.user_id == record.user_id => caller,
        Ok(_) | Err(auth::Error::Unauthenticated) => {
            // Logged out: the record is of no more use to anyone.
            if let Err(e) = disconnect(app, connection_id).await {
                tracing::warn!(connection = connection_id, error = %e, "signed-out connection left until its TTL");
            }
            return Err(auth::Error::Unauthenticated.into());
        }
        Err(e) => return Err(e.into()),
    };
    let reply = crate::services::teach::input(app, &caller, frame.session_id, &frame.text).await?;
    let session = frame.session_id;
    let followers = connections::follow(
        store,
        connection_id,
        &record,
        session,
        app.config().teaching_state_ttl,
    )
    .await?;
    let payload = serde_json::to_string(&reply).expect("a reply serialises");
    let outcomes =
        futures_util::future::join_all(followers.iter().map(|id| pusher.push(id, &payload))).await;
    let mut delivered = Delivered::default();
    let mut gone = Vec::new();
    for (id, outcome) in followers.iter().zip(outcomes) {
        match outcome {
            Ok(Delivery::Sent) => delivered.sent += 1,
            Ok(Delivery::Gone) => gone.push(id.as_str()),
            Err(e) => {
                delivered.failed += 1;
                tracing::warn!(connection = %id, error = %e, "reply not pushed");
            }
        }
    }
    delivered.gone = gone.len();
    // The session is over: nobody follows it any more.
    let cleanup = if reply.summary.is_some() {
        connections::unfollow_all(store, session).await
    } else {
        connections::unfollow(store, session, &gone).await
    };
    if let Err(e) = cleanup {
        tracing::warn!(session = %session, error = %e, "followers not pruned");
    }
    Ok(delivered)
}

/// A message's body: malformed JSON is a 400, well-formed but wrong a 422 (as
/// the HTTP routes answer).
fn parse(body: &[u8]) -> Result<Frame, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let detail = format!("a message is {{\"session_id\": <uuid>, \"text\": <string>}}: {e}");
        match e.classify() {
            serde_json::error::Category::Data => ApiError::invalid(detail),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad-request", detail),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_exactly_a_session_and_a_text() {
        let id = Uuid::new_v4();
        let ok = parse(format!(r#"{{"session_id":"{id}","text":"next"}}"#).as_bytes()).unwrap();
        assert_eq!((ok.session_id, ok.text.as_str()), (id, "next"));
        assert_eq!(
            parse(b"{not json").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        for wrong in [
            format!(r#"{{"session_id":"{id}","text":"next","action":"x"}}"#),
            r#"{"session_id":"nope","text":"next"}"#.to_owned(),
            format!(r#"{{"session_id":"{id}"}}"#),
        ] {
            let e = parse(wrong.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{wrong}");
            assert_eq!(e.problem()["status"], 422);
        }
    }
}
