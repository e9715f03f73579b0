//! What operators do to the cache and Redis: read their figures, invalidate a
//! user's or a pool's cached reads, tidy the cache and the session indexes.
//! (Running tests: `cat::admin`; tutoring and sign-in figures: `teach`,
//! `auth::sessions`.)

use uuid::Uuid;

use crate::store::audit::{self, Entry};

use super::auth::sessions;
use crate::app::App;
use crate::cache::Namespace;
use crate::cache::admin::{self as cache_admin, CacheStats, CleanupReport};
use crate::store::redis_stats::{self, RedisStats};
use crate::store::{StoreError, pools, users};

/// Most keys one cache scan looks at (stats, or one cleanup call).
const CACHE_SCAN_LIMIT: u64 = 1_000_000;

/// Most keys the Redis figures look at.
const REDIS_SCAN_LIMIT: usize = 100_000;

/// What can go wrong, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No user with that id.
    #[error("no user with id {0}")]
    NoUser(Uuid),
    /// No pool with that id.
    #[error("no pool with id {0}")]
    NoPool(Uuid),
    /// Redis could not take the bump; this container keeps it and sends it
    /// with its next cache access.
    #[error(
        "Redis is unavailable; the invalidation is queued in this container and retried with its next cache access"
    )]
    Queued,
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cache's hit and miss counters, and its keys and bytes now.
pub async fn cache_stats(app: &App) -> Result<CacheStats, StoreError> {
    cache_admin::stats(app.cache(), CACHE_SCAN_LIMIT).await
}

/// Prunes the cache (superseded entries, keys without a TTL) and the auth
/// session indexes (members whose session expired).
pub async fn cleanup(app: &App) -> Result<CleanupReport, StoreError> {
    let mut report = cache_admin::cleanup(app.cache(), CACHE_SCAN_LIMIT).await?;
    report.index_entries = sessions::prune_indexes(app).await?;
    audit::record_alone(app.db(), Entry::of("cache.cleaned", "cache")).await?;
    tracing::info!(?report, "cache cleanup done");
    Ok(report)
}

/// Invalidates every cached read about a user; returns the namespaces bumped.
pub async fn invalidate_user(app: &App, id: Uuid) -> Result<Vec<String>, Error> {
    if users::get(app.db(), id).await?.is_none() {
        return Err(Error::NoUser(id));
    }
    invalidate(
        app,
        &Namespace::all_of_user(id),
        Entry::new("cache.invalidated", "user", id),
    )
    .await
}

/// Invalidates a pool's cached reads and the pool lists; returns the namespaces bumped.
pub async fn invalidate_pool(app: &App, id: Uuid) -> Result<Vec<String>, Error> {
    if pools::summary_of(app.db(), id).await?.is_none() {
        return Err(Error::NoPool(id));
    }
    let entry = Entry::new("cache.invalidated", "pool", id);
    invalidate(app, &[Namespace::Pool(id), Namespace::Pools], entry).await
}

async fn invalidate(
    app: &App,
    namespaces: &[Namespace],
    audit: Entry,
) -> Result<Vec<String>, Error> {
    audit::record_alone(app.db(), audit).await?;
    if !app.cache().invalidate(namespaces).await {
        return Err(Error::Queued);
    }
    Ok(namespaces.iter().filter_map(Namespace::name).collect())
}

/// Redis's own figures and this deployment's keys by kind.
pub async fn redis_stats(app: &App) -> Result<RedisStats, StoreError> {
    redis_stats::stats(app.redis(), REDIS_SCAN_LIMIT).await
}
