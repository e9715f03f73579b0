//! `AI_*` settings: where the chat-completions API is, which models (chat and
//! embeddings), the key (or where to read it), and how patiently to call.

use std::time::Duration;

use super::Extension;
use crate::env::{ConfigError, checked_url, number};

/// The model used when a request names none and `AI_MODEL` is unset.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// The embedding model used when `AI_EMBEDDING_MODEL` is unset.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// How lectern reaches an OpenAI-compatible chat-completions API.
///
/// `Debug` never shows the API key or the AWS session token.
#[derive(Clone)]
pub struct AiConfig {
    /// Base URL of the API without a trailing slash (`https://api.openai.com/v1`);
    /// requests go to `{base_url}/chat/completions` and `{base_url}/embeddings`.
    /// `None`: AI is off.
    pub base_url: Option<String>,
    /// Model used when a request names none.
    pub model: String,
    /// Model asked for embeddings (`{base_url}/embeddings`).
    pub embedding_model: String,
    /// The API key itself (`AI_API_KEY`).
    pub api_key: Option<String>,
    /// Secrets Manager secret holding the key (`AI_API_KEY_SECRET_ARN`), read
    /// through the Lambda extension at first use when `api_key` is unset.
    pub api_key_secret_arn: Option<String>,
    /// Where that secret is read (the Parameters and Secrets extension).
    pub secrets: Extension,
    /// How long one upstream call may take, the reply's body included.
    pub timeout: Duration,
    /// Retries after a 429, a 5xx, a timeout or a connection error.
    pub max_retries: u32,
    /// Backoff before retry `n` (from 0) is up to `retry_base * 2^n` (full jitter).
    pub retry_base: Duration,
}

impl Default for AiConfig {
    /// AI off, every other setting at its default.
    fn default() -> Self {
        Self {
            base_url: None,
            model: DEFAULT_MODEL.into(),
            embedding_model: DEFAULT_EMBEDDING_MODEL.into(),
            api_key: None,
            api_key_secret_arn: None,
            secrets: Extension::default(),
            timeout: Duration::from_secs(30),
            max_retries: 2,
            retry_base: Duration::from_millis(250),
        }
    }
}

impl std::fmt::Debug for AiConfig {
    // The key and the session token stay out of every log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("AiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("api_key", &redacted(&self.api_key))
            .field("api_key_secret_arn", &self.api_key_secret_arn)
            .field("secrets", &self.secrets)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

impl AiConfig {
    /// Reads the `AI_*` settings through `get` (the environment, or a map in tests).
    /// Blank values count as unset.
    ///
    /// `AI_BASE_URL` must be https (http only on loopback, for tests); when it is
    /// set, exactly one of `AI_API_KEY` and `AI_API_KEY_SECRET_ARN` must be, and
    /// the latter needs `AWS_SESSION_TOKEN` (Lambda always sets it).
    pub fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| get(var).filter(|v| !v.trim().is_empty());
        let bad = |var, problem: &str| ConfigError {
            var,
            problem: problem.into(),
        };
        let base_url = get("AI_BASE_URL")
            .map(|raw| checked_url(&raw).map_err(|p| bad("AI_BASE_URL", &p)))
            .transpose()?;
        let model = get("AI_MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_MODEL.into());
        if model.chars().any(char::is_whitespace) {
            return Err(bad("AI_MODEL", "must not contain spaces"));
        }
        let embedding_model = get("AI_EMBEDDING_MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.into());
        if embedding_model.chars().any(char::is_whitespace) {
            return Err(bad("AI_EMBEDDING_MODEL", "must not contain spaces"));
        }
        let api_key = get("AI_API_KEY").map(|k| k.trim().to_owned());
        let api_key_secret_arn = get("AI_API_KEY_SECRET_ARN").map(|a| a.trim().to_owned());
        let secrets = Extension::from_lookup(&get)?;
        if base_url.is_some() {
            match (&api_key, &api_key_secret_arn) {
                (None, None) => {
                    return Err(bad(
                        "AI_API_KEY",
                        "AI_API_KEY or AI_API_KEY_SECRET_ARN is required when AI_BASE_URL is set",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "AI_API_KEY_SECRET_ARN",
                        "set AI_API_KEY or AI_API_KEY_SECRET_ARN, not both",
                    ));
                }
                (None, Some(_)) => secrets.require_token("AI_API_KEY_SECRET_ARN")?,
                _ => {}
            }
        }
        Ok(Self {
            base_url,
            model,
            embedding_model,
            api_key,
            api_key_secret_arn,
            secrets,
            timeout: Duration::from_millis(number(&get, "AI_TIMEOUT_MS", 30_000, 1..=300_000)?),
            max_retries: number(&get, "AI_MAX_RETRIES", 2, 0..=10)? as u32,
            retry_base: Duration::from_millis(number(&get, "AI_RETRY_BASE_MS", 250, 1..=60_000)?),
        })
    }

    /// Whether an API is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.base_url.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<AiConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AiConfig::from_lookup(&|k| map.get(k).cloned())
    }

    const ON: [(&str, &str); 2] = [
        ("AI_BASE_URL", "https://api.openai.com/v1"),
        ("AI_API_KEY", "sk-test-0123456789"),
    ];

    #[test]
    fn unset_means_off_with_defaults() {
        let c = parse(&[]).unwrap();
        assert!(!c.is_enabled());
        assert_eq!(c.model, "gpt-4o-mini");
        assert_eq!(c.embedding_model, "text-embedding-3-small");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.max_retries, 2);
        assert_eq!(c.retry_base, Duration::from_millis(250));
        assert_eq!(c.secrets.endpoint, "http://localhost:2773");
        let d = AiConfig::default();
        assert_eq!(
            (
                d.model,
                d.embedding_model,
                d.timeout,
                d.max_retries,
                d.retry_base,
                d.secrets.endpoint
            ),
            (
                c.model,
                c.embedding_model,
                c.timeout,
                c.max_retries,
                c.retry_base,
                c.secrets.endpoint
            )
        );
        // Blank counts as unset.
        assert!(!parse(&[("AI_BASE_URL", "  ")]).unwrap().is_enabled());
    }

    #[test]
    fn base_url_needs_https_except_on_loopback() {
        let c = parse(&ON).unwrap();
        assert_eq!(c.base_url.as_deref(), Some("https://api.openai.com/v1"));
        let with = |url| parse(&[("AI_BASE_URL", url), ON[1]]);
        assert_eq!(
            with("https://api.example.com/v1/")
                .unwrap()
                .base_url
                .as_deref(),
            Some("https://api.example.com/v1")
        );
        for ok in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:1234/v1/",
            "http://[::1]:9/v1",
            "http://localhost",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.openai.com/v1",
            "http://localhost.evil.example/v1",
            "http://127.0.0.1.evil.example/v1",
            "ftp://x/v1",
            "api.openai.com/v1",
            "https://",
            "https://user:pw@api.example.com/v1",
            "https://api.example.com/v1?x=1",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.var, "AI_BASE_URL", "{bad}");
        }
    }

    #[test]
    fn numbers_are_bounded() {
        let c = parse(&[
            ON[0],
            ON[1],
            ("AI_TIMEOUT_MS", "300000"),
            ("AI_MAX_RETRIES", "0"),
            ("AI_RETRY_BASE_MS", "1"),
            ("AI_MODEL", " gpt-4.1 "),
            ("AI_EMBEDDING_MODEL", " text-embedding-3-large "),
        ])
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.max_retries, 0);
        assert_eq!(c.retry_base, Duration::from_millis(1));
        assert_eq!(c.model, "gpt-4.1");
        assert_eq!(c.embedding_model, "text-embedding-3-large");
        for (var, bad) in [
            ("AI_TIMEOUT_MS", "0"),
            ("AI_TIMEOUT_MS", "300001"),
            ("AI_MAX_RETRIES", "11"),
            ("AI_MAX_RETRIES", "-1"),
            ("AI_RETRY_BASE_MS", "0"),
            ("AI_RETRY_BASE_MS", "60001"),
            ("AI_RETRY_BASE_MS", "fast"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "70000"),
        ] {
            let e = parse(&[ON[0], ON[1], (var, bad)]).unwrap_err();
            assert_eq!(e.var, var, "{bad}");
            assert!(e.to_string().contains("whole number"), "{e}");
        }
        let e = parse(&[ON[0], ON[1], ("AI_MODEL", "gpt 4")]).unwrap_err();
        assert_eq!(e.var, "AI_MODEL");
        let e = parse(&[ON[0], ON[1], ("AI_EMBEDDING_MODEL", "text embedding")]).unwrap_err();
        assert_eq!(e.var, "AI_EMBEDDING_MODEL");
        // Blank counts as unset.
        let c = parse(&[ON[0], ON[1], ("AI_EMBEDDING_MODEL", " ")]).unwrap();
        assert_eq!(c.embedding_model, DEFAULT_EMBEDDING_MODEL);
    }

    #[test]
    fn a_key_source_is_required_when_on() {
        let e = parse(&[ON[0]]).unwrap_err();
        assert_eq!(e.var, "AI_API_KEY");
        let arn = (
            "AI_API_KEY_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ai-key-AbCdEf",
        );
        let e = parse(&[ON[0], ON[1], arn]).unwrap_err();
        assert_eq!(e.var, "AI_API_KEY_SECRET_ARN");
        let e = parse(&[ON[0], arn]).unwrap_err();
        assert_eq!(e.var, "AWS_SESSION_TOKEN");
        let c = parse(&[
            ON[0],
            arn,
            ("AWS_SESSION_TOKEN", "session-token-xyz"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999"),
        ])
        .unwrap();
        assert_eq!(c.secrets.endpoint, "http://localhost:2999");
        assert_eq!(c.api_key, None);
        let c = parse(&[
            ON[0],
            arn,
            ("AWS_SESSION_TOKEN", "t"),
            ("AI_SECRETS_ENDPOINT", "http://127.0.0.1:4000/"),
        ])
        .unwrap();
        assert_eq!(c.secrets.endpoint, "http://127.0.0.1:4000");
        let e = parse(&[("AI_SECRETS_ENDPOINT", "http://evil.example")]).unwrap_err();
        assert_eq!(e.var, "AI_SECRETS_ENDPOINT");
        // Off: no key needed.
        assert!(parse(&[arn]).is_ok());
    }

    #[test]
    fn debug_hides_the_key_and_the_session_token() {
        let c = parse(&[
            ("AI_BASE_URL", "https://api.example.com/v1"),
            ("AI_API_KEY", "sk-very-secret-key"),
            ("AWS_SESSION_TOKEN", "session-token-secret"),
        ])
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("session-token"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("https://api.example.com/v1"), "{shown}");
    }
}
