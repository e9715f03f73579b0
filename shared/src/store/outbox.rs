//! The transactional outbox (V16): events for integrators, inserted in the
//! transaction of the change they tell of (so an event exists exactly when
//! its change committed), then read in `seq` order, marked published and
//! purged by the publisher (`services::events`).
//!
//! Before an event takes its `seq`, its transaction takes a transaction-level
//! advisory lock on the event's resource (kind, id), held to its commit: two
//! transactions with events about one resource then commit in the order of
//! those events' `seq`, so the publisher, reading committed events in `seq`
//! order, never meets a resource's later event while an earlier one may still
//! commit. (An assignment's events come from the completions of different
//! students' tests, whose rows lock nothing in common.) The locks are taken in
//! (kind, id) order, after the writer's row locks, so they add no deadlock.

use time::OffsetDateTime;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::StoreError;

/// Every kind of event, with its `detail-type` and the kind of resource it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A test's stop rule fired (it waits for its end).
    TestCompleted,
    /// A test ended: final results written.
    TestEnded,
    /// A test ended by its deadline.
    TestTimedOut,
    /// A test given up on by the sweeper.
    TestAbandoned,
    /// A student's attempt at an assignment ended (ended or timed out).
    AssignmentCompleted,
    /// An assignment's results were released (the first release only).
    ResultsReleased,
    /// A calibration run finished (succeeded or failed).
    CalibrationFinished,
    /// A user's personal data was erased.
    UserErased,
}

impl Kind {
    /// Every kind (the README and docs/events/ list them all).
    pub const ALL: [Kind; 8] = [
        Kind::TestCompleted,
        Kind::TestEnded,
        Kind::TestTimedOut,
        Kind::TestAbandoned,
        Kind::AssignmentCompleted,
        Kind::ResultsReleased,
        Kind::CalibrationFinished,
        Kind::UserErased,
    ];

    /// The EventBridge `detail-type` (and the envelope's `type`).
    pub fn detail_type(self) -> &'static str {
        match self {
            Kind::TestCompleted => "test.completed",
            Kind::TestEnded => "test.ended",
            Kind::TestTimedOut => "test.timed_out",
            Kind::TestAbandoned => "test.abandoned",
            Kind::AssignmentCompleted => "assignment.completed",
            Kind::ResultsReleased => "assignment.results_released",
            Kind::CalibrationFinished => "calibration.finished",
            Kind::UserErased => "user.erased",
        }
    }

    /// The kind of resource the event is about (its order is kept per resource).
    pub fn resource_kind(self) -> &'static str {
        match self {
            Kind::TestCompleted | Kind::TestEnded | Kind::TestTimedOut | Kind::TestAbandoned => {
                "test"
            }
            Kind::AssignmentCompleted | Kind::ResultsReleased => "assignment",
            Kind::CalibrationFinished => "calibration",
            Kind::UserErased => "user",
        }
    }
}

/// One event to enqueue.
#[derive(Debug, Clone)]
pub struct Event {
    /// The stable id consumers de-duplicate on.
    pub id: Uuid,
    /// What happened.
    pub kind: Kind,
    /// The resource it happened to.
    pub resource_id: Uuid,
    /// The kind's own fields (docs/events/<detail-type>.schema.json).
    pub data: serde_json::Value,
}

impl Event {
    /// A new event (with a new id).
    pub fn new(kind: Kind, resource_id: Uuid, data: serde_json::Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            kind,
            resource_id,
            data,
        }
    }
}

/// Inserts `events`, in order, in the caller's transaction (one statement).
pub async fn enqueue(tx: &Transaction<'_>, events: &[Event]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.kind.detail_type()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.resource_kind()).collect();
    let resources: Vec<Uuid> = events.iter().map(|e| e.resource_id).collect();
    let data: Vec<&serde_json::Value> = events.iter().map(|e| &e.data).collect();
    tx.execute(
        "SELECT count(pg_advisory_xact_lock(hashtext(k), hashtext(r::text)))
         FROM (SELECT DISTINCT k, r FROM unnest($1::text[], $2::uuid[]) AS u(k, r)
               ORDER BY k, r) AS resources",
        &[&kinds, &resources],
    )
    .await?;
    tx.execute(
        "INSERT INTO outbox (event_id, detail_type, resource_kind, resource_id, detail)
         SELECT e, d, k, r, j
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::jsonb[])
              WITH ORDINALITY AS u(e, d, k, r, j, n)
         ORDER BY n",
        &[&ids, &types, &kinds, &resources, &data],
    )
    .await?;
    Ok(())
}

/// `user.erased` about `user`, in the transaction that erases them: the user
/// id and nothing else (no personal data ever goes on the bus).
pub async fn user_erased(tx: &Transaction<'_>, user: Uuid) -> Result<(), StoreError> {
    let event = Event::new(
        Kind::UserErased,
        user,
        serde_json::json!({ "user_id": user }),
    );
    enqueue(tx, &[event]).await
}

/// A timestamp column as the events write it: RFC 3339 in UTC, microseconds.
macro_rules! utc {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

/// `test.<status>` about each of `tests` as its row stands in this
/// transaction (call it after the update), in order; with `assignment`, also
/// `assignment.completed` about each one that is an attempt at an assignment.
pub async fn test_events(
    tx: &Transaction<'_>,
    kind: Kind,
    tests: &[Uuid],
    assignment: bool,
) -> Result<(), StoreError> {
    if tests.is_empty() {
        return Ok(());
    }
    debug_assert_eq!(kind.resource_kind(), "test");
    tx.execute(
        "SELECT count(pg_advisory_xact_lock(hashtext(k), hashtext(r::text)))
         FROM (SELECT DISTINCT k, r FROM (
                   SELECT 'test' AS k, id AS r FROM unnest($1::uuid[]) AS id
                   UNION ALL
                   SELECT 'assignment', assignment_id FROM test_sessions
                   WHERE id = ANY($1) AND $2 AND assignment_id IS NOT NULL
               ) AS keys ORDER BY k, r) AS resources",
        &[&tests, &assignment],
    )
    .await?;
    let statement = concat!(
        "INSERT INTO outbox (event_id, detail_type, resource_kind, resource_id, detail)
             SELECT gen_random_uuid(), detail_type, resource_kind, resource_id, detail FROM (
                 SELECT u.n, 1 AS k, $1::text AS detail_type, 'test' AS resource_kind,
                        t.id AS resource_id,
                        jsonb_build_object(
                            'test_id', t.id, 'status', t.status, 'student_id', t.student_id,
                            'org_id', t.org_id, 'pool_id', t.pool_id,
                            'pool_version', t.pool_version, 'assignment_id', t.assignment_id,
                            'attempt', t.attempt, 'items_answered', t.items_answered,
                            'started_at', ",
        utc!("t.started_at"),
        ", 'ended_at', ",
        utc!("t.ended_at"),
        ") AS detail
                 FROM unnest($2::uuid[]) WITH ORDINALITY AS u(id, n)
                 JOIN test_sessions t ON t.id = u.id
                 UNION ALL
                 SELECT u.n, 2, 'assignment.completed', 'assignment', t.assignment_id,
                        jsonb_build_object(
                            'assignment_id', t.assignment_id, 'student_id', t.student_id,
                            'test_id', t.id, 'attempt', t.attempt, 'status', t.status,
                            'org_id', t.org_id, 'completed_at', ",
        utc!("t.ended_at"),
        ")
                 FROM unnest($2::uuid[]) WITH ORDINALITY AS u(id, n)
                 JOIN test_sessions t ON t.id = u.id
                 WHERE $3 AND t.assignment_id IS NOT NULL
             ) e ORDER BY n, k"
    );
    tx.execute(statement, &[&kind.detail_type(), &tests, &assignment])
        .await?;
    Ok(())
}

/// One unpublished event, as the publisher reads it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its place in the outbox (the publication order).
    pub seq: i64,
    /// The stable id.
    pub event_id: Uuid,
    /// `test.ended`, …
    pub detail_type: String,
    /// `test`, `assignment`, `calibration`, `user`.
    pub resource_kind: String,
    /// The resource's id.
    pub resource_id: Uuid,
    /// The kind's own fields.
    pub data: serde_json::Value,
    /// When the change committed (its transaction's time).
    pub created_at: OffsetDateTime,
}

/// Takes the publisher's lock for this transaction, without waiting: false
/// when another publisher holds it. The lock is per schema (one publisher per
/// deployment; tests' schemas do not block each other).
pub async fn try_lock(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    let row = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(1333016, hashtext(current_schema()))",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Up to `limit` unpublished events in `seq` order, leaving out those about
/// the resources in `skip` (whose earlier events failed this run).
pub async fn unpublished(
    tx: &Transaction<'_>,
    skip: &[Uuid],
    limit: i64,
) -> Result<Vec<Pending>, StoreError> {
    let rows = tx
        .query(
            "SELECT seq, event_id, detail_type, resource_kind, resource_id, detail, created_at
             FROM outbox
             WHERE published_at IS NULL AND resource_id <> ALL($1::uuid[])
             ORDER BY seq LIMIT $2",
            &[&skip, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Pending {
            seq: r.get("seq"),
            event_id: r.get("event_id"),
            detail_type: r.get("detail_type"),
            resource_kind: r.get("resource_kind"),
            resource_id: r.get("resource_id"),
            data: r.get("detail"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// Marks these events published.
pub async fn mark_published(tx: &Transaction<'_>, seqs: &[i64]) -> Result<(), StoreError> {
    if !seqs.is_empty() {
        tx.execute(
            "UPDATE outbox SET published_at = now() WHERE seq = ANY($1)",
            &[&seqs],
        )
        .await?;
    }
    Ok(())
}

/// Counts a failed publication of each of these events, with its error.
pub async fn mark_failed(tx: &Transaction<'_>, failed: &[(i64, String)]) -> Result<(), StoreError> {
    if failed.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = failed.iter().map(|(s, _)| *s).collect();
    let errors: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
    tx.execute(
        "UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error
         FROM unnest($1::bigint[], $2::text[]) AS f(seq, error)
         WHERE o.seq = f.seq",
        &[&seqs, &errors],
    )
    .await?;
    Ok(())
}

/// Deletes up to `limit` events published longer ago than `kept`; returns how many.
pub async fn purge(
    db: &deadpool_postgres::Pool,
    kept: std::time::Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let client = db.get().await?;
    Ok(client
        .execute(
            "DELETE FROM outbox WHERE seq IN (
                 SELECT seq FROM outbox
                 WHERE published_at < now() - make_interval(secs => $1)
                 ORDER BY seq LIMIT $2)",
            &[&kept.as_secs_f64(), &limit],
        )
        .await?)
}
