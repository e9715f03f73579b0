//! Extractors whose rejections are problem+json.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;

/// `axum::Json`, rejecting with problem+json (400 syntax, 413 size, 415 type, 422 shape).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
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
