//! `App`: configuration and connections, built once per process (Lambda
//! container or local server) and shared by every request, with the little
//! the process remembers between requests (pool versions read, tests known
//! to be behind in Redis, sign-ins accepted lately). It reads nothing itself:
//! the services do, through it.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::ai;
use crate::cache::Cache;
use crate::config::Config;
use crate::store::catalog::Catalog;
use crate::store::conn::Target;
use crate::store::redis::RedisStore;
use crate::store::tests::StaleStates;
use crate::store::{self, IoCounts, IoStats, Keys, StoreError};

/// Cheap to clone; every clone shares the same connections and caches.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    redis: Arc<RedisStore>,
    cache: Cache,
    ai: ai::Client,
    db: Pool,
    catalog: Catalog,
    stale_tests: StaleStates,
    stats: Arc<IoStats>,
}

impl App {
    /// Builds the app; connects to nothing until a request needs it.
    pub fn new(config: Config) -> Result<Self, StoreError> {
        let stats = Arc::new(IoStats::default());
        let redis = Arc::new(RedisStore::new(
            Target {
                url: config.redis_url.clone(),
                cluster: config.redis_cluster,
                timeout: config.redis_timeout,
            },
            config
                .redis_auth_secret_arn
                .clone()
                .map(|arn| (arn, config.secrets.clone())),
            Keys::new(config.redis_key_prefix.clone()),
            stats.clone(),
        )?);
        let db = store::db::pool_for(
            &config.database,
            config.db_pool_max,
            config.db_timeout,
            Some(stats.clone()),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                cache: Cache::new(redis.clone(), config.cache.clone()),
                ai: ai::Client::new(config.ai.clone()),
                config,
                redis,
                db,
                catalog: Catalog::default(),
                stale_tests: StaleStates::default(),
                stats,
            }),
        })
    }

    /// The app on this process's environment; `Err` is one line naming what
    /// is wrong with the configuration.
    pub fn from_env() -> Result<Self, String> {
        let config = Config::from_env().map_err(|e| e.to_string())?;
        Self::new(config).map_err(|e| e.to_string())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Redis access.
    pub fn redis(&self) -> &RedisStore {
        &self.inner.redis
    }

    /// The cache layer (query results, AI responses).
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The AI chat-completions client (uncached: see `cache::ai`).
    pub fn ai(&self) -> &ai::Client {
        &self.inner.ai
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &Pool {
        &self.inner.db
    }

    /// Pool versions and questions this process has read (see `services::pools`).
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// Tests whose Redis state this process knows to be behind PostgreSQL.
    pub fn stale_tests(&self) -> &StaleStates {
        &self.inner.stale_tests
    }

    /// Redis round trips and PostgreSQL checkouts made by this process so far.
    pub fn io_counts(&self) -> IoCounts {
        self.inner.stats.read()
    }
}
