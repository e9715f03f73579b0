//! Assessments, their immutable versions, assignments, accommodations and
//! the gradebook in PostgreSQL (the tables of `V7__assessments.sql`). A start
//! from an assignment is one guarded `INSERT`: the unique index on (assignment,
//! student, attempt) lets one of any number of concurrent starts through.

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use super::outbox;
use super::tests::TestStatus;
use lectern_engine::NormalPrior;
use serde_json::json;

/// One version of an assessment.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// Its id.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Display name.
    pub name: String,
    /// The version read.
    pub version: i32,
    /// The newest version.
    pub latest_version: i32,
    /// The pool its tests draw from.
    pub pool_id: Uuid,
    /// The pool version pinned (`None`: the latest at each start).
    pub pool_version: Option<i32>,
    /// The design (JSON of `cat::TestConfig`).
    pub design: serde_json::Value,
    /// Who made this version.
    pub created_by: Option<Uuid>,
    /// When this version was made.
    pub created_at: OffsetDateTime,
}

const ASSESSMENT_COLUMNS: &str =
    "a.id, a.org_id, a.name, v.version, a.latest_version, v.pool_id, v.pool_version,
     v.design, v.created_by, v.created_at";

fn assessment(r: &Row) -> Assessment {
    Assessment {
        id: r.get("id"),
        org_id: r.get("org_id"),
        name: r.get("name"),
        version: r.get("version"),
        latest_version: r.get("latest_version"),
        pool_id: r.get("pool_id"),
        pool_version: r.get("pool_version"),
        design: r.get("design"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
    }
}

/// A version to write.
pub struct NewVersion<'a> {
    /// The pool.
    pub pool_id: Uuid,
    /// Pinned pool version, if any.
    pub pool_version: Option<i32>,
    /// The design.
    pub design: &'a serde_json::Value,
    /// Who writes it.
    pub by: Uuid,
}

/// Creates an assessment with its first version.
pub async fn create(
    db: &Pool,
    id: Uuid,
    org: Uuid,
    name: &str,
    v: &NewVersion<'_>,
) -> Result<Assessment, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let (idem_key, idem_hash) = super::idempotency::columns();
    tx.execute(
        "INSERT INTO assessments (id, org_id, name, created_by, idempotency_key, idempotency_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &org, &name, &v.by, &idem_key, &idem_hash],
    )
    .await?;
    insert_version(&tx, id, 1, v).await?;
    let row = read_in(&tx, id, Some(1)).await?;
    let entry = Entry::new("assessment.created", "assessment", id)
        .org(Some(org))
        .detail(json!({ "name": name, "version": 1, "pool_id": v.pool_id }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    row.ok_or_else(|| StoreError::Corrupt(format!("assessment {id} not read back")))
}

/// Adds the next version (and renames, when `name` is given); `None` when
/// there is no such assessment.
pub async fn add_version(
    db: &Pool,
    id: Uuid,
    name: Option<&str>,
    v: &NewVersion<'_>,
) -> Result<Option<Assessment>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "UPDATE assessments SET latest_version = latest_version + 1,
                                    name = coalesce($2, name), updated_at = now()
             WHERE id = $1 RETURNING latest_version",
            &[&id, &name],
        )
        .await?
    else {
        return Ok(None);
    };
    let version: i32 = row.get(0);
    insert_version(&tx, id, version, v).await?;
    let read = read_in(&tx, id, Some(version)).await?;
    let entry = Entry::new("assessment.versioned", "assessment", id)
        .org(read.as_ref().map(|a| a.org_id))
        .detail(json!({ "name": name, "version": version, "pool_id": v.pool_id }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(read)
}

async fn insert_version(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    version: i32,
    v: &NewVersion<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO assessment_versions (assessment_id, version, pool_id, pool_version, design, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &version, &v.pool_id, &v.pool_version, v.design, &v.by],
    )
    .await?;
    Ok(())
}

async fn read_in(
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
    version: Option<i32>,
) -> Result<Option<Assessment>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments a
                 JOIN assessment_versions v
                   ON v.assessment_id = a.id AND v.version = coalesce($2, a.latest_version)
                 WHERE a.id = $1"
            ),
            &[&id, &version],
        )
        .await?;
    Ok(row.as_ref().map(assessment))
}

/// Version `version` (the latest when `None`) of an assessment.
pub async fn get(
    db: &Pool,
    id: Uuid,
    version: Option<i32>,
) -> Result<Option<Assessment>, StoreError> {
    read_in(&db.get().await?, id, version).await
}

/// A page of an organization's assessments (latest versions), newest first.
pub async fn list(
    db: &Pool,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Assessment>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ASSESSMENT_COLUMNS}, count(*) OVER () AS total FROM assessments a
                 JOIN assessment_versions v ON v.assessment_id = a.id AND v.version = a.latest_version
                 WHERE a.org_id = $1 ORDER BY a.created_at DESC, a.id LIMIT $2 OFFSET $3"
            ),
            &[&org, &limit, &offset],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None => client
            .query_one(
                "SELECT count(*) FROM assessments WHERE org_id = $1",
                &[&org],
            )
            .await?
            .get(0),
    };
    Ok((rows.iter().map(assessment).collect(), total))
}

/// An assignment.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Its id.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// The assessment.
    pub assessment_id: Uuid,
    /// The assessment's version given.
    pub assessment_version: i32,
    /// The assessment's name.
    pub name: String,
    /// The class.
    pub class_id: Uuid,
    /// Only chosen students of the class (listed in `students`).
    pub chosen: bool,
    /// The chosen students, when `chosen`.
    pub students: Vec<Uuid>,
    /// Opening time.
    pub opens_at: OffsetDateTime,
    /// Closing time.
    pub closes_at: OffsetDateTime,
    /// Attempts each student has.
    pub max_attempts: i32,
    /// When the results were released.
    pub released_at: Option<OffsetDateTime>,
    /// Who made it.
    pub created_by: Option<Uuid>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

const ASSIGNMENT_COLUMNS: &str =
    "g.id, g.org_id, g.assessment_id, g.assessment_version, a.name, g.class_id,
     g.chosen, g.opens_at, g.closes_at, g.max_attempts, g.released_at, g.created_by, g.created_at,
     ARRAY(SELECT s.student_id FROM assignment_students s WHERE s.assignment_id = g.id
           ORDER BY s.student_id) AS students";

fn assignment_row(r: &Row) -> Assignment {
    Assignment {
        id: r.get("id"),
        org_id: r.get("org_id"),
        assessment_id: r.get("assessment_id"),
        assessment_version: r.get("assessment_version"),
        name: r.get("name"),
        class_id: r.get("class_id"),
        chosen: r.get("chosen"),
        students: r.get("students"),
        opens_at: r.get("opens_at"),
        closes_at: r.get("closes_at"),
        max_attempts: r.get("max_attempts"),
        released_at: r.get("released_at"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
    }
}

/// An assignment to write.
pub struct NewAssignment<'a> {
    /// Its id.
    pub id: Uuid,
    /// The assessment.
    pub assessment_id: Uuid,
    /// Its version (`None`: the latest).
    pub assessment_version: Option<i32>,
    /// The class.
    pub class_id: Uuid,
    /// Chosen students of the class (empty: the whole class).
    pub students: &'a [Uuid],
    /// Opening time.
    pub opens_at: OffsetDateTime,
    /// Closing time.
    pub closes_at: OffsetDateTime,
    /// Attempts.
    pub max_attempts: i32,
    /// Who makes it.
    pub by: Uuid,
}

/// Why an assignment was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAssigned {
    /// No such assessment in the class's organization (or no such version).
    NoAssessment,
    /// These chosen students are not enrolled in the class.
    NotEnrolled(Vec<Uuid>),
}

/// Creates an assignment of an assessment of the class's organization.
pub async fn assign(
    db: &Pool,
    a: &NewAssignment<'_>,
) -> Result<Result<Assignment, NotAssigned>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let outside: Vec<Uuid> = tx
        .query_one(
            "SELECT ARRAY(SELECT u FROM unnest($2::uuid[]) u
                          WHERE NOT EXISTS (SELECT 1 FROM class_students s
                                            WHERE s.class_id = $1 AND s.user_id = u)
                          ORDER BY u)",
            &[&a.class_id, &a.students],
        )
        .await?
        .get(0);
    if !outside.is_empty() {
        return Ok(Err(NotAssigned::NotEnrolled(outside)));
    }
    let (idem_key, idem_hash) = super::idempotency::columns();
    let inserted = tx
        .execute(
            "INSERT INTO assignments (id, org_id, assessment_id, assessment_version, class_id, chosen,
                                      opens_at, closes_at, max_attempts, created_by,
                                      idempotency_key, idempotency_hash)
             SELECT $1, c.org_id, a.id, coalesce($3, a.latest_version), c.id, $5, $6, $7, $8, $9,
                    $10, $11
             FROM classes c JOIN assessments a ON a.org_id = c.org_id AND a.id = $2
             WHERE c.id = $4
               AND EXISTS (SELECT 1 FROM assessment_versions v
                           WHERE v.assessment_id = a.id AND v.version = coalesce($3, a.latest_version))",
            &[
                &a.id,
                &a.assessment_id,
                &a.assessment_version,
                &a.class_id,
                &!a.students.is_empty(),
                &a.opens_at,
                &a.closes_at,
                &a.max_attempts,
                &a.by,
                &idem_key,
                &idem_hash,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(Err(NotAssigned::NoAssessment));
    }
    tx.execute(
        "INSERT INTO assignment_students (assignment_id, student_id)
         SELECT $1, u FROM unnest($2::uuid[]) u ON CONFLICT DO NOTHING",
        &[&a.id, &a.students],
    )
    .await?;
    let written = assignment_in(&tx, a.id).await?;
    let entry = Entry::new("assignment.created", "assignment", a.id)
        .org(written.as_ref().map(|w| w.org_id))
        .detail(json!({
            "assessment_id": a.assessment_id,
            "class_id": a.class_id,
            "students": a.students.len(),
        }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    written
        .map(Ok)
        .ok_or_else(|| StoreError::Corrupt(format!("assignment {} not read back", a.id)))
}

/// An assignment by id.
pub async fn assignment_by_id(db: &Pool, id: Uuid) -> Result<Option<Assignment>, StoreError> {
    assignment_in(&db.get().await?, id).await
}

async fn assignment_in(
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
) -> Result<Option<Assignment>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {ASSIGNMENT_COLUMNS} FROM assignments g
                 JOIN assessments a ON a.id = g.assessment_id WHERE g.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(assignment_row))
}

/// One assignment as its student sees it: with their attempts.
#[derive(Debug, Clone)]
pub struct Assigned {
    /// The assignment.
    pub assignment: Assignment,
    /// Attempts started.
    pub attempts_used: i64,
    /// The attempt running, if one is.
    pub running: Option<Uuid>,
    /// The design (JSON of `cat::TestConfig`).
    pub design: serde_json::Value,
}

/// A page of the assignments `student` takes (their classes', whole-class or
/// chosen), soonest closing first.
pub async fn assigned_to(
    db: &Pool,
    student: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Assigned>, i64), StoreError> {
    let client = db.get().await?;
    let filter = "EXISTS (SELECT 1 FROM class_students cs WHERE cs.class_id = g.class_id AND cs.user_id = $1)
                  AND (NOT g.chosen OR EXISTS (SELECT 1 FROM assignment_students s
                                                WHERE s.assignment_id = g.id AND s.student_id = $1))";
    let rows = client
        .query(
            &format!(
                "SELECT {ASSIGNMENT_COLUMNS},
                        (SELECT count(*) FROM test_sessions t
                         WHERE t.assignment_id = g.id AND t.student_id = $1) AS used,
                        (SELECT t.id FROM test_sessions t
                         WHERE t.assignment_id = g.id AND t.student_id = $1
                           AND t.status IN ('active', 'completed')
                         ORDER BY t.attempt DESC LIMIT 1) AS running,
                        v.design
                 FROM assignments g JOIN assessments a ON a.id = g.assessment_id
                 JOIN assessment_versions v
                   ON v.assessment_id = g.assessment_id AND v.version = g.assessment_version
                 WHERE {filter}
                 ORDER BY g.closes_at, g.id LIMIT $2 OFFSET $3"
            ),
            &[&student, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM assignments g WHERE {filter}"),
            &[&student],
        )
        .await?
        .get(0);
    Ok((
        rows.iter()
            .map(|r| Assigned {
                assignment: assignment_row(r),
                attempts_used: r.get("used"),
                running: r.get("running"),
                design: r.get("design"),
            })
            .collect(),
        total,
    ))
}

/// A page of a class's assignments, newest first.
pub async fn of_class(
    db: &Pool,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Assignment>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ASSIGNMENT_COLUMNS}, count(*) OVER () AS total FROM assignments g
                 JOIN assessments a ON a.id = g.assessment_id
                 WHERE g.class_id = $1 ORDER BY g.created_at DESC, g.id LIMIT $2 OFFSET $3"
            ),
            &[&class, &limit, &offset],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None => client
            .query_one(
                "SELECT count(*) FROM assignments WHERE class_id = $1",
                &[&class],
            )
            .await?
            .get(0),
    };
    Ok((rows.iter().map(assignment_row).collect(), total))
}

/// Grants `student` extra time on an assignment (replacing a grant before);
/// false when the student is not one of the assignment's.
pub async fn accommodate(
    db: &Pool,
    assignment: Uuid,
    student: Uuid,
    extra_time_s: i32,
    by: Uuid,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "INSERT INTO accommodations (assignment_id, student_id, extra_time_s, granted_by)
             SELECT g.id, $2, $3, $4 FROM assignments g
             WHERE g.id = $1
               AND EXISTS (SELECT 1 FROM class_students cs WHERE cs.class_id = g.class_id AND cs.user_id = $2)
               AND (NOT g.chosen OR EXISTS (SELECT 1 FROM assignment_students s
                                             WHERE s.assignment_id = g.id AND s.student_id = $2))
             ON CONFLICT (assignment_id, student_id)
             DO UPDATE SET extra_time_s = EXCLUDED.extra_time_s, granted_by = EXCLUDED.granted_by,
                           granted_at = now()
             RETURNING granted_at, (SELECT org_id FROM assignments WHERE id = $1)",
            &[&assignment, &student, &extra_time_s, &by],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let entry = Entry::new("assignment.accommodated", "assignment", assignment)
        .org(row.get(1))
        .subject(student)
        .detail(json!({ "extra_time_s": extra_time_s }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Some(row.get(0)))
}

/// Releases an assignment's results (once: a second release keeps the first
/// time) and applies its ended exam tests to their students' long-term
/// proficiency, which exam results only reach once released. Returns the
/// release time and the students whose proficiency changed, `None` when there
/// is no such assignment.
pub async fn release(
    db: &Pool,
    assignment: Uuid,
    by: Uuid,
) -> Result<Option<(OffsetDateTime, Vec<Uuid>)>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    // The first release updates the row (and tells integrators); a later one
    // (or one that waited for the first's lock) only reads it.
    let first = tx
        .query_opt(
            "UPDATE assignments SET released_at = now(), released_by = $2
             WHERE id = $1 AND released_at IS NULL
             RETURNING released_at, org_id, assessment_id, assessment_version, class_id",
            &[&assignment, &by],
        )
        .await?;
    let row = match first {
        Some(row) => {
            let released_at: OffsetDateTime = row.get("released_at");
            let data = serde_json::json!({
                "assignment_id": assignment,
                "org_id": row.get::<_, Uuid>("org_id"),
                "assessment_id": row.get::<_, Uuid>("assessment_id"),
                "assessment_version": row.get::<_, i32>("assessment_version"),
                "class_id": row.get::<_, Uuid>("class_id"),
                "released_by": by,
                "released_at": released_at.format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            });
            outbox::enqueue(
                &tx,
                &[outbox::Event::new(
                    outbox::Kind::ResultsReleased,
                    assignment,
                    data,
                )],
            )
            .await?;
            row
        }
        None => match tx
            .query_opt(
                "SELECT released_at, org_id FROM assignments WHERE id = $1",
                &[&assignment],
            )
            .await?
        {
            Some(row) => row,
            None => return Ok(None),
        },
    };
    // Every ended test whose results waited for the release, exactly once.
    let applied = tx
        .query(
            "WITH waiting AS (
             UPDATE test_sessions SET proficiency_applied = true
             WHERE assignment_id = $1 AND status IN ('ended', 'timed_out')
               AND NOT proficiency_applied AND student_id IS NOT NULL
               AND items_answered - pretest_answered > 0
             RETURNING student_id, org_id, theta, se, items_answered - pretest_answered AS scored,
                       concepts
         ),
         rows AS (
             SELECT student_id, org_id, '' AS concept, theta, se, scored AS n FROM waiting
             UNION ALL
             SELECT w.student_id, w.org_id, c.key, (c.value->>'theta')::float8,
                    (c.value->>'se')::float8, (c.value->>'n')::int
             FROM waiting w, jsonb_each(coalesce(w.concepts, '{}'::jsonb)) c
         )
         INSERT INTO student_proficiencies (student_id, org_id, concept, theta, se, n)
         SELECT student_id, org_id, concept, (array_agg(theta))[1], (array_agg(se))[1], sum(n)
         FROM rows GROUP BY student_id, org_id, concept
         ON CONFLICT ON CONSTRAINT student_proficiencies_key
         DO UPDATE SET theta = EXCLUDED.theta, se = EXCLUDED.se,
                       n = student_proficiencies.n + EXCLUDED.n, updated_at = now()
         RETURNING student_id",
            &[&assignment],
        )
        .await?;
    let entry = Entry::new("assignment.released", "assignment", assignment)
        .org(row.get("org_id"))
        .detail(json!({ "proficiencies_applied": applied.len() }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    let mut students: Vec<Uuid> = applied.iter().map(|r| r.get(0)).collect();
    students.sort_unstable();
    students.dedup();
    Ok(Some((row.get("released_at"), students)))
}

/// What starting an attempt needs, read in one statement.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    /// The assignment.
    pub assignment: Assignment,
    /// The pool and its version the test will use.
    pub pool_id: Uuid,
    /// The pinned version, else the pool's current one.
    pub pool_version: i32,
    /// The design (JSON of `cat::TestConfig`).
    pub design: serde_json::Value,
    /// The caller is one of the assignment's students.
    pub assigned: bool,
    /// The caller is a member of its organization.
    pub member: bool,
    /// Attempts started.
    pub attempts_used: i64,
    /// The attempt running, if one is.
    pub running: Option<Uuid>,
    /// Extra seconds granted.
    pub extra_time_s: i32,
    /// The caller's long-term ability in the organization, if any.
    pub history: Option<lectern_engine::Estimate>,
    /// The database's clock.
    pub now: OffsetDateTime,
}

/// [`AttemptContext`] of `student` on `assignment`; `None` when there is no
/// such assignment.
pub async fn attempt_context(
    db: &Pool,
    assignment: Uuid,
    student: Uuid,
) -> Result<Option<AttemptContext>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {ASSIGNMENT_COLUMNS}, v.pool_id, coalesce(v.pool_version, p.version) AS pool_version,
                    v.design, now() AS now,
                    EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = g.org_id AND m.user_id = $2) AS member,
                    (EXISTS (SELECT 1 FROM class_students cs WHERE cs.class_id = g.class_id AND cs.user_id = $2)
                     AND (NOT g.chosen OR EXISTS (SELECT 1 FROM assignment_students s
                                                  WHERE s.assignment_id = g.id AND s.student_id = $2)))
                        AS assigned,
                    (SELECT count(*) FROM test_sessions t WHERE t.assignment_id = g.id AND t.student_id = $2) AS used,
                    (SELECT t.id FROM test_sessions t
                     WHERE t.assignment_id = g.id AND t.student_id = $2 AND t.status IN ('active', 'completed')
                     ORDER BY t.attempt DESC LIMIT 1) AS running,
                    coalesce((SELECT extra_time_s FROM accommodations c
                              WHERE c.assignment_id = g.id AND c.student_id = $2), 0) AS extra,
                    sp.theta, sp.se
             FROM assignments g
             JOIN assessments a ON a.id = g.assessment_id
             JOIN assessment_versions v ON v.assessment_id = g.assessment_id AND v.version = g.assessment_version
             JOIN item_pools p ON p.id = v.pool_id
             LEFT JOIN student_proficiencies sp
                    ON sp.student_id = $2 AND sp.org_id = g.org_id AND sp.concept = ''
             WHERE g.id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&assignment, &student])
        .await?;
    Ok(row.map(|r| {
        let theta: Option<f64> = r.get("theta");
        let se: Option<f64> = r.get("se");
        AttemptContext {
            assignment: assignment_row(&r),
            pool_id: r.get("pool_id"),
            pool_version: r.get("pool_version"),
            design: r.get("design"),
            assigned: r.get("assigned"),
            member: r.get("member"),
            attempts_used: r.get("used"),
            running: r.get("running"),
            extra_time_s: r.get("extra"),
            history: theta
                .zip(se)
                .map(|(theta, se)| lectern_engine::Estimate { theta, se }),
            now: r.get("now"),
        }
    }))
}

/// An attempt's first row.
pub struct NewAttempt<'a> {
    /// Test id.
    pub id: Uuid,
    /// The assignment.
    pub assignment: &'a Assignment,
    /// Pool and version.
    pub pool_id: Uuid,
    /// Pool version.
    pub pool_version: i32,
    /// The student.
    pub student_id: Uuid,
    /// The attempt's number (attempts used + 1).
    pub attempt: i32,
    /// The design as configuration JSON.
    pub config: &'a serde_json::Value,
    /// Seed.
    pub seed: u64,
    /// Prior.
    pub prior: NormalPrior,
    /// First question.
    pub first_question: &'a str,
    /// Seconds to the deadline (time limit plus extra time), if timed.
    pub seconds: Option<i64>,
}

/// Inserts attempt `attempt` when it is still the next one, within the
/// window and attempts, and no other attempt runs; returns the deadline
/// (`Some(None)` when untimed), or `None` when it was not inserted (a
/// concurrent start took the attempt, or the window closed meanwhile).
pub async fn insert_attempt(
    db: &Pool,
    t: &NewAttempt<'_>,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO test_sessions (id, pool_id, pool_version, student_id, status, config, seed,
                                        prior_mean, prior_sd, theta, se, current_question, org_id,
                                        assignment_id, attempt, deadline, served_at,
                                        idempotency_key, idempotency_hash)
             SELECT $1, $2, $3, $4, 'active', $5, $6, $7, $8, $7, $8, $9, g.org_id, g.id, $11,
                    CASE WHEN $12::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => $12::float8) END,
                    now(), $13, $14
             FROM assignments g
             WHERE g.id = $10 AND now() >= g.opens_at AND now() < g.closes_at AND $11 <= g.max_attempts
               AND NOT EXISTS (SELECT 1 FROM test_sessions t
                               WHERE t.assignment_id = g.id AND t.student_id = $4
                                 AND t.status IN ('active', 'completed'))
             ON CONFLICT (assignment_id, student_id, attempt) WHERE assignment_id IS NOT NULL DO NOTHING
             RETURNING deadline",
        )
        .await?;
    let seconds = t.seconds.map(|s| s as f64);
    let (idem_key, idem_hash) = super::idempotency::columns();
    let row = client
        .query_opt(
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
                &t.assignment.id,
                &t.attempt,
                &seconds,
                &idem_key,
                &idem_hash,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// One student's row of a gradebook: their latest attempt's results.
#[derive(Debug, Clone)]
pub struct GradeRow {
    /// The assignment.
    pub assignment_id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub display_name: Option<String>,
    /// Attempts started.
    pub attempts: i64,
    /// The latest attempt.
    pub test_id: Option<Uuid>,
    /// Its status.
    pub status: Option<TestStatus>,
    /// Its θ.
    pub theta: Option<f64>,
    /// Its SE.
    pub se: Option<f64>,
    /// Responses.
    pub items_answered: Option<i32>,
    /// Seconds from start to end (or to now, while running).
    pub time_used_s: Option<f64>,
    /// The design of the assignment (JSON of `cat::TestConfig`), for levels and scale.
    pub design: serde_json::Value,
}

/// A page of a gradebook: the students of one assignment (`assignment`) or of
/// every assignment of a class (`class`), each with their latest attempt.
pub async fn gradebook(
    db: &Pool,
    assignment: Option<Uuid>,
    class: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<GradeRow>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "WITH g AS (SELECT * FROM assignments
                        WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR class_id = $2)),
                  who AS (SELECT g.id AS assignment_id, cs.user_id AS student_id, g.created_at
                          FROM g JOIN class_students cs ON cs.class_id = g.class_id
                          WHERE NOT g.chosen OR EXISTS (SELECT 1 FROM assignment_students s
                                                        WHERE s.assignment_id = g.id AND s.student_id = cs.user_id))
             SELECT w.assignment_id, w.student_id, u.email, u.display_name, v.design,
                    count(*) OVER () AS total,
                    (SELECT count(*) FROM test_sessions t
                     WHERE t.assignment_id = w.assignment_id AND t.student_id = w.student_id) AS attempts,
                    l.id AS test_id, l.status, l.theta, l.se, l.items_answered,
                    extract(epoch FROM coalesce(l.ended_at, now()) - l.started_at)::float8 AS time_used
             FROM who w
             JOIN users u ON u.id = w.student_id
             JOIN assignments ga ON ga.id = w.assignment_id
             JOIN assessment_versions v ON v.assessment_id = ga.assessment_id AND v.version = ga.assessment_version
             LEFT JOIN LATERAL (SELECT * FROM test_sessions t
                                WHERE t.assignment_id = w.assignment_id AND t.student_id = w.student_id
                                ORDER BY t.attempt DESC LIMIT 1) l ON true
             ORDER BY w.created_at DESC, w.assignment_id, u.email, w.student_id
             LIMIT $3 OFFSET $4",
            &[&assignment, &class, &limit, &offset],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        // A page past the end: count on its own.
        None => client
            .query_one(
                "SELECT count(*) FROM assignments g JOIN class_students cs ON cs.class_id = g.class_id
                 WHERE ($1::uuid IS NULL OR g.id = $1) AND ($2::uuid IS NULL OR g.class_id = $2)
                   AND (NOT g.chosen OR EXISTS (SELECT 1 FROM assignment_students s
                                                WHERE s.assignment_id = g.id AND s.student_id = cs.user_id))",
                &[&assignment, &class],
            )
            .await?
            .get(0),
    };
    let grades = rows
        .iter()
        .map(|r| {
            let status: Option<&str> = r.get("status");
            Ok(GradeRow {
                assignment_id: r.get("assignment_id"),
                student_id: r.get("student_id"),
                email: r.get("email"),
                display_name: r.get("display_name"),
                attempts: r.get("attempts"),
                test_id: r.get("test_id"),
                status: status.map(TestStatus::parse).transpose()?,
                theta: r.get("theta"),
                se: r.get("se"),
                items_answered: r.get("items_answered"),
                time_used_s: r.get("time_used"),
                design: r.get("design"),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((grades, total))
}
