//! A redis-server of one's own on a free loopback port, so that killing it or
//! flushing it leaves every other Redis alone. It keeps nothing on disk.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server has to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(4);

/// A redis-server child process on a free loopback port (the integration
/// tests' outages and the chaos run use it).
pub struct OwnRedis {
    port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port. Panics when `redis-server` cannot be run
    /// (see [`OwnRedis::try_start`]).
    pub fn start() -> Self {
        Self::try_start(None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts one that wants `AUTH password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Self {
        Self::try_start(Some(password.to_owned())).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts one on a free port; why not, in one line.
    pub fn try_start(password: Option<String>) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for redis-server: {e}"))?
            .port();
        let mut own = Self {
            port,
            password,
            child: None,
        };
        own.spawn()?;
        own.wait_ready_blocking()?;
        Ok(own)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its password, when it wants one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether it runs (not [`OwnRedis::kill`]ed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its URL (without the password).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its URL with the password, when it has one.
    pub fn url_with_password(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }

    /// Kills the server (SIGKILL): everything in it is lost, connections
    /// drop, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port (after [`OwnRedis::kill`]),
    /// and waits until it accepts connections.
    pub fn revive(&mut self) {
        self.spawn()
            .and_then(|()| self.wait_ready_blocking())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`OwnRedis::revive`] without blocking the thread while waiting.
    pub async fn revive_async(&mut self) -> Result<(), String> {
        self.spawn()?;
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(self.not_ready())
    }

    /// Starts the process (killing any before).
    fn spawn(&mut self) -> Result<(), String> {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str()]),
            )
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run redis-server ({e}): is it on PATH? (infra/local.sh installs it)"
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready_blocking(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(self.not_ready())
    }

    fn not_ready(&self) -> String {
        format!(
            "redis-server did not start on port {} within {} s",
            self.port,
            READY_WITHIN.as_secs()
        )
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
