//! Calibration runs of a pool's pretest items from the responses recorded in
//! live tests, and the promotion of calibrated items into a new pool version.
//!
//! A run is fixed-item calibration (marginal maximum likelihood, EM): the
//! operational items of the pool's version at the time of the request keep
//! their parameters and anchor the scale; each pretest item of that version
//! with at least `min_responses` responses is estimated. It reads every
//! response of the tests taken on that version and the earlier ones (an
//! operational item's parameters never change from one version to the next,
//! so all of them are on the same scale), a person being one test. It runs
//! apart from the request: in the `calibrate` Lambda function, invoked
//! asynchronously, when `CALIBRATE_FUNCTION` is set, else as a background
//! task of this process. Whoever runs it claims it first, so it runs once.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::cache::Namespace;
use crate::services::pools::{self, PoolView};
use crate::store::StoreError;
use crate::store::calibrations::{self as stored, NotPromoted, NotQueued, PretestItem};
use crate::store::pools::poly_model;
use lectern_engine::calibrate::{self, ItemSpec, Model, Outcome, Responses};
use lectern_engine::{self as engine, ItemParams, PolyParams};

/// `min_responses` unless asked.
pub const DEFAULT_MIN_RESPONSES: u32 = 200;
/// Largest `min_responses`.
pub const MAX_MIN_RESPONSES: u32 = 1_000_000;
/// Most items one promotion takes.
const MAX_PROMOTED: usize = 1_000;
/// A run still `running` after this long has lost its worker (a Lambda
/// function runs at most 15 minutes).
const STALE_RUN: Duration = Duration::from_secs(20 * 60);

/// What can go wrong, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input out of range or malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such pool or calibration (or none the caller may see).
    #[error("{0}")]
    NotFound(String),
    /// The caller may see it but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Not now: a run is queued or running, or the run has not succeeded.
    #[error("{0}")]
    Conflict(String),
    /// The run could not be handed to its worker.
    #[error("{0}")]
    Unavailable(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// A pool decision, said of `what` when the pool is hidden.
    fn from_pool(e: pools::Error, what: impl FnOnce() -> String) -> Self {
        match e {
            pools::Error::NotFound(_)
            | pools::Error::NoOrganization(_)
            | pools::Error::NoVersion { .. } => Error::NotFound(what()),
            pools::Error::Forbidden(m) => Error::Forbidden(m),
            pools::Error::Invalid(m) | pools::Error::IdTaken(m) => Error::Invalid(m),
            pools::Error::Store(s) => Error::Store(s),
        }
    }
}

/// `POST /v1/pools/{id}/calibrations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCalibration {
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    min_responses: Option<u32>,
}

/// `POST /v1/calibrations/{id}/promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    items: Vec<String>,
}

/// A run as its readers see it.
#[derive(Debug, Serialize)]
pub struct CalibrationView {
    calibration_id: Uuid,
    pool_id: Uuid,
    pool_version: i32,
    status: String,
    min_responses: i32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    started_at: Option<OffsetDateTime>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    finished_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<stored::Calibration> for CalibrationView {
    fn from(c: stored::Calibration) -> Self {
        CalibrationView {
            calibration_id: c.id,
            pool_id: c.pool_id,
            pool_version: c.pool_version,
            status: c.status,
            min_responses: c.min_responses,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            summary: c.summary,
            results: c.results,
            error: c.error,
        }
    }
}

impl CalibrationView {
    /// Its id.
    pub fn id(&self) -> Uuid {
        self.calibration_id
    }
}

/// `b` of a result: one difficulty, or a polytomous item's thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Location {
    One(f64),
    Many(Vec<f64>),
}

/// One pretest item's outcome, as stored in `results` and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum ItemResult {
    Estimated {
        id: String,
        model: String,
        a: f64,
        b: Location,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        c: Option<f64>,
        /// `{a?, b, c?}`: a number each, `b` a list for a polytomous item
        /// (null where the information does not identify it).
        se: serde_json::Value,
        responses: u64,
    },
    Skipped {
        id: String,
        reason: String,
        responses: u64,
    },
}

impl ItemResult {
    fn id(&self) -> &str {
        match self {
            ItemResult::Estimated { id, .. } | ItemResult::Skipped { id, .. } => id,
        }
    }

    /// The parameters to serve an estimated item with.
    fn params(&self) -> Option<Result<engine::Item, String>> {
        let ItemResult::Estimated { model, a, b, c, .. } = self else {
            return None;
        };
        Some(
            match (poly_model(model), b) {
                (None, Location::One(b)) => {
                    ItemParams::new(*a, *b, c.unwrap_or(0.0), 1.0).map(Into::into)
                }
                (Some(m), Location::Many(t)) => PolyParams::new(m, *a, t.clone()).map(Into::into),
                _ => return Some(Err(format!("model {model} with the wrong kind of b"))),
            }
            .map_err(|e| e.to_string()),
        )
    }
}

/// Queues a run of pool `pool`'s pretest items and hands it to its worker.
pub async fn start(
    app: &App,
    caller: Uuid,
    pool: Uuid,
    body: NewCalibration,
) -> Result<CalibrationView, Error> {
    let min = body.min_responses.unwrap_or(DEFAULT_MIN_RESPONSES);
    if !(1..=MAX_MIN_RESPONSES).contains(&min) {
        return Err(Error::Invalid(format!(
            "min_responses must be from 1 to {MAX_MIN_RESPONSES} (got {min})"
        )));
    }
    may_calibrate(app, caller, pool, || format!("no pool with id {pool}")).await?;
    stored::fail_stale(app.db(), pool, STALE_RUN).await?;
    let queued = stored::create(app.db(), Uuid::new_v4(), pool, caller, min as i32)
        .await?
        .map_err(|why| match why {
            NotQueued::NoPool => Error::NotFound(format!("no pool with id {pool}")),
            NotQueued::Busy => Error::Conflict(format!(
                "a calibration of pool {pool} is queued or running already: wait for it to finish"
            )),
        })?;
    let id = queued.id;
    dispatch(app, id).await?;
    Ok(queued.into())
}

/// Hands run `id` to the `calibrate` function, or to a background task.
async fn dispatch(app: &App, id: Uuid) -> Result<(), Error> {
    match &app.config().calibrate_function {
        Some(target) => {
            let payload = serde_json::json!({ "calibration_id": id }).to_string();
            if let Err(e) = target.invoke_async(&payload).await {
                tracing::error!(calibration = %id, error = %e, "calibration not handed over");
                // Claimed here so that no late worker starts it: failed, and the pool free again.
                if stored::claim(app.db(), id).await?.is_some() {
                    stored::finish(app.db(), id, Err(format!("could not be started: {e}"))).await?;
                }
                return Err(Error::Unavailable(format!(
                    "the calibration could not be started ({e}); try again"
                )));
            }
        }
        None => {
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = run(&app, id).await {
                    tracing::error!(calibration = %id, error = %e, "calibration run");
                }
            });
        }
    }
    Ok(())
}

/// A run, for the staff of its pool.
pub async fn show(app: &App, caller: Uuid, id: Uuid) -> Result<CalibrationView, Error> {
    let hidden = || format!("no calibration with id {id}");
    let found = stored::get(app.db(), id)
        .await?
        .ok_or_else(|| Error::NotFound(hidden()))?;
    may_calibrate(app, caller, found.pool_id, hidden).await?;
    Ok(found.into())
}

/// Promotes estimated items of a succeeded run: a new pool version in which
/// they are operational with their calibrated parameters.
pub async fn promote(
    app: &App,
    caller: Uuid,
    id: Uuid,
    body: Promotion,
) -> Result<PoolView, Error> {
    let hidden = || format!("no calibration with id {id}");
    let found = stored::get(app.db(), id)
        .await?
        .ok_or_else(|| Error::NotFound(hidden()))?;
    may_calibrate(app, caller, found.pool_id, hidden).await?;
    if body.items.is_empty() || body.items.len() > MAX_PROMOTED {
        return Err(Error::Invalid(format!(
            "items must have 1 to {MAX_PROMOTED} entries (got {})",
            body.items.len()
        )));
    }
    if found.status != "succeeded" {
        return Err(Error::Conflict(format!(
            "calibration {id} is {}: only a succeeded calibration's items are promoted",
            found.status
        )));
    }
    let results: Vec<ItemResult> = serde_json::from_value(found.results.unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(format!("calibration {id} results: {e}")))?;
    let by_id: HashMap<&str, &ItemResult> = results.iter().map(|r| (r.id(), r)).collect();
    let mut chosen: Vec<(String, engine::Item)> = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.iter().enumerate() {
        let field = format!("items[{i}]");
        if body.items[..i].contains(item) {
            return Err(Error::Invalid(format!("{field}: {item:?} is named twice")));
        }
        let Some(result) = by_id.get(item.as_str()) else {
            return Err(Error::Invalid(format!(
                "{field}: {item:?} is not a pretest item of calibration {id}"
            )));
        };
        match result.params() {
            None => {
                let ItemResult::Skipped { reason, .. } = result else {
                    unreachable!("an estimate has parameters")
                };
                return Err(Error::Invalid(format!(
                    "{field}: {item:?} was not estimated ({reason})"
                )));
            }
            Some(Err(e)) => {
                return Err(Error::Invalid(format!(
                    "{field}: {item:?} has unusable parameters ({e})"
                )));
            }
            Some(Ok(params)) => chosen.push((item.clone(), params)),
        }
    }
    let ids: Vec<String> = chosen.iter().map(|(i, _)| i.clone()).collect();
    if let Some((item, version)) = stored::promoted(app.db(), found.pool_id, &ids)
        .await?
        .into_iter()
        .next()
    {
        let at = body.items.iter().position(|i| *i == item).unwrap_or(0);
        return Err(Error::Invalid(format!(
            "items[{at}]: {item:?} was promoted already (in version {version})"
        )));
    }
    let pool = stored::promote(app.db(), found.pool_id, &chosen)
        .await?
        .map_err(|why| match why {
            NotPromoted::NoPool => Error::NotFound(hidden()),
            NotPromoted::Item(item) => {
                let at = body.items.iter().position(|i| *i == item).unwrap_or(0);
                Error::Invalid(format!("items[{at}]: {item:?} was promoted already"))
            }
        })?;
    app.cache()
        .invalidate(&[Namespace::Pool(found.pool_id), Namespace::Pools])
        .await;
    Ok(pool.into())
}

/// The pool's staff calibrate and read its runs; a shared pool's responses
/// come from many organizations, so only platform admins do.
async fn may_calibrate(
    app: &App,
    caller: Uuid,
    pool: Uuid,
    hidden: impl FnOnce() -> String,
) -> Result<(), Error> {
    pools::may_use(app, caller, pool, true)
        .await
        .map_err(|e| Error::from_pool(e, hidden))
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The run.
    pub calibration_id: Uuid,
    /// Its status afterwards (`succeeded`, `failed`), or `not_queued` when
    /// another worker had it (or there is no such run).
    pub status: &'static str,
}

/// Runs calibration `id` if it is still queued (claiming it, so it runs
/// once), and records its results or its error.
pub async fn run(app: &App, id: Uuid) -> Result<RunReport, StoreError> {
    let Some(claimed) = stored::claim(app.db(), id).await? else {
        return Ok(RunReport {
            calibration_id: id,
            status: "not_queued",
        });
    };
    let outcome = match compute(app, &claimed).await {
        Ok(done) => Ok(done),
        Err(RunError::Data(message)) => Err(message),
        Err(RunError::Store(e)) => Err(format!("a backing service failed: {e}")),
    };
    let status = if outcome.is_ok() {
        "succeeded"
    } else {
        "failed"
    };
    if let Err(e) = &outcome {
        tracing::warn!(calibration = %id, error = %e, "calibration failed");
    }
    stored::finish(app.db(), id, outcome).await?;
    crate::services::events::after_write(app).await;
    Ok(RunReport {
        calibration_id: id,
        status,
    })
}

enum RunError {
    Data(String),
    Store(StoreError),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e)
    }
}

/// The model a pretest item is estimated under: a right/wrong one the 2PL,
/// or the 3PL when its provisional parameters guess (c > 0); a polytomous
/// one its own model, with as many categories as its options' scores give.
fn spec_of(item: &PretestItem) -> Result<ItemSpec, String> {
    let model = match item.model.as_deref() {
        None if item.c.is_some_and(|c| c > 0.0) => Model::ThreePl,
        None => Model::TwoPl,
        Some(name) => Model::Poly(
            poly_model(name).ok_or_else(|| format!("item {}: unknown model {name:?}", item.id))?,
        ),
    };
    let categories = matches!(model, Model::Poly(_)).then_some(usize::from(item.top) + 1);
    Ok(ItemSpec::Free { model, categories })
}

/// Calibrates: (summary, results) as stored.
async fn compute(
    app: &App,
    c: &stored::Calibration,
) -> Result<(serde_json::Value, serde_json::Value), RunError> {
    let bank = pools::bank(app, c.pool_id, c.pool_version).await?;
    let pretest = stored::pretest_items(app.db(), c.pool_id, c.pool_version).await?;
    let rows = stored::responses(app.db(), c.pool_id, c.pool_version).await?;
    let min = c.min_responses as u64;
    // Responses per pretest item, to decide which are estimated.
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (_, q, _) in &rows {
        *counts.entry(q.as_str()).or_default() += 1;
    }
    // Item indices: the operational items (fixed), then the estimated pretest items.
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut specs: Vec<ItemSpec> = Vec::new();
    for (i, id) in bank.ids.iter().enumerate() {
        index.insert(id, specs.len() as u32);
        specs.push(ItemSpec::Fixed(bank.bank.item(i)));
    }
    let mut free: Vec<(usize, &PretestItem)> = Vec::new();
    for item in &pretest {
        if counts.get(item.id.as_str()).copied().unwrap_or(0) >= min {
            index.insert(&item.id, specs.len() as u32);
            free.push((specs.len(), item));
            specs.push(spec_of(item).map_err(RunError::Data)?);
        }
    }
    let mut persons: HashMap<Uuid, u32> = HashMap::new();
    let mut triples = Vec::with_capacity(rows.len());
    for (test, q, score) in &rows {
        let Some(&i) = index.get(q.as_str()) else {
            continue;
        };
        let next = persons.len() as u32;
        let p = *persons.entry(*test).or_insert(next);
        triples.push((p, i, *score));
    }
    let (calibration, outcomes) = if free.is_empty() {
        (None, Vec::new())
    } else {
        let data = Responses::new(persons.len(), specs.len(), triples)
            .map_err(|e| RunError::Data(format!("the responses: {e}")))?;
        // One thread on Lambda (1024 MB is about half a vCPU); all cores locally.
        let threads = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            1
        } else {
            0
        };
        let config = calibrate::Config {
            threads,
            ..calibrate::Config::default()
        };
        let done = tokio::task::spawn_blocking(move || {
            calibrate::calibrate(&data, &specs, &config, &mut |_, _| {})
        })
        .await
        .map_err(|e| RunError::Data(format!("the calibration stopped: {e}")))?
        .map_err(|e| RunError::Data(format!("the responses: {e}")))?;
        let outcomes = free
            .iter()
            .map(|&(i, item)| (item.id.clone(), done.items[i].clone()))
            .collect();
        (Some(done), outcomes)
    };
    let mut estimated: HashMap<String, Outcome> = outcomes.into_iter().collect();
    let results: Vec<ItemResult> = pretest
        .iter()
        .map(|item| {
            let responses = counts.get(item.id.as_str()).copied().unwrap_or(0);
            match estimated.remove(&item.id) {
                None => ItemResult::Skipped {
                    id: item.id.clone(),
                    reason: format!("fewer than {min} responses"),
                    responses,
                },
                Some(Outcome::Estimated {
                    model,
                    item: params,
                    se,
                    responses,
                }) => estimate(&item.id, model, &params, se, responses as u64),
                Some(Outcome::Skipped(why)) => ItemResult::Skipped {
                    id: item.id.clone(),
                    reason: why.to_string(),
                    responses,
                },
                Some(Outcome::Fixed { responses }) => ItemResult::Skipped {
                    id: item.id.clone(),
                    reason: "kept fixed".into(),
                    responses: responses as u64,
                },
            }
        })
        .collect();
    let summary = match &calibration {
        Some(done) => serde_json::json!({
            "iterations": done.iterations,
            "converged": done.converged,
            "log_likelihood": done.log_likelihood,
            "persons": done.persons,
            "responses": done.responses,
            "latent_mean": done.latent_mean,
            "latent_sd": done.latent_sd,
            "anchor_items": bank.ids.len(),
        }),
        None => serde_json::json!({
            "iterations": 0,
            "converged": false,
            "log_likelihood": null,
            "persons": 0,
            "responses": 0,
            "latent_mean": null,
            "latent_sd": null,
            "anchor_items": bank.ids.len(),
        }),
    };
    let results = serde_json::to_value(results).expect("results serialise");
    Ok((summary, results))
}

/// An estimate as shown: a right/wrong item's `b` a number (and `c` under
/// the 3PL), a polytomous item's its thresholds.
fn estimate(
    id: &str,
    model: Model,
    params: &engine::Item,
    se: calibrate::StdErrors,
    responses: u64,
) -> ItemResult {
    let values: Vec<f64> = match params {
        engine::Item::Dichotomous(p) => vec![p.a, p.b, p.c],
        engine::Item::Polytomous(p) => [&[p.a()][..], p.thresholds()].concat(),
    };
    if values.iter().any(|x| !x.is_finite()) {
        return ItemResult::Skipped {
            id: id.to_owned(),
            reason: "the estimate is not finite".into(),
            responses,
        };
    }
    let (a, b, c) = match params {
        engine::Item::Dichotomous(p) => (
            p.a,
            Location::One(p.b),
            (model == Model::ThreePl).then_some(p.c),
        ),
        engine::Item::Polytomous(p) => (p.a(), Location::Many(p.thresholds().to_vec()), None),
    };
    let finite = |x: f64| x.is_finite().then_some(x);
    let mut errors = serde_json::Map::new();
    if let Some(a) = se.a {
        errors.insert("a".into(), finite(a).into());
    }
    let se_b: Vec<Option<f64>> = se.b.iter().copied().map(finite).collect();
    errors.insert(
        "b".into(),
        match params {
            engine::Item::Dichotomous(_) => se_b.first().copied().flatten().into(),
            engine::Item::Polytomous(_) => se_b.into(),
        },
    );
    if let Some(c) = se.c.filter(|_| model == Model::ThreePl) {
        errors.insert("c".into(), finite(c).into());
    }
    ItemResult::Estimated {
        id: id.to_owned(),
        model: model.name().to_owned(),
        a,
        b,
        c,
        se: errors.into(),
        responses,
    }
}
