//! One error type for every handler, rendered as RFC 9457 problem+json.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::services::{
    assessments, auth, cache_admin, calibrations, cat, courses, data_rights, orgs, pools, students,
    teach,
};
use crate::store::StoreError;

/// An HTTP error with a stable problem type.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    header: Option<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    /// An error with this status, problem slug and detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            header: None,
        }
    }

    /// The same error with one more response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 422: well-formed but unacceptable input.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            detail,
        )
    }

    /// 409.
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem+json body as a JSON value, for transports without an HTTP
    /// response of their own (a WebSocket frame).
    pub fn problem(&self) -> serde_json::Value {
        serde_json::to_value(self.body()).expect("a problem serialises")
    }

    fn body(&self) -> Problem<'_> {
        Problem {
            r#type: format!("urn:lectern:problem:{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

impl From<std::sync::Arc<StoreError>> for ApiError {
    fn from(e: std::sync::Arc<StoreError>) -> Self {
        Self::from(&*e)
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e.root() {
            StoreError::Corrupt(_) | StoreError::Migration(_) | StoreError::PoolSetup(_) => {
                tracing::error!(error = %e, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            }
            // Connection trouble: the client may retry; the detail names the service, not its address.
            StoreError::Redis(_) | StoreError::RedisUnavailable => {
                tracing::error!(error = %e, "redis unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service-unavailable",
                    "Redis is unavailable; retry later",
                )
            }
            StoreError::Postgres(_) | StoreError::Pool(_) => {
                tracing::error!(error = %e, "postgres unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service-unavailable",
                    "PostgreSQL is unavailable; retry later",
                )
            }
            StoreError::Shared(_) => unreachable!("root() looks through Shared"),
        }
    }
}

impl From<cat::Error> for ApiError {
    fn from(e: cat::Error) -> Self {
        use cat::Error as E;
        let detail = e.to_string();
        match e {
            E::TestNotFound(_) | E::PoolNotFound(_) => Self::not_found(detail),
            E::OrgNotFound(_) => Self::new(StatusCode::NOT_FOUND, "organization-not-found", detail),
            E::StartForOthers | E::AdminsOnly(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
            }
            E::StudentNotFound(_)
            | E::InvalidStart(_)
            | E::EmptyPool(_)
            | E::InvalidConfig(_)
            | E::UnknownOption { .. } => Self::invalid(detail),
            E::NotActive(_) => Self::conflict("test-not-active", detail),
            E::QuestionNotServed(_) => Self::conflict("question-not-served", detail),
            E::AlreadyAnswered(_) => Self::conflict("already-answered", detail),
            E::SubmitInProgress(_) => Self::conflict("submit-in-progress", detail),
            E::Contended(_) => Self::conflict("conflict", detail),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::DesignIsStaffs => Self::new(StatusCode::FORBIDDEN, "design-is-staffs", detail),
            E::AssignmentNotFound(_) => Self::not_found(detail),
            E::NotAssigned(_) => Self::new(StatusCode::FORBIDDEN, "not-assigned", detail),
            E::OutsideWindow { .. } => Self::conflict("outside-window", detail),
            E::NoAttemptsLeft(_) => Self::conflict("no-attempts-left", detail),
            E::AttemptRunning(_) => Self::conflict("attempt-in-progress", detail),
            E::AttemptTaken => Self::conflict("attempt-taken", detail),
            E::DeadlinePassed(_) => Self::conflict("deadline-passed", detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<pools::Error> for ApiError {
    fn from(e: pools::Error) -> Self {
        use pools::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(detail),
            E::NotFound(_) | E::NoOrganization(_) | E::NoVersion { .. } => Self::not_found(detail),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::IdTaken(_) => Self::conflict("conflict", detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<calibrations::Error> for ApiError {
    fn from(e: calibrations::Error) -> Self {
        use calibrations::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(detail),
            E::NotFound(_) => Self::not_found(detail),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Conflict(_) => Self::conflict("conflict", detail),
            E::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                detail,
            ),
            E::Store(s) => s.into(),
        }
    }
}

impl From<orgs::Error> for ApiError {
    fn from(e: orgs::Error) -> Self {
        use orgs::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(detail),
            E::OrgNotFound(_) => Self::new(StatusCode::NOT_FOUND, "organization-not-found", detail),
            E::ClassNotFound(_) => Self::new(StatusCode::NOT_FOUND, "class-not-found", detail),
            E::NoSuchMember { .. } => Self::new(StatusCode::NOT_FOUND, "member-not-found", detail),
            E::InvitationNotFound => {
                Self::new(StatusCode::NOT_FOUND, "invitation-not-found", detail)
            }
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::SlugTaken(_) => Self::conflict("slug-taken", detail),
            E::AlreadyMember { .. } => Self::conflict("already-member", detail),
            E::LastOrgAdmin(_) => Self::conflict("last-org-admin", detail),
            E::AlreadyTeacher { .. } => Self::conflict("already-teacher", detail),
            E::AlreadyEnrolled { .. } => Self::conflict("already-enrolled", detail),
            E::UnknownUser(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown-user", detail)
            }
            E::NotAMember { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not-a-member", detail)
            }
            E::NotStaff(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not-staff", detail),
            E::InvitationExpired => Self::new(StatusCode::GONE, "invitation-expired", detail),
            E::InvitationUsedUp => Self::new(StatusCode::GONE, "invitation-used-up", detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<assessments::Error> for ApiError {
    fn from(e: assessments::Error) -> Self {
        use assessments::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(detail),
            E::NotFound(_) => Self::not_found(detail),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<courses::Error> for ApiError {
    fn from(e: courses::Error) -> Self {
        use courses::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(detail),
            E::NotFound(_) => Self::not_found(detail),
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Stale(_) => Self::conflict("stale-version", detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<cache_admin::Error> for ApiError {
    fn from(e: cache_admin::Error) -> Self {
        use cache_admin::Error as E;
        let detail = e.to_string();
        match e {
            E::NoUser(_) | E::NoPool(_) => Self::not_found(detail),
            E::Queued => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                detail,
            ),
            E::Store(s) => s.into(),
        }
    }
}

impl From<students::Error> for ApiError {
    fn from(e: students::Error) -> Self {
        match e {
            students::Error::NotFound(_) => Self::not_found(e.to_string()),
            students::Error::Store(s) => s.into(),
        }
    }
}

impl From<teach::Error> for ApiError {
    fn from(e: teach::Error) -> Self {
        use teach::Error as E;
        let detail = e.to_string();
        match e {
            E::NotFound(_) | E::NoCourse(_) | E::NotInOrganization { .. } => {
                Self::not_found(detail)
            }
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Ended(_) => Self::conflict("session-ended", detail),
            E::Contended(_) => Self::conflict("conflict", detail),
            E::Invalid(_) => Self::invalid(detail),
            E::Store(s) => s.into(),
        }
    }
}

impl From<data_rights::Error> for ApiError {
    fn from(e: data_rights::Error) -> Self {
        use data_rights::Error as E;
        match e {
            E::Auth(e) => e.into(),
            E::Test(e) => e.into(),
            E::NotStudent => Self::invalid(e.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<auth::Error> for ApiError {
    fn from(e: auth::Error) -> Self {
        use auth::Error as E;
        let detail = e.to_string();
        match e {
            E::Unauthenticated => Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"lectern\""),
                ),
            E::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid-credentials", detail)
            }
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Throttled(wait) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-attempts", detail).with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs_f64().ceil() as u64),
                )
            }
            E::Invalid(_) => Self::invalid(detail),
            E::EmailTaken => Self::conflict("email-taken", detail),
            E::Disabled => Self::new(StatusCode::FORBIDDEN, "account-disabled", detail),
            E::NoUser(_) => Self::not_found(detail),
            E::AccountConflict(_) => Self::conflict("account-conflict", detail),
            E::UnknownProvider(_) => Self::not_found(detail),
            E::InvalidState => Self::new(StatusCode::BAD_REQUEST, "invalid-oauth-state", detail),
            E::ProviderRefused(_) => Self::new(StatusCode::BAD_REQUEST, "oauth-refused", detail),
            E::ProviderFailed(_) => {
                tracing::warn!(error = %detail, "OpenID Connect provider failed");
                Self::new(StatusCode::BAD_GATEWAY, "oauth-provider-failed", detail)
            }
            E::Store(s) => s.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let slug = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation-failed",
            _ => "bad-request",
        };
        Self::new(r.status(), slug, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", r.body_text())
    }
}
