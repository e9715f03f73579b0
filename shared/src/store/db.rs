//! PostgreSQL connection pool and schema migrations.

use std::time::{Duration, Instant};

use std::sync::{Arc, OnceLock};

/// The PostgreSQL connection pool every store function takes.
pub use deadpool_postgres::Pool;
use deadpool_postgres::{
    ConfigConnectImpl, Connect, Hook, Manager, ManagerConfig, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{IoStats, StoreError};
use crate::aws::secrets::Extension;
use crate::config::DatabaseConfig;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Builds the pool; no connection is made until one is needed.
pub fn pool(url: &str, max_size: usize, timeout: Duration) -> Result<Pool, StoreError> {
    build(&DatabaseConfig::url(url), max_size, timeout, None)
}

/// Like [`pool`], for a [`DatabaseConfig`] (credentials may come from Secrets
/// Manager), counting every checkout in `stats` when given.
pub fn pool_for(
    database: &DatabaseConfig,
    max_size: usize,
    timeout: Duration,
    stats: Option<Arc<IoStats>>,
) -> Result<Pool, StoreError> {
    build(database, max_size, timeout, stats)
}

/// Makes the pool's connections: TLS (rustls, the certificate verified) when
/// the URL says `sslmode=require`, plain otherwise (`prefer` would take a
/// server's TLS offer but accept any certificate, so it means plain here);
/// the user and password from Secrets Manager when a secret is configured,
/// read at the first connection and kept.
struct Connector {
    /// Made at the first TLS connection, then shared.
    tls: Option<OnceLock<MakeRustlsConnect>>,
    secret: Option<(String, Extension)>,
    credentials: OnceCell<(String, String)>,
}

impl Connector {
    async fn credentials(&self) -> Result<Option<&(String, String)>, String> {
        let Some((arn, extension)) = &self.secret else {
            return Ok(None);
        };
        self.credentials
            .get_or_try_init(|| async {
                let secret = extension.secret_string(arn).await?;
                parse_credentials(&secret)
            })
            .await
            .map(Some)
    }
}

impl Connect for Connector {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let mut pg_config = pg_config.clone();
        Box::pin(async move {
            match self.credentials().await {
                Ok(Some((user, password))) => {
                    pg_config.user(user).password(password);
                }
                Ok(None) => {}
                Err(problem) => {
                    // tokio-postgres errors cannot carry our reason: log it, then fail as unreachable.
                    tracing::error!(%problem, "DB_SECRET_ARN: the database credentials could not be read");
                    return Err(tokio_postgres::Error::__private_api_timeout());
                }
            }
            if let Some(tls) = &self.tls {
                let tls = tls
                    .get_or_init(|| MakeRustlsConnect::new((*crate::tls::client_config()).clone()))
                    .clone();
                ConfigConnectImpl { tls }.connect(&pg_config).await
            } else {
                ConfigConnectImpl { tls: NoTls }.connect(&pg_config).await
            }
        })
    }
}

/// The user name and password in an RDS-style secret (JSON with `username` and `password`).
fn parse_credentials(secret: &str) -> Result<(String, String), String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        username: Option<String>,
        password: Option<String>,
    }
    let stored: Stored = serde_json::from_str(secret)
        .map_err(|_| "the secret is not JSON with username and password".to_owned())?;
    match (stored.username, stored.password) {
        (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user, password))
        }
        _ => Err("the secret's JSON lacks a username or a password".into()),
    }
}

fn build(
    database: &DatabaseConfig,
    max_size: usize,
    timeout: Duration,
    stats: Option<Arc<IoStats>>,
) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = database.url.parse()?;
    config.connect_timeout(timeout);
    let connector = Connector {
        tls: (config.get_ssl_mode() == SslMode::Require).then(OnceLock::new),
        secret: database
            .secret_arn
            .clone()
            .map(|arn| (arn, database.secrets.clone())),
        credentials: OnceCell::new(),
    };
    let manager = Manager::from_connect(
        config,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut builder = Pool::builder(manager);
    if let Some(stats) = stats {
        // A checkout either makes a connection or recycles an idle one: count both.
        let created = stats.clone();
        builder = builder
            .post_create(Hook::sync_fn(move |_, _| {
                created.pg_checkout();
                Ok(())
            }))
            .post_recycle(Hook::sync_fn(move |_, _| {
                stats.pg_checkout();
                Ok(())
            }));
    }
    builder
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(StoreError::from)
}

/// Applies every migration not yet applied (refinery keeps the history table).
/// Returns the names of the migrations applied by this call.
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, StoreError> {
    migrate_to(pool, None).await
}

/// Applies the migrations not yet applied up to `version` (all: `None`), e.g.
/// to check how a later one carries the data of an earlier schema forward.
pub async fn migrate_to(pool: &Pool, version: Option<i32>) -> Result<Vec<String>, StoreError> {
    let mut client = pool.get().await?;
    let target = version.map_or(refinery::Target::Latest, refinery::Target::Version);
    let report = embedded::migrations::runner()
        .set_target(target)
        .run_async(&mut **client)
        .await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Round-trip time of `SELECT 1` on a pooled connection.
pub async fn ping(pool: &Pool) -> Result<Duration, StoreError> {
    let started = Instant::now();
    let client = pool.get().await?;
    client.query_one("SELECT 1", &[]).await?;
    Ok(started.elapsed())
}
