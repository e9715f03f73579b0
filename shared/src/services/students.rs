//! A student's records: their tests, page by page, and their long-term
//! proficiency, each read through the cache. A student sees all of theirs; a
//! teacher of one of their classes or an org admin of one of their
//! organizations sees what was taken in that organization; a platform admin
//! sees everything; to anyone else the student does not exist.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::Caller;
use super::scope::{self, StudentScope};
use super::{CachedJson, cached_json};
use crate::app::App;
use crate::cache::Namespace;
use crate::store::StoreError;
use crate::store::students::{self as stored, Ability, TestSummary};

/// What can go wrong reading a student's records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such student, or none the caller may see.
    #[error("no student with id {0}")]
    NotFound(Uuid),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where `caller` may read `student`'s records, and that scope as a cache key
/// part (each scope's view is cached apart; a change to the student's records
/// invalidates them all at once).
async fn may_read(
    app: &App,
    caller: &Caller,
    student: Uuid,
) -> Result<(Option<Vec<Uuid>>, String), Error> {
    match scope::student_records(app, caller.user_id, student).await? {
        None => Err(Error::NotFound(student)),
        Some(StudentScope::All) => Ok((None, "all".into())),
        Some(StudentScope::Orgs(orgs)) => {
            let key = orgs
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",");
            Ok((Some(orgs), key))
        }
    }
}

/// One test in a student's history.
#[derive(Serialize)]
pub struct TestSummaryView {
    test_id: Uuid,
    pool_id: Uuid,
    pool_version: i32,
    organization_id: Option<Uuid>,
    status: &'static str,
    items_answered: i32,
    /// Absent to the student of an exam whose results are not released.
    #[serde(skip_serializing_if = "Option::is_none")]
    correct_responses: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    theta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    se: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    ended_at: Option<OffsetDateTime>,
}

impl TestSummaryView {
    /// `t` as its student (`own`) or staff see it.
    fn new(t: TestSummary, own: bool) -> Self {
        let open = !(own && t.sealed);
        Self {
            test_id: t.id,
            pool_id: t.pool_id,
            pool_version: t.pool_version,
            organization_id: t.org_id,
            status: t.status.as_str(),
            items_answered: t.items_answered,
            correct_responses: open.then_some(t.correct_count),
            theta: open.then_some(t.theta),
            se: open.then_some(t.se),
            started_at: t.started_at,
            ended_at: t.ended_at,
        }
    }
}

/// One page of a student's tests.
#[derive(Serialize)]
pub struct TestHistory {
    tests: Vec<TestSummaryView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// One page of a student's tests, newest first.
pub async fn tests(
    app: &App,
    caller: &Caller,
    student: Uuid,
    limit: i64,
    offset: i64,
) -> Result<CachedJson, Error> {
    let (orgs, scope) = may_read(app, caller, student).await?;
    // The student's own view leaves out what their unreleased exams would tell.
    let own = caller.user_id == student;
    let key = format!(
        "tests:{limit}:{offset}:{scope}:{}",
        if own { "own" } else { "staff" }
    );
    let load = || async {
        let found = stored::tests(app.db(), student, orgs.as_deref(), limit, offset).await?;
        Ok(found.map(|found| TestHistory {
            tests: found
                .tests
                .into_iter()
                .map(|t| TestSummaryView::new(t, own))
                .collect(),
            limit,
            offset,
            total: found.total,
        }))
    };
    cached_json(app, &Namespace::History(student), &key, load)
        .await?
        .ok_or(Error::NotFound(student))
}

/// One long-term ability.
#[derive(Serialize)]
pub struct AbilityView {
    theta: f64,
    se: f64,
    n: i32,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A student's long-term proficiency in one organization, overall and by concept.
#[derive(Serialize)]
pub struct StudentProficiency {
    student_id: Uuid,
    organization_id: Option<Uuid>,
    overall: Option<AbilityView>,
    concepts: BTreeMap<String, AbilityView>,
}

/// A student's long-term proficiency in `org` (else where it was updated last).
pub async fn proficiency(
    app: &App,
    caller: &Caller,
    student: Uuid,
    org: Option<Uuid>,
) -> Result<CachedJson, Error> {
    let (orgs, scope) = may_read(app, caller, student).await?;
    if let (Some(orgs), Some(org)) = (&orgs, org)
        && !orgs.contains(&org)
    {
        return Err(Error::NotFound(student));
    }
    let key = match org {
        Some(org) => format!("proficiency:{scope}:{org}"),
        None => format!("proficiency:{scope}"),
    };
    let load = || load_proficiency(app, student, orgs.as_deref(), org);
    cached_json(app, &Namespace::Proficiency(student), &key, load)
        .await?
        .ok_or(Error::NotFound(student))
}

/// A student's long-term proficiency from PostgreSQL; `None` when no such user.
async fn load_proficiency(
    app: &App,
    student: Uuid,
    orgs: Option<&[Uuid]>,
    org: Option<Uuid>,
) -> Result<Option<StudentProficiency>, StoreError> {
    let Some(found) = stored::proficiency(app.db(), student, orgs, org.map(Some)).await? else {
        return Ok(None);
    };
    let mut body = StudentProficiency {
        student_id: student,
        organization_id: found.org_id,
        overall: None,
        concepts: BTreeMap::new(),
    };
    for Ability {
        concept,
        theta,
        se,
        n,
        updated_at,
    } in found.abilities
    {
        let view = AbilityView {
            theta,
            se,
            n,
            updated_at,
        };
        // The store keeps the overall ability under the empty concept name.
        if concept.is_empty() {
            body.overall = Some(view);
        } else {
            body.concepts.insert(concept, view);
        }
    }
    Ok(Some(body))
}
