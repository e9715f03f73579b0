//! All I/O: Redis keys and scripts, PostgreSQL queries. Nothing above this
//! module talks to a server directly.

pub mod assessments;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod calibrations;
pub mod catalog;
pub mod conn;
pub mod connections;
pub mod courses;
pub mod data_rights;
pub mod db;
pub mod exports;
mod framing;
pub mod idempotency;
pub mod item_stats;
pub mod keys;
pub mod orgs;
pub mod outbox;
pub mod pools;
pub mod redis;
pub mod redis_stats;
pub mod semantic;
pub mod students;
pub mod sweep;
pub mod teaching;
pub mod tenancy;
pub mod tests;
pub mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use keys::Keys;

/// Counts of I/O done by this process: what the hot-path budget is checked against.
#[derive(Debug, Default)]
pub struct IoStats {
    redis_round_trips: AtomicU64,
    pg_checkouts: AtomicU64,
}

/// A reading of [`IoStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoCounts {
    /// Requests sent to Redis and answered (a pipeline or a script is one).
    pub redis_round_trips: u64,
    /// Connections taken from the PostgreSQL pool; every store function does its
    /// work in one checkout and at most one transaction.
    pub pg_checkouts: u64,
}

impl IoStats {
    /// The counts so far.
    pub fn read(&self) -> IoCounts {
        IoCounts {
            redis_round_trips: self.redis_round_trips.load(Ordering::Relaxed),
            pg_checkouts: self.pg_checkouts.load(Ordering::Relaxed),
        }
    }

    fn redis_round_trip(&self) {
        self.redis_round_trips.fetch_add(1, Ordering::Relaxed);
    }

    fn pg_checkout(&self) {
        self.pg_checkouts.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::ops::Sub for IoCounts {
    type Output = IoCounts;

    fn sub(self, earlier: IoCounts) -> IoCounts {
        IoCounts {
            redis_round_trips: self.redis_round_trips - earlier.redis_round_trips,
            pg_checkouts: self.pg_checkouts - earlier.pg_checkouts,
        }
    }
}

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
    /// Redis failed moments ago; requests skip it until a retry is due.
    #[error("redis: unavailable (failed recently; retrying shortly)")]
    RedisUnavailable,
    /// Stored data that does not decode (a bug or a foreign writer).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A failure shared by every caller waiting on the same cache fill.
    #[error(transparent)]
    Shared(Arc<StoreError>),
}

impl StoreError {
    /// The SQLSTATE when PostgreSQL rejected a statement (e.g. `23505` unique violation).
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self.root() {
            StoreError::Postgres(e) => e.code(),
            _ => None,
        }
    }

    /// The error itself, looking through [`StoreError::Shared`].
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::Shared(inner) => inner.root(),
            other => other,
        }
    }

    /// Whether Redis (not PostgreSQL, not the data) is what failed: the callers
    /// that can do without Redis fall back to PostgreSQL on these.
    pub fn is_redis(&self) -> bool {
        matches!(
            self.root(),
            StoreError::Redis(_) | StoreError::RedisUnavailable
        )
    }
}
