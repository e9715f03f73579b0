//! Calibration runs (`calibrations`) and promotions of calibrated pretest
//! items into a new pool version, in PostgreSQL.

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use super::outbox;
use super::pools::PoolSummary;
use lectern_engine as engine;
use serde_json::json;

/// A calibration run as stored.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Its id.
    pub id: Uuid,
    /// The pool calibrated.
    pub pool_id: Uuid,
    /// The version whose operational items anchor the scale.
    pub pool_version: i32,
    /// Who asked for it.
    pub created_by: Option<Uuid>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Fewest responses an item is estimated from.
    pub min_responses: i32,
    /// When it was asked for.
    pub created_at: OffsetDateTime,
    /// When a worker claimed it.
    pub started_at: Option<OffsetDateTime>,
    /// When it succeeded or failed.
    pub finished_at: Option<OffsetDateTime>,
    /// The EM figures (succeeded).
    pub summary: Option<serde_json::Value>,
    /// Each pretest item's outcome (succeeded).
    pub results: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
}

const COLUMNS: &str = "id, pool_id, pool_version, created_by, status, min_responses, created_at,
                       started_at, finished_at, summary, results, error";

fn calibration(row: &Row) -> Calibration {
    Calibration {
        id: row.get("id"),
        pool_id: row.get("pool_id"),
        pool_version: row.get("pool_version"),
        created_by: row.get("created_by"),
        status: row.get("status"),
        min_responses: row.get("min_responses"),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        summary: row.get("summary"),
        results: row.get("results"),
        error: row.get("error"),
    }
}

/// Why a run was not queued.
#[derive(Debug)]
pub enum NotQueued {
    /// No such pool.
    NoPool,
    /// A run of the pool is queued or running already.
    Busy,
}

/// A run of `stale` or more that is still `running` has lost its worker (a
/// Lambda function runs at most 15 minutes): it is failed, so that it no
/// longer holds the pool.
pub async fn fail_stale(
    db: &Pool,
    pool_id: Uuid,
    stale: std::time::Duration,
) -> Result<u64, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let secs = stale.as_secs_f64();
    let rows = tx
        .query(
            "UPDATE calibrations SET status = 'failed', finished_at = now(),
                    error = 'the run did not finish (its worker stopped)'
             WHERE pool_id = $1 AND status = 'running'
               AND started_at < now() - make_interval(secs => $2)
             RETURNING id, pool_id, pool_version, status, finished_at",
            &[&pool_id, &secs],
        )
        .await?;
    enqueue_finished(&tx, &rows).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// `calibration.finished` about each of these runs (rows of `id, pool_id,
/// pool_version, status, finished_at`), in the transaction that finished them.
async fn enqueue_finished(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[tokio_postgres::Row],
) -> Result<(), StoreError> {
    let events = rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get("id");
            let finished_at: time::OffsetDateTime = r.get("finished_at");
            let finished_at = finished_at
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(outbox::Event::new(
                outbox::Kind::CalibrationFinished,
                id,
                serde_json::json!({
                    "calibration_id": id,
                    "pool_id": r.get::<_, Uuid>("pool_id"),
                    "pool_version": r.get::<_, i32>("pool_version"),
                    "status": r.get::<_, &str>("status"),
                    "finished_at": finished_at,
                }),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    outbox::enqueue(tx, &events).await
}

/// Queues a run of the pool's current version; at most one per pool is
/// queued or running (the partial unique index decides between racers).
pub async fn create(
    db: &Pool,
    id: Uuid,
    pool_id: Uuid,
    created_by: Uuid,
    min_responses: i32,
) -> Result<Result<Calibration, NotQueued>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            &format!(
                "INSERT INTO calibrations (id, pool_id, pool_version, created_by, min_responses)
                 SELECT $1, p.id, p.version, $3, $4 FROM item_pools p WHERE p.id = $2
                 RETURNING {COLUMNS}, (SELECT org_id FROM item_pools WHERE id = $2) AS pool_org"
            ),
            &[&id, &pool_id, &created_by, &min_responses],
        )
        .await;
    let row = match inserted {
        Ok(Some(row)) => row,
        Ok(None) => return Ok(Err(NotQueued::NoPool)),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Ok(Err(NotQueued::Busy));
        }
        Err(e) => return Err(e.into()),
    };
    let queued = calibration(&row);
    let entry = Entry::new("calibration.queued", "calibration", id)
        .org(row.get("pool_org"))
        .detail(json!({
            "pool_id": pool_id,
            "pool_version": queued.pool_version,
            "min_responses": min_responses,
        }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Ok(queued))
}

/// One run.
pub async fn get(db: &Pool, id: Uuid) -> Result<Option<Calibration>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM calibrations WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(calibration))
}

/// Claims a queued run for this worker: `None` when it is not queued (run
/// already, running elsewhere, or no such run), so a run happens once.
pub async fn claim(db: &Pool, id: Uuid) -> Result<Option<Calibration>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE calibrations SET status = 'running', started_at = now()
                 WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(calibration))
}

/// Records a claimed run's outcome: its summary and results, or its error.
pub async fn finish(
    db: &Pool,
    id: Uuid,
    outcome: Result<(serde_json::Value, serde_json::Value), String>,
) -> Result<(), StoreError> {
    let mut client = db.get().await?;
    let (status, summary, results, error) = match outcome {
        Ok((summary, results)) => ("succeeded", Some(summary), Some(results), None),
        Err(error) => ("failed", None, None, Some(error)),
    };
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE calibrations SET status = $2, summary = $3, results = $4, error = $5,
                    finished_at = now()
             WHERE id = $1 AND status = 'running'
             RETURNING id, pool_id, pool_version, status, finished_at",
            &[&id, &status, &summary, &results, &error],
        )
        .await?;
    enqueue_finished(&tx, &rows).await?;
    tx.commit().await?;
    Ok(())
}

/// A pretest item of a version, as calibration needs it.
#[derive(Debug, Clone)]
pub struct PretestItem {
    /// Question id.
    pub id: String,
    /// `grm`, `gpcm`, `pcm`; `None`: right/wrong.
    pub model: Option<String>,
    /// Its provisional lower asymptote, if it has provisional parameters.
    pub c: Option<f64>,
    /// Its highest option score (1 for a right/wrong item).
    pub top: u8,
}

/// The pretest items of `version` of the pool, in pool order.
pub async fn pretest_items(
    db: &Pool,
    pool_id: Uuid,
    version: i32,
) -> Result<Vec<PretestItem>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT id, model, CASE WHEN a IS NULL THEN NULL ELSE c END AS c,
                    coalesce((SELECT max(s) FROM unnest(option_scores) s), 1)::int2 AS top
             FROM questions
             WHERE pool_id = $1 AND added_in <= $2 AND pretest
               AND coalesce(promoted_in > $2, true)
             ORDER BY position",
            &[&pool_id, &version],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PretestItem {
            id: r.get("id"),
            model: r.get("model"),
            c: r.get("c"),
            top: r.get::<_, i16>("top").clamp(0, 255) as u8,
        })
        .collect())
}

/// Every response of the tests taken on `version` of the pool or an earlier
/// one: (test, question id, score), test by test.
pub async fn responses(
    db: &Pool,
    pool_id: Uuid,
    version: i32,
) -> Result<Vec<(Uuid, String, u8)>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT s.id, r.question_id, coalesce(r.score, r.correct::int)::int2
             FROM test_sessions s JOIN test_responses r ON r.session_id = s.id
             WHERE s.pool_id = $1 AND s.pool_version <= $2
             ORDER BY s.id, r.seq",
            &[&pool_id, &version],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i16>(2).clamp(0, 255) as u8))
        .collect())
}

/// Why a promotion wrote nothing.
#[derive(Debug)]
pub enum NotPromoted {
    /// No such pool.
    NoPool,
    /// This item is no pretest item of the pool awaiting promotion (promoted already).
    Item(String),
}

/// Promotes items, in one transaction: a new version of the pool in which
/// each is operational with these parameters (exposure 1); the versions
/// before keep it as a pretest item.
pub async fn promote(
    db: &Pool,
    pool_id: Uuid,
    items: &[(String, engine::Item)],
) -> Result<Result<PoolSummary, NotPromoted>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    // The row lock serialises this with additions and other promotions.
    let Some(row) = tx
        .query_opt(
            "UPDATE item_pools SET version = version + 1, updated_at = now()
             WHERE id = $1
             RETURNING id, name, description, org_id, version, item_count, created_at",
            &[&pool_id],
        )
        .await?
    else {
        return Ok(Err(NotPromoted::NoPool));
    };
    let pool = PoolSummary {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        org_id: row.get("org_id"),
        version: row.get("version"),
        item_count: row.get("item_count"),
        created_at: row.get("created_at"),
    };
    let update = tx
        .prepare(
            "UPDATE questions SET a = $3, b = $4, c = $5, d = $6, thresholds = $7,
                    exposure = 1, promoted_in = $8
             WHERE id = $1 AND pool_id = $2 AND pretest AND promoted_in IS NULL",
        )
        .await?;
    for (id, item) in items {
        let (a, b, c, d, thresholds) = match item {
            engine::Item::Dichotomous(p) => (p.a, Some(p.b), p.c, p.d, None),
            engine::Item::Polytomous(p) => (p.a(), None, 0.0, 1.0, Some(p.thresholds().to_vec())),
        };
        let changed = tx
            .execute(
                &update,
                &[id, &pool_id, &a, &b, &c, &d, &thresholds, &pool.version],
            )
            .await?;
        if changed != 1 {
            // Dropping the transaction rolls the version back.
            return Ok(Err(NotPromoted::Item(id.clone())));
        }
    }
    let promoted: Vec<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
    let entry = Entry::new("pool.items_promoted", "pool", pool_id)
        .org(pool.org_id)
        .detail(json!({ "version": pool.version, "items": promoted }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Ok(pool))
}

/// Which of these items are promoted already, and in which version.
pub async fn promoted(
    db: &Pool,
    pool_id: Uuid,
    ids: &[String],
) -> Result<Vec<(String, i32)>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT id, promoted_in FROM questions
             WHERE pool_id = $1 AND id = ANY($2) AND promoted_in IS NOT NULL",
            &[&pool_id, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
