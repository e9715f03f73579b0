//! Chaos under load: while simulated students take tests, their server's
//! Redis is killed (SIGKILL) and restarted empty, and every connection to
//! PostgreSQL is cut for a few seconds; the students retry as real clients
//! do. Afterwards every answer the server acknowledged must be in PostgreSQL
//! exactly once, and no test stuck in progress ([`Verification`]).
//!
//! The faults need a Redis and a PostgreSQL path of the run's own: an
//! [`OwnRedis`] (never the shared server) and a [`Proxy`] in front of
//! PostgreSQL, which the server under test must use. [`run`] drives the load
//! and the faults against any such server (the integration test's in-process
//! router); [`Stack`] starts one (`lectern-local` on a fresh database), as
//! `lectern-loadtest --chaos` does.

mod proxy;
mod redis;
mod stack;
mod verify;

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

pub use proxy::Proxy;
pub use redis::OwnRedis;
pub use stack::Stack;
pub use verify::{Stuck, Verification, check};

use crate::{LoadConfig, LoadError, Progress, Report, Stop};

/// How long a chaos run's requests are retried, unless the configuration says.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);

/// When the faults happen, from the moment the students start (after they
/// signed in; the warm-up included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// When Redis is killed.
    pub redis_at: Duration,
    /// How long it stays down before a new, empty one starts on its port.
    pub redis_down: Duration,
    /// When every PostgreSQL connection is cut (and new ones refused).
    pub db_at: Duration,
    /// How long until connections go through again.
    pub db_down: Duration,
}

impl Plan {
    /// Redis killed a quarter into the measured window, PostgreSQL cut at
    /// 60 % of it (or just after Redis is back, if later).
    pub fn spread(
        warmup: Duration,
        measured: Duration,
        redis_down: Duration,
        db_down: Duration,
    ) -> Plan {
        let redis_at = warmup + measured.mul_f64(0.25);
        let db_at =
            (warmup + measured.mul_f64(0.6)).max(redis_at + redis_down + Duration::from_secs(1));
        Plan {
            redis_at,
            redis_down,
            db_at,
            db_down,
        }
    }

    /// When the last fault is over.
    pub fn end(&self) -> Duration {
        (self.redis_at + self.redis_down).max(self.db_at + self.db_down)
    }
}

/// What was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Redis killed and restarted empty.
    Redis,
    /// Every PostgreSQL connection cut.
    Postgres,
}

/// One outage as it happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outage {
    /// What.
    pub fault: Fault,
    /// When it began, in seconds since the students started.
    pub at_secs: f64,
    /// How long it lasted: from the kill to the new server accepting
    /// connections, or from the cut to the restore.
    pub down_secs: f64,
    /// Failed tries sent during it or in the second after it (warm-up
    /// included: the errors of the whole run are `load.error_count` plus
    /// `load.warmup_errors`).
    pub errors: u64,
}

/// Seconds after an outage whose failed tries are still put down to it.
const OUTAGE_TAIL_SECS: f64 = 1.0;

/// A chaos run: the load report, the outages and the check of PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChaosReport {
    /// The outages, in order.
    pub outages: Vec<Outage>,
    /// What PostgreSQL holds, against what was acknowledged.
    pub verification: Verification,
    /// The warm-up and the measured window, in seconds.
    pub run_secs: f64,
    /// The load run's report (errors by endpoint and status, retries, …).
    pub load: Report,
}

impl ChaosReport {
    /// Whether the check passed ([`Verification::passed`]).
    pub fn passed(&self) -> bool {
        self.verification.passed()
    }

    /// Errors by status or kind over every endpoint, most frequent first
    /// (the measured window's).
    pub fn errors_by_kind(&self) -> Vec<(String, u64)> {
        let mut by: std::collections::BTreeMap<String, u64> = Default::default();
        for e in &self.load.errors {
            *by.entry(e.kind.to_string()).or_default() += e.count;
        }
        let mut by: Vec<(String, u64)> = by.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outages: Vec<String> = self
            .outages
            .iter()
            .map(|o| match o.fault {
                Fault::Redis => format!(
                    "Redis killed (SIGKILL) at {:.1} s, a new empty one up {:.2} s later ({} errors)",
                    o.at_secs, o.down_secs, o.errors
                ),
                Fault::Postgres => format!(
                    "PostgreSQL cut at {:.1} s for {:.2} s ({} errors)",
                    o.at_secs, o.down_secs, o.errors
                ),
            })
            .collect();
        writeln!(
            f,
            "chaos       {}",
            if outages.is_empty() {
                "no outage (the run ended first)".to_string()
            } else {
                outages.join("; ")
            }
        )?;
        let errors: Vec<String> = self
            .errors_by_kind()
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        writeln!(
            f,
            "errors      {} by status: {}; {} retries, {} requests given up",
            self.load.error_count,
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            },
            self.load.retries,
            self.load.gave_up
        )?;
        writeln!(f, "{}", self.verification)?;
        writeln!(
            f,
            "verdict     {} ({:.1} s of load)",
            if self.passed() {
                "PASS: every acknowledged answer in PostgreSQL exactly once, no test stuck"
            } else {
                "FAIL"
            },
            self.run_secs
        )?;
        writeln!(f)?;
        write!(f, "{}", self.load)
    }
}

/// Runs `config`'s load against a server whose Redis is `redis` and whose
/// PostgreSQL is reached through `proxy`, breaking them as `plan` says,
/// then checks PostgreSQL at `database_url` (straight, not through the
/// proxy). Answers are kept and requests retried (for [`DEFAULT_RETRY`]
/// unless `config.retry` says otherwise). Fails when the run cannot start,
/// a fault cannot be made or undone, or PostgreSQL cannot be read after.
pub async fn run(
    config: &LoadConfig,
    plan: &Plan,
    redis: &mut OwnRedis,
    proxy: &Proxy,
    database_url: &str,
    progress: impl Fn(&Progress) + Send + Sync,
) -> Result<ChaosReport, LoadError> {
    let mut config = config.clone();
    config.keep_answers = true;
    config.retry = config.retry.or(Some(DEFAULT_RETRY));
    if config.teach {
        return Err(LoadError::InvalidConfig(
            "a chaos run takes tests, not tutoring sessions".into(),
        ));
    }
    if let Stop::Duration(d) = config.stop {
        if plan.end() >= config.warmup + d {
            return Err(LoadError::InvalidConfig(format!(
                "the faults end {:.1} s after the start, the run {:.1} s: lengthen the run",
                plan.end().as_secs_f64(),
                (config.warmup + d).as_secs_f64()
            )));
        }
    }
    let (started_tx, started_rx) = oneshot::channel();
    let load = crate::run_inner(&config, progress, std::future::pending(), Some(started_tx));
    tokio::pin!(load);
    let mut outages = Vec::new();
    let mut failed = None;
    let result = {
        let faults = drive(plan, redis, proxy, started_rx, &mut outages, &mut failed);
        tokio::pin!(faults);
        tokio::select! {
            result = &mut load => result,
            () = &mut faults => (&mut load).await,
        }
    };
    // A run that ended mid-outage (or failed to start) leaves nothing broken.
    proxy.restore();
    if !redis.is_running() {
        redis.revive_async().await.map_err(LoadError::Chaos)?;
    }
    if let Some(open) = outages.iter_mut().find(|o| o.down_secs.is_nan()) {
        open.down_secs = 0.0;
    }
    if let Some(why) = failed {
        return Err(LoadError::Chaos(why));
    }
    let (load, mut students) = result?;
    for o in &mut outages {
        let until = o.at_secs + o.down_secs + OUTAGE_TAIL_SECS;
        o.errors = load
            .error_times
            .iter()
            .filter(|t| (o.at_secs..until).contains(t))
            .count() as u64;
    }
    let run_secs = load.warmup_secs + load.wall_secs;
    let verification = verify::verify(database_url, &load, &mut students, config.timeout)
        .await
        .map_err(LoadError::Chaos)?;
    Ok(ChaosReport {
        outages,
        verification,
        run_secs,
        load,
    })
}

/// Makes the faults at their times, recording each outage (`down_secs` NaN
/// while one lasts); a fault that cannot be undone is put in `failed`.
async fn drive(
    plan: &Plan,
    redis: &mut OwnRedis,
    proxy: &Proxy,
    started: oneshot::Receiver<Instant>,
    outages: &mut Vec<Outage>,
    failed: &mut Option<String>,
) {
    let Ok(t0) = started.await else {
        // The run failed before the students started.
        return std::future::pending().await;
    };
    let since = |t: Instant| t.duration_since(t0).as_secs_f64();
    let mut steps = [(plan.redis_at, Fault::Redis), (plan.db_at, Fault::Postgres)];
    steps.sort_by_key(|s| s.0);
    for (at, fault) in steps {
        tokio::time::sleep_until((t0 + at).into()).await;
        let began = Instant::now();
        outages.push(Outage {
            fault,
            at_secs: since(began),
            down_secs: f64::NAN,
            errors: 0,
        });
        match fault {
            Fault::Redis => {
                redis.kill();
                tokio::time::sleep(plan.redis_down).await;
                if let Err(why) = redis.revive_async().await {
                    *failed = Some(why);
                    return std::future::pending().await;
                }
            }
            Fault::Postgres => {
                proxy.cut();
                tokio::time::sleep(plan.db_down).await;
                proxy.restore();
            }
        }
        if let Some(last) = outages.last_mut() {
            last.down_secs = began.elapsed().as_secs_f64();
        }
    }
}
