//! `pools`: create, list, read and extend item pools (see `services::pools`),
//! export their responses, read item statistics, and calibrate their pretest
//! items (see `services::calibrations`; the runs themselves are the
//! `calibrate` function's).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, Json, Page, Query, QueryInt, wants_csv};
use crate::app::App;
use crate::services::CachedJson;
use crate::services::auth::Caller;
use crate::services::calibrations::{self, CalibrationView, NewCalibration, Promotion};
use crate::services::exports::{self, Format};
use crate::services::item_stats;
use crate::services::pools::{self, ItemInput, NewPool, PoolView};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish_creating(routes(), app, &[super::idempotency::POOLS])
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/pools", post(create).get(list))
        .route("/v1/pools/{id}", get(show))
        .route("/v1/pools/{id}/items", post(add_items))
        .route("/v1/pools/{id}/responses", get(export_responses))
        .route("/v1/pools/{id}/stats", get(item_stats))
        .route("/v1/pools/{id}/calibrations", post(start_calibration))
        .route("/v1/calibrations/{id}", get(show_calibration))
        .route("/v1/calibrations/{id}/promote", post(promote))
}

async fn start_calibration(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<NewCalibration>,
) -> Result<impl IntoResponse, ApiError> {
    let run = calibrations::start(&app, caller.user_id, id, body).await?;
    let location = format!("/v1/calibrations/{}", run.id());
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(run),
    ))
}

async fn show_calibration(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<axum::Json<CalibrationView>, ApiError> {
    Ok(axum::Json(
        calibrations::show(&app, caller.user_id, id).await?,
    ))
}

async fn promote(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<Promotion>,
) -> Result<axum::Json<PoolView>, ApiError> {
    Ok(axum::Json(
        calibrations::promote(&app, caller.user_id, id, body).await?,
    ))
}

async fn create(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<NewPool>,
) -> Result<impl IntoResponse, ApiError> {
    let pool = pools::create(&app, caller.user_id, body).await?;
    let location = format!("/v1/pools/{}", pool.pool_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(pool),
    ))
}

/// Pools per page: 50 unless asked, at most 200.
type PoolPage = Page<50, 200>;

async fn list(
    State(app): State<App>,
    caller: Caller,
    page: PoolPage,
) -> Result<CachedJson, ApiError> {
    Ok(pools::list(&app, caller.user_id, page.limit, page.offset).await?)
}

async fn show(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<CachedJson, ApiError> {
    Ok(pools::detail(&app, caller.user_id, id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItemsBody {
    items: Vec<ItemInput>,
}

async fn add_items(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<AddItemsBody>,
) -> Result<axum::Json<PoolView>, ApiError> {
    Ok(axum::Json(
        pools::add_items(&app, caller.user_id, id, body.items).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    cursor: Option<String>,
    limit: Option<QueryInt<i64>>,
}

/// One page of the pool's responses: JSON lines, or CSV when the client
/// accepts `text/csv` (and not JSON lines first); the next page's URL in a
/// `Link` header (`rel="next"`), none on the last page.
async fn export_responses(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    Query(query): Query<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    let format = if wants_csv(&headers, "application/x-ndjson") {
        Format::Csv
    } else {
        Format::JsonLines
    };
    let limit = query
        .limit
        .map(|l| l.get("limit"))
        .transpose()?
        .unwrap_or(exports::DEFAULT_LIMIT);
    let page = exports::responses(
        &app,
        caller.user_id,
        id,
        query.cursor.as_deref(),
        limit,
        format,
    )
    .await?;
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::JsonLines => "application/x-ndjson",
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], page.body).into_response();
    if let Some(next) = page.next {
        let link = format!("</v1/pools/{id}/responses?cursor={next}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    version: Option<QueryInt<i32>>,
    limit: Option<QueryInt<i64>>,
    offset: Option<QueryInt<i64>>,
}

/// Items per statistics page: 100 unless asked, at most 500.
const STATS_LIMIT: (i64, i64) = (100, 500);

async fn item_stats(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Query(query): Query<StatsQuery>,
) -> Result<CachedJson, ApiError> {
    let version = query.version.map(|v| v.get("version")).transpose()?;
    let limit = query
        .limit
        .map(|l| l.get("limit"))
        .transpose()?
        .unwrap_or(STATS_LIMIT.0);
    let offset = query
        .offset
        .map(|o| o.get("offset"))
        .transpose()?
        .unwrap_or(0);
    if !(1..=STATS_LIMIT.1).contains(&limit) || offset < 0 {
        return Err(ApiError::invalid(format!(
            "limit must be from 1 to {} and offset at least 0",
            STATS_LIMIT.1
        )));
    }
    Ok(item_stats::page(&app, caller.user_id, id, version, limit, offset).await?)
}
