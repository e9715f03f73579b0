//! Item pools: validating and writing items, the cached views of pools, and
//! the reads the test loop makes of a pool version (parameters, texts, keys:
//! process memory first, then Redis, then PostgreSQL; keys never in Redis).

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::scope::{self, Denied, OrgOf};
use super::{CachedJson, cached_json};
use crate::app::App;
use crate::cache::Namespace;
use crate::store::StoreError;
use crate::store::pools::{self as stored, Item, NewItem, PoolBank, PoolSummary, QuestionText};
use crate::store::tenancy;
use lectern_engine::ItemParams;

/// Items one request may send.
const MAX_ITEMS_PER_REQUEST: usize = 5_000;

/// What can go wrong with a pool, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input out of range or malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No pool with that id (or none the caller may see).
    #[error("no pool with id {0}")]
    NotFound(Uuid),
    /// No organization with that id (or none the caller belongs to).
    #[error("no organization with id {0}")]
    NoOrganization(Uuid),
    /// The caller may see the pool (or organization) but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// An item id belongs to another pool already.
    #[error("{0}")]
    IdTaken(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
pub fn parse_items(items: Vec<ItemInput>) -> Result<Vec<NewItem>, Error> {
    if !(1..=MAX_ITEMS_PER_REQUEST).contains(&items.len()) {
        return Err(Error::Invalid(format!(
            "items must have 1 to {MAX_ITEMS_PER_REQUEST} entries"
        )));
    }
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(at, item)| item.parse(at))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Invalid)?;
    let mut seen = HashSet::new();
    if let Some(dup) = parsed.iter().find(|it| !seen.insert(&it.id)) {
        return Err(Error::Invalid(format!(
            "item id {:?} appears more than once",
            dup.id
        )));
    }
    Ok(parsed)
}

/// A unique violation on insert means an item id is taken by another pool.
fn duplicate_id(e: StoreError) -> Error {
    if e.sql_state() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        return e.into();
    }
    let detail = match &e {
        StoreError::Postgres(pg) => pg.as_db_error().and_then(|d| d.detail()).unwrap_or(""),
        _ => "",
    };
    Error::IdTaken(
        format!("an item id is already in use. {detail}")
            .trim()
            .to_owned(),
    )
}

/// A new pool as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    /// The organization the pool is for; may be left out by staff of one organization.
    #[serde(default, deserialize_with = "crate::wire::some")]
    organization_id: Option<Uuid>,
    /// Published for every organization (platform admins only).
    #[serde(default)]
    shared: bool,
    name: String,
    #[serde(default, deserialize_with = "crate::wire::some")]
    description: Option<String>,
    items: Vec<ItemInput>,
}

/// A pool without its items, as returned.
#[derive(Debug, Serialize)]
pub struct PoolView {
    /// Pool id.
    pub pool_id: Uuid,
    organization_id: Option<Uuid>,
    shared: bool,
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
            organization_id: p.org_id,
            shared: p.org_id.is_none(),
            name: p.name,
            description: p.description,
            version: p.version,
            item_count: p.item_count,
            created_at: p.created_at,
        }
    }
}

/// The organization a new pool goes to (`None`: shared), if `caller` may put it there.
async fn home_of(app: &App, caller: Uuid, new: &NewPool) -> Result<Option<Uuid>, Error> {
    if new.shared {
        if new.organization_id.is_some() {
            return Err(Error::Invalid(
                "a shared pool belongs to no organization: leave organization_id out".into(),
            ));
        }
        if !scope::is_platform_admin(app, caller).await? {
            return Err(Error::Forbidden(
                "only platform admins publish shared pools".into(),
            ));
        }
        return Ok(None);
    }
    let org = match new.organization_id {
        Some(org) => org,
        None => {
            let staff: Vec<Uuid> = tenancy::memberships(app.db(), caller)
                .await?
                .into_iter()
                .filter(|(_, role)| role.is_staff())
                .map(|(org, _)| org)
                .collect();
            match staff[..] {
                [only] => only,
                _ => {
                    return Err(Error::Invalid(
                        "organization_id is required: name the organization the pool is for".into(),
                    ));
                }
            }
        }
    };
    scope::standing(app, caller, OrgOf::Known(Some(org)), None, None)
        .await?
        .org_staff()
        .map_err(|denied| match denied {
            Denied::Hidden => Error::NoOrganization(org),
            Denied::Forbidden => Error::Forbidden(
                "only teachers and org admins of the organization may do this".into(),
            ),
        })?;
    Ok(Some(org))
}

/// Whether `caller` may read (or, `change`, add to) pool `id`: an
/// organization's pool is its teachers' and org admins'; a shared pool is read
/// by staff of any organization and changed by platform admins only.
async fn may_use(app: &App, caller: Uuid, id: Uuid, change: bool) -> Result<(), Error> {
    let s = scope::standing(app, caller, OrgOf::Pool(id), None, None).await?;
    let verdict = match (s.found, s.org) {
        (false, _) => Err(Denied::Hidden),
        (true, Some(_)) => s.org_staff(),
        (true, None) if s.platform_admin || (!change && s.staff_anywhere) => Ok(()),
        (true, None) => Err(Denied::Forbidden),
    };
    verdict.map_err(|denied| match denied {
        Denied::Hidden => Error::NotFound(id),
        Denied::Forbidden if change && s.org.is_none() => Error::Forbidden(format!(
            "pool {id} is shared: only platform admins change it"
        )),
        Denied::Forbidden => Error::Forbidden(format!(
            "only teachers and org admins may see the items of pool {id}"
        )),
    })
}

/// Creates a pool with its first items.
pub async fn create(app: &App, caller: Uuid, new: NewPool) -> Result<PoolView, Error> {
    check_text("name".into(), &new.name, 200).map_err(Error::Invalid)?;
    if let Some(d) = &new.description
        && d.chars().count() > 2_000
    {
        return Err(Error::Invalid(
            "description must be at most 2000 characters".into(),
        ));
    }
    let org = home_of(app, caller, &new).await?;
    let items = parse_items(new.items)?;
    let pool = stored::create(
        app.db(),
        org,
        new.name.trim(),
        new.description.as_deref(),
        &items,
    )
    .await
    .map_err(duplicate_id)?;
    app.cache().invalidate(&[Namespace::Pools]).await;
    Ok(pool.into())
}

/// Adds items to a pool (a new version of it).
pub async fn add_items(
    app: &App,
    caller: Uuid,
    id: Uuid,
    items: Vec<ItemInput>,
) -> Result<PoolView, Error> {
    may_use(app, caller, id, true).await?;
    let items = parse_items(items)?;
    let pool = stored::add_items(app.db(), id, &items)
        .await
        .map_err(duplicate_id)?
        .ok_or(Error::NotFound(id))?;
    app.cache()
        .invalidate(&[Namespace::Pool(id), Namespace::Pools])
        .await;
    Ok(pool.into())
}

#[derive(Serialize)]
struct PoolList {
    pools: Vec<PoolView>,
}

/// One page of the pools `caller` may use, `{pools: [PoolView]}`: their
/// organizations' and the shared ones (every pool, for a platform admin),
/// through the cache (one entry per set of organizations).
pub async fn list(app: &App, caller: Uuid, limit: i64, offset: i64) -> Result<CachedJson, Error> {
    let orgs = if scope::is_platform_admin(app, caller).await? {
        None
    } else {
        let mut orgs: Vec<Uuid> = tenancy::memberships(app.db(), caller)
            .await?
            .into_iter()
            .map(|(org, _)| org)
            .collect();
        orgs.sort();
        Some(orgs)
    };
    let scope = match &orgs {
        None => "all".to_owned(),
        Some(orgs) => orgs
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    let key = format!("{limit}:{offset}:{scope}");
    let load = || async {
        let pools = stored::list(app.db(), orgs.as_deref(), limit, offset).await?;
        Ok(Some(PoolList {
            pools: pools.into_iter().map(PoolView::from).collect(),
        }))
    };
    let found = cached_json(app, &Namespace::Pools, &key, load).await?;
    Ok(found.expect("a list is never missing"))
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

/// A pool with its current items (never their keys), through the cache.
pub async fn detail(app: &App, caller: Uuid, id: Uuid) -> Result<CachedJson, Error> {
    may_use(app, caller, id, false).await?;
    cached_json(app, &Namespace::Pool(id), "detail", || load_detail(app, id))
        .await?
        .ok_or(Error::NotFound(id))
}

/// A pool with its current items, from PostgreSQL.
async fn load_detail(app: &App, id: Uuid) -> Result<Option<PoolDetail>, StoreError> {
    let Some((pool, items)) = stored::with_items(app.db(), id).await? else {
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

/// One version of a pool as the engine needs it (process → Redis → PostgreSQL).
pub async fn bank(app: &App, pool_id: Uuid, version: i32) -> Result<Arc<PoolBank>, StoreError> {
    app.catalog()
        .bank(app.redis(), app.db(), pool_id, version)
        .await
}

/// The keys of one pool version, in engine order (process → PostgreSQL; never Redis).
pub async fn answer_key(
    app: &App,
    pool_id: Uuid,
    version: i32,
) -> Result<Arc<Vec<String>>, StoreError> {
    app.catalog().answer_key(app.db(), pool_id, version).await
}

/// A question's text (process → Redis → PostgreSQL).
pub async fn question(app: &App, id: &str) -> Result<Arc<QuestionText>, StoreError> {
    app.catalog().question(app.redis(), app.db(), id).await
}
