//! `lectern-cachebench`: see `lectern-cachebench --help`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use lectern::services::auth::Role;
use lectern::services::auth::sessions::{self, Meta};
use lectern::{App, Config};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// Cached against uncached reads, on real Redis and PostgreSQL: seeds a pool
/// and a student with a history in a schema and key prefix of its own, then
/// times the same requests through two apps in this process (the routers the
/// Lambda functions run), one with the cache and one with `CACHE_ENABLED=false`,
/// and prints latency per read and the speed-up. Leaves nothing behind.
#[derive(Debug, Parser)]
#[command(name = "lectern-cachebench", version)]
struct Cli {
    /// PostgreSQL to use (a schema is made in it and dropped after).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Redis to use (under a key prefix of the run's own, deleted after).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Items in the pool read.
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Tests in the student's history (each answered 5 times, then ended).
    #[arg(long, default_value_t = 20)]
    tests: usize,
    /// Timed reads per request and app.
    #[arg(long, default_value_t = 1000)]
    reads: usize,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let run = Uuid::new_v4().simple().to_string();
    let schema = format!("cachebench_{run}");
    let prefix = format!("cachebench:{run}:");
    let admin = connect(&cli.database_url).await;
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the run's schema");
    let result = bench(&cli, &schema, &prefix).await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the run's schema");
    let removed = remove_keys(&cli.redis_url, &prefix).await;
    eprintln!("cleaned up: schema {schema}, {removed} Redis keys");
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL: {e}"));
    tokio::spawn(conn);
    client
}

/// One app on the run's schema and prefix, with these extra settings.
fn app(cli: &Cli, schema: &str, prefix: &str, extra: &[(&str, &str)]) -> App {
    let sep = if cli.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let database_url = format!(
        "{}{sep}options=-c%20search_path%3D{schema}",
        cli.database_url
    );
    let vars = [
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", cli.redis_url.as_str()),
        ("REDIS_KEY_PREFIX", prefix),
        ("DB_POOL_MAX", "4"),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .chain(extra)
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .expect("configuration");
    App::new(config).expect("app")
}

async fn bench(cli: &Cli, schema: &str, prefix: &str) -> Result<(), String> {
    let cached = app(cli, schema, prefix, &[]);
    let uncached = app(cli, schema, prefix, &[("CACHE_ENABLED", "false")]);
    lectern::store::db::migrate(cached.db())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "seeding: a pool of {} items, a student with {} tests",
        cli.items, cli.tests
    );
    let admin_id = lectern::store::users::ensure(cached.db(), "admin@cachebench.invalid", "admin")
        .await
        .map_err(|e| e.to_string())?;
    let token = sessions::open(
        &cached,
        admin_id,
        Role::Admin,
        "bench".into(),
        &Meta::default(),
    )
    .await
    .map_err(|e| e.to_string())?
    .token;
    let router = lectern::api::router(cached.clone());
    let client = Client {
        token: token.clone(),
    };
    let items: Vec<Value> = (0..cli.items)
        .map(|i| {
            json!({ "content": format!("Question {i}: which is right?"),
                    "options": ["right", "wrong", "also wrong", "not this"],
                    "correct_answer": "right", "concepts": [format!("c{}", i % 5)],
                    "a": 0.8 + (i % 7) as f64 * 0.2, "b": (i % 13) as f64 * 0.4 - 2.4 })
        })
        .collect();
    let pool = client
        .call(
            &router,
            Method::POST,
            "/v1/pools",
            Some(json!({ "name": "bench", "items": items })),
        )
        .await?;
    let pool_id = pool["pool_id"].as_str().ok_or("no pool id")?.to_owned();
    let student =
        lectern::store::users::ensure(cached.db(), "student@cachebench.invalid", "student")
            .await
            .map_err(|e| e.to_string())?;
    for n in 0..cli.tests {
        let started = client
            .call(
                &router,
                Method::POST,
                "/v1/tests",
                Some(json!({ "pool_id": pool_id, "student_id": student, "config": { "max_items": 5, "min_items": 5 } })),
            )
            .await?;
        let test = started["test_id"].as_str().ok_or("no test id")?.to_owned();
        let mut question = started["question"].clone();
        while !question.is_null() {
            let response = if n % 2 == 0 { "right" } else { "wrong" };
            let answered = client
                .call(
                    &router,
                    Method::POST,
                    &format!("/v1/tests/{test}/responses"),
                    Some(json!({ "question_id": question["id"], "response": response })),
                )
                .await?;
            question = answered["next_question"].clone();
        }
        client
            .call(
                &router,
                Method::POST,
                &format!("/v1/tests/{test}/end"),
                None,
            )
            .await?;
    }
    let reads = [
        ("pool detail", format!("/v1/pools/{pool_id}")),
        ("pool list", "/v1/pools".to_owned()),
        ("test history", format!("/v1/students/{student}/tests")),
        ("proficiency", format!("/v1/students/{student}/proficiency")),
        ("profile", format!("/v1/users/{student}")),
    ];
    let uncached_router = lectern::api::router(uncached);
    println!(
        "{:<14} {:>7} {:>13} {:>13} {:>13} {:>13} {:>8}",
        "read", "bytes", "uncached p50", "cached p50", "uncached mean", "cached mean", "speed-up"
    );
    for (name, path) in &reads {
        let body = client.call(&router, Method::GET, path, None).await?; // warms the cache
        let bytes = body.to_string().len();
        let slow = client.time(&uncached_router, path, cli.reads).await?;
        let fast = client.time(&router, path, cli.reads).await?;
        println!(
            "{name:<14} {bytes:>7} {:>10.0} µs {:>10.0} µs {:>10.0} µs {:>10.0} µs {:>7.1}×",
            slow.p50_us,
            fast.p50_us,
            slow.mean_us,
            fast.mean_us,
            slow.mean_us / fast.mean_us
        );
    }
    let stats = client
        .call(&router, Method::GET, "/v1/admin/cache/stats", None)
        .await?;
    for kind in ["pool", "pools", "user"] {
        let ns = &stats["namespaces"][kind];
        println!(
            "cache {kind:<5}: {} lookups, {} hits, {} misses, hit ratio {:.4}",
            ns["lookups"],
            ns["hits"],
            ns["misses"],
            ns["hit_ratio"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// Latency of one read, over many.
struct Timing {
    p50_us: f64,
    mean_us: f64,
}

/// Requests as the run's admin.
struct Client {
    token: String,
}

impl Client {
    async fn call(
        &self,
        router: &Router,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !(status.is_success() || status == StatusCode::CREATED) {
            return Err(format!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn time(&self, router: &Router, path: &str, reads: usize) -> Result<Timing, String> {
        let mut took = Vec::with_capacity(reads);
        for _ in 0..reads {
            let started = Instant::now();
            self.call(router, Method::GET, path, None).await?;
            took.push(started.elapsed());
        }
        took.sort_unstable();
        let total: Duration = took.iter().sum();
        Ok(Timing {
            p50_us: took[took.len() / 2].as_secs_f64() * 1e6,
            mean_us: total.as_secs_f64() * 1e6 / reads as f64,
        })
    }
}

/// Deletes every key under `prefix` (SCAN, never KEYS); how many went.
async fn remove_keys(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let mut cursor = 0u64;
    let mut removed = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
            removed += keys.len();
        }
        if next == 0 {
            return removed;
        }
        cursor = next;
    }
}
