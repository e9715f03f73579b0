//! Response exports: each export's pseudonym key, and pages of a pool's
//! recorded responses in the order they were recorded. PostgreSQL only: an
//! export reads the truth, never the live state.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;

/// One recorded response.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The test it belongs to (the examinee on that occasion).
    pub test: Uuid,
    /// Its place in the test: (test, seq) is the cursor position.
    pub seq: i32,
    /// The question answered.
    pub question: String,
    /// Its score (0…m; 1/0 for a right/wrong item).
    pub score: i16,
}

/// Records a new export of `pool` by `by` with its pseudonym `key`.
pub async fn create(
    db: &Pool,
    id: Uuid,
    pool: Uuid,
    by: Uuid,
    key: &[u8],
) -> Result<(), StoreError> {
    let client = db.get().await?;
    client
        .execute(
            "INSERT INTO response_exports (id, pool_id, created_by, key) VALUES ($1, $2, $3, $4)",
            &[&id, &pool, &by, &key],
        )
        .await?;
    Ok(())
}

/// The key of export `id`, if it is an export of `pool` made by `by`.
pub async fn key(db: &Pool, id: Uuid, pool: Uuid, by: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            "SELECT key FROM response_exports WHERE id = $1 AND pool_id = $2 AND created_by = $3",
            &[&id, &pool, &by],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Up to `limit` responses to tests on `pool` after position `after` (a test
/// and a seq), by test id and then seq: each test's responses together, in
/// the order they were given. Rows from before polytomous scores existed score
/// 1/0 by `correct`.
pub async fn page(
    db: &Pool,
    pool: Uuid,
    after: (Uuid, i32),
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT s.id, r.seq, r.question_id, coalesce(r.score, r.correct::int)::int2
             FROM test_sessions s JOIN test_responses r ON r.session_id = s.id
             WHERE s.pool_id = $1 AND (s.id, r.seq) > ($2, $3)
             ORDER BY s.id, r.seq LIMIT $4",
            &[&pool, &after.0, &after.1, &limit],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Row {
            test: r.get(0),
            seq: r.get(1),
            question: r.get(2),
            score: r.get(3),
        })
        .collect())
}
