//! Where the outbox's events are published (`services::events`).

use crate::aws::Credentials;
use crate::aws::eventbridge::Bus;
use crate::aws::lambda::Target;
use crate::env::{ConfigError, checked_url, flag, required};

/// How events leave the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// The EventBridge bus (`EVENT_BUS_NAME`); `None`: events are logged and
    /// marked published (local development).
    pub bus: Option<Bus>,
    /// Whether a write that enqueued events starts a drain at once
    /// (`EVENTS_DRAIN_AFTER_WRITES`, default true); the schedule drains either way.
    pub drain_after_writes: bool,
    /// The function that drains (`EVENTS_FUNCTION`), invoked asynchronously
    /// after writes; `None`: the drain runs as a task of this process (never
    /// on Lambda, where a task outlives no response).
    pub function: Option<Target>,
    /// Whether this process is a Lambda function (`AWS_LAMBDA_FUNCTION_NAME`):
    /// there, events are never just logged (no bus is an error), nor drained
    /// by a task of a writer.
    pub on_lambda: bool,
}

impl EventsConfig {
    /// Reads `EVENT_BUS_NAME`, `EVENTS_ENDPOINT`, `EVENTS_FUNCTION`,
    /// `EVENTS_DRAIN_AFTER_WRITES` (with `AWS_REGION` and the function's
    /// credentials when a bus or a function is named).
    pub fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint = get("EVENTS_ENDPOINT")
            .map(|e| {
                checked_url(&e).map_err(|problem| ConfigError {
                    var: "EVENTS_ENDPOINT",
                    problem,
                })
            })
            .transpose()?;
        // A loopback sink needs no AWS account: it is signed with placeholders.
        let loopback = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let bus = match get("EVENT_BUS_NAME") {
            None => None,
            Some(name) => {
                let (region, credentials) = if loopback {
                    (
                        get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                        credentials(get, "EVENT_BUS_NAME").unwrap_or_else(|_| Credentials {
                            access_key_id: "local".into(),
                            secret_access_key: "local".into(),
                            session_token: None,
                        }),
                    )
                } else {
                    (
                        required(get, "AWS_REGION")?,
                        credentials(get, "EVENT_BUS_NAME")?,
                    )
                };
                Some(Bus::new(
                    name.trim().to_owned(),
                    region,
                    credentials,
                    endpoint,
                ))
            }
        };
        let function = match get("EVENTS_FUNCTION") {
            None => None,
            Some(function) => Some(Target {
                function: function.trim().to_owned(),
                region: required(get, "AWS_REGION")?,
                credentials: credentials(get, "EVENTS_FUNCTION")?,
                endpoint: get("EVENTS_FUNCTION_ENDPOINT").map(|e| e.trim().to_owned()),
            }),
        };
        Ok(Self {
            bus,
            drain_after_writes: flag(get, "EVENTS_DRAIN_AFTER_WRITES", true)?,
            function,
            on_lambda: get("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        })
    }
}

fn credentials(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
) -> Result<Credentials, ConfigError> {
    Credentials::from_lookup(|name| match name {
        "AWS_ACCESS_KEY_ID" => get("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY" => get("AWS_SECRET_ACCESS_KEY"),
        "AWS_SESSION_TOKEN" => get("AWS_SESSION_TOKEN"),
        _ => None,
    })
    .map_err(|problem| ConfigError {
        var,
        problem: format!("needs the function's AWS credentials ({problem})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<EventsConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EventsConfig::from_lookup(&|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_bus_means_the_log_and_draining_after_writes_is_on_by_default() {
        let c = parse(&[]).unwrap();
        assert!(c.bus.is_none() && c.function.is_none() && c.drain_after_writes);
        assert!(
            !parse(&[("EVENTS_DRAIN_AFTER_WRITES", "false")])
                .unwrap()
                .drain_after_writes
        );
        assert_eq!(
            parse(&[("EVENTS_DRAIN_AFTER_WRITES", "soon")])
                .unwrap_err()
                .var,
            "EVENTS_DRAIN_AFTER_WRITES"
        );
    }

    #[test]
    fn a_bus_in_aws_needs_the_region_and_credentials_a_loopback_sink_does_not() {
        let e = parse(&[("EVENT_BUS_NAME", "lectern")]).unwrap_err();
        assert_eq!(e.var, "AWS_REGION");
        let e = parse(&[("EVENT_BUS_NAME", "lectern"), ("AWS_REGION", "eu-west-1")]).unwrap_err();
        assert_eq!(e.var, "EVENT_BUS_NAME");
        let c = parse(&[
            ("EVENT_BUS_NAME", "lectern"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ])
        .unwrap();
        let bus = c.bus.unwrap();
        assert_eq!((bus.name.as_str(), bus.endpoint), ("lectern", None));
        let local = parse(&[
            ("EVENT_BUS_NAME", "lectern"),
            ("EVENTS_ENDPOINT", "http://127.0.0.1:4010/"),
        ])
        .unwrap()
        .bus
        .unwrap();
        assert_eq!(local.endpoint.as_deref(), Some("http://127.0.0.1:4010"));
        let e = parse(&[
            ("EVENT_BUS_NAME", "lectern"),
            ("EVENTS_ENDPOINT", "http://events.example.com"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "EVENTS_ENDPOINT");
    }
}
