//! Courses (immutable versions of one document each) and students' progress
//! through them, in PostgreSQL. A version's content reaches tutoring through
//! the process's own copy and the cache ([`crate::services::courses`]):
//! versions never change, so no copy is ever stale.

use deadpool_postgres::Pool;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};

/// One version of a course, with the course's own columns.
#[derive(Debug, Clone)]
pub struct Course {
    /// The course.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Its key in the organization.
    pub key: String,
    /// Its title (the latest version's).
    pub title: String,
    /// Its latest version.
    pub latest_version: i32,
    /// The version read.
    pub version: i32,
    /// That version's document.
    pub content: Value,
    /// That version's segments.
    pub segments: i32,
    /// Who wrote that version.
    pub created_by: Option<Uuid>,
    /// When the course was created.
    pub created_at: OffsetDateTime,
    /// When its latest version was written.
    pub updated_at: OffsetDateTime,
}

const COURSE_COLUMNS: &str =
    "c.id, c.org_id, c.key, c.title, c.latest_version, v.version, v.content,
     v.segments, v.created_by, c.created_at, c.updated_at";

fn course(row: &Row) -> Course {
    Course {
        id: row.get("id"),
        org_id: row.get("org_id"),
        key: row.get("key"),
        title: row.get("title"),
        latest_version: row.get("latest_version"),
        version: row.get("version"),
        content: row.get("content"),
        segments: row.get("segments"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// What [`import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// A new course (version 1).
    Created,
    /// A new version of the course with that key.
    Versioned,
    /// The latest version already says exactly this: nothing written.
    Unchanged,
}

/// A new version to write.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// The course's title.
    pub title: &'a str,
    /// The document.
    pub content: &'a Value,
    /// Its segments.
    pub segments: i32,
    /// Who writes it.
    pub by: Uuid,
}

/// Writes a course of `org` under `key`: a new course, else a new version of
/// the one with that key, unless its latest version is the same document.
/// Concurrent imports of one key serialise on the course's row.
pub async fn import(
    db: &Pool,
    org: Uuid,
    key: &str,
    v: &NewVersion<'_>,
) -> Result<(Course, Imported), StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO courses (id, org_id, key, title, created_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, key) DO NOTHING RETURNING id",
            &[&Uuid::new_v4(), &org, &key, &v.title, &v.by],
        )
        .await?;
    let (id, version, outcome) = match inserted {
        Some(row) => (row.get::<_, Uuid>(0), 1, Imported::Created),
        None => {
            // Lock the course first, then compare with its latest version as
            // it is now (a join locked in one statement would be re-checked
            // against the version row it read before the lock was granted).
            let row = tx
                .query_one(
                    "SELECT id, latest_version FROM courses WHERE org_id = $1 AND key = $2 FOR UPDATE",
                    &[&org, &key],
                )
                .await?;
            let id: Uuid = row.get(0);
            let same: bool = tx
                .query_one(
                    "SELECT content = $3 FROM course_versions WHERE course_id = $1 AND version = $2",
                    &[&id, &row.get::<_, i32>(1), v.content],
                )
                .await?
                .get(0);
            if same {
                let found = read_in(&tx, id, None).await?;
                tx.commit().await?;
                let found = found.ok_or_else(|| not_read_back(id))?;
                return Ok((found, Imported::Unchanged));
            }
            (id, row.get::<_, i32>(1) + 1, Imported::Versioned)
        }
    };
    write_version(&tx, id, version, v).await?;
    let found = read_in(&tx, id, Some(version)).await?;
    let action = match outcome {
        Imported::Created => "course.created",
        _ => "course.versioned",
    };
    let entry = Entry::new(action, "course", id)
        .org(Some(org))
        .detail(json!({ "key": key, "version": version, "segments": v.segments }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok((found.ok_or_else(|| not_read_back(id))?, outcome))
}

/// Why [`revise`] wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRevised {
    /// No such course.
    Missing,
    /// Its latest version is not the one the writer started from.
    Stale {
        /// The latest version.
        latest: i32,
    },
}

/// Writes the next version of course `id`, if its latest is still `expected`
/// (when given).
pub async fn revise(
    db: &Pool,
    id: Uuid,
    expected: Option<i32>,
    v: &NewVersion<'_>,
) -> Result<Result<Course, NotRevised>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT latest_version, org_id, key FROM courses WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(Err(NotRevised::Missing));
    };
    let latest: i32 = row.get(0);
    if expected.is_some_and(|e| e != latest) {
        return Ok(Err(NotRevised::Stale { latest }));
    }
    write_version(&tx, id, latest + 1, v).await?;
    let found = read_in(&tx, id, Some(latest + 1)).await?;
    let entry = Entry::new("course.versioned", "course", id)
        .org(Some(row.get("org_id")))
        .detail(json!({ "key": row.get::<_, String>("key"), "version": latest + 1, "segments": v.segments }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Ok(found.ok_or_else(|| not_read_back(id))?))
}

fn not_read_back(id: Uuid) -> StoreError {
    StoreError::Corrupt(format!("course {id} not read back"))
}

async fn write_version(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    version: i32,
    v: &NewVersion<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO course_versions (course_id, version, content, segments, created_by)
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &version, v.content, &v.segments, &v.by],
    )
    .await?;
    tx.execute(
        "UPDATE courses SET latest_version = $2, title = $3, updated_at = now() WHERE id = $1",
        &[&id, &version, &v.title],
    )
    .await?;
    Ok(())
}

async fn read_in(
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
    version: Option<i32>,
) -> Result<Option<Course>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COURSE_COLUMNS} FROM courses c JOIN course_versions v ON v.course_id = c.id
                 WHERE c.id = $1 AND v.version = coalesce($2, c.latest_version)"
            ),
            &[&id, &version],
        )
        .await?;
    Ok(row.as_ref().map(course))
}

/// A course's latest version, if there is such a course.
pub async fn latest_version(db: &Pool, id: Uuid) -> Result<Option<i32>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached("SELECT latest_version FROM courses WHERE id = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&id])
        .await?
        .map(|r| r.get(0)))
}

/// One version of a course (the latest when `version` is `None`).
pub async fn get(db: &Pool, id: Uuid, version: Option<i32>) -> Result<Option<Course>, StoreError> {
    read_in(&db.get().await?, id, version).await
}

/// A course in a list: its latest version, without the document.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// The course.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its key.
    pub key: String,
    /// Its title.
    pub title: String,
    /// Its latest version.
    pub version: i32,
    /// Segments of that version.
    pub segments: i32,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its latest version was written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const LISTED_COLUMNS: &str = "c.id, c.org_id, c.key, c.title, c.latest_version, v.segments,
     c.created_at, c.updated_at";

fn listed(r: &Row) -> Listed {
    Listed {
        id: r.get("id"),
        organization_id: r.get("org_id"),
        key: r.get("key"),
        title: r.get("title"),
        version: r.get("latest_version"),
        segments: r.get("segments"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// A course at its latest version, without the document.
pub async fn summary(db: &Pool, id: Uuid) -> Result<Option<Listed>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {LISTED_COLUMNS} FROM courses c JOIN course_versions v
                   ON v.course_id = c.id AND v.version = c.latest_version
                 WHERE c.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(listed))
}

/// A page of an organization's courses by key, and how many it has.
pub async fn list(
    db: &Pool,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Listed>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {LISTED_COLUMNS}, count(*) OVER () AS total
                 FROM courses c JOIN course_versions v
                   ON v.course_id = c.id AND v.version = c.latest_version
                 WHERE c.org_id = $1 ORDER BY c.key LIMIT $2 OFFSET $3"
            ),
            &[&org, &limit, &offset],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None => client
            .query_one("SELECT count(*) FROM courses WHERE org_id = $1", &[&org])
            .await?
            .get(0),
    };
    Ok((rows.iter().map(listed).collect(), total))
}

/// Of `(pool, item)` pairs, the indexes of those that are not an item of a
/// pool of `org` or a shared pool.
pub async fn missing_items(
    db: &Pool,
    org: Uuid,
    items: &[(Uuid, String)],
) -> Result<Vec<usize>, StoreError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let pools: Vec<Uuid> = items.iter().map(|(p, _)| *p).collect();
    let ids: Vec<&str> = items.iter().map(|(_, i)| i.as_str()).collect();
    let rows = db
        .get()
        .await?
        .query(
            "SELECT r.n::bigint - 1 FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS r(pool_id, item_id, n)
             WHERE NOT EXISTS (
                 SELECT 1 FROM questions q JOIN item_pools p ON p.id = q.pool_id
                 WHERE q.pool_id = r.pool_id AND q.id = r.item_id
                   AND (p.org_id IS NULL OR p.org_id = $1))
             ORDER BY r.n",
            &[&org, &pools, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as usize).collect())
}

// ---- progress --------------------------------------------------------------------

/// A student's progress through one course.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    /// The student.
    pub user_id: Uuid,
    /// The course.
    pub course_id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Keys of the segments completed (moved past with "continue").
    pub completed: Vec<String>,
    /// Seconds spent in its sessions (a gap longer than the idle limit counts as the limit).
    pub time_spent_s: f64,
    /// Questions asked.
    pub questions_asked: i32,
    /// Sessions held.
    pub sessions: i32,
    /// Where the next session begins: module (0-based).
    pub module_index: i32,
    /// Sub-topic (0-based).
    pub sub_topic_index: i32,
    /// Segment (0-based).
    pub segment_index: i32,
    /// The latest session.
    pub last_session_id: Option<Uuid>,
    /// When the first session began.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it last moved.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const PROGRESS_COLUMNS: &str = "p.user_id, p.course_id, p.org_id, p.completed, p.time_spent_ms,
     p.questions_asked, p.sessions, p.module_index, p.sub_topic_index, p.segment_index,
     p.last_session_id, p.started_at, p.updated_at";

fn progress(row: &Row) -> Progress {
    Progress {
        user_id: row.get("user_id"),
        course_id: row.get("course_id"),
        organization_id: row.get("org_id"),
        completed: row.get("completed"),
        time_spent_s: row.get::<_, i64>("time_spent_ms") as f64 / 1000.0,
        questions_asked: row.get("questions_asked"),
        sessions: row.get("sessions"),
        module_index: row.get("module_index"),
        sub_topic_index: row.get("sub_topic_index"),
        segment_index: row.get("segment_index"),
        last_session_id: row.get("last_session_id"),
        started_at: row.get("started_at"),
        updated_at: row.get("updated_at"),
    }
}

/// A student's progress through one course, if they began it.
pub async fn progress_of(
    db: &Pool,
    user: Uuid,
    course: Uuid,
) -> Result<Option<Progress>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {PROGRESS_COLUMNS} FROM course_progress p WHERE p.user_id = $1 AND p.course_id = $2"
            ),
            &[&user, &course],
        )
        .await?;
    Ok(row.as_ref().map(progress))
}

/// A student's progress through every course they began, in the
/// organizations `orgs` (all when `None`), most recent first.
pub async fn progress_of_student(
    db: &Pool,
    user: Uuid,
    orgs: Option<&[Uuid]>,
) -> Result<Vec<(Progress, String, i32)>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "SELECT {PROGRESS_COLUMNS}, c.title, v.segments
                 FROM course_progress p JOIN courses c ON c.id = p.course_id
                 JOIN course_versions v ON v.course_id = c.id AND v.version = c.latest_version
                 WHERE p.user_id = $1 AND ($2::uuid[] IS NULL OR p.org_id = ANY($2))
                 ORDER BY p.updated_at DESC"
            ),
            &[&user, &orgs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (progress(r), r.get("title"), r.get("segments")))
        .collect())
}

/// Every student of a class with their name (if they gave one) and their
/// progress through one course (`None` for those who have not begun it), by name.
pub async fn progress_of_class(
    db: &Pool,
    class: Uuid,
    course: Uuid,
) -> Result<Vec<(Uuid, Option<String>, Option<Progress>)>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "SELECT s.user_id AS student_id, u.display_name AS student_name, {PROGRESS_COLUMNS}
                 FROM class_students s JOIN users u ON u.id = s.user_id
                 LEFT JOIN course_progress p ON p.user_id = s.user_id AND p.course_id = $2
                 WHERE s.class_id = $1 ORDER BY u.display_name, s.user_id"
            ),
            &[&class, &course],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let p = r.get::<_, Option<Uuid>>("course_id").map(|_| progress(r));
            (r.get("student_id"), r.get("student_name"), p)
        })
        .collect())
}
