//! Calling AWS APIs without the AWS SDK: the credentials Lambda gives a
//! function, Signature Version 4 ([`sigv4`]) to sign requests with them, and
//! secrets through the Parameters and Secrets extension ([`secrets`]),
//! asynchronous invocations of another function ([`lambda`]), and events put
//! on an EventBridge bus ([`eventbridge`]).
//!
//! The calls made (API Gateway's Management API, to push WebSocket frames;
//! secrets from a local extension) are one signed POST and one local GET; the
//! SDK would bring the smithy runtime into every build, and into every cold
//! start, for that.

pub mod eventbridge;
pub mod lambda;
pub mod secrets;
pub mod sigv4;

use std::fmt;

/// AWS credentials: an access key, and the session token of temporary ones
/// (a Lambda function's role always has one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    // The secret and the token never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// The credentials in `lookup`'s variables (the Lambda environment's
    /// names); an error names the one missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let need =
            |name: &str| get(name).ok_or_else(|| format!("configuration error: {name} is not set"));
        Ok(Self {
            access_key_id: need("AWS_ACCESS_KEY_ID")?,
            secret_access_key: need("AWS_SECRET_ACCESS_KEY")?,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }

    /// The credentials of this process's environment (what Lambda sets).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_lambda_variables_and_never_show_the_secret() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_SESSION_TOKEN", "session-token"),
        ];
        let lookup = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let c = Credentials::from_lookup(lookup).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("session-token"));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AKID")
                && !shown.contains("very-secret")
                && !shown.contains("session-token")
        );
        let missing =
            Credentials::from_lookup(|k| lookup(k).filter(|_| k != "AWS_SECRET_ACCESS_KEY"));
        assert!(missing.unwrap_err().contains("AWS_SECRET_ACCESS_KEY"));
    }
}
