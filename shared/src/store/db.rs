//! PostgreSQL connection pool and schema migrations.

use std::time::{Duration, Instant};

use std::sync::Arc;

use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{IoStats, StoreError};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Builds the pool; no connection is made until one is needed.
pub fn pool(url: &str, max_size: usize, timeout: Duration) -> Result<Pool, StoreError> {
    build(url, max_size, timeout, None)
}

/// Like [`pool`], counting every checkout in `stats`.
pub fn counted_pool(
    url: &str,
    max_size: usize,
    timeout: Duration,
    stats: Arc<IoStats>,
) -> Result<Pool, StoreError> {
    build(url, max_size, timeout, Some(stats))
}

fn build(
    url: &str,
    max_size: usize,
    timeout: Duration,
    stats: Option<Arc<IoStats>>,
) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(timeout);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut builder = Pool::builder(manager);
    if let Some(stats) = stats {
        // A checkout either makes a connection or recycles an idle one: count both.
        let created = stats.clone();
        builder = builder
            .post_create(Hook::sync_fn(move |_, _| {
                created.pg_checkout();
                Ok(())
            }))
            .post_recycle(Hook::sync_fn(move |_, _| {
                stats.pg_checkout();
                Ok(())
            }));
    }
    builder
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(StoreError::from)
}

/// Applies every migration not yet applied (refinery keeps the history table).
/// Returns the names of the migrations applied by this call.
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let mut client = pool.get().await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Round-trip time of `SELECT 1` on a pooled connection.
pub async fn ping(pool: &Pool) -> Result<Duration, StoreError> {
    let started = Instant::now();
    let client = pool.get().await?;
    client.query_one("SELECT 1", &[]).await?;
    Ok(started.elapsed())
}
