//! Item statistics of a pool version, from PostgreSQL in one statement per page.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;

/// Width of the θ bins an item's responses are grouped in.
pub const THETA_BIN: f64 = 0.05;

/// One item's figures over the tests taken on the version.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// Question id.
    pub id: String,
    /// `grm`, `gpcm`, `pcm`, or `None` for a right/wrong item.
    pub model: Option<String>,
    /// A pretest item in this version (not promoted by then).
    pub pretest: bool,
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
    /// Its responses by θ, in bins of [`THETA_BIN`]: (mean θ of the bin,
    /// responses, sum of their scores), for the model's expectations.
    pub bins: Vec<(f64, i64, f64)>,
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
/// test's latest estimate. Responses are reached through the version's tests
/// (index `(pool_id, id)`, then each test's responses), so the submit path
/// carries no index for this; what depends on the items' models is left to the
/// engine, from each item's responses grouped by θ.
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
                 SELECT q.id, q.position, q.model,
                        q.pretest AND coalesce(q.promoted_in > $2, true) AS pretest,
                        -- A polytomous pretest item without parameters: its highest option score.
                        CASE WHEN q.model IS NULL THEN 1
                             ELSE coalesce(cardinality(q.thresholds),
                                           (SELECT max(o) FROM unnest(q.option_scores) o)) END AS top,
                        count(*) OVER () AS total
                 FROM questions q WHERE q.pool_id = $1 AND q.added_in <= $2
                 ORDER BY q.position LIMIT $3 OFFSET $4),
             tests AS MATERIALIZED (
                 SELECT s.id, s.theta FROM test_sessions s
                 WHERE s.pool_id = $1 AND s.pool_version = $2 AND s.items_answered > 0),
             obs AS MATERIALIZED (
                 SELECT r.question_id AS id, coalesce(r.score, r.correct::int)::float8 AS x, t.theta
                 FROM tests t JOIN test_responses r ON r.session_id = t.id
                 WHERE r.question_id IN (SELECT id FROM page)),
             per_item AS (
                 SELECT o.id, count(*) AS n, avg(o.x) AS mean_x, avg((o.x = p.top)::int::float8) AS top_share,
                        corr(o.x, o.theta) AS r, avg(o.theta) AS mean_theta
                 FROM obs o JOIN page p ON p.id = o.id GROUP BY o.id),
             bins AS (
                 SELECT id, array_agg(theta ORDER BY bin) AS theta, array_agg(n ORDER BY bin) AS n,
                        array_agg(sx ORDER BY bin) AS sx
                 FROM (SELECT id, round(theta / $5) AS bin, avg(theta) AS theta, count(*) AS n, sum(x) AS sx
                       FROM obs GROUP BY id, round(theta / $5)) b
                 GROUP BY id)
             SELECT p.id, p.model, p.top::int4, p.total, (SELECT count(*) FROM tests),
                    coalesce(i.n, 0), i.mean_x, i.top_share, i.r, i.mean_theta, b.theta, b.n, b.sx,
                    p.pretest
             FROM page p LEFT JOIN per_item i ON i.id = p.id LEFT JOIN bins b ON b.id = p.id
             ORDER BY p.position",
            &[&pool, &version, &limit, &offset, &THETA_BIN],
        )
        .await?;
    let total = rows.first().map_or(0, |r| r.get(3));
    let tests = rows.first().map_or(0, |r| r.get(4));
    let items = rows
        .iter()
        .map(|r| {
            let thetas: Vec<f64> = r.get::<_, Option<Vec<f64>>>(10).unwrap_or_default();
            let counts: Vec<i64> = r.get::<_, Option<Vec<i64>>>(11).unwrap_or_default();
            let sums: Vec<f64> = r.get::<_, Option<Vec<f64>>>(12).unwrap_or_default();
            ItemRow {
                id: r.get(0),
                model: r.get(1),
                pretest: r.get(13),
                top: r.get(2),
                n: r.get(5),
                mean_score: r.get(6),
                top_share: r.get(7),
                correlation: r.get(8),
                mean_theta: r.get(9),
                bins: thetas
                    .into_iter()
                    .zip(counts)
                    .zip(sums)
                    .map(|((t, n), s)| (t, n, s))
                    .collect(),
            }
        })
        .collect();
    Ok(StatsPage {
        items,
        total,
        tests,
    })
}
