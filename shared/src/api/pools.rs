//! `pools`: create, list, read and extend item pools (see `services::pools`).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use super::ApiError;
use super::extract::{IdPath, Json, Page};
use crate::app::App;
use crate::services::CachedJson;
use crate::services::auth::Caller;
use crate::services::pools::{self, ItemInput, NewPool, PoolView};

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
