//! Item pools and their questions in PostgreSQL.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::engine::{ItemBank, ItemParams};

/// A validated item about to be stored.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Unique across all pools.
    pub id: String,
    /// The question text.
    pub content: String,
    /// The answer choices, distinct.
    pub options: Vec<String>,
    /// One of `options`.
    pub correct_answer: String,
    /// Concept names, at least one.
    pub concepts: Vec<String>,
    /// IRT parameters.
    pub params: ItemParams,
    /// Sympson–Hetter exposure parameter in (0, 1].
    pub exposure: f64,
}

/// A pool without its items.
#[derive(Debug, Clone)]
pub struct PoolSummary {
    /// Pool id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Bumped each time items are added.
    pub version: i32,
    /// Items in the current version.
    pub item_count: i32,
    /// When the pool was created.
    pub created_at: OffsetDateTime,
}

/// A stored question as anyone may see it: without its key.
#[derive(Debug, Clone)]
pub struct Item {
    /// Question id.
    pub id: String,
    /// Question text.
    pub content: String,
    /// Answer choices.
    pub options: Vec<String>,
    /// Concept names.
    pub concepts: Vec<String>,
    /// IRT parameters.
    pub params: ItemParams,
    /// Sympson–Hetter exposure parameter in (0, 1].
    pub exposure: f64,
}

/// One question of a loaded bank, key included: lives in process memory only.
#[derive(Debug, Clone)]
pub struct BankQuestion {
    /// The question as served.
    pub item: Item,
    /// The key; never written to Redis nor sent before the question is answered.
    pub correct_answer: String,
}

/// One version of a pool, ready for the engine: parameters as struct-of-arrays,
/// concepts as small ids, questions by engine index.
pub struct PoolBank {
    /// Pool id.
    pub pool_id: Uuid,
    /// The version loaded.
    pub version: i32,
    /// Questions in engine order.
    pub questions: Vec<BankQuestion>,
    /// The engine's view.
    pub bank: ItemBank,
    /// Concept names by concept id.
    pub concept_names: Vec<String>,
    index: HashMap<String, usize>,
}

impl PoolBank {
    /// Builds a bank from questions in engine order.
    pub fn new(pool_id: Uuid, version: i32, questions: Vec<BankQuestion>) -> Self {
        let mut concept_ids: HashMap<String, u16> = HashMap::new();
        let mut concept_names = Vec::new();
        let mut params = Vec::with_capacity(questions.len());
        let mut exposure = Vec::with_capacity(questions.len());
        let mut concepts = Vec::with_capacity(questions.len());
        for q in &questions {
            params.push(q.item.params);
            exposure.push(q.item.exposure);
            let ids = q
                .item
                .concepts
                .iter()
                .map(|name| {
                    *concept_ids.entry(name.clone()).or_insert_with(|| {
                        concept_names.push(name.clone());
                        u16::try_from(concept_names.len() - 1)
                            .expect("fewer than 65536 concepts per pool")
                    })
                })
                .collect();
            concepts.push(ids);
        }
        let index = questions
            .iter()
            .enumerate()
            .map(|(i, q)| (q.item.id.clone(), i))
            .collect();
        Self {
            pool_id,
            version,
            bank: ItemBank::new(params, concepts).with_exposure(exposure),
            questions,
            concept_names,
            index,
        }
    }

    /// The engine's id of a concept name, if an item of this version is tagged with it.
    pub fn concept_id(&self, name: &str) -> Option<u16> {
        let id = self.concept_names.iter().position(|n| n == name)?;
        u16::try_from(id).ok()
    }

    /// The engine index of a question id, if it belongs to this version.
    pub fn index_of(&self, question_id: &str) -> Option<usize> {
        self.index.get(question_id).copied()
    }
}

const SUMMARY_COLUMNS: &str = "id, name, description, version, item_count, created_at";

fn summary(row: &Row) -> PoolSummary {
    PoolSummary {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        version: row.get("version"),
        item_count: row.get("item_count"),
        created_at: row.get("created_at"),
    }
}

fn item(row: &Row) -> Result<Item, StoreError> {
    let params =
        ItemParams::new(row.get("a"), row.get("b"), row.get("c"), row.get("d")).map_err(|e| {
            StoreError::Corrupt(format!("question {}: {e}", row.get::<_, String>("id")))
        })?;
    Ok(Item {
        id: row.get("id"),
        content: row.get("content"),
        options: row.get("options"),
        concepts: row.get("concepts"),
        params,
        exposure: row.get("exposure"),
    })
}

async fn insert_items(
    tx: &deadpool_postgres::Transaction<'_>,
    pool_id: Uuid,
    first_position: i32,
    version: i32,
    items: &[NewItem],
) -> Result<(), StoreError> {
    let insert = tx
        .prepare(
            "INSERT INTO questions (id, pool_id, position, added_in, content, options, correct_answer, concepts, a, b, c, d, exposure)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await?;
    for (offset, it) in items.iter().enumerate() {
        let position = first_position + offset as i32;
        let p = it.params;
        tx.execute(
            &insert,
            &[
                &it.id,
                &pool_id,
                &position,
                &version,
                &it.content,
                &it.options,
                &it.correct_answer,
                &it.concepts,
                &p.a,
                &p.b,
                &p.c,
                &p.d,
                &it.exposure,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Creates a pool at version 1 with its items, in one transaction.
pub async fn create(
    db: &Pool,
    name: &str,
    description: Option<&str>,
    items: &[NewItem],
) -> Result<PoolSummary, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO item_pools (id, name, description, item_count) VALUES ($1, $2, $3, $4)
                 RETURNING {SUMMARY_COLUMNS}"
            ),
            &[&Uuid::new_v4(), &name, &description, &(items.len() as i32)],
        )
        .await?;
    let created = summary(&row);
    insert_items(&tx, created.id, 0, 1, items).await?;
    tx.commit().await?;
    Ok(created)
}

/// Adds items as a new version of the pool; `None` when there is no such pool.
pub async fn add_items(
    db: &Pool,
    pool_id: Uuid,
    items: &[NewItem],
) -> Result<Option<PoolSummary>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    // The row lock serialises concurrent additions, so versions and positions never collide.
    let Some(row) = tx
        .query_opt(
            &format!(
                "UPDATE item_pools SET version = version + 1, item_count = item_count + $2, updated_at = now()
                 WHERE id = $1 RETURNING {SUMMARY_COLUMNS}"
            ),
            &[&pool_id, &(items.len() as i32)],
        )
        .await?
    else {
        return Ok(None);
    };
    let updated = summary(&row);
    insert_items(
        &tx,
        pool_id,
        updated.item_count - items.len() as i32,
        updated.version,
        items,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(updated))
}

/// Pools, newest first.
pub async fn list(db: &Pool, limit: i64, offset: i64) -> Result<Vec<PoolSummary>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!("SELECT {SUMMARY_COLUMNS} FROM item_pools ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"),
            &[&limit, &offset],
        )
        .await?;
    Ok(rows.iter().map(summary).collect())
}

/// One pool without its items.
pub async fn summary_of(db: &Pool, pool_id: Uuid) -> Result<Option<PoolSummary>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {SUMMARY_COLUMNS} FROM item_pools WHERE id = $1"),
            &[&pool_id],
        )
        .await?;
    Ok(row.as_ref().map(summary))
}

/// One pool with its current items (keys left out).
pub async fn with_items(
    db: &Pool,
    pool_id: Uuid,
) -> Result<Option<(PoolSummary, Vec<Item>)>, StoreError> {
    let client = db.get().await?;
    let Some(row) = client
        .query_opt(
            &format!("SELECT {SUMMARY_COLUMNS} FROM item_pools WHERE id = $1"),
            &[&pool_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            "SELECT id, content, options, concepts, a, b, c, d, exposure FROM questions WHERE pool_id = $1 ORDER BY position",
            &[&pool_id],
        )
        .await?;
    let items = rows.iter().map(item).collect::<Result<_, _>>()?;
    Ok(Some((summary(&row), items)))
}

/// Loads one version of a pool for the engine, keys included.
pub async fn load_bank(db: &Pool, pool_id: Uuid, version: i32) -> Result<PoolBank, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT id, content, options, concepts, correct_answer, a, b, c, d, exposure FROM questions
             WHERE pool_id = $1 AND added_in <= $2 ORDER BY position",
            &[&pool_id, &version],
        )
        .await?;
    let questions = rows
        .iter()
        .map(|row| {
            Ok(BankQuestion {
                item: item(row)?,
                correct_answer: row.get("correct_answer"),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(PoolBank::new(pool_id, version, questions))
}

/// The newest pool with exactly this name.
pub async fn find_by_name(db: &Pool, name: &str) -> Result<Option<PoolSummary>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {SUMMARY_COLUMNS} FROM item_pools WHERE name = $1 ORDER BY created_at DESC LIMIT 1"),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(summary))
}
