//! Accounts, auth sessions and OpenID Connect sign-in: who the caller is, and
//! what they may touch.

pub mod accounts;
pub mod admin;
pub mod oidc;
pub mod password;
pub mod secret;
pub mod sessions;

use std::time::Duration;

use uuid::Uuid;

use crate::store::StoreError;
pub use crate::store::users::{Role, User};
pub use sessions::Session;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user_id: Uuid,
    /// The session the request came with.
    pub session: Session,
    /// SHA-256 of the token (hex): the session's key.
    pub(crate) token_hash: String,
}

/// What can go wrong signing up, signing in or proving who one is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token, or one that names no live session.
    #[error("sign in first: send `Authorization: Bearer <token>` with a live session token")]
    Unauthenticated,
    /// Wrong email or password (the same error for both, so accounts cannot be probed).
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins; retry after the given time.
    #[error("too many failed sign-ins; retry in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// Input that fails validation.
    #[error("{0}")]
    Invalid(String),
    /// The account is disabled: it may not sign in.
    #[error("this account is disabled; ask an administrator of your organization")]
    Disabled,
    /// The email already has an account.
    #[error("an account with this email exists")]
    EmailTaken,
    /// No user with that id, or none the caller may see.
    #[error("no user with id {0}")]
    NoUser(Uuid),
    /// No OpenID Connect provider of that name is configured.
    #[error("no sign-in provider named {0:?}")]
    UnknownProvider(String),
    /// The `state` of a callback is unknown, expired, already used or another provider's.
    #[error("the sign-in state is unknown, expired or already used; start again")]
    InvalidState,
    /// The provider (or the user at the provider) refused the sign-in.
    #[error("the provider refused the sign-in: {0}")]
    ProviderRefused(String),
    /// The provider could not be reached or answered something unusable.
    #[error("the sign-in provider failed: {0}")]
    ProviderFailed(String),
    /// The provider's identity cannot be tied to an account safely.
    #[error("{0}")]
    AccountConflict(String),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
