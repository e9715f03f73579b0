//! Auth sessions: an opaque 256-bit token for the client, the session under
//! the token's SHA-256 in Redis (and in PostgreSQL, from which a session Redis
//! lost is rebuilt on its next use), an idle timeout (sliding) and an absolute
//! one, several sessions per user, and counts for operators.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::secret::{random_token, sha256_hex};
use super::{Caller, Error, Role};
use crate::app::App;
use crate::store::StoreError;
use crate::store::audit::{self, Entry};
pub use crate::store::auth::Session;
use crate::store::auth::{self as stored, SessionCounts, StoredSession, at};
use crate::store::users;

/// How long a request waits for PostgreSQL to carry its session's idle
/// deadline forward before going on without it.
const CARRY_WAIT: Duration = Duration::from_millis(250);

/// Sessions used within this long count as active in the stats.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Session {
    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a session serialises")
    }

    fn decode(raw: &[u8]) -> Option<Self> {
        postcard::from_bytes(raw).ok()
    }

    fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms && now_ms < self.absolute_expires_at_ms
    }

    /// Records a use at `now` that keeps the session alive `for_` longer: the
    /// idle deadline only ever moves later, and never past the absolute one.
    /// True when the absolute deadline cut it short.
    fn used(&mut self, now_ms: i64, for_: Duration) -> bool {
        let wanted = now_ms + ms(for_);
        self.last_accessed_ms = now_ms;
        self.expires_at_ms = self
            .expires_at_ms
            .max(wanted.min(self.absolute_expires_at_ms));
        wanted > self.absolute_expires_at_ms
    }

    fn stored<'a>(&self, token_hash: &'a str, record: &'a [u8], now_ms: i64) -> StoredSession<'a> {
        StoredSession {
            token_hash,
            user: self.user_id,
            record,
            expires_at_ms: self.expires_at_ms,
            absolute_ms: self.absolute_expires_at_ms,
            now_ms,
        }
    }

    /// The session as its owner sees it.
    pub fn view(&self, current: bool) -> SessionView {
        SessionView {
            id: self.id,
            current,
            method: self.method.clone(),
            created_at: at(self.created_at_ms),
            last_accessed_at: at(self.last_accessed_ms),
            expires_at: at(self.expires_at_ms),
            absolute_expires_at: at(self.absolute_expires_at_ms),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

/// A session as the API shows it: never its token.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Public id.
    pub id: Uuid,
    /// Whether the request came with this session.
    pub current: bool,
    /// `password`, or `oidc:<provider>`.
    pub method: String,
    /// Sign-in time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last use, to within the touch interval.
    #[serde(with = "time::serde::rfc3339")]
    pub last_accessed_at: OffsetDateTime,
    /// Dies at this time unless used.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Dies at this time whatever happens.
    #[serde(with = "time::serde::rfc3339")]
    pub absolute_expires_at: OffsetDateTime,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// `User-Agent` at sign-in.
    pub user_agent: Option<String>,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Client address.
    pub ip: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// A new session and the token for it (shown once).
#[derive(Debug, Serialize)]
pub struct Opened {
    /// The bearer token. Only its hash is kept.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// The session.
    pub session: SessionView,
}

/// Opens a session for `user`; refused when the account is disabled.
pub async fn open(
    app: &App,
    user_id: Uuid,
    role: Role,
    method: String,
    meta: &Meta,
) -> Result<Opened, Error> {
    let config = &app.config().auth;
    let now = now_ms();
    let absolute = now + ms(config.absolute_timeout);
    let session = Session {
        id: Uuid::new_v4(),
        user_id,
        role,
        created_at_ms: now,
        last_accessed_ms: now,
        expires_at_ms: (now + ms(config.idle_timeout)).min(absolute),
        absolute_expires_at_ms: absolute,
        method,
        ip: meta.ip.clone(),
        user_agent: meta
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(200).collect()),
    };
    let token = random_token();
    let hash = sha256_hex(&token);
    let record = session.encode();
    let stored_session = session.stored(&hash, &record, now);
    let audit = Entry::new("session.signed_in", "session", session.id)
        .subject(user_id)
        .actor(Some(user_id))
        .detail(json!({ "method": session.method }));
    if !stored::insert_durable(app.db(), session.id, &stored_session, audit).await? {
        return Err(Error::Disabled);
    }
    stored::create(app.redis(), &stored_session).await?;
    // A disable (or log-out-everywhere) between our two writes took the row
    // and cleared Redis before our entry got there: take the entry back out.
    if stored::durable(app.db(), &hash, now).await?.is_none() {
        stored::delete(app.redis(), user_id, std::slice::from_ref(&hash), false).await?;
        let disabled = users::get(app.db(), user_id)
            .await?
            .is_none_or(|u| u.disabled_at.is_some());
        return Err(if disabled {
            Error::Disabled
        } else {
            Error::Unauthenticated
        });
    }
    Ok(Opened {
        token,
        token_type: "Bearer",
        session: session.view(true),
    })
}

/// Whether `token` looks like one of ours (43 base64url characters), checked
/// before any lookup so junk costs no round trip.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The caller a bearer token stands for. Records the use at most once per
/// touch interval, sliding the idle timeout (never past the absolute one).
/// While Redis is unreachable, PostgreSQL's copy of the session decides; with
/// both unreachable, the outage (503): no process ever accepts a token from
/// memory, so a revocation counts on the very next request everywhere.
pub async fn authenticate(app: &App, token: &str) -> Result<Caller, Error> {
    if !well_formed(token) {
        return Err(Error::Unauthenticated);
    }
    authenticate_hash(app, &sha256_hex(token)).await
}

/// [`authenticate`] from the token's SHA-256 (hex), for a caller whose token
/// was checked once and is known since by its hash only (a WebSocket
/// connection): a log-out ends its access at its next message.
pub async fn authenticate_hash(app: &App, token_hash: &str) -> Result<Caller, Error> {
    let hash = token_hash.to_owned();
    let now = now_ms();
    let raw = match stored::get(app.redis(), &hash).await {
        Ok(raw) => raw,
        Err(e) if e.is_redis() => return without_redis(app, hash, now, e).await,
        Err(e) => return Err(e.into()),
    };
    let config = &app.config().auth;
    let found = match raw {
        Some(raw) => Session::decode(&raw).filter(|s| s.is_live(now)),
        // Expired, revoked, or lost with Redis's data: PostgreSQL tells which.
        None => rebuild(app, &hash, now).await?,
    };
    let Some(mut session) = found else {
        return Err(Error::Unauthenticated);
    };
    if now - session.last_accessed_ms >= ms(config.touch_interval) {
        session.used(now, config.idle_timeout);
        let record = session.encode();
        let written = session.stored(&hash, &record, now);
        // PostgreSQL's copy is for rebuilding only: a slow or unreachable
        // database costs this request at most CARRY_WAIT, once per interval.
        let (redis, db) = tokio::join!(
            stored::update(app.redis(), &written),
            tokio::time::timeout(
                CARRY_WAIT,
                stored::carry_idle(app.db(), &hash, session.expires_at_ms)
            )
        );
        match redis {
            Ok(true) => {}
            // Logged out between our read and our write.
            Ok(false) => return Err(Error::Unauthenticated),
            // The session is valid; its use is recorded next time.
            Err(e) => tracing::warn!(error = %e, "session use not recorded"),
        }
        match db {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "session use not recorded in PostgreSQL"),
            Err(_) => tracing::warn!("session use not recorded in PostgreSQL: timed out"),
        }
    }
    Ok(caller(session, hash))
}

/// Redis is unreachable: the session as PostgreSQL has it, if live there (one
/// indexed read); its idle deadline carried forward there at most once per
/// touch interval. PostgreSQL unreachable too: `outage`, the Redis error.
async fn without_redis(
    app: &App,
    hash: String,
    now: i64,
    outage: StoreError,
) -> Result<Caller, Error> {
    let durable = match stored::durable(app.db(), &hash, now).await {
        Ok(durable) => durable,
        Err(e) => {
            tracing::warn!(error = %e, "PostgreSQL unreachable too: no token can be checked");
            return Err(outage.into());
        }
    };
    let Some(mut session) = durable.and_then(|d| {
        let mut s = Session::decode(&d.record)?;
        s.expires_at_ms = d.idle_until_ms;
        Some(s)
    }) else {
        return Err(Error::Unauthenticated);
    };
    let config = &app.config().auth;
    let carried = session.expires_at_ms - ms(config.idle_timeout);
    if now - carried >= ms(config.touch_interval) {
        session.used(now, config.idle_timeout);
        if let Err(e) = stored::carry_idle(app.db(), &hash, session.expires_at_ms).await {
            tracing::warn!(error = %e, "session use not recorded in PostgreSQL");
        }
    }
    tracing::warn!(error = %outage, "Redis unavailable; session checked in PostgreSQL");
    Ok(caller(session, hash))
}

/// A session Redis does not have, from PostgreSQL, if it is live there: written
/// back to Redis as used now. A session revoked meanwhile (its row deleted
/// between our read and our write) is taken out of Redis again, so a rebuild
/// never outlives a revocation.
async fn rebuild(app: &App, hash: &str, now: i64) -> Result<Option<Session>, Error> {
    let Some(durable) = stored::durable(app.db(), hash, now).await? else {
        return Ok(None);
    };
    let Some(mut session) = Session::decode(&durable.record) else {
        return Ok(None);
    };
    session.expires_at_ms = durable.idle_until_ms;
    session.used(now, app.config().auth.idle_timeout);
    let record = session.encode();
    stored::create(app.redis(), &session.stored(hash, &record, now)).await?;
    if stored::durable(app.db(), hash, now).await?.is_none() {
        let hashes = [hash.to_owned()];
        stored::delete(app.redis(), session.user_id, &hashes, false).await?;
        return Ok(None);
    }
    tracing::info!(session = %session.id, "auth session rebuilt from PostgreSQL");
    Ok(Some(session))
}

fn caller(session: Session, token_hash: String) -> Caller {
    Caller {
        user_id: session.user_id,
        session,
        token_hash,
    }
}

/// The caller's sessions (theirs only), the current one marked.
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<SessionView>, StoreError> {
    let now = now_ms();
    let mut sessions: Vec<Session> = stored::of_user(app.redis(), caller.user_id, now)
        .await?
        .into_iter()
        .filter_map(|(_, raw)| Session::decode(&raw))
        .filter(|s| s.is_live(now) && s.user_id == caller.user_id)
        .collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.last_accessed_ms));
    Ok(sessions
        .iter()
        .map(|s| s.view(s.id == caller.session.id))
        .collect())
}

/// The current session, extended to live `by` (default: the idle timeout) from
/// now, never past its absolute timeout and never shorter than it was.
pub async fn extend(app: &App, caller: &Caller, by: Option<Duration>) -> Result<Extended, Error> {
    let config = &app.config().auth;
    let by = by.unwrap_or(config.idle_timeout);
    if by.is_zero() || by > config.absolute_timeout {
        return Err(Error::Invalid(format!(
            "seconds must be from 1 to {}",
            config.absolute_timeout.as_secs()
        )));
    }
    let now = now_ms();
    let mut session = caller.session.clone();
    let capped = session.used(now, by);
    let record = session.encode();
    if !stored::carry_idle(app.db(), &caller.token_hash, session.expires_at_ms).await?
        || !stored::update(
            app.redis(),
            &session.stored(&caller.token_hash, &record, now),
        )
        .await?
    {
        return Err(Error::Unauthenticated);
    }
    Ok(Extended {
        capped,
        session: session.view(true),
    })
}

/// The outcome of an extension.
#[derive(Debug, Serialize)]
pub struct Extended {
    /// The session as it is now.
    pub session: SessionView,
    /// True when the absolute timeout cut the extension short.
    pub capped: bool,
}

/// Logs the current session out (PostgreSQL first: it is never rebuilt).
pub async fn end(app: &App, caller: &Caller) -> Result<(), StoreError> {
    let audit =
        Entry::new("session.signed_out", "session", caller.session.id).subject(caller.user_id);
    stored::delete_durable(app.db(), std::slice::from_ref(&caller.token_hash), audit).await?;
    stored::delete(
        app.redis(),
        caller.user_id,
        std::slice::from_ref(&caller.token_hash),
        false,
    )
    .await?;
    Ok(())
}

/// Logs every session of `user` out, those Redis lost included; returns how
/// many there were. `action` is what the audit trail calls it (the user
/// signing out everywhere, or an admin revoking).
pub async fn end_all(app: &App, user: Uuid, action: &'static str) -> Result<u64, StoreError> {
    let audit = Entry::new(action, "account", user).subject(user);
    let revoked = stored::delete_durable_of_user(app.db(), user, audit).await?;
    end_revoked(app, user, revoked).await
}

/// Takes out of Redis every session of `user`: those `revoked` in PostgreSQL
/// and any its index still names (a revocation whose Redis half failed
/// before). Returns how many sessions ended: those Redis had, or those
/// PostgreSQL had when Redis had lost some.
pub async fn end_revoked(app: &App, user: Uuid, revoked: Vec<String>) -> Result<u64, StoreError> {
    let in_postgres = revoked.len() as u64;
    let mut hashes = revoked;
    hashes.extend(stored::hashes_of_user(app.redis(), user).await?);
    hashes.sort_unstable();
    hashes.dedup();
    let in_redis = stored::delete(app.redis(), user, &hashes, true).await?;
    Ok(in_redis.max(in_postgres))
}

/// Revokes one session of `user` by its public id: PostgreSQL's row, then
/// Redis's entry (found by the row, or in the user's index when the row went
/// with an earlier revocation whose Redis half failed). False when neither has it.
pub async fn revoke(app: &App, user: Uuid, session: Uuid) -> Result<bool, StoreError> {
    let audit = Entry::new("session.revoked", "session", session).subject(user);
    let hash = match stored::delete_durable_by_id(app.db(), user, session, audit.clone()).await? {
        Some(hash) => hash,
        None => {
            let now = now_ms();
            let found = stored::of_user(app.redis(), user, now)
                .await?
                .into_iter()
                .find(|(_, raw)| Session::decode(raw).is_some_and(|s| s.id == session));
            match found {
                Some((hash, _)) => {
                    audit::record_alone(app.db(), audit).await?;
                    hash
                }
                None => return Ok(false),
            }
        }
    };
    stored::delete(app.redis(), user, &[hash], false).await?;
    Ok(true)
}

/// A user's live sessions as an admin sees them: every one PostgreSQL has
/// (those Redis lost included), with the last use Redis recorded where it
/// has one; `current` marks the asking session.
pub async fn of_user(app: &App, user: Uuid, current: Uuid) -> Result<Vec<SessionView>, StoreError> {
    let now = now_ms();
    let durable = stored::durable_of_user(app.db(), user, now).await?;
    let hashes: Vec<String> = durable.iter().map(|(h, _)| h.clone()).collect();
    let in_redis = match stored::get_many(app.redis(), &hashes).await {
        Ok(records) => records,
        Err(e) if e.is_redis() => vec![None; hashes.len()],
        Err(e) => return Err(e),
    };
    let mut sessions: Vec<Session> = durable
        .into_iter()
        .zip(in_redis)
        .filter_map(|((_, d), raw)| {
            raw.and_then(|raw| Session::decode(&raw)).or_else(|| {
                let mut s = Session::decode(&d.record)?;
                s.expires_at_ms = d.idle_until_ms;
                Some(s)
            })
        })
        .filter(|s| s.user_id == user && s.is_live(now))
        .collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.last_accessed_ms));
    Ok(sessions.iter().map(|s| s.view(s.id == current)).collect())
}

/// Deletes the PostgreSQL rows of dead sessions, in batches of `batch`;
/// returns how many.
pub async fn sweep(app: &App, batch: i64) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let n = stored::sweep_durable(app.db(), now_ms(), batch).await?;
        deleted += n;
        if n < batch as u64 {
            return Ok(deleted);
        }
    }
}

/// Session counts over the whole deployment.
pub async fn stats(app: &App) -> Result<SessionCounts, StoreError> {
    stored::counts(app.redis(), now_ms(), ACTIVE_WINDOW).await
}

/// Drops expired members from every session index (`POST /v1/admin/cache/cleanup`).
pub async fn prune_indexes(app: &App) -> Result<u64, StoreError> {
    stored::prune_indexes(app.redis(), now_ms(), ACTIVE_WINDOW).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_tokens_are_refused_before_any_lookup() {
        assert!(well_formed(&random_token()));
        for junk in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(!well_formed(junk), "{junk:?}");
        }
    }

    #[test]
    fn liveness_needs_both_deadlines_ahead() {
        let s = Session {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            role: Role::Student,
            created_at_ms: 0,
            last_accessed_ms: 0,
            expires_at_ms: 100,
            absolute_expires_at_ms: 200,
            method: "password".into(),
            ip: None,
            user_agent: None,
        };
        assert!(s.is_live(99));
        assert!(!s.is_live(100));
        let s = Session {
            expires_at_ms: 300,
            ..s
        };
        assert!(!s.is_live(200));
        assert_eq!(Session::decode(&s.encode()).unwrap().expires_at_ms, 300);
    }
}
