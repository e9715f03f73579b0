//! The semantic answer cache's two halves: in PostgreSQL, the answers given to
//! questions about one segment of one course version, each with the
//! question's embedding (`real[]`, unit length; no extension needed); in
//! Redis, a generation counter per segment that tells every process when its
//! in-memory copy of the set is behind.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;
use super::redis::RedisStore;

/// Which set: one segment of one course version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetKey {
    /// The course.
    pub course: Uuid,
    /// Its version.
    pub version: i32,
    /// The segment's key.
    pub segment: String,
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its row.
    pub id: i64,
    /// How it is pitched (see `prompt::style`).
    pub style: String,
    /// The embedding model of `vector`.
    pub model: String,
    /// The question's embedding, unit length.
    pub vector: Vec<f32>,
    /// The answer.
    pub answer: String,
    /// The model that wrote it.
    pub answer_model: String,
    /// Tokens its generation took (what a reuse saves).
    pub tokens: i32,
}

/// Every answer of one set.
pub async fn load(db: &Pool, key: &SetKey) -> Result<Vec<Stored>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, style, model, embedding, answer, answer_model, tokens FROM answer_vectors
             WHERE course_id = $1 AND course_version = $2 AND segment_key = $3 ORDER BY id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&key.course, &key.version, &key.segment])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Stored {
            id: r.get(0),
            style: r.get(1),
            model: r.get(2),
            vector: r.get(3),
            answer: r.get(4),
            answer_model: r.get(5),
            tokens: r.get(6),
        })
        .collect())
}

/// Adds an answer to a set and evicts the least used (then oldest) beyond
/// `cap`, in one statement; returns the new row's id and how many were
/// evicted. Two adds at once may leave the set one over for a moment; the
/// next add trims it.
pub async fn add(
    db: &Pool,
    key: &SetKey,
    new: &Stored,
    cap: usize,
) -> Result<(i64, u64), StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH added AS (
                 INSERT INTO answer_vectors (course_id, course_version, segment_key, style, model,
                     embedding, answer, answer_model, tokens)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id),
             evicted AS (
                 DELETE FROM answer_vectors WHERE id IN (
                     SELECT id FROM answer_vectors
                     WHERE course_id = $1 AND course_version = $2 AND segment_key = $3
                     ORDER BY uses DESC, last_used_at DESC, id DESC OFFSET $10)
                 RETURNING id)
             SELECT (SELECT id FROM added), (SELECT count(*) FROM evicted)",
        )
        .await?;
    // The DELETE sees the set as it was before this INSERT: keep cap - 1 of those.
    let keep = (cap.max(1) - 1) as i64;
    let row = client
        .query_one(
            &statement,
            &[
                &key.course,
                &key.version,
                &key.segment,
                &new.style,
                &new.model,
                &new.vector,
                &new.answer,
                &new.answer_model,
                &new.tokens,
                &keep,
            ],
        )
        .await?;
    Ok((row.get(0), row.get::<_, i64>(1) as u64))
}

/// Counts a reuse of an answer (what eviction keeps).
pub async fn used(db: &Pool, id: i64) -> Result<(), StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE answer_vectors SET uses = uses + 1, last_used_at = now() WHERE id = $1",
        )
        .await?;
    client.execute(&statement, &[&id]).await?;
    Ok(())
}

/// The set's generation in Redis (0 when never bumped).
pub async fn generation(redis: &RedisStore, key: &SetKey) -> Result<u64, StoreError> {
    let k = redis
        .keys()
        .semantic_generation(key.course, key.version, &key.segment);
    let found: Option<u64> = redis
        .round_trip(async |c| redis::cmd("GET").arg(&k).query_async(c).await)
        .await?;
    Ok(found.unwrap_or(0))
}

/// Bumps the set's generation: every process reloads it on its next lookup.
pub async fn bump(redis: &RedisStore, key: &SetKey) -> Result<u64, StoreError> {
    let k = redis
        .keys()
        .semantic_generation(key.course, key.version, &key.segment);
    redis
        .round_trip(async |c| redis::cmd("INCR").arg(&k).query_async(c).await)
        .await
}
