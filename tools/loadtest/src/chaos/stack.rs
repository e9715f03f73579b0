//! What `lectern-loadtest --chaos` runs against: a Redis of its own, a fresh
//! database reached through a [`Proxy`], and `lectern-local` on both (a
//! separate process, as a deployed function is), on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};

use super::{OwnRedis, Proxy};
use crate::client::{Conn, Target};

/// How long `lectern-local` may take to migrate, load its demo pool and answer.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A PostgreSQL URL cut into what comes before the host, the host and port,
/// and what follows the database name.
struct PgUrl {
    /// `postgres://user[:password]@`.
    head: String,
    /// `host:port`.
    host_port: String,
    /// `?…` or empty.
    query: String,
}

impl PgUrl {
    fn parse(url: &str) -> Result<PgUrl, String> {
        let bad = || format!("{url:?} is not a postgres://user@host:port/database URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "postgres" | "postgresql") {
            return Err(bad());
        }
        let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host),
            None => (String::new(), authority),
        };
        if host_port.is_empty() || host_port.contains(',') {
            return Err(bad());
        }
        let host_port = if host_port.contains(':') && !host_port.ends_with(']') {
            host_port.to_string()
        } else {
            format!("{host_port}:5432")
        };
        let query = tail
            .find('?')
            .map_or(String::new(), |i| tail[i..].to_string());
        Ok(PgUrl {
            head: format!("{scheme}://{user}"),
            host_port,
            query,
        })
    }

    fn with(&self, host_port: &str, database: &str) -> String {
        format!("{}{host_port}/{database}{}", self.head, self.query)
    }
}

/// A running stack: own Redis, proxy, fresh database, `lectern-local`.
pub struct Stack {
    /// The server's Redis.
    pub redis: OwnRedis,
    /// The server's path to PostgreSQL.
    pub proxy: Proxy,
    /// The server's base URL.
    pub url: String,
    /// The fresh database, straight (not through the proxy): for the check.
    pub database_url: String,
    /// Where the server's output goes.
    pub log: PathBuf,
    server: Child,
    admin_url: String,
    database: String,
}

impl Stack {
    /// Creates a database `lectern_chaos_<hex>` on the server of
    /// `admin_url` (a database there it may connect to, to create one),
    /// starts a Redis and a proxy, and `server_bin` (`lectern-local`) on
    /// them; returns once it answers `GET /v1/health` with 200.
    pub async fn start(server_bin: &Path, admin_url: &str) -> Result<Stack, String> {
        let pg = PgUrl::parse(admin_url)?;
        let database = format!(
            "lectern_chaos_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = admin_client(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .map_err(|e| format!("cannot create the database {database}: {e}"))?;
        let redis = OwnRedis::try_start(None)?;
        let proxy = Proxy::try_start(&pg.host_port).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for the server: {e}"))?
            .port();
        let log = std::env::temp_dir().join(format!("{database}.log"));
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let server = Command::new(server_bin)
            .env("REDIS_URL", redis.url())
            .env("REDIS_CLUSTER", "false")
            .env("DATABASE_URL", pg.with(&proxy.addr.to_string(), &database))
            .env("LECTERN_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("REDIS_KEY_PREFIX")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e} (build it: cargo build --release -p lectern-local, or pass --server-bin)", server_bin.display()))?;
        let mut stack = Stack {
            redis,
            proxy,
            url: format!("http://127.0.0.1:{port}"),
            database_url: pg.with(&pg.host_port, &database),
            log,
            server,
            admin_url: admin_url.to_string(),
            database,
        };
        if let Err(why) = stack.wait_ready().await {
            stack.stop(false).await;
            return Err(why);
        }
        Ok(stack)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let target = Arc::new(Target::parse(&self.url).map_err(|e| e.to_string())?);
        let mut conn = Conn::new(target);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!(
                    "the server exited ({status}) before answering; see {}",
                    self.log.display()
                ));
            }
            let health = conn
                .send(Method::GET, "/v1/health", None, Duration::from_secs(2))
                .await;
            if health.is_ok_and(|r| r.status == StatusCode::OK) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "the server did not answer GET /v1/health with 200 within {} s; see {}",
            READY_WITHIN.as_secs(),
            self.log.display()
        ))
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Stops the server and Redis and, unless `keep`, drops the database.
    pub async fn stop(mut self, keep: bool) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        self.redis.kill();
        self.proxy.cut();
        if keep {
            return;
        }
        if let Ok(admin) = admin_client(&self.admin_url).await {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                ))
                .await;
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL at {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let pg = PgUrl::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(pg.host_port, "127.0.0.1:5432");
        assert_eq!(
            pg.with("127.0.0.1:4000", "x"),
            "postgres://postgres@127.0.0.1:4000/x"
        );
        let pg = PgUrl::parse("postgresql://u:p@db/postgres?sslmode=disable").unwrap();
        assert_eq!(pg.host_port, "db:5432");
        assert_eq!(
            pg.with(&pg.host_port, "y"),
            "postgresql://u:p@db:5432/y?sslmode=disable"
        );
        for bad in [
            "mysql://x/y",
            "postgres://",
            "127.0.0.1:5432",
            "postgres://a,b/c",
        ] {
            assert!(PgUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
