//! Account administration: an admin lists and revokes a user's sessions, and
//! disables or enables the account. Each takes effect on the user's very next
//! request in every process: PostgreSQL first (a revoked session is never
//! rebuilt, and no process accepts a token Redis and PostgreSQL both lack),
//! Redis after.
//!
//! Who may: a platform admin, over anyone; an org admin, over the members of
//! an organization they administer who are not platform admins — and, to
//! disable or enable the account (which every organization of the user
//! shares), only when they administer every organization the user belongs to.
//! Other members of the user's organizations are forbidden (403); anyone
//! else is told there is no such user (404).

use uuid::Uuid;

use super::sessions::{self, SessionView};
use super::{Caller, Error};
use crate::app::App;
use crate::cache::Namespace;
use crate::store::audit::{self, Entry};
use crate::store::auth as stored;
use crate::store::tenancy;
use crate::store::users::{self, User};

/// What an admin wants with an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// See or revoke its sessions.
    Sessions,
    /// Disable or enable it.
    Account,
}

/// Whether `caller` may `act` on `user`'s account (see the module's rules).
pub(crate) async fn authorize(
    app: &App,
    caller: &Caller,
    user: Uuid,
    act: Act,
) -> Result<(), Error> {
    let s = tenancy::account_standing(app.db(), caller.user_id, user).await?;
    if !s.found || (!s.caller_platform_admin && s.shared == 0) {
        return Err(Error::NoUser(user));
    }
    if s.caller_platform_admin {
        return Ok(());
    }
    if s.administered == 0 {
        return Err(Error::Forbidden(
            "only an org admin of the user's organization may do this".into(),
        ));
    }
    if s.user_platform_admin {
        return Err(Error::Forbidden(
            "a platform admin's account is managed by platform admins only".into(),
        ));
    }
    if act == Act::Account && s.administered < s.orgs {
        return Err(Error::Forbidden(
            "the account belongs to organizations you do not administer: only a platform admin may do this to the whole account".into(),
        ));
    }
    Ok(())
}

/// `GET /v1/users/{id}/sessions`: the user's live sessions.
pub async fn sessions_of(
    app: &App,
    caller: &Caller,
    user: Uuid,
) -> Result<Vec<SessionView>, Error> {
    authorize(app, caller, user, Act::Sessions).await?;
    let read = Entry::new("account.sessions_read", "account", user).subject(user);
    audit::record_alone(app.db(), read).await?;
    Ok(sessions::of_user(app, user, caller.session.id).await?)
}

/// `DELETE /v1/users/{id}/sessions/{session_id}`: false when the user has no
/// such live session.
pub async fn revoke(app: &App, caller: &Caller, user: Uuid, session: Uuid) -> Result<bool, Error> {
    authorize(app, caller, user, Act::Sessions).await?;
    Ok(sessions::revoke(app, user, session).await?)
}

/// `DELETE /v1/users/{id}/sessions`: how many sessions ended.
pub async fn revoke_all(app: &App, caller: &Caller, user: Uuid) -> Result<u64, Error> {
    authorize(app, caller, user, Act::Sessions).await?;
    Ok(sessions::end_all(app, user, "account.sessions_revoked").await?)
}

/// `POST /v1/users/{id}/disable`: the account signs in no more, and every
/// session of it ends.
pub async fn disable(app: &App, caller: &Caller, user: Uuid) -> Result<User, Error> {
    authorize(app, caller, user, Act::Account).await?;
    if user == caller.user_id {
        return Err(Error::Invalid("you cannot disable your own account".into()));
    }
    let audit = Entry::new("account.disabled", "account", user).subject(user);
    let revoked = stored::disable_account(app.db(), user, audit)
        .await?
        .ok_or(Error::NoUser(user))?;
    sessions::end_revoked(app, user, revoked).await?;
    profile(app, user).await
}

/// `POST /v1/users/{id}/enable`: the account may sign in again.
pub async fn enable(app: &App, caller: &Caller, user: Uuid) -> Result<User, Error> {
    authorize(app, caller, user, Act::Account).await?;
    let audit = Entry::new("account.enabled", "account", user).subject(user);
    if !stored::enable_account(app.db(), user, audit).await? {
        return Err(Error::NoUser(user));
    }
    profile(app, user).await
}

/// The account as it is now; its cached profile dropped.
async fn profile(app: &App, user: Uuid) -> Result<User, Error> {
    app.cache().invalidate(&[Namespace::User(user)]).await;
    users::get(app.db(), user).await?.ok_or(Error::NoUser(user))
}
