//! The `teach-ws` function: API Gateway WebSocket events (`$connect`,
//! `$disconnect`, `$default`) in, frames out through the API Gateway
//! Management API (`POST {endpoint}/@connections/{id}`, SigV4-signed for
//! `execute-api` with the function's own credentials; 410 means gone).
//!
//! The token comes with `$connect`: an `Authorization: Bearer` header, or an
//! `access_token` query parameter for browsers, which cannot set headers on a
//! WebSocket (API Gateway's access logs, when enabled, then hold the query:
//! keep `$context.requestId`-style formats that leave it out).

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_runtime::LambdaEvent;
use time::OffsetDateTime;
use tracing::Instrument;

use super::{Delivery, PushError, Pusher};
use crate::api::ApiError;
use crate::app::App;
use crate::aws::Credentials;
use crate::aws::sigv4::{self, Request};
use crate::telemetry;

/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the function needs to reach the Management API, built once per container.
#[derive(Debug, Clone)]
pub struct Gateway {
    region: String,
    credentials: Credentials,
    endpoint: Option<String>,
    agent: ureq::Agent,
}

impl Gateway {
    /// Pushes signed with `credentials` for `region`; to `endpoint` when given
    /// (e.g. `http://127.0.0.1:9000` in tests, or the API's own domain behind
    /// a custom one), else to `https://{domainName}/{stage}` of each event.
    pub fn new(region: String, credentials: Credentials, endpoint: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PUSH_TIMEOUT))
            .max_redirects(0)
            .user_agent(concat!("lectern/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            region,
            credentials,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            agent,
        }
    }

    /// From `lookup`'s variables: `AWS_REGION`, the credentials Lambda sets,
    /// and `WS_MANAGEMENT_ENDPOINT` (optional).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let region = get("AWS_REGION")
            .ok_or_else(|| "configuration error: AWS_REGION is not set".to_owned())?;
        let credentials = Credentials::from_lookup(&lookup)?;
        Ok(Self::new(
            region,
            credentials,
            get("WS_MANAGEMENT_ENDPOINT"),
        ))
    }

    /// From this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The Management API an event's connections are reached through.
    pub fn management_api(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Option<ManagementApi<'_>> {
        let endpoint = match &self.endpoint {
            Some(e) => e.clone(),
            None => {
                let ctx = &event.request_context;
                format!(
                    "https://{}/{}",
                    ctx.domain_name.as_deref()?,
                    ctx.stage.as_deref()?
                )
            }
        };
        Some(ManagementApi {
            gateway: self,
            endpoint,
        })
    }
}

/// One API's `@connections` resource.
#[derive(Debug, Clone)]
pub struct ManagementApi<'a> {
    gateway: &'a Gateway,
    endpoint: String,
}

impl ManagementApi<'_> {
    /// `scheme://host[:port]` and the path prefix (the stage) of the endpoint.
    fn split(&self) -> Result<(&str, &str, &str), PushError> {
        let (scheme, rest) = self
            .endpoint
            .split_once("://")
            .ok_or_else(|| PushError(format!("not a URL: {}", self.endpoint)))?;
        let (host, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Ok((scheme, host, base))
    }
}

impl Pusher for ManagementApi<'_> {
    async fn push(&self, connection_id: &str, payload: &str) -> Result<Delivery, PushError> {
        let (scheme, host, base) = self.split()?;
        let path = format!(
            "{base}/@connections/{}",
            sigv4::encode_segment(connection_id)
        );
        let g = self.gateway;
        let signed = sigv4::sign(
            &g.credentials,
            &g.region,
            "execute-api",
            OffsetDateTime::now_utc(),
            &Request {
                method: "POST",
                host,
                path: &path,
                headers: &[],
                body: payload.as_bytes(),
            },
        );
        let url = format!("{scheme}://{host}{path}");
        let (agent, host, body) = (g.agent.clone(), host.to_owned(), payload.to_owned());
        let sent = tokio::task::spawn_blocking(move || {
            sigv4::post(&agent, &url, &host, &[], &signed, body)
        })
        .await
        .map_err(|e| PushError(format!("the push did not finish ({e})")))?;
        match sent {
            Ok((200..=299, _)) => Ok(Delivery::Sent),
            Ok((410, _)) => Ok(Delivery::Gone),
            Ok((status, text)) => Err(PushError(format!(
                "the Management API answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))),
            Err(e) => Err(PushError(e.to_string())),
        }
    }
}

/// The `teach-ws` function's state, read once at start: the app and the
/// Management API client, both from the environment.
pub fn from_env() -> Result<(App, Gateway), String> {
    Ok((App::from_env()?, Gateway::from_env()?))
}

/// One WebSocket event in its invocation span, then one access line and one
/// EMF record (`Requests`, `Latency`, `Errors`) for the route.
pub async fn on_event(
    (app, gateway): &(App, Gateway),
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let started = Instant::now();
    let route = event
        .payload
        .request_context
        .route_key
        .clone()
        .unwrap_or_else(|| "$default".into());
    let span = telemetry::invocation(Some(&event.context), &route);
    let response = handle(app, gateway, event.payload)
        .instrument(span.clone())
        .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status = response.status_code, latency_ms, "message"));
    let namespace = &app.config().metrics_namespace;
    telemetry::request_record(namespace, route, latency_ms, response.status_code >= 500)
        .property("RequestId", event.context.request_id)
        .emit();
    Ok(response)
}

/// One WebSocket event, answered as API Gateway wants: `$connect` 200 accepts
/// the connection, 401 refuses it; `$disconnect` and messages answer 200 (a
/// message's reply and errors go out through the Management API).
pub async fn handle(
    app: &App,
    gateway: &Gateway,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let ctx = &event.request_context;
    let Some(connection_id) = ctx.connection_id.as_deref() else {
        return respond(Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the event names no connection",
        )));
    };
    match ctx.route_key.as_deref() {
        Some("$connect") => {
            let token = token(
                &event.headers,
                event.query_string_parameters.first("access_token"),
            );
            let connected = super::connect(app, connection_id, token.unwrap_or("")).await;
            respond(connected.map(|_| ()).map_err(ApiError::from))
        }
        Some("$disconnect") => {
            if let Err(e) = super::disconnect(app, connection_id).await {
                // The record expires on its own; API Gateway ignores this answer anyway.
                tracing::warn!(connection = connection_id, error = %e, "connection record left until its TTL");
            }
            respond(Ok(()))
        }
        _ => {
            let body = match (&event.body, event.is_base64_encoded) {
                (Some(b), true) => STANDARD.decode(b).unwrap_or_default(),
                (Some(b), false) => b.clone().into_bytes(),
                (None, _) => Vec::new(),
            };
            let Some(api) = gateway.management_api(&event) else {
                tracing::error!(
                    "the event has no domain name or stage, and WS_MANAGEMENT_ENDPOINT is not set"
                );
                return respond(Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "no Management API endpoint",
                )));
            };
            // Handled either way: an error went to the sender as a frame.
            if let Err(e) = super::message(app, &api, connection_id, &body).await {
                tracing::info!(
                    connection = connection_id,
                    status = e.status().as_u16(),
                    "message refused"
                );
            }
            respond(Ok(()))
        }
    }
}

/// The bearer token of a `$connect`: the `Authorization` header, else the query.
fn token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    from_header.or(query)
}

fn respond(outcome: Result<(), ApiError>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    match outcome {
        Ok(()) => response.status_code = 200,
        Err(e) => {
            response.status_code = i64::from(e.status().as_u16());
            response.body = Some(Body::Text(e.problem().to_string()));
            response.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/problem+json"),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers, Some("q")), Some("q"));
        headers.insert(header::AUTHORIZATION, "Bearer  h ".parse().unwrap());
        assert_eq!(token(&headers, Some("q")), Some("h"));
        headers.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(token(&headers, None), None);
    }

    #[test]
    fn the_endpoint_splits_into_scheme_host_and_stage() {
        let g = Gateway::new(
            "eu-west-1".into(),
            Credentials {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: None,
            },
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/live/".into()),
        );
        let api = g
            .management_api(&ApiGatewayWebsocketProxyRequest::default())
            .unwrap();
        assert_eq!(
            api.split().unwrap(),
            ("https", "abc.execute-api.eu-west-1.amazonaws.com", "/live")
        );
    }
}
