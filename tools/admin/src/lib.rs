//! `lectern-admin`'s commands that talk to a running API (the others use the
//! database directly): importing a course from a file.

use std::path::Path;
use std::time::Duration;

use lectern::services::courses::CourseDoc;
use serde_json::Value;
use uuid::Uuid;

/// Reads a course file: YAML (`.yaml`, `.yml`) or JSON (anything else).
/// Checked here as the API would (the first field at fault is named), so a
/// bad file is caught before anything is sent.
pub fn read_course(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let value: Value = if yaml {
        serde_yaml::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?
    };
    let mut doc: CourseDoc = serde_json::from_value(value.clone())
        .map_err(|e| format!("{}: not a course: {e}", path.display()))?;
    doc.check()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(value)
}

/// Sends a course file to `POST {api}/v1/courses` for `organization` with a
/// bearer `token`; the line to print, or why not (the API's problem detail).
pub fn import_course(
    api: &str,
    token: &str,
    organization: Uuid,
    path: &Path,
) -> Result<String, String> {
    let course = read_course(path)?;
    let body = serde_json::json!({ "organization_id": organization, "course": course });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let url = format!("{}/v1/courses", api.trim_end_matches('/'));
    let mut response = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url} answered {status} unreadably: {e}"))?;
    let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let detail = reply["detail"].as_str().unwrap_or(text.trim());
        return Err(format!("{url} answered {status}: {detail}"));
    }
    let (key, id, version) = (&reply["key"], &reply["id"], &reply["version"]);
    let segments = &reply["segments"];
    Ok(match reply["outcome"].as_str() {
        Some("created") => format!("created course {key} ({id}): version 1, {segments} segments"),
        Some("versioned") => {
            format!("course {key} ({id}): version {version} written, {segments} segments")
        }
        _ => format!("course {key} ({id}): unchanged, still version {version}"),
    })
}
