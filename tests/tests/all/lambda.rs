//! The Lambda side: API Gateway v2 events through a function's router, and the
//! migrate custom resource answering a stand-in for CloudFormation's URL.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::StatusCode;
use lectern::api::migrate::{self, CustomResourceRequest};
use lectern::config::DatabaseConfig;
use lectern_tests::{DEAD_DATABASE_URL, TestEnv};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// Converts a recorded API Gateway event the way lambda_http does, then serves it.
async fn invoke(router: &axum::Router, event: &str) -> lectern_tests::Resp {
    let request = lambda_http::request::from_str(event).expect("a valid API Gateway v2 event");
    let (parts, body) = request.into_parts();
    lectern_tests::send(
        router,
        axum::http::Request::from_parts(parts, Body::from(body.to_vec())),
    )
    .await
}

#[tokio::test]
async fn api_gateway_events_reach_the_functions() {
    let env = TestEnv::new().await;
    let health = invoke(
        &lectern::api::health::router(env.app.clone()),
        &fixture("apigw-v2-get-health.json"),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["status"], "ok");

    let pools = lectern::api::pools::router(env.app.clone());
    let mut event: Value = serde_json::from_str(&fixture("apigw-v2-post-pools.json")).unwrap();
    let unsigned = invoke(&pools, &event.to_string()).await;
    unsigned.problem(401);
    // A teacher of one organization: the pool goes to it.
    let (_, teacher) = env.user(lectern::services::auth::Role::Teacher).await;
    event["headers"]["authorization"] = format!("Bearer {teacher}").into();
    let created = invoke(&pools, &event.to_string()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["name"], "Lambda pool");
    assert_eq!(env.count("questions").await, 1);
}

/// A tutoring input arrives through the teach function's router as API Gateway sends it.
#[tokio::test]
async fn a_teaching_input_event_reaches_the_teach_function() {
    let env = TestEnv::new().await;
    let teach = lectern::api::teach::router(env.app.clone());
    let started = env.post("/v1/teaching/sessions", env.lesson(2).await).await;
    let session = started.body["session_id"].as_str().unwrap();
    let event = fixture("apigw-v2-post-teaching-input.json")
        .replace("00000000-0000-0000-0000-000000000000", session);
    let mut event: Value = serde_json::from_str(&event).unwrap();
    invoke(&teach, &event.to_string()).await.problem(401);
    event["headers"]["authorization"] = format!("Bearer {}", env.admin_token()).into();
    let r = invoke(&teach, &event.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["intent"], "question");
    assert_eq!(r.body["action"]["type"], "answer_question");
    assert_eq!(r.body["action"]["question"], "What is a fraction?");
    assert_eq!(env.count("teaching_transitions").await, 2);
}

/// A one-route HTTP server that records the body of every PUT.
async fn response_url() -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/cfn",
        axum::routing::put(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned());
                    sink.lock()
                        .unwrap()
                        .push((content_type, serde_json::from_slice(&body).unwrap()));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn request(kind: &str, url: &str) -> CustomResourceRequest {
    let mut event: Value = serde_json::from_str(&fixture("cfn-create.json")).unwrap();
    event["RequestType"] = kind.into();
    event["ResponseURL"] = url.into();
    if kind != "Create" {
        event["PhysicalResourceId"] = "lectern-schema".into();
    }
    serde_json::from_value(event).unwrap()
}

#[tokio::test]
async fn migrate_applies_on_create_and_update_and_answers_cloudformation() {
    let env = TestEnv::new().await;
    let (url, seen) = response_url().await;
    let sql = env.sql().await;
    // An empty schema, whatever the migrations have made in it.
    sql.batch_execute(&format!(
        "DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}",
        env.schema
    ))
    .await
    .unwrap();

    let created = migrate::handle(
        request("Create", &url),
        &DatabaseConfig::url(&env.database_url),
    )
    .await
    .unwrap();
    assert_eq!(created.status, "SUCCESS", "{}", created.reason);
    assert_eq!(env.count("test_responses").await, 0, "tables exist again");
    let updated = migrate::handle(
        request("Update", &url),
        &DatabaseConfig::url(&env.database_url),
    )
    .await
    .unwrap();
    assert_eq!(updated.status, "SUCCESS");
    assert_eq!(updated.data["Applied"], "", "nothing left to apply");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (content_type, body) = &seen[0];
    assert!(
        content_type.as_deref().unwrap_or("").is_empty(),
        "S3 signs an empty content type"
    );
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "lectern-schema");
    assert_eq!(body["LogicalResourceId"], "Migrations");
    assert_eq!(body["RequestId"], "6f5a1c1e-1f0e-4c6e-9f62-7d9d7c1e2a3b");
    assert!(
        body["Data"]["Applied"]
            .as_str()
            .unwrap()
            .contains("V1__foundation"),
        "{body}"
    );
}

#[tokio::test]
async fn migrate_reports_failure_and_ignores_delete() {
    let (url, seen) = response_url().await;
    let failed = migrate::handle(
        request("Create", &url),
        &DatabaseConfig::url(DEAD_DATABASE_URL),
    )
    .await
    .unwrap();
    assert_eq!(failed.status, "FAILED");
    assert!(!failed.reason.is_empty());
    // Delete never touches the database, so an unreachable one still succeeds.
    let deleted = migrate::handle(
        request("Delete", &url),
        &DatabaseConfig::url(DEAD_DATABASE_URL),
    )
    .await
    .unwrap();
    assert_eq!(deleted.status, "SUCCESS");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter()
            .map(|(_, b)| b["Status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["FAILED", "SUCCESS"]
    );
}

/// The sweeper's handler takes a scheduled event (EventBridge's documented
/// shape; the Scheduler's default notification is not pinned down, hence any
/// JSON, `{}` included) and answers with its report.
#[tokio::test]
async fn a_scheduled_event_runs_a_sweep() {
    let env = TestEnv::new().await;
    let event: Value = serde_json::from_str(&fixture("eventbridge-scheduled.json")).unwrap();
    for event in [event, serde_json::json!({})] {
        let report = lectern::api::sweeper::on_schedule(&env.app, event)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            serde_json::json!({ "checked": 0, "abandoned": 0, "batches": 0, "timed_out": 0, "sessions_deleted": 0,
                "audit_partitions_made": 0, "audit_partitions_dropped": 0, "erasures_finished": 0,
                "tutoring_abandoned": 0 })
        );
    }
}
