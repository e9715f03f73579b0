//! Adaptive tests and their responses in PostgreSQL (the system of record).

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::engine::{Estimate, NormalPrior};

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
}

impl TestStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Active => "active",
            TestStatus::Completed => "completed",
            TestStatus::Ended => "ended",
            TestStatus::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "active" => TestStatus::Active,
            "completed" => TestStatus::Completed,
            "ended" => TestStatus::Ended,
            "abandoned" => TestStatus::Abandoned,
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
    /// Responses recorded.
    pub items_answered: i32,
    /// Correct responses recorded.
    pub correct_count: i32,
    /// The question being served, while active.
    pub current_question: Option<String>,
    /// Final per-concept results (JSON), once ended.
    pub concepts: Option<serde_json::Value>,
    /// Start time.
    pub started_at: OffsetDateTime,
    /// End time, once ended.
    pub ended_at: Option<OffsetDateTime>,
    /// Kept alive by an administrator until then, whatever the sliding TTL says.
    pub keep_until: Option<OffsetDateTime>,
}

fn record(row: &Row) -> Result<TestRecord, StoreError> {
    Ok(TestRecord {
        id: row.get("id"),
        pool_id: row.get("pool_id"),
        pool_version: row.get("pool_version"),
        student_id: row.get("student_id"),
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
        correct_count: row.get("correct_count"),
        current_question: row.get("current_question"),
        concepts: row.get("concepts"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        keep_until: row.get("keep_until"),
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
    /// Whether it was the key.
    pub correct: bool,
    /// Estimate after this response.
    pub after: Estimate,
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
                                        prior_mean, prior_sd, theta, se, current_question)
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $7, $8, $9)",
        )
        .await?;
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
        .query_opt("SELECT * FROM test_sessions WHERE id = $1", &[&id])
        .await?
    else {
        return Ok(None);
    };
    let rows = tx
        .query(
            "SELECT seq, question_id, response, correct, theta_after, se_after, answered_at
             FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    let responses = rows
        .iter()
        .map(|r| ResponseRecord {
            seq: r.get("seq"),
            question_id: r.get("question_id"),
            response: r.get("response"),
            correct: r.get("correct"),
            after: Estimate {
                theta: r.get("theta_after"),
                se: r.get("se_after"),
            },
            answered_at: r.get("answered_at"),
        })
        .collect();
    Ok(Some((record(&row)?, responses)))
}

/// One answer, with what it changed.
pub struct Answer<'a> {
    /// The question answered.
    pub question_id: &'a str,
    /// The option chosen.
    pub response: &'a str,
    /// Whether it was the key.
    pub correct: bool,
    /// Estimate before and after.
    pub before: Estimate,
    /// Estimate after this answer.
    pub after: Estimate,
    /// Status after this answer (active or completed).
    pub status: TestStatus,
    /// The question served next, if any.
    pub next_question: Option<&'a str>,
}

/// Records an answer if the test is still active with exactly `answered_before`
/// responses; returns false (and writes nothing) when another writer got there first.
///
/// One statement (so one implicit transaction and, with the statement cached
/// per connection, one round trip): the `UPDATE` takes the test's row lock and
/// matches nothing for the loser of a race, and the `INSERT` only inserts what
/// the `UPDATE` let through.
pub async fn record_answer(
    db: &Pool,
    test: Uuid,
    answered_before: i32,
    a: &Answer<'_>,
) -> Result<bool, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH moved AS (
                 UPDATE test_sessions
                 SET items_answered = items_answered + 1,
                     correct_count = correct_count + $5::boolean::int,
                     theta = $8, se = $9, status = $10, current_question = $11, updated_at = now()
                 WHERE id = $1 AND status = 'active' AND items_answered = $2
                 RETURNING id
             )
             INSERT INTO test_responses (session_id, seq, question_id, response, correct,
                                         theta_before, se_before, theta_after, se_after)
             SELECT id, $2 + 1, $3, $4, $5, $6, $7, $8, $9 FROM moved",
        )
        .await?;
    let inserted = client
        .execute(
            &statement,
            &[
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
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Final results of a test.
pub struct Final<'a> {
    /// Overall estimate.
    pub overall: Estimate,
    /// Per-concept estimates: (concept, estimate, n).
    pub concepts: &'a [(String, Estimate, usize)],
}

/// Ends a test that still has `answered` responses, writes its final results and
/// the student's long-term proficiency; returns the end time, or `None` when the
/// test moved on meanwhile (and nothing was written).
pub async fn finish(
    db: &Pool,
    t: &TestRecord,
    f: &Final<'_>,
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
    let Some(ended) = tx
        .query_opt(
            "UPDATE test_sessions
             SET status = 'ended', theta = $3, se = $4, concepts = $5, current_question = NULL,
                 ended_at = now(), updated_at = now()
             WHERE id = $1 AND status IN ('active', 'completed') AND items_answered = $2
             RETURNING ended_at",
            &[
                &t.id,
                &t.items_answered,
                &f.overall.theta,
                &f.overall.se,
                &concepts_json,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    if let (Some(student), true) = (t.student_id, t.items_answered > 0) {
        let upsert = tx
            .prepare(
                "INSERT INTO student_proficiencies (student_id, concept, theta, se, n) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (student_id, concept)
                 DO UPDATE SET theta = EXCLUDED.theta, se = EXCLUDED.se,
                               n = student_proficiencies.n + EXCLUDED.n, updated_at = now()",
            )
            .await?;
        let overall = (String::new(), f.overall, t.items_answered as usize);
        for (concept, est, n) in std::iter::once(&overall).chain(f.concepts) {
            tx.execute(
                &upsert,
                &[&student, concept, &est.theta, &est.se, &(*n as i32)],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(ended.get("ended_at")))
}

/// What starting a test needs from PostgreSQL, read in one query.
#[derive(Debug, Clone, Copy)]
pub struct StartContext {
    /// The pool's current version.
    pub pool_version: i32,
    /// Whether the student asked for exists (true when none was asked for).
    pub student_exists: bool,
    /// The student's long-term overall ability, if any.
    pub history: Option<Estimate>,
}

/// The pool's current version and the student's long-term ability; `None` when
/// there is no such pool.
pub async fn start_context(
    db: &Pool,
    pool_id: Uuid,
    student: Option<Uuid>,
) -> Result<Option<StartContext>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT p.version, ($2::uuid IS NULL OR u.id IS NOT NULL) AS student_exists, sp.theta, sp.se
             FROM item_pools p
             LEFT JOIN users u ON u.id = $2
             LEFT JOIN student_proficiencies sp ON sp.student_id = u.id AND sp.concept = ''
             WHERE p.id = $1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&pool_id, &student]).await?;
    Ok(row.map(|r| {
        let theta: Option<f64> = r.get("theta");
        let se: Option<f64> = r.get("se");
        StartContext {
            pool_version: r.get("version"),
            student_exists: r.get("student_exists"),
            history: theta.zip(se).map(|(theta, se)| Estimate { theta, se }),
        }
    }))
}

/// Keeps an active or completed test alive for `seconds` from now; returns the
/// new deadline, or `None` when the test is not (or no longer) running.
pub async fn keep_until(
    db: &Pool,
    test: Uuid,
    seconds: u32,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            "UPDATE test_sessions SET keep_until = now() + make_interval(secs => $2)
             WHERE id = $1 AND status IN ('active', 'completed')
             RETURNING keep_until",
            &[&test, &f64::from(seconds)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
