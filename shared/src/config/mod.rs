//! Configuration from the environment, parsed and validated once at start.

use std::time::Duration;

pub mod ai;
pub mod events;
pub mod secrets;

pub use crate::env::ConfigError;
use crate::env::{flag, number, required};
pub use ai::AiConfig;
pub use events::EventsConfig;
pub use secrets::Extension;

/// Everything lectern reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// `redis://` (or `rediss://`, TLS) URL of the hot-state store; with
    /// cluster mode, any node's (the configuration endpoint in AWS).
    pub redis_url: String,
    /// `REDIS_CLUSTER=true`: Redis Cluster (ElastiCache cluster mode), through the cluster client.
    pub redis_cluster: bool,
    /// Secrets Manager secret holding the Redis AUTH token (`REDIS_AUTH_SECRET_ARN`),
    /// read at the first connection.
    pub redis_auth_secret_arn: Option<String>,
    /// Put in front of every Redis key (lets many deployments or test runs share one Redis).
    pub redis_key_prefix: String,
    /// How long one Redis command may take before it fails.
    pub redis_timeout: Duration,
    /// The system of record.
    pub database: DatabaseConfig,
    /// Where `REDIS_AUTH_SECRET_ARN` is read (the Parameters and Secrets extension).
    pub secrets: Extension,
    /// CloudWatch namespace of the metrics the functions log (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// Most connections one process keeps; a Lambda container serves one request at a time.
    pub db_pool_max: usize,
    /// How long to wait for a PostgreSQL connection before answering 503.
    pub db_timeout: Duration,
    /// Sliding time-to-live of an active test's Redis state.
    pub test_state_ttl: Duration,
    /// Longest an administrator may extend a test's life to (`POST /v1/admin/tests/{id}/extend`).
    pub test_max_ttl: Duration,
    /// How long the audit trail keeps an entry (whole months are dropped
    /// once every entry in them is older).
    pub audit_retention: Duration,
    /// How long an active test may go untouched (its live state gone) before the sweeper abandons it.
    pub test_idle_limit: Duration,
    /// Time-to-live of a tutoring session's Redis state, refreshed by every use.
    pub teaching_state_ttl: Duration,
    /// How long a tutoring session may go without a transition (its Redis
    /// state gone) before the sweeper ends it as abandoned; also the most one
    /// gap between inputs adds to a student's time spent on a course.
    pub teaching_idle_limit: Duration,
    /// The semantic answer cache: `None` when off (`SEMANTIC_CACHE=false`).
    pub semantic: Option<SemanticConfig>,
    /// Auth sessions, sign-in throttling and OpenID Connect providers.
    pub auth: AuthConfig,
    /// The cache layer: TTL classes, negative caching, leases.
    pub cache: CacheConfig,
    /// The AI chat-completions API (off unless `AI_BASE_URL` is set).
    pub ai: AiConfig,
    /// The function calibration runs are handed to (`CALIBRATE_FUNCTION`);
    /// `None`: they run as background tasks of this process.
    pub calibrate_function: Option<crate::aws::lambda::Target>,
    /// Where the outbox's events go (`EVENT_BUS_NAME`, …: see `config::events`).
    pub events: EventsConfig,
}

/// Where PostgreSQL is, and where its credentials are when not in the URL.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`; `sslmode=require` means TLS with the server's certificate verified.
    pub url: String,
    /// Secrets Manager secret (RDS's JSON: `username`, `password`) whose
    /// credentials replace the URL's (`DB_SECRET_ARN`), read at the first connection.
    pub secret_arn: Option<String>,
    /// Where that secret is read.
    pub secrets: Extension,
}

impl std::fmt::Debug for DatabaseConfig {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("secret_arn", &self.secret_arn)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl DatabaseConfig {
    /// A database reached with the credentials in its URL.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret_arn: None,
            secrets: Extension::default(),
        }
    }

    /// Reads `DATABASE_URL`, `DB_SECRET_ARN` and the extension's settings.
    pub fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = required(get, "DATABASE_URL")?;
        if let Err(e) = url.parse::<tokio_postgres::Config>() {
            return Err(ConfigError {
                var: "DATABASE_URL",
                problem: format!("not a PostgreSQL URL ({e})"),
            });
        }
        let secrets = Extension::from_lookup(get)?;
        Ok(Self {
            url,
            secret_arn: secret_arn(get, &secrets, "DB_SECRET_ARN")?,
            secrets,
        })
    }

    /// Reads the process environment (blank values count as unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }
}

/// An optional `*_SECRET_ARN` setting, which needs the extension's session token.
fn secret_arn(
    get: &impl Fn(&'static str) -> Option<String>,
    secrets: &Extension,
    var: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(arn) = get(var) else { return Ok(None) };
    if !arn.trim().starts_with("arn:") {
        return Err(ConfigError {
            var,
            problem: "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:...)".into(),
        });
    }
    secrets.require_token(var)?;
    Ok(Some(arn.trim().to_owned()))
}

/// How the cache layer behaves (`lectern::cache`).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Off: every read goes to its source (for comparisons and emergencies).
    pub enabled: bool,
    /// A user's profile, proficiency and test history.
    pub user_ttl: Duration,
    /// Data that changes only by an explicit edit (a pool and its items).
    pub static_ttl: Duration,
    /// Lists that grow as others write (the pool list).
    pub list_ttl: Duration,
    /// AI responses, unless the operation sets its own.
    pub ai_ttl: Duration,
    /// How long "there is no such thing" is remembered (zero: not at all).
    pub negative_ttl: Duration,
    /// How long one container may hold the right to fill a missing entry; the
    /// others wait for it at most this long, then read the source themselves.
    pub lease: Duration,
    /// The same for an AI response (an upstream call takes seconds).
    pub ai_lease: Duration,
    /// Most one "Redis unreachable, cache bypassed" warning per this long.
    pub warn_interval: Duration,
}

/// How sign-in and auth sessions behave.
#[derive(Clone)]
pub struct AuthConfig {
    /// A session unused this long dies (sliding).
    pub idle_timeout: Duration,
    /// A session dies this long after sign-in, however much it is used.
    pub absolute_timeout: Duration,
    /// A session's last use is written at most this often (spares writes).
    pub touch_interval: Duration,
    /// Failed sign-ins are counted over this window.
    pub throttle_window: Duration,
    /// Failed sign-ins to one account allowed per window.
    pub max_failures_per_account: u64,
    /// Failed sign-ins from one client address allowed per window.
    pub max_failures_per_ip: u64,
    /// OpenID Connect providers by name.
    pub providers: Vec<OidcProvider>,
}

/// One OpenID Connect provider (`OAUTH_PROVIDERS`, a JSON object keyed by name).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// The name in `/v1/oauth/{provider}/...` (the JSON key).
    #[serde(skip)]
    pub name: String,
    /// `iss` the ID token must carry.
    pub issuer: String,
    /// Where the user's browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the code is exchanged for tokens.
    pub token_endpoint: String,
    /// Where the email is read when the ID token has none.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider (never logged).
    pub client_secret: String,
    /// Our callback URL as registered at the provider.
    pub redirect_uri: String,
    /// Scopes asked for.
    #[serde(default = "default_scopes")]
    pub scopes: String,
}

fn default_scopes() -> String {
    "openid email profile".into()
}

impl std::fmt::Debug for Config {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("redis_cluster", &self.redis_cluster)
            .field("redis_auth_secret_arn", &self.redis_auth_secret_arn)
            .field("database", &self.database)
            .field("secrets", &self.secrets)
            .field("metrics_namespace", &self.metrics_namespace)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("db_pool_max", &self.db_pool_max)
            .field("db_timeout", &self.db_timeout)
            .field("test_state_ttl", &self.test_state_ttl)
            .field("test_max_ttl", &self.test_max_ttl)
            .field("audit_retention", &self.audit_retention)
            .field("test_idle_limit", &self.test_idle_limit)
            .field("teaching_state_ttl", &self.teaching_state_ttl)
            .field("teaching_idle_limit", &self.teaching_idle_limit)
            .field("semantic", &self.semantic)
            .field("auth", &self.auth)
            .field("cache", &self.cache)
            .field("ai", &self.ai)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AuthConfig {
    // Client secrets stay out of every log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let providers: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("AuthConfig")
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("touch_interval", &self.touch_interval)
            .field("throttle_window", &self.throttle_window)
            .field("max_failures_per_account", &self.max_failures_per_account)
            .field("max_failures_per_ip", &self.max_failures_per_ip)
            .field("providers", &providers)
            .finish()
    }
}

impl AuthConfig {
    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<&OidcProvider> {
        self.providers.iter().find(|p| p.name == name)
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
        let redis_url = required(&get, "REDIS_URL")?;
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(ConfigError {
                var: "REDIS_URL",
                problem: "must start with redis:// or rediss:// (TLS)".into(),
            });
        }
        let database = DatabaseConfig::from_lookup(&get)?;
        let secrets = Extension::from_lookup(&get)?;
        let redis_auth_secret_arn = secret_arn(&get, &secrets, "REDIS_AUTH_SECRET_ARN")?;
        let redis_cluster = flag(&get, "REDIS_CLUSTER", false)?;
        let metrics_namespace = get("METRICS_NAMESPACE")
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| "Lectern".into());
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
            redis_cluster,
            redis_auth_secret_arn,
            redis_key_prefix,
            redis_timeout: Duration::from_millis(number(
                &get,
                "REDIS_TIMEOUT_MS",
                1_000,
                1..=60_000,
            )?),
            database,
            secrets,
            metrics_namespace,
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
            audit_retention: Duration::from_secs(
                86_400 * number(&get, "AUDIT_RETENTION_DAYS", 730, 31..=36_500)?,
            ),
            test_idle_limit: Duration::from_secs(number(
                &get,
                "TEST_IDLE_LIMIT_SECS",
                1_800,
                60..=604_800,
            )?),
            teaching_state_ttl: Duration::from_secs(number(
                &get,
                "TEACHING_STATE_TTL_SECS",
                1_800,
                60..=86_400,
            )?),
            teaching_idle_limit: Duration::from_secs(number(
                &get,
                "TEACHING_IDLE_LIMIT_SECS",
                3_600,
                60..=604_800,
            )?),
            semantic: semantic(&get)?,
            auth: auth(&get)?,
            cache: cache(&get)?,
            ai: AiConfig::from_lookup(&get)?,
            calibrate_function: calibrate_function(&get)?,
            events: EventsConfig::from_lookup(&get)?,
        })
    }
}

/// `CALIBRATE_FUNCTION` (a Lambda function's name or ARN), with the region
/// and credentials to invoke it with and `CALIBRATE_ENDPOINT`, the Lambda
/// API's address when it is not AWS's (tests).
fn calibrate_function(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<Option<crate::aws::lambda::Target>, ConfigError> {
    let Some(function) = get("CALIBRATE_FUNCTION") else {
        return Ok(None);
    };
    let region = required(get, "AWS_REGION")?;
    let credentials = crate::aws::Credentials::from_lookup(|name| match name {
        "AWS_ACCESS_KEY_ID" => get("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY" => get("AWS_SECRET_ACCESS_KEY"),
        "AWS_SESSION_TOKEN" => get("AWS_SESSION_TOKEN"),
        _ => None,
    })
    .map_err(|problem| ConfigError {
        var: "CALIBRATE_FUNCTION",
        problem: format!("needs the function's AWS credentials ({problem})"),
    })?;
    Ok(Some(crate::aws::lambda::Target {
        function: function.trim().to_owned(),
        region,
        credentials,
        endpoint: get("CALIBRATE_ENDPOINT").map(|e| e.trim().to_owned()),
    }))
}

fn auth(get: &impl Fn(&'static str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
    let secs = |var, default, range| number(get, var, default, range).map(Duration::from_secs);
    let idle_timeout = secs("AUTH_IDLE_TIMEOUT_SECS", 86_400, 1..=2_592_000)?;
    let absolute_timeout = secs("AUTH_ABSOLUTE_TIMEOUT_SECS", 604_800, 1..=7_776_000)?;
    if absolute_timeout < idle_timeout {
        return Err(ConfigError {
            var: "AUTH_ABSOLUTE_TIMEOUT_SECS",
            problem: "must be at least AUTH_IDLE_TIMEOUT_SECS".into(),
        });
    }
    Ok(AuthConfig {
        idle_timeout,
        absolute_timeout,
        touch_interval: secs("AUTH_TOUCH_INTERVAL_SECS", 60, 0..=3_600)?,
        throttle_window: secs("LOGIN_THROTTLE_WINDOW_SECS", 900, 1..=86_400)?,
        max_failures_per_account: number(get, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 10, 1..=1_000)?,
        max_failures_per_ip: number(get, "LOGIN_MAX_FAILURES_PER_IP", 100, 1..=100_000)?,
        providers: providers(get("OAUTH_PROVIDERS").as_deref())?,
    })
}

fn cache(get: &impl Fn(&'static str) -> Option<String>) -> Result<CacheConfig, ConfigError> {
    let secs = |var, default, range| number(get, var, default, range).map(Duration::from_secs);
    let enabled = flag(get, "CACHE_ENABLED", true)?;
    Ok(CacheConfig {
        enabled,
        user_ttl: secs("CACHE_TTL_USER_SECS", 300, 1..=86_400)?,
        static_ttl: secs("CACHE_TTL_STATIC_SECS", 3_600, 1..=604_800)?,
        list_ttl: secs("CACHE_TTL_LIST_SECS", 600, 1..=86_400)?,
        ai_ttl: secs("CACHE_TTL_AI_SECS", 86_400, 1..=2_592_000)?,
        negative_ttl: secs("CACHE_NEGATIVE_TTL_SECS", 30, 0..=3_600)?,
        lease: Duration::from_millis(number(get, "CACHE_LEASE_MS", 2_000, 10..=120_000)?),
        ai_lease: Duration::from_millis(number(get, "CACHE_AI_LEASE_MS", 60_000, 10..=900_000)?),
        warn_interval: secs("CACHE_WARN_INTERVAL_SECS", 60, 1..=3_600)?,
    })
}

/// Parses `OAUTH_PROVIDERS`; endpoints must be https (http only on loopback, for tests).
fn providers(raw: Option<&str>) -> Result<Vec<OidcProvider>, ConfigError> {
    let bad = |problem: String| ConfigError {
        var: "OAUTH_PROVIDERS",
        problem,
    };
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let map: std::collections::BTreeMap<String, OidcProvider> = serde_json::from_str(raw)
        .map_err(|e| bad(format!("not a JSON object of providers ({e})")))?;
    map.into_iter()
        .map(|(name, mut p)| {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(bad(format!(
                    "provider name {name:?} must be letters, digits or '-'"
                )));
            }
            for url in [
                Some(&p.issuer),
                Some(&p.authorization_endpoint),
                Some(&p.token_endpoint),
                p.userinfo_endpoint.as_ref(),
                Some(&p.redirect_uri),
            ]
            .into_iter()
            .flatten()
            {
                let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
                    .iter()
                    .any(|l| url.starts_with(l));
                if !url.starts_with("https://") && !loopback {
                    return Err(bad(format!("{name}: {url:?} must be an https:// URL")));
                }
            }
            p.name = name;
            Ok(p)
        })
        .collect()
}

/// The semantic answer cache's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticConfig {
    /// Least cosine similarity at which an earlier question's answer is reused
    /// (`SEMANTIC_CACHE_THRESHOLD`, 0.5 to 1; default
    /// [`crate::semantic::DEFAULT_THRESHOLD`], measured on a paraphrase set).
    pub threshold: f32,
    /// Most answers kept per segment of a course version
    /// (`SEMANTIC_CACHE_CAP`, 10 to 100000; default 1000): the least used go.
    pub cap: usize,
}

fn semantic(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<Option<SemanticConfig>, ConfigError> {
    if !flag(get, "SEMANTIC_CACHE", true)? {
        return Ok(None);
    }
    let threshold = match get("SEMANTIC_CACHE_THRESHOLD") {
        None => crate::semantic::DEFAULT_THRESHOLD,
        Some(raw) => match raw.trim().parse::<f32>() {
            Ok(t) if (0.5..=1.0).contains(&t) => t,
            _ => {
                return Err(ConfigError {
                    var: "SEMANTIC_CACHE_THRESHOLD",
                    problem: format!("must be a number from 0.5 to 1 (got {raw:?})"),
                });
            }
        },
    };
    let cap = number(get, "SEMANTIC_CACHE_CAP", 1_000, 10..=100_000)? as usize;
    Ok(Some(SemanticConfig { threshold, cap }))
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
    fn production_settings_tls_cluster_and_secrets() {
        let c = parse(&BASE).unwrap();
        assert!(!c.redis_cluster);
        assert_eq!(
            (c.redis_auth_secret_arn, c.database.secret_arn),
            (None, None)
        );
        assert_eq!(c.metrics_namespace, "Lectern");
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lectern-db-AbCdEf";
        let c = parse(&[
            (
                "REDIS_URL",
                "rediss://cfg.lectern.use1.cache.amazonaws.com:6379",
            ),
            (
                "DATABASE_URL",
                "postgres://lectern@proxy.example:5432/lectern?sslmode=require",
            ),
            ("REDIS_CLUSTER", "true"),
            ("REDIS_AUTH_SECRET_ARN", arn),
            ("DB_SECRET_ARN", arn),
            ("AWS_SESSION_TOKEN", "session-token"),
            ("METRICS_NAMESPACE", "Lectern/dev"),
        ])
        .unwrap();
        assert!(c.redis_cluster);
        assert_eq!(c.redis_auth_secret_arn.as_deref(), Some(arn));
        assert_eq!(c.database.secret_arn.as_deref(), Some(arn));
        assert_eq!(c.metrics_namespace, "Lectern/dev");
        // A secret needs the session token the extension checks.
        let e = parse(&[BASE[0], BASE[1], ("DB_SECRET_ARN", arn)]).unwrap_err();
        assert_eq!(e.var, "AWS_SESSION_TOKEN");
        assert!(e.to_string().contains("DB_SECRET_ARN"), "{e}");
        let e = parse(&[BASE[0], BASE[1], ("REDIS_AUTH_SECRET_ARN", "my-token")]).unwrap_err();
        assert_eq!(e.var, "REDIS_AUTH_SECRET_ARN");
        assert!(!e.to_string().contains("my-token"), "{e}");
        let e = parse(&[BASE[0], BASE[1], ("REDIS_CLUSTER", "yes")]).unwrap_err();
        assert_eq!(e.var, "REDIS_CLUSTER");
    }

    #[test]
    fn auth_defaults_and_bounds() {
        let a = parse(&BASE).unwrap().auth;
        assert_eq!(a.idle_timeout, Duration::from_secs(86_400));
        assert_eq!(a.absolute_timeout, Duration::from_secs(7 * 86_400));
        assert_eq!(a.touch_interval, Duration::from_secs(60));
        assert!(a.providers.is_empty());
        let e = parse(&[
            BASE[0],
            BASE[1],
            ("AUTH_IDLE_TIMEOUT_SECS", "100"),
            ("AUTH_ABSOLUTE_TIMEOUT_SECS", "99"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "AUTH_ABSOLUTE_TIMEOUT_SECS");
    }

    #[test]
    fn providers_parse_and_need_https_and_stay_out_of_debug() {
        let provider = |url: &str| {
            format!(
                r#"{{"corp": {{"issuer": "{url}", "authorization_endpoint": "{url}/a",
                "token_endpoint": "{url}/t", "client_id": "lectern",
                "client_secret": "hunter2-secret", "redirect_uri": "{url}/cb"}}}}"#
            )
        };
        let ok = provider("https://id.example.com");
        let c = parse(&[BASE[0], BASE[1], ("OAUTH_PROVIDERS", &ok)]).unwrap();
        let p = c.auth.provider("corp").unwrap();
        assert_eq!(p.scopes, "openid email profile");
        assert!(!format!("{c:?}").contains("hunter2"));
        let local = provider("http://127.0.0.1:8080");
        assert!(parse(&[BASE[0], BASE[1], ("OAUTH_PROVIDERS", &local)]).is_ok());
        for bad in [provider("http://id.example.com"), "[]".into(), "{".into()] {
            let e = parse(&[BASE[0], BASE[1], ("OAUTH_PROVIDERS", &bad)]).unwrap_err();
            assert_eq!(e.var, "OAUTH_PROVIDERS", "{bad}");
        }
    }

    #[test]
    fn cache_classes_default_as_documented() {
        let c = parse(&BASE).unwrap().cache;
        assert!(c.enabled);
        assert_eq!(c.user_ttl, Duration::from_secs(300));
        assert_eq!(c.static_ttl, Duration::from_secs(3600));
        assert_eq!(c.list_ttl, Duration::from_secs(600));
        assert_eq!(c.ai_ttl, Duration::from_secs(86_400));
        let off = parse(&[BASE[0], BASE[1], ("CACHE_ENABLED", "false")]).unwrap();
        assert!(!off.cache.enabled);
        for (var, bad) in [("CACHE_ENABLED", "maybe"), ("CACHE_TTL_USER_SECS", "0")] {
            assert_eq!(parse(&[BASE[0], BASE[1], (var, bad)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn debug_output_hides_urls() {
        let c = parse(&BASE).unwrap();
        assert!(!format!("{c:?}").contains("secret@"));
    }
}
