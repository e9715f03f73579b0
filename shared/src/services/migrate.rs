//! Schema migrations: applied on deploy (the `migrate` function, a
//! CloudFormation custom resource: see `api::migrate`) and by the local server.

use std::time::Duration;

use crate::config::DatabaseConfig;
use crate::store::{StoreError, db};

/// Applies the migrations not yet applied to `database`, over a connection of
/// its own; returns the names applied.
pub async fn apply(database: &DatabaseConfig) -> Result<Vec<String>, StoreError> {
    let pool = db::pool_for(database, 1, Duration::from_secs(10), None)?;
    let applied = db::migrate(&pool).await?;
    tracing::info!(?applied, "migrations applied");
    Ok(applied)
}
