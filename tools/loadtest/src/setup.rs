//! Set-up of a `teach` run, before the students sign up and never measured:
//! as the admin ([`LoadConfig::admin_token`](crate::LoadConfig::admin_token)),
//! a new organization `loadtest-<hex>` (`POST /v1/organizations`), a class in
//! it (`POST /v1/organizations/{id}/classes`), the course [`COURSE_KEY`] of
//! one module with one sub-topic of `segments` segments (`POST /v1/courses`),
//! and an invitation to the class with one use per student (`POST
//! /v1/classes/{id}/invitations`). Each student accepts it after logging in
//! ([`crate::account`]), which makes it a student of the organization: only
//! its members may hold sessions on the course.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::LoadError;
use crate::account::reason;
use crate::client::{Conn, Target};

/// The key of the load-test course in its organization.
pub const COURSE_KEY: &str = "loadtest";

/// How long the invitation stays valid: the students accept it while they
/// sign in, before the run starts.
const INVITATION_SECS: u64 = 3600;

/// What the set-up made.
#[derive(Debug, Clone)]
pub(crate) struct Course {
    /// The organization.
    pub organization_id: Uuid,
    /// The course, whose sessions the students hold.
    pub id: Uuid,
    /// The invitation's code, for the students to accept.
    pub invitation: String,
}

/// A new organization, class or course: its `id`.
#[derive(Deserialize)]
struct Created {
    id: Uuid,
}

/// A new invitation: its code.
#[derive(Deserialize)]
struct Issued {
    code: String,
}

/// The course: one module, one sub-topic of `segments` short Markdown segments.
fn course_doc(segments: u32) -> Value {
    let segments: Vec<Value> = (1..=segments)
        .map(|n| {
            json!({
                "title": format!("Part {n}"),
                "text": format!(
                    "## Fractions, part {n}\n\nA *fraction* names equal parts of a whole: \
                     in **3/4** the whole is cut into 4 equal parts and 3 of them are taken.\n\n\
                     - Load-test segment {n} of {segments}."
                ),
            })
        })
        .collect();
    json!({
        "key": COURSE_KEY,
        "title": "Load test: fractions",
        "modules": [{
            "title": "Fractions",
            "sub_topics": [{ "title": "What a fraction is", "segments": segments }],
        }],
    })
}

/// `POST path` with `body` as the admin, expecting 201; its body as `T`, or
/// why not in one line.
async fn create<T: for<'de> Deserialize<'de>>(
    conn: &mut Conn,
    path: &str,
    body: Value,
    timeout: Duration,
) -> Result<T, String> {
    let body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let sent = conn.send(Method::POST, path, Some(&body), timeout).await;
    let reply = reason(sent, StatusCode::CREATED, timeout)?;
    serde_json::from_slice(&reply.body).map_err(|e| format!("unexpected body: {e}"))
}

/// Makes the organization, class, course and invitation of a `teach` run as
/// the admin whose token is `token`; the first failure stops it.
pub(crate) async fn set_up(
    target: &Arc<Target>,
    token: &str,
    segments: u32,
    students: usize,
    timeout: Duration,
) -> Result<Course, LoadError> {
    let url = target.url.clone();
    let mut conn = Conn::new(target.clone());
    // The token is only ever put in a sensitive header, never in a message.
    conn.authorize(token).map_err(|_| {
        LoadError::InvalidConfig("the admin token is not a valid header value".into())
    })?;

    let hex = Uuid::new_v4().simple().to_string();
    let body = json!({
        "name": format!("Load test {}", &hex[..8]),
        "slug": format!("loadtest-{hex}"),
    });
    let organization: Created = create(&mut conn, "/v1/organizations", body, timeout)
        .await
        .map_err(|reason| LoadError::Organization {
            url: url.clone(),
            reason,
        })?;
    let organization_id = organization.id;

    let path = format!("/v1/organizations/{organization_id}/classes");
    let body = json!({ "name": "Load-test students" });
    let class: Created = create(&mut conn, &path, body, timeout)
        .await
        .map_err(|reason| LoadError::Class {
            url: url.clone(),
            organization_id,
            reason,
        })?;

    let body = json!({ "organization_id": organization_id, "course": course_doc(segments) });
    let course: Created = create(&mut conn, "/v1/courses", body, timeout)
        .await
        .map_err(|reason| LoadError::Course {
            url: url.clone(),
            reason,
        })?;

    let path = format!("/v1/classes/{}/invitations", class.id);
    let body = json!({ "max_uses": students, "expires_in_secs": INVITATION_SECS });
    let issued: Issued = create(&mut conn, &path, body, timeout)
        .await
        .map_err(|reason| LoadError::Invitation {
            url: url.clone(),
            class_id: class.id,
            reason,
        })?;

    Ok(Course {
        organization_id,
        id: course.id,
        invitation: issued.code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_course_has_one_sub_topic_of_the_segments() {
        let doc = course_doc(3);
        assert_eq!(doc["key"], COURSE_KEY);
        let modules = doc["modules"].as_array().unwrap();
        assert_eq!(modules.len(), 1);
        let sub_topics = modules[0]["sub_topics"].as_array().unwrap();
        assert_eq!(sub_topics.len(), 1);
        let segments = sub_topics[0]["segments"].as_array().unwrap();
        assert_eq!(segments.len(), 3);
        assert!(segments[2]["text"].as_str().unwrap().contains("3 of 3"));
        // The server's limit per sub-topic, which `segments` is held to.
        assert_eq!(
            course_doc(1000)["modules"][0]["sub_topics"][0]["segments"]
                .as_array()
                .unwrap()
                .len(),
            1000
        );
    }
}
