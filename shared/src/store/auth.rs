//! Authentication's storage: auth sessions (PostgreSQL first, Redis after),
//! their Redis indexes, sign-in throttling counters and pending OpenID Connect
//! sign-ins.
//!
//! A session lives in Redis, where every request reads it, and in PostgreSQL
//! (`auth_sessions`), written at sign-in, at revocation and at most once per
//! touch interval (its idle deadline carried forward), from which a session
//! Redis lost is rebuilt. Both hold it under the SHA-256 of its token, so a
//! dump of either holds no usable token. Three sorted sets index them (pruned lazily, never by
//! keyspace notifications, which ElastiCache does not let us configure): per
//! user by expiry (list, log out everywhere), all by expiry and all by last use
//! (counts without KEYS or SCAN), and users by their latest expiry.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use super::redis::{RedisStore, ttl_ms};
use super::users::Role;

/// One signed-in device or browser, as stored (postcard) under the token's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Public id (the token is never shown again after sign-in).
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// Their role at sign-in.
    pub role: Role,
    /// Sign-in time, ms since the epoch.
    pub created_at_ms: i64,
    /// Last use as recorded (written at most once per touch interval).
    pub last_accessed_ms: i64,
    /// Dies at this time unless used (never after `absolute_expires_at_ms`).
    pub expires_at_ms: i64,
    /// Dies at this time whatever happens.
    pub absolute_expires_at_ms: i64,
    /// `password`, or `oidc:<provider>`.
    pub method: String,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// `User-Agent` at sign-in (shortened).
    pub user_agent: Option<String>,
}

/// Most sessions one user's list shows (the oldest beyond it still work).
pub const MAX_LISTED: isize = 100;

/// One session as Redis holds it: the token's hash, its owner and its record.
pub struct StoredSession<'a> {
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// The session's user.
    pub user: Uuid,
    /// The encoded session record.
    pub record: &'a [u8],
    /// When the session dies unless used (ms since the epoch).
    pub expires_at_ms: i64,
    /// When it dies whatever happens (ms since the epoch).
    pub absolute_ms: i64,
    /// Now (ms since the epoch).
    pub now_ms: i64,
}

/// Counts over every session, as `GET /v1/admin/sessions/stats` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionCounts {
    /// Sessions not yet expired.
    pub total: u64,
    /// Of those, used within the activity window.
    pub active: u64,
    /// Users with at least one session.
    pub unique_users: u64,
}

/// PostgreSQL's copy of a live session, to rebuild Redis's from.
pub struct Durable {
    /// The encoded session record as at sign-in.
    pub record: Vec<u8>,
    /// The idle deadline as PostgreSQL last heard it (ms since the epoch).
    pub idle_until_ms: i64,
}

/// A time in ms since the epoch as a timestamp.
pub fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ms_of(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Records a new session in PostgreSQL (before Redis: a session Redis has is
/// always one PostgreSQL can rebuild); false when the account is disabled (or
/// gone). The user row is read `FOR SHARE`, so a sign-in racing a
/// [`disable_account`] either commits first (and the disable deletes its
/// session) or waits for it and inserts nothing.
pub async fn insert_durable(
    db: &Pool,
    id: Uuid,
    s: &StoredSession<'_>,
    audit: Entry,
) -> Result<bool, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO auth_sessions (token_hash, id, user_id, record, idle_until, absolute_until)
             SELECT $1, $2, u.id, $4, $5, $6 FROM users u
             WHERE u.id = $3 AND u.disabled_at IS NULL FOR SHARE",
        )
        .await?;
    let inserted = tx
        .execute(
            &statement,
            &[
                &s.token_hash,
                &id,
                &s.user,
                &s.record,
                &at(s.expires_at_ms),
                &at(s.absolute_ms),
            ],
        )
        .await?
        == 1;
    if inserted {
        audit::record(&tx, audit).await?;
        tx.commit().await?;
    }
    Ok(inserted)
}

/// Disables an account and revokes its sessions, in one transaction; returns
/// the revoked sessions' token hashes (for Redis), or `None` when there is no
/// such user. Disabling a disabled account keeps its first time.
pub async fn disable_account(
    db: &Pool,
    user: Uuid,
    audit: Entry,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let found = tx
        .execute(
            "UPDATE users SET disabled_at = coalesce(disabled_at, now()), updated_at = now()
             WHERE id = $1",
            &[&user],
        )
        .await?;
    if found == 0 {
        return Ok(None);
    }
    let hashes = tx
        .query(
            "DELETE FROM auth_sessions WHERE user_id = $1 RETURNING token_hash",
            &[&user],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    audit::record(&tx, audit).await?;
    tx.commit().await?;
    Ok(Some(hashes))
}

/// Lets a disabled account sign in again; false when there is no such user.
pub async fn enable_account(db: &Pool, user: Uuid, audit: Entry) -> Result<bool, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let found = tx
        .execute(
            "UPDATE users SET disabled_at = NULL, updated_at = now() WHERE id = $1",
            &[&user],
        )
        .await?
        == 1;
    if found {
        audit::record(&tx, audit).await?;
        tx.commit().await?;
    }
    Ok(found)
}

/// A user's sessions PostgreSQL counts live at `now_ms`, as (token hash, copy),
/// newest sign-in first, at most [`MAX_LISTED`].
pub async fn durable_of_user(
    db: &Pool,
    user: Uuid,
    now_ms: i64,
) -> Result<Vec<(String, Durable)>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT token_hash, record, idle_until FROM auth_sessions
             WHERE user_id = $1 AND idle_until > $2 AND absolute_until > $2
             ORDER BY absolute_until DESC LIMIT $3",
        )
        .await?;
    Ok(client
        .query(&statement, &[&user, &at(now_ms), &(MAX_LISTED as i64)])
        .await?
        .iter()
        .map(|row| {
            (
                row.get(0),
                Durable {
                    record: row.get(1),
                    idle_until_ms: ms_of(row.get(2)),
                },
            )
        })
        .collect())
}

/// Revokes one session of `user` by its public id in PostgreSQL; returns its
/// token hash, or `None` when the user has no such session.
pub async fn delete_durable_by_id(
    db: &Pool,
    user: Uuid,
    session: Uuid,
    audit: Entry,
) -> Result<Option<String>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "DELETE FROM auth_sessions WHERE user_id = $1 AND id = $2 RETURNING token_hash",
        )
        .await?;
    let hash = tx
        .query_opt(&statement, &[&user, &session])
        .await?
        .map(|row| row.get(0));
    if hash.is_some() {
        audit::record(&tx, audit).await?;
        tx.commit().await?;
    }
    Ok(hash)
}

/// The session under this token hash if PostgreSQL still counts it live at
/// `now_ms`: not revoked, neither deadline passed.
pub async fn durable(
    db: &Pool,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<Durable>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT record, idle_until FROM auth_sessions
             WHERE token_hash = $1 AND idle_until > $2 AND absolute_until > $2",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&token_hash, &at(now_ms)])
        .await?;
    Ok(row.map(|row| Durable {
        record: row.get(0),
        idle_until_ms: ms_of(row.get(1)),
    }))
}

/// Carries a session's idle deadline forward (never back); false when the
/// session is no longer there (revoked).
pub async fn carry_idle(
    db: &Pool,
    token_hash: &str,
    idle_until_ms: i64,
) -> Result<bool, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE auth_sessions SET idle_until = GREATEST(idle_until, LEAST($2, absolute_until))
             WHERE token_hash = $1",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&token_hash, &at(idle_until_ms)])
        .await?
        == 1)
}

/// Revokes sessions in PostgreSQL (before Redis: a revoked session is never
/// rebuilt), recording `audit` with them.
pub async fn delete_durable(
    db: &Pool,
    token_hashes: &[String],
    audit: Entry,
) -> Result<u64, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached("DELETE FROM auth_sessions WHERE token_hash = ANY($1)")
        .await?;
    let deleted = tx.execute(&statement, &[&token_hashes]).await?;
    audit::record(&tx, audit).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Revokes every session of `user` in PostgreSQL, recording `audit` with
/// them; returns their token hashes.
pub async fn delete_durable_of_user(
    db: &Pool,
    user: Uuid,
    audit: Entry,
) -> Result<Vec<String>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached("DELETE FROM auth_sessions WHERE user_id = $1 RETURNING token_hash")
        .await?;
    let hashes: Vec<String> = tx
        .query(&statement, &[&user])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    audit::record(
        &tx,
        audit.detail(serde_json::json!({ "sessions": hashes.len() })),
    )
    .await?;
    tx.commit().await?;
    Ok(hashes)
}

/// Deletes up to `limit` sessions that died before `now_ms` (the sweeper's):
/// past their absolute deadline, or idle for a day past their idle one (a day's
/// margin, for an idle deadline Redis moved on when PostgreSQL was down).
pub async fn sweep_durable(db: &Pool, now_ms: i64, limit: i64) -> Result<u64, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM auth_sessions WHERE token_hash IN (
                 SELECT token_hash FROM auth_sessions
                 WHERE absolute_until <= $1 OR idle_until <= $1 - interval '1 day'
                 LIMIT $2)",
        )
        .await?;
    Ok(client.execute(&statement, &[&at(now_ms), &limit]).await?)
}

/// Adds `ZADD`s that index a session, and lets each index live as long as the session can.
fn index(pipe: &mut redis::Pipeline, store: &RedisStore, s: &StoredSession<'_>, new: bool) {
    let keys = store.keys();
    let mode = if new { None } else { Some("XX") };
    for (key, score) in [
        (keys.user_sessions(s.user), s.expires_at_ms),
        (keys.all_sessions(), s.expires_at_ms),
        (keys.sessions_seen(), s.now_ms),
    ] {
        let cmd = pipe.cmd("ZADD").arg(&key);
        if let Some(mode) = mode {
            cmd.arg(mode);
        }
        cmd.arg(score).arg(s.token_hash).ignore();
        keep_until(pipe, &key, s.absolute_ms);
    }
    let users = keys.users_signed_in();
    pipe.cmd("ZADD")
        .arg(&users)
        .arg("GT")
        .arg(s.expires_at_ms)
        .arg(s.user.to_string())
        .ignore();
    keep_until(pipe, &users, s.absolute_ms);
}

/// Lets `key` live until at least `at_ms`: `NX` gives a key without a TTL one,
/// `GT` only ever lengthens it (Redis ≥ 7.0).
fn keep_until(pipe: &mut redis::Pipeline, key: &str, at_ms: i64) {
    for mode in ["NX", "GT"] {
        pipe.cmd("PEXPIREAT").arg(key).arg(at_ms).arg(mode).ignore();
    }
}

/// Drops index members whose score is before `before_ms`.
fn prune(pipe: &mut redis::Pipeline, key: &str, before_ms: i64) {
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(key)
        .arg("-inf")
        .arg(format!("({before_ms}"))
        .ignore();
}

/// Stores a new session and indexes it (one round trip); expired members of the
/// global indexes are pruned on the way.
pub async fn create(store: &RedisStore, s: &StoredSession<'_>) -> Result<(), StoreError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.auth_session(s.token_hash))
        .arg(s.record)
        .arg("PXAT")
        .arg(s.expires_at_ms)
        .ignore();
    index(&mut pipe, store, s, true);
    for key in [
        keys.user_sessions(s.user),
        keys.all_sessions(),
        keys.users_signed_in(),
    ] {
        prune(&mut pipe, &key, s.now_ms);
    }
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Rewrites a live session (its use or extension) and its index entries; a
/// session deleted meanwhile (logged out) stays deleted. False when it is gone.
pub async fn update(store: &RedisStore, s: &StoredSession<'_>) -> Result<bool, StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(store.keys().auth_session(s.token_hash))
        .arg(s.record)
        .arg("PXAT")
        .arg(s.expires_at_ms)
        .arg("XX");
    index(&mut pipe, store, s, false);
    let (written,): (Option<String>,) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(written.is_some())
}

/// The session stored under this token hash.
pub async fn get(store: &RedisStore, token_hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store
        .get_bytes(&store.keys().auth_session(token_hash))
        .await
}

/// The sessions stored under these token hashes, in order (one round trip).
pub async fn get_many(
    store: &RedisStore,
    token_hashes: &[String],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    if token_hashes.is_empty() {
        return Ok(Vec::new());
    }
    let keys = store.keys();
    let mut gets = redis::pipe();
    for h in token_hashes {
        gets.cmd("GET").arg(keys.auth_session(h));
    }
    store.round_trip(async |c| gets.query_async(c).await).await
}

/// A user's live sessions as (token hash, record), newest expiry last.
pub async fn of_user(
    store: &RedisStore,
    user: Uuid,
    now_ms: i64,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let keys = store.keys();
    let index_key = keys.user_sessions(user);
    let mut pipe = redis::pipe();
    prune(&mut pipe, &index_key, now_ms);
    pipe.cmd("ZRANGE")
        .arg(&index_key)
        .arg(0)
        .arg(MAX_LISTED - 1);
    let (hashes,): (Vec<String>,) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    let records = get_many(store, &hashes).await?;
    Ok(hashes
        .into_iter()
        .zip(records)
        .filter_map(|(h, r)| Some((h, r?)))
        .collect())
}

/// Deletes sessions of `user` by token hash, with their index entries; when
/// `all`, the user's index goes too. Returns how many sessions were deleted.
pub async fn delete(
    store: &RedisStore,
    user: Uuid,
    token_hashes: &[String],
    all: bool,
) -> Result<u64, StoreError> {
    if token_hashes.is_empty() && !all {
        return Ok(0);
    }
    let keys = store.keys();
    let index_key = keys.user_sessions(user);
    let mut pipe = redis::pipe();
    if !token_hashes.is_empty() {
        // One DEL per session: each key is in a slot of its own in a cluster.
        for hash in token_hashes {
            pipe.cmd("DEL").arg(keys.auth_session(hash));
        }
        for key in [&index_key, &keys.all_sessions(), &keys.sessions_seen()] {
            pipe.cmd("ZREM").arg(key).arg(token_hashes).ignore();
        }
    }
    if all {
        pipe.cmd("DEL").arg(&index_key).ignore();
        pipe.cmd("ZREM")
            .arg(keys.users_signed_in())
            .arg(user.to_string())
            .ignore();
    }
    let deleted: Vec<u64> = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(deleted.iter().sum())
}

/// Every hash in a user's index (to log them all out).
pub async fn hashes_of_user(store: &RedisStore, user: Uuid) -> Result<Vec<String>, StoreError> {
    let key = store.keys().user_sessions(user);
    store
        .round_trip(async |c| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await
        })
        .await
}

/// Session counts, pruning the global indexes on the way (one round trip).
pub async fn counts(
    store: &RedisStore,
    now_ms: i64,
    active_window: Duration,
) -> Result<SessionCounts, StoreError> {
    let keys = store.keys();
    let (all, seen, users) = (
        keys.all_sessions(),
        keys.sessions_seen(),
        keys.users_signed_in(),
    );
    let mut pipe = redis::pipe();
    prune(&mut pipe, &all, now_ms);
    prune(&mut pipe, &users, now_ms);
    prune(&mut pipe, &seen, now_ms - ttl_ms(active_window) as i64);
    pipe.cmd("ZCARD").arg(&all);
    // Live sessions used recently: the intersection, so a session that expired
    // (or was deleted) moments after its last use is not counted.
    pipe.cmd("ZINTERCARD").arg(2).arg(&all).arg(&seen);
    pipe.cmd("ZCARD").arg(&users);
    let (total, active, unique_users): (u64, u64, u64) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(SessionCounts {
        total,
        active,
        unique_users,
    })
}

/// Drops expired members from every session index: the global ones and each
/// user's (found by SCAN). Returns how many went.
pub async fn prune_indexes(
    store: &RedisStore,
    now_ms: i64,
    active_window: Duration,
) -> Result<u64, StoreError> {
    let keys = store.keys();
    let mut removed = prune_counted(
        store,
        &[
            (keys.all_sessions(), now_ms),
            (keys.users_signed_in(), now_ms),
            (keys.sessions_seen(), now_ms - ttl_ms(active_window) as i64),
        ],
    )
    .await?;
    let pattern = keys.user_sessions_pattern();
    let mut cursor = 0u64;
    loop {
        let (next, found) = store.scan(&pattern, cursor, 1000, None).await?;
        let batch: Vec<(String, i64)> = found.into_iter().map(|k| (k, now_ms)).collect();
        removed += prune_counted(store, &batch).await?;
        cursor = next;
        if cursor == 0 {
            return Ok(removed);
        }
    }
}

/// `ZREMRANGEBYSCORE key -inf (before` on each key (one round trip); members removed.
async fn prune_counted(store: &RedisStore, keys: &[(String, i64)]) -> Result<u64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for (key, before_ms) in keys {
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(key)
            .arg("-inf")
            .arg(format!("({before_ms}"));
    }
    let removed: Vec<u64> = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(removed.iter().sum())
}

/// One failed-or-pending sign-in counted against an account and a client
/// address; returns each counter with the milliseconds left in its window.
pub async fn count_attempt(
    store: &RedisStore,
    email_hash: &str,
    ip: &str,
    window: Duration,
) -> Result<[(u64, i64); 2], StoreError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    for key in [
        keys.login_throttle_account(email_hash),
        keys.login_throttle_ip(ip),
    ] {
        pipe.cmd("INCR").arg(&key);
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(window))
            .arg("NX")
            .ignore();
        pipe.cmd("PTTL").arg(&key);
    }
    let (account, account_ttl, ip_count, ip_ttl): (u64, i64, u64, i64) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok([(account, account_ttl), (ip_count, ip_ttl)])
}

/// A successful sign-in: the account starts afresh, and the attempt is taken
/// back from the client address (a school behind one NAT signs in all morning).
pub async fn forgive_attempt(
    store: &RedisStore,
    email_hash: &str,
    ip: &str,
) -> Result<(), StoreError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("DEL")
        .arg(keys.login_throttle_account(email_hash))
        .ignore();
    pipe.cmd("DECR").arg(keys.login_throttle_ip(ip)).ignore();
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Keeps a pending OpenID Connect sign-in under its `state` for `ttl`.
pub async fn put_oauth_state(
    store: &RedisStore,
    state: &str,
    record: &[u8],
    ttl: Duration,
) -> Result<(), StoreError> {
    let key = store.keys().oauth_state(state);
    store
        .round_trip(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(record)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .arg("NX")
                .query_async::<()>(c)
                .await
        })
        .await
}

/// Takes a pending sign-in out of Redis (GETDEL): a `state` works once.
pub async fn take_oauth_state(
    store: &RedisStore,
    state: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let key = store.keys().oauth_state(state);
    store
        .round_trip(async |c| redis::cmd("GETDEL").arg(&key).query_async(c).await)
        .await
}
