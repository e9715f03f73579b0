//! A student's history in PostgreSQL: their tests and long-term proficiency.

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::tests::TestStatus;

/// One test of a student, without its responses.
#[derive(Debug, Clone)]
pub struct TestSummary {
    /// Test id.
    pub id: Uuid,
    /// Pool the test draws from.
    pub pool_id: Uuid,
    /// Pool version fixed at start.
    pub pool_version: i32,
    /// The organization it was taken in.
    pub org_id: Option<Uuid>,
    /// Lifecycle state.
    pub status: TestStatus,
    /// Responses recorded.
    pub items_answered: i32,
    /// Correct responses recorded.
    pub correct_count: i32,
    /// Latest (or final) overall ability.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Start time.
    pub started_at: OffsetDateTime,
    /// End time, once ended.
    pub ended_at: Option<OffsetDateTime>,
    /// An exam whose results are not released: its student sees no results.
    pub sealed: bool,
}

/// One page of a student's tests and how many they have in all.
#[derive(Debug, Clone)]
pub struct TestPage {
    /// The page, newest first.
    pub tests: Vec<TestSummary>,
    /// Every test of the student, on any page.
    pub total: i64,
}

/// A page of the student's tests, newest first (by start time, then id), in
/// the organizations `orgs` only (`None`: all of them, and those taken outside
/// any); `None` when no user has this id.
pub async fn tests(
    db: &Pool,
    student: Uuid,
    orgs: Option<&[Uuid]>,
    limit: i64,
    offset: i64,
) -> Result<Option<TestPage>, StoreError> {
    let client = db.get().await?;
    // One statement, so the user check, the total and the page come from one snapshot;
    // the LEFT JOIN keeps a row for a user with no test on this page.
    let rows = client
        .query(
            "SELECT (SELECT count(*) FROM test_sessions s
                     WHERE s.student_id = u.id AND ($4::uuid[] IS NULL OR s.org_id = ANY($4))) AS total,
                    t.id, t.pool_id, t.pool_version, t.org_id, t.status, t.items_answered,
                    t.correct_count, t.theta, t.se, t.started_at, t.ended_at,
                    (t.config->>'mode' = 'exam'
                     AND NOT EXISTS (SELECT 1 FROM assignments a
                                     WHERE a.id = t.assignment_id AND a.released_at IS NOT NULL))
                        AS sealed
             FROM users u
             LEFT JOIN LATERAL (
                 SELECT * FROM test_sessions s
                 WHERE s.student_id = u.id AND ($4::uuid[] IS NULL OR s.org_id = ANY($4))
                 ORDER BY s.started_at DESC, s.id LIMIT $2 OFFSET $3
             ) t ON true
             WHERE u.id = $1
             ORDER BY t.started_at DESC, t.id",
            &[&student, &limit, &offset, &orgs],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let total = first.get("total");
    let tests = rows
        .iter()
        .filter(|r| r.get::<_, Option<Uuid>>("id").is_some())
        .map(|r| {
            Ok(TestSummary {
                id: r.get("id"),
                pool_id: r.get("pool_id"),
                pool_version: r.get("pool_version"),
                org_id: r.get("org_id"),
                status: TestStatus::parse(r.get("status"))?,
                items_answered: r.get("items_answered"),
                correct_count: r.get("correct_count"),
                theta: r.get("theta"),
                se: r.get("se"),
                started_at: r.get("started_at"),
                sealed: r.get::<_, Option<bool>>("sealed").unwrap_or(false),
                ended_at: r.get("ended_at"),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(TestPage { tests, total }))
}

/// The stored status name as a `TestStatus` (`store::tests` owns the names).
/// A long-term ability, overall or on one concept.
#[derive(Debug, Clone, PartialEq)]
pub struct Ability {
    /// `""` for the overall ability, else the concept's name.
    pub concept: String,
    /// Ability.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Items answered that it rests on, over every ended test.
    pub n: i32,
    /// Last update (the end of a test).
    pub updated_at: OffsetDateTime,
}

/// A student's long-term abilities in one organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Abilities {
    /// The organization (`None`: from tests taken outside any).
    pub org_id: Option<Uuid>,
    /// By concept name, `""` first: the overall one.
    pub abilities: Vec<Ability>,
}

/// The student's long-term abilities in `org` when asked (`Some(None)`: from
/// tests outside any organization), else in the one updated last; within
/// `orgs` only (`None`: anywhere). `None` when no user has this id.
pub async fn proficiency(
    db: &Pool,
    student: Uuid,
    orgs: Option<&[Uuid]>,
    org: Option<Option<Uuid>>,
) -> Result<Option<Abilities>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "WITH chosen AS (
                 SELECT CASE WHEN $3::boolean THEN $4::uuid
                        ELSE (SELECT org_id FROM student_proficiencies
                              WHERE student_id = $1 AND ($2::uuid[] IS NULL OR org_id = ANY($2))
                              ORDER BY updated_at DESC LIMIT 1) END AS org_id)
             SELECT c.org_id AS chosen, p.concept, p.theta, p.se, p.n, p.updated_at
             FROM users u CROSS JOIN chosen c
             LEFT JOIN student_proficiencies p
                    ON p.student_id = u.id AND p.org_id IS NOT DISTINCT FROM c.org_id
                   AND ($2::uuid[] IS NULL OR p.org_id = ANY($2))
             WHERE u.id = $1
             ORDER BY p.concept",
            &[&student, &orgs, &org.is_some(), &org.flatten()],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Abilities {
        org_id: first.get("chosen"),
        abilities: rows
            .iter()
            .filter_map(|r| {
                Some(Ability {
                    concept: r.get::<_, Option<String>>("concept")?,
                    theta: r.get("theta"),
                    se: r.get("se"),
                    n: r.get("n"),
                    updated_at: r.get("updated_at"),
                })
            })
            .collect(),
    }))
}
