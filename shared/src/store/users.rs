//! Users (minimal until accounts arrive: id, email, role).

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;

/// The id of the user with this email, creating the user if there is none.
pub async fn ensure(db: &Pool, email: &str, role: &str) -> Result<Uuid, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "INSERT INTO users (id, email, role) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
            &[&Uuid::new_v4(), &email, &role],
        )
        .await?;
    Ok(row.get(0))
}
