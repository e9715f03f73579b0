//! `Idempotency-Key` records: in Redis, what became of the first request with
//! a key (its response kept 24 h); in PostgreSQL, the scoped key on the row that request
//! created (a UNIQUE column), which outlives anything Redis forgets. The
//! request's claim reaches the `INSERT`s through a task-local set around the
//! handler (see `api::idempotency`), so services need no extra parameter.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use super::redis::{RedisStore, ttl_ms};

/// The claim of the request being handled: its scoped key and request hash.
#[derive(Debug, Clone)]
pub struct Claim {
    /// `<scope>/<client key>`, the value of the rows' `idempotency_key`.
    pub key: String,
    /// SHA-256 of the request (for sign-up: of the body without `password`).
    pub hash: Vec<u8>,
}

tokio::task_local! {
    static CLAIM: Claim;
}

/// Runs `f` with `claim` as the request's claim.
pub async fn with_claim<F: Future>(claim: Claim, f: F) -> F::Output {
    CLAIM.scope(claim, f).await
}

/// The columns `(idempotency_key, idempotency_hash)` of a row created now:
/// the request's claim, or NULLs.
pub fn columns() -> (Option<String>, Option<Vec<u8>>) {
    CLAIM
        .try_with(|c| (Some(c.key.clone()), Some(c.hash.clone())))
        .unwrap_or((None, None))
}

/// What Redis keeps under an idempotency key: the request's hash, and once it
/// succeeded, its response (never a secret nor a key: see the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Hex SHA-256 of the request.
    pub hash: String,
    /// `None` while the first request is being handled.
    pub done: Option<Outcome>,
}

/// A first request's response, as replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// `Location`, if any.
    pub location: Option<String>,
    /// The JSON body; `None` when the route re-reads it from PostgreSQL on
    /// replay (sign-up: no profile, no email in Redis).
    pub body: Option<serde_json::Value>,
    /// The row created.
    pub id: Option<Uuid>,
}

/// How long a first request's response is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a claim without a response holds retries off (409): longer than
/// any request runs (the functions time out at 30 s), short enough that a
/// request that died with its process (a Lambda timeout) does not block its
/// key for a day. A retry after that runs afresh, and the row's UNIQUE key
/// still stops a second row if the first request did get through.
pub const PENDING_TTL: Duration = Duration::from_secs(60);

/// Claims `key` for a new request with `hash` (SET NX): `None` when it is
/// ours now, else the record found there.
pub async fn claim(
    store: &RedisStore,
    key: &str,
    hash: &str,
) -> Result<Option<Option<Record>>, StoreError> {
    let pending = serde_json::to_vec(&Record {
        hash: hash.into(),
        done: None,
    })
    .expect("a record serialises");
    let (set, existing): (Option<String>, Option<Vec<u8>>) = store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("SET")
                .arg(key)
                .arg(&pending)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(PENDING_TTL))
                .cmd("GET")
                .arg(key)
                .query_async(c)
                .await
        })
        .await?;
    if set.is_some() {
        return Ok(None);
    }
    Ok(Some(existing.and_then(|b| serde_json::from_slice(&b).ok())))
}

/// Records the first request's response under `key` for [`TTL`].
pub async fn complete(store: &RedisStore, key: &str, record: &Record) -> Result<(), StoreError> {
    let value = serde_json::to_vec(record).expect("a record serialises");
    store
        .round_trip(async |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(&value)
                .arg("PX")
                .arg(ttl_ms(TTL))
                .query_async::<Option<String>>(c)
                .await
        })
        .await
        .map(|_| ())
}

/// Gives a claim up (the request failed: a retry may try again).
pub async fn release(store: &RedisStore, key: &str) -> Result<(), StoreError> {
    store
        .round_trip(async |c| redis::cmd("DEL").arg(key).query_async::<i64>(c).await)
        .await
        .map(|_| ())
}

/// The tables a creating route inserts into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `POST /v1/tests`.
    Tests,
    /// `POST /v1/users`.
    Users,
    /// `POST /v1/pools`.
    Pools,
    /// `POST /v1/assessments`.
    Assessments,
    /// `POST /v1/assignments`.
    Assignments,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Tests => "test_sessions",
            Table::Users => "users",
            Table::Pools => "item_pools",
            Table::Assessments => "assessments",
            Table::Assignments => "assignments",
        }
    }
}

/// The row created with this scoped key, if any: (id, request hash).
pub async fn created_with(
    db: &Pool,
    table: Table,
    key: &str,
) -> Result<Option<(Uuid, Option<Vec<u8>>)>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT id, idempotency_hash FROM {} WHERE idempotency_key = $1",
                table.name()
            ),
            &[&key],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// The argon2id PHC string of account `id` (sign-up's replay checks the
/// password sent against it).
pub async fn password_hash(db: &Pool, id: Uuid) -> Result<Option<String>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id])
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}
