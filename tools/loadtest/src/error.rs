//! The errors that stop a run before it starts. Errors of single requests
//! during a run do not stop it: they are counted in the [`Report`](crate::Report).

/// Why a load test could not run. Each one displays as a single line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The base URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The server cannot be reached at all.
    #[error(
        "cannot connect to {url}: {reason} (is the server running? `infra/local.sh serve` or `lectern-local`)"
    )]
    Connect {
        /// The base URL.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// A simulated student could not sign up (`POST /v1/users`).
    #[error("cannot sign up a load-test student (POST {url}/v1/users): {reason}")]
    SignUp {
        /// The base URL.
        url: String,
        /// The status and what the server said, or the transport error.
        reason: String,
    },
    /// A simulated student that signed up could not log in (`POST /v1/sessions`).
    #[error("cannot log in a load-test student (POST {url}/v1/sessions): {reason}")]
    Login {
        /// The base URL.
        url: String,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// With `teach`: the admin could not create the run's organization
    /// (`POST /v1/organizations`).
    #[error(
        "cannot create the load-test organization as the admin (POST {url}/v1/organizations): {reason}"
    )]
    Organization {
        /// The base URL.
        url: String,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// With `teach`: the admin could not create the class of the run's
    /// organization (`POST /v1/organizations/{id}/classes`).
    #[error(
        "cannot create the load-test class (POST {url}/v1/organizations/{organization_id}/classes): {reason}"
    )]
    Class {
        /// The base URL.
        url: String,
        /// The run's organization.
        organization_id: uuid::Uuid,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// With `teach`: the admin could not import the course (`POST /v1/courses`).
    #[error("cannot import the load-test course (POST {url}/v1/courses): {reason}")]
    Course {
        /// The base URL.
        url: String,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// With `teach`: the admin could not invite the students to the class
    /// (`POST /v1/classes/{id}/invitations`).
    #[error(
        "cannot create the load-test invitation (POST {url}/v1/classes/{class_id}/invitations): {reason}"
    )]
    Invitation {
        /// The base URL.
        url: String,
        /// The run's class.
        class_id: uuid::Uuid,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// With `teach`: a simulated student could not accept the invitation
    /// (`POST /v1/invitations/accept`), so it cannot use the course.
    #[error(
        "a load-test student cannot accept the invitation (POST {url}/v1/invitations/accept): {reason}"
    )]
    Join {
        /// The base URL.
        url: String,
        /// The status and what the server said, the transport error, or an
        /// unexpected body.
        reason: String,
    },
    /// `GET /v1/pools` failed, so no default pool could be chosen.
    #[error("cannot list the pools (GET {url}/v1/pools): {reason}")]
    Pools {
        /// The base URL.
        url: String,
        /// The status or transport error and what the server said.
        reason: String,
    },
    /// A chaos run could not make or undo a fault, start its server, or
    /// read PostgreSQL afterwards.
    #[error("chaos: {0}")]
    Chaos(String),
    /// The server has no pool and none was given.
    #[error(
        "no pool at {url}: GET /v1/pools is empty; create one (POST /v1/pools, as a teacher or admin), start the server with `infra/local.sh serve` (it loads a demo pool), or pass --pool"
    )]
    NoPool {
        /// The base URL.
        url: String,
    },
}
