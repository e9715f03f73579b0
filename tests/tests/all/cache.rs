//! The cache layer against the real Redis and PostgreSQL: exact hit and miss
//! accounting, single flight within and across containers, invalidation seen
//! by a second container, the admin endpoints, and Redis going away.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use lectern::App;
use lectern::cache::Namespace;
use lectern_tests::{OwnRedis, Proxy, TestEnv, items_json};
use redis::AsyncCommands;
use serde_json::{Value, json};
use uuid::Uuid;

/// A pool of `n` items, made through the API.
async fn pool(env: &TestEnv, n: usize) -> String {
    let salt = Uuid::new_v4().to_string();
    let r = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "cached", "items": items_json(n, &salt) }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pool_id"].as_str().unwrap().to_owned()
}

/// Adds `n` items to a pool through `router`.
async fn add_items(env: &TestEnv, router: &axum::Router, pool: &str, n: usize) {
    let salt = Uuid::new_v4().to_string();
    let r = env
        .call_on(
            router,
            Method::POST,
            &format!("/v1/pools/{pool}/items"),
            Some(json!({ "items": items_json(n, &salt) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// `POST /v1/admin/cache/invalidate/{kind}/{id}` as the admin.
async fn invalidate(env: &TestEnv, kind: &str, id: &str) -> lectern_tests::Resp {
    let path = format!("/v1/admin/cache/invalidate/{kind}/{id}");
    env.call(Method::POST, &path, None).await
}

/// `GET /v1/admin/cache/stats`.
async fn stats(env: &TestEnv) -> Value {
    let r = env.get("/v1/admin/cache/stats").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// (lookups, hits, misses) of one namespace kind.
fn counts(stats: &Value, kind: &str) -> (u64, u64, u64) {
    let ns = &stats["namespaces"][kind];
    let n = |f: &str| ns[f].as_u64().unwrap();
    (n("lookups"), n("hits"), n("misses"))
}

/// Hits and misses are counted exactly: a scripted sequence of reads and
/// writes gives the counts worked out by hand.
#[tokio::test]
async fn hit_and_miss_counts_are_exact_over_a_scripted_sequence() {
    let env = TestEnv::new().await;
    let fresh = stats(&env).await;
    for kind in ["user", "history", "proficiency", "pool", "pools", "ai"] {
        assert_eq!(counts(&fresh, kind), (0, 0, 0), "{kind}");
        assert!(fresh["namespaces"][kind]["hit_ratio"].is_null());
    }
    let id = pool(&env, 3).await;
    let detail = format!("/v1/pools/{id}");
    for _ in 0..3 {
        let r = env.get(&detail).await; // miss, hit, hit
        assert_eq!(r.body["item_count"], 3, "{}", r.body);
    }
    assert_eq!(env.get("/v1/pools").await.status, StatusCode::OK); // miss
    assert_eq!(env.get("/v1/pools").await.status, StatusCode::OK); // hit
    assert_eq!(env.get("/v1/pools?limit=10").await.status, StatusCode::OK); // miss: another page
    add_items(&env, &env.router, &id, 1).await;
    let r = env.get(&detail).await; // miss: the write invalidated it
    assert_eq!(r.body["item_count"], 4);
    let listed = env.get("/v1/pools").await; // miss
    assert_eq!(listed.body["pools"][0]["item_count"], 4);
    let unknown = format!("/v1/pools/{}", Uuid::new_v4());
    // Neither: the scope check (one statement) finds no such pool before the cache is asked.
    assert_eq!(env.get(&unknown).await.status, StatusCode::NOT_FOUND);
    assert_eq!(env.get(&unknown).await.status, StatusCode::NOT_FOUND);
    let s = stats(&env).await;
    assert_eq!(counts(&s, "pool"), (4, 2, 2));
    assert_eq!(s["namespaces"]["pool"]["hit_ratio"], 0.5);
    assert_eq!(counts(&s, "pools"), (4, 1, 3));
    for kind in ["user", "history", "proficiency"] {
        assert_eq!(counts(&s, kind), (0, 0, 0), "{kind}");
    }
    // One detail entry (current version), one version key; bytes are counted.
    assert!(
        s["namespaces"]["pool"]["keys"].as_u64().unwrap() >= 2,
        "{s}"
    );
    assert!(
        s["namespaces"]["pool"]["bytes_estimate"].as_u64().unwrap() > 100,
        "{s}"
    );
    assert_eq!(s["complete"], true);
    env.assert_redis_clean().await;
}

/// 50 concurrent misses on one key: the source computes once, in one process
/// (moka) and across five (the Redis lease).
#[tokio::test]
async fn fifty_concurrent_misses_load_once() {
    let env = TestEnv::new().await;
    for containers in [1, 5] {
        let apps: Vec<App> = (0..containers)
            .map(|_| App::new(env.app.config().clone()).unwrap())
            .collect();
        let ns = Namespace::User(Uuid::new_v4());
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let (app, ns, loads) = (apps[i % containers].clone(), ns.clone(), loads.clone());
            tasks.spawn(async move {
                let value = app
                    .cache()
                    .get_or_load(&ns, "slow", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, Infallible>(vec![containers as u32; 3])
                    })
                    .await
                    .unwrap();
                *value == vec![containers as u32; 3]
            });
        }
        let answers = tasks.join_all().await;
        assert!(answers.iter().all(|&right| right));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "{containers} containers");
    }
    let s = stats(&env).await;
    // Every caller looked up; one load per round.
    assert_eq!(counts(&s, "user"), (100, 98, 2));
}

/// A write through one container is seen by the next read through another.
#[tokio::test]
async fn a_write_is_seen_at_once_by_a_second_container() {
    let env = TestEnv::new().await;
    let twin = env.twin();
    let id = pool(&env, 3).await;
    let detail = format!("/v1/pools/{id}");
    assert_eq!(env.get(&detail).await.body["item_count"], 3);
    assert_eq!(env.get("/v1/pools").await.body["pools"][0]["item_count"], 3);
    add_items(&env, &twin, &id, 2).await;
    assert_eq!(env.get(&detail).await.body["item_count"], 5);
    assert_eq!(env.get("/v1/pools").await.body["pools"][0]["item_count"], 5);

    // A student's history and proficiency follow their test through start, answer and end.
    let me = env.admin;
    let history = format!("/v1/students/{me}/tests");
    let proficiency = format!("/v1/students/{me}/proficiency");
    assert_eq!(env.get(&history).await.body["total"], 0);
    assert!(env.get(&proficiency).await.body["overall"].is_null());
    let started = env
        .call_on(
            &twin,
            Method::POST,
            "/v1/tests",
            Some(json!({ "pool_id": id })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let listed = env.get(&history).await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["tests"][0]["items_answered"], 0);
    let answered = env.answer(&test, &started.body["question"], true).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let listed = env.call_on(&twin, Method::GET, &history, None).await;
    assert_eq!(listed.body["tests"][0]["items_answered"], 1);
    let ended = env
        .call_on(&twin, Method::POST, &format!("/v1/tests/{test}/end"), None)
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(env.get(&history).await.body["tests"][0]["status"], "ended");
    assert!(env.get(&proficiency).await.body["overall"]["theta"].is_number());
}

/// What PostgreSQL changes behind the cache's back stays unseen until an
/// admin invalidates; then the next read has it.
#[tokio::test]
async fn the_admin_invalidations_drop_a_user_or_a_pool() {
    let env = TestEnv::new().await;
    let id = pool(&env, 2).await;
    let (student, token) = env.user(lectern::services::auth::Role::Student).await;
    let profile = format!("/v1/users/{student}");
    let read_profile = || env.call_as(Some(&token), Method::GET, &profile, None);
    assert_eq!(read_profile().await.body["id"], student.to_string());
    assert_eq!(
        env.get(&format!("/v1/pools/{id}")).await.body["name"],
        "cached"
    );
    let sql = env.sql().await;
    sql.execute(
        "UPDATE users SET display_name = 'Renamed' WHERE id = $1",
        &[&student],
    )
    .await
    .unwrap();
    sql.execute("UPDATE item_pools SET name = 'renamed'", &[])
        .await
        .unwrap();
    assert_ne!(read_profile().await.body["display_name"], "Renamed");
    assert_eq!(
        env.get(&format!("/v1/pools/{id}")).await.body["name"],
        "cached"
    );

    let r = invalidate(&env, "user", &student.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mine = ["user", "history", "proficiency"].map(|kind| format!("{kind}:{student}"));
    assert_eq!(r.body["namespaces"], json!(mine));
    assert_eq!(read_profile().await.body["display_name"], "Renamed");
    let r = invalidate(&env, "pool", &id.to_string()).await;
    assert_eq!(r.body["namespaces"], json!([format!("pool:{id}"), "pools"]));
    assert_eq!(
        env.get(&format!("/v1/pools/{id}")).await.body["name"],
        "renamed"
    );
    assert_eq!(
        env.get("/v1/pools").await.body["pools"][0]["name"],
        "renamed"
    );

    // Unknown and malformed ids are 404 and bump nothing.
    for kind in ["user", "pool"] {
        for id in [Uuid::new_v4().to_string(), "nope".into()] {
            let r = invalidate(&env, kind, &id).await;
            assert_eq!(r.slug(), "not-found", "{kind} {id}: {}", r.body);
        }
    }
    let versions = lectern_tests::keys_under(
        &mut env.redis().await,
        &format!("{}cache:*:version", env.prefix),
    )
    .await
    .unwrap();
    assert_eq!(
        versions.len(),
        5,
        "the user's three, pool and pools: {versions:?}"
    );
}

/// Cleanup removes entries of superseded versions, keys without a TTL and
/// expired session-index members, reports each, and a second run finds nothing.
#[tokio::test]
async fn cleanup_removes_what_is_stale_and_reports_it() {
    let env = TestEnv::new().await;
    let id = pool(&env, 2).await;
    assert_eq!(
        env.get(&format!("/v1/pools/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(env.get("/v1/pools").await.status, StatusCode::OK);
    // Still current: survives.
    assert_eq!(
        env.get(&format!("/v1/students/{}/tests", env.admin))
            .await
            .status,
        StatusCode::OK
    );
    let r = invalidate(&env, "pool", &id.to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut redis = env.redis().await;
    let junk = format!("{}cache:{{pools}}:entry:junk", env.prefix);
    let _: () = redis.set(&junk, "no ttl").await.unwrap();
    let index = format!("{}auth:{{index}}:sessions", env.prefix);
    let _: () = redis.zadd(&index, "expired-long-ago", 1).await.unwrap();

    let r = env
        .call(Method::POST, "/v1/admin/cache/cleanup", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["stale_entries"], 2, "{}", r.body);
    assert_eq!(r.body["keys_without_ttl"], 1, "{}", r.body);
    assert_eq!(r.body["index_entries"], 1, "{}", r.body);
    assert_eq!(r.body["complete"], true);
    let left = lectern_tests::keys_under(&mut redis, &format!("{}cache:*:entry:*", env.prefix))
        .await
        .unwrap();
    assert_eq!(
        left,
        [format!(
            "{}cache:{{history:{}}}:entry:tests:20:0:all:own",
            env.prefix, env.admin
        )]
    );
    let members: Vec<String> = redis.zrange(&index, 0, -1).await.unwrap();
    assert!(!members.contains(&"expired-long-ago".to_owned()));

    let again = env
        .call(Method::POST, "/v1/admin/cache/cleanup", None)
        .await;
    for field in ["stale_entries", "keys_without_ttl", "index_entries"] {
        assert_eq!(again.body[field], 0, "{field}: {}", again.body);
    }
    env.assert_redis_clean().await;
}

/// A batch read finds what it can and loads only the rest, in one call.
#[tokio::test]
async fn a_batch_read_loads_only_the_missing_keys() {
    let env = TestEnv::new().await;
    let ns = Namespace::User(Uuid::new_v4());
    let asked = std::sync::Mutex::new(Vec::new());
    let load = |keys: Vec<String>| {
        asked.lock().unwrap().push(keys.clone());
        async move { Ok::<_, Infallible>(keys.iter().map(|k| format!("value of {k}")).collect()) }
    };
    let keys = |names: &[&str]| names.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let first: Vec<String> = env
        .app
        .cache()
        .get_or_load_many(&ns, &keys(&["a", "b", "c"]), load)
        .await
        .unwrap();
    assert_eq!(first, ["value of a", "value of b", "value of c"]);
    let second: Vec<String> = env
        .app
        .cache()
        .get_or_load_many(&ns, &keys(&["c", "d", "a"]), load)
        .await
        .unwrap();
    assert_eq!(second, ["value of c", "value of d", "value of a"]);
    assert_eq!(
        *asked.lock().unwrap(),
        [keys(&["a", "b", "c"]), keys(&["d"])]
    );
    assert_eq!(counts(&stats(&env).await, "user"), (6, 2, 4));
    // After an invalidation every key loads again.
    env.app.cache().invalidate(std::slice::from_ref(&ns)).await;
    let third: Vec<String> = env
        .app
        .cache()
        .get_or_load_many(&ns, &keys(&["b"]), load)
        .await
        .unwrap();
    assert_eq!(third, ["value of b"]);
    assert_eq!(asked.lock().unwrap().last().unwrap(), &keys(&["b"]));
}

/// Redis cut: reads are served from PostgreSQL, writes still succeed, and the
/// invalidation Redis missed is sent when it is back, so no stale entry is
/// served after the outage.
#[tokio::test]
async fn redis_down_bypasses_the_cache_and_catches_up_after() {
    // A server of the test's own behind the proxy: one node, whatever the shared Redis is.
    let own = OwnRedis::start();
    let upstream = own.url().trim_start_matches("redis://").to_owned();
    let proxy = Proxy::start(&upstream).await;
    let env = TestEnv::with_urls(&format!("redis://{}", proxy.addr), None).await;
    let id = pool(&env, 2).await;
    let detail = format!("/v1/pools/{id}");
    assert_eq!(env.get(&detail).await.body["item_count"], 2); // cached
    proxy.cut();
    for _ in 0..3 {
        let r = env.get(&detail).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["item_count"], 2);
    }
    add_items(&env, &env.router, &id, 1).await; // its invalidation cannot reach Redis
    let r = env.get(&detail).await;
    assert_eq!(
        r.body["item_count"], 3,
        "the source serves while Redis is away"
    );
    proxy.restore();
    // Once Redis answers again, the pending bump goes out with the first lookup.
    let mut recovered = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if env.app.redis().ping().await.is_ok() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "Redis is back");
    let r = env.get(&detail).await;
    assert_eq!(
        r.body["item_count"], 3,
        "no stale entry after the outage: {}",
        r.body
    );
    let mut redis = own.conn().await;
    let version: i64 = redis
        .get(format!("{}cache:{{pool:{id}}}:version", env.prefix))
        .await
        .unwrap();
    assert_eq!(version, 1, "the missed invalidation was applied");
    // And the cache is used again: a second read is a hit.
    let before = counts(&stats(&env).await, "pool");
    assert_eq!(env.get(&detail).await.body["item_count"], 3);
    let after = counts(&stats(&env).await, "pool");
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
}
