//! Accounts: sign-up, password sign-in (throttled per account and per client
//! address) and the first administrator.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::secret::sha256_hex;
use super::sessions::{self, Meta, Opened};
use super::{Caller, Error, Role, password};
use crate::app::App;
use crate::cache::Namespace;
use crate::services::scope;
use crate::services::{CachedJson, cached_json};
use crate::store::audit::{self, Entry};
use crate::store::auth as stored;
use crate::store::users::{self, NewUser, User};

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// `POST /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Email (normalised: trimmed, lower case).
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    /// Name shown to people.
    pub display_name: String,
    /// `student` (default); `teacher` and `admin` only when an admin asks.
    #[serde(default, deserialize_with = "crate::wire::some")]
    pub role: Option<String>,
}

/// Trims and lower-cases an email, and checks its shape.
pub fn normalise_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let invalid = || Error::Invalid(format!("{raw:?} is not an email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let labels_ok = domain.split('.').count() >= 2
        && domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if local.is_empty() || local.len() > 64 || domain.contains('@') || !labels_ok {
        return Err(invalid());
    }
    Ok(email)
}

fn display_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    // Length and control characters are judged on the name as sent, before
    // trimming, as openapi.yaml's maxLength and pattern are.
    if name.is_empty() || raw.chars().count() > MAX_NAME_CHARS || raw.chars().any(char::is_control)
    {
        return Err(Error::Invalid(format!(
            "display_name must have 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

/// Creates an account. Anyone may make one; only a platform admin may make a
/// platform admin. What an account may do in an organization is its
/// membership's role, given there (so `teacher` is no account role).
pub async fn register(app: &App, req: Registration, by: Option<&Caller>) -> Result<User, Error> {
    let email = normalise_email(&req.email)?;
    let name = display_name(&req.display_name)?;
    password::check(&req.password).map_err(Error::Invalid)?;
    let role = match req.role.as_deref() {
        None | Some("student") => Role::Student,
        Some("admin") => Role::Admin,
        Some(r) => {
            return Err(Error::Invalid(format!(
                "role must be student or admin (got {r:?}); teachers and org admins are roles in an organization: add the account as a member"
            )));
        }
    };
    if role == Role::Admin {
        let platform = match by {
            Some(caller) => scope::is_platform_admin(app, caller.user_id).await?,
            None => false,
        };
        if !platform {
            return Err(Error::Forbidden(
                "only a platform admin may create a platform admin".into(),
            ));
        }
    }
    create(app, &email, &name, role, &req.password).await
}

async fn create(
    app: &App,
    email: &str,
    name: &str,
    role: Role,
    password: &str,
) -> Result<User, Error> {
    let hash = password::hash(password).await;
    users::create(
        app.db(),
        &NewUser {
            email,
            display_name: name,
            role: role.as_str(),
            password_hash: Some(&hash),
        },
    )
    .await?
    .ok_or(Error::EmailTaken)
}

/// Makes an administrator (the `lectern-admin create-admin` command: the only
/// way to the first one; no endpoint can).
pub async fn create_admin(
    app: &App,
    email: &str,
    name: &str,
    password: &str,
) -> Result<User, Error> {
    let email = normalise_email(email)?;
    let name = display_name(name)?;
    password::check(password).map_err(Error::Invalid)?;
    create(app, &email, &name, Role::Admin, password).await
}

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Signs in with a password. Every attempt is counted against the account and
/// the client address before the password is checked (so parallel guesses are
/// counted too); a success takes its attempt back. Unknown email and wrong
/// password fail alike, after the same argon2 work.
pub async fn login(app: &App, req: Login, meta: &Meta) -> Result<Opened, Error> {
    let config = &app.config().auth;
    // A malformed email cannot have an account; it still counts, and fails the same way.
    let email = normalise_email(&req.email).unwrap_or_else(|_| req.email.trim().to_lowercase());
    let account = sha256_hex(&email);
    let ip = meta.ip.as_deref().unwrap_or("unknown");
    let [(by_account, account_ttl), (by_ip, ip_ttl)] =
        stored::count_attempt(app.redis(), &account, ip, config.throttle_window).await?;
    let wait = |ttl_ms: i64| Duration::from_millis(ttl_ms.max(1000) as u64);
    let throttled = if by_account > config.max_failures_per_account {
        Some(account_ttl)
    } else if by_ip > config.max_failures_per_ip {
        Some(ip_ttl)
    } else {
        None
    };
    if let Some(ttl) = throttled {
        failed(app, None, "throttled").await;
        return Err(Error::Throttled(wait(ttl)));
    }
    let found = users::credentials(app.db(), &email).await?;
    let phc = found.as_ref().and_then(|c| c.password_hash.clone());
    let ok = password::verify(&req.password, phc).await;
    let Some(user) = found.as_ref().filter(|_| ok) else {
        failed(app, found.map(|c| c.id), "invalid_credentials").await;
        return Err(Error::InvalidCredentials);
    };
    let role = Role::parse(&user.role).unwrap_or(Role::Student);
    if let Err(e) = stored::forgive_attempt(app.redis(), &account, ip).await {
        tracing::warn!(error = %e, "sign-in counters not reset");
    }
    let opened = sessions::open(app, user.id, role, "password".into(), meta).await;
    if let Err(Error::Disabled) = opened {
        failed(app, Some(user.id), "disabled").await;
    }
    opened
}

/// Records a failed password sign-in in the audit trail (the account's id
/// when the email has one; never the email or the password). Best effort:
/// the sign-in fails either way.
async fn failed(app: &App, account: Option<Uuid>, reason: &str) {
    let mut entry = Entry::of("session.sign_in_failed", "session")
        .actor(None)
        .detail(json!({ "reason": reason }));
    if let Some(account) = account {
        entry = entry.subject(account);
    }
    if let Err(e) = audit::record_alone(app.db(), entry).await {
        tracing::warn!(error = %e, "failed sign-in not recorded");
    }
}

/// A user's profile: for the user, their teachers and org admins, platform
/// admins; to anyone else there is no such user. Read through the cache.
pub async fn profile(app: &App, caller: &Caller, id: Uuid) -> Result<CachedJson, Error> {
    if scope::student_records(app, caller.user_id, id)
        .await?
        .is_none()
    {
        return Err(Error::NoUser(id));
    }
    cached_json(app, &Namespace::User(id), "profile", || {
        users::get(app.db(), id)
    })
    .await?
    .ok_or(Error::NoUser(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ada.Lovelace@Example.COM ").unwrap(),
            "ada.lovelace@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@-x.com",
            "ada@example..com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("  Ada  ").unwrap(), "Ada");
        assert!(display_name("   ").is_err());
        assert!(display_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(display_name("a\u{7}b").is_err());
        assert!(display_name("Ada\n").is_err());
    }
}
