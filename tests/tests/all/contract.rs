//! The route table, the routers, template.yaml and openapi.yaml agree.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use lectern::api::{FUNCTIONS, ROUTES};
use lectern::services::auth::Role;
use lectern_tests::TestEnv;
use serde_json::{Value as Json, json};
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
    // The sweeper and the events publisher have no route: they run on
    // schedules (the local server's too), and are the only ones that do.
    let every = lectern::services::sweep::PERIOD.as_secs() / 60;
    assert_eq!(lectern::services::events::PERIOD.as_secs(), 60);
    assert_eq!(
        schedules,
        BTreeSet::from([
            ("events".to_owned(), "rate(1 minute)".to_owned()),
            ("sweeper".to_owned(), format!("rate({every} minutes)"))
        ])
    );
    let expected: BTreeSet<String> = FUNCTIONS
        .iter()
        .map(|(f, _)| format!("lectern-{f}"))
        .chain(
            [
                "lectern-calibrate",
                "lectern-events",
                "lectern-migrate",
                "lectern-sweeper",
                "lectern-teach-ws",
            ]
            .map(str::to_owned),
        )
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
    // A course document may be larger than other bodies.
    let big = |path: &str| {
        let limit = if path.starts_with("/v1/courses") {
            lectern::api::courses::MAX_COURSE_BYTES
        } else {
            lectern::api::MAX_BODY_BYTES
        };
        format!(r#"{{"name": "{}"}}"#, "x".repeat(limit))
    };
    // These take no body.
    let bodiless = |path: &str| {
        path.ends_with("/end")
            || path.ends_with("/release")
            || path.ends_with("/sync")
            || path.ends_with("/disable")
            || path.ends_with("/enable")
            || path.ends_with("/erase")
            || path.starts_with("/v1/admin/cache/")
    };
    let json_routes = ROUTES
        .iter()
        .filter(|r| r.method == "POST" && !bodiless(r.path));
    for route in json_routes {
        let path = route
            .path
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        let bodies: [(&str, String, u16); 4] = [
            ("application/json", "{not json".into(), 400),
            ("application/json", r#""not an object""#.into(), 422),
            ("text/plain", "{}".into(), 415),
            ("application/json", big(route.path), 413),
        ];
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
    for table in [
        "item_pools",
        "questions",
        "test_sessions",
        "test_responses",
        "courses",
    ] {
        assert_eq!(env.count(table).await, 0, "{table}");
    }
    assert!(env.test_entries().await.is_empty());
}

/// What a test, a pool and the test loop have written: to show a refused
/// request wrote nothing.
async fn footprint(env: &TestEnv) -> (Vec<i64>, Vec<(String, Option<Vec<u8>>)>) {
    let mut counts = Vec::new();
    for table in [
        "item_pools",
        "questions",
        "test_sessions",
        "test_responses",
        "users",
        "teaching_sessions",
    ] {
        counts.push(env.count(table).await);
    }
    (counts, env.test_entries().await)
}

/// A pool, and a test on it with its first question: (pool, test, question).
async fn running_test(env: &TestEnv) -> (String, String, Json) {
    let pool = env.demo_pool(12).await.to_string();
    let r = env.post("/v1/tests", json!({ "pool_id": pool })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let test = r.body["test_id"].as_str().unwrap().to_owned();
    (pool, test, r.body["question"].clone())
}

/// The server refuses exactly what the spec refuses, with problem+json 422,
/// and writes nothing.
async fn refused_like_the_spec(env: &TestEnv, token: Option<&str>, path: &str, body: Json) {
    assert!(
        lectern_tests::openapi::request_violation("POST", path, &body).is_some(),
        "the spec accepts {body} for POST {path}"
    );
    let before = footprint(env).await;
    let token = token.map_or_else(|| env.admin_token(), str::to_owned);
    let r = env
        .call_as(Some(&token), Method::POST, path, Some(body.clone()))
        .await;
    r.problem(422);
    assert_eq!(r.slug(), "validation-failed", "{body}: {}", r.body);
    assert_eq!(
        footprint(env).await,
        before,
        "{path} {body} wrote something"
    );
}

/// Every request body the server reads with unknown fields refused says so
/// (`additionalProperties: false`), and the four the property tester found
/// refuse an extra field with 422 and write nothing.
#[tokio::test]
async fn extra_fields_are_refused_as_the_spec_says() {
    let spec = repo_file("openapi.yaml");
    let schemas = &spec["components"]["schemas"];
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            let Some(r) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let name = r.trim_start_matches("#/components/schemas/");
            assert_eq!(
                schemas[name]["additionalProperties"],
                Value::Bool(false),
                "{method:?} {path:?}: {name}"
            );
        }
    }
    assert_eq!(
        schemas["ItemInput"]["additionalProperties"],
        Value::Bool(false)
    );
    assert_eq!(
        schemas["TestConfig"]["additionalProperties"],
        Value::Bool(false)
    );

    let env = TestEnv::new().await;
    let (pool, test, question) = running_test(&env).await;
    let mut item = lectern_tests::items_json(1, "extra")[0].clone();
    let cases = [
        (
            format!("/v1/tests/{test}/responses"),
            json!({ "question_id": question["id"], "response": question["options"][0], "x": 1 }),
        ),
        ("/v1/tests".to_owned(), json!({ "pool_id": pool, "x": 1 })),
        (
            "/v1/tests".to_owned(),
            json!({ "pool_id": pool, "config": { "max_items": 5, "x": 1 } }),
        ),
        (
            "/v1/pools".to_owned(),
            json!({ "name": "p", "items": [item.clone()], "x": 1 }),
        ),
        (
            format!("/v1/pools/{pool}/items"),
            json!({ "items": [item.clone()], "x": 1 }),
        ),
    ];
    for (path, body) in cases {
        let r = env.post(&path, body.clone()).await;
        assert!(
            r.problem(422).contains("unknown field"),
            "{path} {body}: {}",
            r.body
        );
        refused_like_the_spec(&env, None, &path, body).await;
    }
    item["x"] = json!(1);
    refused_like_the_spec(
        &env,
        None,
        &format!("/v1/pools/{pool}/items"),
        json!({ "items": [item] }),
    )
    .await;
}

/// JSON Schema's `integer` admits `60.0`: so does the server, wherever the spec
/// types a body field `integer`; `60.5` is refused (422) and writes nothing.
#[tokio::test]
async fn integral_floats_are_integers_and_fractions_are_refused() {
    let env = TestEnv::new().await;
    let (pool, test, _) = running_test(&env).await;
    let (_, student) = env.user(Role::Student).await;
    let extend = format!("/v1/admin/tests/{test}/extend");
    let course = env.course(3).await;
    let lesson = |segment: Json| json!({ "course_id": course, "module_index": 0.0, "sub_topic_index": 1, "segment_index": segment });
    let cases: [(Option<&str>, &str, Json, Json, u16); 4] = [
        (
            Some(&student),
            "/v1/sessions/current/extend",
            json!({ "seconds": 60.0 }),
            json!({ "seconds": 60.5 }),
            200,
        ),
        (
            None,
            &extend,
            json!({ "seconds": 3600.0 }),
            json!({ "seconds": 3600.5 }),
            200,
        ),
        (
            Some(&student),
            "/v1/teaching/sessions",
            lesson(json!(2.0)),
            lesson(json!(2.5)),
            201,
        ),
        (
            None,
            "/v1/tests",
            json!({ "pool_id": pool, "config": { "max_items": 10.0, "min_items": 2.0, "randomesque": 1.0 } }),
            json!({ "pool_id": pool, "config": { "max_items": 10.5 } }),
            201,
        ),
    ];
    for (token, path, whole, fraction, status) in cases {
        assert_eq!(
            lectern_tests::openapi::request_violation("POST", path, &whole),
            None
        );
        refused_like_the_spec(&env, token, path, fraction).await;
        let token = token.map_or_else(|| env.admin_token(), str::to_owned);
        let r = env
            .call_as(Some(&token), Method::POST, path, Some(whole.clone()))
            .await;
        assert_eq!(r.status.as_u16(), status, "{path} {whole}: {}", r.body);
    }
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "config": { "max_items": 7.0 } }),
        )
        .await;
    assert_eq!(started.body["config"]["max_items"], 7, "{}", started.body);
}

/// `null` where the spec's type has no `"null"` is refused (422, nothing
/// written), not read as an absent field; where the spec allows it, it is taken.
#[tokio::test]
async fn null_is_refused_where_the_spec_does_not_allow_it() {
    let env = TestEnv::new().await;
    let (pool, _, _) = running_test(&env).await;
    let (_, student) = env.user(Role::Student).await;
    let mut item = lectern_tests::items_json(1, "nullid")[0].clone();
    item["id"] = Json::Null;
    refused_like_the_spec(
        &env,
        Some(&student),
        "/v1/sessions/current/extend",
        json!({ "seconds": null }),
    )
    .await;
    let sign_up = json!({
        "email": lectern_tests::new_email(), "password": "a long enough password",
        "display_name": "Nul", "role": null,
    });
    refused_like_the_spec(&env, None, "/v1/users", sign_up).await;
    refused_like_the_spec(
        &env,
        None,
        "/v1/pools",
        json!({ "name": "p", "items": [item.clone()] }),
    )
    .await;
    refused_like_the_spec(
        &env,
        None,
        &format!("/v1/pools/{pool}/items"),
        json!({ "items": [item] }),
    )
    .await;
    refused_like_the_spec(
        &env,
        None,
        "/v1/tests",
        json!({ "pool_id": pool, "student_id": null }),
    )
    .await;
    let described = lectern_tests::items_json(1, "nulldesc");
    refused_like_the_spec(
        &env,
        None,
        "/v1/pools",
        json!({ "name": "p", "description": null, "items": described }),
    )
    .await;
    for field in [
        "max_items",
        "min_items",
        "randomesque",
        "estimator",
        "selector",
        "exposure_control",
        "confidence",
    ] {
        let body = json!({ "pool_id": pool, "config": { field: null, "cut_score": 0.5 } });
        refused_like_the_spec(&env, None, "/v1/tests", body).await;
    }
    // Nullable in the spec: null is the "off" value.
    let nulls = json!({ "pool_id": pool, "config": {
        "se_target": null, "cut_score": null, "start_theta": null, "content_balance": null,
    } });
    assert_eq!(
        lectern_tests::openapi::request_violation("POST", "/v1/tests", &nulls),
        None
    );
    let r = env.post("/v1/tests", nulls).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A display name is what the spec's pattern says: printable (no control
/// character), not blank. The server and the spec agree name by name.
#[tokio::test]
async fn display_names_follow_the_specs_pattern() {
    let env = TestEnv::new().await;
    let names = [
        ("Ada", true),
        (" Ada Lovelace ", true),
        ("Zoë 李", true),
        ("\u{a0}x", true),
        ("  ", false),
        ("a\tb", false),
        ("a\nb", false),
        ("bell\u{7}", false),
        ("del\u{7f}", false),
        ("c1\u{85}", false),
        ("Ada\t", false),
        ("\u{9f}", false),
    ];
    // Length is judged as sent (maxLength 100), spaces the server trims included.
    let (longest, padded) = ("x".repeat(100), format!(" {} ", "x".repeat(99)));
    let lengths = [(longest.as_str(), true), (padded.as_str(), false)];
    for (name, ok) in names.into_iter().chain(lengths) {
        let body = json!({
            "email": lectern_tests::new_email(), "password": "a long enough password", "display_name": name,
        });
        let spec_ok =
            lectern_tests::openapi::request_violation("POST", "/v1/users", &body).is_none();
        assert_eq!(spec_ok, ok, "the spec on {name:?}");
        if ok {
            let r = env
                .call_as(None, Method::POST, "/v1/users", Some(body))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{name:?}: {}", r.body);
        } else {
            refused_like_the_spec(&env, None, "/v1/users", body).await;
        }
    }
}

/// An integer query parameter past any machine integer is out of range (422
/// problem+json, as the spec's bounds say), not unparsable; a non-integer is 400.
#[tokio::test]
async fn query_integers_out_of_range_are_422() {
    let env = TestEnv::new().await;
    let student = env.student().await;
    for path in [
        "/v1/pools?offset=18446744073709551616".to_owned(),
        "/v1/pools?limit=99999999999999999999".to_owned(),
        "/v1/pools?offset=-99999999999999999999".to_owned(),
        format!("/v1/students/{student}/tests?offset=9223372036854775808"),
        "/v1/admin/tests/active?limit=18446744073709551616".to_owned(),
        "/v1/admin/teaching/stats?hours=4294967296".to_owned(),
        "/v1/admin/teaching/stats?hours=-1".to_owned(),
    ] {
        let r = env.get(&path).await;
        r.problem(422);
        assert_eq!(r.slug(), "validation-failed", "{path}");
    }
    let r = env.get("/v1/pools?offset=9223372036854775807").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["pools"], json!([]));
    for path in [
        "/v1/pools?offset=abc",
        "/v1/pools?offset=1e3",
        "/v1/admin/teaching/stats?hours=",
    ] {
        env.get(path).await.problem(400);
    }
}

/// The effective configuration `POST /v1/tests` shows can be sent back as is,
/// and starts a test with the same configuration.
#[tokio::test]
async fn the_echoed_config_round_trips() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(12).await;
    for config in [
        json!({}),
        json!({ "max_items": 8, "se_target": null, "content_balance": { "algebra": 2, "geometry": 1 } }),
        json!({ "cut_score": 0.5, "confidence": 0.9, "start_theta": -1 }),
    ] {
        let first = env
            .post("/v1/tests", json!({ "pool_id": pool, "config": config }))
            .await;
        assert_eq!(
            first.status,
            StatusCode::CREATED,
            "{config}: {}",
            first.body
        );
        let echoed = first.body["config"].clone();
        assert_eq!(
            echoed.get("confidence").is_some(),
            !echoed["cut_score"].is_null(),
            "{echoed}"
        );
        let again = env
            .post("/v1/tests", json!({ "pool_id": pool, "config": echoed }))
            .await;
        assert_eq!(
            again.status,
            StatusCode::CREATED,
            "{echoed}: {}",
            again.body
        );
        assert_eq!(again.body["config"], echoed);
        let test = again.body["test_id"].as_str().unwrap();
        assert_eq!(
            env.get(&format!("/v1/tests/{test}")).await.body["config"],
            echoed
        );
    }
}

/// Found by the contract check (infra/schemathesis.sh): every operation that
/// takes a JSON body, as openapi.yaml lists them (PUT and PATCH too), refuses
/// a body that is not an object with 422 problem+json, before looking at
/// anything else, and writes nothing.
#[tokio::test]
async fn every_json_body_that_is_not_an_object_is_422() {
    let env = TestEnv::new().await;
    let spec = repo_file("openapi.yaml");
    let before = footprint(&env).await;
    let mut operations = 0;
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            operations += 1;
            let method = method.as_str().unwrap().to_uppercase();
            let path = path
                .as_str()
                .unwrap()
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{user_id}", &uuid::Uuid::new_v4().to_string());
            for body in ["[]", "[{}]", "1", "-2.5", "true", "null", r#""text""#] {
                let req = Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).unwrap())
                    .uri(&path)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap();
                let r = env.send(req).await;
                r.problem(422);
                assert_eq!(r.slug(), "validation-failed", "{method} {path} {body}");
            }
        }
    }
    assert!(operations >= 24, "{operations} operations take JSON");
    assert_eq!(footprint(&env).await, before);
    // On real resources: an array was read as a struct of optional fields
    // (`[]` started a calibration run, 202, and extended the session, 200).
    let pool = env.demo_pool(12).await;
    for (path, body) in [
        (format!("/v1/pools/{pool}/calibrations"), "[]"),
        (format!("/v1/pools/{pool}/calibrations"), "[5]"),
        ("/v1/sessions/current/extend".to_owned(), "[]"),
        ("/v1/sessions/current/extend".to_owned(), "[60]"),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let r = env.send(req).await;
        assert!(r.problem(422).contains("JSON object"), "{path} {body}");
    }
    assert_eq!(env.count("calibrations").await, 0);
    // The same inside a body, where the schema's `config` is an object whose
    // fields are all optional: `[]` was read as the default configuration.
    let tests = env.count("test_sessions").await;
    let assessments = env.count("assessments").await;
    let design = json!({ "organization_id": env.org, "name": "a", "pool_id": pool, "config": [] });
    for (path, body) in [
        ("/v1/tests", json!({ "pool_id": pool, "config": [] })),
        ("/v1/tests", json!({ "pool_id": pool, "config": [20] })),
        ("/v1/assessments", design.clone()),
    ] {
        let r = env.post(path, body.clone()).await;
        assert!(
            r.problem(422).contains("JSON object"),
            "{path} {body}: {}",
            r.body
        );
    }
    assert_eq!(env.count("test_sessions").await, tests);
    assert_eq!(env.count("assessments").await, assessments);
    let mut design = design;
    design["config"] = json!({});
    let r = env.post("/v1/assessments", design).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = env
        .post(&format!("/v1/pools/{pool}/calibrations"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

/// A POST whose body holds U+0000: (token, path, body with U+0000, the same
/// without, the table it writes).
type NulCase<'a> = (Option<&'a str>, String, Json, Json, &'a str);

/// Found by the contract check: U+0000 in a JSON string (PostgreSQL's text
/// cannot hold it) was a 503 "PostgreSQL is unavailable" from the failed
/// INSERT; it is 422 problem+json wherever it is, and nothing is written. The
/// same bodies without it go through.
#[tokio::test]
async fn a_nul_in_a_json_string_is_422_and_writes_nothing() {
    let env = TestEnv::new().await;
    let slug = format!("nul-{}", uuid::Uuid::new_v4().simple());
    let mut item = lectern_tests::items_json(1, "nul")[0].clone();
    let course = |title: &str| {
        let mut doc = lectern_tests::course_doc(1);
        doc["key"] = json!(format!("nul-{}", uuid::Uuid::new_v4().simple()));
        doc["modules"][0]["sub_topics"][0]["segments"][0]["text"] = json!(title);
        json!({ "organization_id": env.org, "course": doc })
    };
    let org = env.org.to_string();
    let mut cases: Vec<NulCase> = vec![
        (
            None,
            "/v1/organizations".into(),
            json!({ "name": "Nul\u{0}School", "slug": slug }),
            json!({ "name": "Nul School", "slug": slug }),
            "organizations",
        ),
        (
            None,
            "/v1/courses".into(),
            course("x\u{0} is 1"),
            course("x^0 is 1"),
            "courses",
        ),
    ];
    let mut nul_item = item.clone();
    nul_item["content"] = json!("What is 2 + 2?\u{0}");
    item["id"] = json!("nul-ok-1");
    nul_item["id"] = json!("nul-bad-1");
    cases.push((
        None,
        "/v1/pools".into(),
        json!({ "organization_id": org, "name": "p", "items": [nul_item] }),
        json!({ "organization_id": org, "name": "p", "items": [item] }),
        "questions",
    ));
    for (token, path, bad, good, table) in cases {
        let token = token.map_or_else(|| env.admin_token(), str::to_owned);
        let rows = env.count(table).await;
        let r = env
            .call_as(Some(&token), Method::POST, &path, Some(bad.clone()))
            .await;
        assert!(
            r.problem(422).contains("U+0000"),
            "{path} {bad}: {}",
            r.body
        );
        assert_eq!(r.slug(), "validation-failed");
        assert_eq!(env.count(table).await, rows, "{path} wrote {table}");
        let r = env
            .call_as(Some(&token), Method::POST, &path, Some(good))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
        assert!(env.count(table).await > rows, "{path} wrote no {table}");
    }
    // In a key, and in a string that is refused for another reason too.
    let r = env
        .post(
            "/v1/organizations",
            json!({ "name": "x", "slug": "nul-key", "\u{0}": 1 }),
        )
        .await;
    r.problem(422);
    // An escaped backslash before "u0000" is text, not U+0000.
    let literal = format!("lit-{}", uuid::Uuid::new_v4().simple());
    let r = env
        .post(
            "/v1/organizations",
            json!({ "name": "back\\u0000slash", "slug": literal }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["name"], "back\\u0000slash");
}

/// Found by the contract check: a platform admin passes every role check, so
/// an `organization_id` naming no organization went on to the INSERT (a
/// foreign-key violation, answered 503) or to an empty page. It is 404 for
/// everyone, and nothing is written.
#[tokio::test]
async fn a_nonexistent_organization_is_404_for_platform_admins_too() {
    let env = TestEnv::new().await;
    let nowhere = uuid::Uuid::new_v4();
    let items = lectern_tests::items_json(2, "noorg");
    let before = footprint(&env).await;
    let lesson = json!({ "organization_id": nowhere, "course_id": env.course(2).await });
    for (path, body) in [
        (
            "/v1/pools",
            json!({ "organization_id": nowhere, "name": "p", "items": items }),
        ),
        ("/v1/teaching/sessions", lesson),
    ] {
        let r = env.post(path, body).await;
        r.problem(404);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains(&nowhere.to_string()),
            "{path}: {}",
            r.body
        );
    }
    let r = env
        .get(&format!("/v1/organizations/{nowhere}/tests/active"))
        .await;
    r.problem(404);
    assert_eq!(r.slug(), "organization-not-found");
    assert_eq!(footprint(&env).await, before);
    // A real one still works.
    let r = env
        .get(&format!("/v1/organizations/{}/tests/active", env.org))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Found by the contract check: `GET /v1/assessments/{id}?version=…` used
/// axum's own query extractor, whose refusal is a text/plain 400; it is
/// problem+json like every other query (and the harness holds it to the spec).
#[tokio::test]
async fn assessment_query_errors_are_problem_json() {
    let env = TestEnv::new().await;
    let id = uuid::Uuid::new_v4();
    for query in [
        "version=null",
        "version=1&version=2",
        "version=x",
        "other=1",
    ] {
        let r = env.get(&format!("/v1/assessments/{id}?{query}")).await;
        r.problem(400);
        assert_eq!(r.slug(), "bad-request", "{query}");
    }
    for query in ["version=0", "version=2147483648"] {
        let r = env.get(&format!("/v1/assessments/{id}?{query}")).await;
        r.problem(422);
    }
    let r = env.get(&format!("/v1/assessments/{id}?version=1")).await;
    r.problem(404);
}
