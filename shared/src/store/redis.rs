//! The Redis transport: one lazily made, self-reconnecting connection per
//! process (to one server or a cluster: see [`super::conn`]), a short circuit
//! breaker so an unreachable Redis costs one timeout rather than one per
//! request, and the few generic commands (GET, SET, SCAN) every domain shares.
//! What is stored, under which key and by which script, lives with its domain
//! (`store::tests`, `store::teaching`, `store::auth`, …).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::IntoConnectionInfo;
use tokio::sync::OnceCell;

use super::conn::{Conn, Target};
use super::{IoStats, Keys, StoreError};
use crate::aws::secrets::Extension;

/// How long requests skip Redis after it failed to answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Redis access for one process.
pub struct RedisStore {
    target: Target,
    /// The secret holding the AUTH token, and where to read it.
    auth_secret: Option<(String, Extension)>,
    conn: OnceCell<Conn>,
    keys: Keys,
    stats: Arc<IoStats>,
    started: Instant,
    /// Milliseconds since `started` before which requests skip Redis.
    skip_until_ms: AtomicU64,
}

impl RedisStore {
    /// Checks the URL; connects (reading the AUTH token first, when it is in
    /// `auth_secret`) on first use, not here.
    pub fn new(
        target: Target,
        auth_secret: Option<(String, Extension)>,
        keys: Keys,
        stats: Arc<IoStats>,
    ) -> Result<Self, StoreError> {
        target.url.as_str().into_connection_info()?;
        Ok(Self {
            target,
            auth_secret,
            conn: OnceCell::new(),
            keys,
            stats,
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        })
    }

    /// The key builder in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether Redis failed within the last second (requests then skip it).
    pub fn is_skipped(&self) -> bool {
        self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A handle on the shared connection, connecting the first time.
    async fn conn(&self) -> Result<Conn, StoreError> {
        if self.is_skipped() {
            return Err(StoreError::RedisUnavailable);
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let password = match &self.auth_secret {
                    Some((arn, extension)) => Some(self.auth_token(arn, extension).await?),
                    None => None,
                };
                Conn::connect(&self.target, password.as_deref())
                    .await
                    .inspect_err(|e| self.note(e))
                    .map_err(StoreError::from)
            })
            .await?;
        Ok(conn.clone())
    }

    /// The AUTH token in `arn`'s secret (a plain string).
    async fn auth_token(&self, arn: &str, extension: &Extension) -> Result<String, StoreError> {
        match extension.secret_string(arn).await {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            outcome => {
                let problem = outcome
                    .err()
                    .unwrap_or_else(|| "the secret is empty".into());
                tracing::error!(%problem, "REDIS_AUTH_SECRET_ARN: the AUTH token could not be read");
                self.skip_for_a_while();
                Err(StoreError::RedisUnavailable)
            }
        }
    }

    /// Records a failure that says Redis is out of reach.
    fn note(&self, e: &redis::RedisError) {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            self.skip_for_a_while();
        }
    }

    fn skip_for_a_while(&self) {
        let until = self.now_ms() + RETRY_AFTER.as_millis() as u64;
        self.skip_until_ms.store(until, Ordering::Relaxed);
    }

    /// Runs one request (a command, pipeline or script: one round trip), counted.
    pub async fn round_trip<T>(
        &self,
        request: impl AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn().await?;
        self.stats.redis_round_trip();
        request(&mut conn).await.map_err(|e| {
            self.note(&e);
            StoreError::from(e)
        })
    }

    /// Round-trip time of a PING. Bypasses the breaker: this is how recovery is seen.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let mut conn = self.connect().await?;
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        pong.inspect_err(|e| self.note(e))?;
        self.skip_until_ms.store(0, Ordering::Relaxed);
        Ok(started.elapsed())
    }

    /// A cached value.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.round_trip(async |c| redis::cmd("GET").arg(key).query_async(c).await)
            .await
    }

    /// Caches a value for `ttl`.
    pub async fn set_bytes(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.round_trip(async |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .query_async::<()>(c)
                .await
        })
        .await
    }

    /// One step of `SCAN cursor MATCH pattern COUNT count [TYPE kind]` (over
    /// every primary of a cluster): the next cursor (0 at the end) and keys.
    pub async fn scan(
        &self,
        pattern: &str,
        cursor: u64,
        count: usize,
        kind: Option<&str>,
    ) -> Result<(u64, Vec<String>), StoreError> {
        self.round_trip(async |c| c.scan_step(cursor, pattern, count, kind).await)
            .await
    }

    /// Caches several values for `ttl`, in one round trip.
    pub async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .ignore();
        }
        self.round_trip(async |c| pipe.query_async::<()>(c).await)
            .await
    }
}

/// Milliseconds for `PX`/`PEXPIRE`.
pub fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().try_into().unwrap_or(u64::MAX)
}
