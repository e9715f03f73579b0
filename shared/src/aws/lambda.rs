//! Invoking a Lambda function asynchronously (`Invoke` with
//! `X-Amz-Invocation-Type: Event`): one SigV4-signed POST, answered 202 once
//! Lambda has queued the event.

use std::time::Duration;

use time::OffsetDateTime;

use super::Credentials;
use super::sigv4::{self, Request};

/// How long queuing one event may take.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A function to hand events to, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The function's name or ARN.
    pub function: String,
    /// Its region (`AWS_REGION`).
    pub region: String,
    /// The caller's credentials (the calling function's role).
    pub credentials: Credentials,
    /// `scheme://host[:port]` of the Lambda API; `None`: `https://lambda.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
}

impl Target {
    /// Queues `payload` for the function; an error says what went wrong.
    pub async fn invoke_async(&self, payload: &str) -> Result<(), String> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://lambda.{}.amazonaws.com", self.region));
        let (scheme, host) = endpoint
            .trim_end_matches('/')
            .split_once("://")
            .ok_or_else(|| format!("not a URL: {endpoint}"))?;
        let path = format!(
            "/2015-03-31/functions/{}/invocations",
            sigv4::encode_segment(&self.function)
        );
        let signed = sigv4::sign(
            &self.credentials,
            &self.region,
            "lambda",
            OffsetDateTime::now_utc(),
            &Request {
                method: "POST",
                host,
                path: &path,
                headers: &[("x-amz-invocation-type", "Event")],
                body: payload.as_bytes(),
            },
        );
        let url = format!("{scheme}://{host}{path}");
        let (host, body) = (host.to_owned(), payload.to_owned());
        let sent = tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(INVOKE_TIMEOUT))
                .max_redirects(0)
                .user_agent(concat!("lectern/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent();
            let headers = [
                ("Content-Type", "application/json"),
                ("X-Amz-Invocation-Type", "Event"),
            ];
            sigv4::post(&agent, &url, &host, &headers, &signed, body)
        })
        .await
        .map_err(|e| format!("the invocation did not finish ({e})"))?;
        match sent {
            Ok((200..=299, _)) => Ok(()),
            Ok((status, text)) => Err(format!(
                "Lambda answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}
