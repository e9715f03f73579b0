//! Set-up, before the run starts and never measured: every simulated student
//! signs up as a new user (`POST /v1/users`) and logs in (`POST /v1/sessions`)
//! on its own connection, which then sends the bearer token with every request.
//! The user id the sign-up returns is kept: the student's own history,
//! proficiency and profile are read by it. With `teach`, each student then
//! accepts the run's invitation (`POST /v1/invitations/accept`, see
//! [`crate::setup`]), joining the organization whose course it is taught.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::LoadError;
use crate::client::{Conn, Failure, Reply, Target};
use crate::student::problem_summary;

/// The domain of every load-test user's email, `loadtest-<hex>@loadtest.invalid`
/// (`.invalid` is reserved: no mail can ever be delivered there).
pub const EMAIL_DOMAIN: &str = "loadtest.invalid";

/// Students signing up or logging in at once: password hashing is deliberately
/// slow, and concurrent logins from one address count against its throttle
/// until they succeed.
const CONCURRENCY: usize = 8;

#[derive(Deserialize)]
struct Registered {
    id: Uuid,
}

#[derive(Deserialize)]
struct Opened {
    token: String,
}

/// What accepting the invitation made of the student.
#[derive(Deserialize)]
struct Joined {
    organization_id: Uuid,
    role: String,
}

/// An invitation for the students to accept, and the organization it joins.
#[derive(Debug, Clone)]
pub(crate) struct Invitation {
    /// Its code.
    pub code: String,
    /// The organization of its class.
    pub organization_id: Uuid,
}

/// A signed-in student.
pub(crate) struct SignedIn {
    /// Sends the student's token.
    pub conn: Conn,
    /// The student's user id (`id` of the sign-up's answer).
    pub user_id: Uuid,
}

/// Why a set-up request did not get the expected status, in one line.
pub(crate) fn reason(
    result: Result<Reply, Failure>,
    expected: StatusCode,
    timeout: Duration,
) -> Result<Reply, String> {
    match result {
        Ok(reply) if reply.status == expected => Ok(reply),
        Ok(reply) => Err(format!(
            "status {}: {}",
            reply.status,
            problem_summary(&reply.body)
        )),
        Err(Failure::Transport(message)) => Err(message),
        Err(Failure::Timeout) => Err(format!("no response within {} ms", timeout.as_millis())),
    }
}

/// A new student account, logged in (and, given an invitation, a student of
/// its organization): a connection that sends its token.
async fn sign_in(
    target: Arc<Target>,
    invitation: Option<Arc<Invitation>>,
    timeout: Duration,
) -> Result<SignedIn, LoadError> {
    let mut conn = Conn::new(target.clone());
    let id = Uuid::new_v4().simple().to_string();
    let email = format!("loadtest-{id}@{EMAIL_DOMAIN}");
    // 32 hex digits, 122 random bits.
    let password = Uuid::new_v4().simple().to_string();

    let body = json!({
        "email": email,
        "password": password,
        "display_name": format!("Load-test student {}", &id[..8]),
    });
    let body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let sent = conn
        .send(Method::POST, "/v1/users", Some(&body), timeout)
        .await;
    let sign_up_error = |reason: String| LoadError::SignUp {
        url: target.url.clone(),
        reason,
    };
    let reply = reason(sent, StatusCode::CREATED, timeout).map_err(sign_up_error)?;
    let registered: Registered = serde_json::from_slice(&reply.body)
        .map_err(|e| sign_up_error(format!("unexpected body: {e}")))?;

    let body = serde_json::to_vec(&json!({"email": email, "password": password}))
        .expect("a JSON value serializes");
    let sent = conn
        .send(Method::POST, "/v1/sessions", Some(&body), timeout)
        .await;
    let login_error = |reason: String| LoadError::Login {
        url: target.url.clone(),
        reason,
    };
    let reply = reason(sent, StatusCode::CREATED, timeout).map_err(login_error)?;
    let opened: Opened = serde_json::from_slice(&reply.body)
        .map_err(|e| login_error(format!("unexpected body: {e}")))?;
    conn.authorize(&opened.token).map_err(login_error)?;

    if let Some(invitation) = invitation {
        let join_error = |reason: String| LoadError::Join {
            url: target.url.clone(),
            reason,
        };
        let body =
            serde_json::to_vec(&json!({"code": invitation.code})).expect("a JSON value serializes");
        let sent = conn
            .send(Method::POST, "/v1/invitations/accept", Some(&body), timeout)
            .await;
        let reply = reason(sent, StatusCode::OK, timeout).map_err(join_error)?;
        let joined: Joined = serde_json::from_slice(&reply.body)
            .map_err(|e| join_error(format!("unexpected body: {e}")))?;
        if joined.organization_id != invitation.organization_id || joined.role != "student" {
            return Err(join_error(format!(
                "joined organization {} as {:?}, invited to {} as a student",
                joined.organization_id, joined.role, invitation.organization_id
            )));
        }
    }
    Ok(SignedIn {
        conn,
        user_id: registered.id,
    })
}

/// Signs up and logs in `students` new users, a few at a time, each then
/// accepting `invitation` if given; their connections and ids, or the first
/// failure.
pub(crate) async fn sign_in_all(
    target: &Arc<Target>,
    students: usize,
    invitation: Option<Invitation>,
    timeout: Duration,
) -> Result<Vec<SignedIn>, LoadError> {
    let invitation = invitation.map(Arc::new);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for _ in 0..students {
        let (target, permits) = (target.clone(), permits.clone());
        let invitation = invitation.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            sign_in(target, invitation, timeout).await
        });
    }
    let mut conns = Vec::with_capacity(students);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(signed_in) => conns.push(signed_in?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a sign-up task failed: {e}"),
        }
    }
    Ok(conns)
}
