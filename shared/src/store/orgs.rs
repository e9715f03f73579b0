//! Organizations, their members, classes and invitation codes in PostgreSQL
//! (the tables of `V6__tenancy.sql`). Every function does its work in one
//! checkout; those whose outcome depends on what they read (the last org
//! admin, an invitation's uses) decide and write under row locks, so two
//! concurrent requests cannot both pass a check only one of them may.

use deadpool_postgres::{Pool, Transaction};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use super::tenancy::OrgRole;
use serde_json::json;

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Short name: lower case letters, digits and dashes; unique.
    pub slug: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// A member of an organization, with their account's name and email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their display name, if they have one.
    pub display_name: Option<String>,
    /// Their role in the organization.
    pub role: OrgRole,
    /// When they joined it.
    pub joined_at: OffsetDateTime,
}

/// A class, with how many teach it and are enrolled in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Its id.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Display name.
    pub name: String,
    /// Teachers assigned.
    pub teachers: i64,
    /// Students enrolled.
    pub students: i64,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// A teacher or student of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPerson {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their display name, if they have one.
    pub display_name: Option<String>,
    /// Their role in the class's organization.
    pub role: OrgRole,
    /// Since when they teach, or are enrolled in, the class.
    pub since: OffsetDateTime,
}

/// An invitation code's record (never the code: only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Its id.
    pub id: Uuid,
    /// The class it enrolls in.
    pub class_id: Uuid,
    /// The class's organization.
    pub org_id: Uuid,
    /// How many may use it.
    pub max_uses: i32,
    /// How many have.
    pub uses: i32,
    /// After this it is refused.
    pub expires_at: OffsetDateTime,
    /// Who issued it (`None` once their account is gone).
    pub created_by: Option<Uuid>,
    /// When.
    pub created_at: OffsetDateTime,
}

/// Counts of one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Members who are org admins.
    pub org_admins: i64,
    /// Members who are teachers.
    pub teachers: i64,
    /// Members who are students.
    pub students: i64,
    /// Classes.
    pub classes: i64,
    /// Pools of the organization (shared pools not counted).
    pub pools: i64,
    /// Tests taken in it that are active or completed, not ended.
    pub tests_running: i64,
    /// Tests ended.
    pub tests_ended: i64,
    /// Tests abandoned.
    pub tests_abandoned: i64,
    /// Tutoring sessions taken in it.
    pub teaching_sessions: i64,
    /// Those of them that have not ended.
    pub teaching_sessions_live: i64,
}

/// A user named by id or by (normalised) email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef<'a> {
    /// By id.
    Id(Uuid),
    /// By email, trimmed and in lower case.
    Email(&'a str),
}

/// What adding a member came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Added.
    Member(Member),
    /// No user by that id or email.
    NoUser,
    /// The user is a member already (their role unchanged): their id.
    AlreadyMember(Uuid),
}

/// What changing or removing a membership came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Done: the member as they are now (for a removal, as they were).
    Done(Member),
    /// The user is not a member of the organization.
    NotMember,
    /// They are its last org admin, and would no longer be one: nothing written.
    LastOrgAdmin,
}

/// What assigning a teacher or enrolling a student came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Done.
    Done(ClassPerson),
    /// The user is not a member of the class's organization (or no user at all).
    NotMember,
    /// A teacher must be a teacher or org admin of the organization; they are a student.
    NotStaff,
    /// They teach, or are enrolled in, the class already.
    Already,
}

/// What accepting an invitation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The caller is enrolled; their role in the organization (a new member is a student).
    Joined {
        /// The organization.
        org_id: Uuid,
        /// The class.
        class_id: Uuid,
        /// Their role in the organization.
        role: OrgRole,
    },
    /// No invitation has this code.
    NotFound,
    /// It has expired.
    Expired,
    /// Every use of it is taken.
    UsedUp,
    /// The caller is enrolled in this class already (no use taken).
    AlreadyEnrolled(Uuid),
}

fn role_of(row: &Row, column: &str) -> Result<OrgRole, StoreError> {
    let role: &str = row.get(column);
    OrgRole::parse(role)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown organization role {role:?}")))
}

const ORG_COLUMNS: &str = "id, name, slug, created_at";

fn organization(row: &Row) -> Organization {
    Organization {
        id: row.get("id"),
        name: row.get("name"),
        slug: row.get("slug"),
        created_at: row.get("created_at"),
    }
}

fn member(row: &Row) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: row.get("user_id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: role_of(row, "role")?,
        joined_at: row.get("joined_at"),
    })
}

fn class(row: &Row) -> Class {
    Class {
        id: row.get("id"),
        org_id: row.get("org_id"),
        name: row.get("name"),
        teachers: row.get("teachers"),
        students: row.get("students"),
        created_at: row.get("created_at"),
    }
}

fn person(row: &Row) -> Result<ClassPerson, StoreError> {
    Ok(ClassPerson {
        user_id: row.get("user_id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: role_of(row, "role")?,
        since: row.get("since"),
    })
}

const INVITATION_COLUMNS: &str =
    "id, class_id, org_id, max_uses, uses, expires_at, created_by, created_at";

fn invitation(row: &Row) -> Invitation {
    Invitation {
        id: row.get("id"),
        class_id: row.get("class_id"),
        org_id: row.get("org_id"),
        max_uses: row.get("max_uses"),
        uses: row.get("uses"),
        expires_at: row.get("expires_at"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
    }
}

/// Creates an organization; `None` when the slug is taken.
pub async fn create(db: &Pool, name: &str, slug: &str) -> Result<Option<Organization>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $3)
                 ON CONFLICT (slug) DO NOTHING RETURNING {ORG_COLUMNS}"
            ),
            &[&Uuid::new_v4(), &name, &slug],
        )
        .await?;
    let Some(created) = row.as_ref().map(organization) else {
        return Ok(None);
    };
    let entry = Entry::new("organization.created", "organization", created.id)
        .org(Some(created.id))
        .detail(json!({ "name": name, "slug": slug }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Some(created))
}

/// One organization.
pub async fn get(db: &Pool, id: Uuid) -> Result<Option<Organization>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(organization))
}

/// One page of organizations by name (then id) with `user`'s role in each,
/// and how many there are: every one when `all`, else those `user` belongs to.
pub async fn list(
    db: &Pool,
    user: Uuid,
    all: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<(Organization, Option<OrgRole>)>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT o.id, o.name, o.slug, o.created_at, m.role
             FROM organizations o
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $1
             WHERE $2 OR m.user_id IS NOT NULL
             ORDER BY o.name, o.id LIMIT $3 OFFSET $4",
            &[&user, &all, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "SELECT CASE WHEN $2 THEN (SELECT count(*) FROM organizations)
                         ELSE (SELECT count(*) FROM memberships WHERE user_id = $1) END",
            &[&user, &all],
        )
        .await?
        .get(0);
    let page = rows
        .iter()
        .map(|r| {
            let role = r
                .get::<_, Option<&str>>("role")
                .map(|_| role_of(r, "role"))
                .transpose()?;
            Ok((organization(r), role))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((page, total))
}

const MEMBER_COLUMNS: &str =
    "m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at";

/// One page of an organization's members (by email), and how many there are.
pub async fn members(
    db: &Pool,
    org: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Member>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.org_id = $1 ORDER BY u.email, m.user_id LIMIT $2 OFFSET $3"
            ),
            &[&org, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM memberships WHERE org_id = $1",
            &[&org],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(member).collect::<Result<_, _>>()?, total))
}

/// Makes the user `who` a member of `org` with `role` (one statement).
pub async fn add_member(
    db: &Pool,
    org: Uuid,
    who: UserRef<'_>,
    role: OrgRole,
) -> Result<Added, StoreError> {
    let (id, email) = match who {
        UserRef::Id(id) => (Some(id), None),
        UserRef::Email(email) => (None, Some(email)),
    };
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "WITH u AS (SELECT id, email, display_name FROM users
                        WHERE id = $2 OR email = $3),
                  added AS (INSERT INTO memberships (org_id, user_id, role)
                            SELECT $1, id, $4 FROM u
                            ON CONFLICT (org_id, user_id) DO NOTHING
                            RETURNING user_id, role, created_at)
             SELECT u.id AS user_id, u.email, u.display_name, added.role, added.created_at AS joined_at
             FROM u LEFT JOIN added ON added.user_id = u.id",
            &[&org, &id, &email, &role.as_str()],
        )
        .await?;
    Ok(match row {
        None => Added::NoUser,
        Some(row) if row.get::<_, Option<&str>>("role").is_none() => {
            Added::AlreadyMember(row.get("user_id"))
        }
        Some(row) => {
            let added = member(&row)?;
            let entry = Entry::new("membership.added", "membership", added.user_id)
                .org(Some(org))
                .subject(added.user_id)
                .detail(json!({ "role": role.as_str() }));
            audit::record(&tx, entry).await?;
            tx.commit().await?;
            Added::Member(added)
        }
    })
}

/// Takes the organization's lock for changes that may leave it without an org
/// admin: every such change (a role change, a removal) holds it until its
/// transaction ends, so the count it reads stays true until it writes.
async fn lock_admins(tx: &Transaction<'_>, org: Uuid) -> Result<(), StoreError> {
    tx.execute(
        "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
        &[&org],
    )
    .await?;
    Ok(())
}

/// The member and how many org admins the organization has, read under the lock.
async fn member_and_admins(
    tx: &Transaction<'_>,
    org: Uuid,
    user: Uuid,
) -> Result<(Option<Member>, i64), StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.org_id = $1 AND m.user_id = $2"
            ),
            &[&org, &user],
        )
        .await?;
    let admins: i64 = tx
        .query_one(
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'org_admin'",
            &[&org],
        )
        .await?
        .get(0);
    Ok((row.as_ref().map(member).transpose()?, admins))
}

/// Gives `user` the role `role` in `org`. A member who becomes a student
/// teaches no class of it any more; the last org admin stays one.
pub async fn change_role(
    db: &Pool,
    org: Uuid,
    user: Uuid,
    role: OrgRole,
) -> Result<Changed, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    lock_admins(&tx, org).await?;
    let (found, admins) = member_and_admins(&tx, org, user).await?;
    let Some(mut found) = found else {
        return Ok(Changed::NotMember);
    };
    if found.role == OrgRole::OrgAdmin && role != OrgRole::OrgAdmin && admins <= 1 {
        return Ok(Changed::LastOrgAdmin);
    }
    tx.execute(
        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
        &[&org, &user, &role.as_str()],
    )
    .await?;
    if !role.is_staff() {
        tx.execute(
            "DELETE FROM class_teachers WHERE org_id = $1 AND user_id = $2",
            &[&org, &user],
        )
        .await?;
    }
    let entry = Entry::new("membership.role_changed", "membership", user)
        .org(Some(org))
        .subject(user)
        .detail(json!({ "from": found.role.as_str(), "to": role.as_str() }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    found.role = role;
    Ok(Changed::Done(found))
}

/// Removes `user` from `org` (and so from its classes); the last org admin stays.
pub async fn remove_member(db: &Pool, org: Uuid, user: Uuid) -> Result<Changed, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    lock_admins(&tx, org).await?;
    let (found, admins) = member_and_admins(&tx, org, user).await?;
    let Some(found) = found else {
        return Ok(Changed::NotMember);
    };
    if found.role == OrgRole::OrgAdmin && admins <= 1 {
        return Ok(Changed::LastOrgAdmin);
    }
    tx.execute(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
        &[&org, &user],
    )
    .await?;
    let entry = Entry::new("membership.removed", "membership", user)
        .org(Some(org))
        .subject(user)
        .detail(json!({ "role": found.role.as_str() }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Changed::Done(found))
}

const CLASS_COLUMNS: &str = "c.id, c.org_id, c.name, c.created_at,
    (SELECT count(*) FROM class_teachers t WHERE t.class_id = c.id) AS teachers,
    (SELECT count(*) FROM class_students s WHERE s.class_id = c.id) AS students";

/// Creates a class of `org`.
pub async fn create_class(db: &Pool, org: Uuid, name: &str) -> Result<Class, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "INSERT INTO classes (id, org_id, name) VALUES ($1, $2, $3)
             RETURNING id, org_id, name, created_at, 0::bigint AS teachers, 0::bigint AS students",
            &[&Uuid::new_v4(), &org, &name],
        )
        .await?;
    let created = class(&row);
    let entry = Entry::new("class.created", "class", created.id)
        .org(Some(org))
        .detail(json!({ "name": name }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(created)
}

/// One class.
pub async fn get_class(db: &Pool, id: Uuid) -> Result<Option<Class>, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {CLASS_COLUMNS} FROM classes c WHERE c.id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(class))
}

/// One page of `org`'s classes by name (then id), and how many there are:
/// every one, or (`taught_by`) those that user teaches.
pub async fn classes(
    db: &Pool,
    org: Uuid,
    taught_by: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Class>, i64), StoreError> {
    let client = db.get().await?;
    let filter = "c.org_id = $1 AND ($2::uuid IS NULL OR EXISTS (
                      SELECT 1 FROM class_teachers t WHERE t.class_id = c.id AND t.user_id = $2))";
    let rows = client
        .query(
            &format!(
                "SELECT {CLASS_COLUMNS} FROM classes c WHERE {filter}
                 ORDER BY c.name, c.id LIMIT $3 OFFSET $4"
            ),
            &[&org, &taught_by, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM classes c WHERE {filter}"),
            &[&org, &taught_by],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(class).collect(), total))
}

/// Who teaches (`class_teachers`) or is enrolled in (`class_students`) a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Its teachers.
    Teachers,
    /// Its students.
    Students,
}

impl Side {
    fn table(self) -> &'static str {
        match self {
            Side::Teachers => "class_teachers",
            Side::Students => "class_students",
        }
    }

    /// The audit trail's action for placing someone on this side, and for
    /// taking them off.
    fn placed(self) -> &'static str {
        match self {
            Side::Teachers => "class.teacher_assigned",
            Side::Students => "class.student_enrolled",
        }
    }

    fn unplaced(self) -> &'static str {
        match self {
            Side::Teachers => "class.teacher_unassigned",
            Side::Students => "class.student_unenrolled",
        }
    }
}

/// One page of a class's teachers or students (by email), and how many there are.
pub async fn people(
    db: &Pool,
    class: Uuid,
    side: Side,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ClassPerson>, i64), StoreError> {
    let table = side.table();
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT p.user_id, u.email, u.display_name, m.role, p.created_at AS since
                 FROM {table} p
                 JOIN users u ON u.id = p.user_id
                 JOIN memberships m ON m.org_id = p.org_id AND m.user_id = p.user_id
                 WHERE p.class_id = $1 ORDER BY u.email, p.user_id LIMIT $2 OFFSET $3"
            ),
            &[&class, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE class_id = $1"),
            &[&class],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(person).collect::<Result<_, _>>()?, total))
}

/// Assigns `user` to teach `class`, or enrolls them in it (one statement).
/// The membership row is share-locked while it is read, so a concurrent
/// demotion to student either comes first (and is seen) or waits, then
/// removes what this wrote.
pub async fn place(db: &Pool, class: Uuid, user: Uuid, side: Side) -> Result<Placed, StoreError> {
    let table = side.table();
    let staff_only = side == Side::Teachers;
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "WITH m AS (SELECT m.org_id, m.user_id, m.role FROM memberships m
                            JOIN classes c ON c.org_id = m.org_id
                            WHERE c.id = $1 AND m.user_id = $2
                            FOR SHARE OF m),
                      placed AS (INSERT INTO {table} (class_id, org_id, user_id)
                                 SELECT $1, org_id, user_id FROM m
                                 WHERE NOT $3 OR role IN ('org_admin', 'teacher')
                                 ON CONFLICT (class_id, user_id) DO NOTHING
                                 RETURNING user_id, created_at)
                 SELECT m.role, placed.created_at AS since, u.email, u.display_name, m.user_id,
                        m.org_id
                 FROM (SELECT 1) one
                 LEFT JOIN m ON true
                 LEFT JOIN placed ON true
                 LEFT JOIN users u ON u.id = m.user_id"
            ),
            &[&class, &user, &staff_only],
        )
        .await?;
    let Some(role) = row.get::<_, Option<&str>>("role") else {
        return Ok(Placed::NotMember);
    };
    if row.get::<_, Option<OffsetDateTime>>("since").is_some() {
        let entry = Entry::new(side.placed(), "class", class)
            .org(row.get("org_id"))
            .subject(user);
        audit::record(&tx, entry).await?;
        tx.commit().await?;
        return Ok(Placed::Done(person(&row)?));
    }
    if staff_only && !OrgRole::parse(role).is_some_and(OrgRole::is_staff) {
        return Ok(Placed::NotStaff);
    }
    // Nothing inserted for a member who may be placed: they are there already.
    Ok(Placed::Already)
}

/// Takes `user` off `class`'s teachers or students; false when they were not there.
pub async fn unplace(db: &Pool, class: Uuid, user: Uuid, side: Side) -> Result<bool, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let removed = tx
        .query_opt(
            &format!(
                "DELETE FROM {} WHERE class_id = $1 AND user_id = $2 RETURNING org_id",
                side.table()
            ),
            &[&class, &user],
        )
        .await?;
    let Some(removed) = removed else {
        return Ok(false);
    };
    let entry = Entry::new(side.unplaced(), "class", class)
        .org(removed.get("org_id"))
        .subject(user);
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records an invitation to `class` (of `org`) whose code hashes to `code_hash`.
pub async fn create_invitation(
    db: &Pool,
    org: Uuid,
    class: Uuid,
    code_hash: &str,
    max_uses: i32,
    expires_in_secs: i64,
    created_by: Uuid,
) -> Result<Invitation, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO invitations (id, org_id, class_id, code_hash, max_uses, expires_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint), $7)
                 RETURNING {INVITATION_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &org,
                &class,
                &code_hash,
                &max_uses,
                &expires_in_secs,
                &created_by,
            ],
        )
        .await?;
    let created = invitation(&row);
    let entry = Entry::new("invitation.created", "invitation", created.id)
        .org(Some(org))
        .detail(json!({ "class_id": class, "max_uses": max_uses }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(created)
}

/// One page of a class's invitations, newest first, and how many there are.
pub async fn invitations(
    db: &Pool,
    class: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Invitation>, i64), StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {INVITATION_COLUMNS} FROM invitations WHERE class_id = $1
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ),
            &[&class, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM invitations WHERE class_id = $1",
            &[&class],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(invitation).collect(), total))
}

/// Accepts the invitation whose code hashes to `code_hash` for `user`: a use
/// is taken with a conditional UPDATE (its row lock makes concurrent accepts
/// queue, each seeing the uses the one before took), the user joins the
/// organization as a student unless a member already (their role kept), and
/// is enrolled in the class. One transaction: an accept that cannot enroll
/// (already enrolled) takes no use.
pub async fn accept(db: &Pool, code_hash: &str, user: Uuid) -> Result<Accepted, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let Some(found) = tx
        .query_opt(
            "SELECT id, org_id, class_id FROM invitations WHERE code_hash = $1",
            &[&code_hash],
        )
        .await?
    else {
        return Ok(Accepted::NotFound);
    };
    let (id, org_id, class_id): (Uuid, Uuid, Uuid) =
        (found.get("id"), found.get("org_id"), found.get("class_id"));
    let enrolled = tx
        .query_opt(
            "SELECT 1 FROM class_students WHERE class_id = $1 AND user_id = $2",
            &[&class_id, &user],
        )
        .await?;
    if enrolled.is_some() {
        return Ok(Accepted::AlreadyEnrolled(class_id));
    }
    let taken = tx
        .execute(
            "UPDATE invitations SET uses = uses + 1
             WHERE id = $1 AND uses < max_uses AND expires_at > now()",
            &[&id],
        )
        .await?;
    if taken == 0 {
        let expired: bool = tx
            .query_one(
                "SELECT expires_at <= now() FROM invitations WHERE id = $1",
                &[&id],
            )
            .await?
            .get(0);
        return Ok(if expired {
            Accepted::Expired
        } else {
            Accepted::UsedUp
        });
    }
    let row = tx
        .query_one(
            "WITH joined AS (INSERT INTO memberships (org_id, user_id, role)
                             VALUES ($1, $2, 'student')
                             ON CONFLICT (org_id, user_id) DO UPDATE SET role = memberships.role
                             RETURNING role)
             SELECT role FROM joined",
            &[&org_id, &user],
        )
        .await?;
    let role = role_of(&row, "role")?;
    let enrolled = tx
        .execute(
            "INSERT INTO class_students (class_id, org_id, user_id) VALUES ($1, $2, $3)
             ON CONFLICT (class_id, user_id) DO NOTHING",
            &[&class_id, &org_id, &user],
        )
        .await?;
    if enrolled == 0 {
        // Enrolled meanwhile (another invitation, a teacher): the use is given back.
        return Ok(Accepted::AlreadyEnrolled(class_id));
    }
    let entry = Entry::new("invitation.accepted", "invitation", id)
        .org(Some(org_id))
        .subject(user)
        .detail(json!({ "class_id": class_id, "role": role.as_str() }));
    audit::record(&tx, entry).await?;
    tx.commit().await?;
    Ok(Accepted::Joined {
        org_id,
        class_id,
        role,
    })
}

/// Counts of `org`'s members, classes, pools, tests and tutoring sessions (one statement).
pub async fn stats(db: &Pool, org: Uuid) -> Result<Stats, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "SELECT
                 (SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'org_admin') AS org_admins,
                 (SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'teacher') AS teachers,
                 (SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'student') AS students,
                 (SELECT count(*) FROM classes WHERE org_id = $1) AS classes,
                 (SELECT count(*) FROM item_pools WHERE org_id = $1) AS pools,
                 (SELECT count(*) FROM test_sessions
                  WHERE org_id = $1 AND status IN ('active', 'completed')) AS tests_running,
                 (SELECT count(*) FROM test_sessions WHERE org_id = $1 AND status = 'ended') AS tests_ended,
                 (SELECT count(*) FROM test_sessions WHERE org_id = $1 AND status = 'abandoned') AS tests_abandoned,
                 (SELECT count(*) FROM teaching_sessions WHERE org_id = $1) AS teaching_sessions,
                 (SELECT count(*) FROM teaching_sessions
                  WHERE org_id = $1 AND ended_at IS NULL) AS teaching_sessions_live",
            &[&org],
        )
        .await?;
    Ok(Stats {
        org_admins: row.get("org_admins"),
        teachers: row.get("teachers"),
        students: row.get("students"),
        classes: row.get("classes"),
        pools: row.get("pools"),
        tests_running: row.get("tests_running"),
        tests_ended: row.get("tests_ended"),
        tests_abandoned: row.get("tests_abandoned"),
        teaching_sessions: row.get("teaching_sessions"),
        teaching_sessions_live: row.get("teaching_sessions_live"),
    })
}
