//! All I/O: Redis keys and scripts, PostgreSQL queries. Nothing above this
//! module talks to a server directly.

pub mod db;
pub mod keys;
pub mod pools;
pub mod redis;
pub mod tests;
pub mod users;

pub use keys::Keys;

/// A failure of one of the backing services (not of the caller's input).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// PostgreSQL could not be reached or refused the statement.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had in time.
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A schema migration failed.
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
    /// The connection pool could not be built from the configuration.
    #[error("postgres pool setup: {0}")]
    PoolSetup(#[from] deadpool_postgres::BuildError),
    /// Stored data that does not decode (a bug or a foreign writer).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The SQLSTATE when PostgreSQL rejected a statement (e.g. `23505` unique violation).
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            StoreError::Postgres(e) => e.code(),
            _ => None,
        }
    }
}
