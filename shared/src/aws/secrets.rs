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

pub use crate::config::Extension;

/// The header the extension checks against the function's `AWS_SESSION_TOKEN`.
const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

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
