//! The Redis side: one lazily made, self-reconnecting connection per process
//! (to one server or a cluster: see [`super::conn`]), a short circuit breaker
//! so an unreachable Redis costs one timeout rather than one per request, and
//! the test-state commands.
//!
//! A test's state is stored framed: its `seq` as 4 big-endian bytes, then the
//! caller's body. The scripts read the `seq` without decoding the body.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::IntoConnectionInfo;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::conn::{Conn, Target};
use super::{IoStats, Keys, StoreError};
use crate::aws::secrets::Extension;

/// How long requests skip Redis after it failed to answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a submission lock lives if its holder never releases it.
pub const LOCK_TTL: Duration = Duration::from_secs(5);

/// Writes a test's state only if the stored one is still at the expected `seq`,
/// so a slow writer can never roll a test back; never shortens the TTL (an
/// extended test keeps its extension); releases the submission lock in
/// `KEYS[2]`, when given, if it still holds our token.
/// Returns 1 written, 0 no state, -1 another writer moved it on.
static SET_IF_SEQ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        local outcome
        if not cur then
            outcome = 0
        elseif struct.unpack('>I4', cur) ~= tonumber(ARGV[1]) then
            outcome = -1
        else
            local ttl = math.max(redis.call('PTTL', KEYS[1]), tonumber(ARGV[3]))
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
            outcome = 1
        end
        if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[4] then
            redis.call('DEL', KEYS[2])
        end
        return outcome
        ",
    )
});

/// Deletes a lock only if it still holds our token (it may have expired and
/// been taken by someone else).
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

/// Outcome of a compare-and-set on a test's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written.
    Written,
    /// The state was gone (expired or deleted by `end`).
    Missing,
    /// Another writer moved the state on first.
    Stale,
}

/// A test state as stored: `seq`, then the body.
pub fn frame(seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a stored test state into its `seq` and body.
pub fn unframe(raw: &[u8]) -> Option<(u32, &[u8])> {
    let (seq, body) = raw.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*seq), body))
}

/// A submission lock we hold: its question and our token.
#[derive(Debug, Clone)]
pub struct Lock {
    /// The question being answered.
    pub question_id: String,
    token: String,
}

impl Lock {
    /// A new lock on `question_id` with a random token.
    pub fn new(question_id: &str) -> Self {
        Self {
            question_id: question_id.to_owned(),
            token: format!("{:032x}", rand::random::<u128>()),
        }
    }
}

/// A test state read from Redis with its remaining time to live.
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The framed value.
    pub raw: Vec<u8>,
    /// Milliseconds left.
    pub ttl_ms: i64,
}

/// What `GET /v1/admin/redis/stats` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisStats {
    /// `used_memory`.
    pub used_memory_bytes: u64,
    /// `used_memory_peak`.
    pub used_memory_peak_bytes: u64,
    /// `maxmemory` (0: no limit).
    pub maxmemory_bytes: u64,
    /// What Redis evicts when full.
    pub maxmemory_policy: String,
    /// `instantaneous_ops_per_sec`.
    pub ops_per_sec: u64,
    /// Since the server started.
    pub total_commands_processed: u64,
    /// Lookups that found their key.
    pub keyspace_hits: u64,
    /// Lookups that did not.
    pub keyspace_misses: u64,
    /// Keys removed by their TTL.
    pub expired_keys: u64,
    /// Keys removed to make room (should stay 0).
    pub evicted_keys: u64,
    /// Clients connected.
    pub connected_clients: u64,
    /// This deployment's keys (under its prefix), by kind.
    pub keys: KeyCounts,
}

/// Keys under the deployment's prefix, by kind.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KeyCounts {
    /// `test:{<id>}:state`.
    pub test_state: u64,
    /// `test:{<id>}:lock:<question>`.
    pub test_lock: u64,
    /// `question:{<id>}`.
    pub question: u64,
    /// `pool:{<id>}:v<version>`.
    pub pool: u64,
    /// `auth:session:<hash>`.
    pub auth_session: u64,
    /// `teaching:session:{<id>}:*` (context, history, metrics, followers).
    pub teaching_session: u64,
    /// `teaching:ws:<connection>`.
    pub ws_connection: u64,
    /// Anything else.
    pub other: u64,
    /// Keys looked at.
    pub scanned: usize,
    /// False when the scan stopped at its limit (the counts are then a lower bound).
    pub complete: bool,
}

impl KeyCounts {
    fn count(&mut self, key: &str) {
        self.scanned += 1;
        let kind = if key.starts_with("test:{") && key.ends_with("}:state") {
            &mut self.test_state
        } else if key.starts_with("test:{") && key.contains("}:lock:") {
            &mut self.test_lock
        } else if key.starts_with("question:{") {
            &mut self.question
        } else if key.starts_with("pool:{") {
            &mut self.pool
        } else if key.starts_with("auth:session:") {
            &mut self.auth_session
        } else if key.starts_with("teaching:session:{") {
            &mut self.teaching_session
        } else if key.starts_with("teaching:ws:") {
            &mut self.ws_connection
        } else {
            &mut self.other
        };
        *kind += 1;
    }
}

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
    /// Tests advanced in PostgreSQL while Redis could not be written: whatever
    /// Redis holds for them is behind, and is replaced on their next request.
    stale: Mutex<HashSet<Uuid>>,
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
            stale: Mutex::new(HashSet::new()),
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

    /// Takes the submission lock and reads the test's state, sliding its TTL (one
    /// round trip). `false` when another submit of this question holds the lock.
    pub async fn begin_submit(
        &self,
        test: Uuid,
        lock: &Lock,
        ttl: Duration,
    ) -> Result<(bool, Option<Vec<u8>>), StoreError> {
        let state_key = self.keys.test_state(test);
        let lock_key = self.keys.test_lock(test, &lock.question_id);
        let (locked, state): (Option<String>, Option<Vec<u8>>) = self
            .round_trip(async |c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(&lock_key)
                    .arg(&lock.token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(LOCK_TTL))
                    .add_command(get(&state_key))
                    .add_command(slide(&state_key, ttl))
                    .ignore()
                    .query_async(c)
                    .await
            })
            .await?;
        Ok((locked.is_some(), state))
    }

    /// Reads a test's state and slides its TTL (never shortening an extension).
    pub async fn touch_test_state(
        &self,
        test: Uuid,
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.keys.test_state(test);
        let (state,): (Option<Vec<u8>>,) = self
            .round_trip(async |c| {
                redis::pipe()
                    .add_command(get(&key))
                    .add_command(slide(&key, ttl))
                    .ignore()
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(state)
    }

    /// Reads a test's state and its TTL without touching either.
    pub async fn peek_test_state(&self, test: Uuid) -> Result<Option<StoredState>, StoreError> {
        Ok(self.peek_test_states(&[test]).await?.pop().flatten())
    }

    /// Stores a test's state unless one is there already (a new test, or a
    /// rebuild racing another rebuild); true when written.
    pub async fn put_test_state(
        &self,
        test: Uuid,
        state: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.keys.test_state(test);
        let written: Option<String> = self
            .round_trip(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(state)
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .arg("NX")
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(written.is_some())
    }

    /// Replaces a test's state if it is still at `expected_seq`, releasing `lock`
    /// in the same round trip.
    pub async fn replace_test_state(
        &self,
        test: Uuid,
        expected_seq: u32,
        state: &[u8],
        ttl: Duration,
        lock: Option<&Lock>,
    ) -> Result<CasOutcome, StoreError> {
        let mut invocation = SET_IF_SEQ.key(self.keys.test_state(test));
        if let Some(lock) = lock {
            invocation.key(self.keys.test_lock(test, &lock.question_id));
        }
        invocation
            .arg(expected_seq)
            .arg(state)
            .arg(ttl_ms(ttl))
            .arg(lock.map_or("", |l| l.token.as_str()));
        let outcome: i64 = self
            .round_trip(async |c| invocation.invoke_async(c).await)
            .await?;
        Ok(match outcome {
            1 => CasOutcome::Written,
            0 => CasOutcome::Missing,
            _ => CasOutcome::Stale,
        })
    }

    /// Releases a submission lock if it is still ours.
    pub async fn release(&self, test: Uuid, lock: &Lock) -> Result<(), StoreError> {
        let key = self.keys.test_lock(test, &lock.question_id);
        let _: i64 = self
            .round_trip(async |c| RELEASE.key(&key).arg(&lock.token).invoke_async(c).await)
            .await?;
        Ok(())
    }

    /// Lets a test's state live at least `ttl` from now; `false` when there is no state.
    pub async fn extend_test_state(&self, test: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        let key = self.keys.test_state(test);
        let (_, left): (i64, i64) = self
            .round_trip(async |c| {
                redis::pipe()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl_ms(ttl))
                    .arg("GT")
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(left >= 0)
    }

    /// Drops a test's state.
    pub async fn delete_test_state(&self, test: Uuid) -> Result<(), StoreError> {
        let key = self.keys.test_state(test);
        let _: i64 = self
            .round_trip(async |c| redis::cmd("DEL").arg(&key).query_async(c).await)
            .await?;
        Ok(())
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

    /// Writes a test's state whatever is there (an administrator's resync).
    pub async fn overwrite_test_state(
        &self,
        test: Uuid,
        state: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_bytes(&self.keys.test_state(test), state, ttl)
            .await?;
        self.clear_stale(test);
        Ok(())
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

    /// One step of a SCAN over the test states: the next cursor (0 at the end) and the tests found.
    pub async fn scan_test_states(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Uuid>), StoreError> {
        let (next, keys) = self
            .scan(&self.keys.test_state_pattern(), cursor, count, None)
            .await?;
        let tests = keys
            .iter()
            .filter_map(|k| self.keys.test_of_state_key(k))
            .collect();
        Ok((next, tests))
    }

    /// Several tests' states and TTLs, untouched, in one round trip.
    pub async fn peek_test_states(
        &self,
        tests: &[Uuid],
    ) -> Result<Vec<Option<StoredState>>, StoreError> {
        if tests.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for &t in tests {
            let key = self.keys.test_state(t);
            pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        }
        let replies: Vec<(Option<Vec<u8>>, i64)> =
            self.round_trip(async |c| pipe.query_async(c).await).await?;
        Ok(replies
            .into_iter()
            .map(|(raw, ttl_ms)| raw.map(|raw| StoredState { raw, ttl_ms }))
            .collect())
    }

    /// Server figures and a count of this deployment's keys by kind (SCAN, at
    /// most `max_keys` keys looked at).
    pub async fn stats(&self, max_keys: usize) -> Result<RedisStats, StoreError> {
        // INFO's default sections hold memory, stats and clients; a cluster's
        // figures are the sum over its primaries.
        let replies = self
            .round_trip(async |c| c.on_each_primary(&redis::cmd("INFO")).await)
            .await?;
        let infos: Vec<String> = replies
            .into_iter()
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()
            .map_err(redis::RedisError::from)?;
        let info = |field: &str| -> Option<String> {
            infos
                .first()?
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let number = |field: &str| -> u64 {
            infos
                .iter()
                .filter_map(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .sum()
        };
        let mut keys = KeyCounts::default();
        let mut cursor = 0u64;
        let pattern = format!("{}*", self.keys.prefix());
        loop {
            let (next, batch) = self.scan(&pattern, cursor, 1000, None).await?;
            for key in &batch {
                keys.count(key.strip_prefix(self.keys.prefix()).unwrap_or(key));
            }
            cursor = next;
            if cursor == 0 || keys.scanned >= max_keys {
                break;
            }
        }
        keys.complete = cursor == 0;
        Ok(RedisStats {
            used_memory_bytes: number("used_memory"),
            used_memory_peak_bytes: number("used_memory_peak"),
            maxmemory_bytes: number("maxmemory"),
            maxmemory_policy: info("maxmemory_policy").unwrap_or_default(),
            ops_per_sec: number("instantaneous_ops_per_sec"),
            total_commands_processed: number("total_commands_processed"),
            keyspace_hits: number("keyspace_hits"),
            keyspace_misses: number("keyspace_misses"),
            expired_keys: number("expired_keys"),
            evicted_keys: number("evicted_keys"),
            connected_clients: number("connected_clients"),
            keys,
        })
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

    /// Notes that PostgreSQL moved `test` on while its Redis state could not follow.
    pub fn mark_stale(&self, test: Uuid) {
        self.stale.lock().expect("stale set").insert(test);
    }

    /// Whether `test`'s Redis state is known to be behind PostgreSQL.
    pub fn is_stale(&self, test: Uuid) -> bool {
        self.stale.lock().expect("stale set").contains(&test)
    }

    /// Forgets that `test`'s Redis state was behind (it has been replaced).
    pub fn clear_stale(&self, test: Uuid) {
        self.stale.lock().expect("stale set").remove(&test);
    }
}

/// `GET key`.
fn get(key: &str) -> redis::Cmd {
    redis::cmd("GET").arg(key).to_owned()
}

/// Slides a key's TTL up to `ttl`, never down (an extension stays).
fn slide(key: &str, ttl: Duration) -> redis::Cmd {
    redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ttl_ms(ttl))
        .arg("GT")
        .to_owned()
}

/// Milliseconds for `PX`/`PEXPIRE`.
pub fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let raw = frame(70_000, b"body");
        assert_eq!(&raw[..4], &70_000u32.to_be_bytes());
        assert_eq!(unframe(&raw), Some((70_000, &b"body"[..])));
        assert_eq!(unframe(b"abc"), None);
    }

    #[test]
    fn lock_tokens_differ() {
        assert_ne!(Lock::new("q").token, Lock::new("q").token);
    }
}
