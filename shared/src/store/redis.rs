//! The Redis side: one lazily made, self-reconnecting connection per process,
//! and the test-state commands.

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Keys, StoreError};

/// Writes the new state only if the stored one is still at the expected `seq`,
/// so a slow writer can never roll a test back.
static PUT_IF_SEQ: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        if not cur then return 0 end
        if cjson.decode(cur)['seq'] ~= tonumber(ARGV[1]) then return -1 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
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

/// Redis access for one process.
pub struct RedisStore {
    client: redis::Client,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
    keys: Keys,
}

impl RedisStore {
    /// Parses the URL; connects on first use, not here.
    pub fn new(url: &str, keys: Keys, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            conn: OnceCell::new(),
            keys,
        })
    }

    /// The key builder in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A handle on the shared connection, connecting the first time.
    pub async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(conn.clone())
    }

    /// Round-trip time of a PING.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(started.elapsed())
    }

    /// Reads a test's state and slides its TTL, in one command.
    pub async fn touch_test_state(
        &self,
        test: Uuid,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        let value = redis::cmd("GETEX")
            .arg(self.keys.test_state(test))
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(value)
    }

    /// Stores a test's state unless one is there already (a new test, or a
    /// rebuild racing another rebuild); true when written.
    pub async fn put_test_state(
        &self,
        test: Uuid,
        state: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let written: Option<String> = redis::cmd("SET")
            .arg(self.keys.test_state(test))
            .arg(state)
            .arg("PX")
            .arg(ttl_ms(ttl))
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(written.is_some())
    }

    /// Replaces a test's state if it is still at `expected_seq`.
    pub async fn replace_test_state(
        &self,
        test: Uuid,
        expected_seq: u32,
        state: &str,
        ttl: Duration,
    ) -> Result<CasOutcome, StoreError> {
        let mut conn = self.conn().await?;
        let outcome: i64 = PUT_IF_SEQ
            .key(self.keys.test_state(test))
            .arg(expected_seq)
            .arg(state)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => CasOutcome::Written,
            0 => CasOutcome::Missing,
            _ => CasOutcome::Stale,
        })
    }

    /// Drops a test's state.
    pub async fn delete_test_state(&self, test: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(self.keys.test_state(test))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().try_into().unwrap_or(u64::MAX)
}
