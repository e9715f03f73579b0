//! Production credentials: the Redis AUTH token and the database user and
//! password read from Secrets Manager (through the Lambda extension's
//! stand-in), at the first connection and not before; and TLS to PostgreSQL
//! that checks the server's certificate.

use lectern::{App, Config};
use lectern_tests::fake_secrets::FakeSecrets;
use lectern_tests::{OwnRedis, TestEnv, redis_url};

const DB_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lectern/db-AbCdEf";
const REDIS_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lectern/redis-AbCdEf";

/// An app over these settings (the rest from `env`).
fn app(env: &TestEnv, vars: &[(&'static str, String)]) -> App {
    let base = [
        ("REDIS_URL", redis_url()),
        ("REDIS_CLUSTER", lectern_tests::redis_cluster().to_string()),
        ("DATABASE_URL", env.database_url.clone()),
        ("REDIS_KEY_PREFIX", env.prefix.clone()),
        ("DB_TIMEOUT_MS", "2000".into()),
        ("REDIS_TIMEOUT_MS", "500".into()),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .chain(&base)
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    })
    .expect("config");
    App::new(config).expect("app")
}

#[tokio::test]
async fn database_credentials_come_from_the_secret_at_the_first_connection() {
    let env = TestEnv::new().await;
    let secrets = FakeSecrets::start().await;
    // The URL names a user that does not exist: only the secret's user can connect.
    let url = env.database_url.replacen("postgres@", "lectern_nobody@", 1);
    let mut vars = secrets.vars();
    vars.extend([("DATABASE_URL", url), ("DB_SECRET_ARN", DB_ARN.into())]);
    let app = app(&env, &vars);
    assert_eq!(secrets.calls(), 0, "nothing is read before it is needed");

    // Not there yet: the request fails as unavailable, and the failure is not kept.
    assert!(app.db().get().await.is_err());
    assert_eq!(secrets.calls(), 1);
    secrets.put(
        DB_ARN,
        r#"{"username":"postgres","password":"unused-under-trust","engine":"postgres"}"#,
    );
    let client = app
        .db()
        .get()
        .await
        .expect("a connection as the secret's user");
    let row = client
        .query_one("SELECT current_user::text, current_schema()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "postgres");
    assert_eq!(
        row.get::<_, String>(1),
        env.schema,
        "the URL's options still apply"
    );
    drop(client);
    // A second connection reuses the credentials read once.
    let (a, b) = (app.db().get().await.unwrap(), app.db().get().await.unwrap());
    drop((a, b));
    assert_eq!(secrets.calls(), 2);
}

#[tokio::test]
async fn a_malformed_database_secret_is_refused_without_showing_it() {
    let env = TestEnv::new().await;
    let secrets = FakeSecrets::start().await;
    secrets.put(DB_ARN, "hunter2-plain-password");
    let mut vars = secrets.vars();
    vars.push(("DB_SECRET_ARN", DB_ARN.into()));
    let app = app(&env, &vars);
    let e = app.db().get().await.unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let r = lectern_tests::send(
        &lectern::api::router(app.clone()),
        lectern_tests::request(None, axum::http::Method::GET, "/v1/health", None),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.body.to_string().contains("hunter2"), "{}", r.body);
}

#[tokio::test]
async fn the_redis_auth_token_comes_from_the_secret() {
    let env = TestEnv::new().await;
    let token = format!("tok{}", uuid::Uuid::new_v4().simple());
    let own = OwnRedis::start_with_password(&token);
    let secrets = FakeSecrets::start().await;
    let mut vars = secrets.vars();
    vars.extend([
        ("REDIS_URL", own.url()),
        ("REDIS_CLUSTER", "false".into()),
        ("REDIS_AUTH_SECRET_ARN", REDIS_ARN.into()),
    ]);

    secrets.put(REDIS_ARN, "not-the-token");
    let wrong = app(&env, &vars);
    assert!(
        wrong.redis().ping().await.is_err(),
        "a wrong token is refused"
    );

    secrets.put(REDIS_ARN, &format!("{token}\n"));
    let right = app(&env, &vars);
    right
        .redis()
        .ping()
        .await
        .expect("AUTH with the secret's token");
    right
        .redis()
        .set_bytes("k", b"v", std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut own.conn().await)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"v"[..]));

    let mut none = vars.clone();
    none.retain(|(k, _)| *k != "REDIS_AUTH_SECRET_ARN");
    assert!(
        app(&env, &none).redis().ping().await.is_err(),
        "no token, no access"
    );
}

#[tokio::test]
async fn sslmode_require_checks_the_server_certificate() {
    let env = TestEnv::new().await;
    let sep = if env.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{sep}sslmode=require", env.database_url);
    let app = app(&env, &[("DATABASE_URL", url)]);
    let e = app
        .db()
        .get()
        .await
        .expect_err("the local server's certificate is not trusted");
    let ssl_on = {
        let sql = env.sql().await;
        let row = sql.query_one("SHOW ssl", &[]).await.unwrap();
        row.get::<_, String>(0) == "on"
    };
    let shown = format!("{e:?}");
    if ssl_on {
        // A self-signed (snakeoil) certificate: verification, not the server, says no.
        assert!(shown.to_lowercase().contains("certificate"), "{shown}");
    } else {
        assert!(
            shown.to_lowercase().contains("tls") || shown.contains("SSL"),
            "{shown}"
        );
    }
}
