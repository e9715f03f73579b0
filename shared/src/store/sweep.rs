//! The sweeper's I/O: active tests idle past the limit (PostgreSQL), whether
//! their live state is still in Redis, and marking them abandoned.

use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;
use super::outbox;
use super::redis::RedisStore;

/// The condition a test must meet to be abandoned, with `$2` the idle limit in
/// seconds: checked when candidates are picked and again when they are updated.
/// A timed test is closed by its deadline instead.
const IDLE: &str = "status = 'active' AND deadline IS NULL
    AND updated_at < now() - make_interval(secs => $2)
    AND (keep_until IS NULL OR keep_until < now())";

/// Up to `limit` tests that are idle (see [`IDLE`]), in id order, after `after`
/// (keyset paging: a batch never repeats nor skips a test that stays idle).
pub async fn idle_tests(
    db: &Pool,
    idle_limit: Duration,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id FROM test_sessions
                 WHERE {IDLE} AND ($1::uuid IS NULL OR id > $1)
                 ORDER BY id LIMIT $3"
            ),
            &[&after, &idle_limit.as_secs_f64(), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How many tests are active (the partial index on active tests answers it).
pub async fn active_tests(db: &Pool) -> Result<i64, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM test_sessions WHERE status = 'active'",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether each test still has its live state in Redis, in the order given:
/// one pipeline of single-key EXISTS (one round trip, and each key stays in
/// its own cluster slot).
pub async fn live_states(redis: &RedisStore, tests: &[Uuid]) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<String> = tests.iter().map(|&t| redis.keys().test_state(t)).collect();
    exists_each(redis, &keys).await
}

/// Whether each key exists (one pipeline).
async fn exists_each(redis: &RedisStore, keys: &[String]) -> Result<Vec<bool>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("EXISTS").arg(key);
    }
    let live: Vec<bool> = redis
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    if live.len() != keys.len() {
        return Err(StoreError::Corrupt(format!(
            "EXISTS pipeline answered {} of {} keys",
            live.len(),
            keys.len()
        )));
    }
    Ok(live)
}

/// Marks abandoned those of `tests` that are still idle (a submit that landed
/// since they were picked keeps its test alive); returns the tests marked,
/// each with its student. Their `test.abandoned` events are enqueued with them.
pub async fn abandon(
    db: &Pool,
    tests: &[Uuid],
    idle_limit: Duration,
) -> Result<Vec<(Uuid, Option<Uuid>)>, StoreError> {
    if tests.is_empty() {
        return Ok(Vec::new());
    }
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &format!(
                "UPDATE test_sessions SET status = 'abandoned', updated_at = now()
                 WHERE id = ANY($1) AND {IDLE}
                 RETURNING id, student_id"
            ),
            &[&tests, &idle_limit.as_secs_f64()],
        )
        .await?;
    let abandoned: Vec<(Uuid, Option<Uuid>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let ids: Vec<Uuid> = abandoned.iter().map(|&(id, _)| id).collect();
    outbox::test_events(&tx, outbox::Kind::TestAbandoned, &ids, false).await?;
    tx.commit().await?;
    Ok(abandoned)
}

/// Up to `limit` running tests whose deadline has passed, oldest deadline first.
pub async fn overdue(db: &Pool, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT id FROM test_sessions
             WHERE deadline < now() AND status IN ('active', 'completed')
             ORDER BY deadline LIMIT $1",
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

// ---- tutoring sessions ------------------------------------------------------------

/// The condition a tutoring session must meet to be abandoned, with `$2` the
/// idle limit in seconds (the partial index on open sessions serves it).
const TEACHING_IDLE: &str = "ended_at IS NULL AND updated_at < now() - make_interval(secs => $2)";

/// Up to `limit` open tutoring sessions with no transition for the idle
/// limit, in id order, after `after`.
pub async fn idle_teaching(
    db: &Pool,
    idle_limit: Duration,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "SELECT id FROM teaching_sessions
                 WHERE {TEACHING_IDLE} AND ($1::uuid IS NULL OR id > $1)
                 ORDER BY id LIMIT $3"
            ),
            &[&after, &idle_limit.as_secs_f64(), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether each tutoring session's context is still in Redis.
pub async fn live_teaching(redis: &RedisStore, ids: &[Uuid]) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<String> = ids
        .iter()
        .map(|&id| redis.keys().teaching_context(id))
        .collect();
    exists_each(redis, &keys).await
}

/// Ends as abandoned those of `ids` still idle: the state becomes `ended`,
/// `seq` moves on (so an input decided on the old seq loses its race and is
/// told the session ended) and the step is a transition of its own. The
/// student's progress through the course is kept as it was. Returns the ids.
pub async fn abandon_teaching(
    db: &Pool,
    ids: &[Uuid],
    idle_limit: Duration,
) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "WITH old AS (
                     SELECT id, state FROM teaching_sessions
                     WHERE id = ANY($1) AND {TEACHING_IDLE} FOR UPDATE),
                 ended AS (
                     UPDATE teaching_sessions s SET state = 'ended', seq = s.seq + 1,
                         ended_at = now(), abandoned_at = now(), updated_at = now(),
                         context = jsonb_set(jsonb_set(s.context, '{{state}}', '\"ended\"'),
                                             '{{seq}}', to_jsonb(s.seq + 1))
                     FROM old WHERE s.id = old.id
                     RETURNING s.id, s.seq, old.state AS from_state, s.segment_index,
                               coalesce((s.context->>'confusion')::smallint, 0) AS confusion),
                 transition AS (
                     INSERT INTO teaching_transitions (session_id, seq, from_state, to_state,
                         action, segment_index, confusion, at)
                     SELECT id, seq, from_state, 'ended', 'end_session', segment_index, confusion, now()
                     FROM ended)
                 SELECT id FROM ended"
            ),
            &[&ids, &idle_limit.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
