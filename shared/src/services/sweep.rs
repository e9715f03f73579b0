//! The sweeper: marks abandoned the active tests that nobody has touched for
//! the idle limit and whose live state has left Redis, and ends as abandoned
//! the tutoring sessions alike (their students' progress is kept). Run on a schedule (the
//! `sweeper` Lambda function, every [`PERIOD`]; the local server alike).
//!
//! It only ever acts on positive knowledge: a test whose state is still in
//! Redis is left alone, and if Redis cannot be asked, nothing is abandoned.

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::cache::Namespace;
use crate::store::{self, StoreError};

/// How often the sweeper runs (the schedule in template.yaml says the same).
pub const PERIOD: Duration = Duration::from_secs(5 * 60);

/// Tests examined per batch: one PostgreSQL query, one Redis round trip and at
/// most one UPDATE each.
pub const BATCH: i64 = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Idle active tests whose live state was looked up.
    pub checked: u64,
    /// Tests marked abandoned.
    pub abandoned: u64,
    /// Batches examined.
    pub batches: u64,
    /// Tests past their deadline ended as timed out.
    pub timed_out: u64,
    /// Dead auth sessions deleted from PostgreSQL (Redis expires its own).
    pub sessions_deleted: u64,
    /// Audit trail partitions made ahead of time.
    pub audit_partitions_made: u64,
    /// Audit trail partitions dropped, past retention.
    pub audit_partitions_dropped: u64,
    /// Erasures whose Redis half had failed, finished.
    pub erasures_finished: u64,
    /// Tutoring sessions ended as abandoned.
    pub tutoring_abandoned: u64,
}

/// Months of audit trail partitions kept made ahead of time.
const AUDIT_MONTHS_AHEAD: i32 = 3;

/// Tests still active (a count over the partial index on active tests).
pub async fn active_tests(app: &App) -> Result<i64, StoreError> {
    store::sweep::active_tests(app.db()).await
}

/// One sweep over every idle test, in batches of [`BATCH`].
pub async fn sweep(app: &App) -> Result<SweepReport, StoreError> {
    sweep_in_batches(app, BATCH).await
}

/// One sweep in batches of `batch` tests (at least 1).
pub async fn sweep_in_batches(app: &App, batch: i64) -> Result<SweepReport, StoreError> {
    let batch = batch.max(1);
    let mut report = SweepReport::default();
    let result = async {
        report.timed_out = crate::services::cat::time_out_overdue(app).await?;
        run(app, batch, &mut report).await?;
        report.tutoring_abandoned = abandon_tutoring(app, batch).await?;
        report.sessions_deleted = crate::services::auth::sessions::sweep(app, batch).await?;
        let cutoff = time::OffsetDateTime::now_utc() - app.config().audit_retention;
        let (made, dropped) = store::audit::maintain(app.db(), AUDIT_MONTHS_AHEAD, cutoff).await?;
        report.audit_partitions_made = made as u64;
        report.audit_partitions_dropped = dropped as u64;
        report.erasures_finished = crate::services::data_rights::finish_pending(app).await?;
        Ok(())
    }
    .await;
    if report.abandoned + report.timed_out > 0 {
        crate::services::events::after_write(app).await;
    }
    match &result {
        Ok(()) => tracing::info!(
            checked = report.checked,
            abandoned = report.abandoned,
            batches = report.batches,
            timed_out = report.timed_out,
            sessions_deleted = report.sessions_deleted,
            audit_partitions_made = report.audit_partitions_made,
            audit_partitions_dropped = report.audit_partitions_dropped,
            erasures_finished = report.erasures_finished,
            tutoring_abandoned = report.tutoring_abandoned,
            "sweep done"
        ),
        // What was abandoned before the failure was decided on full information and stands.
        Err(e) => tracing::error!(
            error = %e,
            checked = report.checked,
            abandoned = report.abandoned,
            batches = report.batches,
            "sweep stopped"
        ),
    }
    result.map(|()| report)
}

async fn run(app: &App, batch: i64, report: &mut SweepReport) -> Result<(), StoreError> {
    let idle_limit = app.config().test_idle_limit;
    let mut after: Option<Uuid> = None;
    loop {
        let candidates = store::sweep::idle_tests(app.db(), idle_limit, after, batch).await?;
        let Some(&last) = candidates.last() else {
            return Ok(());
        };
        after = Some(last);
        let live = store::sweep::live_states(app.redis(), &candidates).await?;
        let gone = without_live_state(&candidates, &live);
        let abandoned = store::sweep::abandon(app.db(), &gone, idle_limit).await?;
        report.batches += 1;
        report.checked += candidates.len() as u64;
        report.abandoned += abandoned.len() as u64;
        for (id, _) in &abandoned {
            tracing::info!(test = %id, "test abandoned");
        }
        let mut students: Vec<Namespace> = abandoned
            .iter()
            .filter_map(|&(_, student)| student.map(Namespace::History))
            .collect();
        students.dedup();
        app.cache().invalidate(&students).await;
        tracing::debug!(
            batch = report.batches,
            candidates = candidates.len(),
            live = candidates.len() - gone.len(),
            abandoned = abandoned.len(),
            "sweep batch"
        );
        if (candidates.len() as i64) < batch {
            return Ok(());
        }
    }
}

/// Ends as abandoned every tutoring session idle for `TEACHING_IDLE_LIMIT_SECS`
/// whose Redis state is gone (never when Redis cannot be asked); returns how many.
async fn abandon_tutoring(app: &App, batch: i64) -> Result<u64, StoreError> {
    let idle_limit = app.config().teaching_idle_limit;
    let mut after: Option<Uuid> = None;
    let mut abandoned = 0;
    loop {
        let candidates = store::sweep::idle_teaching(app.db(), idle_limit, after, batch).await?;
        let Some(&last) = candidates.last() else {
            return Ok(abandoned);
        };
        after = Some(last);
        let live = store::sweep::live_teaching(app.redis(), &candidates).await?;
        let gone = without_live_state(&candidates, &live);
        let ended = store::sweep::abandon_teaching(app.db(), &gone, idle_limit).await?;
        for id in &ended {
            tracing::info!(session = %id, "tutoring session abandoned");
        }
        abandoned += ended.len() as u64;
        if (candidates.len() as i64) < batch {
            return Ok(abandoned);
        }
    }
}

/// Of `candidates`, those whose live state is not in Redis (`live`, in the same order).
fn without_live_state(candidates: &[Uuid], live: &[bool]) -> Vec<Uuid> {
    candidates
        .iter()
        .zip(live)
        .filter(|&(_, &live)| !live)
        .map(|(&id, _)| id)
        .collect()
}
