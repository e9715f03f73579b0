//! `GET /v1/pools/{id}/responses`: a pool's staff export every recorded
//! response once, in pages that follow the `Link` header, in the long form
//! `lectern-cat calibrate` reads, with persons pseudonymised per export; no
//! one else does, and refused requests write nothing.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use lectern_tests::{TestEnv, items_json, openapi, request};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// Another pool of the environment's organization (`demo_pool` makes one per environment).
async fn other_pool(env: &TestEnv, n: usize) -> Uuid {
    let salt = Uuid::new_v4().simple().to_string();
    let resp = env
        .post(
            "/v1/pools",
            json!({ "name": "other", "organization_id": env.org, "items": items_json(n, &salt) }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    resp.body["pool_id"].as_str().unwrap().parse().unwrap()
}

/// One page: status, body text, and the next page's path from `Link`.
struct Page {
    status: StatusCode,
    text: String,
    next: Option<String>,
}

async fn page(env: &TestEnv, token: Option<&str>, path: &str, csv: bool) -> Page {
    let mut req: Request<Body> = request(token, Method::GET, path, None);
    if csv {
        req.headers_mut()
            .insert(header::ACCEPT, "text/csv".parse().unwrap());
    }
    let response = env.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok());
    openapi::assert_conforms("GET", path, parts.status.as_u16(), content_type, &bytes);
    if parts.status == StatusCode::OK {
        let want = if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson"
        };
        assert_eq!(content_type, Some(want));
    }
    let next = parts.headers.get(header::LINK).map(|l| {
        let l = l.to_str().unwrap();
        assert!(l.ends_with(">; rel=\"next\""), "{l}");
        l[1..l.find('>').unwrap()].to_owned()
    });
    Page {
        status: parts.status,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
        next,
    }
}

/// Follows an export from `first` to its last page: the pages' texts.
async fn export(env: &TestEnv, token: &str, first: &str, csv: bool) -> Vec<String> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let p = page(env, Some(token), &path, csv).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        pages.push(p.text);
        next = p.next;
        assert!(pages.len() < 100, "the export does not end");
    }
    pages
}

/// Rows of JSON-lines pages: (person, item, score).
fn json_rows(pages: &[String]) -> Vec<(String, String, i64)> {
    pages
        .iter()
        .flat_map(|p| p.lines())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["item", "person", "score"], "{line}");
            (
                v["person"].as_str().unwrap().to_owned(),
                v["item"].as_str().unwrap().to_owned(),
                v["score"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The pool's responses as PostgreSQL holds them, in export order: (test, item, score).
async fn stored(env: &TestEnv, pool: Uuid) -> Vec<(Uuid, String, i64)> {
    env.sql()
        .await
        .query(
            "SELECT s.id, r.question_id, r.score::int8 FROM test_sessions s
             JOIN test_responses r ON r.session_id = s.id
             WHERE s.pool_id = $1 ORDER BY s.id, r.seq",
            &[&pool],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The rows match PostgreSQL's one for one, and each test has one person of
/// its own: (test → person).
fn matches(
    rows: &[(String, String, i64)],
    truth: &[(Uuid, String, i64)],
) -> BTreeMap<Uuid, String> {
    assert_eq!(rows.len(), truth.len());
    let mut person_of: BTreeMap<Uuid, String> = BTreeMap::new();
    for ((person, item, score), (test, want_item, want_score)) in rows.iter().zip(truth) {
        assert_eq!((item, score), (want_item, want_score));
        let p = person_of.entry(*test).or_insert_with(|| person.clone());
        assert_eq!(p, person, "one test, one person");
        assert!(person.len() == 21 && person.starts_with('p'), "{person}");
    }
    let distinct: BTreeSet<&String> = person_of.values().collect();
    assert_eq!(distinct.len(), person_of.len(), "two tests, one person");
    person_of
}

#[tokio::test]
async fn staff_export_every_response_once_in_pages_pseudonymised_per_export() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(30).await;
    let (ada, bea) = (env.student().await, env.student().await);
    let mut tests = vec![
        env.take_test(pool, ada, 5).await,
        env.take_test(pool, ada, 5).await,
        env.take_test(pool, bea, 5).await,
    ];
    tests.push(env.take_test(pool, env.student().await, 5).await);
    let (_, teacher) = env.member(env.org, "teacher").await;
    let truth = stored(&env, pool).await;
    assert_eq!(truth.len(), 20);

    // JSON lines, 6 rows a page: 6, 6, 6, 2, the last without a Link.
    let first = format!("/v1/pools/{pool}/responses?limit=6");
    let pages = export(&env, &teacher, &first, false).await;
    assert_eq!(
        pages.iter().map(|p| p.lines().count()).collect::<Vec<_>>(),
        [6, 6, 6, 2]
    );
    let by_json = matches(&json_rows(&pages), &truth);
    // Ada's two attempts are two persons; no id of a student or a test is written.
    assert_eq!(by_json.len(), 4);
    for page in &pages {
        for id in tests.iter().chain([&ada, &bea]) {
            assert!(!page.contains(&id.to_string()) && !page.contains(&id.simple().to_string()));
        }
    }

    // CSV, another export: a header on the first page only, so that the pages
    // joined are one file; the same rows under other names.
    let pages = export(
        &env,
        &teacher,
        &format!("/v1/pools/{pool}/responses?limit=7"),
        true,
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert!(pages[0].starts_with("person,item,score\n"));
    assert!(pages[1..].iter().all(|p| !p.contains("person,item,score")));
    let joined = pages.concat();
    let rows: Vec<(String, String, i64)> = joined
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 3, "{line}");
            (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap())
        })
        .collect();
    let by_csv = matches(&rows, &truth);
    for test in &tests {
        assert_ne!(by_json[test], by_csv[test], "exports must not be linkable");
    }
    // Each export is recorded with who made it.
    let sql = env.sql().await;
    let made: Vec<Option<Uuid>> = sql
        .query(
            "SELECT created_by FROM response_exports WHERE pool_id = $1",
            &[&pool],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(made.len(), 2);
    // An empty pool exports an empty page (CSV: the header alone).
    let empty = other_pool(&env, 3).await;
    let p = page(
        &env,
        Some(&teacher),
        &format!("/v1/pools/{empty}/responses"),
        true,
    )
    .await;
    assert_eq!(
        (p.status, p.text.as_str(), p.next),
        (StatusCode::OK, "person,item,score\n", None)
    );
}

#[tokio::test]
async fn only_the_pools_staff_export_and_refusals_write_nothing() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(20).await;
    env.take_test(pool, env.student().await, 4).await;
    let path = format!("/v1/pools/{pool}/responses");
    let (_, teacher) = env.member(env.org, "teacher").await;
    let (_, colleague) = env.member(env.org, "teacher").await;
    let (_, org_admin) = env.member(env.org, "org_admin").await;
    let (_, student) = env.member(env.org, "student").await;
    let elsewhere = env.new_org().await;
    let (_, outsider) = env.member(elsewhere, "teacher").await;
    let exports = || async { env.count("response_exports").await };

    let p = page(&env, Some(&student), &path, false).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    let p = page(&env, Some(&outsider), &path, false).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.text);
    let p = page(&env, None, &path, false).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    for bad in [
        "limit=0",
        "limit=25001",
        "cursor=not-a-cursor",
        "cursor=AAAA",
        "colour=red",
    ] {
        let p = page(&env, Some(&teacher), &format!("{path}?{bad}"), false).await;
        assert!(
            matches!(p.status.as_u16(), 400 | 422),
            "{bad}: {} {}",
            p.status,
            p.text
        );
    }
    assert_eq!(exports().await, 0, "a refused request started an export");

    // A cursor is its maker's, for its pool.
    let first = page(&env, Some(&teacher), &format!("{path}?limit=1"), false).await;
    assert_eq!(first.status, StatusCode::OK);
    let next = first.next.expect("four responses, one a page");
    let p = page(&env, Some(&colleague), &next, false).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    let other = other_pool(&env, 5).await;
    let p = page(
        &env,
        Some(&teacher),
        &next.replace(&pool.to_string(), &other.to_string()),
        false,
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert_eq!(
        page(&env, Some(&teacher), &next, false).await.status,
        StatusCode::OK
    );
    assert_eq!(exports().await, 1);
    // The organization's admin exports too.
    assert_eq!(
        page(&env, Some(&org_admin), &path, false).await.status,
        StatusCode::OK
    );

    // A shared pool's responses come from many organizations: platform admins only.
    let salt = Uuid::new_v4().simple().to_string();
    let made = env
        .post(
            "/v1/pools",
            json!({ "name": "shared", "shared": true, "items": items_json(5, &salt) }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let shared = made.body["pool_id"].as_str().unwrap();
    let shared_path = format!("/v1/pools/{shared}/responses");
    let p = page(&env, Some(&teacher), &shared_path, false).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    let admin = env.admin_token();
    assert_eq!(
        page(&env, Some(&admin), &shared_path, false).await.status,
        StatusCode::OK
    );
    assert_eq!(exports().await, 3);
}

/// 1,000,000 responses (50,000 tests of 20) exported in pages of 25,000:
/// prints each page's time and size. Run by hand:
/// `cargo nextest run -p lectern-tests --run-ignored only a_million`.
#[tokio::test]
#[ignore = "a measurement: inserts a million rows"]
async fn a_million_responses_export_in_pages() {
    let env = TestEnv::new().await;
    let pool = env.demo_pool(40).await;
    let sql = env.sql().await;
    let started = std::time::Instant::now();
    sql.batch_execute(&format!(
        "INSERT INTO test_sessions (id, pool_id, pool_version, status, config, seed, prior_mean, prior_sd,
                                    theta, se, items_answered, org_id)
         SELECT md5(g::text || 'x')::uuid, '{pool}', 1, 'ended', '{{}}', g, 0, 1,
                ((g % 41) - 20) / 10.0, 0.3, 20, '{org}'
         FROM generate_series(1, 50000) g;
         INSERT INTO test_responses (session_id, seq, question_id, response, correct, score,
                                     theta_before, se_before, theta_after, se_after)
         SELECT md5(g::text || 'x')::uuid, k, q.id, 'x', (g + k) % 2 = 0, (g + k) % 2, 0, 1, 0, 1
         FROM generate_series(1, 50000) g, generate_series(1, 20) k
         JOIN LATERAL (SELECT id FROM questions WHERE pool_id = '{pool}' ORDER BY position OFFSET k - 1 LIMIT 1) q ON true;",
        org = env.org
    ))
    .await
    .unwrap();
    println!(
        "inserted 1,000,000 responses in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let token = env.admin_token();
    let mut next = Some(format!("/v1/pools/{pool}/responses?limit=25000"));
    let (mut rows, mut pages, mut slowest, mut largest) = (0usize, 0, 0.0_f64, 0usize);
    let all = std::time::Instant::now();
    while let Some(path) = next {
        let t = std::time::Instant::now();
        let p = page(&env, Some(&token), &path, false).await;
        let s = t.elapsed().as_secs_f64();
        assert_eq!(p.status, StatusCode::OK);
        rows += p.text.lines().count();
        pages += 1;
        slowest = slowest.max(s);
        largest = largest.max(p.text.len());
        next = p.next;
    }
    println!(
        "exported {rows} rows in {pages} pages, {:.1} s in all; slowest page {:.2} s, largest {:.2} MB",
        all.elapsed().as_secs_f64(),
        slowest,
        largest as f64 / 1e6
    );
    assert_eq!(rows, 1_000_000);
    // The item statistics of the same million responses: one statement, then the cache.
    for pass in ["computed", "cached"] {
        let t = std::time::Instant::now();
        let stats = env.get(&format!("/v1/pools/{pool}/stats?limit=40")).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
        assert_eq!(stats.body["tests"], 50_000);
        println!(
            "item statistics of 40 items over 1,000,000 responses ({pass}): {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
}
