//! Item statistics in production, for a pool's staff: per item of a pool
//! version, over every test taken on that version — how often it was given
//! (exposure), how it was answered, how its score goes with θ, and whether its
//! scores drift from what its parameters predict at the examinees' θ.
//!
//! One PostgreSQL statement per page (`store::item_stats`) gives the counts,
//! means and correlations, and each item's responses grouped by θ in bins of
//! 0.05; the engine gives what the item's parameters expect in each bin (at the
//! bin's mean θ, which moves an expected score by well under 1e-3), so the
//! models live in one place. Pages are cached by pool version and date in the
//! pool's cache namespace: recomputed at most once per cache TTL
//! (`CACHE_TTL_STATIC_SECS`) and day, and cleared when items are added (a new
//! version).

use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::cache::Namespace;
use crate::services::pools::{self, Error};
use crate::services::{CachedJson, cached_json};
use crate::store::StoreError;
use crate::store::item_stats::{self as stored, ItemRow};
use lectern_engine::Item;

/// |z| above which an item's drift is flagged.
pub const DRIFT_Z: f64 = 3.0;
/// Responses an item needs before its drift is judged.
pub const DRIFT_MIN_RESPONSES: i64 = 30;

/// One page of a version's item statistics.
#[derive(Debug, Serialize)]
pub struct StatsPage {
    pool_id: Uuid,
    version: i32,
    /// The UTC date the figures are of.
    as_of: String,
    /// Tests taken on the version with at least one answer.
    tests: i64,
    /// Items in the version.
    total: i64,
    limit: i64,
    offset: i64,
    items: Vec<ItemStats>,
}

/// One item's figures.
#[derive(Debug, Serialize)]
struct ItemStats {
    id: String,
    /// `grm`, `gpcm`, `pcm`, or `dichotomous`.
    model: String,
    /// A pretest item in this version: its responses are recorded but not
    /// scored, and it has no expected score until it is calibrated.
    pretest: bool,
    max_score: i32,
    /// Times given on the version's tests.
    administered: i64,
    /// Share of the version's tests that gave it.
    exposure_rate: f64,
    /// Mean score (the proportion correct for a right/wrong item).
    mean_score: Option<f64>,
    /// Share of responses at the top score.
    proportion_top: Option<f64>,
    /// Pearson correlation of the score with the test's θ.
    item_theta_correlation: Option<f64>,
    /// Mean θ of the tests that gave it.
    mean_theta: Option<f64>,
    /// Mean score its parameters predict at those θ.
    expected_score: Option<f64>,
    drift: Drift,
}

/// Observed against expected: z = Σ(x − E x) / √Σ Var x over its responses.
#[derive(Debug, Serialize)]
struct Drift {
    z: Option<f64>,
    /// |z| > 3 with at least 30 responses.
    flagged: bool,
}

impl ItemStats {
    /// The figures of `row`, with the model's expectations from `item` (its
    /// parameters in the version; `None` leaves them out).
    fn new(row: ItemRow, tests: i64, item: Option<&Item>) -> ItemStats {
        // Σ E x, Σ Var x and Σ x over the bins.
        let (mut expected, mut variance, mut observed) = (0.0, 0.0, 0.0);
        if let Some(item) = item {
            for &(theta, n, sum) in &row.bins {
                let p = item.probabilities(theta);
                let mean: f64 = p.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
                let var: f64 = p
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (k as f64 - mean).powi(2) * p)
                    .sum();
                expected += n as f64 * mean;
                variance += n as f64 * var;
                observed += sum;
            }
        }
        let modelled = item.is_some() && row.n > 0;
        let z = (modelled && variance > 0.0).then(|| (observed - expected) / variance.sqrt());
        ItemStats {
            id: row.id,
            model: row.model.unwrap_or_else(|| "dichotomous".into()),
            pretest: row.pretest,
            max_score: row.top,
            administered: row.n,
            exposure_rate: if tests > 0 {
                row.n as f64 / tests as f64
            } else {
                0.0
            },
            mean_score: row.mean_score,
            proportion_top: row.top_share,
            item_theta_correlation: row.correlation.filter(|c| c.is_finite()),
            mean_theta: row.mean_theta,
            expected_score: modelled.then(|| expected / row.n as f64),
            drift: Drift {
                z,
                flagged: row.n >= DRIFT_MIN_RESPONSES && z.is_some_and(|z| z.abs() > DRIFT_Z),
            },
        }
    }
}

/// Items `offset..offset + limit` of `version` of pool `pool` (its current
/// version when `None`), for whoever may read the pool.
pub async fn page(
    app: &App,
    caller: Uuid,
    pool: Uuid,
    version: Option<i32>,
    limit: i64,
    offset: i64,
) -> Result<CachedJson, Error> {
    pools::may_use(app, caller, pool, false).await?;
    let current = crate::store::pools::summary_of(app.db(), pool)
        .await?
        .ok_or(Error::NotFound(pool))?
        .version;
    let version = version.unwrap_or(current);
    if version < 1 {
        return Err(Error::Invalid(format!(
            "version must be from 1 to {current}, the pool's versions"
        )));
    }
    if version > current {
        return Err(Error::NoVersion { pool, version });
    }
    let as_of = time::OffsetDateTime::now_utc().date().to_string();
    let key = format!("stats:v{version}:{as_of}:{limit}:{offset}");
    let load = || async {
        let (page, bank) = tokio::try_join!(
            stored::page(app.db(), pool, version, limit, offset),
            pools::bank(app, pool, version)
        )?;
        let tests = page.tests;
        Ok::<_, StoreError>(Some(StatsPage {
            pool_id: pool,
            version,
            as_of: as_of.clone(),
            tests,
            total: page.total,
            limit,
            offset,
            items: page
                .items
                .into_iter()
                .map(|row| {
                    let item = bank.ids.iter().position(|id| *id == row.id);
                    let item = item.map(|i| bank.bank.item(i));
                    ItemStats::new(row, tests, item.as_ref())
                })
                .collect(),
        }))
    };
    cached_json(app, &Namespace::Pool(pool), &key, load)
        .await?
        .ok_or(Error::NotFound(pool))
}
