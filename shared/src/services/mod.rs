//! The use cases: where input is validated, access to the resource decided,
//! the engine or the orchestrator called, and storage read and written. One
//! module per use case; the handlers in `api` call one function here each.

pub mod assessments;
pub mod auth;
pub mod cache_admin;
pub mod calibrations;
pub mod cat;
pub mod courses;
pub mod data_rights;
pub mod demo;
pub mod events;
pub mod exports;
pub mod item_stats;
pub mod migrate;
pub mod orgs;
pub mod pools;
pub mod scope;
pub mod students;
pub mod sweep;
pub mod teach;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::app::App;
use crate::cache::Namespace;
use crate::store::StoreError;

/// A JSON body as the cache holds it, served as stored: a hit is passed
/// through without decoding or encoding again.
#[derive(Debug, Clone)]
pub struct CachedJson(Arc<Option<Box<RawValue>>>);

impl CachedJson {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        (*self.0).as_deref().map_or("null", RawValue::get)
    }
}

/// A read through the cache: `load` reads the source, whose `None` (nothing
/// there) is remembered for the negative TTL and answered as `None`.
pub(crate) async fn cached_json<V, Fut>(
    app: &App,
    ns: &Namespace,
    key: &str,
    load: impl FnOnce() -> Fut,
) -> Result<Option<CachedJson>, StoreError>
where
    V: serde::Serialize,
    Fut: Future<Output = Result<Option<V>, StoreError>>,
{
    let body = app
        .cache()
        .get_or_load_opt(ns, key, || async {
            let found = load().await?;
            Ok::<_, StoreError>(
                found.map(|v| serde_json::value::to_raw_value(&v).expect("views serialise")),
            )
        })
        .await
        .map_err(StoreError::Shared)?;
    Ok(body.is_some().then_some(CachedJson(body)))
}
