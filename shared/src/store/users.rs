//! Users: accounts, their password hashes and their OpenID Connect identities.

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::StoreError;
use super::audit;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes tests and sees their own results.
    Student,
    /// Reads students' results and manages item pools.
    Teacher,
    /// Everything, the admin routes included.
    Admin,
}

impl Role {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or requested role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "student" => Some(Role::Student),
            "teacher" => Some(Role::Teacher),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Teachers and admins.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Teacher | Role::Admin)
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Normalised email.
    pub email: String,
    /// Name shown to people.
    pub display_name: Option<String>,
    /// `student`, `teacher` or `admin`.
    pub role: String,
    /// When the account was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When an admin disabled the account (`None`: it may sign in).
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

const USER_COLUMNS: &str = "id, email, display_name, role, created_at, disabled_at";

fn user(row: &Row) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: row.get("role"),
        created_at: row.get("created_at"),
        disabled_at: row.get("disabled_at"),
    }
}

/// A new account.
pub struct NewUser<'a> {
    /// Normalised email.
    pub email: &'a str,
    /// Name shown to people.
    pub display_name: &'a str,
    /// `student`, `teacher` or `admin`.
    pub role: &'a str,
    /// argon2id PHC string, when the account signs in with a password.
    pub password_hash: Option<&'a str>,
}

/// Creates an account; `None` when the email is taken.
pub async fn create(db: &Pool, new: &NewUser<'_>) -> Result<Option<User>, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO users (id, email, display_name, role, password_hash,
                                idempotency_key, idempotency_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {USER_COLUMNS}"
        ))
        .await?;
    let (idem_key, idem_hash) = super::idempotency::columns();
    let created = match tx
        .query_one(
            &statement,
            &[
                &Uuid::new_v4(),
                &new.email,
                &new.display_name,
                &new.role,
                &new.password_hash,
                &idem_key,
                &idem_hash,
            ],
        )
        .await
    {
        Ok(row) => user(&row),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    audit::record(&tx, created_entry(&created, "password")).await?;
    tx.commit().await?;
    Ok(Some(created))
}

/// The audit entry of a new account (its role; never its email).
fn created_entry(user: &User, method: &str) -> audit::Entry {
    audit::Entry::new("account.created", "account", user.id)
        .subject(user.id)
        .detail(serde_json::json!({ "role": user.role, "method": method }))
}

/// What a password sign-in needs to know about an account.
pub struct Credentials {
    /// The user.
    pub id: Uuid,
    /// Their role.
    pub role: String,
    /// Their argon2id PHC string (`None`: they sign in through a provider only).
    pub password_hash: Option<String>,
}

/// The credentials of the account with this (normalised) email.
pub async fn credentials(db: &Pool, email: &str) -> Result<Option<Credentials>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached("SELECT id, role, password_hash FROM users WHERE email = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&email])
        .await?
        .map(|row| Credentials {
            id: row.get(0),
            role: row.get(1),
            password_hash: row.get(2),
        }))
}

/// A user by id.
pub async fn get(db: &Pool, id: Uuid) -> Result<Option<User>, StoreError> {
    let client = db.get().await?;
    Ok(client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|row| user(&row)))
}

/// Who an OpenID Connect provider says signed in.
pub struct Identity<'a> {
    /// Provider name (from configuration).
    pub provider: &'a str,
    /// The provider's stable id for the user (`sub`).
    pub subject: &'a str,
    /// Normalised email, when the provider gave one.
    pub email: Option<&'a str>,
    /// Whether the provider vouches for that email.
    pub email_verified: bool,
    /// Name to show for a new account.
    pub display_name: &'a str,
}

/// The outcome of an OpenID Connect sign-in on the accounts side.
pub enum Linked {
    /// The user, and whether the account was made just now.
    User(User, bool),
    /// An account with that email exists, and the provider does not vouch for
    /// the email: linking would let anyone who claims an address take the account.
    EmailInUse,
    /// The provider gave no email, and the identity is new.
    NoEmail,
}

/// Finds the user an identity belongs to; else links it to the account with
/// the same verified email; else creates a student account for it. One
/// transaction, so two callbacks racing for a new identity make one account.
pub async fn find_or_create_by_identity(
    db: &Pool,
    id: &Identity<'_>,
) -> Result<Linked, StoreError> {
    match link(db, id).await {
        // Lost a race to make the same account or link: the second try finds it.
        Err(e) if e.sql_state() == Some(&SqlState::UNIQUE_VIOLATION) => link(db, id).await,
        other => other,
    }
}

async fn link(db: &Pool, id: &Identity<'_>) -> Result<Linked, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let known = tx
        .query_opt(
            &format!(
                "SELECT {USER_COLUMNS} FROM users
                 WHERE id = (SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2)"
            ),
            &[&id.provider, &id.subject],
        )
        .await?;
    if let Some(row) = known {
        return Ok(Linked::User(user(&row), false));
    }
    let Some(email) = id.email else {
        return Ok(Linked::NoEmail);
    };
    let existing = tx
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 FOR UPDATE"),
            &[&email],
        )
        .await?;
    let (found, created) = match existing {
        Some(_) if !id.email_verified => return Ok(Linked::EmailInUse),
        Some(row) => (user(&row), false),
        None => {
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO users (id, email, display_name, role)
                         VALUES ($1, $2, $3, 'student') RETURNING {USER_COLUMNS}"
                    ),
                    &[&Uuid::new_v4(), &email, &id.display_name],
                )
                .await?;
            let created = user(&row);
            audit::record(&tx, created_entry(&created, id.provider)).await?;
            (created, true)
        }
    };
    tx.execute(
        "INSERT INTO user_identities (provider, subject, user_id) VALUES ($1, $2, $3)",
        &[&id.provider, &id.subject, &found.id],
    )
    .await?;
    tx.commit().await?;
    Ok(Linked::User(found, created))
}

/// The id of the user with this email, creating a user without a password if
/// there is none (demo data and tests).
pub async fn ensure(db: &Pool, email: &str, role: &str) -> Result<Uuid, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "INSERT INTO users (id, email, role) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
            &[&Uuid::new_v4(), &email, &role],
        )
        .await?;
    Ok(row.get(0))
}
