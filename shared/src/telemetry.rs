//! Logging and metrics. On Lambda: JSON log lines (CloudWatch Logs Insights
//! parses them) carrying the request id, the function and the route of the
//! invocation they belong to, and CloudWatch Embedded Metric Format (EMF)
//! records in the same stream, which CloudWatch turns into metrics with no
//! API call and no agent. Locally: readable text, and no metrics.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// True inside an AWS Lambda execution environment.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// The function's name (`AWS_LAMBDA_FUNCTION_NAME`), or `local`.
pub fn function_name() -> &'static str {
    static NAME: LazyLock<String> = LazyLock::new(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into())
    });
    &NAME
}

/// Installs the global subscriber once. `RUST_LOG` filters by target and
/// level (`info`, `info,lectern=debug`; default and fallback `info`): a
/// `Targets` filter, which needs no regex engine in every bootstrap.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    // A second call (several tests in one process) keeps the first subscriber.
    let _ = if on_lambda() {
        // The innermost span is the invocation's (see `invocation`): its fields
        // (request_id, function, route) go on every line logged inside it.
        let json = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time();
        registry.with(json).try_init()
    } else {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let text = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(colour);
        registry.with(text).try_init()
    };
}

/// The span every line logged while handling one invocation belongs to: its
/// request id, the function, the route, and the X-Ray trace when tracing is on.
pub fn invocation(context: Option<&lambda_runtime::Context>, route: &str) -> tracing::Span {
    let request_id = context.map_or("", |c| c.request_id.as_str());
    let trace = context.and_then(|c| c.xray_trace_id.as_deref());
    tracing::info_span!(
        "invocation",
        request_id = %request_id,
        function = %function_name(),
        route = %route,
        xray_trace_id = trace
    )
}

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: metrics with their dimensions, and properties (searchable
/// in the logs, not metrics), written as one JSON line on standard output.
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Vec<(&'static str, Value)>,
}

impl Emf {
    /// A record in `namespace` (`METRICS_NAMESPACE`, e.g. `Lectern`).
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Adds a dimension every metric of the record is filed under.
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    /// Adds a metric.
    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// Adds a property: kept in the log line, not made a metric.
    pub fn property(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    /// The record as EMF wants it, stamped `timestamp_ms` (Unix milliseconds).
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let mut root = Map::new();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.name() }))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert((*name).into(), value.clone().into());
        }
        for (name, _, value) in &self.metrics {
            root.insert((*name).into(), json!(value));
        }
        for (name, value) in &self.properties {
            root.insert((*name).into(), value.clone());
        }
        Value::Object(root)
    }

    /// Writes the record to standard output, on Lambda only (elsewhere no one
    /// reads it as metrics).
    pub fn emit(&self) {
        if on_lambda() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            println!("{}", self.to_json(now));
        }
    }
}

/// The EMF record every request or message starts with: `Requests`,
/// `Latency` and `Errors`, by function and route.
pub fn request_record(namespace: &str, route: String, latency_ms: f64, failed: bool) -> Emf {
    Emf::new(namespace)
        .dimension("Function", function_name())
        .dimension("Route", route)
        .metric("Requests", Unit::Count, 1.0)
        .metric("Latency", Unit::Milliseconds, latency_ms)
        .metric("Errors", Unit::Count, f64::from(u8::from(failed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_record_declares_its_metrics_and_dimensions() {
        let record = Emf::new("Lectern")
            .dimension("Function", "lectern-submit")
            .dimension("Route", "POST /v1/tests/{id}/responses")
            .metric("Requests", Unit::Count, 1.0)
            .metric("Latency", Unit::Milliseconds, 12.5)
            .property("RequestId", "abc")
            .to_json(1_700_000_000_000);
        assert_eq!(
            record,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Lectern",
                        "Dimensions": [["Function", "Route"]],
                        "Metrics": [
                            { "Name": "Requests", "Unit": "Count" },
                            { "Name": "Latency", "Unit": "Milliseconds" }
                        ]
                    }]
                },
                "Function": "lectern-submit",
                "Route": "POST /v1/tests/{id}/responses",
                "Requests": 1.0,
                "Latency": 12.5,
                "RequestId": "abc"
            })
        );
    }
}
