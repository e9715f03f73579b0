//! Secrets Manager through the AWS Parameters and Secrets Lambda Extension
//! (`GET {endpoint}/secretsmanager/get?secretId=...`, the function's session
//! token in `X-Aws-Parameters-Secrets-Token`). The extension is a layer that
//! answers on localhost and caches, so a cold start pays one local round trip
//! per secret instead of an SDK and a TLS handshake to Secrets Manager.
//!
//! No error here quotes the secret or the extension's reply.

use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, checked_url, number};

/// The extension's port when `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` is unset.
pub const DEFAULT_EXTENSION_PORT: u64 = 2773;

/// The header the extension checks against the function's `AWS_SESSION_TOKEN`.
const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

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

/// The part of the extension's reply (Secrets Manager's `GetSecretValue`) we read.
#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// Plain HTTP to localhost: no TLS, a short timeout.
static AGENT: LazyLock<ureq::Agent> = LazyLock::new(|| {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
});

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

    /// The `SecretString` of secret `arn`. The error says what went wrong, never what was read.
    pub async fn secret_string(&self, arn: &str) -> Result<String, String> {
        let token = self
            .session_token
            .clone()
            .ok_or("AWS_SESSION_TOKEN is unset; the extension cannot be asked")?;
        let query = serde_urlencoded::to_string([("secretId", arn)]).expect("a string encodes");
        let url = format!("{}/secretsmanager/get?{query}", self.endpoint);
        let answer = tokio::task::spawn_blocking(move || {
            let mut response = AGENT
                .get(&url)
                .header(TOKEN_HEADER, &token)
                .header("Accept", "application/json")
                .call()?;
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string()?;
            Ok::<_, ureq::Error>((status, body))
        })
        .await
        .map_err(|e| format!("the lookup did not finish ({e})"))?;
        let (status, body) = answer.map_err(|e| match e {
            ureq::Error::Timeout(_) => "the secrets extension timed out".to_owned(),
            e => format!("the secrets extension is unreachable ({e})"),
        })?;
        if status != 200 {
            // The body may echo the request; the status says enough.
            return Err(format!("the secrets extension answered {status}"));
        }
        let reply: Reply = serde_json::from_str(&body)
            .map_err(|_| "the secrets extension's reply is not JSON".to_owned())?;
        reply
            .secret_string
            .ok_or_else(|| "the secret has no SecretString".to_owned())
    }
}
