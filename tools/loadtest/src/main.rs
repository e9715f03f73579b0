//! `lectern-loadtest`: see `lectern-loadtest --help`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use lectern_loadtest::{LoadConfig, Phase, Progress, Stop};
use uuid::Uuid;

/// Load test of a running lectern server: concurrent simulated students take whole
/// adaptive tests through the HTTP API (start, answer a random option of each question
/// until the test completes, end), or with --teach hold whole tutoring sessions, then
/// latency percentiles per endpoint, throughput and errors are printed.
///
/// The API requires authentication: before the run starts (not measured), each student
/// signs up as a new user (POST /v1/users, email loadtest-<hex>@loadtest.invalid, random
/// password) and logs in (POST /v1/sessions), then sends its bearer token with every
/// request; if one cannot, the run stops with an error. Each run therefore leaves one user
/// per student behind in PostgreSQL.
///
/// Any non-2xx status (409 included), transport error, timeout or malformed body is an
/// error; the student ends that test (or session) and starts another. Requests sent
/// during the warm-up are not counted. Ctrl-C stops early and still prints the report.
///
/// With --with-reads, each student also reads its dashboard after each ended test (its
/// history, proficiency and profile, and the pool list: endpoints the server caches),
/// each measured as its own endpoint. With --admin-token, the report gains the server
/// cache's lookups, hits, misses and hit ratio per namespace over the measured window.
///
/// With --teach, each student holds tutoring sessions instead of taking tests (no pool
/// needed), and --admin-token (a platform admin's) is required: before the students sign
/// up (not measured), the admin creates an organization loadtest-<hex> (POST
/// /v1/organizations), a class in it, a course "loadtest" of one module with one
/// sub-topic of --segments segments (POST /v1/courses), and an invitation to the class
/// with one use per student; each student accepts it (POST /v1/invitations/accept) after
/// logging in, joining the organization as a student. Each run therefore also leaves an
/// organization with its class and course behind. Each session is then POST
/// /v1/teaching/sessions on that course (module 0, sub-topic 0: the whole sub-topic,
/// --segments segments), then POST .../input with the lines of a fixed 16-line script in turn (mostly "next", and a
/// question, a repeat, a confusion, a pause and its resume, a skip and a remark) until
/// the reply's context.state is "completed", then POST .../end. A reply that breaks the
/// API's promises is an error: context.seq must rise by exactly 1 per input, every input
/// has an intent and a question is answered, no input ends the session, it completes
/// within 2*segments+16 inputs, and the end's summary counts exactly the inputs,
/// questions, repeats and skips sent and every segment. The report then has the
/// endpoints teach_start, teach_input and teach_end, sessions completed, and the course.
///
/// With --chaos, the tool starts its own stack (a redis-server on a free port, a fresh
/// database reached through a TCP proxy, and lectern-local on both) instead of using
/// --url; during the run it kills Redis (SIGKILL) and restarts it empty, then cuts every
/// PostgreSQL connection for a few seconds. Students retry as real clients do (503,
/// transport errors, timeouts; a start with an Idempotency-Key). Afterwards it checks
/// PostgreSQL: every answer the server acknowledged is there exactly once, and every
/// test left in progress can be resumed and ended. It prints the outages, errors by
/// status, the check, and the load report; the exit code is 2 when the check fails.
#[derive(Parser)]
#[command(name = "lectern-loadtest", version)]
struct Cli {
    /// Base URL of the server (plain http).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Concurrent simulated students, each on its own keep-alive connection; each signs up
    /// as a new user and logs in first.
    #[arg(long, default_value_t = 32)]
    students: usize,
    /// Measure for this many seconds, after the warm-up [default: 20].
    #[arg(long, value_name = "SECS", value_parser = seconds, conflicts_with = "tests")]
    duration_secs: Option<Duration>,
    /// Instead of a duration: run this many tests (with --teach: tutoring sessions) in
    /// all, then stop.
    #[arg(long, value_name = "N", value_parser = positive)]
    tests: Option<u64>,
    /// Hold tutoring sessions (/v1/teaching/sessions) instead of taking tests, each
    /// until it is completed, then end it; measured as teach_start, teach_input and
    /// teach_end. Requires --admin-token: the admin first sets up an organization, a
    /// class, a course "loadtest" and an invitation every student accepts (see above).
    #[arg(long, conflicts_with_all = ["pool", "with_next", "with_reads", "max_items"])]
    teach: bool,
    /// With --teach: the segments of the course's one sub-topic, so total_segments of
    /// each tutoring session [default: 8].
    #[arg(
        long,
        value_name = "S",
        requires = "teach",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    segments: Option<u32>,
    /// Answers by which each test must have completed: the default design's length (students choose none).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    max_items: u32,
    /// Pool to take tests on [default: the first of GET /v1/pools, as the first student].
    #[arg(long, value_name = "UUID")]
    pool: Option<Uuid>,
    /// Mean think time between a student's requests (each pause uniform on [0.5, 1.5]×).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    think_ms: u64,
    /// Requests sent in the first SECS seconds are not counted [default: 2, or 0 with --tests].
    #[arg(long, value_name = "SECS", value_parser = seconds_or_zero)]
    warmup_secs: Option<Duration>,
    /// Also GET /v1/tests/{id}/next before each answer.
    #[arg(long)]
    with_next: bool,
    /// After each ended test, also GET the student's history (/v1/students/{me}/tests),
    /// proficiency (/v1/students/{me}/proficiency), profile (/v1/users/{me}) and the pool
    /// list (/v1/pools?limit=20), each measured as its own endpoint (history, proficiency,
    /// profile, pools).
    #[arg(long)]
    with_reads: bool,
    /// An admin's bearer token: read GET /v1/admin/cache/stats when the measured window
    /// begins and when the run ends, and report the cache's lookups, hits, misses and hit
    /// ratio per namespace over the window. If that fails, a warning is printed and the
    /// run goes on without a cache section. Required with --teach, whose set-up the admin
    /// makes.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LECTERN_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// A request without a complete response after this long is an error.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "10")]
    timeout_secs: Duration,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Chaos under load, on a stack of the tool's own (see above); needs a duration.
    #[arg(long, conflicts_with_all = ["url", "teach", "pool", "tests", "admin_token"])]
    chaos: bool,
    /// With --chaos: the server to start [default: lectern-local beside this program].
    #[arg(long, value_name = "PATH", requires = "chaos")]
    server_bin: Option<std::path::PathBuf>,
    /// With --chaos: a PostgreSQL database to connect to, to create (and afterwards
    /// drop) a fresh database lectern_chaos_<hex> on the same server.
    #[arg(
        long,
        value_name = "URL",
        requires = "chaos",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// With --chaos: how long Redis stays dead before a new, empty one starts.
    #[arg(long, value_name = "SECS", requires = "chaos", value_parser = seconds, default_value = "3")]
    redis_down_secs: Duration,
    /// With --chaos: how long PostgreSQL connections stay cut.
    #[arg(long, value_name = "SECS", requires = "chaos", value_parser = seconds, default_value = "4")]
    db_down_secs: Duration,
    /// With --chaos: how long a failed request is retried.
    #[arg(long, value_name = "SECS", requires = "chaos", value_parser = seconds, default_value = "30")]
    retry_secs: Duration,
    /// With --chaos: keep the database (and the server log) afterwards.
    #[arg(long, requires = "chaos")]
    keep_database: bool,
}

fn positive(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive whole number")),
    }
}

fn seconds_or_zero(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

fn seconds(text: &str) -> Result<Duration, String> {
    let duration = seconds_or_zero(text)?;
    if duration.is_zero() {
        return Err("must be positive".to_string());
    }
    Ok(duration)
}

impl Cli {
    fn config(&self) -> LoadConfig {
        let (stop, default_warmup) = match self.tests {
            Some(n) => (Stop::Tests(n), Duration::ZERO),
            None => (
                Stop::Duration(self.duration_secs.unwrap_or(Duration::from_secs(20))),
                Duration::from_secs(2),
            ),
        };
        LoadConfig {
            url: self.url.clone(),
            students: self.students,
            stop,
            teach: self.teach,
            segments: self.segments.unwrap_or(8),
            pool: self.pool,
            max_items: self.max_items,
            think: Duration::from_millis(self.think_ms),
            warmup: self.warmup_secs.unwrap_or(default_warmup),
            with_next: self.with_next,
            with_reads: self.with_reads,
            admin_token: self.admin_token.clone(),
            timeout: self.timeout_secs,
            retry: self.chaos.then_some(self.retry_secs),
            keep_answers: self.chaos,
        }
    }
}

/// One progress line, rewritten in place about once a second.
fn progress_line(config: &LoadConfig, p: &Progress, rate: f64) -> String {
    let phase = match p.phase {
        Phase::WarmUp => "warm-up",
        Phase::Measuring => "measuring",
        Phase::Stopping => "stopping",
    };
    let what = if config.teach { "sessions" } else { "tests" };
    let target = match config.stop {
        Stop::Duration(d) => format!(
            "{:.0}/{:.0} s",
            p.elapsed.as_secs_f64(),
            (config.warmup + d).as_secs_f64()
        ),
        Stop::Tests(n) => format!(
            "{:.0} s, {}/{n} {what} started",
            p.elapsed.as_secs_f64(),
            p.tests_started
        ),
    };
    format!(
        "{phase:<9} {target}  {} requests ({rate:.0}/s)  {} {what} completed  {} errors",
        p.requests, p.tests_completed, p.errors
    )
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = cli.config();
    let show_progress = std::io::stderr().is_terminal();
    if show_progress {
        // Until the first progress line replaces it.
        eprint!("signing up and logging in {} students…", config.students);
    }
    let last = Mutex::new((Duration::ZERO, 0u64));
    let progress = |p: &Progress| {
        if !show_progress {
            return;
        }
        let mut last = last.lock().expect("progress is not poisoned");
        let seconds = (p.elapsed - last.0).as_secs_f64();
        let rate = if seconds > 0.0 {
            (p.requests - last.1) as f64 / seconds
        } else {
            0.0
        };
        *last = (p.elapsed, p.requests);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", progress_line(&config, p, rate));
        let _ = err.flush();
    };
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    if cli.chaos {
        let code = chaos(&cli, config.clone(), progress).await;
        if show_progress {
            eprint!("\r\x1b[2K");
        }
        std::process::exit(code);
    }
    let result = lectern_loadtest::run_until(&config, progress, ctrl_c).await;
    if show_progress {
        eprint!("\r\x1b[2K");
    }
    if let Ok(report) = &result {
        if let Some(warning) = &report.cache_warning {
            eprintln!("warning: {warning}");
        }
    }
    match result {
        Ok(report) if cli.json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// `--chaos`: starts the stack, runs, checks, stops the stack; the exit code.
async fn chaos(
    cli: &Cli,
    mut config: LoadConfig,
    progress: impl Fn(&Progress) + Send + Sync,
) -> i32 {
    use lectern_loadtest::chaos::{self, Plan, Stack};
    let Stop::Duration(measured) = config.stop else {
        eprintln!("error: --chaos needs a duration (--duration-secs)");
        return 1;
    };
    let server_bin = cli.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("lectern-local")))
            .unwrap_or_else(|| "lectern-local".into())
    });
    let mut stack = match Stack::start(&server_bin, &cli.database_url).await {
        Ok(stack) => stack,
        Err(why) => {
            eprintln!("error: chaos: {why}");
            return 1;
        }
    };
    eprintln!(
        "chaos: lectern-local on {} (Redis on port {}, database {} through {}; log {})",
        stack.url,
        stack.redis.port(),
        stack.database(),
        stack.proxy.addr,
        stack.log.display()
    );
    config.url = stack.url.clone();
    let plan = Plan::spread(
        config.warmup,
        measured,
        cli.redis_down_secs,
        cli.db_down_secs,
    );
    let result = chaos::run(
        &config,
        &plan,
        &mut stack.redis,
        &stack.proxy,
        &stack.database_url,
        progress,
    )
    .await;
    if cli.keep_database {
        eprintln!(
            "chaos: kept the database {} and the log {}",
            stack.database(),
            stack.log.display()
        );
    }
    stack.stop(cli.keep_database).await;
    match result {
        Ok(report) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serializes")
                );
            } else {
                println!("{report}");
            }
            if report.passed() { 0 } else { 2 }
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
