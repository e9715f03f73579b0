//! The semantic answer cache: an answer to a question about one segment of
//! one course version is reused for a later question about the same segment
//! whose embedding is close enough (cosine similarity at least the
//! threshold), across students.
//!
//! Three tiers, as the rest of the cache: the embedding of a text is kept in
//! Redis by the text's hash (so one text is embedded once); the answers of a
//! segment, with their question's embedding, are kept in PostgreSQL
//! ([`crate::store::semantic`]) and held in this process's memory, reloaded
//! when the segment's generation in Redis says another process added one; the
//! search scans that copy in two passes ([`Index`]: 8-bit codes, then the best
//! few exactly; 3,000 vectors of 1,536 dimensions in about 0.4 ms:
//! `cargo bench -p lectern --bench semantic`).
//!
//! An answer is reused only for a question of the same *style* (plain for a
//! confused or slow student, brief for a fast one, normal otherwise) and the
//! same embedding model: the personal parts of the prompt are honoured by
//! choosing among answers written for them, never by rewriting one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use super::admin::{EMBEDDING_CALLS, SEMANTIC_HITS, SEMANTIC_MISSES, SEMANTIC_TOKENS_SAVED};
use super::{Cache, Namespace};
use crate::ai::{Client, Embedding, Error};
use crate::digest::sha256_hex;
use crate::semantic::Index;
use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::semantic::{self as stored, SetKey, Stored};

/// One segment's answers as this process holds them, at a generation: by
/// style and embedding model, each group's vectors in an [`Index`] (the
/// entries keep the answers, in the index's order).
struct Set {
    generation: u64,
    groups: HashMap<(String, String), (Index, Vec<Stored>)>,
    answers: usize,
}

impl Set {
    fn new(generation: u64, stored: Vec<Stored>) -> Self {
        let answers = stored.len();
        let mut groups: HashMap<(String, String), (Index, Vec<Stored>)> = HashMap::new();
        for mut entry in stored {
            let vector = std::mem::take(&mut entry.vector);
            let (index, entries) = groups
                .entry((entry.style.clone(), entry.model.clone()))
                .or_insert_with(|| (Index::new(vector.len()), Vec::new()));
            if index.push(vector) {
                entries.push(entry);
            }
        }
        Self {
            generation,
            groups,
            answers,
        }
    }
}

/// Most answers this process holds, over all segments: about 150 MB at 1,536
/// dimensions (the vectors and their 8-bit codes); the least recently used
/// segments go first, and are loaded again when asked.
const HELD_ANSWERS: u64 = 20_000;

/// This process's copies of segments' answer sets, weighed by answers held.
static SETS: LazyLock<moka::future::Cache<SetKey, Arc<Set>>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(HELD_ANSWERS)
        .weigher(|_, s: &Arc<Set>| s.answers.max(1) as u32)
        .build()
});

/// The embedding of `text` (unit length) by the client's embedding model:
/// from the cache when this text was embedded within the AI TTL, else from
/// the provider (counted in `semantic:embedding_calls`).
pub async fn embed(
    cache: &Cache,
    client: &Client,
    text: &str,
) -> Result<Arc<Embedding>, Arc<Error>> {
    let ns = Namespace::Embedding {
        model: client.embedding_model().to_owned(),
    };
    let ttl = cache.config().ai_ttl;
    cache
        .get_or_load_with(
            &ns,
            &sha256_hex(text),
            |_| Some(ttl),
            || async {
                let before = client.embedding_calls();
                let mut e = client.embed(text).await;
                let calls = client.embedding_calls() - before;
                cache.count(&[(EMBEDDING_CALLS, calls as i64)]).await;
                if let Ok(e) = &mut e {
                    crate::semantic::normalize(&mut e.vector);
                }
                e
            },
        )
        .await
}

/// A reusable answer found for a question.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The stored answer (its `vector` is empty: the index holds the vectors).
    pub answer: Stored,
    /// Its question's cosine similarity to this one.
    pub score: f32,
}

/// The closest earlier answer of `style` by `model` in the set, if its
/// question's similarity to `vector` is at least `threshold`. Counts a hit or
/// a miss.
pub async fn nearest(
    cache: &Cache,
    db: &deadpool_postgres::Pool,
    key: &SetKey,
    style: &str,
    model: &str,
    vector: &[f32],
    threshold: f32,
) -> Result<Option<Hit>, StoreError> {
    let set = set(&cache.redis, db, key).await?;
    let best = set
        .groups
        .get(&(style.to_owned(), model.to_owned()))
        .and_then(|(index, entries)| {
            let n = index.nearest(vector).filter(|n| n.score >= threshold)?;
            Some(Hit {
                answer: entries[n.index].clone(),
                score: n.score,
            })
        });
    match &best {
        Some(hit) => {
            cache
                .count(&[
                    (SEMANTIC_HITS, 1),
                    (SEMANTIC_TOKENS_SAVED, i64::from(hit.answer.tokens)),
                ])
                .await;
            // What eviction keeps; a reuse that is not counted only ages the answer sooner.
            if let Err(e) = stored::used(db, hit.answer.id).await {
                tracing::warn!(error = %e, "semantic cache reuse not counted");
            }
        }
        None => cache.count(&[(SEMANTIC_MISSES, 1)]).await,
    }
    Ok(best)
}

/// The set as this process holds it, reloaded from PostgreSQL when Redis's
/// generation differs from the copy's (or Redis cannot say: then a copy is
/// used as it is, and a missing one is loaded).
async fn set(
    redis: &RedisStore,
    db: &deadpool_postgres::Pool,
    key: &SetKey,
) -> Result<Arc<Set>, StoreError> {
    let held = SETS.get(key).await;
    let generation = match stored::generation(redis, key).await {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(error = %e, "semantic cache generation unknown; using what this process holds");
            None
        }
    };
    if let Some(held) = &held
        && generation.is_none_or(|g| g == held.generation)
    {
        return Ok(held.clone());
    }
    let loaded = Arc::new(Set::new(
        generation.unwrap_or(u64::MAX),
        stored::load(db, key).await?,
    ));
    SETS.insert(key.clone(), loaded.clone()).await;
    Ok(loaded)
}

/// Adds an answer to the set (evicting the least used past `cap`) and bumps
/// the set's generation so every process reloads it.
pub async fn remember(
    redis: &RedisStore,
    db: &deadpool_postgres::Pool,
    key: &SetKey,
    answer: &Stored,
    cap: usize,
) -> Result<(), StoreError> {
    let (_, evicted) = stored::add(db, key, answer, cap).await?;
    if evicted > 0 {
        tracing::debug!(segment = %key.segment, evicted, "semantic cache evicted its least used answers");
    }
    SETS.invalidate(key).await;
    stored::bump(redis, key).await?;
    Ok(())
}
