//! Organizations and classes managed: organizations (platform admins create
//! them), their members and roles, classes with their teachers and students,
//! invitation codes students join a class with, and an organization's counts.
//!
//! Who may: the scope rules ([`super::scope`]) on the organization
//! ([`OrgOf::Organization`]) or the class ([`OrgOf::Class`]), read on every
//! request, so a role change counts from the next one. Outside the
//! organization it does not exist (404, as an unknown id); inside it without
//! the role it is forbidden (403). A teacher lists the classes they teach
//! (what [`Standing::class_staff`] lets them read), an org admin every class.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::accounts::normalise_email;
use super::auth::secret::{random_token, sha256_hex};
use super::scope::{self, Denied, OrgOf, OrgRole, Standing, Verdict};
use crate::app::App;
use crate::store::StoreError;
use crate::store::audit;
use crate::store::orgs::{
    self as stored, Accepted, Added, Changed, Class, ClassPerson, Invitation, Member, Organization,
    Placed, Side, UserRef,
};

/// Longest name of an organization or a class (characters, as sent).
const MAX_NAME_CHARS: usize = 200;
/// Uses an invitation may allow.
const MAX_USES: u32 = 1_000;
/// An invitation's lifetime unless asked: seven days.
const DEFAULT_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Shortest lifetime of an invitation: a minute.
const MIN_EXPIRY_SECS: u64 = 60;
/// Longest lifetime of an invitation: 90 days.
const MAX_EXPIRY_SECS: u64 = 90 * 24 * 3600;
/// Longest invitation code accepted (the codes handed out are 43 characters).
const MAX_CODE_CHARS: usize = 256;

/// What can go wrong managing organizations, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input out of range or malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No organization with that id (or none the caller belongs to).
    #[error("no organization with id {0}")]
    OrgNotFound(Uuid),
    /// No class with that id (or none of an organization the caller belongs to).
    #[error("no class with id {0}")]
    ClassNotFound(Uuid),
    /// The caller belongs to the organization, without the role this needs.
    #[error("{0}")]
    Forbidden(String),
    /// Another organization has this slug.
    #[error("the slug {0:?} is taken")]
    SlugTaken(String),
    /// No account is named by the user id or email given.
    #[error("no user with {0}")]
    UnknownUser(String),
    /// The user is a member of the organization already.
    #[error("user {user} is already a member of organization {org}")]
    AlreadyMember {
        /// The user.
        user: Uuid,
        /// The organization.
        org: Uuid,
    },
    /// The user is not a member of the organization, or not on the class's list.
    #[error("no {what} {user} in {of}")]
    NoSuchMember {
        /// What they are not (`member`, `teacher`, `student`).
        what: &'static str,
        /// The user.
        user: Uuid,
        /// Of what (`organization <id>`, `class <id>`).
        of: String,
    },
    /// The change would leave the organization without an org admin.
    #[error("user {0} is the organization's last org admin: make another member org admin first")]
    LastOrgAdmin(Uuid),
    /// A class's teacher or student must be a member of its organization.
    #[error("user {user} is not a member of organization {org}")]
    NotAMember {
        /// The user.
        user: Uuid,
        /// The class's organization.
        org: Uuid,
    },
    /// A class's teacher must be a teacher or org admin of its organization.
    #[error(
        "user {0} is a student of the organization: only teachers and org admins teach a class"
    )]
    NotStaff(Uuid),
    /// The user teaches the class already.
    #[error("user {user} already teaches class {class}")]
    AlreadyTeacher {
        /// The user.
        user: Uuid,
        /// The class.
        class: Uuid,
    },
    /// The user is enrolled in the class already.
    #[error("user {user} is already enrolled in class {class}")]
    AlreadyEnrolled {
        /// The user.
        user: Uuid,
        /// The class.
        class: Uuid,
    },
    /// No invitation has this code.
    #[error("no invitation with this code")]
    InvitationNotFound,
    /// The invitation has expired.
    #[error("the invitation has expired")]
    InvitationExpired,
    /// Every use of the invitation is taken.
    #[error("the invitation has been used as many times as it allows")]
    InvitationUsedUp,
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ---- requests ----------------------------------------------------------------

/// `POST /v1/organizations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    name: String,
    slug: String,
}

/// `POST /v1/organizations/{id}/members`: a user by id or by email, and a role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    #[serde(default, deserialize_with = "crate::wire::some")]
    user_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::wire::some")]
    email: Option<String>,
    role: OrgRole,
}

/// `PATCH /v1/organizations/{id}/members/{user_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    role: OrgRole,
}

/// `POST /v1/organizations/{id}/classes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClass {
    name: String,
}

/// `POST /v1/classes/{id}/teachers` and `…/students`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    user_id: Uuid,
}

/// `POST /v1/classes/{id}/invitations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    max_uses: Option<u32>,
    #[serde(default, deserialize_with = "crate::wire::some_integer")]
    expires_in_secs: Option<u64>,
}

/// `POST /v1/invitations/accept`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    code: String,
}

// ---- views -------------------------------------------------------------------

/// An organization, with the caller's role in it (`None`: not a member).
#[derive(Debug, Serialize)]
pub struct OrganizationView {
    /// Its id.
    pub id: Uuid,
    name: String,
    slug: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    role: Option<OrgRole>,
}

impl OrganizationView {
    fn new(o: Organization, role: Option<OrgRole>) -> Self {
        Self {
            id: o.id,
            name: o.name,
            slug: o.slug,
            created_at: o.created_at,
            role,
        }
    }
}

/// A page of organizations.
#[derive(Debug, Serialize)]
pub struct OrganizationPage {
    organizations: Vec<OrganizationView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// A member of an organization.
#[derive(Debug, Serialize)]
pub struct MemberView {
    user_id: Uuid,
    email: String,
    display_name: Option<String>,
    role: OrgRole,
    #[serde(with = "time::serde::rfc3339")]
    joined_at: OffsetDateTime,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            display_name: m.display_name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

/// A page of an organization's members.
#[derive(Debug, Serialize)]
pub struct MemberPage {
    members: Vec<MemberView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// A class.
#[derive(Debug, Serialize)]
pub struct ClassView {
    /// Its id.
    pub id: Uuid,
    organization_id: Uuid,
    name: String,
    teachers: i64,
    students: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Class> for ClassView {
    fn from(c: Class) -> Self {
        Self {
            id: c.id,
            organization_id: c.org_id,
            name: c.name,
            teachers: c.teachers,
            students: c.students,
            created_at: c.created_at,
        }
    }
}

/// A page of an organization's classes.
#[derive(Debug, Serialize)]
pub struct ClassPage {
    classes: Vec<ClassView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// A class's teacher or student.
#[derive(Debug, Serialize)]
pub struct PersonView {
    user_id: Uuid,
    email: String,
    display_name: Option<String>,
    /// Their role in the class's organization.
    role: OrgRole,
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
}

impl From<ClassPerson> for PersonView {
    fn from(p: ClassPerson) -> Self {
        Self {
            user_id: p.user_id,
            email: p.email,
            display_name: p.display_name,
            role: p.role,
            since: p.since,
        }
    }
}

/// A page of a class's teachers.
#[derive(Debug, Serialize)]
pub struct TeacherPage {
    teachers: Vec<PersonView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// A page of a class's students.
#[derive(Debug, Serialize)]
pub struct StudentPage {
    students: Vec<PersonView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// An invitation as listed: never its code.
#[derive(Debug, Serialize)]
pub struct InvitationView {
    id: Uuid,
    class_id: Uuid,
    organization_id: Uuid,
    max_uses: i32,
    uses: i32,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id,
            class_id: i.class_id,
            organization_id: i.org_id,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at,
            created_by: i.created_by,
            created_at: i.created_at,
        }
    }
}

/// A new invitation with its code: shown this once, only its SHA-256 is kept.
#[derive(Debug, Serialize)]
pub struct IssuedInvitation {
    #[serde(flatten)]
    invitation: InvitationView,
    code: String,
}

/// A page of a class's invitations.
#[derive(Debug, Serialize)]
pub struct InvitationPage {
    invitations: Vec<InvitationView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// What accepting an invitation made of the caller.
#[derive(Debug, Serialize)]
pub struct Joined {
    organization_id: Uuid,
    class_id: Uuid,
    /// Their role in the organization (an existing one is kept).
    role: OrgRole,
}

/// Members by role.
#[derive(Debug, Serialize)]
struct MemberCounts {
    org_admin: i64,
    teacher: i64,
    student: i64,
    total: i64,
}

/// Tests by state.
#[derive(Debug, Serialize)]
struct TestCounts {
    running: i64,
    ended: i64,
    abandoned: i64,
}

/// Tutoring sessions.
#[derive(Debug, Serialize)]
struct TeachingCounts {
    total: i64,
    live: i64,
}

/// An organization's counts.
#[derive(Debug, Serialize)]
pub struct StatsView {
    organization_id: Uuid,
    members: MemberCounts,
    classes: i64,
    pools: i64,
    tests: TestCounts,
    teaching_sessions: TeachingCounts,
}

// ---- validation --------------------------------------------------------------

/// A name: not blank, at most [`MAX_NAME_CHARS`] characters as sent, no
/// control character; stored trimmed.
fn checked_name(field: &str, raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Error::Invalid(format!("{field} must not be blank")));
    }
    if raw.chars().count() > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// A slug: 2 to 63 of `a-z`, `0-9` and `-`, neither starting nor ending with
/// `-`, never two in a row (as the table's check says).
fn is_valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

// ---- access ------------------------------------------------------------------

/// How `caller` stands to organization `org`, if `rule` lets them; an
/// organization that does not exist is hidden like one they are outside of.
async fn in_org(
    app: &App,
    caller: Uuid,
    org: Uuid,
    rule: fn(&Standing) -> Verdict,
    who: &str,
) -> Result<Standing, Error> {
    let s = scope::standing(app, caller, OrgOf::Organization(org), None, None).await?;
    let verdict = if s.found {
        rule(&s)
    } else {
        Err(Denied::Hidden)
    };
    verdict.map_err(|denied| match denied {
        Denied::Hidden => Error::OrgNotFound(org),
        Denied::Forbidden => {
            Error::Forbidden(format!("only {who} of organization {org} may do this"))
        }
    })?;
    Ok(s)
}

/// How `caller` stands to class `class` (and its organization, `org` of the
/// standing), if `rule` lets them; a class that does not exist is hidden.
async fn in_class(
    app: &App,
    caller: Uuid,
    class: Uuid,
    rule: fn(&Standing) -> Verdict,
    who: &str,
) -> Result<(Standing, Uuid), Error> {
    let s = scope::standing(app, caller, OrgOf::Class(class), None, Some(class)).await?;
    let org = s.org.filter(|_| s.found);
    let verdict = match org {
        Some(_) => rule(&s),
        None => Err(Denied::Hidden),
    };
    verdict.map_err(|denied| match denied {
        Denied::Hidden => Error::ClassNotFound(class),
        Denied::Forbidden => Error::Forbidden(format!("only {who} may do this to class {class}")),
    })?;
    Ok((s, org.expect("a found class has an organization")))
}

const ORG_ADMINS: &str = "org admins";
const CLASS_STAFF: &str = "the class's teachers and the organization's org admins";

// ---- organizations -----------------------------------------------------------

/// Creates an organization (platform admins: the route's access says so).
pub async fn create_organization(
    app: &App,
    new: NewOrganization,
) -> Result<OrganizationView, Error> {
    let name = checked_name("name", &new.name)?;
    if !is_valid_slug(&new.slug) {
        return Err(Error::Invalid(format!(
            "slug {:?} must be 2 to 63 of a-z, 0-9 and single dashes, starting and ending with a letter or digit",
            new.slug
        )));
    }
    let created = stored::create(app.db(), &name, &new.slug)
        .await?
        .ok_or(Error::SlugTaken(new.slug))?;
    Ok(OrganizationView::new(created, None))
}

/// One page of the organizations `caller` belongs to (every one, for a platform admin).
pub async fn organizations(
    app: &App,
    caller: Uuid,
    limit: i64,
    offset: i64,
) -> Result<OrganizationPage, Error> {
    let all = scope::is_platform_admin(app, caller).await?;
    let (page, total) = stored::list(app.db(), caller, all, limit, offset).await?;
    Ok(OrganizationPage {
        organizations: page
            .into_iter()
            .map(|(o, role)| OrganizationView::new(o, role))
            .collect(),
        limit,
        offset,
        total,
    })
}

/// One organization, to its members (and platform admins).
pub async fn organization(app: &App, caller: Uuid, org: Uuid) -> Result<OrganizationView, Error> {
    let s = in_org(app, caller, org, Standing::member, "members").await?;
    let found = stored::get(app.db(), org)
        .await?
        .ok_or(Error::OrgNotFound(org))?;
    Ok(OrganizationView::new(found, s.org_role))
}

/// One page of an organization's members.
pub async fn members(
    app: &App,
    caller: Uuid,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<MemberPage, Error> {
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    let (members, total) = stored::members(app.db(), org, limit, offset).await?;
    Ok(MemberPage {
        members: members.into_iter().map(MemberView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// Makes a user (by id or email) a member of the organization.
pub async fn add_member(
    app: &App,
    caller: Uuid,
    org: Uuid,
    new: NewMember,
) -> Result<MemberView, Error> {
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    let email = new
        .email
        .as_deref()
        .map(|e| normalise_email(e).map_err(|e| Error::Invalid(format!("email: {e}"))))
        .transpose()?;
    let (who, shown) = match (new.user_id, &email) {
        (Some(id), None) => (UserRef::Id(id), format!("id {id}")),
        (None, Some(email)) => (UserRef::Email(email), format!("email {email}")),
        _ => {
            return Err(Error::Invalid(
                "name the user by user_id or by email (one of them)".into(),
            ));
        }
    };
    match stored::add_member(app.db(), org, who, new.role).await? {
        Added::Member(m) => Ok(m.into()),
        Added::NoUser => Err(Error::UnknownUser(shown)),
        Added::AlreadyMember(user) => Err(Error::AlreadyMember { user, org }),
    }
}

/// Changes a member's role.
pub async fn change_role(
    app: &App,
    caller: Uuid,
    org: Uuid,
    user: Uuid,
    change: RoleChange,
) -> Result<MemberView, Error> {
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    changed(
        stored::change_role(app.db(), org, user, change.role).await?,
        org,
        user,
    )
    .map(MemberView::from)
}

/// Removes a member from the organization and its classes.
pub async fn remove_member(app: &App, caller: Uuid, org: Uuid, user: Uuid) -> Result<(), Error> {
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    changed(stored::remove_member(app.db(), org, user).await?, org, user).map(drop)
}

fn changed(outcome: Changed, org: Uuid, user: Uuid) -> Result<Member, Error> {
    match outcome {
        Changed::Done(m) => Ok(m),
        Changed::NotMember => Err(Error::NoSuchMember {
            what: "member",
            user,
            of: format!("organization {org}"),
        }),
        Changed::LastOrgAdmin => Err(Error::LastOrgAdmin(user)),
    }
}

/// Creates a class of the organization.
pub async fn create_class(
    app: &App,
    caller: Uuid,
    org: Uuid,
    new: NewClass,
) -> Result<ClassView, Error> {
    let name = checked_name("name", &new.name)?;
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    Ok(stored::create_class(app.db(), org, &name).await?.into())
}

/// One page of the organization's classes: every one for its org admins (and
/// platform admins), those they teach for its teachers.
pub async fn classes(
    app: &App,
    caller: Uuid,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<ClassPage, Error> {
    let s = in_org(
        app,
        caller,
        org,
        Standing::org_staff,
        "teachers and org admins",
    )
    .await?;
    let every = s.platform_admin || s.org_role == Some(OrgRole::OrgAdmin);
    let taught_by = (!every).then_some(caller);
    let (classes, total) = stored::classes(app.db(), org, taught_by, limit, offset).await?;
    Ok(ClassPage {
        classes: classes.into_iter().map(ClassView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// The organization's counts, for its org admins.
pub async fn stats(app: &App, caller: Uuid, org: Uuid) -> Result<StatsView, Error> {
    in_org(app, caller, org, Standing::org_admin, ORG_ADMINS).await?;
    let s = stored::stats(app.db(), org).await?;
    Ok(StatsView {
        organization_id: org,
        members: MemberCounts {
            org_admin: s.org_admins,
            teacher: s.teachers,
            student: s.students,
            total: s.org_admins + s.teachers + s.students,
        },
        classes: s.classes,
        pools: s.pools,
        tests: TestCounts {
            running: s.tests_running,
            ended: s.tests_ended,
            abandoned: s.tests_abandoned,
        },
        teaching_sessions: TeachingCounts {
            total: s.teaching_sessions,
            live: s.teaching_sessions_live,
        },
    })
}

// ---- classes -----------------------------------------------------------------

/// One class, to its teachers and the organization's org admins.
pub async fn class(app: &App, caller: Uuid, id: Uuid) -> Result<ClassView, Error> {
    in_class(app, caller, id, Standing::class_staff, CLASS_STAFF).await?;
    Ok(stored::get_class(app.db(), id)
        .await?
        .ok_or(Error::ClassNotFound(id))?
        .into())
}

/// One page of a class's teachers, for the organization's org admins.
pub async fn teachers(
    app: &App,
    caller: Uuid,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<TeacherPage, Error> {
    in_class(app, caller, class, Standing::org_admin, ORG_ADMINS).await?;
    let (people, total) = stored::people(app.db(), class, Side::Teachers, limit, offset).await?;
    Ok(TeacherPage {
        teachers: people.into_iter().map(PersonView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// One page of a class's students, for its teachers and the org admins.
pub async fn students(
    app: &App,
    caller: Uuid,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<StudentPage, Error> {
    in_class(app, caller, class, Standing::class_staff, CLASS_STAFF).await?;
    let (people, total) = stored::people(app.db(), class, Side::Students, limit, offset).await?;
    Ok(StudentPage {
        students: people.into_iter().map(PersonView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// Assigns a teacher or org admin of the class's organization to teach it
/// (the organization's org admins do).
pub async fn assign(
    app: &App,
    caller: Uuid,
    class: Uuid,
    who: Placement,
) -> Result<PersonView, Error> {
    let (_, org) = in_class(app, caller, class, Standing::org_admin, ORG_ADMINS).await?;
    let user = who.user_id;
    match stored::place(app.db(), class, user, Side::Teachers).await? {
        Placed::Done(p) => Ok(p.into()),
        Placed::NotMember => Err(Error::NotAMember { user, org }),
        Placed::NotStaff => Err(Error::NotStaff(user)),
        Placed::Already => Err(Error::AlreadyTeacher { user, class }),
    }
}

/// Enrolls a member of the class's organization in it (its teachers and the
/// org admins do).
pub async fn enroll(
    app: &App,
    caller: Uuid,
    class: Uuid,
    who: Placement,
) -> Result<PersonView, Error> {
    let (_, org) = in_class(app, caller, class, Standing::class_staff, CLASS_STAFF).await?;
    let user = who.user_id;
    match stored::place(app.db(), class, user, Side::Students).await? {
        Placed::Done(p) => Ok(p.into()),
        Placed::NotMember | Placed::NotStaff => Err(Error::NotAMember { user, org }),
        Placed::Already => Err(Error::AlreadyEnrolled { user, class }),
    }
}

/// Takes a teacher off a class (the organization's org admins do).
pub async fn unassign(app: &App, caller: Uuid, class: Uuid, user: Uuid) -> Result<(), Error> {
    in_class(app, caller, class, Standing::org_admin, ORG_ADMINS).await?;
    unplace(app, class, user, Side::Teachers, "teacher").await
}

/// Withdraws a student from a class (its teachers and the org admins do).
pub async fn withdraw(app: &App, caller: Uuid, class: Uuid, user: Uuid) -> Result<(), Error> {
    in_class(app, caller, class, Standing::class_staff, CLASS_STAFF).await?;
    unplace(app, class, user, Side::Students, "student").await
}

async fn unplace(
    app: &App,
    class: Uuid,
    user: Uuid,
    side: Side,
    what: &'static str,
) -> Result<(), Error> {
    if stored::unplace(app.db(), class, user, side).await? {
        Ok(())
    } else {
        Err(Error::NoSuchMember {
            what,
            user,
            of: format!("class {class}"),
        })
    }
}

// ---- invitations -------------------------------------------------------------

/// Issues an invitation code to a class (the organization's org admins do:
/// a code makes whoever holds it a member). The code is returned this once.
pub async fn invite(
    app: &App,
    caller: Uuid,
    class: Uuid,
    new: NewInvitation,
) -> Result<IssuedInvitation, Error> {
    let max_uses = new.max_uses.unwrap_or(1);
    if !(1..=MAX_USES).contains(&max_uses) {
        return Err(Error::Invalid(format!(
            "max_uses must be from 1 to {MAX_USES} (got {max_uses})"
        )));
    }
    let expires_in = new.expires_in_secs.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&expires_in) {
        return Err(Error::Invalid(format!(
            "expires_in_secs must be from {MIN_EXPIRY_SECS} to {MAX_EXPIRY_SECS} (got {expires_in})"
        )));
    }
    let (_, org) = in_class(app, caller, class, Standing::org_admin, ORG_ADMINS).await?;
    let code = random_token();
    let invitation = stored::create_invitation(
        app.db(),
        org,
        class,
        &sha256_hex(&code),
        max_uses as i32,
        expires_in as i64,
        caller,
    )
    .await?;
    Ok(IssuedInvitation {
        invitation: invitation.into(),
        code,
    })
}

/// One page of a class's invitations (without codes), for the org admins.
pub async fn invitations(
    app: &App,
    caller: Uuid,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<InvitationPage, Error> {
    in_class(app, caller, class, Standing::org_admin, ORG_ADMINS).await?;
    let (page, total) = stored::invitations(app.db(), class, limit, offset).await?;
    Ok(InvitationPage {
        invitations: page.into_iter().map(InvitationView::from).collect(),
        limit,
        offset,
        total,
    })
}

/// Accepts an invitation: the caller joins the class's organization (as a
/// student, unless a member already) and is enrolled in the class.
pub async fn accept(app: &App, caller: Uuid, acceptance: Acceptance) -> Result<Joined, Error> {
    let code = acceptance.code.trim();
    if code.is_empty() || acceptance.code.chars().count() > MAX_CODE_CHARS {
        return Err(Error::Invalid(format!(
            "code must be 1 to {MAX_CODE_CHARS} characters"
        )));
    }
    match stored::accept(app.db(), &sha256_hex(code), caller).await? {
        Accepted::Joined {
            org_id,
            class_id,
            role,
        } => Ok(Joined {
            organization_id: org_id,
            class_id,
            role,
        }),
        Accepted::NotFound => Err(Error::InvitationNotFound),
        Accepted::Expired => Err(Error::InvitationExpired),
        Accepted::UsedUp => Err(Error::InvitationUsedUp),
        Accepted::AlreadyEnrolled(class) => Err(Error::AlreadyEnrolled {
            user: caller,
            class,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_what_the_table_allows() {
        for ok in ["ab", "a1", "north-school", "x-1-y", &"a".repeat(63)] {
            assert!(is_valid_slug(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a",
            "-ab",
            "ab-",
            "a--b",
            "Ab",
            "a b",
            "a_b",
            "é1",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_slug(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(checked_name("name", "  Lycée  ").unwrap(), "Lycée");
        assert!(checked_name("name", "   ").is_err());
        assert!(checked_name("name", "a\tb").is_err());
        assert!(checked_name("name", &"x".repeat(201)).is_err());
        assert!(checked_name("name", &"x".repeat(200)).is_ok());
    }
}

/// `GET /v1/audit`: what to read of the audit trail (every field narrows).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The organization (required unless the caller is a platform admin).
    pub organization_id: Option<Uuid>,
    /// By this actor.
    pub actor_id: Option<Uuid>,
    /// About this person.
    pub subject_id: Option<Uuid>,
    /// This action, or every action of a resource (`pool.`).
    pub action: Option<String>,
    /// On this resource type.
    pub resource_type: Option<String>,
    /// On this resource.
    pub resource_id: Option<String>,
    /// At or after (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Before (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// The previous page's `next`.
    pub before: Option<i64>,
    /// Entries per page: 50 unless asked, at most 200.
    pub limit: Option<i64>,
}

/// One page of the audit trail, newest first.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<audit::Recorded>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next: Option<i64>,
}

/// The audit trail as `caller` may read it: a platform admin, all of it; an
/// org admin, their organization's (its resources', and its members'
/// sign-ins and account changes). Others of the organization are refused
/// (403); anyone else is told it does not exist (404).
pub async fn audit_trail(app: &App, caller: Uuid, query: AuditQuery) -> Result<AuditPage, Error> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::Invalid(format!(
            "limit must be from 1 to 200 (got {limit})"
        )));
    }
    match query.organization_id {
        Some(org) => {
            in_org(app, caller, org, Standing::org_admin, "org admins").await?;
        }
        None if scope::is_platform_admin(app, caller).await? => {}
        None => {
            return Err(Error::Invalid(
                "organization_id is required (only platform admins read the whole trail)".into(),
            ));
        }
    }
    for (name, value) in [
        ("action", &query.action),
        ("resource_type", &query.resource_type),
        ("resource_id", &query.resource_id),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.len() > 200 || v.contains('\0'))
        {
            return Err(Error::Invalid(format!(
                "{name} must be at most 200 characters, without U+0000"
            )));
        }
    }
    if query.before.is_some_and(|b| b < 1) {
        return Err(Error::Invalid(
            "before must be an entry id (1 or more): the previous page's next".into(),
        ));
    }
    let filter = audit::Filter {
        organization: query.organization_id,
        actor: query.actor_id,
        subject: query.subject_id,
        action: query.action,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        since: query.since,
        until: query.until,
        before: query.before,
    };
    let entries = audit::list(app.db(), &filter, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(AuditPage { entries, next })
}
