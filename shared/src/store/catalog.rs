//! Pool content, cached in tiers: this process (moka) → Redis → PostgreSQL.
//!
//! Pool versions and questions never change once written, so nothing here is
//! ever invalidated; entries only age out. Keys take a shorter road: process
//! memory → PostgreSQL, never Redis.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use moka::future::Cache;
use uuid::Uuid;

use super::StoreError;
use super::pools::{self, AnswerKey, PoolBank, QuestionText};
use super::redis::RedisStore;

/// How long Redis keeps a pool version's parameters and a question's text.
pub const REDIS_TTL: Duration = Duration::from_secs(3600);

/// The process's caches of pool content.
pub struct Catalog {
    banks: Cache<(Uuid, i32), Arc<PoolBank>>,
    keys: Cache<(Uuid, i32), Arc<AnswerKey>>,
    questions: Cache<String, Arc<QuestionText>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            banks: cache(64),
            keys: cache(64),
            questions: cache(100_000),
        }
    }
}

/// A process cache of at most `capacity` entries, each dropped after an idle hour.
fn cache<K, V>(capacity: u64) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .time_to_idle(Duration::from_secs(3600))
        .build()
}

impl Catalog {
    /// One pool version's bank. Concurrent misses share one load; a load from
    /// PostgreSQL also fills the key and text caches, and Redis.
    pub async fn bank(
        &self,
        redis: &RedisStore,
        db: &Pool,
        pool_id: Uuid,
        version: i32,
    ) -> Result<Arc<PoolBank>, StoreError> {
        self.banks
            .try_get_with((pool_id, version), async {
                let key = redis.keys().pool(pool_id, version);
                match redis.get_bytes(&key).await {
                    Ok(Some(raw)) => return PoolBank::decode(pool_id, version, &raw).map(Arc::new),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "pool cache unreachable; reading PostgreSQL")
                    }
                }
                let loaded = pools::load_version(db, pool_id, version).await?;
                // Other processes then find both the parameters and the texts in Redis.
                let mut entries = vec![(key, loaded.bank.encode())];
                entries.extend(
                    loaded
                        .questions
                        .iter()
                        .map(|q| (redis.keys().question(&q.id), q.encode())),
                );
                if let Err(e) = redis.set_many(&entries, REDIS_TTL).await {
                    tracing::warn!(error = %e, "pool not cached in Redis");
                }
                self.keys
                    .insert((pool_id, version), Arc::new(loaded.keys))
                    .await;
                for q in loaded.questions {
                    self.questions.insert(q.id.clone(), Arc::new(q)).await;
                }
                Ok(Arc::new(loaded.bank))
            })
            .await
            .map_err(StoreError::Shared)
    }

    /// The keys of one pool version: each option's score.
    pub async fn answer_key(
        &self,
        db: &Pool,
        pool_id: Uuid,
        version: i32,
    ) -> Result<Arc<AnswerKey>, StoreError> {
        self.keys
            .try_get_with((pool_id, version), async {
                pools::answer_key(db, pool_id, version).await.map(Arc::new)
            })
            .await
            .map_err(StoreError::Shared)
    }

    /// One question's text; `None` when no such question exists.
    pub async fn question(
        &self,
        redis: &RedisStore,
        db: &Pool,
        id: &str,
    ) -> Result<Arc<QuestionText>, StoreError> {
        self.questions
            .try_get_with_by_ref(id, async {
                let key = redis.keys().question(id);
                match redis.get_bytes(&key).await {
                    Ok(Some(raw)) => return QuestionText::decode(&raw).map(Arc::new),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "question cache unreachable; reading PostgreSQL")
                    }
                }
                let q = pools::question_text(db, id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("question {id} does not exist")))?;
                if let Err(e) = redis.set_bytes(&key, &q.encode(), REDIS_TTL).await {
                    tracing::warn!(error = %e, "question not cached in Redis");
                }
                Ok(Arc::new(q))
            })
            .await
            .map_err(StoreError::Shared)
    }
}
