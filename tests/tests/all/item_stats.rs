//! `GET /v1/pools/{id}/stats`: item statistics of a pool version match the
//! recorded responses and the items' models (recomputed here from the rows at
//! each response's exact θ), flag drift, are cached by version and date, and
//! are for the pool's staff only.

use axum::http::{Method, StatusCode};
use lectern::engine::{Item, ItemParams};
use lectern_tests::{TestEnv, items_json};
use serde_json::{Value, json};
use uuid::Uuid;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[tokio::test]
async fn stats_match_the_recorded_responses_and_the_items_models() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(12).await;
    for _ in 0..6 {
        env.take_test(pool, env.student().await, 6).await;
    }
    let (_, teacher) = env.member(env.org, "teacher").await;
    let got = env
        .call_as(
            Some(&teacher),
            Method::GET,
            &format!("/v1/pools/{pool}/stats"),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(
        (&got.body["version"], &got.body["tests"], &got.body["total"]),
        (&json!(1), &json!(6), &json!(12))
    );
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(got.body["as_of"], today);

    // The truth, item by item, from the rows and the engine's model.
    let sql = env.sql().await;
    let rows = sql
        .query(
            "SELECT r.question_id, r.score::float8, s.theta, q.a, q.b, q.c, q.d
             FROM test_responses r JOIN test_sessions s ON s.id = r.session_id
             JOIN questions q ON q.id = r.question_id WHERE s.pool_id = $1",
            &[&pool],
        )
        .await
        .unwrap();
    let items = got.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    let mut seen = 0;
    for item in items {
        let id = item["id"].as_str().unwrap();
        let mine: Vec<(f64, f64, f64, f64)> = rows
            .iter()
            .filter(|r| r.get::<_, &str>(0) == id)
            .map(|r| {
                let p = ItemParams::new(r.get(3), r.get(4), r.get(5), r.get(6)).unwrap();
                let theta: f64 = r.get(2);
                let e = Item::from(p).expected_score(theta);
                (r.get(1), theta, e, e * (1.0 - e))
            })
            .collect();
        let n = mine.len();
        assert_eq!(item["administered"], n, "{item}");
        assert_eq!(item["model"], "dichotomous");
        assert_eq!(item["max_score"], 1);
        assert!(close(
            item["exposure_rate"].as_f64().unwrap(),
            n as f64 / 6.0,
            1e-12
        ));
        if n == 0 {
            assert!(
                item["mean_score"].is_null() && item["drift"]["z"].is_null(),
                "{item}"
            );
            assert_eq!(item["drift"]["flagged"], false);
            continue;
        }
        seen += n;
        let nf = n as f64;
        let mean = |f: fn(&(f64, f64, f64, f64)) -> f64| mine.iter().map(f).sum::<f64>() / nf;
        let (mx, mt, me) = (mean(|r| r.0), mean(|r| r.1), mean(|r| r.2));
        assert!(
            close(item["mean_score"].as_f64().unwrap(), mx, 1e-12),
            "{item}"
        );
        assert!(
            close(item["proportion_top"].as_f64().unwrap(), mx, 1e-12),
            "{item}"
        );
        assert!(
            close(item["mean_theta"].as_f64().unwrap(), mt, 1e-9),
            "{item}"
        );
        assert!(
            close(item["expected_score"].as_f64().unwrap(), me, 1e-9),
            "{item}"
        );
        let z = mine.iter().map(|r| r.0 - r.2).sum::<f64>()
            / mine.iter().map(|r| r.3).sum::<f64>().sqrt();
        assert!(
            close(item["drift"]["z"].as_f64().unwrap(), z, 1e-9),
            "{item} vs {z}"
        );
        let (sxx, syy, sxy) = mine.iter().fold((0.0, 0.0, 0.0), |(a, b, c), r| {
            (
                a + (r.0 - mx).powi(2),
                b + (r.1 - mt).powi(2),
                c + (r.0 - mx) * (r.1 - mt),
            )
        });
        match item["item_theta_correlation"].as_f64() {
            Some(r) => assert!(close(r, sxy / (sxx * syy).sqrt(), 1e-9), "{item}"),
            None => assert!(n < 2 || sxx == 0.0 || syy == 0.0, "{item}"),
        }
        // Fewer than 30 responses: never flagged.
        assert_eq!(item["drift"]["flagged"], false);
    }
    assert_eq!(seen, 36);
}

/// A graded-response item: its mean score, share at the top score, expected
/// score and drift against the engine's model at each response's exact θ (the
/// statistics group θ in bins of 0.05).
#[tokio::test]
async fn polytomous_items_are_judged_by_their_own_model() {
    let env = TestEnv::new().await;
    let likert = ["never", "rarely", "sometimes", "often", "always"];
    let made = env
        .post(
            "/v1/pools",
            json!({ "name": "Likert", "organization_id": env.org, "items": [
                { "id": format!("{}-grm", env.prefix.replace(':', "")), "content": "How often?",
                  "options": likert, "model": "grm", "concepts": ["habits"],
                  "a": 1.5, "b": [-1.5, -0.4, 0.6, 1.7] } ] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let pool: Uuid = made.body["pool_id"].as_str().unwrap().parse().unwrap();
    let id = format!("{}-grm", env.prefix.replace(':', ""));
    let item = Item::grm(1.5, vec![-1.5, -0.4, 0.6, 1.7]).unwrap();
    // 60 examinees over θ ∈ [−2.5, 2.4], each scoring what the model expects, rounded.
    let mut truth = Vec::new();
    for k in 0..60 {
        let theta = -2.5 + 0.083 * f64::from(k);
        let score = item.expected_score(theta).round() as i16;
        synthetic(&env, pool, 1, &id, 1, theta, score).await;
        truth.push((theta, f64::from(score)));
    }
    let got = env.get(&format!("/v1/pools/{pool}/stats")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let stats = &got.body["items"][0];
    assert_eq!(
        (&stats["model"], &stats["max_score"], &stats["administered"]),
        (&json!("grm"), &json!(4), &json!(60))
    );
    let n = truth.len() as f64;
    let mean_x = truth.iter().map(|t| t.1).sum::<f64>() / n;
    let top = truth.iter().filter(|t| t.1 == 4.0).count() as f64 / n;
    let expected: Vec<(f64, f64)> = truth
        .iter()
        .map(|&(theta, _)| {
            let p = item.probabilities(theta);
            let m: f64 = p.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
            let v: f64 = p
                .iter()
                .enumerate()
                .map(|(k, p)| (k as f64 - m).powi(2) * p)
                .sum();
            (m, v)
        })
        .collect();
    let mean_e = expected.iter().map(|e| e.0).sum::<f64>() / n;
    let z = truth
        .iter()
        .zip(&expected)
        .map(|(t, e)| t.1 - e.0)
        .sum::<f64>()
        / expected.iter().map(|e| e.1).sum::<f64>().sqrt();
    assert!(
        close(stats["mean_score"].as_f64().unwrap(), mean_x, 1e-12),
        "{stats}"
    );
    assert!(
        close(stats["proportion_top"].as_f64().unwrap(), top, 1e-12),
        "{stats}"
    );
    assert!(
        (stats["expected_score"].as_f64().unwrap() - mean_e).abs() < 1e-3,
        "{stats} vs {mean_e}"
    );
    assert!(
        (stats["drift"]["z"].as_f64().unwrap() - z).abs() < 0.02,
        "{stats} vs {z}"
    );
    assert_eq!(stats["drift"]["flagged"], false);
    assert!(
        stats["item_theta_correlation"].as_f64().unwrap() > 0.9,
        "{stats}"
    );
}

/// Adds `n` ended tests on `version` at θ = `theta`, each with one response
/// scoring `score` to `question`.
async fn synthetic(
    env: &TestEnv,
    pool: Uuid,
    version: i32,
    question: &str,
    n: i32,
    theta: f64,
    score: i16,
) {
    env.sql()
        .await
        .execute(
            "WITH t AS (
                 INSERT INTO test_sessions (id, pool_id, pool_version, status, config, seed,
                                            prior_mean, prior_sd, theta, se, items_answered, org_id)
                 SELECT gen_random_uuid(), $1, $2, 'ended', '{}', g, 0, 1, $4, 0.5, 1, $7
                 FROM generate_series(1, $3) g RETURNING id)
             INSERT INTO test_responses (session_id, seq, question_id, response, correct, score,
                                         theta_before, se_before, theta_after, se_after)
             SELECT id, 1, $5, 'x', $6::int2 = 1, $6::int2, 0, 1, $4, 0.5 FROM t",
            &[&pool, &version, &n, &theta, &question, &score, &env.org],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn drift_is_flagged_pages_are_cached_by_version_and_date_and_only_staff_read_them() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(8).await;
    let sql = env.sql().await;
    let ids: Vec<String> = sql
        .query(
            "SELECT id FROM questions WHERE pool_id = $1 ORDER BY position",
            &[&pool],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Forty examinees far below the first item all get it right: drift.
    synthetic(&env, pool, 1, &ids[0], 40, -3.0, 1).await;
    // Forty at the second item's own level, half right: no drift.
    let b: f64 = sql
        .query_one("SELECT b FROM questions WHERE id = $1", &[&ids[1]])
        .await
        .unwrap()
        .get(0);
    synthetic(&env, pool, 1, &ids[1], 20, b, 1).await;
    synthetic(&env, pool, 1, &ids[1], 20, b, 0).await;
    let path = format!("/v1/pools/{pool}/stats?limit=2");
    let first = env.get(&path).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (&first.body["total"], &first.body["tests"]),
        (&json!(8), &json!(80))
    );
    assert_eq!(items[0]["id"], ids[0]);
    assert!(
        items[0]["drift"]["z"].as_f64().unwrap() > 3.0,
        "{}",
        items[0]
    );
    assert_eq!(items[0]["drift"]["flagged"], true);
    assert_eq!(items[0]["exposure_rate"], 0.5);
    assert!(
        items[1]["drift"]["z"].as_f64().unwrap().abs() < 3.0,
        "{}",
        items[1]
    );
    assert_eq!(items[1]["drift"]["flagged"], false);
    let second = env
        .get(&format!("/v1/pools/{pool}/stats?limit=2&offset=2"))
        .await;
    assert_eq!(second.body["items"][0]["id"], ids[2]);

    // Cached: more responses do not show until the pool's entries are cleared.
    synthetic(&env, pool, 1, &ids[0], 10, -3.0, 1).await;
    assert_eq!(env.get(&path).await.body, first.body);
    let cleared = env
        .call(
            Method::POST,
            &format!("/v1/admin/cache/invalidate/pool/{pool}"),
            None,
        )
        .await;
    assert!(cleared.status.is_success(), "{}", cleared.body);
    assert_eq!(env.get(&path).await.body["items"][0]["administered"], 50);

    // A new version starts from nothing; the old one keeps its figures. Its
    // new item is a pretest item: marked, and without model expectations.
    let mut pretest = items_json(1, "v2").remove(0);
    pretest["pretest"] = json!(true);
    for field in ["a", "b", "c", "d"] {
        pretest.as_object_mut().unwrap().remove(field);
    }
    let added = env
        .post(
            &format!("/v1/pools/{pool}/items"),
            json!({ "items": [pretest] }),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let now = env.get(&format!("/v1/pools/{pool}/stats")).await;
    assert_eq!(
        (&now.body["version"], &now.body["tests"], &now.body["total"]),
        (&json!(2), &json!(0), &json!(9))
    );
    let last = &now.body["items"][8];
    assert_eq!(
        (
            &last["id"],
            &last["pretest"],
            &last["expected_score"],
            &last["drift"]["z"]
        ),
        (&pretest["id"], &json!(true), &Value::Null, &Value::Null),
        "{last}"
    );
    assert_eq!(now.body["items"][0]["pretest"], false);
    let old = env.get(&format!("/v1/pools/{pool}/stats?version=1")).await;
    assert_eq!(old.body["items"][0]["administered"], 50);
    // A version the pool has not reached does not exist (404), the largest
    // one the spec admits included; 0 is out of range (422).
    for missing in ["version=3", "version=2147483647"] {
        let r = env.get(&format!("/v1/pools/{pool}/stats?{missing}")).await;
        r.problem(404);
        assert_eq!(r.slug(), "not-found", "{missing}: {}", r.body);
    }
    for bad in [
        "version=0",
        "version=2147483648",
        "limit=0",
        "limit=501",
        "offset=-1",
    ] {
        let r = env.get(&format!("/v1/pools/{pool}/stats?{bad}")).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
    }

    // Staff of the pool's organization only.
    let (_, student) = env.member(env.org, "student").await;
    let r = env.call_as(Some(&student), Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let elsewhere = env.new_org().await;
    let (_, outsider) = env.member(elsewhere, "teacher").await;
    let r = env.call_as(Some(&outsider), Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let unknown = env
        .get(&format!("/v1/pools/{}/stats", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let _: Value = unknown.body;
}
