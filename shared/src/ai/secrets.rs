//! The API key in a Secrets Manager secret (read through
//! [`crate::aws::secrets::Extension`]): the key itself, or JSON with `api_key`.
//!
//! Nothing here puts the secret in an error or a log line.

use serde::Deserialize;

use super::Error;

/// The key in a secret string: the key itself, or a JSON object with an `api_key` field.
pub(super) fn parse_secret(secret: &str) -> Result<String, Error> {
    let secret = secret.trim();
    let key = if secret.starts_with('{') {
        #[derive(Deserialize)]
        struct Stored {
            api_key: Option<String>,
        }
        let stored: Stored = serde_json::from_str(secret)
            .map_err(|_| Error::Secret("the secret looks like JSON but does not parse".into()))?;
        stored
            .api_key
            .ok_or_else(|| Error::Secret("the secret's JSON has no api_key string".into()))?
            .trim()
            .to_owned()
    } else {
        secret.to_owned()
    };
    if key.is_empty() {
        return Err(Error::Secret("the secret holds an empty key".into()));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Secret(
            "the key holds spaces or control characters".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_secrets_give_the_key() {
        assert_eq!(parse_secret("sk-abc123").unwrap(), "sk-abc123");
        assert_eq!(parse_secret("  sk-abc123\n").unwrap(), "sk-abc123");
        assert_eq!(
            parse_secret(r#"{"api_key": "sk-json-1", "other": 1}"#).unwrap(),
            "sk-json-1"
        );
        assert_eq!(
            parse_secret(" {\"api_key\":\" sk-json-2 \"}").unwrap(),
            "sk-json-2"
        );
    }

    #[test]
    fn bad_secrets_fail_without_showing_the_secret() {
        for bad in [
            "",
            "   ",
            r#"{"apikey": "sk-hidden-1"}"#,
            r#"{"api_key": ""}"#,
            r#"{"api_key": 5, "x": "sk-hidden-2"}"#,
            r#"{"api_key": "sk-hidden-3""#,
            "sk-hidden 4",
        ] {
            let e = parse_secret(bad).unwrap_err();
            assert!(matches!(e, Error::Secret(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("hidden"), "{e}");
        }
    }
}
