//! Extractors whose rejections are problem+json.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;

/// `axum::Json`, rejecting with problem+json (400 syntax, 413 size, 415 type,
/// 422 shape, a body that is not an object included), and refusing a string
/// holding U+0000 (422): PostgreSQL's
/// `text` cannot store it, and no field of the API means to take it.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // axum's own content-type rule, asked on the headers alone (its
        // rejection is then the 415, as `axum::Json` would answer).
        let mut head = Request::new(axum::body::Body::empty());
        *head.headers_mut() = parts.headers.clone();
        if let Err(r @ JsonRejection::MissingJsonContentType(_)) =
            axum::Json::<serde::de::IgnoredAny>::from_request(head, &()).await
        {
            return Err(r.into());
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(JsonRejection::from)?;
        // Every body of the API is an object; serde would read a struct from
        // an array too (its fields in order, `[]` for all-optional ones). Not
        // JSON at all stays 400.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            let _ = axum::Json::<serde::de::IgnoredAny>::from_bytes(&bytes)?;
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        if has_nul_escape(&bytes) {
            return Err(ApiError::invalid(
                "text must not contain U+0000 (the NUL character)",
            ));
        }
        Ok(Json(value))
    }
}

/// Whether a JSON document holds a `\u0000` escape: a backslash that starts an
/// escape (preceded by an even number of backslashes) followed by `u0000`.
/// JSON has no other way to put U+0000 in a string (a raw one is a syntax error).
fn has_nul_escape(json: &[u8]) -> bool {
    let mut backslashes = 0;
    for (i, &b) in json.iter().enumerate() {
        if b == b'\\' {
            backslashes += 1;
            continue;
        }
        if backslashes % 2 == 1 && b == b'u' && json[i..].starts_with(b"u0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// `axum::extract::Query`, rejecting with problem+json.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// The `{id}` of a path, which must be a UUID; anything else names nothing (404).
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::not_found(e.body_text()))?;
        uuid_segment(&raw).map(IdPath)
    }
}

/// A path segment that must be a UUID: anything else names nothing (404).
fn uuid_segment(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("{raw:?} is not a valid id (expected a UUID)")))
}

/// The `{id}` and `{user_id}` of a path (`/v1/classes/{id}/students/{user_id}`),
/// both UUIDs; anything else names nothing (404).
pub struct IdUserPath(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdUserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((id, user)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::not_found(e.body_text()))?;
        Ok(IdUserPath(uuid_segment(&id)?, uuid_segment(&user)?))
    }
}

/// `?limit=&offset=` of a list: `limit` from 1 to `MAX` (`DEFAULT` when absent),
/// `offset` at least 0. Out of range is 422; not a number (or an unknown
/// parameter) is 400. Each list picks its own bounds in its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<const DEFAULT: i64, const MAX: i64> {
    /// Most rows to return.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    limit: Option<QueryInt<i64>>,
    offset: Option<QueryInt<i64>>,
}

/// An integer query parameter. Digits past what `T` holds are an integer out
/// of range (422), as openapi.yaml's bounded `integer` parameters say, not an
/// unparsable parameter (400): `offset=18446744073709551616` is a number.
pub struct QueryInt<T>(Result<T, String>);

impl<'de, T: std::str::FromStr> Deserialize<'de> for QueryInt<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if let Ok(value) = raw.parse() {
            return Ok(QueryInt(Ok(value)));
        }
        let digits = raw.strip_prefix(['-', '+']).unwrap_or(&raw);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(QueryInt(Err(raw)));
        }
        Err(serde::de::Error::custom(format!(
            "{raw:?} is not an integer"
        )))
    }
}

impl<T> QueryInt<T> {
    /// The value, or 422 naming the parameter when it is out of range.
    pub fn get(self, name: &str) -> Result<T, ApiError> {
        self.0
            .map_err(|raw| ApiError::invalid(format!("{name} {raw} is out of range")))
    }
}

impl<S: Send + Sync, const DEFAULT: i64, const MAX: i64> FromRequestParts<S>
    for Page<DEFAULT, MAX>
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawPage>::from_request_parts(parts, state).await?;
        let page = Page {
            limit: raw
                .limit
                .map(|l| l.get("limit"))
                .transpose()?
                .unwrap_or(DEFAULT),
            offset: raw
                .offset
                .map(|o| o.get("offset"))
                .transpose()?
                .unwrap_or(0),
        };
        if !(1..=MAX).contains(&page.limit) || page.offset < 0 {
            return Err(ApiError::invalid(format!(
                "limit must be from 1 to {MAX} and offset at least 0"
            )));
        }
        Ok(page)
    }
}

/// Whether the client asks for CSV: its `Accept` header names `text/csv` and
/// does not put `first` (the route's other form) before it.
pub fn wants_csv(headers: &axum::http::HeaderMap, first: &str) -> bool {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("text/csv") && !accept.starts_with(first)
}

#[cfg(test)]
mod tests {
    use super::has_nul_escape;

    #[test]
    fn nul_escapes_are_found_and_nothing_else() {
        for json in [
            r#"{"a": "\u0000"}"#,
            r#"{"a": "x\u0000y"}"#,
            r#"{"a": "\\\u0000"}"#,
            r#"{"\u0000": 1}"#,
            r#"["ok", "\u0000"]"#,
            r#"{"a": "\u00000"}"#,
        ] {
            assert!(has_nul_escape(json.as_bytes()), "{json}");
        }
        for json in [
            r#"{"a": "\\u0000"}"#,
            r#"{"a": "\\\\u0000"}"#,
            r#"{"a": "\u0001 u0000"}"#,
            r#"{"a": "\u2000"}"#,
            r#"{"a": "u0000"}"#,
        ] {
            assert!(!has_nul_escape(json.as_bytes()), "{json}");
        }
    }
}
