//! `Idempotency-Key` on the routes that create (after the IETF httpapi
//! idempotency-key draft): a retry with the same key and the same request
//! gets the first response again, with `Idempotent-Replayed: true`.
//!
//! The layer runs inside authentication (the scope is the caller). Redis
//! keeps, for 24 h, the request's hash and, once it succeeded, its response
//! (sign-up: only the account's id; the profile is read again from
//! PostgreSQL). The row the first request created carries the scoped key
//! under a UNIQUE constraint, so when Redis forgot (flushed, failed over,
//! unreachable) a retry finds that row and replays from it instead of
//! creating a second one. Only successes are kept: a request that failed
//! gives its claim up, and its retry runs afresh.

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ApiError, MAX_BODY_BYTES};
use crate::app::App;
use crate::digest::sha256_hex;
use crate::services::auth::{Caller, password};
use crate::services::{assessments, cat, pools};
use crate::store::idempotency::{self as records, Claim, Outcome, Record, Table};
use crate::store::{pools as pool_store, users};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header marking a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// A future the replay functions return.
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The created resource as its creating route answers it, read again.
type Represent =
    for<'a> fn(&'a App, Option<&'a Caller>, Uuid) -> Boxed<'a, Result<serde_json::Value, ApiError>>;

/// Whether a sign-up retry's body carries the account's password.
type Verify = for<'a> fn(&'a App, Uuid, &'a [u8]) -> Boxed<'a, Result<bool, ApiError>>;

/// A route that takes the header. Each function registers its own (see
/// [`super::finish_creating`]), so a function links the replay code of its
/// own routes only (the Lambda size budget).
pub struct Creating {
    path: &'static str,
    /// Its name in Redis keys.
    name: &'static str,
    table: Table,
    represent: Represent,
    verify: Option<Verify>,
}

/// `POST /v1/tests` (the `start` function).
pub const TESTS: Creating = Creating {
    path: "/v1/tests",
    name: "tests",
    table: Table::Tests,
    represent: |app, caller, id| {
        Box::pin(async move {
            let caller = caller.ok_or_else(|| gone(id))?;
            Ok(json(cat::started_again(app, caller, id).await?))
        })
    },
    verify: None,
};

/// `POST /v1/users` (sign-up, the `auth` function).
pub const USERS: Creating = Creating {
    path: "/v1/users",
    name: "users",
    table: Table::Users,
    represent: |app, _, id| {
        Box::pin(async move {
            let user = users::get(app.db(), id).await?.ok_or_else(|| gone(id))?;
            Ok(json(user))
        })
    },
    verify: Some(|app, id, body| {
        Box::pin(async move {
            let sent = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|b| {
                    b.get("password")
                        .and_then(|p| p.as_str())
                        .map(str::to_owned)
                });
            let Some(sent) = sent else { return Ok(false) };
            let stored = records::password_hash(app.db(), id).await?;
            Ok(password::verify(&sent, stored).await)
        })
    }),
};

/// `POST /v1/pools` (the `pools` function).
pub const POOLS: Creating = Creating {
    path: "/v1/pools",
    name: "pools",
    table: Table::Pools,
    represent: |app, _, id| {
        Box::pin(async move {
            let pool = pool_store::summary_of(app.db(), id)
                .await?
                .ok_or_else(|| gone(id))?;
            Ok(json(pools::PoolView::from(pool)))
        })
    },
    verify: None,
};

/// `POST /v1/assessments` (the `assessments` function).
pub const ASSESSMENTS: Creating = Creating {
    path: "/v1/assessments",
    name: "assessments",
    table: Table::Assessments,
    represent: |app, caller, id| {
        Box::pin(async move {
            let caller = caller.ok_or_else(|| gone(id))?;
            Ok(json(
                assessments::get(app, caller.user_id, id, Some(1)).await?,
            ))
        })
    },
    verify: None,
};

/// `POST /v1/assignments` (the `assessments` function).
pub const ASSIGNMENTS: Creating = Creating {
    path: "/v1/assignments",
    name: "assignments",
    table: Table::Assignments,
    represent: |app, caller, id| {
        Box::pin(async move {
            let caller = caller.ok_or_else(|| gone(id))?;
            Ok(json(
                assessments::assignment(app, caller.user_id, id).await?,
            ))
        })
    },
    verify: None,
};

/// Every creating route (the local server).
pub const ALL: &[Creating] = &[TESTS, USERS, POOLS, ASSESSMENTS, ASSIGNMENTS];

fn json(view: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(view).expect("a view serialises")
}

fn gone(id: Uuid) -> ApiError {
    ApiError::from(crate::store::StoreError::Corrupt(format!(
        "row {id} of an idempotent request is gone"
    )))
}

/// The client's key, if the request has a valid one: 1–255 printable ASCII
/// characters (`Err`: 422).
fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-idempotency-key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The fingerprint of a request: SHA-256 of its body; for sign-up, of the
/// body without `password` (no hash of a password is kept anywhere but the
/// account's argon2id one: a replay checks the password against that).
fn fingerprint(table: Table, body: &[u8]) -> Vec<u8> {
    if table == Table::Users
        && let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(body)
    {
        fields.remove("password");
        let canonical = serde_json::to_vec(&fields).expect("JSON serialises");
        return Sha256::digest(&canonical).to_vec();
    }
    Sha256::digest(body).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "this Idempotency-Key was used with a different request; use a new key",
    )
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency-in-progress",
        "the first request with this Idempotency-Key is still being processed; retry later",
    )
}

/// The layer (a `route_layer` inside authentication): acts on the creating
/// POSTs that carry the header, passes everything else through.
pub async fn guard(
    State((app, creating)): State<(App, &'static [Creating])>,
    req: Request,
    next: Next,
) -> Response {
    let route = (req.method() == Method::POST)
        .then(|| req.extensions().get::<MatchedPath>())
        .flatten()
        .and_then(|m| creating.iter().find(|c| c.path == m.as_str()));
    let Some(route) = route else {
        return next.run(req).await;
    };
    let (name, table) = (route.name, route.table);
    let key = match key_of(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let caller = req.extensions().get::<Caller>().cloned();
    let scope = match (table, &caller) {
        (Table::Users, _) => "sign-up".to_owned(),
        (_, Some(caller)) => caller.user_id.to_string(),
        // Authentication refuses these before here.
        (_, None) => return next.run(req).await,
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    };
    let hash = fingerprint(table, &bytes);
    let claim = Claim {
        key: format!("{scope}/{key}"),
        hash: hash.clone(),
    };
    let ctx = Ctx {
        app: &app,
        route,
        caller: caller.as_ref(),
        body: &bytes,
        claim: &claim,
    };
    let redis_key = app
        .redis()
        .keys()
        .idempotency(name, &scope, &sha256_hex(&key));
    let hash_hex = hex(&hash);
    let claimed = match records::claim(app.redis(), &redis_key, &hash_hex).await {
        Ok(None) => true,
        Ok(Some(Some(record))) if record.hash != hash_hex => return reused().into_response(),
        Ok(Some(Some(Record {
            done: Some(outcome),
            ..
        }))) => {
            return match ctx.replay(&outcome).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
        }
        Ok(Some(_)) => return in_progress().into_response(),
        Err(e) => {
            // PostgreSQL's constraint alone keeps one row per key meanwhile.
            tracing::warn!(error = %e, "Redis unavailable; Idempotency-Key checked in PostgreSQL only");
            false
        }
    };
    // Redis may have forgotten a request PostgreSQL remembers.
    match ctx.replay_row().await {
        Ok(None) => {}
        Ok(Some((outcome, response))) => {
            if claimed {
                ctx.keep(&redis_key, &hash_hex, outcome).await;
            }
            return response;
        }
        Err(e) => {
            if claimed {
                let _ = records::release(app.redis(), &redis_key).await;
            }
            return e.into_response();
        }
    }
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    let response = records::with_claim(claim.clone(), next.run(req)).await;
    if response.status().is_success() {
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let location = parts
            .headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let id = json
            .as_ref()
            .and_then(|j| j.get(id_field(table)))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok());
        let outcome = Outcome {
            status: parts.status.as_u16(),
            location,
            // Sign-up's profile (an email) stays in PostgreSQL.
            body: if table == Table::Users { None } else { json },
            id,
        };
        if claimed {
            ctx.keep(&redis_key, &hash_hex, outcome).await;
        }
        return Response::from_parts(parts, Body::from(body));
    }
    // Refused: maybe because a concurrent request with the key (while Redis
    // was out of reach) created the row first; then that is the answer.
    if let Ok(Some((_, replayed))) = ctx.replay_row().await {
        return replayed;
    }
    if claimed && let Err(e) = records::release(app.redis(), &redis_key).await {
        tracing::warn!(error = %e, "Idempotency-Key claim not released; it expires");
    }
    response
}

/// The field of a creating route's response naming the row created.
fn id_field(table: Table) -> &'static str {
    match table {
        Table::Tests => "test_id",
        Table::Pools => "pool_id",
        Table::Users | Table::Assessments | Table::Assignments => "id",
    }
}

struct Ctx<'a> {
    app: &'a App,
    route: &'a Creating,
    caller: Option<&'a Caller>,
    body: &'a [u8],
    claim: &'a Claim,
}

impl Ctx<'_> {
    /// Records the first response in Redis for the rest of the TTL.
    async fn keep(&self, redis_key: &str, hash_hex: &str, outcome: Outcome) {
        let record = Record {
            hash: hash_hex.to_owned(),
            done: Some(outcome),
        };
        if let Err(e) = records::complete(self.app.redis(), redis_key, &record).await {
            tracing::warn!(error = %e, "Idempotency-Key response not kept in Redis");
        }
    }

    /// The response to replay from what Redis kept.
    async fn replay(&self, outcome: &Outcome) -> Result<Response, ApiError> {
        let body = match (&outcome.body, outcome.id) {
            (Some(body), _) => body.clone(),
            (None, Some(id)) => self.representation(id).await?,
            (None, None) => return Err(in_progress()),
        };
        if !self.password_matches(outcome.id).await? {
            return Err(reused());
        }
        Ok(replayed(outcome.status, outcome.location.as_deref(), &body))
    }

    /// The row created with this key, replayed (`None`: no such row).
    async fn replay_row(&self) -> Result<Option<(Outcome, Response)>, ApiError> {
        let Some((id, hash)) =
            records::created_with(self.app.db(), self.route.table, &self.claim.key).await?
        else {
            return Ok(None);
        };
        if hash.as_deref() != Some(self.claim.hash.as_slice()) {
            return Err(reused());
        }
        let body = self.representation(id).await?;
        let outcome = Outcome {
            status: StatusCode::CREATED.as_u16(),
            location: Some(location(self.route.table, id)),
            body: (self.route.table != Table::Users).then(|| body.clone()),
            id: Some(id),
        };
        if !self.password_matches(Some(id)).await? {
            return Err(reused());
        }
        let response = replayed(outcome.status, outcome.location.as_deref(), &body);
        Ok(Some((outcome, response)))
    }

    /// Whether sign-up's retry carries the password the account was made with
    /// (true for the other routes).
    async fn password_matches(&self, id: Option<Uuid>) -> Result<bool, ApiError> {
        match (self.route.verify, id) {
            (None, _) => Ok(true),
            (Some(_), None) => Ok(false),
            (Some(verify), Some(id)) => verify(self.app, id, self.body).await,
        }
    }

    /// The created resource as the creating route answers it, read again.
    async fn representation(&self, id: Uuid) -> Result<serde_json::Value, ApiError> {
        (self.route.represent)(self.app, self.caller, id).await
    }
}

fn location(table: Table, id: Uuid) -> String {
    let collection = match table {
        Table::Tests => "tests",
        Table::Users => "users",
        Table::Pools => "pools",
        Table::Assessments => "assessments",
        Table::Assignments => "assignments",
    };
    format!("/v1/{collection}/{id}")
}

fn replayed(status: u16, location: Option<&str>, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::LOCATION, l);
    }
    response
}
