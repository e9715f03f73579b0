//! Configuration from the environment, parsed and validated once at start.

use std::time::Duration;

/// A setting that is missing or malformed; its `Display` is the one line an operator reads.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Everything lectern reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// `redis://` URL of the hot-state store.
    pub redis_url: String,
    /// Put in front of every Redis key (lets many deployments or test runs share one Redis).
    pub redis_key_prefix: String,
    /// How long one Redis command may take before it fails.
    pub redis_timeout: Duration,
    /// `postgres://` URL of the system of record.
    pub database_url: String,
    /// Most connections one process keeps; a Lambda container serves one request at a time.
    pub db_pool_max: usize,
    /// How long to wait for a PostgreSQL connection before answering 503.
    pub db_timeout: Duration,
    /// Sliding time-to-live of an active test's Redis state.
    pub test_state_ttl: Duration,
    /// Longest an administrator may extend a test's life to (`POST /v1/admin/tests/{id}/extend`).
    pub test_max_ttl: Duration,
    /// How long an active test may go untouched (its live state gone) before the sweeper abandons it.
    pub test_idle_limit: Duration,
}

impl std::fmt::Debug for Config {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("db_pool_max", &self.db_pool_max)
            .field("db_timeout", &self.db_timeout)
            .field("test_state_ttl", &self.test_state_ttl)
            .field("test_max_ttl", &self.test_max_ttl)
            .field("test_idle_limit", &self.test_idle_limit)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        if get("DB_SECRET_ARN").is_some() && get("DATABASE_URL").is_none() {
            return Err(ConfigError {
                var: "DB_SECRET_ARN",
                problem: "Secrets Manager credentials are not supported yet; set DATABASE_URL"
                    .into(),
            });
        }
        let redis_url = required(&get, "REDIS_URL")?;
        if !redis_url.starts_with("redis://") {
            return Err(ConfigError {
                var: "REDIS_URL",
                problem: "must start with redis:// (TLS via rediss:// is not supported yet)".into(),
            });
        }
        let database_url = required(&get, "DATABASE_URL")?;
        if let Err(e) = database_url.parse::<tokio_postgres::Config>() {
            return Err(ConfigError {
                var: "DATABASE_URL",
                problem: format!("not a PostgreSQL URL ({e})"),
            });
        }
        let redis_key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_default();
        if redis_key_prefix.contains(['{', '}', ' ']) {
            return Err(ConfigError {
                var: "REDIS_KEY_PREFIX",
                problem: "must not contain braces or spaces (braces are Redis Cluster hash tags)"
                    .into(),
            });
        }
        Ok(Self {
            redis_url,
            redis_key_prefix,
            redis_timeout: Duration::from_millis(number(
                &get,
                "REDIS_TIMEOUT_MS",
                1_000,
                1..=60_000,
            )?),
            database_url,
            db_pool_max: number(&get, "DB_POOL_MAX", 2, 1..=64)? as usize,
            db_timeout: Duration::from_millis(number(&get, "DB_TIMEOUT_MS", 3_000, 1..=60_000)?),
            test_state_ttl: Duration::from_secs(number(
                &get,
                "TEST_STATE_TTL_SECS",
                1_800,
                60..=86_400,
            )?),
            test_max_ttl: Duration::from_secs(number(
                &get,
                "TEST_MAX_TTL_SECS",
                14_400,
                60..=604_800,
            )?),
            test_idle_limit: Duration::from_secs(number(
                &get,
                "TEST_IDLE_LIMIT_SECS",
                1_800,
                60..=604_800,
            )?),
        })
    }
}

fn required(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
) -> Result<String, ConfigError> {
    get(var).ok_or(ConfigError {
        var,
        problem: "is required but not set".into(),
    })
}

fn number(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError {
            var,
            problem: format!(
                "must be a whole number from {} to {} (got {raw:?})",
                range.start(),
                range.end()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("DATABASE_URL", "postgres://u:secret@localhost/db"),
    ];

    #[test]
    fn defaults_apply() {
        let c = parse(&BASE).unwrap();
        assert_eq!(c.db_pool_max, 2);
        assert_eq!(c.test_state_ttl, Duration::from_secs(1800));
        assert_eq!(c.test_max_ttl, Duration::from_secs(4 * 3600));
        assert_eq!(c.redis_key_prefix, "");
    }

    #[test]
    fn idle_limit_defaults_to_half_an_hour_and_is_bounded() {
        assert_eq!(
            parse(&BASE).unwrap().test_idle_limit,
            Duration::from_secs(1800)
        );
        let c = parse(&[BASE[0], BASE[1], ("TEST_IDLE_LIMIT_SECS", "604800")]).unwrap();
        assert_eq!(c.test_idle_limit, Duration::from_secs(604_800));
        for bad in ["59", "604801", "soon"] {
            let e = parse(&[BASE[0], BASE[1], ("TEST_IDLE_LIMIT_SECS", bad)]).unwrap_err();
            assert_eq!(e.var, "TEST_IDLE_LIMIT_SECS", "{bad}");
        }
    }

    #[test]
    fn missing_and_bad_values_name_the_variable() {
        let e = parse(&[("REDIS_URL", "redis://x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: DATABASE_URL: is required but not set"
        );
        let e = parse(&[BASE[0], BASE[1], ("DB_POOL_MAX", "zero")]).unwrap_err();
        assert_eq!(e.var, "DB_POOL_MAX");
        assert!(e.to_string().contains("from 1 to 64"), "{e}");
        let e = parse(&[("REDIS_URL", "http://x"), BASE[1]]).unwrap_err();
        assert_eq!(e.var, "REDIS_URL");
        let e = parse(&[BASE[0], BASE[1], ("REDIS_KEY_PREFIX", "a{b}")]).unwrap_err();
        assert_eq!(e.var, "REDIS_KEY_PREFIX");
    }

    #[test]
    fn debug_output_hides_urls() {
        let c = parse(&BASE).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
