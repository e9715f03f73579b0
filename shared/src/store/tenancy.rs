//! Where a caller stands: platform admin or not, their role in one
//! organization, whether they teach a student or a class. Read from
//! PostgreSQL on each decision (one indexed statement), never copied into a
//! session, so a role or membership change counts from the next request.

use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;

/// A member's role in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Manages the organization: members, classes, invitations, its tests.
    OrgAdmin,
    /// Teaches classes: their students' records, the organization's pools.
    Teacher,
    /// Takes tests and tutoring sessions; sees their own records.
    Student,
}

impl OrgRole {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::OrgAdmin => "org_admin",
            OrgRole::Teacher => "teacher",
            OrgRole::Student => "student",
        }
    }

    /// Parses a stored or requested role.
    pub fn parse(s: &str) -> Option<OrgRole> {
        match s {
            "org_admin" => Some(OrgRole::OrgAdmin),
            "teacher" => Some(OrgRole::Teacher),
            "student" => Some(OrgRole::Student),
            _ => None,
        }
    }

    /// Teachers and org admins.
    pub fn is_staff(self) -> bool {
        matches!(self, OrgRole::OrgAdmin | OrgRole::Teacher)
    }
}

/// The organization a resource belongs to, as the standing query finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgOf {
    /// The organization of this test.
    Test(Uuid),
    /// The organization of this tutoring session.
    TeachingSession(Uuid),
    /// The organization of this class.
    Class(Uuid),
    /// The organization of this pool (`None` for a shared pool).
    Pool(Uuid),
    /// The organization itself (not found when there is none with this id).
    Organization(Uuid),
    /// The organization of this assessment.
    Assessment(Uuid),
    /// The organization of this course.
    Course(Uuid),
    /// The organization of this assignment; its class is the class asked about
    /// (as a class's own is, unless another is named).
    Assignment(Uuid),
}

/// How a caller stands to one resource of one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Whether the resource exists.
    pub found: bool,
    /// The resource's organization (`None`: none, or the resource does not exist).
    pub org: Option<Uuid>,
    /// The caller is a platform admin.
    pub platform_admin: bool,
    /// The caller's role in the resource's organization, if a member.
    pub org_role: Option<OrgRole>,
    /// The caller is a teacher or org admin in some organization.
    pub staff_anywhere: bool,
    /// The caller teaches a class of that organization the student is enrolled in.
    pub teaches_student: bool,
    /// The caller teaches the class asked about.
    pub teaches_class: bool,
}

/// Where `caller` stands to a resource of the organization `org`, owned by
/// `student` (if a student's), in `class` (if a class's). One statement.
pub async fn standing(
    client: &impl GenericClient,
    caller: Uuid,
    org: OrgOf,
    student: Option<Uuid>,
    class: Option<Uuid>,
) -> Result<Standing, StoreError> {
    let (resource, id) = match org {
        OrgOf::Test(id) => ("SELECT org_id FROM test_sessions WHERE id = $2", Some(id)),
        OrgOf::TeachingSession(id) => (
            "SELECT org_id FROM teaching_sessions WHERE id = $2",
            Some(id),
        ),
        OrgOf::Class(id) => (
            "SELECT org_id, id AS class_id FROM classes WHERE id = $2",
            Some(id),
        ),
        OrgOf::Pool(id) => ("SELECT org_id FROM item_pools WHERE id = $2", Some(id)),
        OrgOf::Organization(id) => (
            "SELECT id AS org_id FROM organizations WHERE id = $2",
            Some(id),
        ),
        OrgOf::Assessment(id) => ("SELECT org_id FROM assessments WHERE id = $2", Some(id)),
        OrgOf::Course(id) => ("SELECT org_id FROM courses WHERE id = $2", Some(id)),
        OrgOf::Assignment(id) => (
            "SELECT org_id, class_id FROM assignments WHERE id = $2",
            Some(id),
        ),
    };
    let class_of = match org {
        OrgOf::Class(_) | OrgOf::Assignment(_) => "coalesce($4::uuid, (SELECT class_id FROM r))",
        _ => "$4::uuid",
    };
    let sql = format!(
        "WITH r AS ({resource}),
              o AS (SELECT (SELECT org_id FROM r) AS org_id, {class_of} AS class_id)
         SELECT EXISTS (SELECT 1 FROM r) AS found, o.org_id,
                coalesce((SELECT role = 'admin' FROM users WHERE id = $1), false) AS platform_admin,
                (SELECT m.role FROM memberships m WHERE m.user_id = $1 AND m.org_id = o.org_id) AS org_role,
                EXISTS (SELECT 1 FROM memberships m
                        WHERE m.user_id = $1 AND m.role IN ('org_admin', 'teacher')) AS staff_anywhere,
                EXISTS (SELECT 1 FROM class_teachers t
                        JOIN class_students s ON s.class_id = t.class_id
                        WHERE t.user_id = $1 AND s.user_id = $3 AND t.org_id = o.org_id) AS teaches_student,
                EXISTS (SELECT 1 FROM class_teachers t
                        WHERE t.user_id = $1 AND t.class_id = o.class_id AND t.org_id = o.org_id) AS teaches_class
         FROM o"
    );
    let statement = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(&statement, &[&caller, &id, &student, &class])
        .await?;
    let role: Option<&str> = row.get("org_role");
    Ok(Standing {
        found: row.get("found"),
        org: row.get("org_id"),
        platform_admin: row.get("platform_admin"),
        org_role: role.and_then(OrgRole::parse),
        staff_anywhere: row.get("staff_anywhere"),
        teaches_student: row.get("teaches_student"),
        teaches_class: row.get("teaches_class"),
    })
}

/// Where `caller` may read `student`'s records: everywhere (a platform admin),
/// or in these organizations (where they are its org admin, or teach a class of
/// it the student is enrolled in); empty when nowhere, or no such student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentScope {
    /// Every organization and the records of none.
    All,
    /// These organizations only.
    Orgs(Vec<Uuid>),
}

/// [`StudentScope`] of `caller` over `student` (not the student themselves:
/// they see all of their own). One statement.
pub async fn student_scope(
    client: &impl GenericClient,
    caller: Uuid,
    student: Uuid,
) -> Result<StudentScope, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT coalesce((SELECT role = 'admin' FROM users WHERE id = $1), false) AS platform_admin,
                    ARRAY(SELECT m.org_id FROM memberships m
                          WHERE m.user_id = $2 AND (
                              EXISTS (SELECT 1 FROM memberships a
                                      WHERE a.user_id = $1 AND a.org_id = m.org_id AND a.role = 'org_admin')
                              OR EXISTS (SELECT 1 FROM class_teachers t
                                         JOIN class_students s ON s.class_id = t.class_id
                                         WHERE t.user_id = $1 AND s.user_id = $2 AND s.org_id = m.org_id))
                          ORDER BY m.org_id) AS orgs",
        )
        .await?;
    let row = client.query_one(&statement, &[&caller, &student]).await?;
    Ok(if row.get("platform_admin") {
        StudentScope::All
    } else {
        StudentScope::Orgs(row.get("orgs"))
    })
}

/// The organizations `user` belongs to, with their role in each (by id).
pub async fn memberships(db: &Pool, user: Uuid) -> Result<Vec<(Uuid, OrgRole)>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached("SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id")
        .await?;
    client
        .query(&statement, &[&user])
        .await?
        .iter()
        .map(|r| {
            let role: &str = r.get("role");
            OrgRole::parse(role)
                .map(|role| (r.get("org_id"), role))
                .ok_or_else(|| StoreError::Corrupt(format!("unknown organization role {role:?}")))
        })
        .collect()
}

/// What `caller` may do to `user`'s account, as facts; the rule is
/// `services::auth::admin`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStanding {
    /// There is such a user.
    pub found: bool,
    /// The caller is a platform admin.
    pub caller_platform_admin: bool,
    /// The user is a platform admin.
    pub user_platform_admin: bool,
    /// How many organizations the user belongs to.
    pub orgs: i64,
    /// Of those, how many the caller belongs to (any role).
    pub shared: i64,
    /// Of those, how many the caller is an org admin of.
    pub administered: i64,
}

/// [`AccountStanding`] of `caller` over `user`. One statement.
pub async fn account_standing(
    db: &Pool,
    caller: Uuid,
    user: Uuid,
) -> Result<AccountStanding, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $2) AS found,
                    coalesce((SELECT role = 'admin' FROM users WHERE id = $1), false) AS caller_platform,
                    coalesce((SELECT role = 'admin' FROM users WHERE id = $2), false) AS user_platform,
                    (SELECT count(*) FROM memberships WHERE user_id = $2) AS orgs,
                    (SELECT count(*) FROM memberships m
                     JOIN memberships a ON a.org_id = m.org_id AND a.user_id = $1
                     WHERE m.user_id = $2) AS shared,
                    (SELECT count(*) FROM memberships m
                     JOIN memberships a ON a.org_id = m.org_id AND a.user_id = $1 AND a.role = 'org_admin'
                     WHERE m.user_id = $2) AS administered",
        )
        .await?;
    let row = client.query_one(&statement, &[&caller, &user]).await?;
    Ok(AccountStanding {
        found: row.get("found"),
        caller_platform_admin: row.get("caller_platform"),
        user_platform_admin: row.get("user_platform"),
        orgs: row.get("orgs"),
        shared: row.get("shared"),
        administered: row.get("administered"),
    })
}

/// Whether `user` is a platform admin (false when there is no such user).
pub async fn is_platform_admin(db: &Pool, user: Uuid) -> Result<bool, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached("SELECT coalesce((SELECT role = 'admin' FROM users WHERE id = $1), false)")
        .await?;
    Ok(client.query_one(&statement, &[&user]).await?.get(0))
}
