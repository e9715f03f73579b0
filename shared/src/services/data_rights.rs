//! Data rights (issue 22): a person's data as one JSON document, and the
//! erasure of a student.
//!
//! Who may: the person themselves (export only), a platform admin, and an org
//! admin who administers every organization the person belongs to (the
//! document and the erasure span all of them); other members of their
//! organizations are refused (403), anyone else is told there is no such user
//! (404). Only a student is erased: staff and platform admins are 422.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::admin::{self, Act};
use super::auth::sessions;
use super::auth::{self, Caller};
use super::cat;
use super::scope;
use crate::app::App;
use crate::store::StoreError;
use crate::store::audit::{self, Entry};
use crate::store::data_rights::{self as stored, Erasure, RedisHalf};

/// Why a data-rights request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused, or no such user (as the account rules say).
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// A test of the person's could not be reported.
    #[error(transparent)]
    Test(#[from] cat::Error),
    /// Not a student's account.
    #[error(
        "only a student's account is erased: this account is staff of an organization or a platform admin"
    )]
    NotStudent,
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The version of the export document's shape.
pub const EXPORT_FORMAT: &str = "lectern.export/1";

/// `GET /v1/users/{id}/export`: everything lectern holds of `user`, as one
/// document. Tests are reported as their examinee sees them (an exam's
/// results only once released), whoever asks.
pub async fn export(app: &App, caller: &Caller, user: Uuid) -> Result<Value, Error> {
    let own = caller.user_id == user;
    if !own {
        admin::authorize(app, caller, user, Act::Account).await?;
    }
    let data = stored::export(app.db(), user)
        .await?
        .ok_or(auth::Error::NoUser(user))?;
    let action = if own {
        "account.exported"
    } else {
        "student_data.exported"
    };
    audit::record_alone(app.db(), Entry::new(action, "account", user).subject(user)).await?;
    let sessions = sessions::of_user(app, user, caller.session.id).await?;
    let mut tests = Vec::with_capacity(data.tests.len());
    for id in data.tests {
        match cat::examinee_report(app, id).await {
            Ok(report) => tests.push(report),
            // Gone since the list was read (its pool deleted): nothing to report.
            Err(cat::Error::TestNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({
        "format": EXPORT_FORMAT,
        "exported_at": OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "account": data.account,
        "memberships": data.memberships,
        "classes": data.classes,
        "sessions": sessions,
        "tests": tests,
        "proficiency": data.proficiency,
        "tutoring_sessions": data.tutoring_sessions,
        "course_progress": data.course_progress,
    }))
}

/// `POST /v1/users/{id}/erase`: erases the student `user` (see
/// [`stored::erase`]), then removes what Redis holds of them. A retry after
/// a failure of Redis's half (503) finishes it and answers the first report,
/// as does any repeat by whoever may see the erasure.
pub async fn erase(app: &App, caller: &Caller, user: Uuid) -> Result<Value, Error> {
    let outcome = match admin::authorize(app, caller, user, Act::Account).await {
        Ok(()) => stored::erase(app.db(), user, caller.user_id).await?,
        // Gone, or hidden from the caller: only an erasure they may see answers.
        Err(auth::Error::NoUser(_)) => stored::erased(app.db(), user).await?,
        Err(e) => return Err(e.into()),
    };
    match outcome {
        Erasure::Done {
            report,
            token_hashes,
            email_hash,
            redis,
        } => {
            finish(app, user, token_hashes, &redis, Some(&email_hash)).await?;
            Ok(report)
        }
        Erasure::Before {
            report,
            erased_by,
            organizations,
            redis,
        } => {
            let sees = erased_by == Some(caller.user_id)
                || scope::is_platform_admin(app, caller.user_id).await?
                || stored::administers_any(app.db(), caller.user_id, &organizations).await?;
            if !sees {
                return Err(auth::Error::NoUser(user).into());
            }
            if let Some(redis) = redis {
                finish(app, user, Vec::new(), &redis, None).await?;
            }
            Ok(report)
        }
        Erasure::NotStudent => Err(Error::NotStudent),
        Erasure::NoUser => Err(auth::Error::NoUser(user).into()),
    }
}

/// Redis's half of an erasure: the person's auth sessions (those PostgreSQL
/// had, and any Redis's index still names), then everything else of theirs;
/// noted as done in PostgreSQL.
async fn finish(
    app: &App,
    user: Uuid,
    token_hashes: Vec<String>,
    half: &RedisHalf,
    email_hash: Option<&str>,
) -> Result<(), StoreError> {
    sessions::end_revoked(app, user, token_hashes).await?;
    stored::purge(app.redis(), user, half, email_hash).await?;
    stored::cleared(app.db(), user).await
}

/// The sweeper's part: finishes the erasures whose Redis half failed and was
/// not retried. Returns how many it finished.
pub async fn finish_pending(app: &App) -> Result<u64, StoreError> {
    let mut finished = 0;
    for (user, half) in stored::pending(app.db(), 100).await? {
        finish(app, user, Vec::new(), &half, None).await?;
        finished += 1;
    }
    Ok(finished)
}
