//! `pools`: create, list, read and extend item pools.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiError;
use super::extract::{IdPath, Json, Page};
use crate::App;
use crate::cache::Namespace;
use crate::engine::ItemParams;
use crate::store::StoreError;
use crate::store::pools::{self, Item, NewItem, PoolSummary};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/pools", post(create).get(list))
        .route("/v1/pools/{id}", get(show))
        .route("/v1/pools/{id}/items", post(add_items))
}

/// One item as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default, deserialize_with = "crate::wire::some")]
    id: Option<String>,
    content: String,
    options: Vec<String>,
    correct_answer: String,
    concepts: Vec<String>,
    a: f64,
    b: f64,
    #[serde(default)]
    c: f64,
    #[serde(default = "one")]
    d: f64,
    #[serde(default = "one")]
    exposure: f64,
}

fn one() -> f64 {
    1.0
}

const MAX_ITEMS_PER_REQUEST: usize = 5_000;

fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

fn check_text(field: String, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{field} must be at most {max} characters"));
    }
    Ok(())
}

/// A list of `count` texts, each non-blank and at most `max_chars` long.
fn check_list(
    field: String,
    list: &[String],
    count: std::ops::RangeInclusive<usize>,
    max_chars: usize,
) -> Result<(), String> {
    if !count.contains(&list.len()) {
        let (lo, hi) = (count.start(), count.end());
        return Err(format!(
            "{field} must have {lo} to {hi} entries (got {})",
            list.len()
        ));
    }
    for (i, value) in list.iter().enumerate() {
        check_text(format!("{field}[{i}]"), value, max_chars)?;
    }
    Ok(())
}

impl ItemInput {
    /// Checks one item; errors name the field, as `items[3].c`.
    fn parse(self, at: usize) -> Result<NewItem, String> {
        let f = |name: &str| format!("items[{at}].{name}");
        let id = match self.id {
            Some(id) if is_valid_id(&id) => id,
            Some(id) => {
                return Err(format!(
                    "{}: {id:?} must be 1-64 of A-Z a-z 0-9 . _ : -",
                    f("id")
                ));
            }
            None => Uuid::new_v4().to_string(),
        };
        check_text(f("content"), &self.content, 10_000)?;
        check_list(f("options"), &self.options, 2..=10, 1_000)?;
        if self.options.iter().collect::<HashSet<_>>().len() != self.options.len() {
            return Err(format!("{} must be distinct", f("options")));
        }
        if !self.options.contains(&self.correct_answer) {
            return Err(format!(
                "{} must be one of the options",
                f("correct_answer")
            ));
        }
        check_list(f("concepts"), &self.concepts, 1..=10, 100)?;
        if self.a > 10.0 {
            return Err(format!("{}: a must be at most 10 (got {})", f("a"), self.a));
        }
        if self.b.abs() > 10.0 {
            return Err(format!(
                "{}: b must be from -10 to 10 (got {})",
                f("b"),
                self.b
            ));
        }
        let params = ItemParams::new(self.a, self.b, self.c, self.d)
            .map_err(|e| format!("items[{at}]: {e}"))?;
        if !(self.exposure > 0.0 && self.exposure <= 1.0) {
            return Err(format!(
                "{}: exposure must be in (0, 1] (got {})",
                f("exposure"),
                self.exposure
            ));
        }
        Ok(NewItem {
            id,
            content: self.content,
            options: self.options,
            correct_answer: self.correct_answer,
            concepts: self.concepts,
            params,
            exposure: self.exposure,
        })
    }
}

/// Validates a batch of items: each item, the batch size, no id twice.
pub fn parse_items(items: Vec<ItemInput>) -> Result<Vec<NewItem>, ApiError> {
    if !(1..=MAX_ITEMS_PER_REQUEST).contains(&items.len()) {
        return Err(ApiError::invalid(format!(
            "items must have 1 to {MAX_ITEMS_PER_REQUEST} entries"
        )));
    }
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(at, item)| item.parse(at))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::invalid)?;
    let mut seen = HashSet::new();
    if let Some(dup) = parsed.iter().find(|it| !seen.insert(&it.id)) {
        return Err(ApiError::invalid(format!(
            "item id {:?} appears more than once",
            dup.id
        )));
    }
    Ok(parsed)
}

/// A unique violation on insert means an item id is taken by another pool.
fn duplicate_id(e: StoreError) -> ApiError {
    if e.sql_state() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        let detail = match &e {
            StoreError::Postgres(pg) => pg
                .as_db_error()
                .and_then(|d| d.detail())
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        return ApiError::conflict(
            "conflict",
            format!("an item id is already in use. {detail}")
                .trim()
                .to_owned(),
        );
    }
    e.into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default, deserialize_with = "crate::wire::some")]
    description: Option<String>,
    items: Vec<ItemInput>,
}

/// A pool without its items, as returned.
#[derive(Serialize)]
pub struct PoolView {
    pool_id: Uuid,
    name: String,
    description: Option<String>,
    version: i32,
    item_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

impl From<PoolSummary> for PoolView {
    fn from(p: PoolSummary) -> Self {
        Self {
            pool_id: p.id,
            name: p.name,
            description: p.description,
            version: p.version,
            item_count: p.item_count,
            created_at: p.created_at,
        }
    }
}

async fn create(
    State(app): State<App>,
    Json(body): Json<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_text("name".into(), &body.name, 200).map_err(ApiError::invalid)?;
    if let Some(d) = &body.description
        && d.chars().count() > 2_000
    {
        return Err(ApiError::invalid(
            "description must be at most 2000 characters",
        ));
    }
    let items = parse_items(body.items)?;
    let pool = pools::create(
        app.db(),
        body.name.trim(),
        body.description.as_deref(),
        &items,
    )
    .await
    .map_err(duplicate_id)?;
    app.cache().invalidate(&[Namespace::Pools]).await;
    let location = format!("/v1/pools/{}", pool.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(PoolView::from(pool)),
    ))
}

/// Pools per page: 50 unless asked, at most 200.
type PoolPage = Page<50, 200>;

#[derive(Serialize)]
struct PoolList {
    pools: Vec<PoolView>,
}

async fn list(State(app): State<App>, page: PoolPage) -> Result<Response, ApiError> {
    let key = format!("{}:{}", page.limit, page.offset);
    let load = || async {
        let pools = pools::list(app.db(), page.limit, page.offset).await?;
        Ok(Some(PoolList {
            pools: pools.into_iter().map(PoolView::from).collect(),
        }))
    };
    super::cached_json(&app, &Namespace::Pools, &key, load, || {
        unreachable!("a list is never missing")
    })
    .await
}

#[derive(Serialize)]
struct ItemView {
    id: String,
    content: String,
    options: Vec<String>,
    concepts: Vec<String>,
    a: f64,
    b: f64,
    c: f64,
    d: f64,
    exposure: f64,
}

#[derive(Serialize)]
struct PoolDetail {
    #[serde(flatten)]
    pool: PoolView,
    items: Vec<ItemView>,
}

async fn show(State(app): State<App>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    super::cached_json(
        &app,
        &Namespace::Pool(id),
        "detail",
        || detail(&app, id),
        || ApiError::not_found(format!("no pool with id {id}")),
    )
    .await
}

/// A pool with its current items, from PostgreSQL.
async fn detail(app: &App, id: Uuid) -> Result<Option<PoolDetail>, StoreError> {
    let Some((pool, items)) = pools::with_items(app.db(), id).await? else {
        return Ok(None);
    };
    let items = items
        .into_iter()
        .map(
            |Item {
                 id,
                 content,
                 options,
                 concepts,
                 params: p,
                 exposure,
             }| ItemView {
                id,
                content,
                options,
                concepts,
                a: p.a,
                b: p.b,
                c: p.c,
                d: p.d,
                exposure,
            },
        )
        .collect();
    Ok(Some(PoolDetail {
        pool: pool.into(),
        items,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItemsBody {
    items: Vec<ItemInput>,
}

async fn add_items(
    State(app): State<App>,
    IdPath(id): IdPath,
    Json(body): Json<AddItemsBody>,
) -> Result<axum::Json<PoolView>, ApiError> {
    let items = parse_items(body.items)?;
    let pool = pools::add_items(app.db(), id, &items)
        .await
        .map_err(duplicate_id)?
        .ok_or_else(|| ApiError::not_found(format!("no pool with id {id}")))?;
    app.cache()
        .invalidate(&[Namespace::Pool(id), Namespace::Pools])
        .await;
    Ok(axum::Json(pool.into()))
}
