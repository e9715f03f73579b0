//! `migrate`: a CloudFormation custom resource that applies the schema
//! migrations (`services::migrate`) on Create and Update, and does nothing on
//! Delete. It must always answer CloudFormation's pre-signed URL, or the stack
//! waits an hour.

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;

use crate::config::DatabaseConfig;
use crate::services::migrate;

/// The parts of a custom-resource request lectern reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    /// Create, Update or Delete.
    pub request_type: String,
    /// Pre-signed S3 URL that takes the answer.
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    /// Echoed back.
    pub stack_id: String,
    /// Echoed back.
    pub request_id: String,
    /// Echoed back.
    pub logical_resource_id: String,
    /// Present on Update and Delete.
    pub physical_resource_id: Option<String>,
}

/// The answer CloudFormation expects.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    /// SUCCESS or FAILED.
    pub status: &'static str,
    /// Shown in the stack events on failure.
    pub reason: String,
    /// Stable, so an Update never replaces the resource.
    pub physical_resource_id: String,
    /// Echoed.
    pub stack_id: String,
    /// Echoed.
    pub request_id: String,
    /// Echoed.
    pub logical_resource_id: String,
    /// Outputs readable with `Fn::GetAtt`.
    pub data: serde_json::Value,
}

const PHYSICAL_ID: &str = "lectern-schema";

/// Carries out the request against `database`.
pub async fn respond(
    req: &CustomResourceRequest,
    database: &DatabaseConfig,
) -> CustomResourceResponse {
    let outcome = match req.request_type.as_str() {
        // The schema outlives the stack's custom resource: dropping data on Delete would be a disaster.
        "Delete" => Ok(json!({ "Applied": "" })),
        "Create" | "Update" => migrate::apply(database)
            .await
            .map(|applied| json!({ "Applied": applied.join(",") }))
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown RequestType {other:?}")),
    };
    let (status, reason, data) = match outcome {
        Ok(data) => ("SUCCESS", String::new(), data),
        Err(reason) => {
            tracing::error!(%reason, "migrations failed");
            ("FAILED", reason, json!({}))
        }
    };
    CustomResourceResponse {
        status,
        reason,
        physical_resource_id: req
            .physical_resource_id
            .clone()
            .unwrap_or_else(|| PHYSICAL_ID.into()),
        stack_id: req.stack_id.clone(),
        request_id: req.request_id.clone(),
        logical_resource_id: req.logical_resource_id.clone(),
        data,
    }
}

/// PUTs the answer to the pre-signed URL (with no content type, as S3 signed it).
pub async fn send(url: &str, response: &CustomResourceResponse) -> Result<(), String> {
    let body = serde_json::to_vec(response).expect("response serialises");
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        ureq::put(&url)
            .header("content-type", "")
            .send(&body[..])
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Handles one event end to end.
pub async fn handle(
    req: CustomResourceRequest,
    database: &DatabaseConfig,
) -> Result<CustomResourceResponse, String> {
    let response = respond(&req, database).await;
    send(&req.response_url, &response).await?;
    Ok(response)
}

/// The function's state: where the database is (`DATABASE_URL`, or
/// `DB_SECRET_ARN`), read once at start.
pub fn from_env() -> Result<DatabaseConfig, String> {
    DatabaseConfig::from_env().map_err(|e| e.to_string())
}

/// One custom-resource event, in its invocation span.
pub async fn on_event(
    database: &DatabaseConfig,
    event: LambdaEvent<CustomResourceRequest>,
) -> Result<CustomResourceResponse, lambda_runtime::Error> {
    let span = crate::telemetry::invocation(Some(&event.context), "custom-resource");
    handle(event.payload, database)
        .instrument(span)
        .await
        .map_err(lambda_runtime::Error::from)
}
