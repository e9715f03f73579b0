//! `App`: configuration and connections, built once per process (Lambda
//! container or local server) and shared by every request.

use std::sync::Arc;

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::config::Config;
use crate::store::pools::PoolBank;
use crate::store::redis::RedisStore;
use crate::store::{self, Keys, StoreError};

/// Cheap to clone; every clone shares the same connections and caches.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    redis: RedisStore,
    db: Pool,
    // A pool version never changes once written, so a loaded bank stays valid for the process's life.
    banks: moka::sync::Cache<(Uuid, i32), Arc<PoolBank>>,
}

impl App {
    /// Builds the app; connects to nothing until a request needs it.
    pub fn new(config: Config) -> Result<Self, StoreError> {
        let redis = RedisStore::new(
            &config.redis_url,
            Keys::new(config.redis_key_prefix.clone()),
            config.redis_timeout,
        )?;
        let db = store::db::pool(&config.database_url, config.db_pool_max, config.db_timeout)?;
        let banks = moka::sync::Cache::new(64);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                redis,
                db,
                banks,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Redis access.
    pub fn redis(&self) -> &RedisStore {
        &self.inner.redis
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &Pool {
        &self.inner.db
    }

    /// One version of a pool, from process memory or PostgreSQL.
    pub async fn bank(&self, pool_id: Uuid, version: i32) -> Result<Arc<PoolBank>, StoreError> {
        let key = (pool_id, version);
        if let Some(bank) = self.inner.banks.get(&key) {
            return Ok(bank);
        }
        let bank = Arc::new(store::pools::load_bank(self.db(), pool_id, version).await?);
        self.inner.banks.insert(key, bank.clone());
        Ok(bank)
    }
}
