//! The API key from Secrets Manager, through the AWS Parameters and Secrets
//! Lambda Extension (`GET {endpoint}/secretsmanager/get?secretId=...` with the
//! session token in `X-Aws-Parameters-Secrets-Token`).
//!
//! Nothing here puts the secret in an error or a log line.

use serde::Deserialize;

use super::Error;

/// The header the extension checks against the function's `AWS_SESSION_TOKEN`.
const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// The part of the extension's reply (Secrets Manager's `GetSecretValue`) we read.
#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// Reads the key stored in secret `arn` through the extension at `endpoint`.
pub(super) async fn fetch(
    agent: &ureq::Agent,
    endpoint: &str,
    arn: &str,
    session_token: &str,
) -> Result<String, Error> {
    let query = serde_urlencoded::to_string([("secretId", arn)]).expect("a string encodes");
    let url = format!("{endpoint}/secretsmanager/get?{query}");
    let (agent, token) = (agent.clone(), session_token.to_owned());
    let answer = tokio::task::spawn_blocking(move || {
        let mut response = agent
            .get(&url)
            .header(TOKEN_HEADER, &token)
            .header("Accept", "application/json")
            .call()?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok::<_, ureq::Error>((status, body))
    })
    .await
    .map_err(|e| Error::Secret(format!("the lookup did not finish ({e})")))?;
    let (status, body) = answer.map_err(|e| match e {
        ureq::Error::Timeout(_) => Error::Secret("the secrets extension timed out".into()),
        e => Error::Secret(format!("the secrets extension is unreachable ({e})")),
    })?;
    if status != 200 {
        // The body may echo the request; the status says enough.
        return Err(Error::Secret(format!(
            "the secrets extension answered {status}"
        )));
    }
    let reply: Reply = serde_json::from_str(&body)
        .map_err(|_| Error::Secret("the secrets extension's reply is not JSON".into()))?;
    let secret = reply
        .secret_string
        .ok_or_else(|| Error::Secret("the secret has no SecretString".into()))?;
    parse_secret(&secret)
}

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
