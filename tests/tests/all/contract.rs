//! The route table, the routers, template.yaml and openapi.yaml agree.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request};
use lectern::api::{FUNCTIONS, ROUTES};
use lectern_tests::TestEnv;
use serde_yaml::Value;

fn repo_file(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn table() -> BTreeSet<(String, String, String)> {
    ROUTES
        .iter()
        .map(|r| {
            (
                r.function.to_owned(),
                r.method.to_owned(),
                r.path.to_owned(),
            )
        })
        .collect()
}

#[test]
fn template_events_match_the_route_table() {
    let template = repo_file("template.yaml");
    let mut events = BTreeSet::new();
    let mut schedules = BTreeSet::new();
    let mut binaries = BTreeSet::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let name = name.as_str().unwrap();
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        // The function is the crate's name: `lectern-cache-admin` → `cache-admin`.
        let function = binary.trim_start_matches("lectern-").to_owned();
        binaries.insert(binary);
        let Some(evs) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        // The WebSocket API invokes teach-ws through its own integration, never an HTTP route.
        assert_ne!(function, "teach-ws", "teach-ws has no HttpApi events");
        for (_, ev) in evs {
            if ev["Type"] == "ScheduleV2" {
                let expression = ev["Properties"]["ScheduleExpression"].as_str().unwrap();
                schedules.insert((function.clone(), expression.to_owned()));
                continue;
            }
            assert_eq!(ev["Type"], "HttpApi");
            let p = &ev["Properties"];
            events.insert((
                function.clone(),
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(events, table());
    // The sweeper has no route: it runs on a schedule (the local server's too), and is the only one that does.
    let every = lectern::sweep::PERIOD.as_secs() / 60;
    assert_eq!(
        schedules,
        BTreeSet::from([("sweeper".to_owned(), format!("rate({every} minutes)"))])
    );
    let expected: BTreeSet<String> = FUNCTIONS
        .iter()
        .map(|(f, _)| format!("lectern-{f}"))
        .chain(["lectern-migrate", "lectern-sweeper", "lectern-teach-ws"].map(str::to_owned))
        .collect();
    assert_eq!(
        binaries, expected,
        "one function per functions/<name> crate"
    );
    for bin in &binaries {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions")
            .join(bin.trim_start_matches("lectern-"));
        assert!(
            dir.join("src/main.rs").exists(),
            "{bin} has no crate at {}",
            dir.display()
        );
    }
}

#[test]
fn openapi_paths_match_the_route_table() {
    let spec = repo_file("openapi.yaml");
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                ops.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    let routes: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(ops, routes);
}

/// Each function's router serves its own routes and none of the others'.
#[tokio::test]
async fn each_router_serves_exactly_its_routes() {
    let env = TestEnv::new().await;
    for (function, routes) in FUNCTIONS {
        let router = lectern::api::finish(routes(), env.app.clone());
        for route in ROUTES {
            let path = route
                .path
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{provider}", "none");
            let mut req = Request::builder()
                .method(Method::from_bytes(route.method.as_bytes()).unwrap())
                .uri(&path);
            if route.method == "POST" {
                req = req.header("content-type", "application/json");
            }
            let resp = lectern_tests::send(&router, req.body(Body::from("{}")).unwrap()).await;
            let unrouted = resp.slug() == "no-route" || resp.status == 405;
            assert_eq!(
                unrouted,
                route.function != *function,
                "{function} router on {} {}: {} {}",
                route.method,
                route.path,
                resp.status,
                resp.body
            );
        }
    }
}

/// Every route that takes a JSON body refuses a malformed one, a non-JSON one
/// and one over 64 KiB with problem+json, and writes nothing anywhere.
#[tokio::test]
async fn every_json_route_refuses_bad_bodies_and_writes_nothing() {
    let env = TestEnv::new().await;
    let big = format!(
        r#"{{"name": "{}"}}"#,
        "x".repeat(lectern::api::MAX_BODY_BYTES)
    );
    let bodies: [(&str, String, u16); 4] = [
        ("application/json", "{not json".into(), 400),
        ("application/json", r#""not an object""#.into(), 422),
        ("text/plain", "{}".into(), 415),
        ("application/json", big, 413),
    ];
    // These take no body.
    let bodiless = |path: &str| {
        path.ends_with("/end") || path.ends_with("/sync") || path.starts_with("/v1/admin/cache/")
    };
    let json_routes = ROUTES
        .iter()
        .filter(|r| r.method == "POST" && !bodiless(r.path));
    for route in json_routes {
        let path = route
            .path
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        for (content_type, body, status) in &bodies {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&path)
                .header("content-type", *content_type)
                .body(Body::from(body.clone()))
                .unwrap();
            let resp = env.send(req).await;
            assert!(!resp.problem(*status).is_empty(), "{} {path}", route.method);
        }
    }
    for table in ["item_pools", "questions", "test_sessions", "test_responses"] {
        assert_eq!(env.count(table).await, 0, "{table}");
    }
    assert!(env.test_entries().await.is_empty());
}
