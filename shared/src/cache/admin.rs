//! What operators see of the cache and how they tidy it:
//! `GET /v1/admin/cache/stats` and `POST /v1/admin/cache/cleanup`.
//! Keys are found with `SCAN … COUNT`, never `KEYS`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Cache, Kind};
use crate::store::cache::{self as stored, ScannedKey};
use crate::store::redis::ttl_ms;
use crate::store::{Keys, StoreError};

/// `cache:stats` field: requests sent upstream to the AI API (retries included).
pub const AI_CALLS: &str = "ai:calls";
/// `cache:stats` field: tokens those requests used.
pub const AI_TOKENS_USED: &str = "ai:tokens_used";
/// `cache:stats` field: tokens of the responses served from the cache instead.
pub const AI_TOKENS_SAVED: &str = "ai:tokens_saved";

/// `cache:stats` field: questions answered from the semantic answer cache.
pub const SEMANTIC_HITS: &str = "semantic:hits";
/// `cache:stats` field: questions it had no close enough answer for.
pub const SEMANTIC_MISSES: &str = "semantic:misses";
/// `cache:stats` field: tokens of the answers it reused.
pub const SEMANTIC_TOKENS_SAVED: &str = "semantic:tokens_saved";
/// `cache:stats` field: requests sent to the embeddings API (retries included).
pub const EMBEDDING_CALLS: &str = "semantic:embedding_calls";

/// Keys looked at per SCAN step.
const SCAN_COUNT: usize = 1_000;

/// One namespace kind's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindStats {
    /// Reads that asked the cache.
    pub lookups: u64,
    /// Reads the cache answered (lookups that needed no load).
    pub hits: u64,
    /// Loads from the source (PostgreSQL, the AI API).
    pub misses: u64,
    /// `hits / lookups`; null before the first lookup.
    pub hit_ratio: Option<f64>,
    /// Keys held now (entries, versions, leases).
    pub keys: u64,
    /// Their keys' and values' bytes (Redis's own overhead not included).
    pub bytes_estimate: u64,
}

/// The AI response cache's savings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AiStats {
    /// Requests sent to the AI API (retries included).
    pub upstream_calls: u64,
    /// Responses served from the cache instead.
    pub cached_responses: u64,
    /// Tokens the upstream requests used.
    pub tokens_used: u64,
    /// Tokens the cached responses would have cost.
    pub tokens_saved: u64,
}

/// The semantic answer cache's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SemanticStats {
    /// Questions answered with an earlier answer to a question close enough.
    pub hits: u64,
    /// Questions with no close enough earlier question (answered upstream).
    pub misses: u64,
    /// `hits / (hits + misses)`; null before the first question.
    pub hit_ratio: Option<f64>,
    /// Tokens the reused answers cost when they were written.
    pub tokens_saved: u64,
    /// Requests sent to the embeddings API (retries included; cached embeddings not).
    pub embedding_calls: u64,
}

/// `GET /v1/admin/cache/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// False when `CACHE_ENABLED=false` (nothing is cached or counted).
    pub enabled: bool,
    /// By namespace kind: `user`, `pool`, `pools`, `ai`.
    pub namespaces: BTreeMap<&'static str, KindStats>,
    /// AI calls and tokens.
    pub ai: AiStats,
    /// The semantic answer cache.
    pub semantic: SemanticStats,
    /// Keys looked at to count keys and bytes.
    pub scanned: u64,
    /// False when the scan stopped at its limit (key counts are then lower bounds).
    pub complete: bool,
}

/// Counters since they were first written (they live 30 days past their last
/// change), and keys and bytes now, from a scan of at most `max_keys` keys.
pub async fn stats(cache: &Cache, max_keys: u64) -> Result<CacheStats, StoreError> {
    let counters = stored::counters(&cache.redis).await?;
    let counter = |field: &str| counters.get(field).copied().unwrap_or(0).max(0) as u64;
    let mut namespaces: BTreeMap<&'static str, KindStats> = Kind::ALL
        .iter()
        .map(|&kind| {
            let lookups = counter(&kind.lookups_field());
            let misses = counter(&kind.misses_field()).min(lookups);
            let hits = lookups - misses;
            let stats = KindStats {
                lookups,
                hits,
                misses,
                hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
                ..KindStats::default()
            };
            (kind.name(), stats)
        })
        .collect();
    let keys = cache.redis.keys();
    let mut scanned = 0u64;
    let mut complete = true;
    for pattern in [keys.cache_pattern(), keys.ai_pattern()] {
        let mut cursor = 0;
        loop {
            let (next, batch) = stored::scan(&cache.redis, &pattern, cursor, SCAN_COUNT).await?;
            for k in &batch {
                if let Some(kind) = kind_of(keys, &k.key) {
                    let stats = namespaces.get_mut(kind.name()).expect("every kind listed");
                    stats.keys += 1;
                    stats.bytes_estimate += k.bytes + k.key.len() as u64;
                }
            }
            scanned += batch.len() as u64;
            cursor = next;
            if cursor == 0 {
                break;
            }
            if scanned >= max_keys {
                complete = false;
                break;
            }
        }
    }
    let ai = &namespaces[Kind::Ai.name()];
    Ok(CacheStats {
        enabled: cache.config().enabled,
        ai: AiStats {
            upstream_calls: counter(AI_CALLS),
            cached_responses: ai.hits,
            tokens_used: counter(AI_TOKENS_USED),
            tokens_saved: counter(AI_TOKENS_SAVED),
        },
        semantic: SemanticStats {
            hits: counter(SEMANTIC_HITS),
            misses: counter(SEMANTIC_MISSES),
            hit_ratio: {
                let (h, m) = (counter(SEMANTIC_HITS), counter(SEMANTIC_MISSES));
                (h + m > 0).then(|| h as f64 / (h + m) as f64)
            },
            tokens_saved: counter(SEMANTIC_TOKENS_SAVED),
            embedding_calls: counter(EMBEDDING_CALLS),
        },
        namespaces,
        scanned,
        complete,
    })
}

/// The kind a cache or AI key belongs to.
fn kind_of(keys: &Keys, key: &str) -> Option<Kind> {
    match keys.cache_key_parts(key) {
        Some((ns, _)) => Kind::of(ns),
        None => {
            let rest = key.strip_prefix(keys.prefix())?.strip_prefix("ai:")?;
            Some(if rest.starts_with(&format!("{}:", super::EMBEDDING_OP)) {
                Kind::Embedding
            } else {
                Kind::Ai
            })
        }
    }
}

/// `POST /v1/admin/cache/cleanup`: what was removed or repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Entries stored under a namespace version since superseded (they would
    /// have aged out; now their memory is back).
    pub stale_entries: u64,
    /// Cache and AI keys that had no TTL (every key should have one): entries
    /// and leases deleted, version keys given their TTL back.
    pub keys_without_ttl: u64,
    /// Members of the auth session indexes whose session has expired.
    pub index_entries: u64,
    /// Keys looked at.
    pub scanned: u64,
    /// False when the scan stopped at its limit; call again to go on.
    pub complete: bool,
}

/// Prunes the cache, looking at most at `max_keys` keys. The session indexes
/// are the auth service's: its caller prunes them and fills `index_entries`.
pub async fn cleanup(cache: &Cache, max_keys: u64) -> Result<CleanupReport, StoreError> {
    let mut report = CleanupReport {
        complete: true,
        ..CleanupReport::default()
    };
    let keys = cache.redis.keys();
    for pattern in [keys.cache_pattern(), keys.ai_pattern()] {
        let mut cursor = 0;
        loop {
            let (next, batch) = stored::scan(&cache.redis, &pattern, cursor, SCAN_COUNT).await?;
            report.scanned += batch.len() as u64;
            tidy(cache, &batch, &mut report).await?;
            cursor = next;
            if cursor == 0 {
                break;
            }
            if report.scanned >= max_keys {
                report.complete = false;
                break;
            }
        }
        tracing::info!(pattern, scanned = report.scanned, "cache cleanup pass done");
    }
    Ok(report)
}

/// Cleans one scanned batch.
async fn tidy(
    cache: &Cache,
    batch: &[ScannedKey],
    report: &mut CleanupReport,
) -> Result<(), StoreError> {
    let keys = cache.redis.keys();
    // The current version of every namespace with an entry in the batch.
    let mut namespaces: Vec<&str> = batch
        .iter()
        .filter_map(|k| keys.cache_key_parts(&k.key))
        .filter(|(_, tail)| tail.starts_with("entry:"))
        .map(|(ns, _)| ns)
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let version_keys: Vec<String> = namespaces.iter().map(|ns| keys.cache_version(ns)).collect();
    let current: HashMap<&str, i64> = namespaces
        .iter()
        .copied()
        .zip(stored::versions(&cache.redis, &version_keys).await?)
        .collect();
    let mut doomed: Vec<&str> = Vec::new();
    let mut revive: Vec<(&str, u64)> = Vec::new();
    for k in batch {
        let parts = keys.cache_key_parts(&k.key);
        if k.ttl_ms == -1 {
            report.keys_without_ttl += 1;
            match parts {
                Some((ns, "version")) => {
                    let kind = Kind::of(ns).unwrap_or(Kind::Pool);
                    revive.push((&k.key, ttl_ms(kind.ttl(cache.config()))));
                }
                _ => doomed.push(&k.key),
            }
            continue;
        }
        if let (Some((ns, tail)), Some(version)) = (parts, k.version)
            && tail.starts_with("entry:")
            && current.get(ns).is_some_and(|&now| version != now)
        {
            report.stale_entries += 1;
            doomed.push(&k.key);
        }
    }
    stored::delete(&cache.redis, &doomed).await?;
    stored::expire(&cache.redis, &revive).await?;
    Ok(())
}
