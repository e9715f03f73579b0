//! Adaptive tests: their records and responses in PostgreSQL (the system of
//! record), then their live state in Redis (`test:{<id>}:state`, the hot copy
//! any container rebuilds from the record) with the submission lock beside it
//! (`test:{<id>}:lock:<question>`), the compare-and-set scripts over both, and
//! this process's memory of states known to be behind.
//!
//! A live state is stored framed (see [`super::framing`]): its `seq`, then the
//! body the service encoded; the scripts compare the `seq` without decoding.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use super::audit;
use super::framing::{frame, unframe};
use super::redis::{RedisStore, ttl_ms};
use super::tenancy::{OrgRole, Standing};
use lectern_engine::{Estimate, NormalPrior};

/// Lifecycle of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    /// Questions are being served.
    Active,
    /// The stop rule fired; waiting for `end`.
    Completed,
    /// Final results written.
    Ended,
    /// Given up on by the sweeper.
    Abandoned,
    /// Ended by its deadline: final results written from the answers in time.
    TimedOut,
}

impl TestStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Active => "active",
            TestStatus::Completed => "completed",
            TestStatus::Ended => "ended",
            TestStatus::Abandoned => "abandoned",
            TestStatus::TimedOut => "timed_out",
        }
    }

    /// Whether final results are written (ended, or timed out).
    pub fn is_final(self) -> bool {
        matches!(self, TestStatus::Ended | TestStatus::TimedOut)
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "active" => TestStatus::Active,
            "completed" => TestStatus::Completed,
            "ended" => TestStatus::Ended,
            "abandoned" => TestStatus::Abandoned,
            "timed_out" => TestStatus::TimedOut,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown test status {other:?}"
                )));
            }
        })
    }
}

/// A test row.
#[derive(Debug, Clone)]
pub struct TestRecord {
    /// Test id.
    pub id: Uuid,
    /// Pool the test draws from.
    pub pool_id: Uuid,
    /// Pool version fixed at start.
    pub pool_version: i32,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// The organization it was taken in (`None`: outside any).
    pub org_id: Option<Uuid>,
    /// Lifecycle state.
    pub status: TestStatus,
    /// The effective test configuration (JSON of `cat::TestConfig`).
    pub config: serde_json::Value,
    /// Seed of the selector's randomness.
    pub seed: u64,
    /// Prior the estimator started from.
    pub prior: NormalPrior,
    /// Latest overall estimate.
    pub estimate: Estimate,
    /// Responses recorded (every one: this orders them).
    pub items_answered: i32,
    /// Of those, responses to pretest items (never scored).
    pub pretest_answered: i32,
    /// Scored responses with the item's top score.
    pub correct_count: i32,
    /// The operational item the engine serves next, while active (a pretest
    /// item due at the next position is served before it).
    pub current_question: Option<String>,
    /// Final per-concept results (JSON), once ended.
    pub concepts: Option<serde_json::Value>,
    /// Start time.
    pub started_at: OffsetDateTime,
    /// End time, once ended.
    pub ended_at: Option<OffsetDateTime>,
    /// Kept alive by an administrator until then, whatever the sliding TTL says.
    pub keep_until: Option<OffsetDateTime>,
    /// The assignment it is an attempt at.
    pub assignment_id: Option<Uuid>,
    /// Which attempt.
    pub attempt: Option<i32>,
    /// No answer counts after this.
    pub deadline: Option<OffsetDateTime>,
    /// Whether its assignment's results are released.
    pub released: bool,
}

impl TestRecord {
    /// Scored responses: those to operational items.
    pub fn scored(&self) -> i32 {
        self.items_answered - self.pretest_answered
    }
}

fn record(row: &Row) -> Result<TestRecord, StoreError> {
    Ok(TestRecord {
        id: row.get("id"),
        pool_id: row.get("pool_id"),
        pool_version: row.get("pool_version"),
        student_id: row.get("student_id"),
        org_id: row.get("org_id"),
        status: TestStatus::parse(row.get("status"))?,
        config: row.get("config"),
        seed: row.get::<_, i64>("seed") as u64,
        prior: NormalPrior {
            mean: row.get("prior_mean"),
            sd: row.get("prior_sd"),
        },
        estimate: Estimate {
            theta: row.get("theta"),
            se: row.get("se"),
        },
        items_answered: row.get("items_answered"),
        pretest_answered: row.get("pretest_answered"),
        correct_count: row.get("correct_count"),
        current_question: row.get("current_question"),
        concepts: row.get("concepts"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        keep_until: row.get("keep_until"),
        assignment_id: row.get("assignment_id"),
        attempt: row.get("attempt"),
        deadline: row.get("deadline"),
        released: row.get("released"),
    })
}

/// One recorded response.
#[derive(Debug, Clone)]
pub struct ResponseRecord {
    /// 1-based order.
    pub seq: i32,
    /// The question answered.
    pub question_id: String,
    /// The option chosen.
    pub response: String,
    /// Its score (0…m; 1/0 for a right/wrong item).
    pub score: u8,
    /// Whether it got the item's top score (for a right/wrong item: was the key).
    pub correct: bool,
    /// Whether it answered a pretest item (the estimate did not move).
    pub pretest: bool,
    /// Estimate after this response.
    pub after: Estimate,
    /// When its question was served (`None` before assessments were recorded).
    pub served_at: Option<OffsetDateTime>,
    /// When it was recorded.
    pub answered_at: OffsetDateTime,
}

/// A new test's first row.
pub struct NewTest<'a> {
    /// Test id.
    pub id: Uuid,
    /// Pool and version.
    pub pool_id: Uuid,
    /// Pool version fixed for the test's life.
    pub pool_version: i32,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// The organization it is taken in (`None`: outside any).
    pub org_id: Option<Uuid>,
    /// Effective configuration as JSON.
    pub config: &'a serde_json::Value,
    /// Seed of the selector's randomness.
    pub seed: u64,
    /// Prior, which is also the first estimate.
    pub prior: NormalPrior,
    /// First question served.
    pub first_question: &'a str,
}

/// Inserts a new active test.
pub async fn insert(db: &Pool, t: &NewTest<'_>) -> Result<(), StoreError> {
    let client = db.get().await?;
    // Cached per connection: the hot statements cost one round trip, not two.
    let statement = client
        .prepare_cached(
            "INSERT INTO test_sessions (id, pool_id, pool_version, student_id, status, config, seed,
                                        prior_mean, prior_sd, theta, se, current_question, org_id,
                                        served_at, idempotency_key, idempotency_hash)
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $7, $8, $9, $10, now(), $11, $12)",
        )
        .await?;
    let (idem_key, idem_hash) = super::idempotency::columns();
    client
        .execute(
            &statement,
            &[
                &t.id,
                &t.pool_id,
                &t.pool_version,
                &t.student_id,
                t.config,
                &(t.seed as i64),
                &t.prior.mean,
                &t.prior.sd,
                &t.first_question,
                &t.org_id,
                &idem_key,
                &idem_hash,
            ],
        )
        .await?;
    Ok(())
}

/// A test and its responses in order, read from one consistent snapshot
/// (a submit committing meanwhile cannot make them disagree).
pub async fn snapshot(
    db: &Pool,
    id: Uuid,
) -> Result<Option<(TestRecord, Vec<ResponseRecord>)>, StoreError> {
    let mut client = db.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let Some(row) = tx
        .query_opt(
            "SELECT s.*, a.released_at IS NOT NULL AS released
             FROM test_sessions s LEFT JOIN assignments a ON a.id = s.assignment_id
             WHERE s.id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = tx
        .query(
            "SELECT seq, question_id, response, correct, pretest, theta_after, se_after, served_at,
                    answered_at, coalesce(score, correct::int)::smallint AS score
             FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    let responses = rows
        .iter()
        .map(|r| {
            // A row the release before scores wrote has its score from `correct` (see V8).
            let score: i16 = r.get("score");
            Ok(ResponseRecord {
                seq: r.get("seq"),
                question_id: r.get("question_id"),
                response: r.get("response"),
                score: u8::try_from(score)
                    .map_err(|_| StoreError::Corrupt(format!("test {id}: score {score}")))?,
                correct: r.get("correct"),
                pretest: r.get("pretest"),
                after: Estimate {
                    theta: r.get("theta_after"),
                    se: r.get("se_after"),
                },
                served_at: r.get("served_at"),
                answered_at: r.get("answered_at"),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some((record(&row)?, responses)))
}

/// One answer, with what it changed.
pub struct Answer<'a> {
    /// The question answered.
    pub question_id: &'a str,
    /// The option chosen.
    pub response: &'a str,
    /// Its score (0…m; 1/0 for a right/wrong item).
    pub score: u8,
    /// Whether it got the item's top score.
    pub correct: bool,
    /// Whether it answers a pretest item: counted in `pretest_answered`, not
    /// in `correct_count`.
    pub pretest: bool,
    /// Estimate before and after.
    pub before: Estimate,
    /// Estimate after this answer.
    pub after: Estimate,
    /// Status after this answer (active or completed).
    pub status: TestStatus,
    /// The operational item the engine serves next, if any.
    pub next_question: Option<&'a str>,
}

/// Records an answer if the test is still active with exactly `answered_before`
/// responses; returns false (and writes nothing) when another writer got there first.
///
/// One statement (so one implicit transaction and, with the statement cached
/// per connection, one round trip): the `UPDATE` takes the test's row lock and
/// matches nothing for the loser of a race, and the `INSERT` only inserts what
/// the `UPDATE` let through. The answer that completes the test is the
/// exception: it and its `test.completed` event share a transaction.
pub async fn record_answer(
    db: &Pool,
    test: Uuid,
    answered_before: i32,
    a: &Answer<'_>,
) -> Result<bool, StoreError> {
    let mut client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH moved AS (
                 UPDATE test_sessions t
                 SET items_answered = t.items_answered + 1,
                     pretest_answered = t.pretest_answered + $13::boolean::int,
                     correct_count = t.correct_count + ($5::boolean AND NOT $13::boolean)::int,
                     theta = $8, se = $9, status = $10, current_question = $11,
                     served_at = now(), updated_at = now()
                 FROM (SELECT served_at FROM test_sessions WHERE id = $1) AS before
                 WHERE t.id = $1 AND t.status = 'active' AND t.items_answered = $2
                   AND (t.deadline IS NULL OR now() <= t.deadline)
                 RETURNING t.id, before.served_at
             )
             INSERT INTO test_responses (session_id, seq, question_id, response, correct,
                                         theta_before, se_before, theta_after, se_after, served_at,
                                         score, pretest)
             SELECT id, $2 + 1, $3, $4, $5, $6, $7, $8, $9, served_at, $12, $13 FROM moved",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
        &test,
        &answered_before,
        &a.question_id,
        &a.response,
        &a.correct,
        &a.before.theta,
        &a.before.se,
        &a.after.theta,
        &a.after.se,
        &a.status.as_str(),
        &a.next_question,
        &i16::from(a.score),
        &a.pretest,
    ];
    if a.status == TestStatus::Completed {
        // The answer that completes the test tells integrators so, in its
        // transaction; every other answer stays one statement.
        let tx = client.transaction().await?;
        let inserted = tx.execute(&statement, &params).await? == 1;
        if inserted {
            super::outbox::test_events(&tx, super::outbox::Kind::TestCompleted, &[test], false)
                .await?;
        }
        tx.commit().await?;
        return Ok(inserted);
    }
    let inserted = client.execute(&statement, &params).await?;
    Ok(inserted == 1)
}

/// Final results of a test.
pub struct Final<'a> {
    /// Overall estimate.
    pub overall: Estimate,
    /// Per-concept estimates: (concept, estimate, n).
    pub concepts: &'a [(String, Estimate, usize)],
}

/// Ends a test (as `status`: ended or timed out) that still has `answered`
/// responses, writes its final results and, when `apply` (or its assignment's
/// results are released by now), the student's long-term proficiency (an
/// exam's wait for its release); returns the end
/// time, or `None` when the test moved on meanwhile (and nothing was written).
pub async fn finish(
    db: &Pool,
    t: &TestRecord,
    f: &Final<'_>,
    status: TestStatus,
    apply: bool,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let concepts_json: serde_json::Map<String, serde_json::Value> = f
        .concepts
        .iter()
        .map(|(name, e, n)| {
            (
                name.clone(),
                serde_json::json!({ "theta": e.theta, "se": e.se, "n": n }),
            )
        })
        .collect();
    let concepts_json = serde_json::Value::Object(concepts_json);
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    // An exam's results wait for the release of its assignment. The share lock
    // orders this with a release running now (which locks the row to update
    // it): either the release is seen here, or it sees this test ended.
    let apply = match (apply, t.assignment_id) {
        (false, Some(assignment)) => tx
            .query_opt(
                "SELECT released_at IS NOT NULL FROM assignments WHERE id = $1 FOR SHARE",
                &[&assignment],
            )
            .await?
            .is_some_and(|r| r.get(0)),
        (apply, _) => apply,
    };
    let Some(ended) = tx
        .query_opt(
            "UPDATE test_sessions
             SET status = $6, theta = $3, se = $4, concepts = $5, current_question = NULL,
                 proficiency_applied = $7, ended_at = now(), updated_at = now()
             WHERE id = $1 AND status IN ('active', 'completed') AND items_answered = $2
             RETURNING ended_at",
            &[
                &t.id,
                &t.items_answered,
                &f.overall.theta,
                &f.overall.se,
                &concepts_json,
                &status.as_str(),
                &apply,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let kind = match status {
        TestStatus::TimedOut => super::outbox::Kind::TestTimedOut,
        _ => super::outbox::Kind::TestEnded,
    };
    super::outbox::test_events(&tx, kind, &[t.id], true).await?;
    // Long-term ability counts scored answers only.
    let scored = t.scored();
    if let (Some(student), true, true) = (t.student_id, scored > 0, apply) {
        let upsert = tx
            .prepare(
                "INSERT INTO student_proficiencies (student_id, org_id, concept, theta, se, n)
                 VALUES ($1, $6, $2, $3, $4, $5)
                 ON CONFLICT ON CONSTRAINT student_proficiencies_key
                 DO UPDATE SET theta = EXCLUDED.theta, se = EXCLUDED.se,
                               n = student_proficiencies.n + EXCLUDED.n, updated_at = now()",
            )
            .await?;
        let overall = (String::new(), f.overall, scored as usize);
        for (concept, est, n) in std::iter::once(&overall).chain(f.concepts) {
            tx.execute(
                &upsert,
                &[
                    &student,
                    concept,
                    &est.theta,
                    &est.se,
                    &(*n as i32),
                    &t.org_id,
                ],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(ended.get("ended_at")))
}

/// What starting a test needs from PostgreSQL, read in one query: the pool,
/// the organization the test will belong to, where the caller stands there,
/// and the student's long-term ability in it.
#[derive(Debug, Clone, Copy)]
pub struct StartContext {
    /// The pool's current version.
    pub pool_version: i32,
    /// The pool's organization (`None`: a shared pool).
    pub pool_org: Option<Uuid>,
    /// How many organizations the student belongs to.
    pub student_orgs: i64,
    /// Whether the student exists.
    pub student_exists: bool,
    /// Whether the student is a member of the test's organization.
    pub student_member: bool,
    /// Where the caller stands in the test's organization (its `org` is the
    /// test's: the pool's, else the one asked for, else the student's only one).
    pub standing: Standing,
    /// The student's long-term overall ability there, if any.
    pub history: Option<Estimate>,
}

/// [`StartContext`] of `caller` starting a test for `student` on `pool_id`
/// (in `org` when the pool is shared); `None` when there is no such pool.
pub async fn start_context(
    db: &Pool,
    pool_id: Uuid,
    student: Uuid,
    org: Option<Uuid>,
    caller: Uuid,
) -> Result<Option<StartContext>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH p AS (SELECT version, org_id FROM item_pools WHERE id = $1),
                  m AS (SELECT count(*) AS n, (array_agg(org_id))[1] AS only
                        FROM memberships WHERE user_id = $2),
                  o AS (SELECT coalesce(p.org_id, $3::uuid, CASE WHEN m.n = 1 THEN m.only END) AS org_id
                        FROM p, m)
             SELECT p.version, p.org_id AS pool_org, o.org_id, m.n AS student_orgs,
                    EXISTS (SELECT 1 FROM users WHERE id = $2) AS student_exists,
                    EXISTS (SELECT 1 FROM memberships WHERE user_id = $2 AND org_id = o.org_id) AS student_member,
                    coalesce((SELECT role = 'admin' FROM users WHERE id = $4), false) AS platform_admin,
                    (SELECT role FROM memberships WHERE user_id = $4 AND org_id = o.org_id) AS org_role,
                    EXISTS (SELECT 1 FROM class_teachers t
                            JOIN class_students s ON s.class_id = t.class_id
                            WHERE t.user_id = $4 AND s.user_id = $2 AND t.org_id = o.org_id) AS teaches_student,
                    sp.theta, sp.se
             FROM p CROSS JOIN m CROSS JOIN o
             LEFT JOIN student_proficiencies sp
                    ON sp.student_id = $2 AND sp.org_id IS NOT DISTINCT FROM o.org_id AND sp.concept = ''",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&pool_id, &student, &org, &caller])
        .await?;
    Ok(row.map(|r| {
        let theta: Option<f64> = r.get("theta");
        let se: Option<f64> = r.get("se");
        let role: Option<&str> = r.get("org_role");
        StartContext {
            pool_version: r.get("version"),
            pool_org: r.get("pool_org"),
            student_orgs: r.get("student_orgs"),
            student_exists: r.get("student_exists"),
            student_member: r.get("student_member"),
            standing: Standing {
                found: true,
                org: r.get("org_id"),
                platform_admin: r.get("platform_admin"),
                org_role: role.and_then(OrgRole::parse),
                teaches_student: r.get("teaches_student"),
                teaches_class: false,
                staff_anywhere: false,
            },
            history: theta.zip(se).map(|(theta, se)| Estimate { theta, se }),
        }
    }))
}

/// One running test of an organization.
#[derive(Debug, Clone)]
pub struct RunningTest {
    /// Test id.
    pub id: Uuid,
    /// The student.
    pub student_id: Option<Uuid>,
    /// Pool.
    pub pool_id: Uuid,
    /// `active` or `completed`.
    pub status: TestStatus,
    /// Responses recorded.
    pub items_answered: i32,
    /// Latest estimate.
    pub estimate: Estimate,
    /// Start time.
    pub started_at: OffsetDateTime,
    /// Last answer (or the start).
    pub updated_at: OffsetDateTime,
}

/// A page of `org`'s running (active or completed) tests, newest first, and
/// how many there are.
pub async fn running_in(
    db: &Pool,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RunningTest>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT count(*) OVER () AS total, id, student_id, pool_id, status, items_answered,
                    theta, se, started_at, updated_at
             FROM test_sessions
             WHERE org_id = $1 AND status IN ('active', 'completed')
             ORDER BY started_at DESC, id LIMIT $2 OFFSET $3",
            &[&org, &limit, &offset],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        // Past the last page: count on its own.
        None => client
            .query_one(
                "SELECT count(*) FROM test_sessions WHERE org_id = $1 AND status IN ('active', 'completed')",
                &[&org],
            )
            .await?
            .get(0),
    };
    let tests = rows
        .iter()
        .map(|r| {
            Ok(RunningTest {
                id: r.get("id"),
                student_id: r.get("student_id"),
                pool_id: r.get("pool_id"),
                status: TestStatus::parse(r.get("status"))?,
                items_answered: r.get("items_answered"),
                estimate: Estimate {
                    theta: r.get("theta"),
                    se: r.get("se"),
                },
                started_at: r.get("started_at"),
                updated_at: r.get("updated_at"),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((tests, total))
}

/// Keeps an active or completed test alive for `seconds` from now; returns the
/// new deadline, or `None` when the test is not (or no longer) running.
pub async fn keep_until(
    db: &Pool,
    test: Uuid,
    seconds: u32,
    audit: audit::Entry,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE test_sessions SET keep_until = now() + make_interval(secs => $2)
             WHERE id = $1 AND status IN ('active', 'completed')
             RETURNING keep_until",
            &[&test, &f64::from(seconds)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    audit::record(&tx, audit).await?;
    tx.commit().await?;
    Ok(Some(row.get(0)))
}

// ---------------------------------------------------------------------------
// Redis: the live state, the submission lock.

/// How long a submission lock lives if its holder never releases it.
pub const LOCK_TTL: Duration = Duration::from_secs(5);

/// Writes a test's state only if the stored one is still at the expected `seq`,
/// so a slow writer can never roll a test back; never shortens the TTL (an
/// extended test keeps its extension); releases the submission lock in
/// `KEYS[2]`, when given, if it still holds our token.
/// Returns 1 written, 0 no state, -1 another writer moved it on.
static SET_IF_SEQ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        local outcome
        if not cur then
            outcome = 0
        elseif struct.unpack('>I4', cur) ~= tonumber(ARGV[1]) then
            outcome = -1
        else
            local ttl = math.max(redis.call('PTTL', KEYS[1]), tonumber(ARGV[3]))
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
            outcome = 1
        end
        if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[4] then
            redis.call('DEL', KEYS[2])
        end
        return outcome
        ",
    )
});

/// Deletes a lock only if it still holds our token (it may have expired and
/// been taken by someone else).
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

/// Outcome of a compare-and-set on a test's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written.
    Written,
    /// The state was gone (expired or deleted by `end`).
    Missing,
    /// Another writer moved the state on first.
    Stale,
}

/// A submission lock we hold: its question and our token.
#[derive(Debug, Clone)]
pub struct Lock {
    /// The question being answered.
    pub question_id: String,
    token: String,
}

impl Lock {
    /// A new lock on `question_id` with a random token.
    pub fn new(question_id: &str) -> Self {
        Self {
            question_id: question_id.to_owned(),
            token: format!("{:032x}", rand::random::<u128>()),
        }
    }
}

/// A test's live state as read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// As written: the `seq` writers compare-and-set on, and the body.
    Framed {
        /// Responses recorded when it was written.
        seq: u32,
        /// The service's encoding of the rest.
        body: Vec<u8>,
    },
    /// Too short to carry a `seq`: not written by lectern.
    Garbled,
}

impl Stored {
    /// Splits the value read in place (no copy of the body on the hot path).
    fn read(mut raw: Vec<u8>) -> Self {
        match unframe(&raw).map(|(seq, _)| seq) {
            Some(seq) => {
                raw.drain(..4);
                Stored::Framed { seq, body: raw }
            }
            None => Stored::Garbled,
        }
    }

    /// The `seq` it was written at, when it has one.
    pub fn seq(&self) -> Option<u32> {
        match self {
            Stored::Framed { seq, .. } => Some(*seq),
            Stored::Garbled => None,
        }
    }
}

/// A test's live state read without touching it, with what an operator sees of it.
#[derive(Debug, Clone)]
pub struct Peeked {
    /// The state.
    pub stored: Stored,
    /// Its size in Redis (frame included).
    pub bytes: usize,
    /// Milliseconds left.
    pub ttl_ms: i64,
}

/// Takes the submission lock and reads the test's state, sliding its TTL (one
/// round trip). `false` when another submit of this question holds the lock.
pub async fn begin_submit(
    store: &RedisStore,
    test: Uuid,
    lock: &Lock,
    ttl: Duration,
) -> Result<(bool, Option<Stored>), StoreError> {
    let state_key = store.keys().test_state(test);
    let lock_key = store.keys().test_lock(test, &lock.question_id);
    let (locked, state): (Option<String>, Option<Vec<u8>>) = store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("SET")
                .arg(&lock_key)
                .arg(&lock.token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(LOCK_TTL))
                .add_command(get(&state_key))
                .add_command(slide(&state_key, ttl))
                .ignore()
                .query_async(c)
                .await
        })
        .await?;
    Ok((locked.is_some(), state.map(Stored::read)))
}

/// Reads a test's state and slides its TTL (never shortening an extension).
pub async fn touch_state(
    store: &RedisStore,
    test: Uuid,
    ttl: Duration,
) -> Result<Option<Stored>, StoreError> {
    let key = store.keys().test_state(test);
    let (state,): (Option<Vec<u8>>,) = store
        .round_trip(async |c| {
            redis::pipe()
                .add_command(get(&key))
                .add_command(slide(&key, ttl))
                .ignore()
                .query_async(c)
                .await
        })
        .await?;
    Ok(state.map(Stored::read))
}

/// Reads a test's state and its TTL without touching either.
pub async fn peek_state(store: &RedisStore, test: Uuid) -> Result<Option<Peeked>, StoreError> {
    Ok(peek_states(store, &[test]).await?.pop().flatten())
}

/// Several tests' states and TTLs, untouched, in one round trip.
pub async fn peek_states(
    store: &RedisStore,
    tests: &[Uuid],
) -> Result<Vec<Option<Peeked>>, StoreError> {
    if tests.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for &t in tests {
        let key = store.keys().test_state(t);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
    }
    let replies: Vec<(Option<Vec<u8>>, i64)> = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(replies
        .into_iter()
        .map(|(raw, ttl_ms)| {
            raw.map(|raw| Peeked {
                bytes: raw.len(),
                stored: Stored::read(raw),
                ttl_ms,
            })
        })
        .collect())
}

/// Stores a test's state unless one is there already (a new test, or a
/// rebuild racing another rebuild); true when written.
pub async fn put_state(
    store: &RedisStore,
    test: Uuid,
    seq: u32,
    body: &[u8],
    ttl: Duration,
) -> Result<bool, StoreError> {
    let key = store.keys().test_state(test);
    let value = frame(seq, body);
    let written: Option<String> = store
        .round_trip(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .arg("NX")
                .query_async(c)
                .await
        })
        .await?;
    Ok(written.is_some())
}

/// Replaces a test's state with one at `seq` if the stored one is still at
/// `expected_seq`, releasing `lock` in the same round trip.
pub async fn replace_state(
    store: &RedisStore,
    test: Uuid,
    expected_seq: u32,
    (seq, body): (u32, &[u8]),
    ttl: Duration,
    lock: Option<&Lock>,
) -> Result<CasOutcome, StoreError> {
    let mut invocation = SET_IF_SEQ.key(store.keys().test_state(test));
    if let Some(lock) = lock {
        invocation.key(store.keys().test_lock(test, &lock.question_id));
    }
    invocation
        .arg(expected_seq)
        .arg(frame(seq, body))
        .arg(ttl_ms(ttl))
        .arg(lock.map_or("", |l| l.token.as_str()));
    let outcome: i64 = store
        .round_trip(async |c| invocation.invoke_async(c).await)
        .await?;
    Ok(match outcome {
        1 => CasOutcome::Written,
        0 => CasOutcome::Missing,
        _ => CasOutcome::Stale,
    })
}

/// Writes a test's state whatever is there (an administrator's resync).
pub async fn overwrite_state(
    store: &RedisStore,
    test: Uuid,
    (seq, body): (u32, &[u8]),
    ttl: Duration,
) -> Result<(), StoreError> {
    store
        .set_bytes(&store.keys().test_state(test), &frame(seq, body), ttl)
        .await
}

/// Releases a submission lock if it is still ours.
pub async fn release(store: &RedisStore, test: Uuid, lock: &Lock) -> Result<(), StoreError> {
    let key = store.keys().test_lock(test, &lock.question_id);
    let _: i64 = store
        .round_trip(async |c| RELEASE.key(&key).arg(&lock.token).invoke_async(c).await)
        .await?;
    Ok(())
}

/// Lets a test's state live at least `ttl` from now; `false` when there is no state.
pub async fn extend_state(
    store: &RedisStore,
    test: Uuid,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let key = store.keys().test_state(test);
    let (_, left): (i64, i64) = store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms(ttl))
                .arg("GT")
                .cmd("PTTL")
                .arg(&key)
                .query_async(c)
                .await
        })
        .await?;
    Ok(left >= 0)
}

/// Drops a test's state.
pub async fn delete_state(store: &RedisStore, test: Uuid) -> Result<(), StoreError> {
    let key = store.keys().test_state(test);
    let _: i64 = store
        .round_trip(async |c| redis::cmd("DEL").arg(&key).query_async(c).await)
        .await?;
    Ok(())
}

/// One step of a SCAN over the test states: the next cursor (0 at the end) and the tests found.
pub async fn scan_states(
    store: &RedisStore,
    cursor: u64,
    count: usize,
) -> Result<(u64, Vec<Uuid>), StoreError> {
    let keys = store.keys();
    let (next, found) = store
        .scan(&keys.test_state_pattern(), cursor, count, None)
        .await?;
    let tests = found
        .iter()
        .filter_map(|k| keys.test_of_state_key(k))
        .collect();
    Ok((next, tests))
}

/// `GET key`.
fn get(key: &str) -> redis::Cmd {
    redis::cmd("GET").arg(key).to_owned()
}

/// Slides a key's TTL up to `ttl`, never down (an extension stays).
fn slide(key: &str, ttl: Duration) -> redis::Cmd {
    redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ttl_ms(ttl))
        .arg("GT")
        .to_owned()
}

/// Tests this process advanced in PostgreSQL while their Redis state could not
/// follow: whatever Redis holds for them is behind, and is replaced on their
/// next request. Process memory (one per `App`), like the catalog: another
/// container finds out from the `seq` when its compare-and-set fails.
#[derive(Debug, Default)]
pub struct StaleStates(Mutex<HashSet<Uuid>>);

impl StaleStates {
    /// Notes that PostgreSQL moved `test` on while its Redis state could not follow.
    pub fn mark(&self, test: Uuid) {
        self.0.lock().expect("stale set").insert(test);
    }

    /// Whether `test`'s Redis state is known to be behind PostgreSQL.
    pub fn contains(&self, test: Uuid) -> bool {
        self.0.lock().expect("stale set").contains(&test)
    }

    /// Forgets that `test`'s Redis state was behind (it has been replaced).
    pub fn clear(&self, test: Uuid) {
        self.0.lock().expect("stale set").remove(&test);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn lock_tokens_differ() {
        assert_ne!(Lock::new("q").token, Lock::new("q").token);
    }

    #[test]
    fn a_value_too_short_for_a_frame_reads_as_garbled() {
        assert_eq!(Stored::read(b"abc".to_vec()), Stored::Garbled);
        assert_eq!(
            Stored::read(frame(3, b"x")),
            Stored::Framed {
                seq: 3,
                body: b"x".to_vec()
            }
        );
    }
}
