//! Every response the harness receives is checked against `openapi.yaml`:
//! its status must be one the operation lists, its content type one that
//! status lists, and its body valid against that content's schema. So a test
//! that passes also proves the contract, not just the paths.
//!
//! Policy where the spec leaves room:
//! - a path no operation's template matches (an unknown route, a test-only
//!   route) is not checked: there is no contract to hold it to;
//! - the router's own refusals (`no-route` 404, 405) never reach an
//!   operation, so they are held to the `Problem` schema only;
//! - `default` stands for 5xx only: the spec's `default` is the unexpected
//!   `internal` error, and a client error an operation can answer must be
//!   listed for it, or clients cannot know to expect it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::Validator;
use serde_json::{Value, json};

/// The spec, parsed once per process; validators compiled on first use.
struct Spec {
    doc: Value,
    /// (template segments, path key) for every path of the spec.
    paths: Vec<(Vec<String>, String)>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let text = std::fs::read_to_string(&file).expect("openapi.yaml is readable");
    let doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml parses");
    let paths = doc["paths"]
        .as_object()
        .expect("openapi.yaml has paths")
        .keys()
        .map(|p| (segments(p), p.clone()))
        .collect();
    Spec {
        doc,
        paths,
        validators: Mutex::new(HashMap::new()),
    }
});

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

impl Spec {
    /// The spec's path for a concrete one; literal segments win over templates
    /// (`/v1/sessions/current` is not `/v1/sessions/{id}`).
    fn template(&self, path: &str) -> Option<&str> {
        let concrete = segments(path);
        self.paths
            .iter()
            .filter(|(t, _)| {
                t.len() == concrete.len()
                    && t.iter().zip(&concrete).all(|(t, c)| {
                        (t.starts_with('{') && t.ends_with('}') && !c.is_empty()) || t == c
                    })
            })
            .max_by_key(|(t, _)| t.iter().filter(|s| !s.starts_with('{')).count())
            .map(|(_, p)| p.as_str())
    }

    /// Follows a local `$ref` (`#/components/...`) until there is none.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(r) = value.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("openapi.yaml: only local $refs, not {r}"));
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("openapi.yaml: dangling $ref {r}"));
        }
        value
    }

    /// A validator for `schema`, whose `$ref`s point into this spec's components.
    fn validator(&self, key: String, schema: &Value) -> Arc<Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(key)
            .or_insert_with_key(|key| {
                // The schema under a root that holds the components, so
                // `#/components/schemas/...` resolves as it does in the spec.
                let root = json!({
                    "components": self.doc["components"],
                    "allOf": [schema],
                });
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("openapi.yaml: schema of {key} compiles: {e}"));
                Arc::new(validator)
            })
            .clone()
    }
}

/// Why this response breaks the contract, if it does. `path` is the request's
/// path (a query is ignored); `body` the raw bytes.
pub fn violation(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<String> {
    let spec = &*SPEC;
    let path = path.split('?').next().unwrap_or(path);
    let template = spec.template(path)?;
    let operation = format!("{} {template}", method.to_uppercase());
    let item = &spec.doc["paths"][template];
    let op = &item[method.to_lowercase()];
    let slug = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned));
    let router_refusal =
        status == 405 || (status == 404 && slug.as_deref() == Some("urn:lectern:problem:no-route"));
    let response = if op.is_null() || router_refusal {
        if !router_refusal {
            return Some(format!(
                "{operation}: no such operation, yet answered {status}"
            ));
        }
        let schema = json!({"$ref": "#/components/schemas/Problem"});
        let content = json!({"application/problem+json": {"schema": schema}});
        return check_content(
            spec,
            &format!("{operation} {status}"),
            &content,
            content_type,
            body,
        );
    } else {
        let responses = &op["responses"];
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let found = responses
            .get(&code)
            .or_else(|| responses.get(&range))
            .or_else(|| (status >= 500).then(|| responses.get("default")).flatten());
        let Some(found) = found else {
            return Some(format!(
                "{operation}: status {status} is not among the operation's responses \
                 (listed: {:?}); body: {}",
                responses
                    .as_object()
                    .map(|o| o.keys().collect::<Vec<_>>())
                    .unwrap_or_default(),
                String::from_utf8_lossy(body)
            ));
        };
        spec.resolve(found)
    };
    let content = response.get("content").cloned().unwrap_or(Value::Null);
    check_content(
        spec,
        &format!("{operation} {status}"),
        &content,
        content_type,
        body,
    )
}

/// The body against the response's `content` (none: the body must be empty).
fn check_content(
    spec: &Spec,
    what: &str,
    content: &Value,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<String> {
    let shown = || String::from_utf8_lossy(body).into_owned();
    let Some(media) = content.as_object().filter(|m| !m.is_empty()) else {
        return (!body.is_empty()).then(|| {
            format!(
                "{what}: the spec gives this response no body, yet it has one: {}",
                shown()
            )
        });
    };
    // Parameters (`; charset=utf-8`) do not change the media type.
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let Some((media_type, entry)) = essence.as_deref().and_then(|e| media.get_key_value(e)) else {
        return Some(format!(
            "{what}: content type {content_type:?} is not one the spec lists ({:?}); body: {}",
            media.keys().collect::<Vec<_>>(),
            shown()
        ));
    };
    // A media type without a schema admits any body.
    let schema = entry.get("schema")?;
    let instance: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(format!(
                "{what} ({media_type}): the body is not JSON ({e}): {}",
                shown()
            ));
        }
    };
    let validator = spec.validator(format!("{what} {media_type}"), schema);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().to_string()))
        .collect();
    (!errors.is_empty()).then(|| {
        format!(
            "{what} ({media_type}): the body breaks the spec's schema:\n{}\nbody: {instance}",
            errors.join("\n")
        )
    })
}

/// Why the spec refuses this JSON request body, if it does (`None` also when
/// the operation takes no body): to check the server refuses what the spec does.
pub fn request_violation(method: &str, path: &str, body: &Value) -> Option<String> {
    let spec = &*SPEC;
    let template = spec.template(path)?;
    let op = &spec.doc["paths"][template][method.to_lowercase()];
    let request = spec.resolve(op.get("requestBody")?);
    let schema = request["content"]["application/json"].get("schema")?;
    let what = format!("{} {template} request", method.to_uppercase());
    let errors: Vec<String> = spec
        .validator(what, schema)
        .iter_errors(body)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Panics, saying why, when the response breaks the contract.
pub fn assert_conforms(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    if let Some(why) = violation(method, path, status, content_type, body) {
        panic!("response does not match openapi.yaml: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::violation;

    const PROBLEM: &str = "application/problem+json";

    #[test]
    fn valid_bodies_pass() {
        let health = br#"{"status":"ok","checks":{"redis":{"status":"ok","latency_ms":0.8},"postgres":{"status":"ok","latency_ms":2.1}}}"#;
        assert_eq!(
            violation("GET", "/v1/health", 200, Some("application/json"), health),
            None
        );
        let problem = br#"{"type":"urn:lectern:problem:service-unavailable","title":"Service unavailable","status":503,"detail":"redis down"}"#;
        assert_eq!(
            violation("POST", "/v1/pools", 503, Some(PROBLEM), problem),
            None
        );
    }

    #[test]
    fn a_wrong_body_is_caught() {
        let health = br#"{"status":"fine","checks":{"redis":{"status":"ok","latency_ms":0.8}}}"#;
        let why = violation("GET", "/v1/health", 200, Some("application/json"), health).unwrap();
        assert!(why.contains("postgres") && why.contains("fine"), "{why}");
    }

    #[test]
    fn a_missing_required_field_is_caught() {
        let body = br#"{"type":"urn:lectern:problem:not-found","title":"Not found","status":404}"#;
        let why = violation(
            "GET",
            "/v1/tests/6f1c1c64-3b1e-4a55-9b0e-0d8f6b1f2a10",
            404,
            Some(PROBLEM),
            body,
        )
        .expect("a problem without `detail` is refused");
        assert!(why.contains("detail"), "{why}");
        assert!(why.contains("GET /v1/tests/{id} 404"), "{why}");
    }

    #[test]
    fn an_unlisted_status_a_wrong_content_type_and_bad_json_are_caught() {
        let problem = br#"{"type":"urn:lectern:problem:x","title":"X","status":418,"detail":"x"}"#;
        let why = violation("GET", "/v1/health", 418, Some(PROBLEM), problem).unwrap();
        assert!(why.contains("not among"), "{why}");
        let why = violation("POST", "/v1/pools", 503, Some("text/plain"), problem).unwrap();
        assert!(why.contains("content type"), "{why}");
        let why = violation("POST", "/v1/pools", 503, Some(PROBLEM), b"{nope").unwrap();
        assert!(why.contains("not JSON"), "{why}");
    }

    #[test]
    fn unknown_paths_are_not_checked_and_literals_beat_templates() {
        assert_eq!(violation("GET", "/nowhere", 404, None, b"x"), None);
        assert_eq!(
            super::SPEC.template("/v1/sessions/current"),
            Some("/v1/sessions/current")
        );
        assert_eq!(
            super::SPEC.template("/v1/tests/abc/next?x=1".split('?').next().unwrap()),
            Some("/v1/tests/{id}/next")
        );
    }
}
