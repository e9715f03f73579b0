//! Test harness: every `TestEnv` gets its own PostgreSQL schema and Redis key
//! prefix on the real servers, and removes both when dropped (even on panic),
//! so tests run in parallel and leave nothing behind.
//!
//! `LECTERN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/lectern_test`)
//! and `LECTERN_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) pick the servers.

pub mod emulator;
pub mod fake_ai;
pub mod fake_eventbridge;
pub mod fake_secrets;
pub mod oidc;
pub mod openapi;
pub mod semantic_threshold;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use lectern::services::auth::Role;
use lectern::services::auth::sessions::{self, Meta};
use lectern::store::StoreError;
use lectern::store::conn::{Conn, Target};
use lectern::{App, Config};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// Base PostgreSQL URL of the test database.
pub fn database_url() -> String {
    std::env::var("LECTERN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/lectern_test".into())
}

/// Redis URL of the test server (any node, when it is a cluster).
pub fn redis_url() -> String {
    std::env::var("LECTERN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the test Redis is a Redis Cluster (`LECTERN_TEST_REDIS_CLUSTER=true`);
/// environments then run with `REDIS_CLUSTER=true`.
pub fn redis_cluster() -> bool {
    std::env::var("LECTERN_TEST_REDIS_CLUSTER").is_ok_and(|v| v == "true")
}

/// The test Redis, as a connection target.
fn redis_target() -> Target {
    Target {
        url: redis_url(),
        cluster: redis_cluster(),
        timeout: std::time::Duration::from_secs(5),
    }
}

/// A connection to the test Redis (the cluster client when it is a cluster).
pub async fn redis_conn() -> Conn {
    let target = redis_target();
    Conn::connect(&target, None).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test Redis {}: {e} (run infra/local.sh up)",
            target.url
        )
    })
}

/// A URL with no server behind it (a closed port on loopback).
pub const DEAD_REDIS_URL: &str = "redis://127.0.0.1:1";
/// A PostgreSQL URL with no server behind it.
pub const DEAD_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:1/none";

/// One response, body parsed as JSON (Null when empty).
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Value,
}

impl Resp {
    /// Asserts a problem+json error with this status; returns its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{:?}",
            self.headers
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:lectern:problem:"),
            "{}",
            self.body
        );
        assert!(self.body["title"].is_string());
        self.body["detail"]
            .as_str()
            .expect("problem has a detail")
            .to_owned()
    }

    /// The problem slug (`urn:lectern:problem:<slug>`).
    pub fn slug(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:lectern:problem:")
    }
}

/// One isolated environment: schema + key prefix + app + router.
pub struct TestEnv {
    /// The app under test.
    pub app: App,
    /// All routes, as the local server serves them.
    pub router: Router,
    /// This environment's PostgreSQL schema.
    pub schema: String,
    /// This environment's Redis key prefix.
    pub prefix: String,
    /// The database the app talks to: this schema, or the one given to [`TestEnv::with_urls`].
    pub database_url: String,
    /// The administrator requests go out as unless a test says otherwise (a
    /// platform admin, member of no organization).
    pub admin: Uuid,
    admin_token: std::sync::Mutex<String>,
    /// This environment's organization: [`TestEnv::user`] makes members of it
    /// and [`TestEnv::demo_pool`] pools in it.
    pub org: Uuid,
    /// A class of [`TestEnv::org`]: its students are enrolled in it, its teachers teach it.
    pub class: Uuid,
}

/// An organization with one class, made where the app looks: (org, class).
async fn seed_org(db: &lectern::store::db::Pool) -> Result<(Uuid, Uuid), StoreError> {
    let (org, class) = (Uuid::new_v4(), Uuid::new_v4());
    let slug = format!("test-{}", org.simple());
    let client = db.get().await?;
    client
        .execute(
            "INSERT INTO organizations (id, name, slug) VALUES ($1, 'Test school', $2)",
            &[&org, &slug],
        )
        .await?;
    client
        .execute(
            "INSERT INTO classes (id, org_id, name) VALUES ($1, $2, 'Test class')",
            &[&class, &org],
        )
        .await?;
    Ok((org, class))
}

/// A database URL whose connections use `schema` as their search path.
pub fn url_with_schema(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    // The application name lets clean-up find (and end) every connection of this environment.
    format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
}

impl TestEnv {
    /// A fresh schema (migrated) and key prefix on the real servers.
    pub async fn new() -> Self {
        Self::with_urls(&redis_url(), None).await
    }

    /// Like `new`, but the app talks to `redis` and, when given, to `database` instead
    /// of the test servers (to simulate outages); the schema is still made on the real one.
    pub async fn with_urls(redis: &str, database: Option<&str>) -> Self {
        Self::with_settings(redis, database, &[]).await
    }

    /// An environment whose app reaches PostgreSQL through a [`Proxy`] the test
    /// can cut; the schema lives in the returned `healthy` environment, which
    /// must outlive it.
    pub async fn behind_database_proxy() -> (TestEnv, Proxy, TestEnv) {
        Self::behind_database_proxy_on(&redis_url()).await
    }

    /// [`TestEnv::behind_database_proxy`], its app on this Redis (an [`OwnRedis`]).
    pub async fn behind_database_proxy_on(redis: &str) -> (TestEnv, Proxy, TestEnv) {
        let healthy = TestEnv::new().await;
        let upstream = healthy
            .database_url
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("a host:port in the test database URL")
            .to_owned();
        let proxy = Proxy::start(&upstream).await;
        let proxied = healthy
            .database_url
            .replacen(&upstream, &proxy.addr.to_string(), 1);
        let env = TestEnv::with_urls(redis, Some(&proxied)).await;
        (healthy, proxy, env)
    }

    /// A fresh environment whose app also gets these settings (e.g. short session timeouts).
    pub async fn with_vars(vars: &[(&str, String)]) -> Self {
        Self::with_settings(&redis_url(), None, vars).await
    }

    /// [`TestEnv::with_vars`] on this Redis (an [`OwnRedis`], to stop it).
    pub async fn with_redis_and_vars(redis: &str, vars: &[(&str, String)]) -> Self {
        Self::with_settings(redis, None, vars).await
    }

    async fn with_settings(redis: &str, database: Option<&str>, extra: &[(&str, String)]) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let schema = format!("t_{id}");
        let prefix = format!("lectern-test:{id}:");
        let base = database_url();
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach the test database {base}: {e} (run infra/local.sh up)")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create schema");
        let database_url = url_with_schema(&base, &schema);
        let app_db = database
            .map(str::to_owned)
            .unwrap_or_else(|| database_url.clone());
        // The shared test Redis may be a cluster; a test's own server (outages) never is.
        let cluster = redis == redis_url() && redis_cluster();
        let vars = [
            ("REDIS_CLUSTER", cluster.to_string()),
            ("REDIS_URL", redis.to_owned()),
            ("DATABASE_URL", app_db.clone()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
            ("DB_POOL_MAX", "8".into()),
            ("DB_TIMEOUT_MS", "2000".into()),
            ("REDIS_TIMEOUT_MS", "500".into()),
            // Tests drain the outbox themselves, when they choose to.
            ("EVENTS_DRAIN_AFTER_WRITES", "false".into()),
        ];
        // The app's configuration, on `db` (the app's database, or this schema's).
        let config_on = |db: &str| {
            Config::from_lookup(|k| {
                if k == "DATABASE_URL" {
                    return Some(db.to_owned());
                }
                extra
                    .iter()
                    .chain(&vars)
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.clone())
            })
            .expect("test config")
        };
        let app = App::new(config_on(&app_db)).expect("app");
        // Migrate through a pool of our own: the app's may point at a dead server on purpose.
        let pool =
            lectern::store::db::pool(&database_url, 1, std::time::Duration::from_secs(5)).unwrap();
        lectern::store::db::migrate(&pool)
            .await
            .expect("migrations apply");
        // The admin lives where the app looks (another environment's schema, when
        // given one), or in this schema when the app's database is dead on purpose.
        let email = new_email();
        let admin = match lectern::store::users::ensure(app.db(), &email, "admin").await {
            Ok(id) => id,
            Err(_) => lectern::store::users::ensure(&pool, &email, "admin")
                .await
                .expect("an admin"),
        };
        let (org, class) = match seed_org(app.db()).await {
            Ok(seeded) => seeded,
            Err(_) => seed_org(&pool).await.expect("an organization"),
        };
        let router = lectern::api::router(app.clone());
        let env = Self {
            app,
            router,
            schema,
            prefix,
            database_url: app_db,
            admin,
            admin_token: std::sync::Mutex::new(String::new()),
            org,
            class,
        };
        // With Redis out of reach on purpose there is no session to open. With
        // the app's PostgreSQL dead on purpose, the admin's session is opened
        // by an app on this schema's database and the same Redis (PostgreSQL's
        // copy of it then lives here, where the app cannot rebuild it from).
        let token = match env.try_sign_in(admin, Role::Admin).await {
            Ok(token) => Some(token),
            Err(_) if database.is_some() => {
                let beside = App::new(config_on(&database_url)).expect("app");
                sessions::open(&beside, admin, Role::Admin, "test".into(), &Meta::default())
                    .await
                    .ok()
                    .map(|o| o.token)
            }
            Err(_) => None,
        };
        if let Some(token) = token {
            *env.admin_token.lock().unwrap() = token;
        }
        env
    }

    /// A session for `user` with `role`, straight through the library (no password).
    pub async fn sign_in(&self, user: Uuid, role: Role) -> String {
        self.try_sign_in(user, role).await.expect("a session opens")
    }

    async fn try_sign_in(
        &self,
        user: Uuid,
        role: Role,
    ) -> Result<String, lectern::services::auth::Error> {
        let opened = sessions::open(&self.app, user, role, "test".into(), &Meta::default()).await?;
        Ok(opened.token)
    }

    /// Signs up through the API (`POST /v1/users`): the new account's id.
    pub async fn sign_up(&self, email: &str, password: &str, display_name: &str) -> Uuid {
        let body = json!({ "email": email, "password": password, "display_name": display_name });
        let made = self
            .call_as(None, Method::POST, "/v1/users", Some(body))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        made.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Signs in through the API (`POST /v1/sessions`) from the client
    /// address `from` (`ip:port`, what the server sees as the peer).
    pub async fn sign_in_from(&self, email: &str, password: &str, from: &str) -> Resp {
        let mut req = request(
            None,
            Method::POST,
            "/v1/sessions",
            Some(json!({ "email": email, "password": password })),
        );
        let from: std::net::SocketAddr = from.parse().expect("an ip:port");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(from));
        send(&self.router, req).await
    }

    /// The admin's token (what [`TestEnv::call`] sends).
    pub fn admin_token(&self) -> String {
        self.admin_token.lock().unwrap().clone()
    }

    /// A new session for the admin, e.g. after Redis lost the old one.
    pub async fn sign_admin_in_again(&self) {
        let token = self.sign_in(self.admin, Role::Admin).await;
        *self.admin_token.lock().unwrap() = token;
    }

    /// A new user with `role` and a session: (id, token). A student is a
    /// student of [`TestEnv::org`] enrolled in [`TestEnv::class`]; a teacher
    /// teaches that class; an admin is a platform admin of no organization.
    pub async fn user(&self, role: Role) -> (Uuid, String) {
        let account = if role == Role::Admin {
            "admin"
        } else {
            "student"
        };
        let id = lectern::store::users::ensure(self.app.db(), &new_email(), account)
            .await
            .unwrap();
        match role {
            Role::Student => {
                self.join(self.org, id, "student").await;
                self.enroll(self.class, id).await;
            }
            Role::Teacher => {
                self.join(self.org, id, "teacher").await;
                self.assign(self.class, id).await;
            }
            Role::Admin => {}
        }
        (id, self.sign_in(id, role).await)
    }

    /// A new organization (by SQL): its id.
    pub async fn new_org(&self) -> Uuid {
        let id = Uuid::new_v4();
        let slug = format!("org-{}", id.simple());
        self.sql()
            .await
            .execute(
                "INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $2)",
                &[&id, &slug],
            )
            .await
            .unwrap();
        id
    }

    /// A new class of `org` (by SQL): its id.
    pub async fn new_class(&self, org: Uuid) -> Uuid {
        let id = Uuid::new_v4();
        self.sql()
            .await
            .execute(
                "INSERT INTO classes (id, org_id, name) VALUES ($1, $2, 'class')",
                &[&id, &org],
            )
            .await
            .unwrap();
        id
    }

    /// Makes `user` a member of `org` with `role` (`org_admin`, `teacher`, `student`), by SQL.
    pub async fn join(&self, org: Uuid, user: Uuid, role: &str) {
        self.sql()
            .await
            .execute(
                "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)",
                &[&org, &user, &role],
            )
            .await
            .unwrap();
    }

    /// Enrolls `user` (a member of the class's organization) in `class`, by SQL.
    pub async fn enroll(&self, class: Uuid, user: Uuid) {
        self.sql()
            .await
            .execute(
                "INSERT INTO class_students (class_id, org_id, user_id)
                 SELECT id, org_id, $2 FROM classes WHERE id = $1",
                &[&class, &user],
            )
            .await
            .unwrap();
    }

    /// Makes `user` (a member of the class's organization) a teacher of `class`, by SQL.
    pub async fn assign(&self, class: Uuid, user: Uuid) {
        self.sql()
            .await
            .execute(
                "INSERT INTO class_teachers (class_id, org_id, user_id)
                 SELECT id, org_id, $2 FROM classes WHERE id = $1",
                &[&class, &user],
            )
            .await
            .unwrap();
    }

    /// Sends one request to the router as the admin.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let token = self.admin_token();
        self.call_as(Some(&token), method, path, body).await
    }

    /// Sends one request with this bearer token (`None`: anonymous).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        send(&self.router, request(token, method, path, body)).await
    }

    /// A second app on the same servers, schema and key prefix: another Lambda container.
    pub fn twin(&self) -> Router {
        lectern::api::router(App::new(self.app.config().clone()).expect("app"))
    }

    /// Sends one request as the admin to another router (a [`TestEnv::twin`]).
    pub async fn call_on(
        &self,
        router: &Router,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let token = self.admin_token();
        send(router, request(Some(&token), method, path, body)).await
    }

    /// Sends a prepared request to the router, as the admin unless it carries
    /// an `Authorization` header of its own.
    pub async fn send(&self, mut request: Request<Body>) -> Resp {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let bearer = format!("Bearer {}", self.admin_token());
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, bearer.parse().unwrap());
        }
        send(&self.router, request).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A client on this environment's schema.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// Rows in a table of this environment's schema.
    pub async fn count(&self, table: &str) -> i64 {
        self.sql()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// A connection to the real Redis.
    pub async fn redis(&self) -> Conn {
        redis_conn().await
    }

    /// Milliseconds a key has left (-1: no TTL, -2: no key), on the real Redis.
    pub async fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.redis().await)
            .await
            .unwrap()
    }

    /// Every key under this environment's prefix, with its value when it is a string.
    pub async fn redis_entries(&self) -> Vec<(String, Option<Vec<u8>>)> {
        self.entries_under(&self.prefix).await
    }

    /// The keys of tests (states and submission locks) with their values: what
    /// the test loop writes, as opposed to the caches of pool content.
    pub async fn test_entries(&self) -> Vec<(String, Option<Vec<u8>>)> {
        self.entries_under(&format!("{}test:", self.prefix)).await
    }

    async fn entries_under(&self, prefix: &str) -> Vec<(String, Option<Vec<u8>>)> {
        let mut conn = self.redis().await;
        let keys = keys_under(&mut conn, prefix).await.unwrap();
        let mut out = Vec::new();
        for k in keys {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .ok()
                .flatten();
            out.push((k, v));
        }
        out.sort();
        out
    }

    /// A new account (not a platform admin) that belongs to no organization.
    pub async fn account(&self) -> Uuid {
        lectern::store::users::ensure(self.app.db(), &new_email(), "student")
            .await
            .unwrap()
    }

    /// A new member of `org` with `role` (`org_admin`, `teacher`, `student`)
    /// and a session: (id, token).
    pub async fn member(&self, org: Uuid, role: &str) -> (Uuid, String) {
        let id = self.account().await;
        self.join(org, id, role).await;
        (id, self.sign_in(id, Role::Student).await)
    }

    /// A user to take tests as: a student of [`TestEnv::org`] enrolled in
    /// [`TestEnv::class`] (requests still go out as the admin).
    pub async fn student(&self) -> Uuid {
        let id = self.account().await;
        self.join(self.org, id, "student").await;
        self.enroll(self.class, id).await;
        id
    }

    /// Imports [`course_doc`]`(segments)` into [`TestEnv::org`] (as the
    /// admin) and returns its id: the same course on every call with the same
    /// `segments` (an unchanged import writes nothing).
    pub async fn course(&self, segments: usize) -> Uuid {
        let resp = self
            .post(
                "/v1/courses",
                json!({ "organization_id": self.org, "course": course_doc(segments) }),
            )
            .await;
        assert!(resp.status.is_success(), "{}", resp.body);
        resp.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// A body for `POST /v1/teaching/sessions` on [`TestEnv::course`]`(segments)`,
    /// at its first module and sub-topic.
    pub async fn lesson(&self, segments: usize) -> Value {
        json!({ "course_id": self.course(segments).await, "module_index": 0, "sub_topic_index": 0 })
    }

    /// Creates a pool of `n` generated 3PL items over five concepts; returns its id.
    pub async fn demo_pool(&self, n: usize) -> Uuid {
        let resp = self
            .post(
                "/v1/pools",
                json!({ "name": "test pool", "organization_id": self.org, "items": items_json(n, &self.prefix) }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        resp.body["pool_id"].as_str().unwrap().parse().unwrap()
    }

    /// Answers `question` (as served: `id` and `options`) in `test` as the admin,
    /// with its key when `right`, else with another option.
    pub async fn answer(&self, test: &str, question: &Value, right: bool) -> Resp {
        let token = self.admin_token();
        self.answer_as(&token, test, question, right).await
    }

    /// [`TestEnv::answer`] with this caller's token.
    pub async fn answer_as(&self, token: &str, test: &str, question: &Value, right: bool) -> Resp {
        let id = question["id"]
            .as_str()
            .expect("a served question has an id");
        let key = self.key_of(id).await;
        let response = if right {
            key
        } else {
            question["options"]
                .as_array()
                .expect("a served question has options")
                .iter()
                .filter_map(Value::as_str)
                .find(|o| *o != key)
                .expect("a question has a wrong option")
                .to_owned()
        };
        self.call_as(
            Some(token),
            Method::POST,
            &format!("/v1/tests/{test}/responses"),
            Some(json!({ "question_id": id, "response": response })),
        )
        .await
    }

    /// Starts a fixed-length test of `items` items on `pool` for `student` as
    /// the admin and answers every question (right, wrong, right, …); returns
    /// the test id.
    pub async fn take_test(&self, pool: Uuid, student: Uuid, items: usize) -> Uuid {
        let started = self
            .post(
                "/v1/tests",
                json!({ "pool_id": pool, "student_id": student,
                        "config": { "max_items": items, "min_items": items, "se_target": null } }),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let test = started.body["test_id"].as_str().unwrap().to_owned();
        let mut question = started.body["question"].clone();
        for i in 0..items {
            let r = self.answer(&test, &question, i % 2 == 0).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            question = r.body["next_question"].clone();
        }
        test.parse().unwrap()
    }

    /// Creates a pool of `n` items whose options are long unique tokens, so that a
    /// key showing up anywhere in Redis can be searched for byte by byte. Shared
    /// (by the platform admin): any signed-in student may take a test on it.
    pub async fn token_pool(&self, n: usize) -> Uuid {
        let items: Vec<Value> = items_json(n, &self.prefix)
            .into_iter()
            .map(|mut item| {
                let token = |o: &Value| {
                    format!("option-{}-{}", Uuid::new_v4().simple(), o.as_str().unwrap())
                };
                let options: Vec<String> = item["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(token)
                    .collect();
                let key = item["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .position(|o| *o == item["correct_answer"])
                    .unwrap();
                item["correct_answer"] = json!(options[key]);
                item["options"] = json!(options);
                item
            })
            .collect();
        let resp = self
            .post(
                "/v1/pools",
                json!({ "name": "token pool", "shared": true, "items": items }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        resp.body["pool_id"].as_str().unwrap().parse().unwrap()
    }

    /// Every key under this environment's prefix has a TTL, and no value gives a
    /// key away: test states and pool parameters hold no key string at all (nor a
    /// polytomous item's option scores, as JSON or postcard), and a cached
    /// question is exactly the question as anyone may see it. Returns the
    /// number of keys checked.
    pub async fn assert_redis_clean(&self) -> usize {
        let sql = self.sql().await;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for r in sql
            .query("SELECT correct_answer, option_scores FROM questions", &[])
            .await
            .unwrap()
        {
            if let Some(right) = r.get::<_, Option<String>>(0) {
                keys.push(right.into_bytes());
            }
            // Scores 0, 1, …, m in option order give away nothing the options do not (a Likert item).
            if let Some(scores) = r
                .get::<_, Option<Vec<i16>>>(1)
                .filter(|s| s.iter().enumerate().any(|(i, &s)| s != i as i16))
            {
                let scores: Vec<u8> = scores.into_iter().map(|s| s as u8).collect();
                keys.push(serde_json::to_vec(&scores).unwrap());
                let mut postcard = vec![scores.len() as u8];
                postcard.extend(&scores);
                keys.push(postcard);
            }
        }
        let mut conn = self.redis().await;
        let entries = self.redis_entries().await;
        let question_prefix = format!("{}question:{{", self.prefix);
        for (k, v) in &entries {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(ttl > 0, "{k} has no TTL ({ttl})");
            // The auth indexes are sorted sets of token hashes and user ids; the
            // cache's counters are a hash; a tutoring session keeps a list, a
            // hash and a set beside its context, and the live sessions a sorted set.
            let teaching = format!("{}teaching:", self.prefix);
            let not_string = k.starts_with(&format!("{}auth:", self.prefix))
                || *k == format!("{}cache:stats", self.prefix)
                || (k.starts_with(&teaching)
                    && !k.ends_with(":context")
                    && !k.starts_with(&format!("{teaching}ws:")));
            let Some(v) = v.as_deref() else {
                assert!(not_string, "{k} is not a string");
                continue;
            };
            // A cached read is a response body as its endpoint shows it: no field
            // anywhere names a key, and a pool's items are exactly what
            // `GET /v1/pools/{id}` shows (options, never which is right). Its ids and
            // times may contain a short key's digits by chance, so it is checked by
            // structure, not by substring.
            if k.starts_with(&format!("{}cache:{{", self.prefix)) && k.contains("}:entry:") {
                let (_, json) = lectern::store::cache::unframe(v).expect("a framed entry");
                let body: Value = serde_json::from_slice(json).expect("a JSON entry");
                // A course version names its course and segments by `key`
                // (identifiers); it can hold no answer key at all.
                let course = k.starts_with(&format!("{}cache:{{course:", self.prefix));
                assert!(
                    !names_a_key(&body, !course),
                    "{k} holds a key field: {body}"
                );
                for item in body["items"].as_array().into_iter().flatten() {
                    let mut fields: Vec<&str> = item
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    fields.sort_unstable();
                    // What an item shows: a pretest one says so and has no
                    // exposure; parameters when it has some (c and d for a
                    // right/wrong one), else its model when polytomous.
                    let mut shown = vec!["concepts", "content", "id", "options"];
                    shown.push(match item.get("pretest") {
                        Some(_) => "pretest",
                        None => "exposure",
                    });
                    if item.get("a").is_some() {
                        shown.extend(["a", "b", "model"]);
                        if !item["b"].is_array() {
                            shown.extend(["c", "d"]);
                        }
                    } else if item.get("model").is_some() {
                        shown.push("model");
                    }
                    shown.sort_unstable();
                    assert_eq!(fields, shown, "{k} holds more than the item as shown");
                }
                continue;
            }
            if let Some(id) = k
                .strip_prefix(&question_prefix)
                .and_then(|r| r.strip_suffix('}'))
            {
                let q = lectern::store::pools::QuestionText::decode(v).unwrap();
                assert_eq!(q.encode(), v, "{k} holds more than the question");
                let row = sql
                    .query_one(
                        "SELECT content, options, concepts FROM questions WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
                assert_eq!(q.id, id);
                assert_eq!(
                    (q.content.as_str(), &q.options, &q.concepts),
                    (
                        row.get::<_, &str>(0),
                        &row.get::<_, Vec<String>>(1),
                        &row.get::<_, Vec<String>>(2)
                    )
                );
            } else {
                for key in &keys {
                    assert!(
                        !v.windows(key.len()).any(|w| w == key.as_slice()),
                        "{k} holds the key {:?}",
                        String::from_utf8_lossy(key)
                    );
                }
            }
        }
        entries.len()
    }

    /// The key of a question, straight from PostgreSQL.
    pub async fn key_of(&self, question_id: &str) -> String {
        self.sql()
            .await
            .query_one(
                "SELECT correct_answer FROM questions WHERE id = $1",
                &[&question_id],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Whether a JSON value has a field named like an answer key, at any depth.
fn names_a_key(value: &Value, key_field_too: bool) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| {
            ["correct_answer", "option_scores"].contains(&k.as_str())
                || (key_field_too && k == "key")
                || names_a_key(v, key_field_too)
        }),
        Value::Array(items) => items.iter().any(|v| names_a_key(v, key_field_too)),
        _ => false,
    }
}

/// A course (key `test-<segments>`) of 2 modules of 2 sub-topics of
/// `segments` segments each. Segment `m.s.g` (from 1) teaches "fact m.s.g".
pub fn course_doc(segments: usize) -> Value {
    let module = |m: usize| {
        let sub = |s: usize| {
            let segment = |g: usize| {
                json!({
                    "title": format!("Part {m}.{s}.{g}"),
                    "text": format!("Fact {m}.{s}.{g}: segment {g} of sub-topic {s} of module {m}.\n\nMore about fact {m}.{s}.{g}."),
                })
            };
            json!({ "title": format!("Sub-topic {m}.{s}"), "segments": (1..=segments).map(segment).collect::<Vec<_>>() })
        };
        json!({ "title": format!("Module {m}"), "sub_topics": [sub(1), sub(2)] })
    };
    json!({ "key": format!("test-{segments}"), "title": format!("Test course of {segments}"), "modules": [module(1), module(2)] })
}

/// An email no other test uses.
pub fn new_email() -> String {
    format!("{}@example.test", Uuid::new_v4())
}

/// A request with this bearer token (`None`: anonymous) and JSON body.
pub fn request(
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(&v).unwrap())
        }
        None => Body::empty(),
    };
    builder.body(body).unwrap()
}

/// A reply body as JSON: `null` when empty, a string when not JSON.
pub fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    }
}

/// Sends one request to any router, holds the reply to openapi.yaml (see
/// [`openapi`]) and parses it.
pub async fn send(router: &Router, request: Request<Body>) -> Resp {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    openapi::assert_conforms(
        method.as_str(),
        &path,
        parts.status.as_u16(),
        content_type.and_then(|c| c.to_str().ok()),
        &bytes,
    );
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: parse_body(&bytes),
    }
}

/// `n` items as the API takes them, ids unique to `salt`.
pub fn items_json(n: usize, salt: &str) -> Vec<Value> {
    let tag: String = salt
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .rev()
        .take(12)
        .collect();
    lectern::services::demo::items(n, 11)
        .into_iter()
        .map(|it| {
            let (
                lectern::store::pools::Key::Correct(right),
                lectern::store::pools::Params::Known(lectern::engine::Item::Dichotomous(p)),
            ) = (it.key, it.params)
            else {
                unreachable!("demo items are right/wrong")
            };
            json!({
                "id": format!("{}-{tag}", it.id),
                "content": it.content,
                "options": it.options,
                "correct_answer": right,
                "concepts": it.concepts,
                "a": p.a, "b": p.b, "c": p.c, "d": p.d,
            })
        })
        .collect()
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let prefix = self.prefix.clone();
        // Drop runs inside the test's runtime; clean up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&database_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    // A failed test may leave a transaction open on a runtime that no longer runs.
                    let _ = client
                        .execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            &[&schema],
                        )
                        .await;
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
                if let Ok(mut conn) = Conn::connect(&redis_target(), None).await {
                    if let Ok(keys) = keys_under(&mut conn, &prefix).await
                        && !keys.is_empty()
                    {
                        let _: Result<i64, _> =
                            redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Every key starting with `prefix` (SCAN, never KEYS; every primary of a cluster).
pub async fn keys_under(conn: &mut Conn, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    let pattern = format!("{prefix}*");
    loop {
        let (next, batch) = conn.scan_step(cursor, &pattern, 1000, None).await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// A TCP proxy the test controls, in front of a real server: `cut` drops
/// every connection through it and refuses new ones until `restore`. The
/// chaos run of `lectern-loadtest` uses the same one.
pub use lectern_loadtest::chaos::Proxy;

/// A redis-server of the test's own on a free loopback port, so stopping or
/// flushing it leaves the shared one alone; it keeps nothing on disk. The
/// server is `lectern_loadtest::chaos::OwnRedis` (the chaos run's), which this
/// dereferences to (`url`, `kill`, `revive`, …), plus a client connection.
pub struct OwnRedis(lectern_loadtest::chaos::OwnRedis);

impl OwnRedis {
    /// Starts one on a free port.
    pub fn start() -> Self {
        Self(lectern_loadtest::chaos::OwnRedis::start())
    }

    /// Starts one that wants `AUTH password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Self {
        Self(lectern_loadtest::chaos::OwnRedis::start_with_password(
            password,
        ))
    }

    /// A connection to it.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.0.url_with_password())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl std::ops::Deref for OwnRedis {
    type Target = lectern_loadtest::chaos::OwnRedis;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for OwnRedis {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
