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
            let mut request = agent
                .post(&url)
                .header("Host", &host)
                .header("Content-Type", "application/json")
                .header("X-Amz-Invocation-Type", "Event")
                .header("X-Amz-Date", &signed.amz_date)
                .header("Authorization", &signed.authorization);
            if let Some(token) = &signed.security_token {
                request = request.header("X-Amz-Security-Token", token);
            }
            let mut response = request.send(body)?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            Ok::<_, ureq::Error>((status, text))
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
