//! Courses as data: staff of an organization write them (a whole document per
//! version, from the API or the importer), its members read them, and
//! tutoring teaches from the version a session started on. Students' progress
//! through them is read by the student, their teachers and org admins.
//!
//! Who: writing is for the organization's teachers and org admins
//! ([`Standing::org_staff`]); reading a course for any member; outside the
//! organization a course does not exist (404).

pub mod content;

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::cache::Namespace;
use crate::services::auth::Caller;
use crate::services::scope::{self, Denied, OrgOf, Standing, Verdict};
use crate::store::StoreError;
use crate::store::courses::{self as stored, Imported, NewVersion, NotRevised, Progress};
use crate::store::tenancy::StudentScope;
pub use content::{CourseDoc, Position};

/// What can go wrong with a course.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such course, organization, class or student (for this caller).
    #[error("{0}")]
    NotFound(String),
    /// The caller may see it but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The document or a parameter fails validation.
    #[error("{0}")]
    Invalid(String),
    /// The course moved on since the version the writer started from.
    #[error("{0}")]
    Stale(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One version of a course, as the API shows it: the document and its place.
#[derive(Debug, Clone, Serialize)]
pub struct CourseView {
    /// The course.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// The version shown.
    pub version: i32,
    /// Its latest version.
    pub latest_version: i32,
    /// Segments in the version shown.
    pub segments: i32,
    /// Who wrote the version shown.
    pub created_by: Option<Uuid>,
    /// When the course was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its latest version was written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The document: key, title, description, modules.
    #[serde(flatten)]
    pub content: CourseDoc,
}

impl TryFrom<stored::Course> for CourseView {
    type Error = Error;

    fn try_from(c: stored::Course) -> Result<Self, Error> {
        let corrupt = |e: serde_json::Error| {
            StoreError::Corrupt(format!("course {} version {}: {e}", c.id, c.version))
        };
        Ok(Self {
            content: serde_json::from_value(c.content).map_err(corrupt)?,
            id: c.id,
            organization_id: c.org_id,
            version: c.version,
            latest_version: c.latest_version,
            segments: c.segments,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }
}

/// A course written, and whether it is new.
#[derive(Debug, Clone)]
pub struct Written {
    /// The version now latest.
    pub course: CourseView,
    /// What the write did.
    pub outcome: Imported,
}

/// A page of an organization's courses.
#[derive(Debug, Serialize)]
pub struct CoursePage {
    courses: Vec<stored::Listed>,
    limit: i64,
    offset: i64,
    total: i64,
}

const ORG_STAFF: &str = "the organization's teachers and org admins";

/// Where `caller` stands to `org`, if `rule` lets them; `what` names it in a 404.
async fn standing(
    app: &App,
    caller: Uuid,
    org: OrgOf,
    rule: fn(&Standing) -> Verdict,
    what: String,
) -> Result<Standing, Error> {
    scope::admitted(app, caller, org, rule)
        .await?
        .map_err(|denied| match denied {
            Denied::Hidden => Error::NotFound(format!("no {what}")),
            Denied::Forbidden => Error::Forbidden(format!("only {ORG_STAFF} may do this")),
        })
}

/// [`standing`] on an organization.
async fn of_organization(
    app: &App,
    caller: Uuid,
    org: Uuid,
    rule: fn(&Standing) -> Verdict,
) -> Result<Standing, Error> {
    let what = format!("organization with id {org}");
    standing(app, caller, OrgOf::Organization(org), rule, what).await
}

/// A checked document: valid, its items in pools of `org`, as stored JSON.
async fn checked(
    app: &App,
    org: Uuid,
    doc: &mut CourseDoc,
) -> Result<(serde_json::Value, i32), Error> {
    doc.check().map_err(|e| Error::Invalid(e.to_string()))?;
    let refs = doc.item_refs();
    let pairs: Vec<(Uuid, String)> = refs
        .iter()
        .map(|(_, r)| (r.pool_id, r.item_id.clone()))
        .collect();
    if let Some(&i) = stored::missing_items(app.db(), org, &pairs).await?.first() {
        let (field, r) = &refs[i];
        return Err(Error::Invalid(format!(
            "{field}: no item {:?} in pool {} of this organization (or shared)",
            r.item_id, r.pool_id
        )));
    }
    let json = serde_json::to_value(&*doc).expect("a course serialises");
    Ok((json, doc.segment_count() as i32))
}

/// Writes a course into an organization the caller is staff of: a new
/// course, or a new version of the one with the same key (an unchanged
/// document writes nothing).
pub async fn import(
    app: &App,
    caller: Uuid,
    org: Uuid,
    mut doc: CourseDoc,
) -> Result<Written, Error> {
    of_organization(app, caller, org, Standing::org_staff).await?;
    let (content, segments) = checked(app, org, &mut doc).await?;
    let v = NewVersion {
        title: &doc.title,
        content: &content,
        segments,
        by: caller,
    };
    let (course, outcome) = stored::import(app.db(), org, &doc.key, &v).await?;
    Ok(Written {
        course: course.try_into()?,
        outcome,
    })
}

/// Writes the next version of a course, if its latest is still `expected`
/// (when given: 409 otherwise). The key stays.
pub async fn revise(
    app: &App,
    caller: Uuid,
    id: Uuid,
    expected: Option<i32>,
    mut doc: CourseDoc,
) -> Result<CourseView, Error> {
    let s = of_course(app, caller, id, Standing::org_staff).await?;
    let org = s.org.ok_or_else(|| not_found(id))?;
    let current = stored::summary(app.db(), id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if doc.key.trim() != current.key {
        return Err(Error::Invalid(format!(
            "key: a course keeps its key ({:?})",
            current.key
        )));
    }
    let (content, segments) = checked(app, org, &mut doc).await?;
    let v = NewVersion {
        title: &doc.title,
        content: &content,
        segments,
        by: caller,
    };
    match stored::revise(app.db(), id, expected, &v).await? {
        Ok(course) => course.try_into(),
        Err(NotRevised::Missing) => Err(not_found(id)),
        Err(NotRevised::Stale { latest }) => Err(Error::Stale(format!(
            "course {id} is at version {latest}, not {}; read it again and write on top of it",
            expected.unwrap_or_default()
        ))),
    }
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound(format!("no course with id {id}"))
}

async fn of_course(
    app: &App,
    caller: Uuid,
    id: Uuid,
    rule: fn(&Standing) -> Verdict,
) -> Result<Standing, Error> {
    standing(
        app,
        caller,
        OrgOf::Course(id),
        rule,
        format!("course with id {id}"),
    )
    .await
}

/// One version of a course (the latest when `version` is `None`), for a member
/// of its organization.
pub async fn get(
    app: &App,
    caller: Uuid,
    id: Uuid,
    version: Option<i32>,
) -> Result<CourseView, Error> {
    of_course(app, caller, id, Standing::member).await?;
    let found = stored::get(app.db(), id, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => Error::NotFound(format!("course {id} has no version {v}")),
            None => not_found(id),
        })?;
    found.try_into()
}

/// A page of an organization's courses (at their latest versions), for its members.
pub async fn list(
    app: &App,
    caller: Uuid,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<CoursePage, Error> {
    of_organization(app, caller, org, Standing::member).await?;
    let (courses, total) = stored::list(app.db(), org, limit, offset).await?;
    Ok(CoursePage {
        courses,
        limit,
        offset,
        total,
    })
}

// ---- what tutoring reads ------------------------------------------------------------

/// A course version as tutoring holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Taught {
    /// The course's organization.
    pub org_id: Uuid,
    /// The version.
    pub version: i32,
    /// The document.
    pub doc: CourseDoc,
}

/// This process's copies of course versions (they never change, so a copy is
/// never stale); about 64 MB at most, weighed by segment count.
static TAUGHT: LazyLock<moka::future::Cache<(Uuid, i32), Arc<Taught>>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(64 * 1024)
        .weigher(|_, t: &Arc<Taught>| t.doc.segment_count().max(1) as u32)
        .build()
});

fn taught_of(c: stored::Course) -> Result<Taught, StoreError> {
    let doc = serde_json::from_value(c.content)
        .map_err(|e| StoreError::Corrupt(format!("course {} version {}: {e}", c.id, c.version)))?;
    Ok(Taught {
        org_id: c.org_id,
        version: c.version,
        doc,
    })
}

/// A version of a course (the latest when `version` is `None`: its number is
/// read from PostgreSQL): from this process, else the cache (Redis), else
/// PostgreSQL. `None` when there is no such course or version.
pub async fn taught(
    app: &App,
    id: Uuid,
    version: Option<i32>,
) -> Result<Option<Arc<Taught>>, StoreError> {
    let version = match version {
        Some(v) => v,
        None => match stored::latest_version(app.db(), id).await? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    if let Some(t) = TAUGHT.get(&(id, version)).await {
        return Ok(Some(t));
    }
    let cached = app
        .cache()
        .get_or_load_opt(&Namespace::Course(id), &version.to_string(), || async {
            stored::get(app.db(), id, Some(version))
                .await?
                .map(taught_of)
                .transpose()
        })
        .await
        .map_err(StoreError::Shared)?;
    let Some(t) = cached.as_ref().clone() else {
        return Ok(None);
    };
    let t = Arc::new(t);
    TAUGHT.insert((id, version), t.clone()).await;
    Ok(Some(t))
}

// ---- progress -------------------------------------------------------------------------

/// A student's progress through one course, with the course's size.
#[derive(Debug, Serialize)]
pub struct ProgressView {
    /// The progress.
    #[serde(flatten)]
    pub progress: Progress,
    /// The course's title.
    pub course_title: String,
    /// Segments of the course's latest version.
    pub total_segments: i32,
    /// Completed segments over them (0 to 1).
    pub fraction_completed: f64,
}

/// A student's progress through every course they began.
#[derive(Debug, Serialize)]
pub struct StudentProgress {
    student_id: Uuid,
    courses: Vec<ProgressView>,
}

/// `done` segments of `total`, from 0 to 1.
fn fraction(done: usize, total: i32) -> f64 {
    if total > 0 {
        (done as f64 / f64::from(total)).min(1.0)
    } else {
        0.0
    }
}

fn view(progress: Progress, course_title: String, total_segments: i32) -> ProgressView {
    ProgressView {
        fraction_completed: fraction(progress.completed.len(), total_segments),
        progress,
        course_title,
        total_segments,
    }
}

/// A student's progress through every course they began, for the student,
/// the teachers of their classes and their org admins (their organizations
/// only), and platform admins.
pub async fn student_progress(
    app: &App,
    caller: &Caller,
    student: Uuid,
) -> Result<StudentProgress, Error> {
    let orgs = match scope::student_records(app, caller.user_id, student).await? {
        None => return Err(Error::NotFound(format!("no student with id {student}"))),
        Some(StudentScope::All) => None,
        Some(StudentScope::Orgs(orgs)) => Some(orgs),
    };
    let found = stored::progress_of_student(app.db(), student, orgs.as_deref()).await?;
    Ok(StudentProgress {
        student_id: student,
        courses: found
            .into_iter()
            .map(|(p, title, total)| view(p, title, total))
            .collect(),
    })
}

/// One student of a class, with their progress through a course.
#[derive(Debug, Serialize)]
pub struct ClassMember {
    student_id: Uuid,
    /// Their display name, if they gave one.
    name: Option<String>,
    /// Absent: not begun.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
    segments_completed: usize,
    fraction_completed: f64,
}

/// A class's progress through a course.
#[derive(Debug, Serialize)]
pub struct ClassProgress {
    class_id: Uuid,
    course_id: Uuid,
    course_title: String,
    total_segments: i32,
    students: Vec<ClassMember>,
}

/// Every student of a class with their progress through a course of the
/// class's organization: for the class's teachers and the organization's org admins.
pub async fn class_progress(
    app: &App,
    caller: Uuid,
    class: Uuid,
    course: Uuid,
) -> Result<ClassProgress, Error> {
    let s = standing(
        app,
        caller,
        OrgOf::Class(class),
        Standing::class_staff,
        format!("class with id {class}"),
    )
    .await?;
    let found = stored::summary(app.db(), course)
        .await?
        .filter(|c| Some(c.organization_id) == s.org)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "course_id: no course {course} of this class's organization"
            ))
        })?;
    let total = found.segments;
    let students = stored::progress_of_class(app.db(), class, course)
        .await?
        .into_iter()
        .map(|(student_id, name, progress)| {
            let done = progress.as_ref().map_or(0, |p| p.completed.len());
            ClassMember {
                student_id,
                name,
                segments_completed: done,
                fraction_completed: fraction(done, total),
                progress,
            }
        })
        .collect();
    Ok(ClassProgress {
        class_id: class,
        course_id: course,
        course_title: found.title,
        total_segments: total,
        students,
    })
}
