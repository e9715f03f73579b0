//! `lectern-loadtest`: concurrent simulated students take adaptive tests (or hold
//! tutoring sessions) through lectern's HTTP API, and [`run`] reports latency
//! percentiles per endpoint, throughput and errors. What a run does, step by step,
//! is in `tools/loadtest/README.md`.

#![warn(missing_docs)]

mod account;
mod cache;
pub mod chaos;
mod client;
mod error;
mod report;
mod setup;
mod student;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

pub use account::EMAIL_DOMAIN;
pub use error::LoadError;
pub use report::{
    Answer, CacheDelta, Endpoint, EndpointStats, ErrorCount, ErrorKind, Latency, Report, percentile,
};
pub use setup::COURSE_KEY as TEACH_COURSE_KEY;
pub use student::teach::SCRIPT as TEACH_SCRIPT;

use cache::Snapshot;
use client::{Conn, Failure, Target};
use student::{Live, Shared, Student, Tally};

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long, measured from the end of the warm-up. Students then
    /// stop at once (a request in flight completes and counts) and end their
    /// unfinished tests (or tutoring sessions) unmeasured.
    Duration(Duration),
    /// Once this many tests (with [`LoadConfig::teach`]: tutoring sessions),
    /// warm-up included, have been started and run to their end (or their
    /// first error).
    Tests(u64),
}

/// What a run does. Its `Debug` never shows the admin token.
#[derive(Clone)]
pub struct LoadConfig {
    /// Base URL of the server, `http://host[:port][/prefix]` (no TLS).
    pub url: String,
    /// Concurrent simulated students, each with its own connection; each
    /// signs up as a new user and logs in before the run starts.
    pub students: usize,
    /// When to stop.
    pub stop: Stop,
    /// Hold tutoring sessions (`/v1/teaching/sessions`) instead of taking
    /// tests; `pool`, `max_items`, `with_next` and `with_reads` then do not
    /// apply (the last two must be false, `pool` `None`), and `admin_token`
    /// is required: before the students sign up, the admin creates an
    /// organization `loadtest-<hex>`, a class in it, the course
    /// [`TEACH_COURSE_KEY`] of one module with one sub-topic of `segments`
    /// segments, and an invitation to the class that every student accepts
    /// after logging in. Every session teaches that whole sub-topic (module
    /// 0, sub-topic 0, from its first segment).
    pub teach: bool,
    /// With `teach`: the segments of the course's sub-topic, so every
    /// session's `total_segments` (1–1000).
    pub segments: u32,
    /// The pool to take tests on; `None`: the first of `GET /v1/pools` (asked
    /// as the first student). Not asked for with `teach`.
    pub pool: Option<Uuid>,
    /// Answers by which every test must have completed (1–200): the default
    /// design's length, 20 (students may not choose a configuration).
    pub max_items: u32,
    /// Mean pause between a student's requests (each pause is uniform on
    /// [0.5, 1.5] times this).
    pub think: Duration,
    /// Requests sent before this much time has passed are not counted.
    pub warmup: Duration,
    /// Call `GET /v1/tests/{id}/next` before each answer (and check that it
    /// serves the question being answered).
    pub with_next: bool,
    /// After each ended test, read the dashboard: `GET /v1/students/{me}/tests`,
    /// `GET /v1/students/{me}/proficiency`, `GET /v1/users/{me}` and
    /// `GET /v1/pools?limit=20`, each measured as its own endpoint.
    pub with_reads: bool,
    /// An admin's bearer token: read `GET /v1/admin/cache/stats` when the
    /// measured window begins and when the run ends, for [`Report::cache`].
    /// If that fails the report has no cache section and says why in
    /// [`Report::cache_warning`]; the run goes on. Required with `teach`,
    /// whose set-up it makes (a platform admin's: it creates an organization).
    pub admin_token: Option<String>,
    /// Longest wait for one complete response; a request over it is an error.
    pub timeout: Duration,
    /// Retry like a real client: a request that got 503 (or 502, 504), a
    /// transport error, a timeout or a 409 `…-in-progress` is sent again,
    /// after a pause (100 ms doubling up to 1 s, uniform on [0.5, 1.5]×),
    /// until it succeeds or this long has passed since its first try. Each
    /// failed try is an error in the report and each new try a
    /// [`Report::retries`]; the test goes on when a try succeeds. A start then
    /// sends an `Idempotency-Key` (the same on every try), so a retried
    /// start makes one test; a retried answer is the same `{question_id,
    /// response}`, whose repeat returns the original outcome. `None`: no
    /// retries (the student ends that test and starts another).
    pub retry: Option<Duration>,
    /// Keep every answer the server acknowledged (200) and every test it
    /// started (201) in [`Report::answers`] and [`Report::tests`], warm-up
    /// included (to check them against PostgreSQL afterwards; see [`chaos`]).
    pub keep_answers: bool,
}

impl std::fmt::Debug for LoadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadConfig")
            .field("url", &self.url)
            .field("students", &self.students)
            .field("stop", &self.stop)
            .field("teach", &self.teach)
            .field("segments", &self.segments)
            .field("pool", &self.pool)
            .field("max_items", &self.max_items)
            .field("think", &self.think)
            .field("warmup", &self.warmup)
            .field("with_next", &self.with_next)
            .field("with_reads", &self.with_reads)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("keep_answers", &self.keep_answers)
            .finish()
    }
}

impl Default for LoadConfig {
    /// 32 students for 20 s after a 2 s warm-up on `http://127.0.0.1:3000`,
    /// 20-item tests (not tutoring sessions; those would have 8 segments), no
    /// think time, no `next`, no reads, no cache stats, 10 s request timeout,
    /// no retries, answers not kept.
    fn default() -> Self {
        LoadConfig {
            url: "http://127.0.0.1:3000".to_string(),
            students: 32,
            stop: Stop::Duration(Duration::from_secs(20)),
            teach: false,
            segments: 8,
            pool: None,
            max_items: 20,
            think: Duration::ZERO,
            warmup: Duration::from_secs(2),
            with_next: false,
            with_reads: false,
            admin_token: None,
            timeout: Duration::from_secs(10),
            retry: None,
            keep_answers: false,
        }
    }
}

impl LoadConfig {
    fn validate(&self) -> Result<(), LoadError> {
        let invalid = |m: &str| Err(LoadError::InvalidConfig(m.to_string()));
        if self.students == 0 {
            return invalid("students must be at least 1");
        }
        if !(1..=200).contains(&self.max_items) {
            return invalid("max_items must be within 1..=200");
        }
        if self.teach {
            if !(1..=1000).contains(&self.segments) {
                return invalid("segments must be within 1..=1000");
            }
            if self.with_next || self.with_reads || self.pool.is_some() {
                return invalid("pool, with_next and with_reads apply to tests, not to teach");
            }
            if self
                .admin_token
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
            {
                return invalid(
                    "teach needs an admin token (a platform admin's): the admin sets up the \
                     organization, class, course and invitation the sessions use",
                );
            }
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => return invalid("the duration must be positive"),
            Stop::Tests(0) if self.teach => {
                return invalid("the number of sessions must be at least 1");
            }
            Stop::Tests(0) => return invalid("the number of tests must be at least 1"),
            _ => {}
        }
        if self.timeout.is_zero() {
            return invalid("the request timeout must be positive");
        }
        if self.retry.is_some_and(|r| r.is_zero()) {
            return invalid("the retry budget must be positive");
        }
        Ok(())
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests are not counted yet.
    WarmUp,
    /// Requests are counted.
    Measuring,
    /// The duration is over (or the run was interrupted); students are
    /// ending their unfinished tests (or tutoring sessions).
    Stopping,
}

/// A snapshot of a running load test, given to the progress callback about
/// once a second. Counts are since the start, warm-up included.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Since the students started.
    pub elapsed: Duration,
    /// Where the run is.
    pub phase: Phase,
    /// Requests answered or failed.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Tests (with [`LoadConfig::teach`]: tutoring sessions) started.
    pub tests_started: u64,
    /// Tests (or tutoring sessions) ended successfully.
    pub tests_completed: u64,
}

/// Runs a load test until `config.stop`; `progress` is called about once a
/// second once the students have signed in. Fails only when the run cannot
/// start (bad configuration, server unreachable, a student cannot sign up or
/// log in, no pool without `teach`; with `teach`, the admin cannot set up the
/// course or a student cannot accept its invitation); errors of requests are
/// counted in the report.
///
/// ```no_run
/// # async fn example() -> Result<(), lectern_loadtest::LoadError> {
/// use std::time::Duration;
/// use lectern_loadtest::{LoadConfig, Stop, run};
///
/// let config = LoadConfig {
///     url: "http://127.0.0.1:3999".into(),
///     students: 8,
///     stop: Stop::Tests(40),
///     warmup: Duration::ZERO,
///     ..LoadConfig::default()
/// };
/// let report = run(&config, |_progress| {}).await?;
/// assert_eq!(report.error_count, 0);
/// println!("{report}");
/// # Ok(()) }
/// ```
pub async fn run(
    config: &LoadConfig,
    progress: impl Fn(&Progress) + Send + Sync,
) -> Result<Report, LoadError> {
    run_until(config, progress, std::future::pending()).await
}

/// [`run`], stopping early (as at the end of the duration) when `shutdown`
/// completes, e.g. on Ctrl-C; the report covers the time until then.
/// `shutdown` is first polled once the students have signed in.
pub async fn run_until(
    config: &LoadConfig,
    progress: impl Fn(&Progress) + Send + Sync,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Report, LoadError> {
    let (report, _students) = run_inner(config, progress, shutdown, None).await?;
    Ok(report)
}

/// A student after the run: its user id and its signed-in connection.
pub(crate) struct After {
    pub user_id: Uuid,
    pub conn: Conn,
}

/// [`run_until`]; also every student's connection after the run, and
/// `started` is sent the moment the students start (after signing in).
pub(crate) async fn run_inner(
    config: &LoadConfig,
    progress: impl Fn(&Progress) + Send + Sync,
    shutdown: impl Future<Output = ()> + Send,
    started: Option<tokio::sync::oneshot::Sender<Instant>>,
) -> Result<(Report, Vec<After>), LoadError> {
    config.validate()?;
    let target = Arc::new(Target::parse(&config.url)?);
    check_reachable(&target, config).await?;
    let course = match &config.admin_token {
        Some(token) if config.teach => Some(
            setup::set_up(
                &target,
                token,
                config.segments,
                config.students,
                config.timeout,
            )
            .await?,
        ),
        _ => None,
    };
    let invitation = course.as_ref().map(|c| account::Invitation {
        code: c.invitation.clone(),
        organization_id: c.organization_id,
    });
    let mut students_in =
        account::sign_in_all(&target, config.students, invitation, config.timeout).await?;
    let pool = match config.pool {
        _ if config.teach => None,
        Some(pool) => Some(pool),
        None => Some(first_pool(&target, config, &mut students_in[0].conn).await?),
    };

    let t0 = Instant::now();
    if let Some(started) = started {
        let _ = started.send(t0);
    }
    let warmup_end = t0 + config.warmup;
    let mut cache_window = CacheWindow::begin(&target, config, warmup_end);
    if config.warmup.is_zero() {
        // The window begins now: read the counters before any student starts.
        cache_window.settle().await;
    }
    let course_id = course.map(|c| c.id);
    let shared = Arc::new(Shared {
        config: config.clone(),
        pool,
        course: course_id,
        warmup_end,
        tickets: AtomicU64::new(0),
        live: Live::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut students = JoinSet::new();
    for signed_in in students_in {
        students.spawn(
            Student::new(
                shared.clone(),
                signed_in.conn,
                signed_in.user_id,
                stop_rx.clone(),
            )
            .run(),
        );
    }

    let deadline = match config.stop {
        Stop::Duration(d) => Some(warmup_end + d),
        Stop::Tests(_) => None,
    };
    let deadline_sleep = tokio::time::sleep_until(deadline.unwrap_or(t0).into());
    let mut ticks =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(deadline_sleep, shutdown);
    let mut stopped_at: Option<Instant> = None;
    let mut tally = Tally::default();
    let mut after = Vec::with_capacity(config.students);
    loop {
        tokio::select! {
            joined = students.join_next() => match joined {
                Some(Ok((student, conn, user_id))) => {
                    tally.merge(student);
                    after.push(After { user_id, conn });
                }
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(e)) => panic!("a student task failed: {e}"),
                None => break,
            },
            _ = &mut deadline_sleep, if deadline.is_some() && stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                let _ = stop_tx.send(true);
            }
            _ = &mut shutdown, if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                let _ = stop_tx.send(true);
            }
            _ = ticks.tick() => {
                let now = Instant::now();
                let phase = if stopped_at.is_some() {
                    Phase::Stopping
                } else if now < warmup_end {
                    Phase::WarmUp
                } else {
                    Phase::Measuring
                };
                let live = &shared.live;
                progress(&Progress {
                    elapsed: now - t0,
                    phase,
                    requests: live.requests.load(Ordering::Relaxed),
                    errors: live.errors.load(Ordering::Relaxed),
                    tests_started: live.tests_started.load(Ordering::Relaxed),
                    tests_completed: live.tests_completed.load(Ordering::Relaxed),
                });
            }
        }
    }
    // With `Stop::Tests`, the window ends when the last student is done.
    let window_end = stopped_at.unwrap_or_else(Instant::now);
    let wall = window_end.saturating_duration_since(warmup_end);
    let (cache, cache_warning) = cache_window.end(window_end < warmup_end).await;
    let mut report = build_report(config, &target, pool, wall, tally);
    report.course_id = course_id;
    report.cache = cache;
    report.cache_warning = cache_warning;
    report.student_ids = after.iter().map(|a| a.user_id).collect();
    Ok((report, after))
}

/// What the first read of the cache stats gives: the admin connection (for
/// the second) and the counters.
type CacheStart = (Conn, Result<Snapshot, String>);

/// The cache counters' window, with an admin token.
enum CacheWindow {
    /// No admin token.
    Off,
    /// It cannot be measured; why.
    Failed(String),
    /// The first read, waiting for the end of the warm-up.
    Pending(tokio::task::JoinHandle<CacheStart>, Duration),
    /// The first read, done.
    Begun(Box<CacheStart>, Duration),
}

impl CacheWindow {
    /// Reads the counters when the warm-up ends (now, without one), in a task.
    fn begin(target: &Arc<Target>, config: &LoadConfig, warmup_end: Instant) -> CacheWindow {
        let Some(token) = &config.admin_token else {
            return CacheWindow::Off;
        };
        let mut conn = match cache::admin_conn(target, token) {
            Ok(conn) => conn,
            Err(why) => return CacheWindow::Failed(why),
        };
        let timeout = config.timeout;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(warmup_end.into()).await;
            let start = cache::snapshot(&mut conn, timeout).await;
            (conn, start)
        });
        CacheWindow::Pending(task, timeout)
    }

    /// Waits for the first read.
    async fn settle(&mut self) {
        if let CacheWindow::Pending(task, timeout) = self {
            let timeout = *timeout;
            *self = match task.await {
                Ok(start) => CacheWindow::Begun(Box::new(start), timeout),
                Err(e) => CacheWindow::Failed(format!("reading the stats failed: {e}")),
            };
        }
    }

    /// Reads the counters again; their growth per kind, or why there is none.
    /// `early`: the run ended before the warm-up did, so there is no window.
    async fn end(mut self, early: bool) -> (Option<BTreeMap<String, CacheDelta>>, Option<String>) {
        if let CacheWindow::Off = self {
            return (None, None);
        }
        if early {
            if let CacheWindow::Pending(task, _) = &self {
                task.abort();
            }
            let why = "no cache section: the run ended before the warm-up did";
            return (None, Some(why.to_string()));
        }
        self.settle().await;
        let failed = |why: String| {
            (
                None,
                Some(format!(
                    "no cache section: GET {}: {why}",
                    cache::STATS_PATH
                )),
            )
        };
        match self {
            CacheWindow::Off => (None, None),
            CacheWindow::Failed(why) => failed(why),
            CacheWindow::Pending(..) => unreachable!("settled above"),
            CacheWindow::Begun(start, timeout) => {
                let (mut conn, start) = *start;
                let start = match start {
                    Ok(start) => start,
                    Err(why) => return failed(why),
                };
                match cache::snapshot(&mut conn, timeout).await {
                    Ok(end) => (
                        Some(cache::window(&start.namespaces, &end.namespaces)),
                        None,
                    ),
                    Err(why) => failed(why),
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct PoolList {
    pools: Vec<PoolSummary>,
}

#[derive(Deserialize)]
struct PoolSummary {
    pool_id: Uuid,
}

fn transport_reason(failure: Failure, timeout: Duration) -> String {
    match failure {
        Failure::Transport(m) => m,
        Failure::Timeout => format!("no response within {} ms", timeout.as_millis()),
    }
}

/// Checks that the server can be reached at all, for a clear message when not.
async fn check_reachable(target: &Arc<Target>, config: &LoadConfig) -> Result<(), LoadError> {
    Conn::new(target.clone())
        .connect_once(config.timeout)
        .await
        .map_err(|failure| LoadError::Connect {
            url: target.url.clone(),
            reason: transport_reason(failure, config.timeout),
        })
}

/// The first pool of `GET /v1/pools`, asked on a signed-in student's connection.
async fn first_pool(
    target: &Target,
    config: &LoadConfig,
    conn: &mut Conn,
) -> Result<Uuid, LoadError> {
    let pools_error = |reason: String| LoadError::Pools {
        url: target.url.clone(),
        reason,
    };
    let reply = conn
        .send(Method::GET, "/v1/pools?limit=1", None, config.timeout)
        .await
        .map_err(|failure| pools_error(transport_reason(failure, config.timeout)))?;
    if reply.status != StatusCode::OK {
        let body = String::from_utf8_lossy(&reply.body);
        return Err(pools_error(format!(
            "status {}: {}",
            reply.status,
            body.trim()
        )));
    }
    let list: PoolList = serde_json::from_slice(&reply.body)
        .map_err(|e| pools_error(format!("unexpected body: {e}")))?;
    list.pools
        .first()
        .map(|p| p.pool_id)
        .ok_or_else(|| LoadError::NoPool {
            url: target.url.clone(),
        })
}

fn build_report(
    config: &LoadConfig,
    target: &Target,
    pool: Option<Uuid>,
    wall: Duration,
    mut tally: Tally,
) -> Report {
    let wall_secs = wall.as_secs_f64();
    let per_sec = |n: u64| {
        if wall_secs > 0.0 {
            n as f64 / wall_secs
        } else {
            0.0
        }
    };
    let mut endpoints = BTreeMap::new();
    for endpoint in Endpoint::ALL {
        let latencies = &mut tally.latencies[endpoint.index()];
        latencies.sort_unstable();
        endpoints.insert(
            endpoint,
            EndpointStats {
                count: latencies.len() as u64,
                errors: tally.errors[endpoint.index()],
                latency: Latency::from_sorted_micros(latencies),
            },
        );
    }
    let mut errors: Vec<ErrorCount> = tally
        .error_kinds
        .into_iter()
        .map(|((endpoint, kind), e)| ErrorCount {
            endpoint,
            kind,
            count: e.count,
            example: e.example,
        })
        .collect();
    errors.sort_by(|a, b| (b.count, a.endpoint, a.kind).cmp(&(a.count, b.endpoint, b.kind)));
    let error_count: u64 = tally.errors.iter().sum();
    let successes: u64 = endpoints.values().map(|s| s.count).sum();
    let requests = successes + error_count;
    let mean = |sum: u64, n: u64| if n > 0 { sum as f64 / n as f64 } else { 0.0 };
    Report {
        url: target.url.clone(),
        pool_id: pool,
        course_id: None,
        students: config.students,
        teach: config.teach,
        max_items: config.max_items,
        segments: config.segments,
        think_ms: config.think.as_secs_f64() * 1000.0,
        with_next: config.with_next,
        with_reads: config.with_reads,
        warmup_secs: config.warmup.as_secs_f64(),
        wall_secs,
        requests,
        requests_per_sec: per_sec(requests),
        tests_completed: tally.tests_completed,
        tests_per_sec: per_sec(tally.tests_completed),
        tests_failed: tally.tests_failed,
        mean_items_per_test: mean(tally.items_in_completed, tally.tests_completed),
        sessions_completed: tally.sessions_completed,
        sessions_per_sec: per_sec(tally.sessions_completed),
        sessions_failed: tally.sessions_failed,
        mean_inputs_per_session: mean(tally.inputs_in_completed, tally.sessions_completed),
        error_count,
        endpoints,
        errors,
        warmup_requests: tally.warmup_requests,
        warmup_errors: tally.warmup_errors,
        reconnects: tally.reconnects,
        retries: tally.retries,
        gave_up: tally.gave_up,
        answers: tally.answers,
        tests: tally.tests,
        student_ids: Vec::new(),
        error_times: tally.error_times,
        cache: None,
        cache_warning: None,
    }
}
