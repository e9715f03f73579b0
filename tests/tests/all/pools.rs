//! Item pools: create, read, list, extend; and every kind of bad input.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use lectern_tests::{TestEnv, items_json};
use serde_json::{Value, json};

fn pool_body(env: &TestEnv, n: usize) -> Value {
    json!({ "organization_id": env.org, "name": "Algebra I", "description": "unit test pool", "items": items_json(n, &env.prefix) })
}

#[tokio::test]
async fn create_then_read_never_shows_keys() {
    let env = TestEnv::new().await;
    let body = pool_body(&env, 12);
    let created = env.post("/v1/pools", body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["name"], "Algebra I");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["item_count"], 12);
    let id = created.body["pool_id"].as_str().unwrap();
    assert_eq!(created.headers[header::LOCATION], format!("/v1/pools/{id}"));

    let shown = env.get(&format!("/v1/pools/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let items = shown.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    assert_eq!(items[0]["id"], body["items"][0]["id"]);
    assert_eq!(items[0]["a"], body["items"][0]["a"]);
    assert_eq!(items[0]["options"], body["items"][0]["options"]);
    assert!(!shown.body.to_string().contains("correct_answer"));
    assert_eq!(env.count("questions").await, 12);

    let listed = env.get("/v1/pools").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["pools"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["pools"][0]["pool_id"], id);
}

#[tokio::test]
async fn defaults_c_and_d_and_generates_ids() {
    let env = TestEnv::new().await;
    let body = json!({ "organization_id": env.org, "name": "p", "items": [
        { "content": "2+2?", "options": ["3", "4"], "correct_answer": "4", "concepts": ["arithmetic"], "a": 1.2, "b": -0.5 }
    ]});
    let created = env.post("/v1/pools", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let shown = env
        .get(&format!(
            "/v1/pools/{}",
            created.body["pool_id"].as_str().unwrap()
        ))
        .await;
    let item = &shown.body["items"][0];
    assert_eq!(item["c"], 0.0);
    assert_eq!(item["d"], 1.0);
    assert!(uuid::Uuid::parse_str(item["id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn adding_items_makes_a_new_version() {
    let env = TestEnv::new().await;
    let id = env.demo_pool(5).await;
    let more: Vec<Value> = items_json(8, &env.prefix)[5..].to_vec();
    let added = env
        .post(&format!("/v1/pools/{id}/items"), json!({ "items": more }))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["version"], 2);
    assert_eq!(added.body["item_count"], 8);
    let shown = env.get(&format!("/v1/pools/{id}")).await;
    assert_eq!(shown.body["items"].as_array().unwrap().len(), 8);
    let unknown = env
        .post(
            &format!("/v1/pools/{}/items", uuid::Uuid::new_v4()),
            json!({ "items": more }),
        )
        .await;
    unknown.problem(404);
}

/// Each bad item is refused with 422 naming the field, and nothing is written.
#[tokio::test]
async fn invalid_items_are_refused_and_nothing_is_stored() {
    let env = TestEnv::new().await;
    let good = items_json(1, &env.prefix)[0].clone();
    let with = |field: &str, value: Value| {
        let mut item = good.clone();
        item[field] = value;
        item
    };
    let cases = [
        (with("a", json!(0)), "a must be"),
        (with("a", json!(-1.0)), "a must be"),
        (with("c", json!(-0.1)), "c"),
        (
            with("c", json!(0.5))
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("d".into(), json!(0.4));
                    Value::Object(o)
                })
                .unwrap(),
            "d",
        ),
        (with("d", json!(1.5)), "d"),
        (with("b", json!(50.0)), "b must be"),
        (
            with("options", json!(["only"])),
            "options must have 2 to 10",
        ),
        (with("options", json!(["x", "x"])), "distinct"),
        (
            with("correct_answer", json!("not an option")),
            "correct_answer must be one of the options",
        ),
        (with("concepts", json!([])), "concepts must have 1 to 10"),
        (with("concepts", json!([" "])), "must not be empty"),
        (with("content", json!("")), "content must not be empty"),
        (with("id", json!("has space")), "items[0].id"),
    ];
    for (item, expected) in cases {
        let resp = env
            .post(
                "/v1/pools",
                json!({ "organization_id": env.org, "name": "bad", "items": [item] }),
            )
            .await;
        let detail = resp.problem(422);
        assert!(
            detail.contains(expected),
            "detail {detail:?} should mention {expected:?}"
        );
    }
    let empty = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "bad", "items": [] }),
        )
        .await;
    empty.problem(422);
    let no_name = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "  ", "items": [good.clone()] }),
        )
        .await;
    no_name.problem(422);
    let twice = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "dup", "items": [good.clone(), good.clone()] }),
        )
        .await;
    assert!(twice.problem(422).contains("more than once"));
    let wrong_type = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "bad", "items": [with("a", json!("high"))] }),
        )
        .await;
    wrong_type.problem(422);
    assert_eq!(env.count("item_pools").await, 0);
    assert_eq!(env.count("questions").await, 0);
}

#[tokio::test]
async fn an_item_id_in_use_is_a_conflict_and_rolls_back() {
    let env = TestEnv::new().await;
    env.demo_pool(3).await;
    let resp = env.post("/v1/pools", pool_body(&env, 3)).await;
    assert_eq!(resp.slug(), "conflict");
    resp.problem(409);
    assert_eq!(env.count("item_pools").await, 1);
    assert_eq!(env.count("questions").await, 3);
}

#[tokio::test]
async fn malformed_requests_get_problem_json() {
    let env = TestEnv::new().await;
    let raw = |body: &'static str, content_type: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/pools")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    env.send(raw("{not json", "application/json"))
        .await
        .problem(400);
    env.send(raw("{}", "text/plain")).await.problem(415);
    let big = format!(r#"{{"name": "{}", "items": []}}"#, "x".repeat(70 * 1024));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/pools")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    env.send(req).await.problem(413);
    env.post(
        "/v1/pools",
        json!({ "organization_id": env.org, "name": "x", "items": [], "extra": 1 }),
    )
    .await
    .problem(422);
    env.get("/v1/pools?limit=0").await.problem(422);
    env.get("/v1/pools?limit=abc").await.problem(400);
    env.get(&format!("/v1/pools/{}", uuid::Uuid::new_v4()))
        .await
        .problem(404);
    env.get("/v1/pools/not-a-uuid").await.problem(404);
    assert_eq!(env.get("/v1/nothing-here").await.slug(), "no-route");
    env.call(Method::DELETE, "/v1/pools", None)
        .await
        .problem(405);
    assert_eq!(env.count("item_pools").await, 0);
}
