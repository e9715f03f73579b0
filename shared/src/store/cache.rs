//! The Redis side of the cache layer (`lectern::cache`).
//!
//! An entry is stored with the version of its namespace it was computed under
//! (8 bytes, big-endian, then the payload). A lookup reads the namespace's
//! version and the entry in one pipeline and trusts the entry only when the two
//! agree, so bumping the version (one `INCR`) invalidates the whole namespace;
//! superseded entries are overwritten by the next fill or age out by their TTL.
//! No script is needed, so every request is a plain pipeline, safe on a Redis
//! Cluster (a namespace's keys share a hash tag).

use std::collections::HashMap;
use std::time::Duration;

use super::StoreError;
use super::redis::{RedisStore, ttl_ms};

/// How long the counters in `cache:stats` outlive their last change.
pub const STATS_TTL: Duration = Duration::from_secs(30 * 86_400);

/// An entry as stored: the namespace version, then the payload.
pub fn frame(version: i64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a stored entry into its version and payload.
pub fn unframe(raw: &[u8]) -> Option<(i64, &[u8])> {
    let (version, payload) = raw.split_first_chunk::<8>()?;
    Some((i64::from_be_bytes(*version), payload))
}

/// A version key to bump, and how long the namespace's entries live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bump {
    /// `cache:{<ns>}:version`.
    pub version_key: String,
    /// The longest TTL of the namespace's entries: the version key lives at
    /// least that long after its last use, so it can only reset to 0 once every
    /// entry written under it is gone.
    pub ttl: Duration,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The namespace's current version (0 when it was never bumped, or unversioned).
    pub version: i64,
    /// Each key's payload, when stored under `version`.
    pub payloads: Vec<Option<Vec<u8>>>,
}

/// One value to store.
pub struct Fill<'a> {
    /// Entry key.
    pub key: &'a str,
    /// The framed value.
    pub value: &'a [u8],
    /// How long it lives.
    pub ttl: Duration,
}

/// A namespace's version key (for versioned namespaces) with the TTL its entries share.
pub struct Versioned<'a> {
    /// `cache:{<ns>}:version`.
    pub key: &'a str,
    /// The namespace's TTL class.
    pub ttl: Duration,
}

/// Adds `HINCRBY`s of the stats hash (and keeps it alive).
fn count(pipe: &mut redis::Pipeline, store: &RedisStore, counts: &[(&str, i64)]) {
    if counts.is_empty() {
        return;
    }
    let stats = store.keys().cache_stats();
    for (field, n) in counts {
        pipe.cmd("HINCRBY").arg(&stats).arg(*field).arg(*n).ignore();
    }
    pipe.cmd("PEXPIRE")
        .arg(&stats)
        .arg(ttl_ms(STATS_TTL))
        .ignore();
}

/// Adds an `INCR` of each version key, with its TTL renewed.
fn bump(pipe: &mut redis::Pipeline, bumps: &[Bump]) {
    for b in bumps {
        pipe.cmd("INCR").arg(&b.version_key).ignore();
        pipe.cmd("PEXPIRE")
            .arg(&b.version_key)
            .arg(ttl_ms(b.ttl))
            .ignore();
    }
}

/// Reads a namespace's version and some of its entries, counting `lookups` under
/// `counter` (one round trip). Bumps left over from a failed invalidation ride along.
pub async fn lookup(
    store: &RedisStore,
    version_key: Option<&str>,
    keys: &[String],
    counter: &str,
    retry: &[Bump],
) -> Result<Found, StoreError> {
    let mut pipe = redis::pipe();
    bump(&mut pipe, retry);
    count(&mut pipe, store, &[(counter, keys.len() as i64)]);
    match version_key {
        Some(v) => pipe.cmd("GET").arg(v),
        None => pipe.cmd("ECHO").arg(0),
    };
    pipe.cmd("MGET").arg(keys);
    let (version, raw): (Option<i64>, Vec<Option<Vec<u8>>>) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    let version = version.unwrap_or(0);
    let payloads = raw
        .into_iter()
        .map(|raw| match raw.as_deref().and_then(unframe) {
            Some((v, payload)) if v == version => Some(payload.to_vec()),
            _ => None,
        })
        .collect();
    Ok(Found { version, payloads })
}

/// Takes the lease on a missing entry (`SET NX PX`): whether it is ours.
pub async fn lease(store: &RedisStore, key: &str, ttl: Duration) -> Result<bool, StoreError> {
    let taken: Option<String> = store
        .round_trip(async |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(ttl))
                .query_async(c)
                .await
        })
        .await?;
    Ok(taken.is_some())
}

/// While another container fills an entry: the entry if it is there now under
/// the current version, and whether the lease is still held.
pub async fn poll(
    store: &RedisStore,
    version_key: Option<&str>,
    key: &str,
    lease_key: &str,
) -> Result<(Option<Vec<u8>>, bool), StoreError> {
    let mut pipe = redis::pipe();
    match version_key {
        Some(v) => pipe.cmd("GET").arg(v),
        None => pipe.cmd("ECHO").arg(0),
    };
    pipe.cmd("GET").arg(key).cmd("EXISTS").arg(lease_key);
    let (version, raw, held): (Option<i64>, Option<Vec<u8>>, bool) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    let payload = match raw.as_deref().and_then(unframe) {
        Some((v, payload)) if v == version.unwrap_or(0) => Some(payload.to_vec()),
        _ => None,
    };
    Ok((payload, held))
}

/// Stores computed values (each `SET … PX`: value and TTL at once), releases
/// the lease, keeps the version key alive and counts (one round trip).
pub async fn fill(
    store: &RedisStore,
    fills: &[Fill<'_>],
    lease_key: Option<&str>,
    version: Option<Versioned<'_>>,
    counts: &[(&str, i64)],
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    for f in fills {
        pipe.cmd("SET")
            .arg(f.key)
            .arg(f.value)
            .arg("PX")
            .arg(ttl_ms(f.ttl))
            .ignore();
    }
    if let Some(lease) = lease_key {
        pipe.cmd("DEL").arg(lease).ignore();
    }
    if let Some(v) = version {
        pipe.cmd("PEXPIRE").arg(v.key).arg(ttl_ms(v.ttl)).ignore();
    }
    count(&mut pipe, store, counts);
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Bumps namespace versions (one round trip).
pub async fn invalidate(store: &RedisStore, bumps: &[Bump]) -> Result<(), StoreError> {
    if bumps.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    bump(&mut pipe, bumps);
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Adds to counters in `cache:stats` (one round trip).
pub async fn add_counts(store: &RedisStore, counts: &[(&str, i64)]) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    count(&mut pipe, store, counts);
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Every counter in `cache:stats`.
pub async fn counters(store: &RedisStore) -> Result<HashMap<String, i64>, StoreError> {
    let stats = store.keys().cache_stats();
    store
        .round_trip(async |c| redis::cmd("HGETALL").arg(&stats).query_async(c).await)
        .await
}

/// A key found by a scan, with what cleaning and sizing need.
#[derive(Debug, Clone)]
pub struct ScannedKey {
    /// The key.
    pub key: String,
    /// Bytes of its value (0 for a key that is not a string).
    pub bytes: u64,
    /// Milliseconds left; -1 without a TTL, -2 gone.
    pub ttl_ms: i64,
    /// For a cache entry: the version it was stored under.
    pub version: Option<i64>,
}

/// One step of a SCAN over `pattern`, with each key's size, TTL and stored
/// version (two round trips: the scan, then one pipeline over what it found).
pub async fn scan(
    store: &RedisStore,
    pattern: &str,
    cursor: u64,
    count: usize,
) -> Result<(u64, Vec<ScannedKey>), StoreError> {
    let (next, keys) = store.scan(pattern, cursor, count, Some("string")).await?;
    if keys.is_empty() {
        return Ok((next, Vec::new()));
    }
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("STRLEN")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(7);
    }
    let replies: Vec<(u64, i64, Vec<u8>)> = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok((
        next,
        keys.into_iter()
            .zip(replies)
            .map(|(key, (bytes, ttl_ms, head))| ScannedKey {
                key,
                bytes,
                ttl_ms,
                version: head
                    .as_slice()
                    .try_into()
                    .ok()
                    .map(|b: [u8; 8]| i64::from_be_bytes(b)),
            })
            .collect(),
    ))
}

/// Several namespaces' current versions (one round trip).
pub async fn versions(store: &RedisStore, version_keys: &[String]) -> Result<Vec<i64>, StoreError> {
    if version_keys.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<Option<i64>> = store
        .round_trip(async |c| redis::cmd("MGET").arg(version_keys).query_async(c).await)
        .await?;
    Ok(found.into_iter().map(|v| v.unwrap_or(0)).collect())
}

/// Gives keys a TTL (one round trip).
pub async fn expire(store: &RedisStore, keys: &[(&str, u64)]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (key, ms) in keys {
        pipe.cmd("PEXPIRE").arg(*key).arg(*ms).ignore();
    }
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

/// Deletes keys (one round trip); how many existed.
pub async fn delete(store: &RedisStore, keys: &[&str]) -> Result<u64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    store
        .round_trip(async |c| redis::cmd("UNLINK").arg(keys).query_async(c).await)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_version() {
        let raw = frame(-3, b"{}");
        assert_eq!(unframe(&raw), Some((-3, &b"{}"[..])));
        assert_eq!(unframe(&frame(7, b"")), Some((7, &b""[..])));
        assert_eq!(unframe(b"short"), None);
    }
}
