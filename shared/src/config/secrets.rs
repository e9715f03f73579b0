//! Where the AWS Parameters and Secrets Lambda Extension listens, and the
//! token it wants: plain settings. Reading a secret through it is
//! `crate::aws::secrets`.

use crate::env::{ConfigError, checked_url, number};

/// The extension's port when `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` is unset.
pub const DEFAULT_EXTENSION_PORT: u64 = 2773;

/// Where the extension listens, and the token it wants. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Extension {
    /// Base URL (`SECRETS_ENDPOINT`, default
    /// `http://localhost:{PARAMETERS_SECRETS_EXTENSION_HTTP_PORT or 2773}`).
    pub endpoint: String,
    /// `AWS_SESSION_TOKEN` (Lambda always sets it).
    pub session_token: Option<String>,
}

impl Default for Extension {
    fn default() -> Self {
        Self {
            endpoint: format!("http://localhost:{DEFAULT_EXTENSION_PORT}"),
            session_token: None,
        }
    }
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("endpoint", &self.endpoint)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Extension {
    /// Reads `SECRETS_ENDPOINT` (or its older name `AI_SECRETS_ENDPOINT`),
    /// `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` and `AWS_SESSION_TOKEN`.
    pub fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = number(
            get,
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            DEFAULT_EXTENSION_PORT,
            1..=65_535,
        )?;
        let endpoint = match ["SECRETS_ENDPOINT", "AI_SECRETS_ENDPOINT"]
            .into_iter()
            .find_map(|var| get(var).map(|raw| (var, raw)))
        {
            Some((var, raw)) => {
                checked_url(&raw).map_err(|problem| ConfigError { var, problem })?
            }
            None => format!("http://localhost:{port}"),
        };
        Ok(Self {
            endpoint,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }

    /// Fails with the variable to blame when a secret named by `var` could not be read.
    pub fn require_token(&self, var: &'static str) -> Result<(), ConfigError> {
        match self.session_token {
            Some(_) => Ok(()),
            None => Err(ConfigError {
                var: "AWS_SESSION_TOKEN",
                problem: format!("is required to read {var} through the Lambda extension"),
            }),
        }
    }
}
