//! Who may touch what, across organizations. One rule for the whole API:
//! outside a resource's organization it does not exist (404); inside it,
//! without the role it needs, it is forbidden (403). A student's own things
//! are decided from the thing alone (its student id), with no I/O: the hot
//! paths (submit, next, a tutoring input) pay nothing for tenancy. Any other
//! caller costs one indexed PostgreSQL statement ([`standing`]), read fresh on
//! every decision, so a role or membership change counts from the next request.

use uuid::Uuid;

use crate::app::App;
use crate::store::StoreError;
use crate::store::audit::{self, Entry};
use crate::store::tenancy;
pub use crate::store::tenancy::{OrgOf, OrgRole, Standing, StudentScope};

/// What a caller wants with something a student owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Take part in it (answer, end): the student, their org admin, a platform admin.
    Act,
    /// Read it: also the teachers of the student's classes in its organization.
    Read,
}

/// Why a caller may not touch something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// They may not know it exists: answer as if it did not (404).
    Hidden,
    /// They may see it but not do this (403).
    Forbidden,
}

/// A decision: allowed, or why not.
pub type Verdict = Result<(), Denied>;

impl Standing {
    /// A student's test or tutoring session: org admins and platform admins
    /// act and read; the student's teachers (in its organization) read only.
    pub fn student_thing(&self, use_: Use) -> Verdict {
        if self.platform_admin || self.org_role == Some(OrgRole::OrgAdmin) {
            return Ok(());
        }
        match (self.teaches_student, use_) {
            (true, Use::Read) => Ok(()),
            (true, Use::Act) => Err(Denied::Forbidden),
            (false, _) => Err(Denied::Hidden),
        }
    }

    /// Something every member of the organization uses (a pool to take a test on).
    pub fn member(&self) -> Verdict {
        if self.platform_admin || self.org_role.is_some() {
            Ok(())
        } else {
            Err(Denied::Hidden)
        }
    }

    /// Something the organization's teachers and org admins work with.
    pub fn org_staff(&self) -> Verdict {
        self.needs(self.org_role.is_some_and(OrgRole::is_staff))
    }

    /// A class: its teachers and the organization's org admins.
    pub fn class_staff(&self) -> Verdict {
        self.needs(self.teaches_class || self.org_role == Some(OrgRole::OrgAdmin))
    }

    /// The organization's management: its org admins.
    pub fn org_admin(&self) -> Verdict {
        self.needs(self.org_role == Some(OrgRole::OrgAdmin))
    }

    /// Members who are not `enough` are forbidden; others do not see it.
    fn needs(&self, enough: bool) -> Verdict {
        match (self.platform_admin || enough, self.org_role) {
            (true, _) => Ok(()),
            (false, Some(_)) => Err(Denied::Forbidden),
            (false, None) => Err(Denied::Hidden),
        }
    }
}

/// Where `caller` stands to a resource of `org` (owned by `student`, in `class`).
pub async fn standing(
    app: &App,
    caller: Uuid,
    org: OrgOf,
    student: Option<Uuid>,
    class: Option<Uuid>,
) -> Result<Standing, StoreError> {
    tenancy::standing(&app.db().get().await?, caller, org, student, class).await
}

/// Where `caller` stands to the resource `org`, if it exists and `rule` lets
/// them; else why not (a resource that does not exist is [`Denied::Hidden`]).
pub async fn admitted(
    app: &App,
    caller: Uuid,
    org: OrgOf,
    rule: fn(&Standing) -> Verdict,
) -> Result<Result<Standing, Denied>, StoreError> {
    let s = standing(app, caller, org, None, None).await?;
    let verdict = if s.found {
        rule(&s)
    } else {
        Err(Denied::Hidden)
    };
    Ok(verdict.map(|()| s))
}

/// Whether `caller` may `use_` a thing of `owner`'s in `org`: decided without
/// I/O when the caller is the owner.
pub async fn student_thing(
    app: &App,
    caller: Uuid,
    org: OrgOf,
    owner: Option<Uuid>,
    use_: Use,
) -> Result<Verdict, StoreError> {
    if owner.is_some() && owner == Some(caller) {
        return Ok(Ok(()));
    }
    // The standing and the entry on one connection: one checkout, as before the trail.
    let client = app.db().get().await?;
    let standing = tenancy::standing(&client, caller, org, owner, None).await?;
    let verdict = standing.student_thing(use_);
    if verdict.is_ok() {
        let (kind, id) = match org {
            OrgOf::Test(id) => ("test", id),
            OrgOf::TeachingSession(id) => ("teaching_session", id),
            _ => ("student_thing", Uuid::nil()),
        };
        let action = match use_ {
            Use::Read => "student_data.read",
            Use::Act => "student_data.acted_on",
        };
        let mut entry = Entry::new(action, kind, id).org(standing.org);
        if let Some(owner) = owner {
            entry = entry.subject(owner);
        }
        audit::record(&client, entry.detail(route())).await?;
    }
    Ok(verdict)
}

/// The route being served, for an audit entry of a read.
fn route() -> serde_json::Value {
    serde_json::json!({ "route": audit::context().route })
}

/// Where `caller` may read `student`'s records; `None` when nowhere.
pub async fn student_records(
    app: &App,
    caller: Uuid,
    student: Uuid,
) -> Result<Option<StudentScope>, StoreError> {
    if caller == student {
        return Ok(Some(StudentScope::All));
    }
    let client = app.db().get().await?;
    let scope = match tenancy::student_scope(&client, caller, student).await? {
        StudentScope::Orgs(orgs) if orgs.is_empty() => return Ok(None),
        scope => scope,
    };
    // A read of one student's records by someone else: on the trail, under
    // the one organization it was scoped to (else under none: every
    // organization of the student's sees it).
    let org = match &scope {
        StudentScope::Orgs(orgs) if orgs.len() == 1 => Some(orgs[0]),
        _ => None,
    };
    let entry = Entry::new("student_data.read", "student", student)
        .org(org)
        .subject(student)
        .detail(route());
    audit::record(&client, entry).await?;
    Ok(Some(scope))
}

/// Whether `caller` is a platform admin (read now, not at sign-in).
pub async fn is_platform_admin(app: &App, caller: Uuid) -> Result<bool, StoreError> {
    tenancy::is_platform_admin(app.db(), caller).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(platform: bool, role: Option<OrgRole>, student: bool, class: bool) -> Standing {
        Standing {
            found: true,
            staff_anywhere: role.is_some_and(OrgRole::is_staff),
            org: Some(Uuid::nil()),
            platform_admin: platform,
            org_role: role,
            teaches_student: student,
            teaches_class: class,
        }
    }

    #[test]
    fn outside_the_organization_nothing_exists_inside_it_roles_decide() {
        use Denied::*;
        use OrgRole::*;
        let outsider = standing(false, None, false, false);
        let student = standing(false, Some(Student), false, false);
        let teacher = standing(false, Some(Teacher), false, false);
        let class_teacher = standing(false, Some(Teacher), true, true);
        let admin = standing(false, Some(OrgAdmin), false, false);
        let platform = standing(true, None, false, false);
        type Rule = fn(&Standing) -> Verdict;
        let rules: [(&str, Rule); 6] = [
            ("act", |s| s.student_thing(Use::Act)),
            ("read", |s| s.student_thing(Use::Read)),
            ("member", Standing::member),
            ("org staff", Standing::org_staff),
            ("class staff", Standing::class_staff),
            ("org admin", Standing::org_admin),
        ];
        let expected: [[Verdict; 6]; 6] = [
            // act, read, member, org staff, class staff, org admin
            [
                Err(Hidden),
                Err(Hidden),
                Err(Hidden),
                Err(Hidden),
                Err(Hidden),
                Err(Hidden),
            ],
            [
                Err(Hidden),
                Err(Hidden),
                Ok(()),
                Err(Forbidden),
                Err(Forbidden),
                Err(Forbidden),
            ],
            [
                Err(Hidden),
                Err(Hidden),
                Ok(()),
                Ok(()),
                Err(Forbidden),
                Err(Forbidden),
            ],
            [
                Err(Forbidden),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Err(Forbidden),
            ],
            [Ok(()), Ok(()), Ok(()), Ok(()), Ok(()), Ok(())],
            [Ok(()), Ok(()), Ok(()), Ok(()), Ok(()), Ok(())],
        ];
        let who = [outsider, student, teacher, class_teacher, admin, platform];
        for (w, row) in who.iter().zip(expected) {
            for ((name, rule), want) in rules.iter().zip(row) {
                assert_eq!(rule(w), want, "{name} for {w:?}");
            }
        }
    }
}
