//! Tutoring over WebSockets, on real Redis and PostgreSQL: the local
//! server's `GET /v1/teaching/ws` through a real WebSocket client, and the
//! `teach-ws` Lambda handler fed API Gateway events, pushing to a stand-in for
//! the Management API on loopback.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use futures_util::{SinkExt, StreamExt};
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lectern::api::teach_ws::gateway::{self, Gateway};
use lectern::aws::Credentials;
use lectern::aws::sigv4;
use lectern::services::auth::Role;
use lectern_tests::TestEnv;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a frame may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

/// The local router on a loopback port.
async fn serve(env: &TestEnv) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = lectern::api::local_router(env.app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// How a client presents its token.
#[derive(Clone, Copy)]
enum Via {
    Header,
    Query,
}

async fn open(
    addr: SocketAddr,
    token: Option<&str>,
    via: Via,
) -> Result<Socket, tungstenite::Error> {
    let url = match (token, via) {
        (Some(t), Via::Query) => format!("ws://{addr}/v1/teaching/ws?access_token={t}"),
        _ => format!("ws://{addr}/v1/teaching/ws"),
    };
    let mut request = url.into_client_request().unwrap();
    if let (Some(t), Via::Header) = (token, via) {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn connected(addr: SocketAddr, token: &str) -> Socket {
    open(addr, Some(token), Via::Header)
        .await
        .expect("the socket opens")
}

/// The HTTP status a refused handshake got.
fn refusal(outcome: Result<Socket, tungstenite::Error>) -> u16 {
    match outcome {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => panic!("the socket opened"),
    }
}

async fn send(socket: &mut Socket, frame: String) {
    socket.send(Message::Text(frame.into())).await.unwrap();
}

async fn say(socket: &mut Socket, session: Uuid, text: &str) {
    send(
        socket,
        json!({ "session_id": session, "text": text }).to_string(),
    )
    .await;
}

/// The next text frame, as JSON.
async fn frame(socket: &mut Socket) -> Value {
    let next = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("no text frame: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, next)
        .await
        .expect("a frame in time")
}

/// Nothing more arrives for a while.
async fn quiet(socket: &mut Socket) {
    let next = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
    assert!(next.is_err(), "unexpected frame: {next:?}");
}

/// A session on the second sub-topic of a course of 5-segment sub-topics.
async fn lesson(env: &TestEnv) -> Value {
    json!({ "course_id": env.course(5).await, "module_index": 0, "sub_topic_index": 1 })
}

/// A new teaching session of the token's owner, over HTTP.
async fn start(env: &TestEnv, token: &str) -> Uuid {
    let r = env
        .call_as(
            Some(token),
            Method::POST,
            "/v1/teaching/sessions",
            Some(lesson(env).await),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["session_id"].as_str().unwrap().parse().unwrap()
}

async fn transitions(env: &TestEnv, session: Uuid) -> i64 {
    env.sql()
        .await
        .query_one(
            "SELECT count(*) FROM teaching_transitions WHERE session_id = $1",
            &[&session],
        )
        .await
        .unwrap()
        .get(0)
}

/// The connection records under this environment's prefix: key → JSON.
async fn records(env: &TestEnv) -> Vec<(String, Value)> {
    let under = format!("{}teaching:ws:", env.prefix);
    env.redis_entries()
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with(&under))
        .map(|(k, v)| (k, serde_json::from_slice(&v.expect("a string")).unwrap()))
        .collect()
}

async fn followers(env: &TestEnv, session: Uuid) -> BTreeSet<String> {
    let set = format!("{}teaching:session:{{{session}}}:connections", env.prefix);
    redis::cmd("SMEMBERS")
        .arg(&set)
        .query_async(&mut env.redis().await)
        .await
        .unwrap()
}

/// Waits until no connection record is left (the server cleans up after a close).
async fn until_no_records(env: &TestEnv) {
    for _ in 0..100 {
        if records(env).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connection records left: {:?}", records(env).await);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_local_socket_carries_inputs_and_replies() {
    let env = TestEnv::new().await;
    let addr = serve(&env).await;
    let (student, token) = env.user(Role::Student).await;
    let session = start(&env, &token).await;
    let mut socket = connected(addr, &token).await;

    say(&mut socket, session, "next").await;
    let reply = frame(&mut socket).await;
    assert_eq!(reply["session_id"], session.to_string(), "{reply}");
    assert_eq!(reply["action"]["type"], "teach_segment", "{reply}");
    assert_eq!(reply["context"]["segment_index"], 1, "{reply}");
    // The action carries the segment's text, from the course.
    let content = &reply["action"]["content"];
    assert_eq!(content["key"], "1.2.2", "{reply}");
    assert_eq!(content["title"], "Part 1.2.2");
    assert_eq!(content["sub_topic_title"], "Sub-topic 1.2");
    assert!(
        content["text"].as_str().unwrap().starts_with("Fact 1.2.2:"),
        "{reply}"
    );
    assert_eq!(
        transitions(&env, session).await,
        2,
        "the start and the input, in PostgreSQL"
    );

    // The mapping: who and which session, for at most 2 h, and no token anywhere.
    let records = records(&env).await;
    let [(key, record)] = records.as_slice() else {
        panic!("one connection record: {records:?}")
    };
    assert_eq!(record["user_id"], student.to_string());
    // No role: where the caller stands is read per message, so a change counts at once.
    assert!(record.get("role").is_none(), "{record}");
    assert_eq!(record["session_id"], session.to_string());
    assert_eq!(record["token_hash"], sha256_hex(&token));
    let ttl = env.pttl(key).await;
    assert!(ttl > 0 && ttl <= 2 * 3600 * 1000, "record TTL {ttl}");
    let set = format!("{}teaching:session:{{{session}}}:connections", env.prefix);
    let connection = key.rsplit(':').next().unwrap();
    assert_eq!(
        followers(&env, session).await,
        BTreeSet::from([connection.to_owned()])
    );
    let ttl = env.pttl(&set).await;
    let state_ttl = env.app.config().teaching_state_ttl.as_millis() as i64;
    assert!(ttl > 0 && ttl <= state_ttl, "set TTL {ttl}");
    for (k, v) in env.redis_entries().await {
        let v = v.unwrap_or_default();
        assert!(
            !v.windows(token.len()).any(|w| w == token.as_bytes()),
            "{k} holds the raw token"
        );
    }

    socket.close(None).await.unwrap();
    until_no_records(&env).await;
    assert!(
        followers(&env, session).await.is_empty(),
        "the set forgets it too"
    );
}

#[tokio::test]
async fn a_socket_without_a_valid_token_is_refused_before_the_upgrade() {
    let env = TestEnv::new().await;
    let addr = serve(&env).await;
    let (_, token) = env.user(Role::Student).await;
    let before = env.redis_entries().await.len();
    assert_eq!(refusal(open(addr, None, Via::Header).await), 401);
    let junk = "x".repeat(43);
    assert_eq!(refusal(open(addr, Some(&junk), Via::Header).await), 401);
    assert_eq!(refusal(open(addr, Some(&junk), Via::Query).await), 401);
    assert_eq!(env.redis_entries().await.len(), before, "nothing written");
    assert!(records(&env).await.is_empty());

    // Browsers cannot set headers: the query parameter does the same.
    let session = start(&env, &token).await;
    let mut socket = open(addr, Some(&token), Via::Query).await.unwrap();
    say(&mut socket, session, "next").await;
    assert_eq!(frame(&mut socket).await["context"]["segment_index"], 1);
}

#[tokio::test]
async fn errors_go_to_the_sender_and_another_students_session_does_not_exist() {
    let env = TestEnv::new().await;
    let addr = serve(&env).await;
    let (_, owner) = env.user(Role::Student).await;
    let (_, other) = env.user(Role::Student).await;
    let session = start(&env, &owner).await;
    let mut theirs = connected(addr, &owner).await;
    say(&mut theirs, session, "next").await;
    frame(&mut theirs).await;
    let mut mine = connected(addr, &other).await;

    say(&mut mine, session, "skip").await;
    let e = frame(&mut mine).await;
    assert_eq!(e["error"]["status"], 404, "{e}");
    assert_eq!(e["error"]["type"], "urn:lectern:problem:not-found");
    assert!(e["error"]["title"].is_string() && e["error"]["detail"].is_string());
    assert_eq!(transitions(&env, session).await, 2, "nothing recorded");
    assert_eq!(followers(&env, session).await.len(), 1, "not following it");

    send(&mut mine, "{not json".into()).await;
    assert_eq!(frame(&mut mine).await["error"]["status"], 400);
    send(
        &mut mine,
        json!({ "session_id": session, "text": "next", "action": "x" }).to_string(),
    )
    .await;
    assert_eq!(frame(&mut mine).await["error"]["status"], 422);
    say(&mut mine, session, "   ").await;
    assert_eq!(frame(&mut mine).await["error"]["status"], 422);
    // Nothing of this reached the owner's socket.
    quiet(&mut theirs).await;
}

#[tokio::test]
async fn every_connection_following_a_session_gets_its_replies() {
    let env = TestEnv::new().await;
    let addr = serve(&env).await;
    let (student, token) = env.user(Role::Student).await;
    let second_token = env.sign_in(student, Role::Student).await;
    let session = start(&env, &token).await;
    let mut first = connected(addr, &token).await;
    let mut second = connected(addr, &second_token).await;

    say(&mut first, session, "next").await;
    assert_eq!(frame(&mut first).await["context"]["segment_index"], 1);
    quiet(&mut second).await; // not following yet
    say(&mut second, session, "next").await;
    for socket in [&mut first, &mut second] {
        assert_eq!(frame(socket).await["context"]["segment_index"], 2);
    }
    say(&mut first, session, "next").await;
    for socket in [&mut first, &mut second] {
        assert_eq!(frame(socket).await["context"]["segment_index"], 3);
    }
    assert_eq!(followers(&env, session).await.len(), 2);
}

#[tokio::test]
async fn a_log_out_ends_the_sockets_access() {
    let env = TestEnv::new().await;
    let addr = serve(&env).await;
    let (_, token) = env.user(Role::Student).await;
    let session = start(&env, &token).await;
    let mut socket = connected(addr, &token).await;
    let out = env
        .call_as(Some(&token), Method::DELETE, "/v1/sessions/current", None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);

    say(&mut socket, session, "next").await;
    assert_eq!(frame(&mut socket).await["error"]["status"], 401);
    assert_eq!(transitions(&env, session).await, 1);
    assert!(
        records(&env).await.is_empty(),
        "the record went with the session"
    );
}

// ---- the Lambda path -------------------------------------------------------

/// One POST the stand-in Management API received.
#[derive(Debug, Clone)]
struct Post {
    connection: String,
    path: String,
    host: String,
    authorization: String,
    amz_date: String,
    security_token: Option<String>,
    body: Vec<u8>,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A stand-in for `POST /@connections/{id}`: records every call; 410 for the ids in `gone`.
#[derive(Clone, Default)]
struct FakeManagementApi {
    posts: Arc<Mutex<Vec<Post>>>,
    gone: Arc<Mutex<HashSet<String>>>,
}

impl FakeManagementApi {
    async fn start(&self) -> SocketAddr {
        let app = axum::Router::new()
            .route("/@connections/{id}", axum::routing::post(Self::post))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    async fn post(
        State(fake): State<Self>,
        Path(connection): Path<String>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let gone = fake.gone.lock().unwrap().contains(&connection);
        fake.posts.lock().unwrap().push(Post {
            connection,
            path: uri.path().to_owned(),
            host: header("host").unwrap_or_default(),
            authorization: header("authorization").unwrap_or_default(),
            amz_date: header("x-amz-date").unwrap_or_default(),
            security_token: header("x-amz-security-token"),
            body: body.to_vec(),
        });
        if gone {
            StatusCode::GONE
        } else {
            StatusCode::OK
        }
    }

    /// The posts so far (and forget them), by connection.
    fn take(&self) -> Vec<Post> {
        let mut posts = std::mem::take(&mut *self.posts.lock().unwrap());
        posts.sort_by(|a, b| a.connection.cmp(&b.connection));
        posts
    }
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn event(
    name: &str,
    connection: &str,
    edit: impl FnOnce(&mut Value),
) -> ApiGatewayWebsocketProxyRequest {
    let mut v = fixture(name);
    v["requestContext"]["connectionId"] = connection.into();
    edit(&mut v);
    serde_json::from_value(v).expect("an API Gateway WebSocket event")
}

/// `$connect` with the token in the Authorization header (`None`: no header).
fn connect_event(connection: &str, token: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    event("apigw-ws-connect.json", connection, |v| match token {
        Some(t) => {
            v["headers"]["Authorization"] = format!("Bearer {t}").into();
            v["multiValueHeaders"]["Authorization"] = json!([format!("Bearer {t}")]);
        }
        None => without_authorization(v),
    })
}

/// The event without its `Authorization` header (in both of API Gateway's header maps).
fn without_authorization(v: &mut Value) {
    for map in ["headers", "multiValueHeaders"] {
        v[map].as_object_mut().unwrap().remove("Authorization");
    }
}

fn message_event(connection: &str, body: String) -> ApiGatewayWebsocketProxyRequest {
    event("apigw-ws-default.json", connection, |v| {
        v["body"] = body.into()
    })
}

fn input(session: Uuid, text: &str) -> String {
    json!({ "session_id": session, "text": text }).to_string()
}

fn fake_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDLECTERNTEST".into(),
        secret_access_key: "not-a-real-secret-key-for-tests-only".into(),
        session_token: Some("fake-session-token".into()),
    }
}

/// The post was signed as SigV4 for execute-api, over exactly what arrived.
fn assert_signed(post: &Post) {
    let credentials = fake_credentials();
    assert!(
        post.authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDLECTERNTEST/"),
        "{}",
        post.authorization
    );
    assert!(post.authorization.contains("/eu-west-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="));
    assert_eq!(post.security_token.as_deref(), Some("fake-session-token"));
    let format =
        time::format_description::parse("[year][month][day]T[hour][minute][second]Z").unwrap();
    let at = time::PrimitiveDateTime::parse(&post.amz_date, &format)
        .expect("X-Amz-Date")
        .assume_utc();
    let again = sigv4::sign(
        &credentials,
        "eu-west-1",
        "execute-api",
        at,
        &sigv4::Request {
            method: "POST",
            host: &post.host,
            path: &post.path,
            headers: &[],
            body: &post.body,
        },
    );
    assert_eq!(
        again.authorization, post.authorization,
        "the signature covers what was sent"
    );
}

#[tokio::test]
async fn the_lambda_handler_connects_pushes_through_the_management_api_and_drops_gone_connections()
{
    let env = TestEnv::new().await;
    let fake = FakeManagementApi::default();
    let addr = fake.start().await;
    // The endpoint and credentials are passed in: no process environment is touched.
    let gw = Gateway::new(
        "eu-west-1".into(),
        fake_credentials(),
        Some(format!("http://{addr}")),
    );
    let app = &env.app;
    let (student, token) = env.user(Role::Student).await;
    let session = start(&env, &token).await;
    let (a, b) = ("TWegAcC4EowCHnA=", "TWegBdD5FpxDIoB=");

    // $connect: 401 without a valid token, and nothing stored.
    for bad in [None, Some("x".repeat(43))] {
        let r = gateway::handle(app, &gw, connect_event(a, bad.as_deref())).await;
        assert_eq!(r.status_code, 401);
    }
    assert!(records(&env).await.is_empty());
    assert_eq!(
        gateway::handle(app, &gw, connect_event(a, Some(&token)))
            .await
            .status_code,
        200
    );
    // The browser way: the token as a query parameter.
    let by_query = event("apigw-ws-connect.json", b, |v| {
        without_authorization(v);
        v["queryStringParameters"] = json!({ "access_token": token });
        v["multiValueQueryStringParameters"] = json!({ "access_token": [token] });
    });
    assert_eq!(gateway::handle(app, &gw, by_query).await.status_code, 200);
    let stored = records(&env).await;
    assert_eq!(stored.len(), 2);
    for (key, record) in &stored {
        assert_eq!(record["user_id"], student.to_string());
        assert_eq!(record["token_hash"], sha256_hex(&token));
        assert!(env.pttl(key).await > 0);
    }

    // $default from A: the reply goes to A, signed, with the connection id encoded.
    let r = gateway::handle(app, &gw, message_event(a, input(session, "next"))).await;
    assert_eq!(r.status_code, 200);
    let posts = fake.take();
    let [post] = posts.as_slice() else {
        panic!("one push: {posts:?}")
    };
    assert_eq!(post.connection, a);
    assert_eq!(post.path, "/@connections/TWegAcC4EowCHnA%3D");
    assert_signed(post);
    let reply = post.json();
    assert_eq!(reply["action"]["type"], "teach_segment", "{reply}");
    assert_eq!(reply["context"]["segment_index"], 1);
    assert_eq!(reply["action"]["content"]["key"], "1.2.2", "{reply}");
    assert_eq!(transitions(&env, session).await, 2);

    // B follows too: both get B's reply.
    gateway::handle(app, &gw, message_event(b, input(session, "next"))).await;
    let posts = fake.take();
    assert_eq!(
        posts
            .iter()
            .map(|p| p.connection.as_str())
            .collect::<Vec<_>>(),
        [a, b]
    );
    for post in &posts {
        assert_signed(post);
        assert_eq!(post.json()["context"]["segment_index"], 2);
    }

    // B went away without a $disconnect: the 410 takes it out of the set.
    fake.gone.lock().unwrap().insert(b.to_owned());
    gateway::handle(app, &gw, message_event(a, input(session, "next"))).await;
    assert_eq!(fake.take().len(), 2);
    assert_eq!(
        followers(&env, session).await,
        BTreeSet::from([a.to_owned()])
    );

    // Errors go to the sender alone.
    gateway::handle(app, &gw, message_event(a, "{not json".into())).await;
    let posts = fake.take();
    let [post] = posts.as_slice() else {
        panic!("one push: {posts:?}")
    };
    assert_eq!(
        (post.connection.as_str(), &post.json()["error"]["status"]),
        (a, &json!(400))
    );
    let (_, other) = env.user(Role::Student).await;
    let c = "TWegCeE6GqyEJpC=";
    assert_eq!(
        gateway::handle(app, &gw, connect_event(c, Some(&other)))
            .await
            .status_code,
        200
    );
    gateway::handle(app, &gw, message_event(c, input(session, "skip"))).await;
    let posts = fake.take();
    let [post] = posts.as_slice() else {
        panic!("one push: {posts:?}")
    };
    assert_eq!(
        (post.connection.as_str(), &post.json()["error"]["status"]),
        (c, &json!(404))
    );
    assert_eq!(
        transitions(&env, session).await,
        4,
        "another student's input recorded nothing"
    );

    // $disconnect: the record and the membership go.
    let gone = event("apigw-ws-disconnect.json", a, |_| {});
    assert_eq!(gateway::handle(app, &gw, gone).await.status_code, 200);
    assert!(followers(&env, session).await.is_empty());
    let left: Vec<String> = records(&env).await.into_iter().map(|(k, _)| k).collect();
    assert!(left.iter().all(|k| !k.ends_with(a)), "{left:?}");
    // A message on it now is refused (API Gateway would not route one; a stale container might).
    gateway::handle(app, &gw, message_event(a, input(session, "next"))).await;
    let posts = fake.take();
    let [post] = posts.as_slice() else {
        panic!("one push: {posts:?}")
    };
    assert_eq!(post.json()["error"]["status"], 401);
}
