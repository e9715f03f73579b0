//! Item statistics of a pool version, from PostgreSQL in one statement per page.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;

/// One item's figures over the tests taken on the version.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// Question id.
    pub id: String,
    /// `grm`, `gpcm`, `pcm`, or `None` for a right/wrong item.
    pub model: Option<String>,
    /// Highest score (1 for a right/wrong item).
    pub top: i32,
    /// Responses to it on the version's tests.
    pub n: i64,
    /// Mean score.
    pub mean_score: Option<f64>,
    /// Share of responses at the top score.
    pub top_share: Option<f64>,
    /// Correlation of the score with the test's θ.
    pub correlation: Option<f64>,
    /// Mean θ of the tests that gave it.
    pub mean_theta: Option<f64>,
    /// Mean score the model expects at those θ.
    pub expected_score: Option<f64>,
    /// Σ (observed − expected).
    pub residual: Option<f64>,
    /// Σ model variance of the score.
    pub variance: Option<f64>,
}

/// A page of statistics: the rows, the version's item count and its tests.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsPage {
    /// Items of the page, in pool order.
    pub items: Vec<ItemRow>,
    /// Items in the version.
    pub total: i64,
    /// Tests on the version with at least one answer.
    pub tests: i64,
}

/// The statistics of items `offset..offset + limit` (in pool order) of
/// `version` of `pool`, over every test taken on that version. θ is each
/// test's latest estimate; responses are reached through the version's tests
/// (index `(pool_id, id)`, then each test's responses), so the submit path
/// carries no index for this.
pub async fn page(
    db: &Pool,
    pool: Uuid,
    version: i32,
    limit: i64,
    offset: i64,
) -> Result<StatsPage, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "WITH page AS (
                 SELECT q.id, q.position, q.model, q.a, q.b, q.c, q.d, q.thresholds,
                        count(*) OVER () AS total
                 FROM questions q WHERE q.pool_id = $1 AND q.added_in <= $2
                 ORDER BY q.position LIMIT $3 OFFSET $4),
             tests AS (
                 SELECT s.id, s.theta FROM test_sessions s
                 WHERE s.pool_id = $1 AND s.pool_version = $2 AND s.items_answered > 0),
             obs AS (
                 SELECT p.id, coalesce(r.score, r.correct::int)::float8 AS x, t.theta,
                        (x.x = coalesce(cardinality(p.thresholds), 1))::int AS at_top,
                        m.mean, m.var
                 FROM tests t
                 JOIN test_responses r ON r.session_id = t.id
                 JOIN page p ON p.id = r.question_id
                 CROSS JOIN LATERAL (SELECT coalesce(r.score, r.correct::int)::float8 AS x) x
                 CROSS JOIN LATERAL item_moments(p.model, p.a, p.b, p.c, p.d, p.thresholds, t.theta) m)
             SELECT p.id, p.model, coalesce(cardinality(p.thresholds), 1)::int4, p.total,
                    (SELECT count(*) FROM tests), count(o.x), avg(o.x), avg(o.at_top::float8),
                    corr(o.x, o.theta), avg(o.theta), avg(o.mean), sum(o.x - o.mean), sum(o.var)
             FROM page p LEFT JOIN obs o ON o.id = p.id
             GROUP BY p.id, p.position, p.model, p.thresholds, p.total
             ORDER BY p.position",
            &[&pool, &version, &limit, &offset],
        )
        .await?;
    let total = rows.first().map_or(0, |r| r.get(3));
    let tests = rows.first().map_or(0, |r| r.get(4));
    let items = rows
        .iter()
        .map(|r| ItemRow {
            id: r.get(0),
            model: r.get(1),
            top: r.get(2),
            n: r.get(5),
            mean_score: r.get(6),
            top_share: r.get(7),
            correlation: r.get(8),
            mean_theta: r.get(9),
            expected_score: r.get(10),
            residual: r.get(11),
            variance: r.get(12),
        })
        .collect();
    Ok(StatsPage {
        items,
        total,
        tests,
    })
}

/// The pool's current version, if the pool exists.
pub async fn current_version(db: &Pool, pool: Uuid) -> Result<Option<i32>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt("SELECT version FROM item_pools WHERE id = $1", &[&pool])
        .await?;
    Ok(row.map(|r| r.get(0)))
}
