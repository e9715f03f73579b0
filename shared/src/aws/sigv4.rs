//! AWS Signature Version 4 for a request without a query string, written
//! out with `hmac` + `sha2` (see the parent module for why not `aws-sigv4`).
//!
//! The signed headers are `host`, `x-amz-date`, `x-amz-security-token` (with
//! temporary credentials) and whatever else the caller passes; the payload is
//! hashed whole (no `UNSIGNED-PAYLOAD`). Checked against AWS's SigV4 test
//! suite and against botocore.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Credentials;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The `Host` header exactly as sent (with the port, when not the scheme's).
    pub host: &'a str,
    /// The path exactly as sent, already percent-encoded (see [`encode_segment`]); no query.
    pub path: &'a str,
    /// Other headers sent and signed (name, value).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `Authorization`.
    pub authorization: String,
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, with temporary credentials.
    pub security_token: Option<String>,
}

/// Signs `request` for `service` in `region` at time `at`.
pub fn sign(
    credentials: &Credentials,
    region: &str,
    service: &str,
    at: OffsetDateTime,
    request: &Request<'_>,
) -> Signed {
    debug_assert!(
        !request.path.contains('?'),
        "query strings are not signed here"
    );
    let amz_date = amz_date(at);
    let date = &amz_date[..8];
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), request.host.trim().to_owned()),
        ("x-amz-date".into(), amz_date.clone()),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.extend(
        request
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), collapse_spaces(value))),
    );
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.path),
        hex(&Sha256::digest(request.body)),
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date, region, service, "aws4_request"].iter().fold(
        format!("AWS4{}", credentials.secret_access_key).into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    Signed {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
        amz_date,
        security_token: credentials.session_token.clone(),
    }
}

/// One path segment percent-encoded for a URL: everything but RFC 3986's
/// unreserved characters (an API Gateway connection id ends in `=`).
pub fn encode_segment(segment: &str) -> String {
    encode(segment, b"")
}

/// The canonical URI of a path as sent: for every service but S3, the path is
/// encoded once more (so `%3D` is signed as `%253D`, as botocore does).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    encode(path, b"/")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDD'T'HHMMSS'Z'`, in UTC.
fn amz_date(at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A header value as signed: trimmed, runs of spaces made one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends a POST signed as `signed` through `agent` (blocking: call it from
/// `spawn_blocking`): `Host` as signed, the signature's headers, `headers`
/// (every signed one besides `Host`, and any others), then `body`. Answers the status
/// and the response's text.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
    signed: &Signed,
    body: String,
) -> Result<(u16, String), ureq::Error> {
    // Sent as signed (ureq would write the same, but the signature depends on it).
    let mut request = agent.post(url).header("Host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request = request
        .header("X-Amz-Date", &signed.amz_date)
        .header("Authorization", &signed.authorization);
    if let Some(token) = &signed.security_token {
        request = request.header("X-Amz-Security-Token", token);
    }
    let mut response = request.send(body)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(session_token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    #[test]
    fn matches_the_aws_test_suite_get_vanilla() {
        // 20150830T123600Z
        let at = OffsetDateTime::from_unix_timestamp(1_440_938_160).unwrap();
        let request = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            headers: &[],
            body: b"",
        };
        let signed = sign(&example(None), "us-east-1", "service", at, &request);
        assert_eq!(signed.amz_date, "20150830T123600Z");
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(signed.security_token, None);
    }

    /// botocore 1.43.11's `apigatewaymanagementapi.post_to_connection` with
    /// these credentials at 2024-02-09T18:23:28Z signed exactly this.
    #[test]
    fn matches_botocore_on_a_post_to_a_connection() {
        let at = OffsetDateTime::from_unix_timestamp(1_707_503_008).unwrap();
        let path = format!("/live/@connections/{}", encode_segment("L0SM9cOFvHcCIhw="));
        assert_eq!(path, "/live/@connections/L0SM9cOFvHcCIhw%3D");
        let request = Request {
            method: "POST",
            host: "abc123defg.execute-api.eu-west-1.amazonaws.com",
            path: &path,
            headers: &[],
            body: br#"{"session_id":"x","text":"next"}"#,
        };
        let signed = sign(
            &example(Some("session-token-example")),
            "eu-west-1",
            "execute-api",
            at,
            &request,
        );
        assert_eq!(signed.amz_date, "20240209T182328Z");
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240209/eu-west-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=0d166405c3c248025e47ab15ef9b7ad1eb799163edcff8e3f0599c299bfb0439"
        );
        assert_eq!(
            signed.security_token.as_deref(),
            Some("session-token-example")
        );
    }

    #[test]
    fn extra_headers_are_signed_lower_case_and_sorted() {
        let at = OffsetDateTime::from_unix_timestamp(1_440_938_160).unwrap();
        let request = Request {
            method: "POST",
            host: "example.amazonaws.com",
            path: "/",
            headers: &[("Content-Type", "  application/json ")],
            body: b"{}",
        };
        let signed = sign(&example(None), "us-east-1", "service", at, &request);
        assert!(
            signed
                .authorization
                .contains("SignedHeaders=content-type;host;x-amz-date,"),
            "{}",
            signed.authorization
        );
    }
}
