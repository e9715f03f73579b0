//! What `GET /v1/admin/redis/stats` shows: the server's own figures (summed
//! over a cluster's primaries) and this deployment's keys counted by kind.

use super::StoreError;
use super::keys::KeyKind;
use super::redis::RedisStore;

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
    /// `pool:{<id>}:v<version>:e<encoding>`.
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
    fn count(&mut self, kind: KeyKind) {
        self.scanned += 1;
        *match kind {
            KeyKind::TestState => &mut self.test_state,
            KeyKind::TestLock => &mut self.test_lock,
            KeyKind::Question => &mut self.question,
            KeyKind::Pool => &mut self.pool,
            KeyKind::AuthSession => &mut self.auth_session,
            KeyKind::TeachingSession => &mut self.teaching_session,
            KeyKind::WsConnection => &mut self.ws_connection,
            KeyKind::Other => &mut self.other,
        } += 1;
    }
}

/// Server figures and a count of this deployment's keys by kind (SCAN, at
/// most `max_keys` keys looked at).
pub async fn stats(store: &RedisStore, max_keys: usize) -> Result<RedisStats, StoreError> {
    // INFO's default sections hold memory, stats and clients; a cluster's
    // figures are the sum over its primaries.
    let replies = store
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
    let pattern = format!("{}*", store.keys().prefix());
    loop {
        let (next, batch) = store.scan(&pattern, cursor, 1000, None).await?;
        for key in &batch {
            keys.count(store.keys().kind_of(key));
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
