//! A Lambda Runtime API emulator, so that each function's real binary runs in
//! the tests the way it runs in AWS: its own process, its own environment, and
//! events handed to it over the Runtime API the `lambda_runtime` crate polls
//! (`GET /2018-06-01/runtime/invocation/next`, then `…/{id}/response` or
//! `…/{id}/error`; `/runtime/init/error` for a failed start).
//!
//! One [`Function`] is one execution environment: a Runtime API server on a
//! free loopback port and the binary started against it. Events are queued by
//! [`Function::invoke`] and handed out one at a time, as Lambda does; the
//! process is killed (and reaped) when the `Function` is dropped. Should the
//! test process die without dropping it, the binary's next poll fails to
//! connect and `lambda_runtime` ends the process, so nothing outlives the run.
//!
//! The integration tests (`lectern-tests`) and `lectern-coldstart`
//! (tools/coldstart) both use it; it knows lectern's functions by name only,
//! so it builds without the application.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Every function of `functions/` (package and binary `lectern-<name>`). A
/// test keeps this list equal to the directory, so a new function cannot be
/// left out of the emulator tests or the cold-start table.
pub const FUNCTIONS: &[&str] = &[
    "assessments",
    "auth",
    "cache-admin",
    "calibrate",
    "end",
    "events",
    "health",
    "migrate",
    "next",
    "orgs",
    "pools",
    "reports",
    "start",
    "submit",
    "sweeper",
    "teach",
    "teach-ws",
];

/// The region the emulated functions run in (`AWS_REGION`).
pub const REGION: &str = "us-east-1";
/// The access key id of the execution role's (fake) credentials.
pub const ACCESS_KEY_ID: &str = "ASIALECTERNEMULATOR";
/// The secret key of the execution role's (fake) credentials.
pub const SECRET_ACCESS_KEY: &str = "not-a-real-secret-key-lectern-emulator";
/// The session token of the execution role's (fake) credentials.
pub const SESSION_TOKEN: &str = "fake-session-token-lectern-emulator";

/// How long an invocation may run unless [`Launch::timeout`] says otherwise.
/// Longer than the template's 10 s: debug builds on a busy 2-core machine
/// are far slower than a release build on Lambda.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a waiting call looks whether the process has exited.
const POLL: Duration = Duration::from_millis(5);

/// Lambda's limit on a synchronous response payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// How an invocation ended, as the function reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST …/{id}/response`: the handler's result (JSON; a non-JSON body as a string).
    Response(Value),
    /// `POST …/{id}/error`: the error document (`errorType`, `errorMessage`).
    Error(Value),
}

/// One completed invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id the function was given (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The X-Ray trace header it was given (`Lambda-Runtime-Trace-Id`).
    pub trace_id: String,
    /// What the function answered.
    pub outcome: Outcome,
    /// From queueing the event to the function's answer.
    pub duration: Duration,
    /// Method and path of an HTTP API event (what a test holds its answer to).
    pub route: Option<(String, String)>,
}

impl Invocation {
    /// The response payload; panics when the invocation failed.
    pub fn response(&self) -> &Value {
        match &self.outcome {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("invocation {} failed: {e}", self.request_id),
        }
    }

    /// The error document; panics when the invocation succeeded.
    pub fn error(&self) -> &Value {
        match &self.outcome {
            Outcome::Error(e) => e,
            Outcome::Response(v) => panic!("invocation {} succeeded: {v}", self.request_id),
        }
    }

    /// The response as the HTTP response API Gateway makes of it (see
    /// [`http_response`]); panics when the invocation failed.
    pub fn http_response(&self) -> HttpResponse {
        http_response(self.response())
    }
}

/// An HTTP response as API Gateway returns it to the caller, the body undecoded.
pub type HttpResponse = axum::http::Response<Vec<u8>>;

/// Reads an API Gateway HTTP API (payload v2.0) response as the HTTP response
/// API Gateway makes of it: `statusCode`, `headers` and `multiValueHeaders`,
/// `cookies` as `set-cookie` headers, and the body (base64-decoded when
/// `isBase64Encoded`). Panics when `v` is not one.
pub fn http_response(v: &Value) -> HttpResponse {
    let code = v["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode in {v}"));
    let status = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or_else(|| panic!("bad statusCode in {v}"));
    let mut headers = HeaderMap::new();
    let header_value = |s: &str| HeaderValue::from_str(s).expect("a valid header value");
    for (name, value) in v["headers"].as_object().into_iter().flatten() {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = value.as_str().expect("header values are strings");
        headers.append(name, header_value(value));
    }
    for (name, values) in v["multiValueHeaders"].as_object().into_iter().flatten() {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        for value in values.as_array().into_iter().flatten() {
            let value = value.as_str().expect("header values are strings");
            // lambda_http may send a header in both maps: keep one copy.
            if !headers.get_all(&name).iter().any(|h| h == value) {
                headers.append(name.clone(), header_value(value));
            }
        }
    }
    for cookie in v["cookies"].as_array().into_iter().flatten() {
        let cookie = cookie.as_str().expect("cookies are strings");
        headers.append(header::SET_COOKIE, header_value(cookie));
    }
    let raw = v["body"].as_str().unwrap_or("");
    let body = if v["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_else(|e| panic!("isBase64Encoded but the body is not base64 ({e}): {v}"))
    } else {
        raw.as_bytes().to_vec()
    };
    let mut response = HttpResponse::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Why no answer came.
#[derive(Debug)]
pub enum Failure {
    /// Nothing within the function's timeout (the process is then killed, as Lambda does).
    Timeout,
    /// The process ended, with this status.
    Exited(ExitStatus),
    /// The runtime reported an init error (`POST /runtime/init/error`), with this body.
    InitError(Value),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timed out"),
            Failure::Exited(status) => write!(f, "the process exited ({status})"),
            Failure::InitError(body) => write!(f, "init error: {body}"),
        }
    }
}

impl std::error::Error for Failure {}

/// The profile directory the binaries are in: the one of this executable
/// (a test's is `<target>/<profile>/deps/<test>-<hash>`, a tool's
/// `<target>/<profile>/<tool>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of this executable");
    let mut dir = exe
        .parent()
        .expect("an executable lives in a directory")
        .to_path_buf();
    if dir.file_name() == Some("deps".as_ref()) {
        dir.pop();
    }
    dir
}

/// The binary of function `name` in this profile's directory, built first
/// (`cargo build --workspace --bins`, once per process) so that a test never
/// runs a stale one. Concurrent test processes wait on cargo's own lock.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| build_binaries(&dir));
    let path = dir.join(format!("lectern-{name}"));
    assert!(
        path.is_file(),
        "{} does not exist: is {name} a function (see FUNCTIONS)?",
        path.display()
    );
    path
}

fn build_binaries(profile: &Path) {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--workspace", "--bins", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Without the variables cargo sets for a test process (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, …): build scripts such as ring's ask to be re-run
    // when those change, so with them this build and the next one from a
    // shell would each rebuild ring and everything above it.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                name,
                "CARGO"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_by_cargo {
            cargo.env_remove(name);
        }
    }
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
    }
    // Into the directory this executable came from, whatever told cargo where
    // that is (CARGO_TARGET_DIR, --target-dir, the default): cargo marks a
    // target directory with CACHEDIR.TAG.
    if let Some(target) = profile.parent()
        && target.join("CACHEDIR.TAG").is_file()
    {
        cargo.arg("--target-dir").arg(target);
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO")));
    assert!(
        status.success(),
        "`cargo build --workspace --bins` failed ({status}): see its output above"
    );
}

/// How to start a function: which binary, with which variables.
#[derive(Debug, Clone)]
pub struct Launch {
    name: String,
    program: PathBuf,
    /// `None`: removed from the defaults.
    env: BTreeMap<String, Option<String>>,
    timeout: Duration,
}

impl Launch {
    /// Function `name`'s binary of this profile (built if need be, see [`binary`]).
    pub fn function(name: &str) -> Self {
        Self::binary(name, binary(name))
    }

    /// This binary, run as function `name`.
    pub fn binary(name: &str, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets one variable (over the emulator's defaults).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.insert(name.to_owned(), Some(value.into()));
        self
    }

    /// Sets these variables.
    pub fn envs(mut self, vars: &[(String, String)]) -> Self {
        for (name, value) in vars {
            self.env.insert(name.clone(), Some(value.clone()));
        }
        self
    }

    /// Leaves a variable out, defaults included (e.g. `AWS_REGION`).
    pub fn unset(mut self, name: &str) -> Self {
        self.env.insert(name.to_owned(), None);
        self
    }

    /// How long each invocation (and the start) may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the Runtime API server and the process; panics when either cannot start.
    pub async fn start(self) -> Function {
        let program = self.program.clone();
        self.try_start()
            .await
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
    }

    /// Starts the Runtime API server and the process.
    pub async fn try_start(self) -> std::io::Result<Function> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let function_name = format!("lectern-test-{}", self.name);
        let (events, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(queue),
            waiting: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            nexts: AtomicUsize::new(0),
            init_error: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
            arn: format!("arn:aws:lambda:{REGION}:123456789012:function:{function_name}"),
        });
        let router = runtime_api(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let mut command = Command::new(&self.program);
        // Lambda gives a function its own variables only: nothing of the
        // caller's shell (a DATABASE_URL there would hide a missing one here).
        command.env_clear();
        let dir = self
            .program
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let stream = Uuid::new_v4().simple().to_string();
        let defaults = [
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("2026/01/01/[$LATEST]{stream}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
            ("LAMBDA_TASK_ROOT", dir.clone()),
            ("LAMBDA_RUNTIME_DIR", dir),
            ("_HANDLER", "bootstrap".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
            // The template's LogLevel default.
            ("RUST_LOG", "info".into()),
        ];
        for (name, value) in defaults {
            if !self.env.contains_key(name) {
                command.env(name, value);
            }
        }
        for (name, value) in &self.env {
            if let Some(value) = value {
                command.env(name, value);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let spawned = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, stderr.clone());
        }
        Ok(Function {
            name: self.name,
            pid: child.id(),
            child: Mutex::new(child),
            exit: Mutex::new(None),
            shared,
            events,
            server,
            spawned,
            timeout: self.timeout,
            stdout,
            stderr,
            addr,
        })
    }
}

/// Collects a pipe's lines (lossily decoded) until the process closes it.
fn capture(pipe: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    lock(&lines).push(text.trim_end_matches(['\n', '\r']).to_owned());
                }
            }
        }
    });
}

/// A lock that a panicking test thread cannot make unusable for Drop.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One function's execution environment: the process and its Runtime API.
pub struct Function {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Queued>,
    server: tokio::task::JoinHandle<()>,
    spawned: Instant,
    timeout: Duration,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl Function {
    /// Function `name`'s binary with the emulator's defaults and these variables.
    pub async fn start(name: &str, env: &[(String, String)]) -> Function {
        Launch::function(name).envs(env).start().await
    }

    /// The function's name (`health`, `teach-ws`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the Runtime API listens (`AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `event` and waits for the answer; panics, with the process's
    /// output, when none comes.
    pub async fn invoke(&self, event: Value) -> Invocation {
        match self.try_invoke(event).await {
            Ok(invocation) => invocation,
            Err(failure) => panic!("{}: {failure}\n{}", self.name, self.output()),
        }
    }

    /// Sends `event` and waits for the answer, the process's end, an init
    /// error or the timeout, whichever comes first.
    pub async fn try_invoke(&self, event: Value) -> Result<Invocation, Failure> {
        let request_id = Uuid::new_v4().to_string();
        let (tx, mut rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(
            request_id.clone(),
            Waiting {
                tx,
                handed_out: false,
            },
        );
        let trace_id = format!(
            "Root=1-{:08x}-{};Parent={};Sampled=0",
            epoch_ms() / 1000,
            &Uuid::new_v4().simple().to_string()[..24],
            &Uuid::new_v4().simple().to_string()[..16],
        );
        let http = &event["requestContext"]["http"];
        let route = http["method"]
            .as_str()
            .zip(event["rawPath"].as_str())
            .map(|(m, p)| (m.to_owned(), p.to_owned()));
        let queued = Instant::now();
        let deadline_ms = epoch_ms() + u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        // The receiver lives in `shared`, which this Function holds: the send cannot fail.
        let _ = self.events.send(Queued {
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            event,
            deadline_ms,
        });
        let done = |outcome| Invocation {
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            outcome,
            duration: queued.elapsed(),
            route: route.clone(),
        };
        loop {
            tokio::select! {
                outcome = &mut rx => match outcome {
                    Ok(outcome) => return Ok(done(outcome)),
                    Err(_) => unreachable!("the sender is removed only here or on an answer"),
                },
                () = tokio::time::sleep(POLL) => {}
            }
            let failure = if let Some(body) = self.init_error() {
                Failure::InitError(body)
            } else if let Some(status) = self.exit_status() {
                // The answer may have come just before the exit.
                if let Ok(outcome) = rx.try_recv() {
                    return Ok(done(outcome));
                }
                Failure::Exited(status)
            } else if queued.elapsed() >= self.timeout {
                // Lambda ends an environment whose invocation timed out.
                self.kill();
                Failure::Timeout
            } else {
                continue;
            };
            lock(&self.shared.waiting).remove(&request_id);
            return Err(failure);
        }
    }

    /// Waits until the function asks for its first event (its init is done)
    /// and returns how long that took from the spawn.
    pub async fn ready(&self) -> Result<Duration, Failure> {
        loop {
            if let Some(init) = self.init_duration() {
                return Ok(init);
            }
            if let Some(body) = self.init_error() {
                return Err(Failure::InitError(body));
            }
            if let Some(status) = self.exit_status() {
                return Err(Failure::Exited(status));
            }
            if self.spawned.elapsed() >= self.timeout {
                return Err(Failure::Timeout);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for the process to end by itself (within the timeout) and returns its status.
    pub async fn exited(&self) -> Result<ExitStatus, Failure> {
        let since = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                // Let the pipes drain into the captured lines.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Ok(status);
            }
            if since.elapsed() >= self.timeout {
                return Err(Failure::Timeout);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// From the spawn to the first `GET …/invocation/next`: the init phase
    /// (None until then).
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared
            .first_next
            .get()
            .map(|at| at.duration_since(self.spawned))
    }

    /// How many times the function asked for an event.
    pub fn polls(&self) -> usize {
        self.shared.nexts.load(Ordering::SeqCst)
    }

    /// The body of the init error the runtime reported, if it did.
    pub fn init_error(&self) -> Option<Value> {
        lock(&self.shared.init_error).clone()
    }

    /// Requests that break the Runtime API protocol (an answer for a request
    /// never handed out, an unknown path…), one line each.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// The process's exit status, once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut exit = lock(&self.exit);
        if exit.is_none() {
            *exit = lock(&self.child).try_wait().ok().flatten();
        }
        *exit
    }

    /// The lines the process wrote to stdout so far (its logs).
    pub fn stdout(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// The lines the process wrote to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        lock(&self.stderr).clone()
    }

    /// The stdout lines that are JSON objects: the structured log records.
    pub fn logs(&self) -> Vec<Value> {
        self.stdout()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The last lines of both streams, for failure messages.
    pub fn output(&self) -> String {
        let tail = |lines: Vec<String>| {
            let skip = lines.len().saturating_sub(30);
            lines[skip..].join("\n")
        };
        format!(
            "--- stdout of {} ---\n{}\n--- stderr ---\n{}",
            self.name,
            tail(self.stdout()),
            tail(self.stderr())
        )
    }

    /// Kills the process (SIGKILL, as Lambda does to a frozen or timed-out
    /// environment) and reaps it.
    pub fn kill(&self) {
        let reaped = {
            let mut child = lock(&self.child);
            let _ = child.kill();
            child.wait()
        };
        // Locked after the child's lock is released: `exit_status` takes them the other way round.
        if let Ok(status) = reaped {
            lock(&self.exit).get_or_insert(status);
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("runtime_api", &self.addr)
            .finish_non_exhaustive()
    }
}

// ---- the Runtime API -------------------------------------------------------

/// An event waiting for the function's next poll.
struct Queued {
    request_id: String,
    trace_id: String,
    event: Value,
    deadline_ms: u64,
}

/// An invocation waiting for its answer.
struct Waiting {
    tx: oneshot::Sender<Outcome>,
    handed_out: bool,
}

/// What the Runtime API server and the [`Function`] share.
struct Shared {
    /// Behind an async lock: one poll at a time takes events (Lambda hands
    /// out one invocation at a time per environment), and a poll that is
    /// dropped while waiting loses nothing.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    first_next: OnceLock<Instant>,
    nexts: AtomicUsize,
    init_error: Mutex<Option<Value>>,
    violations: Mutex<Vec<String>>,
    arn: String,
}

fn runtime_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
        .with_state(shared)
}

/// `GET /next`: long-polls until an event is queued, then hands it out.
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // Taken on arrival, before any waiting: the end of the init phase.
    let _ = shared.first_next.set(Instant::now());
    shared.nexts.fetch_add(1, Ordering::SeqCst);
    let queued = shared.queue.lock().await.recv().await;
    let Some(queued) = queued else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if let Some(w) = lock(&shared.waiting).get_mut(&queued.request_id) {
        w.handed_out = true;
    }
    let headers = [
        ("lambda-runtime-aws-request-id", queued.request_id.clone()),
        ("lambda-runtime-deadline-ms", queued.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", shared.arn.clone()),
        ("lambda-runtime-trace-id", queued.trace_id.clone()),
        ("content-type", "application/json".to_owned()),
    ];
    let mut response = queued.event.to_string().into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("a valid header"),
        );
    }
    response
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    complete(&shared, &id, Outcome::Response(parse(&body)))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut error = parse(&body);
    // The runtime names the kind of failure in a header too; keep it with the body.
    if let (Some(kind), Some(map)) = (
        headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok()),
        error.as_object_mut(),
    ) {
        map.insert("functionErrorType".into(), kind.into());
    }
    complete(&shared, &id, Outcome::Error(error))
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    let mut waiting = lock(&shared.waiting);
    match waiting.remove(id) {
        Some(w) if w.handed_out => {
            let _ = w.tx.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
        }
        other => {
            // Not handed out yet: put it back, it is still to be answered.
            if let Some(w) = other {
                waiting.insert(id.to_owned(), w);
            }
            lock(&shared.violations).push(format!("an answer for unknown request {id}"));
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "errorMessage": "Invalid request ID", "errorType": "InvalidRequestID" })),
            )
                .into_response()
        }
    }
}

/// `POST /init/error`: recorded; waiting calls end with [`Failure::InitError`].
async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    *lock(&shared.init_error) = Some(parse(&body));
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

async fn unknown(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    lock(&shared.violations).push(format!("{method} {uri}"));
    StatusCode::NOT_FOUND.into_response()
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
}

fn epoch_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
