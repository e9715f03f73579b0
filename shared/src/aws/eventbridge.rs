//! Amazon EventBridge `PutEvents` (the AWS JSON 1.1 protocol: `POST /` with
//! `X-Amz-Target: AWSEvents.PutEvents`, SigV4-signed for `events`): at most
//! [`MAX_ENTRIES`] entries per call, each accepted or refused on its own.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Credentials;
use super::sigv4::{self, Request};

/// Entries one `PutEvents` call takes (EventBridge's limit).
pub const MAX_ENTRIES: usize = 10;

/// How long one call may take.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);

/// An event bus and how to reach it, built once per process.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The bus's name or ARN (`EVENT_BUS_NAME`).
    pub name: String,
    /// Its region (`AWS_REGION`).
    pub region: String,
    /// The caller's credentials (the function's role).
    pub credentials: Credentials,
    /// `scheme://host[:port]` of the EventBridge API; `None`: `https://events.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    agent: ureq::Agent,
}

impl PartialEq for Bus {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.region, &self.credentials, &self.endpoint)
            == (
                &other.name,
                &other.region,
                &other.credentials,
                &other.endpoint,
            )
    }
}

/// One event to put.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// Who sends it (`lectern`).
    pub source: String,
    /// What happened (`test.ended`, …).
    pub detail_type: String,
    /// The event's body, a JSON object as a string.
    pub detail: String,
    /// When it happened (epoch seconds, the protocol's timestamp form).
    pub time: i64,
    /// The bus (set by [`Bus::put_events`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_bus_name: String,
}

/// What EventBridge said of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, with EventBridge's own id for it.
    Accepted(String),
    /// Refused: the error code and message.
    Refused(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    #[serde(default)]
    entries: Vec<ResultEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    event_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
}

impl Bus {
    /// A bus reached with `credentials` for `region`, at `endpoint` when given.
    pub fn new(
        name: String,
        region: String,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PUT_TIMEOUT))
            .max_redirects(0)
            .user_agent(concat!("lectern/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            name,
            region,
            credentials,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            agent,
        }
    }

    /// Puts up to [`MAX_ENTRIES`] entries on the bus; one outcome per entry,
    /// in order. `Err` (nothing known to be accepted) when the call itself
    /// failed: unreachable, refused as a whole, or answered in a form not understood.
    pub async fn put_events(&self, entries: &[Entry]) -> Result<Vec<Outcome>, String> {
        assert!(
            entries.len() <= MAX_ENTRIES,
            "PutEvents takes at most 10 entries"
        );
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Entry> = entries
            .iter()
            .map(|e| Entry {
                event_bus_name: self.name.clone(),
                ..e.clone()
            })
            .collect();
        let body = serde_json::json!({ "Entries": entries }).to_string();
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://events.{}.amazonaws.com", self.region));
        let (scheme, host) = endpoint
            .split_once("://")
            .ok_or_else(|| format!("not a URL: {endpoint}"))?;
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSEvents.PutEvents"),
        ];
        let signed = sigv4::sign(
            &self.credentials,
            &self.region,
            "events",
            OffsetDateTime::now_utc(),
            &Request {
                method: "POST",
                host,
                path: "/",
                headers: &headers,
                body: body.as_bytes(),
            },
        );
        let url = format!("{scheme}://{host}/");
        let (agent, host) = (self.agent.clone(), host.to_owned());
        let sent = tokio::task::spawn_blocking(move || {
            sigv4::post(&agent, &url, &host, &headers, &signed, body)
        })
        .await
        .map_err(|e| format!("the call did not finish ({e})"))?;
        let text = match sent {
            Ok((200..=299, text)) => text,
            Ok((status, text)) => {
                return Err(format!(
                    "EventBridge answered {status}: {}",
                    text.chars().take(200).collect::<String>()
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let response: Response = serde_json::from_str(&text)
            .map_err(|e| format!("EventBridge's answer is not understood ({e})"))?;
        if response.entries.len() != entries.len() {
            return Err(format!(
                "EventBridge answered for {} of {} entries",
                response.entries.len(),
                entries.len()
            ));
        }
        Ok(response
            .entries
            .into_iter()
            .map(|e| match (e.event_id, e.error_code) {
                (Some(id), None) => Outcome::Accepted(id),
                (_, code) => Outcome::Refused(format!(
                    "{}: {}",
                    code.unwrap_or_else(|| "Unknown".into()),
                    e.error_message.unwrap_or_default()
                )),
            })
            .collect())
    }
}
