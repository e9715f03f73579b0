//! The Redis side of WebSocket connections: `teaching:ws:<connection>` (its
//! [`Connection`], JSON) and `teaching:session:{<id>}:connections` (a set of
//! connection ids, in the session's hash slot). Both always have a TTL.
//!
//! Races end tidy: a record is only ever rewritten with `XX KEEPTTL`, so a
//! disconnect is never undone; a connection put back in a set after it
//! disconnected is reported gone at the next push and removed then.

use std::time::Duration;

use uuid::Uuid;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::redis::{RedisStore, ttl_ms};

/// A connection as Redis keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Who connected.
    pub user_id: Uuid,
    /// SHA-256 (hex) of the token it connected with: every message is
    /// authenticated again from it.
    pub token_hash: String,
    /// The session it follows (the one it last sent an input to).
    pub session_id: Option<Uuid>,
}

fn encode(c: &Connection) -> String {
    serde_json::to_string(c).expect("a connection serialises")
}

fn decode(raw: &str) -> Option<Connection> {
    serde_json::from_str(raw).ok()
}

/// Stores a new connection for `ttl`.
pub async fn save(
    store: &RedisStore,
    id: &str,
    record: &Connection,
    ttl: Duration,
) -> Result<(), StoreError> {
    let key = store.keys().ws_connection(id);
    store
        .round_trip(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(encode(record))
                .arg("PX")
                .arg(ttl_ms(ttl))
                .query_async::<()>(c)
                .await
        })
        .await
}

/// A connection's record (`None`: unknown, expired, or unreadable).
pub async fn load(store: &RedisStore, id: &str) -> Result<Option<Connection>, StoreError> {
    let key = store.keys().ws_connection(id);
    let raw: Option<String> = store
        .round_trip(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
        .await?;
    Ok(raw.as_deref().and_then(decode))
}

/// Makes `id` follow `session` (its set's TTL refreshed to `ttl`) and returns
/// every connection following it, `id` included. A connection that followed
/// another session leaves that one's set, and its record names the new one.
pub async fn follow(
    store: &RedisStore,
    id: &str,
    record: &Connection,
    session: Uuid,
    ttl: Duration,
) -> Result<Vec<String>, StoreError> {
    let keys = store.keys();
    let set = keys.teaching_connections(session);
    // The set and the record live in different slots: a request for each, at once.
    let followers = store.round_trip(async |c| {
        redis::pipe()
            .cmd("SADD")
            .arg(&set)
            .arg(id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&set)
            .arg(ttl_ms(ttl))
            .ignore()
            .cmd("SMEMBERS")
            .arg(&set)
            .query_async::<(Vec<String>,)>(c)
            .await
    });
    let moved = async {
        if record.session_id == Some(session) {
            return Ok(());
        }
        let key = keys.ws_connection(id);
        let updated = Connection {
            session_id: Some(session),
            ..record.clone()
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(encode(&updated))
            .arg("XX")
            .arg("KEEPTTL")
            .ignore();
        store
            .round_trip(async |c| pipe.query_async::<()>(c).await)
            .await?;
        match record.session_id {
            Some(old) => unfollow(store, old, &[id]).await,
            None => Ok(()),
        }
    };
    let (followers, moved) = tokio::join!(followers, moved);
    moved?;
    Ok(followers?.0)
}

/// Takes connections out of a session's set.
pub async fn unfollow(store: &RedisStore, session: Uuid, ids: &[&str]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let set = store.keys().teaching_connections(session);
    store
        .round_trip(async |c| {
            redis::cmd("SREM")
                .arg(&set)
                .arg(ids)
                .query_async::<()>(c)
                .await
        })
        .await
}

/// Drops a session's set (the session ended).
pub async fn unfollow_all(store: &RedisStore, session: Uuid) -> Result<(), StoreError> {
    let set = store.keys().teaching_connections(session);
    store
        .round_trip(async |c| redis::cmd("DEL").arg(&set).query_async::<()>(c).await)
        .await
}

/// Deletes a connection's record and takes it out of its session's set.
pub async fn remove(store: &RedisStore, id: &str) -> Result<(), StoreError> {
    let key = store.keys().ws_connection(id);
    let raw: Option<String> = store
        .round_trip(async |c| redis::cmd("GETDEL").arg(&key).query_async(c).await)
        .await?;
    match raw.as_deref().and_then(decode).and_then(|r| r.session_id) {
        Some(session) => unfollow(store, session, &[id]).await,
        None => Ok(()),
    }
}
