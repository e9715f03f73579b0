//! Assessments and assignments: staff-owned test designs with immutable
//! versions, given to a class (or chosen students of it) between two times
//! with a number of attempts; extra time per student; the gradebook and the
//! release of an assignment's results.
//!
//! Who may: the organization's teachers and org admins design assessments
//! ([`Standing::org_staff`] on [`OrgOf::Assessment`] or the organization); a
//! class's teachers and the org admins assign to it, grant extra time, read
//! the gradebook and release ([`Standing::class_staff`] on [`OrgOf::Class`]
//! or [`OrgOf::Assignment`]). Outside the organization nothing here exists
//! (404); inside it without the role it is forbidden (403). Students list
//! their own assignments and start attempts (`cat::start_attempt`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::cat::design::{DesignInput, ItemRange, Level, Mode, Scale, ScaleScore};
use super::cat::{TestConfig, TestConfigInput};
use super::pools;
use super::scope::{self, Denied, OrgOf, Standing, Verdict};
use crate::app::App;
use crate::cache::Namespace;
use crate::store::StoreError;
use crate::store::assessments::{self as stored, Assessment, Assignment, GradeRow, NotAssigned};
use crate::store::pools::summary_of;

/// Longest assessment name (characters).
const MAX_NAME_CHARS: usize = 200;
/// Most extra time one grant gives: a week.
pub const MAX_EXTRA_TIME_S: i64 = 7 * 24 * 3600;
/// Most attempts an assignment allows.
pub const MAX_ATTEMPTS: i32 = 100;
/// Most students chosen by name in one assignment.
const MAX_CHOSEN: usize = 1_000;

/// What can go wrong with assessments and assignments, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input out of range or malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// Not found (or not the caller's to know about); the message says what.
    #[error("{0}")]
    NotFound(String),
    /// The caller belongs to the organization, without the role this needs.
    #[error("{0}")]
    Forbidden(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<super::cat::Error> for Error {
    fn from(e: super::cat::Error) -> Self {
        match e {
            super::cat::Error::Store(s) => Error::Store(s),
            other => Error::Invalid(other.to_string()),
        }
    }
}

/// An assessment as written (create: with `organization_id`; a new version: without).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentInput {
    /// The owning organization (create only).
    #[serde(default, deserialize_with = "crate::wire::some")]
    pub organization_id: Option<Uuid>,
    /// Display name.
    pub name: String,
    /// The pool its tests draw from (the organization's, or a shared one).
    pub pool_id: Uuid,
    /// A pinned pool version; absent: each test takes the pool's latest.
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    pub pool_version: Option<i32>,
    /// The engine's configuration (every field of a test's `config`).
    #[serde(default, deserialize_with = "crate::wire::object")]
    pub config: TestConfigInput,
    /// `practice` or `exam`.
    #[serde(default)]
    pub mode: Mode,
    /// Items per concept.
    #[serde(default)]
    pub blueprint: BTreeMap<String, ItemRange>,
    /// Groups of question ids never given in one test.
    #[serde(default)]
    pub enemies: Vec<Vec<String>>,
    /// Seconds from start to deadline.
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    pub time_limit_s: Option<i64>,
    /// Performance levels, lowest first.
    #[serde(default)]
    pub levels: Vec<Level>,
    /// The reported scale.
    #[serde(default, deserialize_with = "crate::wire::some")]
    pub scale: Option<Scale>,
}

/// One version of an assessment, as shown to staff.
#[derive(Debug, Serialize)]
pub struct AssessmentView {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    version: i32,
    latest_version: i32,
    pool_id: Uuid,
    pool_version: Option<i32>,
    /// The engine configuration, defaults filled in.
    config: serde_json::Value,
    mode: Mode,
    blueprint: BTreeMap<String, ItemRange>,
    enemies: Vec<Vec<String>>,
    time_limit_s: Option<i64>,
    levels: Vec<Level>,
    scale: Option<Scale>,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl AssessmentView {
    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

/// The fields of a stored design that are the assessment's, not the engine's.
const DESIGN_FIELDS: [&str; 6] = [
    "mode",
    "blueprint",
    "enemies",
    "time_limit_s",
    "levels",
    "scale",
];

impl TryFrom<Assessment> for AssessmentView {
    type Error = Error;

    fn try_from(a: Assessment) -> Result<Self, Error> {
        let design: TestConfig = serde_json::from_value(a.design.clone()).map_err(|e| {
            StoreError::Corrupt(format!("design of assessment {} v{}: {e}", a.id, a.version))
        })?;
        let mut config = a.design;
        if let Some(fields) = config.as_object_mut() {
            fields.retain(|name, _| !DESIGN_FIELDS.contains(&name.as_str()));
            if design.cut_score.is_none() && design.levels.is_empty() {
                fields.remove("confidence");
            }
            // Filled in for designs written before pretest items, as every engine field is.
            fields.insert("pretest_items".into(), design.pretest_items.into());
        }
        Ok(Self {
            id: a.id,
            organization_id: a.org_id,
            name: a.name,
            version: a.version,
            latest_version: a.latest_version,
            pool_id: a.pool_id,
            pool_version: a.pool_version,
            config,
            mode: design.mode,
            blueprint: design.blueprint,
            enemies: design.enemies,
            time_limit_s: design.time_limit_s,
            levels: design.levels,
            scale: design.scale,
            created_by: a.created_by,
            created_at: a.created_at,
        })
    }
}

/// A page of assessments.
#[derive(Debug, Serialize)]
pub struct AssessmentPage {
    assessments: Vec<AssessmentView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// Where `caller` stands to `org` (an organization, a class, an assessment or
/// an assignment), if `rule` lets them; `what` names it in a 404.
async fn standing(
    app: &App,
    caller: Uuid,
    org: OrgOf,
    rule: fn(&Standing) -> Verdict,
    what: String,
    who: &str,
) -> Result<Standing, Error> {
    scope::admitted(app, caller, org, rule)
        .await?
        .map_err(|denied| match denied {
            Denied::Hidden => Error::NotFound(format!("no {what}")),
            Denied::Forbidden => Error::Forbidden(format!("only {who} may do this")),
        })
}

const ORG_STAFF: &str = "the organization's teachers and org admins";
const CLASS_STAFF: &str = "the class's teachers and the organization's org admins";

/// The design an input describes, checked against its pool: the stored JSON
/// and the pool version pinned. The pool must be the organization's or shared.
async fn design_of(
    app: &App,
    org: Uuid,
    input: &mut AssessmentInput,
) -> Result<serde_json::Value, Error> {
    let design = DesignInput {
        mode: input.mode,
        blueprint: std::mem::take(&mut input.blueprint),
        enemies: std::mem::take(&mut input.enemies),
        time_limit_s: input.time_limit_s,
        levels: std::mem::take(&mut input.levels),
        scale: input.scale,
    };
    let config = TestConfig::designed(std::mem::take(&mut input.config), design)?;
    let pool = summary_of(app.db(), input.pool_id)
        .await?
        .filter(|p| p.org_id.is_none_or(|o| o == org))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "pool_id: no pool {} of this organization (or shared)",
                input.pool_id
            ))
        })?;
    let version = match input.pool_version {
        Some(v) if !(1..=pool.version).contains(&v) => {
            return Err(Error::Invalid(format!(
                "pool_version: pool {} has versions 1 to {} (got {v})",
                pool.id, pool.version
            )));
        }
        Some(v) => v,
        None => pool.version,
    };
    let bank = pools::bank(app, pool.id, version).await?;
    config.check_against(&bank)?;
    config.check_pretest_supply(&bank)?;
    Ok(serde_json::to_value(&config).expect("config serialises"))
}

fn checked_name(name: &str) -> Result<&str, Error> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters, not blank"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(trimmed)
}

/// Creates an assessment (version 1) in an organization the caller is staff of.
pub async fn create(
    app: &App,
    caller: Uuid,
    mut input: AssessmentInput,
) -> Result<AssessmentView, Error> {
    let org = input
        .organization_id
        .ok_or_else(|| Error::Invalid("organization_id is required".into()))?;
    of_organization(app, caller, org).await?;
    let name = checked_name(&input.name)?.to_owned();
    let design = design_of(app, org, &mut input).await?;
    let created = stored::create(
        app.db(),
        Uuid::new_v4(),
        org,
        &name,
        &stored::NewVersion {
            pool_id: input.pool_id,
            pool_version: input.pool_version,
            design: &design,
            by: caller,
        },
    )
    .await?;
    created.try_into()
}

/// Writes the next version of an assessment: versions are immutable, so tests
/// and assignments keep the one they started on.
pub async fn revise(
    app: &App,
    caller: Uuid,
    id: Uuid,
    mut input: AssessmentInput,
) -> Result<AssessmentView, Error> {
    let s = of_assessment(app, caller, id).await?;
    if input.organization_id.is_some_and(|o| Some(o) != s.org) {
        return Err(Error::Invalid(
            "organization_id: an assessment stays in its organization".into(),
        ));
    }
    let org = s.org.ok_or_else(|| not_found_assessment(id))?;
    let name = checked_name(&input.name)?.to_owned();
    let design = design_of(app, org, &mut input).await?;
    stored::add_version(
        app.db(),
        id,
        Some(&name),
        &stored::NewVersion {
            pool_id: input.pool_id,
            pool_version: input.pool_version,
            design: &design,
            by: caller,
        },
    )
    .await?
    .ok_or_else(|| not_found_assessment(id))?
    .try_into()
}

fn not_found_assessment(id: Uuid) -> Error {
    Error::NotFound(format!("no assessment with id {id}"))
}

/// The organization's staff only.
async fn of_organization(app: &App, caller: Uuid, org: Uuid) -> Result<Standing, Error> {
    standing(
        app,
        caller,
        OrgOf::Organization(org),
        Standing::org_staff,
        format!("organization with id {org}"),
        ORG_STAFF,
    )
    .await
}

/// The class's staff only.
async fn of_class_staff(app: &App, caller: Uuid, class: Uuid) -> Result<Standing, Error> {
    standing(
        app,
        caller,
        OrgOf::Class(class),
        Standing::class_staff,
        format!("class with id {class}"),
        CLASS_STAFF,
    )
    .await
}

async fn of_assessment(app: &App, caller: Uuid, id: Uuid) -> Result<Standing, Error> {
    standing(
        app,
        caller,
        OrgOf::Assessment(id),
        Standing::org_staff,
        format!("assessment with id {id}"),
        ORG_STAFF,
    )
    .await
}

/// One version of an assessment (the latest when `version` is `None`).
pub async fn get(
    app: &App,
    caller: Uuid,
    id: Uuid,
    version: Option<i32>,
) -> Result<AssessmentView, Error> {
    of_assessment(app, caller, id).await?;
    let found = stored::get(app.db(), id, version).await?.ok_or_else(|| {
        Error::NotFound(match version {
            Some(v) => format!("assessment {id} has no version {v}"),
            None => format!("no assessment with id {id}"),
        })
    })?;
    found.try_into()
}

/// A page of an organization's assessments, each at its latest version.
pub async fn list(
    app: &App,
    caller: Uuid,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<AssessmentPage, Error> {
    of_organization(app, caller, org).await?;
    let (found, total) = stored::list(app.db(), org, limit, offset).await?;
    Ok(AssessmentPage {
        assessments: found
            .into_iter()
            .map(AssessmentView::try_from)
            .collect::<Result<_, _>>()?,
        limit,
        offset,
        total,
    })
}

// ---- assignments ---------------------------------------------------------------

/// An assignment as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentInput {
    /// The assessment (of the class's organization).
    pub assessment_id: Uuid,
    /// Its version; absent: the latest now (fixed from then on).
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    pub assessment_version: Option<i32>,
    /// The class.
    pub class_id: Uuid,
    /// Only these students of the class; absent or empty: all of it.
    #[serde(default)]
    pub student_ids: Vec<Uuid>,
    /// When it opens; absent: now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub opens_at: Option<OffsetDateTime>,
    /// When it closes.
    #[serde(with = "time::serde::rfc3339")]
    pub closes_at: OffsetDateTime,
    /// Attempts allowed (1 to 100; 1 unless asked).
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    pub max_attempts: Option<i32>,
}

/// An assignment, as staff see it.
#[derive(Debug, Serialize)]
pub struct AssignmentView {
    id: Uuid,
    organization_id: Uuid,
    assessment_id: Uuid,
    assessment_version: i32,
    name: String,
    class_id: Uuid,
    /// The students chosen (absent: the whole class).
    #[serde(skip_serializing_if = "Option::is_none")]
    student_ids: Option<Vec<Uuid>>,
    #[serde(with = "time::serde::rfc3339")]
    opens_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    closes_at: OffsetDateTime,
    max_attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    released_at: Option<OffsetDateTime>,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl AssignmentView {
    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl From<Assignment> for AssignmentView {
    fn from(g: Assignment) -> Self {
        Self {
            id: g.id,
            organization_id: g.org_id,
            assessment_id: g.assessment_id,
            assessment_version: g.assessment_version,
            name: g.name,
            class_id: g.class_id,
            student_ids: g.chosen.then_some(g.students),
            opens_at: g.opens_at,
            closes_at: g.closes_at,
            max_attempts: g.max_attempts,
            released_at: g.released_at,
            created_by: g.created_by,
            created_at: g.created_at,
        }
    }
}

/// A page of assignments (a class's).
#[derive(Debug, Serialize)]
pub struct AssignmentPage {
    assignments: Vec<AssignmentView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// Assigns an assessment to a class (or chosen students of it).
pub async fn assign(
    app: &App,
    caller: Uuid,
    input: AssignmentInput,
) -> Result<AssignmentView, Error> {
    let class = input.class_id;
    of_class_staff(app, caller, class).await?;
    let opens_at = input.opens_at.unwrap_or_else(OffsetDateTime::now_utc);
    if input.closes_at <= opens_at {
        return Err(Error::Invalid(
            "closes_at must be after opens_at (or after now, when opens_at is left out)".into(),
        ));
    }
    let max_attempts = input.max_attempts.unwrap_or(1);
    if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(Error::Invalid(format!(
            "max_attempts must be from 1 to {MAX_ATTEMPTS} (got {max_attempts})"
        )));
    }
    if input.student_ids.len() > MAX_CHOSEN {
        return Err(Error::Invalid(format!(
            "student_ids: at most {MAX_CHOSEN} students"
        )));
    }
    if input.assessment_version.is_some_and(|v| v < 1) {
        return Err(Error::Invalid(
            "assessment_version must be at least 1".into(),
        ));
    }
    let assigned = stored::assign(
        app.db(),
        &stored::NewAssignment {
            id: Uuid::new_v4(),
            assessment_id: input.assessment_id,
            assessment_version: input.assessment_version,
            class_id: class,
            students: &input.student_ids,
            opens_at,
            closes_at: input.closes_at,
            max_attempts,
            by: caller,
        },
    )
    .await?;
    match assigned {
        Ok(g) => Ok(g.into()),
        Err(NotAssigned::NoAssessment) => Err(Error::Invalid(format!(
            "assessment_id: no assessment {} (version {}) in the class's organization",
            input.assessment_id,
            input
                .assessment_version
                .map_or("latest".to_owned(), |v| v.to_string())
        ))),
        Err(NotAssigned::NotEnrolled(ids)) => Err(Error::Invalid(format!(
            "student_ids: not enrolled in class {class}: {}",
            ids.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn of_assignment(app: &App, caller: Uuid, id: Uuid) -> Result<Standing, Error> {
    standing(
        app,
        caller,
        OrgOf::Assignment(id),
        Standing::class_staff,
        format!("assignment with id {id}"),
        CLASS_STAFF,
    )
    .await
}

/// One assignment, to its class's staff.
pub async fn assignment(app: &App, caller: Uuid, id: Uuid) -> Result<AssignmentView, Error> {
    of_assignment(app, caller, id).await?;
    let g = stored::assignment_by_id(app.db(), id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no assignment with id {id}")))?;
    Ok(g.into())
}

/// A page of a class's assignments, to its staff.
pub async fn of_class(
    app: &App,
    caller: Uuid,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<AssignmentPage, Error> {
    of_class_staff(app, caller, class).await?;
    let (found, total) = stored::of_class(app.db(), class, limit, offset).await?;
    Ok(AssignmentPage {
        assignments: found.into_iter().map(AssignmentView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// An assignment as its student sees it.
#[derive(Debug, Serialize)]
pub struct MyAssignment {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    class_id: Uuid,
    mode: Mode,
    time_limit_s: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    opens_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    closes_at: OffsetDateTime,
    max_attempts: i32,
    attempts_used: i64,
    /// The attempt running, to go on with.
    running_test_id: Option<Uuid>,
    /// Whether results are released.
    released: bool,
}

/// A page of the caller's assignments.
#[derive(Debug, Serialize)]
pub struct MyAssignmentPage {
    assignments: Vec<MyAssignment>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// The caller's own assignments (as a student of their classes), soonest closing first.
pub async fn mine(
    app: &App,
    caller: Uuid,
    limit: i64,
    offset: i64,
) -> Result<MyAssignmentPage, Error> {
    let (found, total) = stored::assigned_to(app.db(), caller, limit, offset).await?;
    let assignments = found
        .into_iter()
        .map(|a| {
            let design: TestConfig = serde_json::from_value(a.design).map_err(|e| {
                StoreError::Corrupt(format!("design of assignment {}: {e}", a.assignment.id))
            })?;
            let g = a.assignment;
            Ok(MyAssignment {
                id: g.id,
                organization_id: g.org_id,
                name: g.name,
                class_id: g.class_id,
                mode: design.mode,
                time_limit_s: design.time_limit_s,
                opens_at: g.opens_at,
                closes_at: g.closes_at,
                max_attempts: g.max_attempts,
                attempts_used: a.attempts_used,
                running_test_id: a.running,
                released: g.released_at.is_some(),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(MyAssignmentPage {
        assignments,
        limit,
        offset,
        total,
    })
}

/// Extra time granted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccommodationInput {
    /// Seconds added to the time limit of each attempt started from now on.
    #[serde(deserialize_with = "crate::wire::integer")]
    pub extra_time_s: i64,
}

/// A grant of extra time, and who granted it.
#[derive(Debug, Serialize)]
pub struct AccommodationView {
    assignment_id: Uuid,
    student_id: Uuid,
    extra_time_s: i64,
    granted_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    granted_at: OffsetDateTime,
}

/// Grants a student of the assignment extra time (replacing an earlier grant);
/// it counts for attempts started afterwards, never a running one.
pub async fn accommodate(
    app: &App,
    caller: Uuid,
    id: Uuid,
    student: Uuid,
    input: AccommodationInput,
) -> Result<AccommodationView, Error> {
    of_assignment(app, caller, id).await?;
    if !(0..=MAX_EXTRA_TIME_S).contains(&input.extra_time_s) {
        return Err(Error::Invalid(format!(
            "extra_time_s must be from 0 to {MAX_EXTRA_TIME_S} (got {})",
            input.extra_time_s
        )));
    }
    let granted_at = stored::accommodate(app.db(), id, student, input.extra_time_s as i32, caller)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "user {student} is not a student of assignment {id}"
            ))
        })?;
    Ok(AccommodationView {
        assignment_id: id,
        student_id: student,
        extra_time_s: input.extra_time_s,
        granted_by: caller,
        granted_at,
    })
}

/// A release.
#[derive(Debug, Serialize)]
pub struct Released {
    assignment_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    released_at: OffsetDateTime,
}

/// Releases an assignment's results to its students (the first release's time stays).
pub async fn release(app: &App, caller: Uuid, id: Uuid) -> Result<Released, Error> {
    of_assignment(app, caller, id).await?;
    let (released_at, students) = stored::release(app.db(), id, caller)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no assignment with id {id}")))?;
    crate::services::events::after_write(app).await;
    // Released exam results moved into the long-term proficiency of their students.
    let changed: Vec<Namespace> = students
        .into_iter()
        .flat_map(|s| [Namespace::History(s), Namespace::Proficiency(s)])
        .collect();
    app.cache().invalidate(&changed).await;
    Ok(Released {
        assignment_id: id,
        released_at,
    })
}

// ---- gradebook -------------------------------------------------------------------

/// One row of a gradebook: a student of an assignment and their latest attempt.
#[derive(Debug, Serialize)]
pub struct Grade {
    assignment_id: Uuid,
    student_id: Uuid,
    email: String,
    display_name: Option<String>,
    /// `not_started`, or the latest attempt's status.
    status: &'static str,
    attempts: i64,
    test_id: Option<Uuid>,
    items_answered: Option<i32>,
    theta: Option<f64>,
    se: Option<f64>,
    level: Option<String>,
    scale_score: Option<ScaleScore>,
    time_used_s: Option<f64>,
}

impl Grade {
    fn new(r: GradeRow) -> Result<Self, Error> {
        let design: TestConfig = serde_json::from_value(r.design).map_err(|e| {
            StoreError::Corrupt(format!("design of assignment {}: {e}", r.assignment_id))
        })?;
        let estimate = r.theta.zip(r.se);
        Ok(Self {
            assignment_id: r.assignment_id,
            student_id: r.student_id,
            email: r.email,
            display_name: r.display_name,
            status: r.status.map_or("not_started", |s| s.as_str()),
            attempts: r.attempts,
            test_id: r.test_id,
            items_answered: r.items_answered,
            theta: r.theta,
            se: r.se,
            level: r.theta.and_then(|t| design.level(t)).map(str::to_owned),
            scale_score: design
                .scale
                .zip(estimate)
                .map(|(s, (theta, se))| s.score(theta, se)),
            time_used_s: r.time_used_s,
        })
    }
}

/// A page of a gradebook.
#[derive(Debug, Serialize)]
pub struct GradePage {
    grades: Vec<Grade>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// The gradebook of one assignment (`Ok(assignment)`) or of a class's
/// assignments (`Err(class)`), to the class's staff.
pub async fn gradebook(
    app: &App,
    caller: Uuid,
    of: Result<Uuid, Uuid>,
    limit: i64,
    offset: i64,
) -> Result<GradePage, Error> {
    let (assignment, class) = match of {
        Ok(id) => {
            of_assignment(app, caller, id).await?;
            (Some(id), None)
        }
        Err(class) => {
            of_class_staff(app, caller, class).await?;
            (None, Some(class))
        }
    };
    let (rows, total) = stored::gradebook(app.db(), assignment, class, limit, offset).await?;
    Ok(GradePage {
        grades: rows.into_iter().map(Grade::new).collect::<Result<_, _>>()?,
        limit,
        offset,
        total,
    })
}

impl GradePage {
    /// The page as CSV (RFC 4180, a header line first). A cell starting with
    /// `=`, `+`, `-` or `@` is prefixed with `'` so that no spreadsheet runs it.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "assignment_id,student_id,email,display_name,status,attempts,test_id,items_answered,theta,se,level,scale_score,scale_score_se,time_used_s\r\n",
        );
        let num = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        for g in &self.grades {
            let cells = [
                g.assignment_id.to_string(),
                g.student_id.to_string(),
                g.email.clone(),
                g.display_name.clone().unwrap_or_default(),
                g.status.to_owned(),
                g.attempts.to_string(),
                g.test_id.map(|t| t.to_string()).unwrap_or_default(),
                g.items_answered.map(|n| n.to_string()).unwrap_or_default(),
                num(g.theta),
                num(g.se),
                g.level.clone().unwrap_or_default(),
                num(g.scale_score.map(|s| s.score)),
                num(g.scale_score.map(|s| s.se)),
                num(g.time_used_s),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_cell(raw: &str) -> String {
    let defused = if raw.starts_with(['=', '+', '-', '@']) && raw.parse::<f64>().is_err() {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("-0.5"), "-0.5");
        assert_eq!(csv_cell("@x,y"), "\"'@x,y\"");
    }
}
