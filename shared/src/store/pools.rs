//! Item pools and their questions in PostgreSQL.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use lectern_engine::{self as engine, ItemBank, ItemParams, PolyModel, PolyParams};
use serde_json::json;

/// The form of [`PoolBank::encode`], part of the bank's Redis key: bump it with
/// any change to what is encoded, so that no release reads another's (3: the
/// pretest items' ids).
pub const BANK_ENCODING: u32 = 3;

/// The polytomous model named `name` (`grm`, `gpcm`, `pcm`).
pub fn poly_model(name: &str) -> Option<PolyModel> {
    [PolyModel::Grm, PolyModel::Gpcm, PolyModel::Pcm]
        .into_iter()
        .find(|m| m.name() == name)
}

/// An item's key: what each of its options is worth. It stays in PostgreSQL
/// and process memory, never in Redis nor in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A right/wrong item: its correct option.
    Correct(String),
    /// A polytomous item: the score (0…m) of each option, in option order.
    Scores(Vec<u8>),
}

impl Key {
    /// The score of each of `options`, in order (a right/wrong item: 1 for
    /// its correct option, 0 for the others).
    pub fn option_scores(&self, options: &[String]) -> Vec<u8> {
        match self {
            Key::Correct(right) => options.iter().map(|o| u8::from(o == right)).collect(),
            Key::Scores(scores) => scores.clone(),
        }
    }
}

/// An item's IRT parameters: known (every operational item; a pretest item's
/// provisional ones), or not yet, for a pretest item awaiting calibration.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// Calibrated (or, for a pretest item, provisional) parameters, of any model.
    Known(engine::Item),
    /// None yet: a right/wrong item (`None`) or a polytomous one of this model.
    Pending(Option<PolyModel>),
}

impl Params {
    /// The parameters, when there are some.
    pub fn known(&self) -> Option<&engine::Item> {
        match self {
            Params::Known(item) => Some(item),
            Params::Pending(_) => None,
        }
    }

    /// The model's name (`1pl`…`4pl`, the smallest that fits, or `grm`,
    /// `gpcm`, `pcm`); `None` for a right/wrong item without parameters.
    pub fn model_name(&self) -> Option<&'static str> {
        match self {
            Params::Known(item) => Some(item.model_name()),
            Params::Pending(model) => model.map(PolyModel::name),
        }
    }
}

/// What an item is to the tests on its pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ItemRole {
    /// Selected by the engine and scored, with its Sympson–Hetter exposure
    /// parameter in (0, 1].
    Operational {
        /// Sympson–Hetter exposure parameter.
        exposure: f64,
    },
    /// Served at seeded positions and recorded, never selected nor scored.
    Pretest,
}

/// A validated item about to be stored.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Unique across all pools.
    pub id: String,
    /// The question text.
    pub content: String,
    /// The answer choices, distinct.
    pub options: Vec<String>,
    /// What each option is worth.
    pub key: Key,
    /// Concept names, at least one.
    pub concepts: Vec<String>,
    /// IRT parameters (always known for an operational item).
    pub params: Params,
    /// Operational or pretest.
    pub role: ItemRole,
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
    /// The organization it belongs to (`None`: shared with every organization).
    pub org_id: Option<Uuid>,
    /// Bumped each time items are added.
    pub version: i32,
    /// Items in the current version.
    pub item_count: i32,
    /// When the pool was created.
    pub created_at: OffsetDateTime,
}

/// A stored question as staff may see it: without its key.
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
    /// IRT parameters (always known for an operational item).
    pub params: Params,
    /// Operational or pretest.
    pub role: ItemRole,
}

/// A question as served: without its key. Cached in Redis (`question:{<id>}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionText {
    /// Question id.
    pub id: String,
    /// Question text.
    pub content: String,
    /// Answer choices.
    pub options: Vec<String>,
    /// Concept names.
    pub concepts: Vec<String>,
}

impl QuestionText {
    /// The compact form cached in Redis.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("question serialises")
    }

    /// Reads what [`QuestionText::encode`] wrote.
    pub fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        postcard::from_bytes(raw).map_err(|e| StoreError::Corrupt(format!("cached question: {e}")))
    }
}

/// One item of a pool version as the engine needs it.
#[derive(Debug, Clone)]
pub struct BankItem {
    /// Question id.
    pub id: String,
    /// IRT parameters (of any model).
    pub params: engine::Item,
    /// Sympson–Hetter exposure parameter in (0, 1].
    pub exposure: f64,
    /// Concept names.
    pub concepts: Vec<String>,
}

/// One version of a pool, ready for the engine: parameters as struct-of-arrays,
/// concepts as small ids, question ids by engine index, and apart from them
/// the pretest items' ids (the engine never sees a pretest item). Holds no
/// content and no keys, so it may be cached in Redis
/// (`pool:{<id>}:v<version>:e<encoding>`).
pub struct PoolBank {
    /// Pool id.
    pub pool_id: Uuid,
    /// The version loaded.
    pub version: i32,
    /// Question ids in engine order.
    pub ids: Vec<String>,
    /// The engine's view: the operational items.
    pub bank: ItemBank,
    /// Concept names by concept id.
    pub concept_names: Vec<String>,
    /// The pretest items' question ids, in pool order (a pretest item's index).
    pub pretest_ids: Vec<String>,
    index: HashMap<String, usize>,
    pretest_index: HashMap<String, usize>,
}

/// [`PoolBank`] as cached in Redis (form [`BANK_ENCODING`]).
#[derive(Serialize, Deserialize)]
struct BankWire {
    ids: Vec<String>,
    items: Vec<WireItem>,
    exposure: Vec<f64>,
    concepts: Vec<Vec<u16>>,
    concept_names: Vec<String>,
    pretest_ids: Vec<String>,
}

/// One item's parameters in a [`BankWire`].
#[derive(Serialize, Deserialize)]
enum WireItem {
    /// a, b, c, d.
    Dichotomous(f64, f64, f64, f64),
    /// Model name, a, thresholds.
    Polytomous(String, f64, Vec<f64>),
}

impl From<&engine::Item> for WireItem {
    fn from(item: &engine::Item) -> Self {
        match item {
            engine::Item::Dichotomous(p) => WireItem::Dichotomous(p.a, p.b, p.c, p.d),
            engine::Item::Polytomous(p) => {
                WireItem::Polytomous(p.model().name().into(), p.a(), p.thresholds().to_vec())
            }
        }
    }
}

impl WireItem {
    fn into_item(self) -> Result<engine::Item, String> {
        match self {
            WireItem::Dichotomous(a, b, c, d) => ItemParams::new(a, b, c, d).map(Into::into),
            WireItem::Polytomous(model, a, b) => {
                let model = poly_model(&model).ok_or(format!("unknown model {model:?}"))?;
                PolyParams::new(model, a, b).map(Into::into)
            }
        }
        .map_err(|e| e.to_string())
    }
}

impl PoolBank {
    /// Builds a bank from operational items in engine order and the ids of
    /// the pretest items.
    pub fn new(
        pool_id: Uuid,
        version: i32,
        items: Vec<BankItem>,
        pretest_ids: Vec<String>,
    ) -> Self {
        let mut concept_names: Vec<String> = Vec::new();
        let mut concept_ids: HashMap<String, u16> = HashMap::new();
        let mut wire = BankWire {
            ids: Vec::with_capacity(items.len()),
            items: Vec::with_capacity(items.len()),
            exposure: Vec::with_capacity(items.len()),
            concepts: Vec::with_capacity(items.len()),
            concept_names: Vec::new(),
            pretest_ids,
        };
        for it in items {
            let ids = it
                .concepts
                .into_iter()
                .map(|name| {
                    *concept_ids.entry(name).or_insert_with_key(|name| {
                        concept_names.push(name.clone());
                        u16::try_from(concept_names.len() - 1)
                            .expect("fewer than 65536 concepts per pool")
                    })
                })
                .collect();
            wire.ids.push(it.id);
            wire.items.push(WireItem::from(&it.params));
            wire.exposure.push(it.exposure);
            wire.concepts.push(ids);
        }
        wire.concept_names = concept_names;
        Self::from_wire(pool_id, version, wire).expect("parameters were validated")
    }

    fn from_wire(pool_id: Uuid, version: i32, w: BankWire) -> Result<Self, String> {
        let n = w.ids.len();
        if [w.items.len(), w.exposure.len(), w.concepts.len()] != [n; 3] {
            return Err("column lengths differ".into());
        }
        if w.concepts
            .iter()
            .flatten()
            .any(|&c| usize::from(c) >= w.concept_names.len())
        {
            return Err("concept id out of range".into());
        }
        let params = w
            .items
            .into_iter()
            .map(WireItem::into_item)
            .collect::<Result<Vec<_>, _>>()?;
        let positions = |ids: &[String]| -> HashMap<String, usize> {
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect()
        };
        let (index, pretest_index) = (positions(&w.ids), positions(&w.pretest_ids));
        if index.len() + pretest_index.len() != n + w.pretest_ids.len()
            || pretest_index.keys().any(|id| index.contains_key(id))
        {
            return Err("a question id appears twice".into());
        }
        Ok(Self {
            pool_id,
            version,
            bank: ItemBank::new(params, w.concepts).with_exposure(w.exposure),
            ids: w.ids,
            concept_names: w.concept_names,
            pretest_ids: w.pretest_ids,
            index,
            pretest_index,
        })
    }

    /// The compact form cached in Redis.
    pub fn encode(&self) -> Vec<u8> {
        let b = &self.bank;
        let wire = BankWire {
            ids: self.ids.clone(),
            items: (0..b.len()).map(|i| WireItem::from(&b.item(i))).collect(),
            exposure: (0..b.len()).map(|i| b.exposure(i)).collect(),
            concepts: (0..b.len()).map(|i| b.concepts(i).to_vec()).collect(),
            concept_names: self.concept_names.clone(),
            pretest_ids: self.pretest_ids.clone(),
        };
        postcard::to_stdvec(&wire).expect("bank serialises")
    }

    /// Reads what [`PoolBank::encode`] wrote.
    pub fn decode(pool_id: Uuid, version: i32, raw: &[u8]) -> Result<Self, StoreError> {
        postcard::from_bytes(raw)
            .map_err(|e| e.to_string())
            .and_then(|wire| Self::from_wire(pool_id, version, wire))
            .map_err(|e| StoreError::Corrupt(format!("cached pool {pool_id} v{version}: {e}")))
    }

    /// The engine's id of a concept name, if an item of this version is tagged with it.
    pub fn concept_id(&self, name: &str) -> Option<u16> {
        let id = self.concept_names.iter().position(|n| n == name)?;
        u16::try_from(id).ok()
    }

    /// The engine index of a question id, if it is an operational item of this version.
    pub fn index_of(&self, question_id: &str) -> Option<usize> {
        self.index.get(question_id).copied()
    }

    /// The pretest index of a question id, if it is a pretest item of this version.
    pub fn pretest_index_of(&self, question_id: &str) -> Option<usize> {
        self.pretest_index.get(question_id).copied()
    }
}

/// The keys of one pool version: each option's score, by item. They stay in
/// process memory (and PostgreSQL), never in Redis nor in a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerKey {
    /// The operational items', in engine order.
    pub items: Vec<Vec<u8>>,
    /// The pretest items', in pretest order.
    pub pretest: Vec<PretestKey>,
}

/// A pretest item's key and its highest score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretestKey {
    /// Each option's score, in option order.
    pub scores: Vec<u8>,
    /// The item's highest score m (1 for a right/wrong item): from its
    /// provisional thresholds when it has some, else its highest option score.
    pub top: u8,
}

/// Everything about one pool version: the engine's bank, each question's text,
/// and the keys (which stay in process memory).
pub struct LoadedVersion {
    /// The engine's view.
    pub bank: PoolBank,
    /// Question texts, operational and pretest.
    pub questions: Vec<QuestionText>,
    /// Keys, as each option's score.
    pub keys: AnswerKey,
}

const SUMMARY_COLUMNS: &str = "id, name, description, org_id, version, item_count, created_at";

/// Whether a question is a pretest item in version `$2`: flagged so and not
/// promoted by then (a promoted item is operational from `promoted_in` on,
/// and stays a pretest item in the versions before, whose tests served it so).
const PRETEST_IN_VERSION: &str = "(pretest AND coalesce(promoted_in > $2, true)) AS pretest";

fn summary(row: &Row) -> PoolSummary {
    PoolSummary {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        org_id: row.get("org_id"),
        version: row.get("version"),
        item_count: row.get("item_count"),
        created_at: row.get("created_at"),
    }
}

/// An item's parameters from its row (model, a, b, c, d, thresholds; `a`
/// NULL: a pretest item without parameters yet).
fn params(row: &Row) -> Result<Params, StoreError> {
    let corrupt = |what: String| {
        StoreError::Corrupt(format!("question {}: {what}", row.get::<_, &str>("id")))
    };
    let model = match row.get::<_, Option<&str>>("model") {
        None => None,
        Some(name) => {
            Some(poly_model(name).ok_or_else(|| corrupt(format!("unknown model {name:?}")))?)
        }
    };
    let Some(a) = row.get::<_, Option<f64>>("a") else {
        return Ok(Params::Pending(model));
    };
    let built = match model {
        None => ItemParams::new(a, row.get("b"), row.get("c"), row.get("d")).map(Into::into),
        Some(model) => PolyParams::new(model, a, row.get("thresholds")).map(Into::into),
    };
    built.map(Params::Known).map_err(|e| corrupt(e.to_string()))
}

/// What an item is, from its row (pretest, exposure).
fn role(row: &Row) -> Result<ItemRole, StoreError> {
    match (
        row.get::<_, bool>("pretest"),
        row.get::<_, Option<f64>>("exposure"),
    ) {
        (true, _) => Ok(ItemRole::Pretest),
        (false, Some(exposure)) => Ok(ItemRole::Operational { exposure }),
        (false, None) => Err(StoreError::Corrupt(format!(
            "question {}: an operational item without an exposure parameter",
            row.get::<_, &str>("id")
        ))),
    }
}

/// A pretest item's highest score, from its row and its option scores: 1
/// for a right/wrong item, else its number of thresholds, else (no
/// parameters yet) its highest option score.
fn top_score(row: &Row, scores: &[u8]) -> u8 {
    if row.get::<_, Option<&str>>("model").is_none() {
        return 1;
    }
    match row.get::<_, Option<Vec<f64>>>("thresholds") {
        Some(t) => t.len() as u8,
        None => scores.iter().copied().max().unwrap_or(0),
    }
}

/// An item's key from its row (correct_answer or option_scores), as each option's score.
fn option_scores(row: &Row) -> Result<Vec<u8>, StoreError> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "question {}: no usable key",
            row.get::<_, &str>("id")
        ))
    };
    let key = match row.get::<_, Option<Vec<i16>>>("option_scores") {
        Some(scores) => Key::Scores(
            scores
                .into_iter()
                .map(u8::try_from)
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt())?,
        ),
        None => Key::Correct(
            row.get::<_, Option<String>>("correct_answer")
                .ok_or_else(corrupt)?,
        ),
    };
    Ok(key.option_scores(&row.get::<_, Vec<String>>("options")))
}

fn item(row: &Row) -> Result<Item, StoreError> {
    Ok(Item {
        id: row.get("id"),
        content: row.get("content"),
        options: row.get("options"),
        concepts: row.get("concepts"),
        params: params(row)?,
        role: role(row)?,
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
            "INSERT INTO questions (id, pool_id, position, added_in, content, options, correct_answer,
                                    concepts, a, b, c, d, exposure, model, thresholds, option_scores,
                                    pretest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .await?;
    for (offset, it) in items.iter().enumerate() {
        let position = first_position + offset as i32;
        // A polytomous item has thresholds instead of b, and no c or d (the
        // defaults stand); a pretest item without parameters has none of them.
        let (model, a, b, (c, d), thresholds) = match &it.params {
            Params::Known(engine::Item::Dichotomous(p)) => {
                (None, Some(p.a), Some(p.b), (p.c, p.d), None)
            }
            Params::Known(engine::Item::Polytomous(p)) => (
                Some(p.model().name()),
                Some(p.a()),
                None,
                (0.0, 1.0),
                Some(p.thresholds()),
            ),
            Params::Pending(model) => (model.map(PolyModel::name), None, None, (0.0, 1.0), None),
        };
        let (exposure, pretest) = match it.role {
            ItemRole::Operational { exposure } => (Some(exposure), false),
            ItemRole::Pretest => (None, true),
        };
        let (correct_answer, option_scores) = match &it.key {
            Key::Correct(right) => (Some(right.as_str()), None),
            Key::Scores(s) => (
                None,
                Some(s.iter().map(|&s| i16::from(s)).collect::<Vec<_>>()),
            ),
        };
        tx.execute(
            &insert,
            &[
                &it.id,
                &pool_id,
                &position,
                &version,
                &it.content,
                &it.options,
                &correct_answer,
                &it.concepts,
                &a,
                &b,
                &c,
                &d,
                &exposure,
                &model,
                &thresholds,
                &option_scores,
                &pretest,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Creates a pool at version 1 with its items, in one transaction, in `org`
/// (`None`: shared).
pub async fn create(
    db: &Pool,
    org: Option<Uuid>,
    name: &str,
    description: Option<&str>,
    items: &[NewItem],
) -> Result<PoolSummary, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let (idem_key, idem_hash) = super::idempotency::columns();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO item_pools (id, name, description, item_count, org_id,
                                         idempotency_key, idempotency_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING {SUMMARY_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &name,
                &description,
                &(items.len() as i32),
                &org,
                &idem_key,
                &idem_hash,
            ],
        )
        .await?;
    let created = summary(&row);
    insert_items(&tx, created.id, 0, 1, items).await?;
    let entry = Entry::new("pool.created", "pool", created.id)
        .org(org)
        .detail(json!({ "name": name, "items": items.len() }));
    audit::record(&tx, entry).await?;
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
    let entry = Entry::new("pool.items_added", "pool", pool_id)
        .org(updated.org_id)
        .detail(json!({ "version": updated.version, "items": items.len() }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Some(updated))
}

/// Pools of the organizations `orgs` and the shared ones (`None`: every
/// pool), newest first.
pub async fn list(
    db: &Pool,
    orgs: Option<&[Uuid]>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PoolSummary>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM item_pools
                 WHERE $3::uuid[] IS NULL OR org_id IS NULL OR org_id = ANY($3)
                 ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
            ),
            &[&limit, &offset, &orgs],
        )
        .await?;
    Ok(rows.iter().map(summary).collect())
}

/// Shares a pool with every organization.
pub async fn share(db: &Pool, pool_id: Uuid) -> Result<(), StoreError> {
    let client = db.get().await?;
    client
        .execute(
            "UPDATE item_pools SET org_id = NULL WHERE id = $1",
            &[&pool_id],
        )
        .await?;
    Ok(())
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
    let pool = summary(&row);
    let rows = client
        .query(
            &format!(
                "SELECT id, content, options, concepts, model, a, b, c, d, thresholds, exposure,
                        {PRETEST_IN_VERSION}
                 FROM questions WHERE pool_id = $1 AND added_in <= $2 ORDER BY position"
            ),
            &[&pool_id, &pool.version],
        )
        .await?;
    let items = rows.iter().map(item).collect::<Result<_, _>>()?;
    Ok(Some((pool, items)))
}

/// Adds a row's key to `keys`: an operational item's in engine order, a
/// pretest item's in pretest order (both are pool order).
fn push_key(keys: &mut AnswerKey, row: &Row) -> Result<(), StoreError> {
    let scores = option_scores(row)?;
    if row.get::<_, bool>("pretest") {
        let top = top_score(row, &scores);
        keys.pretest.push(PretestKey { scores, top });
    } else {
        keys.items.push(scores);
    }
    Ok(())
}

/// Loads one version of a pool: bank, texts and keys, in one query.
pub async fn load_version(
    db: &Pool,
    pool_id: Uuid,
    version: i32,
) -> Result<LoadedVersion, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, content, options, concepts, correct_answer, option_scores,
                        model, a, b, c, d, thresholds, exposure, {PRETEST_IN_VERSION}
                 FROM questions WHERE pool_id = $1 AND added_in <= $2 ORDER BY position"
            ),
            &[&pool_id, &version],
        )
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut pretest_ids = Vec::new();
    let mut questions = Vec::with_capacity(rows.len());
    let mut keys = AnswerKey::default();
    for row in &rows {
        push_key(&mut keys, row)?;
        let it = item(row)?;
        questions.push(QuestionText {
            id: it.id.clone(),
            content: it.content,
            options: it.options,
            concepts: it.concepts.clone(),
        });
        match (it.role, it.params) {
            (ItemRole::Pretest, _) => pretest_ids.push(it.id),
            (ItemRole::Operational { exposure }, Params::Known(params)) => items.push(BankItem {
                id: it.id,
                params,
                exposure,
                concepts: it.concepts,
            }),
            (ItemRole::Operational { .. }, Params::Pending(_)) => {
                return Err(StoreError::Corrupt(format!(
                    "question {}: an operational item without parameters",
                    it.id
                )));
            }
        }
    }
    Ok(LoadedVersion {
        bank: PoolBank::new(pool_id, version, items, pretest_ids),
        questions,
        keys,
    })
}

/// The keys of one pool version: each option's score.
pub async fn answer_key(db: &Pool, pool_id: Uuid, version: i32) -> Result<AnswerKey, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, options, correct_answer, option_scores, {PRETEST_IN_VERSION}, model,
                        thresholds
                 FROM questions WHERE pool_id = $1 AND added_in <= $2 ORDER BY position"
            ),
            &[&pool_id, &version],
        )
        .await?;
    let mut keys = AnswerKey::default();
    for row in &rows {
        push_key(&mut keys, row)?;
    }
    Ok(keys)
}

/// One question's text.
pub async fn question_text(db: &Pool, id: &str) -> Result<Option<QuestionText>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            "SELECT id, content, options, concepts FROM questions WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| QuestionText {
        id: r.get("id"),
        content: r.get("content"),
        options: r.get("options"),
        concepts: r.get("concepts"),
    }))
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

#[cfg(test)]
mod unit {
    use super::*;

    fn item(id: &str, params: engine::Item, concepts: &[&str]) -> BankItem {
        BankItem {
            id: id.into(),
            params,
            exposure: 0.5,
            concepts: concepts.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn a_bank_of_every_model_reads_back_what_it_encoded() {
        let items = vec![
            item(
                "q1",
                engine::Item::grm(1.3, vec![-1.0, 0.0, 1.2]).unwrap(),
                &["x"],
            ),
            item(
                "q2",
                engine::Item::gpcm(0.8, vec![0.5, -0.2]).unwrap(),
                &["y", "x"],
            ),
            item("q3", engine::Item::pcm(vec![0.1]).unwrap(), &["y"]),
            item(
                "q4",
                ItemParams::new(1.1, 0.3, 0.2, 0.95).unwrap().into(),
                &["z"],
            ),
        ];
        let pool = Uuid::new_v4();
        let bank = PoolBank::new(pool, 2, items, vec!["p1".into(), "p2".into()]);
        let read = PoolBank::decode(pool, 2, &bank.encode()).unwrap();
        assert_eq!(read.bank, bank.bank);
        assert_eq!(
            (&read.ids, &read.concept_names, &read.pretest_ids),
            (&bank.ids, &bank.concept_names, &bank.pretest_ids)
        );
        assert_eq!(read.bank.max_score(0), 3);
        assert_eq!(read.index_of("q3"), Some(2));
        // Pretest items are not the engine's: an index of their own.
        assert_eq!(read.bank.len(), 4);
        assert_eq!(
            (read.index_of("p2"), read.pretest_index_of("p2")),
            (None, Some(1))
        );
        assert_eq!(read.pretest_index_of("q3"), None);
        assert!(PoolBank::decode(pool, 2, &bank.encode()[..20]).is_err());
    }

    #[test]
    fn a_right_wrong_key_scores_its_correct_option_one() {
        let options = ["a", "b", "c"].map(String::from);
        assert_eq!(Key::Correct("b".into()).option_scores(&options), [0, 1, 0]);
        assert_eq!(
            Key::Scores(vec![2, 0, 1]).option_scores(&options),
            [2, 0, 1]
        );
        assert_eq!(poly_model("gpcm"), Some(PolyModel::Gpcm));
        assert_eq!(poly_model("2pl"), None);
    }
}
