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
use crate::store::pools::{
    self as stored, AnswerKey, Item, ItemRole, Key, NewItem, Params, PoolBank, PoolSummary,
    QuestionText,
};
use crate::store::tenancy;
use lectern_engine::{self as engine, ItemParams, ParamError, PolyModel, PolyParams};

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
    /// The pool has no such version (yet).
    #[error("pool {pool} has no version {version}")]
    NoVersion {
        /// The pool.
        pool: Uuid,
        /// The version asked for.
        version: i32,
    },
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

/// One item as sent: right/wrong (`b` a number, `correct_answer`, optional
/// `c`, `d`), or polytomous (`model` grm, gpcm or pcm, `b` its thresholds,
/// `option_scores`); operational, or `pretest` (parameters optional: given,
/// they are provisional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default, deserialize_with = "crate::wire::some")]
    id: Option<String>,
    content: String,
    options: Vec<String>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    model: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    correct_answer: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    option_scores: Option<Vec<Score>>,
    concepts: Vec<String>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    a: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    b: Option<Location>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    c: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    d: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    exposure: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    pretest: Option<bool>,
}

/// `b`: a right/wrong item's difficulty, or a polytomous item's thresholds
/// (GRM) or steps (GPCM, PCM), b1…bm.
#[derive(Debug, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a number, or a list of numbers (a polytomous item's thresholds)"
)]
enum Location {
    One(f64),
    Many(Vec<f64>),
}

/// One option's score (JSON Schema `integer`: `2.0` is 2).
#[derive(Debug, Deserialize)]
struct Score(#[serde(deserialize_with = "crate::wire::integer")] u8);

/// The right/wrong models, each fixing more than the next: 1PL ⊂ 2PL ⊂ 3PL ⊂ 4PL.
const DICHOTOMOUS: [(&str, &str); 4] = [
    ("1pl", "a = 1, c = 0 and d = 1"),
    ("2pl", "c = 0 and d = 1"),
    ("3pl", "d = 1"),
    ("4pl", ""),
];

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

/// A parameter error, naming the field it is about.
fn param_error(f: &dyn Fn(&str) -> String, e: ParamError) -> String {
    let field = match e {
        ParamError::InvalidA(_) => "a",
        ParamError::InvalidC(_) | ParamError::CNotBelowD { .. } => "c",
        ParamError::InvalidD(_) => "d",
        ParamError::InvalidB(_)
        | ParamError::Categories(_)
        | ParamError::InvalidThreshold { .. }
        | ParamError::ThresholdsNotIncreasing { .. } => "b",
    };
    format!("{}: {e}", f(field))
}

impl ItemInput {
    /// Checks one item; errors name the field, as `items[3].c`.
    fn parse(mut self, at: usize) -> Result<NewItem, String> {
        let f = |name: &str| format!("items[{at}].{name}");
        let id = match self.id.take() {
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
        check_list(f("concepts"), &self.concepts, 1..=10, 100)?;
        if let Some(a) = self.a.filter(|&a| a > 10.0) {
            return Err(format!("{}: a must be at most 10 (got {a})", f("a")));
        }
        let poly = match self.model.as_deref() {
            None => None,
            Some(name) if DICHOTOMOUS.iter().any(|(m, _)| *m == name) => None,
            Some(name) => Some(stored::poly_model(name).ok_or_else(|| {
                format!(
                    "{}: unknown model {name:?} (one of 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm)",
                    f("model")
                )
            })?),
        };
        let pretest = self.pretest.unwrap_or(false);
        let (params, key) = match (poly, &self.b) {
            // Parameters come with b, or not at all (a pretest item awaiting calibration).
            (_, None) if pretest => (Params::Pending(poly), self.pending(poly, &f)?),
            (_, None) => {
                return Err(format!(
                    "{} is required (only a pretest item may leave its parameters out)",
                    f("b")
                ));
            }
            (None, Some(_)) => self.dichotomous(&f)?,
            (Some(model), Some(_)) => self.polytomous(model, &f)?,
        };
        let role = match (pretest, self.exposure) {
            (true, Some(_)) => {
                return Err(format!(
                    "{}: a pretest item is never selected, so it has no exposure parameter",
                    f("exposure")
                ));
            }
            (true, None) => ItemRole::Pretest,
            (false, exposure) => {
                let exposure = exposure.unwrap_or(1.0);
                if !(exposure > 0.0 && exposure <= 1.0) {
                    return Err(format!(
                        "{}: exposure must be in (0, 1] (got {exposure})",
                        f("exposure"),
                    ));
                }
                ItemRole::Operational { exposure }
            }
        };
        Ok(NewItem {
            id,
            content: self.content,
            options: self.options,
            key,
            concepts: self.concepts,
            params,
            role,
        })
    }

    /// A right/wrong item's key: its correct answer, one of the options.
    fn correct_answer(&self, f: &dyn Fn(&str) -> String) -> Result<Key, String> {
        if self.option_scores.is_some() {
            return Err(format!(
                "{}: only polytomous items (model grm, gpcm or pcm) have option scores; a right/wrong item has a correct_answer",
                f("option_scores")
            ));
        }
        let Some(right) = &self.correct_answer else {
            return Err(format!(
                "{} is required: the option that is right",
                f("correct_answer")
            ));
        };
        if !self.options.contains(right) {
            return Err(format!(
                "{} must be one of the options",
                f("correct_answer")
            ));
        }
        Ok(Key::Correct(right.clone()))
    }

    /// The parameters and key of a right/wrong item.
    fn dichotomous(&self, f: &dyn Fn(&str) -> String) -> Result<(Params, Key), String> {
        if self.option_scores.is_some() {
            return Err(format!(
                "{}: only polytomous items (model grm, gpcm or pcm) have option scores; a right/wrong item has a correct_answer",
                f("option_scores")
            ));
        }
        let Some(Location::One(b)) = self.b else {
            return Err(format!(
                "{}: a list of thresholds needs model grm, gpcm or pcm; a right/wrong item's b is a number",
                f("b")
            ));
        };
        if b.abs() > 10.0 {
            return Err(format!("{}: b must be from -10 to 10 (got {b})", f("b")));
        }
        let key = self.correct_answer(f)?;
        let a = match (self.a, self.model.as_deref()) {
            (Some(a), _) => a,
            (None, Some("1pl")) => 1.0,
            (None, _) => return Err(format!("{} is required", f("a"))),
        };
        let (c, d) = (self.c.unwrap_or(0.0), self.d.unwrap_or(1.0));
        let params = ItemParams::new(a, b, c, d).map_err(|e| param_error(f, e))?;
        let item = engine::Item::from(params);
        // A model named must admit the parameters given (1PL ⊂ 2PL ⊂ 3PL ⊂ 4PL).
        let rank = |name: &str| DICHOTOMOUS.iter().position(|(m, _)| *m == name);
        if let Some(named) = self.model.as_deref()
            && rank(named) < rank(item.model_name())
        {
            let rule = DICHOTOMOUS[rank(named).unwrap_or_default()].1;
            return Err(format!(
                "{}: a {named} item has {rule} (got a = {a}, c = {c}, d = {d})",
                f("model")
            ));
        }
        Ok((Params::Known(item), key))
    }

    /// The parameters and key of a polytomous item: every option scored 0…m.
    fn polytomous(
        &self,
        model: PolyModel,
        f: &dyn Fn(&str) -> String,
    ) -> Result<(Params, Key), String> {
        self.no_right_wrong_fields(model, f)?;
        let Some(Location::Many(b)) = &self.b else {
            return Err(format!(
                "{}: a {model} item's b is the list of its thresholds b1…bm",
                f("b")
            ));
        };
        if let Some((k, t)) = b.iter().enumerate().find(|(_, t)| t.abs() > 10.0) {
            return Err(format!(
                "{}[{k}]: thresholds must be from -10 to 10 (got {t})",
                f("b")
            ));
        }
        let a = match (model, self.a) {
            (PolyModel::Pcm, None | Some(1.0)) => 1.0,
            (PolyModel::Pcm, Some(a)) => {
                return Err(format!(
                    "{}: a pcm item's a is 1 (got {a}); a gpcm item has a discrimination of its own",
                    f("a")
                ));
            }
            (_, Some(a)) => a,
            (_, None) => return Err(format!("{} is required", f("a"))),
        };
        let params = PolyParams::new(model, a, b.clone()).map_err(|e| param_error(f, e))?;
        let key = self.option_scores(Some(params.categories() - 1), f)?;
        Ok((Params::Known(params.into()), key))
    }

    /// A polytomous item has no correct answer, `c` or `d`.
    fn no_right_wrong_fields(
        &self,
        model: PolyModel,
        f: &dyn Fn(&str) -> String,
    ) -> Result<(), String> {
        if self.correct_answer.is_some() {
            return Err(format!(
                "{}: a {model} item has no correct answer; give each option's score in option_scores",
                f("correct_answer")
            ));
        }
        for (name, given) in [("c", self.c), ("d", self.d)] {
            if given.is_some() {
                return Err(format!(
                    "{}: a {model} item has no {name} (only right/wrong items do)",
                    f(name)
                ));
            }
        }
        Ok(())
    }

    /// A polytomous item's key: each option's score, 0…`top` (its number of
    /// thresholds); without thresholds (a pretest item awaiting
    /// calibration) the highest score given is the item's, 1 to 9.
    fn option_scores(&self, top: Option<usize>, f: &dyn Fn(&str) -> String) -> Result<Key, String> {
        let scores: Vec<u8> = match &self.option_scores {
            Some(scores) => scores.iter().map(|s| s.0).collect(),
            // A Likert item: its options are its categories, in order.
            None if top.is_none_or(|top| self.options.len() == top + 1) => {
                (0..self.options.len() as u8).collect()
            }
            None => {
                let top = top.unwrap_or_default();
                return Err(format!(
                    "{} is required: the item has {} options and scores 0…{top} (leave it out only when the options are the categories, in order)",
                    f("option_scores"),
                    self.options.len()
                ));
            }
        };
        if scores.len() != self.options.len() {
            return Err(format!(
                "{} must give one score per option ({} options, got {} scores)",
                f("option_scores"),
                self.options.len(),
                scores.len()
            ));
        }
        match top {
            Some(top) => {
                if let Some((k, s)) = scores
                    .iter()
                    .enumerate()
                    .find(|&(_, &s)| usize::from(s) > top)
                {
                    return Err(format!(
                        "{}[{k}]: {s} is above the item's highest score {top}",
                        f("option_scores")
                    ));
                }
            }
            None => {
                let high = scores.iter().copied().max().unwrap_or_default();
                if !(1..=9).contains(&high) {
                    return Err(format!(
                        "{}: a polytomous item's highest score is 1 to 9 (2 to 10 categories; got {high})",
                        f("option_scores")
                    ));
                }
            }
        }
        Ok(Key::Scores(scores))
    }

    /// The key of a pretest item without parameters (no `b`): a right/wrong
    /// one's correct answer, a polytomous one's option scores. Its model, if
    /// right/wrong, is chosen when it is calibrated, so none may be named.
    fn pending(&self, model: Option<PolyModel>, f: &dyn Fn(&str) -> String) -> Result<Key, String> {
        for (name, given) in [("a", self.a), ("c", self.c), ("d", self.d)] {
            if given.is_some() {
                return Err(format!(
                    "{}: a pretest item's provisional parameters come with b: give b too, or leave {name} out",
                    f(name)
                ));
            }
        }
        match model {
            Some(model) => {
                self.no_right_wrong_fields(model, f)?;
                self.option_scores(None, f)
            }
            None if self.model.is_some() => Err(format!(
                "{}: a right/wrong pretest item without parameters has no model yet (it is chosen when the item is calibrated): leave model out, or give provisional parameters",
                f("model")
            )),
            None => self.correct_answer(f),
        }
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
    let standing = scope::standing(app, caller, OrgOf::Organization(org), None, None).await?;
    // No such organization is 404 for everyone (a platform admin passes every role check).
    if !standing.found {
        return Err(Error::NoOrganization(org));
    }
    standing.org_staff().map_err(|denied| match denied {
        Denied::Hidden => Error::NoOrganization(org),
        Denied::Forbidden => {
            Error::Forbidden("only teachers and org admins of the organization may do this".into())
        }
    })?;
    Ok(Some(org))
}

/// Whether `caller` may read (or, `change`, add to) pool `id`: an
/// organization's pool is its teachers' and org admins'; a shared pool is read
/// by staff of any organization and changed by platform admins only.
pub(crate) async fn may_use(app: &App, caller: Uuid, id: Uuid, change: bool) -> Result<(), Error> {
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

/// An item as staff see it: parameters, never its key. A pretest item says
/// so, and has no exposure parameter (it is never selected), nor parameters
/// until it has provisional ones; a right/wrong one without them names no model.
#[derive(Serialize)]
struct ItemView {
    id: String,
    content: String,
    options: Vec<String>,
    concepts: Vec<String>,
    /// `1pl`…`4pl` (the smallest that fits), `grm`, `gpcm` or `pcm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<Location>,
    /// Right/wrong items only.
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exposure: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pretest: bool,
}

impl From<Item> for ItemView {
    fn from(it: Item) -> Self {
        let (a, b, c, d) = match it.params.known() {
            Some(engine::Item::Dichotomous(p)) => {
                (Some(p.a), Some(Location::One(p.b)), Some(p.c), Some(p.d))
            }
            Some(engine::Item::Polytomous(p)) => (
                Some(p.a()),
                Some(Location::Many(p.thresholds().to_vec())),
                None,
                None,
            ),
            None => (None, None, None, None),
        };
        let (exposure, pretest) = match it.role {
            ItemRole::Operational { exposure } => (Some(exposure), false),
            ItemRole::Pretest => (None, true),
        };
        ItemView {
            model: it.params.model_name(),
            id: it.id,
            content: it.content,
            options: it.options,
            concepts: it.concepts,
            a,
            b,
            c,
            d,
            exposure,
            pretest,
        }
    }
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
    // "detail3": items gained `pretest` (and pretest items may have no
    // parameters); a view an older release cached under another name is not served.
    cached_json(app, &Namespace::Pool(id), "detail3", || {
        load_detail(app, id)
    })
    .await?
    .ok_or(Error::NotFound(id))
}

/// A pool with its current items, from PostgreSQL.
async fn load_detail(app: &App, id: Uuid) -> Result<Option<PoolDetail>, StoreError> {
    let Some((pool, items)) = stored::with_items(app.db(), id).await? else {
        return Ok(None);
    };
    Ok(Some(PoolDetail {
        pool: pool.into(),
        items: items.into_iter().map(ItemView::from).collect(),
    }))
}

/// One version of a pool as the engine needs it (process → Redis → PostgreSQL).
pub async fn bank(app: &App, pool_id: Uuid, version: i32) -> Result<Arc<PoolBank>, StoreError> {
    app.catalog()
        .bank(app.redis(), app.db(), pool_id, version)
        .await
}

/// The keys of one pool version, as each option's score (process →
/// PostgreSQL; never Redis).
pub async fn answer_key(
    app: &App,
    pool_id: Uuid,
    version: i32,
) -> Result<Arc<AnswerKey>, StoreError> {
    app.catalog().answer_key(app.db(), pool_id, version).await
}

/// A question's text (process → Redis → PostgreSQL).
pub async fn question(app: &App, id: &str) -> Result<Arc<QuestionText>, StoreError> {
    app.catalog().question(app.redis(), app.db(), id).await
}
